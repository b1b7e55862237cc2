"""Do the PyTorch reference and the ONNX Runtime deployment write the same symbols, and read each other's files?

`python -m benchmarks agreement CKPT [--bundle DIR] [--data DIR] [--images N] [--threads 2] [--control]
 [--json FILE|-]`

Every image is encoded twice, by the torch backend (CKPT's model) and by ONNX Runtime (the bundle: ``--bundle``,
else CKPT exported to a temporary folder), both on the pinned parse path, every stream's symbols kept
(``Codec.encode(keep_symbols=True)``). Per stream: how many symbols differ, and by how much at most. Then each
backend decodes the other's file: the parse path, not the encoder's backend, decides the decode, so this must
succeed with the symbols the other encoder wrote (the container's CRCs check them; ``keep_symbols`` compares them).

Where the analyses of two fp32 kernel sets differ by rounding, a symbol round(y − μ) flips where y − μ lies that
close to .5 (DESIGN.md: precision and determinism); the rate is reported per million symbols. ``--control`` adds
a third encoder, ONNX Runtime with its graph optimizations off (``ORT_DISABLE_ALL``), against the default
ONNX Runtime encoder: the same flip rate between two kernel choices of one library.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from benchmarks.common import (
    BenchmarkError,
    DataOpt,
    ImagesOpt,
    JsonOpt,
    ThreadsOpt,
    command_main,
    default_kodak,
    emit,
    list_images,
    load_rgb,
    portable_path,
    read_manifest,
)
from runtime.cli import VerboseOpt, progress


class AgreementError(BenchmarkError):
    """The checkpoint, bundle or images cannot be used."""


def compare(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict:
    """Per stream of two encoders' kept symbols: count, how many differ, the largest difference."""
    if sorted(a) != sorted(b):
        raise AgreementError(f"the encoders wrote different streams: {sorted(a)} vs {sorted(b)}")
    out = {}
    for kind in a:
        if a[kind].shape != b[kind].shape:
            raise AgreementError(f"stream '{kind}': {a[kind].size} vs {b[kind].size} symbols")
        d = np.abs(a[kind].astype(np.int64) - b[kind])
        out[kind] = {"symbols": int(d.size), "differ": int(np.count_nonzero(d)), "max_abs": int(d.max(initial=0))}
    return out


def _cross_decode(decoder, data: bytes, written: dict[str, np.ndarray], image: np.ndarray) -> dict:
    from runtime import BitstreamError
    from runtime.image import psnr

    try:
        out = decoder.decode(data, keep_symbols=True)
    except BitstreamError as e:
        return {"ok": False, "error": str(e)}
    read = decoder.last_symbols
    same = sorted(read) == sorted(written) and all(np.array_equal(read[k], written[k]) for k in written)
    return {"ok": same, "symbols_identical": same, "psnr": psnr(image, out)}


def _totals(rows: list[dict], key: str) -> dict:
    n = sum(s["symbols"] for r in rows for s in r[key].values())
    d = sum(s["differ"] for r in rows for s in r[key].values())
    return {
        "symbols": n,
        "differ": d,
        "per_million": 1e6 * d / n if n else 0.0,
        "images_identical": sum(all(s["differ"] == 0 for s in r[key].values()) for r in rows),
        "max_abs": max((s["max_abs"] for r in rows for s in r[key].values()), default=0),
    }


def run(
    checkpoint: Path,
    bundle: Path,
    images: list[Path],
    threads: int = 2,
    control: bool = False,
    show_progress: bool = True,
) -> dict:
    """The comparison over ``images`` (module docstring); returns the results document."""
    import torch

    from runtime import Codec
    from runtime.backends.ort import OrtBackend

    torch.set_num_threads(threads)
    try:
        codecs = {
            "torch": Codec.open(bundle, backend="torch", checkpoint=checkpoint, threads=threads),
            "onnxruntime": Codec.open(bundle, backend="onnxruntime", threads=threads),
        }
    except (ValueError, RuntimeError, OSError) as e:
        raise AgreementError(f"cannot open {bundle} with {checkpoint}: {e}") from None
    if control:
        ort = codecs["onnxruntime"]
        recon = OrtBackend(ort.bundle, threads=threads, opt_level="ORT_DISABLE_ALL")
        codecs["onnxruntime-noopt"] = Codec(ort.bundle, recon, ort.parse_backends, ort.parse_path)
    rows = []
    with progress(total=len(images), desc="agreement", unit="img", quiet=not show_progress) as bar:
        for path in images:
            im = load_rgb(path)
            files, kept = {}, {}
            for name, codec in codecs.items():
                files[name] = codec.encode(im, keep_symbols=True)
                kept[name] = codec.last_symbols
            row = {
                "image": path.name,
                "size": list(im.shape[:2]),
                "torch_vs_onnxruntime": compare(kept["torch"], kept["onnxruntime"]),
                "onnxruntime_decodes_torch": _cross_decode(codecs["onnxruntime"], files["torch"], kept["torch"], im),
                "torch_decodes_onnxruntime": _cross_decode(
                    codecs["torch"], files["onnxruntime"], kept["onnxruntime"], im
                ),
            }
            if control:
                row["onnxruntime_vs_noopt"] = compare(kept["onnxruntime"], kept["onnxruntime-noopt"])
            rows.append(row)
            bar.update(1)
    decodes = [r[k] for r in rows for k in ("onnxruntime_decodes_torch", "torch_decodes_onnxruntime")]
    res = {
        "checkpoint": portable_path(checkpoint),
        "parse_path": codecs["torch"].parse_path,
        "threads": threads,
        "images": rows,
        "torch_vs_onnxruntime": _totals(rows, "torch_vs_onnxruntime"),
        "cross_decodes": {"total": len(decodes), "ok": sum(d["ok"] for d in decodes)},
    }
    if control:
        res["onnxruntime_vs_noopt"] = _totals(rows, "onnxruntime_vs_noopt")
    return res


def format_table(res: dict) -> str:
    ctl = "onnxruntime_vs_noopt" in res
    lines = [f"{'image':14} {'size':>9} {'torch vs ORT':>13}" + (f" {'ORT vs no-opt':>14}" if ctl else "")]
    for r in res["images"]:
        diff = sum(s["differ"] for s in r["torch_vs_onnxruntime"].values())
        line = f"{r['image']:14} {'x'.join(map(str, r['size'])):>9} {diff:>13}"
        if ctl:
            line += f" {sum(s['differ'] for s in r['onnxruntime_vs_noopt'].values()):>14}"
        lines.append(line)
    t = res["torch_vs_onnxruntime"]
    lines.append(
        f"torch vs ONNX Runtime encoders: {t['differ']} of {t['symbols']} symbols differ ({t['per_million']:.1f} per "
        f"million, at most by {t['max_abs']}); identical on {t['images_identical']} of {len(res['images'])} images"
    )
    if ctl:
        c = res["onnxruntime_vs_noopt"]
        lines.append(
            f"ONNX Runtime vs itself without graph optimizations: {c['differ']} differ ({c['per_million']:.1f} per "
            "million)"
        )
    x = res["cross_decodes"]
    lines.append(f"each decodes the other's file with the symbols written: {x['ok']} of {x['total']}")
    return "\n".join(lines)


def cli(
    checkpoint: Annotated[Path, typer.Argument(metavar="CKPT", help="checkpoint of the model (the torch side)")],
    bundle: Annotated[
        Optional[Path], typer.Option(metavar="DIR", help="bundle exported from CKPT (default: export it now)")
    ] = None,
    data: DataOpt = None,
    images: ImagesOpt = None,
    threads: ThreadsOpt = 2,
    control: Annotated[
        bool, typer.Option("--control", help="also ONNX Runtime without graph optimizations vs ONNX Runtime")
    ] = False,
    json_path: JsonOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Symbols of the torch and ONNX Runtime encoders per image, and each backend decoding the other's file.

    --data defaults to ../shared/data/kodak beside the repository, else the shipped Kodak images."""
    if not checkpoint.is_file():
        raise AgreementError(f"checkpoint not found: {checkpoint}")
    paths = list_images(data or default_kodak(), images)
    with tempfile.TemporaryDirectory(prefix="lictrt-agreement-") as tmp:
        if bundle is None:
            from export.onnx import export_bundle

            bundle = Path(tmp) / "bundle"
            export_bundle(checkpoint, bundle, check=False, progress=json_path != "-")
        res = run(checkpoint, bundle, paths, threads or 2, control, show_progress=json_path != "-")
        model = read_manifest(bundle).get("model", {})
    res["model"] = {"arch": model.get("arch"), "config": model.get("config")}
    res["bundle"] = portable_path(bundle) if bundle.parent != Path(tmp) else "exported from the checkpoint"
    res["data"] = portable_path(data or default_kodak())
    emit(res, json_path, format_table)


def main(argv: list[str] | None = None) -> int:
    return command_main("agreement", argv)
