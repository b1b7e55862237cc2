"""export/passes.py: the sub-pixel ConvTranspose and split-projection rewrites equal the original graph (float tolerance), touch only
what it can rewrite exactly, and never runs on parse-critical graphs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

ort = pytest.importorskip("onnxruntime")

from export.passes import (  # noqa: E402
    FORMS,
    PassError,
    optimize_reconstruction,
    split_projection,
    subpixel_conv_transpose,
)


def conv_transpose_model(cin=6, cout=20, k=5, s=2, pads=(2, 2, 2, 2), op=(1, 1), bias=True, group=1, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((cin, cout // group, k, k)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w")]
    inputs = ["x", "w"]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(cout).astype(np.float32), "b"))
        inputs.append("b")
    node = helper.make_node(
        "ConvTranspose",
        inputs,
        ["y"],
        name="deconv",
        strides=[s, s],
        pads=list(pads),
        output_padding=list(op),
        kernel_shape=[k, k],
        group=group,
    )
    g = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cout, "oh", "ow"])],
        inits,
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)])


def run(model, x):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    s = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return s.run(None, {"x": x})[0]


def ops(model):
    return [n.op_type for n in model.graph.node]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("k,pads,op", [(5, (2, 2, 2, 2), (1, 1)), (3, (1, 1, 1, 1), (1, 1)), (4, (1, 1, 1, 1), (0, 0))])
@pytest.mark.parametrize("bias", [True, False])
def test_rewrite_equals_conv_transpose_on_odd_and_even_sizes(form, k, pads, op, bias):
    original = conv_transpose_model(k=k, pads=pads, op=op, bias=bias)
    rewritten = conv_transpose_model(k=k, pads=pads, op=op, bias=bias)
    assert subpixel_conv_transpose(rewritten, form) == 1
    onnx.checker.check_model(rewritten, full_check=True)
    assert "ConvTranspose" not in ops(rewritten)
    # phases interleave with Concat + Transpose (DepthToSpace is ~5× slower in onnxruntime); fused has one output
    assert ops(rewritten)[-1] == ("DepthToSpace" if form == "fused" else "Reshape")
    assert form == "fused" or "DepthToSpace" not in ops(rewritten)
    assert all(t.name not in ("w", "b") for t in rewritten.graph.initializer)  # the old weights are dropped
    rng = np.random.default_rng(1)
    for h, w in [(1, 1), (5, 7), (6, 8), (9, 4)]:
        x = rng.standard_normal((1, 6, h, w)).astype(np.float32)
        ref, got = run(original, x), run(rewritten, x)
        assert got.shape == ref.shape == (1, 20, 2 * h, 2 * w)
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_phases_form_keeps_the_exact_tap_count_and_fused_form_is_one_conv():
    phases, fused = conv_transpose_model(), conv_transpose_model()
    subpixel_conv_transpose(phases, "phases")
    subpixel_conv_transpose(fused, "fused")
    inits = {t.name: numpy_helper.to_array(t) for t in phases.graph.initializer}
    taps = sum(
        inits[n.input[1]].shape[2] * inits[n.input[1]].shape[3] for n in phases.graph.node if n.op_type == "Conv"
    )
    assert taps == 25 and ops(phases).count("Conv") == 4 and "Transpose" in ops(phases)
    assert ops(fused) == ["Conv", "DepthToSpace"]
    w = {t.name: numpy_helper.to_array(t) for t in fused.graph.initializer}[fused.graph.node[0].input[1]]
    assert w.shape == (4 * 20, 6, 3, 3)


@pytest.mark.parametrize("form", FORMS)
def test_stride_three_interleaves_nine_phases(form):
    original = conv_transpose_model(k=3, s=3, pads=(0, 0, 0, 0), op=(0, 0))
    rewritten = conv_transpose_model(k=3, s=3, pads=(0, 0, 0, 0), op=(0, 0))
    assert subpixel_conv_transpose(rewritten, form) == 1
    x = np.random.default_rng(2).standard_normal((1, 6, 4, 5)).astype(np.float32)
    ref, got = run(original, x), run(rewritten, x)
    assert got.shape == ref.shape == (1, 20, 12, 15)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def with_gdn(extra_reader: bool = False):
    """ConvTranspose → lictrt GeneralizedDivisiveNorm (inverse) → output; optionally a second reader of y."""
    from export import registry as R

    m = conv_transpose_model()
    g = m.graph
    rng = np.random.default_rng(3)
    g.initializer.extend(
        [
            numpy_helper.from_array((rng.random((20, 20)) * 0.1).astype(np.float32), "gamma"),
            numpy_helper.from_array((rng.random(20) + 0.5).astype(np.float32), "beta"),
        ]
    )
    g.node.append(
        helper.make_node(
            R.GENERALIZED_DIVISIVE_NORM.name,
            ["y", "gamma", "beta"],
            ["z"],
            name="igdn",
            domain=R.DOMAIN,
            **R.node_attrs(R.GENERALIZED_DIVISIVE_NORM.name, inverse=1),
        )
    )
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 20, "oh", "ow"]))
    if extra_reader:
        g.node.append(helper.make_node("Relu", ["y"], ["r"]))
        g.output.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 20, "oh", "ow"]))
    R.add_function_bodies(m)
    return m


@pytest.mark.parametrize("extra_reader", [False, True])
def test_a_gdn_reading_only_the_conv_transpose_runs_per_phase_before_the_interleave(extra_reader):
    original, rewritten = with_gdn(extra_reader), with_gdn(extra_reader)
    assert subpixel_conv_transpose(rewritten) == 1
    onnx.checker.check_model(rewritten, full_check=True)
    gdns = [n for n in rewritten.graph.node if n.op_type == "GeneralizedDivisiveNorm"]
    phase_outputs = {n.output[0] for n in rewritten.graph.node if n.op_type == "Conv"}
    if extra_reader:  # y is needed as a whole: the GDN stays after the interleave
        assert len(gdns) == 1 and gdns[0].input[0] == "y"
    else:
        assert len(gdns) == 4 and {n.input[0] for n in gdns} == phase_outputs
        assert all(n.domain == "lictrt" and n.attribute == original.graph.node[-1].attribute for n in gdns)
    x = np.random.default_rng(4).standard_normal((1, 6, 5, 7)).astype(np.float32)
    ref, got = run(original, x), run(rewritten, x)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cout": 3},  # image layer: below MIN_OUT_CHANNELS, kept as measured faster
        {"group": 2},  # grouped
        {"s": 1, "k": 3, "pads": (1, 1, 1, 1), "op": (0, 0)},  # not strided
        {"op": (0, 0)},  # output 2n-1, not exactly 2n
    ],
)
def test_ineligible_conv_transposes_are_left_alone(kwargs):
    m = conv_transpose_model(**kwargs)
    before = m.SerializeToString()
    assert subpixel_conv_transpose(m) == 0
    assert m.SerializeToString() == before


def test_unknown_form_and_parse_critical_graphs_are_refused():
    m = conv_transpose_model()
    with pytest.raises(PassError, match="unknown sub-pixel form"):
        subpixel_conv_transpose(m, "winograd")
    m.metadata_props.add(key="lictrt.graph", value="hyper_synthesis")
    m.metadata_props.add(key="lictrt.parse_critical", value="true")
    with pytest.raises(PassError, match="parse-critical"):
        optimize_reconstruction(m)
    assert "ConvTranspose" in ops(m)


def test_optimize_reconstruction_records_the_pass_in_metadata():
    m = conv_transpose_model()
    assert optimize_reconstruction(m)["subpixel_conv_transpose"] == 1
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["lictrt.passes"] == "subpixel_conv_transpose:phases:1"


def test_a_weight_still_read_elsewhere_is_kept():
    m = conv_transpose_model()
    m.graph.node.append(helper.make_node("Identity", ["w"], ["w_copy"]))
    m.graph.output.append(helper.make_tensor_value_info("w_copy", TensorProto.FLOAT, [6, 20, 5, 5]))
    assert subpixel_conv_transpose(m) == 1
    names = {t.name for t in m.graph.initializer}
    assert "w" in names and "b" not in names
    onnx.checker.check_model(m, full_check=True)


def projection_model(n=12, sizes=None, bias=False, axis=3, extra_reader=False, seed=0):
    """x [1, h, w, 8] → MatMul by a constant [8, n] (→ + bias) → Split(axis) into 2 parts (or ``sizes``)."""
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(rng.standard_normal((8, n)).astype(np.float32), "w")]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["p"], name="in_proj")]
    src = "p"
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(n).astype(np.float32), "b"))
        nodes.append(helper.make_node("Add", ["p", "b"], ["pb"], name="in_proj_bias"))
        src = "pb"
    split_in, kw = [src], {"num_outputs": 2}
    if sizes is not None:
        inits.append(numpy_helper.from_array(np.asarray(sizes, dtype=np.int64), "sizes"))
        split_in, kw = [src, "sizes"], {}
    parts = len(sizes) if sizes is not None else 2
    outs = [f"y{i}" for i in range(parts)]
    nodes.append(helper.make_node("Split", split_in, outs, name="chunk", axis=axis, **kw))
    graph_outs = [
        helper.make_tensor_value_info(o, TensorProto.FLOAT, [1, "h", "w", f"c{i}"]) for i, o in enumerate(outs)
    ]
    if extra_reader:
        nodes.append(helper.make_node("Identity", [src], ["whole"]))
        graph_outs.append(helper.make_tensor_value_info("whole", TensorProto.FLOAT, [1, "h", "w", n]))
    g = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "h", "w", 8])], graph_outs, inits
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)])


def run_all(model, x):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, {"x": x})


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("n,sizes", [(12, None), (13, None), (12, [3, 5, 4])])
@pytest.mark.parametrize("axis", [3, -1])
def test_split_projection_gives_each_part_its_own_matmul_with_the_same_values(bias, n, sizes, axis):
    x = np.random.default_rng(1).standard_normal((1, 5, 7, 8)).astype(np.float32)
    m = projection_model(n, sizes, bias, axis)
    want = run_all(m, x)
    assert split_projection(m) == 1
    onnx.checker.check_model(m, full_check=True)
    assert "Split" not in ops(m) and ops(m).count("MatMul") == len(want)
    assert {t.name for t in m.graph.initializer}.isdisjoint({"w", "b"})  # the whole weight is gone
    got = run_all(m, x)
    assert [g.shape for g in got] == [w.shape for w in want]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kwargs", [dict(axis=1), dict(axis=2), dict(extra_reader=True)])
def test_split_projection_leaves_other_splits_and_shared_products_alone(kwargs):
    m = projection_model(**kwargs)
    before = m.SerializeToString()
    assert split_projection(m) == 0
    assert m.SerializeToString() == before


def test_optimize_reconstruction_runs_both_passes_and_records_them():
    m = projection_model()
    applied = optimize_reconstruction(m)
    assert applied["split_projection"] == 1 and applied["subpixel_conv_transpose"] == 0
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["lictrt.passes"] == "split_projection:1"
