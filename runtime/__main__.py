"""``python -m runtime``: encode / decode images with a codec bundle, inspect ``.lic`` and image files.

  python -m runtime encode BUNDLE IN.png -o OUT.lic [--backend B] [--mode fast|compat]
  python -m runtime encode BUNDLE photos/ -o lic/ -j 4        # a folder (or several files): one output each
  python -m runtime decode BUNDLE IN.lic -o OUT.png [--backend B]
  python -m runtime encode BUNDLE IN.png -o OUT.lic --mask LABELS.png   # grouped plans (GIT-SSIC)
  python -m runtime decode BUNDLE IN.lic -o OUT.png --groups 1,3       # only those groups' streams are read
  python -m runtime info IN.lic|IMAGE

Exit status and error lines follow runtime/cli.py (0 ok, 1 error, 2 usage, 130 interrupted).
"""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from .cli import (
    EXIT_ERROR,
    BundleArg,
    CoderMode,
    QuietOpt,
    UsageError,
    VerboseOpt,
    error_line,
    new_app,
    progress,
    run,
    step_progress,
)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".pgm")

app = new_app(
    "python -m runtime", "lictrt codec runtime: image ⇄ .lic bitstream with a codec bundle.", no_args_is_help=True
)


class Backend(str, Enum):
    auto = "auto"
    onnxruntime = "onnxruntime"
    torch = "torch"
    tensorrt = "tensorrt"


class ParsePath(str, Enum):
    auto = "auto"
    onnxruntime = "onnxruntime"
    torch = "torch"
    torch_cuda = "torch-cuda"


class Order(str, Enum):
    wavefront = "wavefront"
    raster = "raster"


OutputOpt = Annotated[
    Path, typer.Option("-o", "--output", help="output file; a folder when INPUT is a folder or several files")
]
BackendOpt = Annotated[Backend, typer.Option(help="where reconstruction graphs run")]
DeviceOpt = Annotated[Optional[str], typer.Option(help="cpu (default), cuda, cuda:N")]
ThreadsOpt = Annotated[Optional[int], typer.Option(help="intra-op threads of the reconstruction backend")]
CkptOpt = Annotated[
    Optional[Path],
    typer.Option(
        help="checkpoint for --backend torch (bundles carry no torch weights); must be the bundle's own model"
    ),
]
ParseOpt = Annotated[
    ParsePath,
    typer.Option(
        help="where parse-critical graphs run (default: pinned ONNX Runtime CPU fp32; torch-cuda: fastest on a GPU, "
        "exact only for decoders on the same GPU model)"
    ),
]
JobsOpt = Annotated[int, typer.Option("-j", "--jobs", min=1, help="files coded in parallel threads")]


def _open(bundle, backend, device, threads, checkpoint, parse_path, **kw):
    from .codec import Codec

    return Codec.open(
        bundle,
        backend=backend.value,
        device=device,
        threads=threads,
        checkpoint=checkpoint,
        parse_path=parse_path.value,
        **kw,
    )


def _jobs(inputs: list[Path], output: Path, suffixes: tuple[str, ...], out_suffix: str) -> list[tuple[Path, Path]]:
    """(source, destination) pairs: one file to ``output``, or every file of folders / a list into folder ``output``."""
    if len(inputs) == 1 and not inputs[0].is_dir():
        if output.is_dir():
            return [(inputs[0], output / (inputs[0].stem + out_suffix))]
        return [(inputs[0], output)]
    files: list[Path] = []
    for p in inputs:
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in suffixes)
            if not found:
                raise UsageError(f"{p} holds no {' / '.join(suffixes)} files")
            files += found
        else:
            files.append(p)
    if output.exists() and not output.is_dir():
        raise UsageError(f"-o {output} must be a folder when coding several files")
    pairs, seen = [], {}
    for f in files:
        dst = output / (f.stem + out_suffix)
        if dst in seen:
            raise UsageError(f"{f} and {seen[dst]} would both be written to {dst}")
        seen[dst] = f
        pairs.append((f, dst))
    return pairs


def _code_all(pairs, work, jobs: int, quiet: bool, line, what: str) -> int:
    """Run ``work(src, dst, progress) -> stats`` over the pairs in ``jobs`` threads; per-file lines, then a
    summary. One file: a bar of its plan's steps once it lasts over a second (a large image); several: a bar of
    files."""
    if len(pairs) > 1:
        pairs[0][1].parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    lock = threading.Lock()
    done: list[dict] = []
    failed = 0
    single = len(pairs) == 1
    bar = progress(total=len(pairs), desc=what, unit="file", quiet=quiet or single)

    def one(pair):
        src, dst = pair
        try:
            if not single:
                return pair, work(src, dst, None), None
            steps, callback = step_progress(f"{what} {Path(src).name}", quiet=quiet)
            with steps:
                return pair, work(src, dst, callback), None
        except Exception as e:  # noqa: BLE001 - reported per file, the others go on
            return pair, None, e

    with bar, ThreadPoolExecutor(max_workers=max(1, min(jobs, len(pairs)))) as pool:
        for (src, dst), st, err in pool.map(one, pairs):
            with lock:
                bar.update(1)
                if err is not None:
                    if single:
                        raise err
                    failed += 1
                    bar.write(f"error: {src}: {error_line(err)}", file=sys.stderr)
                    continue
                done.append(st)
                if single or not quiet:
                    bar.write(line(dst, st), file=sys.stdout)
    if not single:
        nbytes = sum(s["bytes"] for s in done)
        px = sum(s["size"][0] * s["size"][1] for s in done)
        bpp = 8.0 * nbytes / px if px else 0.0
        print(
            f"{len(done)} of {len(pairs)} files {what}d: {nbytes} bytes, {bpp:.4f} bpp, "
            f"{time.perf_counter() - t0:.2f} s" + (f", {failed} failed" if failed else "")
        )
    return EXIT_ERROR if failed else 0


@app.command(
    epilog="Examples:\n\n  python -m runtime encode runs/tiny.bundle photo.png -o photo.lic\n\n"
    "  python -m runtime encode runs/tiny.bundle photos/ -o lic/ -j 4 --mode compat"
)
def encode(
    bundle: BundleArg,
    inputs: Annotated[list[Path], typer.Argument(metavar="INPUT", help="image file(s) or folder(s) of images")],
    output: OutputOpt,
    mode: Annotated[
        CoderMode, typer.Option(help="coder mode: fast, or compat (CompressAI's streams)")
    ] = CoderMode.fast,
    substreams: Annotated[int, typer.Option(min=1, help="fast mode: independent substreams per stream")] = 1,
    width: Annotated[Optional[int], typer.Option(help="slimmable bundles: the width to code with")] = None,
    context_order: Annotated[
        Optional[Order], typer.Option(help="spatial_context plans: coding order (default: the bundle's, wavefront)")
    ] = None,
    level: Annotated[
        Optional[str],
        typer.Option(
            help="scalable bundles (BaSIC): a preset (fastest, full) or e.g. g_a=48,g_s=96,context=4stage; "
            "written into the file, the decoder reads it from there"
        ),
    ] = None,
    mask: Annotated[
        Optional[Path],
        typer.Option(
            help="grouped plans (GIT-SSIC): label PNG of the groups at the image's full, 1/16 or 1/32 size, or "
            "a folder of them named like the images; default: the whole image is group 0"
        ),
    ] = None,
    backend: BackendOpt = Backend.auto,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    checkpoint: CkptOpt = None,
    parse_path: ParseOpt = ParsePath.auto,
    jobs: JobsOpt = 2,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> int:
    """Encode images into .lic bitstreams (one output per input)."""
    pairs = _jobs(inputs, output, IMAGE_SUFFIXES, ".lic")
    codec = _open(
        bundle,
        backend,
        device,
        threads,
        checkpoint,
        parse_path,
        mode=mode.value,
        substreams=substreams,
        width=width,
        context_order=context_order.value if context_order else None,
        level=level,
    )

    def line(dst, st):
        return (
            f"{dst}: {st['bytes']} bytes, {st['bpp']:.4f} bpp, {1e3 * st['total_s']:.1f} ms "
            f"(network {1e3 * st['network_s']:.1f} ms, entropy {1e3 * st['entropy_s']:.1f} ms)"
            + (f", level {st['level']}" if "level" in st else "")
        )

    def work(src, dst, progress):
        if mask is None:
            return codec.encode_file(src, dst, progress=progress)
        m = mask / (Path(src).stem + ".png") if mask.is_dir() else mask
        if mask.is_dir() and not m.is_file():
            raise UsageError(f"no mask {m} for {src}")
        return codec.encode_file(src, dst, mask=m, progress=progress)

    if mask is not None and len(pairs) > 1 and not mask.is_dir():
        raise UsageError("--mask must be a folder of label PNGs when encoding several images")
    return _code_all(pairs, work, jobs, quiet, line, "encode")


@app.command(
    epilog="Examples:\n\n  python -m runtime decode runs/tiny.bundle photo.lic -o photo.png\n\n"
    "  python -m runtime decode runs/tiny.bundle lic/ -o decoded/ -j 4"
)
def decode(
    bundle: BundleArg,
    inputs: Annotated[list[Path], typer.Argument(metavar="INPUT", help=".lic file(s) or folder(s) of .lic files")],
    output: OutputOpt,
    groups: Annotated[
        Optional[str],
        typer.Option(help="grouped plans (GIT-SSIC): decode only these group labels, e.g. 1,3 (the rest is zero)"),
    ] = None,
    backend: BackendOpt = Backend.auto,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    checkpoint: CkptOpt = None,
    parse_path: ParseOpt = ParsePath.auto,
    jobs: JobsOpt = 2,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> int:
    """Decode .lic bitstreams into images (PNG unless -o names another suffix)."""
    wanted = None
    if groups is not None:
        try:
            wanted = [int(v) for v in groups.split(",") if v.strip()]
        except ValueError:
            raise UsageError(f"--groups takes comma-separated group labels, got {groups!r}") from None
    pairs = _jobs(inputs, output, (".lic",), ".png")
    codec = _open(bundle, backend, device, threads, checkpoint, parse_path)

    def line(dst, st):
        return (
            f"{dst}: {st['size'][1]}x{st['size'][0]}, {st['bytes']} bytes, {st['bpp']:.4f} bpp, "
            f"{1e3 * st['total_s']:.1f} ms (network {1e3 * st['network_s']:.1f} ms, "
            f"entropy {1e3 * st['entropy_s']:.1f} ms)" + (f", level {st['level']}" if "level" in st else "")
        )

    def work(src, dst, progress):
        return codec.decode_file(src, dst, groups=wanted, progress=progress)

    return _code_all(pairs, work, jobs, quiet, line, "decode")


def info(path, bundle=None) -> str:
    """``.lic`` header and streams (the level named with ``bundle``'s levels when given); for any other file,
    the image as the codec would read it."""
    from . import container

    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"LICT":
        from .image import describe

        return describe(path)
    data = Path(path).read_bytes()
    h, streams = container.unpack(data)
    level = ""
    if h.level:
        level = f"  level indexes {list(h.level)}"
        if bundle is not None:
            from .bundle import Bundle
            from .levels import Levels, levels_of

            levels = levels_of(Bundle.load(bundle).plan)
            if levels is not None:
                level = f"  level {Levels.format(levels.from_bytes(h.level))}"
    payload = sum(len(s.payload) for s in streams)
    px = h.height * h.width
    lines = [
        f"{path}: lictrt container {h.major}.{h.minor}, {len(data)} bytes, image {h.width}x{h.height} "
        f"(pad {h.pad_multiple}), {8 * len(data) / px:.4f} bpp ({8 * payload / px:.4f} bpp payload)",
        f"  model {bytes(h.model_hash).hex()}",
        f"  plan {h.plan_kind_name}, width index {h.width_index}, coder {h.coder_mode_name}, "
        f"parse path {h.parse_path_name}, flags {h.flags:#06x}" + level,
        f"  {'stream':<16}{'symbols':>10}{'bytes':>10}{'bits/sym':>10}  symbols crc",
    ]
    for s in streams:
        bps = 8 * len(s.payload) / s.n_symbols if s.n_symbols else 0.0
        lines.append(f"  {s.kind:<16}{s.n_symbols:>10}{len(s.payload):>10}{bps:>10.3f}  {s.symbols_crc:08x}")
    from .codec import group_bytes

    groups = group_bytes({s.kind: len(s.payload) for s in streams})
    if groups:
        shared = {s.kind: len(s.payload) for s in streams if s.kind in ("mask", "z")}
        lines.append(
            f"  {len(groups)} groups (bytes; shared: " + ", ".join(f"{k} {v}" for k, v in shared.items()) + ")"
        )
        lines += [f"  group {g:<10}{n:>10}" for g, n in groups.items()]
    return "\n".join(lines)


def dump_symbols(path: Path, bundle: Path, out: Path) -> str:
    """Decode ``.lic`` file ``path`` with ``bundle`` and write every stream's symbols (int32, coding order) to the
    ``.npz`` file ``out``; returns a line per stream (count, range, share of zeros)."""
    import numpy as np

    from .codec import Codec
    from .files import write_atomic

    codec = Codec.open(bundle)
    codec.decode(Path(path).read_bytes(), keep_symbols=True)
    kept = codec.last_symbols
    write_atomic(out, lambda f: np.savez(f, **kept), inputs=(path,))
    lines = [f"{out}: symbols of {path} ({codec.last_stats['backend']}, parse path {codec.last_stats['parse_path']})"]
    for kind, v in kept.items():
        lines.append(
            f"  {kind:<16}{v.size:>10}  range {v.min(initial=0)}..{v.max(initial=0)}, "
            f"zeros {np.mean(v == 0) if v.size else 0:.1%}"
        )
    return "\n".join(lines)


@app.command(
    "info",
    epilog="Examples:\n\n  python -m runtime info photo.lic\n\n  python -m runtime info photo.png\n\n"
    "  python -m runtime info photo.lic --bundle ssmic.bundle --symbols photo.npz",
)
def info_cmd(
    inputs: Annotated[list[Path], typer.Argument(metavar="FILE", help=".lic or image file(s)")],
    bundle: Annotated[
        Optional[Path],
        typer.Option(help="the file's bundle: names a scalable bundle's level; needed by --symbols"),
    ] = None,
    symbols: Annotated[
        Optional[Path],
        typer.Option(
            metavar="NPZ", help="decode the .lic file with --bundle and write every stream's symbols to this .npz"
        ),
    ] = None,
    verbose: VerboseOpt = False,
) -> int:
    """Print a .lic file's header and streams, or how an image file will be read (format, bits, alpha, EXIF).

    With --symbols (one .lic file and its --bundle) the file is also decoded and the symbols of every stream are
    written as int32 arrays named by stream, in coding order: a bitstream's contents, to compare two encoders."""
    if symbols is not None and (bundle is None or len(inputs) != 1):
        raise UsageError("--symbols needs one .lic file and its --bundle")
    for p in inputs:
        print(info(p, bundle))
    if symbols is not None:
        print(dump_symbols(inputs[0], bundle, symbols))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(app, argv, prog="python -m runtime")


if __name__ == "__main__":
    sys.exit(main())
