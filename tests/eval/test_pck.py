"""PCKh for MPII-14 joints: schema, head sizes, matching, COCO-17 conversion, the Bonn sequence."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from posekit.eval.pck import (
    HEAD_TOP_SCALE,
    MPII_14,
    _assign_max,
    estimate_head_top,
    head_sizes,
    load_mpii_ground_truth,
    pckh,
    to_mpii14,
)
from posekit.poses import Poses
from posekit.schemas import BLAZEPOSE_33, COCO_17, OPENPOSE_18

BONN = "posetrack-bonn/060470979_posetrack_style.json"


@pytest.fixture(scope="module")
def bonn(data_dir: Path) -> dict[str, Any]:
    path = data_dir / BONN
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with open(path) as f:
        data: dict[str, Any] = json.load(f)
    return data


def gt_as_poses(gt: dict[str, Any], drop_tracks: tuple[int, ...] = ()) -> dict[int, Poses]:
    """The ground truth itself as MPII-14 predictions, image id -> Poses."""
    out = {}
    for image_id, frame in load_mpii_ground_truth(gt).items():
        keep = ~np.isin(frame.track_ids, drop_tracks)
        kp = np.where(frame.labelled[..., None], frame.keypoints, np.nan)[keep]
        out[image_id] = Poses(kp, frame.labelled[keep].astype(np.float32), np.ones(int(keep.sum())), MPII_14)
    return out


def one_person_gt(head_rect: list[float]) -> tuple[dict[str, Any], np.ndarray]:
    """One image with one fully labelled person (joints spread 100 px apart)."""
    kp = np.stack([np.arange(14) * 100.0 + 50, np.full(14, 300.0)], axis=1)
    trip = np.concatenate([kp, np.full((14, 1), 2.0)], axis=1)
    ann = {"id": 7, "image_id": 1, "track_id": 3, "keypoints": trip.ravel().tolist(), "head_rect": head_rect}
    return {"images": [{"id": 1}], "annotations": [ann], "categories": []}, kp


def mpii_poses(kp: np.ndarray) -> Poses:
    kp = np.asarray(kp, dtype=np.float64).reshape(-1, 14, 2)
    return Poses(kp, np.ones(kp.shape[:2]), np.ones(len(kp)), MPII_14)


# --------------------------------------------------------------------------- schema and ground truth


def test_mpii14_schema_matches_the_bonn_file(bonn: dict[str, Any]) -> None:
    cat = bonn["categories"][0]
    assert MPII_14.keypoints == tuple(cat["keypoints"])
    assert set(MPII_14.skeleton) == {(a - 1, b - 1) for a, b in cat["skeleton"]}
    perm = MPII_14.flip_permutation()
    for i, name in enumerate(MPII_14.keypoints):
        flipped = name.replace("left_", "L").replace("right_", "left_").replace("L", "right_")
        assert MPII_14.keypoints[perm[i]] == flipped
    assert MPII_14.derived == {"upper_neck": ("left_shoulder", "right_shoulder")}


def test_bonn_loads_with_positive_head_sizes(bonn: dict[str, Any]) -> None:
    frames = load_mpii_ground_truth(bonn)
    assert len(frames) == 41
    assert sum(len(f) for f in frames.values()) == 164
    sizes = np.concatenate([f.head_size for f in frames.values()])
    assert (sizes > 0).all()
    # first person: head_rect [370.17, 77.59, 408.12, 134.95] is x1, y1, x2, y2
    first = frames[bonn["annotations"][0]["image_id"]]
    assert first.head_size[0] == pytest.approx(0.6 * math.hypot(408.12 - 370.17, 134.95 - 77.59))
    assert set(np.concatenate([f.track_ids for f in frames.values()]).tolist()) == {0, 1, 2, 3}
    assert all(f.labelled.all() for f in frames.values())  # every Bonn joint is labelled


def test_head_sizes_reject_reversed_or_empty_rectangles() -> None:
    assert head_sizes([[0, 0, 30, 40]]) == pytest.approx([30.0])
    with pytest.raises(ValueError, match="x1, y1, x2, y2"):
        head_sizes([[10, 10, 5, 40]])


# --------------------------------------------------------------------------- metric


def test_ground_truth_as_predictions_scores_one(bonn: dict[str, Any]) -> None:
    res = pckh(bonn, gt_as_poses(bonn))
    assert res.pckh == 1.0
    assert all(v == 1.0 for v in res.per_joint.values())
    assert len(res.per_frame) == 41
    assert all(v == 1.0 for v in res.per_frame.values())
    assert res.num_labelled == res.num_correct == 164 * 14
    assert res.num_matched == 164
    assert all(m.gt_index == m.pred_index and m.correct == m.labelled == 14 for m in res.matches)


def test_coco_result_dicts_and_poses_sequence_are_accepted(bonn: dict[str, Any]) -> None:
    poses = gt_as_poses(bonn)
    results = [r for image_id, p in poses.items() for r in p.to_coco(image_id)]
    assert pckh(bonn, results).pckh == 1.0
    ordered = [poses[int(im["id"])] for im in bonn["images"]]
    assert pckh(bonn, ordered).pckh == 1.0
    with pytest.raises(ValueError, match="one per image"):
        pckh(bonn, ordered[:-1])


@pytest.mark.parametrize(("factor", "correct"), [(1 - 1e-3, True), (1.0, True), (1 + 1e-3, False)])
def test_joint_flips_at_half_the_head_size(factor: float, correct: bool) -> None:
    gt, kp = one_person_gt([0.0, 0.0, 30.0, 40.0])  # diagonal 50 -> head size 30 -> radius 15 px
    moved = kp.copy()
    wrist = MPII_14.index("right_wrist")
    moved[wrist] += np.array([9.0, 12.0]) * factor  # 15 px along a 3-4-5 direction (exact at factor 1)
    res = pckh(gt, {1: mpii_poses(moved)}, threshold=0.5)
    assert res.per_joint["right_wrist"] == (1.0 if correct else 0.0)
    assert res.num_correct == (14 if correct else 13)
    assert res.per_joint["left_wrist"] == 1.0


def test_threshold_scales_the_radius() -> None:
    gt, kp = one_person_gt([0.0, 0.0, 30.0, 40.0])
    moved = kp + np.array([10.0, 0.0])  # every joint 10 px off: outside 0.2 x 30, inside 0.5 x 30
    assert pckh(gt, {1: mpii_poses(moved)}, threshold=0.5).pckh == 1.0
    assert pckh(gt, {1: mpii_poses(moved)}, threshold=0.2).pckh == 0.0


def test_missing_predicted_people_count_as_misses(bonn: dict[str, Any]) -> None:
    res = pckh(bonn, gt_as_poses(bonn, drop_tracks=(0,)))
    frames = load_mpii_ground_truth(bonn)
    n_track0 = sum(int((f.track_ids == 0).sum()) for f in frames.values())
    assert n_track0 > 0
    assert res.num_labelled == 164 * 14
    assert res.num_correct == (164 - n_track0) * 14
    assert res.pckh == pytest.approx((164 - n_track0) / 164)
    assert all(m.track_id != 0 for m in res.matches)
    for image_id, f in frames.items():
        assert res.per_frame[image_id] == pytest.approx(1 - (f.track_ids == 0).sum() / len(f))
    # no predictions at all: every labelled joint is a miss
    nothing = pckh(bonn, {})
    assert nothing.pckh == 0.0
    assert nothing.num_matched == 0


def test_extra_predicted_people_neither_help_nor_hurt(bonn: dict[str, Any]) -> None:
    base = gt_as_poses(bonn, drop_tracks=(1,))
    rng = np.random.default_rng(0)
    padded = {}
    for image_id, p in base.items():
        extra = rng.uniform(2000, 3000, size=(3, 14, 2))  # far outside the 960x540 frame
        padded[image_id] = mpii_poses(np.concatenate([np.asarray(p.keypoints), extra]))
    a, b = pckh(bonn, base), pckh(bonn, padded)
    assert b.pckh == a.pckh
    assert b.per_joint == a.per_joint
    assert b.per_frame == a.per_frame
    assert [(m.image_id, m.gt_index, m.pred_index) for m in b.matches] == [
        (m.image_id, m.gt_index, m.pred_index) for m in a.matches
    ]
    assert b.num_pred_people == a.num_pred_people + 3 * 41
    # with everyone predicted, extras leave a perfect score perfect
    full = gt_as_poses(bonn)
    full_padded = {
        i: mpii_poses(np.concatenate([np.asarray(p.keypoints), padded[i].keypoints[-3:]])) for i, p in full.items()
    }
    assert pckh(bonn, full_padded).pckh == 1.0


def test_one_prediction_cannot_serve_two_people() -> None:
    gt, kp = one_person_gt([0.0, 0.0, 30.0, 40.0])
    second = dict(gt["annotations"][0], id=8, track_id=4)
    gt["annotations"].append(second)  # two people at the same place
    res = pckh(gt, {1: mpii_poses(kp)})
    assert res.num_matched == 1
    assert res.pckh == 0.5


def test_matching_maximises_correct_joints() -> None:
    # Prediction A is right on all 14 joints of person 0 and 13 of person 1; prediction B on 12 of
    # person 0 and none of person 1. Pairing greedily (A with person 0 first) scores 14 joints; the
    # optimal pairing, A with person 1 and B with person 0, scores 25.
    x = np.arange(14) * 100.0 + 50
    g0 = np.stack([x, np.zeros(14)], axis=1)
    g1 = np.stack([x, np.full(14, 20.0)], axis=1)
    g1[13, 1] = 100.0
    a = np.stack([x, np.full(14, 10.0)], axis=1)
    a[13, 1] = 0.0
    b = np.stack([x, np.full(14, -10.0)], axis=1)
    b[11:13, 1] = -500.0
    gt = {
        "images": [{"id": 1}],
        "annotations": [
            {
                "id": i + 1,
                "image_id": 1,
                "track_id": i,
                "keypoints": np.concatenate([g, np.full((14, 1), 2.0)], axis=1).ravel().tolist(),
                "head_rect": [0.0, 0.0, 30.0, 40.0],  # radius 15 px
            }
            for i, g in enumerate((g0, g1))
        ],
    }
    res = pckh(gt, {1: mpii_poses(np.stack([a, b]))})
    assert res.num_correct == 25
    assert {(m.gt_index, m.pred_index, m.correct) for m in res.matches} == {(0, 1, 12), (1, 0, 13)}


def test_assignment_is_optimal_against_brute_force() -> None:
    rng = np.random.default_rng(1)
    for m, p in [(1, 1), (2, 3), (3, 2), (4, 4), (5, 3)]:
        for _ in range(20):
            w = rng.integers(0, 6, size=(m, p)).astype(float)
            pairs = _assign_max(w)
            assert len({i for i, _ in pairs}) == len(pairs) == len({j for _, j in pairs})
            best = max(
                sum(w[i, j] for i, j in zip(rows, cols, strict=False))
                for rows in itertools.permutations(range(m), min(m, p))
                for cols in itertools.permutations(range(p), min(m, p))
            )
            assert sum(w[i, j] for i, j in pairs) == best


# --------------------------------------------------------------------------- COCO-17 -> MPII-14


def coco_person() -> tuple[np.ndarray, np.ndarray]:
    kp = np.zeros((1, 17, 2))
    sc = np.ones((1, 17))
    for name, xy in {
        "nose": (120, 90),
        "left_eye": (126, 84),
        "right_eye": (114, 84),
        "left_ear": (134, 88),
        "right_ear": (106, 88),
        "left_shoulder": (150, 150),
        "right_shoulder": (90, 146),
    }.items():
        kp[0, COCO_17.index(name)] = xy
    return kp, sc


def test_coco17_conversion_puts_upper_neck_at_the_shoulder_midpoint() -> None:
    kp, sc = coco_person()
    sc[0, COCO_17.index("left_shoulder")] = 0.7
    m = to_mpii14(Poses(kp, sc, [1.0], COCO_17))
    assert m.schema == MPII_14
    neck = MPII_14.index("upper_neck")
    assert m.keypoints[0, neck] == pytest.approx([120.0, 148.0])
    assert m.keypoint_scores[0, neck] == pytest.approx(0.7)  # weakest source
    assert m.keypoints[0, MPII_14.index("left_shoulder")] == pytest.approx([150.0, 150.0])
    assert m.keypoints[0, MPII_14.index("right_shoulder")] == pytest.approx([90.0, 146.0])


def test_head_top_is_extrapolated_above_the_face() -> None:
    kp, sc = coco_person()
    top, top_sc = estimate_head_top(kp, sc, COCO_17)
    face = np.array([120.0, 86.0])  # mean of eyes and ears
    expected = face + HEAD_TOP_SCALE * (face - np.array([120.0, 148.0]))
    assert top[0] == pytest.approx(expected)
    assert top[0, 1] < 84  # above the eyes
    assert top_sc[0] == 1.0
    m = to_mpii14(Poses(kp, sc, [1.0], COCO_17))
    assert m.keypoints[0, MPII_14.index("head_top")] == pytest.approx(expected)


def test_missing_sources_leave_joints_missing() -> None:
    kp, sc = coco_person()
    sc[0, COCO_17.index("right_shoulder")] = 0.0
    m = to_mpii14(Poses(kp, sc, [1.0], COCO_17))
    for name in ("upper_neck", "head_top"):
        j = MPII_14.index(name)
        assert m.keypoint_scores[0, j] == 0.0
        assert np.isnan(m.keypoints[0, j]).all()
    # no eyes or ears: the nose stands in for the face centre
    kp, sc = coco_person()
    sc[0, [COCO_17.index(n) for n in ("left_eye", "right_eye", "left_ear", "right_ear")]] = 0.0
    top, _ = estimate_head_top(kp, sc, COCO_17)
    assert top[0] == pytest.approx(np.array([120.0, 90.0]) + HEAD_TOP_SCALE * np.array([0.0, -58.0]))


def test_openpose_and_blazepose_schemas_convert_by_name() -> None:
    kp, sc = coco_person()
    coco = Poses(kp, sc, [1.0], COCO_17)
    want = to_mpii14(coco)
    for schema in (OPENPOSE_18, BLAZEPOSE_33):
        other = to_mpii14(coco.with_schema(schema))
        np.testing.assert_allclose(other.keypoints, want.keypoints)
        np.testing.assert_array_equal(other.visible, want.visible)


def test_coco17_predictions_score_limbs_and_miss_head_top_without_a_face(bonn: dict[str, Any]) -> None:
    # COCO-17 results built from the ground truth's body joints (no face points): limbs are exact,
    # head_top cannot be estimated, upper_neck is the shoulder midpoint
    frames = load_mpii_ground_truth(bonn)
    results = []
    for image_id, f in frames.items():
        for person in f.keypoints:
            trip = np.zeros((17, 3))
            for j, name in enumerate(MPII_14.keypoints):
                if name in COCO_17.keypoints:
                    trip[COCO_17.index(name)] = [*person[j], 1.0]
            results.append({"image_id": image_id, "keypoints": trip.ravel().tolist(), "score": 1.0})
    res = pckh(bonn, results)
    assert res.per_joint["head_top"] == 0.0
    for name in MPII_14.keypoints[:12]:
        assert res.per_joint[name] == 1.0
    # the shoulder midpoint as upper_neck, scored independently
    hits = total = 0
    for f in frames.values():
        mid = f.keypoints[:, [8, 9]].mean(axis=1)
        d = np.linalg.norm(mid - f.keypoints[:, 12], axis=1) / f.head_size
        hits += int((d <= 0.5).sum())
        total += len(f)
    assert res.per_joint["upper_neck"] == pytest.approx(hits / total)
