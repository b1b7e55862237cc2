"""The C++ plan decoder (runtime/cpp/src/decoder.cpp) against the Python runtime, on CPU.

Specification:
* for tiny exported bundles (hyperprior, mean_scale, spatial_context, factorized where the exporter has one), a
  ``.lic`` encoded by the Python runtime decodes in C++ to exactly the Python decode: same ŷ bits, same image;
  the C++ GraphRunner replays the network outputs the Python decode recorded and checks every graph input it is
  given bit for bit (so z_hat, the context windows and ŷ are rebuilt exactly);
* likewise channel_slices (tiny MambaVC), through a graph-less bundle (manifest + tables of
  ``Codec.from_model``, torch reference; exporting MambaVC to ONNX takes >10 min here): every slice<i>/lrp<i>
  input (the y_hat_<j> supports) is rebuilt bit for bit, in the Python call order, and lrp0's output reaches
  slice1; a bundle missing an lrp graph is refused;
* the C++ Encoder, replaying the network outputs of the Python encode (every graph input checked bit for bit),
  writes the same ``.lic`` bytes, for every plan including channel_slices;
* a parse-critical mismatch, a truncated or a bit-flipped file raise BitstreamError in C++ (never an image),
  naming the first y stream it breaks ('y', for channel_slices 'y0');
* the TensorRT example (runtime/cpp/examples) compiles and links against TensorRT headers without libnvinfer, and
  fails with a clear one-line error where TensorRT is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
CPP = REPO / "runtime" / "cpp"
pytestmark = pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not installed")


def _run(cmd, cwd=None, check=True):
    env = dict(os.environ, CMAKE_BUILD_PARALLEL_LEVEL="2")
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True)
    if check:
        assert p.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p


@pytest.fixture(scope="module")
def decoder_test(tmp_path_factory) -> Path:
    build = tmp_path_factory.mktemp("cpp_decoder_build")
    _run(["cmake", "-S", CPP, "-B", build, "-DCMAKE_BUILD_TYPE=Release", "-DLICTRT_INSTALL=OFF"])
    _run(["cmake", "--build", build, "--target", "lictrt_decoder_test"])
    return build / "lictrt_decoder_test"


class Recorder:
    """Wraps a backend: stores every graph call's inputs and outputs as float32 .npy files, in call order."""

    def __init__(self, inner, log: list, out: Path, prefix: str = "c"):
        self.inner, self.log, self.out, self.prefix = inner, log, out, prefix
        self.name = getattr(inner, "name", "?")

    def run(self, graph, feeds):
        res = self.inner.run(graph, feeds)
        k = len(self.log)
        entry = {"graph": graph, "inputs": {}, "outputs": {}}
        for side, tensors in (("inputs", feeds), ("outputs", res)):
            for name, v in tensors.items():
                f = f"{self.prefix}{k}_{side[:-1]}_{name}.npy"
                np.save(self.out / f, np.ascontiguousarray(np.asarray(v), dtype=np.float32))
                entry[side][name] = f
        self.log.append(entry)
        return res


def make_fixture(bundle_dir: Path, out: Path, image: np.ndarray, **codec_kw) -> np.ndarray:
    """Encode ``image`` with the Python runtime, decode it while recording every network call; returns the image."""
    from runtime import Codec

    return record_fixture(Codec.open(bundle_dir, backend="onnxruntime", threads=1, **codec_kw), out, image)


def record_fixture(codec, out: Path, image: np.ndarray) -> np.ndarray:
    """``make_fixture`` for a ready Codec: stream.lic, calls.json + .npy, image.npy and y_hat.npy under ``out``;
    input.npy and encode_calls.json (+ .npy) record the encode."""
    recon, parse = codec.recon, codec.parse_backends
    elog: list = []
    codec.recon = Recorder(recon, elog, out, "e")
    codec.parse_backends = {k: Recorder(v, elog, out, "e") for k, v in parse.items()}
    data = codec.encode(image)
    (out / "encode_calls.json").write_text(json.dumps(elog))
    np.save(out / "input.npy", np.ascontiguousarray(image, dtype=np.uint8))
    codec.recon, codec.parse_backends = recon, parse
    log: list = []
    codec.recon = Recorder(codec.recon, log, out)
    codec.parse_backends = {k: Recorder(v, log, out) for k, v in codec.parse_backends.items()}
    decoded = codec.decode(data)
    (out / "stream.lic").write_bytes(data)
    (out / "calls.json").write_text(json.dumps(log))
    np.save(out / "image.npy", np.ascontiguousarray(decoded, dtype=np.uint8))
    y_hat = next(
        np.load(out / e["inputs"]["y_hat"]) for e in log if e["graph"].endswith("synthesis") and "y_hat" in e["inputs"]
    )
    np.save(out / "y_hat.npy", y_hat)
    return decoded


CASES = [
    ("bmshj2018-hyperprior", {}),
    ("mbt2018-mean", {"mode": "compat"}),
    ("mbt2018", {}),
    ("mbt2018", {"context_order": "raster"}),
    ("slimcae", {}),
]


@pytest.mark.parametrize(
    "arch,kw", CASES, ids=["hyperprior", "mean_scale-compat", "spatial_context", "spatial_context-raster", "factorized"]
)
def test_cpp_decoder_reproduces_the_python_decode_exactly(arch, kw, decoder_test, tmp_path_factory):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from test_runtime_support import cached_bundle, test_image

    _, bundle, _ = cached_bundle(tmp_path_factory, arch)
    fx = tmp_path_factory.mktemp("fixture")
    if arch == "slimcae":  # the widest width: exercises the w<W>. graph/table prefixes and the width index
        kw = {"width": json.loads((bundle / "manifest.json").read_text())["plan"]["widths"][-1]}
    h, w = (40, 56) if arch == "mbt2018" else (72, 100)  # not multiples of 64: padding and crop are exercised
    decoded = make_fixture(bundle, fx, test_image(h, w), **kw)
    p = _run([decoder_test, bundle, fx], check=False)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res["y_hat_identical"] and res["image_identical"] and res["encode_identical"] == "true"
    assert (res["height"], res["width"]) == decoded.shape[:2]
    assert res["mismatch_error"] == ("n/a" if arch == "slimcae" else "BitstreamError")  # factorized: no σ
    assert res["mismatch_stream"] == ("n/a" if arch == "slimcae" else "y")
    calls = json.loads((fx / "calls.json").read_text())
    assert res["network_calls"] == len(calls)
    assert res["inputs_checked"] == sum(len(c["inputs"]) for c in calls)
    if arch == "mbt2018":
        lat_h, lat_w = -(-h // 64) * 4, -(-w // 64) * 4
        steps = lat_h * lat_w if kw.get("context_order") == "raster" else 3 * (lat_h - 1) + lat_w
        assert sum(c["graph"] == "context_step" for c in calls) == steps
    # the PPM the test program wrote is the same image
    ppm = (fx / "cpp_decoded.ppm").read_bytes()
    head = f"P6\n{w} {h}\n255\n".encode()
    assert ppm.startswith(head) and ppm[len(head) :] == decoded.tobytes()


def save_graphless_bundle(bundle, out: Path) -> Path:
    """Write an in-memory runtime Bundle (e.g. ``Codec.from_model(m).bundle``) as manifest.json + tables.npz.

    The graphs keep ``"file": null``: enough for the C++ decoder with a replaying GraphRunner (the C++ bundle reader
    opens no graph files), not for ``runtime.Codec.open`` backends that run ONNX.
    """
    out.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for name, t in bundle.tables.items():
        for k in ("cdf", "cdf_length", "offset", "medians", "scale_table", "scale_bound"):
            v = getattr(t, k)
            if v is not None:
                arrays[f"{name}.{k}"] = np.asarray(
                    v, dtype=np.int32 if k in ("cdf", "cdf_length", "offset") else np.float32
                )
    np.savez(out / "tables.npz", **arrays)
    (out / "manifest.json").write_text(json.dumps(bundle.manifest, indent=1))
    return out


@pytest.fixture(scope="module")
def mambavc():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from test_runtime_support import tiny_model

    return tiny_model("mambavc")


def test_graphless_bundle_round_trips_through_the_python_reader(mambavc, tmp_path):
    from runtime import Codec
    from runtime.bundle import Bundle

    b = Codec.from_model(mambavc).bundle
    back = Bundle.load(save_graphless_bundle(b, tmp_path / "b"))
    assert back.manifest == b.manifest and back.model_hash == b.model_hash and set(back.tables) == set(b.tables)
    for name, t in b.tables.items():
        u = back.tables[name]
        assert all(np.array_equal(getattr(t, k), getattr(u, k)) for k in ("cdf", "cdf_length", "offset"))
        assert (t.scale_table is None) == (u.scale_table is None) and (t.medians is None) == (u.medians is None)
        if t.scale_table is not None:
            assert np.array_equal(t.scale_table, u.scale_table) and t.scale_bound == u.scale_bound
        if t.medians is not None:
            assert np.array_equal(t.medians, u.medians)


@pytest.mark.parametrize("mode", ["fast", "compat"])
def test_cpp_decoder_reproduces_channel_slices_exactly(mode, mambavc, decoder_test, tmp_path):
    """channel_slices (tiny MambaVC, torch reference) through a graph-less bundle: streams z, y0..yS-1."""
    from test_runtime_support import test_image

    from runtime import Codec

    codec = Codec.from_model(mambavc, mode=mode)
    bundle = save_graphless_bundle(codec.bundle, tmp_path / "bundle")
    fx = tmp_path / "fixture"
    fx.mkdir()
    h, w = 40, 72  # pads to 64x128: a 4x8 latent, crop exercised
    decoded = record_fixture(codec, fx, test_image(h, w))
    p = _run([decoder_test, bundle, fx], check=False)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res["plan"] == "channel_slices"
    assert res["y_hat_identical"] and res["image_identical"] and res["encode_identical"] == "true"
    assert (res["height"], res["width"]) == decoded.shape[:2]
    S = mambavc.num_slices
    calls = json.loads((fx / "calls.json").read_text())
    order = [c["graph"] for c in calls]
    assert order == ["hyper_synthesis"] + [g for i in range(S) for g in (f"slice{i}", f"lrp{i}")] + ["synthesis"]
    assert set(calls[-2]["inputs"]) == {"latent_means"} | {f"y_hat_{j}" for j in range(S)}  # lrp<S-1>'s supports
    assert res["network_calls"] == len(calls) and res["sequential_steps"] == S
    assert res["inputs_checked"] == sum(len(c["inputs"]) for c in calls)
    assert res["mismatch_error"] == "BitstreamError" and res["mismatch_stream"] == "y0"
    assert res["lrp_feeds_next_slice"] == "true"
    ppm = (fx / "cpp_decoded.ppm").read_bytes()
    head = f"P6\n{w} {h}\n255\n".encode()
    assert ppm.startswith(head) and ppm[len(head) :] == decoded.tobytes()

    # a bundle whose manifest lacks lrp<S-1> is refused with a one-line BundleError, not decoded
    man = json.loads((bundle / "manifest.json").read_text())
    del man["graphs"][f"lrp{S - 1}"]
    (bundle / "manifest.json").write_text(json.dumps(man))
    p = _run([decoder_test, bundle, fx], check=False)
    assert p.returncode == 1 and "needs graphs slice0..sliceN-1 and lrp0..lrpN-1" in p.stderr


def _kernel_lens_wheel() -> Path | None:
    for p in sorted((REPO / "build").glob("**/kernel_lens-2.0.1-*.whl")):
        return p
    return None


def test_trt_example_compiles_and_links_without_libnvinfer(tmp_path, tmp_path_factory):
    """Compile + link check of runtime/cpp/examples against TensorRT headers (user's, or the kernel-lens wheel)."""
    if shutil.which("nvcc") is None and not Path("/usr/local/cuda/include/cuda_runtime_api.h").is_file():
        pytest.skip("CUDA headers not installed")
    args = ["cmake", "-S", CPP / "examples", "-B", tmp_path / "b", "-DCMAKE_BUILD_TYPE=Release"]
    whl = _kernel_lens_wheel()
    if whl is not None:
        args.append(f"-DLICTRT_KERNEL_LENS_WHEEL={whl}")
    p = _run(args, check=False)
    if p.returncode != 0 and "could not download kernel-lens" in p.stderr:
        pytest.skip("no TensorRT headers: kernel-lens wheel not downloadable here")
    assert p.returncode == 0, p.stderr[-3000:]
    _run(["cmake", "--build", tmp_path / "b"])
    exe = tmp_path / "b" / "lictrt_trt_decode"
    assert exe.is_file()
    needed = _run(["readelf", "-d", exe]).stdout if shutil.which("readelf") else ""
    assert "libnvinfer" not in needed and "libcudart" not in needed  # both are dlopen'ed at run time
    usage = _run([exe], check=False)
    assert usage.returncode == 2 and "usage" in usage.stderr.lower()
    # No TensorRT on CI: a clear one-line error (exit 1), not a crash; with TensorRT but no GPU, likewise.
    bogus = tmp_path / "nobundle"
    r = _run([exe, bogus, tmp_path / "x.lic", tmp_path / "x.ppm"], check=False)
    assert r.returncode == 1 and r.stderr.startswith("lictrt_trt_decode: error: ") and r.stderr.count("\n") == 1
    # A real bundle and bitstream: here TensorRT, the CUDA runtime or a GPU is missing -> one clear line.
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from test_runtime_support import cached_bundle, test_image

    from runtime import Codec

    _, bundle, _ = cached_bundle(tmp_path_factory, "bmshj2018-hyperprior")
    (tmp_path / "x.lic").write_bytes(Codec.open(bundle, backend="onnxruntime", threads=1).encode(test_image(40, 56)))
    r = _run([exe, bundle, tmp_path / "x.lic", tmp_path / "x.ppm"], check=False)
    if r.returncode == 0:  # a machine with TensorRT and a GPU: the image must be there
        assert (tmp_path / "x.ppm").read_bytes().startswith(b"P6\n56 40\n255\n")
    else:
        assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
        assert any(
            k in r.stderr for k in ("TensorRT not found", "CUDA runtime not found", "no CUDA GPU", "compiled against")
        ), r.stderr
