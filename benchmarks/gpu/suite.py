"""``python -m benchmarks.gpu.suite``: the GPU validation suite, in one command inside one time budget.

Sections, in order (each inside its own time budget; one that no longer fits is skipped with the reason):
  environment  device, driver, CUDA, torch, nvcc, SM count, L2, date
  build        the kernels library with nvcc for the device's architecture (sm_90 on H100/H200)
  pytest       ``pytest tests/trt_plugins/test_kernels_gpu.py -m gpu``: pass/fail counts
  accuracy     kernel error figures vs float64 references (fresh random inputs, poisoned outputs)
  speed        HBM copy ceiling; SelectiveScan2D kernel vs PyTorch chunked and four-copy; GDN kernel vs PyTorch
  e2e          torch-CUDA codecs on Kodak (random weights), network and entropy coding separately
  rtx          TensorRT-RTX on the device (subprocess; see benchmarks/gpu/rtx.py)
Writes ``<out>/gpu-<device>-<date>.json`` (+ ``.md``) after every section, and a copy under
``benchmarks/results/``.  ``--dry-run`` measures nothing and marks every GPU figure "not measured".
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
DEFAULT_BUDGET_S = 540.0  # the device tool kills a command at 600 s; run.sh needs a few seconds around it
# name: (budget s, minimum s it needs to start)
SECTIONS = {
    "environment": (20, 1),
    "build": (150, 30),
    "pytest": (150, 30),
    "accuracy": (70, 10),
    "speed": (110, 20),
    "e2e": (110, 20),
    "rtx": (150, 20),
}


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
    ap.add_argument("--images", type=int, default=4, help="Kodak images per model in e2e (0 = all)")
    ap.add_argument("--kodak", default=None, help="Kodak folder (default .gpu/kodak, else assets/images/kodak)")
    ap.add_argument("--rtx-dir", default=str(REPO / ".rtx"))
    ap.add_argument(
        "--stash",
        default=str(Path(tempfile.gettempdir()) / "lictrt-rtx"),
        help="where the first call stashed RTX chunk 1",
    )
    ap.add_argument("--bundles", default=str(REPO / ".gpu" / "bundles"), help="tiny exported bundles for rtx")
    ap.add_argument("--cuda-arch", default=None, help="CMAKE_CUDA_ARCHITECTURES (default: the device's, -real)")
    ap.add_argument("--date", default=None, help=argparse.SUPPRESS)  # tests pin the file name
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


def section_build(ctx: SectionContext, args, out_dir: Path) -> dict:
    """cmake configure + build of the kernels library only (no TensorRT headers, no CPU emulation)."""
    rec: dict = {"build_dir": str(BUILD_DIR.relative_to(REPO))}

    def run():
        arch = args.cuda_arch or _device_arch()
        rec["cuda_architectures"] = arch
        log = out_dir / "build.log"
        cmds = [
            [
                "cmake",
                "-S",
                str(REPO / "trt_plugins"),
                "-B",
                str(BUILD_DIR),
                "-DLICTRT_BUILD_PLUGINS=OFF",
                "-DLICTRT_BUILD_CPU_EMULATION=OFF",
                f"-DCMAKE_CUDA_ARCHITECTURES={arch}",
            ],
            ["cmake", "--build", str(BUILD_DIR), "-j", str(min(os.cpu_count() or 1, 16))],
        ]
        t0 = time.monotonic()
        with open(log, "w") as f:
            for cmd in cmds:
                f.write("$ " + " ".join(cmd) + "\n")
                f.flush()
                proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=max(5.0, ctx.left()))
                if proc.returncode != 0:
                    raise RuntimeError(f"{' '.join(cmd[:2])} failed (exit {proc.returncode}); see build.log")
        lib = BUILD_DIR / "liblictrt_kernels.so"
        if not lib.is_file():
            raise RuntimeError(f"{lib.name} was not produced")
        rec["library"] = str(lib.relative_to(REPO))
        elf = _cmd_output(["cuobjdump", "--list-elf", str(lib)])
        rec["embedded_sass"] = sorted(set(re.findall(r"sm_\d+a?", elf or "")))
        usage = _cmd_output(["cuobjdump", "--dump-resource-usage", str(lib)], timeout=60) or ""
        with open(log, "a") as f:
            f.write(usage + "\n")
        rec["resource_usage"] = [" ".join(line.split()) for line in usage.splitlines() if "REG:" in line][:24]
        return time.monotonic() - t0

    rec["build_time"] = ctx.measure("s", run, need_s=10, note="cmake configure + build, kernels only")
    if not ctx.dry_run and schema.is_measured(rec["build_time"]):
        os.environ["LICTRT_KERNELS_LIB"] = str(BUILD_DIR / "liblictrt_kernels.so")
    return rec


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


def section_pytest(ctx: SectionContext, out_dir: Path) -> dict:
    rec: dict = {"command": "python -m pytest tests/trt_plugins/test_kernels_gpu.py -m gpu"}
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
                        "tests/trt_plugins/test_kernels_gpu.py",
                        "-m",
                        "gpu",
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
    doc = schema.new_document(sys.argv[:1] + list(args.argv), args.dry_run, now.strftime("%Y-%m-%dT%H:%M:%SZ"))
    doc["budget_s"] = args.budget
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
        for p in paths:
            schema.write_json(p, doc)
        (out_dir / f"{stem()}.md").write_text(schema.markdown(doc))
        written[:] = paths + [out_dir / f"{stem()}.md"]

    names = list(SECTIONS)
    for name in names:
        if name not in args.run:
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
                "reason": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
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
    if name == "e2e":
        from .codec import end_to_end

        return end_to_end(ctx, REPO)
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
