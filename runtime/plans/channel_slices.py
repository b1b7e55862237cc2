"""Plan ``channel_slices`` (MambaVC, Minnen 2020 style): y coded slice by slice, each slice's (μ, σ) from the
hyperprior and the already decoded slices, then a latent residual prediction (LRP) refines ŷ_i.

Streams ``z`` then ``y0`` … ``y<S-1>`` (one per slice, as the seed code's ``compress`` makes them, so compat
mode reproduces its strings byte for byte); one coder call per slice.  Graphs, all parse-critical except
analysis/synthesis: ``hyper_synthesis`` z_hat → latent_means, latent_scales; ``slice<i>`` (latent_means,
latent_scales, y_hat_0..) → mu, scale; ``lrp<i>`` (latent_means, y_hat_0.., y_hat_<i> = μ + round(y_i − μ))
→ lrp, and ŷ_i = μ + q + lrp.  The support slices a graph takes are read from its manifest inputs, the
slice count from the ``slice<i>`` graphs; y is split like ``torch.chunk`` (chunks of ceil(M/S) channels).
"""

from __future__ import annotations

import re

import numpy as np

from ._entropy import build_indexes, from_symbols, to_symbols
from .hyperprior import code_z, decode_z


def num_slices(ctx) -> int:
    names = [n[len(ctx.prefix) :] for n in ctx.bundle.manifest["graphs"] if n.startswith(ctx.prefix)]
    n = sum(1 for g in names if re.fullmatch(r"slice\d+", g))
    if n == 0 or any(f"slice{i}" not in names or f"lrp{i}" not in names for i in range(n)):
        raise ValueError("plan channel_slices: the bundle needs graphs slice0..sliceN-1 and lrp0..lrpN-1")
    return n


def _feeds(ctx, graph: str, known: dict) -> dict:
    spec = ctx.bundle.graph(ctx.prefix + graph)
    try:
        return {n: known[n] for n in spec.inputs}
    except KeyError as e:
        raise ValueError(f"graph '{graph}' needs input {e}, which this plan does not produce") from None


def _run(ctx, x=None, padded_hw=None):
    n = num_slices(ctx)
    ctx.expect(2 + 2 * n)  # analysis (decode: synthesis), hyper_synthesis, slice<i> and lrp<i> per slice
    if x is not None:
        a = ctx.run("analysis", x=x)
        z_hat = code_z(ctx, a["z"])
    else:
        z_hat = decode_z(ctx, padded_hw)
    known = dict(ctx.run("hyper_synthesis", z_hat=z_hat))  # latent_means, latent_scales
    if x is not None:
        size = -(-a["y"].shape[1] // n)
        ys = [a["y"][:, k : k + size] for k in range(0, a["y"].shape[1], size)]
        if len(ys) != n:
            raise ValueError(f"y with {a['y'].shape[1]} channels does not split into {n} slices")
    t = ctx.tables("y")
    hats = []
    for i in range(n):
        p = ctx.run(f"slice{i}", **_feeds(ctx, f"slice{i}", known))
        mu, idx = p["mu"], build_indexes(p["scale"], t.scale_table, t.scale_bound)
        if x is not None:
            q = to_symbols(ys[i], mu)
            ctx.encode(f"y{i}", "y", q, idx)
        else:
            q = ctx.decode(f"y{i}", "y", idx)
        yq = from_symbols(q, mu)
        lrp = ctx.run(f"lrp{i}", **_feeds(ctx, f"lrp{i}", {**known, f"y_hat_{i}": yq}))["lrp"]
        hats.append(yq + lrp.astype(np.float32))
        known[f"y_hat_{i}"] = hats[-1]
        ctx.stats.sequential_steps += 1
    return np.concatenate(hats, axis=1)


def encode(ctx, x):
    _run(ctx, x=x)


def decode(ctx, padded_hw):
    return ctx.run("synthesis", y_hat=np.ascontiguousarray(_run(ctx, padded_hw=padded_hw)))["x_hat"]
