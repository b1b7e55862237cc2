"""C++ runtime vs Python runtime: encode and decode time of the same bundles on CPU, one run.

`python -m benchmarks cpp-runtime [--data DIR] [--images N] [--spatial-images N] [--threads T] [--repeats R]
 [--rounds R] [--cpu N] [--build DIR] [--cache DIR] [--json PATH] [--verbose]`

Models: bmshj2018-hyperprior at quality 3 (N=128, M=192) and a tiny mbt2018 (spatial context), both with the seeded
RANDOM weights of ``train.models.seeded.codable_model``, exported once into the kodak-decode cache. Images: the first
``--images`` Kodak images for the hyperprior, the first ``--spatial-images`` for the spatial-context model (768x512:
a 48x32 latent, 141 wavefront steps).

Both sides run as processes that serve a bundle (``ServeProcess``): the C++ side ``runtime/cpp/bench/codec_bench.cpp``
(built here with ``-DLICTRT_BUILD_BENCH=ON``: the lictrt Encoder/Decoder on ``OnnxRuntimeRunner``), the Python side
one ``runtime.Codec`` on the onnxruntime backend in an interpreter that imports only the runtime. Each keeps its
sessions open across images. Per image each side encodes and decodes after one warm-up, ``--repeats`` times, in each
of ``--rounds`` rounds; every round starts fresh processes (the memory layout of one process alone moves a network's
time measurably, the same program in two processes differs) and alternates which side goes first. Both are pinned
to one CPU with one thread (``--cpu``). Per image: the minimum over all runs (robust to other jobs on a shared
machine), and the median beside it. ``plan_ms`` = total − network: the part the runtime's own code spends (plan,
coder, conversions, container), which is what differs between the two sides. Both load the same ONNX Runtime
library with the same session settings (``--threads`` intra-op threads for analysis and synthesis, the pinned
1-thread path for parse-critical graphs), so the networks cost the same; the difference is the plan code around
them. Both encodes must give the same bytes. The spatial-context loop is reported per step: the whole loop, the
context_step call (runner + ONNX Runtime), and the rest (window gathering, index building, coder, scatter).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Optional

import numpy as np
import typer

from benchmarks.common import (
    REPO_ROOT,
    BenchmarkError,
    CacheOpt,
    JsonOpt,
    command_main,
    default_kodak,
    emit,
    list_images,
    load_rgb,
    portable_path,
)
from runtime.cli import VerboseOpt

CPP = REPO_ROOT / "runtime" / "cpp"


class CppRuntimeError(BenchmarkError):
    """The C++ benchmark program cannot be built or run, or the two runtimes disagree."""


def build(build_dir: Path, verbose: bool = False) -> Path:
    """Configure and build the C++ benchmark program; returns its path."""
    out = None if verbose else subprocess.DEVNULL
    env = dict(os.environ, CMAKE_BUILD_PARALLEL_LEVEL=os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", "2"))
    for cmd in (
        [
            "cmake",
            "-S",
            str(CPP),
            "-B",
            str(build_dir),
            "-DCMAKE_BUILD_TYPE=Release",
            "-DLICTRT_BUILD_BENCH=ON",
            "-DLICTRT_BUILD_TESTS=OFF",
            "-DLICTRT_INSTALL=OFF",
            f"-DPython_EXECUTABLE={sys.executable}",
        ],
        ["cmake", "--build", str(build_dir), "--target", "lictrt_codec_bench"],
    ):
        if subprocess.run(cmd, stdout=out, stderr=out, env=env, check=False).returncode != 0:
            raise CppRuntimeError(
                f"{' '.join(cmd[:3])} failed (rerun with --verbose); the benchmark needs ONNX "
                "Runtime headers and libpng"
            )
    return build_dir / "lictrt_codec_bench"


def pin_cpu(cpu: int | None, threads: int) -> int | None:
    """Pin this thread, and so the ONNX Runtime threads and the C++ process started after it, to one CPU: both
    sides then run on the same core and are not moved between cores mid-run. ``None``: the last CPU when one
    thread is used; -1 (or no sched_setaffinity): no pinning. Returns the CPU pinned to."""
    if not hasattr(os, "sched_setaffinity") or cpu == -1 or (cpu is None and threads != 1):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    cpu = cpus[-1] if cpu is None else cpu
    if cpu not in cpus:
        raise CppRuntimeError(f"--cpu {cpu} is not one of this process's CPUs {cpus}")
    os.sched_setaffinity(0, {cpu})
    return cpu


def _median(v) -> float:
    return float(np.median(np.asarray(v, dtype=np.float64)))


def _summary(stats: list[dict]) -> dict:
    """Minima (ms) of total, network, entropy and total − network (plan_ms), the median total; the spatial-context
    loop per step when there is one (minima)."""
    for s in stats:
        s["plan_s"] = s["total_s"] - s["network_s"]
    out = {
        k.replace("_s", "_ms"): 1e3 * min(s[k] for s in stats) for k in ("total_s", "network_s", "entropy_s", "plan_s")
    }
    out["median_total_ms"] = 1e3 * _median([s["total_s"] for s in stats])
    out["runs"] = len(stats)
    loop = [s.get("loop_s") or 0.0 for s in stats]
    if max(loop) > 0:  # the run with the fastest loop, split into its context_step calls and the rest
        best = min(range(len(stats)), key=lambda i: loop[i])
        steps, ctx = stats[best]["sequential_steps"], stats[best]["context_step_s"]
        out.update(
            steps=steps,
            loop_ms=1e3 * loop[best],
            loop_per_step_ms=1e3 * loop[best] / steps,
            context_step_call_ms=1e3 * ctx / steps,
            loop_other_per_step_ms=1e3 * (loop[best] - ctx) / steps,
        )
    return out


class ServeProcess:
    """One runtime process serving a bundle over a line protocol: each stdin line ``IMAGE.png R OUT.lic`` is
    answered by one JSON line of raw per-run stats ({"encode": [...], "decode": [...], "onnxruntime": version});
    an empty line ends it. Its ONNX Runtime sessions stay open across images, as an application's would."""

    def __init__(self, name: str, cmd: list[str]):
        self.name = name
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT
        )

    def run(self, png: Path, repeats: int) -> tuple[dict, bytes]:
        """Raw per-run stats of one image (after one warm-up encode and decode), and its bytes."""
        with tempfile.TemporaryDirectory() as tmp:
            lic = Path(tmp) / "out.lic"
            try:
                self.proc.stdin.write(f"{png} {repeats} {lic}\n")
                self.proc.stdin.flush()
                line = self.proc.stdout.readline()
            except BrokenPipeError:  # it has ended
                line = ""
            if not line:
                err = (self.proc.stderr.read().strip().splitlines() or ["(no message)"])[-1]
                raise CppRuntimeError(f"the {self.name} benchmark process failed on {png.name}: {err}")
            return json.loads(line), lic.read_bytes()

    def close(self) -> None:
        """End the process (the empty line; killed if it does not end within a minute, or if it has already
        ended and its stdin can take nothing more: a failed side)."""
        try:
            self.proc.communicate("\n", timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
        except BrokenPipeError:  # the line of a failed run is still buffered for a pipe nobody reads
            self.proc.kill()
            self.proc.wait()
            for f in (self.proc.stdout, self.proc.stderr):
                f.close()


def cpp_process(exe: Path, bundle: Path, threads: int) -> ServeProcess:
    """The C++ side: ``lictrt_codec_bench BUNDLE --serve``."""
    return ServeProcess("C++", [str(exe), str(bundle), "--serve", "--threads", str(threads)])


def python_process(bundle: Path, threads: int) -> ServeProcess:
    """The Python side: :func:`serve_python` in a fresh interpreter that imports only the runtime."""
    code = "import sys; from benchmarks.cpp_runtime import serve_python; serve_python(sys.argv[1], int(sys.argv[2]))"
    return ServeProcess("Python", [sys.executable, "-c", code, str(bundle), str(threads)])


def run_python(codec, image: np.ndarray, repeats: int) -> tuple[dict, bytes]:
    """Raw per-run stats of the Python runtime (after one warm-up encode and decode), and its bytes."""
    data = codec.encode(image)
    codec.decode(data)
    enc, dec = [], []
    for _ in range(repeats):
        data = codec.encode(image)
        enc.append(dict(codec.last_stats))
    for _ in range(repeats):
        codec.decode(data)
        dec.append(dict(codec.last_stats))
    for s in enc + dec:
        s["context_step_s"] = (s.get("network_by_graph_s") or {}).get("context_step", 0.0)
    return {"encode": enc, "decode": dec}, data


def serve_python(bundle: str, threads: int) -> None:
    """The Python side of :class:`ServeProcess`'s protocol: one ``runtime.Codec`` on the onnxruntime backend."""
    import onnxruntime

    from runtime import Codec

    codec = Codec.open(bundle, backend="onnxruntime", threads=threads)
    for line in sys.stdin:
        if not line.strip():
            break
        png, repeats, lic = line.split()
        res, data = run_python(codec, load_rgb(Path(png)), int(repeats))
        Path(lic).write_bytes(data)
        res["onnxruntime"] = onnxruntime.__version__
        print(json.dumps(res), flush=True)


SIDES = ("cpp", "python")


def measure(
    exe: Path, bundle: Path, images: list[Path], threads: int, repeats: int, rounds: int = 2, progress=print
) -> dict:
    """Both sides on every image in ``rounds`` rounds. Each round starts a fresh process per side, so that no one
    process's memory layout decides a side's figure; within a round the side that goes first alternates from image
    to image."""
    raw = {p: {side: {"encode": [], "decode": []} for side in SIDES} for p in images}
    nbytes: dict[Path, int] = {}
    ort = ""
    for k in range(rounds):
        procs = {"cpp": cpp_process(exe, bundle, threads), "python": python_process(bundle, threads)}
        try:
            for i, path in enumerate(images):
                data = {}
                for side in SIDES if (k + i) % 2 == 0 else SIDES[::-1]:
                    r, data[side] = procs[side].run(path, repeats)
                    if side == "cpp":
                        ort = r["onnxruntime"]
                    for op in ("encode", "decode"):
                        raw[path][side][op] += r[op]
                if data["cpp"] != data["python"]:
                    raise CppRuntimeError(
                        f"{path.name}: the C++ and Python encodes differ ({len(data['cpp'])} vs "
                        f"{len(data['python'])} bytes)"
                    )
                nbytes[path] = len(data["python"])
        finally:
            for p in procs.values():
                p.close()
        progress(f"  round {k + 1}/{rounds} done")
    rows = [_row(path, raw[path], nbytes[path], ort, progress) for path in images]
    return _totals(rows)


def _row(path: Path, raw: dict, nbytes: int, ort: str, progress) -> dict:
    """One image's row (its encodes byte-identical in every round): per side the minima of its runs over all
    rounds, and the speed-ups."""
    cpp = {op: _summary(raw["cpp"][op]) for op in ("encode", "decode")}
    cpp["onnxruntime"] = ort
    py = {op: _summary(raw["python"][op]) for op in ("encode", "decode")}
    row = {
        "image": path.name,
        "size": list(raw["python"]["encode"][0]["size"]),  # the Python runtime's stats carry it
        "bytes": nbytes,
        "identical_bytes": True,
        "cpp": cpp,
        "python": py,
    }
    for op in ("encode", "decode"):
        row[f"{op}_speedup"] = py[op]["total_ms"] / cpp[op]["total_ms"]
        row[f"{op}_speedup_of_medians"] = py[op]["median_total_ms"] / cpp[op]["median_total_ms"]
        row[f"{op}_plan_speedup"] = py[op]["plan_ms"] / cpp[op]["plan_ms"]
    progress(
        f"  {path.name}: encode C++ {cpp['encode']['total_ms']:.1f} ms / Python {py['encode']['total_ms']:.1f}"
        f" ms, decode C++ {cpp['decode']['total_ms']:.1f} ms / Python {py['decode']['total_ms']:.1f} ms"
    )
    return row


def _totals(rows: list[dict]) -> dict:
    out = {"images": rows}
    for op in ("encode", "decode"):
        cpp_t = sum(r["cpp"][op]["total_ms"] for r in rows)
        py_t = sum(r["python"][op]["total_ms"] for r in rows)
        cpp_p = sum(r["cpp"][op]["plan_ms"] for r in rows)
        py_p = sum(r["python"][op]["plan_ms"] for r in rows)
        out[op] = {
            "cpp_total_ms": cpp_t,
            "python_total_ms": py_t,
            "speedup_of_totals": py_t / cpp_t,
            "median_speedup": _median([r[f"{op}_speedup"] for r in rows]),
            "min_speedup": min(r[f"{op}_speedup"] for r in rows),
            "cpp_plan_ms": cpp_p,
            "python_plan_ms": py_p,
            "plan_speedup_of_totals": py_p / cpp_p,
            "min_plan_speedup": min(r[f"{op}_plan_speedup"] for r in rows),
            "cpp_not_slower_anywhere": all(r[f"{op}_speedup"] >= 1.0 for r in rows),
            "cpp_not_slower_anywhere_by_median": all(r[f"{op}_speedup_of_medians"] >= 1.0 for r in rows),
        }
    return out


def _bundle(arch: str, cache: Path, **kw) -> tuple[Path, str]:
    from benchmarks.kodak_decode import cached_bundle
    from train.models.seeded import codable_model

    m = codable_model(arch, seed=0, **kw)
    cfg = {k: getattr(m, k) for k in ("N", "M") if hasattr(m, k)}
    bundle, _ = cached_bundle(m, cache, progress=False)
    return bundle, f"{arch} {kw} {cfg}, RANDOM weights (seed 0)"


def run(args) -> dict:
    from benchmarks.kodak_decode import default_cache

    data = Path(args.data) if args.data else default_kodak()
    cache = Path(args.cache) if args.cache else default_cache()
    exe = build(Path(args.build), args.verbose)
    pinned = pin_cpu(args.cpu, args.threads)
    res = {
        "threads": args.threads,
        "repeats": args.repeats,
        "rounds": args.rounds,
        "pinned_cpu": pinned,
        "statistic": (
            "per image: minimum over rounds x repeats runs per side (median_total_ms beside it; "
            "<op>_speedup_of_medians and cpp_not_slower_anywhere_by_median compare the medians)"
        ),
        "data": portable_path(data),
        "machine": f"{os.cpu_count()} CPUs, shared with other jobs: compare ratios within this run",
        "models": {},
    }
    for key, arch, kw, n in (
        ("hyperprior", "bmshj2018-hyperprior", {"quality": 3}, args.images),
        ("spatial_context", "mbt2018", {"preset": "tiny"}, args.spatial_images),
    ):
        if n <= 0:
            continue
        bundle, desc = _bundle(arch, cache, **kw)
        print(f"{key}: {desc}", flush=True)
        r = measure(exe, bundle, list_images(data, n), args.threads, args.repeats, args.rounds)
        r["model"] = desc
        res["models"][key] = r
    for key in ("cpp_not_slower_anywhere", "cpp_not_slower_anywhere_by_median"):
        res[key] = all(m[op][key] for m in res["models"].values() for op in ("encode", "decode"))
    return res


def format_table(res: dict) -> str:
    lines = [
        (
            f"C++ vs Python runtime, ONNX Runtime CPU, {res['threads']} thread(s), min of "
            f"{res['rounds']}x{res['repeats']} runs per image"
        )
    ]
    for key, m in res["models"].items():
        lines.append(f"{key}: {m['model']}")
        for op in ("encode", "decode"):
            s = m[op]
            lines.append(
                f"  {op}: C++ {s['cpp_total_ms']:.1f} ms, Python {s['python_total_ms']:.1f} ms over "
                f"{len(m['images'])} image(s): {s['speedup_of_totals']:.2f}x (median {s['median_speedup']:.2f}x,"
                f" min {s['min_speedup']:.2f}x); without the networks C++ {s['cpp_plan_ms']:.1f} ms, Python "
                f"{s['python_plan_ms']:.1f} ms: {s['plan_speedup_of_totals']:.2f}x"
            )
        first = m["images"][0]
        if "steps" in first["cpp"]["decode"]:
            for side in ("cpp", "python"):
                d = first[side]["decode"]
                lines.append(
                    f"  {side} decode loop, {first['image']}: {d['steps']} steps, {d['loop_per_step_ms']:.3f}"
                    f" ms/step = context_step call {d['context_step_call_ms']:.3f} + rest "
                    f"{d['loop_other_per_step_ms']:.3f}"
                )
    return "\n".join(lines)


def cli(
    data: Annotated[
        Optional[Path], typer.Option(metavar="DIR", help="Kodak folder (default ../shared/data/kodak)")
    ] = None,
    images: Annotated[int, typer.Option(metavar="N", help="images for the hyperprior model")] = 24,
    spatial_images: Annotated[int, typer.Option(metavar="N", help="images for the spatial-context model")] = 4,
    threads: Annotated[int, typer.Option(metavar="N", help="intra-op threads of analysis/synthesis, both sides")] = 1,
    repeats: Annotated[int, typer.Option(metavar="N", help="timed runs per side per round")] = 3,
    rounds: Annotated[int, typer.Option(metavar="N", help="rounds per image, alternating which side goes first")] = 2,
    cpu: Annotated[
        Optional[int],
        typer.Option(
            metavar="N",
            help="pin both sides to this CPU (Linux; default: the last CPU when --threads is 1; -1: no pinning)",
        ),
    ] = None,
    build: Annotated[
        Optional[Path], typer.Option(metavar="DIR", help="C++ build folder (default build/bench-cpp in the repository)")
    ] = None,
    cache: CacheOpt = None,
    json_path: JsonOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """C++ runtime vs Python runtime: encode/decode time on CPU, and the spatial-context loop per step.

    Builds the lictrt program, exports seeded models (cached, --cache defaults to the kodak-decode cache) and
    times both runtimes on the same bundles and images."""
    t0 = time.perf_counter()
    args = SimpleNamespace(
        data=str(data) if data else None,
        images=images,
        spatial_images=spatial_images,
        threads=threads,
        repeats=repeats,
        rounds=rounds,
        cpu=cpu,
        build=str(build or REPO_ROOT / "build" / "bench-cpp"),
        cache=str(cache) if cache else None,
        verbose=verbose,
    )
    res = run(args)
    res["wall_s"] = time.perf_counter() - t0
    emit(res, json_path, format_table)


def main(argv: list[str] | None = None) -> int:
    return command_main("cpp-runtime", argv)


if __name__ == "__main__":
    sys.exit(main())
