"""Export-time ONNX graph passes for reconstruction-only graphs (synthesis, analysis). Never parse-critical ones.

``subpixel_conv_transpose``: an exact rewrite of a strided ConvTranspose into sub-pixel form. Output pixel
``o = s·m + r`` of a ConvTranspose (stride s, kernel k, pads pb/pe, output_padding op) only sees the kernel taps
``kk ≡ r + pb (mod s)``, each reading input ``m + d`` with ``d = (r + pb − kk) / s``. So each of the s² output
phases is an ordinary (correlation) Conv of the input at its own resolution, and the phases interleave with
``DepthToSpace(blocksize=s, mode=DCR)``. Forms:

* ``"phases"`` (default): one Conv per phase with exactly its own taps (k5 s2: 3×3, 3×2, 2×3, 2×2; 25 taps, so
  MAC counts of the graph stay exact). The phases interleave without DepthToSpace, which onnxruntime runs at
  about a fifth of memory speed: a Concat on a new axis next to W interleaves the rows (W-long copies), and one
  batched 2-D Transpose interleaves the columns. A GeneralizedDivisiveNorm that is the only reader of the
  ConvTranspose's output is per pixel (a 1×1 mixing of channels), so it moves before the interleave, one copy
  per phase: it then reads the phase Convs' outputs directly (onnxruntime keeps them in its blocked layout);
* ``"fused"``: one Conv producing s²·C_out channels over the union of the phases' tap windows (k5 s2: a 3×3
  kernel, 36 taps where 25 are real, the rest zero) — one large Conv, 1.44× the MACs.

Both compute the same sums as the ConvTranspose in another order: equal within float rounding (not bit-exact),
which is why they are for reconstruction-only graphs. Applies where the output is exactly s× the input
(k + op − pb − pe = s per axis), equal strides, group 1, dilation 1, constant weights; other nodes stay as they are.

``split_projection``: a MatMul by a constant [K, N] weight (optionally + a constant bias) whose only reader is a
Split of its last axis (the SSM blocks' ``in_proj`` followed by ``x, z = chunk(2)``) becomes one MatMul per part
with that part's weight columns. Each output element is the same dot product; what goes away is the [.., N]
product and the Split's copy of it, which at full resolution are among the largest live tensors of a VSS block
(MambaVC synthesis at 768×512: a 384 MB product, live through the block's scan).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

FORMS = ("phases", "fused")
DEFAULT_FORM = "phases"
#: ConvTransposes with fewer output channels stay as they are: a phase Conv with C_out = 3 (the image layer) is a
#: GEMM with 3 rows, measured 2.5× slower than ORT's ConvTranspose (benchmarks/kodak_decode.py --variants)
MIN_OUT_CHANNELS = 16
METADATA_KEY = "lictrt.passes"
#: custom ops that act on each pixel alone (no spatial reach), so they commute with the phase interleave
POINTWISE_OPS = {("lictrt", "GeneralizedDivisiveNorm")}


class PassError(ValueError):
    """A graph pass was asked for something it cannot do (unknown form, parse-critical graph)."""


def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _phase_taps(s: int, k: int, pb: int) -> list[list[tuple[int, int]]]:
    """Per output phase r: [(d, kk)] — kernel tap kk reads input m + d for output s·m + r."""
    return [[((r + pb - kk) // s, kk) for kk in range(k) if (r + pb - kk) % s == 0] for r in range(s)]


def _plan(node, inits: dict, min_out_channels: int):
    """(s, taps_h, taps_w, W, B) when ``node`` can be rewritten, else None."""
    if node.op_type != "ConvTranspose" or node.domain not in ("", "ai.onnx") or node.input[1] not in inits:
        return None
    a = _attrs(node)
    w = inits[node.input[1]]
    if w.ndim != 4 or w.shape[1] < min_out_channels or a.get("group", 1) != 1 or "output_shape" in a:
        return None
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        return None
    if any(d != 1 for d in a.get("dilations", [1, 1])):
        return None
    kh, kw = a.get("kernel_shape", w.shape[2:])
    strides = list(a.get("strides", [1, 1]))
    pads = list(a.get("pads", [0, 0, 0, 0]))
    op = list(a.get("output_padding", [0, 0]))
    if strides[0] != strides[1] or strides[0] < 2 or (kh, kw) != tuple(w.shape[2:]):
        return None
    s = strides[0]
    for k, pb, pe, o in ((kh, pads[0], pads[2], op[0]), (kw, pads[1], pads[3], op[1])):
        if k + o - pb - pe != s:  # output must be exactly s × input
            return None
    th, tw = _phase_taps(s, kh, pads[0]), _phase_taps(s, kw, pads[1])
    if any(not t for t in th + tw):
        return None
    b = inits.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if len(node.input) > 2 and node.input[2] and b is None:
        return None  # bias computed at run time: leave it
    return s, th, tw, w, b


def _window(taps) -> tuple[int, int]:
    """(dmin, dmax) of a tap list; a Conv reading m+dmin..m+dmax needs pads (-dmin, dmax) >= 0."""
    ds = [d for d, _ in taps]
    return min(ds), max(ds)


def _phase_weight(w: np.ndarray, taps_h, taps_w, win_h, win_w) -> np.ndarray:
    """Conv weight [C_out, C_in, Kh, Kw] of one phase over the tap window (zeros where no tap lands)."""
    cin, cout = w.shape[:2]
    out = np.zeros((cout, cin, win_h[1] - win_h[0] + 1, win_w[1] - win_w[0] + 1), dtype=w.dtype)
    for dh, kh in taps_h:
        for dw, kw in taps_w:
            out[:, :, dh - win_h[0], dw - win_w[0]] = w[:, :, kh, kw].T
    return out


def subpixel_conv_transpose(
    model: onnx.ModelProto, form: str = DEFAULT_FORM, min_out_channels: int = MIN_OUT_CHANNELS
) -> int:
    """Rewrite every eligible top-level ConvTranspose of ``model`` in place; returns how many were rewritten."""
    if form not in FORMS:
        raise PassError(f"unknown sub-pixel form {form!r} ({', '.join(FORMS)})")
    g = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    readers = _readers(g)
    kept = {o.name for o in g.output} | _subgraph_reads(g)
    new_nodes, new_inits, done, replaced, absorbed = [], [], 0, set(), set()
    for node in g.node:
        if node.output and node.output[0] in absorbed:  # a follower already emitted per phase
            continue
        plan = _plan(node, inits, min_out_channels)
        if plan is None:
            new_nodes.append(node)
            continue
        s, th, tw, w, b = plan
        replaced.update(node.input[1:])
        base = (node.name or node.output[0]).replace("/", "_") + "_subpixel"
        phases = [(rh, rw) for rh in range(s) for rw in range(s)]  # DCR channel order: (rh·s + rw)·C_out + c
        if form == "fused":
            wh, ww = _window([t for ts in th for t in ts]), _window([t for ts in tw for t in ts])
            groups = [(phases, wh, ww)]
        else:
            groups = [([p], _window(th[p[0]]), _window(tw[p[1]])) for p in phases]
        if any(win[0] > 0 or win[1] < 0 for _, wh_, ww_ in groups for win in (wh_, ww_)):
            new_nodes.append(node)  # a window outside [m-pad, m+pad] would need negative pads
            continue
        outs = []
        for gi, (ps, wh, ww) in enumerate(groups):
            wt = np.concatenate([_phase_weight(w, th[rh], tw[rw], wh, ww) for rh, rw in ps], axis=0)
            wname, inputs = f"{base}_w{gi}", [node.input[0]]
            new_inits.append(numpy_helper.from_array(np.ascontiguousarray(wt), wname))
            inputs.append(wname)
            if b is not None:
                bname = f"{base}_b{gi}"
                new_inits.append(numpy_helper.from_array(np.tile(b, len(ps)).astype(b.dtype), bname))
                inputs.append(bname)
            out = f"{base}_phase{gi}"
            new_nodes.append(
                helper.make_node(
                    "Conv",
                    inputs,
                    [out],
                    name=f"{base}_conv{gi}",
                    kernel_shape=list(wt.shape[2:]),
                    pads=[-wh[0], -ww[0], wh[1], ww[1]],
                    strides=[1, 1],
                )
            )
            outs.append(out)
        if form == "fused":
            new_nodes.append(
                helper.make_node("DepthToSpace", outs, [node.output[0]], name=f"{base}_d2s", blocksize=s, mode="DCR")
            )
        else:
            out = node.output[0]
            follower = _pointwise_follower(out, readers, inits, kept)
            if follower is not None:  # run it per phase, before the interleave
                absorbed.add(follower.output[0])
                outs = [_copy_node(follower, o, f"{base}_{follower.op_type}{i}", new_nodes) for i, o in enumerate(outs)]
                out = follower.output[0]
            _interleave(outs, s, out, base, new_nodes, new_inits)
        done += 1
    if not done:
        return 0
    del g.node[:]
    g.node.extend(new_nodes)
    g.initializer.extend(new_inits)
    _drop_unused(model, replaced)
    return done


def _readers(graph) -> dict:
    """tensor name -> the top-level nodes that read it."""
    r: dict = {}
    for n in graph.node:
        for i in n.input:
            r.setdefault(i, []).append(n)
    return r


def _pointwise_follower(name: str, readers: dict, inits: dict, kept: set):
    """The POINTWISE_OPS node that is the only reader of ``name`` (its other inputs constant), else None.
    ``kept``: names that must stay whole (graph outputs, reads from subgraphs)."""
    rs = readers.get(name, [])
    if len(rs) != 1 or name in kept:
        return None
    f = rs[0]
    if (f.domain, f.op_type) not in POINTWISE_OPS or f.input[0] != name or len(f.output) != 1:
        return None
    return f if all(i in inits for i in f.input[1:] if i) else None


def _subgraph_reads(graph) -> set:
    """Every name read inside the If/Loop bodies of ``graph``'s nodes."""
    used: set = set()
    for n in graph.node:
        for a in n.attribute:
            for sub in [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs):
                used |= _inputs_used(sub)
    return used


def _copy_node(node, first_input: str, name: str, nodes: list) -> str:
    """Append a copy of ``node`` reading ``first_input`` (other inputs and attributes as they are); its output."""
    c = onnx.NodeProto()
    c.CopyFrom(node)
    c.input[0], c.name = first_input, name
    del c.output[:]
    c.output.append(f"{name}_out")
    nodes.append(c)
    return c.output[0]


def _interleave(phases: list, s: int, out: str, base: str, nodes: list, inits: list) -> None:
    """Nodes writing ``out`` [N,C,s·H,s·W] from ``phases`` [N,C,H,W] in DCR order (phase rh·s + rw)."""

    def const(name, values):
        inits.append(numpy_helper.from_array(np.asarray(values, dtype=np.int64), f"{base}_{name}"))
        return f"{base}_{name}"

    def node(op, inputs, name, **attrs):
        nodes.append(helper.make_node(op, inputs, [f"{base}_{name}"], name=f"{base}_{name}", **attrs))
        return f"{base}_{name}"

    axis = const("axis3", [3])
    rows = [node("Unsqueeze", [phases[rh * s + rw], axis], f"u{rh}{rw}") for rw in range(s) for rh in range(s)]
    cat = node("Concat", rows, "rows", axis=3)  # [N, C, H, (rw, rh), W]
    shape = node("Shape", [phases[0]], "shape")
    sw = node("Mul", [node("Slice", [shape, const("three", [3]), const("four", [4])], "w"), const("s", [s])], "sw")
    view = node("Reshape", [cat, node("Concat", [const("lead", [-1, s]), sw], "view_shape", axis=0)], "view")
    cols = node("Transpose", [view], "cols", perm=[0, 2, 1])  # [N·C·H, (rh, W), rw]
    nodes.append(
        helper.make_node(
            "Reshape",
            [cols, node("Mul", [shape, const("scale", [1, 1, s, s])], "out_shape")],
            [out],
            name=f"{base}_out",
        )
    )


def _inputs_used(graph) -> set:
    """Every name read by a node of ``graph`` or of its subgraphs (If/Loop bodies), and the graph outputs."""
    return {o.name for o in graph.output} | {i for n in graph.node for i in n.input} | _subgraph_reads(graph)


def _drop_unused(model: onnx.ModelProto, names: set) -> None:
    """Remove the initializers in ``names`` (the rewritten nodes' weights) that nothing reads any more."""
    used = _inputs_used(model.graph)
    keep = [t for t in model.graph.initializer if t.name in used or t.name not in names]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


def _ranks(model: onnx.ModelProto) -> dict:
    """tensor name -> rank from ONNX shape inference; empty where inference fails (custom ops without shape
    functions, ...), so that only axis=-1 then qualifies."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model).graph
    except Exception:
        return {}
    return {
        v.name: len(v.type.tensor_type.shape.dim)
        for v in [*inferred.value_info, *inferred.input, *inferred.output]
        if v.type.tensor_type.HasField("shape")
    }


def _last_axis(name: str, axis: int, ranks: dict) -> bool:
    """Whether ``axis`` of tensor ``name`` is its last axis (rank from shape inference; unknown rank: only -1)."""
    r = ranks.get(name)
    return axis == -1 or (r is not None and axis == r - 1)


def _split_sizes(split, inits: dict, n: int) -> list[int] | None:
    """Sizes of a Split of an axis of length ``n``: its ``split`` input, else ``num_outputs`` parts (ONNX rule:
    ceil(n / parts) each, the last one smaller); None when the sizes are not constant."""
    if len(split.input) > 1 and split.input[1]:
        sizes = inits.get(split.input[1])
        return None if sizes is None else [int(v) for v in sizes.reshape(-1)]
    a = _attrs(split)
    if "split" in a:
        return [int(v) for v in a["split"]]
    parts = int(a.get("num_outputs", len(split.output)))
    step = -(-n // parts)
    return [min(step, n - i * step) for i in range(parts)]


def split_projection(model: onnx.ModelProto) -> int:
    """Rewrite every top-level MatMul (+ bias Add) → Split-of-the-last-axis into one MatMul per part, in place;
    returns how many were rewritten."""
    g = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    readers = _readers(g)
    kept = {o.name for o in g.output} | _subgraph_reads(g)
    ranks: dict | None = None  # tensor name -> rank, inferred once, when a Split names its axis by index

    def is_last_axis(name: str, axis: int) -> bool:
        nonlocal ranks
        if axis != -1 and ranks is None:
            ranks = _ranks(model)
        return _last_axis(name, axis, ranks or {})

    def only_reader(name: str, op: str):
        rs = readers.get(name, [])
        ok = len(rs) == 1 and name not in kept and rs[0].op_type == op and rs[0].domain in ("", "ai.onnx")
        return rs[0] if ok else None

    plans = {}  # id(MatMul) -> (MatMul, Add or None, Split, weight, bias, sizes)
    for mm in g.node:
        if mm.op_type != "MatMul" or mm.domain not in ("", "ai.onnx") or mm.input[1] not in inits:
            continue
        w = inits[mm.input[1]]
        if w.ndim != 2:
            continue
        add, bias, src = None, None, mm.output[0]
        nxt = readers.get(src, [])
        if len(nxt) == 1 and nxt[0].op_type == "Add" and src not in kept:
            add = nxt[0]
            other = add.input[1] if add.input[0] == src else add.input[0]
            bias = inits.get(other)
            if bias is None or bias.shape != (w.shape[1],):
                continue
            src = add.output[0]
        split = only_reader(src, "Split")
        if split is None or not is_last_axis(src, int(_attrs(split).get("axis", 0))):
            continue
        sizes = _split_sizes(split, inits, w.shape[1])
        if sizes is None or sum(sizes) != w.shape[1] or len(sizes) != len(split.output) or min(sizes) < 1:
            continue
        plans[id(mm)] = (mm, add, split, w, bias, sizes)
    if not plans:
        return 0
    dropped = {id(n) for p in plans.values() for n in p[1:3] if n is not None}
    new_nodes, new_inits, replaced = [], [], set()
    for node in g.node:
        if id(node) in dropped:
            continue
        if id(node) not in plans:
            new_nodes.append(node)
            continue
        mm, add, split, w, bias, sizes = plans[id(node)]
        replaced.update([mm.input[1], *(add.input if add is not None else [])])
        base = (mm.name or mm.output[0]).replace("/", "_") + "_split"
        start = 0
        for i, (n, out) in enumerate(zip(sizes, split.output)):
            wname = f"{base}_w{i}"
            new_inits.append(numpy_helper.from_array(np.ascontiguousarray(w[:, start : start + n]), wname))
            prod = out if add is None else f"{base}_mm{i}"
            new_nodes.append(helper.make_node("MatMul", [mm.input[0], wname], [prod], name=f"{base}_mm{i}"))
            if add is not None:
                bname = f"{base}_b{i}"
                new_inits.append(numpy_helper.from_array(np.ascontiguousarray(bias[start : start + n]), bname))
                new_nodes.append(helper.make_node("Add", [prod, bname], [out], name=f"{base}_add{i}"))
            start += n
    del g.node[:]
    g.node.extend(new_nodes)
    g.initializer.extend(new_inits)
    _drop_unused(model, replaced)
    return len(plans)


def optimize_reconstruction(
    model: onnx.ModelProto, form: str = DEFAULT_FORM, min_out_channels: int = MIN_OUT_CHANNELS
) -> dict:
    """Apply the reconstruction-graph passes to ``model`` in place; records them in its metadata.

    Refuses a graph whose metadata marks it parse-critical (those must keep their exported arithmetic).
    """
    meta = {p.key: p.value for p in model.metadata_props}
    if meta.get("lictrt.parse_critical") == "true":
        raise PassError(f"graph '{meta.get('lictrt.graph', '?')}' is parse-critical: graph passes are not allowed")
    n = subpixel_conv_transpose(model, form, min_out_channels)
    m = split_projection(model)
    applied = {"subpixel_conv_transpose": n, "form": form, "split_projection": m}
    text = ",".join(t for c, t in ((n, f"subpixel_conv_transpose:{form}:{n}"), (m, f"split_projection:{m}")) if c)
    if text:
        for p in model.metadata_props:
            if p.key == METADATA_KEY:
                p.value = f"{p.value},{text}"
                break
        else:
            model.metadata_props.add(key=METADATA_KEY, value=text)
    return applied
