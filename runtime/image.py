"""Image I/O and geometry for the runtime: load/save 8-bit RGB, pad to the bundle's multiple, crop back.

Loading says what it changes: notes (alpha dropped, EXIF orientation applied) go to the ``lictrt.image``
logger, which the CLI prints on stderr.

Padding follows CompressAI's evaluation (``compressai.ops.compute_padding`` + ``F.pad(mode="constant")``):
the padded size is the next multiple, the border is split evenly (the extra pixel goes right/bottom) and
filled with zeros.  The decoder recomputes the same offsets from the original size stored in the container,
so any image size round-trips.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .files import write_atomic

log = logging.getLogger("lictrt.image")


class ImageError(ValueError):
    """An input image cannot be read or has the wrong layout."""


def load(path_or_array) -> np.ndarray:
    """Return an H×W×3 uint8 RGB array from a path or an array; see :func:`load_with_info` for files."""
    if isinstance(path_or_array, np.ndarray):
        a = path_or_array
        if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
            raise ImageError(f"expected an H×W×3 uint8 array, got shape {a.shape} dtype {a.dtype}")
        if a.shape[0] < 1 or a.shape[1] < 1:
            raise ImageError(f"empty image {a.shape}")
        return np.ascontiguousarray(a)
    image, info = load_with_info(path_or_array)
    for note in info["notes"]:
        log.warning("%s: %s", path_or_array, note)
    return image


# PIL modes holding more than 8 bits per sample: (description, full-scale value)
_WIDE = {
    "I;16": ("16-bit grayscale", 65535),
    "I;16L": ("16-bit grayscale", 65535),
    "I;16B": ("16-bit grayscale", 65535),
    "I;16N": ("16-bit grayscale", 65535),
}


def load_with_info(path) -> tuple[np.ndarray, dict]:
    """Read an image file as the codec codes it: 8-bit RGB, upright. Returns ``(array, info)``.

    * EXIF orientation is applied (the pixels are turned the way a viewer shows them);
    * 16-bit samples are scaled to 8 bits (``round(v / 257)``), not clipped; 32-bit integer or float
      images are refused;
    * an alpha channel (or a transparent palette entry) is dropped; grayscale becomes R = G = B.
    ``info``: ``format`` (e.g. "PNG"), ``mode`` (PIL's), ``size`` (w, h as stored), ``orientation`` (EXIF, 1
    = upright), ``bits`` per sample, ``alpha`` (bool) and ``notes``: one line per thing the codec changes
    beyond the bit depth (what the CLI prints on stderr).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            info = {"format": im.format or "?", "mode": im.mode, "size": im.size, "notes": []}
            orientation = int(im.getexif().get(0x0112, 1) or 1)
            info["orientation"] = orientation
            alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
            info["alpha"] = alpha
            # PNG stores at most 16 bits per sample; Pillow may open a 16-bit grayscale PNG as mode "I"
            wide = im.mode in _WIDE or (im.mode == "I" and im.format == "PNG")
            info["bits"] = 16 if wide else (32 if im.mode in ("I", "F") else 8)
            if orientation != 1:
                im = ImageOps.exif_transpose(im)
                info["notes"].append(f"EXIF orientation {orientation} applied (coded upright)")
            if alpha:
                info["notes"].append("alpha channel dropped (the codec codes RGB only)")
            a = _to_rgb8(im, path, wide)
    except FileNotFoundError:
        raise ImageError(f"no such image: {path}") from None
    except (UnidentifiedImageError, OSError) as e:
        raise ImageError(f"cannot read image {path}: {e}") from None
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ImageError(f"empty image {path}")
    return a, info


def _to_rgb8(im, path, wide: bool) -> np.ndarray:
    if wide:
        v = np.clip(np.asarray(im).astype(np.float64), 0, 65535)
        g = np.rint(v * (255.0 / 65535.0)).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(g[:, :, None], 3, axis=2))
    if im.mode in ("I", "F"):  # 32-bit integer / float samples: no single right way to map them to 8 bits
        raise ImageError(
            f"{path}: {'32-bit integer' if im.mode == 'I' else 'floating-point'} samples are not "
            "supported; convert the image to 8 or 16 bits per sample"
        )
    return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def describe(path) -> str:
    """One line about an image file as the codec would read it (``python -m runtime info IMAGE``)."""
    a, info = load_with_info(path)
    w, h = info["size"]
    kind = {16: "16-bit", 32: "32-bit"}.get(info["bits"], "8-bit")
    parts = [
        f"{path}: {info['format']} image {w}x{h}, mode {info['mode']} ({kind} samples"
        f"{', alpha' if info['alpha'] else ''}), EXIF orientation {info['orientation']}",
        f"  coded as 8-bit RGB {a.shape[1]}x{a.shape[0]}",
    ]
    parts += [f"  note: {n}" for n in info["notes"]]
    return "\n".join(parts)


def save(path, image: np.ndarray, *, inputs: tuple = ()) -> None:
    """Save an H×W×3 uint8 array atomically; the format follows the suffix (PNG when unknown).

    ``inputs``: files the output must not be (runtime.files.check_distinct)."""
    import io

    from PIL import Image

    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    buf = io.BytesIO()
    Image.fromarray(load(image)).save(buf, format=fmt)
    write_atomic(path, buf.getvalue(), inputs=inputs)


def padding(h: int, w: int, multiple: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) zero padding that brings h×w to the next multiple (CompressAI's split)."""
    if h < 1 or w < 1 or multiple < 1:
        raise ImageError(f"bad size {h}×{w} or pad multiple {multiple}")
    ph = -(-h // multiple) * multiple
    pw = -(-w // multiple) * multiple
    top, left = (ph - h) // 2, (pw - w) // 2
    return top, ph - h - top, left, pw - w - left


def to_input(image: np.ndarray, multiple: int) -> np.ndarray:
    """uint8 H×W×3 → float32 1×3×Hp×Wp in [0,1], zero-padded as CompressAI's eval does."""
    h, w = image.shape[:2]
    top, bottom, left, right = padding(h, w, multiple)
    x = image.astype(np.float32).transpose(2, 0, 1) / np.float32(255.0)
    x = np.pad(x, ((0, 0), (top, bottom), (left, right)))
    return np.ascontiguousarray(x[None])


def from_output(x_hat: np.ndarray, h: int, w: int, multiple: int) -> np.ndarray:
    """float 1×3×Hp×Wp → uint8 h×w×3: crop the padding, clamp to [0,1], round(x·255) half-to-even."""
    if x_hat.ndim != 4 or x_hat.shape[:2] != (1, 3):
        raise ImageError(f"synthesis output has shape {x_hat.shape}, expected 1×3×H×W")
    top, bottom, left, right = padding(h, w, multiple)
    if x_hat.shape[2] != h + top + bottom or x_hat.shape[3] != w + left + right:
        raise ImageError(
            f"synthesis output {x_hat.shape[2:]} does not match padded size {(h + top + bottom, w + left + right)}"
        )
    # clip(x·255, 0, 255) == clamp(x, 0, 1)·255 exactly (float multiplication by 255 is monotone). The float work
    # runs in the planes' own order; only the uint8 result is transposed to H×W×3 (4× faster than the reverse)
    y = np.multiply(x_hat[0, :, top : top + h, left : left + w], np.float32(255.0), dtype=np.float32)
    np.clip(y, 0.0, 255.0, out=y)
    np.rint(y, out=y)
    return np.ascontiguousarray(y.astype(np.uint8).transpose(1, 2, 0))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 images (max 255, mean over all channels)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def load_labels(path_or_array) -> np.ndarray:
    """A group label map: a 2-D integer array, or a label PNG (8- or 16-bit grey, or palette indexes)."""
    if isinstance(path_or_array, np.ndarray):
        return path_or_array
    from PIL import Image

    try:
        with Image.open(path_or_array) as im:
            a = np.asarray(im if im.mode in ("L", "P", "I", "I;16", "1") else im.convert("L"))
    except (OSError, ValueError) as e:
        raise ImageError(f"cannot read label image {path_or_array}: {e}") from None
    return a.astype(np.int32) if a.dtype == bool else a
