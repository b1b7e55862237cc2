"""Time budget of one suite run, split into per-section budgets, and the context a section measures through.

The device tool kills a command after 10 minutes, so the suite plans inside a total budget (default 540 s):
each section gets ``min(its own budget, what is left)``; a section whose minimum need no longer fits is
skipped with the reason recorded, and later sections still run if they fit.  ``SectionContext.measure``
is the only way a section produces a figure: in a dry run it records "not measured" without calling the
measurement, and an exception inside a measurement becomes "not measured" with the error text.
"""

from __future__ import annotations

import time
import traceback
from typing import Any, Callable

from .schema import error_text, figure, not_measured


class Budget:
    """Total wall-clock budget, counted from construction (``time.monotonic``)."""

    def __init__(self, total_s: float, clock: Callable[[], float] = time.monotonic):
        if total_s <= 0:
            raise ValueError(f"budget must be positive, got {total_s}")
        self.clock = clock
        self.start = clock()
        self.end = self.start + float(total_s)

    def left(self) -> float:
        return self.end - self.clock()

    def section_deadline(self, budget_s: float) -> float:
        return min(self.clock() + budget_s, self.end)

    def fits(self, need_s: float) -> bool:
        return self.left() >= need_s


class SectionContext:
    """What a section sees: dry-run flag, its deadline, a logger, and ``measure``."""

    def __init__(
        self,
        name: str,
        deadline: float,
        dry_run: bool,
        log: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
        verbose: bool = False,
        options: dict | None = None,
    ):
        self.name, self.deadline, self.dry_run, self.log = name, deadline, dry_run, log
        self.clock, self.verbose = clock, verbose
        self.options = dict(options or {})
        self.errors: list[str] = []

    def left(self) -> float:
        return self.deadline - self.clock()

    def over(self, reserve_s: float = 0.0) -> bool:
        return self.left() <= reserve_s

    def measure(self, unit: str, fn: Callable[[], float], *, need_s: float = 0.0, **meta: Any) -> dict:
        """Run ``fn()`` (returns the value) and wrap it as a figure; "not measured" on dry run, on too little
        time left, or on an exception (its one-line text recorded)."""
        if self.dry_run:
            return not_measured(unit, "dry run: no GPU measurement was made", **meta)
        if self.left() < need_s:
            return not_measured(unit, f"skipped: section '{self.name}' over its time budget", **meta)
        try:
            value = fn()
        except Exception as exc:  # recorded, never hidden: the reason says what failed
            return not_measured(unit, f"error: {self._record(exc)}", **meta)
        if isinstance(value, tuple):  # (value, extra metadata such as run counts)
            value, extra = value
            meta = {**meta, **extra}
        return figure(value, unit, **meta)

    def measure_many(
        self, units: dict[str, str], fn: Callable[[], dict], *, need_s: float = 0.0, **meta: Any
    ) -> dict[str, dict]:
        """Like :meth:`measure` for a computation that yields several values: ``fn()`` returns
        ``{name: value}`` for the names of ``units``; a name it leaves out is "not measured"."""
        if self.dry_run:
            return {k: not_measured(u, "dry run: no GPU measurement was made", **meta) for k, u in units.items()}
        if self.left() < need_s:
            return {
                k: not_measured(u, f"skipped: section '{self.name}' over its time budget", **meta)
                for k, u in units.items()
            }
        try:
            values = fn()
        except Exception as exc:
            text = self._record(exc)
            return {k: not_measured(u, f"error: {text}", **meta) for k, u in units.items()}
        out = {}
        for k, u in units.items():
            v = values.get(k)
            out[k] = figure(v, u, **meta) if v is not None else not_measured(u, "not produced by the run", **meta)
        return out

    def _record(self, exc: BaseException) -> str:
        text = error_text(exc)
        self.errors.append(text)
        self.log(f"[{self.name}] {text}")
        if self.verbose:
            self.log(traceback.format_exc())
        _free_cuda_cache()
        return text


def _free_cuda_cache() -> None:
    """After a failed measurement (often out-of-memory) give cached blocks back so later ones can run."""
    import sys

    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:
        pass
