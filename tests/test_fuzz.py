"""Fuzzing the container parser and both coder modes with mutated bitstreams: every mutation must end in a
clean BitstreamError or in a correct decode -- never a crash, a hang or another exception.

CI runs ``LICTRT_FUZZ_COUNT`` mutations (default 10000). For a long run:
``python tests/test_fuzz.py --count 100000 [--seed N]`` (prints the count, rejections and time).
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np

if __name__ == "__main__":  # allow `python tests/test_fuzz.py` from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime import coder, container  # noqa: E402
from runtime.errors import BitstreamError  # noqa: E402

FIXED, ENTRY = 56, 32
DEFAULT_COUNT = int(os.environ.get("LICTRT_FUZZ_COUNT", "10000"))


def make_tables() -> coder.CoderTables:
    """Discretized Laplace tables of 12 widths, quantized to 16-bit CDFs with no zero bins (pure numpy)."""
    rows, lengths, offsets = [], [], []
    for i in range(12):
        b = 0.3 * 1.35**i
        half = int(np.ceil(8 * b)) + 1
        x = np.arange(-half, half + 1)
        pmf = np.exp(-np.abs(x) / b)
        pmf = np.append(pmf / pmf.sum() * (1 - 1e-4), 1e-4)  # last bin: escape
        freq = np.maximum(1, np.round(pmf * (65536 - len(pmf))).astype(np.int64) + 1)
        freq[np.argmax(freq)] += 65536 - freq.sum()
        rows.append(np.concatenate([[0], np.cumsum(freq)]))
        lengths.append(len(pmf) + 1)
        offsets.append(-half)
    cdf = np.zeros((len(rows), max(lengths)), np.int32)
    for r, row in enumerate(rows):
        cdf[r, : len(row)] = row
    return coder.CoderTables(cdf, np.array(lengths, np.int32), np.array(offsets, np.int32))


def make_corpus(tables: coder.CoderTables, seed: int = 0):
    """Valid containers (compat, fast, fast with 3 substreams) and what decoding them needs."""
    rng = np.random.default_rng(seed)
    corpus = []
    for mode, k in (("compat", 1), ("fast", 1), ("fast", 3)):
        streams, indexes = [], {}
        # y is long enough for the 32-lane (8-lane with 3 substreams) SIMD block decoder.
        for kind, n in (("z", 40), ("y", 9000), ("y.extra", 1)):
            idx = rng.integers(0, tables.num_tables, n).astype(np.int32)
            sym = np.round(rng.laplace(0, 0.3 * 1.35 ** idx)).astype(np.int32)
            sym[rng.random(n) < 0.03] = rng.integers(-(2**31), 2**31 - 1, dtype=np.int64)
            payload = coder.encode(tables, sym, idx, mode=mode, substreams=k)
            streams.append(container.Stream.from_symbols(kind, sym, payload))
            indexes[kind] = idx
        header = container.Header.create(model_hash=bytes(range(32)), height=64, width=96, plan="hyperprior",
                                         coder_mode=mode)
        corpus.append((container.pack(header, streams), indexes))
    return corpus


def fix_header_crc(buf: bytearray) -> None:
    if len(buf) < FIXED + 4:
        return
    (count,) = struct.unpack_from("<H", buf, 54)
    end = FIXED + ENTRY * count
    if end + 4 <= len(buf):
        struct.pack_into("<I", buf, end, zlib.crc32(bytes(buf[:end])))


def payload_ranges(buf: bytes):
    (count,) = struct.unpack_from("<H", buf, 54)
    at = FIXED + ENTRY * count + 4
    out = []
    for i in range(count):
        (n,) = struct.unpack_from("<I", buf, FIXED + ENTRY * i + 20)
        out.append((i, at, n))
        at += n
    return out


def mutate(rng: np.random.Generator, data: bytes) -> bytes:
    """One random damage: raw (caught by CRCs) or CRC-refreshed (reaches the size checks and the coder)."""
    buf = bytearray(data)
    kind = int(rng.integers(9))
    if kind == 0:  # truncation
        return bytes(buf[: int(rng.integers(len(buf)))])
    if kind == 1:  # random bit flips anywhere
        for _ in range(int(rng.integers(1, 9))):
            buf[int(rng.integers(len(buf)))] ^= 1 << int(rng.integers(8))
        return bytes(buf)
    if kind == 2:  # header field overwritten, header CRC recomputed
        (count,) = struct.unpack_from("<H", buf, 54)
        pos = int(rng.integers(4, FIXED + ENTRY * count))
        for _ in range(int(rng.integers(1, 4))):
            buf[min(pos + int(rng.integers(4)), FIXED + ENTRY * count - 1)] = int(rng.integers(256))
        fix_header_crc(buf)
        return bytes(buf)
    if kind == 3:  # absurd or slightly wrong sizes / symbol counts, CRC recomputed
        (count,) = struct.unpack_from("<H", buf, 54)
        i = int(rng.integers(count))
        field = FIXED + ENTRY * i + int(rng.choice([16, 20]))
        (old,) = struct.unpack_from("<I", buf, field)
        new = int(rng.choice([0, 1, 0xFFFFFFFF, 0x7FFFFFFF, old + 1, max(old - 1, 0), old + 4, max(old - 4, 0)]))
        struct.pack_into("<I", buf, field, new & 0xFFFFFFFF)
        fix_header_crc(buf)
        return bytes(buf)
    if kind == 4:  # stream count changed
        struct.pack_into("<H", buf, 54, int(rng.choice([0, 1, 2, 4, 0xFFFF])))
        fix_header_crc(buf)
        return bytes(buf)
    # Payload damage with payload CRC and header CRC refreshed, so the coder itself must catch it.
    ranges = [r for r in payload_ranges(bytes(buf)) if r[2] > 0]
    i, at, n = ranges[int(rng.integers(len(ranges)))]
    payload = bytearray(buf[at: at + n])
    if kind == 5:
        for _ in range(int(rng.integers(1, 5))):
            payload[int(rng.integers(n))] ^= 1 << int(rng.integers(8))
    elif kind == 6:
        payload = payload[: int(rng.integers(n))]
    elif kind == 7:
        payload += bytes(rng.integers(0, 256, int(rng.choice([1, 4, 8])), dtype=np.uint8))
    else:
        pos = int(rng.integers(min(n, 16)))  # fast-mode framing / initial states
        payload[pos] = int(rng.integers(256))
    entry = FIXED + ENTRY * i
    struct.pack_into("<II", buf, entry + 20, len(payload), zlib.crc32(bytes(payload)))
    buf[at: at + n] = payload
    fix_header_crc(buf)
    return bytes(buf)


def decode_all(tables: coder.CoderTables, data: bytes, indexes: dict) -> dict:
    """What a decoder does with a container: parse, decode every stream, check counts and symbol CRCs."""
    header, streams = container.unpack(data)
    if header.coder_mode_name not in coder.MODES:
        raise BitstreamError(f"unknown coder mode {header.coder_mode}")
    out = {}
    for s in streams:
        idx = indexes.get(s.kind)
        if idx is None or s.n_symbols != idx.size:
            raise BitstreamError(f"stream '{s.kind}': unexpected kind or symbol count")
        out[s.kind] = coder.decode(tables, s.payload, idx, mode=header.coder_mode_name)
        s.check_symbols(out[s.kind])
    return out


def run(count: int, seed: int = 0) -> dict:
    """Apply `count` mutations; return statistics. Raises on anything but BitstreamError (or a wrong decode)."""
    tables = make_tables()
    corpus = make_corpus(tables, seed)
    originals = [decode_all(tables, data, idx) for data, idx in corpus]
    rng = np.random.default_rng(seed)
    stats = {"count": count, "rejected": 0, "accepted": 0, "max_ms": 0.0}
    start = time.perf_counter()
    for _ in range(count):
        c = int(rng.integers(len(corpus)))
        data, idx = corpus[c]
        bad = mutate(rng, data)
        t0 = time.perf_counter()
        try:
            decoded = decode_all(tables, bad, idx)
        except BitstreamError:
            stats["rejected"] += 1
        else:  # harmless edits (e.g. image size) may pass, but then every symbol must be right
            stats["accepted"] += 1
            for kind, sym in decoded.items():
                np.testing.assert_array_equal(sym, originals[c][kind])
        stats["max_ms"] = max(stats["max_ms"], 1e3 * (time.perf_counter() - t0))
    stats["seconds"] = time.perf_counter() - start
    return stats


def test_fuzzed_containers_never_crash_hang_or_decode_silently_wrong():
    stats = run(DEFAULT_COUNT, seed=1)
    assert stats["rejected"] + stats["accepted"] == DEFAULT_COUNT
    assert stats["rejected"] > 0.9 * DEFAULT_COUNT
    assert stats["max_ms"] < 1000  # no mutation makes a decode hang


def test_corpus_is_valid_and_mutations_differ():
    tables = make_tables()
    rng = np.random.default_rng(0)
    for data, idx in make_corpus(tables):
        assert set(decode_all(tables, data, idx)) == {"z", "y", "y.extra"}
        assert sum(mutate(rng, data) != data for _ in range(100)) >= 90  # a few random edits are no-ops


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="fuzz the lictrt container parser and coder")
    ap.add_argument("--count", type=int, default=100000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    import faulthandler

    faulthandler.enable()
    stats = run(args.count, args.seed)
    print(f"{stats['count']} mutations in {stats['seconds']:.1f} s: {stats['rejected']} rejected "
          f"(BitstreamError), {stats['accepted']} decoded correctly, 0 crashes/hangs; "
          f"slowest {stats['max_ms']:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
