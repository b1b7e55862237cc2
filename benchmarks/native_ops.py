"""The native CPU kernels of the lictrt ops at the paper models' scale.

`python -m benchmarks native-ops [--arch ssmic --arch mambavc] [--image PATH] [--threads 2] [--work DIR] [--out-dir DIR]
 [--no-codec]`

1. Scan kernel: ``lictrt::SelectiveScan2D`` forward at SSMIC's first stage for a 768×512 image (B=1, Di=256,
   256×384, N=16), one thread: state updates per second (4·Di·N·L per call) by wall clock and by the thread's CPU
   time, next to the exp + FMA peak of the core measured by the library (the same 8-lane exp2 + FMA of one state
   update with every operand in registers).
2. Per ``--arch`` (``paper`` preset, seeded weights of ``train.models.seeded.codable_model``): checkpoint ->
   ``export.onnx.export_bundle`` (dynamic size) WITH its ONNX Runtime parity check (the image at 768×512 and a
   small random input), timed; then ``runtime.Codec`` on the ONNX Runtime backend at ``--threads``: encode and
   decode of the image (768×512), timed, and a second, profiled decode whose ONNX Runtime kernel times are split
   into the scan (SelectiveScan2D), matrix products (MatMul, Gemm, FusedMatMul, Conv, ConvTranspose) and the rest.
Wall and CPU seconds (all threads) and the peak resident memory of the export (with parity) are recorded. Writes
``<out-dir>/native_ops_<arch>.json`` per model (``native_ops_<arch>_codec.json`` with ``--reuse-bundle``: coding
only, with the bundles of an earlier run in ``--work``) and ``native_ops_scan.json``. Timings on a shared machine
are noisy: the JSON records the load average before and after each part.
"""

from __future__ import annotations

import json
import os
import resource
import tempfile
import time
from collections import defaultdict
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from benchmarks.common import REPO_ROOT, BenchmarkError, command_main, default_kodak, load_rgb
from runtime import native_ops
from runtime.cli import VerboseOpt

SCAN_SHAPE = (1, 256, 256, 384, 16, 8)  # SSMIC paper, first stage at 768x512: B, Di, H, W, N, dt rank R
MATRIX_OPS = ("MatMul", "Gemm", "FusedMatMul", "Conv", "ConvTranspose", "FusedConv", "FusedGemm")


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _cpu() -> float:
    """CPU seconds of this process so far, all threads (on a shared machine wall time also counts others' work)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def reset_peak_rss() -> bool:
    """Start a new peak-RSS window (Linux: /proc/self/clear_refs); False where the process peak cannot be reset."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_gb() -> float:
    """Peak resident memory of this process in GB: since the last :func:`reset_peak_rss` (VmHWM), else since start."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def scan_throughput(repeats: int = 3) -> dict:
    """SelectiveScan2D forward at SCAN_SHAPE on one thread, and the exp + FMA peak (state updates / s)."""
    import torch

    from train.layers import native_scan
    from trt_plugins.reference import scan_inputs

    B, Di, H, W, N, R = SCAN_SHAPE
    inputs = scan_inputs(B, Di, H, W, N, seed=0, device="cpu", R=R)
    updates = 4 * B * Di * H * W * N
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    wall, cpu = [], []
    load0 = _load()
    try:
        native_scan.scan_forward(*inputs)
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.thread_time()
            native_scan.scan_forward(*inputs)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.thread_time() - c0)
    finally:
        torch.set_num_threads(old)
    lib = native_ops.library()
    iters = 10_000_000
    c0 = time.thread_time()
    lib.lictrt_cpu_exp_fma_peak(iters)
    peak_cpu = time.thread_time() - c0
    return {
        "shape": dict(zip(("B", "Di", "H", "W", "N", "R"), SCAN_SHAPE)),
        "simd": native_ops.simd_enabled(),
        "state_updates_per_call": updates,
        "wall_s": wall,
        "cpu_s": cpu,
        "updates_per_s_per_thread_wall": updates / min(wall),
        "updates_per_s_per_thread_cpu": updates / min(cpu),
        "exp_fma_peak_updates_per_s_cpu": iters * 64 / peak_cpu,
        "fraction_of_peak_cpu": (updates / min(cpu)) / (iters * 64 / peak_cpu),
        "load_average": [load0, _load()],
    }


def _profile_split(files: list[str]) -> dict:
    by_op: dict[str, float] = defaultdict(float)
    for f in files:
        with open(f) as fh:
            for e in json.load(fh):
                if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
                    by_op[e["args"].get("op_name", "?")] += e.get("dur", 0) / 1e6
        os.remove(f)
    scan = by_op.get("SelectiveScan2D", 0.0)
    matrix = sum(v for k, v in by_op.items() if k in MATRIX_OPS)
    rest = sum(by_op.values()) - scan - matrix
    top = dict(sorted(by_op.items(), key=lambda kv: -kv[1])[:12])
    return {"scan_s": scan, "matrix_products_s": matrix, "rest_s": rest, "by_op_type_s": top}


def run_model(arch: str, image: Path, threads: int, work: Path, codec: bool = True, export: bool = True) -> dict:
    import torch

    from export.onnx import export_bundle
    from runtime import Codec
    from runtime.image import psnr
    from train.checkpoint import save_checkpoint
    from train.models.seeded import codable_model

    res: dict = {
        "arch": arch,
        "preset": "paper",
        "weights": "seeded (train.models.seeded.codable_model, seed 0)",
        "image": image.name,
        "threads": threads,
        "native_ops": native_ops.has_onnxruntime_ops(),
        "machine": f"shared {os.cpu_count()}-core machine (other jobs running; see load_average)",
    }
    ckpt = work / f"{arch}_paper.pth"
    if not ckpt.is_file():
        save_checkpoint(ckpt, codable_model(arch, "paper", seed=0), lmbda=0.01, metric="mse", step=0, epoch=0)
    bundle = work / f"{arch}_paper.bundle"
    torch.set_num_threads(threads)
    load0 = _load()
    windowed = reset_peak_rss()
    t0, c0 = time.perf_counter(), _cpu()
    out = export_bundle(ckpt, bundle, check=True, progress=False) if export else None  # else: the bundle in --work
    res["export"] = (
        None
        if out is None
        else {
            "seconds": time.perf_counter() - t0,
            "cpu_s": _cpu() - c0,
            "peak_rss_gb": peak_rss_gb(),
            "peak_rss_scope": "export + parity" if windowed else "process so far",
            "parity_checked": True,
            "parity": [
                {"graph": r.graph, "input": r.input, "output": r.output, "rel": r.rel, "tol": r.tol, "ok": r.ok}
                for r in out["parity"]
            ],
            "parity_ok": all(r.ok for r in out["parity"]),
            "load_average": [load0, _load()],
        }
    )
    if codec:
        im = load_rgb(image)
        h, w = im.shape[:2]
        im = im[(h - 512) // 2 : (h - 512) // 2 + 512, (w - 768) // 2 : (w - 768) // 2 + 768] if h <= w else im
        c = Codec.open(bundle, backend="onnxruntime", threads=threads)
        load0 = _load()
        t0, c0 = time.perf_counter(), _cpu()
        data = c.encode(im)
        enc, enc_cpu = time.perf_counter() - t0, _cpu() - c0
        enc_stats = dict(c.last_stats)
        t0, c0 = time.perf_counter(), _cpu()
        rec = c.decode(data)
        dec, dec_cpu = time.perf_counter() - t0, _cpu() - c0
        dec_stats = dict(c.last_stats)
        # a second decode with ONNX Runtime profiling on every session (fresh sessions: new Codec)
        p = Codec.open(bundle, backend="onnxruntime", threads=threads)
        prefix = str(work / f"prof_{arch}")
        for b in [p.recon, *p.parse_backends.values()]:
            b.profile_prefix = prefix
        rec2 = p.decode(data)
        files = [f for b in [p.recon, *p.parse_backends.values()] for f in b.end_profiling()]
        res.update(
            {
                "size": [int(im.shape[0]), int(im.shape[1])],
                "bytes": len(data),
                "psnr": psnr(im, rec),
                "encode_s": enc,
                "decode_s": dec,
                "encode_cpu_s": enc_cpu,
                "decode_cpu_s": dec_cpu,
                "encode_stats": enc_stats,
                "decode_stats": dec_stats,
                "decode_split_profiled": _profile_split(files),
                "profiled_decode_identical": bool(np.array_equal(rec, rec2)),
                "codec_load_average": [load0, _load()],
            }
        )
    res["peak_rss_gb"] = max(peak_rss_gb(), (res["export"] or {}).get("peak_rss_gb", 0.0))  # the whole run
    return res


class Arch(str, Enum):
    ssmic = "ssmic"
    mambavc = "mambavc"


def cli(
    arch: Annotated[
        Optional[list[Arch]], typer.Option(help="paper model(s) to measure; repeat (default: both)")
    ] = None,
    image: Annotated[
        Optional[Path], typer.Option(metavar="PNG", help="image to code (default ../shared/data/kodak/kodim01.png)")
    ] = None,
    threads: Annotated[int, typer.Option(metavar="N", help="ONNX Runtime threads of the codec runs")] = 2,
    work: Annotated[
        Optional[Path], typer.Option(metavar="DIR", help="checkpoints and bundles (default: a temporary folder)")
    ] = None,
    out_dir: Annotated[
        Optional[Path], typer.Option(metavar="DIR", help="where the JSON results go (default benchmarks/results)")
    ] = None,
    no_codec: Annotated[bool, typer.Option("--no-codec", help="export + parity only")] = False,
    skip_scan: Annotated[bool, typer.Option("--skip-scan", help="leave out the scan kernel throughput")] = False,
    reuse_bundle: Annotated[
        bool, typer.Option("--reuse-bundle", help="code with the bundles already in --work (no export)")
    ] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Native CPU kernels at the paper models' scale: scan throughput, SSMIC/MambaVC export + parity + coding.

    Writes native_ops_<arch>.json per model and native_ops_scan.json into --out-dir."""
    archs = [a.value for a in arch] if arch else ["ssmic", "mambavc"]
    image = image or default_kodak() / "kodim01.png"
    out_dir = out_dir or REPO_ROOT / "benchmarks" / "results"
    if not native_ops.has_onnxruntime_ops():
        raise BenchmarkError(f"the native ONNX Runtime ops are not available ({native_ops.library_path()})")
    if not image.is_file():
        raise BenchmarkError(f"image not found: {image}")
    out_dir.mkdir(parents=True, exist_ok=True)
    if not skip_scan:
        scan = scan_throughput()
        (out_dir / "native_ops_scan.json").write_text(json.dumps(scan, indent=1) + "\n")
        print(
            f"scan: {scan['updates_per_s_per_thread_cpu'] / 1e9:.2f} G state updates/s/thread (CPU time; "
            f"{scan['updates_per_s_per_thread_wall'] / 1e9:.2f} wall), exp+FMA peak "
            f"{scan['exp_fma_peak_updates_per_s_cpu'] / 1e9:.2f} G/s"
        )
    with tempfile.TemporaryDirectory() as tmp:
        work = work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for name in archs:
            res = run_model(name, image, threads, work, codec=not no_codec, export=not reuse_bundle)
            res["image"] = image.name  # the file name only: no machine paths in results
            out = f"native_ops_{name}_codec.json" if reuse_bundle else f"native_ops_{name}.json"
            (out_dir / out).write_text(json.dumps(res, indent=1, default=str) + "\n")
            ex = res["export"]
            line = f"{name} paper: " + (
                f"export + parity {ex['seconds']:.0f} s, {ex['cpu_s']:.0f} CPU s, peak RSS {ex['peak_rss_gb']:.2f} GB"
                f" (parity ok: {ex['parity_ok']})"
                if ex
                else "bundle reused"
            )
            if "decode_s" in res:
                sp = res["decode_split_profiled"]
                line += (
                    f"; encode {res['encode_s']:.1f} s, decode {res['decode_s']:.1f} s (profiled: scan "
                    f"{sp['scan_s']:.1f}, matrix products {sp['matrix_products_s']:.1f}, rest {sp['rest_s']:.1f})"
                )
            print(line + f"; peak RSS {res['peak_rss_gb']:.2f} GB")


def main(argv: list[str] | None = None) -> int:
    return command_main("native-ops", argv)
