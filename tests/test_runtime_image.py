"""Image geometry: CompressAI's padding split, crop back, rounding, atomic save."""

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
