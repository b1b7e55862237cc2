"""Plan ``hyperprior`` (bmshj2018-hyperprior): z with a factorized prior, y with σ = h_s(ẑ), zero mean.

Streams ``z`` then ``y``.  Parse-critical: ``hyper_synthesis`` (its σ picks the y tables).
Plan fields: ``z_stride`` (default: the bundle's pad multiple).
"""

from __future__ import annotations

from ._entropy import build_indexes, channel_indexes, from_symbols, medians_of, to_symbols


def code_z(ctx, z):
    """Encode z and return ẑ exactly as the decoder will rebuild it."""
    t = ctx.tables("z")
    med = medians_of(z.shape, t.medians)
    q = to_symbols(z, med)
    ctx.encode("z", "z", q, channel_indexes(z.shape))
    return from_symbols(q, med)


def decode_z(ctx, padded_hw):
    t = ctx.tables("z")
    stride = int(ctx.bundle.plan.get("z_stride", ctx.bundle.pad_multiple))
    shape = (1, t.cdf.shape[0], padded_hw[0] // stride, padded_hw[1] // stride)
    return from_symbols(ctx.decode("z", "z", channel_indexes(shape)), medians_of(shape, t.medians))


def y_params(ctx, z_hat):
    """(indexes, means or None) of y from ẑ — the parse-critical step, identical on both sides."""
    out = ctx.run("hyper_synthesis", z_hat=z_hat)
    t = ctx.tables("y")
    return build_indexes(out["scales"], t.scale_table, t.scale_bound), out.get("means")


def encode(ctx, x):
    ctx.expect(2)  # analysis, hyper_synthesis
    a = ctx.run("analysis", x=x)
    z_hat = code_z(ctx, a["z"])
    idx, means = y_params(ctx, z_hat)
    if idx.shape != a["y"].shape:
        raise ValueError(f"hyper_synthesis gives {idx.shape}, analysis y is {a['y'].shape}")
    ctx.encode("y", "y", to_symbols(a["y"], means), idx)
    ctx.stats.sequential_steps += 2


def decode(ctx, padded_hw):
    ctx.expect(2)  # hyper_synthesis, synthesis
    z_hat = decode_z(ctx, padded_hw)
    idx, means = y_params(ctx, z_hat)
    y_hat = from_symbols(ctx.decode("y", "y", idx), means)
    ctx.stats.sequential_steps += 2
    return ctx.run("synthesis", y_hat=y_hat)["x_hat"]
