"""The lictrt custom-op registry: one place per op.

For every op of ``export/op_contracts.py`` this module holds
  * the torch custom op ``torch.ops.lictrt.<op>`` (defined in ``train.layers.native_scan``: reference kernels,
    ``register_fake``, autograd of the scan, the native CPU kernels),
  * the ONNX node emitter used while exporting (dynamo exporter, ``torch.onnx.ops.symbolic``): one node in
    domain ``lictrt`` with ``plugin_namespace``/``plugin_version`` and the typed contract fields,
  * the model-local ONNX function body in standard ops (what ONNX Runtime runs and what TensorRT inlines when
    no plugin library is loaded),
  * the TensorRT plugin name and fields (straight from the contract).

``lictrt_ops(*models)`` is the context manager that makes models emit the custom nodes during export.
``add_function_bodies(model_proto)`` appends the bodies of every lictrt op the graph uses.

Selective-scan body design (dynamic L, no Loop/Scan)
----------------------------------------------------
The recurrence h_t = exp(g_t)·h_{t-1} + x_t (g_t = Δ_t·A ≤ 0) is a first-order linear scan. The body computes it
hierarchically with a fixed number of levels, so it works for any (dynamic) L with static control flow:

  level(g, x):  pad the scan axis to a multiple of Q (g=0, x=0 at the end: causal, so harmless), view as
                [nb, Q] blocks.  Inside a block S = CumSum(g), W[t,s] = exp(S_t − S_s) for s ≤ t — the upper
                triangle is replaced by −1e4 *before* Exp, so nothing overflows however negative A is —
                h_local = W @ x (blocks are a batch dimension, all blocks at once).
                Each block is then one step of a *shorter* scan over blocks: decay G_j = S_{Q−1}, input
                X_j = h_local[j, Q−1].  Solving that scan (recursively, same routine) gives every block's end
                state H_j; block j adds exp(S_t)·H_{j−1} to its local states.
  base:         after ``SCAN_LEVELS`` levels the remaining length is L/Q^levels: one masked full matrix
                (mask from Range, dynamic size).

Work is O(L·Q) per (batch, direction, channel, state).  Q=4 with 8 levels was measured best on ORT CPU
(L=24576, P=512 rows: Q=4 6.5 s / 1.7 GB peak, Q=8 6.7 s / 2.1 GB, Q=16 11.6 s / 3.3 GB, Q=2 21 s / 1.7 GB).
The whole state path runs in fp32 (inputs are Cast to fp32 on entry, the output is CastLike'd back).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper

from export.op_contracts import (
    DOMAIN,
    DOMAIN_VERSION,
    GENERALIZED_DIVISIVE_NORM,
    OPS,
    PLUGIN_NAMESPACE,
    PLUGIN_VERSION,
    SELECTIVE_SCAN_2D,
    OpContract,
)
from train.layers import gdn as _gdn
from train.layers import native_scan as _torch_ops  # noqa: F401  (defines torch.ops.lictrt.*)
from train.layers import ss2d as _ss2d

SCAN_CHUNK = 4  # Q: block length of every level of the scan body
SCAN_LEVELS = 8  # levels before the dense base case of length L / Q**levels (L up to ~Q**(2*levels+1) cheaply)
_NEG = -1.0e4  # value put above the diagonal before Exp (exp(-1e4) == 0 in fp32)


class RegistryError(RuntimeError):
    """Bad use of the custom-op registry (unknown op, unknown opset...)."""


def plugin_fields(op: str) -> list[tuple[str, str]]:
    """[(field name, TensorRT PluginFieldType name)] the plugin creator for ``op`` receives."""
    return [(f.name, f.trt_type) for f in _contract(op).fields]


def _contract(op: str) -> OpContract:
    try:
        return OPS[op]
    except KeyError:
        raise RegistryError(f"unknown lictrt op {op!r} (known: {', '.join(OPS)})") from None


def node_attrs(op: str, **fields) -> dict:
    """Attributes of the ONNX node for ``op``: plugin namespace/version plus every typed contract field."""
    c = _contract(op)
    attrs: dict = {"plugin_namespace": PLUGIN_NAMESPACE, "plugin_version": PLUGIN_VERSION}
    for f in c.fields:
        v = fields.pop(f.name, f.default)
        attrs[f.name] = int(v) if f.onnx_type == "INT" else float(v)
    if fields:
        raise RegistryError(f"{op}: unknown fields {sorted(fields)}")
    return attrs


# ----------------------------------------------------------------------------------------------------------------
# Eager references (also the torch custom ops' implementations)
# ----------------------------------------------------------------------------------------------------------------


# The references live with the layers (train/layers/gdn.py, train/layers/ss2d.py); re-exported for callers here.
gdn_reference = _gdn.gdn_reference
selective_scan_reference = _ss2d.selective_scan_2d_reference


# ----------------------------------------------------------------------------------------------------------------
# ONNX node emission (inside torch.onnx.export(dynamo=True))
# ----------------------------------------------------------------------------------------------------------------


def generalized_divisive_norm(x, gamma, beta, inverse: int = 0) -> torch.Tensor:
    """GDN as one ``lictrt::GeneralizedDivisiveNorm`` node while exporting, the torch custom op otherwise."""
    gamma, beta = gamma.float(), beta.float()
    if torch.onnx.is_in_onnx_export():
        return torch.onnx.ops.symbolic(
            f"{DOMAIN}::{GENERALIZED_DIVISIVE_NORM.name}",
            (x, gamma, beta),
            node_attrs(GENERALIZED_DIVISIVE_NORM.name, inverse=inverse),
            dtype=x.dtype,
            shape=x.shape,
            version=DOMAIN_VERSION,
        )
    return torch.ops.lictrt.generalized_divisive_norm(x, gamma, beta, int(inverse))


def selective_scan_2d(u, dts, dt_weight, A, Bs, Cs, D, delta_bias, delta_softplus: bool = True) -> torch.Tensor:
    """SS2D core as one ``lictrt::SelectiveScan2D`` node while exporting, the torch custom op otherwise."""
    dt_weight, A, D = dt_weight.float(), A.float(), D.float()
    delta_bias = delta_bias.float() if delta_bias is not None else torch.zeros_like(D)
    if torch.onnx.is_in_onnx_export():
        return torch.onnx.ops.symbolic(
            f"{DOMAIN}::{SELECTIVE_SCAN_2D.name}",
            (u, dts, dt_weight, A, Bs, Cs, D, delta_bias),
            node_attrs(SELECTIVE_SCAN_2D.name, delta_softplus=int(bool(delta_softplus))),
            dtype=u.dtype,
            shape=u.shape,
            version=DOMAIN_VERSION,
        )
    return torch.ops.lictrt.selective_scan_2d(u, dts, dt_weight, A, Bs, Cs, D, delta_bias, int(bool(delta_softplus)))


# ----------------------------------------------------------------------------------------------------------------
# lictrt_ops(): patch models so export emits the custom nodes
# ----------------------------------------------------------------------------------------------------------------


def _gdn_forward(self, x):
    """Replacement for compressai.layers.GDN.forward: folded constants + one custom node."""
    gamma = getattr(self, "_lictrt_gamma", None)
    beta = getattr(self, "_lictrt_beta", None)
    if gamma is None:  # module not pre-folded: fold here (traced, still correct)
        beta = self.beta_reparam(self.beta)
        gamma = self.gamma_reparam(self.gamma)
    return generalized_divisive_norm(x, gamma, beta, int(bool(self.inverse)))


def _fold_gdn(module: torch.nn.Module) -> list[torch.nn.Module]:
    from compressai.layers import GDN

    folded = []
    for m in module.modules():
        if isinstance(m, GDN) and not hasattr(m, "_lictrt_gamma"):
            with torch.no_grad():
                C = m.beta.shape[0]
                gamma = m.gamma_reparam(m.gamma).detach().float().reshape(C, C).clone()
                beta = m.beta_reparam(m.beta).detach().float().clone()
            m.register_buffer("_lictrt_gamma", gamma, persistent=False)
            m.register_buffer("_lictrt_beta", beta, persistent=False)
            folded.append(m)
    return folded


@contextlib.contextmanager
def lictrt_ops(*modules: torch.nn.Module) -> Iterator[None]:
    """Within the block, GDN layers and ``train.layers.ss2d.selective_scan_2d`` go through the lictrt ops.

    GDN reparametrizations of the given ``modules`` are folded into constant buffers (so the graph carries
    effective gamma/beta initializers).  Everything is restored on exit, also on error.
    """
    from compressai.layers import GDN

    saved_forward = GDN.forward
    folded: list[torch.nn.Module] = []
    ss2d = None
    saved_scan = None
    try:
        import train.layers.ss2d as ss2d  # noqa: F811  (optional: exists once the SSM layers are in)

        saved_scan = ss2d.selective_scan_2d
    except ImportError:
        ss2d = None
    try:
        for mod in modules:
            folded += _fold_gdn(mod)
        GDN.forward = _gdn_forward
        if ss2d is not None:
            ss2d.selective_scan_2d = selective_scan_2d
        yield
    finally:
        GDN.forward = saved_forward
        if ss2d is not None:
            ss2d.selective_scan_2d = saved_scan
        for m in folded:
            del m._buffers["_lictrt_gamma"], m._buffers["_lictrt_beta"]


# ----------------------------------------------------------------------------------------------------------------
# ONNX function bodies
# ----------------------------------------------------------------------------------------------------------------


class _Body:
    """Tiny node builder for FunctionProto bodies (no initializers in functions: constants are nodes)."""

    def __init__(self, prefix: str):
        self.nodes: list[onnx.NodeProto] = []
        self.prefix = prefix
        self.n = 0

    def _name(self) -> str:
        self.n += 1
        return f"{self.prefix}_{self.n}"

    def op(self, op_type: str, *inputs: str, n_out: int = 1, **attrs):
        outs = [self._name() for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, **attrs))
        return outs[0] if n_out == 1 else outs

    def const(self, value, dtype=np.int64) -> str:
        arr = np.asarray(value, dtype=dtype)
        return self.op(
            "Constant",
            value=helper.make_tensor(
                self._name() + "_v", helper.np_dtype_to_tensor_dtype(arr.dtype), arr.shape, arr.flatten().tolist()
            ),
        )

    def attr_const(self, attr: str) -> str:
        """Constant holding the int value of the function attribute ``attr``."""
        a = onnx.AttributeProto()
        a.name, a.ref_attr_name, a.type = "value_int", attr, onnx.AttributeProto.INT
        out = self._name()
        node = helper.make_node("Constant", [], [out])
        node.attribute.append(a)
        self.nodes.append(node)
        return out


def _gdn_body(opset: int) -> onnx.FunctionProto:
    c = GENERALIZED_DIVISIVE_NORM
    b = _Body("gdn")
    xf = b.op("Cast", "x", to=TensorProto.FLOAT)
    x2 = b.op("Mul", xf, xf)
    w = b.op("Unsqueeze", "gamma", b.const([2, 3]))
    norm = b.op("Conv", x2, w, "beta")
    s = b.op("Sqrt", norm)
    inv = b.op("Cast", b.attr_const("inverse"), to=TensorProto.BOOL)
    # If, not Where: the condition is a constant after inlining, so runtimes fold the If to the one branch
    # needed (onnxruntime's constant folding does; Where computed both and cost ~8% of a GDN decoder's synthesis)
    y = b.op("If", inv, then_branch=_branch("igdn", "Mul", xf, s), else_branch=_branch("gdn", "Div", xf, s))
    b.nodes.append(helper.make_node("CastLike", [y, "x"], ["y"]))
    return _function(c, b, opset)


def _branch(name: str, op_type: str, a: str, b: str) -> onnx.GraphProto:
    """An If branch computing ``op_type(a, b)`` from the enclosing body's values."""
    out = f"{name}_out"
    return helper.make_graph(
        [helper.make_node(op_type, [a, b], [out])],
        name,
        [],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
    )


def _function(c: OpContract, b: _Body, opset: int) -> onnx.FunctionProto:
    defaults = [helper.make_attribute(f.name, f.default) for f in c.fields]
    return helper.make_function(
        DOMAIN,
        c.name,
        list(c.inputs),
        list(c.outputs),
        b.nodes,
        [helper.make_opsetid("", opset)],
        attribute_protos=defaults,
        doc_string=c.doc,
    )


def _reverse_last(b: _Body, x: str) -> str:
    big = np.iinfo(np.int64).max
    return b.op("Slice", x, b.const([-1]), b.const([-big]), b.const([-1]), b.const([-1]))


def _to_sequences(b: _Body, x5: str) -> str:
    """[B,4,C,H,W] (slice k for direction k) -> [B,4,C,L] in each direction's visiting order."""
    x0, x1, x2, x3 = b.op("Split", x5, b.const([1, 1, 1, 1]), axis=1, n_out=4)
    flat = b.const([0, 0, 0, -1])
    s0 = b.op("Reshape", b.op("Identity", x0), flat)
    s1 = b.op("Reshape", b.op("Transpose", x1, perm=[0, 1, 2, 4, 3]), flat)
    s2 = _reverse_last(b, b.op("Reshape", x2, flat))
    s3 = _reverse_last(b, b.op("Reshape", b.op("Transpose", x3, perm=[0, 1, 2, 4, 3]), flat))
    return b.op("Concat", s0, s1, s2, s3, axis=1)


def _from_sequences(b: _Body, y4: str, shape_bdhw: str) -> str:
    """[B,4,C,L] per-direction outputs -> Σ_k mapped back to natural [B,C,H,W]."""
    y0, y1, y2, y3 = b.op("Split", y4, b.const([1, 1, 1, 1]), axis=1, n_out=4)
    hw = b.op("Slice", shape_bdhw, b.const([2]), b.const([4]))  # [H, W]
    wh = b.op("Slice", shape_bdhw, b.const([3]), b.const([1]), b.const([0]), b.const([-1]))  # [W, H]
    bc = b.op("Slice", shape_bdhw, b.const([0]), b.const([2]))
    shp_hw = b.op("Concat", bc, hw, axis=0)
    shp_wh = b.op("Concat", bc, wh, axis=0)
    sq = b.const([1])
    r0 = b.op("Add", b.op("Squeeze", y0, sq), b.op("Squeeze", _reverse_last(b, y2), sq))  # [B,C,L] row-major
    r1 = b.op("Add", b.op("Squeeze", y1, sq), b.op("Squeeze", _reverse_last(b, y3), sq))  # column-major
    n0 = b.op("Reshape", r0, shp_hw)
    n1 = b.op("Transpose", b.op("Reshape", r1, shp_wh), perm=[0, 1, 3, 2])
    return b.op("Add", n0, n1)


def _scan_level(b: _Body, g: str, x: str, level: int) -> str:
    """Inclusive linear scan h_t = exp(g_t) h_{t-1} + x_t over the last axis of rank-5 g, x (fp32)."""
    n = b.op("Shape", g, start=-1)  # [1]
    if level == 0:  # dense base case: one block of the full (short) remaining length
        S = b.op("CumSum", g, b.const(-1))
        diff = b.op("Sub", b.op("Unsqueeze", S, b.const([-1])), b.op("Unsqueeze", S, b.const([-2])))  # [..,t,s]
        r = b.op("Range", b.const(0), b.op("Squeeze", n, b.const([0])), b.const(1))
        mask = b.op("GreaterOrEqual", b.op("Unsqueeze", r, b.const([1])), b.op("Unsqueeze", r, b.const([0])))
        Wt = b.op("Exp", b.op("Where", mask, diff, b.const(_NEG, np.float32)))
        return b.op("Squeeze", b.op("MatMul", Wt, b.op("Unsqueeze", x, b.const([-1]))), b.const([-1]))
    Q = SCAN_CHUNK
    qc = b.const([Q])
    pad_n = b.op("Mod", b.op("Sub", qc, b.op("Mod", n, qc)), qc)  # [1]
    pads = b.op("Concat", b.const([0] * 9), pad_n, axis=0)  # rank 5: begins then ends
    blocks = b.const([0, 0, 0, 0, -1, Q])
    gp = b.op("Reshape", b.op("Pad", g, pads), blocks)  # [..., nb, Q]
    xp = b.op("Reshape", b.op("Pad", x, pads), blocks)
    S = b.op("CumSum", gp, b.const(-1))
    diff = b.op("Sub", b.op("Unsqueeze", S, b.const([-1])), b.op("Unsqueeze", S, b.const([-2])))  # [...,nb,Q,Q]
    tri = np.tril(np.ones((Q, Q), dtype=bool))
    Wt = b.op("Exp", b.op("Where", b.const(tri, np.bool_), diff, b.const(_NEG, np.float32)))
    h_loc = b.op("Squeeze", b.op("MatMul", Wt, b.op("Unsqueeze", xp, b.const([-1]))), b.const([-1]))  # [...,nb,Q]
    last = [b.const([Q - 1]), b.const([Q]), b.const([-1])]
    G = b.op("Squeeze", b.op("Slice", S, *last), b.const([-1]))  # [..., nb] block decay
    X = b.op("Squeeze", b.op("Slice", h_loc, *last), b.const([-1]))  # [..., nb] block-local end state
    H = _scan_level(b, G, X, level - 1)  # block end states
    H_prev = b.op(
        "Slice", b.op("Pad", H, b.const([0, 0, 0, 0, 1, 0, 0, 0, 0, 0])), b.const([0]), b.const([-1]), b.const([-1])
    )  # state entering each block
    h = b.op("Add", h_loc, b.op("Mul", b.op("Exp", S), b.op("Unsqueeze", H_prev, b.const([-1]))))
    h = b.op("Reshape", h, b.const([0, 0, 0, 0, -1]))
    return b.op("Slice", h, b.const([0]), n, b.const([-1]))


def _scan_body(opset: int) -> onnx.FunctionProto:
    c = SELECTIVE_SCAN_2D
    b = _Body("ss2d")
    f32 = TensorProto.FLOAT
    u = b.op("Cast", "u", to=f32)
    shape = b.op("Shape", u)  # [B, Di, H, W]
    b0 = b.op("Slice", shape, b.const([0]), b.const([1]))
    hw = b.op("Slice", shape, b.const([2]), b.const([4]))
    # dt_proj: [4,Di,R] @ [B,4,R,L] -> [B,4,Di,L], then + delta_bias, softplus
    dts = b.op("Reshape", b.op("Cast", "dts", to=f32), b.op("Concat", b0, b.const([4, 0, -1]), axis=0))
    rank = b.op("Shape", "dt_weight", start=1)  # [R]
    w = b.op("Reshape", b.op("Cast", "dt_weight", to=f32), b.op("Concat", b.const([4, -1]), rank, axis=0))
    delta = b.op("MatMul", w, dts)
    bias = b.op("Reshape", b.op("Cast", "delta_bias", to=f32), b.const([4, -1, 1]))
    dt = b.op("Add", delta, bias)
    sp = b.op("Cast", b.attr_const("delta_softplus"), to=TensorProto.BOOL)
    dt = b.op("Where", sp, b.op("Softplus", dt), dt)
    dt5 = b.op("Reshape", dt, b.op("Concat", b0, b.const([4, -1]), hw, axis=0))  # [B,4,Di,H,W]
    dtu5 = b.op("Mul", dt5, b.op("Unsqueeze", u, b.const([1])))
    dt_s = _to_sequences(b, dt5)  # [B,4,Di,L]
    dtu_s = _to_sequences(b, dtu5)
    B_s = _to_sequences(b, b.op("Cast", "Bs", to=f32))  # [B,4,N,L]
    C_s = _to_sequences(b, b.op("Cast", "Cs", to=f32))
    n_state = b.op("Shape", "A", start=1)
    A = b.op(
        "Reshape", b.op("Cast", "A", to=f32), b.op("Concat", b.const([1, 4, -1]), n_state, b.const([1]), axis=0)
    )  # [1,4,Di,N,1]
    g = b.op("Mul", b.op("Unsqueeze", dt_s, b.const([3])), A)  # [B,4,Di,N,L]  log-decay <= 0
    x = b.op("Mul", b.op("Unsqueeze", dtu_s, b.const([3])), b.op("Unsqueeze", B_s, b.const([2])))
    h = _scan_level(b, g, x, SCAN_LEVELS)
    y_s = b.op("ReduceSum", b.op("Mul", h, b.op("Unsqueeze", C_s, b.const([2]))), b.const([3]), keepdims=0)
    y = _from_sequences(b, y_s, shape)
    Dsum = b.op("ReduceSum", b.op("Reshape", b.op("Cast", "D", to=f32), b.const([4, -1])), b.const([0]), keepdims=0)
    y = b.op("Add", y, b.op("Mul", b.op("Unsqueeze", Dsum, b.const([1, 2])), u))
    b.nodes.append(helper.make_node("CastLike", [y, "u"], ["y"]))
    return _function(c, b, opset)


_BODIES = {GENERALIZED_DIVISIVE_NORM.name: _gdn_body, SELECTIVE_SCAN_2D.name: _scan_body}


def function_body(op: str, opset: int) -> onnx.FunctionProto:
    """The model-local FunctionProto for ``op``, its default-domain opset = ``opset`` (must equal the model's)."""
    _contract(op)
    if opset < 18:
        raise RegistryError(f"opset {opset} too old for the lictrt bodies (need >= 18)")
    return _BODIES[op](opset)


def model_opset(model: onnx.ModelProto) -> int:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    raise RegistryError("model has no default-domain opset import")


def used_ops(model: onnx.ModelProto) -> list[str]:
    """lictrt op types used by the main graph (sorted)."""
    return sorted({n.op_type for n in model.graph.node if n.domain == DOMAIN})


def add_function_bodies(model: onnx.ModelProto) -> onnx.ModelProto:
    """Append the FunctionProto of every lictrt op in ``model`` (replacing stale ones); set the domain import."""
    opset = model_opset(model)
    ops = used_ops(model)
    keep = [f for f in model.functions if not (f.domain == DOMAIN and f.name in ops)]
    del model.functions[:]
    model.functions.extend(keep + [function_body(op, opset) for op in ops])
    if ops and not any(o.domain == DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(DOMAIN, DOMAIN_VERSION))
    return model


def load_library(path: str, trt_module=None):
    """Load the lictrt TensorRT plugin library (dynamic ``getCreators`` form) into ``trt_module``'s registry."""
    import os

    if not os.path.isfile(path):
        raise RegistryError(f"plugin library not found: {path}")
    if trt_module is None:
        import tensorrt as trt_module  # full TensorRT only (RTX has no plugins)
    handle = trt_module.get_plugin_registry().load_library(path)
    if handle is None:
        raise RegistryError(f"TensorRT could not load plugin library {path}")
    return handle
