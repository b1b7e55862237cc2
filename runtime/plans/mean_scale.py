"""Plan ``mean_scale`` (mbt2018-mean): as ``hyperprior`` but h_s gives σ and μ; y symbols = round(y − μ).

Only the indexes (from σ) must be bit-exact: a μ mismatch shifts ŷ slightly but cannot desynchronise.
"""

from __future__ import annotations

from . import hyperprior


def _check(ctx):
    if "means" not in ctx.bundle.graph(ctx.prefix + "hyper_synthesis").outputs:
        raise ValueError("plan mean_scale: graph hyper_synthesis has no 'means' output")


def encode(ctx, x):
    _check(ctx)
    hyperprior.encode(ctx, x)  # y_params returns μ whenever the graph outputs it


def decode(ctx, padded_hw):
    _check(ctx)
    return hyperprior.decode(ctx, padded_hw)
