"""Issue 7's overfitting demonstration: a small ViTPose trained from scratch learns coco-train2017-mini.

Run 1 trains ``examples/train/vitpose-tiny.toml`` (ViTPose 192 wide x 6 blocks, 128x96 input, no
augmentation, 400 steps of 32 crops) with posekit's trainer. Run 2 trains the same network with the
default augmentation (scale, rotation, flip with flip pairs, half-body, colour) for 800 steps. Both
are evaluated on the *training* images with the real ``posekit eval`` command (a subprocess), on
ground-truth person boxes (``--gt-boxes``; flip test on for the network trained with flips), against
the same network untrained (identical initial weights: same seed).

coco-train2017-mini is training data for every COCO model: these numbers show that the trainer,
targets, losses and decoding fit together (training-set AP far above an untrained network's), not
how well the model generalises. (On BlazePose's boxes these networks score near 0: BlazePose finds
few of these people, and its square boxes give crops ~1.4x larger than the labelled boxes these
networks were trained on.)

Command (from the repository root; about 8 minutes on 2 quiet CPU cores)::

    python benchmarks/train_overfit.py [--steps 400] [--aug-steps 800] [--out runs/overfit]

Writes ``benchmarks/results/train_overfit.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from posekit.train.build import build_model, save_model_file
from posekit.train.config import TrainConfig, load_config
from posekit.train.trainer import Trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import cpu_name, posekit_eval, write_results

ROOT = Path(__file__).resolve().parents[1]
MINI = ROOT.parent / "shared" / "data" / "coco-train2017-mini" / "person_keypoints.json"


def train(cfg: TrainConfig) -> tuple[float, float]:
    t0 = time.perf_counter()
    result = Trainer(cfg, progress=True).fit(overwrite=True)
    return time.perf_counter() - t0, result.loss


def evaluate(name: str, checkpoint: Path) -> dict[str, Any]:
    s = posekit_eval(MINI, "--model", "trained", "--checkpoint", str(checkpoint), "--gt-boxes")
    return {"model": name, **{k: s[k] for k in ("AP", "AP50", "AP75", "AR")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=ROOT / "examples" / "train" / "vitpose-tiny.toml")
    ap.add_argument("--steps", type=int, default=None, help="steps of run 1 (default: the config's)")
    ap.add_argument("--aug-steps", type=int, default=800, help="steps of run 2 (with augmentation)")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "overfit")
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    overrides = [f'out="{args.out / "plain"}"'] + ([f"steps={args.steps}"] if args.steps else [])
    cfg = load_config(args.config, overrides)

    torch.manual_seed(cfg.seed)  # the trainer's initial weights
    untrained = save_model_file(args.out / "untrained.pt", build_model(cfg.model), cfg.model, cfg.task)
    plain_s, plain_loss = train(cfg)

    aug_cfg = load_config(args.config, [f'out="{args.out / "augmented"}"', f"steps={args.aug_steps}",
                                        "data.augment=true"])  # fmt: skip
    aug_s, aug_loss = train(aug_cfg)

    rows = [
        evaluate("untrained", untrained),
        evaluate(f"trained {cfg.steps} steps, no augmentation", args.out / "plain" / "model.pt"),
        evaluate(f"trained {aug_cfg.steps} steps, with augmentation", args.out / "augmented" / "model.pt"),
    ]
    report = {
        "cpu": cpu_name(), "torch": torch.__version__, "config": cfg.to_dict(), "augmented_config": aug_cfg.to_dict(),
        "train_seconds": {"plain": plain_s, "augmented": aug_s}, "final_loss": {"plain": plain_loss, "augmented": aug_loss},
        "rows": rows,
    }  # fmt: skip
    m = cfg.model
    lines = [
        f"Training-set AP (coco-train2017-mini, 86 people) of a ViTPose ({m.embed_dim} wide, {m.depth} blocks, "
        f"{m.input_size[1]}x{m.input_size[0]} input, batches of {cfg.batch_size} crops) trained from scratch, "
        "against the same network untrained; numbers from `posekit eval --model trained --gt-boxes` (flip test "
        f"on for the network trained with flips). Training took {plain_s / 60:.1f} min ({cfg.steps} steps) and "
        f"{aug_s / 60:.1f} min ({aug_cfg.steps} steps) on {cpu_name()} (a shared machine).",
        "",
        "| network | AP | AP50 | AP75 | AR |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {r['model']} | {r['AP']:.3f} | {r['AP50']:.3f} | {r['AP75']:.3f} | {r['AR']:.3f} |"
              for r in rows]  # fmt: skip
    write_results(args.results, "train_overfit", report, lines)


if __name__ == "__main__":
    main()
