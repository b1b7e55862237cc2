"""Per-graph and end-to-end encode/decode latency of a codec bundle (median and p90).

`python -m benchmarks latency BUNDLE [--backend torch|onnxruntime|tensorrt] [--precision fp32|fp16]
 [--size HxW] [--iters N --warmup K] [--checkpoint CKPT] [--trtexec] [--json FILE|-]`

Per-graph: every ONNX graph of the bundle is run on random inputs of its manifest shapes at the padded size.
End to end: `runtime.Codec` encodes a real image (the first Kodak image shipped in assets, resized/cropped to
--size) to bytes and decodes it back; its `last_stats` per-stage timings are averaged alongside.
Timing: `time.perf_counter` around synchronous calls on CPU; CUDA events for the torch backend on a GPU.
`--trtexec`: when `trtexec` is on PATH, each graph is also timed by trtexec with the lictrt plugin library
(`--dynamicPlugins`) and its "GPU Compute Time" line is parsed; otherwise this says so and the TensorRT Python
API (through the runtime's tensorrt backend) is used.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from benchmarks.common import (
    REPO_ROOT,
    Backend,
    BackendOpt,
    BenchmarkError,
    CheckpointOpt,
    JsonOpt,
    SizeOpt,
    ThreadsOpt,
    command_main,
    emit,
    parse_size,
    read_manifest,
    summary,
)
from runtime import native_ops
from runtime.cli import BundleArg, VerboseOpt

BACKENDS = ("onnxruntime", "torch", "tensorrt")


class LatencyError(BenchmarkError):
    """Latency cannot be measured (backend missing, bad bundle)."""


# ------------------------------------------------------------------------------------------------- inputs


def eval_dim(dim, h: int, w: int):
    """A manifest dimension: int, or an expression in H and W ("H/16"); None when it is another symbol."""
    if isinstance(dim, int):
        return dim
    expr = str(dim)
    if not re.fullmatch(r"[HW0-9+\-*/() ]+", expr):
        return None
    return int(eval(expr.replace("/", "//"), {"__builtins__": {}}, {"H": h, "W": w}))  # noqa: S307 - whitelisted


def random_feeds(session, manifest_inputs: list | None, h: int, w: int, seed: int = 0) -> dict:
    """Random inputs for an ORT session: shapes from the manifest (H, W expressions) or the graph itself."""
    rng = np.random.default_rng(seed)
    spec = {i["name"]: i.get("shape") for i in (manifest_inputs or [])}
    feeds = {}
    for inp in session.get_inputs():
        dims = spec.get(inp.name) or inp.shape
        shape = []
        for d in dims:
            v = eval_dim(d, h, w) if not isinstance(d, int) else d
            shape.append(1 if v is None or v <= 0 else v)
        dtype = {"tensor(float16)": np.float16, "tensor(int64)": np.int64, "tensor(int32)": np.int32}.get(
            inp.type, np.float32
        )
        if np.issubdtype(dtype, np.integer):
            feeds[inp.name] = np.zeros(shape, dtype)
        else:
            feeds[inp.name] = rng.standard_normal(shape).astype(dtype)
    return feeds


def padded(size: tuple[int, int], multiple: int) -> tuple[int, int]:
    h, w = size
    return -(-h // multiple) * multiple, -(-w // multiple) * multiple


# ------------------------------------------------------------------------------------------------ timing


class Timer:
    """Times a callable: CUDA events when `cuda` (torch on GPU), else perf_counter around a synchronous call."""

    def __init__(self, cuda: bool = False):
        self.cuda = cuda

    def measure(self, fn, iters: int, warmup: int) -> list[float]:
        for _ in range(warmup):
            fn()
        if self.cuda:
            from benchmarks.gpu.timing import event_ms

            return [event_ms(fn)[0] / 1e3 for _ in range(iters)]
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return times


def graph_latency_ort(bundle: Path, manifest: dict, size, iters: int, warmup: int, threads: int | None) -> dict:
    """Latency of every ONNX graph of the bundle under ONNX Runtime CPU (default session options)."""
    import onnxruntime as ort

    hp, wp = padded(size, int(manifest.get("pad_multiple", 64)))
    out = {}
    for name, g in manifest.get("graphs", {}).items():
        so = ort.SessionOptions()
        so.log_severity_level = 3
        native_ops.register_onnxruntime(so)
        if threads:
            so.intra_op_num_threads = threads
        try:
            sess = ort.InferenceSession(str(bundle / g["file"]), sess_options=so, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise LatencyError(f"onnxruntime cannot load graph {name!r}: {str(exc).splitlines()[0]}") from None
        feeds = random_feeds(sess, g.get("inputs"), hp, wp)
        out[name] = summary(Timer().measure(lambda: sess.run(None, feeds), iters, warmup))
    return out


def graph_latency_backend(backend, bundle: Path, manifest: dict, size, iters: int, warmup: int, cuda: bool) -> dict:
    """Latency of every graph through a runtime backend object (`run(graph, feeds)`), e.g. torch or tensorrt."""
    import onnxruntime as ort

    hp, wp = padded(size, int(manifest.get("pad_multiple", 64)))
    out = {}
    for name, g in manifest.get("graphs", {}).items():
        sess = ort.InferenceSession(str(bundle / g["file"]), providers=["CPUExecutionProvider"])  # for shapes only
        feeds = random_feeds(sess, g.get("inputs"), hp, wp)  # numpy in, numpy out: the runtime backend contract
        out[name] = summary(Timer(cuda).measure(lambda: backend.run(name, feeds), iters, warmup))
    return out


def trtexec_latency(bundle: Path, manifest: dict, size, iters: int, warmup: int, precision: str) -> dict:
    """Time each graph with trtexec and the lictrt plugin library; raises when trtexec is absent."""
    exe = shutil.which("trtexec")
    if exe is None:
        raise LatencyError("trtexec is not on PATH")
    plugin = find_plugin_library()
    hp, wp = padded(size, int(manifest.get("pad_multiple", 64)))
    out = {}
    for name, g in manifest.get("graphs", {}).items():
        shapes = []
        for i in g.get("inputs", []):
            dims = [eval_dim(d, hp, wp) or 1 for d in i.get("shape", [])]
            if dims:
                shapes.append(f"{i['name']}:{'x'.join(str(d) for d in dims)}")
        cmd = [
            exe,
            f"--onnx={bundle / g['file']}",
            f"--iterations={iters}",
            f"--warmUp={max(warmup, 1) * 10}",
            "--useCudaGraph",
            "--noDataTransfers",
        ]
        if shapes:
            cmd.append("--shapes=" + ",".join(shapes))
        if plugin:
            cmd.append(f"--dynamicPlugins={plugin}")
        if precision == "fp16":
            cmd.append("--stronglyTyped")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise LatencyError(f"trtexec failed on {name!r}: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
        out[name] = parse_trtexec(proc.stdout)
    return out


def parse_trtexec(text: str) -> dict:
    """Parse trtexec's 'GPU Compute Time: min = a ms, max = b ms, mean = c ms, median = d ms, percentile(90%) = e ms'."""
    line = next((ln for ln in text.splitlines() if "GPU Compute Time" in ln), None)
    if line is None:
        raise LatencyError("trtexec output has no 'GPU Compute Time' line")
    vals = dict(re.findall(r"(min|max|mean|median|percentile\(90%\))\s*=\s*([0-9.eE+-]+)\s*ms", line))
    if "median" not in vals:
        raise LatencyError(f"cannot parse trtexec line: {line.strip()}")
    return {
        "median_ms": float(vals["median"]),
        "p90_ms": float(vals.get("percentile(90%)", vals["median"])),
        "mean_ms": float(vals.get("mean", vals["median"])),
        "min_ms": float(vals.get("min", vals["median"])),
        "n": None,
        "source": "trtexec",
    }


def find_plugin_library() -> str | None:
    """The lictrt TensorRT plugin library: $LICTRT_PLUGIN_LIB, else a built liblictrt_plugins*.so in the repo."""
    env = os.environ.get("LICTRT_PLUGIN_LIB")
    if env:
        return env
    for base in (REPO_ROOT / "trt_plugins", REPO_ROOT / "build"):
        if base.is_dir():
            hits = sorted(base.rglob("liblictrt*.so"))
            if hits:
                return str(hits[0])
    return None


# ------------------------------------------------------------------------------------------------ end to end


def test_image(size: tuple[int, int]) -> np.ndarray:
    """A natural image of exactly `size`: the first shipped Kodak image, centre-cropped / tiled as needed."""
    from benchmarks.common import list_images, load_rgb

    src = None
    for d in (REPO_ROOT / "assets" / "images" / "kodak", REPO_ROOT / "assets" / "images"):
        try:
            src = load_rgb(list_images(d)[0])
            break
        except BenchmarkError:
            continue
    if src is None:
        src = (np.random.default_rng(0).random((size[0], size[1], 3)) * 255).astype(np.uint8)
    h, w = size
    reps = (-(-h // src.shape[0]), -(-w // src.shape[1]), 1)
    big = np.tile(src, reps)
    return np.ascontiguousarray(big[:h, :w])


def open_codec(
    bundle: str | Path,
    backend: str,
    checkpoint: str | None = None,
    mode: str | None = None,
    context_order: str | None = None,
):
    """`runtime.Codec.open` with the benchmark's backend names; clear error when the runtime is missing."""
    try:
        from runtime import Codec
    except ImportError:
        try:
            from runtime.codec import Codec  # type: ignore
        except ImportError:
            raise LatencyError("runtime.Codec is not importable in this checkout") from None
    kwargs = {"backend": backend}
    if checkpoint:
        kwargs["checkpoint"] = checkpoint
    if mode:
        kwargs["mode"] = mode
    if context_order:
        kwargs["context_order"] = context_order
    try:
        return Codec.open(str(bundle), **kwargs)
    except (ValueError, RuntimeError, OSError) as exc:
        raise LatencyError(f"cannot open {bundle} on {backend}: {exc}") from None


def end_to_end(codec, img: np.ndarray, iters: int, warmup: int) -> dict:
    """Encode and decode latency (bytes in memory), with the runtime's per-stage stats averaged."""
    data = codec.encode(img)
    stats_enc, stats_dec = [], []

    def enc():
        codec.encode(img)
        stats_enc.append(dict(getattr(codec, "last_stats", {}) or {}))

    def dec():
        codec.decode(data)
        stats_dec.append(dict(getattr(codec, "last_stats", {}) or {}))

    t_enc = Timer().measure(enc, iters, warmup)
    t_dec = Timer().measure(dec, iters, warmup)
    return {
        "encode": summary(t_enc),
        "decode": summary(t_dec),
        "bytes": len(data),
        "encode_stages": _mean_stats(stats_enc[warmup:]),
        "decode_stages": _mean_stats(stats_dec[warmup:]),
    }


def _mean_stats(stats: list[dict]) -> dict:
    """Average the numeric leaves of `last_stats` dicts (nested dicts flattened with dots)."""
    acc: dict[str, list[float]] = {}

    def walk(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                acc.setdefault(f"{prefix}{k}", []).append(float(v))  # keys may be ints (group labels)

    for s in stats:
        walk(s)
    return {k: float(np.mean(v)) for k, v in acc.items()}


# ---------------------------------------------------------------------------------------------------- API


def measure(
    bundle: str | Path,
    backend: str = "onnxruntime",
    size=(512, 768),
    iters: int = 10,
    warmup: int = 2,
    precision: str = "fp32",
    checkpoint: str | None = None,
    use_trtexec: bool = False,
    end2end: bool = True,
    threads: int | None = None,
) -> dict:
    """Per-graph and end-to-end latency of `bundle` on `backend`; returns a JSON-ready dict."""
    if backend not in BACKENDS:
        raise LatencyError(f"unknown backend {backend!r} (use one of {', '.join(BACKENDS)})")
    if iters < 1 or warmup < 0:
        raise LatencyError("--iters must be >= 1 and --warmup >= 0")
    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    if precision != manifest.get("precision", "fp32"):
        raise LatencyError(
            f"{bundle.name} is a {manifest.get('precision', 'fp32')} bundle; precision comes from the "
            f"export (python -m export.onnx CKPT --precision {precision})"
        )
    res = {
        "bundle": str(bundle),
        "arch": manifest.get("model", {}).get("arch"),
        "backend": backend,
        "precision": precision,
        "size": list(size),
        "iters": iters,
        "warmup": warmup,
        "device": _device_name(),
        "notes": [],
    }
    cuda = False
    codec = None
    if backend == "onnxruntime":
        res["graphs"] = graph_latency_ort(bundle, manifest, size, iters, warmup, threads)
    else:
        if use_trtexec and backend == "tensorrt":
            if shutil.which("trtexec"):
                res["graphs"] = trtexec_latency(bundle, manifest, size, iters, warmup, precision)
            else:
                res["notes"].append("trtexec is not on PATH: timed through the TensorRT Python API instead")
        codec = open_codec(bundle, backend, checkpoint)
        be = _codec_backend(codec)
        if "graphs" not in res and be is not None:
            cuda = getattr(getattr(be, "device", None), "type", str(getattr(be, "device", ""))).startswith("cuda")
            res["graphs"] = graph_latency_backend(be, bundle, manifest, size, iters, warmup, cuda)
    if end2end:
        if codec is None:
            codec = open_codec(bundle, backend, checkpoint)
        res["end_to_end"] = end_to_end(codec, test_image(size), iters, warmup)
    return res


def _codec_backend(codec):
    for attr in ("recon", "backend", "_backend"):
        be = getattr(codec, attr, None)
        if be is not None and hasattr(be, "run"):
            return be
    return None


def _device_name() -> str:
    import platform

    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def format_table(res: dict) -> str:
    h, w = res["size"]
    lines = [
        f"latency of {res['arch']} at {h}x{w}, backend {res['backend']} {res['precision']} on {res['device']}"
        f" ({res['iters']} iters, {res['warmup']} warm-up)",
        f"{'stage':<26}{'median ms':>11}{'p90 ms':>10}",
    ]
    for name, s in res.get("graphs", {}).items():
        lines.append(f"{'graph ' + name:<26}{s['median_ms']:>11.2f}{s['p90_ms']:>10.2f}")
    e2e = res.get("end_to_end")
    if e2e:
        for k in ("encode", "decode"):
            lines.append(f"{'end-to-end ' + k:<26}{e2e[k]['median_ms']:>11.2f}{e2e[k]['p90_ms']:>10.2f}")
        lines.append(f"bitstream: {e2e['bytes']} bytes")
        for side in ("encode_stages", "decode_stages"):
            if e2e.get(side):
                lines.append(f"{side.replace('_', ' ')}: " + ", ".join(f"{k}={v:.4g}" for k, v in e2e[side].items()))
    lines += [f"note: {n}" for n in res.get("notes", [])]
    return "\n".join(lines)


class Precision(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"


def cli(
    bundle: BundleArg,
    backend: BackendOpt = Backend.onnxruntime,
    precision: Annotated[Precision, typer.Option(help="graph precision (fp16: TensorRT only)")] = Precision.fp32,
    size: SizeOpt = "512x768",
    iters: Annotated[int, typer.Option(metavar="N", help="timed runs per graph and end to end")] = 20,
    warmup: Annotated[int, typer.Option(metavar="N", help="untimed runs first")] = 3,
    threads: ThreadsOpt = None,
    checkpoint: CheckpointOpt = None,
    trtexec: Annotated[bool, typer.Option(help="also time each graph with trtexec when it is on PATH")] = False,
    end_to_end: Annotated[
        bool, typer.Option("--end-to-end/--no-end-to-end", help="also time Codec encode/decode of a real image")
    ] = True,
    json_path: JsonOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Per-graph and end-to-end encode/decode latency of a codec bundle (median and p90).

    Per graph: every ONNX graph on random inputs of its manifest shapes at the padded --size. End to end: the
    runtime's Codec encodes and decodes a real image resized to --size. --threads: ONNX Runtime intra-op threads
    of the per-graph timing; --checkpoint: the torch backend's weights."""
    res = measure(
        str(bundle),
        backend.value,
        parse_size(size),
        iters,
        warmup,
        precision.value,
        str(checkpoint) if checkpoint else None,
        trtexec,
        end_to_end,
        threads,
    )
    emit(res, json_path, format_table)


def main(argv: list[str] | None = None) -> int:
    return command_main("latency", argv)
