"""Kodak decode on CPU: the runtime (ONNX Runtime + our coder) vs CompressAI ``decompress``, same checkpoint, one run.

`python -m benchmarks kodak-decode [--checkpoint CKPT] [--quality 3] [--data DIR] [--images N] [--threads T]
 [--repeats R] [--mode fast|compat] [--variants] [--cache DIR] [--json PATH] [--verbose]`

Model: a bmshj2018-hyperprior checkpoint (``--checkpoint``), else a seeded model at ``--quality`` (3: N=128,
M=192) with RANDOM weights, nudged by ``train.models.seeded.codable_model`` (analysis output scaled up so symbols
are not all zero, σ biases spread over the scale table); the output says which. The model is exported
once (``export.onnx.export_bundle``, default graph passes) into a cache directory keyed by its weights
and the exporter's source.

Per image: the runtime encodes it to a ``.lic`` stream and CompressAI ``compress`` gives its strings; then, in one
loop of ``--repeats`` rounds, the runtime ``Codec.decode`` of its stream, CompressAI's decode steps timed one by
one (``entropy_bottleneck.decompress``, ``h_s``, ``build_indexes``, ``gaussian_conditional.decompress``,
``g_s`` + clamp, exactly as ``decompress`` does them) and ``model.decompress`` itself alternate; medians per
image. Both sides run at ``--threads`` (``torch.set_num_threads`` and ONNX Runtime intra-op threads for the
reconstruction graph; the runtime's parse-critical hyper-synthesis stays on its pinned 1-thread path). Split:
network = hyper-synthesis + synthesis, entropy = the coder calls; the rest (index building, dequantization,
container, image conversion) is "other". Both decodes must give the same PSNR within 0.01 dB.

The ratio is CompressAI ``decompress`` time / runtime decode time: the median of the per-image ratios, and the
ratio of the totals. ``--variants`` adds a synthesis-only study on the first image's ŷ: torch ``g_s`` vs the
exported synthesis graph as ConvTranspose / sub-pixel "phases" / "fused" (export/passes.py), each at
ORT_ENABLE_BASIC and ORT_ENABLE_ALL, timed round-robin in the same run.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Optional

import numpy as np
import typer

from benchmarks.common import (
    REPO_ROOT,
    BenchmarkError,
    CacheOpt,
    DataOpt,
    ImagesOpt,
    JsonOpt,
    RepeatsOpt,
    command_main,
    default_kodak,
    emit,
    list_images,
    load_rgb,
    portable_path,
)
from runtime import native_ops
from runtime.cli import CoderMode, QuietOpt, VerboseOpt

ARCH = "bmshj2018-hyperprior"
PSNR_TOL_DB = 0.01
SEED = 0


class KodakDecodeError(BenchmarkError):
    """The benchmark cannot run (bad checkpoint, data, or the two decodes disagree)."""


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lictrt" / "kodak_decode"


# ------------------------------------------------------------------------------------------------ the model


def seeded_model(quality: int, seed: int = SEED):
    """A random-weight bmshj2018-hyperprior at ``quality``, nudged so symbols and σ indexes are non-trivial."""
    from train.models.seeded import codable_model

    return codable_model(ARCH, quality=quality, seed=seed)


def load_model(checkpoint: str | None, quality: int):
    """(model, description, random_weights)."""
    if checkpoint is None:
        m = seeded_model(quality)
        return m, f"{ARCH} quality {quality} (N={m.N}, M={m.M}), RANDOM weights (seed {SEED}; no --checkpoint)", True
    from train.checkpoint import CheckpointError, load_checkpoint

    try:
        m, meta = load_checkpoint(checkpoint)
    except CheckpointError as e:
        raise KodakDecodeError(str(e)) from None
    if meta.get("arch") != ARCH:
        raise KodakDecodeError(f"checkpoint {checkpoint} is '{meta.get('arch')}', this benchmark needs {ARCH}")
    return m.eval().requires_grad_(False), f"{ARCH} (N={m.N}, M={m.M}) from {checkpoint}", False


def cache_key(model) -> str:
    """A short hash of the model's state (names, shapes, bytes) and of the exporter's source: the cache key."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(str(tuple(v.shape)).encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    for f in sorted((REPO_ROOT / "export").glob("*.py")):  # a changed pass or function body means a new export
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def cached_bundle(model, cache: Path, progress: bool = True) -> tuple[Path, bool]:
    """Export ``model`` once into ``cache/<weights key>/``; returns (bundle dir, reused)."""
    from train.checkpoint import save_checkpoint

    d = Path(cache) / cache_key(model)
    bundle = d / "bundle"
    if (bundle / "manifest.json").is_file():
        return bundle, True
    d.mkdir(parents=True, exist_ok=True)
    ck = d / "model.pth"
    save_checkpoint(ck, model, lmbda=0.0, metric="mse", step=0, epoch=0)
    from export.onnx import export_bundle

    export_bundle(ck, bundle, check=False, progress=progress)
    return bundle, False


# ------------------------------------------------------------------------------------------------ timing


def _median(v) -> float:
    return float(np.median(np.asarray(v, dtype=np.float64)) * 1e3)


def compressai_steps(model, strings, shape):
    """CompressAI's decompress, step by step (same calls, same order); returns (x_hat, seconds per step)."""
    t = [time.perf_counter()]
    z_hat = model.entropy_bottleneck.decompress(strings[1], shape)
    t.append(time.perf_counter())
    scales_hat = model.h_s(z_hat)
    t.append(time.perf_counter())
    indexes = model.gaussian_conditional.build_indexes(scales_hat)
    t.append(time.perf_counter())
    y_hat = model.gaussian_conditional.decompress(strings[0], indexes, z_hat.dtype)
    t.append(time.perf_counter())
    x_hat = model.g_s(y_hat).clamp_(0, 1)
    t.append(time.perf_counter())
    names = ("z_decode", "h_s", "build_indexes", "y_decode", "g_s")
    return x_hat, dict(zip(names, np.diff(t)))


def bench_image(path: Path, model, codec, repeats: int, pad: int) -> dict:
    import torch

    from runtime import image as rimg

    rgb = load_rgb(path)
    h, w = rgb.shape[:2]
    x = torch.from_numpy(rimg.to_input(rgb, pad))  # the runtime's padding, so both sides code the same tensor
    data = codec.encode(rgb)
    with torch.no_grad():
        comp = model.compress(x)
    strings, shape = comp["strings"], comp["shape"]
    rt = {k: [] for k in ("total", "hyper_synthesis", "synthesis", "entropy")}
    ca = {k: [] for k in ("z_decode", "h_s", "build_indexes", "y_decode", "g_s", "decompress")}
    # one untimed round first: the first calls pay for kernel selection and allocation on both sides
    codec.decode(data)
    with torch.no_grad():
        compressai_steps(model, strings, shape)
        model.decompress(strings, shape)
    rt_img = ca_img = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        rt_img = codec.decode(data)
        rt["total"].append(time.perf_counter() - t0)
        st = codec.last_stats
        rt["hyper_synthesis"].append(st["network_by_graph_s"].get("hyper_synthesis", 0.0))
        rt["synthesis"].append(st["network_by_graph_s"].get("synthesis", 0.0))
        rt["entropy"].append(st["entropy_s"])
        with torch.no_grad():
            x_steps, steps = compressai_steps(model, strings, shape)
            for k, v in steps.items():
                ca[k].append(v)
            t0 = time.perf_counter()
            x_dec = model.decompress(strings, shape)["x_hat"]
            ca["decompress"].append(time.perf_counter() - t0)
        if float((x_steps - x_dec).abs().max()) > 1e-6:
            raise KodakDecodeError(f"{path.name}: the timed CompressAI steps do not reproduce decompress()")
        ca_img = rimg.from_output(x_dec.numpy(), h, w, pad)
    r = {k: _median(v) for k, v in rt.items()}
    c = {k: _median(v) for k, v in ca.items()}
    rt_row = {
        "decode_ms": r["total"],
        "network_ms": r["hyper_synthesis"] + r["synthesis"],
        "hyper_synthesis_ms": r["hyper_synthesis"],
        "synthesis_ms": r["synthesis"],
        "entropy_ms": r["entropy"],
    }
    rt_row["other_ms"] = rt_row["decode_ms"] - rt_row["network_ms"] - rt_row["entropy_ms"]
    ca_row = {
        "decompress_ms": c["decompress"],
        "steps_ms": sum(c[k] for k in ("z_decode", "h_s", "build_indexes", "y_decode", "g_s")),
        "network_ms": c["h_s"] + c["g_s"],
        "hyper_synthesis_ms": c["h_s"],
        "synthesis_ms": c["g_s"],
        "entropy_ms": c["z_decode"] + c["y_decode"],
        "build_indexes_ms": c["build_indexes"],
    }
    p_rt, p_ca = rimg.psnr(rgb, rt_img), rimg.psnr(rgb, ca_img)
    return {
        "image": path.name,
        "size": [h, w],
        "bpp_runtime": 8.0 * len(data) / (h * w),
        "bpp_compressai": 8.0 * sum(len(s[0]) for s in strings) / (h * w),
        "runtime": rt_row,
        "compressai": ca_row,
        "ratio": c["decompress"] / r["total"],
        "psnr_runtime": p_rt,
        "psnr_compressai": p_ca,
        "psnr_diff_db": abs(p_rt - p_ca),
        "psnr_agree": abs(p_rt - p_ca) <= PSNR_TOL_DB,
    }


# ------------------------------------------------------------------------------------------------ variants


def synthesis_variants(
    model, y_hat: np.ndarray, threads: int, repeats: int, cache: Path, progress: bool = True
) -> list[dict]:
    """Synthesis alone on the same ŷ, round-robin: torch g_s and the exported graph in each form × ORT level."""
    import onnx
    import onnxruntime as ort
    import torch

    from export.passes import optimize_reconstruction
    from export.stages import build_stages

    raw = cache / "synthesis.convtranspose.onnx"
    if not raw.is_file():
        from export.onnx import export_stage

        st = next(s for s in build_stages(model, "hyperprior") if s.name == "synthesis")
        export_stage(st, model, raw, (128, 192), True, graph_passes=None)
    feeds = {"y_hat": np.ascontiguousarray(y_hat, dtype=np.float32)}
    yt = torch.from_numpy(feeds["y_hat"])
    with torch.no_grad():
        ref = model.g_s(yt).numpy()
    runs = {}

    def torch_gs():
        with torch.no_grad():
            return model.g_s(yt)

    runs["torch g_s"] = torch_gs
    for form in ("convtranspose", "phases", "fused"):
        mp = onnx.load(str(raw))
        if form != "convtranspose":
            optimize_reconstruction(mp, form)
        for level in ("ORT_ENABLE_BASIC", "ORT_ENABLE_ALL"):
            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
            so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
            so.log_severity_level = 3
            native_ops.register_onnxruntime(so)
            s = ort.InferenceSession(mp.SerializeToString(), so, providers=["CPUExecutionProvider"])
            out = s.run(None, feeds)[0]
            err = float(np.abs(out - ref).max() / max(np.abs(ref).max(), 1e-12))
            if err > 1e-4:
                raise KodakDecodeError(f"synthesis variant {form}/{level} differs from torch g_s (rel {err:.1e})")
            runs[f"{form} {level[4:]}"] = lambda s=s: s.run(None, feeds)
    times = {k: [] for k in runs}
    from tqdm import tqdm

    for _ in tqdm(
        range(repeats), desc="synthesis variants", unit="round", file=sys.stderr, leave=False, disable=not progress
    ):
        for k, f in runs.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    base = _median(times["torch g_s"])
    return [
        {"variant": k, "median_ms": _median(v), "min_ms": float(np.min(v) * 1e3), "speedup_vs_torch": base / _median(v)}
        for k, v in times.items()
    ]


# ------------------------------------------------------------------------------------------------ driver


def run(args) -> dict:
    import torch
    from tqdm import tqdm

    from runtime import Codec

    if args.threads < 1 or args.repeats < 1 or (args.images is not None and args.images < 1):
        raise KodakDecodeError("--threads, --repeats and --images must be >= 1")
    data = Path(args.data) if args.data else default_kodak()
    images = list_images(data, args.images)
    torch.set_num_threads(args.threads)
    model, described, random_weights = load_model(args.checkpoint, args.quality)
    cache = Path(args.cache) if args.cache else default_cache()
    bundle, reused = cached_bundle(model, cache, progress=not args.quiet)
    codec = Codec.open(bundle, backend="onnxruntime", threads=args.threads, mode=args.mode)
    pad = codec.bundle.pad_multiple
    rows = []
    for p in tqdm(images, desc="kodak decode", unit="image", file=sys.stderr, disable=args.quiet):
        rows.append(bench_image(p, model, codec, args.repeats, pad))
    rt_tot = sum(r["runtime"]["decode_ms"] for r in rows)
    ca_tot = sum(r["compressai"]["decompress_ms"] for r in rows)
    res = {
        "benchmark": "kodak-decode",
        "model": described,
        "random_weights": random_weights,
        "arch": ARCH,
        "N": int(model.N),
        "M": int(model.M),
        "checkpoint": args.checkpoint,
        "data": portable_path(data),
        "images": len(rows),
        "threads": args.threads,
        "repeats": args.repeats,
        "coder_mode": args.mode,
        "bundle": portable_path(bundle),
        "bundle_reused": reused,
        "synthesis_graph_ops": _graph_ops(bundle / "synthesis.onnx"),
        "runtime_backend": "onnxruntime (synthesis: ORT_ENABLE_ALL, intra-op threads = --threads; "
        "hyper_synthesis: pinned path, 1 thread, ORT_ENABLE_BASIC) + lictrt coder",
        "per_image": rows,
        "total": {"runtime_ms": rt_tot, "compressai_ms": ca_tot, "ratio": ca_tot / rt_tot},
        "median_ratio": float(np.median([r["ratio"] for r in rows])),
        "psnr_agree": all(r["psnr_agree"] for r in rows),
        "psnr_tol_db": PSNR_TOL_DB,
        "versions": _versions(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for side, key in (("runtime", "decode_ms"), ("compressai", "decompress_ms")):
        res["total"][side] = {k: sum(r[side][k] for r in rows) for k in rows[0][side] if k.endswith("_ms")}
    if args.variants:
        y_hat = _first_y_hat(model, images[0], pad)
        res["synthesis_variants"] = synthesis_variants(
            model, y_hat, args.threads, args.repeats, bundle.parent, progress=not args.quiet
        )
    return res


def _first_y_hat(model, path: Path, pad: int) -> np.ndarray:
    import torch

    from runtime import image as rimg

    x = torch.from_numpy(rimg.to_input(load_rgb(path), pad))
    with torch.no_grad():
        return torch.round(model.g_a(x)).numpy()


def _graph_ops(path: Path) -> dict:
    import onnx

    counts: dict = {}
    for n in onnx.load(str(path), load_external_data=False).graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return counts


def _versions() -> dict:
    import compressai
    import onnxruntime
    import torch

    return {
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "compressai": compressai.__version__,
        "cpu_count": os.cpu_count(),
    }


def format_table(res: dict) -> str:
    lines = [
        f"model: {res['model']}",
        f"data: {res['data']} ({res['images']} images), threads {res['threads']}, median of {res['repeats']} "
        f"repeats, coder mode {res['coder_mode']}",
        f"runtime: {res['runtime_backend']}",
        "times in ms: net = hyper-synthesis + synthesis, ent = entropy decoding, oth = the rest",
        f"{'image':<12}{'bpp':>6}{'rt total':>9}{'net':>9}{'syn':>9}{'ent':>7}{'oth':>7}"
        f"{'CA decomp':>10}{'net':>9}{'g_s':>9}{'ent':>8}{'idx':>7}{'ratio':>7}{'ΔPSNR':>8}",
    ]
    for r in res["per_image"]:
        a, c = r["runtime"], r["compressai"]
        lines.append(
            f"{r['image']:<12}{r['bpp_runtime']:>6.3f}{a['decode_ms']:>9.1f}{a['network_ms']:>9.1f}"
            f"{a['synthesis_ms']:>9.1f}{a['entropy_ms']:>7.1f}{a['other_ms']:>7.1f}"
            f"{c['decompress_ms']:>10.1f}{c['network_ms']:>9.1f}{c['synthesis_ms']:>9.1f}"
            f"{c['entropy_ms']:>8.1f}{c['build_indexes_ms']:>7.1f}{r['ratio']:>6.2f}×{r['psnr_diff_db']:>8.4f}"
        )
    t = res["total"]
    a, c = t["runtime"], t["compressai"]
    lines.append(
        f"{'total':<12}{'':>6}{a['decode_ms']:>9.0f}{a['network_ms']:>9.0f}{a['synthesis_ms']:>9.0f}"
        f"{a['entropy_ms']:>7.0f}{a['other_ms']:>7.0f}{c['decompress_ms']:>10.0f}{c['network_ms']:>9.0f}"
        f"{c['synthesis_ms']:>9.0f}{c['entropy_ms']:>8.0f}{c['build_indexes_ms']:>7.0f}{t['ratio']:>6.2f}×"
    )
    lines.append(
        f"CompressAI decompress / runtime decode: median over images {res['median_ratio']:.2f}×, "
        f"total {t['ratio']:.2f}× (target ≥2×); PSNR agree within {res['psnr_tol_db']} dB: "
        f"{'yes' if res['psnr_agree'] else 'NO'}"
    )
    if res.get("random_weights"):
        lines.append("note: RANDOM weights (seeded); pass --checkpoint for a trained model")
    if res.get("synthesis_variants"):
        lines.append(f"synthesis alone on the same ŷ ({res['threads']} thread(s), round-robin, ms):")
        lines.append(f"  {'variant':<30}{'median':>9}{'min':>9}{'vs torch':>10}")
        for v in res["synthesis_variants"]:
            lines.append(f"  {v['variant']:<30}{v['median_ms']:>9.1f}{v['min_ms']:>9.1f}{v['speedup_vs_torch']:>9.2f}×")
    return "\n".join(lines)


def cli(
    checkpoint: Annotated[
        Optional[Path], typer.Option(metavar="PTH", help="bmshj2018-hyperprior checkpoint (default: seeded weights)")
    ] = None,
    quality: Annotated[int, typer.Option(help="quality of the seeded model (3: N=128, M=192)")] = 3,
    data: DataOpt = None,
    images: ImagesOpt = None,
    threads: Annotated[int, typer.Option(metavar="N", help="threads for both sides")] = 1,
    repeats: RepeatsOpt = 3,
    mode: Annotated[CoderMode, typer.Option(help="runtime coder mode")] = CoderMode.fast,
    variants: Annotated[bool, typer.Option(help="also time synthesis variants (torch / ORT forms)")] = False,
    cache: CacheOpt = None,
    json_path: JsonOpt = None,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Kodak decode on CPU: runtime (ONNX Runtime + the lictrt coder) vs CompressAI decompress, same checkpoint.

    --data defaults to ../shared/data/kodak, else assets/images/kodak; --cache to ~/.cache/lictrt/kodak_decode.
    Fails (exit 1) when the two decodes differ in PSNR."""
    args = SimpleNamespace(
        checkpoint=str(checkpoint) if checkpoint else None,
        quality=quality,
        data=str(data) if data else None,
        images=images,
        threads=threads,
        repeats=repeats,
        mode=mode.value,
        variants=variants,
        cache=str(cache) if cache else None,
        quiet=quiet,
    )
    res = run(args)
    emit(res, json_path, format_table)
    if not res["psnr_agree"]:
        bad = [r["image"] for r in res["per_image"] if not r["psnr_agree"]]
        raise KodakDecodeError(
            f"runtime and CompressAI decodes differ by more than {PSNR_TOL_DB} dB PSNR on {', '.join(bad)}"
        )


def main(argv: list[str] | None = None) -> int:
    return command_main("kodak-decode", argv)
