"""Plan ``factorized`` (bmshj2018-factorized, SlimCAE widths): y coded with a per-channel factorized prior.

Stream ``y``: symbols round(y − median[c]), table = channel.  No parse-critical network.
Table group ``y`` (``z`` when the bundle names it so, as SlimCAE's exporter does).
Plan fields: ``y_stride`` (default: the pad multiple), ``widths`` (slimmable: graphs/tables prefixed ``w<W>.``).
"""

from __future__ import annotations

from ._entropy import channel_indexes, from_symbols, medians_of, to_symbols


def _model(ctx) -> str:
    return "y" if ctx.prefix + "y" in ctx.bundle.tables else "z"


def encode(ctx, x):
    ctx.expect(1)  # analysis
    y = ctx.run("analysis", x=x)["y"]
    t = ctx.tables(_model(ctx))
    med = medians_of(y.shape, t.medians)
    ctx.encode("y", _model(ctx), to_symbols(y, med), channel_indexes(y.shape))
    ctx.stats.sequential_steps += 1


def decode(ctx, padded_hw):
    ctx.expect(1)  # synthesis
    t = ctx.tables(_model(ctx))
    stride = int(ctx.bundle.plan.get("y_stride", ctx.bundle.pad_multiple))
    shape = (1, t.cdf.shape[0], padded_hw[0] // stride, padded_hw[1] // stride)
    y_hat = from_symbols(ctx.decode("y", _model(ctx), channel_indexes(shape)), medians_of(shape, t.medians))
    ctx.stats.sequential_steps += 1
    return ctx.run("synthesis", y_hat=y_hat)["x_hat"]
