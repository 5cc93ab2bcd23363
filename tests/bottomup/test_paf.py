"""PAF decoding on synthetic OpenPose-18 maps rendered from known people.

Heatmaps are Gaussian blobs at the true (sub-pixel) part positions; each limb's PAF is the unit
vector from part a to part b on pixels within ``LIMB_WIDTH`` of the segment, averaged where limbs
of one type overlap (OpenPose's ground-truth rendering).
"""

from __future__ import annotations

import numpy as np
import pytest

from posekit.bottomup import Connections, PafParams, PeakParams, assemble_people, match_limb, parse_people, score_limb
from posekit.bottomup.paf import bilinear_sample, suppress_fragments
from posekit.schemas import OPENPOSE_18

LIMBS = OPENPOSE_18.skeleton
K = OPENPOSE_18.num_keypoints
LIMB_WIDTH = 1.5
SIGMA = 1.0

# a standing person facing the camera, relative to the neck (map pixels)
TEMPLATE = {
    "nose": (0.0, -5.0), "neck": (0.0, 0.0),
    "right_shoulder": (-5.0, 0.0), "right_elbow": (-7.0, 7.0), "right_wrist": (-8.0, 13.0),
    "left_shoulder": (5.0, 0.0), "left_elbow": (7.0, 7.0), "left_wrist": (8.0, 13.0),
    "right_hip": (-3.0, 14.0), "right_knee": (-3.0, 23.0), "right_ankle": (-3.0, 32.0),
    "left_hip": (3.0, 14.0), "left_knee": (3.0, 23.0), "left_ankle": (3.0, 32.0),
    "right_eye": (-1.6, -6.4), "left_eye": (1.6, -6.4), "right_ear": (-3.2, -5.6), "left_ear": (3.2, -5.6),
}  # fmt: skip
LEGS = ("right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle")


def person(neck: tuple[float, float], *, mirror: bool = False, drop: tuple[str, ...] = (),
           **override: tuple[float, float]) -> np.ndarray:  # fmt: skip
    """(18, 2) keypoints, NaN for dropped parts; ``override`` gives absolute positions by name."""
    kp = np.full((K, 2), np.nan)
    for i, name in enumerate(OPENPOSE_18.keypoints):
        if name in drop:
            continue
        dx, dy = TEMPLATE[name]
        kp[i] = (neck[0] + (-dx if mirror else dx), neck[1] + dy)
        if name in override:
            kp[i] = override[name]
    return kp


def render(people: list[np.ndarray], h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    heat = np.zeros((K, h, w))
    for kp in people:
        for j in range(K):
            if np.isfinite(kp[j]).all():
                g = np.exp(-((xx - kp[j, 0]) ** 2 + (yy - kp[j, 1]) ** 2) / (2 * SIGMA**2))
                heat[j] = np.maximum(heat[j], g)
    pafs = np.zeros((len(LIMBS), h, w, 2))
    for li, (a, b) in enumerate(LIMBS):
        total = np.zeros((h, w, 2))
        count = np.zeros((h, w))
        for kp in people:
            if not (np.isfinite(kp[a]).all() and np.isfinite(kp[b]).all()):
                continue
            d = kp[b] - kp[a]
            length = np.hypot(*d)
            u = d / length
            rx, ry = xx - kp[a, 0], yy - kp[a, 1]
            along = rx * u[0] + ry * u[1]
            across = np.abs(-rx * u[1] + ry * u[0])
            on = (along >= -LIMB_WIDTH / 2) & (along <= length + LIMB_WIDTH / 2) & (across <= LIMB_WIDTH)
            total[on] += u
            count[on] += 1
        pafs[li] = total / np.maximum(count, 1)[..., None]
    return heat.astype(np.float32), pafs.astype(np.float32)


def assert_people_match(found: np.ndarray, truth: list[np.ndarray], tol: float = 0.5) -> None:
    """Same number of people; each found person is one true person with every part within ``tol``
    and exactly the true person's parts (missing ones NaN)."""
    assert len(found) == len(truth), f"found {len(found)} people, expected {len(truth)}"
    used = set()
    for t in truth:
        present = np.isfinite(t).all(1)
        # the found person closest to this true person on the true person's parts
        err = [np.nanmax(np.where(present, np.hypot(*(f - t).T), 0.0)) if np.isfinite(f[present]).all() else np.inf
               for f in found]  # fmt: skip
        best = int(np.argmin(err))
        assert err[best] < tol, f"no found person within {tol} px of a true person (best error {err[best]:.3f})"
        assert best not in used, "two true people matched one found person"
        used.add(best)
        np.testing.assert_array_equal(np.isfinite(found[best]).all(1), present)


# --- bilinear_sample ----------------------------------------------------------------------------


def test_bilinear_sample_exact_on_linear_field():
    h, w = 13, 17
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    field = np.stack([2.0 * xx + 3.0 * yy + 1.0, -xx + 0.5 * yy], axis=-1).astype(np.float32)
    rng = np.random.default_rng(0)
    pts = np.concatenate([
        rng.uniform([0, 0], [w - 1, h - 1], (200, 2)),
        [[0, 0], [w - 1, h - 1], [w - 1, 0], [0, h - 1], [w - 1, 5.5], [3.25, h - 1]],
    ]).astype(np.float32)  # fmt: skip
    got = bilinear_sample(field, pts.reshape(2, -1, 2)).reshape(-1, 2)
    want = np.stack([2 * pts[:, 0] + 3 * pts[:, 1] + 1, -pts[:, 0] + 0.5 * pts[:, 1]], axis=-1)
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_bilinear_sample_clamps_outside_points():
    field = np.arange(20, dtype=np.float32).reshape(4, 5, 1)
    pts = np.array([[-3.0, -2.0], [10.0, 1.0], [2.0, 99.0]], np.float32)
    np.testing.assert_allclose(bilinear_sample(field, pts)[:, 0], [field[0, 0, 0], field[1, 4, 0], field[3, 2, 0]])


def test_bilinear_sample_single_row_or_column():
    field = np.arange(5, dtype=np.float32).reshape(1, 5, 1)
    np.testing.assert_allclose(bilinear_sample(field, np.array([[2.5, 0.0]], np.float32))[:, 0], [2.5])


# --- score_limb ---------------------------------------------------------------------------------


def test_score_limb_uniform_field_and_length_prior():
    paf = np.zeros((20, 40, 2), np.float32)
    paf[..., 0] = 1.0  # everything points +x
    a = np.array([[5.0, 10.0, 1.0]], np.float32)
    b = np.array([[15.0, 10.0, 1.0], [35.0, 10.0, 1.0], [5.0, 2.0, 1.0]], np.float32)
    score, valid = score_limb(paf, a, b, PafParams(), max_length=20.0)
    assert score.shape == valid.shape == (1, 3)
    assert score[0, 0] == pytest.approx(1.0)  # along the field, short enough: no penalty
    assert score[0, 1] == pytest.approx(1.0 + (20.0 / 30.0 - 1.0))  # 30 px long, 20 allowed
    assert valid[0, 0]
    assert valid[0, 1]
    assert score[0, 2] == pytest.approx(0.0, abs=1e-6)  # perpendicular to the field
    assert not valid[0, 2]
    back, ok = score_limb(paf, b[:1], a, PafParams(), max_length=20.0)  # against the field
    assert back[0, 0] == pytest.approx(-1.0)
    assert not ok[0, 0]


def test_score_limb_needs_enough_agreeing_samples():
    paf = np.zeros((20, 40, 2), np.float32)
    paf[:, :12, 0] = 1.0  # field covers only the first part of the segment 5 -> 25
    a = np.array([[5.0, 10.0, 1.0]], np.float32)
    b = np.array([[25.0, 10.0, 1.0]], np.float32)
    score, valid = score_limb(paf, a, b, PafParams(), 100.0)
    assert score[0, 0] > 0
    assert not valid[0, 0]
    _, valid_lax = score_limb(paf, a, b, PafParams(min_hit_ratio=0.3), 100.0)
    assert valid_lax[0, 0]


# --- match_limb ---------------------------------------------------------------------------------


def test_match_limb_greedy_one_to_one():
    score = np.array([[0.9, 0.8], [0.85, 0.1]], np.float32)
    c = match_limb(score, np.ones((2, 2), bool))
    # greedy, not the max-sum assignment: (0, 0) first, then the only pair left
    assert sorted(zip(c.a.tolist(), c.b.tolist(), strict=True)) == [(0, 0), (1, 1)]
    np.testing.assert_allclose(sorted(c.score.tolist(), reverse=True), [0.9, 0.1], rtol=1e-6)


def test_match_limb_skips_invalid_and_uses_each_candidate_once():
    score = np.array([[0.9, 0.95, 0.2], [0.7, 0.1, 0.3], [0.6, 0.5, 0.99]], np.float32)
    valid = np.array([[True, False, True], [True, True, True], [True, True, False]])
    c = match_limb(score, valid)
    pairs = dict(zip(c.a.tolist(), c.b.tolist(), strict=True))
    assert pairs == {0: 0, 1: 2, 2: 1}
    assert len(set(c.a.tolist())) == len(c.a)
    assert len(set(c.b.tolist())) == len(c.b)
    for a, b, s in zip(c.a, c.b, c.score, strict=True):
        assert valid[a, b]
        assert s == score[a, b]


def test_match_limb_rectangular_and_empty():
    c = match_limb(np.array([[0.5], [0.9], [0.7]], np.float32), np.ones((3, 1), bool))
    assert c.a.tolist() == [1]
    assert c.b.tolist() == [0]
    e = match_limb(np.zeros((2, 2), np.float32), np.zeros((2, 2), bool))
    assert len(e.a) == len(e.b) == len(e.score) == 0


# --- assemble_people ----------------------------------------------------------------------------


def _conn(pairs: list[tuple[int, int]], s: float = 0.9) -> Connections:
    a = np.array([p[0] for p in pairs], np.intp)
    b = np.array([p[1] for p in pairs], np.intp)
    return Connections(a, b, np.full(len(pairs), s, np.float32))


def test_assemble_merges_fragments_joined_by_a_redundant_limb():
    # 4 parts, tree limbs (0,1) and (2,3) make two fragments; limb (1,2) joins them
    cands = [np.array([[float(i), 0.0, 0.8]], np.float32) for i in range(4)]
    limbs = [(0, 1), (2, 3), (1, 2)]
    kp, ks, sc = assemble_people(cands, limbs, [_conn([(0, 0)]), _conn([(0, 0)]), _conn([(0, 0)])],
                                 PafParams(min_parts=3))  # fmt: skip
    assert len(kp) == 1
    np.testing.assert_array_equal(kp[0, :, 0], [0, 1, 2, 3])
    np.testing.assert_allclose(ks[0], 0.8)
    assert sc[0] == pytest.approx(0.8 * 0.9)  # mean part score x mean connection score
    # without the joining limb, each fragment (2 parts) is below min_parts
    kp2, _, _ = assemble_people(cands, limbs[:2], [_conn([(0, 0)]), _conn([(0, 0)])], PafParams(min_parts=3))
    assert len(kp2) == 0


def test_assemble_does_not_merge_overlapping_fragments():
    cands = [np.array([[0.0, 0.0, 0.9]], np.float32), np.array([[1.0, 0.0, 0.9], [1.0, 9.0, 0.9]], np.float32),
             np.array([[2.0, 0.0, 0.9], [2.0, 9.0, 0.9]], np.float32)]  # fmt: skip
    # fragment A: part0 c0 + part1 c0; fragment B: part1 c1 + part2 c1; limb (0, 2) tries to join A and B
    limbs = [(0, 1), (1, 2), (0, 2)]
    conns = [_conn([(0, 0)]), _conn([(1, 1)]), _conn([(0, 1)])]
    kp, _, _ = assemble_people(cands, limbs, conns, PafParams(min_parts=2))
    assert len(kp) == 2  # both have part 1: not merged
    assert sorted(np.isfinite(kp[:, :, 0]).sum(1).tolist()) == [2, 2]


def test_assemble_filters_weak_people():
    cands = [np.array([[float(i), 0.0, 0.1]], np.float32) for i in range(3)]
    limbs = [(0, 1), (1, 2)]
    conns = [_conn([(0, 0)], 0.1), _conn([(0, 0)], 0.1)]
    # mean of part and connection scores: (3 * 0.1 + 2 * 0.1) / 5 = 0.1
    lax = PafParams(min_parts=3, min_mean_score=0.05, min_person_score=0.0)
    assert len(assemble_people(cands, limbs, conns, lax)[0]) == 1
    strict_mean = PafParams(min_parts=3, min_mean_score=0.2, min_person_score=0.0)
    assert len(assemble_people(cands, limbs, conns, strict_mean)[0]) == 0
    # person score: mean part score over K x mean connection score = 0.1 * 0.1 = 0.01
    strict_person = PafParams(min_parts=3, min_mean_score=0.05, min_person_score=0.02)
    assert len(assemble_people(cands, limbs, conns, strict_person)[0]) == 0
    assert (
        len(assemble_people(cands, limbs, conns, PafParams(min_parts=4, min_mean_score=0.0, min_person_score=0.0))[0])
        == 0
    )


def test_suppress_fragments_drops_small_pieces_inside_a_better_person():
    big = np.array([[0, 0], [10, 0], [10, 20], [0, 20], [5, 10]], np.float32)
    inside = np.array([[2, 2], [3, 3], [np.nan, np.nan], [np.nan, np.nan], [np.nan, np.nan]], np.float32)
    outside = inside + 50
    kp = np.stack([big, inside, outside])
    ks = np.isfinite(kp[..., 0]).astype(np.float32)
    keep = suppress_fragments(kp, ks, np.array([0.9, 0.5, 0.5], np.float32), max_parts=4)
    assert keep.tolist() == [True, False, True]
    # a fragment scoring higher than the big person is kept; max_parts=0 disables suppression
    assert suppress_fragments(kp, ks, np.array([0.4, 0.5, 0.5], np.float32), 4).tolist() == [True, True, True]
    assert suppress_fragments(kp, ks, np.array([0.9, 0.5, 0.5], np.float32), 0).all()


def test_assemble_empty():
    kp, ks, sc = assemble_people([np.zeros((0, 3), np.float32)] * K, LIMBS, [_conn([])] * len(LIMBS), PafParams())
    assert kp.shape == (0, K, 2)
    assert ks.shape == (0, K)
    assert sc.shape == (0,)


# --- parse_people on rendered scenes ------------------------------------------------------------


def test_two_separate_people():
    truth = [person((20.37, 15.21)), person((60.72, 18.63))]
    heat, pafs = render(truth, 60, 90)
    kp, ks, sc = parse_people(heat, pafs, LIMBS)
    assert kp.shape == (2, K, 2)
    assert ks.shape == (2, K)
    assert sc.shape == (2,)
    assert_people_match(kp, truth)
    assert (ks > 0.8).all()  # peak pixel values of blobs off the pixel grid
    assert (sc > 0.5).all()


def test_crossing_limbs_same_type():
    """Two people whose left forearms cross each other (same PAF channel, averaged at the crossing)."""
    a = person((25.3, 20.2), left_elbow=(38.3, 28.2), left_wrist=(50.3, 38.2))
    b = person((70.6, 20.4), mirror=True, left_elbow=(57.6, 28.4), left_wrist=(45.6, 38.4))
    heat, pafs = render([a, b], 64, 96)
    le = OPENPOSE_18.keypoints.index("left_elbow")
    fore = LIMBS.index((le, le + 1))
    assert np.abs(pafs[fore, 36, 48]).sum() > 0  # the two forearms do overlap in the field
    kp, _, _ = parse_people(heat, pafs, LIMBS)
    assert_people_match(kp, [a, b])


def test_crossing_limbs_with_multiple_crossings():
    # both arms of two people interleaved: A's left arm crosses B's left arm, B's right arm crosses A's right
    a = person((20.4, 20.3), left_elbow=(34.4, 27.3), left_wrist=(46.4, 36.3))
    b = person((60.2, 20.1), mirror=True, left_elbow=(46.2, 27.1), left_wrist=(34.2, 36.1))
    heat, pafs = render([a, b], 64, 84)
    kp, _, _ = parse_people(heat, pafs, LIMBS)
    assert_people_match(kp, [a, b])


def test_person_without_legs_next_to_full_people():
    truth = [
        person((18.31, 14.27)),
        person((48.66, 20.18), drop=LEGS),
        person((78.42, 16.73)),
    ]
    heat, pafs = render(truth, 64, 96)
    kp, ks, _ = parse_people(heat, pafs, LIMBS)
    assert_people_match(kp, truth)
    legless = int(np.argmin(np.abs(kp[:, 1, 0] - 48.66)))
    hips = [OPENPOSE_18.keypoints.index(n) for n in LEGS]
    assert (ks[legless, hips] == 0).all()


def test_person_without_neck_is_one_person():
    """No neck and no legs: arms and head are separate fragments of the limb tree, joined by the
    redundant shoulder-ear limbs (2, 16) and (5, 17)."""
    truth = [person((40.27, 20.36), drop=("neck", *LEGS))]
    heat, pafs = render(truth, 48, 80)
    kp, _, _ = parse_people(heat, pafs, LIMBS)
    assert_people_match(kp, truth)
    assert np.isfinite(kp[0]).all(1).sum() == 11


def test_close_people_side_by_side():
    # shoulders of neighbours 4 px apart: the right assignment needs the PAFs, not proximity alone
    truth = [person((20.33, 14.41)), person((34.28, 14.62)), person((48.19, 14.27))]
    heat, pafs = render(truth, 56, 70)
    kp, _, _ = parse_people(heat, pafs, LIMBS)
    assert_people_match(kp, truth)


def test_empty_maps():
    heat = np.zeros((K, 30, 40), np.float32)
    pafs = np.zeros((len(LIMBS), 30, 40, 2), np.float32)
    kp, ks, sc = parse_people(heat, pafs, LIMBS)
    assert kp.shape == (0, K, 2)
    assert ks.shape == (0, K)
    assert sc.shape == (0,)


def test_upsampled_peaks_stay_in_map_frame():
    truth = [person((20.37, 15.21)), person((50.72, 18.63))]
    heat, pafs = render(truth, 60, 80)
    kp, _, _ = parse_people(heat, pafs, LIMBS, PeakParams(upsample=2))
    assert_people_match(kp, truth)


def test_paf_shape_mismatch():
    heat = np.zeros((K, 30, 40), np.float32)
    with pytest.raises(ValueError, match=r"pafs must have shape \(19, 30, 40, 2\)"):
        parse_people(heat, np.zeros((19, 40, 30, 2), np.float32), LIMBS)
    with pytest.raises(ValueError, match="pafs must have shape"):
        parse_people(heat, np.zeros((18, 30, 40, 2), np.float32), LIMBS)


def test_person_on_half_pixel_positions_is_found_once():
    truth = [person((20.5, 15.5))]
    heat, pafs = render(truth, 60, 60)
    kp, _, _ = parse_people(heat, pafs, LIMBS)
    assert_people_match(kp, truth)
