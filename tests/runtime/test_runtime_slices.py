"""Plan ``channel_slices`` on a tiny MambaVC through the torch reference (``Codec.from_model``).

The plan logic (slice order, supports, LRP, per-slice streams) is checked against the model's own
``compress``/``decompress``: compat mode reproduces its strings byte for byte.  (The ONNX bundle path uses the
same routine; MambaVC's export is too slow for a unit test on a 2-core CPU.)
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from test_runtime_support import Perturb, record_progress, test_image, tiny_model  # noqa: E402

from runtime import BitstreamError, Codec  # noqa: E402
from runtime import image as img  # noqa: E402
from runtime.container import unpack  # noqa: E402


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return tiny_model("mambavc")


def test_compat_streams_equal_the_models_own_compress(model):
    import torch.nn.functional as F
    from compressai.ops import compute_padding

    im = test_image(64, 64)
    c = Codec.from_model(model, mode="compat")
    data, steps = record_progress(lambda cb: c.encode(im, progress=cb))
    S = model.num_slices
    assert c.last_stats["sequential_steps"] == S and c.last_stats["coder_calls"] == S + 1
    assert steps[0][1] == 2 + 2 * S  # analysis, hyper_synthesis, slice<i> and lrp<i> per slice, known up front
    x = torch.from_numpy(im.astype(np.float32).transpose(2, 0, 1)[None] / 255)
    pad, unpad = compute_padding(64, 64, min_div=model.pad_multiple)
    with torch.no_grad():
        ref = model.compress(F.pad(x, pad))
        x_hat = F.pad(model.decompress(ref["strings"], ref["shape"])["x_hat"], unpad)
    streams = {s.kind: s.payload for s in unpack(data)[1]}
    assert list(streams) == ["z"] + [f"y{i}" for i in range(S)]
    assert streams["z"] == ref["strings"][-1][0]
    assert all(streams[f"y{i}"] == ref["strings"][i][0] for i in range(S))
    ref_im = (x_hat[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    assert abs(img.psnr(im, c.decode(data)) - img.psnr(im, ref_im)) <= 0.01


def test_lrp_mismatch_is_detected(model):
    data = Codec.from_model(model).encode(test_image(64, 64, seed=1))
    dec = Codec.from_model(model)
    pp = "torch-cpu-fp32"

    def bad_lrp(graph, out):  # ŷ of slice 0 feeds the μ, σ of every later slice
        if graph == "lrp0":
            out["lrp"] = out["lrp"] + np.float32(0.7)
        return out

    dec.parse_backends[pp] = Perturb(dec.parse_backends[pp], bad_lrp)
    with pytest.raises(BitstreamError, match=r"stream 'y[1-9]'"):
        dec.decode(data)
