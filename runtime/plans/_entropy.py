"""Entropy-model arithmetic shared by the plans: CompressAI's symbol and index rules, in numpy.

EntropyBottleneck (factorized prior): symbols = round(v − median[c]), table index = channel c,
value = symbols + median[c].
GaussianConditional: index = #{ t in scale_table[:-1] : t < max(σ, scale_bound) }, exactly CompressAI's
``build_indexes`` (which counts down from T−1 over ``σ ≤ t``; NaN gives T−1 in both), symbols = round(y − μ),
value = symbols + μ.  Rounding is half-to-even in both torch and numpy.  All arithmetic is float32.
"""

from __future__ import annotations

import numpy as np


def build_indexes(scales: np.ndarray, scale_table: np.ndarray, scale_bound) -> np.ndarray:
    s = np.maximum(np.asarray(scales, np.float32), np.float32(scale_bound))
    return np.searchsorted(np.asarray(scale_table, np.float32)[:-1], s, side="left").astype(np.int32)


def channel_indexes(shape) -> np.ndarray:
    """Factorized-prior indexes for an N×C×H×W latent: the channel number at every position."""
    n, c, h, w = shape
    return np.ascontiguousarray(np.broadcast_to(np.arange(c, dtype=np.int32)[None, :, None, None], (n, c, h, w)))


def medians_of(shape, medians: np.ndarray) -> np.ndarray:
    if medians.shape[0] != shape[1]:
        raise ValueError(f"latent has {shape[1]} channels, tables have {medians.shape[0]} medians")
    return medians.astype(np.float32).reshape(1, -1, 1, 1)


def to_symbols(v: np.ndarray, means) -> np.ndarray:
    d = np.asarray(v, np.float32) if means is None else np.asarray(v, np.float32) - np.asarray(means, np.float32)
    r = np.rint(d)
    if not np.all(np.isfinite(r)) or np.abs(r).max(initial=0) >= 2**30:
        raise ValueError("latent has non-finite or out-of-range values")
    return np.ascontiguousarray(r.astype(np.int32))


def from_symbols(q: np.ndarray, means) -> np.ndarray:
    q = q.astype(np.float32)
    return q if means is None else q + np.asarray(means, np.float32)
