"""The lictrt custom ops: torch ops, ONNX nodes and function bodies agree with the references."""

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from export import registry as R
from export.op_contracts import DOMAIN, GENERALIZED_DIVISIVE_NORM, OPS, SELECTIVE_SCAN_2D

ort = pytest.importorskip("onnxruntime")


def _single_op_model(op: str, inputs: dict, out_shape, dtype=TensorProto.FLOAT, opset=20, **fields):
    ins = [
        helper.make_tensor_value_info(
            n, TensorProto.FLOAT if n in ("dt_weight", "A", "D", "delta_bias", "gamma", "beta") else dtype, s
        )
        for n, s in inputs.items()
    ]
    node = helper.make_node(op, list(inputs), ["y"], domain=DOMAIN, **R.node_attrs(op, **fields))
    g = helper.make_graph([node], op, ins, [helper.make_tensor_value_info("y", dtype, out_shape)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    R.add_function_bodies(m)
    onnx.checker.check_model(m, full_check=True)
    return m


def _run(m, feed):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    s = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return s.run(None, {k: v.numpy() for k, v in feed.items()})[0]


SCAN_SHAPES = dict(
    u=["b", "d", "h", "w"],
    dts=["b", 4, "r", "h", "w"],
    dt_weight=["kd", "r"],
    A=["kd", "n"],
    Bs=["b", 4, "n", "h", "w"],
    Cs=["b", 4, "n", "h", "w"],
    D=["kd"],
    delta_bias=["kd"],
)


def _scan_inputs(B, Di, N, H, W, a_scale=1.0, seed=0, R=2):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    return dict(
        u=r(B, Di, H, W),
        dts=r(B, 4, R, H, W),
        dt_weight=r(4 * Di, R) / R**0.5,  # delta = dt_proj(dts) ~ N(0, 1)
        A=-(torch.rand(4 * Di, N, generator=g) * a_scale + 0.01),
        Bs=r(B, 4, N, H, W),
        Cs=r(B, 4, N, H, W),
        D=r(4 * Di),
        delta_bias=r(4 * Di),
    )


@pytest.fixture(scope="module")
def scan_model():
    return _single_op_model("SelectiveScan2D", SCAN_SHAPES, ["b", "d", "h", "w"])


def test_contract_fields_are_typed_node_attributes():
    a = R.node_attrs("SelectiveScan2D")
    assert a == {"plugin_namespace": "lictrt", "plugin_version": "2", "delta_softplus": 1}
    assert R.node_attrs("GeneralizedDivisiveNorm", inverse=True)["inverse"] == 1
    assert R.plugin_fields("GeneralizedDivisiveNorm") == [("inverse", "INT32")]
    with pytest.raises(R.RegistryError):
        R.node_attrs("GeneralizedDivisiveNorm", bogus=1)
    with pytest.raises(R.RegistryError):
        R.plugin_fields("Nope")


@pytest.mark.parametrize("op", list(OPS))
def test_function_body_opset_matches_model_and_has_no_loops(op):
    for opset in (18, 20, 21):
        f = R.function_body(op, opset)
        assert f.domain == DOMAIN and f.name == op
        assert [(o.domain, o.version) for o in f.opset_import] == [("", opset)]
        assert list(f.input) == list(OPS[op].inputs) and list(f.output) == list(OPS[op].outputs)
        assert not {n.op_type for n in f.node} & {"Loop", "Scan"}
        assert sum(n.op_type == "If" for n in f.node) == (1 if op == "GeneralizedDivisiveNorm" else 0)  # on `inverse`
    with pytest.raises(R.RegistryError):
        R.function_body(op, 17)


@pytest.mark.parametrize("inverse", [0, 1])
def test_gdn_torch_op_matches_compressai(inverse):
    from compressai.layers import GDN

    torch.manual_seed(0)
    m = GDN(6, inverse=bool(inverse))
    with torch.no_grad():
        m.gamma.add_(0.05 * torch.rand_like(m.gamma))
    x = torch.randn(2, 6, 5, 7)
    gamma = m.gamma_reparam(m.gamma).detach()
    beta = m.beta_reparam(m.beta).detach()
    y = torch.ops.lictrt.generalized_divisive_norm(x, gamma, beta, inverse)
    torch.testing.assert_close(y, m(x).detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("inverse", [0, 1])
def test_gdn_body_in_ort_matches_reference(inverse):
    torch.manual_seed(1)
    C = 5
    x, gamma, beta = torch.randn(1, C, 9, 11), torch.rand(C, C) * 0.2, torch.rand(C) + 0.5
    m = _single_op_model(
        "GeneralizedDivisiveNorm",
        dict(x=["b", C, "h", "w"], gamma=[C, C], beta=[C]),
        ["b", C, "h", "w"],
        inverse=inverse,
    )
    out = _run(m, dict(x=x, gamma=gamma, beta=beta))
    ref = R.gdn_reference(x, gamma, beta, inverse).numpy()
    assert np.abs(out - ref).max() <= 1e-6 * np.abs(ref).max()


@pytest.mark.parametrize("inverse, kept, dropped", [(0, "Div", "Mul"), (1, "Mul", "Div")])
def test_gdn_body_folds_to_one_branch_in_ort(tmp_path, inverse, kept, dropped):
    """inverse is a constant after inlining: ORT's basic level folds the If, so only the needed op runs."""
    C = 4
    m = _single_op_model(
        "GeneralizedDivisiveNorm", dict(x=[1, C, 3, 3], gamma=[C, C], beta=[C]), [1, C, 3, 3], inverse=inverse
    )
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node]
    assert "If" not in ops and "Where" not in ops and kept in ops
    assert ops.count(dropped) == (1 if dropped == "Mul" else 0)  # the one Mul left for inverse=0 is x·x


def test_gdn_fp16_body_keeps_the_sum_in_fp32():
    """|x| = 300: x² = 90000 overflows fp16 (max 65504); the body squares and sums in fp32."""
    C = 3
    x = torch.full((1, C, 2, 2), 300.0)
    gamma, beta = torch.eye(C) * 0.1, torch.ones(C)
    m = _single_op_model(
        "GeneralizedDivisiveNorm", dict(x=[1, C, 2, 2], gamma=[C, C], beta=[C]), [1, C, 2, 2], dtype=TensorProto.FLOAT16
    )
    so = ort.SessionOptions()
    out = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(
        None, dict(x=x.half().numpy(), gamma=gamma.numpy(), beta=beta.numpy())
    )[0]
    assert out.dtype == np.float16 and np.isfinite(out).all()
    ref = R.gdn_reference(x, gamma, beta, 0).numpy()
    assert np.abs(out.astype(np.float32) - ref).max() <= 2e-3 * np.abs(ref).max()


def test_reference_scan_matches_train_sequence_reference():
    """export's 2-D contract reference == train's 1-D selective_scan_ref on the 4 direction sequences."""
    from train.layers import scan as S
    from train.layers import ss2d

    d = _scan_inputs(1, 3, 2, 4, 5)
    B, Di, H, W = d["u"].shape
    u_seq = torch.cat([ss2d.to_direction(d["u"], k) for k in range(4)], 1).double()
    dl = ss2d.dt_project(d["dts"].double(), d["dt_weight"].double()).unflatten(1, (4, Di))
    d_seq = torch.cat([ss2d.to_direction(dl[:, k], k) for k in range(4)], 1).double()
    B_seq = torch.stack([ss2d.to_direction(d["Bs"][:, k], k) for k in range(4)], 1).double()
    C_seq = torch.stack([ss2d.to_direction(d["Cs"][:, k], k) for k in range(4)], 1).double()
    ys = S.selective_scan_ref(
        u_seq, d_seq, d["A"].double(), B_seq, C_seq, d["D"].double(), d["delta_bias"].double(), True
    ).unflatten(1, (4, Di))
    y = sum(ss2d.from_direction(ys[:, k], k, H, W) for k in range(4))
    ours = R.selective_scan_reference(**{k: v.double() for k, v in d.items()})
    torch.testing.assert_close(ours, y, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "shape,a_scale",
    [
        ((2, 3, 2, 5, 7), 1.0),  # odd sizes, batch 2
        ((1, 2, 3, 16, 16), 4.0),
        ((1, 2, 2, 9, 8), 80.0),  # strongly negative A: exp(dt*A) underflows, the masked form must not overflow
    ],
)
def test_scan_body_matches_float64_reference(scan_model, shape, a_scale):
    d = _scan_inputs(*shape, a_scale=a_scale)
    if a_scale > 10:
        d["delta_bias"] = d["delta_bias"] + 3.0  # large dt too
    out = _run(scan_model, d)
    ref = R.selective_scan_reference(**{k: v.double() for k, v in d.items()}).numpy()
    assert np.isfinite(out).all()
    assert np.abs(out - ref).max() <= 1e-5 * np.abs(ref).max()


def test_scan_body_long_sequence_matches_train_reference(scan_model):
    """L = 4096 (64x64): every hierarchy level is used; compared with train's float64 sequential scan."""
    from train.layers import ss2d

    d = _scan_inputs(1, 2, 2, 64, 64, a_scale=2.0, seed=3)
    d["delta_bias"] = d["delta_bias"] - 2.0  # small dt: long memory, the inter-block state carries far
    out = _run(scan_model, d)
    from train.layers import scan as S

    B, Di, H, W = d["u"].shape
    dd = {k: v.double() for k, v in d.items()}
    u_seq = torch.cat([ss2d.to_direction(dd["u"], k) for k in range(4)], 1)
    dl = ss2d.dt_project(dd["dts"], dd["dt_weight"]).unflatten(1, (4, Di))
    d_seq = torch.cat([ss2d.to_direction(dl[:, k], k) for k in range(4)], 1)
    B_seq = torch.stack([ss2d.to_direction(dd["Bs"][:, k], k) for k in range(4)], 1)
    C_seq = torch.stack([ss2d.to_direction(dd["Cs"][:, k], k) for k in range(4)], 1)
    ys = S.selective_scan_ref(u_seq, d_seq, dd["A"], B_seq, C_seq, dd["D"], dd["delta_bias"], True)
    ref = sum(ss2d.from_direction(ys.unflatten(1, (4, Di))[:, k], k, H, W) for k in range(4)).numpy()
    assert np.abs(out - ref).max() <= 1e-5 * np.abs(ref).max()


def test_scan_without_softplus_attribute():
    d = _scan_inputs(1, 2, 2, 3, 4)
    d["dts"], d["dt_weight"] = d["dts"].abs(), d["dt_weight"].abs()  # delta >= 0: a valid step without softplus
    m = _single_op_model("SelectiveScan2D", SCAN_SHAPES, ["b", "d", "h", "w"], delta_softplus=0)
    d["delta_bias"] = d["delta_bias"].abs()
    out = _run(m, d)
    ref = R.selective_scan_reference(**{k: v.double() for k, v in d.items()}, delta_softplus=0).numpy()
    assert np.abs(out - ref).max() <= 1e-5 * np.abs(ref).max()


def test_torch_ops_have_fake_kernels():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        x = torch.empty(1, 4, 3, 3)
        y = torch.ops.lictrt.generalized_divisive_norm(x, torch.empty(4, 4), torch.empty(4), 0)
    assert y.shape == x.shape
    d = _scan_inputs(1, 2, 2, 3, 3)
    out = torch.ops.lictrt.selective_scan_2d(*[d[k] for k in SELECTIVE_SCAN_2D.inputs], 1)
    ref = R.selective_scan_reference(**d, dtype=torch.float64)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_lictrt_ops_patches_and_restores():
    from compressai.layers import GDN

    from train.layers import ss2d

    fwd, scan = GDN.forward, ss2d.selective_scan_2d
    m = GDN(4)
    with pytest.raises(KeyError):
        with R.lictrt_ops(m):
            assert GDN.forward is not fwd and ss2d.selective_scan_2d is R.selective_scan_2d
            assert m._lictrt_gamma.shape == (4, 4)
            x = torch.rand(1, 4, 3, 3)
            torch.testing.assert_close(m(x), R.gdn_reference(x, m._lictrt_gamma, m._lictrt_beta, 0))
            raise KeyError("boom")
    assert GDN.forward is fwd and ss2d.selective_scan_2d is scan
    assert not hasattr(m, "_lictrt_gamma")


def test_contract_names():
    assert GENERALIZED_DIVISIVE_NORM.name in OPS and SELECTIVE_SCAN_2D.name in OPS
