"""Wavefront vs raster spatial-context decoding on a real (untrained, tiny) mbt2018 bundle."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import wavefront
from benchmarks.common import load_rgb


@pytest.mark.slow
def test_wavefront_needs_far_fewer_steps_and_decodes_the_same_image(tmp_path, kodak_images):
    pytest.importorskip("torch")
    from export.onnx import export_bundle
    from train.checkpoint import save_checkpoint
    from train.models import create_model

    ckpt = save_checkpoint(
        tmp_path / "m.pth", create_model("mbt2018", preset="tiny"), lmbda=0.01, metric="mse", step=0, epoch=0
    )
    export_bundle(ckpt, tmp_path / "m.bundle", check=False, progress=False)
    img = load_rgb(kodak_images[0])[:256, :384]  # latent 16 x 24
    r = wavefront.measure(tmp_path / "m.bundle", img)
    assert r["wavefront"]["steps"] == 3 * (16 - 1) + 24  # 3(h-1)+w
    assert r["raster"]["steps"] == 16 * 24  # h*w
    assert r["repeats"] == 3  # decode times are medians of 3
    # 69 batched steps against 384 single ones; the whole decode also holds the (equal) synthesis
    assert r["context_loop_speedup"] > 1.0 and r["speedup"] > 1.0, r
    assert r["max_abs_diff"] <= 1  # same symbols; batching may move a float bit


@pytest.mark.slow
def test_wavefront_command_names_the_image_it_coded(tmp_path):
    pytest.importorskip("torch")
    import json

    from train.checkpoint import save_checkpoint
    from train.models import create_model

    ckpt = save_checkpoint(
        tmp_path / "m.pth", create_model("mbt2018", preset="tiny"), lmbda=0.01, metric="mse", step=0, epoch=0
    )
    out = tmp_path / "w.json"
    assert wavefront.main([str(ckpt), "--size", "64x64", "--repeats", "1", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["image"] == "assets/images/kodak/" + wavefront.default_image().name  # the default: a shipped image
    assert res["repeats"] == 1 and res["wavefront"]["steps"] == 3 * 3 + 4


def test_non_spatial_context_bundle_is_refused(tmp_path):
    (tmp_path / "manifest.json").write_text(
        '{"format": "lictrt-bundle", "format_version": 1, "plan": {"kind": "hyperprior"}, "graphs": {}}'
    )
    with pytest.raises(wavefront.WavefrontError, match="spatial_context"):
        wavefront.measure(tmp_path, np.zeros((64, 64, 3), np.uint8))
