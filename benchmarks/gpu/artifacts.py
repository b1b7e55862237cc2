"""The compiled pieces a device call needs: the CUDA kernels library (``liblictrt_kernels.so``, for the H100/H200's
sm_90) and the runtime's coder extension (``runtime._lictrt``) for the device's Python (3.12).

``prepare.sh`` builds both on the CPU machine (nvcc is there; so is a Python 3.12 on most set-ups) into
``.gpu/lib/``, which the device call carries. On the device, the suite's build section uses the carried files
when they load and fit the GPU, and builds there only what does not (:func:`build_kernels`,
:func:`build_extension`: the same two builds, seconds each).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

from trt_plugins.harness import HarnessError, build, run_commands

REPO = Path(__file__).resolve().parents[2]
LIB_DIR = REPO / ".gpu" / "lib"
KERNELS = "liblictrt_kernels.so"
DEVICE_PYTHON = "3.12"  # the device machine's python3
CARRIED_ARCH = "90"  # sm_90 code + compute_90 PTX: H100 and H200


class ArtifactError(RuntimeError):
    """A build failed or its product is missing (one line; details in the build log)."""


def build_kernels(build_dir: Path, arch: str, log=None) -> Path:
    """The kernels library alone (no plugins, no CPU emulation) for CUDA architecture(s) ``arch``."""
    try:
        build(build_dir, plugins=False, cpu_emulation=False, cuda_archs=arch, log=log)
    except HarnessError as exc:
        raise ArtifactError(str(exc).splitlines()[0]) from None
    lib = Path(build_dir) / KERNELS
    if not lib.is_file():
        raise ArtifactError(f"{KERNELS} was not produced in {build_dir}")
    return lib


def ext_suffix(python: str) -> str:
    """The extension-module suffix of interpreter ``python`` (e.g. ``.cpython-312-x86_64-linux-gnu.so``)."""
    proc = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise ArtifactError(f"{python} did not report its extension suffix")
    return proc.stdout.strip()


def build_extension(python: str, build_dir: Path, log=None) -> Path:
    """``runtime._lictrt`` for interpreter ``python``, through the root CMakeLists.txt (target ``_lictrt`` only,
    no torch ops, no ONNX Runtime header download). nanobind comes from ``python`` if it has it, else from the
    interpreter running this."""
    nanobind = subprocess.run([python, "-m", "nanobind", "--cmake_dir"], capture_output=True, text=True)
    if nanobind.returncode != 0:
        nanobind = subprocess.run([sys.executable, "-m", "nanobind", "--cmake_dir"], capture_output=True, text=True)
    if nanobind.returncode != 0:
        raise ArtifactError("nanobind is installed in neither interpreter: cannot build the coder extension")
    cmds = [
        [
            "cmake",
            "-S",
            str(REPO),
            "-B",
            str(build_dir),
            "-DCMAKE_BUILD_TYPE=Release",
            f"-DPython_EXECUTABLE={python}",
            f"-Dnanobind_ROOT={nanobind.stdout.strip()}",
            "-DLICTRT_TORCH_OPS=OFF",
            "-DLICTRT_FETCH_ONNXRUNTIME_HEADERS=OFF",
        ],
        ["cmake", "--build", str(build_dir), "--target", "_lictrt", "-j", str(min(os.cpu_count() or 1, 16))],
    ]
    try:
        run_commands(cmds, log)
    except HarnessError as exc:
        raise ArtifactError(str(exc).splitlines()[0]) from None
    out = Path(build_dir) / f"_lictrt{ext_suffix(python)}"
    if not out.is_file():
        raise ArtifactError(f"{out.name} was not produced in {build_dir}")
    return out


def find_python(version: str = DEVICE_PYTHON) -> str | None:
    """An interpreter of ``version`` on this machine: ``$PYTHON312``-style variable, ``python3.12`` on PATH, or a
    pyenv-installed one; None when there is none."""
    candidates = [os.environ.get(f"PYTHON{version.replace('.', '')}"), shutil.which(f"python{version}")]
    if shutil.which("pyenv"):
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip()
        if root:
            candidates += sorted(glob.glob(f"{root}/versions/{version}*/bin/python{version}"), reverse=True)
    for c in candidates:
        if not c:
            continue
        proc = subprocess.run(
            [c, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True
        )
        if proc.returncode == 0 and proc.stdout.strip() == version:
            return c
    return None


def prepare(out_dir: Path = LIB_DIR, build_root: Path = REPO / "build" / "gpu-prepare", log=print) -> list[str]:
    """CPU side: build the kernels library (sm_90) and the coder extension for Python 3.12 into ``out_dir``.
    Returns notes on what could not be built here (the device then builds it). Files of an earlier run are
    removed first: a stale build never travels."""
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    notes = []
    try:
        lib = build_kernels(build_root / "kernels", CARRIED_ARCH)
        shutil.copy2(lib, out_dir / KERNELS)
        log(f"  {KERNELS} (CUDA arch {CARRIED_ARCH})")
    except ArtifactError as exc:
        notes.append(f"kernels library not built here ({exc}); the device builds it")
    python = find_python()
    if python is None:
        notes.append(f"no Python {DEVICE_PYTHON} here: the device builds the coder extension")
    else:
        try:
            ext = build_extension(python, build_root / f"py{DEVICE_PYTHON}")
            shutil.copy2(ext, out_dir / ext.name)
            log(f"  {ext.name}")
        except ArtifactError as exc:
            notes.append(f"coder extension not built here ({exc}); the device builds it")
    for n in notes:
        log(f"  note: {n}")
    return notes
