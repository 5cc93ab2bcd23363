"""OpenPose targets: PAF geometry, overlap averaging, and decoding by posekit's own parser."""

from __future__ import annotations

import numpy as np
import pytest

from posekit.bottomup import parse_people
from posekit.codecs.paf import encode_heatmaps, encode_pafs
from posekit.schemas import OPENPOSE_18

LIMBS = OPENPOSE_18.skeleton

# One upright OpenPose-18 person, map pixels relative to the neck, ~28 px tall (a 64x64 map of
# stride 8 is a 512x512 input): nose, neck, r-shoulder, r-elbow, r-wrist, l-shoulder, l-elbow,
# l-wrist, r-hip, r-knee, r-ankle, l-hip, l-knee, l-ankle, r-eye, l-eye, r-ear, l-ear.
_TEMPLATE = np.array(
    [[0.0, -3.0], [0.0, 0.0], [-3.0, 0.2], [-4.5, 4.0], [-5.0, 8.0], [3.0, -0.2], [4.6, 4.0], [5.2, 8.0],
     [-2.0, 9.0], [-2.3, 15.0], [-2.5, 21.0], [2.0, 9.0], [2.2, 15.0], [2.6, 21.0],
     [-0.8, -4.0], [0.8, -4.0], [-1.7, -3.4], [1.7, -3.4]]
)  # fmt: skip


def _people() -> np.ndarray:
    rng = np.random.default_rng(7)
    necks = [(12.3, 10.6), (27.8, 14.2), (44.1, 12.7)]
    out = []
    for i, (x, y) in enumerate(necks):
        scale = 1.0 + 0.1 * i
        jitter = rng.uniform(-0.3, 0.3, _TEMPLATE.shape)
        out.append(_TEMPLATE * scale + jitter + np.array([x, y]))
    return np.stack(out)


@pytest.mark.parametrize("limb_width", [1.0, 1.5])
def test_parser_recovers_every_person_from_the_targets(limb_width):
    kp = _people()  # (3, 18, 2)
    vis = np.ones(kp.shape[:2])
    vis[1, 17] = 0  # person 1's left ear is unlabelled
    heat = encode_heatmaps(kp, vis, (64, 64), sigma=1.0)
    pafs = encode_pafs(kp, vis, LIMBS, (64, 64), limb_width=limb_width)
    assert heat.shape == (18, 64, 64)
    assert pafs.shape == (19, 64, 64, 2)
    found, kscores, scores = parse_people(heat, pafs, LIMBS)
    assert len(found) == 3
    assert np.all(scores > 0)
    matched = set()
    for truth, v in zip(kp, vis, strict=True):
        # The person whose neck is nearest this one's: it must hold all (and only) its parts.
        j = int(np.nanargmin(np.linalg.norm(found[:, 1] - truth[1], axis=1)))
        matched.add(j)
        got = found[j]
        labelled = v > 0
        assert np.isnan(got[~labelled]).all()
        assert not np.isnan(got[labelled]).any()
        assert np.abs(got[labelled] - truth[labelled]).max() < 0.5
        assert np.all(kscores[j][labelled] > 0.8)
    assert matched == {0, 1, 2}


def test_paf_is_the_unit_limb_direction_on_the_limb_and_zero_elsewhere():
    a, b = np.array([5.0, 6.0]), np.array([17.0, 15.0])  # length 15, direction (0.8, 0.6)
    paf = encode_pafs(np.stack([a, b])[None], None, [(0, 1)], (24, 20), limb_width=1.0)[0]
    v = np.array([0.8, 0.6])
    ys, xs = np.mgrid[0:20, 0:24]
    r = np.stack([xs - a[0], ys - a[1]], axis=-1)
    along = r @ v
    across = np.abs(r @ np.array([-0.6, 0.8]))
    on = (along >= 0) & (along <= 15) & (across <= 1.0)
    assert on.sum() > 30
    np.testing.assert_allclose(paf[on], np.broadcast_to(v, (on.sum(), 2)), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(paf[on], axis=-1), 1.0, atol=1e-6)
    assert not paf[~on].any()
    # Beyond the end points and far to the side: zero.
    assert not paf[0, 23].any()
    assert not paf[19, 0].any()
    assert not paf[6, 3].any()
    # Width: pixel centres up to limb_width across are in; wider limbs cover more.
    wide = encode_pafs(np.stack([a, b])[None], None, [(0, 1)], (24, 20), limb_width=2.0)[0]
    assert (np.abs(wide).sum(-1) > 0).sum() > on.sum()


def test_overlapping_people_are_averaged_by_count():
    # Limb 0: person 0 horizontal, person 1 vertical, crossing at (10, 10).
    kp = np.array([[[2.0, 10.0], [18.0, 10.0]], [[10.0, 2.0], [10.0, 18.0]]])
    paf = encode_pafs(kp, None, [(0, 1)], (21, 21), limb_width=1.0)[0]
    np.testing.assert_allclose(paf[10, 10], [0.5, 0.5], atol=1e-6)  # (x-unit + y-unit) / 2
    np.testing.assert_allclose(paf[10, 3], [1.0, 0.0], atol=1e-6)  # only person 0
    np.testing.assert_allclose(paf[3, 10], [0.0, 1.0], atol=1e-6)  # only person 1
    # Two people on the same line in the same direction: still a unit vector (mean, not sum).
    same = np.array([[[2.0, 10.0], [18.0, 10.0]], [[6.0, 10.0], [14.0, 10.0]]])
    paf = encode_pafs(same, None, [(0, 1)], (21, 21), limb_width=1.0)[0]
    np.testing.assert_allclose(paf[10, 10], [1.0, 0.0], atol=1e-6)
    # Opposite directions cancel.
    opposite = np.array([[[2.0, 10.0], [18.0, 10.0]], [[18.0, 10.0], [2.0, 10.0]]])
    paf = encode_pafs(opposite, None, [(0, 1)], (21, 21), limb_width=1.0)[0]
    np.testing.assert_allclose(paf[10, 10], [0.0, 0.0], atol=1e-6)


def test_limbs_need_both_parts_labelled_and_distinct():
    kp = np.array([[[2.0, 5.0], [12.0, 5.0], [12.0, 5.0]]])
    paf = encode_pafs(kp, [[1, 0, 1]], [(0, 1), (0, 2), (1, 2)], (16, 10))
    assert not paf[0].any()  # part 1 unlabelled
    assert paf[1].any()
    assert not paf[2].any()  # coincident parts: no direction
    nan = kp.copy()
    nan[0, 2] = np.nan
    assert not encode_pafs(nan, None, [(0, 2)], (16, 10)).any()


def test_heatmaps_are_max_of_gaussians_in_the_map_frame():
    kp = np.array([[[4.0, 3.0]], [[6.0, 3.0]]])
    hm = encode_heatmaps(kp, [[1], [1]], (12, 8), sigma=1.0)
    assert hm.shape == (1, 8, 12)
    assert hm[0, 3, 4] == pytest.approx(1.0)
    assert hm[0, 3, 6] == pytest.approx(1.0)
    assert hm[0, 3, 5] == pytest.approx(np.exp(-0.5))  # max of the two, not their sum
    assert not encode_heatmaps(kp, [[0], [0]], (12, 8)).any()


def test_rejects_bad_limbs():
    with pytest.raises(ValueError, match="outside"):
        encode_pafs(np.zeros((1, 2, 2)), None, [(0, 5)], (8, 8))
