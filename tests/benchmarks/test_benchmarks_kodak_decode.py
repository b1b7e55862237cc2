"""`python -m benchmarks kodak-decode`: runtime vs CompressAI decompress on the same model, in one run.

CI-sized: one 256×256 crop of a shipped Kodak image, a seeded quality-1 model (N=128, M=192, random weights),
3 repeats (a true median) after the benchmark's untimed warm-up round. The export (~25 s) is done once into a
tmp cache shared by the tests of this module.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("compressai")
pytest.importorskip("onnxruntime")

REPO = Path(__file__).resolve().parents[2]
KODAK = REPO / "assets" / "images" / "kodak"


def bench(*args, cwd=REPO):
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", "kodak-decode", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    from PIL import Image

    tmp = tmp_path_factory.mktemp("kodak_decode")
    data = tmp / "crops"
    data.mkdir()
    src = sorted(KODAK.glob("*.png"))[0]
    with Image.open(src) as im:
        im.convert("RGB").crop((0, 0, 256, 256)).save(data / "crop.png")
    out = tmp / "result.json"
    r = bench(
        "--quality",
        1,
        "--images",
        1,
        "--data",
        data,
        "--repeats",
        3,
        "--cache",
        tmp / "cache",
        "--json",
        out,
        "--quiet",
        "--variants",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(out.read_text()), r.stdout, tmp


def test_json_has_both_sides_with_the_network_entropy_split(result):
    res, _, _ = result
    assert res["images"] == 1 and res["threads"] == 1 and (res["N"], res["M"]) == (128, 192)
    row = res["per_image"][0]
    assert row["size"] == [256, 256]
    rt, ca = row["runtime"], row["compressai"]
    for side in (rt, ca):
        assert side["network_ms"] == pytest.approx(side["hyper_synthesis_ms"] + side["synthesis_ms"])
        assert side["synthesis_ms"] > 0 and side["hyper_synthesis_ms"] > 0 and side["entropy_ms"] > 0
    # the split accounts for (medians of) the runtime's decode; nothing is double counted
    assert rt["network_ms"] + rt["entropy_ms"] <= rt["decode_ms"] * 1.05
    # CompressAI's timed steps are decompress() itself, call for call
    assert 0.5 < ca["steps_ms"] / ca["decompress_ms"] < 2.0
    assert row["bpp_runtime"] > 0.05 and row["bpp_compressai"] > 0.05  # the nudged model codes real symbols


def test_ratios_are_consistent_with_the_times(result):
    res, _, _ = result
    rows = res["per_image"]
    for r in rows:
        assert r["ratio"] == pytest.approx(r["compressai"]["decompress_ms"] / r["runtime"]["decode_ms"])
    t = res["total"]
    assert t["runtime_ms"] == pytest.approx(sum(r["runtime"]["decode_ms"] for r in rows))
    assert t["ratio"] == pytest.approx(t["compressai_ms"] / t["runtime_ms"])
    assert res["median_ratio"] == pytest.approx(float(np.median([r["ratio"] for r in rows])))


def test_both_decodes_agree_in_psnr(result):
    res, _, _ = result
    r = res["per_image"][0]
    assert math.isfinite(r["psnr_runtime"]) and math.isfinite(r["psnr_compressai"])
    assert r["psnr_diff_db"] == pytest.approx(abs(r["psnr_runtime"] - r["psnr_compressai"]))
    assert r["psnr_diff_db"] <= 0.01 and r["psnr_agree"] and res["psnr_agree"]


def test_table_states_random_weights_and_the_ratio(result):
    res, out, _ = result
    assert res["random_weights"] is True and "RANDOM weights" in out
    assert "CompressAI decompress / runtime decode" in out and f"{res['total']['ratio']:.2f}×" in out


def test_synthesis_variants_cover_torch_and_every_graph_form(result):
    res, _, _ = result
    names = {v["variant"] for v in res["synthesis_variants"]}
    assert names == {"torch g_s"} | {
        f"{f} {lvl}" for f in ("convtranspose", "phases", "fused") for lvl in ("ENABLE_BASIC", "ENABLE_ALL")
    }
    for v in res["synthesis_variants"]:
        assert v["median_ms"] > 0 and v["min_ms"] <= v["median_ms"]
    # the bundle was exported with the sub-pixel pass (phases, interleaved by Transpose) and the GDN moved per phase
    assert (
        res["synthesis_graph_ops"].get("Transpose", 0) >= 1 and res["synthesis_graph_ops"].get("ConvTranspose", 0) == 1
    )
    assert res["synthesis_graph_ops"].get("GeneralizedDivisiveNorm", 0) > 3


def in_process(capsys, *args):
    """(exit code, stdout, stderr) of the command run in this process (no second torch import)."""
    import torch

    from benchmarks.kodak_decode import main

    threads = torch.get_num_threads()
    try:
        rc = main([str(a) for a in args])
    finally:
        torch.set_num_threads(threads)  # the command sets --threads for the process
    out, err = capsys.readouterr()
    return rc, out, err


def test_second_run_reuses_the_cached_export(result, capsys):
    res, _, tmp = result
    rc, out, err = in_process(
        capsys,
        "--quality",
        1,
        "--images",
        1,
        "--data",
        tmp / "crops",
        "--repeats",
        1,
        "--cache",
        tmp / "cache",
        "--json",
        "-",
        "--quiet",
    )
    assert rc == 0, err[-2000:]
    again = json.loads(out)
    assert again["bundle_reused"] is True and again["bundle"] == res["bundle"]


def test_bad_inputs_give_one_line_errors(tmp_path, capsys):
    rc, _, err = in_process(capsys, "--data", tmp_path / "nowhere", "--quiet")
    assert rc == 1 and err.startswith("error") and len(err.strip().splitlines()) == 1 and "nowhere" in err
    rc, _, err = in_process(capsys, "--checkpoint", tmp_path / "missing.pth", "--data", KODAK, "--quiet")
    assert rc == 1 and err.startswith("error") and "missing.pth" in err
    rc, _, err = in_process(capsys, "--threads", 0, "--data", KODAK, "--quiet")
    assert rc == 1 and "--threads" in err


def test_command_is_registered():
    r = subprocess.run([sys.executable, "-m", "benchmarks", "--help"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0 and "kodak-decode" in r.stdout
