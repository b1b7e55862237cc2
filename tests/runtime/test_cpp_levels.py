"""The C++ runtime's grouped_context plan (BaSIC, runtime/cpp/src/plans/grouped_context.cpp) against the Python
runtime, through the installed ``lictrt`` program (built once per session by test_cpp_runtime.py's fixture).

Specification:
* for tiny ``basic`` and ``basic-scanline`` bundles, at the presets ``fastest`` and ``full`` and at mixed levels (a
  staged coder of each grouping for ``basic``), ``lictrt encode --level L`` writes the bytes the Python runtime writes
  at L (level block included), ``lictrt decode`` of the Python file gives the Python decode's pixels, and Python
  decodes the C++ file to the same pixels; different levels give different files;
* ``lictrt info`` prints what ``python -m runtime info`` prints for such a file, with and without ``--bundle``;
* a level the bundle does not offer (width, coder, axis, not a number, not a preset) and ``--level`` on a bundle with
  one operating point are one line ``error: ...`` with exit status 1, word for word as ``python -m runtime encode``;
* a header whose level does not fit the bundle, or that carries none, is refused by both decoders with the same line.
"""

from __future__ import annotations

import shutil
import struct
import zlib

import pytest
from test_cpp_runtime import _error_line, _roundtrip, _run, installed, lictrt  # noqa: F401
from test_runtime_support import cached_bundle, test_image

pytestmark = pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not installed")

LEVELS = {
    "basic": [
        "fastest",  # every width 8, 2stage (2 channel groups)
        "full",  # every width 16, scanline
        "g_a=8,h_a=16,h_s=8,g_s=16,context=8stage",  # 4 channel groups
        "h_a=8,g_s=8,context=6stage",
        "g_a=16,h_a=8,h_s=16,g_s=8,context=4stage",  # 1 channel group
    ],
    "basic-scanline": ["fastest", "full", "g_a=8,h_s=8,g_s=16"],
}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    pytest.importorskip("torch")
    return {arch: cached_bundle(tmp_path_factory, arch)[1] for arch in LEVELS}


@pytest.mark.parametrize("arch", list(LEVELS))
def test_cpp_encode_and_decode_match_python_at_every_level(arch, bundles, lictrt, tmp_path):
    from runtime import container

    image = test_image(40, 90, seed=2)  # padded to 64x128: latent 4x8, crop on both axes
    files = {}
    for level in LEVELS[arch]:
        py, _ = _roundtrip(lictrt, bundles[arch], tmp_path, image, level=level)
        header, streams = container.unpack(py)
        assert header.level and {s.kind for s in streams} == {"z", "y"}
        assert next(len(s.payload) for s in streams if s.kind == "y") > 40  # y really carries symbols
        files[level] = py
    assert len(set(files.values())) == len(files)  # each level codes differently


def test_info_names_the_level_like_python(bundles, lictrt, tmp_path, capsys):
    from runtime import Codec
    from runtime.__main__ import main

    bundle = bundles["basic"]
    lic = tmp_path / "x.lic"
    lic.write_bytes(Codec.open(bundle, level="g_a=8,g_s=8,context=6stage").encode(test_image(40, 56)))
    for extra in ([], ["--bundle", str(bundle)]):
        c = _run([lictrt, "info", lic, *extra])
        capsys.readouterr()
        assert main(["info", str(lic), *extra]) == 0
        assert c.stdout == capsys.readouterr().out
    assert "level indexes [0, 1, 1, 0, 2]" in _run([lictrt, "info", lic]).stdout
    assert "level g_a=8,h_a=16,h_s=16,g_s=8,context=6stage" in _run([lictrt, "info", lic, "--bundle", bundle]).stdout


def _python_cli(capsys, *args) -> tuple[int, str]:
    from runtime.__main__ import main

    capsys.readouterr()
    rc = main([str(a) for a in args])
    lines = [ln for ln in capsys.readouterr().err.strip().splitlines() if not ln.startswith("note: ")]
    assert len(lines) == 1, lines
    return rc, lines[0]


def test_level_errors_like_python(bundles, lictrt, tmp_path, tmp_path_factory, capsys):
    from runtime.image import save

    bundle = bundles["basic"]
    png = tmp_path / "x.png"
    save(png, test_image(40, 56))
    _, single, _ = cached_bundle(tmp_path_factory, "bmshj2018-hyperprior")
    cases = [
        (bundle, "g_a=9"),  # a width the bundle does not offer
        (bundle, "context=3stage"),  # an unknown coder
        (bundle, "g_x=8,context=2stage"),  # an unknown axis
        (bundle, "g_a=eight"),
        (bundle, "cheap"),
        (single, "fastest"),  # one operating point
    ]
    for b, level in cases:
        args = ("encode", b, png, "-o", tmp_path / "x.lic", "--level", level)
        c = _error_line(_run([lictrt, *args], check=False))
        p = _python_cli(capsys, *args, "--backend", "onnxruntime")
        assert c == p and c[0] == 1, (level, c, p)
        assert not (tmp_path / "x.lic").exists()


def test_header_level_checked_like_python(bundles, lictrt, tmp_path, capsys):
    from runtime import Codec, container

    bundle = bundles["basic"]
    good = Codec.open(bundle, level="fastest").encode(test_image(40, 56))
    header, streams = container.unpack(good)
    end = 56 + 32 * len(streams)  # the level block: count, then one index per axis
    outside = bytearray(good)
    outside[end + 1 + 4] = 5  # context index 5 of 5 coders
    struct.pack_into("<I", outside, end + 6, zlib.crc32(bytes(outside[: end + 6])))
    header.level = b""
    files = {"outside.lic": bytes(outside), "nolevel.lic": container.pack(header, streams)}
    out = tmp_path / "out.png"
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        args = ("decode", bundle, tmp_path / name, "-o", out)
        c = _error_line(_run([lictrt, *args], check=False))
        p = _python_cli(capsys, *args, "--backend", "onnxruntime")
        assert c == p and c[0] == 1, (name, c, p)
        assert not out.exists()
    c = _run([lictrt, "decode", bundle, tmp_path / "outside.lic", "-o", out], check=False)
    assert "level index 5 for 'context' is outside the bundle's 5 values" in _error_line(c)[1]
