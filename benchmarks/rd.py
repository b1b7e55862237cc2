"""Rate-distortion of deployed bundles vs the PyTorch reference, BD-rate, classical anchors, RD plot.

`python -m benchmarks rd --bundle B [--bundle B2 ...] --reference CKPT [--reference ...] --data DIR
 [--backend onnxruntime|torch|tensorrt] [--anchors jpeg,webp,avif] [--limit N] [--crop HxW] [--masks DIR]
 [--json FILE] [--plot PNG]`

Every image is coded into a real bitstream: bundles through `runtime.Codec` (.lic container), checkpoints
through CompressAI's `compress`/`decompress` (strings, no container). Per image: bpp of the whole file and of the
payload only, PSNR (RGB, 8-bit, peak 255) and MS-SSIM (pytorch-msssim, data_range 255; skipped, and said so,
when the image is smaller than 161 px). Each bundle / checkpoint is one rate point; points group into families
by architecture. BD-rate of each deployed family vs the reference family of the same architecture, Akima and
PCHIP, on payload bpp (the reference has no container) and on whole-file bpp (what a user stores).
Results follow CompressAI's eval_model layout ({"name", "description", "results": {"bpp", "psnr-rgb",
"ms-ssim-rgb"}}) plus our fields.

Grouped models (GIT-SSIC) take label masks with ``--masks DIR`` (one PNG per image, same stem), given to the
deployment (coded in the file as a mask stream: in whole-file bpp, not in payload bpp) and to the reference
(out of band); without masks every image is one group. Scalable models (BaSIC) are coded at their default level.

Classical codec curves (JPEG / WebP / AVIF, Pillow quality sweeps) are drawn only when asked for with
``--anchors``: they are a fair comparison only for trained checkpoints.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from tqdm import tqdm

from benchmarks import bdrate
from benchmarks.common import (
    MSSSIM_MIN_SIDE,
    Backend,
    BackendOpt,
    BenchmarkError,
    ImagesOpt,
    JsonOpt,
    ModeOpt,
    bpp,
    command_main,
    emit,
    list_images,
    load_rgb,
    ms_ssim,
    parse_size,
    portable_path,
    psnr,
    read_manifest,
    to_uint8,
)
from runtime.cli import QuietOpt, VerboseOpt

ANCHOR_QUALITIES = {"jpeg": (10, 25, 40, 60, 75, 90), "webp": (10, 25, 40, 60, 75, 90), "avif": (20, 35, 50, 65, 80)}


class RDError(BenchmarkError):
    """RD evaluation failed (bad input, codec error)."""


# ---------------------------------------------------------------------------------------- container payload


MASK_STREAM = "mask"  # the group mask's stream (plan grouped_slices): side information, not latent payload


def container_streams(data: bytes) -> list[tuple[str, bytes]]:
    """(kind, payload) of every stream of a .lic container (runtime.container's parser: every header form,
    level blocks included, CRCs checked)."""
    from runtime.container import unpack
    from runtime.errors import BitstreamError

    try:
        _, streams = unpack(data)
    except BitstreamError as exc:
        raise RDError(f"not a valid lictrt bitstream: {exc}") from None
    return [(s.kind, bytes(s.payload)) for s in streams]


# ----------------------------------------------------------------------------------------------- coders


class BundleCoder:
    """A deployed rate point: a bundle coded through the runtime."""

    def __init__(self, path: str | Path, backend: str, mode: str | None = None):
        from benchmarks.latency import open_codec

        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        self.arch = self.manifest.get("model", {}).get("arch", "?")
        self.backend = backend
        try:
            self.codec = open_codec(self.path, backend, mode=mode)
        except BenchmarkError:
            raise
        except Exception as exc:
            raise RDError(f"cannot open bundle {self.path} on {backend}: {exc}") from None
        self.label = self.path.name
        from runtime.codec import GROUPED_PLANS

        self.takes_mask = self.codec.bundle.plan_kind in GROUPED_PLANS

    def code(self, img: np.ndarray, mask: np.ndarray | None = None) -> dict:
        """Encode + decode one image; ``mask`` (full-size labels) for plans with groups. The payload is the
        latent streams; a coded group mask is side information, counted in the file and in ``mask_bytes``."""
        t0 = time.perf_counter()
        data = self.codec.encode(img, mask=mask) if mask is not None and self.takes_mask else self.codec.encode(img)
        t1 = time.perf_counter()
        rec = self.codec.decode(data)
        t2 = time.perf_counter()
        streams = container_streams(data)
        latent = [p for kind, p in streams if kind != MASK_STREAM]
        return {
            "file_bytes": len(data),
            "payload_bytes": sum(len(p) for p in latent),
            "mask_bytes": sum(len(p) for kind, p in streams if kind == MASK_STREAM),
            "payloads": latent,
            "rec": to_uint8(rec),
            "enc_s": t1 - t0,
            "dec_s": t2 - t1,
        }


class ReferenceCoder:
    """A reference rate point: a checkpoint through CompressAI-style compress/decompress (PyTorch fp32 CPU)."""

    def __init__(self, path: str | Path):
        import torch

        from train.checkpoint import load_checkpoint

        self.path = Path(path)
        try:
            self.model, meta = load_checkpoint(self.path)
        except Exception as exc:
            raise RDError(f"cannot load reference checkpoint {self.path}: {exc}") from None
        self.model = self.model.eval()
        self.arch = meta.get("arch", "?")
        self.lmbda = meta.get("lambda")
        self.pad = int(getattr(self.model, "pad_multiple", 64))
        self.label = self.path.stem
        from runtime.codec import GROUPED_PLANS
        from train.graphs import plan_kind_of

        self.takes_mask = plan_kind_of(self.model) in GROUPED_PLANS
        self._torch = torch

    def code(self, img: np.ndarray, mask: np.ndarray | None = None) -> dict:
        """``mask`` (full-size labels, grouped models): turned into the latent mask the runtime's plan builds
        (same cells, same labels) and given to compress and decompress, out of band."""
        torch = self._torch
        from compressai.ops import compute_padding

        h, w = img.shape[:2]
        x = torch.from_numpy(img.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
        pad, unpad = compute_padding(h, w, min_div=self.pad)
        xp = torch.nn.functional.pad(x, pad, mode="constant", value=0)
        kw = {}
        if mask is not None and self.takes_mask:
            from runtime.plans.grouped_slices import coarse_mask, latent_mask

            kw["mask"] = torch.from_numpy(latent_mask(coarse_mask(mask, (h, w), self.pad)))
        with torch.no_grad():
            t0 = time.perf_counter()
            out = self.model.compress(xp, **kw)
            t1 = time.perf_counter()
            rec = self.model.decompress(out["strings"], out["shape"], **kw)["x_hat"]
            t2 = time.perf_counter()
        rec = torch.nn.functional.pad(rec, unpad).clamp(0, 1)
        payloads = [s for group in out["strings"] for s in group]
        n = sum(len(s) for s in payloads)
        return {
            "file_bytes": n,
            "payload_bytes": n,
            "mask_bytes": 0,
            "payloads": payloads,
            "rec": to_uint8(rec[0].permute(1, 2, 0).numpy()),
            "enc_s": t1 - t0,
            "dec_s": t2 - t1,
        }


class PillowCoder:
    """A classical anchor rate point: JPEG / WebP / AVIF at one Pillow quality setting."""

    FORMATS = {"jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF"}

    def __init__(self, codec: str, quality: int):
        self.codec, self.quality = codec, quality
        self.arch = codec
        self.label = f"{codec}-q{quality}"

    def code(self, img: np.ndarray) -> dict:
        from PIL import Image

        buf = io.BytesIO()
        kw = {"quality": self.quality}
        if self.codec == "avif":
            kw["speed"] = 8  # libavif/aom speed preset: the anchor curve barely moves, encoding is ~5x faster
        if self.codec == "jpeg":
            kw["subsampling"] = 0 if self.quality >= 90 else 2
        t0 = time.perf_counter()
        Image.fromarray(img).save(buf, format=self.FORMATS[self.codec], **kw)
        data = buf.getvalue()
        t1 = time.perf_counter()
        with Image.open(io.BytesIO(data)) as im:
            rec = np.asarray(im.convert("RGB"), dtype=np.uint8)
        t2 = time.perf_counter()
        return {
            "file_bytes": len(data),
            "payload_bytes": len(data),
            "mask_bytes": 0,
            "payloads": None,
            "rec": rec,
            "enc_s": t1 - t0,
            "dec_s": t2 - t1,
        }


def center_crop(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    H, W = img.shape[:2]
    if h > H or w > W:
        raise RDError(f"crop {h}x{w} is larger than the image {H}x{W}")
    top, left = (H - h) // 2, (W - w) // 2
    return np.ascontiguousarray(img[top : top + h, left : left + w])


def avif_supported() -> bool:
    from PIL import features

    try:
        return bool(features.check("avif"))
    except Exception:
        return False


def load_masks(folder: str | Path, images: list[tuple[str, np.ndarray]]) -> dict:
    """Image name -> full-size group labels from ``folder``'s mask PNG of the same stem (image, 1/16 or 1/32
    size; labels the seed's way, benchmarks.groups.seed_labels)."""
    from PIL import Image

    from benchmarks.groups import seed_labels

    out = {}
    for name, img in images:
        path = Path(folder) / (Path(name).stem + ".png")
        if not path.is_file():
            raise RDError(f"no group mask for {name} in {folder}")
        with Image.open(path) as m:
            labels = seed_labels(np.asarray(m.convert("L")))
        h, w = img.shape[:2]
        f = -(-h // labels.shape[0])
        if labels.shape != (-(-h // f), -(-w // f)):
            raise RDError(f"mask {path.name} is {labels.shape[1]}x{labels.shape[0]}: not a scale of the {w}x{h} image")
        out[name] = np.ascontiguousarray(np.repeat(np.repeat(labels, f, 0), f, 1)[:h, :w])
    return out


# ----------------------------------------------------------------------------------------------- evaluation


def evaluate_point(coder, images: list[tuple[str, np.ndarray]], bar=None, masks: dict | None = None) -> dict:
    """Code every image with one rate point; per-image metrics and their means (CompressAI averages images).
    ``masks``: image name -> full-size group labels, given to coders that take a mask."""
    per = []
    for name, img in images:
        mask = (masks or {}).get(name)
        r = coder.code(img, mask) if mask is not None and getattr(coder, "takes_mask", False) else coder.code(img)
        h, w = img.shape[:2]
        per.append(
            {
                "image": name,
                "bpp": bpp(r["file_bytes"], h, w),
                "bpp-payload": bpp(r["payload_bytes"], h, w),
                "mask_bytes": r["mask_bytes"],
                "psnr-rgb": psnr(img, r["rec"]),
                "ms-ssim-rgb": ms_ssim(img, r["rec"]),
                "encoding_time": r["enc_s"],
                "decoding_time": r["dec_s"],
                "_payloads": r["payloads"],
            }
        )
        if bar is not None:
            bar.update(1)
    mean = {
        k: float(np.mean([p[k] for p in per]))
        for k in ("bpp", "bpp-payload", "psnr-rgb", "encoding_time", "decoding_time")
    }
    ms = [p["ms-ssim-rgb"] for p in per if p["ms-ssim-rgb"] is not None]
    mean["ms-ssim-rgb"] = float(np.mean(ms)) if len(ms) == len(per) else None
    return {"label": coder.label, "arch": coder.arch, "mean": mean, "per_image": per}


def family(name: str, description: str, points: list[dict], extra: dict | None = None) -> dict:
    """CompressAI eval_model layout for a family of rate points (sorted by bpp) plus our fields."""
    points = sorted(points, key=lambda p: p["mean"]["bpp"])
    res = {
        k: [p["mean"][k] for p in points]
        for k in ("bpp", "bpp-payload", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time")
    }
    fam = {
        "name": name,
        "description": description,
        "results": res,
        "points": [p["label"] for p in points],
        "per_image": {
            p["label"]: [{k: v for k, v in q.items() if not k.startswith("_")} for q in p["per_image"]] for p in points
        },
    }
    fam.update(extra or {})
    return fam


def _payload_match(dep: list[dict], ref: list[dict]) -> dict:
    """How many coded images have byte-identical payload streams in the deployment and the reference."""
    ref_by_label = {}
    same = total = 0
    for d, r in zip(dep, ref):
        ref_by_label[d["label"]] = r
        for pd, pr in zip(d["per_image"], r["per_image"]):
            if pd["_payloads"] is None or pr["_payloads"] is None:
                continue
            total += 1
            same += sorted(map(bytes, pd["_payloads"])) == sorted(map(bytes, pr["_payloads"]))
    return {"images": total, "identical_payloads": same}


def bd_vs(anchor: dict, test: dict) -> dict:
    """BD-rate of `test` vs `anchor` on PSNR, with payload bpp and whole-file bpp; errors become notes."""
    out = {"test": test["name"], "anchor": anchor["name"]}
    for rate_key in ("bpp-payload", "bpp"):
        ra, rt = anchor["results"][rate_key], test["results"][rate_key]
        da, dt = anchor["results"]["psnr-rgb"], test["results"]["psnr-rgb"]
        tag = "payload" if rate_key == "bpp-payload" else "file"
        try:
            for m in bdrate.METHODS:
                out[f"bd_rate_{tag}_{m}"] = bdrate.bd_rate(ra, da, rt, dt, m)
            out[f"overlap_{tag}"] = bdrate.overlap(ra, da, rt, dt)
            out["monotone"] = bdrate.is_monotone(ra, da) and bdrate.is_monotone(rt, dt)
        except bdrate.BDRateError as exc:
            out[f"error_{tag}"] = str(exc)
    return out


def run(
    bundles: list[str],
    references: list[str],
    data: str,
    backend: str = "onnxruntime",
    anchors: tuple[str, ...] = (),
    limit: int | None = None,
    progress: bool = True,
    mode: str | None = None,
    crop: tuple[int, int] | None = None,
    masks: str | Path | None = None,
) -> dict:
    """The whole RD evaluation; returns the combined results document (`crop`: centre-crop every image to HxW;
    `masks`: folder of group-mask PNGs named like the images, for grouped models, GIT-SSIC; without it they code
    each image as one group)."""
    paths = list_images(data, limit)
    images = [(p.name, load_rgb(p)) for p in paths]
    notes = []
    labels = load_masks(masks, images) if masks else None
    if crop:
        images = [(n, center_crop(im, crop)) for n, im in images]
        labels = {n: center_crop(m, crop) for n, m in labels.items()} if labels else None
        notes.append(f"images centre-cropped to {crop[0]}x{crop[1]}")
    small = [n for n, im in images if min(im.shape[:2]) < MSSSIM_MIN_SIDE]
    if small:
        notes.append(f"MS-SSIM skipped for {len(small)} image(s) smaller than {MSSSIM_MIN_SIDE} px: {', '.join(small)}")
    anchors = tuple(a for a in anchors if a)
    if "avif" in anchors and not avif_supported():
        anchors = tuple(a for a in anchors if a != "avif")
        notes.append("AVIF anchor skipped: this Pillow has no AVIF support")
    coders_dep = [BundleCoder(b, backend, mode) for b in bundles]
    coders_ref = [ReferenceCoder(r) for r in references]
    coders_anchor = [PillowCoder(a, q) for a in anchors for q in ANCHOR_QUALITIES[a]]
    total = len(images) * (len(coders_dep) + len(coders_ref) + len(coders_anchor))
    with tqdm(total=total, desc="rd", unit="img", disable=not progress, leave=False) as bar:
        dep = [evaluate_point(c, images, bar, labels) for c in coders_dep]
        ref = [evaluate_point(c, images, bar, labels) for c in coders_ref]
        anc = [evaluate_point(c, images, bar) for c in coders_anchor]

    grouped = sorted({c.arch for c in coders_dep + coders_ref if c.takes_mask})
    if grouped:
        if labels:
            groups = np.mean([len(np.unique(m)) for m in labels.values()])
            mask_b = [q["mask_bytes"] for p, c in zip(dep, coders_dep) if c.takes_mask for q in p["per_image"]]
            notes.append(
                f"{', '.join(grouped)}: group masks from {portable_path(masks)} ({groups:.2f} groups per image); "
                f"the deployment codes each mask in the file ({np.mean(mask_b) if mask_b else 0:.1f} B per image, "
                "in whole-file bpp, not in payload bpp); the reference is given it out of band"
            )
        else:
            notes.append(f"{', '.join(grouped)}: no group masks given: each image coded as one group")
    families, bd = [], []
    archs = sorted({c.arch for c in coders_dep} | {c.arch for c in coders_ref})
    for arch in archs:
        d_pts = [p for p, c in zip(dep, coders_dep) if c.arch == arch]
        r_pts = [p for p, c in zip(ref, coders_ref) if c.arch == arch]
        fam_ref = fam_dep = None
        if r_pts:
            fam_ref = family(
                f"{arch} (PyTorch reference)",
                "checkpoints through CompressAI compress/decompress, fp32 CPU",
                r_pts,
                {"kind": "reference", "arch": arch},
            )
            families.append(fam_ref)
        if d_pts:
            fam_dep = family(
                f"{arch} ({backend})",
                f"bundles through runtime.Codec, backend {backend}",
                d_pts,
                {"kind": "deployed", "arch": arch, "backend": backend},
            )
            families.append(fam_dep)
        if fam_ref and fam_dep:
            entry = bd_vs(fam_ref, fam_dep)
            if len(d_pts) == len(r_pts):
                entry.update(
                    _payload_match(
                        sorted(d_pts, key=lambda p: p["mean"]["bpp"]), sorted(r_pts, key=lambda p: p["mean"]["bpp"])
                    )
                )
            bd.append(entry)
    for a in anchors:
        pts = [p for p, c in zip(anc, coders_anchor) if c.codec == a]
        families.append(family(a.upper(), f"Pillow {a} quality sweep", pts, {"kind": "anchor", "arch": a}))
    # every learned family vs the JPEG anchor, for context
    jpeg = next((f for f in families if f.get("kind") == "anchor" and f["arch"] == "jpeg"), None)
    if jpeg:
        for f in families:
            if f.get("kind") in ("deployed", "reference"):
                bd.append(bd_vs(jpeg, f))
    return {
        "data": str(data),
        "images": [n for n, _ in images],
        "backend": backend,
        "mode": mode or "default",
        "notes": notes,
        "families": families,
        "bd_rate": bd,
    }


# ---------------------------------------------------------------------------------------------- output


def plot(doc: dict, path: str | Path, metric: str = "psnr-rgb") -> Path:
    """RD plot (bpp vs PSNR) of every family; Agg backend, PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    style = {"reference": "o-", "deployed": "x--", "anchor": ".:"}
    for f in doc["families"]:
        ys = f["results"].get(metric)
        if not ys or any(v is None for v in ys):
            continue
        ax.plot(f["results"]["bpp"], ys, style.get(f.get("kind"), "o-"), label=f["name"])
    ax.set_xlabel("bpp (whole file)")
    ax.set_ylabel({"psnr-rgb": "PSNR RGB [dB]", "ms-ssim-rgb": "MS-SSIM"}.get(metric, metric))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    title = f"rate-distortion on {Path(doc.get('data', '')).name} ({len(doc.get('images', []))} images)"
    ax.set_title(title + (f"\n{doc['title']}" if doc.get("title") else ""), fontsize=9 if doc.get("title") else None)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def format_table(doc: dict) -> str:
    lines = [f"RD on {doc['data']} ({len(doc['images'])} images)"]
    for f in doc["families"]:
        lines.append(
            f"{f['name']}: "
            + "  ".join(f"{b:.4f} bpp/{p:.2f} dB" for b, p in zip(f["results"]["bpp"], f["results"]["psnr-rgb"]))
        )
    if doc["bd_rate"]:
        lines.append("BD-rate (PSNR; payload bpp / whole-file bpp; akima, pchip):")
    for e in doc["bd_rate"]:
        parts = []
        for tag in ("payload", "file"):
            if f"bd_rate_{tag}_akima" in e:
                parts.append(f"{tag} {e[f'bd_rate_{tag}_akima']:+.4f}% / {e[f'bd_rate_{tag}_pchip']:+.4f}%")
            elif f"error_{tag}" in e:
                parts.append(f"{tag}: n/a ({e[f'error_{tag}']})")
        ident = f"  identical payloads {e['identical_payloads']}/{e['images']}" if "images" in e else ""
        flag = "  [points not monotone: parity figure, not an RD comparison]" if e.get("monotone") is False else ""
        lines.append(f"  {e['test']} vs {e['anchor']}: " + "; ".join(parts) + ident + flag)
    lines += [f"note: {n}" for n in doc["notes"]]
    return "\n".join(lines)


def cli(
    data: Annotated[Path, typer.Option(metavar="DIR", help="folder of test images")],
    bundle: Annotated[
        Optional[list[Path]], typer.Option(metavar="BUNDLE", help="deployed bundle (one rate point; repeat)")
    ] = None,
    reference: Annotated[
        Optional[list[Path]], typer.Option(metavar="PTH", help="reference checkpoint (one rate point; repeat)")
    ] = None,
    backend: BackendOpt = Backend.onnxruntime,
    mode: ModeOpt = None,
    anchors: Annotated[
        str,
        typer.Option(
            metavar="jpeg,webp,avif",
            help="add classical codec curves (Pillow quality sweeps), comma separated; only for trained "
            "checkpoints: beside a model trained for seconds they read as its quality (default: none)",
        ),
    ] = "",
    limit: ImagesOpt = None,
    crop: Annotated[Optional[str], typer.Option(metavar="HxW", help="centre-crop every image to HxW first")] = None,
    masks: Annotated[
        Optional[Path],
        typer.Option(
            metavar="DIR",
            help="folder of group-mask PNGs named like the images (GIT-SSIC; default: one group per image)",
        ),
    ] = None,
    json_path: JsonOpt = None,
    plot_path: Annotated[Optional[Path], typer.Option("--plot", metavar="PNG", help="write the RD plot here")] = None,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Rate-distortion and BD-rate of deployed bundles against the PyTorch reference.

    Each --bundle and --reference is one rate point; the BD-rate compares the deployment with the reference
    on the same images. --mode: the entropy coder's (default: the runtime's, fast)."""
    if not bundle and not reference:
        raise RDError("give at least one --bundle or --reference")
    anchor_list = tuple(a.strip().lower() for a in anchors.split(",") if a.strip())
    bad = [a for a in anchor_list if a not in ANCHOR_QUALITIES]
    if bad:
        raise RDError(f"unknown anchor(s) {bad}; choose from {', '.join(ANCHOR_QUALITIES)}")
    doc = run(
        [str(b) for b in bundle or ()],
        [str(r) for r in reference or ()],
        str(data),
        backend.value,
        anchor_list,
        limit,
        progress=not quiet,
        mode=mode.value if mode else None,
        crop=parse_size(crop) if crop else None,
        masks=str(masks) if masks else None,
    )
    emit(doc, json_path, format_table)
    if json_path and json_path != "-":
        print(f"results: {json_path}")
    if plot_path:
        print(f"plot: {plot(doc, str(plot_path))}")


def main(argv: list[str] | None = None) -> int:
    return command_main("rd", argv)
