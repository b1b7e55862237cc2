"""Export stages: the graphs of ``train.graphs`` with what ONNX export needs (one ONNX file each).

A :class:`Stage` wraps one graph module with its manifest entry (role and parse-criticality from the bundle
schema, ``runtime.bundle.graph_role``), how to make example inputs for an image size (derived from the PyTorch
model itself, so latent shapes are always right), which axes are dynamic, the manifest shapes and an optional
parity oracle.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn

from runtime.bundle import graph_role
from train.graphs import (
    CONTEXT_K,
    Graph,
    GraphError,
    context_oracle,
    example_group_mask,
    group_latents,
    plan_graphs,
    slice_latents,
    windows_of,
)


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


def _stage(g: Graph, example, dynamic: dict, **kw) -> Stage:
    role, critical = graph_role(g.name)
    return Stage(g.name, g.module, list(g.inputs), list(g.outputs), role, critical, example, dynamic, **kw)


class _Fp16(nn.Module):
    """Run ``inner`` in half precision with fp32 I/O (fp32 islands stay inside the custom-op bodies)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = copy.deepcopy(inner).half()

    def forward(self, *xs):
        out = self.inner(*[x.half() for x in xs])
        return tuple(o.float() for o in out) if isinstance(out, tuple) else out.float()


def per_image(fn: Callable[[torch.Tensor], object], keep: int = 2) -> Callable[[torch.Tensor], object]:
    """``fn(x)`` remembered for the last ``keep`` images x, by identity (the cache holds x, so an id is never
    reused while it is cached). Every stage of a plan derives its inputs (and oracles) from the same latents of
    an image, and the parity check asks each stage in turn for the same images: the model's transforms then
    run once per image instead of once per stage. The cached tensors are shared: callers must not modify them."""
    cache: list[tuple[torch.Tensor, object]] = []

    def get(x: torch.Tensor):
        for key, value in cache:
            if key is x:
                return value
        value = fn(x)
        cache.insert(0, (x, value))
        del cache[keep:]
        return value

    return get


def _latents(model, x, abs_y):
    with torch.no_grad():
        y = model.g_a(x)
        z = model.h_a(torch.abs(y) if abs_y else y)
    return y, z


def _stride(model, abs_y, pad) -> tuple[int, int]:
    x = torch.zeros(1, 3, pad * 2, pad * 2)
    y, z = _latents(model, x, abs_y)
    return pad * 2 // y.shape[-1], pad * 2 // z.shape[-1]


def _nchw(c: int, s: int) -> list:
    """Manifest shape of a [1, c, H/s, W/s] tensor."""
    return [1, c, "H" if s == 1 else f"H/{s}", "W" if s == 1 else f"W/{s}"]


def build_stages(model: nn.Module, plan: str, *, width: int | None = None) -> list[Stage]:
    """The stages of ``plan`` for ``model`` (fp32). ``width`` selects one SlimCAE width (default: all)."""
    builders = {
        "hyperprior": _hyper,
        "mean_scale": _hyper,
        "spatial_context": _hyper,
        "factorized": _factorized,
        "channel_slices": _channel_slices,
        "grouped_context": _grouped_context,
        "grouped_slices": _grouped_slices,
    }
    if plan not in builders:
        raise ExportError(f"coding plan {plan!r} is not supported by the exporter (known: {', '.join(builders)})")
    if plan != "factorized" and width is not None:
        raise ExportError("--width only applies to the factorized (SlimCAE) plan")
    try:
        graphs = {g.name: g for g in plan_graphs(model, plan, widths=None if width is None else [width])}
    except GraphError as e:
        raise ExportError(str(e)) from None
    return builders[plan](model, plan, graphs)


def _hyper(model, plan, graphs) -> list[Stage]:
    abs_y = plan == "hyperprior"
    pad = int(getattr(model, "pad_multiple", 64))
    sy, sz = _stride(model, abs_y, pad)
    dyn = (2, 3)
    analysis = graphs["analysis"].module

    @per_image
    def lat(x):  # the analysis graph's outputs (its parity reference) and their roundings
        with torch.no_grad():
            y, z = analysis(x)
        return y, z, torch.round(y), torch.round(z)

    def ex_z(x):
        return (lat(x)[3],)

    def ex_y(x):
        return (lat(x)[2],)

    stages = [
        _stage(graphs["analysis"], lambda x: (x,), {"x": dyn}, oracle=lambda x: lat(x)[:2]),
        _stage(graphs["hyper_synthesis"], ex_z, {"z_hat": dyn}),
    ]
    if plan == "spatial_context":

        @per_image
        def ex_ctx(x):
            (y_hat,), (z_hat,) = ex_y(x), ex_z(x)
            with torch.no_grad():
                params = model.h_s(z_hat)
            return params[0].flatten(1).t().contiguous(), windows_of(y_hat).contiguous()

        @per_image
        def oracle_ctx(x):  # CompressAI's full-image path: masked conv over y_hat, then the 1x1 net
            return context_oracle(model, ex_y(x)[0], ex_z(x)[0])

        stages.append(_stage(graphs["context_step"], ex_ctx, {"params": (0,), "windows": (0,)}, oracle=oracle_ctx))
    stages.append(_stage(graphs["synthesis"], ex_y, {"y_hat": dyn}))
    with torch.no_grad():
        y, z = _latents(model, torch.zeros(1, 3, pad, pad), abs_y)
    My, Nz = y.shape[1], z.shape[1]
    for st in stages:
        if st.name == "analysis":
            st.shapes = {"x": _nchw(3, 1), "y": _nchw(My, sy), "z": _nchw(Nz, sz)}
        elif st.name == "hyper_synthesis":
            hs_c = {"scales": My, "means": My, "params": 2 * My}
            st.shapes = {"z_hat": _nchw(Nz, sz), **{o: _nchw(hs_c[o], sy) for o in st.outputs}}
        elif st.name == "context_step":
            st.shapes = {
                "params": ["P", 2 * My],
                "windows": ["P", My, CONTEXT_K, CONTEXT_K],
                "scales": ["P", My],
                "means": ["P", My],
            }
        elif st.name == "synthesis":
            st.shapes = {"y_hat": _nchw(My, sy), "x_hat": _nchw(3, 1)}
    return stages


def _factorized(model, plan, graphs) -> list[Stage]:
    if not hasattr(model, "widths"):
        raise ExportError("factorized export needs a slimmable model with .widths and .width_modules(w)")
    pad = int(getattr(model, "pad_multiple", 16))
    stages = []
    for name, g in graphs.items():
        if not name.endswith(".analysis"):
            continue
        w = name.split(".")[0]
        g_a = g.module
        with torch.no_grad():
            y = g_a(torch.zeros(1, 3, pad, pad))
        s = pad // y.shape[-1]

        def ex_y(x, g_a=g_a):
            with torch.no_grad():
                return (torch.round(g_a(x)),)

        a = _stage(g, lambda x: (x,), {"x": (2, 3)})
        b = _stage(graphs[f"{w}.synthesis"], ex_y, {"y_hat": (2, 3)})
        a.shapes = {"x": _nchw(3, 1), "y": _nchw(y.shape[1], s)}
        b.shapes = {"y_hat": a.shapes["y"], "x_hat": a.shapes["x"]}
        stages += [a, b]
    return stages


def _channel_slices(model, plan, graphs) -> list[Stage]:
    pad = int(getattr(model, "pad_multiple", 128))
    S = model.num_slices
    with torch.no_grad():
        lat = slice_latents(model, torch.zeros(1, 3, pad, pad))
    sy, sz = pad // lat["y"].shape[-1], pad // lat["z"].shape[-1]
    M, Nz, sw = lat["y"].shape[1], lat["z"].shape[1], lat["y"].shape[1] // S
    Ml = lat["latent_means"].shape[1]
    dyn = (2, 3)

    lat = per_image(lambda x: slice_latents(model, x))  # y, z = the analysis graph's outputs (its reference)

    def pick(*names):
        return lambda x: tuple(lat(x)[n] for n in names)

    stages = [
        _stage(graphs["analysis"], lambda x: (x,), {"x": dyn}, oracle=pick("y", "z")),
        _stage(graphs["hyper_synthesis"], pick("z_hat"), {"z_hat": dyn}),
    ]
    stages[0].shapes = {"x": _nchw(3, 1), "y": _nchw(M, sy), "z": _nchw(Nz, sz)}
    stages[1].shapes = {"z_hat": _nchw(Nz, sz), "latent_means": _nchw(Ml, sy), "latent_scales": _nchw(Ml, sy)}
    for i in range(S):
        sl, lr = graphs[f"slice{i}"], graphs[f"lrp{i}"]
        sup = sl.inputs[2:]
        st = _stage(sl, pick(*sl.inputs), {n: dyn for n in sl.inputs})
        st.shapes = {
            "latent_means": _nchw(Ml, sy),
            "latent_scales": _nchw(Ml, sy),
            **{n: _nchw(sw, sy) for n in sup},
            "mu": _nchw(sw, sy),
            "scale": _nchw(sw, sy),
        }
        # lrp<i>'s last input is slice i quantized (mu + round(y - mu)) before its own LRP: yq_i in slice_latents
        ex = pick("latent_means", *sup, f"yq_{i}")
        lrp = _stage(lr, ex, {n: dyn for n in lr.inputs})
        lrp.shapes = {"latent_means": _nchw(Ml, sy), **{n: _nchw(sw, sy) for n in lr.inputs[1:] + ["lrp"]}}
        stages += [st, lrp]
    syn = _stage(graphs["synthesis"], pick("y_hat"), {"y_hat": dyn})
    syn.shapes = {"y_hat": _nchw(M, sy), "x_hat": _nchw(3, 1)}
    return stages + [syn]


def _grouped_context(model, plan, graphs) -> list[Stage]:
    """BaSIC: a stage per (transform, width) and per context coder; examples from the full level."""
    full = model.at_level(model.full_level())
    M, N = model.M, model.N
    dyn = (2, 3)

    @per_image
    def lat(x):
        with torch.no_grad():
            y = full.g_a(x)
            z_hat = torch.round(full.h_a(y))
            return {"x": x, "y": y, "z_hat": z_hat, "y_hat": torch.round(y), "params": full.h_s(z_hat)}

    shapes = {
        "x": _nchw(3, 1),
        "y": _nchw(M, 16),
        "z": _nchw(N, 64),
        "z_hat": _nchw(N, 64),
        "params": _nchw(2 * M, 16),
        "y_hat": _nchw(M, 16),
        "x_hat": _nchw(3, 1),
        "scales": _nchw(M, 16),
        "means": _nchw(M, 16),
    }
    stages = []
    for name, g in graphs.items():
        if name == "context.scanline" or g.inputs == ["params", "windows"]:

            def ex(x):
                t = lat(x)
                return t["params"][0].flatten(1).t().contiguous(), windows_of(t["y_hat"]).contiguous()

            st = _stage(g, ex, {"params": (0,), "windows": (0,)})
            st.shapes = {
                "params": ["P", 2 * M],
                "windows": ["P", M, CONTEXT_K, CONTEXT_K],
                "scales": ["P", M],
                "means": ["P", M],
            }
        else:
            st = _stage(g, lambda x, g=g: tuple(lat(x)[n] for n in g.inputs), {n: dyn for n in g.inputs})
            st.shapes = {n: shapes[n] for n in g.inputs + g.outputs}
        stages.append(st)
    return stages


def _grouped_slices(model, plan, graphs) -> list[Stage]:
    pad = int(model.pad_multiple)
    x0 = torch.zeros(1, 3, pad, pad)
    lat = group_latents(model, x0, example_group_mask(x0))
    sy, sz = pad // lat["y"].shape[-1], pad // lat["z"].shape[-1]
    chans = {n: t.shape[1] for n, t in lat.items()}
    chans.update(x_hat=3, mu=lat["y_hat_0"].shape[1], scale=lat["y_hat_0"].shape[1])
    strides = {"x": 1, "x_hat": 1, "z": sz, "z_hat": sz}
    stages = []
    latents = per_image(lambda x: group_latents(model, x, example_group_mask(x)))
    for g in graphs.values():

        def example(x, names=tuple(g.inputs)):
            t = latents(x)
            return tuple(t[n] for n in names)

        st = _stage(g, example, {n: (2, 3) for n in g.inputs})
        st.shapes = {n: _nchw(chans[n], strides.get(n, sy)) for n in g.inputs + g.outputs}
        stages.append(st)
    return stages


def to_fp16(stage: Stage) -> Stage:
    """fp16 variant of a reconstruction-only stage (parse-critical stages stay fp32)."""
    if stage.parse_critical:
        return stage
    s = copy.copy(stage)
    s.module = _Fp16(stage.module)
    s.reference = stage.module
    s.precision = "fp16"
    return s
