"""Memory-roofline arithmetic: the fewest bytes an op must move, and what fraction of the measured HBM
bandwidth a timing achieves.

Minimal bytes (each input read once, each output written once; the fp32 weights dt_weight, A, D, delta_bias, gamma,
beta are < 0.1 % of the traffic at the shapes timed and are left out):

- SelectiveScan2D: read u [B,Di,L], dts [B,4,R,L], Bs and Cs [B,4,N,L]; write y [B,Di,L] (dt_proj happens inside
  the op, so delta [B,4Di,L] is not part of the floor).
- GeneralizedDivisiveNorm: read x [B,C,H,W]; write y of the same shape.

The bandwidth ceiling is measured in the same run as a large device-to-device copy, counting bytes read plus
bytes written.
"""

from __future__ import annotations


class RooflineError(ValueError):
    """Non-positive sizes or times."""


def _positive(**kw) -> None:
    for k, v in kw.items():
        if not v or v <= 0:
            raise RooflineError(f"{k} must be positive, got {v!r}")


def ss2d_min_bytes(B: int, Di: int, H: int, W: int, N: int, R: int, itemsize: int) -> int:
    """Bytes SelectiveScan2D must move at least: u, dts, Bs, Cs read once, y written once."""
    _positive(B=B, Di=Di, H=H, W=W, N=N, R=R, itemsize=itemsize)
    L = H * W
    elements = B * Di * L + B * 4 * R * L + 2 * B * 4 * N * L + B * Di * L
    return elements * itemsize


def gdn_min_bytes(B: int, C: int, H: int, W: int, itemsize: int) -> int:
    """Bytes GeneralizedDivisiveNorm must move at least: x read once, y written once."""
    _positive(B=B, C=C, H=H, W=W, itemsize=itemsize)
    return 2 * B * C * H * W * itemsize


def copy_bytes(nbytes: int) -> int:
    """Traffic of a device-to-device copy of ``nbytes``: read once plus written once."""
    _positive(nbytes=nbytes)
    return 2 * nbytes


def gb_per_s(nbytes: int, ms: float) -> float:
    """Achieved throughput in GB/s (1e9 bytes per second) of moving ``nbytes`` in ``ms`` milliseconds."""
    _positive(nbytes=nbytes, ms=ms)
    return nbytes / (ms * 1e-3) / 1e9


def roofline_percent(nbytes: int, ms: float, peak_gb_per_s: float) -> float:
    """Achieved bandwidth as a percentage of the measured peak."""
    _positive(peak_gb_per_s=peak_gb_per_s)
    return 100.0 * gb_per_s(nbytes, ms) / peak_gb_per_s


def floor_ms(nbytes: int, peak_gb_per_s: float) -> float:
    """The memory floor: the shortest time moving ``nbytes`` can take at the measured peak bandwidth."""
    _positive(nbytes=nbytes, peak_gb_per_s=peak_gb_per_s)
    return nbytes / (peak_gb_per_s * 1e9) * 1e3


def rotation_sets(bytes_per_set: int, l2_bytes: int, free_bytes: int, max_sets: int = 8) -> int:
    """How many input sets to rotate through so the L2 cache cannot hold the last run's inputs: enough that
    the other sets together exceed twice the L2, at least 2, and no more than half the free memory allows."""
    _positive(bytes_per_set=bytes_per_set)
    need = 2 + (2 * max(l2_bytes, 0)) // bytes_per_set
    fit = max(1, (free_bytes // 2) // bytes_per_set) if free_bytes > 0 else 1
    return max(1, min(need, max_sets, fit))
