"""MACs per pixel counted from exported ONNX graphs with explicit per-op formulas (and a PyTorch cross-check).

`python -m benchmarks macs CKPT|BUNDLE|MODEL.onnx [--size HxW] [--json FILE|-]`

Formulas (1 MAC = one multiply-add; elementwise ops and exps are listed separately, never folded into MACs):
  Conv            kh·kw·Cin/groups·Cout·Hout·Wout (·batch)
  ConvTranspose   kh·kw·Cin·Cout/groups·Hin·Win  -- per INPUT pixel (thop counts per output pixel: 4x too many)
  Gemm / MatMul   M·K·N (·batch dims)
  GeneralizedDivisiveNorm   C·C·H·W (the 1x1 sum of gamma·x²) + elementwise (x², +beta, sqrt, div/mul)
  SelectiveScan2D per direction L·Di·R (dt_proj) + 3·L·Di·N + 2·L·Di MACs and L·Di·N exps, times K=4 directions,
  L = H·W
A plain (decomposed) GDN -- Pow(x,2)/Mul(x,x) feeding a Conv -- is counted as `gdn` as well.
Shapes come from onnx.shape_inference with the lictrt custom-op output shapes filled in from the contracts
(export/op_contracts.py: both ops return a tensor shaped like their first input).
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

from benchmarks.common import BenchmarkError, JsonOpt, SizeOpt, command_main, emit, is_bundle, parse_size, read_manifest
from runtime.cli import VerboseOpt

LICTRT_DOMAIN = "lictrt"
CATEGORIES = ("conv", "deconv", "gdn", "matmul", "scan")
ELEMENTWISE = {
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "Sqrt",
    "Reciprocal",
    "Exp",
    "Log",
    "Relu",
    "LeakyRelu",
    "Sigmoid",
    "Tanh",
    "Softplus",
    "Abs",
    "Neg",
    "Max",
    "Min",
    "Clip",
    "Erf",
    "Gelu",
    "Softmax",
    "Round",
    "Floor",
}
DEFAULT_SIZE = (512, 768)  # Kodak landscape, H x W


class MacsError(BenchmarkError):
    """The graph cannot be counted (missing shapes, unsupported control flow, bad input)."""


@dataclass
class GraphCount:
    """MACs of one graph, by category, plus elementwise ops and exps (not MACs)."""

    name: str
    macs: dict = field(default_factory=lambda: {c: 0 for c in CATEGORIES})
    elementwise: int = 0
    exps: int = 0
    scan_macs: int = 0  # included in macs["scan"]; kept for the with/without-scan figures
    multiplier: int = 1  # calls per image (context_step runs once per latent position)
    uncounted: dict = field(default_factory=dict)  # op_type -> count of nodes with missing shapes / unsupported

    @property
    def total(self) -> int:
        return sum(self.macs.values())

    def as_dict(self, pixels: int) -> dict:
        m = self.multiplier
        return {
            "name": self.name,
            "calls_per_image": m,
            "macs": {k: v * m for k, v in self.macs.items()},
            "total_macs": self.total * m,
            "kmac_per_px": self.total * m / pixels / 1e3,
            "scan_macs": self.scan_macs * m,
            "exps": self.exps * m,
            "elementwise_ops": self.elementwise * m,
            "uncounted_nodes": self.uncounted,
        }


# ----------------------------------------------------------------------------------------------- shapes


def _static_inputs(model, input_shapes: dict[str, list[int]]):
    """Return a copy of `model` whose graph inputs have the given concrete shapes."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    init = {i.name for i in m.graph.initializer}
    for inp in m.graph.input:
        if inp.name in init:
            continue
        if inp.name not in input_shapes:
            raise MacsError(f"no shape given for graph input {inp.name!r}")
        dims = inp.type.tensor_type.shape.dim
        shape = input_shapes[inp.name]
        if len(dims) and len(dims) != len(shape):
            raise MacsError(f"input {inp.name!r} has rank {len(dims)}, got shape {shape}")
        del dims[:]
        for v in shape:
            dims.add().dim_value = int(v)
    return m


def _inline_foreign_functions(model):
    """Inline model-local functions except the lictrt custom ops (counted by formula, not by body)."""
    import onnx
    import onnx.inliner

    keep = [(f.domain, f.name) for f in model.functions if f.domain == LICTRT_DOMAIN]
    if len(keep) == len(model.functions):
        return model
    return onnx.inliner.inline_selected_functions(model, keep, exclude=True)


def _shape_of(vi) -> list[int] | None:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    return None if any(d is None for d in dims) else dims


def infer_shapes(model) -> dict[str, list[int]]:
    """Tensor name -> concrete shape, after ONNX shape inference with lictrt node outputs shaped like input 0."""
    import onnx
    from onnx import helper, shape_inference

    m = onnx.ModelProto()
    m.CopyFrom(model)
    custom = [n for n in m.graph.node if n.domain == LICTRT_DOMAIN]
    for _ in range(len(custom) + 2):
        try:
            m = shape_inference.infer_shapes(m, data_prop=True)
        except Exception as exc:  # onnx raises several types; report one line
            raise MacsError(f"ONNX shape inference failed: {exc}".splitlines()[0]) from None
        shapes = _collect(m)
        added = False
        for n in custom:
            src = shapes.get(n.input[0])
            if src is None:
                continue
            for out in n.output[:1]:
                if out not in shapes:
                    elem = _elem_type(m, n.input[0])
                    m.graph.value_info.append(helper.make_tensor_value_info(out, elem, src))
                    added = True
        if not added:
            return shapes
    return _collect(m)


def _elem_type(model, name: str) -> int:
    import onnx

    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        if vi.name == name:
            return vi.type.tensor_type.elem_type
    return onnx.TensorProto.FLOAT


def _collect(model) -> dict[str, list[int]]:
    shapes: dict[str, list[int]] = {}
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    for vi in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
        s = _shape_of(vi)
        if s is not None:
            shapes[vi.name] = s
    for n in model.graph.node:  # Constant nodes carry their own shapes
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    shapes[n.output[0]] = list(a.t.dims)
    return shapes


# --------------------------------------------------------------------------------------------- counting


def _attr(node, name: str, default):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _prod(v) -> int:
    return int(math.prod(int(x) for x in v))


def scan_cost(
    batch: int, d_inner: int, d_state: int, length: int, directions: int = 4, dt_rank: int = 0
) -> tuple[int, int]:
    """(MACs, exps) of a sequential 2-D selective scan: per direction L·Di·R (dt_proj, inside the op) + 3·L·Di·N +
    2·L·Di MACs, L·Di·N exps."""
    macs = batch * directions * (length * d_inner * dt_rank + 3 * length * d_inner * d_state + 2 * length * d_inner)
    exps = batch * directions * length * d_inner * d_state
    return macs, exps


def count_graph(model, input_shapes: dict[str, list[int]], name: str = "graph") -> GraphCount:
    """Count one ONNX graph at the given concrete input shapes."""
    if any(n.op_type in ("Loop", "Scan", "If") for n in model.graph.node):
        bad = sorted({n.op_type for n in model.graph.node if n.op_type in ("Loop", "Scan", "If")})
        raise MacsError(f"{name}: control-flow ops {bad} cannot be counted statically")
    model = _inline_foreign_functions(_static_inputs(model, input_shapes))
    shapes = infer_shapes(model)
    producer = {o: n for n in model.graph.node for o in n.output}
    count = GraphCount(name)

    def miss(op):
        count.uncounted[op] = count.uncounted.get(op, 0) + 1

    for node in model.graph.node:
        op = node.op_type
        if node.domain == LICTRT_DOMAIN:
            x = shapes.get(node.input[0])
            if op == "GeneralizedDivisiveNorm" and x and len(x) == 4:
                b, c, h, w = x
                count.macs["gdn"] += b * c * c * h * w
                count.elementwise += 4 * b * c * h * w  # x², +beta, sqrt, div/mul
            elif op == "SelectiveScan2D" and x and len(x) == 4:
                b, di, h, w = x
                w_shape, a_shape = shapes.get(node.input[2]), shapes.get(node.input[3])  # dt_weight, A
                if not a_shape or not w_shape:
                    miss(op)
                    continue
                k = a_shape[0] // di
                macs, exps = scan_cost(b, di, a_shape[1], h * w, k, w_shape[1])
                count.macs["scan"] += macs
                count.scan_macs += macs
                count.exps += exps
            else:
                miss(op)
            continue
        if op == "Conv":
            w, y = shapes.get(node.input[1]), shapes.get(node.output[0])
            if not w or not y:
                miss(op)
                continue
            # weight [Cout, Cin/groups, kh, kw]
            macs = y[0] * y[1] * _prod(y[2:]) * w[1] * _prod(w[2:])
            src = producer.get(node.input[0])
            count.macs["gdn" if src is not None and _is_square(src, shapes) else "conv"] += macs
        elif op == "ConvTranspose":
            x, w = shapes.get(node.input[0]), shapes.get(node.input[1])
            if not x or not w:
                miss(op)
                continue
            # weight [Cin, Cout/groups, kh, kw]: every input pixel scatters Cout/groups·kh·kw products
            count.macs["deconv"] += x[0] * x[1] * _prod(x[2:]) * w[1] * _prod(w[2:])
        elif op == "Gemm":
            a, b = shapes.get(node.input[0]), shapes.get(node.input[1])
            if not a or not b:
                miss(op)
                continue
            m_, k_ = (a[1], a[0]) if _attr(node, "transA", 0) else (a[0], a[1])
            n_ = b[0] if _attr(node, "transB", 0) else b[1]
            count.macs["matmul"] += m_ * k_ * n_
        elif op == "MatMul":
            a, b, y = shapes.get(node.input[0]), shapes.get(node.input[1]), shapes.get(node.output[0])
            if not a or not b or y is None:
                miss(op)
                continue
            k_ = a[-1]
            count.macs["matmul"] += _prod(y) * k_  # every output element is a K-long dot product
        elif op in ELEMENTWISE:
            y = shapes.get(node.output[0])
            if y is not None:
                count.elementwise += _prod(y)
                if op == "Exp":
                    count.exps += _prod(y)
    return count


def _is_square(node, shapes) -> bool:
    """Pow(x, 2) or Mul(x, x): the x² that feeds a decomposed GDN's 1x1 conv."""
    if node.op_type == "Mul":
        return len(node.input) == 2 and node.input[0] == node.input[1]
    if node.op_type == "Pow":
        return True  # exponent is a constant 2 in every GDN export; other Pow->Conv patterns do not occur here
    return False


# ------------------------------------------------------------------------------------------------ bundles


def _eval_dim(dim, h: int, w: int, env: dict[str, int]) -> int | None:
    """Evaluate a manifest dimension: int, or an expression in H and W such as "H/16"."""
    if isinstance(dim, int):
        return dim
    expr = str(dim)
    if not re.fullmatch(r"[HW0-9+\-*/() ]+", expr):
        return env.get(expr)
    return int(eval(expr.replace("/", "//"), {"__builtins__": {}}, {"H": h, "W": w}))  # noqa: S307 - whitelisted


def _onnx_input_shapes(model, h: int, w: int, manifest_inputs: list | None) -> tuple[dict, int]:
    """Concrete shapes for a graph's inputs and the number of calls per image (>1 for per-position graphs)."""
    init = {i.name for i in model.graph.initializer}
    spec = {i["name"]: i["shape"] for i in (manifest_inputs or [])}
    shapes, calls = {}, 1
    for inp in model.graph.input:
        if inp.name in init:
            continue
        dims = spec.get(inp.name)
        if dims is None:
            dims = [
                d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in inp.type.tensor_type.shape.dim
            ]
        out = []
        for i, d in enumerate(dims):
            v = _eval_dim(d, h, w, {})
            if v is None or v == 0:
                if i == 0:  # a free leading dim = positions per call; count one position, multiply later
                    v, calls = 1, max(calls, (h // 16) * (w // 16))
                else:
                    raise MacsError(f"input {inp.name!r}: cannot size dimension {d!r} for {h}x{w}")
            out.append(v)
        shapes[inp.name] = out
    return shapes, calls


def count_bundle(bundle: str | Path, size: tuple[int, int]) -> dict:
    """Count every graph of a codec bundle at image size `size` (H, W); roles from the manifest."""
    import onnx

    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    h, w = size
    pad = int(manifest.get("pad_multiple", 64))
    hp, wp = -(-h // pad) * pad, -(-w // pad) * pad
    graphs = []
    for gname, g in manifest.get("graphs", {}).items():
        path = bundle / g["file"]
        if not path.is_file():
            raise MacsError(f"bundle graph {gname!r} missing: {path}")
        model = onnx.load(str(path))
        shapes, calls = _onnx_input_shapes(model, hp, wp, g.get("inputs"))
        c = count_graph(model, shapes, gname)
        c.multiplier = calls if "context" in gname else 1
        graphs.append((c, g))
    return _summarize(graphs, manifest.get("model", {}).get("arch", "?"), (h, w), (hp, wp))


def _role(name: str, g: dict) -> set[str]:
    """Which side(s) run a graph: parse-critical graphs run on both sides."""
    if g.get("parse_critical"):
        return {"encoder", "decoder", "parse_critical"}
    role = g.get("role")
    if role in ("encoder", "decoder"):
        return {role}
    base = name.split(".")[-1]
    if base == "analysis":
        return {"encoder"}
    if base == "synthesis":
        return {"decoder"}
    return {"encoder", "decoder"}


def _summarize(graphs: list, arch: str, size, padded) -> dict:
    pixels = size[0] * size[1]
    ppix = padded[0] * padded[1]
    per_graph = {c.name: c.as_dict(ppix) for c, _ in graphs}
    parts = {"encoder": 0, "decoder": 0, "parse_critical": 0}
    for c, g in graphs:
        for r in _role(c.name, g):
            parts[r] += c.total * c.multiplier
    total = sum(c.total * c.multiplier for c, _ in graphs)
    scan = sum(c.scan_macs * c.multiplier for c, _ in graphs)
    by_cat = {k: sum(c.macs[k] * c.multiplier for c, _ in graphs) for k in CATEGORIES}
    return {
        "arch": arch,
        "size": list(size),
        "padded_size": list(padded),
        "total_macs": total,
        "total_macs_without_scan": total - scan,
        "scan_exps": sum(c.exps for c, _ in graphs),
        "by_category": by_cat,
        "kmac_per_px": {k: v / ppix / 1e3 for k, v in parts.items()},
        "kmac_per_px_whole": total / ppix / 1e3,
        "kmac_per_px_whole_without_scan": (total - scan) / ppix / 1e3,
        "graphs": per_graph,
        "pixels": pixels,
    }


# ------------------------------------------------------------------------------------- checkpoints / torch

STAGES = (("analysis", ("g_a", "h_a")), ("hyper_synthesis", ("h_s",)), ("synthesis", ("g_s",)))


def export_stage_graphs(model, size: tuple[int, int], out_dir: str | Path) -> dict:
    """Plain ONNX export of a CompressAI-style model's g_a, h_a, h_s, g_s (and context nets) at a fixed size.

    Returns a minimal manifest-like dict {graph: {"file", "role"}} so `count_bundle`-style counting applies.
    Used when `export.onnx` is not available or for a quick count of any CompressAI model.
    """
    import torch

    out_dir = Path(out_dir)
    model = model.eval()
    h, w = size
    x = torch.zeros(1, 3, h, w)
    graphs = {}
    with torch.no_grad():
        y = model.g_a(x)
        z = model.h_a(y)
        feeds = {"g_a": (x,), "h_a": (y,), "h_s": (z,), "g_s": (y,)}
        for sub in ("g_a", "h_a", "h_s", "g_s", "context_prediction", "entropy_parameters"):
            mod = getattr(model, sub, None)
            if mod is None:
                continue
            if sub == "context_prediction":
                args = (y,)
            elif sub == "entropy_parameters":
                hs = model.h_s(z)
                ctx = model.context_prediction(y)
                args = (torch.cat([hs, ctx], dim=1),)
            else:
                args = feeds[sub]
            path = out_dir / f"{sub}.onnx"
            _export(mod, args, path)
            role = {"g_a": "encoder", "h_a": "encoder", "g_s": "decoder"}.get(sub)
            graphs[sub] = {"file": path.name, "role": role, "parse_critical": role is None}
        # models whose entropy networks are per-slice modules describe them: {name: (module, example args)}
        slice_graphs = getattr(model, "slice_graphs", None)
        for sub, (mod, args) in (slice_graphs(y, z) if slice_graphs is not None else {}).items():
            path = out_dir / f"{sub}.onnx"
            _export(mod, args, path)
            graphs[sub] = {"file": path.name, "role": None, "parse_critical": True}
    return graphs


def _export(module, args, path: Path) -> None:
    import contextlib
    import io
    import warnings

    import torch

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(module, args, dynamo=True, verbose=False, optimize=True)
        prog.save(str(path))


def count_model(model, size: tuple[int, int], arch: str = "?") -> dict:
    """Count a PyTorch model via a plain ONNX export of its stages at `size` (no padding beyond 64)."""
    import onnx

    with tempfile.TemporaryDirectory(prefix="lictrt-macs-") as tmp:
        graphs = export_stage_graphs(model, size, tmp)
        counted = []
        for name, g in graphs.items():
            m = onnx.load(str(Path(tmp) / g["file"]))
            shapes = {
                i.name: [d.dim_value for d in i.type.tensor_type.shape.dim]
                for i in m.graph.input
                if i.name not in {t.name for t in m.graph.initializer}
            }
            counted.append((count_graph(m, shapes, name), g))
    return _summarize(counted, arch, size, size)


def torch_flops(model, size: tuple[int, int]) -> dict:
    """Cross-check: MACs of g_a+h_a+h_s+g_s(+context nets) with torch's FlopCounterMode (FLOPs / 2).

    A formula for the lictrt selective-scan torch op is registered when that op exists (export/registry.py).
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    h, w = size
    # The model's device: on "meta" nothing is computed, so paper-size models count in seconds.
    x = torch.zeros(1, 3, h, w, device=next(model.parameters()).device)
    model = model.eval()
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=_scan_flop_mapping()) as fc:
        y = model.g_a(x)
        z = model.h_a(y)
        model.h_s(z)
        model.g_s(y)
    counts = fc.get_flop_counts().get("Global", {})
    by_op = {str(k): v // 2 for k, v in counts.items()}
    return {"total_macs": fc.get_total_flops() // 2, "by_op": by_op}


def _scan_flop_mapping() -> dict:
    """{torch.ops.lictrt.<scan op>: flop formula} for every registered lictrt scan op (FLOPs = 2·MACs)."""
    import torch

    mapping = {}
    ns = getattr(torch.ops, LICTRT_DOMAIN, None)
    names = [n for n in dir(ns)] if ns is not None else []
    for n in names:
        if "scan" not in n.lower():
            continue
        packet = getattr(ns, n, None)
        if not isinstance(packet, torch._ops.OpOverloadPacket):
            continue

        def formula(u_shape, dts_shape, w_shape, a_shape, *args, out_shape=None, **kwargs):
            b, di, hh, ww = u_shape
            macs, _ = scan_cost(b, di, a_shape[1], hh * ww, a_shape[0] // di, w_shape[1])
            return 2 * macs

        mapping[packet] = formula
    return mapping


# ---------------------------------------------------------------------------------------------------- CLI


def count_path(path: str | Path, size: tuple[int, int]) -> dict:
    """Count a bundle directory, a single .onnx file, or a checkpoint (exported to a temporary bundle first)."""
    import onnx

    p = Path(path)
    if is_bundle(p):
        return count_bundle(p, size)
    if p.suffix == ".onnx" and p.is_file():
        m = onnx.load(str(p))
        h, w = size
        shapes, calls = _onnx_input_shapes(m, h, w, None)
        c = count_graph(m, shapes, p.stem)
        return _summarize([(c, {"role": None})], "?", size, size)
    if p.is_file():
        h, w = size
        # fixed shapes first (shape inference then sizes every MatMul of window attention), else dynamic
        for fixed in (["--size", f"{h}x{w}"], []):
            with tempfile.TemporaryDirectory(prefix="lictrt-macs-") as tmp:
                bundle = Path(tmp) / "bundle"
                proc = subprocess.run(
                    [sys.executable, "-m", "export.onnx", str(p), "-o", str(bundle), "--no-check", *fixed],
                    capture_output=True,
                    text=True,
                )
                if proc.returncode == 0 and is_bundle(bundle):
                    return count_bundle(bundle, size)
        model, arch = _load_checkpoint_model(p)
        return count_model(model, size, arch)
    raise MacsError(f"not a bundle, .onnx file or checkpoint: {p}")


def _load_checkpoint_model(path: Path):
    try:
        from train.checkpoint import load_checkpoint
    except ImportError:
        raise MacsError("counting a checkpoint needs export.onnx or train.checkpoint; neither is importable") from None
    try:
        model, meta = load_checkpoint(path)
    except Exception as exc:
        raise MacsError(f"cannot load checkpoint {path}: {exc}") from None
    return model, meta.get("arch", type(model).__name__)


def format_table(res: dict) -> str:
    h, w = res["size"]
    lines = [
        f"MACs of {res['arch']} at {h}x{w} (padded {res['padded_size'][0]}x{res['padded_size'][1]})",
        f"{'graph':<22}{'calls':>7}{'GMAC':>10}{'kMAC/px':>10}{'conv':>9}{'deconv':>9}{'gdn':>9}"
        f"{'matmul':>9}{'scan':>9}",
    ]
    for name, g in res["graphs"].items():
        m = g["macs"]
        lines.append(
            f"{name:<22}{g['calls_per_image']:>7}{g['total_macs'] / 1e9:>10.3f}{g['kmac_per_px']:>10.2f}"
            + "".join(f"{m[c] / 1e9:>9.3f}" for c in CATEGORIES)
        )
    k = res["kmac_per_px"]
    lines += [
        f"whole forward: {res['total_macs'] / 1e9:.3f} GMAC = {res['kmac_per_px_whole']:.2f} kMAC/px"
        f"  (without scan: {res['total_macs_without_scan'] / 1e9:.3f} GMAC,"
        f" {res['kmac_per_px_whole_without_scan']:.2f} kMAC/px; scan exps {res['scan_exps'] / 1e9:.3f} G)",
        f"kMAC/px: encoder {k['encoder']:.2f}  decoder {k['decoder']:.2f}  parse-critical {k['parse_critical']:.2f}",
    ]
    return "\n".join(lines)


def cli(
    path: Annotated[
        Path, typer.Argument(metavar="CKPT|BUNDLE|MODEL.onnx", help="codec bundle dir, .onnx file, or checkpoint .pth")
    ],
    size: SizeOpt = "512x768",
    json_path: JsonOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """MACs per pixel counted from the exported ONNX graphs (explicit per-op formulas, PyTorch cross-check).

    A checkpoint is exported to a temporary bundle first; --size is the image the graphs are counted at."""
    emit(count_path(str(path), parse_size(size)), json_path, format_table)


def main(argv: list[str] | None = None) -> int:
    return command_main("macs", argv)
