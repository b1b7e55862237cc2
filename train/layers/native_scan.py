"""PyTorch front end of the native CPU kernels (``train.native_ops``): SelectiveScan2D with autograd (forward and
backward kernels) and GeneralizedDivisiveNorm (forward), on contiguous CPU tensors, on ``torch.get_num_threads()``
threads (results do not depend on the thread count).

``train.layers.ss2d.selective_scan_2d`` calls :func:`selective_scan_2d` for CPU tensors when the library is
available (``LICTRT_NATIVE_OPS=0`` turns that off); the chunked PyTorch scan stays the reference.
"""

from __future__ import annotations

import os

import torch

from train import native_ops

_CODES = {torch.float32: 0, torch.float16: 1}


def enabled() -> bool:
    """True when the native kernels are to be used for CPU tensors."""
    return os.environ.get("LICTRT_NATIVE_OPS", "1") != "0" and native_ops.available()


def _p(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _f32(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to(torch.float32).contiguous()


def scan_forward(u, delta, A, Bs, Cs, D, delta_bias, delta_softplus: bool = True) -> torch.Tensor:
    """y [B,Di,H,W] of the SelectiveScan2D contract; u, delta, Bs, Cs fp32 or fp16 (one dtype), y in that dtype."""
    dtype = u.dtype if u.dtype in _CODES else torch.float32
    act = [t.detach().to(dtype).contiguous() for t in (u, delta, Bs, Cs)]
    A, D = _f32(A), _f32(D)
    bias = None if delta_bias is None else _f32(delta_bias)
    bsz, di, H, W = act[0].shape
    y = torch.empty_like(act[0])
    lib = native_ops.library()
    native_ops.check(lib.lictrt_cpu_ss2d_forward(
        _p(act[0]), _p(act[1]), _p(A), _p(act[2]), _p(act[3]), _p(D), _p(bias), _p(y),
        bsz, di, H, W, A.shape[1], int(bool(delta_softplus)), _CODES[dtype], torch.get_num_threads()))
    return y


def scan_backward(u, delta, A, Bs, Cs, D, delta_bias, dy, delta_softplus: bool = True):
    """Gradients (du, ddelta, dA, dBs, dCs, dD, d delta_bias) of sum(dy * y), all fp32."""
    u, delta, A, Bs, Cs, D, dy = (_f32(t) for t in (u, delta, A, Bs, Cs, D, dy))
    bias = None if delta_bias is None else _f32(delta_bias)
    bsz, di, H, W = u.shape
    grads = [torch.empty_like(t) for t in (u, delta, A, Bs, Cs, D, D)]
    lib = native_ops.library()
    native_ops.check(lib.lictrt_cpu_ss2d_backward(
        _p(u), _p(delta), _p(A), _p(Bs), _p(Cs), _p(D), _p(bias), _p(dy), *(_p(g) for g in grads),
        bsz, di, H, W, A.shape[1], int(bool(delta_softplus)), torch.get_num_threads()))
    return tuple(grads)


class _Scan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, Bs, Cs, D, delta_bias, delta_softplus):
        ctx.save_for_backward(u, delta, A, Bs, Cs, D, delta_bias)
        ctx.delta_softplus = delta_softplus
        return scan_forward(u, delta, A, Bs, Cs, D, delta_bias, delta_softplus)

    @staticmethod
    def backward(ctx, dy):
        u, delta, A, Bs, Cs, D, delta_bias = ctx.saved_tensors
        g = scan_backward(u, delta, A, Bs, Cs, D, delta_bias, dy, ctx.delta_softplus)
        inputs = (u, delta, A, Bs, Cs, D, delta_bias)
        out = [gi.to(x.dtype) if ctx.needs_input_grad[i] else None for i, (gi, x) in enumerate(zip(g, inputs))]
        return (*out, None)


def selective_scan_2d(u, delta, A, Bs, Cs, D, delta_bias, delta_softplus: bool = True) -> torch.Tensor:
    """SelectiveScan2D on the native CPU kernels, differentiable in every tensor input."""
    if delta_bias is None:
        delta_bias = torch.zeros_like(D)
    return _Scan.apply(u, delta, A, Bs, Cs, D, delta_bias, bool(delta_softplus))


def gdn(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """GeneralizedDivisiveNorm forward (no autograd) on the native kernel: x [B,C,H,W] fp32 or fp16."""
    dtype = x.dtype if x.dtype in _CODES else torch.float32
    xc = x.detach().to(dtype).contiguous()
    gamma, beta = _f32(gamma), _f32(beta)
    y = torch.empty_like(xc)
    bsz, C = xc.shape[:2]
    native_ops.check(native_ops.library().lictrt_cpu_gdn_forward(
        _p(xc), _p(gamma), _p(beta), _p(y), bsz, C, xc[0, 0].numel(), int(bool(inverse)), _CODES[dtype],
        torch.get_num_threads()))
    return y
