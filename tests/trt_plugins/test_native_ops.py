"""The native CPU kernels (liblictrt_cpu_ops): SelectiveScan2D forward/backward and GDN against float64 references,
AVX2 vs portable path, thread-count independence, and the ONNX Runtime custom op against the function body."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from export import registry
from runtime import native_ops
from train.layers import native_scan
from train.layers.gdn import gdn_reference
from trt_plugins.reference import gdn_inputs, rel_err, scan_inputs, ss2d_reference

SCAN_INPUTS = ["u", "dts", "dt_weight", "A", "Bs", "Cs", "D", "delta_bias"]
BACKWARD_INPUTS = ["u", "delta", "A", "Bs", "Cs", "D", "delta_bias"]  # the backward kernel's: the scan after dt_proj

if not native_ops.available():  # built by `pip install -e .` (root CMakeLists.txt); a missing build is a failure
    pytest.fail(f"liblictrt_cpu_ops not built: {native_ops._load()[1]}", pytrace=False)
if not native_scan.native_loaded():  # liblictrt_torch_ops: the CPU kernels of torch.ops.lictrt.*
    pytest.fail(f"liblictrt_torch_ops not loaded: {native_scan._load_torch_ops()}", pytrace=False)


@pytest.fixture
def portable():
    """Runs the body with the portable (non-AVX2) path forced."""
    lib = native_ops.library()
    lib.lictrt_cpu_force_scalar(1)
    try:
        yield
    finally:
        lib.lictrt_cpu_force_scalar(0)


def _threads(n, fn, *args, **kw):
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        return fn(*args, **kw)
    finally:
        torch.set_num_threads(old)


# ------------------------------------------------------------------------------------------------ scan forward
SHAPES = [  # (B, Di, H, W, N): odd H x W, H = 1, W = 1, batch > 1, Di not a multiple of 8, N = 16 and others
    (1, 8, 5, 7, 16),
    (2, 11, 3, 9, 4),
    (1, 3, 1, 13, 16),
    (2, 5, 13, 1, 3),
    (3, 17, 6, 4, 16),
]


def _after_dt_proj(inp):
    """(u, delta, A, Bs, Cs, D, delta_bias): the backward kernel's inputs for forward inputs ``inp``."""
    from train.layers.ss2d import dt_project

    u, dts, w, *rest = inp
    return [u, dt_project(dts, w), *rest]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("softplus", [True, False])
def test_scan_forward_matches_float64(shape, softplus):
    inp = list(scan_inputs(*shape, seed=sum(shape), device="cpu", softplus=softplus))
    ref = ss2d_reference(*inp, delta_softplus=softplus)
    y32 = native_scan.scan_forward(*inp, delta_softplus=softplus)
    assert y32.dtype == torch.float32 and rel_err(y32, ref) <= 1e-5
    y16 = native_scan.scan_forward(*[t.half() if t.dim() >= 4 else t for t in inp], delta_softplus=softplus)
    assert y16.dtype == torch.float16 and rel_err(y16.float(), ref) <= 1e-2


@pytest.mark.parametrize("rank", [1, 5, 16])
def test_scan_dt_proj_ranks(rank):
    """dt_proj inside the kernel for dt ranks 1, 5 and 16 (L = 63: the 4-position blocks end with a remainder)."""
    inp = scan_inputs(2, 10, 7, 9, 16, seed=rank, device="cpu", R=rank)
    assert inp[1].shape == (2, 4, rank, 7, 9) and inp[2].shape == (40, rank)
    assert rel_err(native_scan.scan_forward(*inp), ss2d_reference(*inp)) <= 1e-5


def test_scan_each_direction_alone():
    """Zero B of all directions but one: each of the four walks is checked on its own."""
    inp = list(scan_inputs(2, 9, 7, 5, 16, seed=3, device="cpu"))
    for k in range(4):
        Bs = torch.zeros_like(inp[4])
        Bs[:, k] = inp[4][:, k]
        D = torch.zeros_like(inp[6])
        args = [inp[0], inp[1], inp[2], inp[3], Bs, inp[5], D, inp[7]]
        ref = ss2d_reference(*args)
        assert ref.abs().max() > 0
        assert rel_err(native_scan.scan_forward(*args), ref) <= 1e-5, f"direction {k}"


def test_scan_long_sequence():
    """L = 256 x 384 = 98,304 (SSMIC stage 1 at 768 x 512) against the float64 recurrence."""
    inp = scan_inputs(1, 2, 256, 384, 4, seed=7, device="cpu")
    ref = ss2d_reference(*inp)
    assert rel_err(native_scan.scan_forward(*inp), ref) <= 1e-5


def test_scan_simd_portable_and_threads_bit_identical(portable):
    inp = scan_inputs(2, 19, 9, 11, 16, seed=11, device="cpu")
    lib = native_ops.library()
    lib.lictrt_cpu_force_scalar(0)
    if not native_ops.simd_enabled():
        pytest.fail("this CPU has no AVX2+FMA+F16C: the AVX2 path cannot be compared", pytrace=False)
    simd1 = _threads(1, native_scan.scan_forward, *inp)
    simd2 = _threads(2, native_scan.scan_forward, *inp)
    half1 = _threads(1, native_scan.scan_forward, *[t.half() if t.dim() >= 4 else t for t in inp])
    half2 = _threads(2, native_scan.scan_forward, *[t.half() if t.dim() >= 4 else t for t in inp])
    lib.lictrt_cpu_force_scalar(1)
    assert not native_ops.simd_enabled()
    port = _threads(2, native_scan.scan_forward, *inp)
    assert torch.equal(simd1, simd2) and torch.equal(simd1, port)
    assert torch.equal(half1, half2)


def test_scalar_env_var():
    code = "from runtime import native_ops; print(native_ops.simd_enabled())"
    env = dict(os.environ, LICTRT_OPS_SCALAR="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------------------------------ scan backward
@pytest.mark.parametrize("shape", [(2, 11, 5, 7, 4), (1, 9, 6, 6, 16), (1, 4, 1, 70, 16)])
def test_scan_gradients_match_float64_autograd(shape):
    inp = [t.double().requires_grad_() for t in scan_inputs(*shape, seed=5, device="cpu")]
    ref = ss2d_reference(*inp)
    dy = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    gref = torch.autograd.grad((ref * dy).sum(), inp)
    inp32 = [t.detach().float().requires_grad_() for t in inp]
    y = native_scan.selective_scan_2d(*inp32)
    grads = torch.autograd.grad((y * dy.float()).sum(), inp32)
    for name, g, r in zip(SCAN_INPUTS, grads, gref):
        assert rel_err(g, r) <= 1e-5, name


def test_scan_backward_simd_portable_and_threads_bit_identical(portable):
    inp = _after_dt_proj(scan_inputs(2, 13, 6, 7, 16, seed=2, device="cpu"))
    dy = torch.randn(2, 13, 6, 7, generator=torch.Generator().manual_seed(0))
    lib = native_ops.library()
    lib.lictrt_cpu_force_scalar(0)
    a = _threads(1, native_scan.scan_backward, *inp, dy)
    b = _threads(2, native_scan.scan_backward, *inp, dy)
    lib.lictrt_cpu_force_scalar(1)
    c = _threads(2, native_scan.scan_backward, *inp, dy)
    for name, x, y, z in zip(BACKWARD_INPUTS, a, b, c):
        assert torch.equal(x, y) and torch.equal(x, z), name


def test_ss2d_layer_uses_native_and_trains():
    """SS2D on CPU goes through the native kernels; its gradients match the chunked PyTorch scan's."""
    from train.layers import ss2d

    torch.manual_seed(0)
    m = ss2d.SS2D(8, d_state=4)
    x = torch.randn(2, 5, 6, 8)
    y = m(x)
    y.square().sum().backward()
    g_native = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    os.environ["LICTRT_NATIVE_OPS"] = "0"
    try:
        y_ref = m(x)
        y_ref.square().sum().backward()
    finally:
        del os.environ["LICTRT_NATIVE_OPS"]
    assert rel_err(y, y_ref.double()) <= 1e-5
    for (name, p), g in zip(m.named_parameters(), g_native):
        assert rel_err(g, p.grad.double()) <= 1e-4, name


# ------------------------------------------------------------------------------------------------ torch.ops.lictrt
def test_torch_ops_run_the_native_cpu_kernels():
    """torch.ops.lictrt.* on CPU tensors run liblictrt_torch_ops (the same library instance as the C API): outputs
    bit-identical to the C API's, and faster than the PyTorch reference kernel."""
    assert all(
        torch._C._dispatch_has_kernel_for_dispatch_key(f"lictrt::{op}", "CPU")
        for op in ("selective_scan_2d", "selective_scan_2d_backward", "generalized_divisive_norm")
    )
    maps = {
        line.split()[-1] for line in Path("/proc/self/maps").read_text().splitlines() if "liblictrt_cpu_ops" in line
    }
    assert len(maps) == 1, maps  # one copy of the kernels: LICTRT_OPS_SCALAR / force_scalar reach both
    inp = scan_inputs(1, 16, 24, 20, 16, seed=8, device="cpu")
    y_c = torch.empty_like(inp[0])
    ptrs = [t.data_ptr() for t in (*inp, y_c)]
    native_ops.check(native_ops.library().lictrt_cpu_ss2d_forward(*ptrs, 1, 16, 24, 20, 16, 3, 1, 0, 1))
    y_op = _threads(1, torch.ops.lictrt.selective_scan_2d, *inp, 1)
    assert torch.equal(y_op, y_c)

    def best(fn):
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    args = (*inp, 1)
    t_native = best(lambda: torch.ops.lictrt.selective_scan_2d(*args))
    t_ref = best(lambda: native_scan.scan_reference(*args))  # the operator's PyTorch reference kernel
    assert t_native < t_ref, (t_native, t_ref)


def test_torch_ops_reference_kernels_agree_with_native():
    """The operators' PyTorch reference kernels (any device) against the native CPU ones: forward and backward."""
    inp = scan_inputs(1, 6, 5, 4, 16, seed=4, device="cpu")
    dy = torch.randn(1, 6, 5, 4, generator=torch.Generator().manual_seed(3))
    assert rel_err(native_scan.scan_reference(*inp, 1), native_scan.scan_forward(*inp).double()) <= 1e-5
    after = _after_dt_proj(inp)
    ref = native_scan.scan_backward_reference(*after, dy, 1)
    for name, g, r in zip(BACKWARD_INPUTS, native_scan.scan_backward(*after, dy), ref):
        assert rel_err(g, r.double()) <= 1e-4, name


# ------------------------------------------------------------------------------------------------ GDN
@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("shape", [(2, 5, 7, 9), (1, 16, 1, 130)])
def test_gdn_matches_float64(shape, inverse):
    x, gamma, beta = gdn_inputs(*shape, seed=4, dtype=torch.float32, device="cpu")
    ref = gdn_reference(x.double(), gamma.double(), beta.double(), inverse)
    y = native_scan.gdn(x, gamma, beta, inverse)
    assert rel_err(y, ref) <= 1e-6


def test_gdn_simd_portable_and_threads_bit_identical(portable):
    x, gamma, beta = gdn_inputs(2, 24, 9, 31, seed=1, dtype=torch.float32, device="cpu")
    lib = native_ops.library()
    lib.lictrt_cpu_force_scalar(0)
    a = _threads(1, native_scan.gdn, x, gamma, beta, True)
    b = _threads(2, native_scan.gdn, x, gamma, beta, True)
    lib.lictrt_cpu_force_scalar(1)
    c = native_scan.gdn(x, gamma, beta, True)
    assert torch.equal(a, b) and torch.equal(a, c)


# ------------------------------------------------------------------------------------------------ ONNX Runtime
def _scan_model(dtype=TensorProto.FLOAT, softplus=1) -> bytes:
    ins = [
        helper.make_tensor_value_info(
            n, TensorProto.FLOAT if n in ("dt_weight", "A", "D", "delta_bias") else dtype, None
        )
        for n in SCAN_INPUTS
    ]
    node = helper.make_node(
        "SelectiveScan2D",
        SCAN_INPUTS,
        ["y"],
        domain="lictrt",
        **registry.node_attrs("SelectiveScan2D", delta_softplus=softplus),
    )
    graph = helper.make_graph([node], "scan", ins, [helper.make_tensor_value_info("y", dtype, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("lictrt", 1)])
    return registry.add_function_bodies(model).SerializeToString()


def _run_profiled(model: bytes, feeds: dict, native: bool, tmp_path, threads=1):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.enable_profiling = True
    so.profile_file_prefix = str(tmp_path / f"prof_{native}_{threads}")
    if native:
        assert native_ops.register_onnxruntime(so, required=True)
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    y = sess.run(None, feeds)[0]
    with open(sess.end_profiling()) as f:
        ops = {e["args"].get("op_name") for e in json.load(f) if e.get("cat") == "Node"}
    return y, ops


@pytest.mark.parametrize("softplus", [1, 0])
def test_onnxruntime_native_kernel_runs_and_agrees_with_body(softplus, tmp_path):
    inp = list(scan_inputs(2, 9, 5, 7, 16, seed=9, device="cpu", softplus=bool(softplus)))
    feeds = {n: t.numpy() for n, t in zip(SCAN_INPUTS, inp)}
    model = _scan_model(softplus=softplus)
    y_body, ops_body = _run_profiled(model, feeds, False, tmp_path)
    y_nat, ops_nat = _run_profiled(model, feeds, True, tmp_path)
    y_nat2, _ = _run_profiled(model, feeds, True, tmp_path, threads=2)
    assert ops_nat == {"SelectiveScan2D"}  # one native node, no body ops
    assert "SelectiveScan2D" not in ops_body and {"CumSum", "Exp", "MatMul"} <= ops_body  # the inlined body
    ref = ss2d_reference(*inp, delta_softplus=bool(softplus))
    assert rel_err(torch.from_numpy(y_nat), ref) <= 1e-5 and rel_err(torch.from_numpy(y_body), ref) <= 1e-4
    np.testing.assert_allclose(y_nat, y_body, rtol=0, atol=1e-4 * np.abs(y_body).max())
    assert np.array_equal(y_nat, y_nat2)
    assert np.array_equal(y_nat, native_scan.scan_forward(*inp, delta_softplus=bool(softplus)).numpy())


def test_onnxruntime_native_fp16(tmp_path):
    inp = scan_inputs(1, 8, 4, 6, 16, seed=2, device="cpu")
    feeds = {n: (t.half() if t.dim() >= 4 else t).numpy() for n, t in zip(SCAN_INPUTS, inp)}
    y, ops = _run_profiled(_scan_model(TensorProto.FLOAT16), feeds, True, tmp_path)
    assert y.dtype == np.float16 and ops == {"SelectiveScan2D"}
    assert rel_err(torch.from_numpy(y.astype(np.float32)), ss2d_reference(*inp)) <= 1e-2


def test_onnxruntime_fallback_warns_without_library(tmp_path):
    code = (
        "import warnings, onnxruntime as ort; from runtime import native_ops\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always'); ok = native_ops.register_onnxruntime(ort.SessionOptions())\n"
        "print(ok, any('function bodies' in str(x.message) for x in w))"
    )
    env = dict(os.environ, LICTRT_CPU_OPS_LIB=str(tmp_path / "missing.so"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


# ------------------------------------------------------------------------------------------------ paper size
@pytest.mark.slow
@pytest.mark.parametrize("arch", ["ssmic", "mambavc"])
def test_paper_model_exports_with_parity_and_codes_kodak_across_backends(arch, tmp_path):
    """Seeded ``paper`` model: export WITH the ONNX Runtime parity check (the Kodak image at 768x512, native scan),
    then the torch and the ONNX Runtime backends code kodim01 (768x512) on the one pinned parse path (DESIGN:
    precision and determinism, recorded in the container). The export's peak memory is <= 4 GB.

    What holds across backends: z's stream is identical; each backend decodes the other's file (the parse path, not
    the encoder's backend, decides the decode) with exactly the symbols the other wrote, to the same image up to
    float rounding. What does not: every y symbol of the two encoders. The two analyses differ by ~1e-6 relative,
    and a symbol round(y - mu) flips where y - mu lies that close to .5; at 491,520 latents that happens a few
    times (as between ONNX Runtime with and without its graph optimizations: ``python -m benchmarks agreement
    --control``), so at most 1 in 10,000 may differ, each by 1, and the y streams' sizes agree within 0.1 %."""
    import gc

    from benchmarks.native_ops import peak_rss_gb, reset_peak_rss
    from export.onnx import export_bundle
    from runtime import Codec
    from runtime.container import unpack
    from runtime.image import load
    from train.checkpoint import save_checkpoint
    from train.models.seeded import codable_model

    image = next(
        (
            d / "kodim01.png"
            for d in (
                Path(__file__).resolve().parents[2] / "assets" / "images" / "kodak",
                Path(__file__).resolve().parents[3] / "shared" / "data" / "kodak",
            )
            if (d / "kodim01.png").is_file()
        ),
        None,
    )
    if image is None:
        pytest.fail("kodim01.png not found (assets/images/kodak or ../shared/data/kodak)", pytrace=False)
    torch.set_num_threads(2)
    ck = save_checkpoint(
        tmp_path / f"{arch}.pth", codable_model(arch, "paper", seed=0), lmbda=0.01, metric="mse", step=0, epoch=0
    )
    gc.collect()
    if not reset_peak_rss():  # the export's own peak, not an earlier test's in this process
        pytest.fail("cannot reset the peak RSS (/proc/self/clear_refs)", pytrace=False)
    out = export_bundle(ck, tmp_path / f"{arch}.bundle", check=True, progress=False)
    assert peak_rss_gb() <= 4.0  # GiB: the export with its parity check
    assert out["parity"] and all(r.ok for r in out["parity"])
    assert any("512x768" in r.input for r in out["parity"])
    im = load(image)
    assert im.shape[:2] == (512, 768)
    ct = Codec.open(out["bundle"], backend="torch", checkpoint=ck, threads=2)
    co = Codec.open(out["bundle"], backend="onnxruntime", threads=2)
    assert ct.parse_path == co.parse_path == "onnxruntime-cpu-fp32"
    d_t = ct.encode(im, keep_symbols=True)
    sym_t = ct.last_symbols
    d_o = co.encode(im, keep_symbols=True)
    sym_o = co.last_symbols
    st, so = {s.kind: s for s in unpack(d_t)[1]}, {s.kind: s for s in unpack(d_o)[1]}
    assert sorted(st) == sorted(so) == sorted(sym_t) == sorted(sym_o) and st["z"].payload == so["z"].payload
    y_t, y_o = (sum(len(s[k].payload) for k in s if k != "z") for s in (st, so))  # y, or y0..y4 (channel slices)
    assert abs(y_t - y_o) <= 1e-3 * y_o
    n = sum(v.size for v in sym_t.values())
    diff = np.concatenate([np.abs(sym_t[k].astype(np.int64) - sym_o[k]) for k in sym_t])
    assert np.count_nonzero(diff) <= n // 10_000 and diff.max() <= 1
    from runtime.image import psnr

    out_o = co.decode(d_t, keep_symbols=True)  # each decodes the other's file, with the symbols it wrote
    assert all(np.array_equal(co.last_symbols[k], sym_t[k]) for k in sym_t)
    out_t = ct.decode(d_o, keep_symbols=True)
    assert all(np.array_equal(ct.last_symbols[k], sym_o[k]) for k in sym_o)
    assert abs(psnr(im, out_o) - psnr(im, co.decode(d_o))) <= 0.01 and abs(psnr(im, out_t) - psnr(im, out_o)) <= 0.01
