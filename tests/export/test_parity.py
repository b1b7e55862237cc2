"""export/parity.py: PyTorch's references are plain arrays checked against ONNX Runtime graph by graph; a wrong
output fails the check, a wrong shape is an error."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

pytest.importorskip("onnxruntime")

from export.parity import FP32_REL_TOL, ParityError, Reference, assert_ok, check_references, compare  # noqa: E402


def doubling_graph(path):
    """y = 2·x."""
    g = helper.make_graph(
        [helper.make_node("Add", ["x", "x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "n"])],
    )
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)]), path)
    return path


def ref(x, y, graph="double", label="random 1x5"):
    return Reference(graph, label, "fp32", {"x": x}, {"y": y})


def test_references_are_checked_per_graph_and_a_wrong_output_fails(tmp_path):
    path = doubling_graph(tmp_path / "double.onnx")
    x = np.linspace(-1, 1, 5, dtype=np.float32)[None]
    good, bad = ref(x, 2 * x), ref(x, 2 * x + np.float32(0.01), label="perturbed")
    results = check_references([good, bad], {"double": path}, threads=1)
    assert [(r.input, r.ok) for r in results] == [("random 1x5", True), ("perturbed", False)]
    assert results[0].rel == 0.0 and results[1].rel == pytest.approx(
        0.01 / 2.01, rel=1e-4
    )  # max |err| / max |expected|
    assert results[1].tol == FP32_REL_TOL
    with pytest.raises(ParityError, match=r"double\.y on perturbed"):
        assert_ok(results)


def test_a_shape_mismatch_is_an_error_not_a_number():
    x = np.zeros((1, 4), np.float32)
    with pytest.raises(ParityError, match="ONNX shape"):
        compare(ref(x, x), [np.zeros((1, 5), np.float32)])
