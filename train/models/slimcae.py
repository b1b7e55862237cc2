"""SlimCAE (Yang, Herranz et al., CVPR 2021): one slimmable factorized-prior autoencoder, several widths.

As the original TensorFlow code (``FireFYF/SlimCAE``): ONE set of conv weights at full width N, sliced to the
first ``w`` channels for width ``w``; a separate GDN/IGDN per layer and width; one EntropyBottleneck per width.
Analysis: conv9 s4 (+bias), GDN, conv5 s2 (+bias), GDN, conv5 s2 (no bias), GDN -> y (w @ H/16).
Synthesis: IGDN, deconv5 s2, IGDN, deconv5 s2, IGDN, deconv9 s4 (w -> 3).
``model.at_width(w)`` gives a plain fixed-width CompressionModel view (shared parameters) for export.

Parameters at N = 192, widths (192, 144, 96, 72, 48):
  shared convs  3*192*81+192 + 192*192*25+192 + 192*192*25 + 192*192*25+192 + 192*192*25+192 + 192*3*81+3
                = 3,780,483
  GDNs          6 per width, w*w + w each: 6 * (74,304 + 552)                                  =   449,136
  bottlenecks   61 per channel (58 filter parameters + 3 quantiles): 61 * 552                  =    33,672
  total                                                                                       = 4,263,291
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck
from compressai.layers import GDN
from compressai.models import CompressionModel


class SlimConv2d(nn.Conv2d):
    """Conv2d whose weight is sliced to ``weight[:cout, :cin]`` (and ``bias[:cout]``) at call time."""

    def forward(self, x: torch.Tensor, cout: int | None = None) -> torch.Tensor:
        cin = x.shape[1]
        cout = self.out_channels if cout is None else cout
        bias = None if self.bias is None else self.bias[:cout]
        return F.conv2d(x, self.weight[:cout, :cin], bias, self.stride, self.padding)


class SlimConvTranspose2d(nn.ConvTranspose2d):
    """ConvTranspose2d sliced to ``weight[:cin, :cout]`` (weight layout is (in, out, k, k))."""

    def forward(self, x: torch.Tensor, cout: int | None = None) -> torch.Tensor:
        cin = x.shape[1]
        cout = self.out_channels if cout is None else cout
        bias = None if self.bias is None else self.bias[:cout]
        return F.conv_transpose2d(x, self.weight[:cin, :cout], bias, self.stride, self.padding, self.output_padding)


class _SlimAnalysis(nn.Module):
    """Analysis transform at one width: shared sliced convs + that width's GDNs. Shares parameters."""

    def __init__(self, convs: nn.ModuleList, gdns: nn.ModuleList, width: int):
        super().__init__()
        self.convs, self.gdns, self.width = convs, gdns, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, gdn in zip(self.convs, self.gdns):
            x = gdn(conv(x, self.width))
        return x


class _SlimSynthesis(nn.Module):
    """Synthesis transform at one width: that width's IGDNs + shared sliced deconvs (last one -> 3)."""

    def __init__(self, deconvs: nn.ModuleList, igdns: nn.ModuleList, width: int):
        super().__init__()
        self.deconvs, self.igdns, self.width = deconvs, igdns, width

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        n = len(self.deconvs)
        for i, (igdn, deconv) in enumerate(zip(self.igdns, self.deconvs)):
            y = deconv(igdn(y), 3 if i == n - 1 else self.width)
        return y


class SlimCAEWidth(CompressionModel):
    """A fixed-width view of a SlimCAE: ``g_a``, ``g_s``, ``entropy_bottleneck`` (parameters shared)."""

    def __init__(self, parent: "SlimCAE", width: int):
        super().__init__()
        k = parent.width_index(width)
        self.width = width
        self.g_a = _SlimAnalysis(parent.g_a, parent.gdn_a[k], width)
        self.g_s = _SlimSynthesis(parent.g_s, parent.igdn_s[k], width)
        self.entropy_bottleneck = parent.entropy_bottlenecks[k]
        self.coding_plan = "factorized"
        self.pad_multiple = parent.pad_multiple

    def forward(self, x: torch.Tensor):
        y = self.g_a(x)
        y_hat, y_likelihoods = self.entropy_bottleneck(y)
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_likelihoods}}

    def compress(self, x: torch.Tensor):
        y = self.g_a(x)
        return {"strings": [self.entropy_bottleneck.compress(y)], "shape": y.size()[-2:]}

    def decompress(self, strings, shape):
        y_hat = self.entropy_bottleneck.decompress(strings[0], shape)
        return {"x_hat": self.g_s(y_hat).clamp_(0, 1)}


class SlimCAE(CompressionModel):
    """Slimmable CAE. ``forward(x, width=None)`` runs one width (None = full N); ``forward_all(x)`` every width
    (the training loss sums over them). ``compress(x, width)`` / ``decompress(strings, shape, width)``."""

    coding_plan = "factorized"
    pad_multiple = 16

    def __init__(self, N: int = 192, widths: Sequence[int] = (192, 144, 96, 72, 48)):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if not widths or max(widths) > N or min(widths) < 1 or len(set(widths)) != len(widths):
            raise ValueError(f"SlimCAE widths must be distinct and within 1..{N}, got {widths}")
        self.N, self.widths = int(N), widths
        self.g_a = nn.ModuleList(
            [
                SlimConv2d(3, N, 9, stride=4, padding=4, bias=True),
                SlimConv2d(N, N, 5, stride=2, padding=2, bias=True),
                SlimConv2d(N, N, 5, stride=2, padding=2, bias=False),
            ]
        )
        self.g_s = nn.ModuleList(
            [
                SlimConvTranspose2d(N, N, 5, stride=2, padding=2, output_padding=1, bias=True),
                SlimConvTranspose2d(N, N, 5, stride=2, padding=2, output_padding=1, bias=True),
                SlimConvTranspose2d(N, 3, 9, stride=4, padding=4, output_padding=3, bias=True),
            ]
        )
        self.gdn_a = nn.ModuleList(nn.ModuleList(GDN(w) for _ in range(3)) for w in widths)
        self.igdn_s = nn.ModuleList(nn.ModuleList(GDN(w, inverse=True) for _ in range(3)) for w in widths)
        self.entropy_bottlenecks = nn.ModuleList(EntropyBottleneck(w) for w in widths)

    def width_index(self, width: int | None) -> int:
        if width is None:
            width = max(self.widths)
        try:
            return self.widths.index(int(width))
        except ValueError:
            raise ValueError(
                f"unknown SlimCAE width {width}; choose one of {', '.join(map(str, self.widths))}"
            ) from None

    def at_width(self, width: int | None = None) -> SlimCAEWidth:
        """Fixed-width CompressionModel sharing this model's parameters (what the exporter exports)."""
        return SlimCAEWidth(self, self.widths[self.width_index(width)])

    def width_modules(self, width: int | None = None) -> tuple[nn.Module, nn.Module]:
        """(g_a, g_s) at ``width`` as plain modules x -> y and y_hat -> x_hat (shared parameters)."""
        view = self.at_width(width)
        return view.g_a, view.g_s

    def forward(self, x: torch.Tensor, width: int | None = None):
        return self.at_width(width).forward(x)

    def forward_all(self, x: torch.Tensor) -> dict[int, dict]:
        return {w: self.forward(x, w) for w in self.widths}

    def compress(self, x: torch.Tensor, width: int | None = None):
        out = self.at_width(width).compress(x)
        out["width"] = self.widths[self.width_index(width)]
        return out

    def decompress(self, strings, shape, width: int | None = None):
        return self.at_width(width).decompress(strings, shape)
