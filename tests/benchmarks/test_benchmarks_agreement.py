"""`python -m benchmarks agreement`: the torch and ONNX Runtime encoders' symbols per stream, and cross decoding."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import agreement


def test_compare_counts_differing_symbols_per_stream():
    a = {"y": np.array([0, 1, -2, 3], np.int32), "z": np.array([5], np.int32)}
    b = {"y": np.array([0, 2, -2, 0], np.int32), "z": np.array([5], np.int32)}
    assert agreement.compare(a, b) == {
        "y": {"symbols": 4, "differ": 2, "max_abs": 3},
        "z": {"symbols": 1, "differ": 0, "max_abs": 0},
    }
    with pytest.raises(agreement.AgreementError, match="different streams"):
        agreement.compare(a, {"y": b["y"]})
    with pytest.raises(agreement.AgreementError, match="stream 'y': 4 vs 3 symbols"):
        agreement.compare(a, {"y": b["y"][:3], "z": b["z"]})


def test_agreement_command_counts_flips_and_decodes_across_backends(tmp_path, kodak_images, capsys):
    pytest.importorskip("torch")
    from PIL import Image

    from export.onnx import export_bundle
    from runtime import Codec
    from train.checkpoint import save_checkpoint
    from train.models.seeded import codable_model

    data = tmp_path / "images"
    data.mkdir()
    for p in kodak_images[:2]:  # two 64x128 crops: latent 4 x 8 of the spatial-context model
        Image.open(p).convert("RGB").crop((0, 0, 128, 64)).save(data / p.name)
    ck = save_checkpoint(
        tmp_path / "m.pth", codable_model("mbt2018", "tiny", seed=0), lmbda=0.01, metric="mse", step=0, epoch=0
    )
    bundle = export_bundle(ck, tmp_path / "m.bundle", check=False, progress=False)["bundle"]
    out = tmp_path / "a.json"
    assert agreement.main([str(ck), "--bundle", str(bundle), "--data", str(data), "--control", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert [r["image"] for r in res["images"]] == sorted(p.name for p in kodak_images[:2])
    assert res["parse_path"] == "onnxruntime-cpu-fp32" and res["bundle"].endswith("m.bundle")
    assert res["model"]["arch"] == "mbt2018"
    for key in ("torch_vs_onnxruntime", "onnxruntime_vs_noopt"):
        per_stream = [s for r in res["images"] for s in r[key].values()]
        t = res[key]
        assert sorted(res["images"][0][key]) == ["y", "z"]
        assert t["symbols"] == sum(s["symbols"] for s in per_stream) == 2 * (4 * 8 * 24 + 1 * 2 * 16)
        assert t["differ"] == sum(s["differ"] for s in per_stream) <= t["symbols"] // 100
        assert t["per_million"] == pytest.approx(1e6 * t["differ"] / t["symbols"])
    for r in res["images"]:  # each backend reads the other's file with exactly the symbols it wrote
        a, b = r["onnxruntime_decodes_torch"], r["torch_decodes_onnxruntime"]
        assert a["ok"] and a["symbols_identical"] and b["ok"] and b["symbols_identical"]
        if not any(s["differ"] for s in r["torch_vs_onnxruntime"].values()):  # same symbols: same image, two backends
            assert abs(a["psnr"] - b["psnr"]) < 0.01
    assert res["cross_decodes"] == {"total": 4, "ok": 4}
    assert "each decodes the other's file with the symbols written: 4 of 4" in capsys.readouterr().out

    # a decoder whose context network is off reports the failed stream instead of an image
    enc, dec = Codec.open(bundle), Codec.open(bundle)
    dec.parse_backends[dec.parse_path] = _DoubleScales(dec.parse_backends[dec.parse_path])
    im = np.asarray(Image.open(data / res["images"][0]["image"]))
    bad = agreement._cross_decode(dec, enc.encode(im, keep_symbols=True), enc.last_symbols, im)
    assert not bad["ok"] and "stream 'y'" in bad["error"]


class _DoubleScales:
    """A parse backend whose context_step scales are twice the bundle's."""

    def __init__(self, inner):
        self.inner, self.name = inner, inner.name

    def run(self, graph, feeds):
        out = dict(self.inner.run(graph, feeds))
        if graph == "context_step":
            out["scales"] = out["scales"] * np.float32(2)
        return out


def test_agreement_command_names_a_missing_checkpoint(tmp_path, capsys):
    assert agreement.main([str(tmp_path / "none.pth")]) == 1
    assert "checkpoint not found" in capsys.readouterr().err
