"""Coding plans: one routine per plan kind, the same plan on encoder and decoder.

A plan module exposes ``encode(ctx, x) -> None`` (it adds streams to ``ctx``) and
``decode(ctx, padded_hw) -> x_hat``; :class:`runtime.plans.context.PlanContext` runs graphs on the right
backend, codes streams and keeps the stats.
"""

from __future__ import annotations

import importlib

#: the plan kinds this runtime implements (their container codes: runtime.container.PLAN_KINDS)
KINDS = (
    "factorized",
    "hyperprior",
    "mean_scale",
    "spatial_context",
    "channel_slices",
    "grouped_context",
    "grouped_slices",
)


def get(kind: str):
    if kind not in KINDS:
        from ..bundle import BundleError

        raise BundleError(f"plan kind '{kind}' is not implemented by this runtime (has {', '.join(KINDS)})")
    return importlib.import_module(f"{__name__}.{kind}")
