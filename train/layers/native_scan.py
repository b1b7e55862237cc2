"""The PyTorch operators of the lictrt ops, ``torch.ops.lictrt.*``, defined once here for the layers, the tests and
ONNX export (export/registry.py emits one node per call with the same inputs and fields):

* ``selective_scan_2d(u, dts, dt_weight, A, Bs, Cs, D, delta_bias, delta_softplus) -> y``, differentiable in every
  tensor input: its backward forms delta = dt_proj(dts) (``train.layers.ss2d.dt_project``), calls
  ``selective_scan_2d_backward(u, delta, A, Bs, Cs, D, delta_bias, dy, delta_softplus) -> (du, ddelta, dA, dBs,
  dCs, dD, d delta_bias)`` (fp32) and takes dts' and dt_weight's gradients from ddelta;
* ``generalized_divisive_norm(x, gamma, beta, inverse) -> y`` (forward only).

Every operator has a PyTorch reference kernel for any device (the chunked scan of ``train.layers.ss2d``, autograd
through it for the backward; ``train.layers.gdn.gdn_reference``). On the CPU the native kernels of
``liblictrt_torch_ops`` (``trt_plugins/common/torch_ops.cpp``, registered with ``TORCH_LIBRARY_IMPL`` over the same
C++ kernels as ONNX Runtime's custom ops) take precedence once that library is loaded, which this module does on
import when the package build installed it next to ``liblictrt_cpu_ops`` (``runtime.native_ops``). Without it the
CPU runs the reference; the SS2D layer warns once. ``LICTRT_NATIVE_OPS=0`` makes the SS2D layer use the chunked
PyTorch scan directly.
"""

from __future__ import annotations

import functools
import os
import warnings

import torch

from runtime import native_ops

TORCH_LIBRARY_NAME = "liblictrt_torch_ops.so"
_Tensor = torch.Tensor


# ------------------------------------------------------------------------------------------ operator definitions
@torch.library.custom_op("lictrt::generalized_divisive_norm", mutates_args=())
def _gdn_op(x: _Tensor, gamma: _Tensor, beta: _Tensor, inverse: int) -> _Tensor:
    from train.layers.gdn import gdn_reference

    return gdn_reference(x, gamma, beta, inverse)


@_gdn_op.register_fake
def _(x, gamma, beta, inverse):
    return torch.empty_like(x)


def scan_reference(u, dts, dt_weight, A, Bs, Cs, D, delta_bias, delta_softplus: int) -> torch.Tensor:
    """The reference kernel of ``lictrt::selective_scan_2d`` (any device): the chunked scan in fp32, u's dtype."""
    from train.layers.ss2d import selective_scan_2d_chunked

    f = [t.float() for t in (u, dts, dt_weight, A, Bs, Cs, D, delta_bias)]
    return selective_scan_2d_chunked(*f, bool(delta_softplus)).to(u.dtype)


def scan_backward_reference(u, delta, A, Bs, Cs, D, delta_bias, dy, delta_softplus: int) -> tuple:
    """The reference kernel of ``lictrt::selective_scan_2d_backward``: autograd through the chunked scan, delta
    [B,4Di,H,W] given (after dt_proj)."""
    from train.layers.ss2d import scan_2d_chunked

    with torch.enable_grad():
        xs = [t.detach().float().requires_grad_() for t in (u, delta, A, Bs, Cs, D, delta_bias)]
        y = scan_2d_chunked(*xs, bool(delta_softplus))
        return tuple(torch.autograd.grad(y, xs, dy.float()))


@torch.library.custom_op("lictrt::selective_scan_2d", mutates_args=())
def _scan_op(
    u: _Tensor,
    dts: _Tensor,
    dt_weight: _Tensor,
    A: _Tensor,
    Bs: _Tensor,
    Cs: _Tensor,
    D: _Tensor,
    delta_bias: _Tensor,
    delta_softplus: int,
) -> _Tensor:
    return scan_reference(u, dts, dt_weight, A, Bs, Cs, D, delta_bias, delta_softplus)


@_scan_op.register_fake
def _(u, dts, dt_weight, A, Bs, Cs, D, delta_bias, delta_softplus):
    return torch.empty_like(u)


@torch.library.custom_op("lictrt::selective_scan_2d_backward", mutates_args=())
def _scan_backward_op(
    u: _Tensor,
    delta: _Tensor,
    A: _Tensor,
    Bs: _Tensor,
    Cs: _Tensor,
    D: _Tensor,
    delta_bias: _Tensor,
    dy: _Tensor,
    delta_softplus: int,
) -> tuple[_Tensor, _Tensor, _Tensor, _Tensor, _Tensor, _Tensor, _Tensor]:
    return scan_backward_reference(u, delta, A, Bs, Cs, D, delta_bias, dy, delta_softplus)


@_scan_backward_op.register_fake
def _(u, delta, A, Bs, Cs, D, delta_bias, dy, delta_softplus):
    return tuple(torch.empty_like(t, dtype=torch.float32) for t in (u, delta, A, Bs, Cs, D, delta_bias))


def _scan_setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs[:8])
    ctx.delta_softplus = inputs[8]


def _scan_backward(ctx, dy):
    from train.layers.ss2d import dt_project

    u, dts, w, A, Bs, Cs, D, bias = ctx.saved_tensors
    delta = dt_project(dts.float(), w.float())
    du, ddelta, dA, dBs, dCs, dD, dbias = torch.ops.lictrt.selective_scan_2d_backward(
        u, delta, A, Bs, Cs, D, bias, dy, ctx.delta_softplus
    )
    bsz, K, R, H, W = dts.shape
    dd = ddelta.reshape(bsz, K, -1, H * W)  # [B,K,Di,L]
    wk = w.float().unflatten(0, (K, -1))  # [K,Di,R]
    ddts = torch.matmul(wk.transpose(-1, -2), dd).reshape(dts.shape)
    dw = torch.matmul(dd, dts.float().flatten(3).transpose(-1, -2)).sum(0).flatten(0, 1)  # [K*Di,R]
    grads = (du, ddts, dw, dA, dBs, dCs, dD, dbias)
    out = [g.to(x.dtype) if ctx.needs_input_grad[i] else None for i, (g, x) in enumerate(zip(grads, ctx.saved_tensors))]
    return (*out, None)


_scan_op.register_autograd(_scan_backward, setup_context=_scan_setup_context)


# ------------------------------------------------------------------------------------------ native CPU kernels
@functools.cache
def _load_torch_ops() -> str:
    """Loads liblictrt_torch_ops (its CPU kernels replace the reference for CPU tensors); '' or why it is not."""
    path = native_ops.library_path(TORCH_LIBRARY_NAME)
    if path is None:
        return (
            f"{TORCH_LIBRARY_NAME} not found next to the runtime package (built with the package when torch is found)"
        )
    try:
        torch.ops.load_library(str(path))
    except (OSError, RuntimeError) as e:
        return f"cannot load {path}: {e}"
    return ""


def native_loaded() -> bool:
    """True when the CPU kernels of ``torch.ops.lictrt.*`` are the native ones."""
    return not _load_torch_ops()


def enabled() -> bool:
    """True when the SS2D layer runs ``torch.ops.lictrt.selective_scan_2d`` (native) for CPU tensors."""
    if os.environ.get("LICTRT_NATIVE_OPS", "1") == "0":
        return False
    why = _load_torch_ops()
    if why:
        _warn_once(why)
    return not why


@functools.cache
def _warn_once(why: str) -> None:
    warnings.warn(
        f"lictrt native CPU kernels for PyTorch unavailable ({why}); torch.ops.lictrt.* and the SS2D layer run the "
        "PyTorch reference on the CPU, which is far slower at full image size",
        RuntimeWarning,
        stacklevel=3,
    )


_load_torch_ops()


# ------------------------------------------------------------------------------------------ calls
def _bias(delta_bias, D):
    return torch.zeros_like(D, dtype=torch.float32) if delta_bias is None else delta_bias


def scan_forward(u, dts, dt_weight, A, Bs, Cs, D, delta_bias, delta_softplus: bool = True) -> torch.Tensor:
    """y [B,Di,H,W] of the SelectiveScan2D contract (``torch.ops.lictrt.selective_scan_2d``), in u's dtype."""
    return torch.ops.lictrt.selective_scan_2d(
        u, dts, dt_weight, A, Bs, Cs, D, _bias(delta_bias, D), int(bool(delta_softplus))
    )


def scan_backward(u, delta, A, Bs, Cs, D, delta_bias, dy, delta_softplus: bool = True):
    """Gradients (du, ddelta, dA, dBs, dCs, dD, d delta_bias) of sum(dy * y) for the scan after dt_proj (delta
    [B,4Di,H,W]), all fp32."""
    return torch.ops.lictrt.selective_scan_2d_backward(
        u, delta, A, Bs, Cs, D, _bias(delta_bias, D), dy, int(bool(delta_softplus))
    )


def selective_scan_2d(u, dts, dt_weight, A, Bs, Cs, D, delta_bias, delta_softplus: bool = True) -> torch.Tensor:
    """SelectiveScan2D through ``torch.ops.lictrt.selective_scan_2d``, differentiable in every tensor input."""
    return scan_forward(u, dts, dt_weight, A, Bs, Cs, D, delta_bias, delta_softplus)


def gdn(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """GeneralizedDivisiveNorm forward (``torch.ops.lictrt.generalized_divisive_norm``): x [B,C,H,W]."""
    return torch.ops.lictrt.generalized_divisive_norm(x, gamma, beta, int(bool(inverse)))
