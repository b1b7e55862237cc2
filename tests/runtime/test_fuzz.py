"""Fuzzing the container parser and both coder modes with mutated bitstreams: every mutation must end in a
clean BitstreamError or in a correct decode -- never a crash, a hang or another exception.

CI runs ``LICTRT_FUZZ_COUNT`` mutations (default 10000). For a long run:
``python tests/runtime/test_fuzz.py --count 100000 [--seed N]`` (prints the count, rejections and time).
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

if __name__ == "__main__":  # allow `python tests/runtime/test_fuzz.py` from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

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
            sym = np.round(rng.laplace(0, 0.3 * 1.35**idx)).astype(np.int32)
            sym[rng.random(n) < 0.03] = rng.integers(-(2**31), 2**31 - 1, dtype=np.int64)
            payload = coder.encode(tables, sym, idx, mode=mode, substreams=k)
            streams.append(container.Stream.from_symbols(kind, sym, payload))
            indexes[kind] = idx
        header = container.Header.create(
            model_hash=bytes(range(32)), height=64, width=96, plan="hyperprior", coder_mode=mode
        )
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
    payload = bytearray(buf[at : at + n])
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
    buf[at : at + n] = payload
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
    print(
        f"{stats['count']} mutations in {stats['seconds']:.1f} s: {stats['rejected']} rejected "
        f"(BitstreamError), {stats['accepted']} decoded correctly, 0 crashes/hangs; "
        f"slowest {stats['max_ms']:.2f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())


# ------------------------------------------------------------------------------------------ bundle-level corruption


def _bundle_corpus(tmp_path_factory):
    import pytest

    pytest.importorskip("torch")
    from test_runtime_support import cached_bundle

    ck, b, _ = cached_bundle(tmp_path_factory, "bmshj2018-hyperprior")
    return ck, b


def _copy(b, tmp_path, name):
    import shutil

    dst = tmp_path / name
    shutil.copytree(b, dst, symlinks=True)
    return dst


def _edit_manifest(d, fn):
    import json

    m = json.loads((d / "manifest.json").read_text())
    fn(m)
    (d / "manifest.json").write_text(json.dumps(m))


def _edit_tables(d):
    with np.load(d / "tables.npz") as z:
        arrays = {k: z[k].copy() for k in z.files}
    cdf = arrays["y.cdf"]
    row = int(np.argmax(arrays["y.cdf_length"]))
    cdf[row, 1] += 1  # still a valid, increasing CDF: the coder alone would not notice
    np.savez(d / "tables.npz", **arrays)


def _old_graph(d, name="synthesis.onnx"):
    """A graph file as another export (other weights) would have left it: same structure, other numbers."""
    import onnx
    from onnx import numpy_helper

    mp = onnx.load(str(d / name))
    init = max(mp.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    a = numpy_helper.to_array(init)
    init.CopyFrom(numpy_helper.from_array((a * 1.05).astype(a.dtype), init.name))
    onnx.save(mp, str(d / name))


def _bundle_cases(tmp_path):
    import os

    outside = tmp_path / "outside.onnx"
    outside.write_bytes(b"not inside the bundle")
    return {
        "edited tables": (lambda d: _edit_tables(d), "tables.npz does not match its digest"),
        "graph from another export": (lambda d: _old_graph(d), "synthesis.onnx does not match its digest"),
        "parse-critical graph from another export": (
            lambda d: _old_graph(d, "hyper_synthesis.onnx"),
            "hyper_synthesis.onnx does not match its digest",
        ),
        "graph file missing": (lambda d: (d / "analysis.onnx").unlink(), "analysis.onnx is missing"),
        "digest entry removed": (
            lambda d: _edit_manifest(d, lambda m: m["files"].pop("synthesis.onnx")),
            "no digest for synthesis.onnx",
        ),
        "absolute graph path": (
            lambda d: _edit_manifest(d, lambda m: m["graphs"]["synthesis"].update(file=str(outside))),
            "points outside the bundle",
        ),
        "dot-dot graph path": (
            lambda d: _edit_manifest(d, lambda m: m["graphs"]["synthesis"].update(file="../outside.onnx")),
            "points outside the bundle",
        ),
        "dot-dot engine path": (
            lambda d: _edit_manifest(d, lambda m: m["engines"].update(x={"file": "engines/../../outside.onnx"})),
            "points outside the bundle",
        ),
        "dot-dot digest path": (
            lambda d: _edit_manifest(d, lambda m: m["files"].update({"../outside.onnx": "sha256:00"})),
            "points outside the bundle",
        ),
        "link out of the bundle": (
            lambda d: (os.replace(d / "synthesis.onnx", d / "s.bak"), (d / "synthesis.onnx").symlink_to(outside)),
            "leads outside the bundle through a link",
        ),
    }


def test_bundle_corruption_is_one_line_error_naming_the_cause_never_a_wrong_image(tmp_path, tmp_path_factory):
    import pytest
    from test_runtime_support import test_image

    from runtime import Codec
    from runtime.bundle import BundleError

    _, b = _bundle_corpus(tmp_path_factory)
    good = Codec.open(b)
    im = test_image(40, 56)
    data = good.encode(im)
    want = good.decode(data)
    for name, (corrupt, words) in _bundle_cases(tmp_path).items():
        d = _copy(b, tmp_path, name.replace(" ", "-"))
        corrupt(d)
        try:
            c = Codec.open(d)
        except BundleError as e:
            msg = str(e)
            assert words in msg and "\n" not in msg, (name, msg)
            continue
        out = c.decode(data)  # opened: then the image must at least be the right one
        pytest.fail(
            f"{name}: bundle opened without an error ({'right' if np.array_equal(out, want) else 'WRONG'} image)"
        )


def test_cli_refuses_an_edited_bundle_in_one_line_and_writes_nothing(tmp_path, tmp_path_factory):
    import subprocess

    from test_runtime_support import REPO, test_image

    from runtime import Codec

    _, b = _bundle_corpus(tmp_path_factory)
    (tmp_path / "x.lic").write_bytes(Codec.open(b).encode(test_image(32, 32)))
    d = _copy(b, tmp_path, "edited")
    _edit_tables(d)
    r = subprocess.run(
        [sys.executable, "-m", "runtime", "decode", str(d), str(tmp_path / "x.lic"), "-o", str(tmp_path / "x.png")],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and r.stderr.startswith("error: ") and len(r.stderr.splitlines()) == 1
    assert "tables.npz does not match its digest" in r.stderr and not (tmp_path / "x.png").exists()


def test_interrupted_re_export_leaves_the_previous_bundle_whole(
    tmp_path, tmp_path_factory, monkeypatch, make_checkpoint
):
    import pytest

    import export.onnx as E
    from runtime.bundle import Bundle

    ck, b = _bundle_corpus(tmp_path_factory)
    d = _copy(b, tmp_path, "re-export.bundle")
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    calls = []
    real = E.export_stage

    def dies_on_the_second_graph(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(E, "export_stage", dies_on_the_second_graph)
    other = make_checkpoint("bmshj2018-hyperprior", seed=1)  # new weights into the old bundle's place
    with pytest.raises(KeyboardInterrupt):
        E.export_bundle(other, d, check=False, progress=False)
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before  # nothing mixed in
    Bundle.load(d)  # and it still verifies
    assert sorted(p.name for p in tmp_path.iterdir()) == ["re-export.bundle"]  # no build folder left
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(E.ExportError, match="not a codec bundle: refusing to replace it"):
        E.export_bundle(ck, tmp_path / "notes", check=False, progress=False)
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"
