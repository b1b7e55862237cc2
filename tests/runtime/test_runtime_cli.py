"""``python -m runtime`` encode / decode / info: round trip, atomic outputs, one-line errors with exit 1."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")

from test_runtime_support import REPO, cached_bundle, test_image  # noqa: E402

from runtime import image as img  # noqa: E402


def cli(*args):
    return subprocess.run([sys.executable, "-m", "runtime", *map(str, args)], cwd=REPO, capture_output=True, text=True)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return cached_bundle(tmp_path_factory, "bmshj2018-hyperprior")


def test_cli_round_trip_and_info(bundle, tmp_path):
    _, b, _ = bundle
    src = tmp_path / "in.png"
    img.save(src, test_image(50, 70))
    r = cli("encode", b, src, "-o", tmp_path / "a.lic", "--mode", "compat")
    assert r.returncode == 0, r.stderr
    assert "bpp" in r.stdout
    r = cli("decode", b, tmp_path / "a.lic", "-o", tmp_path / "a.png", "--backend", "onnxruntime")
    assert r.returncode == 0, r.stderr
    from runtime import Codec

    np.testing.assert_array_equal(img.load(tmp_path / "a.png"), Codec.open(b).decode((tmp_path / "a.lic").read_bytes()))
    r = cli("info", tmp_path / "a.lic")
    assert r.returncode == 0, r.stderr
    assert "image 70x50" in r.stdout and "coder compat" in r.stdout and "hyperprior" in r.stdout
    assert [ln.split()[0] for ln in r.stdout.splitlines()[-2:]] == ["z", "y"]

    # --symbols: the file's contents, symbol by symbol, as the encoder wrote them
    c = Codec.open(b, mode="compat")
    assert c.encode(img.load(src), keep_symbols=True) == (tmp_path / "a.lic").read_bytes()
    r = cli("info", tmp_path / "a.lic", "--bundle", b, "--symbols", tmp_path / "a.npz")
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "a.npz") as npz:
        assert sorted(npz.files) == ["y", "z"]
        assert all(npz[k].dtype == np.int32 and np.array_equal(npz[k], c.last_symbols[k]) for k in npz.files)
    assert "symbols of" in r.stdout and [ln.split()[0] for ln in r.stdout.splitlines()[-2:]] == ["z", "y"]
    r = cli("info", tmp_path / "a.lic", "--symbols", tmp_path / "b.npz")  # which bundle?
    assert r.returncode == 2 and "--symbols needs one .lic file and its --bundle" in r.stderr
    assert not (tmp_path / "b.npz").exists()


def test_cli_errors_are_one_line_and_nonzero(bundle, tmp_path):
    _, b, _ = bundle
    src = tmp_path / "in.png"
    img.save(src, test_image(40, 40))
    cases = [
        ("encode", b, tmp_path / "missing.png", "-o", tmp_path / "x.lic"),
        ("encode", tmp_path / "nobundle", src, "-o", tmp_path / "x.lic"),
        ("encode", b, src, "-o", tmp_path / "x.lic", "--backend", "torch"),  # torch needs --checkpoint
        ("decode", b, src, "-o", tmp_path / "x.png"),  # not a .lic
        ("info", tmp_path / "missing.lic"),
    ]
    for args in cases:
        r = cli(*args)
        assert r.returncode == 1, args
        assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "Traceback" not in r.stderr
    assert not (tmp_path / "x.lic").exists() and not (tmp_path / "x.png").exists()
    assert cli("encode").returncode == 2  # usage


def test_cli_decode_of_corrupt_file_leaves_no_output(bundle, tmp_path):
    _, b, _ = bundle
    src = tmp_path / "in.png"
    img.save(src, test_image(40, 40))
    assert cli("encode", b, src, "-o", tmp_path / "a.lic").returncode == 0
    data = bytearray((tmp_path / "a.lic").read_bytes())
    data[-2] ^= 1
    (tmp_path / "bad.lic").write_bytes(bytes(data))
    r = cli("decode", b, tmp_path / "bad.lic", "-o", tmp_path / "bad.png")
    assert r.returncode == 1 and "CRC" in r.stderr and r.stderr.startswith("error: ")
    assert not (tmp_path / "bad.png").exists()


def test_cli_codes_a_folder_in_parallel_with_a_summary(bundle, tmp_path):
    _, b, _ = bundle
    src = tmp_path / "imgs"
    src.mkdir()
    for i, (h, w) in enumerate([(24, 40), (33, 17), (16, 16)]):
        img.save(src / f"im{i}.png", test_image(h, w, seed=i))
    (src / "notes.txt").write_text("not an image")
    r = cli("encode", b, src, "-o", tmp_path / "lic", "-j", "3", "-q")
    assert r.returncode == 0, r.stderr
    lics = sorted((tmp_path / "lic").glob("*.lic"))
    assert [p.name for p in lics] == ["im0.lic", "im1.lic", "im2.lic"]
    total = sum(p.stat().st_size for p in lics)
    bpp = 8 * total / (24 * 40 + 33 * 17 + 16 * 16)
    assert r.stdout.strip().splitlines()[-1].startswith(f"3 of 3 files encoded: {total} bytes, {bpp:.4f} bpp, ")
    r = cli("decode", b, *lics[:2], "-o", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["im0.png", "im1.png"]
    assert img.load(tmp_path / "out" / "im1.png").shape == (33, 17, 3)
    assert "2 of 2 files decoded" in r.stdout
    (tmp_path / "lic" / "im2.lic").write_bytes(b"LICT" + bytes(10))  # one bad file: the others still decode
    r = cli("decode", b, tmp_path / "lic", "-o", tmp_path / "out2", "-q")
    assert r.returncode == 1 and "2 of 3 files decoded" in r.stdout and "1 failed" in r.stdout
    assert r.stderr.count("error: ") == 1 and "im2.lic" in r.stderr
    r = cli("encode", b, src / "im0.png", src / "im1.png", "-o", tmp_path / "lic" / "im0.lic")  # -o must be a folder
    assert r.returncode == 2 and "must be a folder" in r.stderr


def test_cli_help_shows_examples():
    for cmd in ("encode", "decode", "info"):
        r = cli(cmd, "--help")
        assert r.returncode == 0 and "Examples:" in r.stdout and f"python -m runtime {cmd}" in r.stdout
    r = cli()
    assert r.returncode == 2 and "encode" in r.stdout + r.stderr
