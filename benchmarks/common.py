"""Shared helpers for the benchmark commands: errors, image I/O, quality metrics, JSON results, and the Typer
option types several commands declare (each defined once here)."""

from __future__ import annotations

import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Callable, Iterable, Optional

import numpy as np
import typer

from runtime.cli import CoderMode
from runtime.files import write_atomic

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")
REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
MSSSIM_MIN_SIDE = 161  # pytorch-msssim asserts min side > (win_size - 1) * 2**4 = 160


class BenchmarkError(Exception):
    """A user-facing benchmark failure: bad input, missing dependency, unusable data. One line, no traceback."""


def default_kodak() -> Path:
    """The Kodak set: ``../shared/data/kodak`` beside the repository, else the images shipped in assets/."""
    shared = REPO_ROOT.parent / "shared" / "data" / "kodak"
    return shared if shared.is_dir() else REPO_ROOT / "assets" / "images" / "kodak"


def list_images(path: str | os.PathLike, limit: int | None = None) -> list[Path]:
    """Image files directly in `path` (sorted), or `[path]` for a single file."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise BenchmarkError(f"no such image file or directory: {p}")
    files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTS and f.is_file())
    if not files:
        raise BenchmarkError(f"no images in {p}")
    return files[:limit] if limit else files


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """Load an image as uint8 HxWx3 RGB."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except (OSError, ValueError) as exc:
        raise BenchmarkError(f"cannot read image {path}: {exc}") from None


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Accept uint8 HxWx3, float HxWx3 in [0,1], or float [1,3,H,W] / [3,H,W] in [0,1]; return uint8 HxWx3."""
    a = np.asarray(img)
    if a.ndim == 4:
        a = a[0]
    if a.ndim == 3 and a.shape[0] == 3 and a.shape[-1] != 3:
        a = a.transpose(1, 2, 0)
    if a.dtype == np.uint8:
        return a
    return np.clip(np.round(a.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB over RGB with peak 255 (CompressAI eval_model convention: both images 8-bit)."""
    from runtime.image import psnr as psnr_uint8

    a, b = to_uint8(a), to_uint8(b)
    if a.shape != b.shape:
        raise BenchmarkError(f"image shapes differ: {a.shape} vs {b.shape}")
    return psnr_uint8(a, b)


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float | None:
    """MS-SSIM on 8-bit RGB, data_range 255; None when the image is too small for the 5-scale pyramid."""
    a, b = to_uint8(a), to_uint8(b)
    if min(a.shape[:2]) < MSSSIM_MIN_SIDE:
        return None
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    ta = torch.from_numpy(a.astype(np.float32)).permute(2, 0, 1)[None]
    tb = torch.from_numpy(b.astype(np.float32)).permute(2, 0, 1)[None]
    return float(_ms_ssim(ta, tb, data_range=255.0))


def bpp(nbytes: int, height: int, width: int) -> float:
    return 8.0 * nbytes / (height * width)


def parse_size(text: str) -> tuple[int, int]:
    """'HxW' -> (H, W)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise BenchmarkError(f"bad size {text!r}: expected HxW, e.g. 512x768") from None
    if h <= 0 or w <= 0:
        raise BenchmarkError(f"bad size {text!r}: sides must be positive")
    return h, w


def summary(values: Iterable[float]) -> dict:
    """median / p90 / mean / min of a list of timings (seconds in, milliseconds out)."""
    v = np.asarray(list(values), dtype=np.float64) * 1e3
    if v.size == 0:
        return {"median_ms": None, "p90_ms": None, "mean_ms": None, "min_ms": None, "n": 0}
    return {
        "median_ms": float(np.median(v)),
        "p90_ms": float(np.percentile(v, 90)),
        "mean_ms": float(v.mean()),
        "min_ms": float(v.min()),
        "n": int(v.size),
    }


def portable_path(path: str | os.PathLike) -> str:
    """``path`` as results files record it: relative to the repository when it lies beside it (``../shared/…``),
    ``~/…`` under the home folder, else as given; so committed results name no machine's folders."""
    p = Path(path).resolve()
    if p.is_relative_to(REPO_ROOT.parent):
        return os.path.relpath(p, REPO_ROOT)
    if p.is_relative_to(Path.home()):
        return str(Path("~") / p.relative_to(Path.home()))
    return str(path)


def write_json(path: str | os.PathLike, data) -> Path:
    """Write JSON atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def is_bundle(path: str | os.PathLike) -> bool:
    from runtime.bundle import MANIFEST

    return (Path(path) / MANIFEST).is_file()


def read_manifest(bundle: str | os.PathLike) -> dict:
    """The bundle's manifest (``runtime.bundle.read_manifest``), its errors as :class:`BenchmarkError`."""
    from runtime.bundle import BundleError
    from runtime.bundle import read_manifest as _read

    try:
        return _read(bundle)
    except BundleError as exc:
        raise BenchmarkError(str(exc)) from None


def emit(res: dict, json_arg: str | None, format_table: Callable[[dict], str]) -> None:
    """Print ``res`` as JSON (``--json -``) or as a table, and also save it when ``--json PATH`` is given."""
    if json_arg == "-":
        print(json.dumps(res, indent=2, default=_json_default))
        return
    print(format_table(res))
    if json_arg:
        write_json(json_arg, res)


# ------------------------------------------------------------------------------- command-line option types


class Backend(str, Enum):
    """Where a benchmark runs the bundle's graphs."""

    onnxruntime = "onnxruntime"
    torch = "torch"
    tensorrt = "tensorrt"


JsonOpt = Annotated[
    Optional[str],
    typer.Option("--json", metavar="FILE", help="also write the results as JSON to FILE; '-' prints JSON instead"),
]
ThreadsOpt = Annotated[Optional[int], typer.Option(metavar="N", help="CPU threads of the measured work")]
RepeatsOpt = Annotated[int, typer.Option(metavar="N", help="timed runs per measurement (median / minimum reported)")]
ImagesOpt = Annotated[Optional[int], typer.Option(metavar="N", help="use the first N images only")]
DataOpt = Annotated[Optional[Path], typer.Option(metavar="DIR", help="folder of test images")]
SizeOpt = Annotated[Optional[str], typer.Option(metavar="HxW", help="image size, e.g. 512x768")]
BackendOpt = Annotated[Backend, typer.Option(help="where the graphs run")]
ModeOpt = Annotated[Optional[CoderMode], typer.Option(help="entropy-coder mode")]
CheckpointOpt = Annotated[Optional[Path], typer.Option(metavar="PTH", help="checkpoint (.pth) of the model")]
CacheOpt = Annotated[Optional[Path], typer.Option(metavar="DIR", help="cache of exported bundles, reused across runs")]


def command_main(name: str, argv: list[str] | None = None) -> int:
    """``python -m benchmarks <name> ARGV...`` in-process: the exit status of runtime/cli.py's rules."""
    from benchmarks.__main__ import main

    return main([name, *(sys.argv[1:] if argv is None else argv)])
