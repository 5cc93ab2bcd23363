"""BlazePose landmarks and the multi-person top-down pipeline, against MediaPipe and COCO."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

import posekit
from posekit.detectors.blazepose import BlazePoseDetector, DetectorParams
from posekit.models.blazepose import BlazePoseLandmarks, LandmarkParams, refine_from_heatmaps, rois_from_alignment
from posekit.pipeline import TopDown
from posekit.poses import Poses
from posekit.schemas import BLAZEPOSE_33, COCO_17
from posekit.topdown.crops import Rois, to_crop

if TYPE_CHECKING:
    from tests.conftest import CocoSet

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mediapipe"
FIXTURE_NAMES = sorted(p.name for p in FIXTURES.glob("*.json"))


def _fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def _image(data_dir: Path, fx: dict) -> np.ndarray:
    """The fixture's image decoded as MediaPipe saw it."""
    return np.ascontiguousarray(np.rot90(posekit.read_image(data_dir / fx["image"]), fx["rot90"]))


def _landmarks(fx: dict) -> np.ndarray:
    return np.asarray(fx["landmarks"], dtype=np.float64)  # presence is recorded as null -> NaN


def _median_error(poses: Poses, fx: dict) -> np.ndarray:
    """Per person, the median distance to MediaPipe's landmarks with visibility > 0.5."""
    lm = _landmarks(fx)
    vis = lm[:, 3] > 0.5
    assert vis.sum() >= 10
    return np.median(np.linalg.norm(poses.keypoints[:, vis] - lm[None, vis, :2], axis=2), axis=1)


def _people(dev_set: CocoSet, file_name: str) -> list[dict]:
    gt = dev_set.load()
    image_id = next(im["id"] for im in gt["images"] if im["file_name"] == file_name)
    return [a for a in gt["annotations"] if a["image_id"] == image_id and a["num_keypoints"] > 0]


def _match_people(poses: Poses, people: list[dict], limit: float) -> list[tuple[int, float]]:
    """For each annotated person, the prediction with the lowest median COCO-17 error over the
    keypoints both have; asserts that no prediction is used twice and every match is within
    ``limit`` px. Returns (prediction index, median error) per person."""
    p17 = poses.with_schema("coco17")
    out: list[tuple[int, float]] = []
    for ann in people:
        gt = np.asarray(ann["keypoints"], dtype=np.float64).reshape(17, 3)
        both = (gt[:, 2] > 0)[None] & p17.visible
        err = np.where(both, np.linalg.norm(p17.keypoints - gt[None, :, :2], axis=2), np.nan)
        median = np.array([np.nanmedian(e) if np.isfinite(e).any() else np.inf for e in err])
        best = int(np.argmin(median))
        assert best not in [i for i, _ in out], "two annotated people matched the same prediction"
        assert median[best] < limit, f"person at {ann['bbox']}: median error {median[best]:.1f} px"
        assert both[best].sum() >= 0.8 * (gt[:, 2] > 0).sum()
        out.append((best, float(median[best])))
    return out


@pytest.fixture(scope="module")
def model() -> TopDown:
    return posekit.load("blazepose", progress=False)


@pytest.fixture(scope="module")
def mediapipe_like() -> TopDown:
    """MediaPipe's static-image path: the whole image letterboxed, one landmark pass."""
    return TopDown(
        BlazePoseDetector(DetectorParams(zoom_levels=(1.0,), threshold=0.5), progress=False),
        BlazePoseLandmarks(LandmarkParams(passes=1), progress=False),
    )


@pytest.fixture(scope="module")
def one_pass() -> BlazePoseLandmarks:
    return BlazePoseLandmarks(LandmarkParams(passes=1), progress=False)


# --- parity with MediaPipe -----------------------------------------------------------------------


@pytest.mark.network
@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_roi_gives_mediapipe_landmarks(one_pass: BlazePoseLandmarks, data_dir: Path, name: str) -> None:
    fx = _fixture(name)
    roi = fx["roi"]
    rois = Rois([roi["center_px"]], [roi["size_px"][0]], [roi["rotation"]])
    poses = one_pass(_image(data_dir, fx), rois)
    assert len(poses) == 1
    assert poses.schema == BLAZEPOSE_33
    assert _median_error(poses, fx)[0] < 2.0
    lm = _landmarks(fx)
    # visibility, z (MediaPipe's z is normalised by the image width) and world landmarks too
    np.testing.assert_allclose(poses.keypoint_scores[0], lm[:, 3], atol=0.05)
    np.testing.assert_allclose(poses.extras["z"][0] / fx["width"], lm[:, 2], atol=0.03)
    np.testing.assert_allclose(poses.extras["world"][0], np.asarray(fx["world_landmarks"]), atol=0.03)


@pytest.mark.network
@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_mediapipe_configuration_matches_mediapipe(mediapipe_like: TopDown, data_dir: Path, name: str) -> None:
    fx = _fixture(name)
    poses = mediapipe_like(_image(data_dir, fx))
    assert len(poses) >= 1
    assert _median_error(poses, fx).min() < 1.0  # measured 0.08-0.30 px


@pytest.mark.network
@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_default_pipeline_finds_mediapipe_person(model: TopDown, data_dir: Path, name: str) -> None:
    fx = _fixture(name)
    poses = model(_image(data_dir, fx))
    assert len(poses) >= 1
    assert _median_error(poses, fx).min() < 8.0  # measured 1.4-5.8 px: tiles and a second pass move it


@pytest.mark.network
def test_loading_with_mediapipe_settings_matches_mediapipe(data_dir: Path) -> None:
    """The preset's keywords give MediaPipe's single-view, one-pass behaviour (the default trades
    parity for recall: zoomed tiles merged by weighted NMS and a second, re-aligned pass)."""
    model = posekit.load("blazepose", zoom_levels=(1.0,), passes=1, threshold=0.5, progress=False)
    worst = 0.0
    for name in FIXTURE_NAMES:
        fx = _fixture(name)
        worst = max(worst, float(_median_error(model(_image(data_dir, fx)), fx).min()))
    assert worst < 2.0, f"worst median error {worst:.2f} px"


# --- building blocks -----------------------------------------------------------------------------


def _flat_heatmaps(k: int = 3, value: float = -30.0) -> np.ndarray:
    return np.full((1, 64, 64, k), value, dtype=np.float32)


def test_refine_moves_points_to_the_weighted_heatmap_mean() -> None:
    xy = np.array([[[20.5 / 64, 30.5 / 64], [40.2 / 64, 10.7 / 64], [5.5 / 64, 5.5 / 64]]], np.float32)
    hm = _flat_heatmaps()
    hm[0, 31, 22, 0] = 30.0  # one confident cell: the point moves onto it
    hm[0, 10, 40, 1] = 30.0  # two cells, confidences 1 and 0.5 -> two thirds of the way
    hm[0, 13, 40, 1] = 0.0
    out = refine_from_heatmaps(xy, hm)
    assert out.shape == xy.shape
    np.testing.assert_allclose(out[0, 0], [22 / 64, 31 / 64], atol=1e-6)
    np.testing.assert_allclose(out[0, 1], [40 / 64, 11 / 64], atol=1e-5)
    np.testing.assert_allclose(out[0, 2], xy[0, 2])  # nothing confident near it
    np.testing.assert_allclose(xy[0, 0], [20.5 / 64, 30.5 / 64])  # input untouched


def test_refine_only_looks_inside_the_window() -> None:
    xy = np.array([[[20.5 / 64, 30.5 / 64]]], np.float32)
    hm = _flat_heatmaps(1)
    hm[0, 30, 24, 0] = 30.0  # 4 cells away: outside the 7x7 window
    np.testing.assert_allclose(refine_from_heatmaps(xy, hm), xy)
    np.testing.assert_allclose(refine_from_heatmaps(xy, hm, kernel=9), [[[24 / 64, 30 / 64]]], atol=1e-6)


def test_refine_below_min_confidence_leaves_points_unchanged() -> None:
    xy = np.array([[[20.5 / 64, 30.5 / 64]]], np.float32)
    hm = _flat_heatmaps(1)
    hm[0, 31, 22, 0] = -1.0  # confidence 0.27
    np.testing.assert_allclose(refine_from_heatmaps(xy, hm), xy)
    moved = refine_from_heatmaps(xy, hm, min_confidence=0.2)
    np.testing.assert_allclose(moved, [[[22 / 64, 31 / 64]]], atol=1e-4)


def test_refine_leaves_points_outside_the_heatmap_unchanged() -> None:
    xy = np.array([[[-0.1, 0.5], [0.5, 1.2]]], np.float32)
    hm = _flat_heatmaps(2, value=30.0)
    np.testing.assert_allclose(refine_from_heatmaps(xy, hm), xy)


def test_alignment_straight_up_gives_rotation_zero() -> None:
    rois = rois_from_alignment(np.array([[[100.0, 200.0], [100.0, 120.0]]]))
    np.testing.assert_allclose(rois.centers, [[100.0, 200.0]])
    np.testing.assert_allclose(rois.sizes, [2 * 80 * 1.25])
    np.testing.assert_allclose(rois.rotations, [0.0], atol=1e-12)
    np.testing.assert_allclose(rois_from_alignment(np.array([[[0.0, 0.0], [0.0, -10.0]]]), scale=1.0).sizes, [20.0])


@pytest.mark.parametrize(
    ("p1", "rotation"),
    [((180.0, 200.0), np.pi / 2), ((20.0, 200.0), -np.pi / 2), ((100.0, 280.0), np.pi), ((180.0, 120.0), np.pi / 4)],
)
def test_alignment_rotation_sign(p1: tuple[float, float], rotation: float) -> None:
    k = np.array([[[100.0, 200.0], p1]])
    rois = rois_from_alignment(k)
    assert abs(np.angle(np.exp(1j * (rois.rotations[0] - rotation)))) < 1e-9
    # in the crop, point 1 is straight above the centre at 1 / (2 x 1.25) of the crop side
    np.testing.assert_allclose(to_crop(k, rois, 256)[0, 1], [128.0, 128.0 - 256 / 2.5], atol=1e-9)


def test_alignment_puts_point_one_straight_up_for_any_direction() -> None:
    rng = np.random.default_rng(3)
    k = rng.uniform(0, 600, (50, 2, 2))
    rois = rois_from_alignment(k, scale=1.5)
    assert ((rois.rotations >= -np.pi) & (rois.rotations <= np.pi)).all()
    np.testing.assert_allclose(to_crop(k, rois, 100)[:, 0], 50.0, atol=1e-9)
    np.testing.assert_allclose(to_crop(k, rois, 100)[:, 1], np.tile([50.0, 50.0 - 100 / 3], (50, 1)), atol=1e-9)


@pytest.mark.parametrize("name", ["000000000785.json", "000000000785_rot90_1.json", "000000343803.json"])
def test_alignment_reproduces_mediapipe_rois(name: str) -> None:
    fx = _fixture(name)
    rois = rois_from_alignment(np.asarray(fx["detection"]["keypoints_px"])[None])
    np.testing.assert_allclose(rois.centers[0], fx["roi"]["center_px"], atol=0.01)
    np.testing.assert_allclose(rois.sizes[0], fx["roi"]["size_px"][0], rtol=0.01)
    assert abs(rois.rotations[0] - fx["roi"]["rotation"]) < 0.01
    if name == "000000000785.json":
        assert rois.rotations[0] == pytest.approx(-0.37, abs=0.01)
        assert rois.sizes[0] == pytest.approx(442.3, rel=0.01)


# --- multi-person, end to end --------------------------------------------------------------------


@pytest.mark.network
@pytest.mark.parametrize("file_name", ["000000163746.jpg", "000000196141.jpg"])
def test_finds_several_people_near_the_annotations(model: TopDown, dev_set: CocoSet, file_name: str) -> None:
    people = _people(dev_set, file_name)
    assert len(people) == 4
    poses = model(posekit.read_image(dev_set.images / file_name))
    assert len(poses) >= 3
    assert poses.schema == BLAZEPOSE_33
    assert (np.diff(poses.scores) <= 0).all(), "best first"
    matches = _match_people(poses, people, limit=15.0)
    assert len(matches) == 4


@pytest.mark.network
@pytest.mark.parametrize("file_name", ["000000163746.jpg", "000000511599.jpg"])
def test_ground_truth_boxes_give_one_pose_per_person(model: TopDown, dev_set: CocoSet, file_name: str) -> None:
    people = _people(dev_set, file_name)
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in people)])
    poses = model(posekit.read_image(dev_set.images / file_name), boxes=boxes)
    low_presence = int((poses.extras["pose_flag"] < 0.5).sum())
    assert low_presence == 0  # such poses are dropped, never returned
    assert len(poses) == len(boxes)
    _match_people(poses, people, limit=15.0)


@pytest.mark.network
def test_ground_truth_boxes_are_never_merged(model: TopDown, dev_set: CocoSet) -> None:
    file_name = "000000197388.jpg"
    people = _people(dev_set, file_name)
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in people)])
    poses = model(posekit.read_image(dev_set.images / file_name), boxes=boxes)
    assert len(poses) == len(boxes) == 5


@pytest.mark.network
def test_uniform_image_has_no_people(model: TopDown) -> None:
    poses = model(np.full((360, 480, 3), 128, dtype=np.uint8))
    assert isinstance(poses, Poses)
    assert len(poses) == 0
    assert poses.schema.name == "blazepose33"
    assert poses.keypoints.shape == (0, 33, 2)


@pytest.mark.network
def test_no_boxes_means_no_people(model: TopDown, dev_set: CocoSet) -> None:
    poses = model(posekit.read_image(dev_set.images / "000000163746.jpg"), boxes=np.zeros((0, 4)))
    assert len(poses) == 0
    assert poses.schema == BLAZEPOSE_33


# --- extras --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crowd(model: TopDown, dev_set: CocoSet) -> Poses:
    poses = model(posekit.read_image(dev_set.images / "000000163746.jpg"))
    assert len(poses) >= 3
    return poses


@pytest.mark.network
def test_extras_shapes_and_values(crowd: Poses) -> None:
    n = len(crowd)
    ex = crowd.extras
    assert {"world", "z", "presence", "pose_flag", "alignment"} <= set(ex)
    assert ex["world"].shape == (n, 33, 3)
    assert ex["z"].shape == (n, 33)
    assert ex["presence"].shape == (n, 33)
    assert ex["pose_flag"].shape == (n,)
    assert ex["alignment"].shape == (n, 2, 2)
    assert ((ex["presence"] >= 0) & (ex["presence"] <= 1)).all()
    assert (ex["pose_flag"] >= 0.5).all()
    assert ((crowd.keypoint_scores >= 0) & (crowd.keypoint_scores <= 1)).all()
    assert crowd.boxes is not None
    assert crowd.boxes.shape == (n, 4)
    # world landmarks are metres around the hip centre
    hips = ex["world"][:, [23, 24]].mean(axis=1)
    assert (np.linalg.norm(hips, axis=1) < 0.1).all()
    assert (np.abs(ex["world"]) < 2.0).all()
    # alignment point 0 is the hip centre (in image pixels)
    hip_px = crowd.keypoints[:, [23, 24]].mean(axis=1)
    size = crowd.boxes[:, 2] - crowd.boxes[:, 0]
    assert (np.linalg.norm(ex["alignment"][:, 0] - hip_px, axis=1) < 0.1 * size).all()


@pytest.mark.network
def test_extras_follow_indexing(crowd: Poses) -> None:
    order = np.array([2, 0])
    sub = crowd[order]
    for name, value in crowd.extras.items():
        np.testing.assert_array_equal(sub.extras[name], value[order])
    np.testing.assert_array_equal(crowd[1].extras["world"], crowd.extras["world"][1:2])
    masked = crowd[crowd.scores >= crowd.scores[1]]
    np.testing.assert_array_equal(masked.extras["pose_flag"], crowd.extras["pose_flag"][:2])


@pytest.mark.network
def test_extras_follow_the_schema_by_name(crowd: Poses) -> None:
    coco = crowd.with_schema("coco17")
    n = len(crowd)
    assert coco.extras["world"].shape == (n, 17, 3)
    assert coco.extras["z"].shape == (n, 17)
    assert coco.extras["presence"].shape == (n, 17)
    assert coco.extras["pose_flag"].shape == (n,)
    assert coco.extras["alignment"].shape == (n, 2, 2)
    np.testing.assert_array_equal(coco.extras["pose_flag"], crowd.extras["pose_flag"])
    for j, name in enumerate(COCO_17.keypoints):
        i = BLAZEPOSE_33.keypoints.index(name)
        np.testing.assert_array_equal(coco.extras["world"][:, j], crowd.extras["world"][:, i])
        np.testing.assert_array_equal(coco.extras["z"][:, j], crowd.extras["z"][:, i])
        np.testing.assert_array_equal(coco.keypoints[:, j], crowd.keypoints[:, i])
    assert BLAZEPOSE_33.keypoints.index("left_wrist") == 15
    assert BLAZEPOSE_33.keypoints.index("right_ankle") == 28
