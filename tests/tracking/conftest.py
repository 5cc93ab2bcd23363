"""Synthetic people for the tracking tests, as fixtures returning builder functions."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from posekit.poses import Poses
from posekit.schemas import COCO_17

# A standing person of height 1, centred on the origin, y down, in COCO-17 order.
TEMPLATE = np.array([
    [0, -0.45], [0.03, -0.47], [-0.03, -0.47], [0.06, -0.46], [-0.06, -0.46],  # nose, eyes, ears
    [0.12, -0.30], [-0.12, -0.30], [0.15, -0.10], [-0.15, -0.10], [0.16, 0.05], [-0.16, 0.05],  # arms
    [0.08, 0.05], [-0.08, 0.05], [0.09, 0.28], [-0.09, 0.28], [0.10, 0.50], [-0.10, 0.50],  # legs
])  # fmt: skip
LEGS = slice(13, 17)


def _person_keypoints(cx: float, cy: float, height: float, phase: float = 0.0) -> np.ndarray:
    """``(17, 2)`` keypoints of a person centred at (cx, cy); ``phase`` swings the legs (walking)."""
    kp = TEMPLATE * height
    kp[LEGS, 0] += np.array([1, -1, 1, -1]) * 0.06 * height * np.sin(phase)
    return kp + np.array([cx, cy])


def _make_poses(people: list[np.ndarray], scores: list[float] | None = None, schema: str = "coco17") -> Poses:
    """COCO-17 ``Poses`` from keypoint arrays (NaN rows = missing), converted to ``schema``."""
    if not people:
        return Poses.empty(schema)
    kp = np.stack(people).astype(np.float32)
    ks = np.where(np.isfinite(kp).all(axis=2), 0.9, 0.0)
    sc = np.full(len(people), 0.9) if scores is None else np.asarray(scores)
    return Poses(kp, ks, sc, COCO_17).with_schema(schema)


PersonKeypoints = Callable[..., np.ndarray]
MakePoses = Callable[..., Poses]


@pytest.fixture
def person_keypoints() -> PersonKeypoints:
    return _person_keypoints


@pytest.fixture
def make_poses() -> MakePoses:
    return _make_poses
