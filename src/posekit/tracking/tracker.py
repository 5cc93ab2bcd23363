"""Multi-person pose tracking by detection: persistent ``track_ids`` across video frames.

Each frame's people are associated with the existing tracks in two stages, both solved exactly with
``gated_assignment`` (Hungarian):

1. **Continuation.** Tracks matched in the previous update are predicted forward with a constant
   velocity model (the whole pose and box translated by the track's box-centre velocity) and
   compared with every detection by ``oks_weight * OKS + (1 - oks_weight) * IoU``. OKS uses the
   schema's sigmas and the predicted box's area, over the keypoints visible in both poses (IoU alone
   when they share none); IoU is between boxes from ``Poses.bounding_boxes()``. Pairs below
   ``min_similarity`` are not matched.
2. **Re-identification.** Every track not matched in stage 1 that has been missing for at most
   ``max_age`` frames (including tracks lost earlier) is compared with the remaining detections by
   position and size only: the distance between the predicted box centre and the detection's box
   centre, in units of the track's size ``sqrt(width * height)``, must be at most
   ``reid_max_distance``, and the two sizes must differ by at most a factor ``reid_max_size_ratio``.
   The cost minimised is that distance plus ``|log(size ratio)|``.

Detections still unmatched start a new track when their ``score`` is at least
``min_new_track_score``; otherwise (or when they have no visible keypoint and no box) they get track
id ``-1``, meaning "not tracked". A detection below that score can still continue an existing track.
Ids start at 0, increase, and are never reused. Tracks missing for more than ``max_age`` frames are
deleted for good.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from posekit.boxes import box_iou
from posekit.poses import Poses
from posekit.schemas import KeypointSchema
from posekit.topdown.nms import oks
from posekit.tracking.assignment import gated_assignment

__all__ = ["Tracker", "TrackerParams", "box_iou"]


@dataclass(frozen=True)
class TrackerParams:
    """Settings of ``Tracker``.

    - ``min_similarity`` (0.3): gate of stage 1; a track and a detection whose similarity (in [0, 1])
      is lower are never matched there.
    - ``oks_weight`` (0.5): weight of OKS in the similarity, the rest being box IoU.
    - ``fallback_sigma`` (0.07, about the mean COCO-17 sigma): the OKS constant used for every
      keypoint of a schema without sigmas (BlazePose-33); ``None`` means box IoU only for them.
    - ``min_new_track_score`` (0.3): minimum person ``score`` to start a new track.
    - ``max_age`` (30): frames (by ``frame_index``) a track may be missing and still be re-identified.
    - ``velocity_momentum`` (0.5): weight of the previous velocity when blending in a new measurement.
    - ``reid_max_distance`` (1.0) and ``reid_max_size_ratio`` (1.5): gates of stage 2, see the module
      documentation.
    """

    min_similarity: float = 0.3
    oks_weight: float = 0.5
    fallback_sigma: float | None = 0.07
    min_new_track_score: float = 0.3
    max_age: int = 30
    velocity_momentum: float = 0.5
    reid_max_distance: float = 1.0
    reid_max_size_ratio: float = 1.5

    def __post_init__(self) -> None:
        if not 0 <= self.oks_weight <= 1:
            raise ValueError("oks_weight must be in [0, 1]")
        if not 0 <= self.velocity_momentum < 1:
            raise ValueError("velocity_momentum must be in [0, 1)")
        if self.max_age < 0:
            raise ValueError("max_age must be >= 0")
        if self.reid_max_size_ratio < 1 or self.reid_max_distance < 0:
            raise ValueError("reid_max_size_ratio must be >= 1 and reid_max_distance >= 0")
        if self.fallback_sigma is not None and self.fallback_sigma <= 0:
            raise ValueError("fallback_sigma must be > 0 or None")


def _centre(box: NDArray[np.float64]) -> NDArray[np.float64]:
    return (box[..., :2] + box[..., 2:]) / 2


def _size(box: NDArray[np.float64]) -> NDArray[np.float64]:
    wh = np.maximum(box[..., 2:] - box[..., :2], 1.0)
    return np.sqrt(wh.prod(axis=-1))


@dataclass
class _Track:
    track_id: int
    keypoints: NDArray[np.float64]  # (K, 2), NaN where missing
    visible: NDArray[np.bool_]  # (K,)
    box: NDArray[np.float64]  # (4,) xyxy
    velocity: NDArray[np.float64]  # (2,) box-centre velocity per time unit
    time: float
    frame: int
    hits: int = 1

    def shift(self, time: float) -> NDArray[np.float64]:
        return self.velocity * (time - self.time)


class Tracker:
    """Gives the people of successive frames persistent ``track_ids`` (see the module docs).

    ``update(poses, frame_index, timestamp=None)`` returns the same people, in the same order, with
    ``track_ids`` set (``-1`` for people not tracked). ``frame_index`` must increase between calls;
    velocities are per frame, or per timestamp unit when timestamps are given (then they must be
    given on every call and increase). Any schema works; see ``TrackerParams.fallback_sigma`` for
    schemas without OKS sigmas.
    """

    def __init__(self, params: TrackerParams | None = None) -> None:
        self.params = params if params is not None else TrackerParams()
        self._next_id = 0
        self.reset()

    def reset(self) -> None:
        """Forget every track. Ids keep increasing: an id is never handed out twice."""
        self._tracks: list[_Track] = []
        self._last_frame: int | None = None
        self._last_time: float | None = None
        self._uses_timestamps: bool | None = None
        self._schema: KeypointSchema | None = None

    @property
    def tracks_started(self) -> int:
        """How many track ids have been handed out (ids are 0 .. tracks_started - 1)."""
        return self._next_id

    @property
    def track_ids(self) -> tuple[int, ...]:
        """Ids of the tracks that can still be matched (seen within ``max_age`` frames)."""
        return tuple(t.track_id for t in self._tracks)

    def _sigmas(self, schema: KeypointSchema) -> NDArray[np.float64] | None:
        if schema.sigmas is not None:
            return schema.sigmas_array()
        if self.params.fallback_sigma is None:
            return None
        return np.full(schema.num_keypoints, self.params.fallback_sigma)

    def _check_time(self, frame_index: int, timestamp: float | None) -> float:
        uses = timestamp is not None
        if self._uses_timestamps is not None and uses != self._uses_timestamps:
            raise ValueError("give a timestamp on every update or on none")
        if self._last_frame is not None and frame_index <= self._last_frame:
            raise ValueError(f"frame_index must increase: {frame_index} after {self._last_frame}")
        time = float(timestamp) if timestamp is not None else float(frame_index)
        if self._last_time is not None and time <= self._last_time:
            raise ValueError(f"timestamps must increase: {time} after {self._last_time}")
        self._uses_timestamps = uses
        return time

    def _similarity(
        self,
        tracks: list[_Track],
        time: float,
        det_kp: NDArray[np.float64],
        det_vis: NDArray[np.bool_],
        det_box: NDArray[np.float64],
        sigmas: NDArray[np.float64] | None,
    ) -> NDArray[np.float64]:
        """``(T, D)`` similarity in [0, 1] of each track, predicted to ``time``, to each detection."""
        shifts = np.array([t.shift(time) for t in tracks]).reshape(-1, 2)
        boxes = np.array([t.box for t in tracks]).reshape(-1, 4) + np.tile(shifts, 2)
        sim = box_iou(boxes, det_box)
        if sigmas is None:
            return sim
        w = self.params.oks_weight
        for i, track in enumerate(tracks):
            has = (track.visible[None] & det_vis).any(axis=1)  # else IoU alone
            if not has.any():
                continue
            area = float(np.maximum(boxes[i, 2:] - boxes[i, :2], 0).prod())
            predicted = track.keypoints + shifts[i]
            similarity = oks(predicted, track.visible, det_kp, det_vis, max(area, 1.0), sigmas)
            sim[i, has] = w * similarity[has] + (1 - w) * sim[i, has]
        return sim

    def update(self, poses: Poses, frame_index: int, timestamp: float | None = None) -> Poses:
        p = self.params
        frame_index = int(frame_index)
        time = self._check_time(frame_index, timestamp)
        if self._schema is not None and poses.schema != self._schema:
            raise ValueError(f"schema changed from {self._schema.name} to {poses.schema.name}")
        self._schema = poses.schema
        previous_frame = self._last_frame
        self._last_frame, self._last_time = frame_index, time
        # Drop tracks missing for more than max_age frames before this one.
        self._tracks = [t for t in self._tracks if frame_index - t.frame - 1 <= p.max_age]

        n = len(poses)
        ids = np.full(n, -1, dtype=np.int64)
        if n == 0:
            return replace(poses, track_ids=ids)

        det_vis = (poses.keypoint_scores > 0) & np.isfinite(poses.keypoints).all(axis=2)
        det_kp = np.where(det_vis[..., None], poses.keypoints, np.nan).astype(np.float64)
        det_box = poses.bounding_boxes().astype(np.float64)
        has_box = (det_box[:, 2] > det_box[:, 0]) | (det_box[:, 3] > det_box[:, 1])
        trackable = det_vis.any(axis=1) | (has_box & (poses.boxes is not None))
        free_dets = np.nonzero(trackable)[0]
        matched: dict[int, int] = {}  # track list index -> detection index

        # Stage 1: continue the tracks seen in the previous update.
        active = [i for i, t in enumerate(self._tracks) if t.frame == previous_frame]
        if active and len(free_dets):
            sim = self._similarity(
                [self._tracks[i] for i in active], time, det_kp[free_dets], det_vis[free_dets],
                det_box[free_dets], self._sigmas(poses.schema),
            )  # fmt: skip
            rows, cols = gated_assignment(1.0 - sim, max_cost=1.0 - p.min_similarity)
            for r, c in zip(rows, cols, strict=True):
                matched[active[r]] = int(free_dets[c])
            free_dets = np.setdiff1d(free_dets, list(matched.values()))

        # Stage 2: re-identify tracks not matched yet, by predicted position and size.
        waiting = [i for i in range(len(self._tracks)) if i not in matched]
        if waiting and len(free_dets):
            tracks = [self._tracks[i] for i in waiting]
            shifts = np.array([t.shift(time) for t in tracks])
            boxes = np.array([t.box for t in tracks]) + np.tile(shifts, 2)
            t_size = _size(boxes)
            d_size = _size(det_box[free_dets])
            dist = np.linalg.norm(_centre(boxes)[:, None] - _centre(det_box[free_dets])[None], axis=2) / t_size[:, None]
            log_ratio = np.abs(np.log(d_size[None] / t_size[:, None]))
            ok = (dist <= p.reid_max_distance) & (log_ratio <= np.log(p.reid_max_size_ratio))
            rows, cols = gated_assignment(np.where(ok, dist + log_ratio, np.inf))
            for r, c in zip(rows, cols, strict=True):
                matched[waiting[r]] = int(free_dets[c])
            free_dets = np.setdiff1d(free_dets, list(matched.values()))

        for ti, d in matched.items():
            track = self._tracks[ti]
            dt = time - track.time
            measured = (_centre(det_box[d]) - _centre(track.box)) / dt
            m = p.velocity_momentum if track.hits > 1 else 0.0
            track.velocity = m * track.velocity + (1 - m) * measured
            track.keypoints, track.visible, track.box = det_kp[d], det_vis[d], det_box[d]
            track.time, track.frame = time, frame_index
            track.hits += 1
            ids[d] = track.track_id

        for d in free_dets:
            if poses.scores[d] < p.min_new_track_score:
                continue
            self._tracks.append(
                _Track(self._next_id, det_kp[d], det_vis[d], det_box[d], np.zeros(2), time, frame_index)
            )
            ids[d] = self._next_id
            self._next_id += 1
        return replace(poses, track_ids=ids)
