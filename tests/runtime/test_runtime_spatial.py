"""Plan ``spatial_context`` on a tiny mbt2018 bundle: wavefront order, step counts, parity with CompressAI."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from test_runtime_support import Perturb, cached_bundle, test_image  # noqa: E402

from runtime import BitstreamError, Codec  # noqa: E402
from runtime import image as img  # noqa: E402
from runtime.plans.spatial_context import schedule  # noqa: E402


@pytest.mark.parametrize("h,w", [(1, 1), (1, 5), (5, 1), (2, 3), (8, 12), (32, 48)])
def test_wavefront_schedule_covers_every_position_after_its_causal_neighbours(h, w):
    steps = schedule(h, w)
    when = {}
    for k, (rows, cols) in enumerate(steps):
        assert len(rows) > 0
        for i, j in zip(rows.tolist(), cols.tolist()):
            assert (i, j) not in when
            when[(i, j)] = k
    assert len(when) == h * w
    for (i, j), k in when.items():  # the 5×5 causal mask: two rows above (all 5 columns), two to the left
        for di, dj in [(-2, d) for d in range(-2, 3)] + [(-1, d) for d in range(-2, 3)] + [(0, -2), (0, -1)]:
            if (i + di, j + dj) in when:
                assert when[(i + di, j + dj)] < k
    if w >= 3:
        assert len(steps) == 3 * (h - 1) + w  # Kodak 32×48 latent: 141 steps instead of 1536
    assert len(schedule(h, w, "raster")) == h * w


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    torch.set_num_threads(1)
    return cached_bundle(tmp_path_factory, "mbt2018")


def test_wavefront_and_raster_decode_the_same_image(bundle):
    _, b, _ = bundle
    im = test_image(128, 192)
    outs = {}
    for order in ("wavefront", "raster"):
        c = Codec.open(b, context_order=order)
        data = c.encode(im)
        assert c.last_stats["sequential_steps"] == {"wavefront": 3 * 7 + 12, "raster": 8 * 12}[order]
        outs[order] = Codec.open(b).decode(data)  # the order comes from the header flags
        st = c.last_stats
        assert st["coder_calls"] == st["sequential_steps"] + 1  # one per step, plus z
        assert st["network_calls"] == st["sequential_steps"] + 2  # + analysis, hyper_synthesis
    assert abs(img.psnr(im, outs["wavefront"]) - img.psnr(im, outs["raster"])) < 0.01


def test_kept_symbols_follow_the_context_order(bundle):
    from runtime.plans.spatial_context import schedule

    _, b, _ = bundle
    im = test_image(64, 128)  # latent 4 x 8
    kept = {}
    for order in ("wavefront", "raster"):
        c = Codec.open(b, context_order=order)
        data = c.encode(im, keep_symbols=True)
        kept[order] = c.last_symbols["y"]
        c.decode(data, keep_symbols=True)
        np.testing.assert_array_equal(c.last_symbols["y"], kept[order])  # read back in the same order
    channels = kept["raster"].size // 32
    grid = kept["raster"].reshape(4, 8, channels)  # raster: position by position, every channel of each
    positions = np.concatenate([np.stack([r, q], 1) for r, q in schedule(4, 8)])  # wavefront: step by step
    np.testing.assert_array_equal(kept["wavefront"].reshape(32, channels), grid[positions[:, 0], positions[:, 1]])


def test_torch_onnxruntime_and_compressai_agree(bundle):
    import torch.nn.functional as F
    from compressai.ops import compute_padding

    ck, b, model = bundle
    im = test_image(64, 128, seed=2)
    ct = Codec.open(b, backend="torch", checkpoint=ck, parse_path="torch")
    co = Codec.open(b, parse_path="onnxruntime")
    d_t, d_o = ct.encode(im), co.encode(im)
    from runtime.container import unpack

    st, so = unpack(d_t)[1], unpack(d_o)[1]
    assert [(s.kind, s.symbols_crc, s.payload) for s in st] == [(s.kind, s.symbols_crc, s.payload) for s in so]
    out = co.decode(d_t)
    x = torch.from_numpy(im.astype(np.float32).transpose(2, 0, 1)[None] / 255)
    pad, unpad = compute_padding(64, 128, min_div=64)
    with torch.no_grad():
        ref = model.compress(F.pad(x, pad))
        x_hat = F.pad(model.decompress(ref["strings"], ref["shape"])["x_hat"], unpad)
    ref_im = (x_hat[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    assert abs(img.psnr(im, out) - img.psnr(im, ref_im)) <= 0.01


def test_context_mismatch_is_detected(bundle):
    _, b, _ = bundle
    data = Codec.open(b).encode(test_image(64, 64))
    dec = Codec.open(b)
    pp = "onnxruntime-cpu-fp32"

    def shift_means(graph, out):
        if graph == "context_step":
            out["means"] = out["means"] + np.float32(0.3)  # ŷ feeds later contexts: a μ error desynchronises
            out["scales"] = out["scales"] * np.float32(1.05)
        return out

    dec.parse_backends[pp] = Perturb(dec.parse_backends[pp], shift_means)
    with pytest.raises(BitstreamError, match="stream 'y'"):
        dec.decode(data)
