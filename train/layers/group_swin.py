"""Group-masked Swin blocks (GIT-SSIC, Feng et al. 2023): window attention that never mixes group labels.

A group mask (integer labels, one per latent cell, i.e. per 16×16 image block) is resized nearest to every
stage's token grid. W-MSA adds −100 to the attention logit of every (query, key) pair whose labels differ.
SW-MSA rolls the labels with the tokens and compares ``key = R + roll(M)`` where ``R`` is Swin's 3×3 region id
(0..8) of the padded grid, so tokens of different groups *and* tokens that wrapped around are kept apart —
except when the sums collide (region r + label g = region r' + label g', e.g. region 4 + group 1 = region 5 +
group 0): then tokens of different groups in a wrap-around window do attend to each other. This is the seed
code's rule and is reproduced exactly (``GroupBasicLayer.attention_biases``).

Names follow ``Amygyx/GIT-SSIC`` (``modules.py``: ``GroupBasicLayer.blocks``, ``GroupSwinTransformerBlock``:
``norm1``, ``attn``, ``norm2``, ``mlp``; ``WindowAttention``: ``relative_position_bias_table``,
``relative_position_index``, ``qkv``, ``proj``; ``Mlp``: ``fc1``, ``fc2``). Shapes come only from ``.shape``
arithmetic, so a fixed input size traces to a static graph; the mask is a tensor input all the way.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from train.layers.swin import SHIFT_MASK_VALUE
from train.layers.vss import Mlp

GROUP_MASK_VALUE = SHIFT_MASK_VALUE  # −100: finite (fp16-safe), exp(−100) vanishes next to exp(0)


def window_partition(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * H/p * W/p, p*p, C), windows in (batch, row, column) order."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // p, p, w // p, p, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b * (h // p) * (w // p), p * p, c)


def window_reverse(windows: torch.Tensor, p: int, b: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B * nW, p*p, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    x = windows.reshape(b, h // p, w // p, p, p, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, w, c)


def region_ids(hp: int, wp: int, p: int, shift: int, device=None) -> torch.Tensor:
    """(hp, wp) float map of Swin's shifted-window regions: 3·row_region + col_region, each region 0 below
    ``size − p``, 1 in ``[size − p, size − shift)``, 2 in the last ``shift`` rows/columns."""

    def bands(n: int) -> torch.Tensor:
        i = torch.arange(n, device=device)
        return (i >= n - p).to(torch.float32) + (i >= n - shift).to(torch.float32)

    return 3 * bands(hp)[:, None] + bands(wp)[None, :]


def _pair_bias(keys: torch.Tensor) -> torch.Tensor:
    """(nW, N) keys -> (nW, N, N) additive bias: 0 where the two tokens' keys are equal, −100 elsewhere."""
    eq = keys[:, :, None] == keys[:, None, :]
    return torch.where(
        eq,
        torch.zeros((), dtype=torch.float32, device=keys.device),
        torch.full((), GROUP_MASK_VALUE, dtype=torch.float32, device=keys.device),
    )


class WindowAttention(nn.Module):
    """Multi-head self-attention inside p×p windows with a learned relative-position bias ((2p−1)² × heads
    table, gathered through the fixed ``relative_position_index``) and an optional additive per-window bias."""

    def __init__(self, dim: int, window_size: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not a multiple of num_heads {num_heads}")
        self.dim, self.window_size, self.num_heads = dim, window_size, num_heads
        self.scale = (dim // num_heads) ** -0.5
        p = window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * p - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        r, c = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
        r, c = r.flatten(), c.flatten()
        index = (r[:, None] - r[None, :] + p - 1) * (2 * p - 1) + (c[:, None] - c[None, :] + p - 1)
        self.register_buffer("relative_position_index", index)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def relative_bias(self) -> torch.Tensor:
        n = self.window_size**2
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        return bias.reshape(n, n, self.num_heads).permute(2, 0, 1)  # heads, N, N

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """x (B·nW, N, C); bias (B·nW, N, N) added to every head's logits."""
        bw, n, c = x.shape
        h = self.num_heads
        qkv = self.qkv(x).reshape(bw, n, 3, h, c // h).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]  # (B·nW, heads, N, hd)
        attn = q @ k.transpose(-2, -1) + self.relative_bias()[None]
        if bias is not None:
            attn = attn + bias[:, None].to(attn.dtype)
        out = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(bw, n, c)
        return self.proj(out)


class GroupSwinBlock(nn.Module):
    """Pre-LN Swin block on (B, H, W, C): x + attn(LN x) in (shifted) windows, then x + MLP(LN x).
    Zero-pads (after the LN) to a multiple of the window as the seed does; the bias comes from the layer."""

    def __init__(self, dim: int, num_heads: int, window_size: int, shift_size: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.window_size, self.shift_size = window_size, shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, H, W, _ = x.shape
        p, s = self.window_size, self.shift_size
        t = self.norm1(x)
        ph, pw = (-H) % p, (-W) % p
        if ph or pw:
            t = F.pad(t, (0, 0, 0, pw, 0, ph))
        hp, wp = H + ph, W + pw
        if s:
            t = torch.roll(t, shifts=(-s, -s), dims=(1, 2))
        t = window_reverse(self.attn(window_partition(t, p), bias), p, b, hp, wp)
        if s:
            t = torch.roll(t, shifts=(s, s), dims=(1, 2))
        if ph or pw:
            t = t[:, :H, :W]
        x = x + t
        return x + self.mlp(self.norm2(x))


class GroupBasicLayer(nn.Module):
    """``depth`` group Swin blocks on NCHW features, shift 0 on even blocks and window//2 on odd ones; both
    attention biases are computed once per call from the group mask."""

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int = 8, mlp_ratio: float = 4.0):
        super().__init__()
        self.window_size, self.shift_size = window_size, window_size // 2
        self.blocks = nn.ModuleList(
            GroupSwinBlock(dim, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2, mlp_ratio)
            for i in range(depth)
        )

    def attention_biases(self, mask: torch.Tensor, H: int, W: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(W-MSA, SW-MSA) biases, each (B·nW, p², p²), for features of size H×W and labels ``mask``
        (B, 1, h, w): labels resized nearest to the padded grid (Hp, Wp), W-MSA keys = labels, SW-MSA keys =
        region id + labels rolled by −shift (the seed's rule, collisions included)."""
        p, s = self.window_size, self.shift_size
        hp, wp = -(-H // p) * p, -(-W // p) * p
        m = F.interpolate(mask.to(torch.float32), size=(hp, wp), mode="nearest")
        m = torch.trunc(m).permute(0, 2, 3, 1)  # B, Hp, Wp, 1 (the seed's .int() truncates)
        normal = _pair_bias(window_partition(m, p)[..., 0])
        shifted = torch.roll(m, shifts=(-s, -s), dims=(1, 2)) + region_ids(hp, wp, p, s, m.device)[None, :, :, None]
        return normal, _pair_bias(window_partition(shifted, p)[..., 0])

    def colliding_labels(self, mask: torch.Tensor, H: int, W: int) -> set[int]:
        """Labels of tokens that share a shifted window and a key (region + label) with a token of another
        label at features of size H×W: where the seed's SW-MSA rule lets groups attend to each other."""
        if not any(blk.shift_size for blk in self.blocks):
            return set()
        p, s = self.window_size, self.shift_size
        hp, wp = -(-H // p) * p, -(-W // p) * p
        m = torch.trunc(F.interpolate(mask.to(torch.float32), size=(hp, wp), mode="nearest")).permute(0, 2, 3, 1)
        labels = torch.roll(m, shifts=(-s, -s), dims=(1, 2))
        keys = window_partition(labels + region_ids(hp, wp, p, s, m.device)[None, :, :, None], p)[..., 0]
        labels = window_partition(labels, p)[..., 0]
        leak = (keys[:, :, None] == keys[:, None, :]) & (labels[:, :, None] != labels[:, None, :])
        return {int(v) for v in labels[leak.any(-1)].unique()}

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[-2], x.shape[-1]
        normal, shifted = self.attention_biases(mask, H, W)
        t = x.permute(0, 2, 3, 1)
        for blk in self.blocks:
            t = blk(t, shifted if blk.shift_size else normal)
        return t.permute(0, 3, 1, 2)
