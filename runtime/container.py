"""The ``.lic`` bitstream container (docs/FORMATS.md), packed and parsed by the C++ library.

``pack(header, streams) -> bytes`` computes every CRC; ``unpack(data)`` verifies magic, major version, header CRC,
sizes and payload CRCs and raises :class:`BitstreamError` naming what failed. ``Stream.check_symbols`` verifies
the decoded symbols against the stored CRC.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from runtime import _lictrt
from runtime.coder import symbols_crc
from runtime.errors import BitstreamError, CoderArgumentError

MAJOR = int(_lictrt.CONTAINER_MAJOR)
MINOR = int(_lictrt.CONTAINER_MINOR)

# u8 codes stored in the header: the index of a name is its code (defined in runtime/cpp/include/lictrt/format.hpp).
CODER_MODES: tuple[str, ...] = tuple(_lictrt.CODER_MODES)
PARSE_PATHS: tuple[str, ...] = tuple(_lictrt.PARSE_PATHS)
PLAN_KINDS: tuple[str, ...] = tuple(_lictrt.PLAN_KINDS)
#: u16 header flag: spatial_context coded in raster order (benchmark mode), else wavefront
FLAG_RASTER_CONTEXT = int(_lictrt.FLAG_RASTER_CONTEXT)
#: u16 header flag: the header carries a level block (set by pack exactly when ``Header.level`` is not empty)
FLAG_LEVEL = int(_lictrt.FLAG_LEVEL)
MAX_LEVEL = int(_lictrt.MAX_LEVEL_BYTES)
KNOWN_FLAGS = int(_lictrt.KNOWN_FLAGS)
#: refuse images and headers beyond this many pixels (a crafted header must not exhaust memory)
MAX_PIXELS = int(_lictrt.MAX_PIXELS)

__all__ = [
    "MAJOR",
    "MINOR",
    "CODER_MODES",
    "PARSE_PATHS",
    "PLAN_KINDS",
    "FLAG_RASTER_CONTEXT",
    "FLAG_LEVEL",
    "MAX_LEVEL",
    "KNOWN_FLAGS",
    "MAX_PIXELS",
    "Header",
    "Stream",
    "pack",
    "unpack",
    "read",
]


def _code(table: tuple[str, ...], value: str | int, what: str) -> int:
    if isinstance(value, str):
        if value not in table:
            raise CoderArgumentError(f"unknown {what} {value!r} (known: {', '.join(table)})")
        return table.index(value)
    return int(value)


@dataclass
class Header:
    """Container header. ``coder_mode``, ``parse_path`` and ``plan_kind`` are u8 codes (see the tables above);
    the ``*_name`` properties translate them."""

    model_hash: bytes = bytes(32)
    height: int = 0
    width: int = 0
    pad_multiple: int = 64
    coder_mode: int = 1
    parse_path: int = 0
    plan_kind: int = 1
    width_index: int = 0
    flags: int = 0
    major: int = MAJOR
    minor: int = MINOR
    level: bytes = b""  # scalable codecs: one u8 choice per level axis of the bundle (empty: none)

    @classmethod
    def create(
        cls,
        *,
        model_hash: bytes | str,
        height: int,
        width: int,
        plan: str,
        coder_mode: str = "fast",
        parse_path: str = "onnxruntime-cpu-fp32",
        pad_multiple: int = 64,
        width_index: int = 0,
        flags: int = 0,
    ) -> "Header":
        """Build a header from names; ``model_hash`` may be 32 raw bytes or 64 hex characters."""
        if isinstance(model_hash, str):
            model_hash = bytes.fromhex(model_hash)
        return cls(
            model_hash=bytes(model_hash),
            height=height,
            width=width,
            pad_multiple=pad_multiple,
            coder_mode=_code(CODER_MODES, coder_mode, "coder mode"),
            parse_path=_code(PARSE_PATHS, parse_path, "parse path"),
            plan_kind=_code(PLAN_KINDS, plan, "plan kind"),
            width_index=width_index,
            flags=flags,
        )

    @property
    def coder_mode_name(self) -> str:
        return CODER_MODES[self.coder_mode] if self.coder_mode < len(CODER_MODES) else f"unknown({self.coder_mode})"

    @property
    def parse_path_name(self) -> str:
        return PARSE_PATHS[self.parse_path] if self.parse_path < len(PARSE_PATHS) else f"unknown({self.parse_path})"

    @property
    def plan_kind_name(self) -> str:
        return PLAN_KINDS[self.plan_kind] if self.plan_kind < len(PLAN_KINDS) else f"unknown({self.plan_kind})"


@dataclass
class Stream:
    """One entropy-coded stream, as the plans write and read it and the container frames it: ``kind`` (<= 16 ASCII
    chars, e.g. ``"z"``, ``"y"``, ``"y3"``), the number of symbols it holds, the CRC-32 of those symbols (int32 LE)
    and the coder payload."""

    kind: str
    n_symbols: int
    payload: bytes = field(repr=False)
    symbols_crc: int = 0

    @classmethod
    def from_symbols(cls, kind: str, symbols: np.ndarray, payload: bytes) -> "Stream":
        symbols = np.asarray(symbols)
        return cls(kind=kind, n_symbols=int(symbols.size), payload=payload, symbols_crc=symbols_crc(symbols))

    def check_symbols(self, symbols: np.ndarray) -> None:
        """Raise BitstreamError (naming the stream) if decoded symbols do not match the count and CRC."""
        symbols = np.asarray(symbols)
        if symbols.size != self.n_symbols:
            raise BitstreamError(f"stream '{self.kind}': decoded {symbols.size} symbols, expected {self.n_symbols}")
        if symbols_crc(symbols) != self.symbols_crc:
            raise BitstreamError(
                f"stream '{self.kind}': decoded symbols CRC mismatch (decoder desynchronized: "
                "different model, tables or parse path than the encoder)"
            )


def pack(header: Header, streams: list[Stream]) -> bytes:
    """Serialize a header and its streams (payload CRCs and the header CRC are computed here)."""
    if len(header.model_hash) != 32:
        raise CoderArgumentError("model_hash must be 32 bytes (sha256)")
    for name in ("height", "width"):
        if not 0 <= getattr(header, name) < 2**32:
            raise CoderArgumentError(f"{name} must fit in u32")
    for name, bits in (
        ("pad_multiple", 16),
        ("flags", 16),
        ("coder_mode", 8),
        ("parse_path", 8),
        ("plan_kind", 8),
        ("width_index", 8),
        ("major", 8),
        ("minor", 8),
    ):
        if not 0 <= getattr(header, name) < 2**bits:
            raise CoderArgumentError(f"{name} must fit in u{bits}")
    if len(header.level) > MAX_LEVEL:
        raise CoderArgumentError(f"level must have at most {MAX_LEVEL} choices, got {len(header.level)}")
    for s in streams:
        if not 0 <= s.n_symbols < 2**32 or not 0 <= s.symbols_crc < 2**32:
            raise CoderArgumentError(f"stream '{s.kind}': symbol count and CRC must fit in u32")
    h = (
        header.major,
        header.minor,
        header.flags,
        bytes(header.model_hash),
        header.height,
        header.width,
        header.pad_multiple,
        header.coder_mode,
        header.parse_path,
        header.plan_kind,
        header.width_index,
        bytes(header.level),
    )
    return _lictrt.container_pack(h, [(s.kind, s.n_symbols, s.symbols_crc, bytes(s.payload)) for s in streams])


def unpack(data) -> tuple[Header, list[Stream]]:
    """Parse and verify a container; raises BitstreamError on any inconsistency."""
    buf = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    (major, minor, flags, model_hash, height, width, pad, mode, path, plan, widx, level), raw = (
        _lictrt.container_unpack(buf)
    )
    header = Header(
        model_hash=model_hash,
        height=height,
        width=width,
        pad_multiple=pad,
        coder_mode=mode,
        parse_path=path,
        plan_kind=plan,
        width_index=widx,
        flags=flags,
        major=major,
        minor=minor,
        level=bytes(level),
    )
    return header, [Stream(kind=k, n_symbols=n, payload=p, symbols_crc=c) for k, n, c, p in raw]


def read(path: str | os.PathLike) -> tuple[Header, list[Stream]]:
    """Read and verify a ``.lic`` file."""
    return unpack(Path(path).read_bytes())
