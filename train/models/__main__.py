"""``python -m train.models [--json]``: every architecture and preset with its parameter count."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import torch
import typer

from runtime.cli import new_app, progress, run
from train.models import ARCHS, count_parameters, create_model, resolve_config


def table(quiet: bool = False) -> list[dict]:
    """One row per (arch, preset); presets with the same config (CompressAI q1-q5 ...) are built once."""
    torch.set_num_threads(1)
    rows, built = [], {}
    jobs = [(a, p) for a, spec in ARCHS.items() for p in spec.presets]
    for arch, preset in progress(jobs, desc="building models", unit="model", quiet=quiet):
        key = (arch, json.dumps(resolve_config(arch, preset), sort_keys=True))
        if key not in built:
            model = create_model(arch, preset)
            built[key] = {
                "params": count_parameters(model),
                "coding_plan": model.coding_plan,
                "pad_multiple": int(model.pad_multiple),
                "config": model.lictrt_config,
            }
            del model
        info = built[key]
        rows.append(
            {
                "arch": arch,
                "preset": preset,
                "qualities": [q for q, p in ARCHS[arch].qualities.items() if p == preset],
                "params": info["params"],
                "params_m": round(info["params"] / 1e6, 3),
                "coding_plan": info["coding_plan"],
                "pad_multiple": info["pad_multiple"],
                "config": info["config"],
            }
        )
    return rows


app = new_app("python -m train.models")


@app.command(epilog="Examples:\n\n  python -m train.models\n\n  python -m train.models --json > models.json")
def models(
    json_out: Annotated[bool, typer.Option("--json", help="print a JSON list instead of a table")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="no progress bar")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="tracebacks and warnings")] = False,
) -> int:
    """Every architecture and preset with its parameter count, coding plan and pad multiple."""
    rows = table(quiet)
    if json_out:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'arch':22} {'preset':7} {'params (M)':>10}  {'plan':16} {'pad':>4}  qualities")
    for r in rows:
        q = ",".join(map(str, r["qualities"])) or "-"
        print(
            f"{r['arch']:22} {r['preset']:7} {r['params_m']:10.3f}  {r['coding_plan']:16} {r['pad_multiple']:4d}  {q}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(app, argv, prog="python -m train.models")


if __name__ == "__main__":
    sys.exit(main())
