"""End-to-end torch-CUDA codecs on Kodak: the repository's models (``train.models.create_model``) with RANDOM
weights (timing only: the bit rates are meaningless), network and entropy-coding time reported separately.

Per model and image (padded to the model's multiple):
  encode_network   g_a + h_a on the GPU (CUDA events)
  hyper_synthesis  h_s (MambaVC: its two hyper-synthesis nets)
  decode_network   h_s + g_s
  compress_total / decompress_total   CompressAI's ``compress`` / ``decompress`` (wall clock, synchronized)
  encode_coding  = compress_total - encode_network - hyper_synthesis
  decode_coding  = decompress_total - decode_network
The coding figures include the entropy coder (CompressAI's, on the CPU) and, for SSMIC (spatial context) and
MambaVC (channel slices), the context / slice networks run inside the coding loop.

VSS models run twice when the kernels library is loaded: ``scan=torch-chunked`` (the PyTorch chunked
SelectiveScan2D) and ``scan=cuda-kernel`` (``train.layers.ss2d.selective_scan_2d`` swapped for the CUDA kernel).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from pathlib import Path

from .budget import SectionContext
from .schema import derive, not_measured
from .timing import event_ms

MODELS = [  # (arch, preset), most informative first: the section stops when its budget is spent
    ("bmshj2018-hyperprior", "q8"),
    ("ssmic", "paper"),
    ("mambavc", "paper"),
    ("mbt2018-mean", "q8"),
    ("ssmic", "tiny"),
    ("mambavc", "tiny"),
]
VSS_ARCHS = ("ssmic", "mambavc")
UNITS = {
    "encode_network": "ms",
    "hyper_synthesis": "ms",
    "decode_network": "ms",
    "compress_total": "ms",
    "decompress_total": "ms",
    "bpp": "bits/pixel",
    "peak_memory": "MiB",
    "images_timed": "images",
}


def find_images(kodak_dir: str | None, repo: Path, limit: int) -> list[Path]:
    """Kodak PNGs from ``kodak_dir`` if it has any, else the ones the repository ships."""
    for folder in ([Path(kodak_dir)] if kodak_dir else []) + [
        repo / ".gpu" / "kodak",
        repo / "assets" / "images" / "kodak",
    ]:
        if folder.is_dir():
            pngs = sorted(folder.glob("*.png"))
            if pngs:
                return pngs[:limit] if limit else pngs
    return []


@contextlib.contextmanager
def kernel_scan(kernels):
    """Swap ``train.layers.ss2d.selective_scan_2d`` for the CUDA kernel for the duration of the block."""
    from train.layers import ss2d

    original = ss2d.selective_scan_2d

    def cuda_scan(u, dts, dt_weight, A, Bs, Cs, D, delta_bias, delta_softplus=True):
        c = [t.contiguous() for t in (u, dts, dt_weight, A, Bs, Cs, D)]
        bias = None if delta_bias is None else delta_bias.contiguous()
        return kernels.selective_scan_2d(*c, bias, delta_softplus=delta_softplus)

    ss2d.selective_scan_2d = cuda_scan
    try:
        yield
    finally:
        ss2d.selective_scan_2d = original


def end_to_end(ctx: SectionContext, repo: Path) -> dict:
    images = find_images(ctx.options.get("kodak"), repo, int(ctx.options.get("images", 4)))
    out: dict = {
        "weights": "random (seeded); timings only, bit rates are meaningless",
        "images": [p.name for p in images],
        "models": {},
    }
    kernels, why_no_kernel = None, "dry run"
    if not ctx.dry_run:
        try:
            from .kernels import load_kernels

            kernels = load_kernels(ctx)
        except Exception as exc:
            why_no_kernel = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    runs = []
    for arch, preset in MODELS:
        runs.append((arch, preset, "torch-chunked" if arch in VSS_ARCHS else None))
        if arch in VSS_ARCHS:
            runs.append((arch, preset, "cuda-kernel"))
    for i, (arch, preset, scan) in enumerate(runs):
        key = f"{arch}-{preset}" + (f"-scan-{scan}" if scan else "")
        entry = {"arch": arch, "preset": preset, "scan": scan}
        share = ctx.left() / max(1, len(runs) - i)
        if not images:
            figs = {k: not_measured(u, "no Kodak images found") for k, u in UNITS.items()}
        elif scan == "cuda-kernel" and kernels is None and not ctx.dry_run:
            figs = {k: not_measured(u, f"kernels library not loaded ({why_no_kernel})") for k, u in UNITS.items()}
        else:
            deadline = ctx.clock() + max(share * 1.5, 5.0)
            figs = ctx.measure_many(UNITS, lambda: _run_model(arch, preset, scan, kernels, images, deadline), need_s=5)
        figs["encode_coding"] = derive(
            lambda c, n, h: c - n - h, "ms", figs["compress_total"], figs["encode_network"], figs["hyper_synthesis"]
        )
        figs["decode_coding"] = derive(lambda d, n: d - n, "ms", figs["decompress_total"], figs["decode_network"])
        out["models"][key] = {**entry, **figs}
    return out


def _load(path: Path, multiple: int, device: str = "cuda"):
    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image

    with Image.open(path) as im:
        a = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    x = torch.from_numpy(a).permute(2, 0, 1)[None].contiguous()
    H, W = x.shape[-2:]
    ph, pw = (-H) % multiple, (-W) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x.to(device), H * W


def _run_model(arch, preset, scan, kernels, images, deadline, device="cuda"):
    import torch

    from train.models import create_model

    cuda = device != "cpu"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    torch.manual_seed(0)
    model = create_model(arch, preset=preset).eval().to(device)
    model.update(force=True)
    multiple = int(getattr(model, "pad_multiple", 64))
    hyper = model.hyper_synthesis if hasattr(model, "hyper_synthesis") else model.h_s
    absy = arch == "bmshj2018-hyperprior"
    samples = {
        k: []
        for k in ("encode_network", "hyper_synthesis", "decode_network", "compress_total", "decompress_total", "bpp")
    }
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    scope = kernel_scan(kernels) if scan == "cuda-kernel" else contextlib.nullcontext()
    with scope, torch.inference_mode():
        x, _ = _load(images[0], multiple, device)
        model.compress(x)  # warm-up: cuDNN autotuning, lazy module init, CUDA context
        for n, path in enumerate(images):
            if n and time.monotonic() > deadline:
                break
            x, pixels = _load(path, multiple, device)
            enc_ms, (y, z) = event_ms(lambda: (lambda y: (y, model.h_a(y.abs() if absy else y)))(model.g_a(x)), device)
            hs_ms, _ = event_ms(lambda: hyper(torch.round(z)), device)
            sync()
            t0 = time.perf_counter()
            enc = model.compress(x)
            sync()
            t1 = time.perf_counter()
            dec = model.decompress(enc["strings"], enc["shape"])
            sync()
            t2 = time.perf_counter()
            y_hat = torch.round(y)
            gs_ms, _ = event_ms(lambda: model.g_s(y_hat), device)
            nbytes = sum(len(s) for group in enc["strings"] for s in group)
            samples["encode_network"].append(enc_ms)
            samples["hyper_synthesis"].append(hs_ms)
            samples["decode_network"].append(hs_ms + gs_ms)
            samples["compress_total"].append((t1 - t0) * 1e3)
            samples["decompress_total"].append((t2 - t1) * 1e3)
            samples["bpp"].append(8.0 * nbytes / pixels)
            del enc, dec, y, z, y_hat
    values = {k: statistics.median(v) for k, v in samples.items() if v}
    if cuda:
        values["peak_memory"] = torch.cuda.max_memory_allocated() / 2**20
    values["images_timed"] = len(samples["bpp"])
    del model
    if cuda:
        torch.cuda.empty_cache()
    return values
