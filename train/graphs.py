"""The graphs of each coding plan as modules of a model: one ``nn.Module`` per graph of a codec bundle.

This is the one definition of what each graph computes and of its input/output names (docs/FORMATS.md). The
exporter wraps these modules (example inputs, dynamic axes, fp16 variants) and writes each as an ONNX file; the
torch reference backend of the runtime runs them as they are. Which graphs a plan needs and which of them are
parse-critical is the bundle schema's business (``runtime.bundle``).

Plans: ``factorized`` (one ``w<W>.``-prefixed pair per slimmable width), ``hyperprior``, ``mean_scale``,
``spatial_context`` (masked 5x5 context evaluated per window by ``context_step``), ``channel_slices``,
``grouped_context`` (BaSIC: ``w<W>.analysis`` / ``hyper_analysis`` / ``hyper_synthesis`` / ``synthesis`` per
transform width, ``context.<coder>`` per context coder) and ``grouped_slices`` (GIT-SSIC: the group mask is an
input of analysis and synthesis).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

CONTEXT_K = 5  # spatial-context window (mbt2018 / SSMIC masked 5x5)


class GraphError(ValueError):
    """A model does not have the structure a plan's graphs need."""


@dataclass
class Graph:
    """One graph: its bundle name, the module, and its ordered input and output names."""

    name: str
    module: nn.Module
    inputs: list[str]
    outputs: list[str]

    def __call__(self, feeds: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Run on named inputs, return named outputs."""
        out = self.module(*(feeds[n] for n in self.inputs))
        return dict(zip(self.outputs, out if isinstance(out, tuple) else (out,)))


def plan_kind_of(model: nn.Module) -> str:
    """The coding-plan kind of a model: its train registry entry, else its own ``coding_plan``, else its
    CompressAI class."""
    arch = getattr(model, "lictrt_arch", None)
    if arch:
        from train.models import ARCHS

        if arch in ARCHS:
            return ARCHS[arch].coding_plan
    plan = getattr(model, "coding_plan", None)
    if isinstance(plan, str):
        return plan
    from compressai.models import google as g

    for cls, kind in (
        (g.JointAutoregressiveHierarchicalPriors, "spatial_context"),
        (g.MeanScaleHyperprior, "mean_scale"),
        (g.ScaleHyperprior, "hyperprior"),
        (g.FactorizedPrior, "factorized"),
    ):
        if isinstance(model, cls):
            return kind
    raise GraphError(f"no coding plan is known for {type(model).__name__}")


# ---- the modules ----------------------------------------------------------------------------------------------


class Analysis(nn.Module):
    """x -> (y, z): y = g_a(x), z = h_a(|y|) for scale hyperpriors (``abs_y``) else h_a(y)."""

    def __init__(self, model, abs_y: bool):
        super().__init__()
        self.g_a, self.h_a, self.abs_y = model.g_a, model.h_a, abs_y

    def forward(self, x):
        y = self.g_a(x)
        return y, self.h_a(torch.abs(y) if self.abs_y else y)


class Transform(nn.Module):
    """One transform alone: x -> y = g_a(x) (factorized analysis) or y_hat -> x_hat = g_s(y_hat) (synthesis)."""

    def __init__(self, transform: nn.Module):
        super().__init__()
        self.transform = transform

    def forward(self, t):
        return self.transform(t)


class HyperSynthesis(nn.Module):
    """z_hat -> h_s(z_hat), split into (scales, means) for mean-scale models (``split``)."""

    def __init__(self, h_s: nn.Module, split: bool):
        super().__init__()
        self.h_s, self.split = h_s, split

    def forward(self, z_hat):
        p = self.h_s(z_hat)
        if self.split:
            scales, means = p.chunk(2, 1)
            return scales, means
        return p


class ContextStep(nn.Module):
    """(params [P,2M], windows [P,M,5,5]) -> (scales, means) [P,M]: the masked 5x5 context convolution on each
    window, then the 1x1 entropy-parameter net (the mask is folded into a constant weight)."""

    def __init__(self, model):
        super().__init__()
        cp = model.context_prediction
        mask = getattr(cp, "mask", None)
        w = cp.weight.detach() * (mask if mask is not None else 1.0)
        self.register_buffer("weight", w.clone())
        self.register_buffer("bias", cp.bias.detach().clone() if cp.bias is not None else None)
        self.entropy_parameters = model.entropy_parameters

    def forward(self, params, windows):
        ctx = F.conv2d(
            windows, self.weight.to(windows.dtype), None if self.bias is None else self.bias.to(windows.dtype)
        )  # [P, 2M, 1, 1]
        g = self.entropy_parameters(torch.cat((params[:, :, None, None], ctx), dim=1)).flatten(1)
        scales, means = g.chunk(2, 1)
        return scales, means


class SliceHyperSynthesis(nn.Module):
    """z_hat -> (latent_means, latent_scales) of a channel-slice model."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, z_hat):
        return self.model.hyper_synthesis(z_hat)


class Slice(nn.Module):
    """slice<i>: (latent_means, latent_scales, y_hat_0..i-1) -> (mu, scale)."""

    n_fixed = 2  # named leading inputs before *y_hats (the exporter nests the dynamic shapes accordingly)

    def __init__(self, model, i: int):
        super().__init__()
        self.model, self.i = model, i

    def forward(self, latent_means, latent_scales, *y_hats):
        mu, scale, _ = self.model.slice_params(self.i, latent_means, latent_scales, list(y_hats))
        return mu, scale


class Lrp(nn.Module):
    """lrp<i>: (latent_means, y_hat_0..i-1, y_hat_i) -> lrp (the runtime adds it to y_hat_i)."""

    n_fixed = 1

    def __init__(self, model, i: int):
        super().__init__()
        self.model, self.i = model, i

    def forward(self, latent_means, *y_hats):
        m, i = self.model, self.i
        sup, y_i = list(y_hats[:-1]), y_hats[-1]
        mean_support = m.atten_mean[i](torch.cat([latent_means] + sup, dim=1))
        return m.slice_lrp(i, mean_support, y_i)


class ScanlineStep(nn.Module):
    """BaSIC ``context.scanline``: (params [P, 2M], windows [P, M, 5, 5]) -> (scales, means) [P, M]: the mask-A
    5x5 conv on each window of y_hat, then the 1x1 net on cat[ctx, prior] (its output interleaves mu, sigma)."""

    def __init__(self, coder):
        super().__init__()
        cm = coder.topo_group_context_model
        cp = cm.context_prediction
        self.register_buffer("weight", (cp.weight * coder.mask_a().to(cp.weight)).detach().clone())
        self.register_buffer("bias", cp.bias.detach().clone())
        self.param_merger_in, self.param_merger_out = cm.param_merger_in, cm.param_merger_out

    def forward(self, params, windows):
        ctx = F.conv2d(windows, self.weight, self.bias)  # [P, 2M, 1, 1]
        p = self.param_merger_out(self.param_merger_in(torch.cat([ctx, params[:, :, None, None]], 1))).flatten(1)
        return p[:, 1::2], p[:, 0::2]


class StagedStep(nn.Module):
    """BaSIC ``context.<S>stage``: (y_hat [1, M, h, w], params [1, 2M, h, w]) -> (scales, means) [1, M, h, w]:
    a grouped coder's parallel masked pass, masks folded into per-phase constant weights (h, w even). Called
    once per stage with the symbols decoded so far (zeros elsewhere)."""

    def __init__(self, coder):
        super().__init__()
        self.n = 0
        for phase in coder.phase_weights():
            for w, b in phase:
                self.register_buffer(f"w{self.n}", w.detach().clone())
                self.register_buffer(f"b{self.n}", b.detach().clone())
                self.n += 1

    def forward(self, y_hat, params):
        from train.models.basic import staged_pass

        ws = [(getattr(self, f"w{i}"), getattr(self, f"b{i}")) for i in range(self.n)]
        per = self.n // 4
        p = staged_pass(y_hat, params, [ws[i * per : (i + 1) * per] for i in range(4)])
        return p[:, 1::2], p[:, 0::2]


class MaskedAnalysis(nn.Module):
    """(x, mask) -> (y, z): y = g_a(x, mask), z = h_a(y) (GIT-SSIC; mask = latent-size group labels)."""

    def __init__(self, model):
        super().__init__()
        self.g_a, self.h_a = model.g_a, model.h_a

    def forward(self, x, mask):
        y = self.g_a(x, mask)
        return y, self.h_a(y)


class MaskedSynthesis(nn.Module):
    """(y_hat, mask) -> x_hat = g_s(y_hat, mask) (GIT-SSIC)."""

    def __init__(self, model):
        super().__init__()
        self.g_s = model.g_s

    def forward(self, y_hat, mask):
        return self.g_s(y_hat, mask)


class GroupSlice(nn.Module):
    """slice<i> of ``grouped_slices``: (hyper, y_hat_0..i-1) -> (mu, scale); takes its own chunk of the 2M hyper
    channels and runs the model's pointwise ChARM step (so no group's parameters depend on another group)."""

    n_fixed = 1

    def __init__(self, model, i: int):
        super().__init__()
        from train.models.gitssic import SliceStep

        self.step, self.i, self.n = SliceStep(model, i), i, model.num_slices

    def forward(self, hyper, *y_hats):
        c = hyper.shape[1] // self.n
        return self.step(hyper[:, self.i * c : (self.i + 1) * c], *y_hats)


# ---- the graphs of each plan ----------------------------------------------------------------------------------


def slice_supports(model, i: int) -> list[str]:
    """Names of the earlier slices that slice ``i`` of a channel-slice model is conditioned on."""
    maxs = model.max_support_slices
    return [f"y_hat_{j}" for j in range(i if maxs < 0 else min(i, maxs))]


def _factorized(model, widths) -> list[Graph]:
    if not (hasattr(model, "widths") and hasattr(model, "width_modules")):  # one model: CompressAI or a width view
        return [
            Graph("analysis", Transform(model.g_a), ["x"], ["y"]),
            Graph("synthesis", Transform(model.g_s), ["y_hat"], ["x_hat"]),
        ]
    chosen = list(model.widths) if widths is None else list(widths)
    unknown = [w for w in chosen if w not in model.widths]
    if unknown:
        raise GraphError(f"width {unknown[0]} is not one of the model's widths {list(model.widths)}")
    out = []
    for w in chosen:
        g_a, g_s = model.width_modules(w)
        out += [
            Graph(f"w{w}.analysis", Transform(g_a), ["x"], ["y"]),
            Graph(f"w{w}.synthesis", Transform(g_s), ["y_hat"], ["x_hat"]),
        ]
    return out


def _hyper(model, kind) -> list[Graph]:
    hs_out = {"hyperprior": ["scales"], "mean_scale": ["scales", "means"], "spatial_context": ["params"]}[kind]
    out = [
        Graph("analysis", Analysis(model, kind == "hyperprior"), ["x"], ["y", "z"]),
        Graph("hyper_synthesis", HyperSynthesis(model.h_s, kind == "mean_scale"), ["z_hat"], hs_out),
    ]
    if kind == "spatial_context":
        out.append(Graph("context_step", ContextStep(model), ["params", "windows"], ["scales", "means"]))
    return out + [Graph("synthesis", Transform(model.g_s), ["y_hat"], ["x_hat"])]


def _channel_slices(model) -> list[Graph]:
    if not all(hasattr(model, a) for a in ("slice_params", "slice_lrp", "hyper_synthesis", "num_slices")):
        raise GraphError("channel_slices needs a model with num_slices, slice_params, slice_lrp, hyper_synthesis")
    out = [
        Graph("analysis", Analysis(model, False), ["x"], ["y", "z"]),
        Graph("hyper_synthesis", SliceHyperSynthesis(model), ["z_hat"], ["latent_means", "latent_scales"]),
    ]
    for i in range(model.num_slices):
        sup = slice_supports(model, i)
        out += [
            Graph(f"slice{i}", Slice(model, i), ["latent_means", "latent_scales"] + sup, ["mu", "scale"]),
            Graph(f"lrp{i}", Lrp(model, i), ["latent_means"] + sup + [f"y_hat_{i}"], ["lrp"]),
        ]
    return out + [Graph("synthesis", Transform(model.g_s), ["y_hat"], ["x_hat"])]


#: grouped_context: the I/O names of each BaSIC transform's graphs (their names: ``runtime.bundle.level_graph``)
LEVEL_IO = {"g_a": ("x", "y"), "h_a": ("y", "z"), "h_s": ("z_hat", "params"), "g_s": ("y_hat", "x_hat")}


def _grouped_context(model) -> list[Graph]:
    if not all(hasattr(model, a) for a in ("level_widths", "context_coders", "coders")):
        raise GraphError("grouped_context needs a BaSIC model (level_widths, coders, context_coders)")
    from runtime.bundle import level_graph

    out = []
    for module, (i, o) in LEVEL_IO.items():
        for w in model.level_widths:
            out.append(Graph(level_graph(module, w), Transform(getattr(model, module).at_width(w)), [i], [o]))
    for name, coder in zip(model.coders, model.context_coders):
        if coder.grouping is None:
            out.append(Graph(f"context.{name}", ScanlineStep(coder), ["params", "windows"], ["scales", "means"]))
        else:
            out.append(Graph(f"context.{name}", StagedStep(coder), ["y_hat", "params"], ["scales", "means"]))
    return out


def _grouped_plan(model) -> dict:
    """The grouped_context plan fields: levels as data (axes, presets fastest / full), one entry per coder."""
    widths = list(model.level_widths)
    modules = list(LEVEL_IO)
    axes = [{"name": m, "values": widths} for m in modules] + [{"name": "context", "values": list(model.coders)}]
    presets = {
        "full": {**{m: max(widths) for m in modules}, "context": model.coders[0]},
        "fastest": {**{m: min(widths) for m in modules}, "context": model.coders[-1]},
    }
    coders = {}
    for name, coder in zip(model.coders, model.context_coders):
        if coder.grouping is None:
            coders[name] = {"kind": "scanline", "graph": f"context.{name}", "order": "wavefront", "kernel": CONTEXT_K}
        else:
            coders[name] = {
                "kind": "staged",
                "graph": f"context.{name}",
                "groups": coder.grouping[0],
                "stage_table": coder.stage_table.tolist(),
            }
    return {"levels": {"axes": axes, "presets": presets, "default": "full"}, "coders": coders}


def _grouped_slices(model) -> list[Graph]:
    if not all(hasattr(model, a) for a in ("num_slices", "char_m_means", "char_m_scales")):
        raise GraphError("grouped_slices needs a GIT-SSIC model (num_slices, char_m_means, char_m_scales)")
    out = [
        Graph("analysis", MaskedAnalysis(model), ["x", "mask"], ["y", "z"]),
        Graph("hyper_synthesis", HyperSynthesis(model.h_s, False), ["z_hat"], ["hyper"]),
    ]
    out += [
        Graph(f"slice{i}", GroupSlice(model, i), ["hyper"] + [f"y_hat_{j}" for j in range(i)], ["mu", "scale"])
        for i in range(model.num_slices)
    ]
    return out + [Graph("synthesis", MaskedSynthesis(model), ["y_hat", "mask"], ["x_hat"])]


def plan_graphs(model: nn.Module, kind: str | None = None, *, widths: list[int] | None = None) -> list[Graph]:
    """The graphs of ``model`` under plan ``kind`` (default: its own), in bundle order.

    ``widths`` selects slimmable widths of a ``factorized`` model (default: all).
    """
    kind = kind or plan_kind_of(model)
    if widths is not None and kind != "factorized":
        raise GraphError("widths only apply to the factorized (slimmable) plan")
    if kind == "factorized":
        return _factorized(model, widths)
    if kind in ("hyperprior", "mean_scale", "spatial_context"):
        return _hyper(model, kind)
    if kind == "channel_slices":
        return _channel_slices(model)
    if kind == "grouped_context":
        return _grouped_context(model)
    if kind == "grouped_slices":
        return _grouped_slices(model)
    raise GraphError(f"no graphs are defined for coding plan {kind!r}")


def plan_manifest(model: nn.Module, kind: str, graphs: list[Graph]) -> dict:
    """The manifest's ``plan`` entry: the model's own plan fields, the kind, and what the plan's runtime reads
    (the context schedule; the slimmable widths present in ``graphs``, widest first)."""
    plan = dict(model.coding_plan) if isinstance(getattr(model, "coding_plan", None), dict) else {}
    plan["kind"] = kind
    # z's stride (H/64 for these models) is read as the pad multiple unless told: say it where the two differ
    # (MambaVC and GIT-SSIC pad to 16 x window, 128 for their paper presets)
    z_stride = getattr(model, "downsampling_factor", None)
    if kind != "factorized" and isinstance(z_stride, int) and z_stride != int(getattr(model, "pad_multiple", 0)):
        plan.setdefault("z_stride", z_stride)
    if kind == "spatial_context":
        plan.setdefault("context", {"kernel": CONTEXT_K, "order": "wavefront", "step_graph": "context_step"})
    widths = sorted(
        {
            int(g.name.split(".")[0][1:])
            for g in graphs
            if g.name.startswith("w") and "." in g.name and g.name.split(".")[0][1:].isdigit()
        },
        reverse=True,
    )
    if kind == "factorized" and widths:
        plan.setdefault("widths", widths)
    if kind == "grouped_context":
        plan.update(_grouped_plan(model))
    if kind == "grouped_slices":  # the mask's cell size and the sigma -> table index rule of the slices
        plan.setdefault("mask_grid", 32)
        plan.setdefault("scale_index", "nearest")
    return plan


# ---- reference tensors (parity oracles and example inputs) ----------------------------------------------------


def windows_of(y_hat: torch.Tensor, k: int = CONTEXT_K) -> torch.Tensor:
    """All causal k x k windows of y_hat [1,M,h,w] (zero padded) as [h*w, M, k, k], raster order."""
    _, M, h, w = y_hat.shape
    cols = F.unfold(y_hat, k, padding=k // 2)  # [1, M*k*k, h*w]
    return cols[0].t().reshape(h * w, M, k, k)


def context_oracle(model, y_hat: torch.Tensor, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """CompressAI's full-image spatial-context path -> (scales, means) as [h*w, M] in raster order."""
    with torch.no_grad():
        params = model.h_s(z_hat)
        cp = model.context_prediction
        w = cp.weight * getattr(cp, "mask", 1.0)
        ctx = F.conv2d(y_hat, w, cp.bias, padding=cp.padding)
        g = model.entropy_parameters(torch.cat((params, ctx), dim=1))
    scales, means = g.chunk(2, 1)
    return scales[0].flatten(1).t(), means[0].flatten(1).t()


def slice_latents(model, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The decoder-side tensors of a channel-slice model for image x (CompressAI-style dequantized path)."""
    with torch.no_grad():
        y = model.g_a(x)
        z = model.h_a(y)
        med = model.entropy_bottleneck._get_medians()
        z_hat = torch.round(z - med) + med
        lm, ls = model.hyper_synthesis(z_hat)
        out = {"y": y, "z": z, "z_hat": z_hat, "latent_means": lm, "latent_scales": ls}
        y_hats = []
        for i, y_slice in enumerate(y.chunk(model.num_slices, 1)):
            mu, scale, sup = model.slice_params(i, lm, ls, y_hats)
            yq = torch.round(y_slice - mu) + mu
            y_hats.append(yq + model.slice_lrp(i, sup, yq))
            out[f"y_hat_{i}"], out[f"yq_{i}"] = y_hats[-1], yq
        out["y_hat"] = torch.cat(y_hats, 1)
    return out


def group_latents(model, x: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every ``grouped_slices`` graph input for image x and latent-size labels ``mask`` (all groups decoded)."""
    with torch.no_grad():
        y = model.g_a(x, mask)
        z = model.h_a(y)
        med = model.entropy_bottleneck._get_medians()
        z_hat = torch.round(z - med) + med
        hyper = model.h_s(z_hat)
        out = {"x": x, "mask": mask, "y": y, "z": z, "z_hat": z_hat, "hyper": hyper}
        hats = []
        for i, y_i in enumerate(y.chunk(model.num_slices, 1)):
            mu, _ = model.slice_params(i, hyper, hats)
            hats.append(torch.round(y_i - mu) + mu)
            out[f"y_hat_{i}"] = hats[-1]
        out["y_hat"] = torch.cat(hats, 1)
    return out


def example_group_mask(x: torch.Tensor) -> torch.Tensor:
    """A fixed latent-size label map for image x (labels 0..2 on 32-px cells): example inputs and parity."""
    h, w = x.shape[-2] // 16, x.shape[-1] // 16
    i, j = torch.meshgrid(torch.arange(h) // 2, torch.arange(w) // 2, indexing="ij")
    return ((i + 2 * j) % 3).to(torch.float32)[None, None]
