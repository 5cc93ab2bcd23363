"""Seeded top-down augmentation: pure functions taking an explicit ``np.random.Generator``.

Coordinates are image pixels with pixel (row i, column j) at (x, y) = (j, i), the convention of
OpenCV's affine warps, so keypoints moved with the returned matrix land on the same pixels as the
image content. A crop of ``out_size = (W, H)`` maps the region of size ``scale_wh`` around
``center`` onto the pixel grid ``0..W-1`` x ``0..H-1``; ``center`` lands at ``((W-1)/2, (H-1)/2)``.
Positive ``rotation_deg`` turns the content counter-clockwise on screen (as
``cv2.getRotationMatrix2D``). A horizontal flip is part of the same matrix (``x -> W-1-x``), with
left/right keypoints swapped by the schema's flip permutation.

:func:`random_top_down` augments one person for a top-down estimator; :func:`random_bottom_up`
augments a whole image (every person, plus the mask of regions the loss ignores) for a bottom-up
network, following OpenPose's training augmentation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

from posekit.schemas import KeypointSchema, get_schema
from posekit.train.boxnoise import BoxSampler
from posekit.train.datasets import BottomUpSample, TopDownSample

__all__ = [
    "BottomUpCrop",
    "TopDownCrop",
    "affine_crop",
    "box_to_center_scale",
    "color_jitter",
    "crop_matrix",
    "half_body_box",
    "lower_body_indices",
    "random_bottom_up",
    "random_top_down",
    "transform_keypoints",
]

# Keypoint-name parts that put a keypoint in the lower body (everything else is upper body).
_LOWER_PARTS = ("hip", "knee", "ankle", "heel", "foot", "toe", "belly", "pelvis")


def crop_matrix(
    center: ArrayLike, scale_wh: ArrayLike, rotation_deg: float, out_size: tuple[int, int], flip: bool = False
) -> NDArray[np.float64]:
    """The ``(2, 3)`` image-to-crop affine map (see the module docstring for conventions)."""
    c = np.asarray(center, dtype=np.float64).reshape(2)
    s = np.asarray(scale_wh, dtype=np.float64).reshape(2)
    w_out, h_out = int(out_size[0]), int(out_size[1])
    if np.any(s <= 0):
        raise ValueError(f"scale_wh must be positive, got {s}")
    t = np.deg2rad(rotation_deg)
    cos, sin = np.cos(t), np.sin(t)
    rot = np.array([[cos, sin], [-sin, cos]])
    lin = np.diag([w_out / s[0], h_out / s[1]]) @ rot
    if flip:
        lin = np.diag([-1.0, 1.0]) @ lin
    offset = np.array([(w_out - 1) / 2, (h_out - 1) / 2]) - lin @ c
    return np.concatenate([lin, offset[:, None]], axis=1)


def affine_crop(
    image: NDArray[np.uint8],
    center: ArrayLike,
    scale_wh: ArrayLike,
    rotation_deg: float,
    out_size: tuple[int, int],
    flip: bool = False,
) -> tuple[NDArray[np.uint8], NDArray[np.float64]]:
    """Crop ``image`` to ``out_size = (W, H)`` (bilinear, black outside); returns ``(crop, matrix)``."""
    m = crop_matrix(center, scale_wh, rotation_deg, out_size, flip)
    crop = cv2.warpAffine(
        image, m, (int(out_size[0]), int(out_size[1])), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )
    return crop, m


def transform_keypoints(kps: ArrayLike, matrix: ArrayLike) -> NDArray[np.float64]:
    """Apply a ``(2, 3)`` affine map to ``(..., 2)`` or ``(..., 3)`` keypoints (extra columns kept)."""
    k = np.array(kps, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64)
    k[..., :2] = k[..., :2] @ m[:, :2].T + m[:, 2]
    return k


def box_to_center_scale(
    bbox_xywh: ArrayLike, aspect: float = 192 / 256, padding: float = 1.25
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """ViTPose-style crop of a box: its centre, and its size grown to ``aspect`` (W / H) then by ``padding``."""
    x, y, w, h = np.asarray(bbox_xywh, dtype=np.float64).reshape(4)
    center = np.array([x + w / 2, y + h / 2])
    if w > aspect * h:
        h = w / aspect
    else:
        w = h * aspect
    return center, np.array([w, h]) * padding


def lower_body_indices(schema: KeypointSchema) -> NDArray[np.intp]:
    """Indices of the schema's lower-body keypoints (hips and below, by name)."""
    return np.array([i for i, n in enumerate(schema.keypoints) if any(p in n for p in _LOWER_PARTS)], dtype=np.intp)


def half_body_box(
    keypoints: NDArray[np.float64],
    schema: KeypointSchema,
    rng: np.random.Generator,
    min_total: int = 9,
    min_upper: int = 2,
    min_lower: int = 3,
    upper_prob: float = 0.7,
) -> tuple[NDArray[np.float64], NDArray[np.intp]] | None:
    """Pick the upper or lower body: its xywh box over the visible keypoints and the kept indices.

    ``None`` when fewer than ``min_total`` keypoints are visible or neither half has enough.
    """
    vis = keypoints[:, 2] > 0
    if vis.sum() < min_total:
        return None
    lower = np.zeros(len(keypoints), dtype=bool)
    lower[lower_body_indices(schema)] = True
    up_ok = (vis & ~lower).sum() >= min_upper
    low_ok = (vis & lower).sum() >= min_lower
    if not (up_ok or low_ok):
        return None
    draw = rng.random()
    use_upper = up_ok and (not low_ok or draw < upper_prob)
    keep = ~lower if use_upper else lower
    pts = keypoints[vis & keep, :2]
    lo, hi = pts.min(0), pts.max(0)
    return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]]), np.flatnonzero(keep)


def color_jitter(
    image: NDArray[np.uint8],
    rng: np.random.Generator,
    brightness: float = 0.2,
    contrast: float = 0.2,
    saturation: float = 0.2,
) -> NDArray[np.uint8]:
    """Scale brightness, contrast (about the mean grey) and saturation by factors in ``[1-a, 1+a]``."""
    fb, fc, fs = (rng.uniform(1 - a, 1 + a) if a > 0 else 1.0 for a in (brightness, contrast, saturation))
    img = image.astype(np.float32) * fb
    grey = img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    img = (img - grey.mean()) * fc + grey.mean()
    grey = (img @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    img = (img - grey) * fs + grey
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


@dataclass(frozen=True, eq=False)
class TopDownCrop:
    """An augmented person crop: ``image (H, W, 3)``, ``keypoints (K, 3)`` in crop pixels, ``matrix`` image->crop."""

    image: NDArray[np.uint8]
    keypoints: NDArray[np.float64]
    matrix: NDArray[np.float64]
    flipped: bool
    half_body: str | None


def random_top_down(
    sample: TopDownSample,
    rng: np.random.Generator,
    *,
    image: NDArray[np.uint8] | None = None,
    schema: str | KeypointSchema = "coco17",
    out_size: tuple[int, int] = (192, 256),
    padding: float = 1.25,
    scale_range: tuple[float, float] = (0.75, 1.25),
    rotation_deg: float = 40.0,
    rotation_prob: float = 0.6,
    flip_prob: float = 0.5,
    half_body_prob: float = 0.3,
    half_body_padding: float = 1.5,
    jitter: Sequence[float] | None = (0.2, 0.2, 0.2),
    box_noise: BoxSampler | None = None,
) -> TopDownCrop:
    """Augment one person: box noise, half-body, random scale / rotation / flip, crop, colour jitter.

    ``image`` is the sample's RGB image (read from ``sample.image_path`` when omitted).
    ``box_noise`` (e.g. :class:`~posekit.train.boxnoise.BoxNoise` fitted on a detector's boxes,
    or :class:`~posekit.train.boxnoise.RandomJitter`) moves ``sample.bbox`` before it becomes the
    crop's centre and scale, so the crop looks like one from a detector box. Half-body
    (``half_body_prob``, when :func:`half_body_box` allows) crops around the upper or lower body's
    visible keypoints instead; as in mmpose, keypoints of the other half keep their labels when
    they fall inside that crop. Keypoints outside the crop (beyond the outer pixel edges) get
    visibility 0 and coordinates 0; unlabelled keypoints stay 0. ``jitter`` is (brightness,
    contrast, saturation) or ``None`` for none.

    Every draw comes from ``rng``, in this order, so a seed fixes the result: ``box_noise`` (only
    when given), the half-body coin (then :func:`half_body_box`'s upper/lower draw when it
    applies), the scale factor, the rotation coin (then the angle when it comes up), the flip
    coin, the colour factors (only when ``jitter`` is given). Without ``box_noise`` the draws are
    those of earlier versions.
    """
    sch = get_schema(schema)
    if image is None:
        from posekit.io.images import read_image

        image = read_image(sample.image_path)
    kps = np.array(sample.keypoints, dtype=np.float64)
    if len(kps) != sch.num_keypoints:
        raise ValueError(f"sample has {len(kps)} keypoints; schema {sch.name!r} has {sch.num_keypoints}")
    aspect = out_size[0] / out_size[1]
    bbox = np.asarray(sample.bbox, dtype=np.float64) if box_noise is None else box_noise.sample(sample.bbox, rng)
    center, scale = box_to_center_scale(bbox, aspect, padding)

    half = None
    if rng.random() < half_body_prob:
        picked = half_body_box(kps, sch, rng)
        if picked is not None:
            box, keep = picked
            center, scale = box_to_center_scale(box, aspect, half_body_padding)
            half = "lower" if np.isin(keep, lower_body_indices(sch)).all() else "upper"

    scale = scale * rng.uniform(*scale_range)
    rot = rng.uniform(-rotation_deg, rotation_deg) if rng.random() < rotation_prob else 0.0
    flip = bool(rng.random() < flip_prob)

    crop, m = affine_crop(image, center, scale, rot, out_size, flip)
    out = transform_keypoints(kps, m)
    if flip:
        out = out[sch.flip_permutation()]
    w, h = out_size
    inside = (out[:, 0] >= -0.5) & (out[:, 0] < w - 0.5) & (out[:, 1] >= -0.5) & (out[:, 1] < h - 0.5)
    out[~inside, 2] = 0
    out[out[:, 2] <= 0] = 0
    if jitter is not None:
        crop = color_jitter(crop, rng, *jitter)
    return TopDownCrop(crop, out, m, flip, half)


@dataclass(frozen=True, eq=False)
class BottomUpCrop:
    """An augmented image for bottom-up training.

    ``image (H, W, 3)`` uint8; ``keypoints (N, K, 3)`` every person in crop pixels (a keypoint
    outside the crop or unlabelled is all 0); ``ignore (H, W)`` bool, the warped ignore mask;
    ``matrix`` the ``(2, 3)`` image->crop map; ``center_person`` the index of the person the crop
    was scaled and centred on (``None`` for an image without people).
    """

    image: NDArray[np.uint8]
    keypoints: NDArray[np.float64]
    ignore: NDArray[np.bool_]
    matrix: NDArray[np.float64]
    flipped: bool
    center_person: int | None


def _person_height(box: NDArray[np.float64], kps: NDArray[np.float64]) -> float:
    """A person's height in image pixels: the box height, else the extent of the labelled keypoints."""
    if box[3] > 0:
        return float(box[3])
    vis = kps[kps[:, 2] > 0, :2]
    return float(np.ptp(vis[:, 1])) if len(vis) else 0.0


def _person_center(box: NDArray[np.float64], kps: NDArray[np.float64]) -> NDArray[np.float64]:
    if box[2] > 0 and box[3] > 0:
        return box[:2] + box[2:] / 2
    vis = kps[kps[:, 2] > 0, :2]
    return (vis.min(0) + vis.max(0)) / 2


def random_bottom_up(
    sample: BottomUpSample,
    rng: np.random.Generator,
    *,
    image: NDArray[np.uint8] | None = None,
    ignore: NDArray[np.bool_] | None = None,
    schema: str | KeypointSchema = "coco17",
    out_size: tuple[int, int] = (368, 368),
    target_height: float = 0.6,
    scale_range: tuple[float, float] = (0.5, 1.1),
    rotation_deg: float = 40.0,
    center_shift: float = 40.0,
    flip_prob: float = 0.5,
    jitter: Sequence[float] | None = (0.2, 0.2, 0.2),
) -> BottomUpCrop:
    """Augment one image for a bottom-up network, as OpenPose trains (CPM data transformer).

    A person is picked at random; the image is scaled so that the person's height (box height, or
    the extent of the labelled keypoints) becomes ``target_height * H_out * u`` crop pixels with
    ``u`` uniform in ``scale_range``; it is rotated by an angle uniform in ``±rotation_deg`` about
    that person's box centre, which lands at the crop centre shifted by up to ``±center_shift``
    crop pixels in x and in y (uniform); the result is flipped with ``flip_prob`` (left/right
    keypoints swapped by the schema's flip permutation). An image without people is centred and
    scaled to fit ``out_size`` times ``u``. Everything happens in one affine warp (bilinear for the
    image, black outside it); ``jitter`` (brightness, contrast, saturation) or ``None`` follows.

    ``image`` is the sample's RGB image (read from ``sample.image_path`` when omitted). ``ignore``
    is an ``(H, W)`` bool mask of the image's regions without labels (crowds, unlabelled people:
    :meth:`~posekit.train.datasets.CocoKeypoints.ignore_mask`); it is warped with nearest
    neighbour sampling, and crop area outside the image is not ignored (it is plain background:
    no person there, so no keypoint is missing). Without ``ignore`` the crop's mask is all False.

    Every draw comes from ``rng``, in this order: the person index (only when there are people),
    the scale factor ``u``, the angle, the centre shift (x, y), the flip coin, the colour factors
    (only when ``jitter`` is given). The same seed gives the same crop.
    """
    sch = get_schema(schema)
    if image is None:
        from posekit.io.images import read_image

        image = read_image(sample.image_path)
    h_img, w_img = image.shape[:2]
    raw = np.asarray(sample.keypoints, dtype=np.float64)
    if raw.size and (raw.ndim != 3 or raw.shape[1:] != (sch.num_keypoints, 3)):
        raise ValueError(
            f"sample keypoints must be (N, {sch.num_keypoints}, 3) for schema {sch.name!r}, got {raw.shape}"
        )
    kps = raw.reshape(-1, sch.num_keypoints, 3).copy()
    boxes = np.asarray(sample.bboxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) != len(kps):
        raise ValueError(f"sample has {len(kps)} people but {len(boxes)} boxes")
    if ignore is not None and np.shape(ignore) != (h_img, w_img):
        raise ValueError(f"ignore must be the image's (H, W) = {(h_img, w_img)}, got {np.shape(ignore)}")
    lo, hi = scale_range
    if not 0 < lo <= hi:
        raise ValueError(f"scale_range must be (low, high) with 0 < low <= high, got {scale_range}")
    w_out, h_out = int(out_size[0]), int(out_size[1])

    person: int | None = None
    if len(kps):
        person = int(rng.integers(len(kps)))
    u = rng.uniform(lo, hi)
    if person is not None and _person_height(boxes[person], kps[person]) > 0:
        center = _person_center(boxes[person], kps[person])
        zoom = target_height * h_out * u / _person_height(boxes[person], kps[person])
    else:
        center = np.array([(w_img - 1) / 2, (h_img - 1) / 2])
        zoom = min(w_out / w_img, h_out / h_img) * u
    rot = rng.uniform(-rotation_deg, rotation_deg)
    shift = rng.uniform(-center_shift, center_shift, 2)
    flip = bool(rng.random() < flip_prob)

    m = crop_matrix(center, (w_out / zoom, h_out / zoom), rot, out_size, flip)
    m[:, 2] += shift
    crop = cv2.warpAffine(image, m, (w_out, h_out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    if ignore is None:
        ign = np.zeros((h_out, w_out), dtype=bool)
    else:
        ign = cv2.warpAffine(
            np.asarray(ignore, dtype=np.uint8), m, (w_out, h_out), flags=cv2.INTER_NEAREST,
            borderMode=cv2.BORDER_CONSTANT, borderValue=0,
        ).astype(bool)  # fmt: skip

    out = transform_keypoints(kps, m)
    if flip:
        out = out[:, sch.flip_permutation()]
    inside = (out[..., 0] >= -0.5) & (out[..., 0] < w_out - 0.5) & (out[..., 1] >= -0.5) & (out[..., 1] < h_out - 0.5)
    out[~inside, 2] = 0
    out[out[..., 2] <= 0] = 0
    if jitter is not None:
        crop = color_jitter(crop, rng, *jitter)
    return BottomUpCrop(crop, out, ign, m, flip, person)
