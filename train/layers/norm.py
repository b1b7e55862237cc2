"""SSMIC's RMSNorm over the last (channel) dimension, exactly as the seed computes it."""

from __future__ import annotations

import torch
import torch.nn as nn


class RMSNorm(nn.Module):
    """``scale * x / (||x||_2 / sqrt(d) + eps)``: eps is added outside the root, no bias, no partial variant.

    Parameter ``scale`` (d,) matches the seed's name, so SSMIC state_dicts load.
    """

    def __init__(self, d: int, eps: float = 1e-5):
        super().__init__()
        self.d = int(d)
        self.eps = float(eps)
        self.scale = nn.Parameter(torch.ones(self.d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rms = torch.linalg.vector_norm(x, ord=2, dim=-1, keepdim=True) * (self.d**-0.5)
        return self.scale * (x / (rms + self.eps))

    def extra_repr(self) -> str:
        return f"{self.d}, eps={self.eps}"
