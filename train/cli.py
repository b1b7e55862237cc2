"""``python -m train``: train a codec, resume it, or inspect a checkpoint.

    python -m train -a bmshj2018-hyperprior --preset tiny -d DATA --steps 200 --batch-size 4 \\
        --patch-size 64 -o runs/tiny.pth
    torchrun --nproc-per-node 2 -m train ...        # DistributedDataParallel, rank 0 writes
    python -m train --info runs/tiny.pth            # what a checkpoint holds

Exit status and error lines follow runtime/cli.py (0 ok, 1 error, 2 usage, 130 interrupted); ``--verbose``
shows the traceback.
"""

from __future__ import annotations

import argparse
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from runtime.cli import UsageError, new_app
from runtime.cli import run as cli_run
from train.loss import METRICS
from train.models import ARCHS

app = new_app("python -m train", "Train a lictrt learned image codec, resume it, or inspect a checkpoint.")

Arch = Enum("Arch", {a: a for a in ARCHS}, type=str)
Metric = Enum("Metric", {m: m for m in METRICS}, type=str)

EXAMPLES = """Examples:

  python -m train -a bmshj2018-hyperprior --preset tiny -d assets/images/train --steps 200 --batch-size 4 --patch-size 64 -o runs/tiny.pth

  python -m train --resume runs/tiny.pth -a bmshj2018-hyperprior -d DATA --steps 400 -o runs/tiny.pth

  python -m train --info runs/tiny.pth
"""


@app.command(epilog=EXAMPLES)
def train(
    arch: Annotated[Optional[Arch], typer.Option("-a", "--arch", help="architecture (registry name)")] = None,
    preset: Annotated[Optional[str], typer.Option(help="model preset (e.g. tiny, small, paper, q1..q8)")] = None,
    quality: Annotated[Optional[int], typer.Option(help="quality level 1..8 (also picks the zoo lambda)")] = None,
    lmbda: Annotated[
        Optional[str],
        typer.Option(
            "--lambda",
            metavar="L[,L...]",
            help=(
                "RD trade-off; one per width for slimmable models (default: zoo value of --quality, or the "
                "checkpoint's when resuming)"
            ),
        ),
    ] = None,
    data: Annotated[
        Optional[Path], typer.Option("-d", "--data", help="DATA/train + DATA/test, or a flat folder of images")
    ] = None,
    epochs: Annotated[
        Optional[int], typer.Option(help="train this many epochs (in total, counting a resumed run)")
    ] = None,
    steps: Annotated[Optional[int], typer.Option(help="train this many optimizer steps (in total)")] = None,
    batch_size: Annotated[int, typer.Option(help="per process")] = 8,
    patch_size: Annotated[int, typer.Option(help="random crop size")] = 256,
    lr: Annotated[Optional[float], typer.Option(help="learning rate (default 1e-4, or the saved one)")] = None,
    aux_lr: Annotated[float, typer.Option(help="aux (quantiles) learning rate")] = 1e-3,
    metric: Annotated[Metric, typer.Option(help="distortion metric")] = Metric("mse"),
    device: Annotated[str, typer.Option(help="cpu or cuda")] = "cpu",
    output: Annotated[
        Optional[Path], typer.Option("-o", "--output", help="checkpoint path; the CSV log goes beside it (.csv)")
    ] = None,
    resume: Annotated[
        Optional[Path], typer.Option(help="continue from this checkpoint (or start from a bare state_dict)")
    ] = None,
    seed: int = 0,
    max_seconds: Annotated[
        Optional[float], typer.Option(help="stop (then evaluate and save) after this much time")
    ] = None,
    workers: Annotated[int, typer.Option(help="data loader processes")] = 0,
    eval_every: Annotated[int, typer.Option(help="evaluate every N steps (0: every epoch)")] = 0,
    holdout: Annotated[
        Optional[int], typer.Option(help="images held out of a flat folder for evaluation (default 10%)")
    ] = None,
    clip_max_norm: Annotated[float, typer.Option(help="gradient clipping (0: off)")] = 1.0,
    lr_patience: Annotated[int, typer.Option(help="evaluations without progress before LR x0.5")] = 10,
    no_amp: Annotated[bool, typer.Option("--no-amp", help="no mixed precision on CUDA")] = False,
    threads: Annotated[int, typer.Option(help="torch CPU threads (0: torch's choice)")] = 0,
    info: Annotated[Optional[Path], typer.Option(metavar="CKPT", help="print what a checkpoint holds and exit")] = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="no progress bar")] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="show tracebacks and warnings")] = False,
) -> int:
    """Train a lictrt learned image codec (or, with --info, describe a checkpoint).

    Under torchrun (torchrun --nproc-per-node 2 -m train ...) it trains with DistributedDataParallel; rank 0
    writes the checkpoint.
    """
    if preset is not None and quality is not None:
        raise UsageError("--preset and --quality exclude each other")
    if epochs is not None and steps is not None:
        raise UsageError("--epochs and --steps exclude each other")
    args = argparse.Namespace(
        arch=arch.value if arch else None,
        preset=preset,
        quality=quality,
        lmbda=_float_list(lmbda) if lmbda is not None else None,
        data=data,
        epochs=epochs,
        steps=steps,
        batch_size=batch_size,
        patch_size=patch_size,
        lr=lr,
        aux_lr=aux_lr,
        metric=metric.value,
        device=device,
        output=output,
        resume=resume,
        seed=seed,
        max_seconds=max_seconds,
        workers=workers,
        eval_every=eval_every,
        holdout=holdout,
        clip_max_norm=clip_max_norm,
        lr_patience=lr_patience,
        no_amp=no_amp,
        threads=threads,
        info=info,
        quiet=quiet,
        verbose=verbose,
    )
    return run(args)


def _float_list(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        raise UsageError(f"--lambda: not a number or comma-separated numbers: {text!r}") from None
    if not all(v > 0 for v in values):
        raise UsageError(f"--lambda must be positive: {text!r}")
    return values


def run(args: argparse.Namespace) -> int:
    import torch

    from train.checkpoint import load_checkpoint, summarize

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.info:
        model, meta = load_checkpoint(args.info, arch=args.arch, preset=args.preset, quality=args.quality)
        print(summarize(meta, model))
        return 0
    missing = [f for f, v in (("-a", args.arch), ("-d", args.data), ("-o", args.output)) if v is None]
    if missing:
        raise UsageError(f"missing {', '.join(missing)}")
    if args.epochs is None and args.steps is None:
        raise UsageError("give --epochs or --steps")
    from train.trainer import TrainConfig, Trainer

    cfg = TrainConfig(
        arch=args.arch,
        data=args.data,
        output=args.output,
        preset=args.preset,
        quality=args.quality,
        lmbda=args.lmbda,
        epochs=args.epochs,
        steps=args.steps,
        batch_size=args.batch_size,
        patch_size=args.patch_size,
        lr=args.lr,
        aux_lr=args.aux_lr,
        metric=args.metric,
        device=args.device,
        resume=args.resume,
        seed=args.seed,
        max_seconds=args.max_seconds,
        workers=args.workers,
        eval_every=args.eval_every,
        clip_max_norm=args.clip_max_norm,
        lr_patience=args.lr_patience,
        amp=not args.no_amp,
        holdout=args.holdout,
        quiet=args.quiet,
    )
    trainer = Trainer(cfg)
    stats = trainer.run()
    if trainer.ctx.is_main:
        print(
            f"step {trainer.step}: loss {stats['loss']:.4f}  bpp {stats['bpp']:.4f}  psnr {stats['psnr']:.2f} dB"
            f"  -> {cfg.output}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    # the train errors are imported only when a command runs, so their import-time warnings obey --verbose
    return cli_run(app, argv, prog="python -m train")
