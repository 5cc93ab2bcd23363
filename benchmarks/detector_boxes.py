"""How well BlazePose's alignment points box a person, for the PyTorch top-down presets.

Top-down networks (ViTPose, FastPose, Sapiens) are trained on crops around tight person boxes
(labelled or from a COCO detector). posekit's presets find people with the BlazePose detector,
whose keypoints 0 (hip centre) and 1 (above the head) give an axis and a size ``r``;
:class:`posekit.models.torch.presets.AlignmentBoxes` turns them into a box ``2 * along * r`` long
on that axis and ``2 * across * r`` wide. This script runs the detector (default settings) on
coco-train2017-mini, picks ``along`` / ``across`` on a grid by the mean, over labelled people, of
each person's best IoU with a box (people the detector misses count 0), and reports that and the
share of people with a box at IoU >= 0.5 on coco-val2017-dev, for the fitted values and for
MediaPipe's square crop circle (``along = across = 1``).

Command (from the repository root; about a minute)::

    python benchmarks/detector_boxes.py

Writes ``benchmarks/results/detector_boxes.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from posekit.boxes import box_iou
from posekit.detectors.blazepose import BlazePoseDetector
from posekit.eval.predict import ground_truth_boxes
from posekit.io import read_image
from posekit.models.torch.presets import AlignmentBoxes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import cpu_name, write_results

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
Pair = tuple[NDArray[np.float64], NDArray[np.float64]]  # labelled boxes, detector keypoints of one image


def collect(root: Path, detector: BlazePoseDetector) -> list[Pair]:
    gt = json.loads((root / "person_keypoints.json").read_text())
    labelled = ground_truth_boxes(gt)
    out = []
    for im in gt["images"]:
        boxes = labelled.get(int(im["id"]))
        if boxes is None or not len(boxes):
            continue
        det = detector(read_image(root / "images" / im["file_name"]))
        kps = np.zeros((0, 2, 2)) if det.keypoints is None else np.asarray(det.keypoints[:, :2], np.float64)
        out.append((boxes.astype(np.float64), kps))
    return out


def best_ious(data: list[Pair], along: float, across: float) -> NDArray[np.float64]:
    maker = AlignmentBoxes(None, along=along, across=across)
    ious: list[float] = []
    for boxes, kps in data:
        ious += [0.0] * len(boxes) if not len(kps) else list(box_iou(boxes, maker.boxes(kps)).max(axis=1))
    return np.asarray(ious)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", type=Path, default=Path(__file__).resolve().parent / "results")
    args = ap.parse_args()
    detector = BlazePoseDetector(progress=True)
    train = collect(DATA / "coco-train2017-mini", detector)
    dev = collect(DATA / "coco-val2017-dev", detector)
    grid = [(round(a, 2), round(b, 2)) for a in np.arange(0.6, 1.21, 0.05) for b in np.arange(0.1, 0.61, 0.05)]
    fitted = max(grid, key=lambda ab: best_ious(train, *ab).mean())
    rows = []
    for name, (a, b) in (("MediaPipe's square", (1.0, 1.0)), ("fitted body box", fitted)):
        for split, data in (("coco-train2017-mini (fit)", train), ("coco-val2017-dev", dev)):
            iou = best_ious(data, a, b)
            rows.append({"boxes": name, "along": a, "across": b, "set": split, "people": len(iou),
                         "mean_iou": float(iou.mean()), "iou_at_least_0.5": float((iou >= 0.5).mean())})  # fmt: skip
    default = AlignmentBoxes(None)
    report = {"cpu": cpu_name(), "fitted": fitted, "default": [default.along, default.across], "rows": rows}
    lines = [
        f"Labelled people boxed by BlazePose's alignment points (best IoU per person; a missed person counts 0). "
        f"`along`/`across` fitted on coco-train2017-mini: {fitted[0]:g}/{fitted[1]:g} "
        f"(posekit's default: {default.along:g}/{default.across:g}).",
        "",
        "| boxes | along | across | set | people | mean IoU | IoU >= 0.5 |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {r['boxes']} | {r['along']:g} | {r['across']:g} | {r['set']} | {r['people']} | "
              f"{r['mean_iou']:.3f} | {r['iou_at_least_0.5']:.1%} |" for r in rows]  # fmt: skip
    write_results(args.results, "detector_boxes", report, lines)


if __name__ == "__main__":
    main()
