"""Channels-last resolution changes used by SSMIC's VSSM transforms (names as the seed: reduction, norm)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class Permute(nn.Module):
    """``x.permute(*dims)`` as a module (keeps Sequential indices equal to the seed's)."""

    def __init__(self, *dims: int):
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.dims)


class PatchMerging2D(nn.Module):
    """(B,H,W,C) -> (B,H/2,W/2,out): 2x2 space-to-depth ``cat(x[0::2,0::2], x[1::2,0::2], x[0::2,1::2],
    x[1::2,1::2])``, norm over 4C, Linear 4C -> out (no bias). Odd sizes are zero-padded at the end."""

    def __init__(self, dim: int, out_dim: int, norm_layer=nn.LayerNorm):
        super().__init__()
        self.reduction = nn.Linear(4 * dim, out_dim, bias=False)
        self.norm = norm_layer(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[1], x.shape[2]
        if H % 2 or W % 2:
            x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


def _pixel_shuffle_nhwc(x: torch.Tensor) -> torch.Tensor:
    return F.pixel_shuffle(x.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)


class PatchSpliting2D(nn.Module):
    """(B,H,W,C) -> (B,2H,2W,out): Linear C -> 4·out (no bias), norm over 4·out, PixelShuffle(2).
    (Spelling as the seed's class.)"""

    def __init__(self, dim: int, out_dim: int, norm_layer=nn.LayerNorm):
        super().__init__()
        self.reduction = nn.Linear(dim, 4 * out_dim, bias=False)
        self.norm = norm_layer(4 * out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _pixel_shuffle_nhwc(self.norm(self.reduction(x)))


class PatchUnpack2D(nn.Module):
    """(B,H,W,C) -> (B,2H,2W,out): Linear C -> 4·out with bias, PixelShuffle(2), no norm."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.reduction = nn.Linear(dim, 4 * out_dim, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _pixel_shuffle_nhwc(self.reduction(x))
