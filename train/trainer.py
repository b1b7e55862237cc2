"""The training loop: RD loss + aux loss, grad clipping, plateau LR schedule, evaluation, CSV log, checkpoints.

Two optimizers as in CompressAI's recipe: Adam on every parameter except the entropy-bottleneck
``quantiles``, and a second Adam on the aux loss (which only moves the quantiles). Slimmable models
(SlimCAE) run every width in one forward and sum the per-width losses with per-width λ.
"""

from __future__ import annotations

import copy
import csv
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from train import distributed as D
from train.checkpoint import model_from_checkpoint, read_checkpoint, save_checkpoint
from train.data import DataError, ImageDataset, split_dataset
from train.loss import RateDistortionLoss, width_lambdas
from train.models import create_model

CSV_FIELDS = ["step", "epoch", "split", "width", "loss", "bpp", "mse", "psnr", "ms_ssim", "aux_loss", "lr", "seconds"]
# CompressAI zoo λ per quality (docs/source/zoo.rst), used when --quality is given without --lambda.
ZOO_LAMBDA = {
    "mse": [0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800],
    "ms-ssim": [2.40, 4.58, 8.73, 16.64, 31.73, 60.50, 115.37, 220.00],
}


class TrainError(Exception):
    """Bad training configuration (one-line message)."""


@dataclass
class TrainConfig:
    arch: str
    data: Path
    output: Path
    preset: str | None = None
    quality: int | None = None
    lmbda: list[float] | None = None
    epochs: int | None = None
    steps: int | None = None
    batch_size: int = 8
    patch_size: int = 256
    lr: float | None = None  # None: 1e-4, or the saved LR when resuming
    aux_lr: float = 1e-3
    metric: str = "mse"
    device: str = "cpu"
    resume: Path | None = None
    seed: int = 0
    max_seconds: float | None = None
    workers: int = 0
    eval_every: int = 0  # steps between evaluations; 0: once per epoch
    clip_max_norm: float = 1.0
    lr_patience: int = 10
    lr_factor: float = 0.5
    amp: bool = True  # only on CUDA
    holdout: int | None = None
    quiet: bool = False


def default_lambda(metric: str, quality: int | None) -> float:
    q = quality if quality is not None and 1 <= quality <= 8 else 4
    return ZOO_LAMBDA[metric][q - 1]


class MultiWidth(nn.Module):
    """Runs ``model`` once per width (slimmable models) or once; ``forward(x)`` → list of output dicts.

    Wrapping the whole multi-width pass in one module keeps it one forward for DistributedDataParallel.
    """

    def __init__(self, model: nn.Module, widths: list[int] | None):
        super().__init__()
        self.model = model
        self.widths = widths

    def forward(self, x: torch.Tensor) -> list[dict]:
        if self.widths is None:
            return [self.model(x)]
        return [self.model(x, w) for w in self.widths]


def model_widths(model: nn.Module) -> list[int] | None:
    """The widths of a slimmable model (widest first), None for a fixed-width one."""
    widths = getattr(model, "widths", None)
    if widths is None:
        widths = getattr(model, "lictrt_config", {}).get("widths")
    return sorted((int(w) for w in widths), reverse=True) if widths else None


class Trainer:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        if (cfg.epochs is None) == (cfg.steps is None):
            raise TrainError("give exactly one of --epochs and --steps")
        if cfg.batch_size < 1:
            raise TrainError(f"batch size must be positive, got {cfg.batch_size}")
        try:
            self.ctx = D.init_distributed(cfg.device)
        except RuntimeError as e:
            raise TrainError(str(e)) from None
        self.device = self.ctx.device
        _seed_everything(cfg.seed)
        self.step, self.epoch, train_state, self.model = self._build_model()
        self.widths = model_widths(self.model)
        lmbda = cfg.lmbda or [default_lambda(cfg.metric, cfg.quality)]
        if self.widths is None:
            if len(lmbda) != 1:
                raise TrainError(f"{cfg.arch} has one width: give one lambda, not {len(lmbda)}")
            self.lambdas = {None: lmbda[0]}
        else:
            self.lambdas = width_lambdas(lmbda, self.widths)
        self.criteria = {w: RateDistortionLoss(l, cfg.metric) for w, l in self.lambdas.items()}
        self.lmbda_meta = lmbda[0] if self.widths is None else [self.lambdas[w] for w in self.widths]

        self.model.to(self.device).train()
        self.aux_params = [p for n, p in self.model.named_parameters() if n.endswith("quantiles")]
        self.main_params = [p for n, p in self.model.named_parameters() if not n.endswith("quantiles")]
        self.optimizer = torch.optim.Adam(self.main_params, lr=cfg.lr or 1e-4)
        self.aux_optimizer = torch.optim.Adam(self.aux_params, lr=cfg.aux_lr)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, "min", factor=cfg.lr_factor, patience=cfg.lr_patience
        )
        cuda = self.device.type == "cuda"
        self.amp_dtype = None
        if cfg.amp and cuda:
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        if train_state:
            self._restore(train_state)
        _seed_everything(cfg.seed + 1000 * self.ctx.rank + self.step)  # data order/crops differ per rank/resume

        self.net = D.wrap(
            MultiWidth(self.model, self.widths),
            self.ctx,
            [f"model.{n}" for n, _ in self.model.named_parameters() if n.endswith("quantiles")],
        )
        self._build_data()
        self.csv_path = Path(cfg.output).with_suffix(".csv")
        self.last_eval: dict[str, Any] = {}
        self.last_eval_step = -1
        self.t0 = time.monotonic()

    # ------------------------------------------------------------------------------------------- setup

    def _build_model(self):
        cfg = self.cfg
        if cfg.resume is None:
            try:
                model = create_model(cfg.arch, preset=cfg.preset, quality=cfg.quality)
            except ValueError as e:
                raise TrainError(str(e)) from None
            return 0, 0, None, model
        ckpt = read_checkpoint(cfg.resume)
        model, meta = model_from_checkpoint(ckpt, cfg.arch, preset=cfg.preset, quality=cfg.quality, source=cfg.resume)
        if cfg.lmbda is None and meta.get("lambda") is not None:
            lam = meta["lambda"]
            cfg.lmbda = [float(x) for x in lam] if isinstance(lam, list) else [float(lam)]
        if meta.get("metric") and meta["metric"] != cfg.metric and self.ctx.is_main:
            print(f"note: checkpoint was trained with metric {meta['metric']}, continuing with {cfg.metric}")
        return int(meta.get("step", 0)), int(meta.get("epoch", 0)), ckpt.get("train_state"), model

    def _restore(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.aux_optimizer.load_state_dict(state["aux_optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if "scaler" in state and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])
        if self.cfg.lr is not None:  # an explicit --lr wins over the saved (maybe already reduced) one
            for group in self.optimizer.param_groups:
                group["lr"] = self.cfg.lr

    def _build_data(self) -> None:
        cfg = self.cfg
        pad = getattr(self.model, "pad_multiple", 1)
        if cfg.patch_size % pad:
            raise TrainError(f"patch size {cfg.patch_size} is not a multiple of {cfg.arch}'s {pad}")
        train_paths, eval_paths = split_dataset(cfg.data, cfg.holdout)
        self.train_set = ImageDataset(train_paths, cfg.patch_size, train=True)
        self.eval_set = ImageDataset(eval_paths, cfg.patch_size, train=False)
        self.sampler = None
        per_rank = len(self.train_set)
        if self.ctx.enabled:
            self.sampler = DistributedSampler(
                self.train_set, self.ctx.world_size, self.ctx.rank, shuffle=True, seed=cfg.seed
            )
            per_rank = len(self.sampler)
        gen = torch.Generator().manual_seed(cfg.seed + self.ctx.rank)
        self.train_loader = DataLoader(
            self.train_set,
            batch_size=cfg.batch_size,
            shuffle=self.sampler is None,
            sampler=self.sampler,
            num_workers=cfg.workers,
            drop_last=per_rank >= cfg.batch_size,
            generator=gen,
            pin_memory=self.device.type == "cuda",
            persistent_workers=cfg.workers > 0,
        )
        self.eval_loader = DataLoader(self.eval_set, batch_size=1, shuffle=False)

    # ------------------------------------------------------------------------------------------- steps

    def _losses(self, outputs: list[dict], x: torch.Tensor) -> tuple[torch.Tensor, list[dict]]:
        keys = self.widths or [None]
        parts = [self.criteria[w](out, x) for w, out in zip(keys, outputs)]
        return sum(p["loss"] for p in parts), parts

    def train_step(self, x: torch.Tensor) -> dict[str, float]:
        x = x.to(self.device, non_blocking=True)
        self.optimizer.zero_grad(set_to_none=True)
        self.aux_optimizer.zero_grad(set_to_none=True)
        with torch.autocast(
            self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None
        ):
            outputs = self.net(x)
        loss, parts = self._losses(outputs, x)
        if not torch.isfinite(loss):
            raise TrainError(f"loss is {loss.item()} at step {self.step}; lower --lr or check the data")
        self.scaler.scale(loss).backward()
        if self.cfg.clip_max_norm > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.main_params, self.cfg.clip_max_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        aux = self.model.aux_loss()
        aux.backward()
        D.average_gradients(self.aux_params, self.ctx)
        self.aux_optimizer.step()
        self.step += 1
        return {
            "loss": loss.item(),
            "bpp": parts[0]["bpp"].item(),
            "mse": parts[0]["mse"].item(),
            "psnr": parts[0]["psnr"].item(),
            "aux_loss": aux.item(),
        }

    @torch.no_grad()
    def evaluate(self) -> dict[str, Any]:
        """Mean loss, bpp (from likelihoods), MSE and PSNR over the held-out images (widest width first)."""
        self.model.eval()
        keys = self.widths or [None]
        sums: dict[Any, dict[str, float]] = {w: {} for w in keys}
        n = 0
        for x in self.eval_loader:
            x = x.to(self.device)
            outs = [self.model(x)] if self.widths is None else [self.model(x, w) for w in self.widths]
            for w, out in zip(keys, outs):
                part = self.criteria[w](out, x)
                for k, v in part.items():
                    sums[w][k] = sums[w].get(k, 0.0) + float(v)
            n += 1
        self.model.train()
        per = {w: {k: v / n for k, v in s.items()} for w, s in sums.items()}
        stats = dict(per[keys[0]])
        stats["loss"] = sum(p["loss"] for p in per.values())
        if self.widths is not None:
            stats["per_width"] = {int(w): per[w] for w in keys}
        stats["aux_loss"] = float(self.model.aux_loss())
        return stats

    # ------------------------------------------------------------------------------------------- loop

    def run(self) -> dict[str, Any]:
        """Train to --steps/--epochs (or --max-seconds); returns the final evaluation stats."""
        try:
            return self._run()
        finally:
            D.cleanup()

    def _run(self) -> dict[str, Any]:
        cfg = self.cfg
        steps_per_epoch = len(self.train_loader)
        if steps_per_epoch == 0:
            raise DataError("the training set yields no batches")
        total = cfg.steps if cfg.steps is not None else cfg.epochs * steps_per_epoch
        if self.ctx.is_main and not (cfg.resume and self.csv_path.exists()):
            self.csv_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.csv_path, "w", newline="") as f:
                csv.DictWriter(f, CSV_FIELDS).writeheader()
        if self.step == 0:
            self._eval_and_save()  # the untrained baseline: row at step 0
        bar = tqdm(
            total=total,
            initial=min(self.step, total),
            unit="step",
            dynamic_ncols=True,
            disable=cfg.quiet or not self.ctx.is_main,
            desc=f"train {cfg.arch}",
        )
        running: dict[str, float] = {}
        done = self.step >= total
        while not done:
            if self.sampler is not None:
                self.sampler.set_epoch(self.epoch)
            for i, x in enumerate(self.train_loader):
                r = self.train_step(x)
                for k, v in r.items():
                    running[k] = running.get(k, 0.0) + v
                running["n"] = running.get("n", 0) + 1
                bar.update(1)
                bar.set_postfix(loss=f"{r['loss']:.3f}", bpp=f"{r['bpp']:.3f}", psnr=f"{r['psnr']:.2f}")
                epoch_end = i + 1 == steps_per_epoch
                self.epoch += epoch_end
                done = self.step >= total or self._out_of_time()
                due = self.step % cfg.eval_every == 0 if cfg.eval_every else epoch_end
                if due and not done:
                    self._log_train(running)
                    running = {}
                    self._eval_and_save()
                if done:
                    break
        bar.close()
        if not D.in_sync(self.model, self.ctx):
            raise TrainError("parameters differ between processes after training: gradient sync is broken")
        self._log_train(running)
        if self.last_eval_step != self.step:
            self._eval_and_save()
        return self.last_eval

    def _out_of_time(self) -> bool:
        if self.cfg.max_seconds is None:
            return False
        over = time.monotonic() - self.t0 >= self.cfg.max_seconds
        return bool(D.broadcast_value(float(over), self.ctx))

    def _eval_and_save(self) -> None:
        """Rank 0 evaluates, logs and writes the checkpoint; every rank steps the scheduler on its loss."""
        loss = 0.0
        if self.ctx.is_main:
            stats = self.evaluate()
            loss = stats["loss"]
            self.last_eval = stats
            self._log("eval", stats)
            save_checkpoint(
                self.cfg.output,
                copy.deepcopy(self.model).cpu(),
                lmbda=self.lmbda_meta,
                metric=self.cfg.metric,
                step=self.step,
                epoch=self.epoch,
                stats=_plain_stats(stats),
                train_state=self._train_state(),
            )
        loss = D.broadcast_value(loss, self.ctx)
        if self.step > 0:
            self.scheduler.step(loss)
        self.last_eval_step = self.step
        D.barrier(self.ctx)

    def _train_state(self) -> dict[str, Any]:
        state = {
            "optimizer": self.optimizer.state_dict(),
            "aux_optimizer": self.aux_optimizer.state_dict(),
            "scheduler": _plain_scheduler(self.scheduler.state_dict()),
        }
        if self.scaler.is_enabled():
            state["scaler"] = self.scaler.state_dict()
        return state

    def _log_train(self, running: dict[str, float]) -> None:
        n = running.pop("n", 0)
        if n and self.ctx.is_main:
            self._log("train", {k: v / n for k, v in running.items()})

    def _log(self, split: str, stats: dict[str, Any]) -> None:
        rows = [dict(stats, width="")]
        for w, s in (stats.get("per_width") or {}).items():
            rows.append(dict(s, width=w))
        with open(self.csv_path, "a", newline="") as f:
            writer = csv.DictWriter(f, CSV_FIELDS, extrasaction="ignore")
            for row in rows:
                writer.writerow(
                    {
                        **{k: _fmt(row.get(k)) for k in CSV_FIELDS},
                        "step": self.step,
                        "epoch": self.epoch,
                        "split": split,
                        "width": row["width"],
                        "lr": _fmt(self.optimizer.param_groups[0]["lr"]),
                        "seconds": f"{time.monotonic() - self.t0:.2f}",
                    }
                )


def _fmt(v: Any) -> str:
    return "" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v)


def _plain_stats(stats: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in stats.items():
        out[k] = _plain_stats(v) if isinstance(v, dict) else float(v) if isinstance(v, (float, np.floating)) else v
    return out


def _plain_scheduler(state: dict[str, Any]) -> dict[str, Any]:
    """ReduceLROnPlateau's state with numpy/torch scalars made plain (weights_only-safe)."""
    return {k: (float(v) if isinstance(v, (np.floating, torch.Tensor)) else v) for k, v in state.items()}


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


__all__ = ["TrainConfig", "Trainer", "TrainError", "MultiWidth", "default_lambda", "model_widths", "CSV_FIELDS"]
