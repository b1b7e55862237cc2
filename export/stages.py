"""Stage graphs of each coding plan: the nn.Modules that become one ONNX file each, with their I/O contract.

A :class:`Stage` knows its manifest entry (names, role, parse-critical), how to make example inputs for an
image size (derived from the PyTorch model itself, so latent shapes are always right) and which axes are
dynamic.  Plans: ``hyperprior``, ``mean_scale``, ``spatial_context``, ``factorized`` (per width), and
``channel_slices`` (needs the model to describe its slices, see :func:`_channel_slices`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

CONTEXT_K = 5  # spatial-context window (mbt2018 / SSMIC masked 5x5)


class ExportError(RuntimeError):
    """A model cannot be exported as asked (unsupported plan, bad size...)."""


@dataclass
class Stage:
    name: str
    module: nn.Module
    inputs: list[str]
    outputs: list[str]
    role: str  # "encoder" | "decoder" | "both"
    parse_critical: bool
    example: Callable[[torch.Tensor], tuple[torch.Tensor, ...]]  # image x [1,3,H,W] -> this stage's inputs
    dynamic: dict[str, tuple[int, ...]]  # input name -> dynamic axes
    shapes: dict[str, list] = field(default_factory=dict)  # manifest shapes per I/O name
    oracle: Callable[[torch.Tensor], tuple[torch.Tensor, ...]] | None = None  # x -> expected outputs (parity);
    # default: the fp32 module on example(x)
    reference: nn.Module | None = None  # fp32 module behind an fp16 stage
    precision: str = "fp32"


def _round(t: torch.Tensor) -> torch.Tensor:
    return torch.round(t)


class _Analysis(nn.Module):
    def __init__(self, model, abs_y: bool, prefix=None):
        super().__init__()
        self.g_a, self.h_a, self.abs_y = model.g_a, model.h_a, abs_y

    def forward(self, x):
        y = self.g_a(x)
        return y, self.h_a(torch.abs(y) if self.abs_y else y)


class _GA(nn.Module):
    def __init__(self, g_a):
        super().__init__()
        self.g_a = g_a

    def forward(self, x):
        return self.g_a(x)


class _HS(nn.Module):
    """h_s, optionally split into (scales, means) like CompressAI's mean-scale models."""

    def __init__(self, model, split: bool):
        super().__init__()
        self.h_s, self.split = model.h_s, split

    def forward(self, z_hat):
        p = self.h_s(z_hat)
        if self.split:
            scales, means = p.chunk(2, 1)
            return scales, means
        return p


class _GS(nn.Module):
    def __init__(self, g_s):
        super().__init__()
        self.g_s = g_s

    def forward(self, y_hat):
        return self.g_s(y_hat)


class _ContextStep(nn.Module):
    """(params [P,2M], windows [P,M,5,5]) -> (scales, means) [P,M]: masked 5x5 conv on each window + 1x1 net."""

    def __init__(self, model):
        super().__init__()
        cp = model.context_prediction
        mask = getattr(cp, "mask", None)
        w = cp.weight.detach() * (mask if mask is not None else 1.0)
        self.register_buffer("weight", w.clone())
        self.register_buffer("bias", cp.bias.detach().clone() if cp.bias is not None else None)
        self.entropy_parameters = model.entropy_parameters

    def forward(self, params, windows):
        ctx = F.conv2d(windows, self.weight.to(windows.dtype),
                       None if self.bias is None else self.bias.to(windows.dtype))  # [P, 2M, 1, 1]
        g = self.entropy_parameters(torch.cat((params[:, :, None, None], ctx), dim=1)).flatten(1)
        scales, means = g.chunk(2, 1)
        return scales, means


class _Fp16(nn.Module):
    """Run ``inner`` in half precision with fp32 I/O (fp32 islands stay inside the custom-op bodies)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = copy.deepcopy(inner).half()

    def forward(self, *xs):
        out = self.inner(*[x.half() for x in xs])
        return tuple(o.float() for o in out) if isinstance(out, tuple) else out.float()


def _latents(model, x, abs_y):
    with torch.no_grad():
        y = model.g_a(x)
        z = model.h_a(torch.abs(y) if abs_y else y)
    return y, z


def windows_of(y_hat: torch.Tensor, k: int = CONTEXT_K) -> torch.Tensor:
    """All causal kxk windows of y_hat [1,M,h,w] (zero padded) as [h*w, M, k, k], raster order."""
    _, M, h, w = y_hat.shape
    cols = F.unfold(y_hat, k, padding=k // 2)  # [1, M*k*k, h*w]
    return cols[0].t().reshape(h * w, M, k, k)


def _stride(model, abs_y, pad) -> tuple[int, int]:
    x = torch.zeros(1, 3, pad * 2, pad * 2)
    y, z = _latents(model, x, abs_y)
    return pad * 2 // y.shape[-1], pad * 2 // z.shape[-1]


def build_stages(model: nn.Module, plan: str, *, width: int | None = None) -> list[Stage]:
    """The stages of ``plan`` for ``model`` (fp32). ``width`` selects one SlimCAE width (default: all)."""
    builders = {"hyperprior": _hyper, "mean_scale": _hyper, "spatial_context": _hyper,
                "factorized": _factorized, "channel_slices": _channel_slices, "grouped_slices": _grouped_slices}
    if plan not in builders:
        raise ExportError(f"coding plan {plan!r} is not supported by the exporter (known: {', '.join(builders)})")
    if plan != "factorized" and width is not None:
        raise ExportError("--width only applies to the factorized (SlimCAE) plan")
    return builders[plan](model, plan, width) if plan == "factorized" else builders[plan](model, plan)


def _hyper(model, plan) -> list[Stage]:
    abs_y = plan == "hyperprior"
    pad = int(getattr(model, "pad_multiple", 64))
    sy, sz = _stride(model, abs_y, pad)
    dyn = (2, 3)

    def ex_x(x):
        return (x,)

    def ex_z(x):
        return (_round(_latents(model, x, abs_y)[1]),)

    def ex_y(x):
        return (_round(_latents(model, x, abs_y)[0]),)

    stages = [
        Stage("analysis", _Analysis(model, abs_y), ["x"], ["y", "z"], "encoder", False, ex_x, {"x": dyn}),
        None,
        Stage("synthesis", _GS(model.g_s), ["y_hat"], ["x_hat"], "decoder", False, ex_y, {"y_hat": dyn}),
    ]
    hs_out = {"hyperprior": ["scales"], "mean_scale": ["scales", "means"], "spatial_context": ["params"]}[plan]
    stages[1] = Stage("hyper_synthesis", _HS(model, plan == "mean_scale"), ["z_hat"], hs_out, "both", True,
                      ex_z, {"z_hat": dyn})
    if plan == "spatial_context":
        def ex_ctx(x):
            (y_hat,), (z_hat,) = ex_y(x), ex_z(x)
            with torch.no_grad():
                params = model.h_s(z_hat)
            return params[0].flatten(1).t().contiguous(), windows_of(y_hat).contiguous()

        def oracle_ctx(x):  # CompressAI's full-image path: masked conv over y_hat, then the 1x1 net
            return context_oracle(model, ex_y(x)[0], ex_z(x)[0])

        stages.insert(2, Stage("context_step", _ContextStep(model), ["params", "windows"], ["scales", "means"],
                               "both", True, ex_ctx, {"params": (0,), "windows": (0,)}, oracle=oracle_ctx))
    with torch.no_grad():
        y, z = _latents(model, torch.zeros(1, 3, pad, pad), abs_y)
    My, Nz = y.shape[1], z.shape[1]
    sh = lambda c, s: [1, c, "H" if s == 1 else f"H/{s}", "W" if s == 1 else f"W/{s}"]  # noqa: E731
    for st in stages:
        if st.name == "analysis":
            st.shapes = {"x": sh(3, 1), "y": sh(My, sy), "z": sh(Nz, sz)}
        elif st.name == "hyper_synthesis":
            hs_c = {"scales": My, "means": My, "params": 2 * My}
            st.shapes = {"z_hat": sh(Nz, sz), **{o: sh(hs_c[o], sy) for o in st.outputs}}
        elif st.name == "context_step":
            st.shapes = {"params": ["P", 2 * My], "windows": ["P", My, CONTEXT_K, CONTEXT_K],
                         "scales": ["P", My], "means": ["P", My]}
        elif st.name == "synthesis":
            st.shapes = {"y_hat": sh(My, sy), "x_hat": sh(3, 1)}
    return stages


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


def _factorized(model, plan, width) -> list[Stage]:
    widths = list(getattr(model, "widths", []))
    if not widths or not hasattr(model, "width_modules"):
        raise ExportError("factorized export needs a slimmable model with .widths and .width_modules(w)")
    if width is not None:
        if width not in widths:
            raise ExportError(f"width {width} is not one of the model's widths {widths}")
        widths = [width]
    pad = int(getattr(model, "pad_multiple", 16))
    stages = []
    for w in widths:
        g_a, g_s = model.width_modules(w)
        with torch.no_grad():
            y = g_a(torch.zeros(1, 3, pad, pad))
        s = pad // y.shape[-1]
        ex_x = lambda x: (x,)  # noqa: E731

        def ex_y(x, g_a=g_a):
            with torch.no_grad():
                return (_round(g_a(x)),)

        a = Stage(f"w{w}.analysis", _GA(g_a), ["x"], ["y"], "encoder", False, ex_x, {"x": (2, 3)})
        b = Stage(f"w{w}.synthesis", _GS(g_s), ["y_hat"], ["x_hat"], "decoder", False, ex_y, {"y_hat": (2, 3)})
        a.shapes = {"x": [1, 3, "H", "W"], "y": [1, y.shape[1], f"H/{s}", f"W/{s}"]}
        b.shapes = {"y_hat": a.shapes["y"], "x_hat": a.shapes["x"]}
        stages += [a, b]
    return stages


class _Slice(nn.Module):
    """slice<i>: (latent_means, latent_scales, y_hat_0..i-1) -> (mu, scale)."""

    n_fixed = 2  # named leading inputs before *y_hats (export.onnx nests the dynamic shapes accordingly)

    def __init__(self, model, i):
        super().__init__()
        self.model, self.i = model, i

    def forward(self, latent_means, latent_scales, *y_hats):
        mu, scale, _ = self.model.slice_params(self.i, latent_means, latent_scales, list(y_hats))
        return mu, scale


class _Lrp(nn.Module):
    """lrp<i>: (latent_means, y_hat_0..i-1, y_hat_i) -> lrp (added to y_hat_i by the runtime)."""

    n_fixed = 1

    def __init__(self, model, i):
        super().__init__()
        self.model, self.i = model, i

    def forward(self, latent_means, *y_hats):
        m, i = self.model, self.i
        sup, y_i = list(y_hats[:-1]), y_hats[-1]
        mean_support = m.atten_mean[i](torch.cat([latent_means] + sup, dim=1))
        return m.slice_lrp(i, mean_support, y_i)


class _HyperSyn(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, z_hat):
        return self.model.hyper_synthesis(z_hat)


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


def _channel_slices(model, plan) -> list[Stage]:
    if not hasattr(model, "slice_params") or not hasattr(model, "hyper_synthesis"):
        raise ExportError("channel_slices export needs a model with slice_params/slice_lrp/hyper_synthesis")
    pad = int(getattr(model, "pad_multiple", 128))
    S, maxs = model.num_slices, model.max_support_slices
    with torch.no_grad():
        lat = slice_latents(model, torch.zeros(1, 3, pad, pad))
    sy, sz = pad // lat["y"].shape[-1], pad // lat["z"].shape[-1]
    M, Nz, sw = lat["y"].shape[1], lat["z"].shape[1], lat["y"].shape[1] // S
    sh = lambda c, s: [1, c, "H" if s == 1 else f"H/{s}", "W" if s == 1 else f"W/{s}"]  # noqa: E731
    dyn = (2, 3)
    pick = lambda *names: (lambda x: tuple(slice_latents(model, x)[n] for n in names))  # noqa: E731
    stages = [Stage("analysis", _Analysis(model, False), ["x"], ["y", "z"], "encoder", False,
                    lambda x: (x,), {"x": dyn}),
              Stage("hyper_synthesis", _HyperSyn(model), ["z_hat"], ["latent_means", "latent_scales"], "both",
                    True, pick("z_hat"), {"z_hat": dyn})]
    stages[0].shapes = {"x": sh(3, 1), "y": sh(M, sy), "z": sh(Nz, sz)}
    Ml = lat["latent_means"].shape[1]
    stages[1].shapes = {"z_hat": sh(Nz, sz), "latent_means": sh(Ml, sy), "latent_scales": sh(Ml, sy)}
    for i in range(S):
        sup = [f"y_hat_{j}" for j in range(i if maxs < 0 else min(i, maxs))]
        st = Stage(f"slice{i}", _Slice(model, i), ["latent_means", "latent_scales"] + sup, ["mu", "scale"],
                   "both", True, pick("latent_means", "latent_scales", *sup),
                   {n: dyn for n in ["latent_means", "latent_scales"] + sup})
        st.shapes = {"latent_means": sh(Ml, sy), "latent_scales": sh(Ml, sy), **{n: sh(sw, sy) for n in sup},
                     "mu": sh(sw, sy), "scale": sh(sw, sy)}
        lrp_in = ["latent_means"] + sup + [f"yq_{i}"]
        yi = f"y_hat_{i}"  # slice i quantized (mu + round(y - mu)), before its own LRP
        lr = Stage(f"lrp{i}", _Lrp(model, i), ["latent_means"] + sup + [yi], ["lrp"], "both", True,
                   pick(*lrp_in), {n: dyn for n in ["latent_means"] + sup + [yi]})
        lr.shapes = {"latent_means": sh(Ml, sy), **{n: sh(sw, sy) for n in sup + [yi, "lrp"]}}
        stages += [st, lr]
    syn = Stage("synthesis", _GS(model.g_s), ["y_hat"], ["x_hat"], "decoder", False, pick("y_hat"),
                {"y_hat": dyn})
    syn.shapes = {"y_hat": sh(M, sy), "x_hat": sh(3, 1)}
    return stages + [syn]


def example_group_mask(x: torch.Tensor) -> torch.Tensor:
    """A fixed latent-resolution label map for image x (labels 0..2 on 32-px cells): graph examples, parity."""
    h, w = x.shape[-2] // 16, x.shape[-1] // 16
    i, j = torch.meshgrid(torch.arange(h) // 2, torch.arange(w) // 2, indexing="ij")
    return ((i + 2 * j) % 3).to(torch.float32)[None, None]


def _grouped_slices(model, plan) -> list[Stage]:
    from train.models.gitssic import graph_latents, graphs

    pad = int(model.pad_multiple)
    x0 = torch.zeros(1, 3, pad, pad)
    lat = graph_latents(model, x0, example_group_mask(x0))
    sy, sz = pad // lat["y"].shape[-1], pad // lat["z"].shape[-1]
    sh = lambda c, s: [1, c, "H" if s == 1 else f"H/{s}", "W" if s == 1 else f"W/{s}"]  # noqa: E731
    strides = {"x": 1, "x_hat": 1, "z": sz, "z_hat": sz}
    chans = {n: t.shape[1] for n, t in lat.items()}
    chans["x_hat"] = 3
    slice_c = lat["y"].shape[1] // model.num_slices
    stages = []
    for name, (module, inputs, outputs, role, critical) in graphs(model).items():
        def example(x, inputs=inputs):
            t = graph_latents(model, x, example_group_mask(x))
            return tuple(t[n] for n in inputs)

        st = Stage(name, module, inputs, outputs, role, critical, example, {n: (2, 3) for n in inputs})
        st.shapes = {n: sh(slice_c if n in ("mu", "scale") else chans[n], strides.get(n, sy))
                     for n in inputs + outputs}
        stages.append(st)
    return stages


def to_fp16(stage: Stage) -> Stage:
    """fp16 variant of a reconstruction-only stage (parse-critical stages stay fp32, DESIGN 'Precision')."""
    if stage.parse_critical:
        return stage
    s = copy.copy(stage)
    s.module = _Fp16(stage.module)
    s.reference = stage.module
    s.precision = "fp16"
    return s
