"""Plan ``factorized`` on each width of a tiny SlimCAE (torch reference): CompressAI's streams and PSNR."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from test_runtime_support import test_image  # noqa: E402

from runtime import Codec  # noqa: E402
from runtime import image as img  # noqa: E402
from runtime.container import unpack  # noqa: E402


def test_each_width_codes_like_its_own_compress():
    import torch.nn.functional as F
    from compressai.ops import compute_padding

    from train.models import create_model

    torch.set_num_threads(1)
    torch.manual_seed(0)
    m = create_model("slimcae", preset="tiny").eval()
    m.update(force=True)
    im = test_image(48, 80)
    x = torch.from_numpy(im.astype(np.float32).transpose(2, 0, 1)[None] / 255)
    sizes = []
    for w in m.widths:
        view = m.at_width(w)
        c = Codec.from_model(view, mode="compat")
        data = c.encode(im)
        assert c.last_stats["coder_calls"] == 1 and c.last_stats["network_calls"] == 1
        pad, unpad = compute_padding(48, 80, min_div=view.pad_multiple)
        with torch.no_grad():
            ref = view.compress(F.pad(x, pad))
            x_hat = F.pad(view.decompress(ref["strings"], ref["shape"])["x_hat"], unpad)
        streams = unpack(data)[1]
        assert [s.kind for s in streams] == ["y"] and streams[0].payload == ref["strings"][0][0]
        ref_im = (x_hat[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        assert abs(img.psnr(im, c.decode(data)) - img.psnr(im, ref_im)) <= 0.01
        sizes.append(len(streams[0].payload))
    assert sizes == sorted(sizes, reverse=True)  # narrower widths code fewer channels
