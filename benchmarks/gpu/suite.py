"""``python -m benchmarks.gpu.suite``: the GPU validation suite, in one command inside one time budget.

Sections, most valuable first (each inside its own time budget; one that no longer fits is skipped with the
reason):
  environment  device, driver, CUDA, torch, nvcc, SM count, L2, date
  build        the kernels library and the runtime's coder extension: the carried ones (.gpu/lib, built on the
               CPU machine by prepare.sh) when they load and fit the GPU, else built here
  accuracy     kernel error figures vs float64 references (fresh random inputs, poisoned outputs)
  speed        HBM copy ceiling; SelectiveScan2D kernel vs PyTorch chunked and four-copy; GDN kernel vs PyTorch
  codec        torch-CUDA codecs through the runtime on Kodak (random weights): decode split network / entropy /
               context loop
  wavefront    spatial-context decode, wavefront vs raster order, on the GPU
  pytest       the GPU tests (kernels, the torch-cuda parse path): pass/fail counts
  rtx          TensorRT-RTX on the device (subprocess; see benchmarks/gpu/rtx.py), in a second call
Writes ``<out>/gpu-<device>-<date>.json`` (+ ``.md``) after every section, and a copy under
``benchmarks/results/``.  ``--resume`` starts from the document the previous call on this machine left in the
temp folder, so a second call (rtx) completes the first one's document.  ``--dry-run`` measures nothing and marks
every GPU figure "not measured".
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from . import schema
from .budget import Budget, SectionContext

REPO = Path(__file__).resolve().parents[2]
BUILD_DIR = REPO / "build" / "trt_plugins"
# The device lends 15 minutes in all (start, calls, idle time): call 1 (every section but rtx) plans inside 400 s
# and run.sh stops it at 430 s; call 2 (rtx) inside 150 s.
DEFAULT_BUDGET_S = 400.0
# name: (budget s, minimum s it needs to start)
SECTIONS = {
    "environment": (10, 1),
    "build": (120, 5),
    "accuracy": (60, 10),
    "speed": (100, 20),
    "codec": (120, 20),
    "wavefront": (45, 10),
    "pytest": (60, 15),
    "rtx": (150, 20),
}
STATE = Path(tempfile.gettempdir()) / "lictrt-gpu-suite.json"  # the last document, for --resume


class SuiteError(Exception):
    """Bad arguments or an unusable output location (one line, no traceback)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gpu.suite", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--out",
        default=os.environ.get("OUT") or "gpu-suite-out",
        help="folder for the JSON, the markdown table and logs (default: $OUT)",
    )
    ap.add_argument(
        "--results-dir", default=None, help="also write the JSON here (default benchmarks/results; none on --dry-run)"
    )
    ap.add_argument("--dry-run", action="store_true", help="measure nothing: every GPU figure 'not measured'")
    ap.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, help="total seconds (default %(default)s)")
    ap.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated sections to run")
    ap.add_argument("--skip", default="", help="comma-separated sections to skip")
    ap.add_argument("--iters", type=int, default=100, help="timed runs per kernel measurement")
    ap.add_argument("--images", type=int, default=4, help="Kodak images per model in the codec section (0 = all)")
    ap.add_argument("--kodak", default=None, help="Kodak folder (default .gpu/kodak, else assets/images/kodak)")
    ap.add_argument("--rtx-dir", default=str(REPO / ".rtx"))
    ap.add_argument(
        "--stash",
        default=str(Path(tempfile.gettempdir()) / "lictrt-rtx"),
        help="where the first call stashed RTX chunk 1",
    )
    ap.add_argument("--bundles", default=str(REPO / ".rtx" / "bundles"), help="tiny exported bundles for rtx")
    ap.add_argument("--cuda-arch", default=None, help="CMAKE_CUDA_ARCHITECTURES (default: the device's, -real)")
    ap.add_argument("--date", default=None, help=argparse.SUPPRESS)  # tests pin the file name
    ap.add_argument(
        "--resume", action="store_true", help="keep the sections of the previous call's document (see --state)"
    )
    ap.add_argument("--state", default=str(STATE), help="where each call leaves its document (default %(default)s)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    chosen = [s for s in args.sections.split(",") if s]
    skipped = [s for s in args.skip.split(",") if s]
    unknown = [s for s in chosen + skipped if s not in SECTIONS]
    if unknown:
        raise SuiteError(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    if args.budget <= 0 or args.iters < 1 or args.images < 0:
        raise SuiteError("--budget and --iters must be positive, --images >= 0")
    args.run = [s for s in SECTIONS if s in chosen and s not in skipped]
    return args


# ---------------------------------------------------------------------------------------------- helpers
def _cmd_output(cmd: list[str], timeout: float = 20) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (proc.stdout or proc.stderr).strip() if proc.returncode == 0 else None


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return None


def _cuda_ok() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


# ---------------------------------------------------------------------------------------------- sections
def section_environment(ctx: SectionContext) -> dict:
    nvcc = _cmd_output(["nvcc", "--version"])
    env = {
        "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": platform.node(),
        "python": platform.python_version(),
        "torch": _version("torch"),
        "numpy": _version("numpy"),
        "onnxruntime": _version("onnxruntime"),
        "compressai": _version("compressai"),
        "pytest": _version("pytest"),
        "nvcc": nvcc.splitlines()[-1] if nvcc else None,
    }
    try:
        import torch

        env["torch_cuda"] = torch.version.cuda
    except Exception:
        env["torch_cuda"] = None

    def props():
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError("torch sees no CUDA device")
        p = torch.cuda.get_device_properties(0)
        smi = _cmd_output(
            ["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm,clocks.max.mem", "--format=csv,noheader"]
        )
        env["driver"] = smi.split(",")[0].strip() if smi else None
        env["nvidia_smi_max_clocks"] = ",".join(smi.split(",")[1:]).strip() if smi else None
        env["compute_capability"] = f"{p.major}.{p.minor}"
        env["device_name_text"] = p.name
        return {
            "sm_count": p.multi_processor_count,
            "l2_cache": int(getattr(p, "L2_cache_size", 0)) or None,
            "memory": p.total_memory / 2**30,
        }

    env.update({"driver": None, "compute_capability": None})
    figs = ctx.measure_many({"sm_count": "SMs", "l2_cache": "bytes", "memory": "GiB"}, props)
    env.update(figs)
    env["device_name"] = env.pop("device_name_text", None)  # a string, not a figure; None without a GPU
    if env["device_name"] is None:
        env["device_name_note"] = "dry run: no GPU" if ctx.dry_run else "no CUDA device"
    return env


def _device_arch() -> str:
    import torch

    major, minor = torch.cuda.get_device_capability(0)
    return f"{major}{minor}-real"


def _sass(lib: Path) -> list[str] | None:
    """The SASS architectures embedded in ``lib`` (cuobjdump), None when cuobjdump is not there."""
    elf = _cmd_output(["cuobjdump", "--list-elf", str(lib)])
    return None if elf is None else sorted(set(re.findall(r"sm_\d+a?", elf)))


def section_build(ctx: SectionContext, args, out_dir: Path) -> dict:
    """The kernels library and the coder extension: the carried ones when they load and fit, else built here."""
    rec: dict = {}

    def run():
        t0 = time.monotonic()
        failed = []
        with open(out_dir / "build.log", "w") as log:
            for key, get in (
                ("kernels_library", lambda: _kernels_library(args, log)),
                ("coder_extension", lambda: _coder_extension(log)),
            ):
                try:  # independent: the codec section needs the extension even if the kernels do not load
                    rec[key] = get()
                except Exception as exc:
                    rec[key] = {"error": schema.error_text(exc)}
                    failed.append(f"{key}: {rec[key]['error']}")
        if failed:
            raise RuntimeError("; ".join(failed))
        return time.monotonic() - t0

    rec["build_time"] = ctx.measure("s", run, need_s=5, note="carried files checked; builds only what did not load")
    return rec


def _kernels_library(args, log) -> dict:
    from trt_plugins.harness import Kernels

    from . import artifacts

    arch = args.cuda_arch or _device_arch()
    sm = "sm_" + arch.split("-")[0]
    carried, info = artifacts.LIB_DIR / artifacts.KERNELS, {}
    lib = None
    if carried.is_file() and not args.cuda_arch:
        sass = _sass(carried)
        if sass is not None and sm not in sass:
            info["carried_rejected"] = f"no {sm} code in it (has {', '.join(sass) or 'none'})"
        else:
            try:
                Kernels(carried)
                lib, info["source"] = (
                    carried,
                    f"carried (.gpu/lib, built by prepare.sh for CUDA arch {artifacts.CARRIED_ARCH})",
                )
            except Exception as exc:
                info["carried_rejected"] = schema.error_text(exc)
    if lib is None:
        lib = artifacts.build_kernels(BUILD_DIR, arch, log)
        info["source"] = f"built on the device (CUDA arch {arch})"
    os.environ["LICTRT_KERNELS_LIB"] = str(lib)
    info["version"] = Kernels.load().version()
    info["embedded_sass"] = _sass(lib)
    usage = _cmd_output(["cuobjdump", "--dump-resource-usage", str(lib)], timeout=60) or ""
    log.write(usage + "\n")
    info["resource_usage"] = [" ".join(line.split()) for line in usage.splitlines() if "REG:" in line][:24]
    return info


def _coder_extension(log) -> dict:
    """``runtime._lictrt`` importable: already, or from the carried build, or built here."""
    import importlib
    import sysconfig

    from . import artifacts

    def importable() -> bool:
        importlib.invalidate_caches()
        try:
            importlib.import_module("runtime._lictrt")
            return True
        except ImportError:
            return False

    if importable():
        return {"source": "already importable"}
    name = "_lictrt" + sysconfig.get_config_var("EXT_SUFFIX")
    dest, carried = REPO / "runtime" / name, artifacts.LIB_DIR / name
    if carried.is_file():
        shutil.copy2(carried, dest)
        if importable():
            return {"source": f"carried (.gpu/lib/{name})"}
        dest.unlink()
    built = artifacts.build_extension(sys.executable, REPO / "build" / "device-ext", log)
    shutil.copy2(built, dest)
    if not importable():
        raise RuntimeError(f"{name} was built but does not import")
    return {"source": "built on the device"}


def parse_junit(path: Path) -> dict:
    """Counts from a pytest junit XML file: tests, passed, failed, errors, skipped, and the failing test ids."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {"tests": 0, "failed": 0, "errors": 0, "skipped": 0}
    failing = []
    for s in suites:
        counts["tests"] += int(s.get("tests", 0))
        counts["failed"] += int(s.get("failures", 0))
        counts["errors"] += int(s.get("errors", 0))
        counts["skipped"] += int(s.get("skipped", 0))
        for case in s.iter("testcase"):
            bad = case.find("failure") if case.find("failure") is not None else case.find("error")
            if bad is not None:
                msg = (bad.get("message") or "").splitlines()[0][:200] if bad.get("message") else ""
                failing.append(f"{case.get('classname')}::{case.get('name')}: {msg}")
    counts["passed"] = counts["tests"] - counts["failed"] - counts["errors"] - counts["skipped"]
    counts["failing"] = failing
    return counts


# the GPU tests: kernels (their first-stage shapes are the accuracy section's, with fresh inputs) and the
# torch-cuda parse path
PYTEST_ARGS = [
    "tests/trt_plugins/test_kernels_gpu.py",
    "tests/runtime/test_runtime_codec.py",
    "-m",
    "gpu",
    "-k",
    "not stage1",
]


def section_pytest(ctx: SectionContext, out_dir: Path) -> dict:
    rec: dict = {"command": "python -m pytest " + " ".join(a if " " not in a else f"'{a}'" for a in PYTEST_ARGS)}
    units = {k: "tests" for k in ("tests", "passed", "failed", "errors", "skipped")}

    def run():
        if _version("pytest") is None:
            raise RuntimeError("pytest is not installed here (the accuracy section computes the figures)")
        lib = Path(os.environ.get("LICTRT_KERNELS_LIB", BUILD_DIR / "liblictrt_kernels.so"))
        if not lib.is_file():  # else the tests' fixture would start a slow all-architecture build
            raise RuntimeError(f"kernels library {lib.name} was not built (see the build section)")
        with tempfile.TemporaryDirectory() as tmp:
            junit = Path(tmp) / "junit.xml"
            with open(out_dir / "pytest.log", "w") as f:
                proc = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "pytest",
                        *PYTEST_ARGS,
                        "-q",
                        "-p",
                        "no:cacheprovider",
                        f"--junitxml={junit}",
                    ],
                    cwd=REPO,
                    stdout=f,
                    stderr=subprocess.STDOUT,
                    timeout=max(5.0, ctx.left() - 2),
                )
            rec["exit_code"] = proc.returncode
            if not junit.is_file():
                raise RuntimeError(f"pytest wrote no report (exit {proc.returncode}); see pytest.log")
            counts = parse_junit(junit)
        rec["failing"] = counts.pop("failing")
        return counts

    rec.update(ctx.measure_many(units, run, need_s=10))
    return rec


def section_rtx(ctx: SectionContext, args) -> dict:
    rec: dict = {}

    def run():
        with tempfile.TemporaryDirectory() as tmp:
            part = Path(tmp) / "rtx.json"
            cmd = [
                sys.executable,
                "-m",
                "benchmarks.gpu.rtx",
                "--out",
                str(part),
                "--rtx-dir",
                args.rtx_dir,
                "--stash",
                args.stash,
                "--bundles",
                args.bundles,
                "--seconds",
                f"{max(5.0, ctx.left() - 5):.0f}",
            ]
            try:
                proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=max(5.0, ctx.left() - 2))
                rec["exit_code"] = proc.returncode
                if proc.returncode != 0:
                    rec["stderr_tail"] = proc.stderr[-2000:]
            except subprocess.TimeoutExpired:
                rec["exit_code"] = None
                rec["stderr_tail"] = "timed out (section budget)"
            if part.is_file():
                rec.update(json.loads(part.read_text()))
        steps = rec.get("steps", {})
        return sum(1 for s in steps.values() if s.get("ok"))

    rec["steps_ok"] = ctx.measure("steps", run, need_s=10)
    return rec


# ---------------------------------------------------------------------------------------------- runner
def run_suite(args, log=print) -> tuple[dict, list[Path]]:
    out_dir = Path(args.out)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SuiteError(f"cannot create output folder {out_dir}: {exc}") from None
    budget = Budget(args.budget)
    now = dt.datetime.now(dt.timezone.utc)
    date = args.date or now.strftime("%Y-%m-%d")
    out_env = os.environ.get("OUT")
    command = ["python", "-m", "benchmarks.gpu.suite"] + ["$OUT" if a == out_env else a for a in args.argv]
    doc = schema.new_document(command, args.dry_run, now.strftime("%Y-%m-%dT%H:%M:%SZ"))
    doc["budget_s"] = args.budget
    previous = _previous_document(Path(args.state), args.dry_run, log) if args.resume else None
    if previous is not None:
        doc["environment"], doc["sections"] = previous["environment"], previous["sections"]
        doc["previous_calls"] = previous.get("previous_calls", []) + [
            {k: previous.get(k) for k in ("generated_utc", "command", "budget_s")}
        ]
        date = args.date or previous["generated_utc"][:10]
    if not args.dry_run and not _cuda_ok():
        log("warning: torch sees no CUDA device; GPU figures will be 'not measured' with the error")
    results_dir = (
        Path(args.results_dir) if args.results_dir else (None if args.dry_run else REPO / "benchmarks" / "results")
    )
    written: list[Path] = []

    def stem() -> str:
        name = doc["environment"].get("device_name") or ("cpu-dry-run" if args.dry_run else "no-gpu")
        return schema.result_name(name, date)

    def save():
        paths = [out_dir / f"{stem()}.json"] + ([results_dir / f"{stem()}.json"] if results_dir else [])
        for p in paths + [Path(args.state)]:
            schema.write_json(p, doc)
        (out_dir / f"{stem()}.md").write_text(schema.markdown(doc))
        written[:] = paths + [out_dir / f"{stem()}.md"]

    names = list(SECTIONS)
    for name in names:
        if name not in args.run:
            if name not in doc["sections"]:  # a resumed document keeps the previous call's sections
                doc["sections"][name] = {"status": "skipped", "reason": "not selected"}
            continue
        own, need = SECTIONS[name]
        later_need = sum(SECTIONS[n][1] for n in names[names.index(name) + 1 :] if n in args.run)
        if not budget.fits(need):
            doc["sections"][name] = {
                "status": "skipped",
                "reason": f"over the total budget ({budget.left():.0f} s left, needs {need} s)",
            }
            save()
            continue
        deadline = (
            min(budget.section_deadline(own), budget.end - later_need)
            if budget.left() - later_need >= need
            else budget.section_deadline(own)
        )
        ctx = SectionContext(
            name,
            deadline,
            args.dry_run,
            log,
            verbose=args.verbose,
            options={"iters": args.iters, "images": args.images, "kodak": args.kodak},
        )
        log(f"== {name} ({ctx.left():.0f} s)")
        t0 = time.monotonic()
        try:
            data = _run_section(name, ctx, args, out_dir)
            status = "partial" if ctx.errors else "ok"
            if args.dry_run:
                status = "skipped"
            sec = {
                "status": status,
                "reason": "dry run" if args.dry_run else ("; ".join(ctx.errors[:3]) if ctx.errors else None),
                **data,
            }
        except Exception as exc:  # a section's own bug must not lose the other sections' figures
            sec = {
                "status": "failed",
                "reason": schema.error_text(exc),
            }
            if args.verbose:
                import traceback

                log(traceback.format_exc())
        sec["seconds"] = round(time.monotonic() - t0, 1)
        if name == "environment":
            doc["environment"] = sec.pop("environment", {})
        doc["sections"][name] = sec
        save()
    save()
    return doc, written


def _previous_document(path: Path, dry_run: bool, log) -> dict | None:
    """The document a previous call left at ``path`` (same kind of run), or None with a note why not."""
    try:
        prev = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        log(f"note: --resume found no previous document ({type(exc).__name__}); starting a new one")
        return None
    if schema.validate(prev) or prev.get("dry_run") != dry_run:
        log(f"note: the document at {path} is not a valid {'dry' if dry_run else 'measured'} run; starting a new one")
        return None
    return prev


def _run_section(name: str, ctx: SectionContext, args, out_dir: Path) -> dict:
    if name == "environment":
        return {"environment": section_environment(ctx)}
    if name == "build":
        return section_build(ctx, args, out_dir)
    if name == "pytest":
        return section_pytest(ctx, out_dir)
    if name == "accuracy":
        from .kernels import accuracy

        return accuracy(ctx)
    if name == "speed":
        from .kernels import speed

        return speed(ctx)
    if name == "codec":
        from .codec import end_to_end

        return end_to_end(ctx, REPO)
    if name == "wavefront":
        from .codec import wavefront

        return wavefront(ctx, REPO)
    if name == "rtx":
        return section_rtx(ctx, args)
    raise SuiteError(f"unknown section {name}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse_args(argv)
        args.argv = argv
        doc, written = run_suite(args)
    except SuiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print()
    print(schema.markdown(doc))
    for p in written:
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
