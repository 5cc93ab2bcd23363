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


# --- flip test ----------------------------------------------------------------------------------------


def _mirror_by_names(heat: np.ndarray, pafs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What a perfectly mirror-consistent network would output for the mirrored image, written from
    the keypoint names (independently of the schema's flip pairs): left and right swapped, maps
    mirrored along x, PAF x components negated, limbs pointing the other way negated."""
    from posekit.schemas import OPENPOSE_18

    names = list(OPENPOSE_18.keypoints)

    def mirror(i: int) -> int:
        n = names[i]
        for a, b in (("left_", "right_"), ("right_", "left_")):
            if n.startswith(a):
                return names.index(b + n[len(a) :])
        return i

    heat_m = np.empty_like(heat)
    for k in range(len(names)):
        heat_m[mirror(k)] = heat[k][:, ::-1]
    skeleton = [tuple(limb) for limb in OPENPOSE_18.skeleton]
    pafs_m = np.empty_like(pafs)
    for limb, (a, b) in enumerate(skeleton):
        field = pafs[limb][:, ::-1] * np.array([-1.0, 1.0], dtype=np.float32)
        ma, mb = mirror(a), mirror(b)
        if (ma, mb) in skeleton:
            pafs_m[skeleton.index((ma, mb))] = field
        else:
            pafs_m[skeleton.index((mb, ma))] = -field
    return heat_m, pafs_m


class _MirrorConsistentNet:
    """A stand-in network: fixed random maps for the image, their exact mirror for the mirrored image."""

    def __init__(self, image: np.ndarray, size: tuple[int, int]) -> None:
        from posekit.models.openpose import MOBILENET_THIN

        self.spec = MOBILENET_THIN
        self.image = image
        w, h = size[0] // 8, size[1] // 8
        rng = np.random.default_rng(0)
        self.heat = rng.random((18, h, w), dtype=np.float32)
        self.pafs = rng.uniform(-1, 1, (19, h, w, 2)).astype(np.float32)
        self.calls: list[str] = []

    def __call__(self, image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        if np.array_equal(image, self.image):
            self.calls.append("direct")
            return self.heat.copy(), self.pafs.copy()
        assert np.array_equal(image, self.image[:, ::-1]), "only the image or its mirror is expected"
        self.calls.append("mirrored")
        return _mirror_by_names(self.heat, self.pafs)


def test_flip_test_undoes_the_mirror_exactly() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    net = _MirrorConsistentNet(image, (128, 96))
    plain = BottomUp(net, input_size=(128, 96))  # type: ignore[arg-type]
    flipped = BottomUp(net, input_size=(128, 96), flip_test=True)  # type: ignore[arg-type]
    heat, pafs, size = flipped.maps(image)
    assert net.calls == ["direct", "mirrored"]
    assert size == (128, 96)
    np.testing.assert_array_equal(heat, net.heat)  # (a + a) / 2 == a exactly in float32
    np.testing.assert_array_equal(pafs, net.pafs)
    h0, p0, _ = plain.maps(image)
    np.testing.assert_array_equal(h0, heat)
    np.testing.assert_array_equal(p0, pafs)


def test_flip_test_averages_a_biased_network_back_to_the_centre() -> None:
    """A network whose peaks sit one cell right of the truth (in whatever image it sees) gives, flip
    tested, two equal peaks on either side of the truth: the average is symmetric about it. A PAF
    of the mirror's left arm comes back as the right arm's, its x component negated."""
    from posekit.pipeline import _mirror_limbs, mirror_maps
    from posekit.schemas import OPENPOSE_18

    h, w, true_x = 12, 16, 6
    heat = np.zeros((18, h, w), dtype=np.float32)
    heat[:, 5, true_x + 1] = 1.0  # the direct pass, biased right
    heat_mirror = np.zeros_like(heat)  # the mirror sees the truth at w - 1 - true_x, biased right too
    heat_mirror[:, 5, (w - 1 - true_x) + 1] = 1.0
    pafs_mirror = np.zeros((19, h, w, 2), dtype=np.float32)
    skeleton = list(OPENPOSE_18.skeleton)
    left_arm, right_arm = skeleton.index((1, 5)), skeleton.index((1, 2))  # neck -> left / right shoulder
    pafs_mirror[left_arm, 3, 2] = (0.8, 0.6)
    perm = OPENPOSE_18.flip_permutation()
    heat_back, pafs_back = mirror_maps(heat_mirror, pafs_mirror, perm, *_mirror_limbs(OPENPOSE_18.skeleton, perm))
    row = ((heat + heat_back) / 2)[0, 5]
    assert row[true_x - 1] == row[true_x + 1] == 0.5
    assert row.sum() == 1.0
    np.testing.assert_array_equal(pafs_back[right_arm, 3, w - 1 - 2], np.float32([-0.8, 0.6]))
    assert np.count_nonzero(pafs_back) == 2


def test_flip_test_is_an_option_of_the_preset() -> None:
    model = posekit.load("openpose-mobilenet-thin", progress=False, flip_test=True)
    assert model.flip_test
    assert not posekit.load("openpose-mobilenet-thin", progress=False).flip_test
