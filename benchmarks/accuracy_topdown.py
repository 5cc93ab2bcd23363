"""Top-down accuracy and speed on the COCO val2017 dev subset: multi-person BlazePose against
MediaPipe's own (single-person) solution and posekit's bottom-up default, in one run.

Rows (COCO keypoint AP over all 77 images of ``../shared/data/coco-val2017-dev``, images without
people included; ms per image is the pipeline call on a decoded image, after a warm-up):

* posekit ``blazepose`` with its own detector (whole image plus zoomed tiles, every person kept);
* posekit ``blazepose`` on the ground-truth person boxes: aligned crops (two landmark passes,
  the second cropped from the model's own alignment points) and naive crops (one pass on an upright
  square of 1.25x the box's longer side);
* posekit ``openpose-mobilenet-thin`` (the default pipeline), for reference;
* MediaPipe 0.10.21's own ``solutions.pose`` (keeps one person), run by
  ``benchmarks/peer_mediapipe.py eval`` in its throwaway venv during this run; build that venv once
  with ``python benchmarks/peer_mediapipe.py --build``. Without it the row says "not run".

Command (from the repository root)::

    python benchmarks/accuracy_topdown.py [--data DIR] [--threads 2] [--no-peer]

Writes ``benchmarks/results/accuracy_topdown.json`` and ``.md`` (atomically).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

import posekit
from _results import cpu_name, write_results
from posekit.eval import evaluate_coco
from posekit.models.blazepose import LandmarkParams

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "coco-val2017-dev"
PEER_SCRIPT = ROOT / "benchmarks" / "peer_mediapipe.py"
PEER_PYTHON = ROOT / "benchmarks" / ".peer" / "mediapipe-venv" / "bin" / "python"


def gt_boxes(gt: dict[str, Any], image_id: int) -> np.ndarray:
    """xyxy boxes of the annotated (non-crowd, with keypoints) people of one image."""
    anns = [
        a for a in gt["annotations"] if a["image_id"] == image_id and not a.get("iscrowd") and a["num_keypoints"] > 0
    ]
    return np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in anns],
                    dtype=np.float32).reshape(-1, 4)  # fmt: skip


def run_row(
    model: Any, gt: dict[str, Any], images_dir: Path, use_gt: bool, bar: tqdm
) -> tuple[list[dict[str, Any]], list[float]]:
    results: list[dict[str, Any]] = []
    times: list[float] = []
    first = posekit.read_image(images_dir / gt["images"][0]["file_name"])
    model(first)  # warm-up
    for im in gt["images"]:
        rgb = posekit.read_image(images_dir / im["file_name"])
        boxes = gt_boxes(gt, im["id"]) if use_gt else None
        t0 = time.perf_counter()
        poses = model(rgb) if boxes is None else model(rgb, boxes=boxes)
        times.append((time.perf_counter() - t0) * 1e3)
        results.extend(poses.with_schema("coco17").to_coco(im["id"]))
        bar.update(1)
    return results, times


def run_peer(data: Path) -> dict[str, Any] | str:
    if not PEER_PYTHON.exists():
        return "not run (build it with: python benchmarks/peer_mediapipe.py --build)"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "peer.json"
        r = subprocess.run([str(PEER_PYTHON), str(PEER_SCRIPT), "eval", "--data", str(data), "--out", str(out)],
                           capture_output=True, text=True)  # fmt: skip
        if r.returncode != 0:
            return f"failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}"
        report: dict[str, Any] = json.loads(out.read_text())
        return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="COCO folder with person_keypoints.json and images/"
    )
    ap.add_argument("--threads", type=int, default=2, help="inference threads (default 2)")
    ap.add_argument("--no-peer", action="store_true", help="skip MediaPipe's own solution")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args(argv)
    ann = args.data / "person_keypoints.json"
    if not ann.is_file():
        print(f"error: {ann} not found (the shared data lives in ../shared/data)", file=sys.stderr)
        return 2
    gt = json.loads(ann.read_text())
    cv2.setNumThreads(args.threads)
    images_dir = args.data / "images"
    settings = [
        ("blazepose, own detector", "blazepose", {}, False),
        ("blazepose, ground-truth boxes, aligned (2 passes)", "blazepose", {}, True),
        ("blazepose, ground-truth boxes, naive crops (1 pass)", "blazepose", {"passes": 1}, True),
        ("openpose-mobilenet-thin (posekit default)", "openpose-mobilenet-thin", None, False),
    ]
    rows: list[dict[str, Any]] = []
    with tqdm(total=len(settings) * len(gt["images"]), unit="img") as bar:
        for label, name, landmark_kw, use_gt in settings:
            bar.set_description(label[:30])
            model = posekit.load(name, threads=args.threads, progress=False)
            if landmark_kw is not None:
                model.estimator.params = LandmarkParams(**landmark_kw)
            results, times = run_row(model, gt, images_dir, use_gt, bar)
            stats = evaluate_coco(ann, results)
            rows.append({"setting": label, "stats": stats, "ms_mean": statistics.fmean(times),
                         "ms_median": statistics.median(times), "detections": len(results)})  # fmt: skip
    peer = None if args.no_peer else run_peer(args.data)
    if isinstance(peer, dict):
        best = peer["stats_by_person_score"]["detector_score"]
        rows.append({"setting": "MediaPipe 0.10.21 solutions.pose (one person per image)",
                     "stats": {"AP": best["AP"], "AP50": best["AP50"], "AP75": best["AP75"], "AR": best["AR"]},
                     "ms_mean": peer["timing"]["ms_mean"], "ms_median": peer["timing"]["ms_median"],
                     "detections": peer["num_detections"]})  # fmt: skip
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    cpu = cpu_name()
    report = {"benchmark": "benchmarks/accuracy_topdown.py", "data": str(args.data), "date": now, "cpu": cpu,
              "threads": args.threads, "opencv": cv2.__version__, "rows": rows,
              "peer": peer if isinstance(peer, str) or peer is None else {k: v for k, v in peer.items() if k != "per_image"}}  # fmt: skip
    lines = [
        "| setting | AP | AP50 | AP75 | AR | ms / image (mean / median) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        s = r["stats"]
        lines.append(f"| {r['setting']} | {s['AP']:.3f} | {s['AP50']:.3f} | {s['AP75']:.3f} | {s['AR']:.3f} | "
                     f"{r['ms_mean']:.1f} / {r['ms_median']:.1f} |")  # fmt: skip
    if isinstance(peer, str):
        lines.append(f"| MediaPipe 0.10.21 solutions.pose | {peer} | | | | |")
    lines.append("")
    lines.append(
        f"{len(gt['images'])} images of `coco-val2017-dev`; {cpu}, {args.threads} threads, OpenCV {cv2.__version__}; {now}."
    )
    write_results(args.out_dir, "accuracy_topdown", report, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
