"""A top-down estimator around any PyTorch heatmap network (ViTPose, FastPose, ...).

Crops
-----
Each person box becomes a ``W x H`` crop the way ViTPose (mmpose) and AlphaPose make them: centred
on the box centre, the box padded to the input's aspect ratio ``W:H`` (3:4 for 192x256) and then
enlarged by ``box_scale`` (1.25). The crop is upright and *not* square, so it is kept in
:class:`BoxCrops` (posekit's :class:`~posekit.topdown.crops.Rois` are squares) and handed back to
the estimator by :class:`~posekit.pipeline.TopDown` unchanged.

Coordinates are pixel indices used as positions, as in :mod:`posekit.topdown.crops`: pixel (row
``i``, column ``j``) sits at ``(x, y) = (j, i)``, in the image and in the crop alike (OpenCV's
``warpAffine`` convention). The image -> crop map of a region with centre ``c`` and size
``(bw, bh)`` is ``crop = k * (img - c) + o`` per axis, with

* ``alignment="udp"`` (ViTPose, trained with UDP): ``k = ((W - 1) / bw, (H - 1) / bh)``,
  ``o = ((W - 1) / 2, (H - 1) / 2)``; the region's end points land on the crop's end pixels;
* ``alignment="standard"`` (AlphaPose, SimpleBaseline): ``k = (W / bw, H / bh)``, ``o = (W / 2, H / 2)``.

The inverse ``img = (crop - o) / k + c`` is exact (no resampling), so keypoints map back with no
loss.

Decoding
--------
* ``"udp"``: :mod:`posekit.codecs.udp` (heatmap ``u`` is crop ``u * (W - 1) / (w - 1)``). Flip
  test averages the heatmaps with :func:`~posekit.codecs.udp.flip_heatmaps` of the flipped crop's
  heatmaps, which UDP aligns exactly.
* ``"integral"``: the two-step normalisation + soft-argmax of :mod:`posekit.codecs.integral`, or the
  model's own ``(keypoints, scores)`` output (FastPose with ``head="integral"``); crop pixels are
  ``stride * heatmap pixels`` (AlphaPose's convention).
* ``"heatmap"``: plain MSE-heatmap models (AlphaPose's COCO FastPose): each map's argmax refined as
  in UDP decoding, then crop pixels = ``stride * heatmap pixels``.

For ``"integral"`` and ``"heatmap"`` the flip test decodes the flipped crop on its own and mirrors
the coordinates (``x -> W - 1 - x`` in the pixel-index frame, left and right swapped), then
averages coordinates and scores with the unflipped pass.

Scores: a keypoint's score comes from the codec (heatmap maximum, clipped to [0, 1], or the peak
of the sigmoid confidence map); the person's score is the mean of its keypoint scores. The
detector's score is kept in ``extras["box_scores"]``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import nn

from posekit.codecs import udp
from posekit.codecs.integral import decode_torch
from posekit.detectors import Detections
from posekit.poses import Poses
from posekit.schemas import COCO_17, KeypointSchema, get_schema

__all__ = [
    "ALPHAPOSE_MEAN",
    "ALPHAPOSE_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BoxCrops",
    "TorchHeatmapEstimator",
]

Decode = Literal["udp", "integral", "heatmap"]
Alignment = Literal["udp", "standard"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# AlphaPose's test transform: RGB in [0, 1] minus these per-channel values, no division.
ALPHAPOSE_MEAN = (0.406, 0.457, 0.480)
ALPHAPOSE_STD = (1.0, 1.0, 1.0)


def _scale_offset(input_size: tuple[int, int], alignment: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    w, h = input_size
    if alignment == "udp":
        return np.array([w - 1.0, h - 1.0]), np.array([(w - 1) / 2, (h - 1) / 2])
    if alignment == "standard":
        return np.array([float(w), float(h)]), np.array([w / 2, h / 2])
    raise ValueError(f"alignment must be 'udp' or 'standard', got {alignment!r}")


@dataclass(frozen=True, eq=False)
class BoxCrops:
    """N upright crop regions: ``centers (N, 2)`` and ``sizes (N, 2)`` (width, height, image
    pixels, already padded and enlarged), with the detection ``boxes (N, 4)`` xyxy and ``scores (N,)``
    they came from. See the module docstring for the coordinate frame."""

    centers: NDArray[np.float64]
    sizes: NDArray[np.float64]
    boxes: NDArray[np.float32]
    scores: NDArray[np.float32]

    def __post_init__(self) -> None:
        c = np.asarray(self.centers, dtype=np.float64).reshape(-1, 2)
        n = len(c)
        object.__setattr__(self, "centers", c)
        object.__setattr__(self, "sizes", np.asarray(self.sizes, dtype=np.float64).reshape(n, 2))
        object.__setattr__(self, "boxes", np.asarray(self.boxes, dtype=np.float32).reshape(n, 4))
        object.__setattr__(self, "scores", np.asarray(self.scores, dtype=np.float32).reshape(n))

    def __len__(self) -> int:
        return len(self.centers)

    def __getitem__(self, index: ArrayLike) -> BoxCrops:
        idx = np.atleast_1d(np.asarray(index))
        return BoxCrops(self.centers[idx], self.sizes[idx], self.boxes[idx], self.scores[idx])

    @classmethod
    def from_boxes(
        cls,
        boxes: ArrayLike,
        scores: ArrayLike | None = None,
        *,
        input_size: tuple[int, int] = (192, 256),
        scale: float = 1.25,
    ) -> BoxCrops:
        """Regions around xyxy ``boxes``: the box centre; the box padded (on the short side) to
        the ``input_size`` (W, H) aspect ratio, then both sides multiplied by ``scale``."""
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        s = np.ones(len(b)) if scores is None else np.asarray(scores, dtype=np.float64).reshape(len(b))
        centers = (b[:, :2] + b[:, 2:]) / 2
        bw = np.maximum(b[:, 2] - b[:, 0], 0.0)
        bh = np.maximum(b[:, 3] - b[:, 1], 0.0)
        aspect = input_size[0] / input_size[1]
        wide = bw > aspect * bh
        w = np.where(wide, bw, bh * aspect)
        h = np.where(wide, bw / aspect, bh)
        # a degenerate (empty) box still gets a 1-pixel-high region, so the maps stay invertible
        h = np.maximum(h, 1.0)
        w = np.maximum(w, aspect)
        return cls(centers, np.stack([w, h], axis=1) * scale, b.astype(np.float32), s.astype(np.float32))

    def regions(self) -> NDArray[np.float32]:
        """The crop regions as xyxy boxes (image pixels)."""
        half = self.sizes / 2
        return np.concatenate([self.centers - half, self.centers + half], axis=1).astype(np.float32)

    def matrices(self, input_size: tuple[int, int], alignment: Alignment = "udp") -> NDArray[np.float64]:
        """``(N, 2, 3)`` affine maps from image to crop coordinates (pixel indices as positions)."""
        span, o = _scale_offset(input_size, alignment)
        k = span[None, :] / self.sizes
        m = np.zeros((len(self), 2, 3))
        m[:, 0, 0], m[:, 1, 1] = k[:, 0], k[:, 1]
        m[:, :, 2] = o[None, :] - k * self.centers
        return m

    def to_crop(
        self, points: ArrayLike, input_size: tuple[int, int], alignment: Alignment = "udp"
    ) -> NDArray[np.float64]:
        """Image points ``(N, K, 2)`` -> crop coordinates of each region."""
        span, o = _scale_offset(input_size, alignment)
        k = span[None, :] / self.sizes
        return (np.asarray(points, dtype=np.float64) - self.centers[:, None]) * k[:, None] + o

    def from_crop(
        self, points: ArrayLike, input_size: tuple[int, int], alignment: Alignment = "udp"
    ) -> NDArray[np.float64]:
        """Crop coordinates ``(N, K, 2)`` of each region -> image points (the exact inverse)."""
        span, o = _scale_offset(input_size, alignment)
        inv = self.sizes / span[None, :]
        return (np.asarray(points, dtype=np.float64) - o) * inv[:, None] + self.centers[:, None]

    def crop_images(
        self, image: NDArray[np.uint8], input_size: tuple[int, int], alignment: Alignment = "udp"
    ) -> NDArray[np.uint8]:
        """``(N, H, W, C)`` bilinear crops; outside the image is black (as mmpose and AlphaPose pad)."""
        w, h = input_size
        out = np.empty((len(self), h, w, image.shape[2]), dtype=image.dtype)
        for i, m in enumerate(self.matrices(input_size, alignment)):
            out[i] = cv2.warpAffine(
                image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
            )
        return out


def _flip_coords(xy: NDArray[np.float32], perm: NDArray[np.intp], width: int) -> NDArray[np.float32]:
    """Keypoints of a horizontally flipped crop -> keypoints of the crop itself."""
    out = np.array(xy[:, perm], dtype=np.float32)
    out[..., 0] = (width - 1) - out[..., 0]
    return out


def _mean_pair(a: NDArray[np.float32], b: NDArray[np.float32]) -> NDArray[np.float32]:
    """Element-wise mean of two estimates; where one is NaN, the other."""
    return np.where(np.isnan(a), b, np.where(np.isnan(b), a, (a + b) / 2)).astype(np.float32)


class TorchHeatmapEstimator:
    """COCO-style top-down keypoints from a PyTorch network, for :class:`~posekit.pipeline.TopDown`.

    ``model`` maps normalised ``(B, 3, H, W)`` RGB crops to heatmaps ``(B, K, h, w)`` (or, for
    ``decode="integral"``, possibly to ``(keypoints in heatmap pixels, scores)``). ``input_size``
    is ``(W, H)``; pixels are RGB / 255, then ``(x - mean) / std``. ``alignment`` defaults to
    ``"udp"`` for ``decode="udp"`` and ``"standard"`` otherwise (see the module docstring).
    ``schema`` defaults to the model's ``spec.schema`` or COCO-17. Crops go through the network
    ``batch_size`` at a time under :func:`torch.inference_mode`; seconds spent cropping, in the
    network and decoding are left in ``last_timings``.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        input_size: tuple[int, int] = (192, 256),
        decode: Decode = "udp",
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        flip_test: bool = True,
        device: str | torch.device = "cpu",
        batch_size: int = 16,
        schema: str | KeypointSchema | None = None,
        box_scale: float = 1.25,
        alignment: Alignment | None = None,
        blur_kernel_size: int = 11,
        stride: int | None = None,
    ) -> None:
        if decode not in ("udp", "integral", "heatmap"):
            raise ValueError(f"decode must be 'udp', 'integral' or 'heatmap', got {decode!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.decode = decode
        self.alignment: Alignment = alignment or ("udp" if decode == "udp" else "standard")
        _scale_offset(self.input_size, self.alignment)  # validates
        self.flip_test = bool(flip_test)
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.box_scale = float(box_scale)
        self.blur_kernel_size = int(blur_kernel_size)
        if schema is None:
            schema = getattr(getattr(model, "spec", None), "schema", None) or COCO_17
        self.schema = get_schema(schema)
        self._perm = np.asarray(self.schema.flip_permutation(), dtype=np.intp)
        self._stride = stride
        self.model = model.to(self.device).eval()
        self._mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.last_timings: dict[str, float] = {}

    # -- crops ------------------------------------------------------------------------------------

    def rois_from_detections(self, detections: Detections) -> BoxCrops:
        """Crop regions for the detection boxes (the detector's keypoints are not used)."""
        return BoxCrops.from_boxes(
            detections.boxes, detections.scores, input_size=self.input_size, scale=self.box_scale
        )

    def crops(self, image: NDArray[np.uint8], rois: BoxCrops) -> NDArray[np.uint8]:
        """The network's input crops ``(N, H, W, 3)`` of ``rois``."""
        return rois.crop_images(image, self.input_size, self.alignment)

    # -- inference --------------------------------------------------------------------------------

    def __call__(self, image: NDArray[np.uint8], rois: BoxCrops) -> Poses:
        """Keypoints of the person in each region, in image pixels, in ``self.schema``."""
        timings = dict.fromkeys(("crop", "network", "decode"), 0.0)
        self.last_timings = timings
        if len(rois) == 0:
            return Poses.empty(self.schema)
        kps, scores = [], []
        for start in range(0, len(rois), self.batch_size):
            part = rois[np.arange(start, min(start + self.batch_size, len(rois)))]
            t0 = time.perf_counter()
            x = self._tensor(self.crops(image, part))
            t1 = time.perf_counter()
            with torch.inference_mode():
                out = self._forward(x)
                out_flip = self._forward(torch.flip(x, dims=[3])) if self.flip_test else None
            t2 = time.perf_counter()
            k, s = self._decode(out, out_flip)
            kps.append(part.from_crop(k, self.input_size, self.alignment))
            scores.append(s)
            t3 = time.perf_counter()
            timings["crop"] += t1 - t0
            timings["network"] += t2 - t1
            timings["decode"] += t3 - t2
        t4 = time.perf_counter()
        kp = np.concatenate(kps).astype(np.float32)
        ks = np.clip(np.nan_to_num(np.concatenate(scores), nan=0.0), 0.0, 1.0).astype(np.float32)
        kp[ks <= 0] = np.nan  # a keypoint without evidence has no position
        poses = Poses(kp, ks, ks.mean(axis=1), self.schema, rois.boxes, extras={"box_scores": rois.scores})
        timings["decode"] += time.perf_counter() - t4
        return poses

    def _tensor(self, crops: NDArray[np.uint8]) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device)
        x = x.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        return (x - self._mean) / self._std

    def _forward(self, x: torch.Tensor) -> NDArray[np.float32] | tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Network output as NumPy: maps ``(B, K, h, w)``, or the integral decode in crop pixels."""
        out = self.model(x)
        if self.decode == "integral":
            if isinstance(out, (tuple, list)):
                xy, sc = out[0], out[1]
                stride = self._stride or getattr(getattr(self.model, "config", None), "stride", 4)
            else:
                xy, sc = decode_torch(out.float())
                stride = self._stride or self.input_size[0] / out.shape[-1]
            return (xy.float() * stride).cpu().numpy(), sc.float().cpu().numpy()
        if isinstance(out, (tuple, list)):
            raise TypeError(f"decode={self.decode!r} needs heatmaps from the model, got a {type(out).__name__}")
        return out.float().cpu().numpy()

    def _decode(self, out: Any, out_flip: Any) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Keypoints in crop pixels ``(B, K, 2)`` and scores ``(B, K)``."""
        w = self.input_size[0]
        if self.decode == "udp":
            hm = out if out_flip is None else (out + udp.flip_heatmaps(out_flip, self.schema.flip_pairs)) / 2
            return udp.decode(hm, self.input_size, blur_kernel_size=self.blur_kernel_size)
        if self.decode == "integral":
            k, s = out
            if out_flip is None:
                return k, s
            kf, sf = out_flip
            return _mean_pair(k, _flip_coords(kf, self._perm, w)), (s + sf[:, self._perm]) / 2
        k, s = self._heatmap_decode(out)
        if out_flip is None:
            return k, s
        kf, sf = self._heatmap_decode(out_flip)
        return _mean_pair(k, _flip_coords(kf, self._perm, w)), (s + sf[:, self._perm]) / 2

    def _heatmap_decode(self, maps: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        h, w = maps.shape[-2:]
        # decoding into the heatmap's own grid gives heatmap pixels (UDP's scale is then 1)
        k, s = udp.decode(maps, (w, h), blur_kernel_size=self.blur_kernel_size)
        stride = self._stride or self.input_size[0] / w
        return (k * stride).astype(np.float32), s
