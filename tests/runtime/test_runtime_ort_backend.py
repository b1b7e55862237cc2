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
    assert ort_backend.OPS_VERSION == PLUGIN_VERSION


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
