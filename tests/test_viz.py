"""Skeleton drawing."""

from __future__ import annotations

import numpy as np

from posekit.poses import Poses
from posekit.schemas import COCO_17
from posekit.viz import draw_poses, limb_colors


def _one_person() -> Poses:
    kp = np.full((1, 17, 2), np.nan, np.float32)
    sc = np.zeros((1, 17), np.float32)
    ls, rs = COCO_17.index("left_shoulder"), COCO_17.index("right_shoulder")
    kp[0, ls], kp[0, rs] = (20, 50), (80, 50)
    sc[0, ls], sc[0, rs] = 0.9, 0.9
    return Poses(kp, sc, np.array([0.9]), COCO_17, track_ids=np.array([7]))


def test_draws_found_limbs_on_a_copy() -> None:
    image = np.zeros((100, 100, 3), np.uint8)
    out = draw_poses(image, _one_person())
    assert image.max() == 0, "the input image is not modified"
    assert out[50, 50].max() > 100, "the shoulder-to-shoulder limb is drawn"
    assert out[90, 50].max() == 0, "nothing is drawn far from the person"


def test_missing_keypoints_draw_nothing() -> None:
    p = _one_person()
    sc = p.keypoint_scores.copy()
    sc[0, COCO_17.index("left_shoulder")] = 0
    poses = Poses(p.keypoints, sc, p.scores, COCO_17)
    out = draw_poses(np.zeros((100, 100, 3), np.uint8), poses)
    assert out[50, 50].max() == 0
    assert draw_poses(np.zeros((10, 10, 3), np.uint8), Poses.empty(COCO_17)).max() == 0


def test_limb_colours_are_distinct() -> None:
    colors = limb_colors(COCO_17)
    assert len(colors) == len(COCO_17.skeleton)
    assert len(set(colors)) == len(colors)
