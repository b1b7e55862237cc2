"""Codec round trips on tiny bmshj2018-hyperprior / mbt2018-mean bundles exported by ``python -m export.onnx``.

Specification:
* encode with the torch reference and decode with ONNX Runtime (and the reverse) gives identical symbols;
* compat mode writes CompressAI's own streams byte for byte, and PSNR equals CompressAI's compress/decompress;
* bpp is the real file size; any image size round-trips;
* a decoder whose σ differs by 1e-6 (relative) raises BitstreamError naming the stream — never a wrong image;
* corrupt, truncated or foreign bitstreams raise BitstreamError; threads decode like one thread;
* ``keep_symbols`` hands back every stream's symbols, the decoder's equal to the encoder's.
"""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from test_runtime_support import Perturb, cached_bundle, test_image  # noqa: E402

from runtime import BitstreamError, Codec, CodecError  # noqa: E402
from runtime import image as img  # noqa: E402
from runtime.container import unpack  # noqa: E402

ARCHS = ["bmshj2018-hyperprior", "mbt2018-mean"]


@pytest.fixture(scope="module", params=ARCHS)
def bundle(request, tmp_path_factory):
    torch.set_num_threads(1)
    return cached_bundle(tmp_path_factory, request.param)


def _streams(data):
    return {s.kind: s for s in unpack(data)[1]}


def test_roundtrip_any_size_is_deterministic(bundle):
    _, b, _ = bundle
    c = Codec.open(b, backend="onnxruntime")
    for h, w in [(1, 1), (37, 91), (64, 64), (70, 130)]:
        im = test_image(h, w, seed=h)
        data = c.encode(im)
        assert c.encode(im) == data  # same input, same bytes
        out = c.decode(data)
        assert out.shape == (h, w, 3) and out.dtype == np.uint8
        np.testing.assert_array_equal(c.decode(data), out)
        st = c.last_stats
        assert st["coder_calls"] == 2 and st["network_calls"] == 2 and st["sequential_steps"] == 2
        assert st["size"] == (h, w) and st["network_s"] > 0 and st["entropy_s"] > 0


def test_kept_symbols_are_the_streams_symbols_on_both_sides(bundle):
    from runtime import coder

    _, b, _ = bundle
    c = Codec.open(b, backend="onnxruntime")
    im = test_image(64, 96)
    data = c.encode(im, keep_symbols=True)
    sent = c.last_symbols
    streams = _streams(data)
    assert sorted(sent) == sorted(streams) == ["y", "z"]
    for kind, s in streams.items():  # count and CRC as the container records them
        assert sent[kind].dtype == np.int32 and sent[kind].size == s.n_symbols
        assert int(coder.symbols_crc(sent[kind])) == s.symbols_crc
    assert np.any(sent["y"] != 0)
    c.decode(data, keep_symbols=True)
    got = c.last_symbols
    assert sorted(got) == ["y", "z"] and all(np.array_equal(got[k], sent[k]) for k in sent)
    c.decode(data)
    assert c.last_symbols == {}  # kept only when asked


@pytest.mark.parametrize("enc_backend,dec_backend", [("torch", "onnxruntime"), ("onnxruntime", "torch")])
def test_torch_and_onnxruntime_give_identical_symbols(bundle, enc_backend, dec_backend):
    ck, b, _ = bundle
    im = test_image(80, 112)

    def codec(backend):  # every network of the codec on that backend, parse-critical graphs included
        if backend == "torch":
            return Codec.open(b, backend="torch", checkpoint=ck, parse_path="torch")
        return Codec.open(b, backend="onnxruntime", parse_path="onnxruntime")

    enc, dec = codec(enc_backend), codec(dec_backend)
    data = enc.encode(im)
    other = codec(dec_backend).encode(im)
    a, o = _streams(data), _streams(other)
    for kind in ("z", "y"):  # same symbols (CRC) and, the coder being deterministic, the same payload
        assert a[kind].symbols_crc == o[kind].symbols_crc and a[kind].payload == o[kind].payload
    out = dec.decode(data)  # the decoder's own parse path, checked by the symbol CRCs
    assert dec.last_stats["parse_path"] == ("torch-cpu-fp32" if dec_backend == "torch" else "onnxruntime-cpu-fp32")
    assert abs(img.psnr(im, out) - img.psnr(im, enc.decode(data))) < 0.01


def test_compat_mode_reproduces_compressai_streams_and_psnr(bundle):
    import torch.nn.functional as F
    from compressai.ops import compute_padding

    ck, b, model = bundle
    im = test_image(80, 112)
    c = Codec.open(b, backend="torch", checkpoint=ck, parse_path="torch", mode="compat")
    data = c.encode(im)
    x = torch.from_numpy(im.astype(np.float32).transpose(2, 0, 1)[None] / 255)
    pad, unpad = compute_padding(80, 112, min_div=64)
    with torch.no_grad():
        ref = model.compress(F.pad(x, pad))
        x_hat = F.pad(model.decompress(ref["strings"], ref["shape"])["x_hat"], unpad)
    ref_im = (x_hat[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    s = _streams(data)
    assert s["y"].payload == ref["strings"][0][0] and s["z"].payload == ref["strings"][1][0]
    ours = Codec.open(b, backend="onnxruntime").decode(data)  # deployment decoder: ORT everywhere
    assert abs(img.psnr(im, ours) - img.psnr(im, ref_im)) <= 0.01


def test_bpp_is_the_real_file_size(bundle, tmp_path):
    _, b, _ = bundle
    c = Codec.open(b)
    src = tmp_path / "in.png"
    img.save(src, test_image(70, 90))
    st = c.encode_file(src, tmp_path / "x.lic")
    size = os.path.getsize(tmp_path / "x.lic")
    assert st["bytes"] == size and st["bpp"] == pytest.approx(8 * size / (70 * 90))
    assert st["payload_bytes"] + st["header_bytes"] == size
    c.decode_file(tmp_path / "x.lic", tmp_path / "out.png")
    np.testing.assert_array_equal(img.load(tmp_path / "out.png"), c.decode((tmp_path / "x.lic").read_bytes()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "out.png", "x.lic"]  # no temporaries


def _snap_scales(table, rel=0.0):
    """σ → the nearest scale-table entry (× (1+rel)): σ sits exactly on index boundaries, so rel=1e-6 flips."""

    def fn(graph, out):
        if graph == "hyper_synthesis":
            s = out["scales"]
            k = np.abs(np.log(np.maximum(s, 1e-6))[..., None] - np.log(table)).argmin(-1)
            out["scales"] = (table[k] * np.float32(1 + rel)).astype(np.float32)
        return out

    return fn


def test_decoder_sigma_off_by_1e6_raises_bitstream_error(bundle):
    _, b, _ = bundle
    enc, dec, ref = Codec.open(b), Codec.open(b), Codec.open(b)
    table = enc.bundle.entropy("y").scale_table
    pp = "onnxruntime-cpu-fp32"
    enc.parse_backends[pp] = Perturb(enc.parse_backends[pp], _snap_scales(table))
    ref.parse_backends[pp] = Perturb(ref.parse_backends[pp], _snap_scales(table))
    dec.parse_backends[pp] = Perturb(dec.parse_backends[pp], _snap_scales(table, rel=1e-6))
    data = enc.encode(test_image(80, 112))
    assert ref.decode(data).shape == (80, 112, 3)  # the same parse path decodes
    with pytest.raises(BitstreamError, match="stream 'y'"):
        dec.decode(data)


def test_random_sigma_noise_never_gives_a_silently_wrong_image(bundle):
    _, b, _ = bundle
    enc = Codec.open(b)
    im = test_image(128, 128, seed=3)
    data = enc.encode(im)
    clean = enc.decode(data)
    rng = np.random.default_rng(0)
    outcomes = set()
    for rel in (1e-6, 1e-4, 1e-2, 1e-1):
        dec = Codec.open(b)
        pp = "onnxruntime-cpu-fp32"

        def noisy(graph, out, rel=rel):
            if graph == "hyper_synthesis":
                s = out["scales"]
                out["scales"] = (s * (1 + rel * rng.standard_normal(s.shape))).astype(np.float32)
            return out

        dec.parse_backends[pp] = Perturb(dec.parse_backends[pp], noisy)
        try:
            out = dec.decode(data)
        except BitstreamError:
            outcomes.add("error")
        else:
            outcomes.add("ok")
            np.testing.assert_array_equal(out, clean)  # accepted ⇒ exactly the encoder's symbols
    assert "error" in outcomes  # 10 % noise must be caught


def test_corrupt_truncated_and_foreign_bitstreams_raise(bundle, tmp_path_factory):
    _, b, _ = bundle
    c = Codec.open(b)
    data = c.encode(test_image(64, 96))
    bad = bytearray(data)
    bad[-3] ^= 0x40  # inside the y payload
    with pytest.raises(BitstreamError):
        c.decode(bytes(bad))
    with pytest.raises(BitstreamError):
        c.decode(data[: len(data) - 5])
    with pytest.raises(BitstreamError):
        c.decode(b"LICT" + bytes(10))
    other = ARCHS[1 - ARCHS.index(c.bundle.arch)]
    _, ob, _ = cached_bundle(tmp_path_factory, other)
    with pytest.raises(BitstreamError, match="model hash"):
        Codec.open(ob).decode(data)


def test_threads_decode_like_one_thread(bundle):
    _, b, _ = bundle
    c = Codec.open(b)
    files = [c.encode(test_image(64 + 8 * i, 64 + 16 * i, seed=i)) for i in range(4)]
    expected = [c.decode(d) for d in files]
    results, errors = {}, []

    def work(i):
        try:
            for _ in range(3):
                results.setdefault(i, []).append(c.decode(files[i]))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert not errors
    for i, outs in results.items():
        for o in outs:
            np.testing.assert_array_equal(o, expected[i])


def test_from_model_streams_decode_with_the_exported_bundle(bundle):
    _, b, model = bundle
    fm = Codec.from_model(model)
    assert fm.parse_path == "torch-cpu-fp32"
    im = test_image(64, 64)
    data = fm.encode(im)
    assert fm.bundle.model_hash == Codec.open(b).bundle.model_hash  # same hash as the exporter's
    out = Codec.open(b).decode(data)
    assert abs(img.psnr(im, out) - img.psnr(im, fm.decode(data))) < 0.01


def test_torch_backend_defaults_to_the_pinned_parse_path(bundle):
    ck, b, _ = bundle
    c = Codec.open(b, backend="torch", checkpoint=ck)
    assert c.parse_path == "onnxruntime-cpu-fp32" and c.recon.name == "torch-cpu"
    data = c.encode(test_image(64, 64))
    from runtime import container

    assert container.unpack(data)[0].parse_path_name == "onnxruntime-cpu-fp32"


def test_the_gpu_parse_path_needs_a_torch_model_and_a_cuda_device(bundle):
    ck, b, model = bundle
    with pytest.raises(CodecError, match="needs backend 'torch'"):
        Codec.open(b, backend="onnxruntime", parse_path="torch-cuda")
    if not torch.cuda.is_available():
        with pytest.raises(CodecError, match="needs a CUDA device"):
            Codec.from_model(model, parse_path="torch-cuda")
        with pytest.raises(CodecError, match="needs a CUDA device"):
            Codec.open(b, backend="torch", checkpoint=ck, parse_path="torch-cuda")
    with pytest.raises(CodecError, match="no 'onnxruntime' parse path"):
        Codec.from_model(model, parse_path="onnxruntime")


def test_a_stream_recorded_on_another_parse_path_decodes_when_its_symbols_survive(bundle):
    """A decoder without the recorded parse path (here: torch-cuda-fp32, run on the CPU for the test) uses its
    own; the stats name both, and the CRCs would have refused symbols that did not survive."""
    from runtime.backends.torch_ref import TorchBackend
    from runtime.codec import _torch_parse_backend

    _, _, model = bundle
    fm = Codec.from_model(model)
    cpu = _torch_parse_backend(model, fm.bundle.plan_kind, fm.recon, "cpu")
    gpu_like = Codec(fm.bundle, fm.recon, {"torch-cuda-fp32": cpu}, "torch-cuda-fp32")
    im = test_image(64, 64)
    data = gpu_like.encode(im)
    assert unpack(data)[0].parse_path_name == "torch-cuda-fp32"
    np.testing.assert_array_equal(fm.decode(data), gpu_like.decode(data))
    assert fm.last_stats["parse_path"] == "torch-cpu-fp32"
    assert fm.last_stats["parse_path_recorded"] == "torch-cuda-fp32"
    assert isinstance(cpu, TorchBackend) and cpu.model is fm.recon.model  # the same weights, no copy
    assert cpu.strict_fp32 and not fm.recon.strict_fp32


def test_strict_fp32_rules_out_tf32_for_the_block_and_restores_the_flags():
    from runtime.backends.torch_ref import strict_fp32_cuda

    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    before = (cudnn.allow_tf32, cudnn.benchmark, cudnn.deterministic, matmul.allow_tf32)
    with strict_fp32_cuda():
        assert (cudnn.allow_tf32, cudnn.benchmark, cudnn.deterministic, matmul.allow_tf32) == (
            False,
            False,
            True,
            False,
        )
    assert (cudnn.allow_tf32, cudnn.benchmark, cudnn.deterministic, matmul.allow_tf32) == before


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("arch", ARCHS)
def test_gpu_parse_path_round_trips_and_a_cpu_decoder_never_returns_a_wrong_image(arch):
    from train.models import create_model

    torch.manual_seed(0)
    model = create_model(arch, preset="tiny").eval()
    model.update(force=True)
    gpu = Codec.from_model(model, device="cuda", parse_path="torch-cuda")
    im = test_image(96, 128)
    data = gpu.encode(im)
    assert unpack(data)[0].parse_path_name == "torch-cuda-fp32" and gpu.recon.name == "torch-cuda"
    out = gpu.decode(data)
    np.testing.assert_array_equal(gpu.decode(data), out)
    try:
        cpu_out = Codec.from_model(model).decode(data)
    except BitstreamError:
        return  # σ from the GPU and the CPU differed: refused, never a wrong image
    assert abs(img.psnr(im, cpu_out) - img.psnr(im, out)) < 0.05


def test_torch_and_pinned_ort_scales_differ_in_the_last_bits(bundle):
    """Why the pinned path is the default (measured): σ from torch and from ORT are not bit-identical."""
    from runtime.backends.ort import OrtBackend
    from runtime.backends.torch_ref import TorchBackend
    from runtime.bundle import Bundle

    _, b, model = bundle
    bb = Bundle.load(b)
    rng = np.random.default_rng(0)
    z_hat = np.rint(rng.normal(0, 3, (1, model.entropy_bottleneck.channels, 8, 12))).astype(np.float32)
    s_t = TorchBackend(model).run("hyper_synthesis", {"z_hat": z_hat})["scales"]
    s_o = OrtBackend(bb, pinned=True).run("hyper_synthesis", {"z_hat": z_hat})["scales"]
    np.testing.assert_allclose(s_t, s_o, rtol=1e-4, atol=1e-6)
    assert (s_t != s_o).any()


def test_torch_backend_refuses_a_checkpoint_that_is_not_the_bundles(tmp_path_factory, make_checkpoint):
    """Any checkpoint used to decode with exit 0 and a 4–5 dB image; now only the bundle's own is accepted."""
    from test_runtime_cli import cli

    from runtime.backends import BackendError

    ck, b, _ = cached_bundle(tmp_path_factory, "bmshj2018-hyperprior")
    Codec.open(b, backend="torch", checkpoint=ck)  # its own checkpoint: fine
    with pytest.raises(BackendError, match="not the model the bundle was exported from"):
        Codec.open(b, backend="torch", checkpoint=make_checkpoint("bmshj2018-hyperprior", seed=1))
    other = make_checkpoint("mbt2018-mean")
    with pytest.raises(BackendError, match="holds a 'mbt2018-mean' model but the bundle was exported from"):
        Codec.open(b, backend="torch", checkpoint=other)
    out = tmp_path_factory.mktemp("wrong-ckpt")
    img.save(out / "in.png", test_image(32, 32))
    r = cli("encode", b, out / "in.png", "-o", out / "x.lic", "--backend", "torch", "--checkpoint", other)
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and "mbt2018-mean" in r.stderr
    assert not (out / "x.lic").exists()
