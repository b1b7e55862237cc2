"""Codec bundle I/O (docs/FORMATS.md): manifest.json, coder tables, the deterministic model hash."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

FORMAT = "lictrt-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TABLES = "tables.npz"


class BundleError(RuntimeError):
    """A bundle is missing, malformed or of an unknown version."""


def _entropy_tables(prefix: str, em) -> dict[str, np.ndarray]:
    from compressai.entropy_models import EntropyBottleneck, GaussianConditional

    if em._quantized_cdf.numel() == 0:
        raise BundleError(f"entropy model {prefix!r} has no CDF tables (was update(force=True) run?)")
    t = {f"{prefix}.cdf": em._quantized_cdf.detach().cpu().numpy().astype(np.int32),
         f"{prefix}.cdf_length": em._cdf_length.detach().cpu().numpy().astype(np.int32).reshape(-1),
         f"{prefix}.offset": em._offset.detach().cpu().numpy().astype(np.int32).reshape(-1)}
    if isinstance(em, EntropyBottleneck):
        t[f"{prefix}.medians"] = em._get_medians().detach().cpu().numpy().astype(np.float32).reshape(-1)
    elif isinstance(em, GaussianConditional):
        t[f"{prefix}.scale_table"] = em.scale_table.detach().cpu().numpy().astype(np.float32).reshape(-1)
        t[f"{prefix}.scale_bound"] = np.asarray(float(em.lower_bound_scale.bound), dtype=np.float32)
    return t


def entropy_models(model: nn.Module, widths: list[int] | None = None) -> dict[str, nn.Module]:
    """{table prefix: entropy model}: ``z``/``y`` for CompressAI-style models, ``w<W>.z`` per SlimCAE width
    (only ``widths`` if given)."""
    out = {}
    if hasattr(model, "entropy_bottlenecks") and hasattr(model, "widths"):
        for w, eb in zip(model.widths, model.entropy_bottlenecks):
            if widths is None or w in widths:
                out[f"w{w}.z"] = eb
        return out
    if hasattr(model, "entropy_bottleneck"):
        out["z"] = model.entropy_bottleneck
    if hasattr(model, "gaussian_conditional"):
        out["y"] = model.gaussian_conditional
    if not out:
        raise BundleError(f"{type(model).__name__} has no entropy models the exporter knows")
    return out


def coder_tables(model: nn.Module, widths: list[int] | None = None) -> dict[str, np.ndarray]:
    """Every integer coder table of ``model`` under its FORMATS.md key."""
    tables: dict[str, np.ndarray] = {}
    for prefix, em in entropy_models(model, widths).items():
        tables.update(_entropy_tables(prefix, em))
    if getattr(model, "coding_plan", None) == "grouped_slices":  # the mask stream's fixed table
        from train.models.gitssic import mask_tables

        tables.update(mask_tables())
    return tables


def model_hash(model: nn.Module, tables: dict[str, np.ndarray]) -> str:
    """sha256 over the state_dict tensors (sorted by name: name, dtype, shape, bytes) and the tables."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        a = t.detach().cpu().contiguous()
        h.update(f"{name}|{a.dtype}|{tuple(a.shape)}|".encode())
        h.update(a.view(torch.uint8).numpy().tobytes() if a.numel() else b"")
    for key in sorted(tables):
        a = np.ascontiguousarray(tables[key])
        h.update(f"{key}|{a.dtype}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def write_tables(path: Path, tables: dict[str, np.ndarray]) -> None:
    np.savez(path, **tables)


def write_manifest(bundle: Path, manifest: dict) -> None:
    tmp = bundle / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, bundle / MANIFEST)


def read_manifest(bundle: str | os.PathLike) -> dict:
    path = Path(bundle) / MANIFEST
    if not path.is_file():
        raise BundleError(f"{bundle} is not a codec bundle (no {MANIFEST})")
    try:
        m = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise BundleError(f"{path}: invalid JSON ({e.msg})") from None
    if m.get("format") != FORMAT:
        raise BundleError(f"{path}: format {m.get('format')!r} is not {FORMAT!r}")
    if m.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{path}: unsupported bundle version {m.get('format_version')!r}")
    return m
