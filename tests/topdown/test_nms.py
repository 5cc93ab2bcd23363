"""Pose-level NMS (parametric pose NMS and OKS-NMS) on hand-built COCO-17 people."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from posekit.poses import Poses
from posekit.schemas import COCO_17
from posekit.topdown.nms import ParametricNMS, oks, oks_nms, parametric_pose_nms

K = COCO_17.num_keypoints
SIGMAS = COCO_17.sigmas_array()

# a standing person about 60 x 170 px, relative to the hip centre, in COCO-17 order
TEMPLATE = np.array([
    [0, -140], [4, -145], [-4, -145], [9, -142], [-9, -142],  # nose, eyes, ears
    [18, -115], [-18, -115], [24, -80], [-24, -80], [28, -48], [-28, -48],  # shoulders, elbows, wrists
    [10, 0], [-10, 0], [11, 40], [-11, 40], [12, 30 + 50], [-12, 80],  # hips, knees, ankles
], dtype=np.float64)  # fmt: skip


def person(x: float, y: float, jitter: float = 0.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return TEMPLATE + np.array([x, y]) + rng.uniform(-jitter, jitter, TEMPLATE.shape)


def parametric(kp: np.ndarray, ks: np.ndarray, sc: np.ndarray) -> np.ndarray:
    return parametric_pose_nms(kp, ks, sc)


def oks_default(kp: np.ndarray, ks: np.ndarray, sc: np.ndarray) -> np.ndarray:
    return oks_nms(kp, ks, sc, SIGMAS)


METHODS = pytest.mark.parametrize("nms", [parametric, oks_default], ids=["parametric", "oks"])
Nms = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@METHODS
def test_duplicate_is_suppressed_and_distant_person_kept(nms: Nms) -> None:
    kp = np.stack([person(200, 300, jitter=1.0, seed=1), person(500, 300), person(200, 300, jitter=1.0, seed=2)])
    ks = np.full((3, K), 0.9)
    scores = np.array([0.8, 0.7, 0.9])  # the better duplicate comes last
    keep = nms(kp, ks, scores)
    assert keep.dtype == np.intp
    assert keep.tolist() == [2, 1]


@METHODS
def test_people_side_by_side_are_both_kept(nms: Nms) -> None:
    # shoulder to shoulder: 70 px apart for people 60 px wide
    kp = np.stack([person(200, 300), person(270, 305)])
    keep = nms(kp, np.full((2, K), 0.9), np.array([0.6, 0.9]))
    assert keep.tolist() == [1, 0]


@METHODS
def test_one_person_and_no_people(nms: Nms) -> None:
    assert nms(person(100, 200)[None], np.full((1, K), 0.5), np.array([0.3])).tolist() == [0]
    assert len(nms(np.zeros((0, K, 2)), np.zeros((0, K)), np.zeros(0))) == 0


@METHODS
def test_missing_keypoints_are_ignored(nms: Nms) -> None:
    kp = np.stack([person(200, 300), person(200, 300, jitter=1.0, seed=3), person(500, 300), person(0, 0)])
    ks = np.full((4, K), 0.9)
    # the better duplicate lost its legs, the far person its face, the last person every keypoint
    ks[0, 11:] = 0
    ks[2, :5] = 0
    ks[3] = 0
    kp[ks == 0] = np.nan
    scores = np.array([0.9, 0.8, 0.7, 0.95])
    with np.errstate(all="raise"):
        keep = nms(kp, ks, scores)
    # a pose without keypoints suppresses nothing; the duplicate is matched on the keypoints it has
    assert keep.tolist() == [3, 0, 2]


@METHODS
def test_partial_pose_is_suppressed_by_its_complete_duplicate(nms: Nms) -> None:
    kp = np.stack([person(200, 300), person(200, 300, jitter=1.0, seed=3)])
    ks = np.full((2, K), 0.9)
    ks[1, 11:] = 0  # the worse duplicate lost its legs
    kp[ks == 0] = np.nan
    assert nms(kp, ks, np.array([0.9, 0.8])).tolist() == [0]


@METHODS
def test_all_poses_with_missing_keypoints_survive_without_nan_trouble(nms: Nms) -> None:
    kp = np.full((3, K, 2), np.nan)
    ks = np.zeros((3, K))
    keep = nms(kp, ks, np.array([0.1, 0.3, 0.2]))
    assert keep.tolist() == [1, 2, 0]


def test_parametric_threshold_moves_with_alpha() -> None:
    # 12 px apart: a duplicate at the default radius (0.1 x 225 px), two people at a tiny one
    kp = np.stack([person(200, 300), person(212, 300)])
    ks = np.full((2, K), 0.9)
    sc = np.array([0.9, 0.8])
    assert parametric_pose_nms(kp, ks, sc).tolist() == [0]
    assert parametric_pose_nms(kp, ks, sc, alpha=0.02).tolist() == [0, 1]


def test_oks_of_identical_pose_is_one_and_falls_with_distance() -> None:
    ref = person(200, 300)
    others = np.stack([ref, ref + 5, ref + 40])
    sim = oks(ref, np.ones(K, dtype=bool), others, np.ones((len(others), K), dtype=bool), 60 * 225, SIGMAS)
    assert sim[0] == pytest.approx(1.0)
    assert 1.0 > sim[1] > sim[2] > 0.0
    # only the reference's visible keypoints count
    visible = np.zeros(K, dtype=bool)
    visible[5:7] = True
    moved = ref.copy()
    moved[:5] += 100  # the face moves far away, the shoulders stay
    assert oks(ref, visible, moved[None], visible[None], 60 * 225, SIGMAS)[0] == pytest.approx(1.0)


def test_oks_nms_threshold() -> None:
    kp = np.stack([person(200, 300), person(200, 300) + 6])
    ks = np.full((2, K), 0.9)
    sc = np.array([0.9, 0.8])
    sim = oks(kp[0], ks[0] > 0, kp[1:], ks[1:] > 0, 60 * 225, SIGMAS)[0]
    assert oks_nms(kp, ks, sc, SIGMAS, threshold=sim - 0.01, areas=np.full(2, 60 * 225.0)).tolist() == [0]
    assert oks_nms(kp, ks, sc, SIGMAS, threshold=sim + 0.01, areas=np.full(2, 60 * 225.0)).tolist() == [0, 1]


def test_parametric_nms_step_on_poses() -> None:
    kp = np.stack([person(200, 300, jitter=1.0, seed=4), person(500, 300), person(200, 300, jitter=1.0, seed=5)])
    poses = Poses(kp, np.full((3, K), 0.9), np.array([0.5, 0.6, 0.7]), "coco17")
    keep = ParametricNMS()(poses)
    assert keep.tolist() == [2, 1]
    kept = poses[keep]
    assert len(kept) == 2
    np.testing.assert_allclose(kept.scores, [0.7, 0.6])
    assert ParametricNMS()(poses[0]).tolist() == [0]
    assert ParametricNMS()(Poses.empty("coco17")).tolist() == []
    # the parameters reach the rule: thresholds nothing can exceed keep everyone, best first
    assert ParametricNMS(gamma=1e9, match_ratio=2.0)(poses).tolist() == [2, 1, 0]
