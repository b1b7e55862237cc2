"""A model's integer coder tables (the ``tables.npz`` arrays, docs/FORMATS.md) and its deterministic hash.

The exporter writes these into a bundle; the torch reference backend builds an in-memory bundle from them. Both
call this module, so a stream coded with ``Codec.from_model(model)`` decodes with the exported bundle of the same
weights and the other way round.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.nn as nn


class CodingError(ValueError):
    """A model has no usable entropy models (unknown layout, or CDF tables not built)."""


def entropy_models(model: nn.Module, kind: str | None = None, widths: list[int] | None = None) -> dict[str, nn.Module]:
    """``{table prefix: entropy model}``.

    Slimmable models: ``w<W>.z`` per width (only ``widths`` if given). A plain factorized-prior model
    (``kind == "factorized"``): its bottleneck is ``y``. Hyperprior models: ``z`` and ``y``.
    """
    if hasattr(model, "entropy_bottlenecks") and hasattr(model, "widths"):
        return {
            f"w{w}.z": eb for w, eb in zip(model.widths, model.entropy_bottlenecks) if widths is None or w in widths
        }
    out = {}
    if hasattr(model, "entropy_bottleneck"):
        out["y" if kind == "factorized" else "z"] = model.entropy_bottleneck
    if hasattr(model, "gaussian_conditional"):
        out["y"] = model.gaussian_conditional
    if not out:
        raise CodingError(f"{type(model).__name__} has no entropy models lictrt knows")
    return out


def _tables_of(prefix: str, em: nn.Module) -> dict[str, np.ndarray]:
    from compressai.entropy_models import EntropyBottleneck, GaussianConditional

    if em._quantized_cdf.numel() == 0:
        raise CodingError(f"entropy model {prefix!r} has no CDF tables: call model.update(force=True) first")
    t = {
        f"{prefix}.cdf": em._quantized_cdf.detach().cpu().numpy().astype(np.int32),
        f"{prefix}.cdf_length": em._cdf_length.detach().cpu().numpy().astype(np.int32).reshape(-1),
        f"{prefix}.offset": em._offset.detach().cpu().numpy().astype(np.int32).reshape(-1),
    }
    if isinstance(em, EntropyBottleneck):
        t[f"{prefix}.medians"] = em._get_medians().detach().cpu().numpy().astype(np.float32).reshape(-1)
    elif isinstance(em, GaussianConditional):
        t[f"{prefix}.scale_table"] = em.scale_table.detach().cpu().numpy().astype(np.float32).reshape(-1)
        t[f"{prefix}.scale_bound"] = np.asarray(float(em.lower_bound_scale.bound), dtype=np.float32)
    return t


def mask_tables(prefix: str = "mask", symbols: int = 64, sigma: float = 16.0) -> dict[str, np.ndarray]:
    """The fixed table of a ``grouped_slices`` mask stream (symbol = group label + 1): GIT-SSIC's CDF
    2·(Φ(k/σ) − ½), k = 1..``symbols``, as one CompressAI-style 16-bit table whose last bin (the mass past
    the last symbol) sends larger labels through the coder's bypass."""
    from compressai.entropy_models.entropy_models import pmf_to_quantized_cdf

    k = torch.arange(1, symbols + 1, dtype=torch.float64)
    cdf = 2 * (torch.distributions.Normal(0.0, sigma).cdf(k) - 0.5)
    pmf = torch.diff(torch.cat([torch.zeros(1, dtype=torch.float64), cdf]))
    prob = torch.cat([pmf, (1 - cdf[-1:]).clamp_min(1e-9)]).to(torch.float32)
    q = pmf_to_quantized_cdf(prob, 16).numpy().astype(np.int32)
    return {
        f"{prefix}.cdf": q[None],
        f"{prefix}.cdf_length": np.array([q.size], np.int32),
        f"{prefix}.offset": np.zeros(1, np.int32),
    }


def coder_tables(model: nn.Module, kind: str | None = None, widths: list[int] | None = None) -> dict[str, np.ndarray]:
    """Every integer coder table of ``model`` under its FORMATS.md key (``<prefix>.cdf`` ...); a
    ``grouped_slices`` model also gets the fixed ``mask`` table."""
    tables: dict[str, np.ndarray] = {}
    for prefix, em in entropy_models(model, kind, widths).items():
        tables.update(_tables_of(prefix, em))
    if (kind or getattr(model, "coding_plan", None)) == "grouped_slices":
        tables.update(mask_tables())
    return tables


def model_hash(model: nn.Module, tables: dict[str, np.ndarray]) -> str:
    """sha256 over the state_dict tensors (sorted by name: name, dtype, shape, bytes), then the tables (sorted)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        a = t.detach().cpu().contiguous()
        h.update(f"{name}|{a.dtype}|{tuple(a.shape)}|".encode())
        h.update(a.reshape(-1).view(torch.uint8).numpy().tobytes() if a.numel() else b"")  # 0-dim ones too
    for key in sorted(tables):
        a = np.ascontiguousarray(tables[key])
        h.update(f"{key}|{a.dtype}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()
