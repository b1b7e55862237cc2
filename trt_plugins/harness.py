"""ctypes harness for ``liblictrt_kernels.so``: run the plugin kernels on torch CUDA tensors, without TensorRT.

    from trt_plugins.harness import Kernels
    k = Kernels.load()                       # finds (or builds, with build=True) the library
    y = k.selective_scan_2d(u, dts, dt_weight, A, Bs, Cs, D, delta_bias)
    y = k.generalized_divisive_norm(x, gamma, beta, inverse=False)

The launchers take raw device pointers (``tensor.data_ptr()``) and the current torch CUDA stream; they only
enqueue work.  Host-only entry points (status strings, workspace sizes, argument checks) work without a GPU.
Library lookup: ``$LICTRT_KERNELS_LIB``, else ``<repo>/build/trt_plugins/liblictrt_kernels.so``.

``Kernels.load_cpu_emulation()`` loads ``liblictrt_kernels_cpu.so``: the same kernel sources compiled for a CPU
emulation of CUDA (see ``common/cpu_emulation.h``); it takes CPU tensors and is how CI tests the kernel logic.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIR = REPO_ROOT / "trt_plugins"
DEFAULT_BUILD_DIR = REPO_ROOT / "build" / "trt_plugins"

FP32, FP16 = 0, 1  # enum lictrt_dtype
STATUS_OK = 0
MAX_DSTATE = 16
MAX_GDN_CHANNELS = 1024


class HarnessError(RuntimeError):
    """The kernels library cannot be found, built or loaded."""


class KernelError(RuntimeError):
    """A launcher returned a non-zero lictrt_status, or the inputs do not fit the op contract."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def build(
    build_dir: Path | str = DEFAULT_BUILD_DIR,
    plugins: bool = True,
    cuda_archs: str | None = None,
    verbose: bool = False,
    cpu_emulation: bool = True,
    log=None,
) -> Path:
    """Configure and build ``trt_plugins`` with CMake (incremental when ``build_dir`` exists); returns build_dir.

    ``plugins=False`` builds the kernels library only (no TensorRT headers needed, e.g. on an offline GPU box).
    ``cuda_archs`` overrides CMAKE_CUDA_ARCHITECTURES (e.g. ``"90-real"`` for a quick single-arch build).
    ``cpu_emulation=False`` leaves out the CPU-emulated kernels (tests only). ``log``: an open text file that
    receives the commands and their output.
    """
    for tool in ("cmake", "nvcc"):
        if shutil.which(tool) is None:
            raise HarnessError(f"{tool} not found on PATH; cannot build trt_plugins")
    build_dir = Path(build_dir)
    configure = [
        "cmake",
        "-S",
        str(SOURCE_DIR),
        "-B",
        str(build_dir),
        f"-DLICTRT_BUILD_PLUGINS={'ON' if plugins else 'OFF'}",
        f"-DLICTRT_BUILD_CPU_EMULATION={'ON' if cpu_emulation else 'OFF'}",
    ]
    if cuda_archs:
        configure.append(f"-DCMAKE_CUDA_ARCHITECTURES={cuda_archs}")
    run_commands(
        [configure, ["cmake", "--build", str(build_dir), "-j", str(min(os.cpu_count() or 1, 16))]], log, verbose
    )
    return build_dir


def run_commands(cmds: list[list[str]], log=None, verbose: bool = False) -> None:
    """Run build commands in order; HarnessError names the first that fails. Output goes to ``log`` (an open
    text file, each command written first), else to the terminal with ``verbose``, else into the error."""
    for cmd in cmds:
        if log is not None:
            log.write("$ " + " ".join(cmd) + "\n")
            log.flush()
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
            tail = "(see the build log)"
        else:
            proc = subprocess.run(cmd, capture_output=not verbose, text=True)
            tail = "" if verbose else (proc.stdout + proc.stderr)[-4000:]
        if proc.returncode != 0:
            raise HarnessError(f"command failed: {' '.join(cmd)}\n{tail}")


_ENV_OVERRIDES = {"lictrt_kernels": "LICTRT_KERNELS_LIB", "lictrt_plugins": "LICTRT_PLUGINS_LIB"}


def find_library(name: str = "lictrt_kernels", build_dir: Path | str = DEFAULT_BUILD_DIR) -> Path:
    """Path of ``lib<name>.so``: ``$LICTRT_KERNELS_LIB`` / ``$LICTRT_PLUGINS_LIB`` first, then ``build_dir``."""
    env = os.environ.get(_ENV_OVERRIDES.get(name, ""), "")
    path = Path(env) if env else Path(build_dir) / f"lib{name}.so"
    if not path.is_file():
        raise HarnessError(
            f"{path} not found; build it with: cmake -S trt_plugins -B build/trt_plugins && "
            f"cmake --build build/trt_plugins -j2"
        )
    return path


def _dtype_code(t) -> int:
    import torch

    if t.dtype == torch.float32:
        return FP32
    if t.dtype == torch.float16:
        return FP16
    raise KernelError(f"activations must be float32 or float16, got {t.dtype}")


class Kernels:
    """The loaded kernels library with typed entry points."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        try:
            self.lib = ctypes.CDLL(str(self.path))
        except OSError as exc:
            raise HarnessError(f"cannot load {self.path}: {exc}") from None
        L, i64, c_int, vp, sz = self.lib, ctypes.c_int64, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t
        L.lictrt_status_string.argtypes, L.lictrt_status_string.restype = [c_int], ctypes.c_char_p
        L.lictrt_kernels_version.argtypes, L.lictrt_kernels_version.restype = [], ctypes.c_char_p
        L.lictrt_ss2d_workspace_size.argtypes = [i64] * 6 + [c_int, ctypes.POINTER(sz)]
        L.lictrt_ss2d_workspace_size.restype = c_int
        L.lictrt_ss2d_forward.argtypes = [vp] * 9 + [i64] * 6 + [c_int, c_int, vp, sz, vp]
        L.lictrt_ss2d_forward.restype = c_int
        L.lictrt_gdn_forward.argtypes = [vp] * 4 + [i64] * 3 + [c_int, c_int, vp]
        L.lictrt_gdn_forward.restype = c_int
        self.emulated = "cpu emulation" in self.version()

    @classmethod
    def load(cls, build_dir: Path | str = DEFAULT_BUILD_DIR, build_if_missing: bool = False) -> "Kernels":
        try:
            return cls(find_library("lictrt_kernels", build_dir))
        except HarnessError:
            if not build_if_missing:
                raise
        build(build_dir, plugins=False)
        return cls(find_library("lictrt_kernels", build_dir))

    @classmethod
    def load_cpu_emulation(cls, build_dir: Path | str = DEFAULT_BUILD_DIR) -> "Kernels":
        """The CPU-emulated kernels (``liblictrt_kernels_cpu.so``); tensors must be on the CPU."""
        return cls(find_library("lictrt_kernels_cpu", build_dir))

    # ------------------------------------------------------------------ host-only
    def status_string(self, status: int) -> str:
        return self.lib.lictrt_status_string(status).decode()

    def version(self) -> str:
        return self.lib.lictrt_kernels_version().decode()

    def _check(self, status: int, what: str) -> None:
        if status != STATUS_OK:
            raise KernelError(f"{what}: {self.status_string(status)} (status {status})", status)

    def ss2d_workspace_size(self, B: int, Di: int, H: int, W: int, N: int, R: int, dtype: int = FP32) -> int:
        out = ctypes.c_size_t(0)
        self._check(
            self.lib.lictrt_ss2d_workspace_size(B, Di, H, W, N, R, dtype, ctypes.byref(out)),
            "lictrt_ss2d_workspace_size",
        )
        return out.value

    # ------------------------------------------------------------------ CUDA
    def _stream(self) -> int | None:
        import torch

        return None if self.emulated else torch.cuda.current_stream().cuda_stream

    def _check_device(self, tensors) -> None:
        want = "CPU" if self.emulated else "CUDA"
        if any(t.is_cuda == self.emulated or not t.is_contiguous() for t in tensors):
            raise KernelError(f"all tensors must be contiguous {want} tensors for {self.path.name}")

    def selective_scan_2d(
        self, u, dts, dt_weight, A, Bs, Cs, D, delta_bias=None, delta_softplus: bool = True, out=None, workspace=None
    ):
        """SelectiveScan2D on CUDA tensors (shapes and dtypes as in export/op_contracts.py); returns y.

        ``out`` and ``workspace`` (a uint8 CUDA tensor of at least ``ss2d_workspace_size`` bytes) may be given,
        e.g. pre-filled with NaN to prove the kernels never read uninitialised memory.
        """
        import torch

        if u.dim() != 4 or dt_weight.dim() != 2:
            raise KernelError(
                f"u must be [B, Di, H, W] and dt_weight [4Di, R], got {tuple(u.shape)}, {tuple(dt_weight.shape)}"
            )
        B, Di, H, W = u.shape
        N, R = A.shape[-1], dt_weight.shape[-1]
        expect = {
            "dts": (dts, (B, 4, R, H, W)),
            "dt_weight": (dt_weight, (4 * Di, R)),
            "A": (A, (4 * Di, N)),
            "Bs": (Bs, (B, 4, N, H, W)),
            "Cs": (Cs, (B, 4, N, H, W)),
            "D": (D, (4 * Di,)),
        }
        if delta_bias is not None:
            expect["delta_bias"] = (delta_bias, (4 * Di,))
        for name, (t, shape) in expect.items():
            if tuple(t.shape) != shape:
                raise KernelError(f"{name} must have shape {shape}, got {tuple(t.shape)}")
        act = [u, dts, Bs, Cs]
        weights = [dt_weight, A, D] + ([delta_bias] if delta_bias is not None else [])
        dtype = _dtype_code(u)
        if any(t.dtype != u.dtype for t in act):
            raise KernelError("u, dts, Bs and Cs must share one dtype")
        if any(t.dtype != torch.float32 for t in weights):
            raise KernelError("dt_weight, A, D and delta_bias must be float32")
        self._check_device(act + weights)
        if out is None:
            out = torch.empty_like(u)
        nbytes = self.ss2d_workspace_size(B, Di, H, W, N, R, dtype)
        ws = workspace if workspace is not None else torch.empty(max(nbytes, 1), dtype=torch.uint8, device=u.device)
        if ws.dtype != torch.uint8 or ws.numel() < nbytes:
            raise KernelError(f"workspace must be a uint8 tensor of at least {nbytes} bytes")
        self._check_device([ws])
        st = self.lib.lictrt_ss2d_forward(
            u.data_ptr(),
            dts.data_ptr(),
            dt_weight.data_ptr(),
            A.data_ptr(),
            Bs.data_ptr(),
            Cs.data_ptr(),
            D.data_ptr(),
            delta_bias.data_ptr() if delta_bias is not None else None,
            out.data_ptr(),
            B,
            Di,
            H,
            W,
            N,
            R,
            int(bool(delta_softplus)),
            dtype,
            ws.data_ptr(),
            ws.numel(),
            self._stream(),
        )
        self._check(st, "lictrt_ss2d_forward")
        return out

    def generalized_divisive_norm(self, x, gamma, beta, inverse: bool = False, out=None):
        """GeneralizedDivisiveNorm on CUDA tensors: x [B, C, H, W] fp32/fp16, gamma [C, C], beta [C] fp32."""
        import torch

        if x.dim() != 4:
            raise KernelError(f"x must be [B, C, H, W], got {tuple(x.shape)}")
        B, C, H, W = x.shape
        if tuple(gamma.shape) != (C, C) or tuple(beta.shape) != (C,):
            raise KernelError(f"gamma must be [{C}, {C}] and beta [{C}], got {tuple(gamma.shape)}, {tuple(beta.shape)}")
        if gamma.dtype != torch.float32 or beta.dtype != torch.float32:
            raise KernelError("gamma and beta must be float32")
        dtype = _dtype_code(x)
        self._check_device([x, gamma, beta])
        if out is None:
            out = torch.empty_like(x)
        st = self.lib.lictrt_gdn_forward(
            x.data_ptr(),
            gamma.data_ptr(),
            beta.data_ptr(),
            out.data_ptr(),
            B,
            C,
            H * W,
            int(bool(inverse)),
            dtype,
            self._stream(),
        )
        self._check(st, "lictrt_gdn_forward")
        return out


# ---------------------------------------------------------------------- timing helpers for the GPU suite
def time_cuda_ms(fn, warmup: int = 20, iters: int = 100) -> float:
    """Median time of ``fn()`` in milliseconds, measured with CUDA events (``benchmarks.gpu.timing``)."""
    from benchmarks.gpu.timing import time_cuda

    return time_cuda([fn], warmup=warmup, iters=iters, min_iters=iters)["median_ms"]


def bench(
    shapes=((1, 256, 256, 384, 16, 8), (1, 512, 256, 384, 16, 16)),
    gdn_shapes=((1, 128, 256, 384),),
    warmup: int = 20,
    iters: int = 100,
) -> dict:
    """Times the CUDA kernels at the given shapes ((B, Di, H, W, N, R) for the scan; fp32 and fp16); returns a
    JSON-ready dict of measured figures."""
    import torch

    from benchmarks.gpu.roofline import gdn_min_bytes, ss2d_min_bytes

    if not torch.cuda.is_available():
        raise HarnessError("bench needs a CUDA GPU")
    k = Kernels.load(build_if_missing=True)
    dev = torch.device("cuda")
    result = {
        "device": torch.cuda.get_device_name(dev),
        "torch": torch.__version__,
        "library": k.version(),
        "warmup": warmup,
        "iters": iters,
        "selective_scan_2d": [],
        "generalized_divisive_norm": [],
    }
    for B, Di, H, W, N, R in shapes:
        for dtype in (torch.float32, torch.float16):
            act = [
                torch.randn(*s, device=dev).to(dtype)
                for s in ((B, Di, H, W), (B, 4, R, H, W), (B, 4, N, H, W), (B, 4, N, H, W))
            ]
            w = torch.randn(4 * Di, R, device=dev) * (0.5 / R**0.5)
            A = -torch.rand(4 * Di, N, device=dev) - 0.1
            D, bias = torch.randn(4 * Di, device=dev), torch.randn(4 * Di, device=dev)
            out = torch.empty_like(act[0])
            nbytes = k.ss2d_workspace_size(B, Di, H, W, N, R, FP32 if dtype == torch.float32 else FP16)
            ws = torch.empty(max(nbytes, 1), dtype=torch.uint8, device=dev)
            ms = time_cuda_ms(
                lambda: k.selective_scan_2d(act[0], act[1], w, A, act[2], act[3], D, bias, out=out, workspace=ws),
                warmup,
                iters,
            )
            moved = ss2d_min_bytes(B, Di, H, W, N, R, act[0].element_size())
            result["selective_scan_2d"].append(
                {
                    "shape": [B, Di, H, W, N, R],
                    "dtype": str(dtype).split(".")[-1],
                    "median_ms": ms,
                    "min_bytes": moved,
                    "effective_GBps": moved / ms / 1e6,
                }
            )
    for B, C, H, W in gdn_shapes:
        for dtype in (torch.float32, torch.float16):
            x = torch.randn(B, C, H, W, device=dev).to(dtype)
            gamma = 0.1 * torch.eye(C, device=dev) + 1e-3
            beta = torch.ones(C, device=dev)
            out = torch.empty_like(x)
            ms = time_cuda_ms(lambda: k.generalized_divisive_norm(x, gamma, beta, out=out), warmup, iters)
            moved = gdn_min_bytes(B, C, H, W, x.element_size())
            result["generalized_divisive_norm"].append(
                {
                    "shape": [B, C, H, W],
                    "dtype": str(dtype).split(".")[-1],
                    "median_ms": ms,
                    "min_bytes": moved,
                    "effective_GBps": moved / ms / 1e6,
                }
            )
    return result


def main(argv=None) -> int:
    """``python -m trt_plugins.harness bench``: time the kernels at SSMIC/MambaVC/bmshj2018 shapes, print JSON."""
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(prog="python -m trt_plugins.harness", description=main.__doc__)
    parser.add_argument("command", choices=["bench", "build"])
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            print(build(verbose=args.verbose))
        else:
            print(json.dumps(bench(warmup=args.warmup, iters=args.iters), indent=2))
    except (HarnessError, KernelError) as exc:
        if args.verbose:
            raise
        print(f"error: {exc}".splitlines()[0], file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
