"""The GPU suite's result document: every figure carries its unit, and is either a measured finite number or
explicitly "not measured" with a reason.  Nothing is ever filled in by default.

A *figure* is a dict ``{"value": <finite number>, "unit": "ms", ...}`` or
``{"value": None, "unit": "ms", "status": "not measured", "reason": "..."}``.  Any other dict holding a
``"unit"`` key is malformed; :func:`validate` finds them all.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Iterator

from runtime.files import write_atomic

SCHEMA = "lictrt-gpu-suite"
SCHEMA_VERSION = 1
NOT_MEASURED = "not measured"


class SchemaError(ValueError):
    """A result document breaks the figure rules (a value without a unit, a NaN, a missing reason...)."""


def figure(value: float | int, unit: str, **meta: Any) -> dict:
    """A measured figure; refuses non-finite values (a NaN is never reported as a result)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SchemaError(f"figure value must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise SchemaError(f"figure value must be finite, got {value!r} ({unit})")
    if not unit:
        raise SchemaError("figure needs a unit")
    return {"value": value, "unit": unit, **meta}


def not_measured(unit: str, reason: str, **meta: Any) -> dict:
    """A figure that was not measured, and why."""
    if not unit or not reason:
        raise SchemaError("a not-measured figure needs a unit and a reason")
    return {"value": None, "unit": unit, "status": NOT_MEASURED, "reason": reason, **meta}


def error_text(exc: BaseException) -> str:
    """An exception as the one line a result records: its type and the first line of its message."""
    text = str(exc)
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".strip()


def is_measured(fig: dict) -> bool:
    return isinstance(fig, dict) and fig.get("value") is not None and fig.get("status") != NOT_MEASURED


def derive(fn, unit: str, *inputs: dict, **meta: Any) -> dict:
    """A figure computed from other figures' values; "not measured" (naming the first missing input's reason)
    when any input was not measured."""
    for f in inputs:
        if not is_measured(f):
            return not_measured(unit, f"derived from a figure that was not measured ({f.get('reason', '?')})", **meta)
    return figure(fn(*(f["value"] for f in inputs)), unit, **meta)


def iter_figures(doc: Any, path: str = "") -> Iterator[tuple[str, dict]]:
    """(json-path, figure) for every dict in ``doc`` that has a ``"unit"`` key."""
    if isinstance(doc, dict):
        if "unit" in doc:
            yield path or "/", doc
        for k, v in doc.items():
            yield from iter_figures(v, f"{path}/{k}")
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from iter_figures(v, f"{path}/{i}")


def validate(doc: dict) -> list[str]:
    """Problems in ``doc`` (empty list = valid): header fields, and every figure measured-or-explained."""
    problems = []
    if doc.get("schema") != SCHEMA or doc.get("schema_version") != SCHEMA_VERSION:
        problems.append(f"/: schema must be {SCHEMA!r} version {SCHEMA_VERSION}")
    for key in ("generated_utc", "dry_run", "environment", "sections"):
        if key not in doc:
            problems.append(f"/: missing {key!r}")
    for path, fig in iter_figures(doc):
        value = fig.get("value")
        if not isinstance(fig.get("unit"), str) or not fig["unit"]:
            problems.append(f"{path}: empty unit")
        if value is None:
            if fig.get("status") != NOT_MEASURED or not fig.get("reason"):
                problems.append(f"{path}: value is null but not marked '{NOT_MEASURED}' with a reason")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            problems.append(f"{path}: value {value!r} is not a finite number")
        elif fig.get("status") == NOT_MEASURED:
            problems.append(f"{path}: marked '{NOT_MEASURED}' but has a value")
    for name, sec in (doc.get("sections") or {}).items():
        if not isinstance(sec, dict) or sec.get("status") not in ("ok", "failed", "skipped", "partial"):
            problems.append(f"/sections/{name}: status must be ok, partial, failed or skipped")
    if doc.get("dry_run"):
        measured = [p for p, f in iter_figures(doc) if is_measured(f) and not f.get("host_only")]
        if measured:
            problems.append(f"dry run reports measured GPU figures: {', '.join(measured[:5])}")
    return problems


def new_document(argv: list[str], dry_run: bool, generated_utc: str) -> dict:
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "generated_utc": generated_utc,
        "dry_run": bool(dry_run),
        "command": list(argv),
        "environment": {},
        "sections": {},
    }


def slug(text: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3' (file-name safe: letters, digits, '-')."""
    s = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    return s or "unknown"


def result_name(device: str, date: str) -> str:
    """File stem of a result: ``gpu-<device>-<YYYY-MM-DD>``."""
    return f"gpu-{slug(device)}-{date}"


def write_json(path: Path | str, doc: dict) -> Path:
    """Atomic write (temporary file, then rename); the document must validate."""
    problems = validate(doc)
    if problems:
        raise SchemaError("invalid result document: " + "; ".join(problems[:5]))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, json.dumps(doc, indent=1, sort_keys=False) + "\n")


HEADLINES = [  # figures shown in the short report (the JSON holds every figure)
    r"^/environment/(sm_count|l2_cache|memory)$",
    r"^/sections/build/build_time$",
    r"^/sections/pytest/(passed|failed|errors)$",
    r"^/sections/accuracy/selective_scan_2d/[^/]+/rel_err_fp(32|16)$",
    r"^/sections/accuracy/generalized_divisive_norm/[^/]*largest-128[^/]*/rel_err_fp(32|16)$",
    r"^/sections/speed/hbm_copy/bandwidth$",
    r"^/sections/speed/selective_scan_2d/[^/]+/(kernel_median|kernel_roofline|torch_chunked_median|"
    r"torch_fourcopy_median|speedup_vs_chunked|speedup_vs_fourcopy)$",
    r"^/sections/speed/generalized_divisive_norm/gdn-N192-256x384-fp(32|16)/(kernel_median|speedup_vs_torch|"
    r"kernel_roofline)$",
    r"^/sections/codec/models/[^/]+/(encode_total|decode_total|decode_synthesis|decode_context_loop|decode_entropy)$",
    r"^/sections/wavefront/(wavefront_decode|raster_decode|speedup)$",
    r"^/sections/rtx/steps_ok$",
    r"^/sections/rtx/graphs/.+/(device_built|cpu_built)_median$",
]


def _fmt(fig: dict) -> str:
    if not is_measured(fig):
        return "not measured"
    v = fig["value"]
    text = f"{v:.4g}" if isinstance(v, float) else str(v)
    return f"{text} {fig['unit']}"


def markdown(doc: dict, full: bool = False) -> str:
    """A short markdown report: section statuses, then the headline figures (``full``: every figure), with
    the reason next to each one that was not measured."""
    env = doc.get("environment", {})
    lines = [
        f"# lictrt GPU suite — {env.get('device_name') or 'no GPU'}",
        "",
        f"generated {doc.get('generated_utc')}" + (" — **dry run: nothing measured**" if doc.get("dry_run") else ""),
        "",
        f"torch {env.get('torch')} (CUDA {env.get('torch_cuda')}), driver {env.get('driver')}, "
        f"nvcc {env.get('nvcc')}, compute capability {env.get('compute_capability')}",
        "",
        "| section | status | seconds |",
        "|---|---|---|",
    ]
    for name, sec in doc.get("sections", {}).items():
        reason = f": {sec['reason']}" if sec.get("reason") else ""
        lines.append(f"| {name} | {sec.get('status')}{reason[:160]} | {sec.get('seconds', '')} |")
    lines += ["", "| figure | value | note |", "|---|---|---|"]
    patterns = [re.compile(p) for p in HEADLINES]
    for path, fig in iter_figures(doc):
        if full or any(p.search(path) for p in patterns):
            note = fig.get("reason", "") if not is_measured(fig) else fig.get("note", "")
            lines.append(f"| `{path}` | {_fmt(fig)} | {str(note).replace('|', '/')[: (200 if full else 70)]} |")
    return "\n".join(lines) + "\n"
