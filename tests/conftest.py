"""Shared pytest fixtures: where the repository, its shipped images and the optional shared data sets are.

- ``repo_root``: the checkout (tests never depend on the working directory).
- ``sample_images``: every shipped image, the full 768×512 Kodak ones first, then the 256×256 crops.
- ``kodak_images``: the shipped full-size Kodak images only.
- ``train_dir``: the shipped training crops (a flat folder, as ``python -m train -d`` accepts).
- ``kodak_dir`` / ``shared_train_dir``: ``../shared/data/{kodak,train}`` beside the checkout, else skipped.
- ``make_checkpoint``: ``make_checkpoint(arch, preset="tiny", seed=0)`` → path of an untrained, seeded lictrt
  checkpoint (written once per session).
- ``one_thread``: torch on one intra-op thread for the test, restored after (``pytest.mark.usefixtures``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "assets" / "images"


def _pngs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def kodak_images() -> list[Path]:
    images = _pngs(IMAGES / "kodak")
    assert images, f"shipped Kodak images missing under {IMAGES / 'kodak'}"
    return images


@pytest.fixture(scope="session")
def sample_images(kodak_images) -> list[Path]:
    return kodak_images + _pngs(IMAGES / "train")


@pytest.fixture(scope="session")
def train_dir() -> Path:
    folder = IMAGES / "train"
    assert len(_pngs(folder)) >= 2, f"shipped training crops missing under {folder}"
    return folder


def _shared(name: str) -> Path:
    folder = ROOT.parent / "shared" / "data" / name
    if not folder.is_dir() or not _pngs(folder):
        pytest.skip(f"../shared/data/{name} is not available")
    return folder


@pytest.fixture(scope="session")
def kodak_dir() -> Path:
    return _shared("kodak")


@pytest.fixture(scope="session")
def shared_train_dir() -> Path:
    return _shared("train")


@pytest.fixture(scope="session")
def make_checkpoint(tmp_path_factory):
    cache: dict[tuple, Path] = {}

    def make(arch: str = "bmshj2018-hyperprior", preset: str = "tiny", seed: int = 0) -> Path:
        key = (arch, preset, seed)
        if key not in cache:
            import torch

            from train.checkpoint import save_checkpoint
            from train.models import create_model

            torch.manual_seed(seed)
            model = create_model(arch, preset=preset)
            path = tmp_path_factory.mktemp("ckpt") / f"{arch}-{preset}-{seed}.pth"
            cache[key] = save_checkpoint(path, model, lmbda=0.013, metric="mse", step=0, epoch=0, stats={})
        return cache[key]

    return make


@pytest.fixture
def one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
