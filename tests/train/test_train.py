"""python -m train: data, loss, the training loop, resume, DDP under torchrun, and the CLI's errors.

Tiny presets on the shipped 256×256 crops, 64-px patches, one thread: the whole file stays within a few
minutes on a shared 2-core CPU.
"""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys

import pytest
import torch

from train.checkpoint import load_checkpoint
from train.cli import main
from train.data import DataError, ImageDataset, split_dataset
from train.loss import LossError, RateDistortionLoss, bits_per_pixel, width_lambdas
from train.models import ARCHS, model_config
from train.trainer import TrainConfig, Trainer, TrainError

HYPER = "bmshj2018-hyperprior"


pytestmark = pytest.mark.usefixtures("one_thread")


def _rows(path, split="eval", width=""):
    with open(path.with_suffix(".csv"), newline="") as f:
        return [r for r in csv.DictReader(f) if r["split"] == split and r["width"] == width]


def _forward(model, size=64, seed=5):
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed))
    model.eval()
    with torch.no_grad():
        return model(x) if not hasattr(model, "widths") else model(x, max(model.widths))


def _assert_bit_exact(a, b):
    assert torch.equal(a["x_hat"], b["x_hat"])
    assert a["likelihoods"].keys() == b["likelihoods"].keys()
    for k in a["likelihoods"]:
        assert torch.equal(a["likelihoods"][k], b["likelihoods"][k]), k


def _train(tmp_path, arch, steps, **kw):
    cfg = dict(
        arch=arch,
        preset="tiny",
        data=kw.pop("data"),
        output=tmp_path / f"{arch}.pth",
        steps=steps,
        batch_size=2,
        patch_size=64,
        lr=1e-3,
        seed=0,
        max_seconds=60,
        quiet=True,
    )
    cfg.update(kw)
    trainer = Trainer(TrainConfig(**cfg))
    trainer.run()
    return trainer


# ------------------------------------------------------------------------------------------------ data


def test_flat_folder_split_is_deterministic_and_disjoint(train_dir, tmp_path):
    train, held = split_dataset(train_dir)
    assert len(held) == 1 and len(train) == len(list(train_dir.glob("*.png"))) - 1
    assert not set(train) & set(held)
    # the held-out image is chosen by name, not by listing order or by the other files present
    for p in train_dir.glob("*.png"):
        (tmp_path / p.name).symlink_to(p)
    (tmp_path / "zzz_extra.png").symlink_to(train[0])
    assert held[0].name in {p.name for p in split_dataset(tmp_path, holdout=1)[1]} | {"zzz_extra.png"}
    assert [p.name for p in split_dataset(train_dir)[1]] == [p.name for p in held]


def test_seed_layout_uses_train_and_test_folders(train_dir, tmp_path):
    images = sorted(train_dir.glob("*.png"))
    for sub, chosen in (("train", images[:4]), ("test", images[4:])):
        (tmp_path / sub).mkdir()
        for p in chosen:
            (tmp_path / sub / p.name).symlink_to(p)
    train, held = split_dataset(tmp_path)
    assert [p.name for p in train] == [p.name for p in images[:4]]
    assert [p.name for p in held] == [p.name for p in images[4:]]


def test_crops_are_patch_sized_in_unit_range_and_small_images_are_padded(kodak_images, tmp_path):
    from PIL import Image

    Image.new("RGB", (40, 30), (255, 0, 0)).save(tmp_path / "small.png")
    ds = ImageDataset([kodak_images[0], tmp_path / "small.png"], patch_size=64, train=True)
    torch.manual_seed(0)
    crops = [ds[0] for _ in range(4)]
    assert all(c.shape == (3, 64, 64) and c.dtype == torch.float32 for c in crops)
    assert all(0 <= c.min() and c.max() <= 1 for c in crops)
    assert not all(torch.equal(crops[0], c) for c in crops[1:])  # random positions/flips
    small = ds[1]
    assert small.shape == (3, 64, 64) and torch.allclose(small[0], torch.ones(64, 64))  # padded, still red
    ev = ImageDataset([kodak_images[0]], patch_size=64, train=False)
    assert torch.equal(ev[0], ev[0])  # evaluation crops are fixed


def test_bad_data_gives_data_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        split_dataset(tmp_path / "nope")
    with pytest.raises(DataError, match="at least 2 images"):
        split_dataset(tmp_path)
    (tmp_path / "a.png").write_bytes(b"not a png")
    (tmp_path / "b.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot read image"):
        ImageDataset(split_dataset(tmp_path)[0], 64)


# ------------------------------------------------------------------------------------------------ loss


def test_rd_loss_is_lambda_255sq_mse_plus_bpp():
    x = torch.rand(2, 3, 32, 32)
    x_hat = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    lik = {"y": torch.full((2, 8, 2, 2), 0.25), "z": torch.full((2, 4, 1, 1), 0.5)}
    out = RateDistortionLoss(0.01)({"x_hat": x_hat, "likelihoods": lik}, x)
    bpp = (2 * 8 * 2 * 2 * 2 + 2 * 4 * 1) / (2 * 32 * 32)  # −log2(1/4) = 2 bits, −log2(1/2) = 1 bit
    mse = torch.mean((x_hat - x) ** 2)
    assert math.isclose(out["bpp"].item(), bpp, rel_tol=1e-6)
    assert math.isclose(out["loss"].item(), 0.01 * 255**2 * mse.item() + bpp, rel_tol=1e-5)
    assert math.isclose(out["psnr"].item(), -10 * math.log10(mse.item()), rel_tol=1e-5)
    assert math.isclose(bits_per_pixel([lik["y"]], 2 * 32 * 32), 2 * 8 * 2 * 2 * 2 / (2 * 32 * 32), rel_tol=1e-6)


def test_ms_ssim_loss_form_and_size_limit():
    x = torch.rand(1, 3, 192, 192)
    lik = {"y": torch.full((1, 1, 1, 1), 0.5)}
    out = RateDistortionLoss(10.0, "ms-ssim")({"x_hat": x.clone(), "likelihoods": lik}, x)
    assert math.isclose(out["ms_ssim"].item(), 1.0, abs_tol=1e-5)
    assert math.isclose(out["loss"].item(), out["bpp"].item(), abs_tol=1e-4)  # perfect image: only the rate
    with pytest.raises(LossError, match="at least 161"):
        RateDistortionLoss(10.0, "ms-ssim")({"x_hat": x[..., :64, :64], "likelihoods": lik}, x[..., :64, :64])
    with pytest.raises(LossError):
        RateDistortionLoss(0.01, "psnr")


def test_slimmable_lambdas_per_width():
    assert width_lambdas([0.04], [8, 16, 12]) == {16: 0.04, 12: 0.02, 8: 0.01}
    assert width_lambdas([3, 2, 1], [16, 12, 8]) == {16: 3.0, 12: 2.0, 8: 1.0}
    with pytest.raises(LossError):
        width_lambdas([1, 2], [16, 12, 8])


# ------------------------------------------------------------------------------------------------ training


@pytest.fixture(scope="module")
def hyper_run(tmp_path_factory, train_dir):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("hyper")
    return _train(out, HYPER, steps=30, data=train_dir, eval_every=15)


def test_tiny_hyperprior_training_lowers_rd_loss(hyper_run):
    evals = _rows(hyper_run.cfg.output)
    assert [int(r["step"]) for r in evals] == [0, 15, 30]
    before, after = float(evals[0]["loss"]), float(evals[-1]["loss"])
    assert after < 0.75 * before, (before, after)
    assert float(evals[-1]["psnr"]) > float(evals[0]["psnr"])
    assert _rows(hyper_run.cfg.output, "train")  # training averages are logged too


def test_trained_checkpoint_reloads_with_weights_only_and_reproduces_forward(hyper_run):
    path = hyper_run.cfg.output
    raw = torch.load(path, weights_only=True)
    assert raw["arch"] == HYPER and raw["step"] == 30 and raw["lambda"] == 0.013 and raw["metric"] == "mse"
    assert math.isclose(raw["stats"]["loss"], float(_rows(path)[-1]["loss"]), rel_tol=1e-5)
    model, meta = load_checkpoint(path)
    _assert_bit_exact(_forward(hyper_run.model), _forward(model))
    assert model.update() is False  # CDF tables came with the file


def test_resume_continues_step_count_optimizer_and_log(hyper_run, train_dir, capsys):
    path = hyper_run.cfg.output
    rc = main(
        [
            "-a",
            HYPER,
            "-d",
            str(train_dir),
            "--steps",
            "34",
            "--batch-size",
            "2",
            "--patch-size",
            "64",
            "-o",
            str(path),
            "--resume",
            str(path),
            "--eval-every",
            "100",
            "-q",
        ]
    )
    assert rc == 0 and "step 34" in capsys.readouterr().out
    raw = torch.load(path, weights_only=True)
    assert raw["step"] == 34
    adam_steps = {int(s["step"]) for s in raw["train_state"]["optimizer"]["state"].values()}
    assert adam_steps == {34}  # Adam moments continued, not restarted
    with open(path.with_suffix(".csv")) as f:
        assert f.read().count("step,epoch") == 1
    assert [int(r["step"]) for r in _rows(path)] == [0, 15, 30, 34]


def test_tiny_ssmic_training_lowers_rd_loss_and_reloads_bit_exact(tmp_path, train_dir):
    trainer = _train(tmp_path, "ssmic", steps=6, data=train_dir, lr=2e-3, batch_size=1, eval_every=100)
    evals = _rows(trainer.cfg.output)
    assert [int(r["step"]) for r in evals][0] == 0 and len(evals) == 2
    assert float(evals[-1]["loss"]) < 0.95 * float(evals[0]["loss"])  # measured here: 131.6 → 88.6
    model, meta = load_checkpoint(trainer.cfg.output)
    assert meta["arch"] == "ssmic" and meta["config"] == model_config(trainer.model)
    _assert_bit_exact(_forward(trainer.model), _forward(model))


def test_ms_ssim_training_records_ms_ssim(tmp_path, train_dir):
    trainer = _train(
        tmp_path, HYPER, steps=1, data=train_dir, metric="ms-ssim", lmbda=[8.73], patch_size=192, batch_size=1
    )
    stats = torch.load(trainer.cfg.output, weights_only=True)["stats"]
    assert 0 <= stats["ms_ssim"] <= 1  # an untrained net may score 0 (pytorch_msssim clips negative terms)
    assert math.isclose(stats["loss"], 8.73 * (1 - stats["ms_ssim"]) + stats["bpp"], rel_tol=1e-5)


def test_slimcae_sums_losses_over_widths(tmp_path, train_dir):
    pytest.importorskip("train.models.slimcae")
    trainer = _train(tmp_path, "slimcae", steps=2, data=train_dir, lmbda=[0.04])
    widths = sorted(ARCHS["slimcae"].presets["tiny"]["widths"], reverse=True)
    stats = torch.load(trainer.cfg.output, weights_only=True)["stats"]
    per = stats["per_width"]
    assert sorted(per, reverse=True) == widths
    assert math.isclose(stats["loss"], sum(p["loss"] for p in per.values()), rel_tol=1e-6)
    assert [
        r["width"]
        for r in csv.DictReader(open(trainer.cfg.output.with_suffix(".csv")))
        if r["split"] == "eval" and r["step"] == "2"
    ] == ["", *map(str, widths)]
    load_checkpoint(trainer.cfg.output)


def test_epochs_mode_evaluates_after_every_epoch(tmp_path, train_dir):
    trainer = _train(tmp_path, HYPER, steps=None, epochs=2, data=train_dir)
    # 5 training crops, batch 2, last partial batch dropped: 2 steps per epoch
    assert [(int(r["step"]), int(r["epoch"])) for r in _rows(trainer.cfg.output)] == [(0, 0), (2, 1), (4, 2)]


def test_time_limit_stops_early_and_still_saves(tmp_path, train_dir):
    trainer = _train(tmp_path, HYPER, steps=10_000, data=train_dir, max_seconds=0.5, eval_every=100)
    assert 1 <= trainer.step < 10_000
    assert torch.load(trainer.cfg.output, weights_only=True)["step"] == trainer.step


def test_torchrun_two_cpu_processes_train_and_write_a_loadable_checkpoint(tmp_path, train_dir, repo_root):
    out = tmp_path / "ddp.pth"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc-per-node",
        "2",
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        "localhost:0",
        "-m",
        "train",
        "-a",
        HYPER,
        "--preset",
        "tiny",
        "-d",
        str(train_dir),
        "--steps",
        "4",
        "--batch-size",
        "2",
        "--patch-size",
        "64",
        "--lr",
        "1e-3",
        "-o",
        str(out),
        "--threads",
        "1",
        "--eval-every",
        "100",
        "-q",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=repo_root, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("step 4:") == 1  # only rank 0 reports and writes
    model, meta = load_checkpoint(out)
    # 5 training crops sharded over 2 processes: 3 per rank → one batch of 2 per epoch (one process: two)
    assert meta["step"] == 4 and meta["epoch"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp.csv", "ddp.pth"]  # no stray temporary files


# ------------------------------------------------------------------------------------------------ CLI


@pytest.mark.parametrize(
    "argv, words",
    [
        (["-a", HYPER, "-d", "DATA", "--steps", "1"], "missing -o"),
        (["-a", HYPER, "-d", "NOPE", "--steps", "1", "-o", "OUT"], "data directory not found"),
        (["-a", HYPER, "-d", "DATA", "-o", "OUT"], "give --epochs or --steps"),
        (["-a", HYPER, "-d", "DATA", "--steps", "1", "-o", "OUT", "--patch-size", "100"], "not a multiple of"),
        (["-a", HYPER, "-d", "DATA", "--steps", "1", "-o", "OUT", "--lambda", "0.1,0.2"], "one lambda"),
        (["-a", HYPER, "-d", "DATA", "--steps", "1", "-o", "OUT", "--device", "cuda"], "CUDA"),
    ],
)
def test_cli_usage_errors_are_one_line(argv, words, tmp_path, train_dir, capsys):
    if words == "CUDA" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    argv = [
        str(train_dir)
        if a == "DATA"
        else str(tmp_path / "out.pth")
        if a == "OUT"
        else str(tmp_path / "nope")
        if a == "NOPE"
        else a
        for a in argv
    ]
    assert main(argv + ["-q"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and words in err, err
    assert not (tmp_path / "out.pth").exists()


def test_unknown_arch_is_rejected_by_the_parser(capsys):
    assert main(["-a", "nope", "-d", ".", "--steps", "1", "-o", "x.pth"]) == 2  # usage
    err = capsys.readouterr().err
    assert "'nope' is not one of" in err and "Traceback" not in err


def test_cli_help_shows_examples(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "Examples:" in out and "python -m train --info" in out and "--install-completion" in out
    assert main(["--preset", "tiny", "--quality", "3", "--info", "x.pth"]) == 2
    assert "exclude each other" in capsys.readouterr().err


def test_trainer_rejects_both_or_neither_length(tmp_path, train_dir):
    with pytest.raises(TrainError, match="exactly one"):
        Trainer(TrainConfig(arch=HYPER, preset="tiny", data=train_dir, output=tmp_path / "x.pth"))
