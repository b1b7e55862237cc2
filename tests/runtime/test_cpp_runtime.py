"""The C++ runtime end to end on CPU: the installed ``lictrt`` program and the embedding example against Python.

Specification:
* runtime/cpp builds with the ONNX Runtime runner and the ``lictrt`` program, installs as a CMake package, and the
  embedding example (runtime/cpp/examples/embed) builds against the installed package with ``find_package(lictrt)``;
* for every plan (tiny models; channel_slices/MambaVC in the slow set), with the same backend settings (ONNX Runtime,
  one reconstruction thread) ``lictrt encode`` writes the same bytes as the Python runtime's encode, ``lictrt decode``
  of a Python-encoded file gives the Python decode's pixels, and Python decodes the C++ file to the same pixels;
* ``lictrt`` handles bad input like ``python -m runtime``: the same one line ``error: ...`` on stderr and exit status 1
  (corrupt, truncated or foreign ``.lic``, a missing bundle, an unreadable image, output path = input path), 2 for
  usage errors;
* the C++ bundle reader verifies a bundle as runtime/bundle.py does: every case of the bundle-level fuzz corpus
  (tests/runtime/test_fuzz.py: edited tables, a graph of another export, a missing file or digest, absolute, ``..``
  and linked paths) is refused by ``lictrt decode`` and ``lictrt encode`` with Python's one-line error, nothing
  written; a manifest without ``files`` (older bundles) still decodes; its SHA-256 equals hashlib's.
* grouped_slices (tiny GIT-SSIC exported at 128x128, real ONNX Runtime graphs): ``lictrt encode --mask`` (grey, 16-bit
  grey, 1-bit, palette and RGB label PNGs) and without a mask writes the Python bytes, ``lictrt decode`` with and without
  ``--groups`` gives the Python pixels, Python decodes the C++ files, ``lictrt info`` prints the same group sizes, and
  a missing/unknown group, a wrong-size or unreadable mask, a mask or groups for a plan without groups fail with the
  Python CLI's line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
CPP = REPO / "runtime" / "cpp"
pytestmark = pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not installed")


def _run(cmd, check=True, env=None, **kw):
    env = dict(os.environ, CMAKE_BUILD_PARALLEL_LEVEL="2", **(env or {}))
    p = subprocess.run([str(c) for c in cmd], env=env, capture_output=True, text=True, check=False, **kw)
    if check:
        assert p.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """Configure, build and install runtime/cpp (library, ONNX Runtime runner, lictrt) once per session (the C++
    runtime test modules share it); returns the prefix."""
    root = tmp_path_factory.getbasetemp() / "cpp-runtime-install"
    build, prefix = root / "build", root / "prefix"
    if (prefix / "bin" / "lictrt").is_file():
        return prefix
    p = _run(
        [
            "cmake",
            "-S",
            CPP,
            "-B",
            build,
            "-DCMAKE_BUILD_TYPE=Release",
            "-DLICTRT_BUILD_TESTS=OFF",
            f"-DCMAKE_INSTALL_PREFIX={prefix}",
            f"-DPython_EXECUTABLE={sys.executable}",
        ]
    )
    if "lictrt program is skipped" in p.stdout:
        pytest.skip(
            "no ONNX Runtime headers or libpng: "
            + next((ln for ln in p.stdout.splitlines() if "ONNX Runtime headers not found" in ln), "see cmake output")
        )
    _run(["cmake", "--build", build])
    _run(["cmake", "--install", build])
    assert (prefix / "bin" / "lictrt").is_file()
    return prefix


@pytest.fixture(scope="module")
def lictrt(installed) -> Path:
    return installed / "bin" / "lictrt"


def _py_codec(bundle, **kw):
    from runtime import Codec

    return Codec.open(bundle, backend="onnxruntime", threads=1, **kw)


def _cli_flags(kw: dict) -> list[str]:
    flags = ["--threads", "1"]
    for k, v in kw.items():
        flags += [f"--{k.replace('_', '-')}", str(v)]
    return flags


def _roundtrip(lictrt, bundle, tmp: Path, image: np.ndarray, **kw):
    from runtime.image import load, save

    png = tmp / "in.png"
    save(png, image)
    codec = _py_codec(bundle, **kw)
    py = codec.encode(image)
    r = _run([lictrt, "encode", bundle, png, "-o", tmp / "cpp.lic", *_cli_flags(kw)])
    assert r.stdout.startswith(f"{tmp / 'cpp.lic'}: ")
    cpp = (tmp / "cpp.lic").read_bytes()
    assert cpp == py  # byte-identical encode
    (tmp / "py.lic").write_bytes(py)
    _run([lictrt, "decode", bundle, tmp / "py.lic", "-o", tmp / "cpp.png", "--threads", "1"])
    want = codec.decode(py)
    assert np.array_equal(load(tmp / "cpp.png"), want)  # C++ decode of a Python file: the Python pixels
    assert np.array_equal(codec.decode(cpp), want)  # Python decode of the C++ file
    return py, want


CASES = [
    ("bmshj2018-hyperprior", {"substreams": 3}),
    ("mbt2018-mean", {"mode": "compat"}),
    ("mbt2018", {}),
    ("mbt2018", {"context_order": "raster"}),
    ("slimcae", {}),
]


@pytest.mark.parametrize(
    "arch,kw",
    CASES,
    ids=["hyperprior-substreams", "mean_scale-compat", "spatial_context", "spatial_context-raster", "factorized-width"],
)
def test_cpp_encode_and_decode_match_python(arch, kw, lictrt, tmp_path, tmp_path_factory):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from test_runtime_support import cached_bundle, test_image

    _, bundle, _ = cached_bundle(tmp_path_factory, arch)
    if arch == "slimcae":  # a narrower width than the first: the w<W>. prefixes and the width index
        kw = {"width": json.loads((bundle / "manifest.json").read_text())["plan"]["widths"][-1]}
    h, w = (40, 56) if arch == "mbt2018" else (72, 100)  # not multiples of 64: padding and crop
    _roundtrip(lictrt, bundle, tmp_path, test_image(h, w, seed=1), **kw)


@pytest.mark.slow
def test_cpp_channel_slices_match_python(lictrt, tmp_path, tmp_path_factory):
    """channel_slices (tiny MambaVC exported to ONNX: slow)."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from test_runtime_support import cached_bundle, test_image

    _, bundle, _ = cached_bundle(tmp_path_factory, "mambavc")
    _roundtrip(lictrt, bundle, tmp_path, test_image(40, 72))
    _roundtrip(lictrt, bundle, tmp_path, test_image(40, 72), mode="compat")


GS_SIZE = (72, 100)  # pads to the 128x128 the tiny GIT-SSIC bundle is exported at: latent 8x8, mask grid 4x4
GS_LABELS = np.array([[0, 0, 10, 10], [0, 20, 20, 10], [0, 0, 3, 3]], np.uint8)  # 1/32 size of a 72x100 image


@pytest.fixture(scope="module")
def gitssic_bundle(tmp_path_factory) -> Path:
    """The tiny GIT-SSIC model (plan grouped_slices) exported at 128x128, once for this module."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from export.onnx import export_bundle
    from train.checkpoint import save_checkpoint
    from train.models.seeded import codable_model

    d = tmp_path_factory.mktemp("gitssic")
    save_checkpoint(d / "m.pth", codable_model("gitssic", "tiny"), lmbda=0.01, metric="mse", step=0, epoch=0)
    return export_bundle(d / "m.pth", d / "bundle", size=(128, 128), check=False, progress=False)["bundle"]


def _label_png(path: Path, labels: np.ndarray, mode: str = "L") -> Path:
    from PIL import Image

    im = Image.fromarray(labels.astype(np.uint8 if mode != "I;16" else np.uint16))
    if mode == "P":
        im = im.convert("P")  # palette indexes = the labels (the default palette maps index k to grey k)
    elif mode == "RGB":  # labels as colours: Pillow's luminance gives the group
        im = Image.fromarray(np.stack([labels, labels // 2, 255 - labels], -1).astype(np.uint8))
    elif mode == "1":
        im = Image.fromarray(labels > 0)
    im.save(path)
    return path


def test_cpp_grouped_slices_match_python(lictrt, gitssic_bundle, tmp_path):
    """grouped_slices (GIT-SSIC): C++ encode == Python encode with and without a mask; C++ decode of the whole image and
    of subsets of groups == Python decode; Python decodes the C++ files; info lists the same groups."""
    from test_runtime_support import test_image

    from runtime import container
    from runtime.image import load, save

    b, codec = gitssic_bundle, _py_codec(gitssic_bundle)
    image = test_image(*GS_SIZE, seed=1)
    save(tmp_path / "in.png", image)
    labels = _label_png(tmp_path / "labels.png", GS_LABELS)
    for mask, subsets in ((labels, ([10], [0, 3, 20], [3, 10, 20])), (None, ([0],))):
        py = codec.encode(image, mask=mask)
        _run(
            [lictrt, "encode", b, tmp_path / "in.png", "-o", tmp_path / "cpp.lic", "--threads", "1"]
            + (["--mask", mask] if mask else [])
        )
        cpp = (tmp_path / "cpp.lic").read_bytes()
        assert cpp == py  # byte-identical encode: mask, z and one stream per (group, slice)
        (tmp_path / "py.lic").write_bytes(py)
        for groups in (None, *subsets):
            args = ["--groups", ",".join(map(str, groups))] if groups else []
            _run([lictrt, "decode", b, tmp_path / "py.lic", "-o", tmp_path / "out.png", "--threads", "1", *args])
            want = codec.decode(py, groups=groups)
            assert np.array_equal(load(tmp_path / "out.png"), want), groups
            assert np.array_equal(codec.decode(cpp, groups=groups), want), groups
        c = _run([lictrt, "info", tmp_path / "py.lic"])
        p = _run([sys.executable, "-m", "runtime", "info", tmp_path / "py.lic"], cwd=REPO)
        assert c.stdout == p.stdout
        assert ("4 groups (bytes; shared: mask" if mask else "1 groups (bytes; shared: z") in c.stdout
    kinds = [s.kind for s in container.unpack(py)[1]]
    assert kinds == ["z"] + [f"g0.y{i}" for i in range(5)]  # no mask: one group and no mask stream
    # label PNGs of other kinds, at the image's full and latent (1/16) size: read as the Python runtime reads them
    full = GS_LABELS.repeat(32, 0).repeat(32, 1)[: GS_SIZE[0], : GS_SIZE[1]]
    lat = GS_LABELS.repeat(2, 0).repeat(2, 1)[: -(-GS_SIZE[0] // 16), : -(-GS_SIZE[1] // 16)]
    for mode, m in (("RGB", full), ("I;16", full * 300), ("P", full), ("1", full), ("L", lat)):
        m = _label_png(tmp_path / f"labels-{mode}.png", m, mode)
        _run([lictrt, "encode", b, tmp_path / "in.png", "-o", tmp_path / "cpp.lic", "--threads", "1", "--mask", m])
        assert (tmp_path / "cpp.lic").read_bytes() == codec.encode(image, mask=m), mode


# python -m runtime, without the RuntimeWarning a checkout without the native CPU-ops library prints
PY_CLI = (sys.executable, "-W", "ignore::RuntimeWarning", "-m", "runtime")


def test_cpp_grouped_slices_errors_like_the_python_cli(lictrt, gitssic_bundle, tmp_path, tmp_path_factory):
    from test_runtime_support import cached_bundle, test_image

    from runtime import container
    from runtime.image import load, save

    b = gitssic_bundle
    save(tmp_path / "in.png", test_image(*GS_SIZE))
    labels = _label_png(tmp_path / "labels.png", GS_LABELS)
    _label_png(tmp_path / "small.png", np.zeros((7, 7)))
    (tmp_path / "notpng.png").write_bytes(b"not an image")
    (tmp_path / "masks").mkdir()
    data = _py_codec(b).encode(load(tmp_path / "in.png"), mask=labels)
    (tmp_path / "x.lic").write_bytes(data)
    hdr, streams = container.unpack(data)
    (tmp_path / "cut.lic").write_bytes(container.pack(hdr, [s for s in streams if s.kind != "g10.y2"]))
    _, other, _ = cached_bundle(tmp_path_factory, "bmshj2018-hyperprior")
    out, lic = tmp_path / "out.png", tmp_path / "o.lic"
    enc = ("encode", b, tmp_path / "in.png", "-o", lic, "--mask")
    dec = ("decode", b, tmp_path / "x.lic", "-o", out, "--groups")
    cases = [
        (*dec, "4,7"),  # groups not in the bitstream
        (*dec, ""),  # no groups
        ("decode", b, tmp_path / "cut.lic", "-o", out, "--groups", "10"),  # a missing (group, slice) stream
        (*enc, tmp_path / "small.png"),  # a mask of the wrong size
        (*enc, tmp_path / "missing.png"),
        (*enc, tmp_path / "notpng.png"),
        ("encode", other, tmp_path / "in.png", "-o", lic, "--mask", labels),  # a plan without groups
        ("decode", other, tmp_path / "x.lic", "-o", out, "--groups", "1"),
    ]
    for args in cases:
        c = _run([lictrt, *args], check=False)
        p = _run([*PY_CLI, *args, "--backend", "onnxruntime"], check=False, cwd=REPO)
        assert _error_line(c) == _error_line(p) and c.returncode == 1, (args, c.stderr, p.stderr)
        assert not out.exists() and not lic.exists()
    # the other groups of the cut file decode: their streams alone are read
    _run([lictrt, "decode", b, tmp_path / "cut.lic", "-o", out, "--groups", "0,20,3"])
    assert np.array_equal(load(out), _py_codec(b).decode(data, groups=[0, 3, 20]))
    # usage errors (exit 2): labels that are not integers, a mask folder without the image's mask
    for args in ((*dec, "1,x"), (*enc, tmp_path / "masks")):
        c = _run([lictrt, *args], check=False)
        p = _run([*PY_CLI, *args, "--backend", "onnxruntime"], check=False, cwd=REPO)
        assert c.returncode == p.returncode == 2 and "usage: lictrt" in c.stderr, (args, c.stderr)
        assert _error_line(p)[1].removesuffix(" (see --help)") in c.stderr.replace("lictrt: error:", "error:")
    # a mask folder holding <image stem>.png
    (tmp_path / "masks" / "in.png").write_bytes(labels.read_bytes())
    _run([lictrt, *enc, tmp_path / "masks"])
    assert lic.read_bytes() == data


def _error_line(p) -> tuple[int, str]:
    lines = [ln for ln in p.stderr.strip().splitlines() if not ln.startswith("note: ")]
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("error: "), p.stderr
    return p.returncode, lines[0]


def _old_scan_graph(path: Path) -> None:
    """A graph with one SelectiveScan2D node of plugin version 1 (7 inputs, delta instead of dts and dt_weight)."""
    from onnx import TensorProto, helper, save

    names = ["u", "delta", "A", "Bs", "Cs", "D", "delta_bias"]
    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names]
    node = helper.make_node("SelectiveScan2D", names, ["x_hat"], domain="lictrt", plugin_version="1")
    out = [helper.make_tensor_value_info("x_hat", TensorProto.FLOAT, None)]
    opsets = [helper.make_opsetid("", 18), helper.make_opsetid("lictrt", 1)]
    save(helper.make_model(helper.make_graph([node], "synthesis", ins, out), opset_imports=opsets), path)


def test_cli_bad_input_like_the_python_cli(lictrt, tmp_path, tmp_path_factory):
    pytest.importorskip("torch")
    from test_runtime_support import cached_bundle, test_image

    from runtime.image import save

    _, bundle, _ = cached_bundle(tmp_path_factory, "bmshj2018-hyperprior")
    _, other, _ = cached_bundle(tmp_path_factory, "mbt2018-mean")
    good = _py_codec(bundle).encode(test_image(40, 56))
    files = {
        "ok.lic": good,
        "truncated.lic": good[:-7],
        "flipped.lic": good[:-3] + bytes([good[-3] ^ 0x10]) + good[-2:],
        "header.lic": good[:50] + bytes([good[50] ^ 1]) + good[51:],
        "empty.lic": b"",
        "notpng.png": b"this is not an image",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    save(tmp_path / "img.png", test_image(40, 56))

    def both(*args):
        args = tuple(a for a in args if a is not None)
        c = _run([lictrt, *args], check=False)
        p = _run(
            [sys.executable, "-m", "runtime", *args, *(["--backend", "onnxruntime"] if args[0] != "info" else [])],
            check=False,
            cwd=REPO,
        )
        return c, p

    # a bundle whose synthesis graph holds a lictrt op of the old contract (plugin version 1)
    from runtime.bundle import file_digest

    old_ops = tmp_path / "old-ops"
    shutil.copytree(bundle, old_ops)
    manifest = json.loads((old_ops / "manifest.json").read_text())
    syn = manifest["graphs"]["synthesis"]["file"]
    _old_scan_graph(old_ops / syn)
    manifest["files"][syn] = file_digest(old_ops / syn)
    (old_ops / "manifest.json").write_text(json.dumps(manifest))

    out = tmp_path / "out.png"
    cases = [
        ("decode", old_ops, tmp_path / "ok.lic", "-o", out),  # "... holds lictrt ops of version 1 ...: re-export"
        ("decode", bundle, tmp_path / "truncated.lic", "-o", out),
        ("decode", bundle, tmp_path / "flipped.lic", "-o", out),
        ("decode", bundle, tmp_path / "header.lic", "-o", out),
        ("decode", bundle, tmp_path / "empty.lic", "-o", out),
        ("decode", other, tmp_path / "ok.lic", "-o", out),  # a bitstream of another model
        ("decode", tmp_path / "nobundle", tmp_path / "ok.lic", "-o", out),
        ("decode", bundle, tmp_path / "missing.lic", "-o", out),
        ("encode", bundle, tmp_path / "notpng.png", "-o", tmp_path / "x.lic"),
        ("encode", bundle, tmp_path / "missing.png", "-o", tmp_path / "x.lic"),
        ("info", tmp_path / "truncated.lic", None),
        ("info", tmp_path / "missing.lic", None),
    ]
    for args in cases:
        c, p = both(*args)
        (crc, cline), (prc, pline) = _error_line(c), _error_line(p)
        assert crc == prc == 1, (args, c.stderr, p.stderr)
        if str(args[2]).endswith("notpng.png"):  # the decoder libraries word the reason differently
            assert cline.startswith("error: cannot read image ") and pline.startswith("error: cannot read image ")
        else:
            assert cline == pline, (args, cline, pline)
        if args[1] == old_ops:
            assert "holds lictrt ops of version 1; this runtime runs version" in cline and "re-export" in cline
        assert not out.exists()
    # the good file decodes, and info prints the same text as python -m runtime info
    c, p = both("info", tmp_path / "ok.lic")
    assert c.returncode == 0 and c.stdout == p.stdout
    # output = input is refused, the input left as it was
    for args in (
        ("decode", bundle, tmp_path / "ok.lic", "-o", tmp_path / "ok.lic"),
        ("encode", bundle, tmp_path / "img.png", "-o", tmp_path / "img.png"),
    ):
        c, p = both(*args)
        assert _error_line(c) == _error_line(p) and "is the input" in c.stderr
    assert (tmp_path / "ok.lic").read_bytes() == good
    # usage errors: exit 2 with the usage text
    for args in (
        (),
        ("transcode",),
        ("decode", bundle),
        ("encode", bundle, tmp_path / "img.png"),
        ("encode", bundle, tmp_path / "img.png", "-o", tmp_path / "x.lic", "--mode", "slow"),
        ("decode", bundle, tmp_path / "ok.lic", "-o", out, "--threads", "many"),
    ):
        c = _run([lictrt, *args], check=False)
        assert c.returncode == 2 and "usage: lictrt" in c.stderr, (args, c.stderr)
    # ONNX Runtime that cannot be loaded: one line, exit 1
    c = _run(
        [lictrt, "decode", bundle, tmp_path / "ok.lic", "-o", out, "--onnxruntime", tmp_path / "nolib.so"], check=False
    )
    assert _error_line(c)[0] == 1 and "ONNX Runtime not found" in c.stderr


def test_sha256_of_the_bundle_reader_equals_hashlib():
    import hashlib

    from runtime import _lictrt

    rng = np.random.default_rng(0)
    lengths = [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 1000, 4095, 1 << 20, (1 << 20) + 13]
    for n in lengths:  # every padding case: the length field in the same block, the next block, a full block
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert _lictrt.sha256(data) == hashlib.sha256(data).hexdigest(), n
    assert _lictrt.sha256(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # FIPS 180-4


def test_cpp_bundle_reader_refuses_the_bundle_fuzz_corpus_like_python(lictrt, tmp_path, tmp_path_factory):
    from test_fuzz import _bundle_cases, _bundle_corpus, _copy, _edit_manifest
    from test_runtime_support import test_image

    from runtime import Codec
    from runtime.bundle import BundleError
    from runtime.image import save

    _, b = _bundle_corpus(tmp_path_factory)
    lic, png, out = tmp_path / "x.lic", tmp_path / "x.png", tmp_path / "out"
    lic.write_bytes(_py_codec(b).encode(test_image(40, 56)))
    save(png, test_image(40, 56))
    cases = _bundle_cases(tmp_path)
    assert len(cases) >= 10
    for name, (corrupt, words) in cases.items():
        d = _copy(b, tmp_path, name.replace(" ", "-"))
        corrupt(d)
        with pytest.raises(BundleError) as py:
            Codec.open(d)
        for args in (
            ("decode", d, lic, "-o", out.with_suffix(".png")),
            ("encode", d, png, "-o", out.with_suffix(".lic")),
        ):
            rc, line = _error_line(_run([lictrt, *args], check=False))
            assert rc == 1 and words in line, (name, args[0], line)
            assert line == f"error: {py.value}", (name, args[0], line)  # Python's wording
            assert not out.with_suffix(".png").exists() and not out.with_suffix(".lic").exists()
    d = _copy(b, tmp_path, "no-files")  # a manifest written before digests: loads as in Python
    _edit_manifest(d, lambda m: m.pop("files"))
    _run([lictrt, "decode", d, lic, "-o", out.with_suffix(".png"), "--threads", "1"])
    assert out.with_suffix(".png").is_file()


def test_embedding_example_builds_against_the_installed_package(installed, tmp_path, tmp_path_factory):
    pytest.importorskip("torch")
    from test_runtime_support import cached_bundle, test_image

    _run(
        [
            "cmake",
            "-S",
            CPP / "examples" / "embed",
            "-B",
            tmp_path / "b",
            "-DCMAKE_BUILD_TYPE=Release",
            f"-DCMAKE_PREFIX_PATH={installed}",
        ]
    )
    _run(["cmake", "--build", tmp_path / "b"])
    exe = tmp_path / "b" / "lictrt_embed_decode"
    _, bundle, _ = cached_bundle(tmp_path_factory, "mbt2018")
    codec = _py_codec(bundle)
    data = codec.encode(test_image(40, 56))
    (tmp_path / "x.lic").write_bytes(data)
    r = _run([exe, bundle, tmp_path / "x.lic", tmp_path / "x.ppm"])
    assert r.stdout.strip() == f"{tmp_path / 'x.ppm'}: 56x40"
    ppm = (tmp_path / "x.ppm").read_bytes()
    head = b"P6\n56 40\n255\n"
    assert ppm.startswith(head) and ppm[len(head) :] == codec.decode(data).tobytes()
    r = _run([exe, bundle, tmp_path / "x.ppm", tmp_path / "y.ppm"], check=False)
    assert r.returncode == 1 and "bad magic" in r.stderr
