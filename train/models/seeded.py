"""Random-weight models that still code real symbols: for tests and benchmarks without a trained checkpoint.

An untrained model quantizes its latent to almost all zeros and clamps every σ at the scale table's lower bound,
which would leave the entropy coder and the parse-critical networks untested. ``codable_model`` nudges the
weights: the analysis output is scaled up (non-zero symbols) and the layer that outputs σ gets biases spread
log-uniformly over [0.2, 8] (σ spans the scale table, so the indexes really depend on that network).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from train.models import create_model

ANALYSIS_GAIN = 12.0
SIGMA_RANGE = (0.2, 8.0)


def _convs(module: nn.Module, types=(nn.Conv2d,)) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, types)]


def codable_model(arch: str, preset: str | None = None, quality: int | None = None, seed: int = 0) -> nn.Module:
    """``create_model(arch, preset, quality)`` seeded with ``seed``, nudged as the module docstring says, updated
    (entropy tables built), in eval mode without gradients. Archs without a rule are returned as initialised."""
    torch.manual_seed(seed)
    m = create_model(arch, preset=preset, quality=quality).eval()
    g = torch.Generator().manual_seed(seed + 1)

    def spread(bias):
        lo, hi = np.log(SIGMA_RANGE[0]), np.log(SIGMA_RANGE[1])
        bias[:] = torch.exp(torch.empty(bias.shape[0]).uniform_(lo, hi, generator=g))

    with torch.no_grad():
        if arch == "mambavc":
            _convs(m.g_a)[-1].weight.mul_(ANALYSIS_GAIN)
            for t in m.cc_scale_transforms:
                spread(_convs(t)[-1].bias)
        elif arch == "gitssic":  # g_a ends in a residual Swin stage: scale the stage input (its patch embed)
            m.g_a.pe[-1].proj.weight.mul_(ANALYSIS_GAIN)
            m.g_a.pe[-1].proj.bias.mul_(ANALYSIS_GAIN)
            for t in m.char_m_scales:
                spread(_convs(t)[-1].bias)
        elif arch == "ssmic":  # g_a ends in a residual VSS stage: scale the stage input (its downsample norm)
            m.g_a.layers[-1].downsample.norm.scale.mul_(ANALYSIS_GAIN)
            last = _convs(m.entropy_parameters)[-1]
            spread(last.bias[: last.bias.shape[0] // 2])  # scales first, as in mbt2018
        elif arch in ("basic", "basic-scanline"):  # g_a's last conv; sigma = p[2k+1] of every coder's last 1x1
            m.g_a.pgm_model[-1].weight.mul_(ANALYSIS_GAIN)
            for coder in m.context_coders:
                spread(coder.topo_group_context_model.param_merger_out[-1].bias[1::2])
        elif arch in ("bmshj2018-hyperprior", "mbt2018-mean", "mbt2018"):
            _convs(m.g_a)[-1].weight.mul_(ANALYSIS_GAIN)
            scale_net = m.entropy_parameters if arch == "mbt2018" else m.h_s  # the layer that outputs σ
            last = _convs(scale_net, (nn.Conv2d, nn.ConvTranspose2d))[-1]
            M = last.bias.shape[0]
            spread(last.bias[: M if arch == "bmshj2018-hyperprior" else M // 2])
    m.update(force=True)
    return m.requires_grad_(False)
