"""RD evaluation: real bitstreams through the runtime vs the PyTorch reference, anchors, layout, report, BD parity."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from benchmarks import rd, report
from benchmarks.common import load_rgb, ms_ssim, psnr

ROOT = Path(__file__).resolve().parents[2]
KODAK = ROOT / "assets" / "images" / "kodak"
SHARED_KODAK = ROOT.parent / "shared" / "data" / "kodak"


def _container(streams: list[tuple[str, bytes]]) -> bytes:
    """A .lic container written by hand from docs/FORMATS.md."""
    head = (
        b"LICT"
        + struct.pack("<BBH", 1, 0, 0)
        + bytes(32)
        + struct.pack("<IIHBBBBH", 512, 768, 64, 0, 0, 1, 0, len(streams))
    )
    for kind, payload in streams:
        head += kind.encode().ljust(16, b"\0") + struct.pack("<IIII", 10, len(payload), zlib.crc32(payload), 0)
    head += struct.pack("<I", zlib.crc32(head))
    return head + b"".join(p for _, p in streams)


def test_container_payloads_are_read_per_formats_md():
    data = _container([("z", b"abc"), ("y", b"0123456789")])
    assert rd.container_streams(data) == [("z", b"abc"), ("y", b"0123456789")]
    with pytest.raises(rd.RDError, match="add up"):
        rd.container_streams(data + b"x")
    with pytest.raises(rd.RDError, match="magic"):
        rd.container_streams(b"JUNK" + data[4:])


def test_quality_metrics_follow_compressai_conventions():
    img = load_rgb(KODAK / "kodim03.png")
    assert psnr(img, img) == float("inf")
    noisy = np.clip(img.astype(int) + 4, 0, 255).astype(np.uint8)
    assert psnr(img, noisy) == pytest.approx(10 * np.log10(255**2 / np.mean((img.astype(float) - noisy) ** 2)))
    assert 0.9 < ms_ssim(img, noisy) <= 1.0
    assert ms_ssim(img[:128, :128], noisy[:128, :128]) is None  # too small for 5 scales: skipped, not faked


def test_jpeg_anchor_rate_and_quality_grow_with_the_setting():
    images = [("k", load_rgb(KODAK / "kodim03.png")[:256, :256])]
    pts = [rd.evaluate_point(rd.PillowCoder("jpeg", q), images) for q in (20, 50, 90)]
    bpps = [p["mean"]["bpp"] for p in pts]
    psnrs = [p["mean"]["psnr-rgb"] for p in pts]
    assert bpps == sorted(bpps) and psnrs == sorted(psnrs) and bpps[0] > 0


def test_family_uses_compressai_eval_model_layout():
    pts = [
        {
            "label": f"p{i}",
            "arch": "a",
            "mean": {
                "bpp": b,
                "bpp-payload": b * 0.9,
                "psnr-rgb": 30 + i,
                "ms-ssim-rgb": None,
                "encoding_time": 0.1,
                "decoding_time": 0.1,
            },
            "per_image": [{"image": "i", "bpp": b, "_payloads": [b"x"]}],
        }
        for i, b in enumerate((0.5, 0.1, 0.3))
    ]
    fam = rd.family("a (onnxruntime)", "desc", pts, {"kind": "deployed"})
    assert set(fam) >= {"name", "description", "results"}
    assert fam["results"]["bpp"] == [0.1, 0.3, 0.5]  # sorted by rate
    assert set(fam["results"]) >= {"bpp", "psnr-rgb", "ms-ssim-rgb"}
    assert "_payloads" not in json.dumps(fam)


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    """An untrained tiny GDN hyperprior: checkpoint + exported bundle (exercises the real pipeline, any RD)."""
    pytest.importorskip("torch")
    from export.onnx import export_bundle
    from train.checkpoint import save_checkpoint
    from train.models import create_model

    d = tmp_path_factory.mktemp("rd")
    ckpt = save_checkpoint(
        d / "h.pth", create_model("bmshj2018-hyperprior", preset="tiny"), lmbda=0.01, metric="mse", step=0, epoch=0
    )
    export_bundle(ckpt, d / "h.bundle", check=False, progress=False)
    return ckpt, d / "h.bundle"


def test_deployed_compat_stream_is_byte_identical_to_the_reference(tiny_bundle):
    ckpt, bundle = tiny_bundle
    img = [("kodim03", load_rgb(KODAK / "kodim03.png")[:256, :384])]
    dep = rd.evaluate_point(rd.BundleCoder(bundle, "onnxruntime", mode="compat"), img)
    ref = rd.evaluate_point(rd.ReferenceCoder(ckpt), img)
    assert rd._payload_match([dep], [ref]) == {"images": 1, "identical_payloads": 1}
    assert dep["mean"]["bpp-payload"] == ref["mean"]["bpp"]
    assert dep["mean"]["bpp"] > dep["mean"]["bpp-payload"]  # the container header is counted in the file bpp
    assert abs(dep["mean"]["psnr-rgb"] - ref["mean"]["psnr-rgb"]) < 0.01
    stats = dep and rd.BundleCoder(bundle, "onnxruntime", mode="compat")
    data = stats.codec.encode(img[0][1])
    assert sum(len(p) for _, p in rd.container_streams(data)) == stats.codec.last_stats["payload_bytes"]


def test_rd_cli_writes_results_plot_and_report(tiny_bundle, tmp_path):
    ckpt, bundle = tiny_bundle
    data = tmp_path / "img"
    data.mkdir()
    from PIL import Image

    Image.fromarray(load_rgb(KODAK / "kodim03.png")[:192, :256]).save(data / "a.png")
    out = tmp_path / "res"
    rc = rd.main(
        [
            "--bundle",
            str(bundle),
            "--reference",
            str(ckpt),
            "--data",
            str(data),
            "--anchors",
            "jpeg",
            "--json",
            str(out / "rd.json"),
            "--plot",
            str(tmp_path / "rd.png"),
        ]
    )
    assert rc == 0
    doc = json.loads((out / "rd.json").read_text())
    kinds = sorted(f["kind"] for f in doc["families"])
    assert kinds == ["anchor", "deployed", "reference"]
    assert (tmp_path / "rd.png").stat().st_size > 1000
    # one rate point per family: BD-rate is refused with the reason, not invented
    assert any("error_payload" in e and ">= 4" in e["error_payload"] for e in doc["bd_rate"])
    assert report.main(["--results", str(out), "-o", str(tmp_path / "report.md")]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "bmshj2018-hyperprior (onnxruntime)" in text and "JPEG" in text and "rd-rd.png" in text


def test_rd_cli_errors_are_one_line(tmp_path, capsys):
    assert rd.main(["--data", str(tmp_path)]) == 1
    assert rd.main(["--reference", "x.pth", "--data", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("error") for e in err)


def test_report_refuses_an_empty_results_folder(tmp_path, capsys):
    assert report.main(["--results", str(tmp_path)]) == 1
    assert "no results" in capsys.readouterr().err


def test_group_masks_are_read_at_any_scale_and_cropped_with_the_image(tmp_path):
    from PIL import Image

    img = np.zeros((64, 96, 3), np.uint8)
    lat = np.zeros((4, 6), np.uint8)  # 1/16 size: two separate foreground boxes -> labels 0, 1, 2
    lat[0:2, 0:2] = 255
    lat[2:4, 4:6] = 255
    Image.fromarray(lat).save(tmp_path / "a.png")
    labels = rd.load_masks(tmp_path, [("a.png", img)])["a.png"]
    assert labels.shape == (64, 96) and sorted(np.unique(labels).tolist()) == [0, 1, 2]
    assert labels[0, 0] != labels[63, 95] and labels[0, 0] != 0 and labels[63, 0] == 0  # 16-px blocks
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "b.png")
    with pytest.raises(rd.RDError, match="not a scale"):
        rd.load_masks(tmp_path, [("b.png", img)])
    with pytest.raises(rd.RDError, match="no group mask for c.png"):
        rd.load_masks(tmp_path, [("c.png", img)])


def test_report_renders_the_levels_of_a_scalable_bundle(tmp_path):
    row = {"level": "g_a=8,h_a=8,h_s=8,g_s=8,context=2stage", "bpp": 0.1, "psnr": 20.0, "decode_s": 0.05}
    row.update(network_s=0.03, loop_s=0.01, entropy_s=0.01, steps=2, decoder_kmac_per_px=0.7, name="fastest")
    doc = {"benchmark": "basic-levels", "arch": "basic", "images": ["a.png"], "repeats": 3, "rows": [row]}
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "levels.json").write_text(json.dumps(doc))
    text, skipped = report.build(tmp_path / "res", tmp_path / "report.md")
    assert not skipped and "| fastest | g_a=8,h_a=8,h_s=8,g_s=8,context=2stage | 0.1000 | 20.00 | 50.0 |" in text
