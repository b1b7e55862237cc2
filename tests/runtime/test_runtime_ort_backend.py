"""The ONNX Runtime backend's answer to a graph exported with lictrt ops of another contract version."""

from __future__ import annotations

import pytest
from onnx import TensorProto, helper, save

from export.op_contracts import PLUGIN_VERSION
from runtime.backends import BackendError
from runtime.backends import ort as ort_backend


class _Graphs:
    """The one thing OrtBackend asks of a bundle before running: where a graph's file is."""

    def __init__(self, folder):
        self.folder = folder

    def graph_path(self, graph):
        return self.folder / f"{graph}.onnx"


def _scan_graph(path, inputs, version):
    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in inputs]
    node = helper.make_node(
        "SelectiveScan2D", inputs, ["y"], domain="lictrt", plugin_namespace="lictrt", plugin_version=version
    )
    graph = helper.make_graph([node], "g", ins, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("lictrt", 1)]), path)


def test_runtime_ops_version_is_the_contracts():
    """The version the runtimes check graphs against is lictrt::kOpsVersion (C++), which is the contract's."""
    from runtime import _lictrt

    assert ort_backend.OPS_VERSION == _lictrt.OPS_VERSION == PLUGIN_VERSION


def test_a_graph_with_ops_of_the_old_contract_asks_for_a_re_export(tmp_path):
    """SelectiveScan2D of plugin version 1 took delta [B,4Di,H,W] (7 inputs): ONNX Runtime rejects the node, and
    the backend says why in one line."""
    _scan_graph(tmp_path / "synthesis.onnx", ["u", "delta", "A", "Bs", "Cs", "D", "delta_bias"], "1")
    backend = ort_backend.OrtBackend(_Graphs(tmp_path))
    with pytest.raises(BackendError) as err:
        backend.session("synthesis")
    msg = str(err.value)
    assert "version 1" in msg and f"runs version {PLUGIN_VERSION}" in msg and "re-export" in msg
    assert "\n" not in msg


def test_other_load_errors_keep_onnxruntime_s_message(tmp_path):
    (tmp_path / "analysis.onnx").write_bytes(b"not an onnx file")
    with pytest.raises(BackendError, match="onnxruntime cannot load graph 'analysis'"):
        ort_backend.OrtBackend(_Graphs(tmp_path)).session("analysis")


def test_the_op_version_reader_lists_the_main_graph_s_lictrt_versions(tmp_path):
    """runtime._lictrt.lictrt_op_versions (the C++ reader both runtimes use): the plugin_version of each lictrt node,
    sorted and unique; standard nodes and other attributes ignored; [] for an unreadable or truncated file."""
    from runtime import _lictrt

    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("a", "b")]
    nodes = [
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("GeneralizedDivisiveNorm", ["r"], ["g"], domain="lictrt", inverse=0, plugin_version="3"),
        helper.make_node("SelectiveScan2D", ["g", "b"], ["s"], domain="lictrt", plugin_version="1"),
        helper.make_node("SelectiveScan2D", ["s", "b"], ["y"], domain="lictrt", plugin_version="1"),
        helper.make_node("Foo", ["y"], ["z"], domain="other", plugin_version="9"),
    ]
    out = [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)]
    model = helper.make_model(
        helper.make_graph(nodes, "g", ins, out),
        opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("lictrt", 1), helper.make_opsetid("other", 1)],
    )
    path = tmp_path / "m.onnx"
    save(model, path)
    assert _lictrt.lictrt_op_versions(str(path)) == ["1", "3"]
    data = path.read_bytes()
    for name, blob in (("cut.onnx", data[: len(data) // 2]), ("junk.onnx", b"\xff" * 64), ("empty.onnx", b"")):
        (tmp_path / name).write_bytes(blob)
        assert _lictrt.lictrt_op_versions(str(tmp_path / name)) == []
    assert _lictrt.lictrt_op_versions(str(tmp_path / "missing.onnx")) == []
