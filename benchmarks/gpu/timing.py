"""CUDA-event timing: warm up, then time many runs (each between its own pair of events on the current stream),
rotating through several input sets so the L2 cache does not flatter; report the median.

Runs are capped by a wall-clock deadline: slow reference implementations get fewer runs (at least
``min_iters``), never an unbounded loop.  A run whose host-side enqueue takes about as long as the GPU work is
flagged ``launch_bound`` (its event time then includes the GPU waiting for the launch).
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, Sequence


class TimingError(RuntimeError):
    """Timing could not produce a figure (no runs fitted in the time left)."""


def summarize(samples_ms: Sequence[float]) -> dict:
    """Median, min, max and count of per-run times (ms)."""
    if not samples_ms:
        raise TimingError("no timed runs")
    s = sorted(samples_ms)
    return {"median_ms": statistics.median(s), "min_ms": s[0], "max_ms": s[-1], "runs": len(s)}


def event_ms(fn: Callable[[], object], device: str = "cuda") -> tuple[float, object]:
    """``(ms, result)`` of one call of ``fn`` between two CUDA events on the current stream, waiting for the end
    event; on ``device == "cpu"`` (tests) the host clock."""
    if device == "cpu":
        t0 = time.perf_counter()
        result = fn()
        return (time.perf_counter() - t0) * 1e3, result
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    result = fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end), result


def time_cuda(
    fns: Sequence[Callable[[], object]],
    *,
    warmup: int = 10,
    iters: int = 100,
    min_iters: int = 3,
    deadline: float | None = None,
) -> dict:
    """Time ``fns`` (one callable per input set, called in rotation) with CUDA events.

    The first warm-up call is also timed on the host to size the run count: at most ``iters`` runs, fewer when
    ``deadline`` (a ``time.monotonic()`` value) would otherwise pass, but never fewer than ``min_iters``.
    """
    import torch

    if not fns:
        raise TimingError("nothing to time")
    per_call = float("inf")
    for i in range(2):  # the first call pays one-time costs (lazy init, autotuning); size the runs on the second
        t0 = time.monotonic()
        fns[i % len(fns)]()
        torch.cuda.synchronize()
        per_call = min(per_call, time.monotonic() - t0)
    left = (deadline - time.monotonic()) if deadline is not None else float("inf")
    affordable = int(left / max(per_call, 1e-6) * 0.8)
    warmup = max(1, min(warmup, affordable // 4))
    iters = max(min_iters, min(iters, affordable - warmup))
    for i in range(warmup):
        fns[i % len(fns)]()
    torch.cuda.synchronize()
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(iters)]
    h0 = time.perf_counter()
    for i, (start, end) in enumerate(events):
        start.record()
        fns[i % len(fns)]()
        end.record()
    host_ms = (time.perf_counter() - h0) * 1e3 / iters
    torch.cuda.synchronize()
    out = summarize([s.elapsed_time(e) for s, e in events])
    out["warmup"] = warmup
    out["input_sets"] = len(fns)
    # When enqueueing a run takes the host about as long as the GPU needs for it, the GPU idles between the
    # events waiting for the launch, and the median overstates the device time: say so next to the figure.
    out["host_enqueue_ms"] = host_ms
    out["launch_bound"] = host_ms >= 0.8 * out["median_ms"]
    return out
