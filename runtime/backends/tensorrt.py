"""TensorRT backend: runs the bundle's prebuilt engines (``engines/<graph>.<backend>.<precision>.<gpu>.engine``).

Uses full TensorRT (``tensorrt``, needs a user install; our plugins are loaded from ``LICTRT_PLUGIN_LIBS``,
a path-separated list of .so files) or TensorRT-RTX (``tensorrt_rtx``, plugin-free: custom ops were inlined
as their ONNX function bodies at build time), through Polygraphy's ``TrtRunner`` for device buffers
(ctypes CUDA runtime, no torch).  Only reconstruction-only graphs run here by default; parse-critical graphs
stay on the pinned ORT path.

UNVERIFIED on this project's CI: there is no GPU and no full TensorRT there.  The engine selection and error
paths are tested; inference is not.
"""

from __future__ import annotations

import ctypes
import os
import threading

import numpy as np

from . import BackendError

_BACKEND_TOKENS = {"tensorrt": ("tensorrt", "trt"), "tensorrt_rtx": ("tensorrt_rtx", "tensorrt-rtx", "rtx", "trtrtx")}


def _trt_module():
    """(module name, module) of the TensorRT flavour installed, full TensorRT first."""
    for name in ("tensorrt", "tensorrt_rtx"):
        try:
            return name, __import__(name)
        except ImportError:
            continue
    raise BackendError(
        "backend 'tensorrt' needs TensorRT (`tensorrt`, a user install) or TensorRT-RTX "
        "(`pip install tensorrt-rtx`); neither is importable"
    )


def find_engine(bundle, graph: str, flavour: str) -> str | None:
    """The engine file for ``graph`` built by ``flavour`` (manifest ``engines`` entry first, then a glob)."""
    if bundle.path is None:
        return None
    entry = bundle.manifest.get("engines", {}).get(graph)
    cands = []
    if isinstance(entry, str):
        cands = [entry]
    elif isinstance(entry, dict):
        cands = (
            [entry.get("file")]
            if "file" in entry
            else [v if isinstance(v, str) else v.get("file") for v in entry.values()]
        )
    elif isinstance(entry, list):
        cands = [e if isinstance(e, str) else e.get("file") for e in entry]
    cands += sorted(p.relative_to(bundle.path).as_posix() for p in (bundle.path / "engines").glob(f"{graph}.*.engine"))
    files = bundle.manifest.get("files")
    if files is not None:  # a bundle with digests: only engines it lists (and Bundle.load verified)
        cands = [c for c in cands if c in files]
    tokens = _BACKEND_TOKENS[flavour]
    for c in cands:
        if not c:
            continue
        parts = os.path.basename(c).split(".")
        if len(parts) >= 5 and parts[0] == graph and parts[1].lower() in tokens and (bundle.path / c).is_file():
            return str(bundle.path / c)
    return None


class TensorRTBackend:
    """Reconstruction graphs on TensorRT engines; one ``TrtRunner`` (execution context) per graph and thread."""

    def __init__(self, bundle, device: str | None = None):
        if device not in (None, "cuda", "cuda:0"):
            raise BackendError(f"backend 'tensorrt' runs on the current CUDA device, not '{device}'")
        self.flavour, self.trt = _trt_module()
        self.bundle = bundle
        self.name = f"{self.flavour}-cuda"
        if self.flavour == "tensorrt":
            for lib in filter(None, os.environ.get("LICTRT_PLUGIN_LIBS", "").split(os.pathsep)):
                try:
                    ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
                except OSError as e:
                    raise BackendError(f"cannot load TensorRT plugin library {lib}: {e}") from None
        else:
            from polygraphy import config as pg_config

            pg_config.USE_TENSORRT_RTX = True
        self._local = threading.local()
        self._engines: dict = {}
        self._lock = threading.Lock()

    @staticmethod
    def available(bundle) -> bool:
        """True when TensorRT is importable and every non-parse-critical graph has an engine."""
        try:
            flavour, _ = _trt_module()
        except BackendError:
            return False
        names = [n for n in bundle.manifest.get("graphs", {}) if not bundle.graph(n).parse_critical]
        return bool(names) and all(find_engine(bundle, n, flavour) for n in names)

    def _engine(self, graph: str):
        with self._lock:
            eng = self._engines.get(graph)
            if eng is None:
                path = find_engine(self.bundle, graph, self.flavour)
                if path is None:
                    raise BackendError(
                        f"no {self.flavour} engine for graph '{graph}' in {self.bundle.path}/engines "
                        "(build it with `python -m export.trt`)"
                    )
                from polygraphy.backend.trt import EngineFromBytes

                with open(path, "rb") as f:
                    eng = EngineFromBytes(f.read())()
                if eng is None:
                    raise BackendError(f"{self.flavour} cannot deserialize {path} (other version or GPU?)")
                self._engines[graph] = eng
        return eng

    def _runner(self, graph: str):
        runners = getattr(self._local, "runners", None)
        if runners is None:
            runners = self._local.runners = {}
        r = runners.get(graph)
        if r is None:
            from polygraphy.backend.trt import TrtRunner

            r = TrtRunner(self._engine(graph))
            r.activate()
            runners[graph] = r
        return r

    def run(self, graph: str, feeds: dict) -> dict:
        r = self._runner(graph)
        meta = r.get_input_metadata()
        try:
            fd = {k: np.ascontiguousarray(feeds[k], dtype=meta[k].dtype) for k in meta.keys()}
        except KeyError as e:
            raise BackendError(f"graph '{graph}' needs input {e}") from None
        out = r.infer(fd, copy_outputs_to_host=True)
        return {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}
