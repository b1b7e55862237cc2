"""CPU-side preparation of what the device calls carry (driven by ``benchmarks/gpu/prepare.sh``).

``python -m benchmarks.gpu.prepare libs``                          kernels library (sm_90) + coder extension (cp312)
``python -m benchmarks.gpu.prepare bundles [--out .rtx/bundles]``  tiny bundles (+ CPU-built RTX engines)
``python -m benchmarks.gpu.prepare split WHEEL [--part1-mib auto]`` RTX libs wheel -> .rtx/p1, .rtx/p2 (+ manifest)
``python -m benchmarks.gpu.prepare sizes``                          what each of the two calls carries, vs 64 MiB
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from .rtx import RtxError, split_file

REPO = Path(__file__).resolve().parents[2]
CARRY_LIMIT = 64 * 2**20
CARRY_MARGIN = 2 * 2**20  # files that appear between preparing and calling (logs, a results JSON)
BUNDLE_ARCHS = ("bmshj2018-hyperprior", "ssmic")  # GeneralizedDivisiveNorm and SelectiveScan2D bodies
BUNDLE_SIZE = "256x256"
MAX_ENGINE_BYTES = 4 * 2**20  # CPU-built SSMIC engines are ~25 MB: too large to carry; the device builds them
# what each device call carries besides the working tree (README.md: the two calls)
CALLS = {"call 1 (suite)": [".gpu", ".whl", ".rtx/p1"], "call 2 (rtx)": [".rtx/p2", ".rtx/bundles"]}


class PrepareError(RuntimeError):
    """A preparation step failed (one line)."""


def tree_bytes(repo: Path = REPO) -> int:
    """Bytes of the working tree that travels: tracked plus untracked-but-not-ignored files."""
    proc = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=repo, capture_output=True)
    if proc.returncode != 0:
        raise PrepareError(f"git ls-files failed: {proc.stderr.decode().strip()}")
    total = 0
    for name in proc.stdout.decode().split("\0"):
        p = repo / name
        if name and p.is_file() and not p.is_symlink():
            total += p.stat().st_size
    return total


def path_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def call_sizes(repo: Path = REPO, tree: int | None = None) -> dict[str, int]:
    tree = tree_bytes(repo) if tree is None else tree
    return {name: tree + sum(path_bytes(repo / c) for c in carry) for name, carry in CALLS.items()}


def part1_bytes(repo: Path = REPO, tree: int | None = None) -> int:
    """The largest RTX chunk 1 that still lets call 1 (the working tree, .gpu, .whl and the chunk) fit."""
    tree = tree_bytes(repo) if tree is None else tree
    others = sum(path_bytes(repo / c) for c in CALLS["call 1 (suite)"] if not c.startswith(".rtx"))
    room = CARRY_LIMIT - CARRY_MARGIN - tree - others
    if room <= 0:
        raise PrepareError(f"call 1 is full before the RTX chunk ({(tree + others) / 2**20:.1f} MiB)")
    return room


def make_bundles(out: Path, force: bool = False) -> list[str]:
    """Seeded tiny checkpoints -> fixed-size bundles -> one TensorRT-RTX engine per graph, built here on the CPU.
    Idempotent: an existing bundle is kept, and only its missing engines are (re)tried, one graph at a time so
    that one failing graph does not stop the others."""
    import json

    import torch

    from train.checkpoint import save_checkpoint
    from train.models import create_model

    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    notes = []
    for arch in BUNDLE_ARCHS:
        bundle = out / arch
        if force or not (bundle / "manifest.json").is_file():
            torch.manual_seed(0)
            ckpt = out / f"{arch}-tiny.pth"
            save_checkpoint(
                ckpt, create_model(arch, preset="tiny"), lmbda=0.013, metric="mse", step=0, epoch=0, stats={}
            )
            cmd = [
                sys.executable,
                "-m",
                "export.onnx",
                str(ckpt),
                "-o",
                str(bundle),
                "--size",
                BUNDLE_SIZE,
                "--no-check",
            ]
            print("$", " ".join(cmd[1:]), flush=True)
            proc = subprocess.run(cmd, cwd=REPO)
            ckpt.unlink(missing_ok=True)
            if proc.returncode != 0:
                notes.append(f"{arch}: export failed (exit {proc.returncode})")
                continue
        graphs = json.loads((bundle / "manifest.json").read_text())["graphs"]
        for g in graphs:
            if list((bundle / "engines").glob(f"{g}.rtx.*")):  # an engine, or a .too-large marker
                continue
            cmd = [sys.executable, "-m", "export.trt", str(bundle), "--backend", "rtx", "--graphs", g]
            print("$", " ".join(cmd[1:]), flush=True)
            if subprocess.run(cmd, cwd=REPO).returncode != 0:
                notes.append(f"{arch}/{g}: no CPU-built engine (export.trt failed; the device still builds one)")
        notes += drop_large_engines(bundle)
        notes.append(f"{arch}: {bundle}")
    return notes


def drop_large_engines(bundle: Path, limit: int = MAX_ENGINE_BYTES) -> list[str]:
    """Delete CPU-built engines over ``limit`` bytes (leaving a ``.too-large`` marker so they are not rebuilt)
    and their manifest entries and digests, so the bundle still loads; the device builds those graphs itself."""
    import json

    notes = []
    for engine in sorted((bundle / "engines").glob("*.engine")):
        size = engine.stat().st_size
        if size > limit:
            engine.with_suffix(".too-large").write_text(f"{size} bytes: not carried\n")
            engine.unlink()
            notes.append(f"{bundle.name}/{engine.name}: {size / 2**20:.1f} MiB, dropped (the device builds it)")
    mpath = bundle / "manifest.json"
    manifest = json.loads(mpath.read_text())
    engines = manifest.get("engines") or {}
    kept = {k: v for k, v in engines.items() if not isinstance(v, dict) or (bundle / v.get("file", "")).is_file()}
    files = manifest.get("files")
    kept_files = None if files is None else {n: d for n, d in files.items() if (bundle / n).is_file()}
    if kept != engines or kept_files != files:
        manifest["engines"] = kept
        if files is not None:
            manifest["files"] = kept_files
        mpath.write_text(json.dumps(manifest, indent=1) + "\n")
    return notes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gpu.prepare", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("libs")
    sp = sub.add_parser("split")
    sp.add_argument("wheel")
    sp.add_argument("--part1-mib", default="auto", help="chunk 1 size, or 'auto': what call 1 has room for")
    sp.add_argument("--rtx-dir", default=str(REPO / ".rtx"))
    bp = sub.add_parser("bundles")
    bp.add_argument("--out", default=str(REPO / ".rtx" / "bundles"))
    bp.add_argument("--force", action="store_true")
    sub.add_parser("sizes")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "libs":
            from .artifacts import prepare

            prepare()
        elif args.cmd == "split":
            rtx = Path(args.rtx_dir)
            first = part1_bytes() if args.part1_mib == "auto" else int(float(args.part1_mib) * 2**20)
            m = split_file(Path(args.wheel), [rtx / "p1", rtx / "p2"], first)
            print(
                f"{m['wheel']}: {m['bytes'] / 2**20:.1f} MiB -> "
                + ", ".join(f"{p['name']} {p['bytes'] / 2**20:.1f} MiB" for p in m["parts"])
            )
        elif args.cmd == "bundles":
            for note in make_bundles(Path(args.out), args.force):
                print(note)
        else:
            over = False
            for name, size in call_sizes().items():
                ok = size <= CARRY_LIMIT
                over |= not ok
                print(f"{name}: {size / 2**20:.1f} MiB of 64 MiB {'ok' if ok else 'TOO LARGE'}")
            return 1 if over else 0
    except (RtxError, PrepareError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
