"""Evaluation: COCO keypoint AP (pycocotools semantics)."""

from __future__ import annotations

from posekit.eval.coco import STAT_NAMES, evaluate_coco

__all__ = ["STAT_NAMES", "evaluate_coco"]
