"""Plan ``spatial_context`` (mbt2018, SSMIC): hyperprior params + masked 5×5 context on already-coded ŷ.

Streams ``z`` (factorized) then ``y`` (one incremental stream).  Graphs: ``hyper_synthesis`` z_hat→params
[1,2M,h,w]; ``context_step`` (params [P,2M], windows [P,M,5,5]) → scales, means [P,M] — the 5×5 window of ŷ
centred on each position, zero outside the latent and at positions not yet coded (the graph masks them).

Order (plan ``context.order``): ``wavefront`` (default) codes every position with t = 3·i + j in one step —
every 5×5-causal dependency has a smaller t — so there are 3(h−1)+w steps, each ONE batched context_step call
and ONE coder call; ``raster`` codes one position per step (h·w steps, for the benchmark).  Encoder and
decoder build ŷ in the same order with the same batches, so the parse-critical calls are identical.
"""

from __future__ import annotations

import time

import numpy as np

from ._entropy import build_indexes, from_symbols, to_symbols
from .hyperprior import code_z, decode_z

K = 5


def schedule(h: int, w: int, order: str = "wavefront") -> list[tuple[np.ndarray, np.ndarray]]:
    """The coding steps: a list of (rows, cols) index arrays, each step's positions in raster order."""
    if order == "raster":
        return [(np.array([i]), np.array([j])) for i in range(h) for j in range(w)]
    if order != "wavefront":
        raise ValueError(f"unknown context order '{order}' (wavefront, raster)")
    steps = []
    for t in range(3 * (h - 1) + w):
        i = np.arange(max(0, -(-(t - w + 1) // 3)), min(h - 1, t // 3) + 1)
        if i.size:  # empty only when w < 3
            steps.append((i, t - 3 * i))
    return steps


def _windows(y_pad: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """[P, M, 5, 5] windows of the zero-padded ŷ [M, h+4, w+4] centred on (rows, cols)."""
    r = rows[:, None, None] + np.arange(K)[None, :, None]
    c = cols[:, None, None] + np.arange(K)[None, None, :]
    return np.ascontiguousarray(y_pad[:, r, c].transpose(1, 0, 2, 3))


def _order(ctx) -> str:
    return getattr(ctx, "context_order", None) or ctx.bundle.plan.get("context", {}).get("order", "wavefront")


def _run(ctx, x=None, padded_hw=None):
    """The shared loop: ``x`` given → encode, else decode.  Returns ŷ [1,M,h,w]."""
    ctx.expect(2)  # analysis (decode: synthesis) and hyper_synthesis; context_loop announces its steps
    if x is not None:
        a = ctx.run("analysis", x=x)
        y = a["y"]
        z_hat = code_z(ctx, a["z"])
    else:
        y, z_hat = None, decode_z(ctx, padded_hw)
    params = ctx.run("hyper_synthesis", z_hat=z_hat)["params"][0]  # [2M, h, w]
    return context_loop(ctx, params, y, "context_step", _order(ctx))


def context_loop(ctx, params: np.ndarray, y: np.ndarray | None, step_graph: str, order: str) -> np.ndarray:
    """Code stream ``y`` position by position (wavefront or raster steps), calling ``step_graph`` once per step.

    ``params`` [2M, h, w] from the hyper-synthesis; ``y`` [1, M, h, w] when encoding, None when decoding.
    Returns ŷ [1, M, h, w].
    """
    M, h, w = params.shape[0] // 2, params.shape[1], params.shape[2]
    if y is not None and y.shape[1:] != (M, h, w):
        raise ValueError(f"analysis y {y.shape} does not match hyper_synthesis params {params.shape}")
    t = ctx.tables("y")
    y_pad = np.zeros((M, h + K - 1, w + K - 1), np.float32)
    coder = ctx.stream_encoder("y", "y") if y is not None else ctx.stream_decoder("y", "y")
    steps = schedule(h, w, order)
    ctx.expect(len(steps))  # one step_graph call per step
    t0 = time.perf_counter()
    for rows, cols in steps:
        out = ctx.run(
            step_graph, params=np.ascontiguousarray(params[:, rows, cols].T), windows=_windows(y_pad, rows, cols)
        )
        idx = build_indexes(out["scales"], t.scale_table, t.scale_bound)  # [P, M]
        means = out["means"]
        if y is not None:
            q = to_symbols(y[0][:, rows, cols].T, means)
            coder.encode(q, idx)
        else:
            q = coder.decode(idx)
        y_pad[:, rows + K // 2, cols + K // 2] = from_symbols(q, means).T
        ctx.stats.sequential_steps += 1
    coder.close()
    ctx.stats.loop_s += time.perf_counter() - t0
    return y_pad[None, :, K // 2 : K // 2 + h, K // 2 : K // 2 + w]


def encode(ctx, x):
    _run(ctx, x=x)


def decode(ctx, padded_hw):
    y_hat = _run(ctx, padded_hw=padded_hw)
    return ctx.run("synthesis", y_hat=np.ascontiguousarray(y_hat))["x_hat"]
