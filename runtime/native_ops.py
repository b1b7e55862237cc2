"""The native CPU kernels of the lictrt ops (``liblictrt_cpu_ops``): where the library is, its C API, and its
registration with ONNX Runtime. Standard library only (no torch, no numpy), so the lean runtime can use it.

The library is built from ``trt_plugins/common/CpuOps.cmake`` by the package build (``pip install -e .``) and
installed in this package; ``$LICTRT_CPU_OPS_LIB`` names another file. It holds

* ``lictrt_cpu_*``: its C API (tests, benchmarks, and ``liblictrt_torch_ops``, the CPU kernels of the PyTorch
  operators ``torch.ops.lictrt.*`` loaded by ``train.layers.native_scan``);
* ``RegisterCustomOps``: the ONNX Runtime custom-op library (when the build found ONNX Runtime's headers), which
  makes ONNX Runtime run ``lictrt::SelectiveScan2D`` natively instead of its function body.

``LICTRT_OPS_SCALAR=1`` makes the library use its portable path instead of AVX2 (bit-identical results).
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import os
import sys
import warnings
from pathlib import Path

LIBRARY_NAME = {"win32": "lictrt_cpu_ops.dll", "darwin": "liblictrt_cpu_ops.dylib"}.get(
    sys.platform, "liblictrt_cpu_ops.so"
)
ENV_LIBRARY = "LICTRT_CPU_OPS_LIB"
_FALLBACK_WARNING = (
    "lictrt native CPU ops unavailable ({why}); ONNX Runtime runs the ONNX function bodies of "
    "the lictrt ops, which need far more time and memory at full image size (build the package "
    "with ONNX Runtime headers, see trt_plugins/selective_scan_2d/README.md)"
)

_i64, _int, _ptr = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p


class NativeOpsError(RuntimeError):
    """The native library is missing, or one of its kernels rejected its arguments."""


def library_path(name: str = LIBRARY_NAME) -> Path | None:
    """The library file: for the CPU ops library ``$LICTRT_CPU_OPS_LIB`` if set, else the file ``name`` installed
    in this package (an editable install keeps compiled files apart from the sources: every folder of the package
    is searched; the PyTorch operator library is installed here too); None if absent."""
    env = os.environ.get(ENV_LIBRARY, "") if name == LIBRARY_NAME else ""
    if env:
        return Path(env) if Path(env).is_file() else None
    spec = importlib.util.find_spec(__package__ or "runtime")
    folders = [Path(__file__).resolve().parent, *(Path(f) for f in (spec.submodule_search_locations or []))]
    return next((f / name for f in folders if (f / name).is_file()), None)


@functools.cache
def _load() -> tuple[ctypes.CDLL | None, str]:
    path = library_path()
    if path is None:
        where = os.environ.get(ENV_LIBRARY) or f"{LIBRARY_NAME} next to the runtime package"
        return None, f"{where} not found"
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as e:
        return None, f"cannot load {path}: {e}"
    lib.lictrt_cpu_last_error.restype = ctypes.c_char_p
    lib.lictrt_cpu_simd_enabled.restype = _int
    lib.lictrt_cpu_has_onnxruntime_ops.restype = _int
    lib.lictrt_cpu_exp_fma_peak.restype = ctypes.c_float
    lib.lictrt_cpu_exp_fma_peak.argtypes = [_i64]
    lib.lictrt_cpu_force_scalar.argtypes = [_int]
    lib.lictrt_cpu_ss2d_forward.argtypes = [_ptr] * 9 + [_i64] * 6 + [_int] * 3
    lib.lictrt_cpu_ss2d_backward.argtypes = [_ptr] * 15 + [_i64] * 5 + [_int] * 2
    lib.lictrt_cpu_gdn_forward.argtypes = [_ptr] * 4 + [_i64] * 3 + [_int] * 3
    return lib, ""


def library() -> ctypes.CDLL:
    """The loaded library (ctypes); NativeOpsError when it is not available."""
    lib, why = _load()
    if lib is None:
        raise NativeOpsError(f"lictrt native CPU ops: {why}")
    return lib


def available() -> bool:
    return _load()[0] is not None


def check(rc: int) -> None:
    """Raises NativeOpsError with the library's message for a non-zero return code."""
    if rc != 0:
        raise NativeOpsError(library().lictrt_cpu_last_error().decode())


def simd_enabled() -> bool:
    """True when the kernels run their AVX2 path."""
    return bool(library().lictrt_cpu_simd_enabled())


def has_onnxruntime_ops() -> bool:
    """True when the library was built with ONNX Runtime's headers (it then registers custom ops)."""
    lib = _load()[0]
    return lib is not None and bool(lib.lictrt_cpu_has_onnxruntime_ops())


@functools.cache
def _warn_once(why: str) -> None:
    warnings.warn(_FALLBACK_WARNING.format(why=why), RuntimeWarning, stacklevel=3)


def register_onnxruntime(session_options, required: bool = False) -> bool:
    """Registers the lictrt custom ops with an ``onnxruntime.SessionOptions``; True when registered.

    Without a usable library this warns once (ONNX Runtime then runs the ops' function bodies) and returns False,
    or raises NativeOpsError when ``required``. ``LICTRT_NATIVE_OPS=0`` turns registration off.
    """
    if os.environ.get("LICTRT_NATIVE_OPS", "1") == "0":
        return False
    lib, why = _load()
    if lib is not None and not lib.lictrt_cpu_has_onnxruntime_ops():
        why = f"{library_path()} was built without ONNX Runtime headers"
    if lib is None or why:
        if required:
            raise NativeOpsError(f"lictrt native CPU ops: {why}")
        _warn_once(why)
        return False
    session_options.register_custom_ops_library(str(library_path()))
    return True
