"""Selective scan (Mamba S6 recurrence) in mamba's grouped layout: a sequential oracle and the chunked form.

Layout: ``u, delta [B, G*Dg, L]``, ``A [G*Dg, N]``, ``B, C [B, G, N, L]`` (channel ``c`` uses group
``c // Dg``), ``D, delta_bias [G*Dg]``.  Per channel c, state n, h_{-1} = 0::

    dt  = softplus(delta + delta_bias)            (plain delta + delta_bias if delta_softplus=False)
    h_t = exp(dt_t * A) * h_{t-1} + dt_t * B_t * u_t
    y_t = sum_n C_t[n] * h_t[n] + D * u_t
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Stand-in for -inf on masked (s > t) weight logits: exp() of it is exactly 0 in fp32 and fp16-safe consumers
# can clamp it; it is applied BEFORE the exponential so the positive S_t - S_s for s > t never overflows.
MASK_VALUE = -1.0e30
_MAX_TEMP_ELEMENTS = 1 << 24  # cap on the [.., T, T, N] weight temporary (64 MiB in fp32)
_MAX_STATE_ELEMENTS = 1 << 25  # cap on the [B, ch, L, N] state tensors of one chunked call (128 MiB in fp32)


class ScanShapeError(ValueError):
    """Inputs to a selective scan do not have consistent shapes."""


def _check(u, delta, A, B, C):
    if u.dim() != 3 or delta.shape != u.shape:
        raise ScanShapeError(f"u and delta must both be [B, G*Dg, L]; got {tuple(u.shape)} and {tuple(delta.shape)}")
    if B.dim() != 4 or C.shape != B.shape:
        raise ScanShapeError(f"B and C must both be [B, G, N, L]; got {tuple(B.shape)} and {tuple(C.shape)}")
    bsz, ch, length = u.shape
    groups, n = B.shape[1], B.shape[2]
    if B.shape[0] != bsz or B.shape[3] != length or ch % groups != 0 or tuple(A.shape) != (ch, n):
        raise ScanShapeError(f"inconsistent scan shapes: u {tuple(u.shape)}, A {tuple(A.shape)}, B {tuple(B.shape)}")
    return bsz, ch, length, groups, n


def _delta(delta, delta_bias, delta_softplus):
    if delta_bias is not None:
        delta = delta + delta_bias.to(delta.dtype)[:, None]
    return F.softplus(delta) if delta_softplus else delta


def selective_scan_ref(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=True):
    """Sequential recurrence in the dtype of ``u`` (use float64 for an exact oracle). Returns y [B, G*Dg, L]."""
    bsz, ch, length, groups, n = _check(u, delta, A, B, C)
    dtype = u.dtype
    dt = _delta(delta.to(dtype), delta_bias, delta_softplus)
    A = A.to(dtype)
    rep = ch // groups
    Bx = B.to(dtype).repeat_interleave(rep, dim=1)  # [B, ch, N, L]
    Cx = C.to(dtype).repeat_interleave(rep, dim=1)
    h = u.new_zeros(bsz, ch, n)
    ys = []
    for t in range(length):
        h = torch.exp(dt[:, :, t, None] * A) * h + (dt[:, :, t] * u[:, :, t])[..., None] * Bx[..., t]
        ys.append((h * Cx[..., t]).sum(-1))
    y = torch.stack(ys, dim=-1)
    if D is not None:
        y = y + D.to(dtype)[:, None] * u
    return y


def selective_scan_chunked(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=True, chunk=32):
    """Overflow-safe chunked scan in fp32 (what the ONNX function body of ``SelectiveScan2D`` mirrors).

    Within a chunk of T steps, S_t = cumsum_{r<=t}(dt_r * A) and the state reached from a zero start is
    ``sum_{s<=t} exp(S_t - S_s) * dt_s * B_s * u_s``; the exponent is masked to a large negative for s > t
    before ``exp`` (never exp(S_t) * exp(-S_s), which overflows for strongly negative A). S_t - S_s is
    formed as a segment sum (cumsum over t of dA_t masked to t > s) rather than a difference of two large
    cumsums, which loses ~1e-4 relative in fp32 once |S| ~ 1e3..1e5. The state entering each chunk is carried
    sequentially and contributes ``exp(S_t) * h_in``. Returns fp32 y [B, G*Dg, L].
    """
    bsz, ch, length, groups, n = _check(u, delta, A, B, C)
    if chunk < 1:
        raise ScanShapeError(f"chunk must be >= 1, got {chunk}")
    if bsz * ch * length * n > _MAX_STATE_ELEMENTS and ch > 1:
        return _by_channel_blocks(u, delta, A, B, C, D, delta_bias, delta_softplus, chunk, groups)
    f32 = torch.float32
    u32 = u.to(f32)
    dt = _delta(delta.to(f32), None if delta_bias is None else delta_bias.to(f32), delta_softplus)
    A = A.to(f32)
    rep = ch // groups
    T = min(chunk, length)
    pad = (-length) % T
    if pad:  # padded steps have dt = 0 and u = 0: they leave the state unchanged and are cropped below
        u32, dt = F.pad(u32, (0, pad)), F.pad(dt, (0, pad))
        B, C = F.pad(B, (0, pad)), F.pad(C, (0, pad))
    nc = (length + pad) // T
    # [b, g, d, chunk, t, (n)]
    uc = u32.reshape(bsz, groups, rep, nc, T)
    dc = dt.reshape(bsz, groups, rep, nc, T)
    Bc = B.to(f32).reshape(bsz, groups, n, nc, T).permute(0, 1, 3, 4, 2).unsqueeze(2)  # [b,g,1,nc,T,n]
    Cc = C.to(f32).reshape(bsz, groups, n, nc, T).permute(0, 1, 3, 4, 2).unsqueeze(2)
    Ag = A.reshape(groups, rep, 1, 1, n)  # broadcasts against [b,g,d,c,T,n]
    future = torch.ones(T, T, dtype=torch.bool, device=u.device).triu(1)[:, :, None]  # [t, s, 1]: s > t
    past = future.transpose(0, 1)  # [t, s, 1]: t > s

    # Intra-chunk part, vectorised over chunks (in groups that bound the [.., T, T, N] temporary).
    per_chunk = bsz * ch * T * T * n
    step = max(1, _MAX_TEMP_ELEMENTS // per_chunk)
    S_parts, h_loc_parts = [], []
    for j0 in range(0, nc, step):
        j1 = min(nc, j0 + step)
        d_j = dc[:, :, :, j0:j1]  # [b,g,d,c,T]
        dA = d_j[..., None] * Ag  # [b,g,d,c,T,n]
        S = torch.cumsum(dA, dim=-2)
        x = (d_j * uc[:, :, :, j0:j1])[..., None] * Bc[:, :, :, j0:j1]  # [b,g,d,c,T,n]
        # S_t - S_s as a direct sum of dA over (s, t] (a cumsum over t of dA_t masked to t > s): the same
        # value as the difference of cumsums without its cancellation error when |S| is large.
        seg = torch.cumsum(dA[..., :, None, :].masked_fill(~past, 0.0), dim=-3)  # [b,g,d,c,t,s,n]
        w = torch.exp(seg.masked_fill(future, MASK_VALUE))
        S_parts.append(S)
        h_loc_parts.append((w * x[..., None, :, :]).sum(-2))  # state at t from a zero chunk start
    S = torch.cat(S_parts, dim=3)
    h_loc = torch.cat(h_loc_parts, dim=3)
    # Carry the state between chunks sequentially: h_in[j+1] = exp(S[j, T-1]) * h_in[j] + h_loc[j, T-1].
    decay_end = torch.exp(S[..., -1, :])  # [b,g,d,nc,n]
    h = u32.new_zeros(bsz, groups, rep, n)
    h_in = []
    for j in range(nc):
        h_in.append(h)
        h = decay_end[:, :, :, j] * h + h_loc[:, :, :, j, -1]
    h_all = h_loc + torch.exp(S) * torch.stack(h_in, dim=3)[..., None, :]
    outs = (h_all * Cc).sum(-1)  # [b,g,d,nc,T]
    y = outs.reshape(bsz, ch, nc * T)[..., :length]
    if D is not None:
        y = y + D.to(f32)[:, None] * u.to(f32)
    return y


def _by_channel_blocks(u, delta, A, B, C, D, delta_bias, delta_softplus, chunk, groups):
    """The chunked scan over blocks of channels (channels never interact; a block stays inside one group when
    it is smaller than a group), so the state tensors stay under _MAX_STATE_ELEMENTS: a 768x512 image's
    first SSMIC stage would otherwise hold ~10 GB. Each channel goes through the same operations as in one call;
    only the summation order of vectorised reductions may differ (~1e-7 relative)."""
    bsz, ch, length = u.shape
    n, rep = B.shape[2], ch // groups
    per_channel = bsz * length * n
    width = max(1, _MAX_STATE_ELEMENTS // per_channel)
    spans = []  # (first channel, last channel + 1, first group, last group + 1)
    if width >= rep:  # whole groups per block
        gpb = width // rep
        spans = [(g * rep, min(groups, g + gpb) * rep, g, min(groups, g + gpb)) for g in range(0, groups, gpb)]
    else:  # slices of one group per block
        spans = [
            (g * rep + a, g * rep + min(rep, a + width), g, g + 1) for g in range(groups) for a in range(0, rep, width)
        ]

    def part(t, a, b):
        return None if t is None else t[a:b]

    ys = [
        selective_scan_chunked(
            u[:, a:b],
            delta[:, a:b],
            A[a:b],
            B[:, g0:g1],
            C[:, g0:g1],
            part(D, a, b),
            part(delta_bias, a, b),
            delta_softplus,
            chunk,
        )
        for a, b, g0, g1 in spans
    ]
    return torch.cat(ys, dim=1)
