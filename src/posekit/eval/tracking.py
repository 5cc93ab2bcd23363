"""Multi-person pose tracking metrics over a video sequence: CLEAR-MOT counts, MOTP, jitter.

Inputs are MPII-14 ground truth with ``track_id`` on every annotation (the Bonn PoseTrack JSON; see
:func:`posekit.eval.pck.load_mpii_ground_truth`) and per-frame predictions carrying ``track_ids``
(``image_id -> Poses``, a sequence of ``Poses`` in the order of the ground truth's ``images``, or
COCO keypoint results with a ``track_id`` each). Predictions in any schema with COCO joint names
are converted to MPII-14 exactly as :func:`posekit.eval.pck.pckh` does.

Definitions:

* **Frame order** is the images' ``frame_id`` when every image has one, else their order in the
  file. Two frames are *consecutive* when their ``frame_id`` differ by one (or, without
  ``frame_id``, when they are adjacent in the file).
* **Untracked predictions**: people with track id ``-1`` (what :class:`posekit.tracking.Tracker`
  gives detections it did not track) are removed before anything else: they are never matched and
  never false positives, only counted (``num_untracked``). Predictions must carry ``track_ids``,
  unique within a frame.
* **Matching** (per frame): the tracked predictions are paired with the ground-truth people by
  :func:`~posekit.eval.pck.pckh`'s optimal assignment (maximum number of correct joints at
  PCKh@``threshold``). A pair is a **match** when at least ``min_correct_fraction`` (0.5) of the
  ground-truth person's labelled joints are correct (``correct >= fraction x labelled``). An
  assigned pair below that is not re-paired with anyone else: its ground-truth person is a miss
  and its prediction a false positive.
* **CLEAR-MOT** (Bernardin and Stiefelhagen, 2008), with people in place of boxes:
  ``misses`` = ground-truth people not matched; ``false_positives`` = tracked predictions not
  matched; ``id_switches`` = matches whose predicted track id differs from the one the same
  ground-truth track was matched to at its previous match (however many frames earlier; a
  ground-truth person without a track id never switches);
  ``MOTA = 1 - (misses + false_positives + id_switches) / ground-truth people``.
* **MOTP** (pose version): the mean distance, in head sizes, between the ground truth and the
  prediction over the *correct* joints (labelled, predicted, within the threshold) of matched
  pairs, so it lies in ``[0, threshold]``; ``motp_px`` is the same in pixels.
  ``mean_distance`` averages over *every* labelled and predicted joint of matched pairs instead
  (unbounded; one far-off joint moves it).
* **Fragmentation**: ``pred_tracks_per_gt_track`` is, for each ground-truth track, the number of
  distinct predicted track ids it was matched to (1 is ideal); ``fragmentations`` counts the times
  a ground-truth track's run of matches is interrupted (matched, then unmatched while the person
  is labelled, then matched again), CLEAR-MOT's FM.
* **Jitter**: for a ground-truth track and a joint, every three consecutive frames in which the
  track is matched in all three, the joint is labelled in all three, and the matched prediction
  has the joint in all three, give one sample: the norm of the second difference
  ``|p[t+1] - 2 p[t] + p[t-1]|`` of the predicted position (an acceleration in pixels per frame²;
  timestamps are not used). The ground truth's own second difference on the *same* triples is the
  reference (annotators' noise plus real motion), so ``jitter_px - gt_jitter_px`` is the jitter
  the method adds. The ``_norm`` variants divide each sample by the head size at the middle frame.
  Headline values pool every sample; ``jitter_per_track`` / ``jitter_per_joint`` pool within one
  track / joint. :func:`ground_truth_jitter` gives the ground truth's statistic over all its
  triples, independent of any prediction.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from posekit.eval.pck import (
    HEAD_SCALE,
    HEAD_TOP_SCALE,
    MPII_14,
    GroundTruthFrame,
    PckhResult,
    _load_json,
    load_mpii_ground_truth,
    mpii_xy,
    pckh,
    per_image_poses,
)
from posekit.poses import Poses
from posekit.schemas import KeypointSchema

__all__ = ["JitterStats", "TrackingResult", "ground_truth_jitter", "tracking_metrics"]


@dataclass(frozen=True)
class JitterStats:
    """Jitter samples pooled: mean second-difference norm of predictions and of the ground truth on
    the same triples, in pixels and in head sizes (NaN when there is no sample)."""

    jitter_px: float
    gt_jitter_px: float
    jitter_norm: float
    gt_jitter_norm: float
    samples: int

    @property
    def excess_px(self) -> float:
        """Jitter above the ground truth's, pixels per frame²."""
        return self.jitter_px - self.gt_jitter_px

    @property
    def excess_norm(self) -> float:
        return self.jitter_norm - self.gt_jitter_norm


@dataclass(frozen=True)
class TrackingResult:
    """Tracking metrics of one prediction sequence (see the module docstring for definitions)."""

    mota: float
    motp: float
    motp_px: float
    mean_distance: float
    num_gt: int
    num_predicted: int
    num_untracked: int
    num_matched: int
    misses: int
    false_positives: int
    id_switches: int
    fragmentations: int
    pred_tracks_per_gt_track: dict[int, int]
    num_gt_tracks: int
    num_pred_tracks: int
    jitter: JitterStats
    jitter_per_track: dict[int, JitterStats]
    jitter_per_joint: dict[str, JitterStats]
    pckh: PckhResult
    threshold: float
    min_correct_fraction: float
    per_frame: dict[int, dict[str, int]] = field(default_factory=dict)

    @property
    def mean_pred_tracks_per_gt_track(self) -> float:
        v = list(self.pred_tracks_per_gt_track.values())
        return float(np.mean(v)) if v else math.nan

    def to_dict(self, *, include_pckh_matches: bool = False) -> dict[str, Any]:
        """Plain JSON-ready data (NaN written as ``None``)."""

        def clean(x: float) -> float | None:
            return None if math.isnan(x) else float(x)

        def jit(j: JitterStats) -> dict[str, Any]:
            return {
                "jitter_px": clean(j.jitter_px),
                "gt_jitter_px": clean(j.gt_jitter_px),
                "excess_px": clean(j.excess_px),
                "jitter_norm": clean(j.jitter_norm),
                "gt_jitter_norm": clean(j.gt_jitter_norm),
                "excess_norm": clean(j.excess_norm),
                "samples": j.samples,
            }

        p = self.pckh.to_dict()
        if not include_pckh_matches:
            p.pop("matches")
        return {
            "mota": clean(self.mota),
            "motp": clean(self.motp),
            "motp_px": clean(self.motp_px),
            "mean_distance": clean(self.mean_distance),
            "num_gt": self.num_gt,
            "num_predicted": self.num_predicted,
            "num_untracked": self.num_untracked,
            "num_matched": self.num_matched,
            "misses": self.misses,
            "false_positives": self.false_positives,
            "id_switches": self.id_switches,
            "fragmentations": self.fragmentations,
            "pred_tracks_per_gt_track": {str(k): v for k, v in self.pred_tracks_per_gt_track.items()},
            "mean_pred_tracks_per_gt_track": clean(self.mean_pred_tracks_per_gt_track),
            "num_gt_tracks": self.num_gt_tracks,
            "num_pred_tracks": self.num_pred_tracks,
            "jitter": jit(self.jitter),
            "jitter_per_track": {str(k): jit(v) for k, v in self.jitter_per_track.items()},
            "jitter_per_joint": {k: jit(v) for k, v in self.jitter_per_joint.items()},
            "pckh": p,
            "threshold": self.threshold,
            "min_correct_fraction": self.min_correct_fraction,
            "per_frame": {str(k): v for k, v in self.per_frame.items()},
        }


# --------------------------------------------------------------------------- inputs


def _frame_order(gt: Mapping[str, Any]) -> list[tuple[int, int]]:
    """``(image_id, frame_number)`` in temporal order."""
    images = list(gt["images"])
    if images and all("frame_id" in im for im in images):
        order = sorted(((int(im["id"]), int(im["frame_id"])) for im in images), key=lambda x: x[1])
        frames = [f for _, f in order]
        if len(set(frames)) != len(frames):
            raise ValueError("two images share a frame_id; give one sequence at a time")
        return order
    return [(int(im["id"]), i) for i, im in enumerate(images)]


def _tracked_poses(
    predictions: Mapping[int, Poses] | Sequence[Poses] | Sequence[Mapping[str, Any]],
    image_ids: list[int],
    schema: str | KeypointSchema | None,
) -> dict[int, Poses]:
    """Image id -> ``Poses`` with ``track_ids`` (checked), in the prediction's own schema."""
    if not isinstance(predictions, Mapping):
        seq = list(predictions)
        if seq and all(isinstance(r, Mapping) for r in seq) and any("track_id" not in r for r in seq):
            raise ValueError("every result needs a track_id for tracking metrics")
        predictions = seq
    per_image = per_image_poses(predictions, image_ids, schema)
    for image_id, p in per_image.items():
        if p.track_ids is None:
            raise ValueError(f"predictions[{image_id}] has no track_ids (run a Tracker first)")
        tracked = p.track_ids[p.track_ids >= 0]
        if len(np.unique(tracked)) != len(tracked):
            raise ValueError(f"predictions[{image_id}]: track ids are not unique within the frame")
    return per_image


# --------------------------------------------------------------------------- jitter


class _JitterPool:
    def __init__(self) -> None:
        self.pred_px: list[float] = []
        self.gt_px: list[float] = []
        self.pred_n: list[float] = []
        self.gt_n: list[float] = []

    def add(self, pred: float, gt: float, head: float) -> None:
        self.pred_px.append(pred)
        self.gt_px.append(gt)
        self.pred_n.append(pred / head)
        self.gt_n.append(gt / head)

    def stats(self) -> JitterStats:
        def mean(v: list[float]) -> float:
            return float(np.mean(v)) if v else math.nan

        return JitterStats(mean(self.pred_px), mean(self.gt_px), mean(self.pred_n), mean(self.gt_n), len(self.pred_px))


def _second_difference(a: NDArray[np.float64], b: NDArray[np.float64], c: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per-joint ``|c - 2 b + a|`` of ``(K, 2)`` positions (NaN where any is missing)."""
    return np.linalg.norm(c - 2.0 * b + a, axis=-1)


def ground_truth_jitter(
    ground_truth: str | os.PathLike[str] | Mapping[str, Any], *, head_scale: float = HEAD_SCALE
) -> JitterStats:
    """The ground truth's own jitter over *every* triple of consecutive frames in which a track's
    joint is labelled (``jitter_*`` and ``gt_jitter_*`` of the result are equal)."""
    gt_json = _load_json(ground_truth)
    gt = load_mpii_ground_truth(gt_json, head_scale=head_scale)
    order = _frame_order(gt_json)
    pool = _JitterPool()
    for (i0, f0), (i1, f1), (i2, f2) in zip(order, order[1:], order[2:], strict=False):
        if not f0 + 1 == f1 == f2 - 1:
            continue
        frames = (gt[i0], gt[i1], gt[i2])
        for row1, tid in enumerate(frames[1].track_ids.tolist()):
            if tid < 0:
                continue
            rows = [np.flatnonzero(f.track_ids == tid) for f in (frames[0], frames[2])]
            if any(len(r) != 1 for r in rows):
                continue
            r0, r2 = int(rows[0][0]), int(rows[1][0])
            ok = frames[0].labelled[r0] & frames[1].labelled[row1] & frames[2].labelled[r2]
            d = _second_difference(frames[0].keypoints[r0], frames[1].keypoints[row1], frames[2].keypoints[r2])
            for j in np.flatnonzero(ok):
                pool.add(float(d[j]), float(d[j]), float(frames[1].head_size[row1]))
    return pool.stats()


# --------------------------------------------------------------------------- metric


def tracking_metrics(
    ground_truth: str | os.PathLike[str] | Mapping[str, Any],
    predictions: Mapping[int, Poses] | Sequence[Poses] | Sequence[Mapping[str, Any]],
    *,
    threshold: float = 0.5,
    min_correct_fraction: float = 0.5,
    schema: str | KeypointSchema | None = None,
    head_scale: float = HEAD_SCALE,
    head_top_scale: float = HEAD_TOP_SCALE,
) -> TrackingResult:
    """CLEAR-MOT, MOTP, fragmentation and jitter of tracked ``predictions`` over a sequence.

    ``ground_truth`` is an MPII-14 COCO-style JSON (path or dict) with ``track_id`` per annotation
    and, ideally, ``frame_id`` per image; ``predictions`` as for :func:`posekit.eval.pck.pckh`, but
    with ``track_ids`` (``-1`` = untracked, ignored). Definitions are in the module docstring.
    """
    if not 0 < min_correct_fraction <= 1:
        raise ValueError(f"min_correct_fraction must be in (0, 1], got {min_correct_fraction}")
    gt_json = _load_json(ground_truth)
    gt: dict[int, GroundTruthFrame] = load_mpii_ground_truth(gt_json, head_scale=head_scale)
    order = _frame_order(gt_json)
    raw = _tracked_poses(predictions, list(gt), schema)

    tracked: dict[int, Poses] = {}
    num_untracked = 0
    for image_id, p in raw.items():
        assert p.track_ids is not None
        keep = p.track_ids >= 0
        num_untracked += int((~keep).sum())
        tracked[image_id] = p[np.flatnonzero(keep)]
    pres = pckh(gt_json, tracked, threshold=threshold, head_scale=head_scale, head_top_scale=head_top_scale)
    xy = {i: mpii_xy(p, head_top_scale) for i, p in tracked.items()}
    ids = {i: np.asarray(p.track_ids, dtype=np.int64) for i, p in tracked.items()}

    # image id -> {gt index: pred index} for the pairs passing the match rule
    matched: dict[int, dict[int, int]] = {i: {} for i in gt}
    for m in pres.matches:
        if m.correct >= min_correct_fraction * m.labelled - 1e-9:
            matched[m.image_id][m.gt_index] = m.pred_index

    misses = fps = switches = frags = 0
    last_id: dict[int, int] = {}  # gt track -> predicted id at its last match
    interrupted: set[int] = set()  # gt tracks matched before but not at their last labelled appearance
    pred_ids_of: dict[int, set[int]] = {}
    per_frame: dict[int, dict[str, int]] = {}
    pred_tracks: set[int] = set()
    gt_tracks: set[int] = set()
    motp_d: list[float] = []
    motp_px: list[float] = []
    all_d: list[float] = []
    for image_id, _ in order:
        frame = gt[image_id]
        pairs = matched[image_id]
        n_pred = len(ids.get(image_id, ()))
        pred_tracks.update(ids.get(image_id, np.zeros(0, np.int64)).tolist())
        f_miss, f_fp, f_sw = len(frame) - len(pairs), n_pred - len(pairs), 0
        for g in range(len(frame)):
            tid = int(frame.track_ids[g])
            if tid < 0:
                continue
            gt_tracks.add(tid)
            seen_ids = pred_ids_of.setdefault(tid, set())
            if g not in pairs:
                if tid in last_id:
                    interrupted.add(tid)
                continue
            pid = int(ids[image_id][pairs[g]])
            seen_ids.add(pid)
            if tid in last_id and last_id[tid] != pid:
                f_sw += 1
            if tid in interrupted:
                frags += 1
                interrupted.discard(tid)
            last_id[tid] = pid
        for g, q in pairs.items():
            lab = frame.labelled[g]
            d_px = np.linalg.norm(xy[image_id][q] - frame.keypoints[g], axis=-1)
            d = d_px / frame.head_size[g]
            have = lab & np.isfinite(d)
            all_d.extend(d[have].tolist())
            ok = have & (d <= threshold)
            motp_d.extend(d[ok].tolist())
            motp_px.extend(d_px[ok].tolist())
        misses += f_miss
        fps += f_fp
        switches += f_sw
        per_frame[image_id] = {
            "gt": len(frame), "predicted": n_pred, "matched": len(pairs),
            "misses": f_miss, "false_positives": f_fp, "id_switches": f_sw,
        }  # fmt: skip

    # jitter over consecutive triples where the gt track is matched in all three
    overall, per_track, per_joint = _JitterPool(), {}, {}
    for (i0, f0), (i1, f1), (i2, f2) in zip(order, order[1:], order[2:], strict=False):
        if not f0 + 1 == f1 == f2 - 1:
            continue
        frames = (gt[i0], gt[i1], gt[i2])
        for g1, tid in enumerate(frames[1].track_ids.tolist()):
            if tid < 0 or g1 not in matched[i1]:
                continue
            rows = []
            for image_id, f in ((i0, frames[0]), (i2, frames[2])):
                r = np.flatnonzero(f.track_ids == tid)
                rows.append(int(r[0]) if len(r) == 1 and int(r[0]) in matched[image_id] else -1)
            if min(rows) < 0:
                continue
            g0, g2 = rows
            q0, q1, q2 = matched[i0][g0], matched[i1][g1], matched[i2][g2]
            ok = frames[0].labelled[g0] & frames[1].labelled[g1] & frames[2].labelled[g2]
            dp = _second_difference(xy[i0][q0], xy[i1][q1], xy[i2][q2])
            dg = _second_difference(frames[0].keypoints[g0], frames[1].keypoints[g1], frames[2].keypoints[g2])
            head = float(frames[1].head_size[g1])
            for j in np.flatnonzero(ok & np.isfinite(dp)):
                for pool in (overall, per_track.setdefault(tid, _JitterPool()),
                             per_joint.setdefault(MPII_14.keypoints[j], _JitterPool())):  # fmt: skip
                    pool.add(float(dp[j]), float(dg[j]), head)

    num_gt = sum(len(f) for f in gt.values())
    num_pred = sum(len(v) for v in ids.values())

    def mean(v: list[float]) -> float:
        return float(np.mean(v)) if v else math.nan

    return TrackingResult(
        mota=1.0 - (misses + fps + switches) / num_gt if num_gt else math.nan,
        motp=mean(motp_d),
        motp_px=mean(motp_px),
        mean_distance=mean(all_d),
        num_gt=num_gt,
        num_predicted=num_pred,
        num_untracked=num_untracked,
        num_matched=sum(len(v) for v in matched.values()),
        misses=misses,
        false_positives=fps,
        id_switches=switches,
        fragmentations=frags,
        pred_tracks_per_gt_track={t: len(pred_ids_of.get(t, ())) for t in sorted(gt_tracks)},
        num_gt_tracks=len(gt_tracks),
        num_pred_tracks=len(pred_tracks),
        jitter=overall.stats(),
        jitter_per_track={t: per_track[t].stats() for t in sorted(per_track)},
        jitter_per_joint={n: per_joint[n].stats() for n in MPII_14.keypoints if n in per_joint},
        pckh=pres,
        threshold=float(threshold),
        min_correct_fraction=float(min_correct_fraction),
        per_frame=per_frame,
    )
