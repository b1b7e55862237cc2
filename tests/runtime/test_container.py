"""The .lic container (runtime.container): exact round trip and rejection of every kind of damage."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from runtime import container
from runtime.container import Header, Stream, pack, unpack
from runtime.errors import BitstreamError, CoderArgumentError
from runtime.files import write_atomic

FIXED, ENTRY = 56, 32


def sample() -> tuple[Header, list[Stream]]:
    rng = np.random.default_rng(0)
    header = Header.create(
        model_hash=bytes(range(32)),
        height=512,
        width=768,
        plan="mean_scale",
        coder_mode="fast",
        parse_path="onnxruntime-cpu-fp32",
        pad_multiple=64,
    )
    z = rng.integers(-3, 4, 96).astype(np.int32)
    y = rng.integers(-9, 10, 1000).astype(np.int32)
    streams = [
        Stream.from_symbols("z", z, b"zz-payload"),
        Stream.from_symbols("y.slice0", y, bytes(range(200))),
        Stream.from_symbols("empty", np.zeros(0, np.int32), b""),
    ]
    return header, streams


def refresh_header_crc(buf: bytearray) -> bytearray:
    """Recompute the header CRC after editing header fields (to reach the checks behind it)."""
    (count,) = struct.unpack_from("<H", buf, 54)
    end = FIXED + ENTRY * count
    struct.pack_into("<I", buf, end, zlib.crc32(bytes(buf[:end])))
    return buf


def test_round_trip_preserves_every_field():
    header, streams = sample()
    data = pack(header, streams)
    assert data[:4] == b"LICT" and data[4] == container.MAJOR
    assert len(data) == FIXED + ENTRY * 3 + 4 + 10 + 200
    h2, s2 = unpack(data)
    assert h2 == header
    assert (h2.plan_kind_name, h2.coder_mode_name, h2.parse_path_name) == ("mean_scale", "fast", "onnxruntime-cpu-fp32")
    assert s2 == streams


def test_layout_is_little_endian_as_documented():
    header, streams = sample()
    data = pack(header, streams)
    assert struct.unpack_from("<BBH", data, 4) == (1, container.MINOR, 0)
    assert data[8:40] == bytes(range(32))
    assert struct.unpack_from("<IIHBBBBH", data, 40) == (512, 768, 64, 1, 0, 2, 0, 3)
    kind, n, nbytes, pcrc, scrc = struct.unpack_from("<16sIIII", data, FIXED + ENTRY)
    assert kind.rstrip(b"\0") == b"y.slice0" and (n, nbytes) == (1000, 200)
    assert pcrc == zlib.crc32(bytes(range(200))) and scrc == streams[1].symbols_crc


def test_unknown_major_version_is_rejected_even_with_a_valid_crc():
    data = bytearray(pack(*sample()))
    data[4] = 2
    with pytest.raises(BitstreamError, match="major version 2"):
        unpack(bytes(refresh_header_crc(data)))


def test_zero_height_or_width_is_rejected_even_with_a_valid_crc():
    for offset, text in ((40, "768x0"), (44, "0x512")):  # u32 height, then width
        data = bytearray(pack(*sample()))
        struct.pack_into("<I", data, offset, 0)
        with pytest.raises(BitstreamError, match=f"image size {text} in header"):
            unpack(bytes(refresh_header_crc(data)))


def test_info_on_a_zero_height_header_is_a_one_line_error(tmp_path):
    import subprocess
    import sys

    data = bytearray(pack(*sample()))
    struct.pack_into("<I", data, 40, 0)
    (tmp_path / "h0.lic").write_bytes(bytes(refresh_header_crc(data)))
    r = subprocess.run(
        [sys.executable, "-m", "runtime", "info", str(tmp_path / "h0.lic")],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert r.returncode == 1 and "ZeroDivision" not in r.stderr, r.stderr
    assert r.stderr.startswith("error: ") and "image size 768x0" in r.stderr and len(r.stderr.splitlines()) == 1


def test_level_block_round_trip_and_layout():
    header, streams = sample()
    header.level = bytes([0, 4, 2, 1, 3])
    data = pack(header, streams)
    h2, s2 = unpack(data)
    assert h2.level == header.level and h2.flags == container.FLAG_LEVEL and s2 == streams
    end = FIXED + ENTRY * 3
    assert data[end] == 5 and data[end + 1 : end + 6] == bytes([0, 4, 2, 1, 3])
    assert struct.unpack_from("<I", data, end + 6)[0] == zlib.crc32(data[: end + 6])
    assert len(data) == end + 6 + 4 + 10 + 200
    header.level = b""  # no level: no block and no flag, the minor-0 layout
    plain = pack(header, streams)
    assert len(plain) == end + 4 + 10 + 200 and unpack(plain)[0].flags == 0


def test_minor_0_files_without_a_level_still_parse():
    header, streams = sample()
    header.minor = 0
    data = pack(header, streams)
    assert data[5] == 0 and struct.unpack_from("<H", data, 6)[0] == 0
    h2, s2 = unpack(data)
    assert h2.level == b"" and h2.minor == 0 and s2 == streams


def test_bad_level_blocks_are_rejected():
    header, streams = sample()
    with pytest.raises(CoderArgumentError, match="at most 16"):
        pack(Header(**{**header.__dict__, "level": bytes(17)}), streams)
    header.level = bytes([1, 2])
    end = FIXED + ENTRY * 3
    for n in (0, 17):
        bad = bytearray(pack(header, streams))
        bad[end] = n
        with pytest.raises(BitstreamError, match="level block"):
            unpack(bytes(bad))
    bad = bytearray(pack(*sample()))  # flag set on a file that has no block: the CRC no longer matches
    bad[6] |= container.FLAG_LEVEL
    with pytest.raises(BitstreamError):
        unpack(bytes(bad))


def test_newer_minor_version_is_accepted():
    data = bytearray(pack(*sample()))
    data[5] = 7
    assert unpack(bytes(refresh_header_crc(data)))[0].minor == 7


def test_bad_magic_header_crc_and_payload_crc_are_rejected():
    data = pack(*sample())
    with pytest.raises(BitstreamError, match="magic"):
        unpack(b"LICX" + data[4:])
    bad = bytearray(data)
    bad[41] ^= 1  # height
    with pytest.raises(BitstreamError, match="header CRC"):
        unpack(bytes(bad))
    bad = bytearray(data)
    bad[-1] ^= 0x80  # last payload byte
    with pytest.raises(BitstreamError, match="'y.slice0' payload CRC"):
        unpack(bytes(bad))


def test_truncation_and_trailing_bytes_are_rejected():
    data = pack(*sample())
    for cut in range(len(data)):
        with pytest.raises(BitstreamError):
            unpack(data[:cut])
    with pytest.raises(BitstreamError, match="do not add up"):
        unpack(data + b"\0")


def test_absurd_sizes_are_rejected_without_allocating():
    data = bytearray(pack(*sample()))
    struct.pack_into("<I", data, FIXED + 20, 0xFFFFFFFF)  # stream 0 claims 4 GiB
    with pytest.raises(BitstreamError, match="do not add up"):
        unpack(bytes(refresh_header_crc(data)))
    data = bytearray(pack(*sample()))
    struct.pack_into("<H", data, 54, 0xFFFF)  # 65535 streams
    with pytest.raises(BitstreamError, match="truncated"):
        unpack(bytes(data))


def test_symbol_crc_check_names_the_stream():
    _, streams = sample()
    rng = np.random.default_rng(0)
    rng.integers(-3, 4, 96)  # z, drawn first in sample()
    y = rng.integers(-9, 10, 1000).astype(np.int32)
    streams[1].check_symbols(y)
    y[17] += 1
    with pytest.raises(BitstreamError, match="'y.slice0'.*CRC"):
        streams[1].check_symbols(y)
    with pytest.raises(BitstreamError, match="decoded 999 symbols"):
        streams[1].check_symbols(y[:-1])


def test_invalid_fields_are_refused_when_packing():
    header, streams = sample()
    with pytest.raises(CoderArgumentError, match="kind"):
        pack(header, [Stream("a-name-longer-than-16", 0, b"")])
    with pytest.raises(CoderArgumentError, match="kind"):
        pack(header, [Stream("", 0, b"")])
    with pytest.raises(CoderArgumentError, match="32 bytes"):
        pack(Header(model_hash=b"short"), streams)
    with pytest.raises(CoderArgumentError, match="u16"):
        pack(Header(pad_multiple=70000), streams)
    with pytest.raises(CoderArgumentError, match="plan kind"):
        Header.create(model_hash="00" * 32, height=1, width=1, plan="nonsense")


def test_write_atomic_replaces_the_file_and_leaves_no_temporaries(tmp_path):
    path = tmp_path / "image.lic"
    data = pack(*sample())
    write_atomic(path, b"old")
    write_atomic(path, data)
    assert path.read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()] == ["image.lic"]
    assert container.read(path)[0].width == 768
