"""TensorRT-RTX on the GPU machine: reassemble the carried libs wheel, install it under the system temp folder, then for every
graph of the carried tiny bundles build an engine on the device, deserialize the CPU-built engine (if the
bundle has one), run both on random inputs and compare with ONNX Runtime CPU.  Every step's outcome (the
error text when it fails) goes into the JSON; a step that cannot run leaves its figures "not measured".

The 95 MB ``tensorrt_rtx_cu13_libs`` wheel does not fit one device call (64 MiB carried per call), so
``prepare.sh`` splits it: ``.rtx/p1/`` (chunk 1) travels with the suite's call, whose first step stashes it in
``<temp>/lictrt-rtx`` on the device (``tempfile.gettempdir()``); ``.rtx/p2/`` (chunk 2, the bindings wheel,
``rtx-manifest.json``) and ``.rtx/bundles/`` travel in the second call, made while the machine is still warm,
which runs this section alone.  See README.md.

Run by the suite as a subprocess (a crash inside TensorRT-RTX cannot take the suite down):
``python -m benchmarks.gpu.rtx --out part.json [--rtx-dir .rtx] [--stash DIR] [--bundles DIR]``
``python -m benchmarks.gpu.rtx --stash-only``: copy ``.rtx/p1/*`` into the stash and exit (first call).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from runtime import native_ops
from runtime.files import write_atomic

from .schema import error_text, figure, not_measured

MANIFEST = "rtx-manifest.json"
DEFAULT_STASH = str(Path(tempfile.gettempdir()) / "lictrt-rtx")
PROFILE_P = (1, 16, 256)  # context_step's position count P: min, opt, max


class RtxError(RuntimeError):
    """A step of the TensorRT-RTX section failed; the message is recorded."""


# ---------------------------------------------------------------------------------------------- chunks
def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def split_file(path: Path, dest_dirs: list[Path], first_bytes: int) -> dict:
    """Split ``path`` into two chunks (the first ``first_bytes`` long) written to ``dest_dirs[0]`` and
    ``dest_dirs[1]``; returns the manifest (also written into both folders)."""
    path = Path(path)
    size = path.stat().st_size
    if not 0 < first_bytes < size:
        raise RtxError(f"first chunk size {first_bytes} must be between 0 and the file size {size}")
    manifest = {"wheel": path.name, "bytes": size, "sha256": sha256(path), "parts": []}
    with open(path, "rb") as f:
        for i, (d, n) in enumerate(zip(dest_dirs, (first_bytes, size - first_bytes)), start=1):
            d.mkdir(parents=True, exist_ok=True)
            part = d / f"{path.name}.part{i}"
            with open(part, "wb") as g:
                left = n
                while left:
                    block = f.read(min(left, 1 << 20))
                    g.write(block)
                    left -= len(block)
            manifest["parts"].append({"name": part.name, "bytes": n, "sha256": sha256(part)})
    for d in dest_dirs:
        (d / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def find_part(name: str, folders: list[Path]) -> Path | None:
    for d in folders:
        p = Path(d) / name
        if p.is_file():
            return p
    return None


def reassemble(manifest: dict, folders: list[Path], out_dir: Path) -> Path:
    """Concatenate the parts found in ``folders`` (each checked by sha256) into ``out_dir/<wheel>``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / manifest["wheel"]
    if target.is_file() and sha256(target) == manifest["sha256"]:
        return target
    parts = []
    for part in manifest["parts"]:
        p = find_part(part["name"], folders)
        if p is None:
            raise RtxError(
                f"chunk {part['name']} not found in {', '.join(map(str, folders))} "
                "(was the first call made, and the machine still warm for the second?)"
            )
        if p.stat().st_size != part["bytes"] or sha256(p) != part["sha256"]:
            raise RtxError(f"chunk {p} is damaged (size or sha256 differs from the manifest)")
        parts.append(p)

    def join(g):
        digest = hashlib.sha256()
        for p in parts:
            with open(p, "rb") as f:
                while block := f.read(1 << 20):
                    digest.update(block)
                    g.write(block)
        if digest.hexdigest() != manifest["sha256"]:  # raised inside the writer: the target is left as it was
            raise RtxError("reassembled wheel's sha256 differs from the manifest")

    return write_atomic(target, join)


def stash(rtx_dir: Path, stash_dir: Path) -> list[str]:
    """First call: copy the chunk-1 folder's files into the stash (kept while the machine stays warm)."""
    src = rtx_dir / "p1"
    if not src.is_dir():
        raise RtxError(f"{src} not found: run benchmarks/gpu/prepare.sh here and carry .rtx/p1")
    stash_dir.mkdir(parents=True, exist_ok=True)
    copied = []
    for f in sorted(src.iterdir()):
        if f.is_file():
            shutil.copy2(f, stash_dir / f.name)
            copied.append(f.name)
    return copied


def install(wheels: list[Path], site: Path) -> None:
    """pip-install the wheels (no index, no deps) into ``site`` and add a ``tensorrt_rtx`` shim package, as
    the PyPI meta-package (an sdist) would: ``from tensorrt_rtx_bindings import *``."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-index",
        "--no-deps",
        "--no-compile",
        "--no-cache-dir",
        "--upgrade",
        "--target",
        str(site),
    ] + [str(w) for w in wheels]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RtxError(f"pip install failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
    shim = site / "tensorrt_rtx"
    shim.mkdir(exist_ok=True)
    (shim / "__init__.py").write_text(
        "from tensorrt_rtx_bindings import *  # noqa: F401,F403\n"
        "from tensorrt_rtx_bindings import __version__  # noqa: F401\n"
    )


# ---------------------------------------------------------------------------------------------- engines
def onnx_inputs(onnx_path: Path) -> dict:
    """``{"inputs": [{"name", "shape"}]}`` read from the ONNX file itself (the manifest may name a dim that the
    file fixes): a positive ``dim_value`` stays a number, anything else becomes its ``dim_param`` (or "?")."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    inputs = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        dims = [d.dim_value if d.dim_value > 0 else (d.dim_param or "?") for d in vi.type.tensor_type.shape.dim]
        inputs.append({"name": vi.name, "shape": dims})
    return {"inputs": inputs}


def _shapes(graph: dict) -> dict[str, tuple]:
    """Input name -> (min, opt, max) shapes; the only symbolic dim a fixed-size bundle has is P."""
    out = {}
    for inp in graph["inputs"]:
        dims = [[d] * 3 if isinstance(d, int) else list(PROFILE_P) for d in inp["shape"]]
        out[inp["name"]] = tuple(tuple(d[i] for d in dims) for i in range(3))
    return out


def recording_logger(trt):
    """A TensorRT logger that keeps error messages, so a failure is recorded with TensorRT's own words."""

    class Recorder(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity, msg):
            if severity in (trt.ILogger.Severity.ERROR, trt.ILogger.Severity.INTERNAL_ERROR):
                self.errors.append(str(msg).splitlines()[0][:400])

        def last(self) -> str:
            return f"; TensorRT: {self.errors[-1]}" if self.errors else ""

    return Recorder()


def build(trt, onnx_path: Path, shapes: dict) -> bytes:
    """export.trt's engine build with TensorRT-RTX, failures carrying TensorRT's own last error message."""
    from export.trt import Backend, TrtError, build_engine

    try:
        return build_engine(
            Backend("rtx", trt, getattr(trt, "__version__", "?")), onnx_path, shapes, logger=recording_logger(trt)
        )
    except TrtError as exc:
        raise RtxError(str(exc)) from None


def run_engine(trt, blob: bytes, feeds: dict, iters: int = 50):
    """Deserialize ``blob``, run it on ``feeds`` (numpy, opt shapes) with torch CUDA buffers; returns
    (outputs as numpy, median ms over CUDA events)."""
    import numpy as np
    import torch

    from .timing import time_cuda

    logger = recording_logger(trt)
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(blob)
    if engine is None:
        raise RtxError(f"deserialize_cuda_engine returned None{logger.last()}")
    context = engine.create_execution_context()
    if context is None:
        raise RtxError(f"create_execution_context returned None{logger.last()}")
    dtypes = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16}
    tensors, outputs = {}, {}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        dtype = dtypes.get(engine.get_tensor_dtype(name))
        if dtype is None:
            raise RtxError(f"tensor {name} has unsupported type {engine.get_tensor_dtype(name)}")
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            tensors[name] = torch.from_numpy(np.ascontiguousarray(feeds[name], dtype=np.float32)).cuda().to(dtype)
            context.set_input_shape(name, tuple(tensors[name].shape))
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        if engine.get_tensor_mode(name) != trt.TensorIOMode.INPUT:
            shape = tuple(context.get_tensor_shape(name))
            dtype = dtypes[engine.get_tensor_dtype(name)]
            outputs[name] = tensors[name] = torch.full(shape, float("nan"), dtype=dtype, device="cuda")
    for name, t in tensors.items():
        context.set_tensor_address(name, t.data_ptr())
    stream = torch.cuda.current_stream()

    def once():
        if not context.execute_async_v3(stream.cuda_stream):
            raise RtxError(f"execute_async_v3 returned False{logger.last()}")

    once()
    torch.cuda.synchronize()
    result = {k: v.float().cpu().numpy() for k, v in outputs.items()}
    t = time_cuda([once], warmup=5, iters=iters, deadline=time.monotonic() + 10)
    return result, t["median_ms"]


def ort_outputs(onnx_path: Path, feeds: dict) -> dict:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 4
    native_ops.register_onnxruntime(so)
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def rel_err(a, ref) -> float:
    import numpy as np

    a, ref = np.asarray(a, np.float64), np.asarray(ref, np.float64)
    if a.shape != ref.shape:
        raise RtxError(f"output shape {a.shape} != ONNX Runtime's {ref.shape}")
    if not np.isfinite(a).all():
        raise RtxError("engine output has non-finite values (unwritten or NaN)")
    return float(np.abs(a - ref).max() / max(np.abs(ref).max(), 1e-30))


def _feeds(graph: dict, seed: int) -> dict:
    import numpy as np

    rng = np.random.default_rng(seed)
    feeds = {}
    for inp in graph["inputs"]:
        shape = [d if isinstance(d, int) else PROFILE_P[1] for d in inp["shape"]]
        a = rng.random(shape, dtype=np.float32) if inp["name"] == "x" else rng.standard_normal(shape, dtype=np.float32)
        feeds[inp["name"]] = a
    return feeds


def run_section(rtx_dir: Path, stash_dir: Path, bundles_dir: Path, save, seconds: float = 1e9) -> dict:
    """The whole section within ``seconds``; ``save(doc)`` is called after every step so a crash or a kill
    keeps what was recorded.  Device builds (slow for VSS graphs) stop when under 30 s are left; running the
    CPU-built engines continues."""
    end = time.monotonic() + seconds
    doc: dict = {"steps": {}, "graphs": {}}

    def step(name, fn):
        t0 = time.monotonic()
        try:
            detail = fn()
            doc["steps"][name] = {"ok": True, "seconds": round(time.monotonic() - t0, 2), "detail": detail}
            return True
        except Exception as exc:
            doc["steps"][name] = {"ok": False, "seconds": round(time.monotonic() - t0, 2), "error": error_text(exc)}
            return False
        finally:
            save(doc)

    folders = [rtx_dir / "p2", rtx_dir / "p1", stash_dir]
    state: dict = {}

    def reassemble_step():
        mpath = find_part(MANIFEST, folders)
        if mpath is None:
            raise RtxError(
                f"{MANIFEST} not found in {', '.join(map(str, folders))}: carry .rtx/p2 "
                "(made by benchmarks/gpu/prepare.sh)"
            )
        manifest = json.loads(mpath.read_text())
        state["wheel"] = reassemble(manifest, folders, stash_dir / "wheels")
        return {"wheel": manifest["wheel"], "bytes": manifest["bytes"]}

    def install_step():
        bindings = sorted((rtx_dir / "p2").glob("tensorrt_rtx_cu13_bindings-*.whl"))
        if not bindings:
            raise RtxError(f"no tensorrt_rtx_cu13_bindings wheel in {rtx_dir / 'p2'}")
        site = stash_dir / "site"
        install([state["wheel"], bindings[-1]], site)
        sys.path.insert(0, str(site))
        return {"site": str(site), "bindings": bindings[-1].name}

    def import_step():
        import tensorrt_rtx as trt

        state["trt"] = trt
        return {"version": getattr(trt, "__version__", "?")}

    if not (
        step("reassemble_libs_wheel", reassemble_step) and step("install", install_step) and step("import", import_step)
    ):
        return doc
    trt = state["trt"]
    bundles = (
        sorted(p for p in Path(bundles_dir).glob("*") if (p / "manifest.json").is_file())
        if Path(bundles_dir).is_dir()
        else []
    )
    if not bundles:
        doc["steps"]["bundles"] = {"ok": False, "error": f"no bundles under {bundles_dir} (prepare.sh makes them)"}
        save(doc)
        return doc
    for bundle in bundles:
        manifest = json.loads((bundle / "manifest.json").read_text())
        for gname, graph in manifest["graphs"].items():
            key = f"{bundle.name}/{gname}"
            rec = doc["graphs"][key] = {"onnx": graph["file"]}
            try:
                io = onnx_inputs(bundle / graph["file"])
            except Exception as exc:
                rec["onnx_error"] = error_text(exc)
                save(doc)
                continue
            rec["inputs"] = io["inputs"]
            feeds = _feeds(io, seed=len(key))
            try:
                ref = ort_outputs(bundle / graph["file"], feeds)
            except Exception as exc:
                ref, rec["ort_error"] = None, error_text(exc)
            engines = {}
            t0 = time.monotonic()
            if end - t0 < 30:
                rec["device_build"] = {"ok": False, "error": "skipped: under 30 s of the section's budget left"}
            else:
                try:
                    engines["device_built"] = build(trt, bundle / graph["file"], _shapes(io))
                    rec["device_build"] = {"ok": True, "seconds": round(time.monotonic() - t0, 2)}
                except Exception as exc:
                    rec["device_build"] = {"ok": False, "error": error_text(exc)}
            cpu = sorted((bundle / "engines").glob(f"{gname}.rtx.*.engine")) if (bundle / "engines").is_dir() else []
            if cpu:
                engines["cpu_built"] = cpu[0].read_bytes()
                rec["cpu_built_engine"] = cpu[0].name
            else:
                rec["cpu_built_engine"] = None
            for kind in ("device_built", "cpu_built"):
                if kind not in engines:
                    rec[f"{kind}_median"] = not_measured("ms", "no engine (see device_build / cpu_built_engine)")
                    rec[f"{kind}_rel_err_vs_ort"] = not_measured("max|err|/max|ref|", "no engine")
                    continue
                try:
                    outs, ms = run_engine(trt, engines[kind], feeds)
                    rec[f"{kind}_median"] = figure(ms, "ms")
                    if ref is None:
                        rec[f"{kind}_rel_err_vs_ort"] = not_measured("max|err|/max|ref|", "ONNX Runtime failed")
                    else:
                        rec[f"{kind}_rel_err_vs_ort"] = figure(
                            max(rel_err(outs[k], ref[k]) for k in ref), "max|err|/max|ref|"
                        )
                except Exception as exc:
                    rec[f"{kind}_run_error"] = error_text(exc)
                    rec[f"{kind}_median"] = not_measured("ms", f"error: {error_text(exc)}")
                    rec[f"{kind}_rel_err_vs_ort"] = not_measured("max|err|/max|ref|", f"error: {error_text(exc)}")
            save(doc)
    return doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gpu.rtx", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="JSON file for this section's record")
    ap.add_argument("--rtx-dir", default=".rtx")
    ap.add_argument("--stash", default=DEFAULT_STASH)
    ap.add_argument("--bundles", default=".rtx/bundles")
    ap.add_argument("--stash-only", action="store_true", help="copy .rtx/p1 into the stash and exit")
    ap.add_argument("--seconds", type=float, default=1e9, help="time budget of the section")
    args = ap.parse_args(argv)
    try:
        if args.stash_only:
            print(f"stashed {stash(Path(args.rtx_dir), Path(args.stash))} in {args.stash}")
            return 0
        if not args.out:
            raise RtxError("--out is required")

        def save(doc):
            write_atomic(args.out, json.dumps(doc, indent=1))

        run_section(Path(args.rtx_dir), Path(args.stash), Path(args.bundles), save, args.seconds)
    except RtxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
