"""Model registry: every architecture lictrt knows, its presets, and how to build and describe a model.

``create_model(arch, preset=None, quality=None, **overrides)`` returns a CompressAI ``CompressionModel`` that
also carries ``lictrt_arch``, ``lictrt_config`` (constructor kwargs: ``create_model(arch, **config)`` rebuilds
it), ``coding_plan`` (the manifest's plan kind) and ``pad_multiple`` (input size multiple).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

import torch.nn as nn

__all__ = ["ARCHS", "ArchSpec", "create_model", "model_config", "count_parameters", "arch_names"]

# CompressAI zoo (N, M) per quality (compressai/zoo/image.py cfgs).
_HYPERPRIOR_Q = {q: dict(N=128, M=192) if q <= 5 else dict(N=192, M=320) for q in range(1, 9)}
_MEAN_Q = {q: dict(N=128, M=192) if q <= 4 else dict(N=192, M=320) for q in range(1, 9)}
_JOINT_Q = {q: dict(N=192, M=192) if q <= 4 else dict(N=192, M=320) for q in range(1, 9)}


@dataclass(frozen=True)
class ArchSpec:
    """One architecture: where its class lives, its presets and how it is entropy-coded."""

    name: str
    target: str  # "module:Class"; imported lazily so the registry is cheap to import
    coding_plan: str
    pad_multiple: int  # of the default preset; a model's own ``pad_multiple`` is authoritative
    presets: dict[str, dict[str, Any]]
    default_preset: str
    qualities: dict[int, str] = field(default_factory=dict)  # quality -> preset name
    description: str = ""

    def model_class(self) -> Callable[..., nn.Module]:
        module, cls = self.target.split(":")
        return getattr(importlib.import_module(module), cls)


def _compressai_spec(name, cls, plan, table, tiny, description):
    presets = {f"q{q}": dict(cfg) for q, cfg in table.items()}
    presets["tiny"] = tiny
    return ArchSpec(name, f"compressai.models:{cls}", plan, 64, presets, "q8", {q: f"q{q}" for q in table}, description)


_PAPER_Q = {q: "paper" for q in range(1, 9)}  # our archs keep one layout at every rate point

ARCHS: dict[str, ArchSpec] = {
    s.name: s
    for s in (
        _compressai_spec(
            "bmshj2018-hyperprior",
            "ScaleHyperprior",
            "hyperprior",
            _HYPERPRIOR_Q,
            dict(N=16, M=24),
            "Ballé 2018 scale hyperprior (CompressAI)",
        ),
        _compressai_spec(
            "mbt2018-mean",
            "MeanScaleHyperprior",
            "mean_scale",
            _MEAN_Q,
            dict(N=16, M=24),
            "Minnen 2018 mean-scale hyperprior (CompressAI)",
        ),
        _compressai_spec(
            "mbt2018",
            "JointAutoregressiveHierarchicalPriors",
            "spatial_context",
            _JOINT_Q,
            dict(N=16, M=24),
            "Minnen 2018 joint autoregressive + hyperprior (CompressAI)",
        ),
        ArchSpec(
            "ssmic",
            "train.models.ssmic:SSMIC",
            "spatial_context",
            64,
            {
                "paper": dict(N=192, M=320),
                "small": dict(N=96, M=160, dims=(64, 96, 128), depths=(1, 1, 2, 1), hyper_depths=(2, 1)),
                "tiny": dict(N=16, M=24, dims=(8, 16, 16), depths=(1, 1, 1, 1), hyper_depths=(1, 1), d_state=4),
            },
            "paper",
            _PAPER_Q,
            "SSMIC: VSS-block transforms + mbt2018 spatial context (Arezki 2024)",
        ),
        ArchSpec(
            "mambavc",
            "train.models.mambavc:MambaVC",
            "channel_slices",
            128,
            {
                "paper": dict(N=128, M=320),
                "small": dict(N=64, M=160, depths=(1, 1, 2, 1), z_channels=96, slice_hidden=(112, 64), atten_dim=64),
                "tiny": dict(
                    N=4,
                    M=40,
                    depths=(1, 1, 1, 1),
                    z_channels=16,
                    window_size=4,
                    d_state=4,
                    slice_hidden=(24, 16),
                    atten_dim=16,
                    head_dim=8,
                ),
            },
            "paper",
            _PAPER_Q,
            "MambaVC: VSS transforms + channel-wise AR with SWAtten (Qin 2024)",
        ),
        ArchSpec(
            "slimcae",
            "train.models.slimcae:SlimCAE",
            "factorized",
            16,
            {"paper": dict(N=192, widths=(192, 144, 96, 72, 48)), "tiny": dict(N=16, widths=(16, 12, 8))},
            "paper",
            _PAPER_Q,
            "SlimCAE: slimmable factorized-prior autoencoder (Yang 2021)",
        ),
        ArchSpec(
            "basic",
            "train.models.basic:BaSIC",
            "grouped_context",
            64,
            {
                "paper": dict(N=192, M=192, level_widths=(48, 72, 96, 144, 192)),
                "tiny": dict(N=16, M=24, level_widths=(8, 16), predictor_channels=8),
            },
            "paper",
            _PAPER_Q,
            "BaSIC: widths per module + scanline / 8/6/4/2-stage context (Zhang 2024)",
        ),
        ArchSpec(
            "basic-scanline",
            "train.models.basic:BaSIC",
            "grouped_context",
            64,
            {
                "paper": dict(N=192, M=192, level_widths=(48, 72, 96, 144, 192), coders=("scanline",)),
                "tiny": dict(N=16, M=24, level_widths=(8, 16), coders=("scanline",), predictor_channels=8),
            },
            "paper",
            _PAPER_Q,
            "BaSIC with the scanline context coder only (Zhang 2024)",
        ),
        ArchSpec(
            "gitssic",
            "train.models.gitssic:GITSSIC",
            "grouped_slices",
            128,
            {
                "paper": dict(
                    dims=(128, 192, 256, 320),
                    depths=(2, 2, 5, 1),
                    heads=(8, 12, 16, 16),
                    window_size=8,
                    hyper_channels=192,
                    num_slices=10,
                ),
                "tiny": dict(
                    dims=(8, 12, 16, 20),
                    depths=(2, 1, 1, 2),
                    heads=(2, 2, 2, 2),
                    window_size=4,
                    hyper_channels=16,
                    num_slices=5,
                ),
            },
            "paper",
            _PAPER_Q,
            "GIT-SSIC: group-masked Swin transforms + ChARM, per-group streams (Feng 2023)",
        ),
    )
}


def arch_names() -> list[str]:
    return list(ARCHS)


def _spec(arch: str) -> ArchSpec:
    try:
        return ARCHS[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}") from None


def resolve_config(
    arch: str, preset: str | None = None, quality: int | None = None, **overrides: Any
) -> dict[str, Any]:
    """The constructor kwargs for ``arch`` at ``preset`` (or ``quality``), with ``overrides`` applied.

    With neither preset nor quality and no overrides, the default preset is used; with overrides only,
    the overrides are the whole config on top of the default preset.
    """
    spec = _spec(arch)
    if preset is not None and quality is not None:
        raise ValueError(f"give a preset or a quality for {arch}, not both")
    if quality is not None:
        if quality not in spec.qualities:
            raise ValueError(
                f"unknown quality {quality!r} for {arch}; choose one of {', '.join(map(str, spec.qualities))}"
            )
        preset = spec.qualities[quality]
    if preset is None:
        preset = spec.default_preset
    if preset not in spec.presets:
        raise ValueError(f"unknown preset {preset!r} for {arch}; choose one of {', '.join(spec.presets)}")
    config = dict(spec.presets[preset])
    config.update(overrides)
    return config


def create_model(arch: str, preset: str | None = None, quality: int | None = None, **overrides: Any) -> nn.Module:
    """Build ``arch`` at a preset/quality; ``overrides`` replace single constructor kwargs."""
    spec = _spec(arch)
    config = resolve_config(arch, preset, quality, **overrides)
    cls = spec.model_class()
    try:
        model = cls(**config)
    except TypeError as e:
        raise ValueError(f"bad configuration for {arch}: {e}") from None
    model.lictrt_arch = arch
    model.lictrt_config = _plain(config)
    # Our classes define coding_plan / pad_multiple themselves (MambaVC's depends on its window size).
    if getattr(model, "coding_plan", None) is None:
        model.coding_plan = spec.coding_plan
    if getattr(model, "pad_multiple", None) is None:
        model.pad_multiple = spec.pad_multiple
    return model


def _plain(config: dict[str, Any]) -> dict[str, Any]:
    """Config with tuples turned into lists, so it survives JSON and ``torch.load(weights_only=True)``."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}


def model_config(model: nn.Module) -> dict[str, Any]:
    """Constructor kwargs of ``model`` (``create_model(model.lictrt_arch, **model_config(model))`` rebuilds it)."""
    config = getattr(model, "lictrt_config", None)
    if config is not None:
        return dict(config)
    if hasattr(model, "N") and hasattr(model, "M"):  # a CompressAI model built directly
        return {"N": int(model.N), "M": int(model.M)}
    raise ValueError(f"{type(model).__name__} was not built by train.models.create_model; its config is unknown")


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (all of them, entropy-bottleneck quantiles included, as CompressAI's zoo counts)."""
    return sum(p.numel() for p in model.parameters())
