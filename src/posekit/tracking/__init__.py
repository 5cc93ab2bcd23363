"""Tracking people across video frames and smoothing their keypoints over time.

- ``Tracker`` / ``TrackerParams``: persistent ``track_ids`` from OKS + IoU similarity against
  constant-velocity predictions, Hungarian assignment, and re-identification of lost tracks.
- ``PoseSmoother`` / ``SmootherParams``: per-track, scale-aware One-Euro smoothing of keypoints.
- ``OneEuroFilter``: the filter itself, on numpy arrays of any shape.
- ``linear_sum_assignment`` / ``gated_assignment``: exact minimum-cost assignment in numpy.
"""

from posekit.tracking.assignment import gated_assignment, linear_sum_assignment
from posekit.tracking.smoothing import OneEuroFilter, PoseSmoother, SmootherParams, person_sizes
from posekit.tracking.tracker import Tracker, TrackerParams, box_iou

__all__ = [
    "OneEuroFilter",
    "PoseSmoother",
    "SmootherParams",
    "Tracker",
    "TrackerParams",
    "box_iou",
    "gated_assignment",
    "linear_sum_assignment",
    "person_sizes",
]
