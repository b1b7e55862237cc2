"""MambaVC (Qin et al., 2024): VSS-block transforms and the TCM-style channel-wise entropy model.

Layout and parameter names follow ``QinSY123/2024-MambaVC`` (``models/MambaVC.py::MAMBAVC``) so its
state_dicts load. The per-slice networks are separate submodules (``atten_mean[i]``, ``atten_scale[i]``,
``cc_mean_transforms[i]``, ``cc_scale_transforms[i]``, ``lrp_transforms[i]``) and :meth:`MambaVC.slice_params`
/ :meth:`MambaVC.slice_lrp` compute one slice step, so the exporter can emit one graph per slice.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models import CompressionModel

from train.layers.swin import SWAtten
from train.layers.vss import VSSBlock


def conv(cin: int, cout: int, kernel_size: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=kernel_size // 2)


def deconv(cin: int, cout: int, kernel_size: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(
        cin, cout, kernel_size, stride=stride, output_padding=stride - 1, padding=kernel_size // 2
    )


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """round(x) in the forward pass, identity gradient."""
    return torch.round(x) - x.detach() + x


class MambaVC(CompressionModel):
    """MambaVC. g_a: conv5 s2 (3->2N), then 3x [depths[i] VSS(2N), conv3 s2] (last to M); h_a: conv3 s2
    (M->2N), depths[3] VSS, conv3 s2 (2N->z); h_mean_s / h_scale_s: deconv3 s2, depths[3] VSS, deconv3 s2
    (->M); g_s mirrors g_a with deconvs (depths reversed). y is split in ``num_slices`` slices; slice i's
    support is cat(latent means|scales, y_hat_<min(i, max_support)>), refined by SWAtten, then cc_mean /
    cc_scale (3x3 convs via slice_hidden) give mu, sigma; LRP adds 0.5*tanh(lrp) to y_hat_i."""

    def __init__(
        self,
        N: int = 128,
        M: int = 320,
        depths: Sequence[int] = (2, 2, 9, 2),
        num_slices: int = 5,
        max_support_slices: int = 5,
        z_channels: int = 192,
        window_size: int = 8,
        drop_path_rate: float = 0.1,
        d_state: int = 16,
        slice_hidden: Sequence[int] = (224, 128),
        atten_dim: int = 128,
        head_dim: int = 16,
    ):
        super().__init__()
        if len(depths) != 4 or M % num_slices:
            raise ValueError("MambaVC needs 4 depths and M divisible by num_slices")
        self.N, self.M = int(N), int(M)
        self.num_slices, self.max_support_slices = int(num_slices), int(max_support_slices)
        self.window_size = window_size
        d = 2 * N
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()

        def vss(n: int, offset: int) -> list[nn.Module]:
            return [
                VSSBlock(d, norm="ln", channels_first=True, drop_path=dpr[offset + i], d_state=d_state)
                for i in range(n)
            ]

        s0, s1, s2 = depths[0], depths[0] + depths[1], depths[0] + depths[1] + depths[2]
        self.g_a = nn.Sequential(
            conv(3, d, 5, 2),
            *vss(depths[0], 0),
            conv(d, d, 3, 2),
            *vss(depths[1], s0),
            conv(d, d, 3, 2),
            *vss(depths[2], s1),
            conv(d, M, 3, 2),
        )
        self.h_a = nn.Sequential(conv(M, d, 3, 2), *vss(depths[3], s2), conv(d, z_channels, 3, 2))
        r = list(depths)[::-1]
        self.h_mean_s = nn.Sequential(deconv(z_channels, d, 3, 2), *vss(r[0], 0), deconv(d, M, 3, 2))
        self.h_scale_s = nn.Sequential(deconv(z_channels, d, 3, 2), *vss(r[0], 0), deconv(d, M, 3, 2))
        self.g_s = nn.Sequential(
            deconv(M, d, 3, 2),
            *vss(r[1], r[0]),
            deconv(d, d, 3, 2),
            *vss(r[2], r[0] + r[1]),
            deconv(d, d, 3, 2),
            *vss(r[3], r[0] + r[1] + r[2]),
            deconv(d, 3, 5, 2),
        )

        sw = M // num_slices
        h1, h2 = slice_hidden

        def support(i: int) -> int:
            return M + sw * min(i, max_support_slices)

        def cc(cin: int) -> nn.Sequential:
            return nn.Sequential(conv(cin, h1, 3, 1), nn.GELU(), conv(h1, h2, 3, 1), nn.GELU(), conv(h2, sw, 3, 1))

        def atten(i: int) -> nn.Sequential:
            return nn.Sequential(SWAtten(support(i), support(i), head_dim, window_size, inter_dim=atten_dim))

        self.atten_mean = nn.ModuleList(atten(i) for i in range(num_slices))
        self.atten_scale = nn.ModuleList(atten(i) for i in range(num_slices))
        self.cc_mean_transforms = nn.ModuleList(cc(support(i)) for i in range(num_slices))
        self.cc_scale_transforms = nn.ModuleList(cc(support(i)) for i in range(num_slices))
        self.lrp_transforms = nn.ModuleList(cc(M + sw * min(i + 1, max_support_slices + 1)) for i in range(num_slices))
        self.entropy_bottleneck = EntropyBottleneck(z_channels)
        self.gaussian_conditional = GaussianConditional(None)

    coding_plan = "channel_slices"

    @property
    def downsampling_factor(self) -> int:
        return 2 ** (4 + 2)

    @property
    def pad_multiple(self) -> int:
        """Input multiple: y (H/16) must tile into the SWAtten windows."""
        return 16 * self.window_size

    # ---------------------------------------------------------------- one slice step (exported per slice)
    def _support(self, i: int, y_hat_slices: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return list(y_hat_slices if self.max_support_slices < 0 else y_hat_slices[: self.max_support_slices])

    def slice_params(
        self, i: int, latent_means: torch.Tensor, latent_scales: torch.Tensor, y_hat_slices: Sequence[torch.Tensor]
    ):
        """Slice i's (mu, scale, mean_support) from the hyper outputs and the decoded slices before it."""
        sup = self._support(i, y_hat_slices)
        H, W = latent_means.shape[-2], latent_means.shape[-1]
        mean_support = self.atten_mean[i](torch.cat([latent_means] + sup, dim=1))
        mu = self.cc_mean_transforms[i](mean_support)[:, :, :H, :W]
        scale_support = self.atten_scale[i](torch.cat([latent_scales] + sup, dim=1))
        scale = self.cc_scale_transforms[i](scale_support)[:, :, :H, :W]
        return mu, scale, mean_support

    def slice_lrp(self, i: int, mean_support: torch.Tensor, y_hat_slice: torch.Tensor) -> torch.Tensor:
        """Latent residual prediction 0.5*tanh(lrp_transforms[i](cat(mean_support, y_hat_i)))."""
        return 0.5 * torch.tanh(self.lrp_transforms[i](torch.cat([mean_support, y_hat_slice], dim=1)))

    def hyper_synthesis(self, z_hat: torch.Tensor):
        """z_hat -> (latent_means, latent_scales)."""
        return self.h_mean_s(z_hat), self.h_scale_s(z_hat)

    # ---------------------------------------------------------------- CompressionModel API
    def forward(self, x: torch.Tensor):
        y = self.g_a(x)
        z = self.h_a(y)
        _, z_likelihoods = self.entropy_bottleneck(z)
        medians = self.entropy_bottleneck._get_medians()
        z_hat = ste_round(z - medians) + medians
        latent_means, latent_scales = self.hyper_synthesis(z_hat)
        y_hat_slices, likelihoods, mus, scales = [], [], [], []
        for i, y_slice in enumerate(y.chunk(self.num_slices, 1)):
            mu, scale, mean_support = self.slice_params(i, latent_means, latent_scales, y_hat_slices)
            _, lik = self.gaussian_conditional(y_slice, scale, mu)
            y_hat_slice = ste_round(y_slice - mu) + mu
            y_hat_slices.append(y_hat_slice + self.slice_lrp(i, mean_support, y_hat_slice))
            likelihoods.append(lik)
            mus.append(mu)
            scales.append(scale)
        x_hat = self.g_s(torch.cat(y_hat_slices, dim=1))
        return {
            "x_hat": x_hat,
            "likelihoods": {"y": torch.cat(likelihoods, 1), "z": z_likelihoods},
            "para": {"means": torch.cat(mus, 1), "scales": torch.cat(scales, 1)},
        }

    def compress(self, x: torch.Tensor):
        """-> {"strings": [slice_0, ..., slice_{S-1}, z] (each a list over the batch), "shape": z size}."""
        y = self.g_a(x)
        z = self.h_a(y)
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.size()[-2:])
        latent_means, latent_scales = self.hyper_synthesis(z_hat)
        y_hat_slices, strings = [], []
        for i, y_slice in enumerate(y.chunk(self.num_slices, 1)):
            mu, scale, mean_support = self.slice_params(i, latent_means, latent_scales, y_hat_slices)
            indexes = self.gaussian_conditional.build_indexes(scale)
            strings.append(self.gaussian_conditional.compress(y_slice, indexes, means=mu))
            y_hat_slice = self.gaussian_conditional.quantize(y_slice, "dequantize", mu)
            y_hat_slices.append(y_hat_slice + self.slice_lrp(i, mean_support, y_hat_slice))
        return {"strings": strings + [z_strings], "shape": z.size()[-2:]}

    def decompress(self, strings, shape):
        if len(strings) != self.num_slices + 1:
            raise ValueError(f"MambaVC expects {self.num_slices + 1} string groups, got {len(strings)}")
        z_hat = self.entropy_bottleneck.decompress(strings[-1], shape)
        latent_means, latent_scales = self.hyper_synthesis(z_hat)
        y_hat_slices = []
        for i in range(self.num_slices):
            mu, scale, mean_support = self.slice_params(i, latent_means, latent_scales, y_hat_slices)
            indexes = self.gaussian_conditional.build_indexes(scale)
            y_hat_slice = self.gaussian_conditional.decompress(strings[i], indexes, means=mu)
            y_hat_slices.append(y_hat_slice + self.slice_lrp(i, mean_support, y_hat_slice))
        x_hat = self.g_s(torch.cat(y_hat_slices, dim=1)).clamp_(0, 1)
        return {"x_hat": x_hat}
