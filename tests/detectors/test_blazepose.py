"""The BlazePose person detector: anchors, box decoding, weighted NMS, tiling, and the real model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

import posekit
from posekit.detectors import Detections, Detector
from posekit.detectors.blazepose import (
    BlazePoseDetector,
    DetectorParams,
    blazepose_anchors,
    decode_boxes,
    tile_regions,
    weighted_nms,
)
from posekit.models.blazepose import BlazePoseLandmarks

if TYPE_CHECKING:
    from tests.conftest import CocoSet

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mediapipe"


# --- anchors -------------------------------------------------------------------------------------


def test_anchor_count_and_range() -> None:
    a = blazepose_anchors()
    assert a.shape == (2254, 2)
    assert a.dtype == np.float32
    assert ((a > 0) & (a < 1)).all()
    assert not a.flags.writeable
    assert blazepose_anchors() is a  # cached


def test_anchor_layout_boundaries() -> None:
    a = blazepose_anchors().astype(np.float64)
    # 28x28 grid, two anchors per cell, x fastest
    np.testing.assert_allclose(a[0], [0.5 / 28, 0.5 / 28])
    np.testing.assert_allclose(a[1], a[0])
    np.testing.assert_allclose(a[2], [1.5 / 28, 0.5 / 28])
    np.testing.assert_allclose(a[2 * 28], [0.5 / 28, 1.5 / 28])
    np.testing.assert_allclose(a[28 * 28 * 2 - 1], [27.5 / 28, 27.5 / 28])
    # 14x14 grid, two per cell
    s14 = 28 * 28 * 2
    np.testing.assert_allclose(a[s14 : s14 + 2], [[0.5 / 14, 0.5 / 14]] * 2)
    np.testing.assert_allclose(a[s14 + 2], [1.5 / 14, 0.5 / 14])
    np.testing.assert_allclose(a[s14 + 14 * 14 * 2 - 1], [13.5 / 14, 13.5 / 14])
    # three stride-32 layers merged: 7x7 grid, six per cell
    s7 = s14 + 14 * 14 * 2
    np.testing.assert_allclose(a[s7 : s7 + 6], [[0.5 / 7, 0.5 / 7]] * 6)
    np.testing.assert_allclose(a[s7 + 6], [1.5 / 7, 0.5 / 7])
    np.testing.assert_allclose(a[s7 + 6 * 7], [0.5 / 7, 1.5 / 7])
    np.testing.assert_allclose(a[-6:], [[6.5 / 7, 6.5 / 7]] * 6)
    assert s7 + 7 * 7 * 6 == len(a)


# --- decoding ------------------------------------------------------------------------------------


def test_zero_regressors_decode_to_points_at_the_anchor() -> None:
    anchors = np.array([[0.25, 0.75], [0.5, 0.5]], dtype=np.float32)
    boxes, kps = decode_boxes(np.zeros((2, 12), np.float32), anchors)
    assert boxes.shape == (2, 4)
    assert kps.shape == (2, 4, 2)
    np.testing.assert_allclose(boxes, [[0.25, 0.75, 0.25, 0.75], [0.5, 0.5, 0.5, 0.5]])
    np.testing.assert_allclose(kps, np.repeat(anchors[:, None], 4, axis=1))


def test_known_regressors_decode_to_known_numbers() -> None:
    anchors = np.array([[0.5, 0.25]], dtype=np.float32)
    # centre offset (+0.1, -0.05), size (0.2, 0.4); keypoints at offsets in 1/224 units
    raw = np.array([[22.4, -11.2, 44.8, 89.6, 0.0, 0.0, 224.0, -22.4, -56.0, 112.0, 11.2, 0.0]], np.float32)
    boxes, kps = decode_boxes(raw, anchors)
    np.testing.assert_allclose(boxes, [[0.5, 0.0, 0.7, 0.4]], atol=1e-6)
    np.testing.assert_allclose(kps, [[[0.5, 0.25], [1.5, 0.15], [0.25, 0.75], [0.55, 0.25]]], atol=1e-6)


# --- weighted NMS --------------------------------------------------------------------------------


def test_weighted_nms_merges_overlaps_by_score_and_keeps_distant_ones() -> None:
    boxes = np.array([[1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 10]], np.float32)  # IoU(0, 2) = 0.68
    kps = np.stack([np.full((4, 2), 6.0), np.full((4, 2), 55.0), np.full((4, 2), 5.0)]).astype(np.float32)
    scores = np.array([0.6, 0.7, 0.9], np.float32)
    b, k, s = weighted_nms(boxes, kps, scores, iou=0.3)
    assert b.shape == (2, 4)
    assert k.shape == (2, 4, 2)
    np.testing.assert_allclose(s, [0.9, 0.7])
    w = np.array([0.9, 0.6]) / 1.5
    np.testing.assert_allclose(b[0], w[0] * boxes[2] + w[1] * boxes[0], atol=1e-5)
    np.testing.assert_allclose(b[0], [0.4, 0.4, 10.4, 10.4], atol=1e-5)
    np.testing.assert_allclose(k[0], np.full((4, 2), 5.4), atol=1e-5)
    np.testing.assert_allclose(b[1], boxes[1])
    np.testing.assert_allclose(k[1], kps[1])


def test_weighted_nms_respects_the_iou_threshold() -> None:
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10]], np.float32)  # IoU = 1/3
    kps = np.zeros((2, 4, 2), np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    assert len(weighted_nms(boxes, kps, scores, iou=0.3)[2]) == 1
    b, _, s = weighted_nms(boxes, kps, scores, iou=0.4)
    np.testing.assert_allclose(s, [0.9, 0.8])
    np.testing.assert_allclose(b, boxes)


def test_weighted_nms_empty_input() -> None:
    b, k, s = weighted_nms(np.zeros((0, 4), np.float32), np.zeros((0, 4, 2), np.float32), np.zeros(0, np.float32))
    assert b.shape == (0, 4)
    assert k.shape == (0, 4, 2)
    assert s.shape == (0,)


# --- tiling --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("h", "w"), [(480, 640), (640, 427), (300, 300)])
def test_level_one_is_the_whole_image_letterboxed(h: int, w: int) -> None:
    r = tile_regions(h, w, (1.0,))
    assert len(r) == 1
    np.testing.assert_allclose(r.centers, [[w / 2, h / 2]])
    np.testing.assert_allclose(r.sizes, [max(h, w)])
    np.testing.assert_allclose(r.rotations, [0.0])


def test_level_two_tiles_cover_the_image_with_half_tile_overlap() -> None:
    h, w = 480, 640
    r = tile_regions(h, w, (1.0, 2.0))
    assert len(r) > 1
    tiles = r[np.arange(1, len(r))]
    np.testing.assert_allclose(tiles.sizes, 320.0)
    np.testing.assert_allclose(tiles.rotations, 0.0)
    xs, ys = np.unique(tiles.centers[:, 0]), np.unique(tiles.centers[:, 1])
    assert len(tiles) == len(xs) * len(ys)  # a full grid
    # neighbours are half a tile apart, and tiles stay inside the image
    np.testing.assert_allclose(np.diff(xs), 160.0)
    np.testing.assert_allclose(np.diff(ys), 160.0)
    b = tiles.boxes()
    assert (b[:, :2] >= 0).all()
    assert (b[:, 2] <= w).all()
    assert (b[:, 3] <= h).all()
    # every pixel is covered
    covered = np.zeros((h, w), dtype=bool)
    for x0, y0, x1, y1 in np.rint(b).astype(int):
        covered[y0:y1, x0:x1] = True
    assert covered.all()


def test_three_levels_tile_sizes() -> None:
    r = tile_regions(400, 600, (1.0, 2.0, 3.0))
    sizes = np.unique(np.round(r.sizes, 6))
    np.testing.assert_allclose(sorted(sizes), [200.0, 300.0, 600.0])
    assert (np.round(r.sizes, 6) == 200.0).sum() >= 6


# --- the real model ------------------------------------------------------------------------------


def _fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def _image(data_dir: Path, fx: dict) -> np.ndarray:
    image = posekit.read_image(data_dir / fx["image"])
    return np.ascontiguousarray(np.rot90(image, fx["rot90"]))


@pytest.fixture(scope="module")
def whole_image_detector() -> BlazePoseDetector:
    return BlazePoseDetector(DetectorParams(zoom_levels=(1.0,), threshold=0.5), progress=False)


@pytest.fixture(scope="module")
def detector() -> BlazePoseDetector:
    return BlazePoseDetector(progress=False)


@pytest.mark.network
@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.json")))
def test_detection_matches_mediapipe(whole_image_detector: BlazePoseDetector, data_dir: Path, name: str) -> None:
    fx = _fixture(name)
    image = _image(data_dir, fx)
    det = whole_image_detector(image)
    assert isinstance(det, Detections)
    assert len(det) >= 1
    assert det.keypoints is not None
    best = int(np.argmax(det.scores))
    expected = np.asarray(fx["detection"]["keypoints_px"], dtype=np.float64)
    np.testing.assert_allclose(det.keypoints[best], expected, atol=3.0)
    assert abs(float(det.scores[best]) - fx["detection"]["score"]) < 0.02


@pytest.mark.network
def test_detector_is_a_detector(detector: BlazePoseDetector) -> None:
    assert isinstance(detector, Detector)
    empty = detector(np.full((240, 320, 3), 128, np.uint8))
    assert len(empty) == 0
    assert empty.boxes.shape == (0, 4)


@pytest.mark.network
def test_finds_several_people_in_a_real_image(detector: BlazePoseDetector, dev_set: CocoSet) -> None:
    file_name = "000000163746.jpg"
    gt = dev_set.load()
    image_id = next(im["id"] for im in gt["images"] if im["file_name"] == file_name)
    gt_boxes = np.array(
        [[x, y, x + w, y + h] for a in gt["annotations"] if a["image_id"] == image_id and a["num_keypoints"] > 0
         for x, y, w, h in [a["bbox"]]]
    )  # fmt: skip
    assert len(gt_boxes) == 4
    image = posekit.read_image(dev_set.images / file_name)
    det = detector(image)
    assert len(det) >= 3
    assert det.keypoints is not None
    assert det.keypoints.shape == (len(det), 4, 2)
    assert (det.scores >= detector.params.threshold).all()
    assert (np.diff(det.scores) <= 0).all(), "best first"
    rois = BlazePoseLandmarks(progress=False).rois_from_detections(det)
    roi_boxes = rois.boxes()
    # a ROI "is on" a person when its centre (the hip centre) is inside the person's box and the
    # ROI covers at least 80% of that box; count people with a ROI of their own
    matched: set[int] = set()
    for g in gt_boxes:
        lt = np.maximum(g[:2], roi_boxes[:, :2])
        rb = np.minimum(g[2:], roi_boxes[:, 2:])
        cover = np.prod(np.clip(rb - lt, 0, None), axis=1) / np.prod(g[2:] - g[:2])
        inside = ((rois.centers >= g[:2]) & (rois.centers <= g[2:])).all(axis=1)
        candidates = [i for i in np.argsort(-cover) if inside[i] and cover[i] >= 0.8 and i not in matched]
        if candidates:
            matched.add(int(candidates[0]))
    assert len(matched) >= 3, f"only {len(matched)} of 4 people have a ROI"
