"""CPU-side specification of the GPU validation suite (benchmarks/gpu/): argument parsing, the result document's
figure rules, the roofline arithmetic, time budgets, the RTX chunk protocol, and a --dry-run that measures nothing
and says so for every GPU figure.  Where the CPU can run a section's core (CPU-emulated kernels, a tiny codec on
the CPU, a TensorRT-RTX build), it is run here too."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from benchmarks.gpu import roofline, schema
from benchmarks.gpu.budget import Budget, SectionContext
from benchmarks.gpu.rtx import RtxError, _shapes, reassemble, sha256, split_file, stash
from benchmarks.gpu.suite import SECTIONS, SuiteError, main, parse_args, parse_junit

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def private_state(tmp_path, monkeypatch):
    """Each test's suite runs leave their --resume document in the test's own folder."""
    from benchmarks.gpu import suite

    monkeypatch.setattr(suite, "STATE", tmp_path / "suite-state.json")
    return tmp_path / "suite-state.json"


# ---------------------------------------------------------------------------------------------- arguments
def test_default_arguments_run_every_section_in_order():
    args = parse_args([])
    assert args.run == list(SECTIONS) and not args.dry_run
    assert 0 < args.budget < 600, "the device tool kills a command at 600 s"


def test_skip_and_sections_select_sections():
    args = parse_args(["--sections", "speed,environment", "--skip", "speed"])
    assert args.run == ["environment"]


@pytest.mark.parametrize(
    "argv", [["--sections", "speed,warp"], ["--skip", "nope"], ["--budget", "0"], ["--iters", "0"], ["--images", "-1"]]
)
def test_bad_arguments_are_one_line_errors(argv, capsys):
    with pytest.raises(SuiteError):
        parse_args(argv)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------------- figures
def test_a_figure_is_a_finite_number_with_a_unit():
    assert schema.figure(1.5, "ms") == {"value": 1.5, "unit": "ms"}
    for bad in (float("nan"), float("inf"), True, "3"):
        with pytest.raises(schema.SchemaError):
            schema.figure(bad, "ms")
    with pytest.raises(schema.SchemaError):
        schema.figure(1.0, "")


def test_a_missing_figure_needs_a_reason():
    f = schema.not_measured("GB/s", "no GPU")
    assert f["value"] is None and f["status"] == "not measured" and f["reason"] == "no GPU"
    with pytest.raises(schema.SchemaError):
        schema.not_measured("GB/s", "")


def test_derived_figures_inherit_not_measured():
    a, b = schema.figure(10.0, "ms"), schema.figure(2.0, "ms")
    assert schema.derive(lambda x, y: x / y, "x", a, b)["value"] == 5.0
    missing = schema.derive(lambda x, y: x / y, "x", a, schema.not_measured("ms", "boom"))
    assert missing["value"] is None and "boom" in missing["reason"]


def _doc(**sections):
    doc = schema.new_document(["suite"], False, "2026-01-01T00:00:00Z")
    doc["sections"] = {k: {"status": "ok", **v} for k, v in sections.items()}
    return doc


def test_validate_finds_every_malformed_figure():
    assert schema.validate(_doc(speed={"a": schema.figure(1.0, "ms")})) == []
    bad = _doc(
        speed={
            "nan": {"value": float("nan"), "unit": "ms"},
            "silent": {"value": None, "unit": "ms"},
            "both": {"value": 1.0, "unit": "ms", "status": "not measured", "reason": "x"},
            "nested": [{"value": "fast", "unit": "ms"}],
        }
    )
    problems = schema.validate(bad)
    assert len(problems) == 4
    assert any("/speed/silent" in p for p in problems) and any("/speed/nested/0" in p for p in problems)


def test_a_dry_run_document_may_not_hold_measured_figures():
    doc = _doc(speed={"a": schema.figure(1.0, "ms")})
    doc["dry_run"] = True
    assert any("dry run" in p for p in schema.validate(doc))


def test_write_json_is_atomic_and_refuses_invalid_documents(tmp_path):
    good = _doc(speed={"a": schema.figure(2.0, "ms")})
    path = schema.write_json(tmp_path / "r.json", good)
    assert json.loads(path.read_text())["sections"]["speed"]["a"]["value"] == 2.0
    with pytest.raises(schema.SchemaError):
        schema.write_json(tmp_path / "bad.json", _doc(speed={"a": {"value": None, "unit": "ms"}}))
    assert not (tmp_path / "bad.json").exists() and [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_result_file_names_are_safe_device_slugs():
    assert schema.result_name("NVIDIA H100 80GB HBM3", "2026-11-23") == "gpu-nvidia-h100-80gb-hbm3-2026-11-23"
    assert schema.slug("  ") == "unknown"


# ---------------------------------------------------------------------------------------------- roofline
def test_scan_minimal_bytes_count_u_dts_B_C_read_and_y_written():
    L = 256 * 384
    # SSMIC stage 1: u and y [256, L], dts [4, 8, L] (dt rank 8), Bs and Cs [4, 16, L]
    assert roofline.ss2d_min_bytes(1, 256, 256, 384, 16, 8, 4) == (256 + 32 + 2 * 64 + 256) * L * 4
    assert roofline.ss2d_min_bytes(1, 256, 256, 384, 16, 8, 2) * 2 == roofline.ss2d_min_bytes(
        1, 256, 256, 384, 16, 8, 4
    )
    assert roofline.gdn_min_bytes(1, 128, 256, 384, 2) == 2 * 128 * L * 2


def test_roofline_percent_is_achieved_over_measured_copy_bandwidth():
    assert roofline.copy_bytes(1 << 30) == 2 << 30
    copy_gbps = roofline.gb_per_s(roofline.copy_bytes(10**9), 0.5)  # 2 GB in 0.5 ms
    assert math.isclose(copy_gbps, 4000.0)
    assert math.isclose(roofline.roofline_percent(10**9, 0.5, copy_gbps), 50.0)
    assert math.isclose(roofline.floor_ms(2 * 10**9, 4000.0), 0.5)
    with pytest.raises(roofline.RooflineError):
        roofline.gb_per_s(100, 0.0)
    with pytest.raises(roofline.RooflineError):
        roofline.ss2d_min_bytes(1, 0, 4, 4, 16, 2, 4)


def test_rotation_sets_outgrow_the_l2_within_free_memory():
    l2 = 50 * 2**20
    assert roofline.rotation_sets(10 * 2**20, l2, 80 * 2**30) == 8  # capped at max_sets
    assert roofline.rotation_sets(600 * 2**20, l2, 80 * 2**30) == 2  # already far larger than L2
    assert roofline.rotation_sets(600 * 2**20, l2, 700 * 2**20) == 1  # memory allows one set only
    sets = roofline.rotation_sets(20 * 2**20, l2, 80 * 2**30)
    assert (sets - 1) * 20 * 2**20 > 2 * l2 * 0.5


# ---------------------------------------------------------------------------------------------- budgets
class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_budget_counts_down_and_bounds_section_deadlines():
    clock = FakeClock()
    b = Budget(60, clock=clock)
    assert b.left() == 60 and b.section_deadline(20) == 120.0
    clock.t += 50
    assert b.section_deadline(20) == b.end and not b.fits(11) and b.fits(10)


def test_measure_never_calls_the_measurement_on_a_dry_run():
    ctx = SectionContext("s", deadline=1e18, dry_run=True, log=lambda m: None)
    fig = ctx.measure("ms", lambda: pytest.fail("called on a dry run"))
    assert fig["value"] is None and "dry run" in fig["reason"]
    many = ctx.measure_many({"a": "ms", "b": "GB/s"}, lambda: pytest.fail("called"))
    assert all(f["value"] is None and f["unit"] for f in many.values())


def test_measure_records_errors_and_time_overruns_as_not_measured():
    clock, logged = FakeClock(), []
    ctx = SectionContext("speed", deadline=clock.t + 5, dry_run=False, log=logged.append, clock=clock)
    fig = ctx.measure("ms", lambda: 1 / 0)
    assert fig["value"] is None and "ZeroDivisionError" in fig["reason"] and ctx.errors and logged
    assert ctx.measure("ms", lambda: 3.0, need_s=10)["reason"].startswith("skipped")
    assert ctx.measure("ms", lambda: (3.0, {"runs": 7})) == {"value": 3.0, "unit": "ms", "runs": 7}
    many = ctx.measure_many({"a": "ms", "b": "ms"}, lambda: {"a": 1.0})
    assert many["a"]["value"] == 1.0 and many["b"]["value"] is None


def test_parse_junit_counts_outcomes(tmp_path):
    xml = tmp_path / "j.xml"
    xml.write_text(
        '<testsuites><testsuite name="pytest" tests="5" failures="1" errors="1" skipped="1">'
        '<testcase classname="t" name="ok"/><testcase classname="t" name="ok2"/>'
        '<testcase classname="t" name="bad"><failure message="rel err 3e-3">x</failure></testcase>'
        '<testcase classname="t" name="err"><error message="boom">x</error></testcase>'
        '<testcase classname="t" name="sk"><skipped/></testcase></testsuite></testsuites>'
    )
    c = parse_junit(xml)
    assert (c["tests"], c["passed"], c["failed"], c["errors"], c["skipped"]) == (5, 2, 1, 1, 1)
    assert c["failing"] == ["t::bad: rel err 3e-3", "t::err: boom"]


# ---------------------------------------------------------------------------------------------- dry run
def test_dry_run_on_cpu_writes_a_valid_document_with_nothing_measured(tmp_path):
    out = tmp_path / "out"
    assert main(["--dry-run", "--out", str(out), "--date", "2026-01-02"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["gpu-cpu-dry-run-2026-01-02.json", "gpu-cpu-dry-run-2026-01-02.md"]
    doc = json.loads((out / "gpu-cpu-dry-run-2026-01-02.json").read_text())
    assert doc["dry_run"] is True and schema.validate(doc) == []
    assert list(doc["sections"]) == list(SECTIONS)
    figures = list(schema.iter_figures(doc))
    assert len(figures) > 100
    assert all(f["value"] is None and f["status"] == "not measured" and f["reason"] for _, f in figures)
    paths = {p for p, _ in figures}
    for expected in (
        "/environment/sm_count",
        "/environment/l2_cache",
        "/sections/build/build_time",
        "/sections/pytest/passed",
        "/sections/speed/hbm_copy/bandwidth",
        "/sections/speed/selective_scan_2d/ssmic-stage1-768x512-fp32/kernel_roofline",
        "/sections/speed/selective_scan_2d/ssmic-stage1-768x512-fp32/speedup_vs_chunked",
        "/sections/speed/selective_scan_2d/ssmic-stage1-768x512-fp32/speedup_vs_fourcopy",
        "/sections/speed/selective_scan_2d/mambavc-stage1-768x512-fp32/speedup_vs_chunked",
        "/sections/speed/generalized_divisive_norm/gdn-N128-256x384-fp16/speedup_vs_torch",
        "/sections/accuracy/selective_scan_2d/mambavc-stage1-768x512/rel_err_fp16",
        "/sections/codec/models/ssmic-paper/decode_context_loop",
        "/sections/codec/models/ssmic-paper-scan-torch-chunked/decode_total",
        "/sections/codec/models/bmshj2018-hyperprior-q8/decode_synthesis",
        "/sections/wavefront/speedup",
        "/sections/rtx/steps_ok",
    ):
        assert expected in paths, expected
    # host facts are still recorded, never dressed up as GPU figures
    assert doc["environment"]["python"] and doc["environment"]["device_name"] is None
    md = (out / "gpu-cpu-dry-run-2026-01-02.md").read_text()
    assert "dry run" in md and "not measured" in md and len(md) < 20000


def test_a_dry_run_writes_nothing_under_benchmarks_results(tmp_path):
    before = set((ROOT / "benchmarks" / "results").glob("gpu-*"))
    assert main(["--dry-run", "--sections", "environment", "--out", str(tmp_path)]) == 0
    assert set((ROOT / "benchmarks" / "results").glob("gpu-*")) == before


def test_a_measured_run_is_named_after_its_device_and_copied_to_the_results_dir(tmp_path, monkeypatch):
    from benchmarks.gpu import suite

    def fake_environment(ctx):
        return {"python": "3.12", "device_name": "Fake GPU 80GB", "sm_count": schema.figure(132, "SMs")}

    monkeypatch.setattr(suite, "section_environment", fake_environment)
    out, results = tmp_path / "out", tmp_path / "results"
    assert (
        main(["--sections", "environment", "--out", str(out), "--results-dir", str(results), "--date", "2026-01-03"])
        == 0
    )
    doc = json.loads((results / "gpu-fake-gpu-80gb-2026-01-03.json").read_text())
    assert doc["dry_run"] is False and doc["environment"]["sm_count"]["value"] == 132
    assert doc["sections"]["environment"]["status"] == "ok" and doc["sections"]["speed"]["status"] == "skipped"
    assert (out / "gpu-fake-gpu-80gb-2026-01-03.json").read_text() == json.dumps(doc, indent=1) + "\n"
    assert "Fake GPU 80GB" in (out / "gpu-fake-gpu-80gb-2026-01-03.md").read_text()


def test_without_a_gpu_a_real_run_reports_every_failure_as_not_measured(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = tmp_path / "out"
    assert (
        main(
            [
                "--sections",
                "environment,build,accuracy,speed",
                "--out",
                str(out),
                "--results-dir",
                str(tmp_path / "results"),
            ]
        )
        == 0
    )
    doc = json.loads(next(out.glob("gpu-no-gpu-*.json")).read_text())
    assert schema.validate(doc) == []
    figures = list(schema.iter_figures(doc))
    assert figures and all(f["value"] is None for _, f in figures)
    errors = [f["reason"] for _, f in figures if f["reason"].startswith("error:")]
    unrelated = {r for r in errors if not re.search(r"CUDA|cuda|NVIDIA driver|kernels library", r)}
    assert errors and not unrelated, unrelated
    assert {doc["sections"][s]["status"] for s in ("environment", "build", "accuracy", "speed")} == {"partial"}
    build = doc["sections"]["build"]  # the kernels need a GPU; the coder extension is checked all the same
    assert "CUDA" in build["kernels_library"]["error"] or "NVIDIA" in build["kernels_library"]["error"]
    assert build["coder_extension"] == {"source": "already importable"}


def test_a_second_call_completes_the_first_calls_document(tmp_path, monkeypatch, private_state):
    """Call 1 runs every section but rtx, call 2 (--resume) runs rtx: one document holds both calls' sections."""
    from benchmarks.gpu import suite

    ran = []

    def fake_section(name, ctx, args, out_dir):
        ran.append(name)
        if name == "environment":
            return {"environment": {"python": "3.12", "device_name": "Fake GPU"}}
        return {"figure": schema.figure(len(ran), "runs")}

    monkeypatch.setattr(suite, "_run_section", fake_section)
    out1, out2, results = tmp_path / "o1", tmp_path / "o2", tmp_path / "results"
    common = ["--results-dir", str(results), "--date", "2026-01-04"]
    assert main(["--skip", "rtx", "--out", str(out1), *common]) == 0
    assert ran == [s for s in SECTIONS if s != "rtx"] and private_state.is_file()
    assert main(["--sections", "environment,rtx", "--resume", "--out", str(out2), *common]) == 0
    doc = json.loads((out2 / "gpu-fake-gpu-2026-01-04.json").read_text())
    assert {k: v["status"] for k, v in doc["sections"].items()} == {s: "ok" for s in SECTIONS}
    assert doc["sections"]["codec"]["figure"]["value"] == list(SECTIONS).index("codec") + 1  # from call 1
    assert doc["sections"]["rtx"]["figure"]["value"] == len(SECTIONS) + 1  # from call 2
    assert [c["command"][-1] for c in doc["previous_calls"]] == ["2026-01-04"] and schema.validate(doc) == []
    assert (results / "gpu-fake-gpu-2026-01-04.json").read_text() == (out2 / "gpu-fake-gpu-2026-01-04.json").read_text()


def test_resume_without_a_previous_document_starts_a_new_one(tmp_path, capsys):
    assert main(["--dry-run", "--sections", "environment", "--resume", "--out", str(tmp_path)]) == 0
    assert "starting a new one" in capsys.readouterr().out


def test_the_two_device_commands_make_one_document(tmp_path):
    """run.sh then run.sh --rtx, as the device runs them (dry: nothing measured), give one document."""
    env = {**os.environ, "OUT": str(tmp_path / "out1")}
    state = ["--state", str(tmp_path / "state.json"), "--dry-run", "--date", "2026-01-05"]
    run = ["bash", str(ROOT / "benchmarks" / "gpu" / "run.sh")]
    first = subprocess.run(run + state, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    env["OUT"] = str(tmp_path / "out2")
    second = subprocess.run(run + ["--rtx"] + state, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    doc = json.loads((tmp_path / "out2" / "gpu-cpu-dry-run-2026-01-05.json").read_text())
    cmd, prev = doc["command"], doc["previous_calls"][0]["command"]
    assert cmd[cmd.index("--sections") + 1] == "environment,rtx" and "--resume" in cmd and "$OUT" in cmd
    assert prev[prev.index("--skip") + 1] == "rtx" and len(doc["previous_calls"]) == 1
    assert doc["sections"]["rtx"]["reason"] == "dry run" and doc["sections"]["codec"]["reason"] == "dry run"
    assert (tmp_path / "out2" / "suite.log").is_file() and schema.validate(doc) == []


def test_shell_entry_points_parse():
    for script in ("run.sh", "prepare.sh"):
        proc = subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / "gpu" / script)], capture_output=True)
        assert proc.returncode == 0, proc.stderr.decode()


# ---------------------------------------------------------------------------------------------- rtx chunks
def test_libs_wheel_splits_into_two_chunks_and_reassembles(tmp_path):
    wheel = tmp_path / "libs-1.0-py3-none-any.whl"
    wheel.write_bytes(os.urandom(300_001))
    p1, p2 = tmp_path / "rtx" / "p1", tmp_path / "rtx" / "p2"
    m = split_file(wheel, [p1, p2], 200_000)
    assert [p["bytes"] for p in m["parts"]] == [200_000, 100_001]
    assert json.loads((p2 / "rtx-manifest.json").read_text()) == m
    stash_dir = tmp_path / "stash"
    assert stash(tmp_path / "rtx", stash_dir) == sorted(f.name for f in p1.iterdir())
    (p1 / f"{wheel.name}.part1").unlink()  # call 2 carries p2 only; chunk 1 comes from the stash
    out = reassemble(m, [p2, stash_dir], tmp_path / "wheels")
    assert out.read_bytes() == wheel.read_bytes() and sha256(out) == m["sha256"]


def test_a_missing_or_damaged_chunk_is_reported(tmp_path):
    wheel = tmp_path / "w.whl"
    wheel.write_bytes(os.urandom(5000))
    p1, p2 = tmp_path / "p1", tmp_path / "p2"
    m = split_file(wheel, [p1, p2], 1000)
    with pytest.raises(RtxError, match="warm"):
        reassemble(m, [p2], tmp_path / "out")
    part = p1 / "w.whl.part1"
    part.write_bytes(b"x" * 1000)
    with pytest.raises(RtxError, match="damaged"):
        reassemble(m, [p1, p2], tmp_path / "out")
    with pytest.raises(RtxError):
        split_file(wheel, [p1, p2], 5000)


def test_engine_profiles_fix_every_dim_but_the_context_positions():
    graph = {"inputs": [{"name": "params", "shape": ["P", 48]}, {"name": "x", "shape": [1, 3, 8, 8]}]}
    shapes = _shapes(graph)
    assert shapes["x"] == ((1, 3, 8, 8),) * 3
    assert shapes["params"] == ((1, 48), (16, 48), (256, 48))


def test_rtx_builds_an_engine_on_the_cpu(tmp_path):
    trt = pytest.importorskip("tensorrt_rtx")
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from benchmarks.gpu.rtx import build

    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])],
    )
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    blob = build(trt, path, _shapes({"inputs": [{"name": "x", "shape": [1, 3, 4, 4]}]}))
    assert isinstance(blob, bytes) and len(blob) > 1000


# ---------------------------------------------------------------------------------------------- section cores
@pytest.fixture(scope="module")
def emulated_kernels():
    import shutil

    from trt_plugins import harness

    for tool in ("cmake", "nvcc"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not on PATH: cannot build the CPU-emulated kernels")
    harness.build(harness.DEFAULT_BUILD_DIR, plugins=True)  # incremental; test_trt_plugins.py reuses it
    return harness.Kernels.load_cpu_emulation()


def test_accuracy_cases_compare_kernels_with_the_float64_reference(emulated_kernels):
    from benchmarks.gpu.kernels import GDN_TOL, SCAN_TOL, _gdn_case, _scan_case

    v = _scan_case(emulated_kernels, (1, 3, 5, 7, 2, 2), seed=1, with_chunked=True, device="cpu")
    assert v["nonfinite_fp32"] == v["nonfinite_fp16"] == 0
    assert 0 < v["rel_err_fp32"] <= SCAN_TOL["fp32"] and v["rel_err_fp16"] <= SCAN_TOL["fp16"]
    assert 0 < v["torch_chunked_rel_err_fp32"] <= SCAN_TOL["fp32"]
    g = _gdn_case(emulated_kernels, (1, 6, 4, 5), seed=2, inverse=True, device="cpu")
    assert g["rel_err_fp32"] <= GDN_TOL["fp32"] and g["rel_err_fp16"] <= GDN_TOL["fp16"]


def test_kernel_ops_swap_the_scan_and_gdn_for_one_device_type_and_restore_them(emulated_kernels):
    import torch
    from compressai.layers import GDN

    from benchmarks.gpu.codec import kernel_ops
    from train.layers import ss2d
    from trt_plugins.reference import scan_inputs

    original, forward = ss2d.selective_scan_2d, GDN.forward
    inputs = scan_inputs(1, 4, 3, 5, 4, seed=3, device="cpu")
    gdn = GDN(6, inverse=True)
    x = torch.randn(1, 6, 4, 5)
    with kernel_ops(emulated_kernels, on="cpu"):
        assert ss2d.selective_scan_2d is not original and GDN.forward is not forward
        y = ss2d.selective_scan_2d(*inputs, True)
        g = gdn(x)
    with kernel_ops(None):  # on="cuda": CPU tensors keep the originals (the kernels are never called)
        torch.testing.assert_close(ss2d.selective_scan_2d(*inputs, True), original(*inputs, True))
    assert ss2d.selective_scan_2d is original and GDN.forward is forward
    torch.testing.assert_close(y, original(*inputs, True), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(g, gdn(x), rtol=1e-5, atol=1e-6)


def test_codec_core_splits_the_runtimes_decode_on_cpu(train_dir):
    torch = pytest.importorskip("torch")
    from benchmarks.gpu.codec import UNITS, run_codec

    torch.set_num_threads(1)
    images = sorted(train_dir.glob("*.png"))[:1]
    for arch, sequential in (("bmshj2018-hyperprior", False), ("mbt2018", True)):
        v = run_codec(arch, "tiny", None, images, time.monotonic() + 60, device="cpu", parse_path="torch")
        assert set(v) == set(UNITS) - {"peak_memory"} and v["images_timed"] == 1 and v["bpp"] > 0
        parts = ("decode_synthesis", "decode_hyper_synthesis", "decode_context_loop", "decode_rest")
        assert all(v[k] > 0 for k in parts + ("encode_total", "decode_entropy"))
        assert v["decode_total"] == pytest.approx(sum(v[k] for k in parts), rel=1e-6)
        assert v["decode_context_loop"] >= v["decode_entropy"]
        assert (v["sequential_steps"] > 2) == sequential, arch  # the wavefront steps of a spatial context


def test_wavefront_core_compares_the_two_orders_on_cpu(train_dir):
    torch = pytest.importorskip("torch")
    from benchmarks.gpu.codec import run_wavefront
    from runtime import image as img

    torch.set_num_threads(1)
    crop = img.load(sorted(train_dir.glob("*.png"))[0])[:128, :192]
    v = run_wavefront("mbt2018", "tiny", None, crop, device="cpu", parse_path="torch", repeats=1)
    h, w = 128 // 16, 192 // 16
    assert (v["wavefront_steps"], v["raster_steps"]) == (3 * (h - 1) + w, h * w)
    assert v["max_abs_pixel_diff"] == 0 and v["speedup"] > 0 and v["raster_decode"] > 0


def test_engine_input_shapes_come_from_the_onnx_file(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from benchmarks.gpu.rtx import onnx_inputs

    g = helper.make_graph(
        [helper.make_node("Add", ["params", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("params", TensorProto.FLOAT, ["P", 48])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["P", 48])],
        initializer=[helper.make_tensor("w", TensorProto.FLOAT, [48], [0.0] * 48)],
    )
    path = tmp_path / "ctx.onnx"
    onnx.save(helper.make_model(g), path)
    io = onnx_inputs(path)
    assert io == {"inputs": [{"name": "params", "shape": ["P", 48]}]}  # initializers are not inputs
    assert _shapes(io)["params"] == ((1, 48), (16, 48), (256, 48))


# ---------------------------------------------------------------------------------------------- carried builds
def test_the_coder_extension_builds_for_a_named_interpreter(tmp_path):
    """What prepare.sh does for the device's Python 3.12, and the device's fallback: the root CMakeLists.txt,
    target _lictrt alone; the product imports and codes."""
    import sys

    pytest.importorskip("nanobind")
    from benchmarks.gpu.artifacts import build_extension, ext_suffix

    with open(tmp_path / "build.log", "w") as log:
        ext = build_extension(sys.executable, tmp_path / "build", log)
    assert ext.name == "_lictrt" + ext_suffix(sys.executable)
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import _lictrt; "
        "print(','.join(_lictrt.PARSE_PATHS), _lictrt.crc32(b'123456789'))"
    )
    proc = subprocess.run([sys.executable, "-c", probe, str(ext.parent)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["onnxruntime-cpu-fp32,torch-cpu-fp32,torch-cuda-fp32", str(0xCBF43926)]


def test_an_importable_coder_extension_is_used_as_it_is(tmp_path):
    from benchmarks.gpu.suite import _coder_extension

    with open(tmp_path / "log", "w") as log:
        assert _coder_extension(log) == {"source": "already importable"}


def test_no_interpreter_of_a_missing_version_is_found():
    from benchmarks.gpu.artifacts import find_python

    assert find_python("2.1") is None


def test_rtx_chunk_one_takes_what_call_one_has_left(tmp_path):
    from benchmarks.gpu.prepare import CALLS, CARRY_LIMIT, CARRY_MARGIN, call_sizes, part1_bytes

    (tmp_path / ".gpu" / "kodak").mkdir(parents=True)
    (tmp_path / ".gpu" / "kodak" / "a.png").write_bytes(b"x" * 3000)
    (tmp_path / ".whl").mkdir()
    (tmp_path / ".whl" / "c.whl").write_bytes(b"x" * 2000)
    room = part1_bytes(tmp_path, tree=10_000)
    assert room == CARRY_LIMIT - CARRY_MARGIN - 15_000
    (tmp_path / ".rtx" / "p1").mkdir(parents=True)
    (tmp_path / ".rtx" / "p1" / "w.part1").write_bytes(b"x" * 1000)
    sizes = call_sizes(tmp_path, tree=10_000)
    assert sizes == {"call 1 (suite)": 16_000, "call 2 (rtx)": 10_000} and list(sizes) == list(CALLS)


def test_dropping_a_large_engine_leaves_a_bundle_that_still_loads(tmp_path):
    """prepare.sh drops CPU-built engines too large to carry: entry, digest and file go together."""
    from benchmarks.gpu.prepare import drop_large_engines
    from runtime.bundle import file_digest, verify_files

    b = tmp_path / "bundle"
    (b / "engines").mkdir(parents=True)
    (b / "tables.npz").write_bytes(b"t")
    (b / "engines" / "big.engine").write_bytes(b"x" * 300)
    (b / "engines" / "small.engine").write_bytes(b"y" * 10)
    names = ["tables.npz", "engines/big.engine", "engines/small.engine"]
    manifest = {
        "engines": {n.split("/")[-1]: {"file": n} for n in names[1:]},
        "files": {n: file_digest(b / n) for n in names},
    }
    (b / "manifest.json").write_text(json.dumps(manifest))
    notes = drop_large_engines(b, limit=100)
    m = json.loads((b / "manifest.json").read_text())
    assert len(notes) == 1 and "big.engine" in notes[0] and (b / "engines" / "big.too-large").is_file()
    assert list(m["engines"]) == ["small.engine"] and "engines/big.engine" not in m["files"]
    verify_files(b, m)  # raises if an entry or a digest were left behind
