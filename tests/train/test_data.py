"""Training datasets and sampler: seeded samples, rank splits, and targets that decode back to the people."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

if os.environ.get("CI", "").strip().lower() == "true":
    import torch
else:
    torch = pytest.importorskip("torch")

from posekit.codecs.udp import UDPHeatmap
from posekit.models.openpose import MOBILENET_THIN, OpenPoseNet
from posekit.pipeline import BottomUp
from posekit.schemas import COCO_17, OPENPOSE_18, convert_keypoints
from posekit.train.data import BottomUpTrainSet, EpochSampler, TopDownTrainSet, openpose_targets
from posekit.train.datasets import CocoKeypoints


@pytest.fixture(scope="module")
def mini(data_dir: Path) -> CocoKeypoints:
    root = data_dir / "coco-train2017-mini"
    return CocoKeypoints(root / "person_keypoints.json", root / "images")


def test_sampler_splits_each_global_batch_over_ranks():
    single = EpochSampler(50, 8, seed=3)
    ranks = [EpochSampler(50, 8, seed=3, rank=r, world=2) for r in range(2)]
    assert single.steps_per_epoch == 6
    for step in (0, 5, 6, 13):
        whole = single.global_batch(step)
        parts = [next(r.batches(step, step + 1)) for r in ranks]
        assert sorted(parts[0] + parts[1]) == sorted(whole)
        assert len(parts[0]) == len(parts[1]) == 4
        assert {e for _, e in whole} == {step // 6}
    # each epoch visits distinct samples in a seeded order; epochs differ
    e0 = [i for s in range(6) for i, _ in single.global_batch(s)]
    e1 = [i for s in range(6, 12) for i, _ in single.global_batch(s)]
    assert len(set(e0)) == 48
    assert e0 != e1
    assert e0 == [i for s in range(6) for i, _ in EpochSampler(50, 8, seed=3).global_batch(s)]
    # starting anywhere gives the same batches as running through
    assert list(single.batches(4, 9)) == list(single.batches(0, 9))[4:]
    # fewer samples than a batch: keys wrap around, batches stay full
    assert len(EpochSampler(3, 8).global_batch(0)) == 8
    with pytest.raises(ValueError, match="split evenly"):
        EpochSampler(10, 5, world=2)


def test_top_down_samples_are_a_function_of_seed_epoch_and_index(mini: CocoKeypoints):
    codec = UDPHeatmap((96, 128), (24, 32), sigma=2.0)
    ds = TopDownTrainSet(mini, codec, seed=5)
    a, b, c = ds[(3, 0)], TopDownTrainSet(mini, codec, seed=5)[(3, 0)], ds[(3, 1)]
    assert a["image"].shape == (3, 128, 96)
    assert a["heatmaps"].shape == (17, 32, 24)
    assert a["weights"].shape == (17,)
    for k in a:
        assert torch.equal(a[k], b[k])
    assert not torch.equal(a["image"], c["image"])  # another epoch, another augmentation


def test_plain_top_down_targets_decode_to_the_cropped_keypoints(mini: CocoKeypoints):
    codec = UDPHeatmap((192, 256), (48, 64), sigma=2.0)
    ds = TopDownTrainSet(mini, codec, augment=False)
    from posekit.train.augment import random_top_down

    for i in (0, 7, 20):
        item = ds[i]
        s = ds.samples[i]
        ref = random_top_down(s, np.random.default_rng(0), schema="coco17", out_size=(192, 256), scale_range=(1, 1),
                              rotation_prob=0, flip_prob=0, half_body_prob=0, jitter=None)  # fmt: skip
        xy, _ = codec.decode(item["heatmaps"].numpy()[None])
        w = item["weights"].numpy() > 0
        assert w.sum() > 0
        np.testing.assert_allclose(xy[0][w], ref.keypoints[w, :2], atol=0.5)


class _NoRuntime:
    name = "none"

    def run(self, inputs: np.ndarray) -> list[np.ndarray]:
        raise AssertionError("not used")


def test_openpose_targets_parse_back_into_the_people():
    """Targets in the network's channel layout go through posekit's own BottomUp decoding unchanged."""
    people = np.zeros((2, 17, 3))
    rng = np.random.default_rng(0)
    for n, (x0, y0) in enumerate(((60.0, 40.0), (220.0, 60.0))):
        people[n, :, 0] = x0 + rng.uniform(0, 70, 17)
        people[n, :, 1] = y0 + np.linspace(0, 220, 17)
        people[n, :, 2] = 2
    people[1, 3:5, 2] = 0  # unlabelled ears
    size = (320, 320)
    target, mask = openpose_targets(people, np.zeros((320, 320), bool), size)
    assert target.shape == (57, 40, 40)
    assert mask.shape == (1, 40, 40)
    assert mask.all()
    np.testing.assert_allclose(target[18], 1 - target[:18].max(0))  # background channel
    net = OpenPoseNet(MOBILENET_THIN, runtime=_NoRuntime())
    heat, pafs = net.split_output(target[None])
    poses = BottomUp(net).decode(heat, pafs, size, (320, 320))
    want, vis = convert_keypoints(people[..., :2], people[..., 2], COCO_17, OPENPOSE_18)
    assert len(poses) == 2
    order = np.argsort(np.nanmean(poses.keypoints[:, :, 0], axis=1))
    got = poses.keypoints[order]
    labelled = vis > 0
    assert np.array_equal(poses.keypoint_scores[order] > 0, labelled)
    assert np.abs(got[labelled] - want[labelled]).max() < 4.5  # within a stride-8 cell


def test_openpose_mask_covers_ignored_regions():
    ignore = np.zeros((64, 64), bool)
    ignore[:, :32] = True
    _, mask = openpose_targets(np.zeros((0, 17, 3)), ignore, (64, 64))
    assert mask[0, :, :4].sum() == 0
    assert mask[0, :, 4:].all()


def test_bottom_up_plain_samples(mini: CocoKeypoints):
    ds = BottomUpTrainSet(mini, input_size=(368, 368), augment=False)
    item = ds[0]
    assert item["image"].shape == (3, 368, 368)
    assert item["target"].shape == (57, 46, 46)
    assert item["mask"].shape == (1, 46, 46)
    assert item["target"][:18].max() > 0.9  # someone's part peak
    with pytest.raises(ValueError, match="multiples of the stride"):
        BottomUpTrainSet(mini, input_size=(370, 368))


def test_fastpose_targets_use_alphaposes_stride_frame(mini: CocoKeypoints):
    from posekit.codecs.integral import decode as integral_decode
    from posekit.codecs.udp import decode as udp_decode
    from posekit.train.data import IntegralTargets, StrideHeatmapTargets

    kps = np.array([[13.0, 21.0, 2], [60.0, 50.0, 1], [40.0, 200.0, 2], [5.0, 7.0, 0]])  # the third is off the map
    heat = StrideHeatmapTargets((96, 128), stride=4, sigma=2.0)(kps)
    assert heat["heatmaps"].shape == (4, 32, 24)
    np.testing.assert_array_equal(heat["weights"], [1, 1, 0, 0])
    # the estimator's heatmap decoding: argmax refinement on the map's own grid, then x stride
    xy, _ = udp_decode(heat["heatmaps"][None, :2], (24, 32), blur_kernel_size=11)
    np.testing.assert_allclose(xy[0] * 4, kps[:2, :2], atol=0.3)
    reg = IntegralTargets((96, 128), stride=4)(kps)
    np.testing.assert_allclose(reg["xy"][:2], kps[:2, :2] / 4)
    np.testing.assert_array_equal(reg["weights"], [1, 1, 0, 0])
    # a peaked map decodes (soft-argmax) to the regression target
    logits = np.full((1, 1, 32, 24), -30.0)
    logits[0, 0, 5, 2] = 30.0
    assert np.allclose(integral_decode(logits)[0][0, 0], [2.0, 5.0], atol=1e-3)
    ds = TopDownTrainSet(mini, IntegralTargets((96, 128)), augment=False)
    item = ds[0]
    assert set(item) == {"image", "xy", "weights"}
    assert item["xy"].shape == (17, 2)


def test_openpose_targets_drawn_finer_then_area_averaged():
    people = np.zeros((1, 17, 3))
    people[0, :, 0] = np.linspace(60, 260, 17)
    people[0, :, 1] = np.linspace(40, 300, 17)
    people[0, :, 2] = 2
    coarse, _ = openpose_targets(people, np.zeros((320, 320), bool), (320, 320))
    fine, mask = openpose_targets(people, np.zeros((320, 320), bool), (320, 320), render_scale=4)
    assert fine.shape == coarse.shape == (57, 40, 40)
    assert mask.shape == (1, 40, 40)
    # same parts in the same cells; area averaging lowers and widens the peaks and PAF bands
    np.testing.assert_array_equal(fine[:18].reshape(18, -1).argmax(1), coarse[:18].reshape(18, -1).argmax(1))
    assert fine[:18].max() < coarse[:18].max() <= 1.0
    assert (np.abs(fine[19:]) > 0.05).sum() > (np.abs(coarse[19:]) > 0.05).sum()
    with pytest.raises(ValueError, match="render_scale"):
        openpose_targets(people, np.zeros((320, 320), bool), (320, 320), render_scale=0)
