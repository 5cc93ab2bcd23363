"""Top-down building blocks: rotated crops and pose-level non-maximum suppression."""

from __future__ import annotations

from posekit.topdown.crops import Rois, crop_images, crop_matrices, from_crop, to_crop
from posekit.topdown.nms import ParametricNMS, oks_nms, parametric_pose_nms

__all__ = ["ParametricNMS", "Rois", "crop_images", "crop_matrices", "from_crop", "oks_nms", "parametric_pose_nms",
           "to_crop"]  # fmt: skip
