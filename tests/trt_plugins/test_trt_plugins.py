"""trt_plugins on CI (no GPU, no TensorRT): the libraries build, export the dynamic-plugin entry points, do not
need libnvinfer, their creators match export/op_contracts.py, and the kernels' host-side checks work."""

from __future__ import annotations

import ctypes
import json
import shutil
import subprocess

import pytest
import torch

from export.op_contracts import OPS, PLUGIN_NAMESPACE, PLUGIN_VERSION
from trt_plugins import harness
from trt_plugins.harness import FP16, FP32, KernelError, Kernels
from trt_plugins.reference import (
    gdn_inputs,
    gdn_reference,
    rel_err,
    run_gdn_poisoned,
    run_scan_poisoned,
    scan_inputs,
    ss2d_reference,
)

BUILD_DIR = harness.DEFAULT_BUILD_DIR


@pytest.fixture(scope="module")
def build_dir():
    """Builds both libraries and list_creators with CMake (incremental: reuses build/trt_plugins)."""
    for tool in ("cmake", "nvcc", "nm", "readelf"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not on PATH")
    return harness.build(BUILD_DIR, plugins=True)


def _symbols(lib, *flags):
    out = subprocess.run(["nm", "-D", *flags, str(lib)], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


def _needed(lib):
    out = subprocess.run(["readelf", "-d", str(lib)], capture_output=True, text=True, check=True).stdout
    return [line.split("[")[1].rstrip("]") for line in out.splitlines() if "(NEEDED)" in line]


def _list_creators(build_dir, lib, *flags):
    proc = subprocess.run([str(build_dir / "list_creators"), *flags, str(lib)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_build_produces_both_libraries_and_the_tool(build_dir):
    for name in ("liblictrt_kernels.so", "liblictrt_plugins.so", "list_creators"):
        assert (build_dir / name).is_file(), name


def test_plugin_library_exports_dynamic_registration_entry_points(build_dir):
    defined = _symbols(build_dir / "liblictrt_plugins.so", "--defined-only")
    assert {"getCreators", "setLoggerFinder"} <= defined
    assert "getPluginCreators" not in defined  # deprecated V2-era entry point: not provided


def test_plugin_library_needs_neither_libnvinfer_nor_the_registry(build_dir):
    lib = build_dir / "liblictrt_plugins.so"
    assert not [n for n in _needed(lib) if "nvinfer" in n or "cudart" in n]  # cudart is linked statically
    undefined = " ".join(_symbols(lib, "--undefined-only"))
    for forbidden in ("getPluginRegistry", "getLogger", "createInferRuntime", "nvinfer1"):
        assert forbidden not in undefined


def test_kernels_library_exports_the_c_launchers(build_dir):
    lib = build_dir / "liblictrt_kernels.so"
    defined = _symbols(lib, "--defined-only")
    assert {
        "lictrt_ss2d_forward",
        "lictrt_ss2d_workspace_size",
        "lictrt_gdn_forward",
        "lictrt_status_string",
        "lictrt_kernels_version",
    } <= defined
    assert "getCreators" not in defined
    assert not [n for n in _needed(lib) if "nvinfer" in n]


def test_creators_match_the_op_contracts(build_dir):
    creators = _list_creators(build_dir, build_dir / "liblictrt_plugins.so")
    by_name = {c["name"]: c for c in creators}
    assert sorted(by_name) == sorted(OPS)
    for name, op in OPS.items():
        c = by_name[name]
        assert c["interface"] == {"kind": "PLUGIN CREATOR_V3ONE", "major": 1, "minor": 0}
        assert c["version"] == PLUGIN_VERSION
        assert c["namespace"] == PLUGIN_NAMESPACE
        assert [(f["name"], f["type"], f["length"]) for f in c["fields"]] == [
            (f.name, f.trt_type, 1) for f in op.fields
        ]


# Activation inputs/outputs take fp32 or fp16 (one type per node); weights are fp32 only.
WEIGHT_INPUTS = {"GeneralizedDivisiveNorm": {"gamma", "beta"}, "SelectiveScan2D": {"dt_weight", "A", "D", "delta_bias"}}


def test_plugins_behave_as_the_contract_says_without_a_gpu(build_dir):
    creators = _list_creators(build_dir, build_dir / "liblictrt_plugins.so", "--probe")
    for c in creators:
        op, probe = OPS[c["name"]], c["probe"]
        assert probe["core"] == {"name": op.name, "version": PLUGIN_VERSION, "namespace": PLUGIN_NAMESPACE}
        assert probe["defaults"] == {f.name: f.default for f in op.fields}
        for v in (0, 1):  # getFieldsToSerialize returns what createPlugin received, also after clone()
            assert probe[f"roundtrip_{v}"] == probe[f"clone_roundtrip_{v}"] == {f.name: v for f in op.fields}
        assert probe["rejects_value"] and probe["rejects_type"]
        assert probe["nb_inputs"] == len(op.inputs) and probe["nb_outputs"] == len(op.outputs)
        expected = ["FLOAT" if name in WEIGHT_INPUTS[op.name] else "HALF" for name in op.inputs] + ["HALF"]
        assert probe["preferred"] == expected
        assert probe["output_type"] == "HALF"
        assert probe["rejects_int32_input0"] and probe["rejects_vectorized_input0"]
        assert probe["metadata"].startswith("lictrt plugins 1; TensorRT headers ")


def test_list_creators_reports_a_missing_library_in_one_line(build_dir, tmp_path):
    proc = subprocess.run([str(build_dir / "list_creators"), str(tmp_path / "nope.so")], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: cannot load") and proc.stderr.count("\n") == 1


def test_list_creators_rejects_a_library_without_get_creators(build_dir):
    proc = subprocess.run(
        [str(build_dir / "list_creators"), str(build_dir / "liblictrt_kernels.so")], capture_output=True, text=True
    )
    assert proc.returncode == 1 and "does not export getCreators" in proc.stderr


# ------------------------------------------------------------------ host-side behaviour of the kernels library


@pytest.fixture(scope="module")
def kernels(build_dir):
    return Kernels(build_dir / "liblictrt_kernels.so")


def test_status_strings_and_version(kernels):
    assert kernels.status_string(0) == "ok"
    assert kernels.status_string(3) == "workspace missing or too small"
    assert kernels.status_string(99) == "unknown status"
    assert kernels.version().startswith("lictrt-kernels")


def test_ss2d_workspace_holds_an_fp32_accumulator_only_for_fp16_output(kernels):
    B, Di, H, W, N, R = 2, 24, 33, 65, 16, 3
    fp32 = kernels.ss2d_workspace_size(B, Di, H, W, N, R, FP32)
    fp16 = kernels.ss2d_workspace_size(B, Di, H, W, N, R, FP16)
    assert fp16 - fp32 == B * Di * H * W * 4
    # chunk states grow with d_state: at least 4 directions x one N-vector per (b, c)
    assert fp32 >= 4 * B * Di * N * 4
    assert kernels.ss2d_workspace_size(B, Di, H, W, 1, R, FP32) < fp32
    # dt_proj is fused into the scan kernels: no [B, 4Di, L] delta in the workspace, whatever the dt rank
    assert fp32 < B * 4 * Di * H * W * 4
    assert kernels.ss2d_workspace_size(B, Di, H, W, N, 64, FP32) == fp32


@pytest.mark.parametrize(
    "shape, dtype, status",
    [
        ((1, 8, 4, 4, 17, 2), FP32, 2),  # d_state above LICTRT_SS2D_MAX_DSTATE
        ((1, 8, 4, 4, 0, 2), FP32, 1),  # d_state 0
        ((1, -1, 4, 4, 4, 2), FP32, 1),  # negative size
        ((1, 8, 4, 4, 4, -1), FP32, 1),  # negative dt rank
        ((1, 8, 4, 4, 4, 2), 7, 1),  # unknown dtype
    ],
)
def test_ss2d_workspace_rejects_bad_shapes_with_a_status(kernels, shape, dtype, status):
    with pytest.raises(KernelError) as err:
        kernels.ss2d_workspace_size(*shape, dtype)
    assert err.value.status == status


def _ss2d_call(kernels, ptr, shape, softplus=1, dtype=FP32, ws_bytes=0):
    fake = ctypes.c_void_p(ptr) if ptr else None
    return kernels.lib.lictrt_ss2d_forward(
        fake, fake, fake, fake, fake, fake, fake, None, fake, *shape, softplus, dtype, fake, ws_bytes, None
    )


def test_ss2d_forward_checks_arguments_before_touching_the_gpu(kernels):
    shape = (1, 8, 4, 4, 4, 2)  # B, Di, H, W, N, R
    assert _ss2d_call(kernels, 0, shape) == 1  # null pointers
    assert _ss2d_call(kernels, 0x1000, shape, softplus=2) == 1  # delta_softplus must be 0 or 1
    assert _ss2d_call(kernels, 0x1000, shape, ws_bytes=16) == 3  # workspace too small (fake pointers unused)
    assert _ss2d_call(kernels, 0x1000, (1, 8, 4, 4, 32, 2)) == 2
    assert _ss2d_call(kernels, 0, (1, 8, 0, 4, 4, 2)) == 0  # empty output: nothing to do


def test_gdn_forward_checks_arguments_before_touching_the_gpu(kernels):
    f = kernels.lib.lictrt_gdn_forward
    fake = ctypes.c_void_p(0x1000)
    assert f(None, None, None, None, 1, 8, 16, 0, FP32, None) == 1  # null pointers
    assert f(fake, fake, fake, fake, 1, 8, 16, 2, FP32, None) == 1  # inverse must be 0 or 1
    assert f(fake, fake, fake, fake, 1, 8, 16, 0, 5, None) == 1  # unknown dtype
    assert f(fake, fake, fake, fake, 1, harness.MAX_GDN_CHANNELS + 1, 16, 0, FP32, None) == 2
    assert f(None, None, None, None, 1, 8, 0, 0, FP16, None) == 0  # empty image


def test_harness_reports_a_missing_library_clearly(tmp_path, monkeypatch):
    monkeypatch.delenv("LICTRT_KERNELS_LIB", raising=False)
    with pytest.raises(harness.HarnessError, match="not found; build it with"):
        Kernels.load(build_dir=tmp_path)


# ------------------------------------------------------------------ the kernel sources under the CPU emulation
# liblictrt_kernels_cpu.so compiles the very .cu files with a host compiler and runs every CUDA block as a set of
# std::threads (trt_plugins/common/cpu_emulation.h): it checks the indexing, the chunk carries, the direction
# merge and the shared-memory synchronisation on CI.  The same checks on a real GPU: tests/trt_plugins/test_kernels_gpu.py.


@pytest.fixture(scope="module")
def emulated(build_dir):
    torch.set_num_threads(1)
    k = Kernels.load_cpu_emulation(build_dir)
    assert k.emulated
    return k


EMULATED_SCAN_SHAPES = [  # (B, Di, H, W, N), each crossing a different boundary of the kernels
    (1, 3, 5, 7, 1),  # tiny, d_state 1
    (1, 3, 30, 41, 4),  # L = 1230: three axis-0 chunks, ragged last tile; W > 32 column lanes
    (1, 2, 300, 3, 2),  # H > 256: two row segments per column (axis-1 carry)
    (1, 130, 2, 3, 1),  # Di > 128: two channel blocks in axis 0, partial warp
    (2, 3, 17, 40, 16),  # batch 2, full d_state
]


@pytest.mark.parametrize("shape", EMULATED_SCAN_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_emulated_selective_scan_2d_matches_the_float64_reference(emulated, shape, dtype):
    inputs = scan_inputs(*shape, seed=sum(shape), device="cpu")
    y = run_scan_poisoned(emulated, inputs, dtype)
    assert y.dtype == dtype and torch.isfinite(y).all()
    assert rel_err(y, ss2d_reference(*inputs)) <= {torch.float32: 1e-4, torch.float16: 1e-2}[dtype]


def test_emulated_selective_scan_2d_without_softplus_or_bias(emulated):
    inputs = scan_inputs(1, 4, 9, 11, 3, seed=2, device="cpu", softplus=False)
    y = run_scan_poisoned(emulated, inputs, torch.float32, softplus=False, use_bias=False)
    assert rel_err(y, ss2d_reference(*inputs[:7], delta_bias=None, delta_softplus=False)) <= 1e-4


def test_emulated_selective_scan_2d_is_deterministic(emulated):
    inputs = scan_inputs(1, 5, 12, 50, 16, seed=4, device="cpu")
    first = run_scan_poisoned(emulated, inputs, torch.float32)
    assert torch.equal(run_scan_poisoned(emulated, inputs, torch.float32), first)


def test_harness_rejects_inputs_that_break_the_contract(emulated):
    inputs = scan_inputs(1, 2, 3, 3, 1, seed=0, device="cpu")
    with pytest.raises(KernelError, match="shape"):
        emulated.selective_scan_2d(inputs[0], inputs[0], *inputs[2:])  # dts has the wrong shape
    x, gamma, beta = gdn_inputs(1, 4, 3, 3, seed=0, dtype=torch.float32, device="cpu")
    with pytest.raises(KernelError, match="float32"):
        emulated.generalized_divisive_norm(x, gamma.double(), beta)


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 40, 6, 9), (1, 400, 3, 5)], ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("inverse", [False, True], ids=["gdn", "igdn"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_emulated_generalized_divisive_norm_matches_the_float64_reference(emulated, shape, inverse, dtype):
    x, gamma, beta = gdn_inputs(*shape, seed=sum(shape), dtype=dtype, device="cpu")
    y = run_gdn_poisoned(emulated, x, gamma, beta, inverse)
    assert torch.isfinite(y).all()
    assert rel_err(y, gdn_reference(x, gamma, beta, inverse)) <= {torch.float32: 1e-5, torch.float16: 1e-2}[dtype]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error path")
def test_bench_cli_fails_in_one_line_without_a_gpu():
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "trt_plugins.harness", "bench"], capture_output=True, text=True, cwd=harness.REPO_ROOT
    )
    assert proc.returncode == 2
    assert proc.stderr == "error: bench needs a CUDA GPU\n"
