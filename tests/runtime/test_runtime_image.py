"""Image geometry: CompressAI's padding split, crop back, rounding, atomic save."""

import contextlib
import logging

import numpy as np
import pytest

from runtime import image as img


@pytest.mark.parametrize("h,w,m", [(1, 1, 64), (64, 64, 64), (65, 130, 64), (37, 91, 16), (512, 768, 64)])
def test_padding_matches_compressai_compute_padding(h, w, m):
    pytest.importorskip("torch")
    from compressai.ops import compute_padding

    (left, right, top, bottom), _ = compute_padding(h, w, min_div=m)
    assert img.padding(h, w, m) == (top, bottom, left, right)


def test_to_input_then_from_output_is_identity_for_any_size():
    rng = np.random.default_rng(1)
    for h, w in [(1, 1), (5, 70), (64, 64), (33, 17)]:
        a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        x = img.to_input(a, 16)
        assert x.shape == (1, 3, -(-h // 16) * 16, -(-w // 16) * 16) and x.dtype == np.float32
        top, _, left, _ = img.padding(h, w, 16)
        assert x[0, :, :top].sum() == 0 and x[0, :, :, :left].sum() == 0  # zero border
        out = img.from_output(x, h, w, 16)
        assert out.flags["C_CONTIGUOUS"]
        np.testing.assert_array_equal(out, a)


def test_from_output_clamps_and_rounds_half_to_even():
    x = np.array([-0.5, 2.0, 0.5 / 255, 1.5 / 255], np.float32).reshape(1, 1, 1, 4).repeat(3, 1)
    out = img.from_output(x, 1, 4, 1)
    assert out[0, :, 0].tolist() == [0, 255, 0, 2]


def test_bad_inputs_raise_image_error(tmp_path):
    with pytest.raises(img.ImageError):
        img.load(np.zeros((4, 4), np.uint8))
    with pytest.raises(img.ImageError):
        img.load(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(img.ImageError):
        img.load(tmp_path / "bad.png")


def test_save_is_atomic_and_lossless(tmp_path):
    a = np.random.default_rng(2).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    p = tmp_path / "out.png"
    img.save(p, a)
    np.testing.assert_array_equal(img.load(p), a)
    assert [f.name for f in tmp_path.iterdir()] == ["out.png"]  # no temporary left behind


def test_16bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    from PIL import Image

    v = np.array([[0, 257, 30000], [32896, 65535, 1000]], dtype=np.uint16)
    Image.fromarray(v).save(tmp_path / "g16.png")
    a, info = img.load_with_info(tmp_path / "g16.png")
    want = np.rint(v / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(a, np.repeat(want[:, :, None], 3, axis=2))
    assert info["bits"] == 16 and info["format"] == "PNG" and not info["notes"]
    np.testing.assert_array_equal(img.load(tmp_path / "g16.png"), a)


def test_float_images_are_refused_clearly(tmp_path):
    from PIL import Image

    Image.fromarray(np.ones((4, 4), np.float32)).save(tmp_path / "f.tiff")
    with pytest.raises(img.ImageError, match="floating-point samples are not supported"):
        img.load(tmp_path / "f.tiff")


@contextlib.contextmanager
def notes(caplog):
    """Capture the runtime's notes even after a CLI in this process stopped the ``lictrt`` logger propagating."""
    logger = logging.getLogger("lictrt")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level("WARNING", logger="lictrt.image"):
            yield
    finally:
        logger.removeHandler(caplog.handler)


def test_exif_orientation_is_applied_and_noted(tmp_path, caplog):
    from PIL import Image

    a = np.zeros((2, 3, 3), np.uint8)
    a[0, 0] = 255  # top-left marker
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6  # viewer rotates 90° clockwise
    im.save(tmp_path / "o.png", exif=exif)
    with notes(caplog):
        out = img.load(tmp_path / "o.png")
    assert out.shape == (3, 2, 3)  # upright as a viewer shows it
    np.testing.assert_array_equal(out, np.ascontiguousarray(np.rot90(a, k=-1)))
    assert "EXIF orientation 6 applied" in caplog.text


def test_alpha_is_dropped_with_a_note(tmp_path, caplog):
    from PIL import Image

    rgba = np.full((3, 4, 4), 200, np.uint8)
    rgba[..., 3] = 7
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    with notes(caplog):
        out = img.load(tmp_path / "a.png")
    np.testing.assert_array_equal(out, rgba[..., :3])
    assert "alpha channel dropped" in caplog.text


def test_cli_info_describes_an_image_and_encode_notes_dropped_alpha(tmp_path, tmp_path_factory):
    pytest.importorskip("torch")
    from PIL import Image
    from test_runtime_cli import cli
    from test_runtime_support import cached_bundle

    Image.fromarray(np.full((4, 5), 40000, np.uint16)).save(tmp_path / "g16.png")
    r = cli("info", tmp_path / "g16.png")
    assert r.returncode == 0, r.stderr
    assert "PNG image 5x4" in r.stdout and "16-bit" in r.stdout and "coded as 8-bit RGB 5x4" in r.stdout
    rgba = np.full((8, 8, 4), 99, np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    _, b, _ = cached_bundle(tmp_path_factory, "bmshj2018-hyperprior")
    r = cli("encode", b, tmp_path / "a.png", "-o", tmp_path / "a.lic")
    assert r.returncode == 0, r.stderr
    assert "alpha channel dropped" in r.stderr
