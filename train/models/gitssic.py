"""GIT-SSIC (Feng et al., ICCV 2023): group-masked Swin transforms and a channel-wise (ChARM) entropy model
whose latent is coded one stream per (group, slice), so any subset of groups can be decoded.

Layout follows ``Amygyx/GIT-SSIC`` (``our_codecs.py::GroupChARTTC``), see ``../shared/research/gitssic-basic.md``:

- g_a: 4 stages of PatchEmbed (conv k2 s2) + :class:`GroupBasicLayer` (C 128/192/256/320, depth 2/2/5/1,
  heads 8/12/16/16, window 8), then ``y = clamp(y, −255.5, 256.49)``.
- g_s: 4 stages of :class:`GroupBasicLayer` (C 320/256/192/128, depth 1/5/2/2) + conv1×1 (C → 4·C_out) and
  PixelShuffle(2), C_out 256/192/128/3.
- h_a: conv3 (M→192), ReLU, conv5 s2, ReLU, conv5 s2; h_s: convT5 s2, ReLU, convT5 s2, ReLU, conv3 (192→2M).
- ChARM: h_s's 2M channels are ``chunk(S)`` into hyper slices of 2M/S channels (not means | scales). Slice i's
  μ and σ come from separate pointwise nets on cat(hyper_i, ŷ_0..ŷ_{i−1}): conv1×1 (2M/S + i·M/S → M), ReLU,
  conv1×1 (M → M), ReLU, conv1×1 (M → M/S).
- y: symbols = round(y − μ), ŷ = symbols + μ; σ → table index is the **nearest** of CompressAI's 64
  log-spaced scales (0.11 … 256), as the seed does (:func:`nearest_scale_indexes`), not CompressAI's
  count-below rule. z: CompressAI ``EntropyBottleneck(192, filters=(3, 3, 3))`` (the seed's DeepFactorized
  prior; CompressAI codes round(z − median) where the seed codes round(z)).
- The group mask (integer labels, one per latent cell = 16×16 image block; ``(B, 1, H/16, W/16)``) is an input
  of g_a and g_s; without one the image is one group (label 0, the seed's "woStructure" mode). In training
  mode without a mask, :func:`random_box_masks` draws the seed's random box masks (each image all-zero with
  p = 0.5).

Parameter names differ from the seed only by module nesting and the z prior: :func:`state_dict_from_seed` maps
a seed state_dict onto ours (``SEED_PREFIXES``; DeepFactorized ``z_em._prior._base.{matrices,biases,factors}.k``
[1, C, …] → ``entropy_bottleneck.{matrices,biases,factors}.k`` [C, …], the same function). The seed's table
buffers ``y_em.*``/``z_em._cdf*`` are dropped, ours are rebuilt by ``update()``; CompressAI's ``quantiles``, which
the seed lacks, are solved from the loaded prior by :func:`fit_quantiles`, and CompressAI's constant buffers
(bounds, targets) are added.

The input is padded to ``pad_multiple`` = 16·window (128 for the paper model) so every stage's token grid tiles
into windows; the seed pads to 64 and, for latents that are not a multiple of the window, stretches the mask
over the padded grid (misaligning groups) -- at sizes that are multiples of 128 (Kodak) both are the same.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models import CompressionModel

from train.layers.group_swin import GroupBasicLayer

Y_CLAMP = (-255.5, 256.49)
MASK_GRID = 32  # pixels per cell of the coded mask (the seed's ss_block_size); 2×2 latent cells


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """round(x) in the forward pass, identity gradient."""
    return torch.round(x) - x.detach() + x


def nearest_scale_indexes(scales: torch.Tensor, scale_table: torch.Tensor) -> torch.Tensor:
    """Index of the table scale nearest to each σ (σ clamped to the table's range first; ties to the lower
    index), in float32: ``argmin_k |σ − s_k|``, the seed's rule. The runtime computes the same in numpy."""
    table = scale_table.to(torch.float32)
    s = scales.to(torch.float32).clamp(float(table[0]), float(table[-1]))
    return (s[..., None] - table).abs().argmin(dim=-1).to(torch.int32)


# --------------------------------------------------------------------------------------------- group masks
def connected_components(fg: torch.Tensor) -> torch.Tensor:
    """4-connected components of a boolean (B, H, W) map: labels 1..K in raster order of each component's first
    cell, 0 for background (what the seed gets from ``cv2.connectedComponentsWithStats(connectivity=4)``)."""
    b, h, w = fg.shape
    big = h * w + 1
    lab = torch.where(
        fg,
        torch.arange(1, h * w + 1, device=fg.device).reshape(1, h, w).expand(b, h, w),
        torch.full((), big, device=fg.device),
    )
    while True:
        p = F.pad(lab, (1, 1, 1, 1), value=big)
        nb = torch.stack([p[:, 1:-1, 1:-1], p[:, :-2, 1:-1], p[:, 2:, 1:-1], p[:, 1:-1, :-2], p[:, 1:-1, 2:]])
        new = torch.where(fg, nb.min(0).values, lab)
        if torch.equal(new, lab):
            break
        lab = new
    out = torch.zeros_like(lab)
    for i in range(b):
        roots = torch.unique(lab[i][fg[i]])  # each component's smallest raster index, ascending
        for k, r in enumerate(roots.tolist(), start=1):
            out[i][lab[i] == r] = k
    return out


def random_box_masks(
    batch: int,
    height: int,
    width: int,
    generator: torch.Generator | None = None,
    seed_prob: float = 0.1,
    box=(2, 3),
    zero_prob: float = 0.5,
) -> torch.Tensor:
    """The seed's training masks (``generate_random_group_msk`` + the all-zero draw) at latent resolution:
    on the 32-px grid each cell seeds a box with probability ``seed_prob``, of 2 or 3 cells per side (each
    side drawn independently), boxes are labelled by 4-connected components (background 0), the grid is
    resized nearest to H/16 × W/16, and each image's mask is set to all zeros with probability ``zero_prob``."""
    hg, wg = height // MASK_GRID, width // MASK_GRID
    seeds = torch.rand(batch, hg, wg, generator=generator) >= 1 - seed_prob
    fg = seeds.clone()
    for b, r, c in seeds.nonzero().tolist():
        bh, bw = torch.randint(box[0], box[1] + 1, (2,), generator=generator).tolist()
        fg[b, r : r + bh, c : c + bw] = True
    labels = connected_components(fg)
    labels = F.interpolate(labels[:, None].float(), size=(height // 16, width // 16), mode="nearest").long()
    keep = torch.rand(batch, generator=generator) >= zero_prob
    return (labels * keep[:, None, None, None]).to(torch.int64)


# --------------------------------------------------------------------------------------------- transforms
class PatchEmbed(nn.Module):
    """conv k2 s2 (the seed's PatchEmbed without its norm)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Upsample(nn.Module):
    """conv1×1 (C → 4·C_out) + PixelShuffle(2) (the seed's ``Upsample``: ``m.0`` is the conv)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.m = nn.Sequential(nn.Conv2d(cin, 4 * cout, 1), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m(x)


class PatchUnEmbed(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.proj = Upsample(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


def _latent_mask(mask: torch.Tensor | None, x: torch.Tensor, stride: int) -> torch.Tensor:
    """The group mask as float (B, 1, h, w) for features ``x`` whose latent is ``x``'s size / ``stride``."""
    b = x.shape[0]
    if mask is None:
        return torch.zeros(b, 1, x.shape[-2] // stride, x.shape[-1] // stride, device=x.device)
    if mask.dim() == 3:
        mask = mask[:, None]
    mask = mask.to(torch.float32)
    return mask.expand(b, -1, -1, -1) if mask.shape[0] == 1 and b > 1 else mask


class GroupAnalysis(nn.Module):
    """g_a(x, mask): per stage PatchEmbed then GroupBasicLayer; y clamped to [−255.5, 256.49]."""

    def __init__(self, dims: Sequence[int], depths: Sequence[int], heads: Sequence[int], window: int, mlp_ratio: float):
        super().__init__()
        cins = [3] + list(dims[:-1])
        self.pe = nn.ModuleList(PatchEmbed(ci, co) for ci, co in zip(cins, dims))
        self.m = nn.ModuleList(GroupBasicLayer(d, n, h, window, mlp_ratio) for d, n, h in zip(dims, depths, heads))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        mask = _latent_mask(mask, x, 16)
        for pe, layer in zip(self.pe, self.m):
            x = layer(pe(x), mask)
        return torch.clamp(x, Y_CLAMP[0], Y_CLAMP[1])


class GroupSynthesis(nn.Module):
    """g_s(y_hat, mask): per stage GroupBasicLayer then conv1×1 + PixelShuffle(2)."""

    def __init__(self, dims: Sequence[int], depths: Sequence[int], heads: Sequence[int], window: int, mlp_ratio: float):
        super().__init__()
        rd, rn, rh = list(dims)[::-1], list(depths)[::-1], list(heads)[::-1]
        couts = rd[1:] + [3]
        self.m = nn.ModuleList(GroupBasicLayer(d, n, h, window, mlp_ratio) for d, n, h in zip(rd, rn, rh))
        self.pe = nn.ModuleList(PatchUnEmbed(ci, co) for ci, co in zip(rd, couts))

    def colliding_labels(self, mask: torch.Tensor) -> set[int]:
        """Labels whose reconstruction can depend on other groups' ŷ through the SW-MSA key collision
        (:meth:`GroupBasicLayer.colliding_labels` at every stage); ``mask`` (B, 1, h, w) at latent size."""
        h, w = mask.shape[-2], mask.shape[-1]
        out: set[int] = set()
        for k, layer in enumerate(self.m):
            out |= layer.colliding_labels(mask, h * 2**k, w * 2**k)
        return out

    def forward(self, y_hat: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        mask = _latent_mask(mask, y_hat, 1)
        x = y_hat
        for layer, pe in zip(self.m, self.pe):
            x = pe(layer(x, mask))
        return x


class SliceStep(nn.Module):
    """Slice i's ChARM nets: (hyper_i, ŷ_0, …, ŷ_{i−1}) -> (μ_i, σ_i)."""

    def __init__(self, model: nn.Module, i: int):
        super().__init__()
        self.means, self.scales = model.char_m_means[i], model.char_m_scales[i]

    def forward(self, hyper_i: torch.Tensor, *y_hat_prev: torch.Tensor):
        support = torch.cat([hyper_i, *y_hat_prev], dim=1)
        return self.means(support), self.scales(support)


def _charm_net(cin: int, hidden: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, cout, 1)
    )


class GITSSIC(CompressionModel):
    """GIT-SSIC ``GroupChARTTC`` (module docstring). ``forward(x, mask=None)``; ``compress(x, mask=None)``
    codes one stream per (group label, slice) plus z; ``decompress(strings, shape, mask=None, groups=None)``
    decodes the listed groups only (ŷ = 0 elsewhere) and runs g_s with the mask."""

    def __init__(
        self,
        dims: Sequence[int] = (128, 192, 256, 320),
        depths: Sequence[int] = (2, 2, 5, 1),
        heads: Sequence[int] = (8, 12, 16, 16),
        window_size: int = 8,
        hyper_channels: int = 192,
        num_slices: int = 10,
        mlp_ratio: float = 4.0,
    ):
        super().__init__()
        if not (len(dims) == len(depths) == len(heads) == 4):
            raise ValueError("GIT-SSIC needs 4 dims, depths and heads")
        M = int(dims[-1])
        if M % num_slices:
            raise ValueError(f"M = {M} is not a multiple of num_slices = {num_slices}")
        self.M, self.num_slices, self.window_size = M, int(num_slices), int(window_size)
        self.slice_channels = M // num_slices
        Nh = int(hyper_channels)
        self.g_a = GroupAnalysis(dims, depths, heads, window_size, mlp_ratio)
        self.g_s = GroupSynthesis(dims, depths, heads, window_size, mlp_ratio)
        self.h_a = nn.Sequential(
            nn.Conv2d(M, Nh, 3, 1, 1), nn.ReLU(), nn.Conv2d(Nh, Nh, 5, 2, 2), nn.ReLU(), nn.Conv2d(Nh, Nh, 5, 2, 2)
        )
        self.h_s = nn.Sequential(
            nn.ConvTranspose2d(Nh, Nh, 5, 2, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(Nh, Nh, 5, 2, 2, 1),
            nn.ReLU(),
            nn.Conv2d(Nh, 2 * M, 3, 1, 1),
        )
        sc = self.slice_channels
        self.char_m_means = nn.ModuleList(_charm_net(2 * sc + i * sc, M, sc) for i in range(num_slices))
        self.char_m_scales = nn.ModuleList(_charm_net(2 * sc + i * sc, M, sc) for i in range(num_slices))
        self.entropy_bottleneck = EntropyBottleneck(Nh, filters=(3, 3, 3))
        self.gaussian_conditional = GaussianConditional(None)

    coding_plan = "grouped_slices"
    state_dict_from_seed = staticmethod(lambda state: state_dict_from_seed(state))  # used by train.checkpoint

    @property
    def downsampling_factor(self) -> int:
        return 2 ** (4 + 2)

    @property
    def pad_multiple(self) -> int:
        """Input multiple: every stage's token grid (H/2 … H/16) tiles into windows; z needs H/64."""
        return max(64, 16 * self.window_size)

    # ---------------------------------------------------------------- one slice step (exported per slice)
    def slice_params(self, i: int, hyper: torch.Tensor, y_hat_slices: Sequence[torch.Tensor]):
        """Slice i's (μ, σ) from h_s(ẑ) and the decoded slices before it (pointwise nets)."""
        return SliceStep(self, i)(hyper.chunk(self.num_slices, 1)[i], *y_hat_slices[:i])

    def slice_graphs(self, y: torch.Tensor, z: torch.Tensor) -> dict[str, tuple[nn.Module, tuple]]:
        """``{"slice<i>": (module, example inputs)}``: slice i's ChARM step as a module of (hyper_i, ŷ_0..ŷ_{i−1})
        -> (μ, σ), with inputs shaped for latents ``y`` and ``z`` (what the MAC counter exports)."""
        with torch.no_grad():
            hyper = self.h_s(torch.round(z)).chunk(self.num_slices, 1)
        ys = list(y.chunk(self.num_slices, 1))
        return {f"slice{i}": (SliceStep(self, i), (hyper[i], *ys[:i])) for i in range(self.num_slices)}

    def scale_indexes(self, scales: torch.Tensor) -> torch.Tensor:
        return nearest_scale_indexes(scales, self.gaussian_conditional.scale_table)

    # ---------------------------------------------------------------- CompressionModel API
    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None):
        if mask is None and self.training:
            mask = random_box_masks(x.shape[0], x.shape[-2], x.shape[-1]).to(x.device)
        y = self.g_a(x, mask)
        z = self.h_a(y)
        z_hat, z_likelihoods = self.entropy_bottleneck(z)
        hyper = self.h_s(z_hat)
        y_hat_slices, likelihoods, mus, scales = [], [], [], []
        for i, y_slice in enumerate(y.chunk(self.num_slices, 1)):
            mu, scale = self.slice_params(i, hyper, y_hat_slices)
            _, lik = self.gaussian_conditional(y_slice, scale, mu)
            y_hat_slices.append(ste_round(y_slice - mu) + mu)
            likelihoods.append(lik)
            mus.append(mu)
            scales.append(scale)
        x_hat = self.g_s(torch.cat(y_hat_slices, dim=1), mask)
        return {
            "x_hat": x_hat,
            "likelihoods": {"y": torch.cat(likelihoods, 1), "z": z_likelihoods},
            "para": {"means": torch.cat(mus, 1), "scales": torch.cat(scales, 1)},
        }

    @staticmethod
    def _labels(mask: torch.Tensor | None, batch: int, h: int, w: int, device) -> torch.Tensor:
        if mask is None:
            return torch.zeros(batch, 1, h, w, dtype=torch.int64, device=device)
        m = mask if mask.dim() == 4 else mask[:, None]
        if tuple(m.shape[-2:]) != (h, w):
            raise ValueError(f"group mask is {tuple(m.shape[-2:])}, the latent is {(h, w)}")
        return m.to(torch.int64).expand(batch, -1, -1, -1)

    def compress(self, x: torch.Tensor, mask: torch.Tensor | None = None):
        """-> {"strings": [y_{g,i} for each group label g (ascending), slice i] + [z] (each a list over the
        batch), "shape": z size, "groups": the labels}. Every image of the batch must have the same labels."""
        y = self.g_a(x, mask)
        z = self.h_a(y)
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.size()[-2:])
        hyper = self.h_s(z_hat)
        labels = self._labels(mask, y.shape[0], y.shape[-2], y.shape[-1], y.device)
        groups = [int(g) for g in torch.unique(labels[0])]
        if any(torch.unique(labels[b]).tolist() != groups for b in range(1, labels.shape[0])):
            raise ValueError("every image of a batch must have the same group labels")
        ys = y.chunk(self.num_slices, 1)
        y_hat_slices, symbols, indexes = [], [], []
        for i in range(self.num_slices):
            mu, scale = self.slice_params(i, hyper, y_hat_slices)
            symbols.append(self.gaussian_conditional.quantize(ys[i], "symbols", mu))
            indexes.append(self.scale_indexes(scale))
            y_hat_slices.append(symbols[-1].to(mu.dtype) + mu)
        strings = []
        for g in groups:
            for i in range(self.num_slices):
                per_image = []
                for b in range(y.shape[0]):
                    sel = (labels[b] == g).expand_as(symbols[i][b])
                    per_image.append(
                        self.gaussian_conditional.compress(symbols[i][b][sel][None].float(), indexes[i][b][sel][None])[
                            0
                        ]
                    )
                strings.append(per_image)
        return {"strings": strings + [z_strings], "shape": z.size()[-2:], "groups": groups}

    def decompress(self, strings, shape, mask: torch.Tensor | None = None, groups: Sequence[int] | None = None):
        """Decode the listed groups (default: all labels of ``mask``); ŷ is zero outside them."""
        z_hat = self.entropy_bottleneck.decompress(strings[-1], shape)
        hyper = self.h_s(z_hat)
        B, h, w = z_hat.shape[0], hyper.shape[-2], hyper.shape[-1]
        labels = self._labels(mask, B, h, w, z_hat.device)
        coded = [int(g) for g in torch.unique(labels[0])]
        if len(strings) != len(coded) * self.num_slices + 1:
            raise ValueError(
                f"GIT-SSIC expects {len(coded) * self.num_slices + 1} string groups for "
                f"{len(coded)} groups, got {len(strings)}"
            )
        wanted = coded if groups is None else [int(g) for g in groups]
        unknown = sorted(set(wanted) - set(coded))
        if unknown:
            raise ValueError(f"group(s) {unknown} are not in the mask (has {coded})")
        y_hat_slices = []
        for i in range(self.num_slices):
            mu, scale = self.slice_params(i, hyper, y_hat_slices)
            idx = self.scale_indexes(scale)
            y_hat = torch.zeros_like(mu)
            for g in wanted:
                k = coded.index(g) * self.num_slices + i
                for b in range(B):
                    sel = (labels[b] == g).expand_as(mu[b])
                    q = self.gaussian_conditional.decompress([strings[k][b]], idx[b][sel][None])
                    y_hat[b][sel] = q[0].to(mu.dtype) + mu[b][sel]
            y_hat_slices.append(y_hat)
        x_hat = self.g_s(torch.cat(y_hat_slices, dim=1), labels).clamp_(0, 1)
        return {"x_hat": x_hat}


# --------------------------------------------------------------------------------------------- seed names
#: seed prefix -> ours (applied to the start of each key)
SEED_PREFIXES = {
    "g_a_pe.": "g_a.pe.",
    "g_a_m.": "g_a.m.",
    "g_s_m.": "g_s.m.",
    "g_s_pe.": "g_s.pe.",
    "h_a_m.": "h_a.",
    "h_s_m.": "h_s.",
    "char_m_means.": "char_m_means.",
    "char_m_scales.": "char_m_scales.",
}
_SEED_PRIOR = ("matrices", "biases", "factors")
_SEED_PRIOR_PREFIX = "z_em._prior._base."
_SEED_TABLES = ("y_em.", "z_em._cdf")  # the seed's coder tables: ours are rebuilt by update()
_TABLE_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")  # CompressAI's, sized by update()


def is_seed_state_dict(state: dict) -> bool:
    return any(k.startswith((_SEED_PRIOR_PREFIX, "g_a_pe.")) for k in state)


def state_dict_from_seed(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a ``GroupChARTTC`` state_dict (the seed's names) onto :class:`GITSSIC`'s names (module docstring).
    A state_dict that is already ours is returned unchanged. Unknown keys raise ``ValueError``."""
    if not is_seed_state_dict(state):
        return dict(state)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith(_SEED_TABLES):
            continue
        if key.startswith(_SEED_PRIOR_PREFIX):
            kind, k = key[len(_SEED_PRIOR_PREFIX) :].split(".")
            if kind not in _SEED_PRIOR or value.shape[0] != 1:
                raise ValueError(f"unexpected seed prior entry {key!r} {list(value.shape)}")
            out[f"entropy_bottleneck.{kind}.{k}"] = value[0]
            continue
        for old, new in SEED_PREFIXES.items():
            if key.startswith(old):
                out[new + key[len(old) :]] = value
                break
        else:
            raise ValueError(f"seed state_dict key {key!r} has no GIT-SSIC counterpart")
    matrices = [k for k in out if k.startswith("entropy_bottleneck.matrices.")]
    if matrices:
        channels = out[matrices[0]].shape[0]
        filters = tuple(out[f"entropy_bottleneck.matrices.{i}"].shape[1] for i in range(len(matrices) - 1))
        eb = EntropyBottleneck(channels, filters=filters)
        eb.load_state_dict(
            {k.split(".", 1)[1]: v for k, v in out.items() if k.startswith("entropy_bottleneck.")}, strict=False
        )
        out["entropy_bottleneck.quantiles"] = fit_quantiles(eb)
        # CompressAI's constant buffers (bounds, targets), which the seed's entropy models do not have
        constants = {"entropy_bottleneck": eb, "gaussian_conditional": GaussianConditional(None)}
        for name, module in constants.items():
            for k, v in module.state_dict().items():
                if k.rsplit(".", 1)[-1] not in _TABLE_BUFFERS and f"{name}.{k}" not in out:
                    out[f"{name}.{k}"] = v
    return out


@torch.no_grad()
def fit_quantiles(eb: EntropyBottleneck, iterations: int = 80) -> torch.Tensor:
    """The (C, 1, 3) quantiles CompressAI's aux loss converges to -- the points where the prior's logit CDF
    equals −t, 0, t (t = log(2/tail_mass − 1)) -- solved by bisection (the logit CDF is increasing)."""
    t = math.log(2 / eb.tail_mass - 1)
    c = eb.quantiles.shape[0]
    out = torch.empty(c, 1, 3)
    for j, target in enumerate((-t, 0.0, t)):
        lo, hi = torch.full((c, 1, 1), -1e4), torch.full((c, 1, 1), 1e4)
        for _ in range(iterations):
            mid = (lo + hi) / 2
            above = eb._logits_cumulative(mid, stop_gradient=True) > target
            hi, lo = torch.where(above, mid, hi), torch.where(above, lo, mid)
        out[:, :, j] = ((lo + hi) / 2)[:, :, 0]
    return out
