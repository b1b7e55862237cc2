"""Operating levels of scalable bundles (BaSIC): parsing ``--level`` text, header bytes and names.

A scalable bundle's plan describes its levels as data (docs/FORMATS.md, plan ``grouped_context``)::

    "levels": {"axes": [{"name": "g_a", "values": [48, 72, 96, 144, 192]}, ..., {"name": "context",
               "values": ["scanline", "8stage", "6stage", "4stage", "2stage"]}],
               "presets": {"full": {...}, "fastest": {...}}, "default": "full"}

A level picks one value per axis. It is written into the container header as one u8 index per axis (the level
block), so the decoder reads it from the file. Text form: a preset name (``fastest``, ``full``) or ``axis=value``
pairs separated by commas (``g_a=48,g_s=96,context=4stage``); axes not named take the default preset's value.

The semantics and messages are those of the C++ runtime's ``lictrt::Levels`` (runtime/cpp/include/lictrt/levels.hpp),
used here through ``runtime._lictrt.Levels``; a level is a dict of axis -> value in axis order (int for integer
values, str for the others).
"""

from __future__ import annotations

import json

from . import _lictrt
from .bundle import BundleError
from .errors import BitstreamError


class LevelError(ValueError):
    """A level the bundle does not offer, or text that is not a level (one-line message)."""


_lictrt._set_exception_types(bitstream=BitstreamError, bundle=BundleError, level=LevelError)


def _plain(value):
    if hasattr(value, "__index__"):  # numpy integers
        return value.__index__()
    raise TypeError(f"{type(value).__name__} is not a number or a string")


def _json(data, error, what: str) -> str:
    try:
        return json.dumps(data, default=_plain, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise error(f"{what}: {e}") from None


class Levels:
    """The level axes and presets of one bundle plan."""

    def __init__(self, spec: dict):
        self._native = _lictrt.Levels(_json(spec, BundleError, "plan levels are malformed"))
        self.axes: list[tuple[str, list]] = [(name, list(values)) for name, values in self._native.axes]
        self.presets: dict[str, dict] = {name: dict(level) for name, level in self._native.presets}
        self.default: str = self._native.default

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.axes]

    def resolve(self, level: dict) -> dict:
        """``level`` with every axis present (the default preset's value for those not named); LevelError when an
        axis is unknown or a value is not offered."""
        return dict(self._native.resolve(_json(level, LevelError, "level")))

    def parse(self, text: str | dict | None) -> dict:
        """A level from text (preset name or ``axis=value,...``), a dict, or None (the default preset)."""
        if isinstance(text, dict):
            return self.resolve(text)
        return dict(self._native.parse(text))

    def to_bytes(self, level: dict) -> bytes:
        """The header's level block: one index per axis (of ``level`` resolved as by :meth:`resolve`)."""
        return self._native.to_bytes(_json(level, LevelError, "level"))

    def from_bytes(self, data: bytes) -> dict:
        """The level of a header's level block; BitstreamError when it does not fit the axes."""
        return dict(self._native.from_bytes(bytes(data)))

    @staticmethod
    def format(level: dict) -> str:
        """``g_a=48,h_a=48,...,context=4stage``"""
        return _lictrt.Levels.format([(str(k), str(v)) for k, v in level.items()])


def levels_of(plan: dict) -> Levels | None:
    """The plan's :class:`Levels`, or None for a bundle with one operating point."""
    spec = plan.get("levels")
    return None if spec is None else Levels(spec)
