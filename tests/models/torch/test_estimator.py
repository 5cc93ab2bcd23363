"""TorchHeatmapEstimator and the ViTPose / FastPose presets.

No published checkpoint is available here, so networks are either small stand-in modules with a
known geometric answer (a heatmap peak at a chosen crop position, or a "detector" of the brightest
spot in the crop) or real ViTPose / FastPose networks with random weights, saved in the official
checkpoint layouts.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

if os.environ.get("CI") == "true":
    import torch  # CI installs torch: a missing torch must fail there, not skip
else:
    torch = pytest.importorskip("torch")

import torch.nn.functional as F
from torch import nn

import posekit
from posekit.codecs import udp
from posekit.detectors import Detections
from posekit.models.torch.convert_alphapose import CheckpointMismatchError
from posekit.models.torch.estimator import BoxCrops, TorchHeatmapEstimator
from posekit.models.torch.fastpose import FASTPOSE_RES50_COCO, FastPose
from posekit.models.torch.presets import CheckpointRequiredError
from posekit.models.torch.vitpose import ARCHS, VitPose, VitPoseConfig
from posekit.pipeline import TopDown
from posekit.schemas import COCO_17

W, H = 192, 256
K = COCO_17.num_keypoints


def _read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class _NoDetector:
    def __call__(self, image: np.ndarray) -> Detections:
        raise AssertionError("boxes were given; the detector must not run")


# -- crops -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("alignment", ["udp", "standard"])
def test_crop_uncrop_round_trip_is_exact(alignment: str) -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 500, (20, 2))
    wh = rng.uniform(5, 300, (20, 2))
    crops = BoxCrops.from_boxes(np.concatenate([xy, xy + wh], axis=1), input_size=(W, H))
    pts = rng.uniform(-100, 700, (20, 9, 2))
    back = crops.from_crop(crops.to_crop(pts, (W, H), alignment), (W, H), alignment)
    assert np.abs(back - pts).max() < 0.01
    # the matrices are the same map as to_crop
    m = crops.matrices((W, H), alignment)
    via_m = np.einsum("nij,nkj->nki", m[:, :, :2], pts) + m[:, None, :, 2]
    np.testing.assert_allclose(via_m, crops.to_crop(pts, (W, H), alignment), atol=1e-9)


def test_regions_keep_the_box_centre_pad_to_3_4_and_enlarge_by_1_25() -> None:
    boxes = np.array([[10, 20, 110, 60], [0, 0, 30, 200]], dtype=np.float32)  # wide, tall
    crops = BoxCrops.from_boxes(boxes, [0.9, 0.8], input_size=(W, H))
    np.testing.assert_allclose(crops.centers, [[60, 40], [15, 100]])
    np.testing.assert_allclose(crops.sizes, [[100 * 1.25, 100 * 4 / 3 * 1.25], [200 * 0.75 * 1.25, 200 * 1.25]])
    np.testing.assert_allclose(crops.sizes[:, 0] / crops.sizes[:, 1], W / H)
    np.testing.assert_array_equal(crops.boxes, boxes)
    np.testing.assert_allclose(crops.scores, [0.9, 0.8], rtol=1e-6)
    # UDP alignment: the region's corners land on the crop's corner pixel centres
    corners = crops.regions().reshape(-1, 2, 2)
    np.testing.assert_allclose(crops.to_crop(corners, (W, H), "udp"), [[[0, 0], [W - 1, H - 1]]] * 2, atol=1e-4)
    np.testing.assert_allclose(crops.to_crop(corners, (W, H), "standard"), [[[0, 0], [W, H]]] * 2, atol=1e-4)


@pytest.mark.parametrize("alignment", ["udp", "standard"])
def test_crop_pixels_come_from_the_mapped_image_positions(alignment: str) -> None:
    # pixel values encode their own coordinates: channel 0 = x, channel 1 = y
    yy, xx = np.mgrid[0:240, 0:250]
    image = np.stack([xx, yy, np.zeros_like(xx)], axis=-1).astype(np.uint8)
    crops = BoxCrops.from_boxes([[40, 30, 200, 220]], input_size=(W, H))
    out = crops.crop_images(image, (W, H), alignment)[0].astype(np.float64)
    gy, gx = np.mgrid[0:H, 0:W]
    src = crops.from_crop(np.stack([gx, gy], -1).reshape(1, -1, 2), (W, H), alignment).reshape(H, W, 2)
    inside = (src[..., 0] > 1) & (src[..., 0] < 248) & (src[..., 1] > 1) & (src[..., 1] < 238)
    assert inside.mean() > 0.7
    assert np.abs(out[..., 0] - src[..., 0])[inside].max() < 1.0  # bilinear + uint8 rounding
    assert np.abs(out[..., 1] - src[..., 1])[inside].max() < 1.0


# -- stand-in networks with a known answer ---------------------------------------------------------


class FixedHeatmaps(nn.Module):
    """Whatever the input, the UDP heatmaps of fixed crop keypoints (a real module, no mocking)."""

    def __init__(self, crop_keypoints: np.ndarray) -> None:
        super().__init__()
        hm, _ = udp.encode(crop_keypoints, None, (W, H), (W // 4, H // 4), sigma=2.0)
        self.register_buffer("maps", torch.from_numpy(hm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maps.expand(x.shape[0], -1, -1, -1).clone()


class BrightSpot(nn.Module):
    """Every keypoint at the crop's brightest blob: the crop's brightness resampled to the heatmap
    grid with the decoder's own alignment (``udp``: ends aligned; ``stride``: heatmap ``u`` at
    crop ``4u``), as heatmaps in [0, 1] or, for the integral codec, as their logits."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=1, keepdim=True)
        if self.mode == "udp":
            s = F.interpolate(s, size=(H // 4, W // 4), mode="bilinear", align_corners=True)
        else:
            s = s[:, :, ::4, ::4]
        lo = s.amin(dim=(2, 3), keepdim=True)
        hi = s.amax(dim=(2, 3), keepdim=True)
        g = (s - lo) / (hi - lo + 1e-12)
        if self.mode == "integral":
            g = torch.logit(g.clamp(1e-7, 1.0 - 1e-6))  # logits whose sigmoid is the blob itself
        return g.expand(-1, K, -1, -1).contiguous()


def _symmetric_crop_keypoints() -> np.ndarray:
    """Crop keypoints whose mirror image (x -> W - 1 - x, left <-> right) is themselves."""
    rng = np.random.default_rng(3)
    kp = np.zeros((K, 2))
    perm = COCO_17.flip_permutation()
    for k in range(K):
        j = perm[k]
        if j == k:
            kp[k] = [(W - 1) / 2, rng.uniform(40, H - 40)]
        elif k < j:
            kp[k] = [rng.uniform(30, 80), rng.uniform(40, H - 40)]
            kp[j] = [W - 1 - kp[k, 0], kp[k, 1]]
    return kp


@pytest.mark.parametrize("flip_test", [False, True])
def test_a_heatmap_peak_lands_at_its_image_position(flip_test: bool) -> None:
    crop_kp = _symmetric_crop_keypoints()
    est = TorchHeatmapEstimator(FixedHeatmaps(crop_kp), input_size=(W, H), decode="udp", flip_test=flip_test)
    image = np.full((300, 400, 3), 90, dtype=np.uint8)
    boxes = np.array([[50, 40, 170, 260], [200, 100, 390, 180]], dtype=np.float32)
    rois = est.rois_from_detections(Detections(boxes, np.array([0.9, 0.6])))
    poses = est(image, rois)
    expected = rois.from_crop(np.broadcast_to(crop_kp, (2, K, 2)), (W, H), "udp")
    assert poses.schema is COCO_17
    assert np.abs(poses.keypoints - expected).max() < 0.5
    # the score is the heatmap maximum: the peak of 1 sampled at most half a pixel off per axis
    assert np.all((poses.keypoint_scores > np.exp(-0.5 / (2 * 2.0**2))) & (poses.keypoint_scores <= 1.0))
    np.testing.assert_allclose(poses.scores, poses.keypoint_scores.mean(axis=1), rtol=1e-6)
    np.testing.assert_array_equal(poses.boxes, boxes)
    np.testing.assert_allclose(poses.extras["box_scores"], [0.9, 0.6], rtol=1e-6)
    assert set(est.last_timings) == {"crop", "network", "decode"}


def test_flip_test_of_an_asymmetric_output_swaps_and_mirrors() -> None:
    # a fixed output that is not mirror-symmetric: the flipped pass sees the same maps, which flip
    # back to left/right-swapped, mirrored keypoints; averaging the maps leaves two peaks per map
    # and the decoder picks one of them, so each keypoint is at its own or its mirror's position
    crop_kp = np.tile([[40.0, 100.0]], (K, 1))
    est = TorchHeatmapEstimator(FixedHeatmaps(crop_kp), decode="udp", flip_test=True)
    image = np.zeros((200, 200, 3), dtype=np.uint8)
    rois = est.rois_from_detections(Detections([[20, 20, 140, 180]], [1.0]))
    got = rois.to_crop(est(image, rois).keypoints, (W, H), "udp")[0]
    assert np.all(np.minimum(np.abs(got[:, 0] - 40), np.abs(got[:, 0] - (W - 1 - 40))) < 0.5)
    np.testing.assert_allclose(got[:, 1], 100.0, atol=0.5)


def _blob_image(centres: np.ndarray, shape: tuple[int, int] = (360, 480), sigma: float = 6.0) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    img = np.zeros(shape)
    for cx, cy in centres:
        img = np.maximum(img, np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2)))
    return np.repeat(np.round(img * 255)[..., None], 3, axis=2).astype(np.uint8)


@pytest.mark.parametrize("decode", ["udp", "integral", "heatmap"])
@pytest.mark.parametrize("flip_test", [False, True])
def test_keypoints_land_on_the_bright_spot_in_image_pixels(decode: str, flip_test: bool) -> None:
    centres = np.array([[100.3, 120.7], [301.6, 95.2], [380.1, 260.4]])
    image = _blob_image(centres)
    # boxes of different sizes and aspect ratios, the blob off-centre in each
    boxes = np.array([[60, 60, 160, 200], [250, 50, 400, 130], [330, 180, 420, 300]], dtype=np.float32)
    mode = "udp" if decode == "udp" else ("integral" if decode == "integral" else "stride")
    est = TorchHeatmapEstimator(BrightSpot(mode), decode=decode, flip_test=flip_test)  # type: ignore[arg-type]
    poses = TopDown(_NoDetector(), est, nms=None)(image, boxes=boxes)
    assert len(poses) == 3
    err = np.abs(poses.keypoints - centres[:, None, :]).max()
    assert err < 0.1, err  # measured: < 0.01 px for all three codecs
    assert np.all((poses.keypoint_scores > 0.5) & (poses.keypoint_scores <= 1.0))


def test_flip_test_agrees_with_the_plain_pass_on_a_mirror_consistent_network() -> None:
    centres = np.array([[150.0, 170.0], [320.5, 200.25]])
    image = _blob_image(centres)
    boxes = np.array([[90, 90, 230, 300], [260, 120, 380, 290]], dtype=np.float32)
    out = []
    for flip in (False, True):
        est = TorchHeatmapEstimator(BrightSpot("udp"), decode="udp", flip_test=flip)
        out.append(est(image, est.rois_from_detections(Detections(boxes, np.ones(2)))).keypoints)
    assert np.abs(out[0] - out[1]).max() < 0.1


# -- a real ViTPose (random weights) -----------------------------------------------------------------


def _tiny_vitpose() -> VitPose:
    torch.manual_seed(0)
    model = VitPose(VitPoseConfig(embed_dim=64, depth=2, num_heads=4))
    with torch.no_grad():  # a non-trivial head, so that the heatmaps have peaks to decode
        model.head.final.weight.normal_(0, 0.05)
        model.head.final.bias.fill_(0.1)
    return model.eval()


def test_batching_gives_the_same_poses_as_one_by_one(dev_set) -> None:  # type: ignore[no-untyped-def]
    image = _read_rgb(dev_set.images / "000000163746.jpg")
    h, w = image.shape[:2]
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, [w * 0.6, h * 0.6], (5, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(40, 200, (5, 2))], axis=1).astype(np.float32)
    model = _tiny_vitpose()
    results = []
    for bs in (1, 2, 16):
        est = TorchHeatmapEstimator(model, decode="udp", flip_test=True, batch_size=bs)
        results.append(TopDown(_NoDetector(), est)(image, boxes=boxes))
    for other in results[1:]:
        # float32 kernels sum in a batch-size-dependent order; on the flat heatmaps of random
        # weights those last-digit differences move the refined peak by a few hundredths of a pixel
        np.testing.assert_allclose(other.keypoints, results[0].keypoints, atol=0.05, equal_nan=True)
        np.testing.assert_allclose(other.keypoint_scores, results[0].keypoint_scores, atol=1e-5)
    p = results[0]
    assert p.keypoints.shape == (5, K, 2)
    assert p.schema is COCO_17
    assert np.isfinite(p.keypoints).all()
    # every keypoint lies within its person's crop region
    regions = BoxCrops.from_boxes(boxes).regions()
    assert np.all(p.keypoints >= regions[:, None, :2] - 1e-3)
    assert np.all(p.keypoints <= regions[:, None, 2:] + 1e-3)


def test_empty_rois_give_empty_poses() -> None:
    est = TorchHeatmapEstimator(FixedHeatmaps(_symmetric_crop_keypoints()))
    poses = est(np.zeros((64, 64, 3), np.uint8), est.rois_from_detections(Detections(np.zeros((0, 4)), [])))
    assert len(poses) == 0
    assert poses.schema is COCO_17


def test_rejects_unknown_decode() -> None:
    with pytest.raises(ValueError, match="decode"):
        TorchHeatmapEstimator(nn.Identity(), decode="argmax")  # type: ignore[arg-type]


# -- presets ---------------------------------------------------------------------------------------


def _mmpose_state_dict(model: VitPose) -> dict[str, torch.Tensor]:
    """Our state dict under the reference (mmpose 0.x) ViTPose key names."""
    rename = [
        ("backbone.patch_embed.", "backbone.patch_embed.proj."),
        ("backbone.norm.", "backbone.last_norm."),
        ("head.deconv1.", "keypoint_head.deconv_layers.0."),
        ("head.bn1.", "keypoint_head.deconv_layers.1."),
        ("head.deconv2.", "keypoint_head.deconv_layers.3."),
        ("head.bn2.", "keypoint_head.deconv_layers.4."),
        ("head.final.", "keypoint_head.final_layer."),
    ]
    out = {}
    for key, val in model.state_dict().items():
        for old, new in rename:
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        out[key] = val.clone()
    out["backbone.cls_token"] = torch.zeros(1, 1, model.cfg.embed_dim)
    return out


@pytest.fixture(scope="module")
def vitpose_s_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = VitPose(ARCHS["s"])
    sd = _mmpose_state_dict(model)
    path = tmp_path_factory.mktemp("ckpt") / "vitpose_small.pth"
    torch.save({"state_dict": sd, "meta": {"epoch": 210}}, path)
    return path, sd


def test_vitpose_s_checkpoint_loads_and_runs_end_to_end(vitpose_s_checkpoint, dev_set) -> None:  # type: ignore[no-untyped-def]
    path, sd = vitpose_s_checkpoint
    pipe = posekit.load("vitpose-s", checkpoint=path, batch_size=4)
    assert isinstance(pipe, TopDown)
    assert pipe.schema is COCO_17
    est = pipe.estimator
    assert isinstance(est, TorchHeatmapEstimator)
    assert est.decode == "udp"
    assert est.flip_test
    assert est.input_size == (192, 256)
    loaded = est.model.state_dict()
    assert torch.equal(loaded["backbone.blocks.11.attn.qkv.weight"], sd["backbone.blocks.11.attn.qkv.weight"])
    assert torch.equal(loaded["head.final.weight"], sd["keypoint_head.final_layer.weight"])
    image = _read_rgb(dev_set.images / "000000163746.jpg")
    poses = pipe(image)
    assert poses.schema is COCO_17
    assert len(poses) >= 1  # the BlazePose detector finds the people of this image
    assert poses.keypoints.shape == (len(poses), K, 2)
    assert poses.boxes is not None
    assert np.all((poses.keypoint_scores >= 0) & (poses.keypoint_scores <= 1))
    assert {"detect", "crop", "network", "decode", "nms"} <= set(pipe.last_timings.stages)
    # person boxes come from the detector's body alignment (a 0.9 x 0.3 rectangle along the body axis), not
    # its face boxes: their sides are at most 3:1 apart and people here stand, so the boxes are elongated
    side = poses.boxes[:, 2:] - poses.boxes[:, :2]
    ratio = side.max(axis=1) / side.min(axis=1)
    assert np.all(ratio <= 3 + 1e-3)
    assert np.median(ratio) > 1.5


def test_a_checkpoint_of_another_size_is_refused(vitpose_s_checkpoint) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="ViT-B"):
        posekit.load("vitpose-b", checkpoint=vitpose_s_checkpoint[0])


def test_a_broken_checkpoint_is_refused(tmp_path: Path) -> None:
    torch.manual_seed(0)
    sd = _mmpose_state_dict(VitPose(ARCHS["s"]))
    del sd["backbone.blocks.3.mlp.fc1.bias"]
    sd["keypoint_head.extra.weight"] = torch.zeros(3)
    path = tmp_path / "broken.pth"
    torch.save(sd, path)
    with pytest.raises(KeyError, match=r"blocks\.3\.mlp\.fc1\.bias"):
        posekit.load("vitpose-s", checkpoint=path)


@pytest.mark.parametrize("name", ["vitpose-s", "vitpose-b", "vitpose-l", "vitpose-h", "fastpose-r50"])
def test_presets_with_a_missing_checkpoint_say_where_to_get_one(name: str, tmp_path: Path) -> None:
    # (without checkpoint= the presets download their registered weights: tests/models/torch/test_presets.py)
    with pytest.raises(CheckpointRequiredError, match="not a file") as err:
        posekit.load(name, checkpoint=tmp_path / "absent.pth")
    assert ("github.com/ViTAE-Transformer/ViTPose" if name.startswith("vitpose") else "MVIG-SJTU/AlphaPose") in str(
        err.value
    )


def test_presets_are_listed_with_their_licences() -> None:
    from posekit.models import MODELS

    for arch in "sblh":
        info = MODELS[f"vitpose-{arch}"]
        assert info.license == "Apache-2.0"
        assert info.schema == "coco17"
        assert info.family == "top-down"
    assert "non-commercial" in MODELS["fastpose-r50"].license


@pytest.fixture(scope="module")
def fastpose_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = FastPose(FASTPOSE_RES50_COCO)
    path = tmp_path_factory.mktemp("ckpt") / "fast_res50_256x192.pth"
    # AlphaPose saves the module's state dict as it is (here under nn.DataParallel's prefix)
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, path)
    return path


@pytest.mark.parametrize("decode", ["integral", "heatmap"])
def test_fastpose_runs_through_the_same_path(fastpose_checkpoint: Path, decode: str, dev_set) -> None:  # type: ignore[no-untyped-def]
    pipe = posekit.load("fastpose-r50", checkpoint=fastpose_checkpoint, decode=decode, batch_size=8)
    est = pipe.estimator
    assert est.decode == decode
    assert est.alignment == "standard"
    assert est.input_size == (192, 256)
    image = _read_rgb(dev_set.images / "000000163746.jpg")
    poses = pipe(image)
    assert poses.schema is COCO_17
    assert len(poses) >= 1
    assert poses.keypoints.shape == (len(poses), K, 2)
    if decode == "integral":  # the soft-argmax always gives a position, inside the crop region
        assert np.isfinite(poses.keypoints).all()
        assert np.all((poses.keypoint_scores > 0) & (poses.keypoint_scores < 1))
    # given boxes: one person each, in the order given, with those boxes
    boxes = np.array([[100, 50, 260, 400], [300, 80, 420, 380]], dtype=np.float32)
    given = pipe(image, boxes=boxes)
    np.testing.assert_array_equal(given.boxes, boxes)
    regions = BoxCrops.from_boxes(boxes).regions()
    lo, hi = np.broadcast_to(regions[:, None, :2], (2, K, 2)), np.broadcast_to(regions[:, None, 2:], (2, K, 2))
    found = np.isfinite(given.keypoints)
    assert found.any()
    assert np.all(given.keypoints[found] >= lo[found] - 1e-3)
    assert np.all(given.keypoints[found] <= hi[found] + 1e-3)


def test_fastpose_strict_loading(tmp_path: Path) -> None:
    sd = FastPose(FASTPOSE_RES50_COCO).state_dict()
    del sd["duc2.conv.weight"]
    path = tmp_path / "broken.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointMismatchError, match=r"duc2\.conv\.weight"):
        posekit.load("fastpose-r50", checkpoint=path)
