"""Seeded augmentation: top-down crops (with box noise and half-body) and bottom-up images."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest

from posekit.io.images import read_image
from posekit.schemas import COCO_17
from posekit.train.augment import (
    BottomUpCrop,
    affine_crop,
    lower_body_indices,
    random_bottom_up,
    random_top_down,
    transform_keypoints,
)
from posekit.train.boxnoise import BoxNoise, RandomJitter, box_offsets
from posekit.train.datasets import BottomUpSample, CocoKeypoints

LW, RW = COCO_17.index("left_wrist"), COCO_17.index("right_wrist")
NO_JITTER = {"jitter": None}


@pytest.fixture(scope="module")
def mini(data_dir):
    root = data_dir / "coco-train2017-mini"
    return CocoKeypoints(root / "person_keypoints.json", root / "images"), json.loads(
        (root / "person_keypoints.json").read_text()
    )


# --- top-down ------------------------------------------------------------------------------------


def _two_wrist_sample(ds):
    """A sample with both wrists labelled, far apart and inside the image."""
    for s in ds.top_down_samples():
        k = s.keypoints
        if k[LW, 2] > 0 and k[RW, 2] > 0 and np.linalg.norm(k[LW, :2] - k[RW, :2]) > 60:
            return s
    raise AssertionError("no sample with two distant wrists")


def _dotted(sample, radius):
    img = read_image(sample.image_path).copy()
    for idx, colour in ((LW, (0, 0, 255)), (RW, (255, 0, 0))):
        x, y = sample.keypoints[idx, :2]
        cv2.circle(img, (round(x), round(y)), radius, colour, -1)
    return img


def _colour_at(img, xy):
    x, y = round(xy[0]), round(xy[1])
    return img[y, x].astype(int)


def _find_seed(ds_sample, img, want, **kw):
    for seed in range(500):
        out = random_top_down(ds_sample, np.random.default_rng(seed), image=img, **kw)
        if want(out):
            return out
    raise AssertionError("no seed gave the wanted draw")


def test_flip_swaps_wrists_and_mirrors_pixels(mini):
    ds, _ = mini
    s = _two_wrist_sample(ds)
    img = _dotted(s, radius=12)
    out = _find_seed(
        s, img, lambda o: o.flipped and o.half_body is None, half_body_prob=0, rotation_prob=0, **NO_JITTER
    )
    assert out.keypoints[LW, 2] > 0
    assert out.keypoints[RW, 2] > 0
    # the new left wrist is the old right wrist (red dot), mirrored into the crop
    np.testing.assert_allclose(_colour_at(out.image, out.keypoints[LW]), (255, 0, 0), atol=2)
    np.testing.assert_allclose(_colour_at(out.image, out.keypoints[RW]), (0, 0, 255), atol=2)
    np.testing.assert_allclose(out.keypoints[LW, :2], transform_keypoints(s.keypoints[RW, :2], out.matrix))
    # mirroring: the matrix's x axis is reversed
    assert np.linalg.det(out.matrix[:, :2]) < 0


def test_rotation_and_scale_keep_dots_on_keypoints(mini):
    ds, _ = mini
    s = _two_wrist_sample(ds)
    img = _dotted(s, radius=12)
    out = _find_seed(
        s,
        img,
        lambda o: (
            not o.flipped and o.half_body is None and abs(np.degrees(np.arctan2(o.matrix[0, 1], o.matrix[0, 0]))) > 20
        ),
        half_body_prob=0,
        rotation_prob=1.0,
        **NO_JITTER,
    )
    np.testing.assert_allclose(_colour_at(out.image, out.keypoints[LW]), (0, 0, 255), atol=2)
    np.testing.assert_allclose(_colour_at(out.image, out.keypoints[RW]), (255, 0, 0), atol=2)


def test_affine_crop_exact_geometry():
    img = np.zeros((300, 400, 3), np.uint8)
    img[100, 250] = (0, 255, 0)
    crop, m = affine_crop(img, center=(200, 150), scale_wh=(202, 202), rotation_deg=90, out_size=(101, 101))
    # center -> (50, 50); 50 px right of centre at 0.5 px/px and rotated 90 deg ccw -> 25 px up
    np.testing.assert_allclose(transform_keypoints([[200, 150], [300, 150]], m), [[50, 50], [50, 0]], atol=1e-9)
    p = transform_keypoints([[250, 100]], m)[0]
    assert crop[round(p[1]), round(p[0]), 1] > 0
    # identity crop: pixels copied exactly
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    same, m1 = affine_crop(noise, center=(23.5, 31.5), scale_wh=(48, 64), rotation_deg=0, out_size=(48, 64))
    np.testing.assert_array_equal(same, noise)
    np.testing.assert_allclose(m1, [[1, 0, 0], [0, 1, 0]], atol=1e-12)


def test_keypoints_outside_crop_are_invisible(mini):
    ds, _ = mini
    s = _two_wrist_sample(ds)
    img = read_image(s.image_path)
    for seed in range(40):
        out = random_top_down(s, np.random.default_rng(seed), image=img, **NO_JITTER)
        k = out.keypoints
        vis = k[:, 2] > 0
        assert np.all((k[vis, 0] >= -0.5) & (k[vis, 0] < 191.5) & (k[vis, 1] >= -0.5) & (k[vis, 1] < 255.5))
        assert np.all(k[~vis] == 0)
    tiny = random_top_down(s, np.random.default_rng(0), image=img, padding=0.2, scale_range=(0.3, 0.3), **NO_JITTER)
    assert (tiny.keypoints[:, 2] > 0).sum() < (s.keypoints[:, 2] > 0).sum()


def _expected_top_down(sample, out, size=(192, 256)):
    """The sample's keypoints moved by the crop's matrix: labelled iff labelled and inside the crop."""
    exp = transform_keypoints(sample.keypoints, out.matrix)
    if out.flipped:
        exp = exp[COCO_17.flip_permutation()]
    w, h = size
    inside = (exp[:, 0] >= -0.5) & (exp[:, 0] < w - 0.5) & (exp[:, 1] >= -0.5) & (exp[:, 1] < h - 0.5)
    return exp, (exp[:, 2] > 0) & inside


def test_half_body_keeps_labels_inside_the_crop(mini):
    ds, _ = mini
    lower = set(lower_body_indices(COCO_17).tolist())
    assert lower == {11, 12, 13, 14, 15, 16}
    rich = [s for s in ds.top_down_samples() if (s.keypoints[:, 2] > 0).sum() >= 12]
    assert rich
    seen = set()
    other_half_kept = 0
    for i, s in enumerate(rich[:6]):
        img = read_image(s.image_path)
        for seed in range(12):
            out = random_top_down(s, np.random.default_rng(100 * i + seed), image=img, half_body_prob=1.0, **NO_JITTER)
            assert out.half_body in ("upper", "lower")
            seen.add(out.half_body)
            exp, want = _expected_top_down(s, out)
            # like mmpose: every labelled keypoint inside the crop keeps its label, either half
            np.testing.assert_array_equal(out.keypoints[:, 2] > 0, want)
            np.testing.assert_allclose(out.keypoints[want, :2], exp[want, :2], atol=1e-9)
            assert np.all(out.keypoints[~want] == 0)
            vis = set(np.flatnonzero(want).tolist())
            chosen = lower if out.half_body == "lower" else set(range(17)) - lower
            assert vis & chosen, "a half-body crop keeps keypoints of its half"
            other_half_kept += len(vis - chosen)
    assert seen == {"upper", "lower"}
    assert other_half_kept > 0  # e.g. the hips at the lower edge of an upper-body crop
    # too few keypoints: no half-body
    sparse = next(s for s in ds.top_down_samples() if 0 < (s.keypoints[:, 2] > 0).sum() < 9)
    out = random_top_down(sparse, np.random.default_rng(0), image=read_image(sparse.image_path), half_body_prob=1.0)
    assert out.half_body is None


def test_determinism_per_seed(mini):
    ds, _ = mini
    s = ds.top_down_samples()[0]
    img = read_image(s.image_path)
    a = random_top_down(s, np.random.default_rng(7), image=img)
    b = random_top_down(s, np.random.default_rng(7), image=img)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    np.testing.assert_array_equal(a.matrix, b.matrix)
    outs = [random_top_down(s, np.random.default_rng(seed), image=img).matrix for seed in range(5)]
    assert len({m.tobytes() for m in outs}) == 5
    # the image is read from disk when not given
    c = random_top_down(s, np.random.default_rng(7))
    np.testing.assert_array_equal(a.image, c.image)


class _FixedBox:
    """A box sampler that draws once from the rng and returns a fixed box."""

    def __init__(self, box):
        self.box = np.asarray(box, dtype=np.float64)
        self.seen = []

    def sample(self, bbox_xywh, rng):
        self.seen.append(np.asarray(bbox_xywh, dtype=np.float64).copy())
        rng.random()
        return self.box.copy()


def test_box_noise_moves_the_box_first(mini):
    ds, _ = mini
    s = _two_wrist_sample(ds)
    img = read_image(s.image_path)
    moved = s.bbox + np.array([15.0, -10.0, 20.0, 30.0])
    for seed in range(6):
        noise = _FixedBox(moved)
        out = random_top_down(s, np.random.default_rng(seed), image=img, box_noise=noise)
        np.testing.assert_array_equal(noise.seen[0], s.bbox)
        # same as the moved box given directly, with the sampler's draw taken first
        rng = np.random.default_rng(seed)
        rng.random()
        ref = random_top_down(dataclasses.replace(s, bbox=moved), rng, image=img)
        np.testing.assert_array_equal(out.matrix, ref.matrix)
        np.testing.assert_array_equal(out.image, ref.image)
        np.testing.assert_array_equal(out.keypoints, ref.keypoints)
    # without box noise, the draws are unchanged (no hidden draw)
    plain = random_top_down(s, np.random.default_rng(3), image=img)
    again = random_top_down(s, np.random.default_rng(3), image=img, box_noise=None)
    np.testing.assert_array_equal(plain.matrix, again.matrix)


def test_box_noise_from_real_detections_in_top_down(mini, data_dir):
    ds, _ = mini
    s = _two_wrist_sample(ds)
    img = read_image(s.image_path)
    fitted = BoxNoise.from_coco(
        data_dir / "fixtures/coco/test_coco_det_AP_H_56.json", data_dir / "fixtures/coco/test_coco.json"
    )
    for sampler in (fitted, RandomJitter(), RandomJitter(distribution="gaussian")):
        a = random_top_down(s, np.random.default_rng(11), image=img, box_noise=sampler, half_body_prob=0)
        b = random_top_down(s, np.random.default_rng(11), image=img, box_noise=sampler, half_body_prob=0)
        np.testing.assert_array_equal(a.matrix, b.matrix)
        np.testing.assert_array_equal(a.image, b.image)
        exp, want = _expected_top_down(s, a)
        np.testing.assert_array_equal(a.keypoints[:, 2] > 0, want)
        np.testing.assert_allclose(a.keypoints[want, :2], exp[want, :2], atol=1e-9)
    # the crop centre follows the noisy box: over seeds, centres spread around the label's centre
    centres = []
    for seed in range(200):
        rng = np.random.default_rng(seed)
        box = fitted.sample(s.bbox, rng)
        centres.append(box_offsets(box, s.bbox)[0, :2])
    spread = np.std(centres, axis=0)
    assert np.all(spread > 0.01)
    assert np.all(spread < 0.2)


# --- bottom-up -----------------------------------------------------------------------------------


def _colour(p, k):
    return np.array([40 + 12 * k, 50 + 70 * p, 230 - 40 * p], dtype=np.uint8)


def _synthetic_bottom_up(seed=0):
    """A noisy image with 3 people of 17 coloured keypoint dots each (one colour per person and keypoint)."""
    rng = np.random.default_rng(seed)
    h, w = 480, 640
    img = rng.integers(0, 30, (h, w, 3), dtype=np.uint8)
    boxes = np.array([[40, 60, 120, 240], [260, 150, 120, 240], [470, 40, 120, 240]], dtype=np.float64)
    kps = np.zeros((3, 17, 3))
    for p, (x, y) in enumerate(boxes[:, :2]):
        for k in range(17):
            row, col = divmod(k, 3)
            kps[p, k] = (x + 15 + 45 * col, y + 10 + 38 * row, 2)
            cv2.circle(img, (round(kps[p, k, 0]), round(kps[p, k, 1])), 8, _colour(p, k).tolist(), -1)
    kps[1, 5, 2] = 0  # one unlabelled keypoint
    return BottomUpSample(None, 1, kps, boxes), img  # type: ignore[arg-type]


def _inside(k, w=368, h=368):
    return (k[..., 0] >= -0.5) & (k[..., 0] < w - 0.5) & (k[..., 1] >= -0.5) & (k[..., 1] < h - 0.5)


def test_bottom_up_geometry_by_colours_and_flip_pairs():
    sample, img = _synthetic_bottom_up()
    perm = COCO_17.flip_permutation()
    flips = set()
    checked = 0
    for seed in range(16):
        out = random_bottom_up(sample, np.random.default_rng(seed), image=img, jitter=None)
        assert isinstance(out, BottomUpCrop)
        assert out.image.shape == (368, 368, 3)
        assert out.image.dtype == np.uint8
        assert out.keypoints.shape == (3, 17, 3)
        assert out.ignore.shape == (368, 368)
        assert out.ignore.dtype == bool
        assert not out.ignore.any()  # no mask given
        flips.add(out.flipped)
        exp = transform_keypoints(sample.keypoints, out.matrix)
        if out.flipped:
            exp = exp[:, perm]
            assert np.linalg.det(out.matrix[:, :2]) < 0
        want = (exp[..., 2] > 0) & _inside(exp)
        np.testing.assert_array_equal(out.keypoints[..., 2] > 0, want)
        np.testing.assert_allclose(out.keypoints[want][:, :2], exp[want][:, :2], atol=1e-9)
        assert np.all(out.keypoints[~want] == 0)
        for p, k in zip(*np.nonzero(want), strict=True):
            x, y = out.keypoints[p, k, :2]
            src = perm[k] if out.flipped else k  # after a flip, "left wrist" shows the old right wrist
            got = out.image[round(y), round(x)].astype(int)
            np.testing.assert_allclose(got, _colour(p, src), atol=4, err_msg=f"seed {seed}, person {p}, kp {k}")
            checked += 1
    assert flips == {True, False}
    assert checked > 200


def test_bottom_up_scale_rotation_and_centre():
    sample, img = _synthetic_bottom_up()
    for seed in range(20):
        out = random_bottom_up(sample, np.random.default_rng(seed), image=img, jitter=None)
        p = out.center_person
        assert p in (0, 1, 2)
        zoom = np.sqrt(abs(np.linalg.det(out.matrix[:, :2])))
        height = zoom * sample.bboxes[p, 3]
        assert 0.6 * 368 * 0.5 - 1e-6 <= height <= 0.6 * 368 * 1.1 + 1e-6
        angle = np.degrees(np.arctan2(out.matrix[1, 0], out.matrix[1, 1]))
        assert abs(angle) <= 40 + 1e-6 or abs(abs(angle) - 180) <= 40 + 1e-6
        x, y, w, h = sample.bboxes[p]
        c = transform_keypoints([[x + w / 2, y + h / 2]], out.matrix)[0]
        assert np.all(np.abs(c - 183.5) <= 40 + 1e-6)
    fixed = random_bottom_up(
        sample, np.random.default_rng(0), image=img, jitter=None, scale_range=(1.0, 1.0), rotation_deg=0,
        center_shift=0, flip_prob=0,
    )  # fmt: skip
    p = fixed.center_person
    x, y, w, h = sample.bboxes[p]
    np.testing.assert_allclose(
        transform_keypoints([[x + w / 2, y], [x + w / 2, y + h]], fixed.matrix),
        [[183.5, 183.5 - 0.3 * 368], [183.5, 183.5 + 0.3 * 368]],
        atol=1e-9,
    )


def test_bottom_up_ignore_mask_follows_the_warp():
    sample, img = _synthetic_bottom_up()
    img = img.copy()
    ignore = np.zeros(img.shape[:2], bool)
    ignore[300:420, 100:220] = True  # a "crowd" region, painted pure green in the image
    cv2.circle(ignore.view(np.uint8), (520, 380), 50, 1, -1)
    img[ignore] = (0, 255, 0)
    kernel = np.ones((5, 5), np.uint8)
    found = 0
    for seed in range(12):
        out = random_bottom_up(sample, np.random.default_rng(seed), image=img, ignore=ignore, jitter=None)
        green = np.all(out.image == (0, 255, 0), axis=2)
        core = cv2.erode(out.ignore.astype(np.uint8), kernel).astype(bool)
        outside = cv2.erode((~out.ignore).astype(np.uint8), kernel).astype(bool)
        assert green[core].all()
        assert not green[outside].any()
        found += int(core.sum())
    assert found > 1000


def test_bottom_up_outside_the_image_is_not_ignored():
    sample, _ = _synthetic_bottom_up()
    white = np.full((480, 640, 3), 255, np.uint8)
    everywhere = np.ones((480, 640), bool)
    out = random_bottom_up(sample, np.random.default_rng(0), image=white, ignore=everywhere, jitter=None,
                           scale_range=(0.5, 0.5))  # fmt: skip
    black = np.all(out.image == 0, axis=2)
    lit = np.all(out.image == 255, axis=2)
    assert black.sum() > 1000  # zoomed out: part of the crop lies outside the image
    kernel = np.ones((3, 3), np.uint8)
    assert not out.ignore[cv2.erode(black.astype(np.uint8), kernel).astype(bool)].any()
    assert out.ignore[cv2.erode(lit.astype(np.uint8), kernel).astype(bool)].all()


def test_bottom_up_seed_reproducibility():
    sample, img = _synthetic_bottom_up()
    ignore = np.zeros(img.shape[:2], bool)
    ignore[:100, :100] = True
    a = random_bottom_up(sample, np.random.default_rng(5), image=img, ignore=ignore)
    b = random_bottom_up(sample, np.random.default_rng(5), image=img, ignore=ignore)
    for f in ("image", "keypoints", "ignore", "matrix"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert (a.flipped, a.center_person) == (b.flipped, b.center_person)
    mats = {random_bottom_up(sample, np.random.default_rng(s), image=img).matrix.tobytes() for s in range(6)}
    assert len(mats) == 6
    # the input is not changed
    again, _ = _synthetic_bottom_up()
    np.testing.assert_array_equal(sample.keypoints, again.keypoints)


def test_bottom_up_zero_people():
    _, img = _synthetic_bottom_up()
    empty = BottomUpSample(None, 2, np.zeros((0, 17, 3)), np.zeros((0, 4)))  # type: ignore[arg-type]
    out = random_bottom_up(empty, np.random.default_rng(0), image=img, jitter=None, rotation_deg=0, center_shift=0,
                           scale_range=(1.0, 1.0))  # fmt: skip
    assert out.keypoints.shape == (0, 17, 3)
    assert out.center_person is None
    # the whole image fits, centred
    corners = transform_keypoints([[0, 0], [639, 479]], out.matrix)
    assert np.all(corners >= -0.5)
    assert np.all(corners <= 367.5)
    np.testing.assert_allclose(transform_keypoints([[319.5, 239.5]], out.matrix)[0], [183.5, 183.5], atol=1e-9)
    for seed in range(5):
        r = random_bottom_up(empty, np.random.default_rng(seed), image=img)
        assert r.image.shape == (368, 368, 3)


def test_bottom_up_checks_its_inputs():
    sample, img = _synthetic_bottom_up()
    with pytest.raises(ValueError, match=r"\(H, W\) = \(480, 640\)"):
        random_bottom_up(sample, np.random.default_rng(0), image=img, ignore=np.zeros((10, 10), bool))
    with pytest.raises(ValueError, match="scale_range"):
        random_bottom_up(sample, np.random.default_rng(0), image=img, scale_range=(1.0, 0.5))
    bad = dataclasses.replace(sample, bboxes=sample.bboxes[:2])
    with pytest.raises(ValueError, match="3 people but 2 boxes"):
        random_bottom_up(bad, np.random.default_rng(0), image=img)


def test_bottom_up_on_real_images_with_crowds(mini):
    ds, data = mini
    crowd_images = {a["image_id"] for a in data["annotations"] if a["iscrowd"]}
    samples = [s for s in ds.bottom_up_samples(include_empty=True) if s.image_id in crowd_images]
    assert samples
    for i, s in enumerate(samples[:3]):
        img = read_image(s.image_path)
        ign = ds.ignore_mask(s.image_id, img.shape[:2])
        out = random_bottom_up(s, np.random.default_rng(i), image=img, ignore=ign)
        assert out.image.shape == (368, 368, 3)
        assert out.keypoints.shape == (len(s.keypoints), 17, 3)
        # nearest-neighbour warp: every ignored crop pixel maps back into the image's mask
        ys, xs = np.nonzero(out.ignore)
        inv = cv2.invertAffineTransform(out.matrix)
        back = transform_keypoints(np.column_stack([xs, ys]).astype(float), inv)
        bx = np.clip(np.round(back[:, 0]).astype(int), 0, img.shape[1] - 1)
        by = np.clip(np.round(back[:, 1]).astype(int), 0, img.shape[0] - 1)
        dil = cv2.dilate(ign.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        assert dil[by, bx].all()


def test_bottom_up_schema_mismatch():
    sample, img = _synthetic_bottom_up()
    with pytest.raises(ValueError, match=r"\(N, 14, 3\)"):
        random_bottom_up(sample, np.random.default_rng(0), image=img, schema="mpii14")
