"""`python -m benchmarks cpp-runtime`'s measurement, on a tiny spatial-context bundle: both runtimes serve the bundle
from fresh processes in every round, their encodes are byte-identical, and each figure is derived from the runs.

The C++ benchmark program is built into the build folder of test_cpp_runtime.py's ``installed`` fixture.
"""

from __future__ import annotations

import pytest
from test_cpp_runtime import CPP, _run, installed  # noqa: F401

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def bench_exe(installed) -> object:  # noqa: F811
    build = installed.parent / "build"
    _run(["cmake", "-S", CPP, "-B", build, "-DLICTRT_BUILD_BENCH=ON"])
    _run(["cmake", "--build", build, "--target", "lictrt_codec_bench"])
    return build / "lictrt_codec_bench"


@pytest.fixture
def started(monkeypatch) -> list:
    """Every ServeProcess the benchmark starts, in order."""
    from benchmarks import cpp_runtime

    procs = []
    for name in ("cpp_process", "python_process"):
        make = getattr(cpp_runtime, name)
        monkeypatch.setattr(cpp_runtime, name, lambda *a, _make=make: procs.append(_make(*a)) or procs[-1])
    return procs


@pytest.fixture(scope="module")
def spatial(tmp_path_factory):
    """A tiny mbt2018 bundle and two PNGs (padded to 64: a 4×4 and a 4×8 latent)."""
    from test_runtime_support import cached_bundle, test_image

    from runtime.image import save

    _, bundle, _ = cached_bundle(tmp_path_factory, "mbt2018")
    d = tmp_path_factory.mktemp("cpp_bench")
    pngs = [d / "a.png", d / "b.png"]
    save(pngs[0], test_image(48, 64, seed=1))
    save(pngs[1], test_image(32, 80, seed=2))
    return bundle, pngs


def test_each_round_runs_both_sides_in_fresh_processes(bench_exe, spatial, started):
    from benchmarks import cpp_runtime

    bundle, pngs = spatial
    said = []
    res = cpp_runtime.measure(bench_exe, bundle, pngs, threads=1, repeats=2, rounds=3, progress=said.append)
    assert [p.name for p in started] == ["C++", "Python"] * 3
    assert all(p.proc.poll() == 0 for p in started)  # each ended by the empty line, cleanly
    assert said[:3] == [f"  round {k}/3 done" for k in (1, 2, 3)] and len(said) == 3 + len(pngs)
    assert [r["image"] for r in res["images"]] == ["a.png", "b.png"]
    assert [r["size"] for r in res["images"]] == [[48, 64], [32, 80]]


def test_the_figures_come_from_the_runs_of_both_sides(bench_exe, spatial):
    from benchmarks import cpp_runtime
    from runtime import Codec
    from runtime.image import load

    bundle, pngs = spatial
    res = cpp_runtime.measure(bench_exe, bundle, pngs, threads=1, repeats=2, rounds=2, progress=lambda _: None)
    codec = Codec.open(bundle, backend="onnxruntime", threads=1)
    for row, png, (h, w) in zip(res["images"], pngs, [(4, 4), (4, 8)]):
        assert row["identical_bytes"] and row["bytes"] == len(codec.encode(load(png)))
        for side in ("cpp", "python"):
            for op in ("encode", "decode"):
                s = row[side][op]
                assert s["runs"] == 4  # rounds × repeats
                assert s["total_ms"] >= s["network_ms"] > 0 and s["plan_ms"] > 0 and s["entropy_ms"] > 0
                assert s["steps"] == 3 * (h - 1) + w  # the wavefront order
                assert s["loop_per_step_ms"] == pytest.approx(s["context_step_call_ms"] + s["loop_other_per_step_ms"])
            assert row["cpp"]["onnxruntime"] == __import__("onnxruntime").__version__
        for op in ("encode", "decode"):
            cpp, py = row["cpp"][op], row["python"][op]
            assert row[f"{op}_speedup"] == pytest.approx(py["total_ms"] / cpp["total_ms"])
            assert row[f"{op}_plan_speedup"] == pytest.approx(py["plan_ms"] / cpp["plan_ms"])
    for op in ("encode", "decode"):
        t, rows = res[op], res["images"]
        assert t["cpp_total_ms"] == pytest.approx(sum(r["cpp"][op]["total_ms"] for r in rows))
        assert t["cpp_not_slower_anywhere"] == all(r[f"{op}_speedup"] >= 1.0 for r in rows)


def test_a_failing_side_is_named_and_no_process_is_left(bench_exe, spatial, tmp_path, started):
    from benchmarks import cpp_runtime

    _, pngs = spatial
    with pytest.raises(cpp_runtime.CppRuntimeError, match=r"the C\+\+ benchmark process failed on a\.png: .*manifest"):
        cpp_runtime.measure(bench_exe, tmp_path, pngs, threads=1, repeats=1, rounds=1, progress=lambda _: None)
    assert len(started) == 2 and all(p.proc.poll() is not None for p in started)


def test_encodes_that_differ_in_any_round_stop_the_benchmark(bench_exe, spatial, monkeypatch):
    from benchmarks import cpp_runtime

    bundle, pngs = spatial
    run = cpp_runtime.ServeProcess.run

    def run_flipping_python_bytes_in_round_1(self, png, repeats):
        stats, data = run(self, png, repeats)
        if self.name == "Python" and png == pngs[1]:
            calls.append(png)
            if len(calls) == 1:
                data = data[:-1] + bytes([data[-1] ^ 1])
        return stats, data

    calls = []
    monkeypatch.setattr(cpp_runtime.ServeProcess, "run", run_flipping_python_bytes_in_round_1)
    with pytest.raises(cpp_runtime.CppRuntimeError, match=r"b\.png: the C\+\+ and Python encodes differ"):
        cpp_runtime.measure(bench_exe, bundle, pngs, threads=1, repeats=1, rounds=2, progress=lambda _: None)
    assert len(calls) == 1  # stopped in the round where they differed
