"""BaSIC levels on Kodak: decode time, bits per pixel and decoder MACs per (width, context coder).

`python -m benchmarks basic-levels BUNDLE [--data DIR] [--images N] [--widths 48,192] [--coders scanline,2stage]
 [--levels 'fastest;g_s=96,h_s=96,context=6stage;full'] [--repeats R] [--threads T] [--json PATH] [--verbose]`

For every combination of a uniform width (all four transforms at W, the diagonal of the level grid) and a
context coder (or for each level given with ``--levels``), each image is encoded at that level with the runtime (ONNX Runtime, pinned parse path, our
coder) and decoded ``--repeats`` times (median). Recorded per combination: bpp, PSNR, decode time split into
network / entropy / the context loop, the decoder's sequential steps, and the decoder-side MACs at the image's
padded size counted from the bundle's graphs (h_s + context graph x calls + g_s; benchmarks/macs.py). The
bundle's weights are whatever the checkpoint holds: with random weights (``train.models.seeded``) bpp and PSNR
say nothing about compression, only the timings and MACs do.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from benchmarks.common import (
    BenchmarkError,
    DataOpt,
    ImagesOpt,
    JsonOpt,
    RepeatsOpt,
    ThreadsOpt,
    bpp,
    command_main,
    default_kodak,
    emit,
    list_images,
    load_rgb,
    portable_path,
    psnr,
)
from runtime.cli import VerboseOpt

MODULES = ("g_a", "h_a", "h_s", "g_s")  # the transforms of a level, each at its own width


class LevelsError(BenchmarkError):
    """The bundle is not a scalable (grouped_context) bundle, or bad options."""


def _graph_macs(bundle: Path, size: tuple[int, int]) -> dict[str, int]:
    """MACs of one call of every graph of the bundle at image ``size`` (context_step-style graphs: per position)."""
    import onnx

    from benchmarks.macs import _onnx_input_shapes, count_graph
    from runtime.bundle import read_manifest

    m = read_manifest(bundle)
    out = {}
    for name, g in m["graphs"].items():
        model = onnx.load(str(bundle / g["file"]))
        shapes, _ = _onnx_input_shapes(model, size[0], size[1], g.get("inputs"))
        out[name] = count_graph(model, shapes, name).total
    return out


def run(
    bundle: str,
    data: str,
    images: int,
    widths: list[int] | None,
    coders: list[str] | None,
    repeats: int,
    threads: int | None,
    named: list[str] | None = None,
) -> dict:
    """Every (uniform width, coder) combination of ``widths`` x ``coders`` (default: all), or the levels
    ``named`` instead (level texts: presets such as ``fastest`` / ``full`` or ``axis=value,...``)."""
    from runtime.bundle import Bundle, level_graph
    from runtime.codec import Codec
    from runtime.levels import levels_of
    from runtime.plans.grouped_context import stage_map

    path = Path(bundle)
    b = Bundle.load(path)
    levels = levels_of(b.plan)
    if levels is None:
        raise LevelsError(f"{bundle} has no levels (plan {b.plan_kind}): not a scalable bundle")
    axes = dict(levels.axes)
    widths = widths or list(axes["g_a"])
    coders = coders or list(axes["context"])
    paths = list_images(data, images)
    if not paths:
        raise LevelsError(f"no images in {data}")
    imgs = [load_rgb(p) for p in paths]
    pad = b.pad_multiple
    padded = {(-(-im.shape[0] // pad) * pad, -(-im.shape[1] // pad) * pad) for im in imgs}
    macs = {hw: _graph_macs(path, hw) for hw in padded}
    if named:
        chosen = [levels.parse(t) for t in named]
    else:
        chosen = [levels.parse({**{m: w for m in MODULES}, "context": c}) for w in widths for c in coders]
    rows = []
    for name, level in zip(named or [None] * len(chosen), chosen):
        w, c = level["g_s"], level["context"]
        enc = Codec.open(path, level=level, threads=threads)
        dec = Codec.open(path, threads=threads)
        per = []
        for p, im in zip(paths, imgs):
            data_ = enc.encode(im)
            times, st, out = [], None, None
            for _ in range(repeats):
                t0 = time.perf_counter()
                out = dec.decode(data_)
                times.append(time.perf_counter() - t0)
                st = dec.last_stats
            hw = (-(-im.shape[0] // pad) * pad, -(-im.shape[1] // pad) * pad)
            gm = macs[hw]
            h16, w16 = hw[0] // 16, hw[1] // 16
            coder = b.plan["coders"][c]
            if coder["kind"] == "scanline":
                ctx_macs = gm[coder["graph"]] * h16 * w16  # one call per position, batched by wavefront step
            else:
                groups = len(coder["stage_table"])
                ctx_macs = gm[coder["graph"]] * len(set(stage_map(coder["stage_table"], groups, h16, w16).ravel()))
            dec_macs = gm[level_graph("h_s", level["h_s"])] + ctx_macs + gm[level_graph("g_s", w)]
            per.append(
                {
                    "image": p.name,
                    "bpp": bpp(len(data_), *im.shape[:2]),
                    "psnr": psnr(im, out),
                    "decode_s": statistics.median(times),
                    "network_s": st["network_s"],
                    "entropy_s": st["entropy_s"],
                    "loop_s": st["loop_s"],
                    "steps": st["sequential_steps"],
                    "decoder_macs": dec_macs,
                    "decoder_kmac_per_px": dec_macs / (hw[0] * hw[1]) / 1e3,
                }
            )
        rows.append(
            {
                "name": name or levels.format(level),
                "width": w,
                "context": c,
                "level": levels.format(level),
                "images": per,
                **{
                    k: statistics.mean(r[k] for r in per)
                    for k in (
                        "bpp",
                        "psnr",
                        "decode_s",
                        "network_s",
                        "entropy_s",
                        "loop_s",
                        "steps",
                        "decoder_kmac_per_px",
                    )
                },
            }
        )
    return {
        "benchmark": "basic-levels",
        "bundle": portable_path(path),
        "arch": b.arch,
        "model_hash": b.manifest["model"]["hash"],
        "images": [p.name for p in paths],
        "repeats": repeats,
        "threads": threads,
        "rows": rows,
    }


def format_table(res: dict) -> str:
    lines = [
        f"BaSIC levels: {res['arch']} on {len(res['images'])} image(s), median of {res['repeats']} decode(s)",
        f"{'level':<10}{'g_s':>4} {'context':<9}{'bpp':>8}{'PSNR':>8}{'decode ms':>11}{'net ms':>9}{'loop ms':>9}"
        f"{'steps':>7}{'dec kMAC/px':>13}",
    ]
    for r in res["rows"]:
        lines.append(
            f"{r.get('name', '')[:9]:<10}{r['width']:>4} {r['context']:<9}{r['bpp']:>8.4f}{r['psnr']:>8.2f}{1e3 * r['decode_s']:>11.1f}"
            f"{1e3 * r['network_s']:>9.1f}{1e3 * r['loop_s']:>9.1f}{r['steps']:>7.0f}"
            f"{r['decoder_kmac_per_px']:>13.2f}"
        )
    return "\n".join(lines)


def cli(
    bundle: Annotated[Path, typer.Argument(metavar="BUNDLE", help="a grouped_context (BaSIC) bundle")],
    data: DataOpt = None,
    images: ImagesOpt = None,
    widths: Annotated[
        Optional[str], typer.Option(help="comma-separated uniform widths (default: every width of the bundle)")
    ] = None,
    coders: Annotated[Optional[str], typer.Option(help="comma-separated context coders (default: all)")] = None,
    levels: Annotated[
        Optional[str],
        typer.Option(
            help="semicolon-separated levels instead of widths x coders, e.g. 'fastest;full;g_s=96,context=4stage'"
        ),
    ] = None,
    repeats: RepeatsOpt = 3,
    threads: ThreadsOpt = None,
    json_path: JsonOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """BaSIC on Kodak: decode time, bpp and decoder MACs per (width, context coder) level of one bundle.

    --data defaults to ../shared/data/kodak beside the repository; --threads: intra-op threads of the
    reconstruction graphs."""
    data = data or default_kodak()
    width_list = [int(x) for x in widths.split(",")] if widths else None
    coder_list = coders.split(",") if coders else None
    named = [t.strip() for t in levels.split(";") if t.strip()] if levels else None
    res = run(str(bundle), str(data), images, width_list, coder_list, max(1, repeats), threads, named)
    emit(res, json_path, format_table)


def main(argv: list[str] | None = None) -> int:
    return command_main("basic-levels", argv)
