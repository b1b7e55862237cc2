"""SS2D, the 2-D selective-scan mixer of VMamba v2 (as carried by SSMIC and MambaVC), in natural layout.

``selective_scan_2d`` implements the ``SelectiveScan2D`` contract of ``export/op_contracts.py``: u, the low-rank
step sizes dts, B and C arrive in natural (row-major) layout with the dt_proj weights beside them; dt_proj, the four
scan directions and the merge of their outputs all happen inside, so callers never hold the [B, 4*Di, H, W] step
sizes or the 4x cross-scanned copies. ``SS2D.forward`` computes x_proj per position in natural order and makes
exactly ONE call to this module's ``selective_scan_2d``, resolved at call time, so the exporter can swap in the
lictrt custom op by assigning ``ss2d.selective_scan_2d``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from train.layers import native_scan as _native
from train.layers import scan as _scan

K_DIRECTIONS = 4
SCAN_CHUNK = 16  # chunk of the chunked scan used in PyTorch (T*T*N work per chunk; 16 is fastest on CPU)


# ---------------------------------------------------------------------------------------------- directions
def to_direction(x: torch.Tensor, k: int) -> torch.Tensor:
    """(..., H, W) natural -> (..., L) in the visiting order of direction k (0 row-major, 1 column-major,
    2 and 3 their reverses)."""
    seq = x.flatten(-2) if k % 2 == 0 else x.transpose(-1, -2).flatten(-2)
    return seq.flip(-1) if k >= 2 else seq


def from_direction(y: torch.Tensor, k: int, H: int, W: int) -> torch.Tensor:
    """Inverse of :func:`to_direction`: (..., L) in direction-k order -> (..., H, W) natural."""
    if k >= 2:
        y = y.flip(-1)
    if k % 2 == 0:
        return y.unflatten(-1, (H, W))
    return y.unflatten(-1, (W, H)).transpose(-1, -2)


def dt_project(dts: torch.Tensor, dt_weight: torch.Tensor) -> torch.Tensor:
    """dt_proj of every direction: dts [B,K,R,H,W], dt_weight [K*Di,R] -> delta [B,K*Di,H,W] (the contract's
    delta = sum_r dt_weight[k*Di+c, r] * dts[b,k,r,p])."""
    bsz, K, R, H, W = dts.shape
    w = dt_weight.to(dts.dtype).unflatten(0, (K, -1))  # [K, Di, R]
    return torch.matmul(w, dts.flatten(3)).reshape(bsz, -1, H, W)


def selective_scan_2d(u, dts, dt_weight, A, Bs, Cs, D, delta_bias, delta_softplus=True):
    """The ``SelectiveScan2D`` op: u [B,Di,H,W], dts [B,K,R,H,W], dt_weight [K*Di,R], A [K*Di,N],
    Bs/Cs [B,K,N,H,W], D/delta_bias [K*Di] -> y [B,Di,H,W] (fp32), the sum over directions of each scan mapped
    back.

    CPU tensors go to ``torch.ops.lictrt.selective_scan_2d`` (native forward and backward kernels,
    ``train.layers.native_scan``) when its library is loaded and nothing is tracing; otherwise, and as the
    reference, :func:`selective_scan_2d_chunked`."""
    if (
        u.device.type == "cpu"
        and Bs.shape[1] == K_DIRECTIONS
        and not torch.compiler.is_compiling()
        and not torch.jit.is_tracing()
        and _native.enabled()
    ):
        return _native.selective_scan_2d(u, dts, dt_weight, A, Bs, Cs, D, delta_bias, delta_softplus).float()
    return selective_scan_2d_chunked(u, dts, dt_weight, A, Bs, Cs, D, delta_bias, delta_softplus)


def selective_scan_2d_chunked(u, dts, dt_weight, A, Bs, Cs, D, delta_bias, delta_softplus=True):
    """:func:`selective_scan_2d` in PyTorch: dt_proj (:func:`dt_project`), then :func:`scan_2d_chunked`."""
    return scan_2d_chunked(u, dt_project(dts, dt_weight), A, Bs, Cs, D, delta_bias, delta_softplus)


def scan_2d_chunked(u, delta, A, Bs, Cs, D, delta_bias, delta_softplus=True):
    """The scan after dt_proj, delta [B,K*Di,H,W]: the four directions formed here, one chunked scan
    (:func:`train.layers.scan.selective_scan_chunked`), the outputs merged back. Any device."""
    bsz, di, H, W = u.shape
    K = Bs.shape[1]
    dl = delta.unflatten(1, (K, di))
    u_seq = torch.cat([to_direction(u, k) for k in range(K)], dim=1)  # [B, K*Di, L]
    d_seq = torch.cat([to_direction(dl[:, k], k) for k in range(K)], dim=1)
    B_seq = torch.stack([to_direction(Bs[:, k], k) for k in range(K)], dim=1)  # [B, K, N, L]
    C_seq = torch.stack([to_direction(Cs[:, k], k) for k in range(K)], dim=1)
    ys = _scan.selective_scan_chunked(
        u_seq, d_seq, A, B_seq, C_seq, D, delta_bias, delta_softplus, chunk=SCAN_CHUNK
    ).unflatten(1, (K, di))
    y = from_direction(ys[:, 0], 0, H, W)
    for k in range(1, K):
        y = y + from_direction(ys[:, k], k, H, W)
    return y


def cross_scan(x: torch.Tensor) -> torch.Tensor:
    """VMamba CrossScan: (B, C, H, W) -> (B, 4, C, L), the 4x copy the natural layout avoids."""
    xs = torch.stack([x.flatten(2), x.transpose(2, 3).flatten(2)], dim=1)
    return torch.cat([xs, xs.flip(-1)], dim=1)


def cross_merge(ys: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """VMamba CrossMerge: (B, 4, C, L) -> (B, C, H, W) = ys0 + flip(ys2) + T(ys1 + flip(ys3))."""
    bsz, _, c, _ = ys.shape
    rows = ys[:, 0] + ys[:, 2].flip(-1)
    cols = (ys[:, 1] + ys[:, 3].flip(-1)).view(bsz, c, W, H).transpose(2, 3)
    return rows.view(bsz, c, H, W) + cols


def selective_scan_2d_fourcopy(u, dts, dt_weight, A, Bs, Cs, D, delta_bias, delta_softplus=True, scan_fn=None):
    """Test oracle for :func:`selective_scan_2d`: dt_proj, CrossScan -> one grouped scan -> CrossMerge, as VMamba
    does. ``scan_fn`` defaults to the float64-capable sequential :func:`train.layers.scan.selective_scan_ref`."""
    scan_fn = scan_fn or _scan.selective_scan_ref
    bsz, di, H, W = u.shape
    K = Bs.shape[1]
    xs = cross_scan(u).flatten(1, 2)  # [B, K*Di, L]
    dl = dt_project(dts, dt_weight).unflatten(1, (K, di))
    d_seq = torch.stack([cross_scan(dl[:, k])[:, k] for k in range(K)], dim=1).flatten(1, 2)
    B_seq = torch.stack([cross_scan(Bs[:, k])[:, k] for k in range(K)], dim=1)
    C_seq = torch.stack([cross_scan(Cs[:, k])[:, k] for k in range(K)], dim=1)
    ys = scan_fn(xs, d_seq, A, B_seq, C_seq, D, delta_bias, delta_softplus)
    return cross_merge(ys.unflatten(1, (K, di)), H, W)


# ---------------------------------------------------------------------------------------------- module
class SS2D(nn.Module):
    """VMamba v2 SS2D on channels-last input (B, H, W, d) -> (B, H, W, d).

    in_proj -> (x, z); x: depthwise conv + SiLU; x_proj/dt_proj per position for all K directions;
    selective_scan_2d; out_norm (LayerNorm); y * SiLU(z); out_proj. Parameter names follow the seeds.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        ssm_ratio: float = 2.0,
        dt_rank: int | str = "auto",
        d_conv: int = 3,
        conv_bias: bool = True,
        bias: bool = False,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
    ):
        super().__init__()
        K = K_DIRECTIONS
        self.d_model = int(d_model)
        self.d_state = int(d_state)
        self.d_inner = di = int(ssm_ratio * d_model)
        self.dt_rank = R = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.in_proj = nn.Linear(d_model, 2 * di, bias=bias)
        self.act = nn.SiLU()
        self.conv2d = nn.Conv2d(di, di, kernel_size=d_conv, padding=(d_conv - 1) // 2, groups=di, bias=conv_bias)
        bound = di**-0.5  # nn.Linear's default init, as the seed's per-direction Linear layers
        self.x_proj_weight = nn.Parameter(torch.empty(K, R + 2 * d_state, di).uniform_(-bound, bound))
        # dt_proj "v0" init: weight U(+-R^-0.5); bias = softplus^-1(dt), dt log-uniform in [dt_min, dt_max]
        self.dt_projs_weight = nn.Parameter(torch.empty(K, di, R).uniform_(-(R**-0.5), R**-0.5))
        dt = torch.exp(torch.rand(K, di) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_init_floor)
        self.dt_projs_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        self.A_logs = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(K * di, 1))
        self.Ds = nn.Parameter(torch.ones(K * di))
        self.out_norm = nn.LayerNorm(di)
        self.out_proj = nn.Linear(di, d_model, bias=bias)

    def projections(self, x: torch.Tensor):
        """x (B, Di, H, W) after conv+SiLU -> dts [B,K,R,H,W], Bs, Cs [B,K,N,H,W] in natural order (x_proj; dt_proj
        happens inside the scan op)."""
        bsz, di, H, W = x.shape
        K, R, N = K_DIRECTIONS, self.dt_rank, self.d_state
        x_dbl = torch.matmul(self.x_proj_weight.reshape(K * (R + 2 * N), di), x.flatten(2))  # [B, K*(R+2N), L]
        x_dbl = x_dbl.unflatten(1, (K, R + 2 * N)).unflatten(-1, (H, W))
        dts, Bs, Cs = torch.split(x_dbl, [R, N, N], dim=2)
        return dts, Bs, Cs

    def forward_core(self, x: torch.Tensor) -> torch.Tensor:
        """(B, Di, H, W) -> (B, H, W, Di): the scan part, through the swappable ``ss2d.selective_scan_2d``."""
        dts, Bs, Cs = self.projections(x)
        A = -torch.exp(self.A_logs.float())
        # A plain global name: resolved in this module's namespace at call time, so assigning
        # ``train.layers.ss2d.selective_scan_2d = custom_op`` (the exporter) reroutes every SS2D.
        y = selective_scan_2d(
            x.float(),
            dts.float(),
            self.dt_projs_weight.float().flatten(0, 1),
            A,
            Bs.float(),
            Cs.float(),
            self.Ds.float(),
            self.dt_projs_bias.float().reshape(-1),
            True,
        )
        return y.to(x.dtype).permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xz = self.in_proj(x)
        x, z = xz.chunk(2, dim=-1)
        z = self.act(z)
        x = self.act(self.conv2d(x.permute(0, 3, 1, 2)))
        y = self.out_norm(self.forward_core(x)) * z
        return self.out_proj(y)


def selective_scan_2d_reference(
    u, dts, dt_weight, A, Bs, Cs, D, delta_bias=None, delta_softplus=True, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """The reference of the ``SelectiveScan2D`` op (the one every test compares with): dt_proj, then VMamba's
    four-copy form over the exact sequential scan, computed in ``dtype`` (float64: an oracle); returns u's dtype."""
    args = [None if t is None else t.to(dtype) for t in (u, dts, dt_weight, A, Bs, Cs, D, delta_bias)]
    y = selective_scan_2d_fourcopy(*args, bool(delta_softplus), scan_fn=_scan.selective_scan_ref)
    return y.to(u.dtype)


def ss2d_forward_vmamba(m: SS2D, x: torch.Tensor, scan_fn=None) -> torch.Tensor:
    """Test oracle: ``m.forward`` the way VMamba computes it (CrossScan, einsum projections in scan order,
    one grouped scan, CrossMerge). ``scan_fn`` defaults to the sequential reference scan."""
    scan_fn = scan_fn or _scan.selective_scan_ref
    xz = m.in_proj(x)
    xi, z = xz.chunk(2, dim=-1)
    z = m.act(z)
    xi = m.act(m.conv2d(xi.permute(0, 3, 1, 2)))
    bsz, di, H, W = xi.shape
    R, N = m.dt_rank, m.d_state
    xs = cross_scan(xi)
    x_dbl = torch.einsum("bkdl,kcd->bkcl", xs, m.x_proj_weight)
    dts, Bs, Cs = torch.split(x_dbl, [R, N, N], dim=2)
    dts = torch.einsum("bkrl,kdr->bkdl", dts, m.dt_projs_weight)
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    ys = scan_fn(
        xs.flatten(1, 2).to(dtype),
        dts.flatten(1, 2).to(dtype),
        -torch.exp(m.A_logs.to(dtype)),
        Bs.to(dtype),
        Cs.to(dtype),
        m.Ds.to(dtype),
        m.dt_projs_bias.to(dtype).reshape(-1),
        True,
    )
    y = cross_merge(ys.unflatten(1, (K_DIRECTIONS, di)), H, W).permute(0, 2, 3, 1).to(x.dtype)
    return m.out_proj(m.out_norm(y) * z)
