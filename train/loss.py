"""Rate-distortion loss: ``λ·255²·MSE + bpp`` or ``λ·(1 − MS-SSIM) + bpp`` (CompressAI's convention).

The rate is the estimated bits per pixel from the model's likelihoods, ``Σ −log2 p / (B·H·W)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

METRICS = ("mse", "ms-ssim")
MS_SSIM_MIN_SIDE = 161  # 5 scales of an 11-tap window: (11 − 1)·2⁴ < side


class LossError(ValueError):
    """Bad loss configuration or input (one-line message)."""


def bits_per_pixel(likelihoods: dict[str, torch.Tensor] | list | tuple, num_pixels: int) -> torch.Tensor:
    """Σ −log2(p) over every latent likelihood tensor, divided by the number of pixels."""
    tensors = likelihoods.values() if isinstance(likelihoods, dict) else likelihoods
    return sum(torch.log(p.float()).sum() for p in tensors) / (-math.log(2) * num_pixels)


def psnr(mse: torch.Tensor, peak: float = 1.0) -> torch.Tensor:
    return 10 * torch.log10(peak**2 / mse.clamp_min(1e-12))


class RateDistortionLoss(nn.Module):
    """``forward(output, target)`` → dict with ``loss``, ``bpp``, ``mse``, ``psnr`` (and ``ms_ssim``).

    ``output`` is a CompressAI forward dict (``x_hat``, ``likelihoods``); ``target`` is in [0, 1]. Rates of
    ``aux_likelihoods`` (models that train extra entropy models on detached inputs, e.g. BaSIC's other context
    coders) are added to the loss but not to the reported bpp.
    """

    def __init__(self, lmbda: float, metric: str = "mse"):
        super().__init__()
        if metric not in METRICS:
            raise LossError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        if not lmbda > 0:
            raise LossError(f"lambda must be positive, got {lmbda}")
        self.lmbda = float(lmbda)
        self.metric = metric

    def forward(self, output: dict, target: torch.Tensor) -> dict[str, torch.Tensor]:
        n, _, h, w = target.shape
        x_hat = output["x_hat"].float()
        bpp = bits_per_pixel(output["likelihoods"], n * h * w)
        mse = F.mse_loss(x_hat, target)
        out = {"bpp": bpp, "mse": mse, "psnr": psnr(mse.detach())}
        if self.metric == "mse":
            out["loss"] = self.lmbda * 255**2 * mse + bpp
        else:
            if min(h, w) < MS_SSIM_MIN_SIDE:
                raise LossError(f"MS-SSIM needs images of at least {MS_SSIM_MIN_SIDE} px per side, got {h}x{w}")
            from pytorch_msssim import ms_ssim

            score = ms_ssim(x_hat, target, data_range=1.0)
            out["ms_ssim"] = score
            out["loss"] = self.lmbda * (1 - score) + bpp
        if output.get("aux_likelihoods"):
            out["loss"] = out["loss"] + bits_per_pixel(output["aux_likelihoods"], n * h * w)
        return out


def width_lambdas(lmbda: list[float], widths: list[int]) -> dict[int, float]:
    """Per-width λ for a slimmable model: ``{width: λ}``, the list read widest width first.

    One value per width is used as given; a single value λ becomes λ·2⁻ⁱ for the i-th widest width,
    the ratio of SlimCAE's original schedule (2048, 1024, …, 128).
    """
    order = sorted(widths, reverse=True)
    if len(lmbda) == len(order):
        return {w: float(x) for w, x in zip(order, lmbda)}
    if len(lmbda) == 1:
        return {w: float(lmbda[0]) * 2.0**-i for i, w in enumerate(order)}
    raise LossError(f"give one lambda or one per width ({len(order)}: {order}), got {len(lmbda)}")
