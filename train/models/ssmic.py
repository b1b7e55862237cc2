"""SSMIC (Arezki et al., MMSP 2024): VSS-block transforms with mbt2018's masked 5x5 spatial context.

Layout and parameter names follow ``arezkibouzid/SSMIC`` (``SSMIC.py``, ``layers/VSSM.py``) so its state_dicts
load. Unlike the seed, every transform takes and returns NCHW (the channels-last permutes happen inside), so
CompressAI's ``JointAutoregressiveHierarchicalPriors`` forward/compress/decompress work unchanged.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn as nn
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.layers import MaskedConv2d
from compressai.models import CompressionModel, JointAutoregressiveHierarchicalPriors

from train.layers.norm import RMSNorm
from train.layers.patch import PatchMerging2D, PatchSpliting2D, PatchUnpack2D, Permute
from train.layers.vss import VSSBlock


def _blocks(dim: int, depth: int, mlp_ratio: float, d_state: int) -> nn.Sequential:
    return nn.Sequential(*[VSSBlock(dim, norm="rms", mlp_ratio=mlp_ratio, d_state=d_state) for _ in range(depth)])


def _init_linear(m: nn.Module) -> None:
    """The seed VSSM's init: Linear weights trunc-normal(0.02), biases 0."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class VSSAnalysis(nn.Module):
    """Downsampling VSSM: optional patch embed (Conv k2 s2 + RMSNorm), then per stage i a PatchMerging2D
    (``dims[i] -> dims[i+1]``; Identity for stage 0 when embedding) and ``depths[i]`` VSS blocks at dims[i+1].
    NCHW in, NCHW out."""

    def __init__(
        self, in_ch: int, dims: Sequence[int], depths: Sequence[int], mlp_ratio: float, d_state: int, embed: bool
    ):
        super().__init__()
        if embed:
            self.patch_embed = nn.Sequential(nn.Conv2d(in_ch, dims[0], 2, 2), Permute(0, 2, 3, 1), RMSNorm(dims[0]))
        else:
            self.patch_embed = Permute(0, 2, 3, 1)
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            down = nn.Identity() if (embed and i == 0) else PatchMerging2D(dims[i], dims[i + 1], RMSNorm)
            self.layers.append(
                nn.Sequential(OrderedDict(downsample=down, blocks=_blocks(dims[i + 1], depth, mlp_ratio, d_state)))
            )
        self.apply(_init_linear)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        return x.permute(0, 3, 1, 2)


class VSSSynthesis(nn.Module):
    """Upsampling VSSM: per stage i, ``depths[i]`` VSS blocks at dims[i] then a PatchSpliting2D to outs[i]
    (a PatchUnpack2D for the last stage when ``unpack_last``). NCHW in, NCHW out."""

    def __init__(
        self,
        dims: Sequence[int],
        outs: Sequence[int],
        depths: Sequence[int],
        mlp_ratio: float,
        d_state: int,
        unpack_last: bool,
    ):
        super().__init__()
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            last = i == len(depths) - 1
            up = (
                PatchUnpack2D(dims[i], outs[i])
                if (last and unpack_last)
                else PatchSpliting2D(dims[i], outs[i], RMSNorm)
            )
            self.layers.append(
                nn.Sequential(OrderedDict(blocks=_blocks(dims[i], depth, mlp_ratio, d_state), upsample=up))
            )
        self.apply(_init_linear)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        for layer in self.layers:
            x = layer(x)
        return x.permute(0, 3, 1, 2)


class SSMIC(JointAutoregressiveHierarchicalPriors):
    """SSMIC. y = g_a(x): M @ H/16; z = h_a(y): N @ H/64; h_s(z_hat): 2M @ H/16; context
    ``MaskedConv2d(M, 2M, 5)``; ``entropy_parameters`` 1x1 convs 4M -> 10M/3 -> 8M/3 -> 2M (scales, means).

    ``dims`` are the widths of the first three analysis stages (the fourth is M), ``depths`` the VSS depths
    of the four analysis stages (synthesis mirrors them), ``hyper_depths`` those of h_a's two stages (h_s
    mirrors them). MLP ratio 2 in g_a/g_s and 4 in h_a/h_s, as in the seed.
    """

    def __init__(
        self,
        N: int = 192,
        M: int = 320,
        dims: Sequence[int] = (128, 192, 256),
        depths: Sequence[int] = (2, 2, 6, 2),
        hyper_depths: Sequence[int] = (5, 1),
        d_state: int = 16,
        mlp_ratio: float = 2.0,
        hyper_mlp_ratio: float = 4.0,
    ):
        CompressionModel.__init__(self)  # skip the parent's conv transforms; build ours below
        if len(dims) != 3 or len(depths) != 4 or len(hyper_depths) != 2:
            raise ValueError("SSMIC needs 3 dims, 4 depths and 2 hyper_depths")
        self.N, self.M = int(N), int(M)
        a_dims = [dims[0], dims[0], dims[1], dims[2], M]
        self.g_a = VSSAnalysis(3, a_dims, depths, mlp_ratio, d_state, embed=True)
        self.g_s = VSSSynthesis(
            [M, dims[2], dims[1], dims[0]],
            [dims[2], dims[1], dims[0], 3],
            depths[::-1],
            mlp_ratio,
            d_state,
            unpack_last=True,
        )
        self.h_a = VSSAnalysis(M, [M, N, N], hyper_depths, hyper_mlp_ratio, d_state, embed=False)
        self.h_s = VSSSynthesis([N, N], [N, 2 * M], hyper_depths[::-1], hyper_mlp_ratio, d_state, unpack_last=False)
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional(None)
        self.context_prediction = MaskedConv2d(M, 2 * M, kernel_size=5, padding=2, stride=1)
        self.entropy_parameters = nn.Sequential(
            nn.Conv2d(M * 12 // 3, M * 10 // 3, 1),
            nn.LeakyReLU(inplace=True),
            nn.Conv2d(M * 10 // 3, M * 8 // 3, 1),
            nn.LeakyReLU(inplace=True),
            nn.Conv2d(M * 8 // 3, M * 6 // 3, 1),
        )

    coding_plan = "spatial_context"
    pad_multiple = 64

    @property
    def downsampling_factor(self) -> int:
        return 2 ** (4 + 2)
