"""VSS blocks: SSMIC's (RMSNorm, SS2D, RMSNorm, MLP; channels-last) and MambaVC's (LayerNorm, SS2D; NCHW)."""

from __future__ import annotations

import torch
import torch.nn as nn

from train.layers.norm import RMSNorm
from train.layers.ss2d import SS2D


class DropPath(nn.Module):
    """Stochastic depth on the residual branch (per sample); identity in eval mode or at p = 0."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class Mlp(nn.Module):
    """fc1 (bias) -> GELU -> fc2 (bias), on the last dimension."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class VSSBlock(nn.Module):
    """``x + SS2D(norm(x))`` then, if ``mlp_ratio > 0``, ``x + MLP(norm2(x))``.

    ``norm="rms"`` (SSMIC) or ``"ln"`` (MambaVC, LayerNorm eps 1e-5). ``channels_first=True`` takes and
    returns NCHW (MambaVC); otherwise NHWC (SSMIC).
    """

    def __init__(
        self,
        dim: int,
        norm: str = "rms",
        mlp_ratio: float = 0.0,
        channels_first: bool = False,
        drop_path: float = 0.0,
        d_state: int = 16,
        ssm_ratio: float = 2.0,
    ):
        super().__init__()
        make_norm = {"rms": RMSNorm, "ln": nn.LayerNorm}[norm]
        self.channels_first = channels_first
        self.norm = make_norm(dim)
        self.op = SS2D(dim, d_state=d_state, ssm_ratio=ssm_ratio)
        self.drop_path = DropPath(drop_path)
        if mlp_ratio > 0:
            self.norm2 = make_norm(dim)
            self.mlp = Mlp(dim, int(dim * mlp_ratio))
        else:
            self.norm2 = self.mlp = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_first:
            x = x.permute(0, 2, 3, 1)
        x = x + self.drop_path(self.op(self.norm(x)))
        if self.mlp is not None:
            x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x.permute(0, 3, 1, 2) if self.channels_first else x
