"""End to end: the real MobileNet-thin network on real COCO images with several people."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

import posekit
from posekit.models.openpose import network_input_size
from posekit.pipeline import BottomUp

if TYPE_CHECKING:
    from tests.conftest import CocoSet

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def model() -> BottomUp:
    return posekit.load("openpose-mobilenet-thin", progress=False)


def _annotations(dev_set: CocoSet, file_name: str) -> list[dict]:
    gt = json.loads((dev_set.annotations).read_text())
    image_id = next(im["id"] for im in gt["images"] if im["file_name"] == file_name)
    return [a for a in gt["annotations"] if a["image_id"] == image_id and a["num_keypoints"] > 0]


@pytest.mark.parametrize(("file_name", "people"), [("000000197388.jpg", 5), ("000000040083.jpg", 2)])
def test_finds_every_person_near_the_annotations(
    model: BottomUp, dev_set: CocoSet, file_name: str, people: int
) -> None:
    image = posekit.read_image(dev_set.images / file_name)
    poses = model(image).with_schema("coco17")
    assert len(poses) == people
    used: set[int] = set()
    for ann in _annotations(dev_set, file_name):
        gt = np.asarray(ann["keypoints"], dtype=np.float32).reshape(17, 3)
        labelled = gt[:, 2] > 0
        both = labelled[None] & poses.visible
        err = np.where(both, np.linalg.norm(poses.keypoints - gt[None, :, :2], axis=2), np.nan)
        median = np.nanmedian(np.where(both.any(1, keepdims=True), err, np.inf), axis=1)
        best = int(np.argmin(median))
        assert best not in used, "two annotated people matched the same prediction"
        used.add(best)
        assert median[best] < 8.0, f"median keypoint error {median[best]:.1f} px"
        assert both[best].sum() >= 0.8 * labelled.sum(), "most labelled keypoints are found"


def test_image_without_people_gives_empty_poses(model: BottomUp) -> None:
    image = np.full((240, 320, 3), 127, dtype=np.uint8)
    poses = model(image)
    assert len(poses) == 0
    assert poses.keypoints.shape == (0, 18, 2)


def test_bad_image_arrays_are_rejected_with_the_expected_shape(model: BottomUp) -> None:
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        model(np.zeros((100, 100), dtype=np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        model(np.zeros((100, 100, 3), dtype=np.float32))


def test_timings_are_recorded(model: BottomUp) -> None:
    model(np.zeros((64, 64, 3), dtype=np.uint8))
    assert set(model.last_timings.stages) == {"network", "decode"}
    assert all(v >= 0 for v in model.last_timings.stages.values())


def test_network_input_size_keeps_aspect_and_multiples_of_8() -> None:
    assert network_input_size((480, 640), 432) == (576, 432)
    assert network_input_size((480, 640), (432, 368)) == (432, 368)
    w, h = network_input_size((333, 1000), 368)
    assert h == 368
    assert w % 8 == 0
    assert abs(w / h - 1000 / 333) < 0.05
    with pytest.raises(ValueError, match="multiple of 8"):
        network_input_size((480, 640), 430)
    with pytest.raises(ValueError, match="multiples of 8"):
        network_input_size((480, 640), (430, 368))


def test_multi_scale_averages_maps_on_the_largest_grid(dev_set: CocoSet) -> None:
    model = posekit.load("openpose-mobilenet-thin", progress=False, input_size=368, scales=(0.75, 1.0))
    image = posekit.read_image(dev_set.images / "000000197388.jpg")
    heat, pafs, size = model.maps(image)
    assert size[1] == 368
    assert heat.shape[1:] == (368 // 8, size[0] // 8)
    assert pafs.shape == (19, *heat.shape[1:], 2)
    assert len(model(image)) == 5
    with pytest.raises(ValueError, match="scales"):
        posekit.load("openpose-mobilenet-thin", progress=False, scales=(0.0,))


def test_video_top_down_follows_people_and_detects_every_n_frames(data_dir: Path) -> None:
    from posekit.eval import pckh
    from posekit.pipeline import VideoTopDown

    gt_path = data_dir / "posetrack-bonn" / "060470979_posetrack_style.json"
    gt = json.loads(gt_path.read_text())
    images = gt["images"][:8]
    model = posekit.load("blazepose", progress=False)
    calls: list[int] = []
    detector = model.detector

    def counting_detector(image: np.ndarray):  # the real detector, counted
        calls.append(1)
        return detector(image)

    model.detector = counting_detector
    video = VideoTopDown(model, detect_every=4)
    preds = {im["id"]: video(posekit.read_image(data_dir / "posetrack-bonn" / im["file_name"])) for im in images}
    assert len(calls) == 2  # frames 0 and 4 (people were tracked in between)
    assert set(video.last_timings.stages) >= {"detect", "network", "nms"}
    sub = {**gt, "images": images, "annotations": [a for a in gt["annotations"] if a["image_id"] in preds]}
    assert pckh(sub, preds).pckh > 0.6  # per-frame detection scores about the same (0.76 on all 41 frames)
    with pytest.raises(ValueError, match="detect_every"):
        VideoTopDown(model, detect_every=0)
