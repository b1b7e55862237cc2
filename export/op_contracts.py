"""The lictrt custom-op contracts: what each op computes and what its ONNX node / TensorRT plugin carry.

This is the data half of the custom-op registry (``export/registry.py`` adds the torch op, the ONNX node
emitter and the ONNX function body).  The TensorRT plugins in ``trt_plugins/<op>/`` must expose exactly
these names, versions, namespace and plugin fields; ``tests/trt_plugins/test_trt_plugins.py`` ties them together.

Every node is in ONNX domain ``lictrt`` (version 1) and carries the string attributes
``plugin_namespace="lictrt"`` and ``plugin_version="2"`` (read by TensorRT's ONNX parser, never a plugin
field) plus the typed op attributes below, which are the plugin fields.
"""

from __future__ import annotations

from dataclasses import dataclass

DOMAIN = "lictrt"
DOMAIN_VERSION = 1
PLUGIN_NAMESPACE = "lictrt"
PLUGIN_VERSION = "2"  # "2": SelectiveScan2D takes dts and dt_weight (dt_proj inside the op)


@dataclass(frozen=True)
class Field:
    name: str
    onnx_type: str  # "INT" or "FLOAT" (ONNX AttributeProto type name)
    default: int | float

    @property
    def trt_type(self) -> str:
        """The PluginFieldType TensorRT's ONNX parser produces for this attribute type."""
        return {"INT": "INT32", "FLOAT": "FLOAT32"}[self.onnx_type]


@dataclass(frozen=True)
class OpContract:
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    fields: tuple[Field, ...]
    doc: str


GENERALIZED_DIVISIVE_NORM = OpContract(
    name="GeneralizedDivisiveNorm",
    inputs=("x", "gamma", "beta"),
    outputs=("y",),
    fields=(Field("inverse", "INT", 0),),
    doc=(
        "x[B,C,H,W], gamma[C,C] (effective, reparametrization folded), beta[C] (effective).\n"
        "  norm[b,i,h,w] = beta[i] + sum_j gamma[i,j] * x[b,j,h,w]^2   (always fp32)\n"
        "  y = x / sqrt(norm)  (inverse=0, GDN)   or   y = x * sqrt(norm)  (inverse=1, IGDN)\n"
        "x and y may be fp32 or fp16; gamma and beta are fp32."
    ),
)

SELECTIVE_SCAN_2D = OpContract(
    name="SelectiveScan2D",
    inputs=("u", "dts", "dt_weight", "A", "Bs", "Cs", "D", "delta_bias"),
    outputs=("y",),
    fields=(Field("delta_softplus", "INT", 1),),
    doc=(
        "The SS2D core of VMamba v2, with every tensor in natural (row-major) layout and K=4 directions.\n"
        "  u[B,Di,H,W]            input, shared by all directions\n"
        "  dts[B,K,R,H,W]         low-rank step sizes (x_proj rows 0..R-1 of direction k), before dt_proj\n"
        "  dt_weight[K*Di,R]      dt_proj weights (fp32); channel k*Di+c belongs to direction k\n"
        "  A[K*Di,N]              A = -exp(A_log) (fp32, folded at export)\n"
        "  Bs[B,K,N,H,W], Cs[B,K,N,H,W]   per-direction input/output projections\n"
        "  D[K*Di], delta_bias[K*Di]      fp32\n"
        "  y[B,Di,H,W]            sum over k of direction k's scan output mapped back to natural positions\n"
        "Direction k visits natural positions p(t), t = 0..L-1, L = H*W:\n"
        "  k=0 row-major p = t;   k=1 column-major p = (t % H)*W + t // H;\n"
        "  k=2 = k=0 reversed (t -> L-1-t);   k=3 = k=1 reversed.\n"
        "Recurrence per batch b, direction k, channel c (ch = k*Di + c), state n, h_{-1} = 0, fp32:\n"
        "  delta = sum_r dt_weight[ch,r] * dts[b,k,r,p]      (dt_proj, inside the op: no [B,K*Di,H,W] tensor)\n"
        "  dt  = softplus(delta + delta_bias[ch])   (no softplus if delta_softplus=0)\n"
        "  h_t[n] = exp(dt*A[ch,n]) * h_{t-1}[n] + dt * Bs[b,k,n,p] * u[b,c,p]\n"
        "  y[b,c,p] += sum_n Cs[b,k,n,p] * h_t[n] + D[ch] * u[b,c,p]"
    ),
)

OPS: dict[str, OpContract] = {op.name: op for op in (GENERALIZED_DIVISIVE_NORM, SELECTIVE_SCAN_2D)}
