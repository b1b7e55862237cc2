"""BD-rate and BD-PSNR: a thin layer over the `bjontegaard` package (Akima primary, PCHIP for CTC comparability)."""

from __future__ import annotations

import warnings

import numpy as np

from benchmarks.common import BenchmarkError

METHODS = ("akima", "pchip")
MIN_POINTS = 4
MIN_OVERLAP = 0.75


class BDRateError(BenchmarkError):
    """The curves cannot give a BD figure (too few points, non-monotonic, no overlap)."""


def _curve(rate, dist, label: str) -> tuple[np.ndarray, np.ndarray]:
    """The points sorted by quality (the interpolation's x axis); distinct qualities and positive rates required."""
    r, d = np.asarray(rate, dtype=np.float64), np.asarray(dist, dtype=np.float64)
    if r.shape != d.shape or r.ndim != 1:
        raise BDRateError(f"{label}: rate and distortion must be equal-length lists")
    if r.size < MIN_POINTS:
        raise BDRateError(f"{label}: BD-rate needs >= {MIN_POINTS} rate points, got {r.size}")
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(d)) and np.all(r > 0)):
        raise BDRateError(f"{label}: rates must be positive and all values finite")
    order = np.argsort(d)
    r, d = r[order], d[order]
    if np.any(np.diff(d) <= 0):
        raise BDRateError(f"{label}: two rate points have the same quality {d.round(4).tolist()}: no BD-rate")
    return r, d


def is_monotone(rate, dist) -> bool:
    """True when quality strictly increases with rate (a proper RD curve).

    BD-rate integrates log-rate as a function of quality, so it is defined for any distinct qualities; on a
    non-monotone set (e.g. models trained for seconds) it is still a valid parity figure between two codings
    of the same models, but not an RD comparison: callers flag it.
    """
    r, d = np.asarray(rate, float), np.asarray(dist, float)
    o = np.argsort(r)
    return bool(np.all(np.diff(r[o]) > 0) and np.all(np.diff(d[o]) > 0))


def overlap(rate_anchor, dist_anchor, rate_test, dist_test) -> float:
    """Fraction of the joint quality interval covered by both curves (0..1)."""
    da, dt = np.asarray(dist_anchor, float), np.asarray(dist_test, float)
    lo, hi = max(da.min(), dt.min()), min(da.max(), dt.max())
    total = max(da.max(), dt.max()) - min(da.min(), dt.min())
    return max(hi - lo, 0.0) / total if total > 0 else 1.0


def bd_rate(rate_anchor, dist_anchor, rate_test, dist_test, method: str = "akima") -> float:
    """Average bitrate difference of `test` vs `anchor` at equal quality, in percent (negative = test saves bits)."""
    import bjontegaard

    if method not in METHODS + ("cubic",):
        raise BDRateError(f"unknown BD method {method!r} (use one of {', '.join(METHODS + ('cubic',))})")
    ra, da = _curve(rate_anchor, dist_anchor, "anchor")
    rt, dt = _curve(rate_test, dist_test, "test")
    if overlap(ra, da, rt, dt) == 0:
        raise BDRateError("the curves do not overlap in quality: no BD-rate")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(bjontegaard.bd_rate(ra, da, rt, dt, method=method, require_matching_points=False, min_overlap=0))


def bd_psnr(rate_anchor, dist_anchor, rate_test, dist_test, method: str = "akima") -> float:
    """Average quality difference of `test` vs `anchor` at equal rate (dB for PSNR)."""
    import bjontegaard

    ra, da = _curve(rate_anchor, dist_anchor, "anchor")
    rt, dt = _curve(rate_test, dist_test, "test")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(bjontegaard.bd_psnr(ra, da, rt, dt, method=method, require_matching_points=False, min_overlap=0))


def bd_summary(anchor: dict, test: dict, metric: str = "psnr-rgb") -> dict:
    """BD-rate (akima, pchip) and overlap of two CompressAI-layout result dicts for one quality metric."""
    ra, da = anchor["results"]["bpp"], anchor["results"][metric]
    rt, dt = test["results"]["bpp"], test["results"][metric]
    out = {"metric": metric, "anchor": anchor.get("name"), "test": test.get("name"), "overlap": overlap(ra, da, rt, dt)}
    for m in METHODS:
        out[f"bd_rate_{m}"] = bd_rate(ra, da, rt, dt, m)
    out["low_overlap"] = out["overlap"] < MIN_OVERLAP
    out["monotone"] = is_monotone(ra, da) and is_monotone(rt, dt)
    return out
