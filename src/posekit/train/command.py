"""``posekit train``: the command-line front of :class:`posekit.train.trainer.Trainer`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]

EPILOG = """\
examples:
  posekit train examples/train/vitpose-tiny.toml
  posekit train examples/train/vitpose-tiny.toml --set steps=50 --set optim.lr=1e-4 --out runs/short
  posekit train examples/train/vitpose-tiny.toml --resume          # continue OUT/last.pt
  torchrun --nproc_per_node 2 -m posekit train examples/train/vitpose-tiny.toml   # DDP (gloo on CPU)

The run folder gets last.pt (full state), model.pt (for `posekit eval/predict --model trained
--checkpoint OUT/model.pt`), metrics.csv, eval.csv and config.json.
"""


def add_parser(sub: Any) -> None:
    tr = sub.add_parser(
        "train",
        help="train a model on COCO-format keypoints (needs posekit[torch])",
        description="Train a ViTPose (top-down) or the MobileNet-thin OpenPose network (bottom-up) from a "
        "TOML config; keys are the fields of posekit.train.config.TrainConfig and its [model], [data] and "
        "[optim] tables.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tr.add_argument("config", type=Path, nargs="?", help="TOML config file (omit to use defaults and --set)")
    tr.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value, e.g. optim.lr=1e-4 or steps=100 (repeatable)")  # fmt: skip
    tr.add_argument("--out", default=None, help="run folder (overrides the config's out)")
    tr.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    tr.add_argument("--overwrite", action="store_true", help="start afresh even if OUT holds a run")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ValueError("training needs PyTorch: pip install 'posekit[torch]'") from None
    from posekit.train.config import load_config
    from posekit.train.trainer import Trainer

    overrides = list(args.overrides) + ([f'out="{args.out}"'] if args.out else [])
    cfg = load_config(args.config, overrides)
    trainer = Trainer(cfg, progress=not args.quiet)
    result = trainer.fit(resume=args.resume, overwrite=args.overwrite)
    if trainer.dist.main:
        summary: dict[str, Any] = {"out": str(result.out), "step": result.step, "loss": result.loss}
        if result.evaluations:
            summary["eval"] = result.evaluations[-1]
        print(json.dumps(summary))
    return 0
