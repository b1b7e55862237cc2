"""Grouped coding (GIT-SSIC): mask cost and the rate of every group on images with label masks.

`python -m benchmarks groups BUNDLE --images DIR --masks DIR [--limit N] [--backend B] [--json FILE]`

Each mask PNG (same stem as its image; image, 1/16 or 1/32 size) becomes group labels the seed's way:
foreground = non-zero, then 4-connected components (0 = background). Per image: bytes of the mask stream,
of z, of every group's streams (with its latent cells), total bytes/bpp and the PSNR of the full decode; the
largest foreground group is also decoded alone and compared with the full decode inside its 32-px cells
(equal unless the group is one the seed's shifted-window key collision ties to another: ``collision_groups``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from benchmarks.common import (
    Backend,
    BackendOpt,
    BenchmarkError,
    ImagesOpt,
    JsonOpt,
    command_main,
    emit,
    list_images,
    portable_path,
)
from runtime.cli import BundleArg, UsageError, VerboseOpt


def seed_labels(mask: np.ndarray) -> np.ndarray:
    """The seed's group labels of a mask image: binarise (non-zero), 4-connected components, 0 = background."""
    import torch

    from train.models.gitssic import connected_components

    m = np.asarray(mask)
    fg = torch.from_numpy(np.ascontiguousarray(m[..., 0] if m.ndim == 3 else m) != 0)
    return connected_components(fg[None])[0].numpy().astype(np.int32)


def collision_groups(codec, grid: np.ndarray) -> list[int]:
    """Labels whose reconstruction the seed's SW-MSA key collision can tie to other groups (the bundle's model
    config rebuilt, its ``g_s.colliding_labels`` on the latent-size mask)."""
    import torch

    from train.models import create_model

    m = codec.bundle.manifest["model"]
    model = create_model(m["arch"], **m.get("config", {}))
    lat = torch.from_numpy(grid).repeat_interleave(2, 0).repeat_interleave(2, 1)[None, None]
    return sorted(model.g_s.colliding_labels(lat))


def measure(codec, image_path: Path, mask_path: Path) -> dict:
    from PIL import Image

    from runtime import image as img
    from runtime.plans.grouped_slices import coarse_mask

    im = img.load(image_path)
    with Image.open(mask_path) as m:
        labels = seed_labels(np.asarray(m.convert("L")))
    t0 = time.perf_counter()
    data = codec.encode(im, mask=labels)
    enc_s = time.perf_counter() - t0
    st = codec.last_stats
    h, w = im.shape[:2]
    grid = coarse_mask(labels, (h, w), codec.bundle.pad_multiple)
    cells = {int(g): int((grid == g).sum()) * 4 for g in np.unique(grid)}  # latent cells (2x2 per grid cell)
    full = codec.decode(data)
    groups = {
        g: {"bytes": b, "latent_cells": cells.get(g, 0), "bits_per_cell": 8 * b / max(cells.get(g, 1), 1)}
        for g, b in st["group_bytes"].items()
    }
    fg = [g for g in groups if g != 0]
    row = {
        "image": image_path.name,
        "size": [h, w],
        "groups": len(groups),
        "bytes": len(data),
        "bpp": 8 * len(data) / (h * w),
        "mask_bytes": st["streams"]["mask"],
        "z_bytes": st["streams"]["z"],
        "header_bytes": st["header_bytes"],
        "group_bytes": groups,
        "psnr_full": img.psnr(im, full),
        "encode_s": enc_s,
        "collision_groups": collision_groups(codec, grid),
    }
    if fg:
        g = max(fg, key=lambda k: groups[k]["latent_cells"])
        part = codec.decode(data, groups=[g])
        inside = (grid == g).repeat(32, 0).repeat(32, 1)
        top, _, left, _ = img.padding(h, w, codec.bundle.pad_multiple)
        inside = inside[top : top + h, left : left + w]
        diff = np.abs(part.astype(np.int16) - full.astype(np.int16))[inside]
        row["subset"] = {
            "group": g,
            "bytes_read": groups[g]["bytes"] + row["mask_bytes"] + row["z_bytes"],
            "collides": g in row["collision_groups"],
            "max_abs_diff_inside": int(diff.max()),
            "mean_abs_diff_inside": float(diff.mean()),
        }
    return row


def run(bundle, images, masks, limit=None, backend="onnxruntime") -> dict:
    from runtime import Codec

    codec = Codec.open(bundle, backend=backend)
    if codec.bundle.plan_kind != "grouped_slices":
        raise BenchmarkError(f"{bundle} codes plan '{codec.bundle.plan_kind}', not grouped_slices")
    rows = []
    for p in list_images(images, limit):
        mp = Path(masks) / (p.stem + ".png")
        if not mp.is_file():
            raise BenchmarkError(f"no mask for {p.name} in {masks}")
        rows.append(measure(codec, p, mp))
    n = len(rows)
    return {
        "benchmark": "groups",
        "bundle": portable_path(bundle),
        "arch": codec.bundle.arch,
        "images": portable_path(images),
        "masks": portable_path(masks),
        "backend": backend,
        "mean": {
            "groups": sum(r["groups"] for r in rows) / n,
            "mask_bytes": sum(r["mask_bytes"] for r in rows) / n,
            "z_bytes": sum(r["z_bytes"] for r in rows) / n,
            "bytes": sum(r["bytes"] for r in rows) / n,
            "bpp": sum(r["bpp"] for r in rows) / n,
            "psnr_full": sum(r["psnr_full"] for r in rows) / n,
            "mask_share_of_bytes": sum(r["mask_bytes"] / r["bytes"] for r in rows) / n,
        },
        "subset_decodes": _subset_summary(rows),
        "per_image": rows,
    }


def _subset_summary(rows: list[dict]) -> dict:
    subs = [r["subset"] for r in rows if "subset" in r]
    differ = [s for s in subs if s["max_abs_diff_inside"] > 1]
    return {
        "equal_inside": len(subs) - len(differ),
        "differ_inside_colliding": sum(s["collides"] for s in differ),
        "differ_inside_not_colliding": sum(not s["collides"] for s in differ),
    }


def _table(res: dict) -> str:
    m = res["mean"]
    lines = [
        f"groups on {res['images']} ({res['arch']}, {len(res['per_image'])} images)",
        f"{'image':<14}{'groups':>7}{'mask B':>8}{'z B':>7}{'bytes':>8}{'bpp':>8}{'PSNR':>7}  largest fg group alone",
    ]
    for r in res["per_image"]:
        s = r.get("subset")
        sub = (
            (
                f"g{s['group']}: reads {s['bytes_read']} B, max|diff| inside {s['max_abs_diff_inside']}"
                + (" (SW-MSA collision)" if s["collides"] else "")
            )
            if s
            else "-"
        )
        lines.append(
            f"{r['image']:<14}{r['groups']:>7}{r['mask_bytes']:>8}{r['z_bytes']:>7}{r['bytes']:>8}"
            f"{r['bpp']:>8.4f}{r['psnr_full']:>7.2f}  {sub}"
        )
    lines.append(
        f"mean: {m['groups']:.2f} groups, mask {m['mask_bytes']:.1f} B "
        f"({100 * m['mask_share_of_bytes']:.2f}% of the file), z {m['z_bytes']:.1f} B, "
        f"{m['bytes']:.0f} B = {m['bpp']:.4f} bpp, {m['psnr_full']:.2f} dB"
    )
    return "\n".join(lines)


def cli(
    bundle: BundleArg,
    images: Annotated[Path, typer.Option(metavar="DIR", help="folder of images")],
    masks: Annotated[Path, typer.Option(metavar="DIR", help="folder of mask PNGs named like the images")],
    limit: ImagesOpt = None,
    backend: BackendOpt = Backend.onnxruntime,
    json_path: JsonOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Grouped coding (GIT-SSIC) with label masks: mask cost, z and per-group bytes, subset decodes.

    BUNDLE is a grouped_slices (gitssic) bundle; --backend onnxruntime or tensorrt."""
    if backend == Backend.torch:
        raise UsageError("--backend torch is not offered here: onnxruntime or tensorrt")
    emit(run(str(bundle), str(images), str(masks), limit, backend.value), json_path, _table)


def main(argv: list[str] | None = None) -> int:
    return command_main("groups", argv)
