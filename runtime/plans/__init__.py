"""Coding plans: one routine per plan kind, the same plan on encoder and decoder.

A plan module exposes ``encode(ctx, x) -> None`` (it adds streams to ``ctx``) and
``decode(ctx, padded_hw) -> x_hat``; :class:`runtime.plans.context.PlanContext` runs graphs on the right
backend, codes streams and keeps the stats.
"""

from __future__ import annotations

import importlib

KINDS = ("factorized", "hyperprior", "mean_scale", "spatial_context", "channel_slices", "grouped_slices")
#: plan-kind ids recorded in the container's u8 plan kind
KIND_IDS = {"factorized": 0, "hyperprior": 1, "mean_scale": 2, "spatial_context": 3, "channel_slices": 4,
            "grouped_context": 5, "grouped_slices": 6}


def get(kind: str):
    if kind not in KINDS:
        from ..bundle import BundleError

        raise BundleError(f"plan kind '{kind}' is not implemented by this runtime (has {', '.join(KINDS)})")
    return importlib.import_module(f"{__name__}.{kind}")
