"""COCO keypoint evaluation (OKS AP/AR) through pycocotools, the reference implementation.

``pycocotools`` is an optional dependency (``pip install posekit[eval]``).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["STAT_NAMES", "evaluate_coco"]

log = logging.getLogger(__name__)

STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def _load(obj: str | os.PathLike[str] | dict[str, Any]) -> dict[str, Any]:
    if isinstance(obj, dict):
        return copy.deepcopy(obj)
    with open(obj) as f:
        data: dict[str, Any] = json.load(f)
    return data


def _fill_missing(gt: dict[str, Any]) -> None:
    """Give every annotation the fields pycocotools needs (warning about what was filled) and ids from 1."""
    filled: set[str] = set()
    # pycocotools takes a matched ground-truth id of 0 for "unmatched": renumber from 1 (ids are
    # only used for matching, and this is a copy).
    for i, ann in enumerate(gt.get("annotations", []), start=1):
        ann["id"] = i
        kp = np.asarray(ann.get("keypoints", []), dtype=np.float64).reshape(-1, 3)
        if "num_keypoints" not in ann:
            ann["num_keypoints"] = int((kp[:, 2] > 0).sum())
            filled.add("num_keypoints")
        if "iscrowd" not in ann:
            ann["iscrowd"] = 0
            filled.add("iscrowd")
        if "area" not in ann:
            if "bbox" in ann:
                ann["area"] = float(ann["bbox"][2] * ann["bbox"][3])
            else:
                vis = kp[kp[:, 2] > 0, :2]
                ann["area"] = float(np.prod(vis.max(0) - vis.min(0))) if len(vis) else 0.0
            filled.add("area")
    if filled:
        log.warning("ground truth lacks %s on some annotations; filled them in", ", ".join(sorted(filled)))


def evaluate_coco(
    ground_truth: str | os.PathLike[str] | dict[str, Any],
    results: Sequence[dict[str, Any]],
    *,
    image_ids: Sequence[int] | None = None,
    sigmas: Sequence[float] | None = None,
) -> dict[str, float]:
    """COCO keypoint AP/AR of ``results`` (COCO results format) against ``ground_truth``.

    ``image_ids`` restricts evaluation (default: every ground-truth image, so images where
    nothing was predicted count as misses); ``sigmas`` overrides the COCO-17 OKS constants.
    """
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as exc:
        raise ImportError("COCO evaluation needs pycocotools: pip install 'posekit[eval]'") from exc
    gt = _load(ground_truth)
    _fill_missing(gt)
    ids = sorted(int(i) for i in image_ids) if image_ids is not None else sorted(int(im["id"]) for im in gt["images"])
    if not results:
        return dict.fromkeys(STAT_NAMES, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(list(results)))
        ev = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        ev.params.imgIds = ids
        if sigmas is not None:
            ev.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {name: float(v) for name, v in zip(STAT_NAMES, ev.stats, strict=True)}
