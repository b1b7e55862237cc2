"""``python -m train``: train a codec, resume it, or inspect a checkpoint.

    python -m train -a bmshj2018-hyperprior --preset tiny -d DATA --steps 200 --batch-size 4 \\
        --patch-size 64 -o runs/tiny.pth
    torchrun --nproc-per-node 2 -m train ...        # DistributedDataParallel, rank 0 writes
    python -m train --info runs/tiny.pth            # what a checkpoint holds

Errors are one line on stderr with a non-zero exit; ``--verbose`` shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from train.loss import METRICS
from train.models import ARCHS

EXIT_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train", description="Train a lictrt learned image codec.")
    p.add_argument("-a", "--arch", choices=list(ARCHS), help="architecture (registry name)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--preset", help="model preset (e.g. tiny, small, paper, q1..q8)")
    g.add_argument("--quality", type=int, help="quality level 1..8 (also picks the zoo lambda)")
    p.add_argument("--lambda", dest="lmbda", type=_float_list, metavar="L[,L...]",
                   help="RD trade-off; one per width for slimmable models (default: zoo value of --quality, or "
                        "the checkpoint's when resuming)")
    p.add_argument("-d", "--data", type=Path, help="DATA/train + DATA/test, or a flat folder of images")
    n = p.add_mutually_exclusive_group()
    n.add_argument("--epochs", type=int, help="train this many epochs (in total, counting a resumed run)")
    n.add_argument("--steps", type=int, help="train this many optimizer steps (in total)")
    p.add_argument("--batch-size", type=int, default=8, help="per process (default 8)")
    p.add_argument("--patch-size", type=int, default=256, help="random crop size (default 256)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default 1e-4, or the saved one)")
    p.add_argument("--aux-lr", type=float, default=1e-3, help="aux (quantiles) learning rate (default 1e-3)")
    p.add_argument("--metric", choices=METRICS, default="mse")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("-o", "--output", type=Path, help="checkpoint path; the CSV log goes beside it (.csv)")
    p.add_argument("--resume", type=Path, help="continue from this checkpoint (or start from a bare state_dict)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-seconds", type=float, help="stop (then evaluate and save) after this much time")
    p.add_argument("--workers", type=int, default=0, help="data loader processes (default 0)")
    p.add_argument("--eval-every", type=int, default=0, help="evaluate every N steps (default: every epoch)")
    p.add_argument("--holdout", type=int, help="images held out of a flat folder for evaluation (default 10%%)")
    p.add_argument("--clip-max-norm", type=float, default=1.0, help="gradient clipping (0: off; default 1.0)")
    p.add_argument("--lr-patience", type=int, default=10, help="evaluations without progress before LR×0.5")
    p.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--info", type=Path, metavar="CKPT", help="print what a checkpoint holds and exit")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="show tracebacks and warnings")
    return p


def _float_list(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number or comma-separated numbers: {text!r}") from None
    if not all(v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"lambda must be positive: {text!r}")
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
        raise UsageError(f"missing {', '.join(missing)} (see --help)")
    if args.epochs is None and args.steps is None:
        raise UsageError("give --epochs or --steps")
    from train.trainer import TrainConfig, Trainer

    cfg = TrainConfig(arch=args.arch, data=args.data, output=args.output, preset=args.preset, quality=args.quality,
                      lmbda=args.lmbda, epochs=args.epochs, steps=args.steps, batch_size=args.batch_size,
                      patch_size=args.patch_size, lr=args.lr, aux_lr=args.aux_lr, metric=args.metric,
                      device=args.device, resume=args.resume, seed=args.seed, max_seconds=args.max_seconds,
                      workers=args.workers, eval_every=args.eval_every, clip_max_norm=args.clip_max_norm,
                      lr_patience=args.lr_patience, amp=not args.no_amp, holdout=args.holdout, quiet=args.quiet)
    trainer = Trainer(cfg)
    stats = trainer.run()
    if trainer.ctx.is_main:
        print(f"step {trainer.step}: loss {stats['loss']:.4f}  bpp {stats['bpp']:.4f}  psnr {stats['psnr']:.2f} dB"
              f"  -> {cfg.output}")
    return 0


class UsageError(Exception):
    """Missing or contradictory command-line options."""


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.verbose:
        warnings.filterwarnings("ignore")
    # imported only now, so their import-time warnings (CompressAI's torch.jit) obey --verbose
    from train.checkpoint import CheckpointError
    from train.data import DataError
    from train.loss import LossError
    from train.trainer import TrainError

    try:
        return run(args)
    except (CheckpointError, DataError, LossError, TrainError, UsageError) as e:
        if args.verbose:
            raise
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
