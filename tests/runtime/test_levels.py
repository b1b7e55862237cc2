"""runtime/levels.py over the C++ ``lictrt::Levels`` (runtime._lictrt.Levels): the Python API of levels as dicts.

Specification:
* axes, presets and default come from the plan's levels, values int for integer values and str for the others;
* ``parse`` of text, None (the default preset) and dicts gives every axis in axis order; unnamed axes take the default
  preset's value; ``to_bytes`` / ``from_bytes`` round-trip every level;
* errors are the Python types with the C++ one-line messages: LevelError (a ValueError) for levels, BundleError for
  malformed plan levels, BitstreamError for a level block that does not fit.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from runtime.bundle import BundleError
from runtime.errors import BitstreamError
from runtime.levels import LevelError, Levels, levels_of

SPEC = {
    "axes": [{"name": "g_a", "values": [8, 16]}, {"name": "g_s", "values": [8, 16, 24]}]
    + [{"name": "context", "values": ["scanline", "4stage", "2stage"]}],
    "presets": {
        "fastest": {"context": "2stage", "g_s": 8, "g_a": 8},
        "full": {"g_a": 16, "g_s": 24, "context": "scanline"},
    },
    "default": "full",
}


@pytest.fixture
def levels():
    return Levels(SPEC)


def test_axes_presets_default(levels):
    assert levels.axes == [("g_a", [8, 16]), ("g_s", [8, 16, 24]), ("context", ["scanline", "4stage", "2stage"])]
    assert levels.names == ["g_a", "g_s", "context"]
    assert list(levels.presets) == ["fastest", "full"]
    assert list(levels.presets["fastest"].items()) == [("g_a", 8), ("g_s", 8), ("context", "2stage")]  # axis order
    assert levels.default == "full"
    assert levels_of({"kind": "single"}) is None and levels_of({"levels": SPEC}).presets == levels.presets


def test_parse_text_none_and_dicts(levels):
    full = {"g_a": 16, "g_s": 24, "context": "scanline"}
    assert levels.parse(None) == full and levels.parse(" full ") == full
    got = levels.parse("g_s=+1_6, context=4stage,")
    assert list(got.items()) == [("g_a", 16), ("g_s", 16), ("context", "4stage")]
    assert type(got["g_s"]) is int and type(got["context"]) is str
    assert levels.parse({"context": "2stage", "g_a": np.int64(8)}) == {"g_a": 8, "g_s": 24, "context": "2stage"}
    assert levels.resolve({}) == full


def test_bytes_round_trip_every_level(levels):
    blocks = set()
    for values in itertools.product(*(v for _, v in levels.axes)):
        level = dict(zip(levels.names, values))
        data = levels.to_bytes(level)
        assert levels.from_bytes(data) == level
        blocks.add(data)
    assert len(blocks) == 2 * 3 * 3
    assert levels.to_bytes({"g_s": 16}) == bytes([1, 1, 0])
    assert Levels.format(levels.parse("fastest")) == "g_a=8,g_s=8,context=2stage"


@pytest.mark.parametrize(
    "given, message",
    [
        ("g_a=9", "level: g_a=9 is not offered (choose 8, 16)"),
        ("g_a=eight", "bad level 'g_a=eight': g_a takes a number"),
        ("cheap", "bad level 'cheap': expected a preset (fastest, full) or axis=value pairs such as g_a=48,"),
        ("g_x=1,g_b=2", "level: unknown axis 'g_b' (axes: g_a, g_s, context)"),
        ({"g_a": "8"}, "level: g_a=8 is not offered (choose 8, 16)"),  # a str on a numeric axis
        ({"context": None}, "level: no value for axis 'context'"),
        ({"context": 2.5}, "level: context=2.5 is not offered (choose scanline, 4stage, 2stage)"),
        ({"g_a": object()}, "level: object is not a number or a string"),
    ],
)
def test_level_errors(levels, given, message):
    with pytest.raises(LevelError) as e:
        levels.parse(given)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)
    assert isinstance(e.value, ValueError)


def test_bundle_and_bitstream_errors(levels):
    with pytest.raises(BundleError, match=r"^plan levels need 1-16 axes of 1-256 values each$"):
        Levels({"axes": [], "presets": {}})
    with pytest.raises(BundleError, match=r"^preset 'p': g_a=9 is not offered \(choose 8\)$"):
        Levels({"axes": [{"name": "g_a", "values": [8]}], "presets": {"p": {"g_a": 9}}})
    with pytest.raises(BundleError, match=r"^default level 'q' is not a preset \(p\)$"):
        Levels({"axes": [{"name": "g_a", "values": [8]}], "presets": {"p": {"g_a": 8}}, "default": "q"})
    with pytest.raises(BitstreamError, match=r"^the header's level has 2 choices, the bundle has 3 axes"):
        levels.from_bytes(b"\0\0")
    with pytest.raises(BitstreamError, match=r"^the header's level index 3 for 'g_s' is outside the bundle's 3 values"):
        levels.from_bytes(b"\0\3\0")
