"""Operating levels of scalable bundles (BaSIC): parsing ``--level`` text, header bytes and names.

A scalable bundle's plan describes its levels as data (docs/FORMATS.md, plan ``grouped_context``)::

    "levels": {"axes": [{"name": "g_a", "values": [48, 72, 96, 144, 192]}, ..., {"name": "context",
               "values": ["scanline", "8stage", "6stage", "4stage", "2stage"]}],
               "presets": {"full": {...}, "fastest": {...}}, "default": "full"}

A level picks one value per axis. It is written into the container header as one u8 index per axis (the
level block), so the decoder reads it from the file. Text form: a preset name (``fastest``, ``full``) or
``axis=value`` pairs separated by commas (``g_a=48,g_s=96,context=4stage``); axes not named take the default
preset's value.
"""

from __future__ import annotations

from .bundle import BundleError


class LevelError(ValueError):
    """A level the bundle does not offer, or text that is not a level (one-line message)."""


class Levels:
    """The level axes and presets of one bundle plan."""

    def __init__(self, spec: dict):
        try:
            self.axes = [(str(a["name"]), list(a["values"])) for a in spec["axes"]]
            self.presets = {str(k): dict(v) for k, v in spec.get("presets", {}).items()}
            self.default = str(spec.get("default", next(iter(self.presets), "")))
        except (KeyError, TypeError) as e:
            raise BundleError(f"plan levels are malformed: {e}") from None
        if not self.axes or len(self.axes) > 16 or any(not v or len(v) > 256 for _, v in self.axes):
            raise BundleError("plan levels need 1-16 axes of 1-256 values each")
        for name, level in self.presets.items():
            self.resolve(level, what=f"preset '{name}'", error=BundleError)
        if self.default not in self.presets:
            raise BundleError(f"default level '{self.default}' is not a preset ({', '.join(self.presets)})")

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.axes]

    def resolve(self, level: dict, what: str = "level", error=LevelError) -> dict:
        """``level`` with every axis present and every value offered; raises ``error`` otherwise."""
        unknown = set(level) - set(self.names)
        if unknown:
            raise error(f"{what}: unknown axis {sorted(unknown)[0]!r} (axes: {', '.join(self.names)})")
        base = self.presets.get(self.default, {}) if what == "level" else {}
        out = {}
        for name, values in self.axes:
            v = level.get(name, base.get(name))
            if v is None:
                raise error(f"{what}: no value for axis '{name}'")
            if v not in values:
                raise error(f"{what}: {name}={v} is not offered (choose {', '.join(map(str, values))})")
            out[name] = v
        return out

    def parse(self, text: str | dict | None) -> dict:
        """A level from text (preset name or ``axis=value,...``), a dict, or None (the default preset)."""
        if text is None:
            return dict(self.presets[self.default])
        if isinstance(text, dict):
            return self.resolve(text)
        text = text.strip()
        if text in self.presets:
            return dict(self.presets[text])
        level = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, eq, value = part.partition("=")
            if not eq:
                raise LevelError(
                    f"bad level {text!r}: expected a preset ({', '.join(self.presets)}) or axis=value "
                    "pairs such as g_a=48,context=4stage"
                )
            values = dict(self.axes).get(name.strip())
            v = value.strip()
            if values is not None and all(isinstance(x, int) for x in values):
                try:
                    v = int(v)
                except ValueError:
                    raise LevelError(f"bad level {text!r}: {name.strip()} takes a number") from None
            level[name.strip()] = v
        return self.resolve(level)

    def to_bytes(self, level: dict) -> bytes:
        level = self.resolve(level)
        return bytes(values.index(level[name]) for name, values in self.axes)

    def from_bytes(self, data: bytes) -> dict:
        from .errors import BitstreamError

        if len(data) != len(self.axes):
            raise BitstreamError(
                f"the header's level has {len(data)} choices, the bundle has {len(self.axes)} axes"
                f" ({', '.join(self.names)})"
            )
        out = {}
        for (name, values), i in zip(self.axes, data):
            if i >= len(values):
                raise BitstreamError(
                    f"the header's level index {i} for '{name}' is outside the bundle's {len(values)} values"
                )
            out[name] = values[i]
        return out

    @staticmethod
    def format(level: dict) -> str:
        return ",".join(f"{k}={v}" for k, v in level.items())


def levels_of(plan: dict) -> Levels | None:
    """The plan's :class:`Levels`, or None for a bundle with one operating point."""
    spec = plan.get("levels")
    return None if spec is None else Levels(spec)
