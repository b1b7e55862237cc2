"""The entropy coder (runtime.coder over runtime._lictrt): CompressAI compatibility, exact round trips,
corrupt-input detection, incremental coding, thread safety and input validation."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest

from runtime import coder
from runtime.errors import BitstreamError, CoderArgumentError

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "runtime" / "cpp" / "tests" / "fixtures"
FIXTURE_NAMES = ["gc_lowrate", "gc_mid", "gc_escapes", "eb_factorized", "gc_four"]
MODES = ["compat", "fast"]


def read_fixture(name: str) -> dict:
    """A fixture of runtime/cpp/tests/make_fixtures.py, read by that script's own reader."""
    spec = importlib.util.spec_from_file_location(
        "make_fixtures", ROOT / "runtime" / "cpp" / "tests" / "make_fixtures.py"
    )
    make_fixtures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_fixtures)
    f = make_fixtures.read_fixture(FIXTURES / f"{name}.bin")
    return dict(
        tables=coder.CoderTables(f["cdf"], f["cdf_length"], f["offset"]),
        symbols=f["symbols"],
        indexes=f["indexes"],
        data=f["data"],
    )


def toy_tables() -> coder.CoderTables:
    """Three small tables built by hand (strictly increasing 16-bit CDFs, last bin = escape)."""
    cdf = np.zeros((3, 8), np.int32)
    cdf[0, :6] = [0, 1000, 30000, 60000, 65000, 65536]
    cdf[1, :3] = [0, 65535, 65536]  # one real bin of probability 1 - 2^-16, then the escape
    cdf[2, :8] = [0, 1, 2, 3, 40000, 65533, 65535, 65536]
    return coder.CoderTables(cdf, np.array([6, 3, 8], np.int32), np.array([-2, 0, -3], np.int32))


def random_case(tables: coder.CoderTables, n: int, seed: int, escape_rate: float = 0.02):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, tables.num_tables, n).astype(np.int32)
    sym = rng.integers(-6, 7, n).astype(np.int32)
    esc = rng.random(n) < escape_rate
    sym[esc] = rng.choice([-(2**31), -(2**20), -77, 50, 3000, 2**31 - 1], esc.sum())
    return sym, idx


@pytest.fixture(scope="module")
def gaussian():
    """CompressAI's default 64-level Gaussian table set (needs compressai, hence torch)."""
    pytest.importorskip("compressai")
    from compressai.entropy_models import GaussianConditional
    from compressai.models.google import get_scale_table

    gc = GaussianConditional(None)
    gc.update_scale_table(get_scale_table())
    tabs = [gc._quantized_cdf.numpy(), gc._cdf_length.numpy(), gc._offset.numpy()]
    return gc, tabs, coder.CoderTables(*tabs)


# --------------------------------------------------------------------------- CompressAI compatibility


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_compat_reproduces_compressai_fixture_bytes(name):
    f = read_fixture(name)
    assert coder.encode(f["tables"], f["symbols"], f["indexes"], mode="compat") == f["data"]
    np.testing.assert_array_equal(coder.decode(f["tables"], f["data"], f["indexes"], mode="compat"), f["symbols"])


@pytest.mark.parametrize("regime", ["lowrate", "mid", "uniform_idx", "escapes"])
def test_compat_bytes_equal_live_compressai(gaussian, regime):
    from compressai import ans

    gc, (cdf, lengths, offsets), tables = gaussian
    rng = np.random.default_rng(hash(regime) % 2**32)
    n = 20000
    table = gc.scale_table.numpy()
    sigma = {
        "lowrate": np.where(rng.random(n) < 0.8, 0.11, rng.uniform(0.2, 3.0, n)),
        "mid": rng.uniform(0.5, 4.0, n),
        "uniform_idx": np.exp(rng.uniform(np.log(0.11), np.log(256.0), n)),
        "escapes": rng.uniform(0.11, 2.0, n),
    }[regime]
    idx = np.searchsorted(table[:-1], np.maximum(sigma, 0.11), side="left").astype(np.int32)
    sym = np.round(rng.normal(0.0, sigma)).astype(np.int32)
    if regime == "escapes":  # out-of-range values on both sides, small and large overflows
        pos = rng.choice(n, 500, replace=False)
        sym[pos] = rng.choice([-(10**6), -5000, -40, 33, 700, 10**6], 500)
    expected = ans.RansEncoder().encode_with_indexes(
        sym.tolist(), idx.tolist(), cdf.tolist(), lengths.tolist(), offsets.tolist()
    )
    got = coder.encode(tables, sym, idx, mode="compat")
    assert got == expected
    # Both directions: CompressAI decodes our bytes, we decode CompressAI's.
    assert (
        ans.RansDecoder().decode_with_indexes(got, idx.tolist(), cdf.tolist(), lengths.tolist(), offsets.tolist())
        == sym.tolist()
    )
    np.testing.assert_array_equal(coder.decode(tables, expected, idx, mode="compat"), sym)


def test_compat_equals_gaussian_conditional_compress(gaussian):
    import torch

    gc, _, tables = gaussian
    torch.manual_seed(0)
    y = torch.randn(1, 8, 12, 10) * 3
    scales = torch.rand(1, 8, 12, 10) * 5
    idx = gc.build_indexes(scales)
    (string,) = gc.compress(y, idx)
    sym = gc.quantize(y, "symbols").numpy().astype(np.int32)
    assert coder.encode(tables, sym, idx.numpy().astype(np.int32), mode="compat") == string


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 100, 257, 5000])
def test_round_trip_exact_including_tiny_and_escapes(mode, n):
    tables = toy_tables()
    sym, idx = random_case(tables, n, seed=n)
    if n == 1:
        sym[:] = -(2**31)  # the most extreme escape
    data = coder.encode(tables, sym, idx, mode=mode)
    out = coder.decode(tables, data, idx, mode=mode)
    assert out.dtype == np.int32 and out.shape == (n,)
    np.testing.assert_array_equal(out, sym)


@pytest.mark.parametrize("substreams", [1, 2, 3, 8, 50])
def test_fast_substreams_round_trip_and_are_thread_count_independent(substreams):
    tables = toy_tables()
    sym, idx = random_case(tables, 20000, seed=5)
    data = coder.encode(tables, sym, idx, mode="fast", substreams=substreams)
    assert data == coder.encode(tables, sym, idx, mode="fast", substreams=substreams, threads=1)
    assert data[1] == substreams  # substream count byte
    for threads in (1, 2, 4):
        np.testing.assert_array_equal(coder.decode(tables, data, idx, mode="fast", threads=threads), sym)


def test_multidimensional_and_other_integer_dtypes_are_flattened():
    tables = toy_tables()
    sym, idx = random_case(tables, 60, seed=1, escape_rate=0)
    data = coder.encode(tables, sym.reshape(3, 4, 5).astype(np.int64), idx.reshape(3, 4, 5).astype(np.int16))
    np.testing.assert_array_equal(coder.decode(tables, memoryview(data), idx.reshape(3, 20)), sym)


def test_fast_mode_costs_little_over_compat_on_gaussian_latent(gaussian):
    gc, _, tables = gaussian
    rng = np.random.default_rng(3)
    sigma = np.exp(rng.uniform(np.log(0.11), np.log(8.0), 200000))
    idx = np.searchsorted(gc.scale_table.numpy()[:-1], sigma, side="left").astype(np.int32)
    sym = np.round(rng.normal(0, sigma)).astype(np.int32)
    fast, compat = (len(coder.encode(tables, sym, idx, mode=m)) for m in ("fast", "compat"))
    assert tables.fast_precision == 14
    assert fast <= compat * 1.01  # 14-bit requantization + 8 lane states: < 1 % here


def test_tables_wider_than_14_bits_fall_back_to_precision_16():
    bins = 20000
    cdf = np.zeros((1, bins + 2), np.int32)
    cdf[0, : bins + 1] = np.round(np.linspace(0, 65536, bins + 1)).astype(np.int32)
    tables = coder.CoderTables(cdf, np.array([bins + 1], np.int32), np.array([-100], np.int32))
    assert tables.fast_precision == 16
    rng = np.random.default_rng(0)
    sym = rng.integers(-200, bins, 3000).astype(np.int32)
    idx = np.zeros(3000, np.int32)
    for mode in MODES:
        np.testing.assert_array_equal(
            coder.decode(tables, coder.encode(tables, sym, idx, mode=mode), idx, mode=mode), sym
        )


# --------------------------------------------------------------------------- incremental coding


@pytest.mark.parametrize("mode", MODES)
def test_stream_coders_match_one_shot_coding(mode):
    tables = toy_tables()
    sym, idx = random_case(tables, 3000, seed=9)
    cuts = [0, 1, 1, 500, 1700, 3000]
    enc = coder.StreamEncoder(tables, mode)
    for a, b in zip(cuts, cuts[1:]):
        enc.encode(sym[a:b], idx[a:b])
    data = enc.flush()
    assert data == coder.encode(tables, sym, idx, mode=mode)
    dec = coder.StreamDecoder(tables, data, mode)
    parts = [dec.decode(idx[a:b]) for a, b in zip(cuts, cuts[1:])]
    dec.finish()
    np.testing.assert_array_equal(np.concatenate(parts), sym)
    assert enc.flush() == coder.encode(tables, sym[:0], idx[:0], mode=mode)  # flush resets


@pytest.mark.parametrize("mode", MODES)
def test_stream_decoder_finish_detects_unread_symbols(mode):
    tables = toy_tables()
    sym, idx = random_case(tables, 400, seed=2)
    dec = coder.StreamDecoder(tables, coder.encode(tables, sym, idx, mode=mode), mode)
    dec.decode(idx[:300])
    with pytest.raises(BitstreamError, match="final rANS state|left over"):
        dec.finish()


# --------------------------------------------------------------------------- corrupt input


@pytest.mark.parametrize("mode", MODES)
def test_every_truncation_raises_bitstream_error(mode):
    tables = toy_tables()
    sym, idx = random_case(tables, 800, seed=4)
    data = coder.encode(tables, sym, idx, mode=mode, substreams=1 if mode == "compat" else 2)
    for cut in range(len(data)):
        with pytest.raises(BitstreamError):
            coder.decode(tables, data[:cut], idx, mode=mode)
    with pytest.raises(BitstreamError):
        coder.decode(tables, data + b"\0\0\0\0", idx, mode=mode)


def test_fast_decoder_hands_over_from_unchecked_blocks_to_bounded_tail():
    """32-lane fast decoding reads whole blocks unchecked while the stream has room for the worst case, then
    switches to bounded reads: escapes on both sides of the switch decode exactly, and cutting the stream
    anywhere in its last bytes (where the switch happens) is still a clean error, never a crash."""
    tables = toy_tables()
    sym, idx = random_case(tables, 20000, seed=11, escape_rate=0.01)
    tail_sym, _ = random_case(tables, 300, seed=12, escape_rate=0.5)
    sym[-300:] = tail_sym
    data = coder.encode(tables, sym, idx, mode="fast")
    assert data[0] & 0x0F == 5  # 32 interleaved lanes
    np.testing.assert_array_equal(coder.decode(tables, data, idx, mode="fast"), sym)
    for cut in range(len(data) - 600, len(data)):
        with pytest.raises(BitstreamError):
            coder.decode(tables, data[:cut], idx, mode="fast")


@pytest.mark.parametrize("mode", MODES)
def test_decode_returns_fresh_writable_int32_arrays(mode):
    tables = toy_tables()
    sym, idx = random_case(tables, 3000, seed=13)
    data = coder.encode(tables, sym, idx, mode=mode)
    a, b = coder.decode(tables, data, idx, mode=mode), coder.decode(tables, data, idx, mode=mode)
    assert a.dtype == np.int32 and a.flags.writeable and not np.shares_memory(a, b)
    a[:] = 0
    np.testing.assert_array_equal(b, sym)
    assert coder.decode(tables, coder.encode(tables, sym[:0], idx[:0], mode=mode), idx[:0], mode=mode).size == 0


@pytest.mark.parametrize("mode", MODES)
def test_corruption_is_detected_by_coder_or_symbol_crc(mode):
    tables = toy_tables()
    sym, idx = random_case(tables, 2000, seed=6)
    data = coder.encode(tables, sym, idx, mode=mode)
    crc = coder.symbols_crc(sym)
    rng = np.random.default_rng(0)
    rejected = 0
    for _ in range(400):
        bad = bytearray(data)
        bad[rng.integers(len(bad))] ^= 1 << int(rng.integers(8))
        try:
            out = coder.decode(tables, bytes(bad), idx, mode=mode)
        except BitstreamError:
            rejected += 1
        else:
            assert coder.symbols_crc(out) != crc  # a damaged stream never silently yields the original
    assert rejected >= 300


def test_fast_stream_layout_is_format_2_with_32_bit_states_and_16_bit_words():
    tables = toy_tables()
    # No symbols: byte 0 = format 2 (bits 6-7) | precision code 1 = 14 bits (bits 4-5) | log2(1 lane), one
    # substream, then the lane's initial state 2^16 as a little-endian u32.
    assert coder.encode(tables, np.zeros(0, np.int32), np.zeros(0, np.int32)) == bytes([0x90, 1, 0, 0, 1, 0])
    sym, idx = random_case(tables, 10000, seed=1)
    data = coder.encode(tables, sym, idx)
    assert data[0] == 0x80 | 0x10 | 5 and data[1] == 1  # 32 lanes for >= 8192 symbols
    states = np.frombuffer(data, "<u4", 32, 2)
    assert np.all((states >= 2**16) & (states < 2**32))
    assert (len(data) - 2 - 4 * 32) % 2 == 0  # 16-bit renormalization words


def test_fast_stream_header_rejects_other_formats_and_parameters():
    tables = toy_tables()
    sym, idx = random_case(tables, 100, seed=0)
    data = bytearray(coder.encode(tables, sym, idx, mode="fast"))
    assert data[0] == 0x90  # 1 lane below 256 symbols
    for byte0 in (0x20, 0x40):  # the retired 64-bit-state format (precision 14 / 16, 1 lane)
        with pytest.raises(BitstreamError, match="no longer supported"):
            coder.decode(tables, bytes([byte0]) + bytes(data[1:]), idx)
    with pytest.raises(BitstreamError, match="unknown format version 3"):
        coder.decode(tables, bytes([0xD0]) + bytes(data[1:]), idx)
    for byte0 in (0x96, 0x80, 0xA0, 0xB0):  # 64 lanes; precisions 12, 16 (on 14-bit tables) and 18
        with pytest.raises(BitstreamError):
            coder.decode(tables, bytes([byte0]) + bytes(data[1:]), idx)
    with pytest.raises(BitstreamError, match="substream"):
        coder.decode(tables, bytes(data[:1]) + b"\xff" + bytes(data[2:]), idx)
    with pytest.raises(BitstreamError, match="multiple of 2"):
        coder.decode(tables, bytes(data) + b"\0", idx)
    with pytest.raises(BitstreamError):
        coder.decode(tables, b"", idx)


def test_decoding_with_the_wrong_tables_is_detected():
    tables = toy_tables()
    sym, idx = random_case(tables, 3000, seed=8, escape_rate=0)
    data = coder.encode(tables, sym, idx, mode="fast")
    shifted = (idx + 1) % 3  # an index desync, as a drifting hyper-decoder would cause
    with pytest.raises(BitstreamError):
        coder.decode(tables, data, shifted)


# --------------------------------------------------------------------------- AVX2 vs scalar fast decoding

SCALAR_CHILD = """
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from runtime import coder
from runtime.errors import BitstreamError
f = np.load(sys.argv[2])
tables = [coder.CoderTables(f[f"t{k}.cdf"], f[f"t{k}.len"], f[f"t{k}.off"]) for k in range(int(f["n_tables"]))]
out = []
for i in range(int(f["n_cases"])):
    try:
        sym = coder.decode(tables[int(f[f"c{i}.tables"])], f[f"c{i}.data"].tobytes(), f[f"c{i}.idx"], mode="fast")
        out.append(["ok", coder.symbols_crc(sym), int(sym.size)])
    except BitstreamError as e:
        out.append(["error", str(e)])
print(json.dumps(out))
"""


def decode_outcome(tables, data, idx):
    try:
        sym = coder.decode(tables, data, idx, mode="fast")
        return ["ok", coder.symbols_crc(sym), int(sym.size)]
    except BitstreamError as e:
        return ["error", str(e)]


def adversarial_tables() -> coder.CoderTables:
    """toy_tables plus an escape-only row and a row whose 100 tiny bins crowd single hint buckets."""
    cdf = np.zeros((5, 202), np.int32)
    cdf[:3, :8] = toy_tables().cdf
    cdf[3, :2] = [0, 65536]
    cdf[4, :202] = np.concatenate([3 * np.arange(101), 300 + 600 * np.arange(1, 101), [65536]])
    return coder.CoderTables(cdf, np.array([6, 3, 8, 2, 202], np.int32), np.array([-2, 0, -3, 7, -100], np.int32))


def test_avx2_and_scalar_fast_decoders_agree_on_symbols_and_errors(gaussian, tmp_path):
    """The default decoder (AVX2 on CPUs that have it) and the portable one forced by LICTRT_CODER_SCALAR=1 in a
    child process decode the benchmark latents, adversarial tables (all escapes, escape-only and one-bin rows,
    crowded hint buckets), sizes around the 8/16/32-lane blocks, and damaged streams to the same symbols or the
    same error message."""
    from benchmarks.coder import make_latent

    gc, _, gtables = gaussian
    adv = adversarial_tables()
    all_tables = [gtables, adv]
    cases = []  # (tables id, data, idx, expected symbols or None)
    for regime in ("channel", "uniform_idx"):
        _, sym, idx = make_latent(regime, gc.scale_table.numpy())
        cases.append((0, coder.encode(gtables, sym, idx), idx, sym))
    rng = np.random.default_rng(21)
    for n in (0, 1, 7, 9, 33, 255, 1000, 4100, 8197, 40003):
        for escape_rate in (0.0, 0.01, 1.0):
            sym, idx = random_case(adv, n, seed=n + int(100 * escape_rate), escape_rate=escape_rate)
            idx[rng.random(n) < 0.1] = 3  # escape-only row
            sym[idx == 3] = rng.integers(-50, 50, int((idx == 3).sum()))
            cases.append((1, coder.encode(adv, sym, idx), idx, sym))
    base = len(cases)
    for k in range(300):  # damaged copies of the 40003-symbol, 1 %-escape stream
        tid, data, idx, _ = cases[base - 2]
        bad = bytearray(data)
        if k % 3 == 2:
            bad = bad[: len(bad) - 2 * int(rng.integers(1, 200))]
        else:
            for _ in range(1 + k % 3):
                bad[int(rng.integers(2, len(bad)))] ^= 1 << int(rng.integers(8))
        cases.append((tid, bytes(bad), idx, None))

    arrays = {"n_tables": np.array(len(all_tables)), "n_cases": np.array(len(cases))}
    for k, t in enumerate(all_tables):
        arrays.update({f"t{k}.cdf": t.cdf, f"t{k}.len": t.cdf_length, f"t{k}.off": t.offset})
    for i, (tid, data, idx, _) in enumerate(cases):
        arrays.update({f"c{i}.tables": np.array(tid), f"c{i}.data": np.frombuffer(data, np.uint8), f"c{i}.idx": idx})
    np.savez(tmp_path / "cases.npz", **arrays)
    env = dict(os.environ, LICTRT_CODER_SCALAR="1")
    proc = subprocess.run(
        [sys.executable, "-c", SCALAR_CHILD, str(ROOT), str(tmp_path / "cases.npz")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    scalar = json.loads(proc.stdout)
    errors = 0
    for (tid, data, idx, expected), theirs in zip(cases, scalar):
        ours = decode_outcome(all_tables[tid], data, idx)
        assert ours == theirs
        if expected is not None:
            assert ours == ["ok", coder.symbols_crc(expected), expected.size]
        errors += ours[0] == "error"
    assert errors >= 200  # most damaged streams are rejected (by both decoders alike)


# --------------------------------------------------------------------------- threads


def test_python_threads_decoding_different_streams_agree_with_one_thread():
    tables = toy_tables()
    cases = []
    for seed, mode in zip(range(8), MODES * 4):
        sym, idx = random_case(tables, 60000, seed=100 + seed)
        cases.append(
            (mode, idx, coder.encode(tables, sym, idx, mode=mode, **({"substreams": 3} if mode == "fast" else {})))
        )
    serial = [coder.decode(tables, d, idx, mode=mode, threads=1) for mode, idx, d in cases]
    results = [None] * len(cases)

    def work(i):
        mode, idx, d = cases[i]
        for _ in range(3):
            results[i] = coder.decode(tables, d, idx, mode=mode)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(cases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(serial, results):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- validation and CRCs


def test_bad_inputs_raise_clear_errors():
    tables = toy_tables()
    with pytest.raises(CoderArgumentError, match="outside the 3 tables"):
        coder.encode(tables, np.zeros(4, np.int32), np.array([0, 1, 3, 0], np.int32))
    with pytest.raises(CoderArgumentError, match="outside"):
        coder.decode(
            tables, coder.encode(tables, np.zeros(2, np.int32), np.zeros(2, np.int32)), np.array([0, -1], np.int32)
        )
    with pytest.raises(CoderArgumentError, match="integer"):
        coder.encode(tables, np.zeros(4, np.float32), np.zeros(4, np.int32))
    with pytest.raises(CoderArgumentError, match="int32 range"):
        coder.encode(tables, np.array([2**40]), np.zeros(1, np.int32))
    with pytest.raises(CoderArgumentError, match="differ"):
        coder.encode(tables, np.zeros(4, np.int32), np.zeros(5, np.int32))
    with pytest.raises(CoderArgumentError, match="mode"):
        coder.encode(tables, np.zeros(4, np.int32), np.zeros(4, np.int32), mode="turbo")
    cdf = np.array([[0, 100, 100, 65536]], np.int32)  # zero-frequency bin
    with pytest.raises(CoderArgumentError, match="strictly increasing"):
        coder.CoderTables(cdf, np.array([4], np.int32), np.array([0], np.int32))
    with pytest.raises(CoderArgumentError, match="cdf_length"):
        coder.CoderTables(np.array([[0, 65536]], np.int32), np.array([3], np.int32), np.array([0], np.int32))


def test_binding_refuses_python_lists():
    from runtime import _lictrt

    tables = toy_tables()
    with pytest.raises(TypeError):
        _lictrt.encode(tables._native, [0, 1], [0, 0], 1)


def test_crc32_matches_zlib():
    rng = np.random.default_rng(0)
    for n in (0, 1, 7, 8, 9, 1000, 4099):
        buf = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert coder.crc32(buf) == zlib.crc32(buf)
    sym = rng.integers(-(2**31), 2**31 - 1, 1001, dtype=np.int64).astype(np.int32)
    assert coder.symbols_crc(sym) == zlib.crc32(sym.astype("<i4").tobytes())
    assert coder.crc32(b"456789", coder.crc32(b"123")) == 0xCBF43926
