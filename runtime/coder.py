"""Entropy coder: thin wrappers over the C++ rANS coder ``runtime._lictrt``.

Two modes (see ``runtime/cpp/include/lictrt/coder.hpp``):

- ``"compat"`` -- byte-identical to CompressAI 1.2.8's ``compressai.ans`` coder (and safe for 0 or 1 symbols).
- ``"fast"``   -- interleaved rANS at 14-bit precision with lookup-table decoding; ``substreams=k`` splits the
  symbols into k contiguous chunks coded independently (decoded in parallel threads).

Symbols and indexes are int32 numpy arrays (any shape, flattened in C order); tables are CompressAI-style
integer CDFs (``cdf`` int32 [T, Lmax], ``cdf_length`` [T], ``offset`` [T]) kept resident in ``CoderTables``.
"""

from __future__ import annotations

import numpy as np

from runtime import _lictrt
from runtime.errors import BitstreamError, CoderArgumentError

_lictrt._set_exception_types(BitstreamError, CoderArgumentError)

#: coder mode name -> the u8 code the container records (runtime/cpp/include/lictrt/format.hpp)
MODES = {name: code for code, name in enumerate(_lictrt.CODER_MODES)}

__all__ = ["MODES", "CoderTables", "encode", "decode", "StreamEncoder", "StreamDecoder", "crc32", "symbols_crc"]


def _mode(mode: str) -> int:
    try:
        return MODES[mode]
    except KeyError:
        raise CoderArgumentError(f"unknown coder mode {mode!r} (expected 'fast' or 'compat')") from None


def _int32(a, name: str, ndim: int | None = None) -> np.ndarray:
    """A C-contiguous int32 view/copy of an integer array; refuses lossy casts."""
    arr = np.asarray(a)
    if arr.dtype.kind not in "iu":
        raise CoderArgumentError(f"{name} must be an integer array, got dtype {arr.dtype}")
    if arr.dtype != np.int32:
        if arr.size and (arr.min() < np.iinfo(np.int32).min or arr.max() > np.iinfo(np.int32).max):
            raise CoderArgumentError(f"{name} has values outside the int32 range")
        arr = arr.astype(np.int32)
    if ndim is not None and arr.ndim != ndim:
        raise CoderArgumentError(f"{name} must have {ndim} dimension(s), got shape {arr.shape}")
    return np.ascontiguousarray(arr).reshape(-1) if ndim != 2 else np.ascontiguousarray(arr)


def _bytes(data) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data, dtype=np.uint8).reshape(-1)
    try:
        return np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    except TypeError:
        raise CoderArgumentError(f"expected a bytes-like object, got {type(data).__name__}") from None


class CoderTables:
    """Validated CDF tables with their derived symbol info and decode lookup tables (built once, C++ side)."""

    def __init__(self, cdf, cdf_length, offset):
        self.cdf = _int32(cdf, "cdf", ndim=2)
        self.cdf_length = _int32(cdf_length, "cdf_length", ndim=1)
        self.offset = _int32(offset, "offset", ndim=1)
        self._native = _lictrt.Tables(self.cdf, self.cdf_length, self.offset)

    @property
    def num_tables(self) -> int:
        return self._native.num_tables

    @property
    def fast_precision(self) -> int:
        """Bits of probability precision used by fast mode (14, or 16 for tables wider than 2^14 bins)."""
        return self._native.fast_precision

    @property
    def memory_bytes(self) -> int:
        return self._native.memory_bytes

    def __repr__(self) -> str:
        return f"CoderTables(T={self.num_tables}, Lmax={self.cdf.shape[1]}, fast_precision={self.fast_precision})"


def encode(tables: CoderTables, symbols, indexes, mode: str = "fast", substreams: int = 1, threads: int = 0) -> bytes:
    """Encode ``symbols`` (coded with table row ``indexes``, same shape) into one stream."""
    s, i = _int32(symbols, "symbols"), _int32(indexes, "indexes")
    if s.shape != i.shape:
        raise CoderArgumentError(f"symbols ({s.size}) and indexes ({i.size}) differ in size")
    return _lictrt.encode(tables._native, s, i, _mode(mode), int(substreams), int(threads))


def decode(tables: CoderTables, data, indexes, mode: str = "fast", threads: int = 0) -> np.ndarray:
    """Decode one int32 symbol per index (flattened); raises BitstreamError on corrupt or truncated data."""
    return _lictrt.decode(tables._native, _bytes(data), _int32(indexes, "indexes"), _mode(mode), int(threads))


class StreamEncoder:
    """Incremental encoder for autoregressive plans: ``encode`` successive chunks, ``flush`` one stream."""

    def __init__(self, tables: CoderTables, mode: str = "fast"):
        self._native = _lictrt.StreamEncoder(tables._native, _mode(mode))

    def encode(self, symbols, indexes) -> None:
        s, i = _int32(symbols, "symbols"), _int32(indexes, "indexes")
        if s.shape != i.shape:
            raise CoderArgumentError(f"symbols ({s.size}) and indexes ({i.size}) differ in size")
        self._native.encode(s, i)

    def flush(self) -> bytes:
        """Encode everything given so far into one stream and start over."""
        return self._native.flush()


class StreamDecoder:
    """Incremental decoder: ``decode(indexes)`` returns the next chunk; ``finish()`` runs the final checks."""

    def __init__(self, tables: CoderTables, data, mode: str = "fast"):
        self._native = _lictrt.StreamDecoder(tables._native, _bytes(data), _mode(mode))

    def decode(self, indexes) -> np.ndarray:
        return self._native.decode(_int32(indexes, "indexes"))

    def finish(self) -> None:
        """Raise BitstreamError unless the rANS states are back to their start and every byte was read."""
        self._native.finish()

    @property
    def decoded(self) -> int:
        return self._native.decoded


def crc32(buffer, crc: int = 0) -> int:
    """CRC-32 (IEEE, equal to ``zlib.crc32``) of a bytes-like object."""
    return _lictrt.crc32(_bytes(buffer), int(crc))


def symbols_crc(symbols) -> int:
    """CRC-32 of int32 symbols serialized little-endian (the container's per-stream symbol CRC)."""
    return _lictrt.symbols_crc(_int32(symbols, "symbols"))
