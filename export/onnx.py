"""Checkpoint -> codec bundle: ``python -m export.onnx CKPT [-a ARCH] [-o OUT] [--precision fp32|fp16]
[--size HxW | --dynamic] [--width W] [--no-check] [--graph-passes phases|fused|none] [-q] [--verbose]``.

Writes the bundle of docs/FORMATS.md: one ONNX per stage of the model's coding plan (custom lictrt nodes +
their function bodies), ``tables.npz``, ``manifest.json``; then checks every graph against PyTorch in ONNX
Runtime (see export/parity.py) unless ``--no-check``.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import time
import warnings
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import onnx  # the ONNX package (absolute import; this module is export.onnx)
import torch
import typer

from export import bundle as B
from export import parity as P
from export.passes import optimize_reconstruction
from export.registry import DOMAIN, add_function_bodies, lictrt_ops, model_opset, used_ops
from export.stages import ExportError, Stage, build_stages, to_fp16
from runtime.bundle import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    TABLES,
    file_digest,
    read_manifest,
    referenced_files,
    safe_member,
)
from runtime.cli import UsageError, new_app, run
from runtime.files import building_dir, write_atomic
from train.coding import CodingError, coder_tables, model_hash
from train.graphs import plan_manifest

OPSET = 20  # model opset; the function bodies use the same


def _quiet(verbose: bool):
    if verbose:
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    return stack


def export_stage(
    stage: Stage,
    model: torch.nn.Module,
    path: Path,
    size: tuple[int, int],
    dynamic: bool,
    verbose: bool = False,
    graph_passes: str | None = "phases",
) -> onnx.ModelProto:
    """Export one stage to ``path``: dynamo exporter under ``lictrt_ops``, function bodies appended, checked.

    ``graph_passes`` (a form of export/passes.py, or None): rewrite reconstruction-only graphs for speed.
    """
    torch.manual_seed(0)
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        args = tuple(stage.example(x))
    dyn = None
    # per-position axes ("P": positions per call, e.g. context_step's windows) stay dynamic at a fixed size too
    per_call = {
        n: tuple(a for a in stage.dynamic.get(n, ()) if _is_per_call(stage.shapes.get(n), a)) for n in stage.inputs
    }
    if dynamic or any(per_call.values()):
        D = torch.export.Dim.DYNAMIC
        axes = stage.dynamic if dynamic else per_call
        dyn = [{ax: D for ax in axes.get(name, ())} for name in stage.inputs]  # positional
        n_fixed = getattr(stage.module, "n_fixed", None)  # forward(a, b, *rest): rest is one tuple to export
        if n_fixed is None or len(dyn) == n_fixed:
            dyn = tuple(dyn)
        else:
            dyn = tuple(dyn[:n_fixed]) + (tuple(dyn[n_fixed:]),)
    module = stage.module.eval()
    try:
        with _quiet(verbose), lictrt_ops(model, module), torch.no_grad():
            prog = torch.onnx.export(
                module,
                args,
                dynamo=True,
                input_names=stage.inputs,
                output_names=stage.outputs,
                dynamic_shapes=dyn,
                opset_version=OPSET,
                verbose=False,
                external_data=False,
            )
    except Exception as e:  # torch.export errors are long; keep the first line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        hint = " (the graph may need a fixed size: use --size HxW)" if dynamic else ""
        raise ExportError(f"exporting {stage.name} failed: {first[:200]}{hint}") from e
    mp = prog.model_proto
    if model_opset(mp) != OPSET:
        raise ExportError(f"{stage.name}: exporter produced opset {model_opset(mp)}, expected {OPSET}")
    add_function_bodies(mp)
    for k, v in {
        "lictrt.graph": stage.name,
        "lictrt.parse_critical": str(stage.parse_critical).lower(),
        "lictrt.precision": stage.precision,
    }.items():
        mp.metadata_props.add(key=k, value=v)
    if graph_passes and not stage.parse_critical:
        optimize_reconstruction(mp, graph_passes)
    onnx.checker.check_model(mp, full_check=True)
    write_atomic(path, mp.SerializeToString())
    return mp


def _is_per_call(shape: list | None, axis: int) -> bool:
    return bool(shape) and axis < len(shape) and shape[axis] == "P"


def _io(stage: Stage, names: list[str], fixed: tuple[int, int] | None) -> list[dict]:
    out = []
    for n in names:
        shape = list(stage.shapes.get(n, []))
        if fixed is not None:
            H, W = fixed
            shape = [_resolve(d, H, W) for d in shape]
        out.append({"name": n, "shape": shape, "dtype": "float32"})
    return out


def _resolve(d, H, W):
    if not isinstance(d, str) or d == "P":
        return d
    base, _, div = d.partition("/")
    v = H if base == "H" else W
    return v // int(div) if div else v


def parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ExportError(f"bad --size {text!r}: expected HxW, e.g. 512x768") from None
    return h, w


def export_bundle(
    ckpt: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    arch: str | None = None,
    precision: str = "fp32",
    size: tuple[int, int] | None = None,
    width: int | None = None,
    check: bool = True,
    verbose: bool = False,
    parity_sizes: list[tuple[int, int]] | None = None,
    progress: bool = True,
    graph_passes: str | None = "phases",
) -> dict:
    """Export ``ckpt`` to a codec bundle; returns {"bundle", "manifest", "graphs": [...], "parity": [...]}.

    The bundle is built in a directory beside ``out`` and swapped in whole (runtime.files.building_dir), so an
    interrupted export leaves the previous bundle as it was; the manifest's ``files`` records the sha256 of
    every file, which the runtime checks when it opens the bundle."""
    from train.checkpoint import load_checkpoint

    ckpt = Path(ckpt)
    if not ckpt.is_file():
        raise ExportError(f"checkpoint not found: {ckpt}")
    if precision not in ("fp32", "fp16"):
        raise ExportError(f"unknown precision {precision!r} (fp32 or fp16)")
    model, meta = load_checkpoint(ckpt, arch)
    model.eval()
    kind = model.coding_plan if isinstance(model.coding_plan, str) else model.coding_plan["kind"]
    pad = int(model.pad_multiple)
    if size is not None and (size[0] % pad or size[1] % pad or min(size) <= 0):
        raise ExportError(f"--size {size[0]}x{size[1]} must be positive multiples of {pad} for {meta['arch']}")
    stages = build_stages(model, kind, width=width)
    if precision == "fp16":
        stages = [to_fp16(s) for s in stages]
    dynamic = size is None
    export_size = size or (2 * pad, 3 * pad)

    final = Path(out) if out else ckpt.with_suffix(".bundle")
    _check_destination(final, ckpt)
    try:
        tables = coder_tables(model, kind, [width] if width is not None else None)
    except CodingError as e:
        raise ExportError(str(e)) from None
    from tqdm import tqdm

    with building_dir(final) as out:  # built beside, swapped in whole at the end: never old and new files mixed
        B.write_tables(out / TABLES, tables)

        paths, graphs, rows = {}, {}, []
        bar = tqdm(stages, desc="export", unit="graph", disable=not progress, file=sys.stderr)
        for st in bar:
            bar.set_postfix_str(st.name)
            path = out / f"{st.name}.onnx"
            t0 = time.time()
            mp = export_stage(st, model, path, export_size, dynamic, verbose, graph_passes)
            paths[st.name] = path
            graphs[st.name] = {
                "file": path.name,
                "role": st.role,
                "parse_critical": st.parse_critical,
                "precision": st.precision,
                "dynamic": dynamic,
                "inputs": _io(st, st.inputs, size),
                "outputs": _io(st, st.outputs, size),
            }
            rows.append(
                {
                    "graph": st.name,
                    "precision": st.precision,
                    "nodes": len(mp.graph.node),
                    "custom": sum(n.domain == DOMAIN for n in mp.graph.node),
                    "ops": used_ops(mp),
                    "bytes": path.stat().st_size,
                    "seconds": time.time() - t0,
                }
            )

        results: list[P.ParityResult] = []
        refs: list[P.Reference] = []
        pb = None
        if check:  # PyTorch's side first, so that the model is released before ONNX Runtime runs the graphs
            sizes = parity_sizes or ([(512, 768), (2 * pad, 3 * pad)] if dynamic else [size, size])
            inputs = P.parity_inputs(sizes, P.find_image())
            n = 2 * len(stages) * len(sizes)
            pb = tqdm(total=n, desc="parity", unit="step", disable=not progress, file=sys.stderr)
            refs = P.references(stages, inputs, progress=pb)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model": {"arch": meta["arch"], "config": meta.get("config", {}), "hash": model_hash(model, tables)},
            "pad_multiple": pad,
            "precision": precision,
            "size": None if dynamic else list(size),
            "plan": plan_manifest(model, kind, stages),
            "graphs": graphs,
            "tables": TABLES,
            "engines": {},
        }
        if check:
            # the stages' closures (and the loop's last stage) hold the model: release it for ONNX Runtime's runs
            del model, stages, st, bar, mp
            with pb:
                results = P.check_references(refs, paths, progress=pb)
        manifest["parity"] = {
            "checked": bool(check),
            "fp32_rel_tol": P.FP32_REL_TOL,
            "max_rel": {g: max((r.rel for r in results if r.graph == g), default=None) for g in graphs},
        }
        files = {name: file_digest(out / name) for name in referenced_files(manifest)}
        if (final / MANIFEST).is_file():  # keep engines built earlier for the same weights
            with contextlib.suppress(Exception):
                prev = read_manifest(final)
                if prev.get("model", {}).get("hash") == manifest["model"]["hash"]:
                    for key, e in (prev.get("engines") or {}).items():
                        src = safe_member(final, e["file"])
                        digest = file_digest(src) if src.is_file() else None
                        if digest is not None and digest == (prev.get("files") or {}).get(e["file"], digest):
                            (out / e["file"]).parent.mkdir(parents=True, exist_ok=True)
                            shutil.copy2(src, out / e["file"])
                            manifest["engines"][key] = e
                            files[e["file"]] = digest
        manifest["files"] = files
        B.write_manifest(out, manifest)
    res = {"bundle": final, "manifest": manifest, "graphs": rows, "parity": results}
    if check:
        P.assert_ok(res["parity"])
    return res


def _check_destination(final: Path, ckpt: Path) -> None:
    """Refuse to replace a directory that is not a bundle, or one that holds the checkpoint."""
    if final.exists() and not final.is_dir():
        raise ExportError(f"-o {final} is a file, not a bundle directory")
    if final.is_dir() and any(final.iterdir()) and not (final / MANIFEST).is_file():
        raise ExportError(f"-o {final} is a non-empty directory that is not a codec bundle: refusing to replace it")
    if ckpt.resolve().is_relative_to(final.resolve()):
        raise ExportError(f"the checkpoint {ckpt} lies inside the bundle directory {final}: choose another -o")


def summary(res: dict) -> str:
    worst = {}
    for r in res["parity"]:
        worst[r.graph] = max(worst.get(r.graph, 0.0), r.rel)
    lines = [
        f"bundle {res['bundle']}  ({res['manifest']['model']['arch']}, plan {res['manifest']['plan']['kind']},"
        f" hash {res['manifest']['model']['hash'][:12]})",
        f"{'graph':<22}{'prec':<6}{'nodes':>7}{'custom':>8}  {'size':>10}  {'max rel err':>12}  custom ops",
    ]
    for g in res["graphs"]:
        err = f"{worst[g['graph']]:.2e}" if g["graph"] in worst else "-"
        lines.append(
            f"{g['graph']:<22}{g['precision']:<6}{g['nodes']:>7}{g['custom']:>8}  "
            f"{g['bytes'] / 1024:>8.1f}KB  {err:>12}  {', '.join(g['ops']) or '-'}"
        )
    return "\n".join(lines)


app = new_app("python -m export.onnx")


class GraphPasses(str, Enum):
    phases = "phases"
    fused = "fused"
    none = "none"


class Precision(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"


@app.command(
    epilog="Examples:\n\n  python -m export.onnx runs/tiny.pth -o runs/tiny.bundle\n\n"
    "  python -m export.onnx ssmic.pth -a ssmic --size 512x768 --precision fp16\n\n"
    "  python -m export.onnx slimcae.pth --width 192 --no-check -q"
)
def export(
    checkpoint: Annotated[
        Path, typer.Argument(metavar="CHECKPOINT", help="lictrt checkpoint or bare state_dict (.pth)")
    ],
    arch: Annotated[
        Optional[str], typer.Option("-a", "--arch", help="architecture (needed for a bare state_dict)")
    ] = None,
    out: Annotated[
        Optional[Path],
        typer.Option("-o", "--out", help="bundle directory (default: <checkpoint stem>.bundle beside it)"),
    ] = None,
    precision: Annotated[Precision, typer.Option(help="graph precision")] = Precision.fp32,
    size: Annotated[
        Optional[str], typer.Option(help="fixed input size HxW (multiples of the model's pad_multiple)")
    ] = None,
    dynamic: Annotated[bool, typer.Option("--dynamic", help="dynamic H x W (the default)")] = False,
    width: Annotated[Optional[int], typer.Option(help="SlimCAE: export only this width")] = None,
    no_check: Annotated[bool, typer.Option("--no-check", help="skip the ONNX Runtime parity check")] = False,
    graph_passes: Annotated[
        GraphPasses,
        typer.Option(help="sub-pixel rewrite of ConvTranspose in reconstruction-only graphs (export/passes.py)"),
    ] = GraphPasses.phases,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="no progress bars")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="exporter logs and tracebacks")] = False,
) -> int:
    """Export a checkpoint to a codec bundle: one ONNX graph per stage, coder tables, manifest; then check every
    graph against PyTorch in ONNX Runtime unless --no-check."""
    if size and dynamic:
        raise UsageError("--size and --dynamic exclude each other")
    res = export_bundle(
        checkpoint,
        out,
        arch=arch,
        precision=precision.value,
        size=parse_size(size) if size else None,
        width=width,
        check=not no_check,
        verbose=verbose,
        progress=not quiet,
        graph_passes=None if graph_passes is GraphPasses.none else graph_passes.value,
    )
    print(summary(res))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(app, argv, prog="python -m export.onnx")


if __name__ == "__main__":
    sys.exit(main())
