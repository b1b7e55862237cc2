"""The CUDA kernels behind the plugins, checked against float64 references written from export/op_contracts.py.

GPU tests (``-m gpu``) run the kernels through the ctypes harness on fresh random inputs, with the outputs and
the workspace poisoned (NaN) before every run, at small odd shapes and at SSMIC's / MambaVC's first-stage
shapes for a 768x512 image (H/2 = 256 x 384 tokens; Di = 256 and 512, d_state 16).  Tolerances (max abs error
/ max abs reference): scan fp32 1e-4, fp16 1e-2; GDN fp32 1e-5, fp16 1e-2.
The CPU tests at the bottom check the references themselves against a literal reading of the contract.
"""

from __future__ import annotations

import math

import pytest
import torch

from trt_plugins.harness import Kernels
from trt_plugins.reference import (
    direction_positions,
    gdn_inputs,
    gdn_reference,
    rel_err,
    run_gdn_poisoned,
    run_scan_poisoned,
    scan_inputs,
    ss2d_reference,
)

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

SCAN_TOL = {torch.float32: 1e-4, torch.float16: 1e-2}
GDN_TOL = {torch.float32: 1e-5, torch.float16: 1e-2}


# ---------------------------------------------------------------------------------------------- GPU tests
@pytest.fixture(scope="module")
def kernels():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    return Kernels.load(build_if_missing=True)


SCAN_SHAPES = [  # (B, Di, H, W, N)
    (1, 3, 5, 7, 1),  # tiny, d_state 1, odd sizes
    (2, 37, 33, 65, 16),  # L = 2145: several axis-0 chunks with a ragged last tile; W > 32 lanes
    (1, 8, 300, 20, 4),  # H > 256: two row segments per column in axis 1
    (1, 130, 16, 40, 5),  # Di > 128: several channel blocks; N = 5 takes the 16-wide path
]
STAGE_SHAPES = [
    pytest.param((1, 256, 256, 384, 16), id="ssmic-stage1-768x512"),
    pytest.param((1, 512, 256, 384, 16), id="mambavc-stage1-768x512"),
]


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("shape", SCAN_SHAPES + STAGE_SHAPES)
def test_selective_scan_2d_matches_the_float64_reference(kernels, shape):
    inputs = scan_inputs(*shape, seed=sum(shape), device="cuda")
    ref = ss2d_reference(*inputs)
    for dtype in (torch.float32, torch.float16):
        y = run_scan_poisoned(kernels, inputs, dtype)
        assert y.dtype == dtype and y.shape == inputs[0].shape
        assert torch.isfinite(y).all(), f"{dtype}: non-finite output (unwritten or poisoned values read)"
        assert rel_err(y, ref) <= SCAN_TOL[dtype], f"{dtype}: relative error {rel_err(y, ref):.3e}"


@pytest.mark.gpu
@needs_cuda
def test_selective_scan_2d_without_softplus_and_without_bias(kernels):
    inputs = scan_inputs(1, 16, 24, 40, 16, seed=7, device="cuda", softplus=False)
    ref = ss2d_reference(*inputs[:7], delta_bias=None, delta_softplus=False)
    y = run_scan_poisoned(kernels, inputs, torch.float32, softplus=False, use_bias=False)
    assert rel_err(y, ref) <= SCAN_TOL[torch.float32]


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_selective_scan_2d_is_deterministic_run_to_run(kernels, dtype):
    inputs = scan_inputs(2, 64, 48, 80, 16, seed=3, device="cuda")
    first = run_scan_poisoned(kernels, inputs, dtype)
    for _ in range(3):
        assert torch.equal(run_scan_poisoned(kernels, inputs, dtype), first)


@pytest.mark.gpu
@needs_cuda
def test_selective_scan_2d_uses_the_torch_current_stream(kernels):
    inputs = scan_inputs(1, 32, 64, 64, 16, seed=11, device="cuda")
    ref = run_scan_poisoned(kernels, inputs, torch.float32)
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        y = run_scan_poisoned(kernels, inputs, torch.float32)
    assert torch.equal(y, ref)


GDN_SHAPES = [  # (B, C, H, W)
    (2, 3, 5, 7),
    (1, 192, 32, 48),  # bmshj2018 q6-8 latent
    (1, 512, 9, 13),  # C * 32 floats > 48 KiB of shared memory: the opt-in path
    pytest.param((1, 128, 256, 384), id="bmshj2018-largest-igdn-768x512"),
]


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("shape", GDN_SHAPES)
@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_generalized_divisive_norm_matches_the_float64_reference(kernels, shape, inverse, dtype):
    x, gamma, beta = gdn_inputs(*shape, seed=sum(shape) + inverse, dtype=dtype, device="cuda")
    y = run_gdn_poisoned(kernels, x, gamma, beta, inverse)
    ref = gdn_reference(x, gamma, beta, inverse)
    assert torch.isfinite(y).all()
    assert rel_err(y, ref) <= GDN_TOL[dtype], f"relative error {rel_err(y, ref):.3e}"


# ---------------------------------------------------------------------------------------------- CPU: references
def test_direction_positions_follow_the_contract():
    H, W = 2, 3
    pos = direction_positions(H, W).tolist()
    assert pos[0] == [0, 1, 2, 3, 4, 5]
    assert pos[1] == [0, 3, 1, 4, 2, 5]  # column-major: down each column
    assert pos[2] == pos[0][::-1] and pos[3] == pos[1][::-1]
    for k in range(4):
        assert sorted(pos[k]) == list(range(H * W))


def _literal_contract_ss2d(u, dts, dt_weight, A, Bs, Cs, D, bias, softplus):
    """The contract text, loop by loop, in Python floats."""
    Bsz, Di, H, W = u.shape
    N, L = A.shape[1], H * W
    y = [[[0.0] * L for _ in range(Di)] for _ in range(Bsz)]
    for b in range(Bsz):
        for k in range(4):
            for c in range(Di):
                ch = k * Di + c
                h = [0.0] * N
                for t in range(L):
                    tt = t if k < 2 else L - 1 - t
                    p = tt if k % 2 == 0 else (tt % H) * W + tt // H
                    i, j = divmod(p, W)
                    delta = sum(float(dt_weight[ch, r]) * float(dts[b, k, r, i, j]) for r in range(dts.shape[2]))
                    x = delta + float(bias[ch])
                    dt = math.log1p(math.exp(x)) if softplus else x
                    uu = float(u[b, c, i, j])
                    for n in range(N):
                        h[n] = math.exp(dt * float(A[ch, n])) * h[n] + dt * float(Bs[b, k, n, i, j]) * uu
                    y[b][c][p] += sum(float(Cs[b, k, n, i, j]) * h[n] for n in range(N)) + float(D[ch]) * uu
    return torch.tensor(y, dtype=torch.float64).reshape(Bsz, Di, H, W)


@pytest.mark.parametrize("softplus", [True, False])
def test_ss2d_reference_equals_the_literal_contract(softplus):
    inputs = scan_inputs(2, 2, 3, 4, 2, seed=5, device="cpu", softplus=softplus)
    ref = ss2d_reference(*inputs, delta_softplus=softplus)
    literal = _literal_contract_ss2d(*inputs, softplus)
    torch.testing.assert_close(ref, literal, rtol=1e-12, atol=1e-12)


def test_gdn_reference_matches_compressai():
    gdn_mod = pytest.importorskip("compressai.layers")
    C = 6
    for inverse in (False, True):
        layer = gdn_mod.GDN(C, inverse=inverse).double()
        with torch.no_grad():
            layer.gamma.add_(0.05 * torch.rand_like(layer.gamma))
        x = torch.randn(2, C, 4, 5, dtype=torch.float64)
        gamma = layer.gamma_reparam(layer.gamma)
        beta = layer.beta_reparam(layer.beta)
        torch.testing.assert_close(gdn_reference(x, gamma, beta, inverse), layer(x), rtol=1e-12, atol=1e-12)
