"""Specifications of train/layers: RMSNorm, the selective scans, SelectiveScan2D, SS2D, VSS blocks, Swin."""

from __future__ import annotations

import math

import pytest
import torch

from train.layers import scan as S
from train.layers import ss2d
from train.layers.norm import RMSNorm
from train.layers.swin import WMSA, SWAtten, SwinBlock
from train.layers.vss import VSSBlock

torch.set_num_threads(1)
F64 = torch.float64


def rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    return ((a.double() - ref.double()).abs().max() / ref.double().abs().max()).item()


def scan_inputs(b=2, G=4, Dg=3, N=5, L=100, a_lo=-1.0, a_hi=1.0, seed=0):
    """Random grouped-layout scan inputs in float64; A = -exp(U(a_lo, a_hi))."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=F64)  # noqa: E731
    A = -torch.exp(torch.empty(G * Dg, N, dtype=F64).uniform_(a_lo, a_hi, generator=g))
    return dict(
        u=r(b, G * Dg, L),
        delta=r(b, G * Dg, L),
        A=A,
        B=r(b, G, N, L),
        C=r(b, G, N, L),
        D=r(G * Dg),
        delta_bias=r(G * Dg),
    )


def f32(d):
    return {k: v.float() for k, v in d.items()}


# ------------------------------------------------------------------------------------------- RMSNorm
def test_rmsnorm_is_scale_times_x_over_rms_plus_eps_outside_the_root():
    d = 7
    norm = RMSNorm(d).double()
    with torch.no_grad():
        norm.scale.copy_(torch.linspace(0.5, 2.0, d))
    x = torch.randn(3, 4, d, dtype=F64) * 1e-5  # tiny inputs: eps placement matters
    rms = x.pow(2).sum(-1, keepdim=True).sqrt() / math.sqrt(d)
    expected = norm.scale * x / (rms + 1e-5)
    assert torch.allclose(norm(x), expected, rtol=1e-12, atol=0)
    eps_inside = norm.scale * x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5)
    assert not torch.allclose(norm(x), eps_inside, rtol=1e-3)
    assert [n for n, _ in norm.named_parameters()] == ["scale"]


# ------------------------------------------------------------------------------------------- scans
@pytest.mark.parametrize("chunk", [1, 7, 16, 32, 64])
def test_chunked_scan_matches_float64_sequential_reference(chunk):
    x = scan_inputs(L=100)  # 100 is not a multiple of 7, 16, 32 or 64: the padded tail is exercised
    ref = S.selective_scan_ref(**x)
    out = S.selective_scan_chunked(**f32(x), chunk=chunk)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert rel_err(out, ref) <= 1e-5


def test_chunked_scan_long_sequence():
    x = scan_inputs(b=1, G=2, Dg=2, N=4, L=4096, seed=1)
    ref = S.selective_scan_ref(**x)
    out = S.selective_scan_chunked(**f32(x), chunk=32)
    assert rel_err(out, ref) <= 1e-5


@pytest.mark.parametrize("cap_channels", [1, 2, 6])  # one channel, part of a group, two whole groups
def test_chunked_scan_bounds_its_memory_by_channel_blocks(monkeypatch, cap_channels):
    x = scan_inputs(b=1, G=4, Dg=3, N=5, L=64, seed=2)
    ref = S.selective_scan_ref(**x)
    blocks = []
    real = S.selective_scan_chunked
    monkeypatch.setattr(S, "_MAX_STATE_ELEMENTS", 1 * 64 * 5 * cap_channels)

    def spy(u, *a, **k):
        blocks.append(u.shape[1])
        return real(u, *a, **k)

    monkeypatch.setattr(S, "selective_scan_chunked", spy)
    out = real(**f32(x))
    assert rel_err(out, ref) <= 1e-5
    assert sum(blocks) == 12 and max(blocks) <= max(cap_channels, 1)  # no call holds more than the cap


def test_chunked_scan_strongly_negative_A_has_no_overflow():
    # |A| up to e^7 ~ 1100 and dt up to ~5: within one chunk sum(dt*A) reaches ~ -1e5, so the naive
    # exp(S_t) * exp(-S_s) factorisation overflows to inf; the masked-difference form must not.
    x = scan_inputs(b=1, G=2, Dg=2, N=4, L=4096, a_lo=2.0, a_hi=7.0, seed=2)
    x["delta"] = x["delta"] * 3
    ref = S.selective_scan_ref(**x)
    out = S.selective_scan_chunked(**f32(x), chunk=32)
    assert torch.isfinite(out).all()
    assert rel_err(out, ref) <= 1e-5
    dt = torch.nn.functional.softplus(x["delta"] + x["delta_bias"][:, None]).float()
    S_chunk = torch.cumsum(dt[0, 0, :32, None] * x["A"][0].float(), 0)
    assert torch.isinf(torch.exp(-S_chunk)).any()  # the naive form really would overflow here


@pytest.mark.parametrize("softplus", [True, False])
def test_chunked_scan_optional_terms(softplus):
    x = scan_inputs(L=50, seed=3)
    x["delta"] = x["delta"].abs() * 0.5  # without softplus dt must stay positive to be a valid scan
    for drop in ([], ["D"], ["delta_bias"], ["D", "delta_bias"]):
        kw = {k: (None if k in drop else v) for k, v in x.items()}
        if not softplus and "delta_bias" not in drop:
            kw["delta_bias"] = kw["delta_bias"].abs()
        ref = S.selective_scan_ref(**kw, delta_softplus=softplus)
        out = S.selective_scan_chunked(
            **{k: (None if v is None else v.float()) for k, v in kw.items()}, delta_softplus=softplus, chunk=16
        )
        assert rel_err(out, ref) <= 1e-5


def test_reference_scan_is_the_recurrence_for_one_step():
    x = scan_inputs(b=1, G=1, Dg=1, N=3, L=1)
    dt = torch.nn.functional.softplus(x["delta"][0, 0, 0] + x["delta_bias"][0])
    h = dt * x["B"][0, 0, :, 0] * x["u"][0, 0, 0]
    y = (x["C"][0, 0, :, 0] * h).sum() + x["D"][0] * x["u"][0, 0, 0]
    assert torch.allclose(S.selective_scan_ref(**x)[0, 0, 0], y)


def test_scan_rejects_inconsistent_shapes():
    x = f32(scan_inputs(L=10))
    x["B"] = x["B"][..., :9]
    with pytest.raises(S.ScanShapeError):
        S.selective_scan_chunked(**x)
    with pytest.raises(S.ScanShapeError):
        S.selective_scan_ref(**x)


# ------------------------------------------------------------------------------------------- SelectiveScan2D
def ss2d_inputs(b=2, Di=3, H=5, W=7, N=4, R=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=F64)  # noqa: E731
    K = 4
    return dict(
        u=r(b, Di, H, W),
        dts=r(b, K, R, H, W),
        dt_weight=r(K * Di, R),
        A=-torch.exp(r(K * Di, N)),
        Bs=r(b, K, N, H, W),
        Cs=r(b, K, N, H, W),
        D=r(K * Di),
        delta_bias=r(K * Di),
    )


def literal_contract(u, dts, dt_weight, A, Bs, Cs, D, delta_bias):
    """SelectiveScan2D exactly as op_contracts words it: delta = sum_r dt_weight[ch, r] * dts[b, k, r, p]; direction
    k visits p(t) by the stated formulas."""
    bsz, Di, H, W = u.shape
    L = H * W
    delta = torch.stack(
        [
            sum(dt_weight[k * Di + c, r] * dts[:, k, r] for r in range(dts.shape[2]))
            for k in range(4)
            for c in range(Di)
        ],
        dim=1,
    )  # [B, 4*Di, H, W]
    y = torch.zeros(bsz, Di, L, dtype=u.dtype)
    for k in range(4):
        t = torch.arange(L)
        p = t if k % 2 == 0 else (t % H) * W + t // H
        if k >= 2:
            p = p.flip(0)
        sl = slice(k * Di, (k + 1) * Di)
        ys = S.selective_scan_ref(
            u.flatten(2)[..., p],
            delta[:, sl].flatten(2)[..., p],
            A[sl],
            Bs[:, k : k + 1].flatten(3)[..., p],
            Cs[:, k : k + 1].flatten(3)[..., p],
            D[sl],
            delta_bias[sl],
        )
        y[..., p] += ys
    return y.view(bsz, Di, H, W)


@pytest.mark.parametrize("H,W", [(5, 7), (8, 3), (1, 6)])
def test_selective_scan_2d_matches_fourcopy_and_the_literal_contract(H, W):
    x = ss2d_inputs(H=H, W=W)
    out = ss2d.selective_scan_2d(**{k: v.float() for k, v in x.items()})
    four = ss2d.selective_scan_2d_fourcopy(**x)
    literal = literal_contract(**x)
    assert out.shape == (2, 3, H, W) and out.dtype == torch.float32
    assert rel_err(four, literal) <= 1e-12
    assert rel_err(out, four) <= 1e-5


def test_directions_round_trip_and_visit_orders():
    x = torch.arange(12.0).view(1, 3, 4)
    assert to_list(ss2d.to_direction(x, 0)) == list(range(12))
    assert to_list(ss2d.to_direction(x, 1)) == [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]
    assert to_list(ss2d.to_direction(x, 2)) == list(range(11, -1, -1))
    for k in range(4):
        assert torch.equal(ss2d.from_direction(ss2d.to_direction(x, k), k, 3, 4), x)


def to_list(t):
    return [int(v) for v in t.flatten()]


# ------------------------------------------------------------------------------------------- SS2D module
def test_ss2d_natural_order_equals_vmamba_cross_scan_order():
    torch.manual_seed(0)
    m = ss2d.SS2D(8, d_state=4).double()
    with torch.no_grad():  # move off the identity-ish init so every parameter matters
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(2, 5, 6, 8, dtype=F64)
    ours = m(x)
    vmamba = ss2d.ss2d_forward_vmamba(m, x)
    assert ours.shape == x.shape
    assert rel_err(ours, vmamba) <= 1e-5


def test_ss2d_parameter_names_and_shapes_follow_the_seed():
    m = ss2d.SS2D(32, d_state=16)  # d=32: Di=64, R=ceil(32/16)=2, K=4
    shapes = {n: tuple(p.shape) for n, p in m.named_parameters()}
    assert shapes == {
        "in_proj.weight": (128, 32),
        "conv2d.weight": (64, 1, 3, 3),
        "conv2d.bias": (64,),
        "x_proj_weight": (4, 2 + 32, 64),
        "dt_projs_weight": (4, 64, 2),
        "dt_projs_bias": (4, 64),
        "A_logs": (256, 16),
        "Ds": (256,),
        "out_norm.weight": (64,),
        "out_norm.bias": (64,),
        "out_proj.weight": (32, 64),
    }
    assert torch.allclose(m.A_logs[5], torch.log(torch.arange(1.0, 17.0)))
    dt = torch.nn.functional.softplus(m.dt_projs_bias)
    assert dt.min() >= 1e-4 - 1e-7 and dt.max() <= 0.1 + 1e-6


def test_ss2d_calls_the_swappable_selective_scan_2d_exactly_once(monkeypatch):
    calls = []
    real = ss2d.selective_scan_2d

    def spy(*args):
        calls.append([tuple(a.shape) if torch.is_tensor(a) else a for a in args])
        return real(*args)

    monkeypatch.setattr(ss2d, "selective_scan_2d", spy)
    m = ss2d.SS2D(8, d_state=4)
    m(torch.randn(1, 3, 5, 8))
    assert len(calls) == 1
    u, dts, dt_weight, A, Bs, Cs, D, bias, softplus = calls[0]
    assert (u, dts, dt_weight, A, Bs, Cs, D, bias, softplus) == (
        (1, 16, 3, 5),
        (1, 4, 1, 3, 5),  # dt rank ceil(8 / 16) = 1: dt_proj happens inside the op
        (64, 1),
        (64, 4),
        (1, 4, 4, 3, 5),
        (1, 4, 4, 3, 5),
        (64,),
        (64,),
        True,
    )


def test_vss_blocks():
    ssmic = VSSBlock(16, norm="rms", mlp_ratio=2.0, d_state=4)
    mamba = VSSBlock(16, norm="ln", channels_first=True, drop_path=0.1, d_state=4).eval()
    assert {n.split(".")[0] for n, _ in ssmic.named_parameters()} == {"norm", "op", "norm2", "mlp"}
    assert {n.split(".")[0] for n, _ in mamba.named_parameters()} == {"norm", "op"}
    assert ssmic(torch.randn(1, 4, 5, 16)).shape == (1, 4, 5, 16)
    x = torch.randn(1, 16, 4, 5)
    with torch.no_grad():  # zero output projection: the residual block is the identity
        mamba.op.out_proj.weight.zero_()
    assert torch.equal(mamba(x), x)


# ------------------------------------------------------------------------------------------- Swin
def test_window_attention_over_one_window_is_plain_attention_with_relative_bias():
    torch.manual_seed(0)
    m = WMSA(8, 8, head_dim=4, window_size=3, type="W").double()
    x = torch.randn(1, 3, 3, 8, dtype=F64)
    q, k, v = m.embedding_layer(x.reshape(1, 9, 8)).reshape(1, 9, 6, 4).permute(2, 0, 1, 3).chunk(3, 0)
    att = (q @ k.transpose(-1, -2)) * 0.5 + m.relative_embedding()[:, None]
    out = (att.softmax(-1) @ v).permute(1, 2, 0, 3).reshape(1, 9, 8)
    assert torch.allclose(m(x), m.linear(out).reshape(1, 3, 3, 8))
    # bias[h, i, j] = params[h, r_i - r_j + p - 1, c_i - c_j + p - 1]: it depends only on the offset
    rb, P = m.relative_embedding(), m.relative_position_params
    assert torch.equal(rb[:, 0, 4], rb[:, 4, 8]) and torch.equal(rb[:, 0, 4], P[:, 1, 1])
    assert torch.equal(rb[:, 4, 0], P[:, 3, 3]) and torch.equal(rb[:, 2, 6], P[:, 0, 4])


def test_shifted_window_mask_separates_wrapped_regions_only():
    m = WMSA(8, 8, head_dim=4, window_size=4, type="SW")
    mask = m.shift_mask(2, 3)  # 2x3 windows of 4x4 (shift 2)
    assert mask.shape == (6, 16, 16) and torch.equal(mask, mask.transpose(1, 2))
    assert not mask[0].any() and not mask[1].any()  # windows away from the last row/column
    # last row, not last column: rows {0,1} vs {2,3} of the window are separated: 2 * 8 * 8 pairs
    assert mask[3].sum() == 2 * 8 * 8
    # the last window is split in four quadrants: each of 16 queries sees only its 4 quadrant-mates
    assert mask[5].sum() == 16 * 12


def test_swin_block_and_swatten_keep_shapes_on_non_multiple_sizes():
    blk = SwinBlock(16, 16, head_dim=8, window_size=4)
    assert blk(torch.randn(1, 16, 6, 9)).shape == (1, 16, 6, 9)
    att = SWAtten(24, 24, head_dim=8, window_size=4, inter_dim=16)
    assert att(torch.randn(2, 24, 4, 4)).shape == (2, 24, 4, 4)
    names = {n.split(".")[0] for n, _ in att.named_parameters()}
    assert names == {"conv_a", "conv_b", "non_local_block", "in_conv", "out_conv"}
