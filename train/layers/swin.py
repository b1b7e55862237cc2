"""Window attention used by MambaVC's channel-wise entropy model: W-MSA/SW-MSA Swin blocks and SWAtten.

Names follow ``QinSY123/2024-MambaVC`` (``WMSA``: ``embedding_layer``, ``relative_position_params``,
``linear``; ``Block``: ``ln1``, ``msa``, ``ln2``, ``mlp``; ``SwinBlock``: ``block_1``, ``block_2``;
``SWAtten(AttentionBlock)``: ``in_conv``, ``non_local_block``, ``conv_a``, ``conv_b``, ``out_conv``).
Shapes only ever come from ``.shape`` arithmetic, so it traces to a static graph for a fixed input size.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.layers import AttentionBlock

# Additive mask for keys in another shifted region: finite (fp16-safe), exp(-100) vanishes next to exp(0).
SHIFT_MASK_VALUE = -100.0


class WMSA(nn.Module):
    """Multi-head self-attention inside non-overlapping p x p windows of (B, H, W, C); ``type="SW"`` shifts the
    windows by p//2 (cyclic roll) and masks attention across the wrapped regions. H, W must be multiples of p."""

    def __init__(self, input_dim: int, output_dim: int, head_dim: int, window_size: int, type: str = "W"):
        super().__init__()
        if type not in ("W", "SW"):
            raise ValueError(f"WMSA type must be 'W' or 'SW', got {type!r}")
        if input_dim % head_dim:
            raise ValueError(f"input_dim {input_dim} is not a multiple of head_dim {head_dim}")
        self.head_dim = head_dim
        self.n_heads = input_dim // head_dim
        self.scale = head_dim**-0.5
        self.window_size = window_size
        self.type = type
        self.embedding_layer = nn.Linear(input_dim, 3 * input_dim, bias=True)
        w = 2 * window_size - 1
        self.relative_position_params = nn.Parameter(torch.empty(self.n_heads, w, w))
        nn.init.trunc_normal_(self.relative_position_params, std=0.02)
        self.linear = nn.Linear(input_dim, output_dim)

    def relative_embedding(self) -> torch.Tensor:
        """(heads, p*p, p*p) bias: params[h, r_i - r_j + p - 1, c_i - c_j + p - 1]."""
        p = self.window_size
        idx = torch.arange(p * p, device=self.relative_position_params.device)
        r, c = idx // p, idx % p
        dr = r[:, None] - r[None, :] + p - 1
        dc = c[:, None] - c[None, :] + p - 1
        return self.relative_position_params[:, dr, dc]

    def shift_mask(self, nwh: int, nww: int) -> torch.Tensor:
        """(nwh*nww, p*p, p*p) bool, True where query and key lie in different regions of a shifted window
        (only the last window row/column mixes wrapped-around pixels)."""
        p, s = self.window_size, self.window_size - self.window_size // 2
        dev = self.relative_position_params.device
        idx = torch.arange(p * p, device=dev)
        in_lo_row, in_lo_col = (idx // p) < s, (idx % p) < s
        last_row = torch.arange(nwh, device=dev) == nwh - 1
        last_col = torch.arange(nww, device=dev) == nww - 1
        row_split = in_lo_row[:, None] != in_lo_row[None, :]  # [q, k]
        col_split = in_lo_col[:, None] != in_lo_col[None, :]
        mask = (last_row[:, None, None, None] & row_split) | (last_col[None, :, None, None] & col_split)
        return mask.reshape(nwh * nww, p * p, p * p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, H, W, c = x.shape
        p, nh, hd = self.window_size, self.n_heads, self.head_dim
        shift = p // 2
        if self.type == "SW":
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
        nwh, nww = H // p, W // p
        x = x.reshape(b, nwh, p, nww, p, c).permute(0, 1, 3, 2, 4, 5).reshape(b, nwh * nww, p * p, c)
        qkv = self.embedding_layer(x).reshape(b, nwh * nww, p * p, 3 * nh, hd).permute(3, 0, 1, 2, 4)
        q, k, v = qkv[:nh], qkv[nh : 2 * nh], qkv[2 * nh :]  # [heads, b, windows, p*p, hd]
        sim = torch.matmul(q, k.transpose(-1, -2)) * self.scale
        sim = sim + self.relative_embedding()[:, None, None]
        if self.type == "SW":
            sim = sim.masked_fill(self.shift_mask(nwh, nww)[None, None], SHIFT_MASK_VALUE)
        out = torch.matmul(sim.softmax(dim=-1), v)  # [heads, b, windows, p*p, hd]
        out = out.permute(1, 2, 3, 0, 4).reshape(b, nwh * nww, p * p, nh * hd)
        out = self.linear(out)
        out = out.reshape(b, nwh, nww, p, p, -1).permute(0, 1, 3, 2, 4, 5).reshape(b, H, W, -1)
        if self.type == "SW":
            out = torch.roll(out, shifts=(shift, shift), dims=(1, 2))
        return out


class Block(nn.Module):
    """Swin transformer block on (B, H, W, C): x + MSA(LN(x)); x + MLP(LN(x)) with MLP ratio 4."""

    def __init__(self, input_dim: int, output_dim: int, head_dim: int, window_size: int, type: str = "W"):
        super().__init__()
        self.ln1 = nn.LayerNorm(input_dim)
        self.msa = WMSA(input_dim, input_dim, head_dim, window_size, type)
        self.ln2 = nn.LayerNorm(input_dim)
        self.mlp = nn.Sequential(nn.Linear(input_dim, 4 * input_dim), nn.GELU(), nn.Linear(4 * input_dim, output_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.msa(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class SwinBlock(nn.Module):
    """W-MSA block then SW-MSA block on NCHW input.

    The seed pads symmetrically only when a side is <= window and then fails to tile (it supports only
    latents that are multiples of the window and larger than it); here the input is zero-padded at the
    bottom/right to a multiple of the window and cropped back, which equals the seed wherever it runs."""

    def __init__(self, input_dim: int, output_dim: int, head_dim: int, window_size: int):
        super().__init__()
        self.block_1 = Block(input_dim, output_dim, head_dim, window_size, type="W")
        self.block_2 = Block(input_dim, output_dim, head_dim, window_size, type="SW")
        self.window_size = window_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[-2], x.shape[-1]
        ph, pw = (-H) % self.window_size, (-W) % self.window_size
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        t = self.block_2(self.block_1(x.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
        return t[:, :, :H, :W] if (ph or pw) else t


class SWAtten(AttentionBlock):
    """conv1x1 in -> inter_dim; CompressAI's attention block whose non-local branch is a SwinBlock;
    conv1x1 inter_dim -> out (TCM / MambaVC)."""

    def __init__(self, input_dim: int, output_dim: int, head_dim: int, window_size: int, inter_dim: int = 128):
        super().__init__(N=inter_dim)
        self.non_local_block = SwinBlock(inter_dim, inter_dim, head_dim, window_size)
        self.in_conv = nn.Conv2d(input_dim, inter_dim, 1)
        self.out_conv = nn.Conv2d(inter_dim, output_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.in_conv(x)
        z = self.non_local_block(x)
        out = self.conv_a(x) * torch.sigmoid(self.conv_b(z)) + x
        return self.out_conv(out)
