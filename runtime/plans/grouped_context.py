"""Plan ``grouped_context`` (BaSIC): a scalable mean-scale hyperprior whose level is chosen at encode time.

The plan's ``levels`` (runtime/levels.py) pick a width for each transform and a context coder; the level is
written into the container header and the decoder reads it from there (``ctx.level``). Graphs, one per
(module, width) and one per coder (docs/FORMATS.md)::

    w<W>.analysis         g_a: x -> y          w<W>.hyper_analysis  h_a: y -> z      (encoder only)
    w<W>.hyper_synthesis  h_s: z_hat -> params [1, 2M, h, w]                    (parse-critical)
    w<W>.synthesis        g_s: y_hat -> x_hat                                   (decoder only)
    context.<coder>                                                             (parse-critical)

Streams ``z`` (factorized, tables ``z``) then ``y`` (one stream, tables ``y``). The ``y`` coder is
``plan.coders[<coder>]``:

* ``{"kind": "scanline", "graph": ..., "order": "wavefront"}``: the spatial-context loop
  (runtime/plans/spatial_context.py): graph (params [P, 2M], windows [P, M, 5, 5]) -> scales, means [P, M],
  one batched call per wavefront step t = 3i + j (3(h-1) + w steps).
* ``{"kind": "staged", "graph": ..., "groups": G, "stage_table": A [G][2][2]}``: symbol (c, h, w) is in stage
  ``A[c // (M/G)][h % 2][w % 2]`` (0 outside the 2x2 tiling when h or w is odd). One step per non-empty
  stage in ascending order: ONE call of the graph (y_hat [1, M, h, w] with the symbols decoded so far and zeros
  elsewhere, params) -> scales, means [1, M, h, w], then that stage's symbols in (c, h, w) order.
"""

from __future__ import annotations

import time

import numpy as np

from ..bundle import level_graph
from ..levels import levels_of
from ._entropy import build_indexes, from_symbols, to_symbols
from .hyperprior import code_z, decode_z
from .spatial_context import context_loop


def stage_map(stage_table, M: int, h: int, w: int) -> np.ndarray:
    """S[c, i, j] (int32) of a staged coder."""
    A = np.asarray(stage_table, np.int32)
    G = A.shape[0]
    if A.shape != (G, 2, 2) or M % G:
        raise ValueError(f"stage table of shape {A.shape} does not fit {M} channels")
    S = np.zeros((M, h, w), np.int32)
    he, we = h - h % 2, w - w % 2
    g = np.arange(M) // (M // G)
    S[:, :he, :we] = A[g][:, np.arange(he) % 2][:, :, np.arange(we) % 2]
    return S


def level_of(ctx) -> dict:
    level = getattr(ctx, "level", None)
    if level is None:
        level = levels_of(ctx.bundle.plan).parse(None)
    return level


def staged_loop(ctx, params: np.ndarray, y: np.ndarray | None, coder: dict) -> np.ndarray:
    """Code stream ``y`` stage by stage; ``params`` [1, 2M, h, w]. Returns ŷ [1, M, h, w]."""
    M, h, w = params.shape[1] // 2, params.shape[2], params.shape[3]
    if y is not None and y.shape != (1, M, h, w):
        raise ValueError(f"analysis y {y.shape} does not match hyper_synthesis params {params.shape}")
    S = stage_map(coder["stage_table"], M, h, w)
    t = ctx.tables("y")
    y_hat = np.zeros((1, M, h, w), np.float32)
    stream = ctx.stream_encoder("y", "y") if y is not None else ctx.stream_decoder("y", "y")
    stages = np.unique(S)
    ctx.expect(len(stages))  # one graph call per stage
    t0 = time.perf_counter()
    for s in stages:
        out = ctx.run(coder["graph"], y_hat=y_hat, params=params)
        sel = S == s
        idx = build_indexes(out["scales"][0][sel], t.scale_table, t.scale_bound)
        means = out["means"][0][sel]
        if y is not None:
            q = to_symbols(y[0][sel], means)
            stream.encode(q, idx)
        else:
            q = stream.decode(idx)
        y_hat[0][sel] = from_symbols(q, means)
        ctx.stats.sequential_steps += 1
    stream.close()
    ctx.stats.loop_s += time.perf_counter() - t0
    return y_hat


def _code_y(ctx, params, y, level):
    coder = ctx.bundle.plan["coders"][level["context"]]
    if coder["kind"] == "scanline":
        return context_loop(ctx, params[0], y, coder["graph"], coder.get("order", "wavefront"))
    if coder["kind"] == "staged":
        return staged_loop(ctx, params, y, coder)
    raise ValueError(f"unknown context coder kind {coder['kind']!r} (scanline, staged)")


def encode(ctx, x):
    level = level_of(ctx)
    ctx.expect(3)  # g_a, h_a, h_s; the y coder announces its steps
    y = ctx.run(level_graph("g_a", level["g_a"]), x=x)["y"]
    z = ctx.run(level_graph("h_a", level["h_a"]), y=y)["z"]
    z_hat = code_z(ctx, z)
    params = ctx.run(level_graph("h_s", level["h_s"]), z_hat=z_hat)["params"]
    _code_y(ctx, params, y, level)


def decode(ctx, padded_hw):
    level = level_of(ctx)
    ctx.expect(2)  # h_s, g_s; the y coder announces its steps
    z_hat = decode_z(ctx, padded_hw)
    params = ctx.run(level_graph("h_s", level["h_s"]), z_hat=z_hat)["params"]
    y_hat = _code_y(ctx, params, None, level)
    return ctx.run(level_graph("g_s", level["g_s"]), y_hat=np.ascontiguousarray(y_hat))["x_hat"]
