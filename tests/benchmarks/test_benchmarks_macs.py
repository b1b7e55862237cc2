"""MACs counting: explicit per-op formulas on ONNX graphs, the bmshj2018 reference figure, the torch cross-check."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from benchmarks import macs


def _init(name, shape):
    return numpy_helper.from_array(np.zeros(shape, np.float32), name)


def _toy_graph():
    """Conv (groups=2), ConvTranspose (stride 2), MatMul, Gemm, lictrt SelectiveScan2D and GeneralizedDivisiveNorm."""
    nodes = [
        helper.make_node("Conv", ["x", "wc"], ["c"], group=2, pads=[1, 1, 1, 1]),  # [1,6,8,8]
        helper.make_node("ConvTranspose", ["c", "wt"], ["t"], strides=[2, 2], pads=[1, 1, 1, 1]),  # [1,3,16,16]
        helper.make_node("MatMul", ["a", "b"], ["mm"]),  # [1,2,5,3]
        helper.make_node("Gemm", ["g", "gb"], ["gm"], transB=1),  # [5,3]
        helper.make_node(
            "SelectiveScan2D",
            ["u", "dts", "dtw", "A", "Bs", "Cs", "D", "db"],
            ["s"],
            domain="lictrt",
            delta_softplus=1,
            plugin_namespace="lictrt",
            plugin_version="2",
        ),
        helper.make_node("Conv", ["s", "w1"], ["s1"]),  # needs the scan's output shape from the contract
        helper.make_node("GeneralizedDivisiveNorm", ["x", "gamma", "beta"], ["n"], domain="lictrt", inverse=0),
        helper.make_node("Relu", ["n"], ["n1"]),
    ]
    f = lambda n, s: helper.make_tensor_value_info(n, TensorProto.FLOAT, s)  # noqa: E731
    inputs = [
        f("x", [1, 4, 8, 8]),
        f("a", [1, 2, 5, 7]),
        f("g", [5, 7]),
        f("u", [1, 4, 8, 8]),
        f("dts", [1, 4, 2, 8, 8]),
        f("Bs", [1, 4, 3, 8, 8]),
        f("Cs", [1, 4, 3, 8, 8]),
    ]
    inits = [
        _init("wc", [6, 2, 3, 3]),
        _init("wt", [6, 3, 4, 4]),
        _init("b", [7, 3]),
        _init("gb", [3, 7]),
        _init("dtw", [16, 2]),
        _init("A", [16, 3]),
        _init("D", [16]),
        _init("db", [16]),
        _init("w1", [2, 4, 1, 1]),
        _init("gamma", [4, 4]),
        _init("beta", [4]),
    ]
    outputs = [f(n, None) for n in ("t", "mm", "gm", "s1", "n1")]
    graph = helper.make_graph(nodes, "toy", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("lictrt", 1)])


def test_each_op_counted_with_its_formula():
    model = _toy_graph()
    shapes = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    c = macs.count_graph(model, shapes, "toy")
    conv = 1 * 6 * 8 * 8 * (4 // 2) * 3 * 3  # Cout·Hout·Wout·Cin/groups·kh·kw
    conv_after_scan = 2 * 8 * 8 * 4  # 1x1 conv on the scan output (shape from the contract)
    deconv = 1 * 6 * 8 * 8 * 3 * 4 * 4  # per INPUT pixel: Cin·Hin·Win·Cout·kh·kw
    matmul = 2 * 5 * 7 * 3 + 5 * 7 * 3  # batched MatMul + Gemm(transB)
    scan = 4 * (64 * 4 * 2 + 3 * 64 * 4 * 3 + 2 * 64 * 4)  # K=4 · (L·Di·R + 3·L·Di·N + 2·L·Di)
    gdn = 4 * 4 * 8 * 8  # C·C·H·W
    assert c.macs == {"conv": conv + conv_after_scan, "deconv": deconv, "gdn": gdn, "matmul": matmul, "scan": scan}
    assert c.exps == 4 * 64 * 4 * 3  # L·Di·N per direction, listed separately
    assert c.scan_macs == scan
    assert c.uncounted == {}


def test_decomposed_gdn_is_recognised_and_deconv_is_not_per_output_pixel():
    """Pow(x,2) -> Conv 1x1 counts as GDN; a stride-2 deconv counts Hin·Win, not the 4x larger Hout·Wout."""
    nodes = [
        helper.make_node("Pow", ["x", "two"], ["x2"]),
        helper.make_node("Conv", ["x2", "gamma"], ["nrm"]),
        helper.make_node("ConvTranspose", ["x", "wt"], ["t"], strides=[2, 2], output_padding=[1, 1], pads=[2, 2, 2, 2]),
    ]
    inits = [
        numpy_helper.from_array(np.array(2.0, np.float32), "two"),
        _init("gamma", [8, 8, 1, 1]),
        _init("wt", [8, 3, 5, 5]),
    ]
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 16, 16])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("nrm", "t")],
        inits,
    )
    c = macs.count_graph(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]), {"x": [1, 8, 16, 16]})
    assert c.macs["gdn"] == 8 * 8 * 16 * 16
    assert c.macs["conv"] == 0
    assert c.macs["deconv"] == 8 * 16 * 16 * 3 * 25


def test_control_flow_is_refused_with_a_clear_error():
    body = helper.make_graph([], "b", [], [])
    node = helper.make_node("If", ["c"], ["o"], then_branch=body, else_branch=body)
    g = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("o", TensorProto.FLOAT, None)],
    )
    with pytest.raises(macs.MacsError, match="control-flow"):
        macs.count_graph(helper.make_model(g), {"c": []})


def test_bundle_split_into_encoder_decoder_and_parse_critical(tmp_path):
    """Manifest H/W expressions size the inputs; parse-critical graphs count on both sides."""

    def conv_graph(cin, cout, k, inp):
        node = helper.make_node("Conv", [inp, "w"], ["o"], pads=[k // 2] * 4)
        g = helper.make_graph(
            [node],
            "g",
            [helper.make_tensor_value_info(inp, TensorProto.FLOAT, [1, cin, "h", "w"])],
            [helper.make_tensor_value_info("o", TensorProto.FLOAT, None)],
            [_init("w", [cout, cin, k, k])],
        )
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])

    onnx.save(conv_graph(3, 8, 3, "x"), tmp_path / "analysis.onnx")
    onnx.save(conv_graph(4, 8, 1, "z_hat"), tmp_path / "hyper_synthesis.onnx")
    onnx.save(conv_graph(8, 3, 3, "y_hat"), tmp_path / "synthesis.onnx")
    manifest = {
        "format": "lictrt-bundle",
        "format_version": 1,
        "model": {"arch": "toy"},
        "pad_multiple": 64,
        "graphs": {
            "analysis": {
                "file": "analysis.onnx",
                "role": "encoder",
                "parse_critical": False,
                "inputs": [{"name": "x", "shape": [1, 3, "H", "W"]}],
            },
            "hyper_synthesis": {
                "file": "hyper_synthesis.onnx",
                "role": "both",
                "parse_critical": True,
                "inputs": [{"name": "z_hat", "shape": [1, 4, "H/64", "W/64"]}],
            },
            "synthesis": {
                "file": "synthesis.onnx",
                "role": "decoder",
                "parse_critical": False,
                "inputs": [{"name": "y_hat", "shape": [1, 8, "H/16", "W/16"]}],
            },
        },
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    r = macs.count_bundle(tmp_path, (100, 130))  # padded to 128 x 192
    px = 128 * 192
    ana, hyp, syn = 8 * 3 * 9 * px, 8 * 4 * (px // 64**2), 3 * 8 * 9 * (px // 16**2)
    assert r["padded_size"] == [128, 192]
    assert r["total_macs"] == ana + hyp + syn
    assert r["kmac_per_px"]["encoder"] == pytest.approx((ana + hyp) / px / 1e3)
    assert r["kmac_per_px"]["decoder"] == pytest.approx((hyp + syn) / px / 1e3)
    assert r["kmac_per_px"]["parse_critical"] == pytest.approx(hyp / px / 1e3)


def test_bmshj2018_hyperprior_whole_forward_is_5_707_gmac():
    """CompressAI ScaleHyperprior(N=128, M=192) at 256x256: conv 2.558 + deconv 2.444 + GDN 0.705 = 5.707 G."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from compressai.models import ScaleHyperprior

    model = ScaleHyperprior(128, 192)
    r = macs.count_model(model, (256, 256), "bmshj2018-hyperprior")
    cat = r["by_category"]
    assert r["total_macs"] / 1e9 == pytest.approx(5.707, rel=0.01)
    assert cat["conv"] / 1e9 == pytest.approx(2.558, rel=0.01)
    assert cat["deconv"] / 1e9 == pytest.approx(2.444, rel=0.01)
    assert cat["gdn"] / 1e9 == pytest.approx(0.705, rel=0.01)
    assert r["kmac_per_px"]["decoder"] == pytest.approx(43.54, rel=0.01)  # the anchors note's 43.5 kMAC/px
    # cross-check: torch's dispatch-level FlopCounterMode (FLOPs / 2) sees the same convolutions
    assert macs.torch_flops(model, (256, 256))["total_macs"] == r["total_macs"]


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    rc = macs.main([str(tmp_path / "nothing")])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("error:") and len(err.strip().splitlines()) == 1
    assert macs.main(["x.onnx", "--size", "12"]) == 1
