"""The state-space codecs through the exported bundle: SSMIC (spatial_context) and MambaVC (channel_slices).

Specification, for the tiny presets (weights nudged as in test_runtime_support):
* encoding with the torch backend (PyTorch parse path) and with onnxruntime (pinned ORT parse path) writes the same
  streams, byte for byte and with the same symbol CRCs: the symbols are identical;
* each decodes the other's file (torch → onnxruntime and the reverse) to the same image;
* that image's PSNR equals the PyTorch reference ``compress``/``decompress`` to 0.01 dB.
MambaVC's export takes over ten minutes on a 2-core CPU, so its case is marked ``slow``.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from test_runtime_support import cached_bundle, test_image  # noqa: E402

from runtime import Codec  # noqa: E402
from runtime import image as img  # noqa: E402
from runtime.container import unpack  # noqa: E402

CASES = [("ssmic", "spatial_context"), pytest.param("mambavc", "channel_slices", marks=pytest.mark.slow)]


def _reference_image(model, im: np.ndarray) -> np.ndarray:
    """The PyTorch reference: the model's own compress/decompress, padded and cropped like the runtime."""
    import torch.nn.functional as F
    from compressai.ops import compute_padding

    h, w = im.shape[:2]
    x = torch.from_numpy(im.astype(np.float32).transpose(2, 0, 1)[None] / 255)
    pad, unpad = compute_padding(h, w, min_div=getattr(model, "pad_multiple", 64))
    with torch.no_grad():
        ref = model.compress(F.pad(x, pad))
        x_hat = F.pad(model.decompress(ref["strings"], ref["shape"])["x_hat"], unpad)
    return (x_hat[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


@pytest.mark.parametrize("arch,plan", CASES)
def test_torch_and_onnxruntime_code_identical_symbols_and_match_the_reference(arch, plan, tmp_path_factory):
    torch.set_num_threads(1)
    ck, bundle, model = cached_bundle(tmp_path_factory, arch)
    im = test_image(64, 128, seed=2)
    ct = Codec.open(bundle, backend="torch", checkpoint=ck, parse_path="torch")
    co = Codec.open(bundle, parse_path="onnxruntime")
    assert co.bundle.plan_kind == plan
    d_t, d_o = ct.encode(im), co.encode(im)
    st, so = unpack(d_t)[1], unpack(d_o)[1]
    assert sum(len(s.payload) for s in st if s.kind != "z") > 100  # the nudged latent really carries symbols
    assert [(s.kind, s.symbols_crc, s.payload) for s in st] == [(s.kind, s.symbols_crc, s.payload) for s in so]
    out_o, out_t = co.decode(d_t), ct.decode(d_o)  # each backend decodes the other's file
    assert np.array_equal(out_o, out_t) or abs(img.psnr(im, out_o) - img.psnr(im, out_t)) <= 0.01
    assert abs(img.psnr(im, out_o) - img.psnr(im, _reference_image(model, im))) <= 0.01
