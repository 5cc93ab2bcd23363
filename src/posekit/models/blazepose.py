"""BlazePose landmarks (MediaPipe's ``pose_landmark_full.tflite``) as a top-down estimator.

Each person is cropped as a rotated square aligned by the detector's keypoints (what the model
was trained on), resampled to 256x256 with replicated borders. The model gives 39 points (33
landmarks + 6 auxiliary) with x, y, z, visibility and presence, 64x64 heatmaps used to refine
x and y, a pose-presence flag and metric world coordinates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from posekit.detectors import Detections
from posekit.detectors.blazepose import MEDIAPIPE_WHEEL
from posekit.models import register_model
from posekit.poses import Poses
from posekit.runtimes import Runtime, load_runtime
from posekit.schemas import BLAZEPOSE_33, COCO_17
from posekit.topdown.crops import Rois, crop_images, from_crop
from posekit.weights import WeightsEntry, fetch, register

__all__ = ["BlazePoseLandmarks", "LandmarkParams", "refine_from_heatmaps", "rois_from_alignment"]

register(
    WeightsEntry(
        name="blazepose-landmark-full",
        filename="pose_landmark_full.tflite",
        sha256="e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
        size=6_440_512,
        sources=(replace(MEDIAPIPE_WHEEL, member="mediapipe/modules/pose_landmark/pose_landmark_full.tflite"),),
        license="Apache-2.0 (mediapipe wheel)",
        description="BlazePose full landmark model, 256x256, 33 landmarks, from the mediapipe 0.10.21 wheel",
    )
)

INPUT_SIZE = 256
HEATMAP_SIZE = 64
NUM_LANDMARKS = 33


_COCO_LIKE = [BLAZEPOSE_33.index(n) for n in COCO_17.keypoints]


def _sigmoid(x: NDArray[np.floating]) -> NDArray[np.float32]:
    return (1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))).astype(np.float32)


def rois_from_alignment(keypoints: NDArray[np.floating], scale: float = 1.25) -> Rois:
    """ROIs from the detector's alignment points: centre = point 0 (hip centre), side = 2 x the
    distance to point 1 (above the head) x ``scale``, rotation making point 1 straight up."""
    k = np.asarray(keypoints, dtype=np.float64)
    p0, p1 = k[:, 0], k[:, 1]
    d = p1 - p0
    rotation = np.pi / 2 - np.arctan2(-d[:, 1], d[:, 0])
    rotation = (rotation + np.pi) % (2 * np.pi) - np.pi
    size = 2.0 * np.hypot(d[:, 0], d[:, 1]) * scale
    return Rois(p0, size, rotation)


def refine_from_heatmaps(xy: NDArray[np.float32], heatmaps: NDArray[np.float32], kernel: int = 7,
                         min_confidence: float = 0.5) -> NDArray[np.float32]:  # fmt: skip
    """Refine normalised crop coordinates ``(N, K, 2)`` with ``(N, H, W, K)`` heatmap logits: the
    sigmoid-weighted mean position of the ``kernel``-square window around each point, where that
    window's highest confidence reaches ``min_confidence``."""
    n, hh, ww, k = heatmaps.shape
    off = (kernel - 1) // 2
    out = np.array(xy, dtype=np.float32, copy=True)
    col = (xy[..., 0] * ww).astype(np.int64)
    row = (xy[..., 1] * hh).astype(np.int64)
    d = np.arange(-off, off + 1)
    rows = row[..., None, None] + d[None, None, :, None]  # (N, K, kernel, 1)
    cols = col[..., None, None] + d[None, None, None, :]  # (N, K, 1, kernel)
    valid = (rows >= 0) & (rows < hh) & (cols >= 0) & (cols < ww)
    inside = (col >= 0) & (col < ww) & (row >= 0) & (row < hh)
    ni = np.arange(n)[:, None, None, None]
    ki = np.arange(k)[None, :, None, None]
    conf = _sigmoid(heatmaps[ni, np.clip(rows, 0, hh - 1), np.clip(cols, 0, ww - 1), ki])
    conf = np.where(valid, conf, 0.0)
    total = conf.sum(axis=(2, 3))
    best = conf.max(axis=(2, 3))
    mean_c = (conf * cols).sum(axis=(2, 3)) / np.maximum(total, 1e-12)
    mean_r = (conf * rows).sum(axis=(2, 3)) / np.maximum(total, 1e-12)
    ok = inside & (best >= min_confidence) & (total > 0)
    out[..., 0] = np.where(ok, mean_c / ww, xy[..., 0])
    out[..., 1] = np.where(ok, mean_r / hh, xy[..., 1])
    return out


@dataclass(frozen=True)
class LandmarkParams:
    """``passes``: after each pass but the last, the person is cropped again from the model's own
    alignment points (as MediaPipe's video mode does from frame to frame), so an upright box
    becomes the aligned crop the model was trained on, and a detection merged from several tiles
    is re-aligned (dev-set AP 0.298 with 2 passes against 0.284 with 1). ``passes=1`` with the
    detector's ``zoom_levels=(1.0,)`` and ``threshold=0.5`` reproduces MediaPipe's static-image
    output to < 1 px.
    ``min_presence`` drops crops whose pose flag says no person is there."""

    roi_scale: float = 1.25
    min_presence: float = 0.5
    refine: bool = True
    passes: int = 2


class BlazePoseLandmarks:
    """33 BlazePose landmarks per ROI, in image pixels, with ``extras``: ``z`` (pixels, scaled
    like x), ``presence``, ``world`` (metres, rotated like the ROI) and ``pose_flag``."""

    schema = BLAZEPOSE_33

    def __init__(self, params: LandmarkParams = LandmarkParams(), *, runtime: str | Runtime = "litert",
                 threads: int | None = None, progress: bool = True) -> None:  # fmt: skip
        self.params = params
        self.last_timings: dict[str, float] = {}
        if isinstance(runtime, str):
            path = fetch("blazepose-landmark-full", progress=progress)
            runtime = load_runtime(runtime, path, model_format="tflite", threads=threads)
        self.runtime = runtime

    def rois_from_detections(self, detections: Detections) -> Rois:
        if detections.keypoints is None:
            return Rois.from_boxes(detections.boxes, self.params.roi_scale)
        return rois_from_alignment(detections.keypoints, self.params.roi_scale)

    def next_rois(self, poses: Poses) -> Rois:
        """Crops for the same people in the next video frame, from their alignment points (as
        MediaPipe's video mode does)."""
        if len(poses) == 0 or "alignment" not in poses.extras:
            return Rois(np.zeros((0, 2)), np.zeros(0), np.zeros(0))
        return rois_from_alignment(poses.extras["alignment"], self.params.roi_scale)

    def __call__(self, image: NDArray[np.uint8], rois: Rois, *, passes: int | None = None) -> Poses:
        """Landmarks of the person in each ROI (people whose pose flag is too low are dropped).

        ``passes`` overrides ``params.passes`` (video mode uses 1 on crops from the previous
        frame). Seconds spent cropping, in the network and decoding are left in ``last_timings``."""
        timings = dict.fromkeys(("crop", "network", "decode"), 0.0)
        self.last_timings = timings
        if len(rois) == 0:
            return Poses.empty(self.schema)
        passes = max(1, self.params.passes if passes is None else passes)
        for i in range(passes):
            t0 = time.perf_counter()
            crops = self._crops(image, rois)
            t1 = time.perf_counter()
            outputs = self.runtime.run(crops)
            t2 = time.perf_counter()
            timings["crop"] += t1 - t0
            timings["network"] += t2 - t1
            if i < passes - 1:
                aux = outputs[0].reshape(len(rois), -1, 5)[:, NUM_LANDMARKS : NUM_LANDMARKS + 2, :2]
                rois = rois_from_alignment(from_crop(aux, rois, INPUT_SIZE), self.params.roi_scale)
        t3 = time.perf_counter()
        poses = self._decode(outputs, rois)
        timings["decode"] += time.perf_counter() - t3
        return poses

    def _crops(self, image: NDArray[np.uint8], rois: Rois) -> NDArray[np.float32]:
        return crop_images(image, rois, INPUT_SIZE).astype(np.float32) / 255.0

    def _decode(self, outputs: list[NDArray[np.float32]], rois: Rois) -> Poses:
        landmarks, flag, _seg, heatmaps, world = outputs
        lm = landmarks.reshape(len(rois), -1, 5)[:, :NUM_LANDMARKS]
        xy = lm[..., :2] / INPUT_SIZE
        if self.params.refine:
            xy = refine_from_heatmaps(xy, heatmaps[..., :NUM_LANDMARKS])
        pts = from_crop(xy * INPUT_SIZE, rois, INPUT_SIZE).astype(np.float32)
        # auxiliary points 33 (hip centre) and 34 (body size and rotation): the next crop's alignment
        aux = landmarks.reshape(len(rois), -1, 5)[:, NUM_LANDMARKS : NUM_LANDMARKS + 2, :2]
        alignment = from_crop(aux, rois, INPUT_SIZE).astype(np.float32)
        visibility = _sigmoid(lm[..., 3])
        presence = _sigmoid(lm[..., 4])
        pose_flag = flag.reshape(len(rois)).astype(np.float32)
        z = lm[..., 2] / INPUT_SIZE * rois.sizes[:, None]
        w = world.reshape(len(rois), -1, 3)[:, :NUM_LANDMARKS].astype(np.float64)
        cos, sin = np.cos(rois.rotations)[:, None], np.sin(rois.rotations)[:, None]
        world_rot = np.stack([cos * w[..., 0] - sin * w[..., 1], sin * w[..., 0] + cos * w[..., 1], w[..., 2]], -1)
        keep = pose_flag >= self.params.min_presence
        extras: dict[str, Any] = {
            "z": z.astype(np.float32),
            "presence": presence,
            "world": world_rot.astype(np.float32),
            "pose_flag": pose_flag,
            "alignment": alignment,
        }
        # person score: pose flag x mean visibility of the body landmarks COCO also has (0.30 AP on
        # the dev set against 0.29 with all 33 landmarks)
        score = pose_flag * visibility[:, _COCO_LIKE].mean(axis=1)
        poses = Poses(pts, visibility, score, self.schema, rois.boxes(), extras=extras)
        return poses[keep]


@register_model(
    "blazepose",
    family="top-down",
    description="multi-person BlazePose: MediaPipe's detector (every person) + full landmark model (LiteRT)",
    weights=("blazepose-detector", "blazepose-landmark-full"),
    schema="blazepose33",
    license="Apache-2.0",
)
def _build(**kwargs: Any) -> Any:
    """Keyword arguments: ``threads``, ``progress``, any ``DetectorParams`` or ``LandmarkParams``
    field (e.g. ``zoom_levels=(1.0,), passes=1, threshold=0.5`` for MediaPipe's single-view behaviour), and
    ``nms`` for :class:`~posekit.pipeline.TopDown`."""
    from dataclasses import fields

    from posekit.detectors.blazepose import BlazePoseDetector, DetectorParams
    from posekit.pipeline import TopDown

    common = {k: kwargs.pop(k) for k in ("threads", "progress") if k in kwargs}
    det = {f.name: kwargs.pop(f.name) for f in fields(DetectorParams) if f.name in kwargs}
    lm = {f.name: kwargs.pop(f.name) for f in fields(LandmarkParams) if f.name in kwargs}
    return TopDown(BlazePoseDetector(DetectorParams(**det), **common), BlazePoseLandmarks(LandmarkParams(**lm), **common),
                   **kwargs)  # fmt: skip
