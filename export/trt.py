"""Bundle -> TensorRT engines: ``python -m export.trt BUNDLE [--precision fp32|fp16] [--plugins LIB]
[--shapes MIN:OPT:MAX] [--graphs a,b] [-q] [--verbose]``.

Backend: full TensorRT when ``import tensorrt`` works (our plugin library loaded through the registry's
``load_library``, so lictrt nodes become plugins); otherwise TensorRT-RTX (``pip install tensorrt-rtx``: no
plugins, the parser inlines the lictrt function bodies; it builds on a CPU-only machine); otherwise a clear
message.  Engines go to ``BUNDLE/engines/<graph>.<backend>.<precision>.<gpu>.engine`` and into the manifest's
``engines``.  Shapes are image sizes ``HxW``; each graph input's profile is derived from its manifest shape.
"""

from __future__ import annotations

import importlib
import re
import sys
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from export import bundle as B
from export.registry import RegistryError, load_library
from runtime.bundle import file_digest, read_manifest
from runtime.cli import new_app, run
from runtime.files import write_atomic

DEFAULT_SHAPES = "MINxMIN:512x768:1024x1536"  # MIN = the bundle's pad multiple


class TrtError(RuntimeError):
    """No TensorRT available, or parsing/building failed."""


@dataclass
class Backend:
    name: str  # "trt" | "rtx"
    mod: object
    version: str


def find_backend(prefer: str | None = None) -> Backend:
    """Full TensorRT if importable, else TensorRT-RTX; ``prefer`` ("trt"/"rtx") forces one."""
    order = [prefer] if prefer else ["trt", "rtx"]
    errors = []
    for name in order:
        modname = {"trt": "tensorrt", "rtx": "tensorrt_rtx"}[name]
        try:
            mod = importlib.import_module(modname)
        except Exception as e:  # ImportError, or OSError from missing libnvinfer
            errors.append(f"{modname}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
            continue
        return Backend(name, mod, getattr(mod, "__version__", "?"))
    raise TrtError(
        "no TensorRT found (" + "; ".join(errors) + "); install TensorRT, or `pip install "
        "tensorrt-rtx==1.7.1.116` to build plugin-free engines"
    )


def parse_shapes(text: str, pad: int) -> list[tuple[int, int]]:
    """'256x256:512x768:1024x1536' -> [(H, W)] * 3 (min, opt, max); multiples of ``pad``."""
    parts = text.replace("MIN", str(pad)).split(":")
    if len(parts) != 3:
        raise TrtError(f"bad --shapes {text!r}: expected MIN:OPT:MAX, each HxW")
    out = []
    for p in parts:
        m = re.fullmatch(r"(\d+)x(\d+)", p.strip().lower())
        if not m:
            raise TrtError(f"bad --shapes entry {p!r}: expected HxW")
        h, w = int(m.group(1)), int(m.group(2))
        if h % pad or w % pad or not h or not w:
            raise TrtError(f"--shapes {p}: H and W must be positive multiples of {pad}")
        out.append((h, w))
    if not all(a[0] <= b[0] and a[1] <= b[1] for a, b in zip(out, out[1:])):
        raise TrtError(f"--shapes {text}: need MIN <= OPT <= MAX")
    return out


def dim_value(d, H: int, W: int, which: str):
    """Concrete value of a manifest dim for image H x W; ``P`` (context positions) spans 1 .. h*w."""
    if isinstance(d, int):
        return d
    if d == "P":
        h, w = H // 16, W // 16
        return {"min": 1, "opt": max(1, min(h, (w + 2) // 3)), "max": h * w}[which]
    base, _, div = d.partition("/")
    v = H if base == "H" else W
    return v // int(div) if div else v


def profile_shapes(graph: dict, sizes: list[tuple[int, int]]) -> dict[str, tuple[tuple[int, ...], ...]]:
    return {
        inp["name"]: tuple(
            tuple(dim_value(d, H, W, which) for d in inp["shape"])
            for (H, W), which in zip(sizes, ("min", "opt", "max"))
        )
        for inp in graph["inputs"]
    }


def gpu_tag(be: Backend) -> str:
    if be.name == "rtx":
        return "portable"  # RTX AOT engines built without a GPU target CC >= 8.0 (JIT on the device)
    try:
        import torch

        if torch.cuda.is_available():
            return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(0).lower()).strip("-")
    except Exception:
        pass
    return "gpu"


def build_engine(be: Backend, onnx_path: Path, shapes: dict, verbose: bool = False, logger=None) -> bytes:
    """Parse ``onnx_path`` and build a serialized engine with one optimization profile.

    ``logger``: a TensorRT ILogger to use instead of the default; if it has ``last()`` (the last error message,
    see benchmarks/gpu/rtx.py), that is appended to a failure's message."""
    trt = be.mod
    logger = logger or trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.ERROR)
    said = getattr(logger, "last", lambda: "")
    builder = trt.Builder(logger)
    flags = 0
    if be.name == "trt" and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errs = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise TrtError(f"{onnx_path.name}: ONNX parse failed: {errs[0].splitlines()[0] if errs else '?'}{said()}")
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    for name, (mn, opt, mx) in shapes.items():
        profile.set_shape(name, mn, opt, mx)
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise TrtError(f"{onnx_path.name}: engine build failed{said() or ' (rerun with --verbose)'}")
    return bytes(plan)


def build_bundle(
    bundle: str | Path,
    *,
    precision: str | None = None,
    plugins: str | None = None,
    shapes: str | None = None,
    graphs: list[str] | None = None,
    backend: str | None = None,
    verbose: bool = False,
    progress: bool = True,
) -> dict:
    """Build an engine for each graph of ``bundle``; updates the manifest. Returns the new engine entries."""
    from tqdm import tqdm

    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    if precision is not None and precision != manifest["precision"]:
        raise TrtError(
            f"{bundle} was exported as {manifest['precision']}; TensorRT is strongly typed, so "
            f"re-export with `python -m export.onnx --precision {precision}`"
        )
    be = find_backend(backend)
    if plugins:
        if be.name != "trt":
            raise TrtError("TensorRT-RTX has no plugins: drop --plugins (the function bodies are inlined)")
        try:
            load_library(plugins, be.mod)
        except RegistryError as e:
            raise TrtError(str(e)) from None
    pad = int(manifest["pad_multiple"])
    if manifest.get("size"):
        H, W = manifest["size"]
        sizes = [(H, W)] * 3
        if shapes:
            raise TrtError(f"{bundle} has fixed size {H}x{W}; --shapes applies to dynamic bundles only")
    else:
        sizes = parse_shapes(shapes or DEFAULT_SHAPES, pad)
    names = graphs or list(manifest["graphs"])
    unknown = [g for g in names if g not in manifest["graphs"]]
    if unknown:
        raise TrtError(f"unknown graph(s) {unknown}; the bundle has {list(manifest['graphs'])}")
    out_dir = bundle / "engines"
    out_dir.mkdir(exist_ok=True)
    tag = gpu_tag(be)
    new = {}
    for g in tqdm(names, desc=f"build ({be.name} {be.version})", unit="engine", disable=not progress, file=sys.stderr):
        entry = manifest["graphs"][g]
        shp = profile_shapes(entry, sizes)
        t0 = time.time()
        plan = build_engine(be, bundle / entry["file"], shp, verbose)
        fname = f"{g}.{be.name}.{entry['precision']}.{tag}.engine"
        write_atomic(out_dir / fname, plan)
        new[fname[: -len(".engine")]] = {
            "file": f"engines/{fname}",
            "graph": g,
            "backend": be.name,
            "backend_version": be.version,
            "precision": entry["precision"],
            "gpu": tag,
            "plugins": bool(plugins),
            "profile": {k: [list(s) for s in v] for k, v in shp.items()},
            "bytes": len(plan),
            "build_seconds": round(time.time() - t0, 3),
        }
    manifest.setdefault("engines", {}).update(new)
    if manifest.get("files") is not None:  # a bundle with digests: the new engines get theirs
        manifest["files"].update({e["file"]: file_digest(bundle / e["file"]) for e in new.values()})
    B.write_manifest(bundle, manifest)
    return new


app = new_app("python -m export.trt")


class Precision(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"


class Which(str, Enum):
    trt = "trt"
    rtx = "rtx"


@app.command(
    epilog="Examples:\n\n  python -m export.trt runs/tiny.bundle\n\n"
    "  python -m export.trt runs/ssmic.bundle --plugins build/trt_plugins/liblictrt_plugins.so "
    "--shapes 256x256:512x768:1024x1536\n\n  python -m export.trt runs/tiny.bundle --backend rtx "
    "--graphs synthesis -q"
)
def build(
    bundle: Annotated[Path, typer.Argument(metavar="BUNDLE", help="codec bundle directory")],
    precision: Annotated[Optional[Precision], typer.Option(help="must match the bundle's export precision")] = None,
    plugins: Annotated[Optional[str], typer.Option(help="lictrt TensorRT plugin library (full TensorRT only)")] = None,
    shapes: Annotated[
        Optional[str], typer.Option(help=f"profile image sizes MIN:OPT:MAX (default {DEFAULT_SHAPES})")
    ] = None,
    graphs: Annotated[Optional[str], typer.Option(help="comma-separated graph names (default: all)")] = None,
    backend: Annotated[Optional[Which], typer.Option(help="force a backend")] = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="no progress bar")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="builder logs and tracebacks")] = False,
) -> int:
    """Build TensorRT (or TensorRT-RTX) engines for a bundle's graphs into BUNDLE/engines and the manifest."""
    new = build_bundle(
        bundle,
        precision=precision.value if precision else None,
        plugins=plugins,
        shapes=shapes,
        graphs=graphs.split(",") if graphs else None,
        backend=backend.value if backend else None,
        verbose=verbose,
        progress=not quiet,
    )
    for k, v in new.items():
        print(f"{v['file']:<60} {v['bytes'] / 1024:>9.1f}KB  {v['build_seconds']:.2f}s")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(app, argv, prog="python -m export.trt")


if __name__ == "__main__":
    sys.exit(main())
