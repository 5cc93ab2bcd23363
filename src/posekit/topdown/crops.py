"""Rotated square crops: regions of interest, crop matrices, cropping and mapping back.

Coordinates are image pixels with pixel (row i, column j) at (x, y) = (j, i), the convention of
MediaPipe's crops (OpenCV's affine warps take pixel indices as positions), which posekit's BlazePose
matches to a fraction of a pixel. A region of interest (ROI) is a square of side ``size`` centred at
``center`` and rotated by ``rotation`` radians (positive turns the crop's up direction towards the
image's +x, i.e. clockwise on screen).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["Rois", "crop_images", "crop_matrices", "from_crop", "to_crop"]


@dataclass(frozen=True, eq=False)
class Rois:
    """N rotated squares: ``centers (N, 2)``, ``sizes (N,)`` (side, pixels), ``rotations (N,)``."""

    centers: NDArray[np.float64]
    sizes: NDArray[np.float64]
    rotations: NDArray[np.float64]

    def __post_init__(self) -> None:
        c = np.asarray(self.centers, dtype=np.float64).reshape(-1, 2)
        n = len(c)
        s = np.asarray(self.sizes, dtype=np.float64).reshape(n)
        r = np.asarray(self.rotations, dtype=np.float64).reshape(n)
        object.__setattr__(self, "centers", c)
        object.__setattr__(self, "sizes", s)
        object.__setattr__(self, "rotations", r)

    def __len__(self) -> int:
        return len(self.sizes)

    def __getitem__(self, index: ArrayLike) -> Rois:
        idx = np.atleast_1d(np.asarray(index))
        return Rois(self.centers[idx], self.sizes[idx], self.rotations[idx])

    @classmethod
    def from_boxes(cls, boxes: ArrayLike, scale: float = 1.25) -> Rois:
        """Upright squares around xyxy boxes: side = ``scale`` x the longer box side."""
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        centers = (b[:, :2] + b[:, 2:]) / 2
        sizes = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) * scale
        return cls(centers, sizes, np.zeros(len(b)))

    def boxes(self) -> NDArray[np.float32]:
        """Axis-aligned xyxy boxes enclosing each rotated square."""
        half = self.sizes / 2 * (np.abs(np.cos(self.rotations)) + np.abs(np.sin(self.rotations)))
        return np.concatenate([self.centers - half[:, None], self.centers + half[:, None]], axis=1).astype(np.float32)


def crop_matrices(rois: Rois, out_size: int) -> NDArray[np.float64]:
    """``(N, 2, 3)`` affine maps from image to crop coordinates (continuous, both sides)."""
    n = len(rois)
    cos, sin = np.cos(rois.rotations), np.sin(rois.rotations)
    k = out_size / rois.sizes
    # crop = k * R(-r) (img - c) + out/2, with R(r) = [[cos, -sin], [sin, cos]] turning crop into image axes
    m = np.zeros((n, 2, 3))
    m[:, 0, 0], m[:, 0, 1] = k * cos, k * sin
    m[:, 1, 0], m[:, 1, 1] = -k * sin, k * cos
    m[:, :, 2] = out_size / 2 - np.einsum("nij,nj->ni", m[:, :, :2], rois.centers)
    return m


def to_crop(points: NDArray[np.floating], rois: Rois, out_size: int) -> NDArray[np.float64]:
    """Image points ``(N, K, 2)`` -> crop coordinates of each person's ROI."""
    m = crop_matrices(rois, out_size)
    return np.einsum("nij,nkj->nki", m[:, :, :2], points) + m[:, None, :, 2]


def from_crop(points: NDArray[np.floating], rois: Rois, out_size: int) -> NDArray[np.float64]:
    """Crop coordinates ``(N, K, 2)`` of each ROI -> image points."""
    cos, sin = np.cos(rois.rotations), np.sin(rois.rotations)
    rel = (np.asarray(points, dtype=np.float64) - out_size / 2) * (rois.sizes / out_size)[:, None, None]
    x = cos[:, None] * rel[..., 0] - sin[:, None] * rel[..., 1]
    y = sin[:, None] * rel[..., 0] + cos[:, None] * rel[..., 1]
    return np.stack([x, y], axis=-1) + rois.centers[:, None, :]


def crop_images(
    image: NDArray[np.uint8], rois: Rois, out_size: int, *, border: int = cv2.BORDER_REPLICATE
) -> NDArray[np.uint8]:
    """``(N, out, out, C)`` crops of ``image`` (bilinear), one per ROI."""
    out = np.empty((len(rois), out_size, out_size, image.shape[2]), dtype=image.dtype)
    for i, m in enumerate(crop_matrices(rois, out_size)):
        # The matrix is applied to pixel indices as they are, as MediaPipe's crops do: with a
        # half-pixel shift added, BlazePose landmarks moved 1-5 px away from MediaPipe's own.
        out[i] = cv2.warpAffine(image, m, (out_size, out_size), flags=cv2.INTER_LINEAR, borderMode=border)
    return out
