"""BaSIC (Zhang et al., ECCV 2024): one mean-scale hyperprior + autoregressive checkpoint, scalable at decode time.

Each of the four transforms runs at any width of ``level_widths`` (paper: 48, 72, 96, 144, 192), chosen
independently, by slicing ONE set of weights (``SlimConv2d`` / ``SlimConvTranspose2d``: ``W[:out, :in]``, ConvT
``W[:in, :out]``); every GDN is a :class:`DynamicGDN` with a learned scale and bias per width. The context model
has several coders with the same architecture and separate weights (paper: ``scanline`` and learned 8 / 6 / 4 /
2-stage groupings), each a masked 5x5 conv (M -> 2M) followed by a 1x1 net on ``cat[ctx, prior]``
(4M -> 10M/3 -> 8M/3 -> 2M, LeakyReLU 0.01) whose output interleaves ``mu_k = p[2k]``, ``sigma_k = p[2k+1]``.

Layers per module at width w (5x5 stride 2 unless noted; no module ends with an activation):
  g_a  Conv(3->w) GDN Conv(w->w) GDN Conv(w->w) GDN Conv(w->M)
  h_a  Conv3x3 s1 (M->w) LReLU Conv(w->w) LReLU Conv(w->N)
  h_s  ConvT(N->w) LReLU ConvT(w->1.5w) LReLU Conv3x3 s1 (1.5w->2M)
  g_s  ConvT(M->w) IGDN ConvT(w->w) IGDN ConvT(w->w) IGDN ConvT(w->3)

**Stage maps.** A coder decodes its symbols in stages: symbol (c, h, w) belongs to stage ``S(c, h, w)``.
Scanline: ``S = h*W + w`` (a mask-A 5x5 conv and plain 1x1 layers). A grouped coder with G channel groups
(contiguous blocks of M/G channels) and L logits has ``S = A[c // (M/G), h % 2, w % 2]`` with
``A = argmax_L(cache.reshape(G, L, 2, 2))`` -- the learned pattern ``topo_group_predictor_cache``. Its layers are
masked so that the parallel pass equals stage-by-stage decoding: the 5x5 conv lets output (g, p) see input
(g', q) iff ``S(g', q) < S(g, p)``; every 1x1 layer lets output group g see input group g' at the same position
iff ``S(g', p) <= S(g, p)``, and always the prior. ``A`` is kept as an integer buffer (``stage_table``) computed
once from the cache in fp32: moving or casting the model (``.to()``, ``.half()``) never changes it, and nothing
re-samples it implicitly (:meth:`ContextCoder.resample_stage_pattern` does, on request). The predictor network
that proposed the pattern in the original is kept (same parameters, so checkpoints load and count the same) but
is not run by training here: the pattern stays frozen.

**Training** draws one width per module uniformly per step and trains every coder: coder 0 (scanline) on the
live latent (its rate drives the transforms), the others on detached inputs (their rates in
``aux_likelihoods``, added to the loss, not to the reported bpp).

**Name map.** :func:`map_original_state_dict` turns the original's (``worldlife123/cbench_BaSIC``) state-dict
names into ours: ``latent_inference_modules.x_y`` -> ``g_a``, ``.y_z`` -> ``h_a``, ``latent_generative_modules.z_y``
-> ``h_s``, ``.y_x`` -> ``g_s`` (``pgm_model.<i>.conv.weight`` -> ``pgm_model.<i>.weight``),
``latent_node_entropy_coders.z.entropy_bottleneck`` -> ``entropy_bottleneck``,
``latent_node_entropy_coders.y.coders.<k>`` (dynamic) or ``latent_node_entropy_coders.y`` (scanline only) ->
``context_coders.<k>``, ``latent_node_entropy_coders.y.default_blend_weight`` -> ``default_blend_weight``.
Every other name (``topo_group_context_model.*``, ``topo_group_predictor*``, ``lower_bound_scale``, GDN
``*_scales`` / ``*_biases`` and their reparametrizers, ``default_pgm`` / ``default_agg_pgm``) is the same.

Parameters (paper): 26,211,604 with five coders, 14,130,627 scanline only (``named_parameters``, as the original).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from compressai.ans import BufferedRansEncoder, RansDecoder
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.layers import GDN
from compressai.models import CompressionModel
from compressai.ops import LowerBound
from compressai.ops.parametrizers import NonNegativeParametrizer
from torch import nn

from train.models.slimcae import SlimConv2d, SlimConvTranspose2d

__all__ = [
    "CODERS",
    "MODULES",
    "BaSIC",
    "ContextCoder",
    "DynamicGDN",
    "Level",
    "staged_pass",
    "load_original_state_dict",
    "map_original_state_dict",
]

MODULES = ("g_a", "h_a", "h_s", "g_s")
# coder name -> (channel groups G, logits L); None: scanline
CODERS: dict[str, tuple[int, int] | None] = {
    "scanline": None,
    "8stage": (4, 8),
    "6stage": (4, 6),
    "4stage": (1, 16),
    "2stage": (2, 2),
}
SCALE_BOUND = 0.11
KERNEL = 5


@dataclass(frozen=True)
class Level:
    """One operating point: a width per module and a context coder."""

    g_a: int
    h_a: int
    h_s: int
    g_s: int
    context: str

    def widths(self) -> dict[str, int]:
        return {m: getattr(self, m) for m in MODULES}

    def __str__(self) -> str:
        return ",".join(f"{m}={getattr(self, m)}" for m in MODULES) + f",context={self.context}"


# ---------------------------------------------------------------------------------------------------------- layers
class DynamicGDN(GDN):
    """CompressAI's GDN over the full width plus a scale and bias per level for beta and gamma.

    At level k (width w): ``beta = P(beta_scales[k])·P(beta[:w]) + P(beta_biases[k])`` and
    ``gamma = P(gamma_scales[k])·P(gamma[:w, :w]) + P(gamma_biases[k])``, P = CompressAI's non-negative
    reparametrization (raw scales start at 1, biases at 0).
    """

    def __init__(self, channels: int, levels: int, inverse: bool = False):
        super().__init__(channels, inverse=inverse)
        self.gamma_scales = nn.Parameter(torch.ones(levels))
        self.gamma_biases = nn.Parameter(torch.zeros(levels))
        self.beta_scales = nn.Parameter(torch.ones(levels))
        self.beta_biases = nn.Parameter(torch.zeros(levels))
        for name in ("gamma_scales", "gamma_biases", "beta_scales", "beta_biases"):
            setattr(self, f"{name}_reparam", NonNegativeParametrizer())

    def level_beta(self, k: int, beta: torch.Tensor) -> torch.Tensor:
        """Effective beta at level k from the (sliced) raw ``beta``."""
        return self.beta_scales_reparam(self.beta_scales[k]) * self.beta_reparam(beta) + self.beta_biases_reparam(
            self.beta_biases[k]
        )

    def level_gamma(self, k: int, gamma: torch.Tensor) -> torch.Tensor:
        return self.gamma_scales_reparam(self.gamma_scales[k]) * self.gamma_reparam(gamma) + self.gamma_biases_reparam(
            self.gamma_biases[k]
        )

    def forward(self, x: torch.Tensor, k: int | None = None) -> torch.Tensor:  # type: ignore[override]
        C = x.shape[1]
        k = len(self.beta_scales) - 1 if k is None else k
        beta = self.level_beta(k, self.beta[:C])
        gamma = self.level_gamma(k, self.gamma[:C, :C]).reshape(C, C, 1, 1)
        norm = F.conv2d(x**2, gamma, beta)
        return x * (torch.sqrt(norm) if self.inverse else torch.rsqrt(norm))


class _LevelGDN(GDN):
    """A DynamicGDN at one level seen as a plain CompressAI GDN of that width (the exporter folds it as any GDN).

    ``beta`` / ``gamma`` are the source's slices and ``beta_reparam`` / ``gamma_reparam`` give the level's
    effective values; the source is held outside the module tree so a view adds no parameters of its own.
    """

    def __init__(self, src: DynamicGDN, k: int, width: int):
        nn.Module.__init__(self)
        self.inverse = src.inverse
        self._src, self.k, self.width = (src,), k, width
        self.beta_reparam = lambda b: src.level_beta(k, b)
        self.gamma_reparam = lambda g: src.level_gamma(k, g)

    @property
    def beta(self) -> torch.Tensor:  # type: ignore[override]
        return self._src[0].beta[: self.width]

    @property
    def gamma(self) -> torch.Tensor:  # type: ignore[override]
        return self._src[0].gamma[: self.width, : self.width]


class DynamicTransform(nn.Module):
    """One of g_a / h_a / h_s / g_s: ``pgm_model`` layers sliced to a width at call time.

    ``outs[i]`` says what layer i outputs: "w" (the width), "1.5w", an int (fixed), or None (activation / GDN).
    ``default_pgm`` / ``default_agg_pgm`` are the original's unused level-selection parameters, kept so
    checkpoints load and parameter counts match.
    """

    def __init__(self, layers: Sequence[nn.Module], outs: Sequence, widths: Sequence[int]):
        super().__init__()
        self.pgm_model = nn.ModuleList(layers)
        self.outs = tuple(outs)
        self.widths = tuple(widths)
        self.default_pgm = nn.Parameter(torch.zeros(1, 1, len(widths)))
        self.default_agg_pgm = nn.Parameter(torch.zeros(1, len(widths)))

    def _cout(self, i: int, w: int) -> int | None:
        o = self.outs[i]
        return w if o == "w" else w * 3 // 2 if o == "1.5w" else o

    def forward(self, x: torch.Tensor, width: int | None = None) -> torch.Tensor:
        w = self.widths[-1] if width is None else int(width)
        k = self.width_index(w)
        for i, layer in enumerate(self.pgm_model):
            if isinstance(layer, DynamicGDN):
                x = layer(x, k)
            elif isinstance(layer, (SlimConv2d, SlimConvTranspose2d)):
                x = layer(x, self._cout(i, w))
            else:
                x = layer(x)
        return x

    def width_index(self, w: int) -> int:
        try:
            return self.widths.index(int(w))
        except ValueError:
            raise ValueError(f"unknown BaSIC width {w}; choose one of {', '.join(map(str, self.widths))}") from None

    def at_width(self, width: int) -> FixedWidth:
        return FixedWidth(self, width)

    def active_parameters(self, width: int) -> int:
        """Parameters one call at ``width`` uses (GDNs: w² + w and their level's 4 scalars)."""
        self.width_index(width)
        n, cin = 0, None
        for i, layer in enumerate(self.pgm_model):
            if isinstance(layer, (SlimConv2d, SlimConvTranspose2d)):
                cout = self._cout(i, width)
                c_in = layer.in_channels if cin is None else cin
                n += c_in * cout * layer.weight[0, 0].numel() + (cout if layer.bias is not None else 0)
                cin = cout
            elif isinstance(layer, DynamicGDN):
                n += cin * cin + cin + 4
        return n


class FixedWidth(nn.Module):
    """A DynamicTransform at one width as a plain module ``x -> y`` (shares the source's parameters).

    Its GDNs are :class:`_LevelGDN` views, so the exporter's GDN folding yields the level's constants.
    """

    def __init__(self, src: DynamicTransform, width: int):
        super().__init__()
        k = src.width_index(width)
        self.width = int(width)
        steps = []
        for i, layer in enumerate(src.pgm_model):
            if isinstance(layer, DynamicGDN):
                steps.append(_LevelGDN(layer, k, src._cout(i - 1, width)))
            else:
                steps.append(layer)
        self.steps = nn.ModuleList(steps)
        self.couts = [
            src._cout(i, width) if isinstance(s, (SlimConv2d, SlimConvTranspose2d)) else None
            for i, s in enumerate(steps)
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for step, cout in zip(self.steps, self.couts):
            x = step(x, cout) if cout is not None else step(x)
        return x


# ---------------------------------------------------------------------------------------------------- context
class _Dense(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.dense = nn.Linear(cin, cout)

    def forward(self, x):
        return F.leaky_relu(self.dense(x), 0.2)


class TopoGroupPredictor(nn.Module):
    """The original's stage-pattern proposer: noise [C] -> Linear -> 2x(Linear, LReLU 0.2) -> (C,2,2) ->
    BN -> ReLU -> Conv3x3 -> G·L logits per 2x2 cell. ``model.2`` is ``final`` (one conv, two names)."""

    def __init__(self, channels: int, logits: int):
        super().__init__()
        self.channels = channels
        self.dense = nn.Linear(channels, 4 * channels)
        self.mapping_stack = nn.ModuleList([_Dense(4 * channels, 4 * channels) for _ in range(2)])
        self.final = nn.Conv2d(channels, logits, 3, padding=1)
        self.model = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(), self.final)

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        h = self.dense(noise)
        for m in self.mapping_stack:
            h = m(h)
        return self.model(h.reshape(-1, self.channels, 2, 2))


class TopoGroupContextModel(nn.Module):
    """Masked 5x5 context conv (M -> 2M) and the 1x1 parameter net on cat[ctx, prior] (4M -> 10M/3 -> 8M/3 -> 2M)."""

    def __init__(self, M: int):
        super().__init__()
        self.context_prediction = nn.Conv2d(M, 2 * M, KERNEL, padding=KERNEL // 2)
        self.param_merger_in = nn.Conv2d(4 * M, M * 10 // 3, 1)
        self.param_merger_out = nn.Sequential(
            nn.LeakyReLU(), nn.Conv2d(M * 10 // 3, M * 8 // 3, 1), nn.LeakyReLU(), nn.Conv2d(M * 8 // 3, 2 * M, 1)
        )

    def convs_1x1(self) -> list[nn.Conv2d]:
        return [self.param_merger_in, self.param_merger_out[1], self.param_merger_out[3]]


def _group_of(channels: int, groups: int) -> torch.Tensor:
    return torch.arange(channels) // (channels // groups)


def staged_pass(y_hat: torch.Tensor, prior: torch.Tensor, phases) -> torch.Tensor:
    """A grouped coder's parallel masked pass with per-phase weights (see :meth:`ContextCoder.phase_weights`):
    per output phase one stride-2 5x5 conv and three 1x1 convs at quarter resolution, then depth-to-space.
    Needs an even latent size."""
    B = y_hat.shape[0]
    yp = F.pad(y_hat, (KERNEL // 2,) * 4)
    outs = []
    for (ph, pw), layers in zip(((0, 0), (0, 1), (1, 0), (1, 1)), phases):
        (w5, b5), *ones = layers
        h = F.conv2d(yp[:, :, ph:, pw:], w5, b5, stride=2)
        h = torch.cat([h, prior[:, :, ph::2, pw::2]], 1)
        for i, (w, b) in enumerate(ones):
            h = F.conv2d(F.leaky_relu(h, 0.01) if i else h, w, b)
        outs.append(h)
    C, h2, w2 = outs[0].shape[1:]
    t = torch.stack(outs, 2).reshape(B, C, 2, 2, h2, w2)  # [B, C, ph, pw, i, j]
    return t.permute(0, 1, 4, 2, 5, 3).reshape(B, C, 2 * h2, 2 * w2)


class ContextCoder(nn.Module):
    """One context coder: the masked context model, its stage pattern and (grouped coders) the predictor."""

    def __init__(
        self, M: int, groups: tuple[int, int] | None, predictor_channels: int = 64, trainable_pattern: bool = True
    ):
        super().__init__()
        self.M = M
        self.grouping = groups
        self.lower_bound_scale = LowerBound(SCALE_BOUND)
        self.topo_group_context_model = TopoGroupContextModel(M)
        if groups is not None:
            G, L = groups
            if M % G or (M * 10 // 3) % G or (M * 8 // 3) % G:
                raise ValueError(f"M={M} does not split into {G} channel groups")
            self.register_buffer("training_iter_cnt", torch.zeros(1))
            self.topo_group_predictor = TopoGroupPredictor(predictor_channels, G * L)
            self.register_buffer("topo_group_predictor_cache", torch.zeros(1, G * L, 2, 2))
            self.register_buffer("stage_table", torch.zeros(G, 2, 2, dtype=torch.long), persistent=False)
            self.resample_stage_pattern()
            self.register_load_state_dict_post_hook(lambda module, keys: module._refresh_stage_table())

    # -------------------------------------------------------------------- stage pattern
    @torch.no_grad()
    def resample_stage_pattern(self, generator: torch.Generator | None = None) -> None:
        """Run the predictor once on fresh noise and freeze the result as the stage pattern."""
        p = self.topo_group_predictor
        was = p.training
        p.eval()
        noise = torch.randn(1, p.channels, generator=generator).to(p.dense.weight)
        self.topo_group_predictor_cache.copy_(p(noise).to(self.topo_group_predictor_cache))
        p.train(was)
        self._refresh_stage_table()

    def _refresh_stage_table(self) -> None:
        G, L = self.grouping
        logits = self.topo_group_predictor_cache.detach().float().reshape(G, L, 2, 2)
        self.stage_table = logits.argmax(1).to(self.stage_table.device)

    def stage_map(self, H: int, W: int) -> torch.Tensor:
        """S(c, h, w) as an int64 tensor [M, H, W]."""
        if self.grouping is None:
            return (torch.arange(H)[:, None] * W + torch.arange(W)[None, :]).expand(self.M, H, W).clone()
        G, _ = self.grouping
        A = self.stage_table.cpu()
        S = torch.zeros(self.M, H, W, dtype=torch.long)
        He, We = H - H % 2, W - W % 2  # cells outside the 2x2 tiling: stage 0
        g = _group_of(self.M, G)
        S[:, :He, :We] = A[g][:, torch.arange(He) % 2][:, :, torch.arange(We) % 2]
        return S

    def stages(self, H: int, W: int) -> list[int]:
        """The non-empty stages in decoding order."""
        return sorted(set(self.stage_map(H, W).unique().tolist()))

    # -------------------------------------------------------------------- masks (grouped coders)
    def phase_masks(self) -> dict[tuple[int, int], list[torch.Tensor]]:
        """For each output phase (h%2, w%2): [mask of the 5x5 conv, masks of the three 1x1 convs] (float)."""
        G, _ = self.grouping
        A = self.stage_table.cpu()
        M, cm = self.M, self.topo_group_context_model
        out = {}
        for ph in range(2):
            for pw in range(2):
                go = _group_of(2 * M, G)
                gi = _group_of(M, G)
                m5 = torch.zeros(2 * M, M, KERNEL, KERNEL)
                for dy in range(KERNEL):
                    for dx in range(KERNEL):
                        a_in = A[gi, (ph + dy) % 2, (pw + dx) % 2]
                        m5[:, :, dy, dx] = (a_in[None, :] < A[go, ph, pw][:, None]).float()
                masks = [m5]
                for conv in cm.convs_1x1():
                    cout, cin = conv.weight.shape[:2]
                    cin_ctx = cin if conv is not cm.param_merger_in else 2 * M
                    a_o = A[_group_of(cout, G), ph, pw]
                    a_i = A[_group_of(cin_ctx, G), ph, pw]
                    m = torch.ones(cout, cin)
                    m[:, :cin_ctx] = (a_i[None, :] <= a_o[:, None]).float()
                    masks.append(m[:, :, None, None])
                out[(ph, pw)] = masks
        return out

    # -------------------------------------------------------------------- the parallel masked pass
    def mask_a(self) -> torch.Tensor:
        """The scanline coder's 5x5 mask (1 strictly before the centre in raster order)."""
        mask = torch.ones(KERNEL, KERNEL)
        mask[KERNEL // 2, KERNEL // 2 :] = 0
        mask[KERNEL // 2 + 1 :] = 0
        return mask

    def phase_weights(self) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
        """Grouped coders: per output phase (0,0), (0,1), (1,0), (1,1) the masked (weight, bias) of the 5x5
        conv and of the three 1x1 convs (differentiable: the masks multiply the live weights)."""
        cm = self.topo_group_context_model
        layers = [cm.context_prediction, *cm.convs_1x1()]
        masks = self.phase_masks()
        return [
            [(conv.weight * m.to(conv.weight), conv.bias) for conv, m in zip(layers, masks[ph])]
            for ph in ((0, 0), (0, 1), (1, 0), (1, 1))
        ]

    def raw_params(self, y_hat: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        """The parameter net's output [B, 2M, H, W] (interleaved mu, sigma) for every position at once."""
        cm = self.topo_group_context_model
        cp = cm.context_prediction
        if self.grouping is None:
            ctx = F.conv2d(y_hat, cp.weight * self.mask_a().to(cp.weight), cp.bias, padding=KERNEL // 2)
            return cm.param_merger_out(cm.param_merger_in(torch.cat([ctx, prior], 1)))
        H, W = y_hat.shape[-2:]
        if H % 2 or W % 2:
            raise ValueError(f"grouped context coders need an even latent size, got {H}x{W}")
        return staged_pass(y_hat, prior, self.phase_weights())

    def params(self, y_hat: torch.Tensor, prior: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(means, scales) [B, M, H, W]; scales bounded below by 0.11."""
        p = self.raw_params(y_hat, prior)
        return p[:, 0::2], self.lower_bound_scale(p[:, 1::2])


# ---------------------------------------------------------------------------------------------------- model
class BaSIC(CompressionModel):
    """BaSIC. ``forward(x, level=None)``: training draws a level per step, eval uses the full one.
    ``compress(x, level)`` / ``decompress(strings, shape, level)`` run one level (default :meth:`full_level`)."""

    pad_multiple = 64

    def __init__(
        self,
        N: int = 192,
        M: int = 192,
        level_widths: Sequence[int] = (48, 72, 96, 144, 192),
        coders: Sequence[str] = tuple(CODERS),
        predictor_channels: int = 64,
    ):
        super().__init__()
        widths = tuple(sorted(int(w) for w in level_widths))
        if not widths or len(set(widths)) != len(widths) or any(w < 2 or w % 2 for w in widths):
            raise ValueError(f"BaSIC level widths must be distinct even numbers, got {list(level_widths)}")
        if M % 3:
            raise ValueError(f"BaSIC needs M divisible by 3 (its 1x1 net is 10M/3 and 8M/3 wide), got {M}")
        coders = tuple(coders)
        unknown = [c for c in coders if c not in CODERS]
        if unknown or not coders or coders[0] != "scanline":
            raise ValueError(
                f"BaSIC coders must start with 'scanline' and be among {', '.join(CODERS)}; got {list(coders)}"
            )
        self.N, self.M, self.level_widths, self.coders = int(N), int(M), widths, coders
        self.coding_plan = "grouped_context"
        W, L = max(widths), len(widths)
        self.g_a = DynamicTransform(
            [
                SlimConv2d(3, W, 5, 2, 2),
                DynamicGDN(W, L),
                SlimConv2d(W, W, 5, 2, 2),
                DynamicGDN(W, L),
                SlimConv2d(W, W, 5, 2, 2),
                DynamicGDN(W, L),
                SlimConv2d(W, M, 5, 2, 2),
            ],
            ["w", None, "w", None, "w", None, M],
            widths,
        )
        self.h_a = DynamicTransform(
            [
                SlimConv2d(M, W, 3, 1, 1),
                nn.LeakyReLU(),
                SlimConv2d(W, W, 5, 2, 2),
                nn.LeakyReLU(),
                SlimConv2d(W, N, 5, 2, 2),
            ],
            ["w", None, "w", None, N],
            widths,
        )
        self.h_s = DynamicTransform(
            [
                SlimConvTranspose2d(N, W, 5, 2, 2, 1),
                nn.LeakyReLU(),
                SlimConvTranspose2d(W, W * 3 // 2, 5, 2, 2, 1),
                nn.LeakyReLU(),
                SlimConv2d(W * 3 // 2, 2 * M, 3, 1, 1),
            ],
            ["w", None, "1.5w", None, 2 * M],
            widths,
        )
        self.g_s = DynamicTransform(
            [
                SlimConvTranspose2d(M, W, 5, 2, 2, 1),
                DynamicGDN(W, L, inverse=True),
                SlimConvTranspose2d(W, W, 5, 2, 2, 1),
                DynamicGDN(W, L, inverse=True),
                SlimConvTranspose2d(W, W, 5, 2, 2, 1),
                DynamicGDN(W, L, inverse=True),
                SlimConvTranspose2d(W, 3, 5, 2, 2, 1),
            ],
            ["w", None, "w", None, "w", None, 3],
            widths,
        )
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.context_coders = nn.ModuleList(ContextCoder(M, CODERS[c], predictor_channels) for c in coders)
        if len(coders) > 1:
            self.default_blend_weight = nn.Parameter(torch.zeros(len(coders)))
        self.gaussian_conditional = GaussianConditional(None)

    # -------------------------------------------------------------------- levels
    def full_level(self) -> Level:
        w = max(self.level_widths)
        return Level(w, w, w, w, "scanline")

    def fastest_level(self) -> Level:
        w = min(self.level_widths)
        return Level(w, w, w, w, self.coders[-1])

    def uniform_level(self, width: int, context: str = "scanline") -> Level:
        return Level(width, width, width, width, context)

    def check_level(self, level: Level) -> Level:
        for m in MODULES:
            getattr(self, m).width_index(getattr(level, m))
        self.coder_index(level.context)
        return level

    def coder_index(self, context: str) -> int:
        try:
            return self.coders.index(context)
        except ValueError:
            raise ValueError(
                f"unknown BaSIC context coder {context!r}; choose one of {', '.join(self.coders)}"
            ) from None

    def random_level(self) -> Level:
        return Level(*(random.choice(self.level_widths) for _ in MODULES), context="scanline")

    def coder(self, level: Level) -> ContextCoder:
        return self.context_coders[self.coder_index(level.context)]

    def at_level(self, level: Level) -> BaSICLevel:
        """The four transforms at ``level`` as plain modules (shared parameters), for export and MAC counts."""
        return BaSICLevel(self, self.check_level(level))

    # -------------------------------------------------------------------- training / evaluation forward
    def forward(self, x: torch.Tensor, level: Level | None = None):
        if level is None:
            level = self.random_level() if self.training else self.full_level()
        self.check_level(level)
        y = self.g_a(x, level.g_a)
        z = self.h_a(y, level.h_a)
        z_hat, z_likelihoods = self.entropy_bottleneck(z)
        prior = self.h_s(z_hat, level.h_s)
        y_hat = self.gaussian_conditional.quantize(y, "noise" if self.training else "dequantize")
        x_hat = self.g_s(y_hat, level.g_s)
        if self.training:  # coder 0 on the live latent, the others on detached inputs
            means, scales = self.context_coders[0].params(y_hat, prior)
            _, y_likelihoods = self.gaussian_conditional(y, scales, means=means)
            aux = {}
            for name, coder in zip(self.coders[1:], self.context_coders[1:]):
                m_k, s_k = coder.params(y_hat.detach(), prior.detach())
                aux[f"y_{name}"] = self.gaussian_conditional(y.detach(), s_k, means=m_k)[1]
            return {"x_hat": x_hat, "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}, "aux_likelihoods": aux}
        means, scales = self.coder(level).params(y_hat, prior)
        _, y_likelihoods = self.gaussian_conditional(y, scales, means=means)
        return {"x_hat": x_hat, "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    # -------------------------------------------------------------------- real bitstreams (torch reference)
    def _code_y(
        self, coder: ContextCoder, prior: torch.Tensor, y: torch.Tensor | None, decoder: RansDecoder | None
    ) -> tuple[torch.Tensor, list[int], list[int]]:
        """Stage by stage: one parallel masked pass per stage, then that stage's symbols in (c, h, w) order."""
        B, _, H, W = prior.shape
        S = coder.stage_map(H, W).to(prior.device)
        y_hat = prior.new_zeros(B, self.M, H, W)
        gc = self.gaussian_conditional
        cdf, lengths, offsets = gc.quantized_cdf.tolist(), gc.cdf_length.tolist(), gc.offset.tolist()
        symbols, indexes = [], []
        for s in coder.stages(H, W):
            sel = (S == s).expand(B, -1, -1, -1)
            means, scales = coder.params(y_hat, prior)
            idx = gc.build_indexes(scales[sel]).int()
            mu = means[sel]
            if decoder is None:
                q = torch.round(y[sel] - mu)
                symbols += q.int().tolist()
            else:
                q = torch.tensor(decoder.decode_stream(idx.tolist(), cdf, lengths, offsets), dtype=y_hat.dtype)
            indexes += idx.tolist()
            y_hat[sel] = q + mu
        return y_hat, symbols, indexes

    def compress(self, x: torch.Tensor, level: Level | None = None):
        level = self.check_level(level or self.full_level())
        if x.shape[0] != 1:
            raise ValueError("BaSIC.compress codes one image at a time")
        y = self.g_a(x, level.g_a)
        z = self.h_a(y, level.h_a)
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.size()[-2:])
        prior = self.h_s(z_hat, level.h_s)
        _, symbols, indexes = self._code_y(self.coder(level), prior, y, None)
        gc = self.gaussian_conditional
        enc = BufferedRansEncoder()
        enc.encode_with_indexes(symbols, indexes, gc.quantized_cdf.tolist(), gc.cdf_length.tolist(), gc.offset.tolist())
        return {"strings": [[enc.flush()], z_strings], "shape": z.size()[-2:], "level": level}

    def decompress(self, strings, shape, level: Level | None = None):
        level = self.check_level(level or self.full_level())
        z_hat = self.entropy_bottleneck.decompress(strings[1], shape)
        prior = self.h_s(z_hat, level.h_s)
        dec = RansDecoder()
        dec.set_stream(strings[0][0])
        y_hat, _, _ = self._code_y(self.coder(level), prior, None, dec)
        return {"x_hat": self.g_s(y_hat, level.g_s).clamp_(0, 1)}

    # -------------------------------------------------------------------- sizes
    def active_parameters(self, module: str, width: int) -> int:
        return getattr(self, module).active_parameters(width)


class BaSICLevel(nn.Module):
    """g_a, h_a, h_s, g_s of a BaSIC at one level as plain modules (what the exporter and MAC counter see)."""

    def __init__(self, model: BaSIC, level: Level):
        super().__init__()
        self.level = level
        for m in MODULES:
            setattr(self, m, getattr(model, m).at_width(getattr(level, m)))


# ---------------------------------------------------------------------------------------------------- name map
_PREFIXES = (
    ("latent_inference_modules.x_y.", "g_a."),
    ("latent_inference_modules.y_z.", "h_a."),
    ("latent_generative_modules.z_y.", "h_s."),
    ("latent_generative_modules.y_x.", "g_s."),
    ("latent_node_entropy_coders.z.entropy_bottleneck.", "entropy_bottleneck."),
    ("latent_node_entropy_coders.y.default_blend_weight", "default_blend_weight"),
    ("latent_node_entropy_coders.y.coders.", "context_coders."),
    ("latent_node_entropy_coders.y.", "context_coders.0."),  # the scanline-only model's single coder
)


def map_original_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The original's state dict (``codec_{i}.entropy_coder.`` prefixes stripped if present) under our names."""
    out = {}
    for name, value in state_dict.items():
        if name.startswith("codec_"):
            name = name.split(".entropy_coder.", 1)[-1]
        for old, new in _PREFIXES:
            if name.startswith(old):
                name = new + name[len(old) :]
                break
        else:
            raise KeyError(f"unexpected name in a BaSIC state dict: {name!r}")
        if name.split(".")[0] in MODULES:
            name = name.replace(".conv.", ".")
        out[name] = value
    return out


def load_original_state_dict(model: BaSIC, state_dict: dict[str, torch.Tensor]) -> None:
    """Load an original BaSIC state dict strictly: every name is mapped, and every one of ours is present
    except the Gaussian conditional's tables, which the original does not store (``model.update`` builds them)."""
    mapped = map_original_state_dict(state_dict)
    own = {k: v for k, v in model.state_dict().items() if k.startswith("gaussian_conditional.")}
    model.load_state_dict({**own, **mapped}, strict=True)
