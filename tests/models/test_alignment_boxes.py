"""Body boxes from BlazePose's alignment points (used by the PyTorch top-down presets); no torch needed."""

from __future__ import annotations

import numpy as np
import pytest

from posekit.detectors import Detections
from posekit.models.torch.presets import AlignmentBoxes


class _Fixed:
    def __init__(self, keypoints: np.ndarray) -> None:
        self.keypoints = keypoints

    def __call__(self, image: np.ndarray) -> Detections:
        n = len(self.keypoints)
        return Detections(np.zeros((n, 4), np.float32), np.ones(n, np.float32), self.keypoints)


def test_body_box_follows_the_axis_and_the_square_is_mediapipes_circle():
    # upright person: hip centre (100, 200), the point above the head 100 px higher; lying person: axis along x
    kps = np.array([[[100.0, 200.0], [100.0, 100.0]], [[300.0, 50.0], [380.0, 50.0]]], np.float32)
    det = AlignmentBoxes(_Fixed(kps), along=0.9, across=0.3)(np.zeros((10, 10, 3), np.uint8))
    np.testing.assert_allclose(det.boxes[0], [70, 110, 130, 290])  # 2*0.3*100 wide, 2*0.9*100 tall
    np.testing.assert_allclose(det.boxes[1], [228, 26, 372, 74])  # the long side along x
    square = AlignmentBoxes(_Fixed(kps), along=1.0, across=1.0)(np.zeros((10, 10, 3), np.uint8))
    np.testing.assert_allclose(square.boxes[0], [0, 100, 200, 300])
    # a diagonal axis: the upright bounding box of the rotated rectangle
    diag = np.array([[[0.0, 0.0], [60.0, 80.0]]], np.float32)  # r = 100, axis (0.6, 0.8)
    b = AlignmentBoxes(_Fixed(diag), along=1.0, across=0.5).boxes(diag)[0]
    np.testing.assert_allclose(b, [-(60 + 40), -(80 + 30), 60 + 40, 80 + 30])
    with pytest.raises(ValueError, match="positive"):
        AlignmentBoxes(_Fixed(kps), along=0.0)
