"""The reference of the ``GeneralizedDivisiveNorm`` op (export/op_contracts.py), the one every test and the torch
custom op use. The layer itself is ``compressai.layers.GDN``; this takes its effective (reparametrized) weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gdn_reference(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, inverse: int = 0) -> torch.Tensor:
    """y = x / sqrt(beta + gamma @ x^2) per pixel (``inverse``: x * sqrt(...)), gamma [C,C], beta [C].

    Computed in x's dtype, at least fp32 (pass float64 tensors for an exact oracle); returns x's dtype."""
    dtype = torch.promote_types(x.dtype, torch.float32)
    xf = x.to(dtype)
    C = x.shape[1]
    norm = F.conv2d(xf * xf, gamma.to(dtype).reshape(C, C, 1, 1), beta.to(dtype))
    y = xf * torch.sqrt(norm) if inverse else xf / torch.sqrt(norm)
    return y.to(x.dtype)
