"""Evaluation: COCO keypoint AP (a fast exact evaluator, and pycocotools as the reference) and PCKh."""

from __future__ import annotations

from posekit.eval.coco import STAT_NAMES, evaluate_coco
from posekit.eval.fast import KeypointEval, evaluate_keypoints
from posekit.eval.pck import PckhResult, pckh

__all__ = ["STAT_NAMES", "KeypointEval", "PckhResult", "evaluate_coco", "evaluate_keypoints", "pckh"]
