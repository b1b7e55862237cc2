"""runtime.files: the one atomic writer (mode from the umask, writes through links, errors name the user's path)
and the output-is-an-input guard, directly and through ``python -m runtime``."""

from __future__ import annotations

import os
import stat

import pytest

from runtime.files import OutputError, check_distinct, write_atomic


def _mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)


def test_new_file_mode_follows_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "a", b"x")
        os.umask(0o002)
        write_atomic(tmp_path / "b", b"x")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "a") == 0o644
    assert _mode(tmp_path / "b") == 0o664


def test_replacing_keeps_the_existing_mode(tmp_path):
    p = tmp_path / "a"
    p.write_bytes(b"old")
    p.chmod(0o640)
    write_atomic(p, b"new")
    assert p.read_bytes() == b"new" and _mode(p) == 0o640


def test_writing_through_a_symlink_writes_its_target(tmp_path):
    real = tmp_path / "real.bin"
    real.write_bytes(b"old")
    link = tmp_path / "link.bin"
    link.symlink_to(real)
    write_atomic(link, b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "made-by-write")
    write_atomic(dangling, "text")
    assert dangling.is_symlink() and (tmp_path / "made-by-write").read_text() == "text"


def test_errors_name_the_users_path_and_leave_no_temporaries(tmp_path):
    missing = tmp_path / "no-such-dir" / "out.lic"
    with pytest.raises(FileNotFoundError) as e:
        write_atomic(missing, b"x")
    assert e.value.filename == str(missing) and ".tmp" not in str(e.value)

    def boom(f):
        f.write(b"partial")
        raise RuntimeError("writer failed")

    (tmp_path / "keep").write_bytes(b"kept")
    with pytest.raises(RuntimeError):
        write_atomic(tmp_path / "keep", boom)
    assert (tmp_path / "keep").read_bytes() == b"kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]


def test_output_equal_to_an_input_is_refused_also_through_links(tmp_path):
    src = tmp_path / "in.png"
    src.write_bytes(b"image")
    (tmp_path / "sym.png").symlink_to(src)
    os.link(src, tmp_path / "hard.png")
    for out in (src, tmp_path / "sym.png", tmp_path / "hard.png", tmp_path / "." / "in.png"):
        with pytest.raises(OutputError, match="refusing to overwrite"):
            write_atomic(out, b"lic", inputs=(src,))
        with pytest.raises(OutputError):
            check_distinct(src, out)
    assert src.read_bytes() == b"image"
    check_distinct(tmp_path / "other.png", src)  # a new file is fine


def test_cli_refuses_to_overwrite_its_input(tmp_path, tmp_path_factory):
    pytest.importorskip("torch")
    from test_runtime_cli import cli
    from test_runtime_support import cached_bundle, test_image

    from runtime import image as img

    _, b, _ = cached_bundle(tmp_path_factory, "bmshj2018-hyperprior")
    src = tmp_path / "x.png"
    img.save(src, test_image(32, 32))
    before = src.read_bytes()
    (tmp_path / "link.png").symlink_to(src)
    for out in (src, tmp_path / "link.png"):
        r = cli("encode", b, src, "-o", out)
        assert r.returncode != 0 and "refusing to overwrite" in r.stderr and len(r.stderr.splitlines()) == 1
    assert src.read_bytes() == before
    assert cli("encode", b, src, "-o", tmp_path / "x.lic").returncode == 0
    lic = (tmp_path / "x.lic").read_bytes()
    r = cli("decode", b, tmp_path / "x.lic", "-o", tmp_path / "x.lic")
    assert r.returncode != 0 and "refusing to overwrite" in r.stderr
    assert (tmp_path / "x.lic").read_bytes() == lic
