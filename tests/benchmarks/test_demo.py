"""The main job `python -m benchmarks demo`: the CI-visible checks are fast; the full run is marked slow."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import demo

ROOT = Path(__file__).resolve().parents[2]


def test_demo_finds_the_shipped_images():
    assert {"gitssic", "basic"} <= set(demo.ARCHS)
    assert demo.find_train_dir().is_dir()
    assert demo.find_test_dir() == ROOT / "assets" / "images" / "kodak"
    assert len(demo.LAMBDAS) >= 4 and list(demo.LAMBDAS) == sorted(demo.LAMBDAS)  # >= 4 rate points for BD-rate


def test_demo_rejects_bad_options_in_one_line(capsys):
    assert demo.main(["--archs", ","]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --archs is empty"]


def test_demo_report_says_what_it_measures_and_has_no_classical_curves(tmp_path):
    import inspect

    from benchmarks import rd, report

    assert "not codec quality" in demo.MEASURES and "MACs" in demo.MEASURES and "fidelity" in demo.MEASURES
    assert inspect.signature(rd.run).parameters["anchors"].default == ()  # rd: classical curves only when asked
    fam = {
        "name": "bmshj2018-hyperprior (onnxruntime)",
        "kind": "deployed",
        "arch": "bmshj2018-hyperprior",
        "results": {"bpp": [0.5, 1.0], "psnr-rgb": [20.0, 22.0]},
    }
    doc = {
        "demo": True,
        "measures": demo.MEASURES,
        "rd": {
            "data": "kodak",
            "images": ["a.png"],
            "notes": [],
            "bd_rate": [],
            "families": [fam],
            "title": demo.PLOT_TITLE,
        },
    }
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "demo.json").write_text(json.dumps(doc))
    text, _ = report.build(tmp_path / "res", tmp_path / "report.md")
    assert "what it measures" in text and demo.MEASURES in text
    assert "| JPEG" not in text and "| WEBP" not in text  # no anchor family rows


@pytest.mark.slow
def test_demo_runs_in_five_minutes_and_reports_bd_rate(tmp_path):
    """The README's main-job command as it stands (every architecture of ARCHS, four λ each), timed end to end."""
    out = tmp_path / "demo"
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "demo", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "results" / "demo.json").read_text())
    bd = summary["bd_rate_vs_reference"]
    assert bd, "no BD-rate against the PyTorch reference"
    four = {a for a, lams in summary["lambdas"].items() if len(lams) >= 4}
    assert four >= {"bmshj2018-hyperprior", "ssmic"}
    assert all(isinstance(e.get("bd_rate_payload_akima"), float) for e in bd if e["test"].split()[0] in four)
    fams = {(f["arch"], f["kind"]): f["results"] for f in summary["rd"]["families"] if "kind" in f}
    for arch in set(demo.ARCHS) - four:  # two λ: the deployment matches the reference point by point
        dep, ref = fams[arch, "deployed"], fams[arch, "reference"]
        assert len(dep["bpp"]) == len(summary["lambdas"][arch]) == len(ref["bpp"])
        assert dep["bpp-payload"] == pytest.approx(ref["bpp-payload"], rel=0.01)
        assert dep["psnr-rgb"] == pytest.approx(ref["psnr-rgb"], abs=0.05)
    assert "BD-rate" in proc.stdout and (out / "rd.png").stat().st_size > 1000
    assert "What this demo measures" in proc.stdout and summary["measures"] == demo.MEASURES
    assert not [f for f in summary["rd"]["families"] if f.get("kind") == "anchor"]  # no JPEG/WebP/AVIF here
    report = (out / "report.md").read_text()
    assert all(a in report for a in demo.ARCHS) and not summary["skipped"], summary["skipped"]
    deployed = {f["arch"] for f in summary["rd"]["families"] if f.get("kind") == "deployed"}
    assert deployed == set(demo.ARCHS)
    git = next(f for f in summary["rd"]["families"] if f.get("kind") == "deployed" and f["arch"] == "gitssic")
    if demo.find_masks_dir(demo.find_test_dir(), summary["images"]):  # coded with the Kodak group masks
        assert all(q["mask_bytes"] > 0 for pts in git["per_image"].values() for q in pts)
    (levels,) = summary["levels"]  # BaSIC decoded at three levels of one bundle
    assert [r["name"] for r in levels["rows"]] == ["fastest", "middle", "full"]
    assert levels["rows"][0]["steps"] < levels["rows"][-1]["steps"]  # staged coder vs scanline wavefront
    assert "| fastest |" in report
    assert elapsed <= 300, f"demo took {elapsed:.0f} s (> 5 minutes)"
