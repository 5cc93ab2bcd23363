"""Tracking metrics (CLEAR-MOT, MOTP, fragmentation, jitter) on the Bonn sequence and tiny hand-made cases."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from posekit.eval.pck import MPII_14, load_mpii_ground_truth
from posekit.eval.tracking import ground_truth_jitter, tracking_metrics
from posekit.poses import Poses
from posekit.tracking import PoseSmoother

BONN = "posetrack-bonn/060470979_posetrack_style.json"
FPS = 25.0


@pytest.fixture(scope="module")
def bonn(data_dir: Path) -> dict[str, Any]:
    path = data_dir / BONN
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with open(path) as f:
        data: dict[str, Any] = json.load(f)
    return data


def frame_order(gt: dict[str, Any]) -> list[int]:
    """Image ids sorted by frame_id."""
    return [int(im["id"]) for im in sorted(gt["images"], key=lambda im: im["frame_id"])]


def gt_as_tracked_poses(gt: dict[str, Any]) -> dict[int, Poses]:
    """The ground truth as MPII-14 predictions carrying the ground-truth track ids."""
    out = {}
    for image_id, f in load_mpii_ground_truth(gt).items():
        kp = np.where(f.labelled[..., None], f.keypoints, np.nan)
        out[image_id] = Poses(kp, f.labelled.astype(np.float32), np.ones(len(f)), MPII_14, track_ids=f.track_ids)
    return out


def with_ids(p: Poses, ids: np.ndarray) -> Poses:
    return Poses(p.keypoints, p.keypoint_scores, p.scores, p.schema, p.boxes, ids)


def with_keypoints(p: Poses, kp: np.ndarray) -> Poses:
    return Poses(kp, p.keypoint_scores, p.scores, p.schema, p.boxes, p.track_ids)


# --------------------------------------------------------------------------- the Bonn sequence


def test_ground_truth_fed_back_is_perfect(bonn: dict[str, Any]) -> None:
    r = tracking_metrics(bonn, gt_as_tracked_poses(bonn))
    assert r.num_gt == 164
    assert r.num_gt_tracks == 4
    assert r.mota == 1.0
    assert (r.misses, r.false_positives, r.id_switches, r.fragmentations) == (0, 0, 0, 0)
    assert r.num_matched == 164
    assert r.pred_tracks_per_gt_track == {0: 1, 1: 1, 2: 1, 3: 1}
    assert r.pckh.pckh == 1.0
    assert r.motp == pytest.approx(0.0, abs=1e-5)
    # the jitter equals the ground truth's own (float32 round-off only), on every triple it has
    own = ground_truth_jitter(bonn)
    assert own.samples > 0
    assert own.jitter_px > 0
    assert r.jitter.samples == own.samples
    assert r.jitter.jitter_px == pytest.approx(r.jitter.gt_jitter_px, rel=1e-5)
    assert r.jitter.jitter_norm == pytest.approx(r.jitter.gt_jitter_norm, rel=1e-5)
    assert r.jitter.gt_jitter_px == pytest.approx(own.jitter_px, rel=1e-12)
    assert r.jitter.excess_px == pytest.approx(0.0, abs=1e-4)
    for stats in (*r.jitter_per_track.values(), *r.jitter_per_joint.values()):
        assert stats.jitter_px == pytest.approx(stats.gt_jitter_px, rel=1e-5)


def test_frame_order_follows_frame_id_not_file_order(bonn: dict[str, Any]) -> None:
    preds = gt_as_tracked_poses(bonn)
    shuffled = copy.deepcopy(bonn)
    np.random.default_rng(0).shuffle(shuffled["images"])
    a, b = tracking_metrics(bonn, preds), tracking_metrics(shuffled, preds)
    assert b.mota == 1.0
    assert b.jitter.jitter_px == pytest.approx(a.jitter.jitter_px, rel=1e-12)
    assert b.jitter.samples == a.jitter.samples


def test_swapping_two_ids_halfway_is_two_switches(bonn: dict[str, Any]) -> None:
    preds = gt_as_tracked_poses(bonn)
    order = frame_order(bonn)
    for image_id in order[20:]:
        ids = preds[image_id].track_ids.copy()
        a, b = ids == 0, ids == 1
        ids[a], ids[b] = 1, 0
        preds[image_id] = with_ids(preds[image_id], ids)
    r = tracking_metrics(bonn, preds)
    assert r.id_switches == 2
    assert r.per_frame[order[20]]["id_switches"] == 2
    assert sum(f["id_switches"] for f in r.per_frame.values()) == 2
    assert (r.misses, r.false_positives) == (0, 0)
    assert r.mota == pytest.approx(1 - 2 / 164)
    assert r.pred_tracks_per_gt_track == {0: 2, 1: 2, 2: 1, 3: 1}
    # positions are unchanged, so the jitter still equals the ground truth's
    assert r.jitter.jitter_px == pytest.approx(r.jitter.gt_jitter_px, rel=1e-5)


def test_swapping_in_one_frame_only_is_four_switches(bonn: dict[str, Any]) -> None:
    preds = gt_as_tracked_poses(bonn)
    image_id = frame_order(bonn)[20]
    ids = preds[image_id].track_ids.copy()
    a, b = ids == 2, ids == 3
    ids[a], ids[b] = 3, 2
    preds[image_id] = with_ids(preds[image_id], ids)
    r = tracking_metrics(bonn, preds)
    assert r.id_switches == 4  # away and back, for both people
    assert r.mota == pytest.approx(1 - 4 / 164)


def test_dropping_a_person_counts_misses_and_one_fragmentation(bonn: dict[str, Any]) -> None:
    preds = gt_as_tracked_poses(bonn)
    order = frame_order(bonn)
    dropped = order[10:15]
    for image_id in dropped:
        p = preds[image_id]
        preds[image_id] = p[np.flatnonzero(p.track_ids != 2)]
    r = tracking_metrics(bonn, preds)
    assert r.misses == 5
    assert (r.false_positives, r.id_switches) == (0, 0)
    assert r.fragmentations == 1
    assert r.mota == pytest.approx(1 - 5 / 164)
    assert [r.per_frame[i]["misses"] for i in order[8:17]] == [0, 0, 1, 1, 1, 1, 1, 0, 0]
    full = tracking_metrics(bonn, gt_as_tracked_poses(bonn))
    assert r.jitter.samples < full.jitter.samples
    # track 2 loses the 7 triples centred on frames 9..15; the others keep all theirs
    for t in (0, 1, 3):
        assert r.jitter_per_track[t].samples == full.jitter_per_track[t].samples
    assert r.jitter_per_track[2].samples < full.jitter_per_track[2].samples


def test_dropping_a_person_and_returning_with_a_new_id_is_a_switch(bonn: dict[str, Any]) -> None:
    preds = gt_as_tracked_poses(bonn)
    order = frame_order(bonn)
    for image_id in order[10:15]:
        p = preds[image_id]
        preds[image_id] = p[np.flatnonzero(p.track_ids != 2)]
    for image_id in order[15:]:
        ids = preds[image_id].track_ids.copy()
        ids[ids == 2] = 7
        preds[image_id] = with_ids(preds[image_id], ids)
    r = tracking_metrics(bonn, preds)
    assert (r.misses, r.id_switches, r.fragmentations) == (5, 1, 1)
    assert r.pred_tracks_per_gt_track[2] == 2
    assert r.mota == pytest.approx(1 - 6 / 164)


def test_extra_far_person_is_a_false_positive_unless_untracked(bonn: dict[str, Any]) -> None:
    base = gt_as_tracked_poses(bonn)
    for extra_id, fps, untracked in ((99, 41, 0), (-1, 0, 41)):
        preds = {}
        for image_id, p in base.items():
            far = np.asarray(p.keypoints[:1]) + np.array([3000.0, 2000.0])
            kp = np.concatenate([p.keypoints, far])
            ks = np.concatenate([p.keypoint_scores, p.keypoint_scores[:1]])
            ids = np.concatenate([p.track_ids, [extra_id]])
            preds[image_id] = Poses(kp, ks, np.ones(len(kp)), MPII_14, track_ids=ids)
        r = tracking_metrics(bonn, preds)
        assert r.false_positives == fps
        assert r.num_untracked == untracked
        assert (r.misses, r.id_switches) == (0, 0)
        assert r.mota == pytest.approx(1 - fps / 164)
        assert r.num_pred_tracks == (5 if extra_id >= 0 else 4)
        assert all(f["false_positives"] == (1 if extra_id >= 0 else 0) for f in r.per_frame.values())


def test_half_of_the_labelled_joints_must_be_correct(bonn: dict[str, Any]) -> None:
    order = frame_order(bonn)
    image_id = order[5]
    frame = load_mpii_ground_truth(bonn)[image_id]
    g = int(np.flatnonzero(frame.track_ids == 0)[0])
    labelled = np.flatnonzero(frame.labelled[g])
    need = math.ceil(len(labelled) / 2)
    results = {}
    for n_correct in (need, need - 1):
        preds = gt_as_tracked_poses(bonn)
        p = preds[image_id]
        q = int(np.flatnonzero(p.track_ids == 0)[0])
        kp = np.array(p.keypoints)
        kp[q, labelled[n_correct:]] += 10 * frame.head_size[g]  # these joints become wrong
        preds[image_id] = with_keypoints(p, kp)
        results[n_correct] = tracking_metrics(bonn, preds)
    ok, bad = results[need], results[need - 1]
    assert (ok.misses, ok.false_positives, ok.id_switches) == (0, 0, 0)
    assert ok.mota == 1.0
    assert (bad.misses, bad.false_positives, bad.id_switches, bad.fragmentations) == (1, 1, 0, 1)
    assert bad.mota == pytest.approx(1 - 2 / 164)
    # PCKh still credits the correct joints of the pair that failed the match rule
    assert bad.pckh.num_correct == bad.pckh.num_labelled - (len(labelled) - need + 1)


def test_noisy_copy_jitters_more_and_smoothing_reduces_it(bonn: dict[str, Any]) -> None:
    rng = np.random.default_rng(1)
    order = frame_order(bonn)
    clean = gt_as_tracked_poses(bonn)
    noisy = {i: with_keypoints(p, p.keypoints + rng.normal(0, 3.0, p.keypoints.shape)) for i, p in clean.items()}
    smoother = PoseSmoother()
    smoothed = {i: smoother.smooth(noisy[i], n / FPS) for n, i in enumerate(order)}
    r_gt = tracking_metrics(bonn, clean)
    r_noisy = tracking_metrics(bonn, noisy)
    r_smooth = tracking_metrics(bonn, smoothed)
    for r in (r_noisy, r_smooth):
        assert r.jitter.gt_jitter_px == pytest.approx(r_gt.jitter.gt_jitter_px)
    # iid noise of 3 px per coordinate adds about sqrt(6) * 3 * sqrt(pi / 2) ~ 9 px of second difference
    assert r_noisy.jitter.jitter_px > r_gt.jitter.jitter_px + 3.0
    assert r_noisy.jitter.excess_norm > 0
    assert r_smooth.jitter.jitter_px < r_noisy.jitter.jitter_px
    assert r_smooth.jitter.jitter_norm < r_noisy.jitter.jitter_norm
    assert r_noisy.mota == 1.0


# --------------------------------------------------------------------------- hand-made sequences


def tiny_sequence(n_frames: int = 3) -> tuple[dict[str, Any], np.ndarray]:
    """One still person (track 5) in ``n_frames`` frames; head size 0.6 x 50 = 30 px."""
    kp = np.stack([np.arange(14) * 40.0 + 50, np.full(14, 300.0)], axis=1)
    trip = np.concatenate([kp, np.full((14, 1), 2.0)], axis=1).ravel().tolist()
    images = [{"id": 10 + f, "frame_id": f} for f in range(n_frames)]
    anns = [
        {"id": 100 + f, "image_id": 10 + f, "track_id": 5, "keypoints": trip, "head_rect": [0, 0, 30, 40]}
        for f in range(n_frames)
    ]
    return {"images": images, "annotations": anns, "categories": []}, kp


def tracked(kp: np.ndarray, track_id: int = 0) -> Poses:
    kp = np.asarray(kp, dtype=np.float64).reshape(-1, 14, 2)
    return Poses(kp, np.ones(kp.shape[:2]), np.ones(len(kp)), MPII_14, track_ids=[track_id] * len(kp))


def test_jitter_of_a_one_pixel_wobble_is_exact() -> None:
    gt, kp = tiny_sequence(3)
    preds = {10: tracked(kp), 11: tracked(kp + np.array([1.0, 0.0])), 12: tracked(kp)}
    r = tracking_metrics(gt, preds)
    assert r.jitter.samples == 14
    assert r.jitter.jitter_px == pytest.approx(2.0)  # |0 - 2 * 1 + 0|
    assert r.jitter.gt_jitter_px == 0.0
    assert r.jitter.jitter_norm == pytest.approx(2.0 / 30.0)
    assert r.jitter_per_joint["head_top"].jitter_px == pytest.approx(2.0)
    assert r.motp_px == pytest.approx(1.0 / 3.0)
    assert r.motp == pytest.approx(1.0 / 90.0)


def test_no_triple_without_three_consecutive_matched_frames() -> None:
    gt, kp = tiny_sequence(4)
    gt["images"][2]["frame_id"] = 7  # frames 0, 1, 7, 3 -> order 0, 1, 3, 7: no three consecutive
    preds = {i: tracked(kp) for i in (10, 11, 12, 13)}
    r = tracking_metrics(gt, preds)
    assert r.jitter.samples == 0
    assert math.isnan(r.jitter.jitter_px)
    assert r.mota == 1.0


def test_coco_results_with_track_ids_are_accepted() -> None:
    gt, kp = tiny_sequence(3)
    results = [d for i in (10, 11, 12) for d in tracked(kp + (i - 10) ** 2, track_id=3).to_coco(i)]
    r = tracking_metrics(gt, results)
    assert (r.mota, r.id_switches, r.num_matched) == (1.0, 0, 3)
    assert r.jitter.jitter_px == pytest.approx(2.0 * math.sqrt(2.0))  # second difference (2, 2)
    del results[0]["track_id"]
    with pytest.raises(ValueError, match="track_id"):
        tracking_metrics(gt, results)


def test_predictions_need_unique_track_ids() -> None:
    gt, kp = tiny_sequence(3)
    untracked = Poses(kp[None], np.ones((1, 14)), np.ones(1), MPII_14)
    with pytest.raises(ValueError, match="no track_ids"):
        tracking_metrics(gt, {10: untracked})
    with pytest.raises(ValueError, match="not unique"):
        tracking_metrics(gt, {10: tracked(np.stack([kp, kp + 500]), track_id=1)})
    with pytest.raises(ValueError, match="min_correct_fraction"):
        tracking_metrics(gt, {10: tracked(kp)}, min_correct_fraction=0)
