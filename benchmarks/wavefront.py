"""Spatial-context decode time: wavefront vs raster order, same backend, same checkpoint, median of N decodes.

`python -m benchmarks wavefront BUNDLE|CKPT [--image PNG] [--size HxW] [--backend onnxruntime] [--repeats N]
 [--json FILE|-]`

The runtime's `spatial_context` plan codes latent positions either in wavefront order (t = 3·i + j: 3(h−1)+w
steps, each one batched context call) or in raster order (h·w steps). The same image is encoded and decoded
in both orders (the order is the plan's `context.order`; encoder and decoder must agree); the median decode
times of `--repeats` decodes, step counts and their ratio (target ≥ 8×) are printed. A checkpoint is exported
to a temporary bundle first.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from benchmarks.common import (
    Backend,
    BackendOpt,
    BenchmarkError,
    JsonOpt,
    SizeOpt,
    command_main,
    emit,
    is_bundle,
    parse_size,
    portable_path,
    read_manifest,
)
from runtime.cli import VerboseOpt

TARGET = 8.0


class WavefrontError(BenchmarkError):
    """The bundle has no spatial-context plan, or the runtime cannot run it."""


def measure(bundle: str | Path, image: np.ndarray, backend: str = "onnxruntime", repeats: int = 3) -> dict:
    """Encode `image` once and decode it `repeats` times in both orders; median decode wall time, steps and
    network calls of each."""
    bundle = Path(bundle)
    kind = read_manifest(bundle).get("plan", {}).get("kind")
    if kind != "spatial_context":
        raise WavefrontError(f"{bundle.name} has plan '{kind}', not 'spatial_context': nothing to compare")
    from benchmarks.latency import open_codec

    codecs = compare_orders(lambda order: open_codec(bundle, backend, context_order=order), image, repeats)
    return {"bundle": str(bundle), "backend": backend, **codecs}


def compare_orders(codec_for, image: np.ndarray, repeats: int = 1) -> dict:
    """The comparison itself: ``codec_for(order)`` gives a spatial-context Codec coding in that order; each order
    encodes `image` once and decodes it ``repeats`` times (decode_s: the median)."""
    out = {"size": list(image.shape[:2]), "repeats": repeats}
    recs = {}
    for order in ("wavefront", "raster"):
        codec = codec_for(order)
        data = codec.encode(image)
        enc = dict(codec.last_stats)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            recs[order] = codec.decode(data)
            times.append(time.perf_counter() - t0)
        st = dict(codec.last_stats)
        by_graph = st.get("network_by_graph_s") or {}
        ctx_s = by_graph.get("context_step")
        out[order] = {
            "context_loop_s": None if ctx_s is None else ctx_s + (st.get("entropy_s") or 0.0),
            "decode_s": statistics.median(times),
            "encode_s": enc.get("total_s"),
            "bytes": len(data),
            "steps": st.get("sequential_steps"),
            "network_calls": st.get("network_calls"),
            "coder_calls": st.get("coder_calls"),
            "decode_network_s": st.get("network_s"),
            "decode_entropy_s": st.get("entropy_s"),
        }
    out["speedup"] = out["raster"]["decode_s"] / out["wavefront"]["decode_s"]
    w_ctx, r_ctx = out["wavefront"]["context_loop_s"], out["raster"]["context_loop_s"]
    out["context_loop_speedup"] = r_ctx / w_ctx if w_ctx and r_ctx else None
    out["target"] = TARGET
    out["max_abs_diff"] = int(np.max(np.abs(recs["wavefront"].astype(int) - recs["raster"].astype(int))))
    return out


def default_image() -> Path:
    """The first shipped Kodak image."""
    from benchmarks.common import REPO_ROOT, list_images

    return list_images(REPO_ROOT / "assets" / "images" / "kodak")[0]


def load_image(path: str | Path, size: tuple[int, int] | None) -> np.ndarray:
    from benchmarks.common import load_rgb

    img = load_rgb(path)
    if size:
        h, w = size
        if h > img.shape[0] or w > img.shape[1]:
            raise WavefrontError(f"--size {h}x{w} is larger than the image {img.shape[0]}x{img.shape[1]}")
        img = np.ascontiguousarray(img[:h, :w])
    return img


def format_table(res: dict) -> str:
    w, r = res["wavefront"], res["raster"]
    lines = [
        f"spatial-context decode of a {res['size'][0]}x{res['size'][1]} image, backend {res['backend']}",
        f"  wavefront: {w['decode_s'] * 1e3:9.1f} ms  {w['steps']} steps  ({w['network_calls']} network calls)",
        f"  raster:    {r['decode_s'] * 1e3:9.1f} ms  {r['steps']} steps  ({r['network_calls']} network calls)",
    ]
    if res["context_loop_speedup"]:
        lines.append(
            f"  context loop only (context_step network + entropy coding): wavefront "
            f"{w['context_loop_s'] * 1e3:.1f} ms, raster {r['context_loop_s'] * 1e3:.1f} ms, "
            f"speedup {res['context_loop_speedup']:.1f}x"
        )
    lines.append(
        f"  whole decode speedup {res['speedup']:.1f}x (target >= {TARGET:.0f}x: "
        f"{'met' if res['speedup'] >= TARGET else 'NOT met'}); max |wavefront - raster| pixel difference "
        f"{res['max_abs_diff']}"
    )
    return "\n".join(lines)


def cli(
    path: Annotated[
        Path, typer.Argument(metavar="BUNDLE|CKPT", help="spatial-context bundle or checkpoint (ssmic, mbt2018)")
    ],
    image: Annotated[
        Optional[Path], typer.Option(metavar="PNG", help="image to code (default: the first shipped Kodak image)")
    ] = None,
    size: SizeOpt = None,
    backend: BackendOpt = Backend.onnxruntime,
    repeats: Annotated[int, typer.Option(min=1, help="decodes per order; the median is reported")] = 3,
    json_path: JsonOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Spatial-context decode time: wavefront vs raster order, same backend and checkpoint.

    The same image (cropped to --size when given) is encoded and decoded in both orders; decode times, step
    counts and their ratio are printed. A checkpoint is exported to a temporary bundle first."""
    image = image or default_image()
    img = load_image(image, parse_size(size) if size else None)
    with tempfile.TemporaryDirectory(prefix="lictrt-wavefront-") as tmp:
        bundle = path
        if not is_bundle(path):
            if not path.is_file():
                raise WavefrontError(f"not a bundle or checkpoint: {path}")
            bundle = Path(tmp) / "bundle"
            proc = subprocess.run(
                [sys.executable, "-m", "export.onnx", str(path), "-o", str(bundle), "--no-check"],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                raise WavefrontError(f"export of {path} failed: {(proc.stderr or proc.stdout).strip()[-200:]}")
        res = measure(bundle, img, backend.value, repeats)
        model = read_manifest(bundle).get("model", {})
        res["model"] = {"arch": model.get("arch"), "config": model.get("config")}
    # what was measured, without this machine's folders (a checkpoint's bundle was a temporary folder)
    res["bundle"] = portable_path(path)
    res["image"] = portable_path(image)
    emit(res, json_path, format_table)


def main(argv: list[str] | None = None) -> int:
    return command_main("wavefront", argv)
