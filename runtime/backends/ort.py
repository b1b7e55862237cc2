"""ONNX Runtime backend, and the pinned deterministic parse path.

The pinned path (``OrtBackend(bundle, pinned=True)``) is what every parse-critical graph runs on by default,
on both encoder and decoder: CPU execution provider, fp32 graphs, ``intra_op_num_threads=1``,
``inter_op_num_threads=1``, sequential execution, graph optimization level ``ORT_ENABLE_BASIC`` (constant
folding and semantics-preserving fusions only; no layout transforms such as NCHWc, whose blocked kernels
reorder sums), no memory-pattern or arena tricks that could depend on the previous input size.

Reconstruction-only graphs (``pinned=False``) may use any options: ``ORT_ENABLE_ALL`` (layout transforms to
NCHWc included) and ``threads`` intra-op threads; their float results differ in the last bits, which only the
image sees (benchmarks/kodak_decode.py measures the options).

Every session registers the lictrt native CPU ops (``runtime.native_ops``: ``lictrt::SelectiveScan2D`` runs as one
kernel instead of its ONNX function body); without the library it warns once and runs the bodies. The native
kernel's results do not depend on the thread count or on AVX2, but differ in the last bits from the body's, so
an encoder and a decoder of one stream must agree on having it (for graphs that hold the op).
"""

from __future__ import annotations

import threading

import numpy as np

from .. import _lictrt, native_ops
from . import BackendError

OPS_VERSION = _lictrt.OPS_VERSION  # plugin_version of the lictrt ops the kernels implement (export/op_contracts.py)
PINNED_OPT_LEVEL = "ORT_ENABLE_BASIC"
RECON_OPT_LEVEL = "ORT_ENABLE_ALL"
OPT_LEVELS = ("ORT_DISABLE_ALL", "ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED", "ORT_ENABLE_ALL")
_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
}


def _ort():
    try:
        import onnxruntime
    except ImportError as e:  # pragma: no cover - onnxruntime is a hard dependency
        raise BackendError(f"onnxruntime is not installed: {e}") from None
    return onnxruntime


def pinned_session_options():
    """SessionOptions of the deterministic parse path (see module docstring)."""
    ort = _ort()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, PINNED_OPT_LEVEL)
    so.enable_mem_pattern = False
    so.log_severity_level = 3
    so.add_session_config_entry("session.set_denormal_as_zero", "0")
    native_ops.register_onnxruntime(so)
    return so


def _other_ops_versions(path) -> list[str]:
    """The ``plugin_version`` values of the lictrt nodes in ONNX file ``path`` other than :data:`OPS_VERSION` (a graph
    exported before the ops' contract changed); [] when there are none or the file cannot be read. The C++
    runtime's reader (``lictrt::lictrt_op_versions``), so both runtimes name such a graph alike."""
    return [v for v in _lictrt.lictrt_op_versions(str(path)) if v != OPS_VERSION]


class OrtBackend:
    """Runs a bundle's ONNX graphs with ONNX Runtime; sessions are created on first use and shared by threads."""

    def __init__(
        self,
        bundle,
        device: str | None = None,
        threads: int | None = None,
        pinned: bool = False,
        opt_level: str | None = None,
    ):
        ort = _ort()
        self.bundle = bundle
        self.pinned = pinned
        if opt_level is not None and (pinned or opt_level not in OPT_LEVELS):
            raise BackendError(
                f"opt_level {opt_level!r}: one of {', '.join(OPT_LEVELS)}, and only for "
                "reconstruction graphs (the pinned path is fixed)"
            )
        self.opt_level = opt_level or RECON_OPT_LEVEL
        device = (device or "cpu").lower()
        if pinned and device != "cpu":
            raise BackendError("the pinned parse path runs on CPU only")
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise BackendError(
                    "device='cuda' asked, but this onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)"
                )
            dev_id = int(device.split(":")[1]) if ":" in device else 0
            self.providers = [("CUDAExecutionProvider", {"device_id": dev_id}), "CPUExecutionProvider"]
        elif device == "cpu":
            self.providers = ["CPUExecutionProvider"]
        else:
            raise BackendError(f"unknown device '{device}' (cpu, cuda, cuda:N)")
        self.device = device
        self.threads = threads
        self.name = "onnxruntime-cpu-pinned" if pinned else f"onnxruntime-{device}"
        self._sessions: dict = {}
        self._lock = threading.Lock()
        #: when set before the first run, sessions write ONNX Runtime profiles (per-node kernel times) with this
        #: file prefix; end_profiling() closes them (benchmarks/native_ops.py splits decode time this way)
        self.profile_prefix: str | None = None

    def _options(self):
        if self.pinned:
            return pinned_session_options()
        ort = _ort()
        so = ort.SessionOptions()
        if self.threads:
            so.intra_op_num_threads = int(self.threads)
        so.inter_op_num_threads = 1  # the graphs are chains: parallelism is within ops
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, self.opt_level)
        so.log_severity_level = 3
        native_ops.register_onnxruntime(so)
        return so

    def session(self, graph: str):
        s = self._sessions.get(graph)
        if s is None:
            with self._lock:
                s = self._sessions.get(graph)
                if s is None:
                    ort = _ort()
                    path = self.bundle.graph_path(graph)
                    so = self._options()
                    if self.profile_prefix:
                        so.enable_profiling = True
                        so.profile_file_prefix = f"{self.profile_prefix}_{graph}"
                    try:
                        s = ort.InferenceSession(str(path), sess_options=so, providers=self.providers)
                    except Exception as e:  # ORT raises its own Fail/InvalidGraph types
                        old = _other_ops_versions(path)
                        if old:
                            raise BackendError(
                                f"graph '{graph}' ({path.name}) holds lictrt ops of version {', '.join(old)}; this "
                                f"runtime runs version {OPS_VERSION}: re-export the bundle (python -m export.onnx "
                                "CHECKPOINT)"
                            ) from None
                        raise BackendError(f"onnxruntime cannot load graph '{graph}' ({path.name}): {e}") from None
                    self._sessions[graph] = s
        return s

    def end_profiling(self) -> list[str]:
        """Ends profiling of every open session (see ``profile_prefix``); returns the profile files written."""
        return [s.end_profiling() for s in self._sessions.values()] if self.profile_prefix else []

    def run(self, graph: str, feeds: dict) -> dict:
        s = self.session(graph)
        names = [o.name for o in s.get_outputs()]
        want = {i.name: _DTYPES.get(i.type, np.float32) for i in s.get_inputs()}
        missing = want.keys() - feeds.keys()
        if missing:
            raise BackendError(f"graph '{graph}' needs inputs {sorted(missing)}")
        feeds = {k: np.ascontiguousarray(feeds[k], dtype=t) for k, t in want.items()}
        try:
            outs = s.run(names, feeds)
        except Exception as e:
            raise BackendError(f"onnxruntime failed on graph '{graph}': {e}") from None
        return {n: (o if o.dtype == np.float32 else o.astype(np.float32)) for n, o in zip(names, outs)}
