"""Latency: per-graph and end-to-end timings of a real bundle on the CPU, trtexec parsing, clear errors."""

from __future__ import annotations

import shutil

import pytest

from benchmarks import latency


def test_manifest_dimensions_are_evaluated_in_h_and_w():
    assert latency.eval_dim("H/16", 512, 768) == 32
    assert latency.eval_dim("W/64", 512, 768) == 12
    assert latency.eval_dim(192, 512, 768) == 192
    assert latency.eval_dim("P", 512, 768) is None


def test_trtexec_report_line_is_parsed():
    text = (
        "[I] Latency: min = 0.5 ms\n[I] GPU Compute Time: min = 0.201 ms, max = 0.45 ms, mean = 0.25 ms, "
        "median = 0.24 ms, percentile(90%) = 0.3 ms, percentile(95%) = 0.31 ms, percentile(99%) = 0.4 ms\n"
    )
    r = latency.parse_trtexec(text)
    assert (r["median_ms"], r["p90_ms"], r["min_ms"]) == (0.24, 0.3, 0.201)
    with pytest.raises(latency.LatencyError):
        latency.parse_trtexec("no timing here")


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    pytest.importorskip("torch")
    from export.onnx import export_bundle
    from train.checkpoint import save_checkpoint
    from train.models import create_model

    d = tmp_path_factory.mktemp("lat")
    ckpt = save_checkpoint(
        d / "h.pth", create_model("bmshj2018-hyperprior", preset="tiny"), lmbda=0.01, metric="mse", step=0, epoch=0
    )
    export_bundle(ckpt, d / "h.bundle", check=False, progress=False)
    return ckpt, d / "h.bundle"


def test_cpu_latency_of_every_graph_and_end_to_end(tiny_bundle):
    _, bundle = tiny_bundle
    r = latency.measure(bundle, "onnxruntime", (128, 192), iters=3, warmup=1)
    assert set(r["graphs"]) == {"analysis", "hyper_synthesis", "synthesis"}
    for s in list(r["graphs"].values()) + [r["end_to_end"]["encode"], r["end_to_end"]["decode"]]:
        assert s["n"] == 3 and 0 < s["median_ms"] <= s["p90_ms"]
    assert r["end_to_end"]["bytes"] > 0
    assert r["end_to_end"]["decode_stages"]["network_s"] > 0  # the runtime's per-stage stats came through


def test_torch_backend_needs_and_uses_the_checkpoint(tiny_bundle):
    ckpt, bundle = tiny_bundle
    r = latency.measure(bundle, "torch", (128, 128), iters=2, warmup=0, checkpoint=str(ckpt), end2end=False)
    assert set(r["graphs"]) >= {"analysis", "synthesis"}
    with pytest.raises(latency.LatencyError):
        latency.measure(bundle, "torch", (128, 128), iters=1, warmup=0)


def test_trtexec_flag_without_trtexec_says_so(tiny_bundle, capsys):
    if shutil.which("trtexec"):
        pytest.skip("trtexec is installed here")
    _, bundle = tiny_bundle
    rc = latency.main([str(bundle), "--backend", "tensorrt", "--trtexec", "--size", "128x128", "--iters", "1"])
    out = capsys.readouterr()
    # without any TensorRT the backend cannot open either: a one-line error, never a traceback
    assert rc in (0, 1)  # 1: the work failed (runtime/cli.py exit codes)
    assert "Traceback" not in out.err
    if rc == 0:
        assert "trtexec is not on PATH" in out.out


def test_bad_arguments_are_one_line_errors(tiny_bundle, tmp_path, capsys):
    _, bundle = tiny_bundle
    assert latency.main([str(tmp_path)]) == 1
    assert latency.main([str(bundle), "--iters", "0"]) == 1
    assert latency.main([str(bundle), "--precision", "fp16"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(e.startswith("error") for e in err)
