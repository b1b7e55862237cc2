"""Float64 forms of the lictrt op references (which live in train/layers: ss2d.selective_scan_2d_reference and
gdn.gdn_reference), plus test-input helpers.

Used by tests/trt_plugins/test_kernels_gpu.py (CUDA kernels), tests/trt_plugins/test_trt_plugins.py (CPU emulation of the same kernel
sources) and tests/trt_plugins/test_native_ops.py. The scan reference is a sequential loop over L.
"""

from __future__ import annotations

import torch

from train.layers.gdn import gdn_reference as _gdn_reference
from train.layers.ss2d import selective_scan_2d_reference


def direction_positions(H: int, W: int, device=None) -> torch.Tensor:
    """[4, L]: natural position p visited at step t by direction k (contract: row-major, column-major, reversed)."""
    t = torch.arange(H * W, device=device)
    row_major = t
    col_major = (t % H) * W + t // H
    return torch.stack([row_major, col_major, row_major.flip(0), col_major.flip(0)])


def ss2d_reference(u, dts, dt_weight, A, Bs, Cs, D, delta_bias=None, delta_softplus=True):
    """SelectiveScan2D in float64 (returns float64): train.layers.ss2d.selective_scan_2d_reference."""
    args = [None if t is None else t.double() for t in (u, dts, dt_weight, A, Bs, Cs, D, delta_bias)]
    return selective_scan_2d_reference(*args, delta_softplus=delta_softplus)


def gdn_reference(x, gamma, beta, inverse=False):
    """GeneralizedDivisiveNorm in float64 (returns float64): train.layers.gdn.gdn_reference."""
    return _gdn_reference(x.double(), gamma.double(), beta.double(), inverse)


def scan_inputs(B, Di, H, W, N, *, seed, device, softplus=True, R=3):
    """Random inputs (u, dts, dt_weight, A, Bs, Cs, D, delta_bias) of realistic scale; activations are rounded to
    fp16 so one reference serves both dtypes. delta = dt_proj(dts) is about N(0, 0.5^2) around a bias of -1 with
    softplus, in (0.01, 0.2) without."""
    g = torch.Generator(device="cpu").manual_seed(seed)

    def rnd(*shape, scale=1.0, shift=0.0):
        return (torch.randn(*shape, generator=g) * scale + shift).half().float().to(device)

    u = rnd(B, Di, H, W)
    if softplus:
        dts = rnd(B, 4, R, H, W)
        dt_weight = torch.randn(4 * Di, R, generator=g) * (0.5 / R**0.5)
        bias = -1.0 + 0.1 * torch.randn(4 * Di, generator=g)
    else:  # non-negative factors: delta stays a valid step size
        dts = (torch.rand(B, 4, R, H, W, generator=g)).half().float().to(device)
        dt_weight = torch.rand(4 * Di, R, generator=g) * (0.19 / R)
        bias = torch.full((4 * Di,), 0.01)
    A_log = torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(4 * Di, 1)
    A = (-torch.exp(A_log + 0.1 * torch.randn(4 * Di, N, generator=g))).to(device)
    Bs, Cs = rnd(B, 4, N, H, W), rnd(B, 4, N, H, W)
    D = torch.randn(4 * Di, generator=g).to(device)
    return u, dts, dt_weight.to(device), A, Bs, Cs, D, bias.to(device)


def rel_err(y, ref):
    return ((y.double() - ref).abs().max() / ref.abs().max().clamp_min(1e-30)).item()


def run_scan_poisoned(kernels, inputs, dtype, *, softplus=True, use_bias=True):
    """Runs SelectiveScan2D through a harness.Kernels with the output and the workspace pre-filled with NaN."""
    u, dts, w, A, Bs, Cs, D, bias = inputs
    act = [t.to(dtype).contiguous() for t in (u, dts, Bs, Cs)]
    B, Di, H, W = u.shape
    code = 0 if dtype == torch.float32 else 1
    nbytes = kernels.ss2d_workspace_size(B, Di, H, W, A.shape[-1], w.shape[-1], code)
    ws = torch.full((max(nbytes, 1),), 0xFF, dtype=torch.uint8, device=u.device)  # all-ones bytes = NaN floats
    out = torch.full_like(act[0], float("nan"))
    y = kernels.selective_scan_2d(
        act[0],
        act[1],
        w,
        A,
        act[2],
        act[3],
        D,
        bias if use_bias else None,
        delta_softplus=softplus,
        out=out,
        workspace=ws,
    )
    if y.is_cuda:
        torch.cuda.synchronize()
    return y


def gdn_inputs(B, C, H, W, *, seed, dtype, device):
    """x with a few |x| = 300 entries (x^2 overflows fp16), effective gamma >= 0, beta >= 1."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, C, H, W, generator=g)
    x.view(-1)[:: max(1, x.numel() // 17)] = 300.0
    gamma = 0.1 * torch.eye(C) + 1e-3 * torch.rand(C, C, generator=g)
    beta = 1.0 + 0.1 * torch.rand(C, generator=g)
    return x.to(dtype).to(device), gamma.to(device), beta.to(device)


def run_gdn_poisoned(kernels, x, gamma, beta, inverse):
    """Runs GeneralizedDivisiveNorm through a harness.Kernels with the output pre-filled with NaN."""
    y = kernels.generalized_divisive_norm(x, gamma, beta, inverse=inverse, out=torch.full_like(x, float("nan")))
    if y.is_cuda:
        torch.cuda.synchronize()
    return y
