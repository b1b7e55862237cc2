"""Bundle loading refuses malformed bundles with one-line BundleErrors; backends fail clearly."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from runtime.bundle import Bundle, BundleError


def _minimal(tmp_path, **changes):
    d = tmp_path / "b.bundle"
    d.mkdir(exist_ok=True)
    g = {"file": "g.onnx", "role": "x", "parse_critical": False, "inputs": [], "outputs": []}
    m = {
        "format": "lictrt-bundle",
        "format_version": 1,
        "model": {"arch": "t", "hash": "ab" * 32},
        "pad_multiple": 64,
        "precision": "fp32",
        "plan": {"kind": "hyperprior"},
        "graphs": {"analysis": dict(g), "hyper_synthesis": dict(g, parse_critical=True), "synthesis": dict(g)},
    }
    m.update(changes)
    (d / "manifest.json").write_text(json.dumps(m))
    (d / "g.onnx").write_bytes(b"")
    cdf = np.zeros((2, 5), np.int32)
    np.savez(
        d / "tables.npz",
        **{
            "z.cdf": cdf,
            "z.cdf_length": np.full(2, 5, np.int32),
            "z.offset": np.zeros(2, np.int32),
            "z.medians": np.zeros(2, np.float32),
        },
    )
    return d


def test_minimal_bundle_loads(tmp_path):
    b = Bundle.load(_minimal(tmp_path))
    assert b.plan_kind == "hyperprior" and b.model_hash == bytes.fromhex("ab" * 32)
    assert b.graph("hyper_synthesis").parse_critical and b.entropy("z").kind == "factorized"


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"format": "other"}, "format"),
        ({"format_version": 2}, "format_version"),
        ({"plan": {"kind": "magic"}}, "unknown plan kind"),
        ({"pad_multiple": 0}, "pad_multiple"),
        ({"model": {"hash": "xyz"}}, "hash"),
        ({"graphs": {}}, "needs graph"),
    ],
)
def test_bad_manifests_are_refused(tmp_path, changes, message):
    with pytest.raises(BundleError, match=message):
        Bundle.load(_minimal(tmp_path, **changes))


def test_parse_critical_flag_is_required(tmp_path):
    d = _minimal(tmp_path)
    m = json.loads((d / "manifest.json").read_text())
    m["graphs"]["hyper_synthesis"]["parse_critical"] = False
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="parse_critical"):
        Bundle.load(d)


def test_missing_files_and_bad_tables(tmp_path):
    d = _minimal(tmp_path)
    (d / "g.onnx").unlink()
    with pytest.raises(BundleError, match="missing"):
        Bundle.load(d)
    d = _minimal(tmp_path)
    np.savez(
        d / "tables.npz",
        **{
            "z.cdf": np.zeros((2, 5), np.int64),
            "z.cdf_length": np.full(2, 5, np.int32),
            "z.offset": np.zeros(2, np.int32),
        },
    )
    with pytest.raises(BundleError, match="int32"):
        Bundle.load(d)
    np.savez(
        d / "tables.npz",
        **{
            "z.cdf": np.zeros((2, 5), np.int32),
            "z.cdf_length": np.full(3, 5, np.int32),
            "z.offset": np.zeros(2, np.int32),
        },
    )
    with pytest.raises(BundleError, match="do not agree"):
        Bundle.load(d)
    shutil.rmtree(d)
    with pytest.raises(BundleError, match="no bundle"):
        Bundle.load(d)


def test_parse_path_plan_and_mode_codes_come_from_the_extension():
    from runtime import _lictrt, codec, coder, container, plans

    assert container.PARSE_PATHS == ("onnxruntime-cpu-fp32", "torch-cpu-fp32", "torch-cuda-fp32")
    assert container.PARSE_PATHS == tuple(_lictrt.PARSE_PATHS)
    assert container.PLAN_KINDS == plans.KINDS == tuple(_lictrt.PLAN_KINDS)  # every plan kind is implemented
    assert coder.MODES == {"compat": 0, "fast": 1} and container.CODER_MODES == tuple(_lictrt.CODER_MODES)
    assert container.MAX_PIXELS == 1 << 28 == codec.MAX_PIXELS and container.FLAG_RASTER_CONTEXT == 1
    assert container.FLAG_LEVEL == 2 and container.KNOWN_FLAGS == 3 and container.MAX_LEVEL == 16


def test_pinned_session_options():
    import onnxruntime as ort

    from runtime.backends.ort import pinned_session_options

    so = pinned_session_options()
    assert so.intra_op_num_threads == 1 and so.inter_op_num_threads == 1
    assert so.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC


def test_tensorrt_backend_errors_clearly_without_engines(tmp_path):
    from runtime.backends import BackendError
    from runtime.backends import tensorrt as trt_backend

    b = Bundle.load(_minimal(tmp_path))
    assert not trt_backend.TensorRTBackend.available(b)  # no engines/ folder
    try:
        be = trt_backend.TensorRTBackend(b)
    except BackendError as e:  # neither tensorrt nor tensorrt_rtx importable
        assert "TensorRT" in str(e)
        return
    with pytest.raises(BackendError, match="no .* engine for graph 'synthesis'"):
        be.run("synthesis", {"y_hat": np.zeros((1, 2, 1, 1), np.float32)})


def test_engine_lookup_by_name(tmp_path):
    from runtime.backends.tensorrt import find_engine

    d = _minimal(tmp_path)
    (d / "engines").mkdir()
    (d / "engines" / "synthesis.tensorrt_rtx.fp16.sm90.engine").write_bytes(b"x")
    b = Bundle.load(d)
    assert find_engine(b, "synthesis", "tensorrt_rtx").endswith("synthesis.tensorrt_rtx.fp16.sm90.engine")
    assert find_engine(b, "synthesis", "tensorrt") is None
    assert find_engine(b, "analysis", "tensorrt_rtx") is None


def test_runtime_core_imports_neither_torch_nor_train():
    import subprocess
    import sys

    code = (
        "import sys, runtime, runtime.codec, runtime.bundle, runtime.image, runtime.backends.ort, "
        "runtime.backends.tensorrt, runtime.__main__\n"
        "from runtime import plans\n"
        "[plans.get(k) for k in plans.KINDS]\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'train', 'compressai')]\n"
        "assert not bad, bad"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-500:]
