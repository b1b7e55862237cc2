"""The main job: train tiny codecs at several λ, export, build engines, code real images, print the report.

`python -m benchmarks demo [--out DIR] [--fast] [--archs A,B] [--seconds S] [--images N] [--all-lambdas] [--verbose]`

Target: five minutes on a fresh 2-core CPU machine (exports and engine builds run in two worker processes
beside the training). `--fast` runs the GDN hyperprior only, for a quick look:
  1. train the ``tiny`` presets of ARCHS (bmshj2018-hyperprior, ssmic, gitssic, basic): a short base run, then a
     short fine-tune at each of four λ from it (GIT-SSIC, BaSIC: the two ends, FEW_LAMBDAS; ``--all-lambdas``:
     four) (`python -m train ... --resume`), on the shipped crops (`assets/images/train`; fallback
     `assets/images`, then `../shared/data/train`); see :func:`recipe`;
  2. export every checkpoint (`python -m export.onnx CKPT -o BUNDLE --no-check`, with `--size` for the models
     coded at one size); build TensorRT-RTX engines (`python -m export.trt BUNDLE`) for the middle-λ bundle of
     each architecture when `tensorrt_rtx` is importable, else say so;
  3. code the shipped Kodak images (`assets/images/kodak`) through the runtime (onnxruntime) and through the
     PyTorch reference (CompressAI-style compress/decompress); GIT-SSIC with the Kodak group masks of
     `../shared/data/gitssic_masks` when it has them (else one group per image, said in the notes);
  4. print RD (bpp, PSNR per λ), BD-rate vs the reference, latency and MACs, and BaSIC's decode time at three
     levels (fastest / middle / full) of one bundle; write `rd.png`, `demo.json` and `report.md` under --out
     (default runs/demo).
What it measures (MEASURES, also printed and written into the report and the plot): the pipeline end to end,
deployment fidelity (runtime vs PyTorch reference on the same checkpoint: BD-rate, identical payloads), speed
and MACs. Its models train for seconds, so their PSNR says nothing about the quality of these codecs; classical
codec curves (JPEG, WebP, AVIF) are left out here and belong to ``benchmarks rd --anchors`` on trained checkpoints.
An architecture whose stage fails (e.g. a plan the runtime does not implement yet) is reported as skipped
with the reason; the others go on.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
import textwrap
import time
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer
from tqdm import tqdm

from benchmarks.common import REPO_ROOT, BenchmarkError, command_main, list_images, write_json
from runtime.files import write_atomic

ARCHS = ("bmshj2018-hyperprior", "ssmic", "gitssic", "basic")
FAST_ARCHS = "bmshj2018-hyperprior"  # SSMIC's CPU export and reference scan alone exceed the --fast budget
LAMBDAS = (0.0018, 0.0067, 0.025, 0.0932)  # CompressAI zoo λ for q1, q3, q5, q7 (MSE)
# GIT-SSIC and BaSIC: the two ends only, to fit the time budget (each export is 8-13 graphs): their deployment
# fidelity is shown point by point (identical payloads, equal PSNR); a BD-rate needs four points
FEW_LAMBDAS = (LAMBDAS[0], LAMBDAS[-1])
BASE_LAMBDA = 0.0130
# Small patches, evaluation only at the end (the shipped set is one batch: an epoch is one step), a fast base
# run and gentle fine-tunes: a few seconds of training then give four ordered rate points.
TRAIN_ARGS = ("--batch-size", "8", "--patch-size", "64", "--holdout", "1", "--eval-every", "1000000", "-q")
BASE_LR, TUNE_LR = "3e-3", "3e-4"


class DemoError(BenchmarkError):
    """The demo cannot run (no images, every architecture failed)."""


MEASURES = (
    "This demo checks the pipeline, not codec quality. It trains tiny models for seconds, exports them, "
    "codes real images through the deployed runtime and through the PyTorch reference, and measures: "
    "(1) that every stage works end to end; (2) deployment fidelity: the runtime's rate and PSNR against "
    "the PyTorch reference of the same checkpoint (BD-rate near 0 % where four λ are trained, equal rate "
    "and PSNR point by point, identical payloads); (3) speed: "
    "per-graph and end-to-end latency, and the decode time of each level of a scalable codec (BaSIC); "
    "(4) MACs per pixel of the exported graphs. The absolute PSNR of "
    "models trained for seconds says nothing about these codecs; comparisons with JPEG, WebP or AVIF "
    "belong to trained checkpoints (python -m benchmarks rd --anchors jpeg,webp,avif)."
)
PLOT_TITLE = "pipeline check: models trained for seconds (deployed vs PyTorch reference), not codec quality"


def find_train_dir() -> Path:
    for d in (
        REPO_ROOT / "assets" / "images" / "train",
        REPO_ROOT / "assets" / "images",
        REPO_ROOT.parent / "shared" / "data" / "train",
    ):
        try:
            if len(list_images(d)) >= 2:
                return d
        except BenchmarkError:
            continue
    raise DemoError("no training images: expected assets/images/train (or ../shared/data/train)")


def find_test_dir() -> Path:
    for d in (REPO_ROOT / "assets" / "images" / "kodak", REPO_ROOT / "assets" / "images"):
        try:
            list_images(d)
            return d
        except BenchmarkError:
            continue
    raise DemoError("no test images: expected assets/images/kodak")


@contextlib.contextmanager
def _quiet(log: io.StringIO, verbose: bool):
    """Send a stage's own prints and warnings to the log (shown with --verbose)."""
    if verbose:
        yield
        return
    with warnings.catch_warnings(), contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        warnings.simplefilter("ignore")
        yield


def _call(main, argv: list[str], what: str) -> None:
    """Run a module CLI in-process (no interpreter start-up per call); a non-zero exit is a stage failure."""
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse
        rc = exc.code
    if rc not in (0, None):
        raise DemoError(f"{what} failed (exit {rc})")


def recipe(arch: str, fast: bool, seconds: float | None) -> dict:
    """How long and on what each architecture trains and is coded in the demo's time budget.

    The GDN hyperprior trains for seconds and codes the full Kodak images. SSMIC's selective scan runs as the
    PyTorch reference on the CPU (about 1 s per 64x64 patch per step here), so it trains a couple of steps and
    is coded on centre crops: a pipeline check of the spatial-context path, not a quality figure. GIT-SSIC
    (Swin transforms) trains a couple of steps and codes the full images with their Kodak group masks. BaSIC
    trains for a few seconds (every step trains its five context coders), is coded on centre crops at its full
    level (its PyTorch reference decodes the scanline context position by position), and its middle-λ bundle
    is decoded at three levels on a full image (``levels``). ``export_size``: the swin / scan models are
    exported at the one size they are coded at (static shapes; dynamic-shape tracing of their window and scan
    reshapes costs about twice the CPU time).
    """
    if arch == "ssmic":
        return {
            "batch": 2,
            "base_steps": 2,
            "tune_steps": 1,
            "max_s": 60.0,
            "crop": (128, 192),
            "images": 1,
            "export_size": (128, 192),
        }
    if arch == "gitssic":
        return {
            "batch": 2,
            "base_steps": 2,
            "tune_steps": 1,
            "max_s": 60.0,
            "crop": None,
            "images": 1 if fast else 3,
            "export_size": (512, 768),
            "masks": True,
            "lambdas": FEW_LAMBDAS,
        }
    if arch == "basic":
        base = seconds if seconds is not None else 8.0
        return {
            "batch": 4,
            "base_s": base,
            "tune_s": base / 2,
            "crop": (128, 192),
            "images": 1,
            "levels": ["fastest", "middle", "full"],
            "lambdas": FEW_LAMBDAS,
        }
    base = seconds if seconds is not None else (12.0 if fast else 25.0)
    return {"batch": 8, "base_s": base, "tune_s": base / 2, "crop": None, "images": 1 if fast else 3}


def find_masks_dir(test_dir: Path, names: list[str]) -> Path | None:
    """The Kodak group masks of GIT-SSIC (``../shared/data/gitssic_masks``) when it has one for every test image."""
    d = REPO_ROOT.parent / "shared" / "data" / "gitssic_masks"
    if d.is_dir() and all((d / (Path(n).stem + ".png")).is_file() for n in names):
        return d
    return None


def middle_level(bundle: Path) -> str:
    """A level between BaSIC's presets: encoder transforms at the largest width, h_s and g_s at the middle one
    (the lower middle of an even count), the middle context coder (paper: 96 / 6stage; tiny: 8 / 6stage)."""
    from runtime.bundle import Bundle
    from runtime.levels import levels_of

    axes = dict(levels_of(Bundle.load(bundle).plan).axes)
    mid = lambda v: v[(len(v) - 1) // 2]  # noqa: E731
    return (
        f"g_a={axes['g_a'][-1]},h_a={axes['h_a'][-1]},h_s={mid(axes['h_s'])},g_s={mid(axes['g_s'])},"
        f"context={axes['context'][len(axes['context']) // 2]}"
    )


def train_family(
    arch: str, data: Path, ckpt_dir: Path, rec: dict, threads: int, log: io.StringIO, verbose: bool, bar
) -> list[Path]:
    """A base run, then one fine-tune per λ from it: checkpoints that share a starting point."""
    from train.cli import main as train_main

    common = [
        "-a",
        arch,
        "--preset",
        "tiny",
        "-d",
        str(data),
        "--threads",
        str(threads),
        "--batch-size",
        str(rec["batch"]),
        *TRAIN_ARGS,
    ]
    if "base_steps" in rec:  # step-bounded (slow architectures), with a time cap
        base_budget = ["--steps", str(rec["base_steps"]), "--max-seconds", str(rec["max_s"])]
        tune_budget = ["--steps", str(rec["base_steps"] + rec["tune_steps"]), "--max-seconds", str(rec["max_s"])]
    else:
        base_budget = ["--steps", "1000000", "--max-seconds", str(rec["base_s"])]
        tune_budget = ["--steps", "1000000", "--max-seconds", str(rec["tune_s"])]
    base = ckpt_dir / f"{arch}_base.pth"
    bar.set_postfix_str(f"{arch} base λ={BASE_LAMBDA}")
    with _quiet(log, verbose):
        _call(
            train_main,
            common + ["--lambda", str(BASE_LAMBDA), "--lr", BASE_LR, *base_budget, "-o", str(base)],
            f"training {arch}",
        )
    bar.update(1)
    out = []
    for lam in rec.get("lambdas", LAMBDAS):
        path = ckpt_dir / f"{arch}_{lam}.pth"
        bar.set_postfix_str(f"{arch} λ={lam}")
        with _quiet(log, verbose):
            _call(
                train_main,
                common + ["--lambda", str(lam), "--lr", TUNE_LR, "--resume", str(base), *tune_budget, "-o", str(path)],
                f"training {arch} λ={lam}",
            )
        out.append(path)
        bar.update(1)
    return out


def _export_one(ckpt: str, bundle: str, verbose: bool, engine: bool, extra: tuple[str, ...] = ()) -> tuple[str, str]:
    """Export one checkpoint in a worker process (``extra``: more export options, e.g. ``--size``), then
    (``engine``) build its TensorRT-RTX engines.

    Returns (export failure or "", engine status or "")."""
    import torch

    torch.set_num_threads(1)
    log = io.StringIO()
    try:
        with _quiet(log, verbose):
            from export.onnx import main as export_main

            _call(export_main, [ckpt, "-o", bundle, "--no-check", *extra], f"export of {Path(ckpt).name}")
    except Exception as exc:
        return f"{_one_line(exc)} {log.getvalue().strip().splitlines()[-1:]}", ""
    if not engine:
        return "", ""
    try:
        from export.trt import main as trt_main

        with _quiet(log, verbose):
            _call(trt_main, [bundle], f"engine build for {Path(bundle).name}")
        return "", "built"
    except Exception as exc:
        return "", _one_line(exc)


class Exporter:
    """Exports run in two worker processes while the main process goes on training: on a 2-core machine the
    slow SSMIC exports (dynamo tracing, about a minute each) overlap the GDN model's timed training. When
    tensorrt_rtx is importable, the worker also builds TensorRT-RTX engines for one bundle per architecture
    (the middle λ, the one whose latency is reported): a pipeline check; an SSMIC build takes over a minute."""

    def __init__(self, bundle_dir: Path, verbose: bool, workers: int = 2):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        self.bundle_dir, self.verbose = bundle_dir, verbose
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"))
        self.jobs: dict[str, list] = {}
        self.engines = importlib.util.find_spec("tensorrt_rtx") is not None

    def submit(self, arch: str, ckpts: list[Path], extra: tuple[str, ...] = ()) -> None:
        mid = len(ckpts) // 2
        self.jobs[arch] = [
            (
                self.bundle_dir / (c.stem + ".bundle"),
                self.pool.submit(
                    _export_one,
                    str(c),
                    str(self.bundle_dir / (c.stem + ".bundle")),
                    self.verbose,
                    self.engines and i == mid,
                    extra,
                ),
            )
            for i, c in enumerate(ckpts)
        ]

    def engine_note(self) -> str:
        """One line: which engines were built (call after collect)."""
        if not self.engines:
            return "TensorRT-RTX engines skipped: tensorrt_rtx is not importable (pip install tensorrt-rtx)"
        done = {b.name: f.result()[1] for jobs in self.jobs.values() for b, f in jobs if f.result()[1]}
        built = [n for n, st in done.items() if st == "built"]
        failed = [f"{n}: {st}" for n, st in done.items() if st != "built"]
        return (
            f"TensorRT-RTX engines built for {len(built)}/{len(done)} bundles ({', '.join(built)}; one per "
            "architecture, graphs parse and build, bodies inlined)"
            + (f"; failed {'; '.join(failed)}" if failed else "")
        )

    def collect(self, bar) -> dict[str, list[Path] | str]:
        """arch -> its bundles, or the first failure's one-line reason."""
        from concurrent.futures import as_completed

        futures = {f: arch for arch, jobs in self.jobs.items() for _, f in jobs}
        for f in as_completed(futures):
            bar.set_postfix_str(futures[f])
            bar.update(1)
        self.pool.shutdown()
        out: dict[str, list[Path] | str] = {}
        for arch, jobs in self.jobs.items():
            errors = [f.result()[0] for _, f in jobs if f.result()[0]]
            out[arch] = f"export failed: {errors[0]}" if errors else [b for b, _ in jobs]
        return out


def run_demo(
    out: Path,
    fast: bool = False,
    archs: tuple[str, ...] = ARCHS,
    seconds: float | None = None,
    images: int | None = None,
    verbose: bool = False,
    all_lambdas: bool = False,
) -> dict:
    from benchmarks import latency, macs, rd

    t_start = time.perf_counter()
    out = Path(out)
    for sub in ("checkpoints", "bundles"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    # one thread: on a shared 2-core machine two threads per process thrash (measured: 1 step in 12 s with 2
    # threads vs ~6 steps/s with 1 under the same load)
    threads = 1
    import torch

    torch.set_num_threads(threads)
    train_dir, test_dir = find_train_dir(), find_test_dir()
    recipes = {a: recipe(a, fast, seconds) for a in archs}
    if all_lambdas:
        for r in recipes.values():
            r.pop("lambdas", None)
    if images:
        for r in recipes.values():
            r["images"] = images
    log = io.StringIO()
    notes, skipped, timings = [], {}, {}
    print(
        f"lictrt demo: archs {', '.join(archs)}; λ {', '.join(map(str, LAMBDAS))} (gitssic, basic: "
        f"{', '.join(map(str, FEW_LAMBDAS))}); train data {train_dir}; "
        f"test images {test_dir}; output {out}"
    )

    families: dict[str, dict] = {}
    exporter = Exporter(out / "bundles", verbose)
    # step-bounded architectures (slow exports) first, so their exports overlap the timed training of the others
    order = sorted(archs, key=lambda a: "base_steps" not in recipes[a])
    runs = sum(1 + len(recipes[a].get("lambdas", LAMBDAS)) for a in archs)
    with tqdm(total=runs, desc="train", unit="run") as bar:
        t0 = time.perf_counter()
        for arch in order:
            try:
                families[arch] = {
                    "ckpts": train_family(
                        arch, train_dir, out / "checkpoints", recipes[arch], threads, log, verbose, bar
                    )
                }
                size = recipes[arch].get("export_size")
                exporter.submit(arch, families[arch]["ckpts"], ("--size", f"{size[0]}x{size[1]}") if size else ())
            except Exception as exc:  # one architecture failing must not stop the other
                skipped[arch] = f"training: {_one_line(exc)}"
        timings["train_s"] = time.perf_counter() - t0
    with tqdm(total=sum(len(f["ckpts"]) for f in families.values()), desc="export", unit="bundle") as bar:
        t0 = time.perf_counter()
        for arch, res in exporter.collect(bar).items():
            if isinstance(res, str):
                skipped[arch] = res
                del families[arch]
            else:
                families[arch]["bundles"] = res
        timings["export_s"] = time.perf_counter() - t0  # exports + engines left after training (they overlap it)
    families = {a: families[a] for a in archs if a in families}  # report in the order asked for
    notes.append(exporter.engine_note())

    # RD: each architecture separately, so one failing plan does not lose the others
    t0 = time.perf_counter()
    rd_docs = []
    anchors = ()  # models trained for seconds: a classical codec curve beside them would read as their quality
    for arch in list(families):
        f = families[arch]
        try:
            rec = recipes[arch]
            masks = None
            if rec.get("masks"):
                masks = find_masks_dir(test_dir, [p.name for p in list_images(test_dir, rec["images"])])
                if masks is None:
                    notes.append(f"{arch}: no Kodak group masks (../shared/data/gitssic_masks): one group per image")
            with _quiet(log, verbose):
                doc = rd.run(
                    [str(b) for b in f["bundles"]],
                    [str(c) for c in f["ckpts"]],
                    str(test_dir),
                    "onnxruntime",
                    anchors if rec["crop"] is None else (),
                    rec["images"],
                    progress=False,
                    crop=rec["crop"],
                    mode="compat",
                    masks=masks,
                )
            rd_docs.append(doc)
        except Exception as exc:
            skipped[arch] = f"coding: {_one_line(exc)}"
            del families[arch]
        print(f"coded {arch}" + (f" (skipped: {skipped[arch]})" if arch in skipped else ""), flush=True)
    timings["rd_s"] = time.perf_counter() - t0
    if not rd_docs:
        raise DemoError("every architecture failed: " + "; ".join(f"{a}: {r}" for a, r in skipped.items()))
    rd_doc = _merge_rd(rd_docs)
    rd_doc["title"] = PLOT_TITLE

    t0 = time.perf_counter()
    lat, mac, lvl = [], [], []
    for arch, f in tqdm(list(families.items()), desc="latency+MACs", unit="arch"):
        mid = f["bundles"][len(f["bundles"]) // 2]
        rec = recipes[arch]
        size = rec["crop"] or rec.get("export_size") or (512, 768)
        try:
            with _quiet(log, verbose):
                lat.append(latency.measure(mid, "onnxruntime", size, iters=3 if fast else 5, warmup=1))
        except Exception as exc:
            notes.append(f"latency of {arch} failed: {_one_line(exc)}")
        try:
            # at the size the bundle was exported for (a static bundle's graphs have that size only)
            mac.append(macs.count_bundle(mid, rec.get("export_size") or (512, 768)))
        except Exception as exc:
            notes.append(f"MACs of {arch} failed: {_one_line(exc)}")
        if rec.get("levels"):
            try:
                lvl.append(decode_levels(mid, test_dir, rec["levels"], threads, log, verbose))
            except Exception as exc:
                notes.append(f"levels of {arch} failed: {_one_line(exc)}")
    timings["latency_macs_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - t_start

    summary = {
        "demo": True,
        "measures": MEASURES,
        "fast": fast,
        "archs": list(archs),
        "lambdas": {a: list(recipes[a].get("lambdas", LAMBDAS)) for a in archs},
        "recipes": recipes,
        "images": rd_doc["images"],
        "skipped": skipped,
        "notes": notes + rd_doc["notes"],
        "timings": timings,
        "bd_rate_vs_reference": [e for e in rd_doc["bd_rate"] if "reference" in e["anchor"]],
        "rd": rd_doc,
        "latency": lat,
        "macs": mac,
        "levels": lvl,
    }
    results = out / "results"
    write_json(results / "demo.json", summary)
    rd.plot(rd_doc, out / "rd.png")
    from benchmarks.report import build

    text, _ = build(results, out / "report.md")
    write_atomic(out / "report.md", text)
    write_atomic(out / "demo.log", log.getvalue())
    print(format_summary(summary, out))
    return summary


def decode_levels(bundle: Path, test_dir: Path, names: list[str], threads: int, log, verbose: bool) -> dict:
    """A scalable (BaSIC) bundle encoded at each named level (``middle``: :func:`middle_level`) on the first
    full test image and decoded three times: decode time, steps, bpp and decoder MACs per level
    (benchmarks.basic_levels)."""
    from benchmarks import basic_levels

    texts = [middle_level(bundle) if n == "middle" else n for n in names]
    with _quiet(log, verbose):
        res = basic_levels.run(str(bundle), str(test_dir), 1, None, None, 3, threads, texts)
    for row, n in zip(res["rows"], names):
        row["name"] = n
    return res


def _merge_rd(docs: list[dict]) -> dict:
    first = docs[0]
    return {
        "data": first["data"],
        "images": first["images"],
        "backend": first["backend"],
        "notes": [n for d in docs for n in d["notes"]],
        "families": [f for d in docs for f in d["families"]],
        "bd_rate": [e for d in docs for e in d["bd_rate"]],
    }


def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def format_summary(s: dict, out: Path) -> str:
    from benchmarks.basic_levels import format_table as levels_table

    rd_doc = s["rd"]
    lines = [
        "",
        "== What this demo measures ==",
        *textwrap.wrap(s.get("measures", MEASURES), 110),
        "",
        f"== RD on Kodak image(s) {', '.join(s['images'])} ==",
    ]
    for f in rd_doc["families"]:
        if f.get("kind") != "deployed":
            continue
        ref = next((g for g in rd_doc["families"] if g.get("kind") == "reference" and g["arch"] == f["arch"]), None)
        lines.append(f"{f['arch']}   (deployed: runtime onnxruntime fp32 | reference: PyTorch compress/decompress)")
        lines.append(f"  {'point':<28}{'bpp file':>10}{'bpp payload':>12}{'PSNR dB':>9}{'ref bpp':>9}{'ref PSNR':>10}")
        for i, label in enumerate(f["points"]):
            r = f["results"]
            rb = ref["results"]["bpp-payload"][i] if ref else float("nan")
            rp = ref["results"]["psnr-rgb"][i] if ref else float("nan")
            lines.append(
                f"  {label:<28}{r['bpp'][i]:>10.4f}{r['bpp-payload'][i]:>12.4f}{r['psnr-rgb'][i]:>9.3f}"
                f"{rb:>9.4f}{rp:>10.3f}"
            )
    for f in rd_doc["families"]:
        if f.get("kind") == "anchor":
            lines.append(
                f"{f['name']:<6} "
                + "  ".join(f"{b:.3f}/{p:.2f}" for b, p in zip(f["results"]["bpp"], f["results"]["psnr-rgb"]))
            )
    lines.append("== BD-rate (PSNR; deployment coded in compat mode, the CompressAI-identical coder) ==")
    for e in rd_doc["bd_rate"]:
        if "bd_rate_payload_akima" in e:
            lines.append(
                f"  {e['test']} vs {e['anchor']}: payload akima {e['bd_rate_payload_akima']:+.4f}%, "
                f"pchip {e['bd_rate_payload_pchip']:+.4f}%; whole file akima "
                f"{e.get('bd_rate_file_akima', float('nan')):+.4f}%"
                + (f"; identical payloads {e['identical_payloads']}/{e['images']}" if "images" in e else "")
                + (
                    "  [points not monotone after seconds of training: a parity figure, not an RD gain]"
                    if e.get("monotone") is False
                    else ""
                )
            )
        else:
            lines.append(
                f"  {e['test']} vs {e['anchor']}: n/a ({e.get('error_payload', '?')})"
                + (f"; identical payloads {e['identical_payloads']}/{e['images']}" if "images" in e else "")
            )
    lines.append("== latency (onnxruntime CPU, median ms) ==")
    for lt in s["latency"]:
        g = ", ".join(f"{k} {v['median_ms']:.1f}" for k, v in lt.get("graphs", {}).items())
        e = lt.get("end_to_end", {})
        lines.append(
            f"  {lt['arch']} {lt['size'][0]}x{lt['size'][1]}: {g}; encode {e.get('encode', {}).get('median_ms', float('nan')):.1f}, "
            f"decode {e.get('decode', {}).get('median_ms', float('nan')):.1f}"
        )
    lines.append("== MACs (counted from the exported ONNX graphs at the size each bundle was exported for) ==")
    for m in s["macs"]:
        k = m["kmac_per_px"]
        lines.append(
            f"  {m['arch']} {m['size'][0]}x{m['size'][1]}: whole {m['kmac_per_px_whole']:.2f} kMAC/px (without scan "
            f"{m['kmac_per_px_whole_without_scan']:.2f}); encoder {k['encoder']:.2f}, decoder {k['decoder']:.2f},"
            f" parse-critical {k['parse_critical']:.2f}"
        )
    for lv in s.get("levels", []):
        n = len(lv["images"])
        lines.append(f"== levels of one {lv['arch']} bundle (decode median of {lv['repeats']}, {n} full image) ==")
        lines += ["  " + ln for ln in levels_table(lv).splitlines()[1:]]
    for a, why in s["skipped"].items():
        lines.append(f"skipped {a}: {why}")
    lines += [f"note: {n}" for n in s["notes"]]
    t = s["timings"]
    lines.append(
        f"time: {t['total_s']:.0f} s (train {t['train_s']:.0f}, export+engines {t['export_s']:.0f}, "
        f"coding {t['rd_s']:.0f}, latency+MACs {t['latency_macs_s']:.0f})"
    )
    lines.append(f"plot {out / 'rd.png'}, report {out / 'report.md'}, results {out / 'results' / 'demo.json'}")
    return "\n".join(lines)


def cli(
    out: Annotated[Path, typer.Option(metavar="DIR", help="output folder")] = Path("runs/demo"),
    fast: Annotated[bool, typer.Option(help="shorter training, one image, the GDN model only")] = False,
    archs: Annotated[
        Optional[str], typer.Option(help=f"comma-separated (default {','.join(ARCHS)}; --fast: {FAST_ARCHS})")
    ] = None,
    seconds: Annotated[
        Optional[float], typer.Option(help="base training seconds per architecture (fine-tunes: half)")
    ] = None,
    images: Annotated[Optional[int], typer.Option(metavar="N", help="number of Kodak images to code")] = None,
    all_lambdas: Annotated[
        bool,
        typer.Option(
            help=f"{len(LAMBDAS)} λ for every architecture (GIT-SSIC and BaSIC get a BD-rate too; about a minute more)"
        ),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="show every stage's output and tracebacks")] = False,
) -> None:
    """The pipeline end to end on tiny models: train, export, build engines, code images, report.

    Writes the plot, the Markdown report and results/demo.json under --out."""
    text = archs if archs is not None else (FAST_ARCHS if fast else ",".join(ARCHS))
    arch_list = tuple(a.strip() for a in text.split(",") if a.strip())
    if not arch_list:
        raise DemoError("--archs is empty")
    run_demo(out, fast, arch_list, seconds, images, verbose, all_lambdas)


def main(argv: list[str] | None = None) -> int:
    return command_main("demo", argv)


if __name__ == "__main__":
    sys.exit(main())
