"""Box noise: offsets, matching, the kernel density sampler, files, the jitter fallback, real detections."""

from __future__ import annotations

import json

import numpy as np
import pytest

from posekit.boxes import box_iou
from posekit.detectors import Detections
from posekit.train.boxnoise import (
    OFFSET_NAMES,
    BoxNoise,
    BoxSampler,
    RandomJitter,
    apply_offsets,
    box_offsets,
    match_detections,
)

DET_FILE = "fixtures/coco/test_coco_det_AP_H_56.json"


def _xyxy(b):
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def _random_boxes(rng, n):
    return np.concatenate([rng.uniform(0, 500, (n, 2)), rng.uniform(5, 300, (n, 2))], axis=1)


def test_offsets_definition_and_round_trip():
    gt = np.array([[100.0, 50.0, 40.0, 80.0]])
    det = np.array([[104.0, 42.0, 40.0 * np.e, 80.0]])  # centre moves by (4 + 20(e-1), -8)
    o = box_offsets(det, gt)[0]
    np.testing.assert_allclose(o, [(4 + 20 * (np.e - 1)) / 40, -8 / 80, 1.0, 0.0], atol=1e-12)
    rng = np.random.default_rng(0)
    g, d = _random_boxes(rng, 50), _random_boxes(rng, 50)
    np.testing.assert_allclose(apply_offsets(g, box_offsets(d, g)), d, atol=1e-9)
    np.testing.assert_allclose(apply_offsets(g[0], box_offsets(d[:1], g[:1])[0]), d[0], atol=1e-9)
    with pytest.raises(ValueError, match="positive"):
        box_offsets([[0, 0, 0, 10]], [[0, 0, 5, 10]])
    with pytest.raises(ValueError, match="row by row"):
        box_offsets(d[:2], g[:3])


def test_matching_is_greedy_by_score_within_images():
    gt = np.array([[0, 0, 100, 200], [300, 0, 100, 200], [0, 0, 100, 200]], dtype=float)
    gt_img = np.array([1, 1, 2])
    det = np.array(
        [
            [5, 5, 100, 200],  # image 1, overlaps gt 0 well
            [0, 0, 100, 190],  # image 1, overlaps gt 0 even better, but lower score
            [310, 0, 100, 200],  # image 1, gt 1
            [600, 600, 50, 50],  # image 1, nothing
            [0, 0, 100, 200],  # image 3: no ground truth there
            [30, 60, 100, 200],  # image 2: IoU below 0.5 with gt 2
        ],
        dtype=float,
    )
    scores = np.array([0.9, 0.5, 0.8, 0.99, 0.9, 0.9])
    det_img = np.array([1, 1, 1, 1, 3, 2])
    di, gi = match_detections(det, scores, det_img, gt, gt_img)
    assert sorted(zip(di.tolist(), gi.tolist(), strict=True)) == [(0, 0), (2, 1)]
    # the lower-scored detection takes gt 0 only when the better-scored one is gone
    di, gi = match_detections(det[1:], scores[1:], det_img[1:], gt, gt_img)
    assert (0, 0) in set(zip(di.tolist(), gi.tolist(), strict=True))
    # a lower threshold lets the image-2 detection match
    iou = box_iou(_xyxy(det[5]), _xyxy(gt[2]))[0, 0]
    assert 0.3 < iou < 0.5
    di, gi = match_detections(det, scores, det_img, gt, gt_img, iou_threshold=0.3)
    assert (5, 2) in set(zip(di.tolist(), gi.tolist(), strict=True))
    with pytest.raises(ValueError, match="iou_threshold"):
        match_detections(det, scores, det_img, gt, gt_img, iou_threshold=0.0)
    with pytest.raises(ValueError, match="scores"):
        match_detections(det, scores[:2], det_img, gt, gt_img)


def test_zero_bandwidth_resamples_observed_boxes():
    rng = np.random.default_rng(1)
    gt = _random_boxes(rng, 6)
    det = apply_offsets(gt, rng.normal(0, 0.1, (6, 4)))
    bn = BoxNoise.fit(det, gt, bandwidth=0.0)
    np.testing.assert_array_equal(bn.bandwidth, 0)
    box = np.array([10.0, 20.0, 50.0, 100.0])
    want = apply_offsets(np.tile(box, (6, 1)), bn.offsets)
    for seed in range(20):
        out = bn.sample(box, np.random.default_rng(seed))
        assert np.isclose(want, out, atol=1e-9).all(axis=1).any()
    assert not bn.offsets.flags.writeable


def test_kernel_density_moments():
    rng = np.random.default_rng(2)
    gt = _random_boxes(rng, 200)
    true = np.column_stack([rng.normal(0.02, 0.05, 200), rng.normal(-0.03, 0.04, 200), rng.normal(0.1, 0.1, 200),
                            rng.normal(0.0, 0.08, 200)])  # fmt: skip
    bn = BoxNoise.fit(apply_offsets(gt, true), gt)
    np.testing.assert_allclose(bn.offsets, true, atol=1e-9)
    # Scott's rule: std * n^(-1/8)
    np.testing.assert_allclose(bn.bandwidth, true.std(0, ddof=1) * 200 ** (-1 / 8))
    draw = np.random.default_rng(3)
    box = np.array([0.0, 0.0, 100.0, 200.0])
    got = box_offsets(np.stack([bn.sample(box, draw) for _ in range(4000)]), np.tile(box, (4000, 1)))
    np.testing.assert_allclose(got.mean(0), true.mean(0), atol=0.01)
    want_std = np.sqrt(true.var(0) + bn.bandwidth**2)
    np.testing.assert_allclose(got.std(0), want_std, rtol=0.1)
    # reproducible per seed, and the draws are exactly an index then four normals
    a = bn.sample(box, np.random.default_rng(9))
    r = np.random.default_rng(9)
    i = r.integers(200)
    np.testing.assert_allclose(a, apply_offsets(box, bn.offsets[i] + bn.bandwidth * r.standard_normal(4)))


def test_aspect_buckets_and_fallback():
    wide = np.tile([0.0, 0.0, 200.0, 100.0], (30, 1))
    tall = np.tile([0.0, 0.0, 50.0, 200.0], (5, 1))
    gt = np.concatenate([wide, tall])
    offsets = np.zeros((35, 4))
    offsets[:30, 2] = 0.5  # wide boxes: detections 65 % wider
    offsets[30:, 2] = -0.5
    bn = BoxNoise.fit(apply_offsets(gt, offsets), gt, aspect_edges=(1.0,), min_bucket=20, bandwidth=0.0)
    assert bn.buckets.tolist() == [0] * 30 + [1] * 5
    rng = np.random.default_rng(4)
    for _ in range(20):
        assert np.isclose(bn.sample(wide[0], rng)[2], 200 * np.exp(0.5))
    # the tall bucket is below min_bucket: it draws from all pairs
    widths = {round(bn.sample(tall[0], rng)[2], 6) for _ in range(200)}
    assert widths == {round(50 * np.exp(0.5), 6), round(50 * np.exp(-0.5), 6)}
    s = bn.summary()
    assert [b["count"] for b in s["buckets"]] == [30, 5]
    assert s["buckets"][0]["aspect_h_over_w"] == [0.0, 1.0]
    with pytest.raises(ValueError, match="increasing"):
        BoxNoise.fit(gt, gt, aspect_edges=(2.0, 1.0))


def test_degenerate_box_passes_through_after_the_same_draws():
    bn = BoxNoise.fit([[0, 0, 12, 22]], [[0, 0, 10, 20]], bandwidth=0.0)
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    np.testing.assert_array_equal(bn.sample([5, 5, 0, 10], r1), [5, 5, 0, 10])
    bn.sample([5, 5, 3, 10], r2)
    assert r1.random() == r2.random()


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(6)
    gt = _random_boxes(rng, 40)
    bn = BoxNoise.fit(apply_offsets(gt, rng.normal(0, 0.1, (40, 4))), gt, aspect_edges=(1.0, 2.0), source="unit")
    path = tmp_path / "noise.json"
    bn.save(path)
    assert path.stat().st_size < 10_000
    back = BoxNoise.load(path)
    np.testing.assert_allclose(back.offsets, bn.offsets, atol=1e-6)
    np.testing.assert_array_equal(back.bandwidth, bn.bandwidth)
    np.testing.assert_array_equal(back.buckets, bn.buckets)
    assert (back.aspect_edges, back.min_bucket, back.source) == ((1.0, 2.0), 20, "unit")
    data = json.loads(path.read_text())
    data["format"] = "something-else"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"posekit\.boxnoise"):
        BoxNoise.load(path)
    with pytest.raises(ValueError, match=r"\(M, 4\)"):
        BoxNoise(np.zeros((0, 4)), np.zeros(4))


def test_summary_statistics():
    gt = np.tile([0.0, 0.0, 100.0, 100.0], (4, 1))
    offsets = np.array([[0.1, 0, 0, 0], [-0.1, 0, 0, 0], [0.3, 0.2, 0.1, -0.1], [-0.3, 0, 0.1, 0.1]])
    s = BoxNoise.fit(apply_offsets(gt, offsets), gt).summary()
    assert s["count"] == 4
    for j, name in enumerate(OFFSET_NAMES):
        assert s[name]["mean"] == pytest.approx(offsets[:, j].mean(), abs=1e-9)
        assert s[name]["std"] == pytest.approx(offsets[:, j].std(ddof=1), abs=1e-9)
    assert "buckets" not in s


@pytest.mark.parametrize("distribution", ["uniform", "gaussian"])
def test_random_jitter_bounds(distribution):
    jit = RandomJitter(shift_factor=0.1, scale_factor=0.2, distribution=distribution)
    assert isinstance(jit, BoxSampler)
    box = np.array([10.0, 20.0, 100.0, 200.0])
    rng = np.random.default_rng(7)
    o = box_offsets(np.stack([jit.sample(box, rng) for _ in range(2000)]), np.tile(box, (2000, 1)))
    k = 1.0 if distribution == "uniform" else 2.0
    assert np.all(np.abs(o[:, :2]) <= 0.1 * k + 1e-12)
    assert np.all(np.abs(o[:, 2:]) <= 0.2 * k + 1e-12)
    want_std = (
        (np.array([0.1, 0.1, 0.2, 0.2]) / np.sqrt(3)) if distribution == "uniform" else np.array([0.1] * 2 + [0.2] * 2)
    )
    np.testing.assert_allclose(o.std(0), want_std, rtol=0.1)
    np.testing.assert_allclose(o.mean(0), 0, atol=0.02)
    np.testing.assert_array_equal(jit.sample(box, np.random.default_rng(1)), jit.sample(box, np.random.default_rng(1)))
    with pytest.raises(ValueError, match="'uniform' or 'gaussian'"):
        RandomJitter(distribution="laplace")  # type: ignore[arg-type]


def test_fit_on_real_detections(data_dir, tmp_path):
    """The AP_H_56 detections are on the 4 fixture images, whose ground truth is also in the dev set."""
    dets = json.loads((data_dir / DET_FILE).read_text())
    assert len(dets) == 118
    ids = {d["image_id"] for d in dets}
    fixture = json.loads((data_dir / "fixtures/coco/test_coco.json").read_text())
    dev = json.loads((data_dir / "coco-val2017-dev/person_keypoints.json").read_text())
    assert ids == {im["id"] for im in fixture["images"]}
    assert ids <= {im["id"] for im in dev["images"]}
    a = BoxNoise.from_coco(data_dir / DET_FILE, data_dir / "fixtures/coco/test_coco.json")
    b = BoxNoise.from_coco(data_dir / DET_FILE, data_dir / "coco-val2017-dev/person_keypoints.json")
    np.testing.assert_array_equal(a.offsets, b.offsets)  # the dev set holds the same ground truth for them
    n_gt = sum(1 for x in fixture["annotations"] if not x.get("iscrowd") and x["bbox"][2] > 0)
    assert n_gt == 14
    assert len(a.offsets) == 14  # every person box is found by the AP_H_56 detector
    s = a.summary()
    # a good detector: boxes centred within a few % of the box size, sizes within ~10 %
    assert abs(s["dcx"]["mean"]) < 0.05
    assert abs(s["dcy"]["mean"]) < 0.05
    assert all(s[n]["std"] < 0.15 for n in OFFSET_NAMES)
    # detections on images without ground truth are left out, not an error
    extra = [*dets, {"image_id": 123456789, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 1.0}]
    (tmp_path / "dets.json").write_text(json.dumps(extra))
    c = BoxNoise.from_coco(tmp_path / "dets.json", data_dir / "fixtures/coco/test_coco.json")
    np.testing.assert_array_equal(c.offsets, a.offsets)
    # nothing matches: a clear error
    (tmp_path / "none.json").write_text(json.dumps(extra[-1:]))
    with pytest.raises(ValueError, match="no matched pairs"):
        BoxNoise.from_coco(tmp_path / "none.json", data_dir / "fixtures/coco/test_coco.json")


class _ShiftedTruth:
    """A stand-in detector: the image's labelled boxes, 10 % wider, as xyxy Detections."""

    def __init__(self, data):
        self.by_size = {}
        for im in data["images"]:
            boxes = [a["bbox"] for a in data["annotations"] if a["image_id"] == im["id"] and not a["iscrowd"]]
            self.by_size.setdefault((im["height"], im["width"]), []).extend(boxes)

    def __call__(self, image):
        b = np.asarray(self.by_size[image.shape[:2]], dtype=np.float64).reshape(-1, 4)
        b = apply_offsets(b, np.tile([0.0, 0.0, np.log(1.1), 0.0], (len(b), 1))) if len(b) else b
        return Detections(_xyxy(b), np.ones(len(b)))


def test_from_detector_with_a_stand_in(dev_set):
    data = dev_set.load()
    ids = [785, 40083]
    sizes = {(im["height"], im["width"]) for im in data["images"] if im["id"] in ids}
    assert len(sizes) == 2
    bn = BoxNoise.from_detector(_ShiftedTruth(data), dev_set.annotations, dev_set.images, image_ids=ids)
    assert len(bn.offsets) == 4  # 1 + 3 non-crowd person boxes
    np.testing.assert_allclose(bn.offsets, np.tile([0, 0, np.log(1.1), 0], (4, 1)), atol=1e-5)
    with pytest.raises(ValueError, match="not in"):
        BoxNoise.from_detector(_ShiftedTruth(data), dev_set.annotations, dev_set.images, image_ids=[-1])


@pytest.mark.network
def test_from_blazepose_alignment_boxes(data_dir):
    """posekit's own detector with MediaPipe's square alignment boxes: few reach IoU 0.5 with COCO's tight boxes."""
    from posekit.detectors.blazepose import BlazePoseDetector
    from posekit.models.torch.presets import AlignmentBoxes

    root = data_dir / "coco-train2017-mini"
    data = json.loads((root / "person_keypoints.json").read_text())
    ids = sorted({a["image_id"] for a in data["annotations"] if a["num_keypoints"] > 0})[:15]
    det = AlignmentBoxes(BlazePoseDetector(progress=False), along=1.0, across=1.0)
    bn = BoxNoise.from_detector(det, root / "person_keypoints.json", root / "images", image_ids=ids, iou_threshold=0.3)
    s = bn.summary()
    assert s["count"] >= 3
    # square boxes around upright people: much wider than the labels, about as tall
    assert s["dlogw"]["mean"] > 0.2
    assert abs(s["dlogh"]["mean"]) < 0.3
