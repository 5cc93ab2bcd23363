"""Run a pipeline over the images of a COCO ground-truth file and collect COCO keypoint results.

Used by ``posekit eval --model`` and by the trainer's periodic evaluation. With ``gt_boxes=True``
a top-down pipeline is given the ground-truth person boxes (every non-crowd person with at least
one labelled keypoint) instead of running its detector — the "GT boxes" protocol of top-down papers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["ground_truth_boxes", "image_path", "run_on_ground_truth"]


def ground_truth_boxes(gt: Mapping[str, Any]) -> dict[int, NDArray[np.float32]]:
    """xyxy boxes per image id of every non-crowd annotation with a labelled keypoint."""
    out: dict[int, list[list[float]]] = {int(im["id"]): [] for im in gt.get("images", [])}
    for a in gt.get("annotations", []):
        kps = a.get("keypoints") or []
        if a.get("iscrowd", 0) or not any(v > 0 for v in kps[2::3]) or len(a.get("bbox") or []) != 4:
            continue
        x, y, w, h = (float(v) for v in a["bbox"])
        out.setdefault(int(a["image_id"]), []).append([x, y, x + w, y + h])
    return {k: np.asarray(v, dtype=np.float32).reshape(-1, 4) for k, v in out.items()}


def image_path(image: Mapping[str, Any], image_dir: str | Path, gt_path: str | Path | None = None) -> Path:
    """Where an image of the ground truth lives: ``image_dir/file_name``, else beside the JSON."""
    p = Path(image_dir) / image["file_name"]
    if not p.exists() and gt_path is not None:
        alt = Path(gt_path).parent / image["file_name"]
        if alt.exists():
            return alt
    return p


def run_on_ground_truth(
    pipeline: Callable[..., Any],
    gt: Mapping[str, Any],
    image_dir: str | Path,
    *,
    gt_path: str | Path | None = None,
    gt_boxes: bool = False,
    progress: bool = False,
    desc: str = "eval",
) -> list[dict[str, Any]]:
    """COCO-17 keypoint results of ``pipeline`` on every image of ``gt``.

    ``pipeline(image)`` (or ``pipeline(image, boxes)`` with ``gt_boxes``) returns :class:`~posekit.Poses`;
    they are converted to COCO-17 by keypoint name. Images without a ground-truth box are skipped
    under ``gt_boxes`` (nothing to estimate).
    """
    from tqdm.auto import tqdm

    from posekit.io import read_image

    boxes = ground_truth_boxes(gt) if gt_boxes else {}
    results: list[dict[str, Any]] = []
    for im in tqdm(gt.get("images", []), desc=desc, unit="img", disable=not progress, leave=False):
        iid = int(im["id"])
        if gt_boxes and not len(boxes.get(iid, ())):
            continue
        image = read_image(image_path(im, image_dir, gt_path))
        poses = pipeline(image, boxes[iid]) if gt_boxes else pipeline(image)
        results.extend(poses.with_schema("coco17").to_coco(iid))
    return results
