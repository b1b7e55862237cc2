"""Training data: image discovery, a deterministic train/eval split, random crops and flips.

``-d DATA`` is either the seeds' layout (``DATA/train`` + ``DATA/test``, as CompressAI's ImageFolder) or a
flat folder of images, from which a few are held out for evaluation by a stable hash of their names.
Images are decoded once and kept in memory as uint8 (training sets here are small; use the seeds' layout
with a subset for big ones).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp"}


class DataError(ValueError):
    """Bad data directory or unreadable image (one-line message)."""


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def split_dataset(data: str | Path, holdout: int | None = None) -> tuple[list[Path], list[Path]]:
    """``(train, eval)`` image paths of ``data``.

    Seeds' layout: ``train/`` and ``test/`` (or ``valid/``/``val/``). Flat folder: ``holdout`` images
    (default: 10 %, at least 1, at most 24) chosen by the SHA-1 of their file names, so the split does not
    depend on the listing order and a file keeps its side when others are added.
    """
    data = Path(data)
    if not data.is_dir():
        raise DataError(f"data directory not found: {data}")
    if (data / "train").is_dir():
        train = list_images(data / "train")
        held = next((data / n for n in ("test", "valid", "val") if (data / n).is_dir()), None)
        if held is None:
            train, test = _holdout(train, holdout)
        else:
            test = list_images(held)
    else:
        train, test = _holdout(list_images(data), holdout)
    if not train:
        raise DataError(f"no training images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {data}")
    if not test:
        raise DataError(f"no evaluation images in {data}")
    return train, test


def _holdout(paths: list[Path], holdout: int | None) -> tuple[list[Path], list[Path]]:
    if len(paths) < 2:
        raise DataError(f"need at least 2 images to hold one out for evaluation, found {len(paths)}")
    k = holdout if holdout is not None else min(24, max(1, len(paths) // 10))
    k = max(1, min(k, len(paths) - 1))
    ranked = sorted(paths, key=lambda p: hashlib.sha1(p.name.encode()).hexdigest())
    held = set(ranked[:k])
    return [p for p in paths if p not in held], [p for p in paths if p in held]


def load_image(path: Path) -> torch.Tensor:
    """uint8 tensor [3, H, W] (RGB)."""
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"cannot read image {path}: {e}") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def pad_to(img: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pad [C,H,W] at the bottom/right up to at least ``height`` × ``width`` (reflect, replicate if too small)."""
    ph, pw = max(0, height - img.shape[1]), max(0, width - img.shape[2])
    if not ph and not pw:
        return img
    mode = "reflect" if ph < img.shape[1] and pw < img.shape[2] else "replicate"
    return F.pad(img[None].float(), (0, pw, 0, ph), mode=mode)[0].to(img.dtype)


class ImageDataset(Dataset):
    """Float [0,1] crops of ``patch_size``: random crop + flips when ``train``, centred crop otherwise."""

    def __init__(self, paths: list[Path], patch_size: int, train: bool = True):
        if patch_size < 16:
            raise DataError(f"patch size must be at least 16, got {patch_size}")
        self.paths = list(paths)
        self.patch_size = patch_size
        self.train = train
        self.images = [load_image(p) for p in self.paths]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        s = self.patch_size
        img = pad_to(self.images[i], s, s)
        h, w = img.shape[1:]
        if self.train:
            top = int(torch.randint(0, h - s + 1, ()))
            left = int(torch.randint(0, w - s + 1, ()))
        else:
            top, left = (h - s) // 2, (w - s) // 2
        crop = img[:, top : top + s, left : left + s]
        if self.train:
            if torch.rand(()) < 0.5:
                crop = crop.flip(2)
            if torch.rand(()) < 0.5:
                crop = crop.flip(1)
        return crop.float().div_(255)
