"""End-to-end torch-CUDA codecs on Kodak through the lictrt runtime, and the spatial-context decode in wavefront
vs raster order on the GPU.

Codec: ``runtime.Codec.from_model(model, device="cuda", parse_path="torch-cuda")``: every graph on the GPU
(parse-critical ones in strict fp32), the C++ entropy coder on the host; with the CUDA kernels swapped in
(:func:`kernel_ops`: SelectiveScan2D for SSMIC / MambaVC, GeneralizedDivisiveNorm for bmshj2018). The models
carry seeded random weights nudged to code real symbols (``train.models.seeded.codable_model``): timings only, the
bit rates mean nothing. Per model, medians over the images of the runtime's own stats:
  encode_total, decode_total     wall time of ``Codec.encode`` / ``Codec.decode`` (bytes in memory)
  decode_synthesis               g_s on the GPU (feeds in, outputs back to the host)
  decode_hyper_synthesis         h_s (entropy parameters of y)
  decode_context_loop            the sequential part: context / slice networks + entropy decoding
  decode_entropy                 entropy decoding alone (C++ coder)
  decode_rest                    decode_total - networks - entropy: container, image conversion, Python
For SSMIC paper also (one image each, if time is left): the PyTorch chunked scan instead of the kernel, and the
portable parse path (parse-critical graphs in PyTorch on the host CPU, ``parse_path="torch"``).

Wavefront: SSMIC paper on the first image, encoded and decoded in both orders (``benchmarks.wavefront``).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from pathlib import Path

from .budget import SectionContext
from .kernels import load_kernels
from .schema import not_measured

MODELS = [("ssmic", "paper"), ("mambavc", "paper"), ("bmshj2018-hyperprior", "q8")]  # most informative first
WAVEFRONT_MODEL = ("ssmic", "paper")
UNITS = {
    "encode_total": "ms",
    "decode_total": "ms",
    "decode_synthesis": "ms",
    "decode_hyper_synthesis": "ms",
    "decode_context_loop": "ms",
    "decode_entropy": "ms",
    "decode_rest": "ms",
    "sequential_steps": "steps",
    "bpp": "bits/pixel",
    "peak_memory": "MiB",
    "images_timed": "images",
}
WAVEFRONT_UNITS = {
    "wavefront_decode": "ms",
    "raster_decode": "ms",
    "speedup": "x",
    "context_loop_speedup": "x",
    "wavefront_steps": "steps",
    "raster_steps": "steps",
    "max_abs_pixel_diff": "levels",
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
def kernel_ops(kernels, on: str = "cuda"):
    """Within the block, tensors on device type ``on`` go through ``kernels`` (the CUDA kernels; the tests pass the
    CPU-emulated ones with ``on="cpu"``): ``train.layers.ss2d.selective_scan_2d`` and ``compressai.layers.GDN.forward``
    are swapped, other devices keep the originals; both restored on exit."""
    from compressai.layers import GDN

    from train.layers import ss2d

    scan, gdn_forward = ss2d.selective_scan_2d, GDN.forward

    def cuda_scan(u, dts, dt_weight, A, Bs, Cs, D, delta_bias, delta_softplus=True):
        if u.device.type != on:
            return scan(u, dts, dt_weight, A, Bs, Cs, D, delta_bias, delta_softplus)
        c = [t.contiguous() for t in (u, dts, dt_weight, A, Bs, Cs, D)]
        bias = None if delta_bias is None else delta_bias.contiguous()
        return kernels.selective_scan_2d(*c, bias, delta_softplus=delta_softplus)

    def cuda_gdn(self, x):
        if x.device.type != on:
            return gdn_forward(self, x)
        C = x.shape[1]
        gamma = self.gamma_reparam(self.gamma).float().reshape(C, C).contiguous()
        beta = self.beta_reparam(self.beta).float().contiguous()
        return kernels.generalized_divisive_norm(x.contiguous(), gamma, beta, inverse=bool(self.inverse))

    ss2d.selective_scan_2d, GDN.forward = cuda_scan, cuda_gdn
    try:
        yield
    finally:
        ss2d.selective_scan_2d, GDN.forward = scan, gdn_forward


def end_to_end(ctx: SectionContext, repo: Path) -> dict:
    images = find_images(ctx.options.get("kodak"), repo, int(ctx.options.get("images", 4)))
    out: dict = {
        "codec": "runtime.Codec.from_model(model, device='cuda', parse_path='torch-cuda')",
        "weights": "seeded random, nudged to code real symbols (train.models.seeded.codable_model); timings only",
        "images": [p.name for p in images],
        "models": {},
    }
    kernels, why = load_kernels(ctx)
    runs = [(f"{a}-{p}", a, p, "kernels", "torch-cuda", None) for a, p in MODELS]
    runs += [
        ("ssmic-paper-scan-torch-chunked", "ssmic", "paper", "torch", "torch-cuda", 1),
        ("ssmic-paper-parse-on-host-cpu", "ssmic", "paper", "kernels", "torch", 1),
    ]
    for i, (key, arch, preset, ops, parse_path, limit) in enumerate(runs):
        entry = {"arch": arch, "preset": preset, "ops": ops, "parse_path": parse_path}
        if not images:
            figs = {k: not_measured(u, "no Kodak images found") for k, u in UNITS.items()}
        elif ops == "kernels" and why is not None:
            figs = {k: not_measured(u, f"kernels library not loaded ({why})") for k, u in UNITS.items()}
        else:
            deadline = ctx.clock() + max(ctx.left() / (len(runs) - i) * 1.5, 5.0)
            chosen = images[:limit] if limit else images

            def run(arch=arch, preset=preset, ops=ops, pp=parse_path, chosen=chosen, deadline=deadline):
                return run_codec(arch, preset, kernels if ops == "kernels" else None, chosen, deadline, parse_path=pp)

            figs = ctx.measure_many(UNITS, run, need_s=5)
        out["models"][key] = {**entry, **figs}
    return out


def run_codec(arch, preset, kernels, images, deadline, device="cuda", parse_path="torch-cuda") -> dict:
    """Encode and decode each image with the runtime; medians of the stats (see the module docstring)."""
    import torch

    from runtime import Codec
    from train.models.seeded import codable_model

    cuda = device != "cpu"
    codec = Codec.from_model(codable_model(arch, preset), device=device, parse_path=parse_path)
    samples: dict[str, list[float]] = {k: [] for k in UNITS if k not in ("peak_memory", "images_timed")}
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with kernel_ops(kernels) if kernels is not None else contextlib.nullcontext():
        first = codec.encode(images[0])  # warm-up: CUDA context, cuDNN heuristics, lazy initialisation
        reference = codec.decode(first)
        repeatable = bool((codec.decode(first) == reference).all())
        for n, path in enumerate(images):
            if n and time.monotonic() > deadline:
                break
            data = codec.encode(path)
            enc = codec.last_stats
            codec.decode(data)
            dec = codec.last_stats
            for k, v in decode_split(dec).items():
                samples[k].append(v)
            samples["encode_total"].append(enc["total_s"] * 1e3)
            samples["bpp"].append(dec["bpp"])
    values = {k: statistics.median(v) for k, v in samples.items() if v}
    values["images_timed"] = len(samples["bpp"])
    if cuda:
        values["peak_memory"] = torch.cuda.max_memory_allocated() / 2**20
    del codec
    if cuda:
        torch.cuda.empty_cache()
    if not repeatable:
        raise RuntimeError("two decodes of the same bitstream gave different images")
    return values


def decode_split(stats: dict) -> dict[str, float]:
    """The decode split (ms) of one ``Codec.decode``'s stats: synthesis, hyper-synthesis, the context loop
    (every other network call + entropy decoding), entropy alone, and the rest of the wall time."""
    by_graph = stats.get("network_by_graph_s") or {}

    def graph(name):
        return sum(v for k, v in by_graph.items() if k.rsplit(".", 1)[-1] == name)

    synthesis, hyper = graph("synthesis"), graph("hyper_synthesis")
    network, entropy, total = stats["network_s"], stats["entropy_s"], stats["total_s"]
    return {
        "decode_total": total * 1e3,
        "decode_synthesis": synthesis * 1e3,
        "decode_hyper_synthesis": hyper * 1e3,
        "decode_context_loop": (network - synthesis - hyper + entropy) * 1e3,
        "decode_entropy": entropy * 1e3,
        "decode_rest": (total - network - entropy) * 1e3,
        "sequential_steps": float(stats.get("sequential_steps") or 0),
    }


def wavefront(ctx: SectionContext, repo: Path) -> dict:
    """SSMIC paper, first image: whole decode in wavefront vs raster order on the GPU (target >= 8x)."""
    from benchmarks.wavefront import TARGET

    images = find_images(ctx.options.get("kodak"), repo, 1)
    arch, preset = WAVEFRONT_MODEL
    out: dict = {"model": f"{arch}-{preset}", "images": [p.name for p in images], "target": TARGET}
    kernels, why = load_kernels(ctx)
    # the context loop has no scan: without the kernels the comparison still holds (g_a / g_s slower)
    out["ops"] = "kernels" if why is None else f"torch (kernels library not loaded: {why})"
    if not images:
        figs = {k: not_measured(u, "no Kodak images found") for k, u in WAVEFRONT_UNITS.items()}
    else:
        figs = ctx.measure_many(WAVEFRONT_UNITS, lambda: run_wavefront(arch, preset, kernels, images[0]), need_s=10)
    out.update(figs)
    return out


def run_wavefront(arch, preset, kernels, image, device="cuda", parse_path="torch-cuda", repeats=3) -> dict:
    from benchmarks.wavefront import compare_orders
    from runtime import Codec
    from runtime import image as img
    from train.models.seeded import codable_model

    model = codable_model(arch, preset)
    with kernel_ops(kernels) if kernels is not None else contextlib.nullcontext():
        codecs = {
            o: Codec.from_model(model, device=device, parse_path=parse_path, context_order=o)
            for o in ("wavefront", "raster")
        }
        pixels = img.load(image)
        codecs["wavefront"].decode(codecs["wavefront"].encode(pixels))  # warm-up
        res = compare_orders(codecs.__getitem__, pixels, repeats=repeats)
    return {
        "wavefront_decode": res["wavefront"]["decode_s"] * 1e3,
        "raster_decode": res["raster"]["decode_s"] * 1e3,
        "speedup": res["speedup"],
        "context_loop_speedup": res["context_loop_speedup"],
        "wavefront_steps": res["wavefront"]["steps"],
        "raster_steps": res["raster"]["steps"],
        "max_abs_pixel_diff": res["max_abs_diff"],
    }
