"""Issue 7's overfitting demonstration: a small ViTPose trained from scratch learns coco-train2017-mini.

Trains ``examples/train/vitpose-tiny.toml`` (ViTPose 192 wide x 6 blocks, 128x96 input, no
augmentation, 400 steps of 32 crops) with ``posekit train``'s trainer, then evaluates on the
*training* images with the real ``posekit eval`` command (run as a subprocess):

* the trained network, on ground-truth person boxes (``--gt-boxes``) and on its BlazePose boxes;
* the same network *untrained* (identical initial weights: same seed), the same two ways.

coco-train2017-mini is training data for every COCO model: these numbers show that the trainer,
targets, losses and decoding fit together (training-set AP far above an untrained network's), not
how well the model generalises.

Command (from the repository root; about 5 minutes on 2 CPU cores)::

    python benchmarks/train_overfit.py [--steps 400] [--out runs/overfit]

Writes ``benchmarks/results/train_overfit.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from posekit.train.build import build_model, save_model_file
from posekit.train.config import load_config
from posekit.train.trainer import Trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import cpu_name, write_results

ROOT = Path(__file__).resolve().parents[1]
MINI = ROOT.parent / "shared" / "data" / "coco-train2017-mini" / "person_keypoints.json"


def posekit_eval(checkpoint: Path, gt_boxes: bool) -> dict[str, float]:
    cmd = [sys.executable, "-m", "posekit", "eval", "--gt", str(MINI), "--model", "trained",
           "--checkpoint", str(checkpoint), "--json", "--quiet"]  # fmt: skip
    if gt_boxes:
        cmd.append("--gt-boxes")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    stats: dict[str, float] = json.loads(out)["stats"]
    return stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=ROOT / "examples" / "train" / "vitpose-tiny.toml")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "overfit")
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    overrides = [f'out="{args.out}"'] + ([f"steps={args.steps}"] if args.steps else [])
    cfg = load_config(args.config, overrides)

    torch.manual_seed(cfg.seed)  # the trainer's initial weights
    untrained = save_model_file(args.out / "untrained.pt", build_model(cfg.model), cfg.model, cfg.task)
    t0 = time.perf_counter()
    result = Trainer(cfg, progress=True).fit(overwrite=True)
    train_s = time.perf_counter() - t0

    rows: list[dict[str, Any]] = []
    for name, ckpt in (("untrained", untrained), ("trained", args.out / "model.pt")):
        for gt_boxes in (True, False):
            s = posekit_eval(ckpt, gt_boxes)
            rows.append({"model": name, "boxes": "ground truth" if gt_boxes else "BlazePose detector",
                         **{k: s[k] for k in ("AP", "AP50", "AP75", "AR")}})  # fmt: skip
    report = {
        "cpu": cpu_name(), "torch": torch.__version__, "config": cfg.to_dict(), "steps": result.step,
        "train_seconds": train_s, "final_loss": result.loss, "rows": rows,
    }  # fmt: skip
    lines = [
        f"Training-set AP (coco-train2017-mini, 86 people) of a ViTPose trained from scratch for {result.step} steps "
        f"of {cfg.batch_size} crops ({cfg.model.embed_dim} wide, {cfg.model.depth} blocks, "
        f"{cfg.model.input_size[1]}x{cfg.model.input_size[0]} input) in {train_s / 60:.1f} min on {cpu_name()}, "
        "against the same network untrained; numbers from `posekit eval --model trained`:",
        "",
        "| network | person boxes | AP | AP50 | AP75 | AR |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {r['model']} | {r['boxes']} | {r['AP']:.3f} | {r['AP50']:.3f} | {r['AP75']:.3f} | {r['AR']:.3f} |"
              for r in rows]  # fmt: skip
    write_results(args.results, "train_overfit", report, lines)


if __name__ == "__main__":
    main()
