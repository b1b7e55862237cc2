"""Regenerate the CompressAI-compat fixtures in ./fixtures (needs compressai 1.2.8; run from the repo root:
``python runtime/cpp/tests/make_fixtures.py``).

Each ``.bin`` fixture holds tables, symbols, indexes and the bytes ``compressai.ans.RansEncoder`` produced:
  b"LCFX" u32 version(1) | i32 T, Lmax | i32 cdf[T*Lmax] | i32 cdf_length[T] | i32 offset[T]
  | i32 n | i32 symbols[n] | i32 indexes[n] | u32 nbytes | u8 bytes[nbytes]        (all little-endian)
The C++ test and tests/runtime/test_coder.py both check that compat mode reproduces these bytes exactly.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


def write_fixture(path: Path, cdf, cdf_length, offset, symbols, indexes, data: bytes) -> None:
    cdf = np.ascontiguousarray(cdf, dtype="<i4")
    parts = [
        b"LCFX",
        struct.pack("<Iii", 1, *cdf.shape),
        cdf.tobytes(),
        np.asarray(cdf_length, "<i4").tobytes(),
        np.asarray(offset, "<i4").tobytes(),
        struct.pack("<i", len(symbols)),
        np.asarray(symbols, "<i4").tobytes(),
        np.asarray(indexes, "<i4").tobytes(),
        struct.pack("<I", len(data)),
        data,
    ]
    path.write_bytes(b"".join(parts))


def read_fixture(path: Path) -> dict:
    raw = Path(path).read_bytes()
    assert raw[:4] == b"LCFX", path
    version, T, L = struct.unpack_from("<Iii", raw, 4)
    at = 16

    def take(count):
        nonlocal at
        arr = np.frombuffer(raw, "<i4", count, at).astype(np.int32)
        at += 4 * count
        return arr

    cdf = take(T * L).reshape(T, L)
    cdf_length, offset = take(T), take(T)
    (n,) = struct.unpack_from("<i", raw, at)
    at += 4
    symbols, indexes = take(n), take(n)
    (nbytes,) = struct.unpack_from("<I", raw, at)
    at += 4
    return dict(
        cdf=cdf, cdf_length=cdf_length, offset=offset, symbols=symbols, indexes=indexes, data=raw[at : at + nbytes]
    )


def main() -> None:
    import torch
    from compressai import ans
    from compressai.entropy_models import EntropyBottleneck, GaussianConditional

    torch.manual_seed(0)
    rng = np.random.default_rng(1234)
    out = Path(__file__).with_name("fixtures")
    out.mkdir(exist_ok=True)

    gc = GaussianConditional(None)
    table = np.exp(np.linspace(np.log(0.11), np.log(8.0), 12))
    gc.update_scale_table(torch.tensor(table, dtype=torch.float32))
    eb = EntropyBottleneck(8)
    eb.update(force=True)

    def tables_of(model):
        return (model._quantized_cdf.numpy(), model._cdf_length.numpy(), model._offset.numpy())

    def gaussian(n, sigma):
        idx = np.searchsorted(table[:-1], np.maximum(sigma, 0.11), side="left").astype(np.int32)
        return np.round(rng.normal(0.0, sigma)).astype(np.int32), idx

    cases = {}
    n = 3000
    cases["gc_lowrate"] = (tables_of(gc), *gaussian(n, np.where(rng.random(n) < 0.8, 0.11, rng.uniform(0.2, 2, n))))
    cases["gc_mid"] = (tables_of(gc), *gaussian(n, rng.uniform(0.5, 4.0, n)))
    sym, idx = gaussian(n, np.exp(rng.uniform(np.log(0.11), np.log(8.0), n)))
    # Out-of-range values: small and large escapes on both sides.
    pos = rng.choice(n, 60, replace=False)
    sym[pos] = rng.choice([-70000, -300, -60, 55, 61, 400, 5000, 2**20], size=60)
    cases["gc_escapes"] = (tables_of(gc), sym, idx)
    sym = rng.integers(-14, 15, 1200).astype(np.int32)
    sym[::37] = rng.integers(-500, 500, len(sym[::37]))
    cases["eb_factorized"] = (tables_of(eb), sym, (np.arange(1200) % 8).astype(np.int32))
    cases["gc_four"] = (tables_of(gc), np.array([0, -3, 90, 1], np.int32), np.array([0, 5, 11, 2], np.int32))

    for name, ((cdf, cdf_length, offset), sym, idx) in cases.items():
        data = ans.RansEncoder().encode_with_indexes(
            sym.tolist(), idx.tolist(), cdf.tolist(), cdf_length.tolist(), offset.tolist()
        )
        write_fixture(out / f"{name}.bin", cdf, cdf_length, offset, sym, idx, data)
        print(f"{name}: {len(sym)} symbols -> {len(data)} bytes")


if __name__ == "__main__":
    main()
