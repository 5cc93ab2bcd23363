"""Plain Gaussian heatmaps: the classic target of SimpleBaseline and OpenPose, and its decoder.

Coordinate frame
----------------
Keypoints are ``(x, y)`` in the pixels of the network's *input* image, with pixel centres at
integer coordinates. Heatmap pixels follow the same convention in their own grid. With stride
``s = W / w`` (``H / h`` down; ``(W, H)`` the input size, ``(w, h)`` the heatmap size), the centre
of heatmap pixel ``i`` covers the centre of the ``s x s`` input block it summarises::

    input = (i + 0.5) * s - 0.5        i = (input + 0.5) / s - 0.5

This is the mapping :meth:`posekit.pipeline.BottomUp.decode` applies to PAF-parser output.

Encoding puts an unnormalised Gaussian ``exp(-d^2 / (2 sigma^2))`` (peak 1) at each keypoint's
exact sub-pixel heatmap position, over the whole grid; several people are combined by taking the
maximum (OpenPose's rule, which keeps close peaks apart). Decoding takes each heatmap's argmax and
moves it a quarter of a heatmap pixel towards the higher of its two neighbours along each axis
(the classic rule of Newell et al. and SimpleBaseline; no move on the map's border or when the
neighbours are equal).

Tolerance: for a single clean Gaussian whose argmax is not on the border, the argmax is the nearest
pixel to the true position and the quarter-pixel step leaves an error of at most ``0.25`` heatmap
pixels per axis (``0.25 * s`` input pixels); exactly 0 when the keypoint sits on a pixel centre. On
the border the error is at most ``0.5`` heatmap pixels (inside the grid).

Everything here is NumPy; no framework is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["GaussianHeatmap", "decode", "encode", "people_arrays", "render_gaussians", "stride"]


def _size(size: Sequence[int], what: str) -> tuple[int, int]:
    w, h = (int(v) for v in size)
    if w < 1 or h < 1:
        raise ValueError(f"{what} must be at least 1x1 pixels, got {(w, h)}")
    return w, h


def people_arrays(keypoints: ArrayLike, visibility: ArrayLike | None) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Validated ``(N, K, 2)`` keypoints (one person may be given as ``(K, 2)``) with 0 where
    missing, and the ``(N, K)`` mask of keypoints labelled (visibility > 0) and finite."""
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim == 2:
        kp = kp[None]
    if kp.ndim != 3 or kp.shape[2] != 2:
        raise ValueError(f"keypoints must be (N, K, 2), got {kp.shape}")
    n, k = kp.shape[:2]
    vis = np.ones((n, k)) if visibility is None else np.asarray(visibility, dtype=np.float64)
    if vis.size != n * k:
        raise ValueError(f"visibility must be ({n}, {k}), got {vis.shape}")
    valid = (vis.reshape(n, k) > 0) & np.isfinite(kp).all(axis=2)
    return np.where(valid[..., None], kp, 0.0), valid


def stride(input_size: Sequence[int], heatmap_size: Sequence[int]) -> tuple[float, float]:
    """``(sx, sy)``: input pixels per heatmap pixel, ``W / w`` and ``H / h``."""
    (iw, ih), (hw, hh) = _size(input_size, "input_size"), _size(heatmap_size, "heatmap_size")
    return iw / hw, ih / hh


_CUTOFF = float(np.sqrt(2.0 * np.log(1e6)))  # exp(-d^2 / (2 sigma^2)) < 1e-6 beyond this many sigmas


def render_gaussians(
    centres: ArrayLike, valid: ArrayLike, map_size: Sequence[int], sigma: float
) -> NDArray[np.float32]:
    """``(K, h, w)`` maps: a peak-1 Gaussian at every valid centre, the maximum over people.

    Each Gaussian is drawn within ``sqrt(2 ln 1e6) = 5.26`` sigma of its centre (beyond, it is below
    1e-6 of its peak and left at 0), which keeps large maps cheap.

    ``centres`` is ``(N, K, 2)`` in map pixels (pixel centres at integers), ``valid`` ``(N, K)``
    booleans (or anything ``> 0``); ``map_size`` is ``(w, h)`` and ``sigma`` in map pixels.
    """
    c = np.asarray(centres, dtype=np.float64)
    if c.ndim != 3 or c.shape[2] != 2:
        raise ValueError(f"centres must be (N, K, 2), got {c.shape}")
    ok = np.asarray(valid).reshape(c.shape[:2]) > 0
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    w, h = _size(map_size, "map_size")
    out = np.zeros((c.shape[1], h, w), dtype=np.float64)
    xs, ys = np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)
    reach = _CUTOFF * sigma  # beyond it a Gaussian is below 1e-6 of its peak: left at 0
    for n, k in zip(*np.nonzero(ok), strict=True):
        cx, cy = c[n, k]
        x0, x1 = max(int(np.floor(cx - reach)), 0), min(int(np.ceil(cx + reach)) + 1, w)
        y0, y1 = max(int(np.floor(cy - reach)), 0), min(int(np.ceil(cy + reach)) + 1, h)
        if x0 >= x1 or y0 >= y1:
            continue
        gx = np.exp(-((xs[x0:x1] - cx) ** 2) / (2.0 * sigma**2))
        gy = np.exp(-((ys[y0:y1] - cy) ** 2) / (2.0 * sigma**2))
        win = out[k, y0:y1, x0:x1]
        np.maximum(win, gy[:, None] * gx[None, :], out=win)
    return out.astype(np.float32)


def encode(
    keypoints: ArrayLike,
    visibility: ArrayLike | None,
    input_size: Sequence[int],
    heatmap_size: Sequence[int],
    sigma: float = 2.0,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Heatmap targets of the people in one image (or one crop).

    ``keypoints`` is ``(N, K, 2)`` ``(x, y)`` in input pixels (a single ``(K, 2)`` person is also
    accepted); ``visibility`` is ``(N, K)`` (``> 0`` means labelled; ``None`` means all are).
    ``input_size`` and ``heatmap_size`` are ``(width, height)``; ``sigma`` is in heatmap pixels.

    Returns ``heatmaps`` ``(K, h, w)`` float32 (the maximum over people of each keypoint's
    Gaussian) and ``weights`` ``(K,)`` float32: 1 where at least one person has that keypoint
    labelled, finite, and with its Gaussian reaching the map (its centre less than ``3 sigma``
    outside the grid); 0 otherwise, with an all-zero heatmap.
    """
    kp, labelled = people_arrays(keypoints, visibility)
    hw, hh = _size(heatmap_size, "heatmap_size")
    sx, sy = stride(input_size, heatmap_size)
    mu = (kp + 0.5) / np.array([sx, sy]) - 0.5
    reach = 3.0 * sigma
    inside = (
        (mu[..., 0] > -reach) & (mu[..., 0] < hw - 1 + reach) & (mu[..., 1] > -reach) & (mu[..., 1] < hh - 1 + reach)
    )
    valid = labelled & inside
    heatmaps = render_gaussians(mu, valid, (hw, hh), sigma)
    return heatmaps, valid.any(axis=0).astype(np.float32)


def decode(heatmaps: ArrayLike, input_size: Sequence[int]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Keypoints and scores from heatmaps ``(..., K, h, w)`` (one map per keypoint, one person).

    Returns ``keypoints`` ``(..., K, 2)`` in input pixels of ``input_size`` ``(W, H)`` (the frame
    of the module docstring) and ``scores`` ``(..., K)``: each heatmap's maximum. A heatmap with no
    positive value gives NaN coordinates and score 0.
    """
    hm = np.asarray(heatmaps, dtype=np.float32)
    if hm.ndim < 3:
        raise ValueError(f"heatmaps must be (..., K, h, w), got {hm.shape}")
    lead, (h, w) = hm.shape[:-2], hm.shape[-2:]
    sx, sy = stride(input_size, (w, h))
    flat = hm.reshape(-1, h, w)
    n = flat.shape[0]
    idx = flat.reshape(n, -1).argmax(axis=1)
    i = np.arange(n)
    scores = flat.reshape(n, -1)[i, idx]
    y, x = np.divmod(idx, w)
    inx = (x > 0) & (x < w - 1)
    iny = (y > 0) & (y < h - 1)
    right = flat[i, y, np.clip(x + 1, 0, w - 1)]
    left = flat[i, y, np.clip(x - 1, 0, w - 1)]
    down = flat[i, np.clip(y + 1, 0, h - 1), x]
    up = flat[i, np.clip(y - 1, 0, h - 1), x]
    fx = x + np.where(inx, 0.25 * np.sign(right - left), 0.0)
    fy = y + np.where(iny, 0.25 * np.sign(down - up), 0.0)
    kps = np.stack([(fx + 0.5) * sx - 0.5, (fy + 0.5) * sy - 0.5], axis=-1)
    empty = ~(scores > 0)
    kps[empty] = np.nan
    scores = np.where(empty, 0.0, scores)
    return kps.reshape(*lead, 2).astype(np.float32), scores.reshape(lead).astype(np.float32)


@dataclass(frozen=True)
class GaussianHeatmap:
    """The codec bound to its sizes: ``encode(keypoints, visibility)`` / ``decode(heatmaps)``.

    ``input_size`` and ``heatmap_size`` are ``(width, height)``; ``sigma`` is in heatmap pixels.
    SimpleBaseline at 256x192 uses ``GaussianHeatmap((192, 256), (48, 64), sigma=2)``.
    """

    input_size: tuple[int, int]
    heatmap_size: tuple[int, int]
    sigma: float = 2.0

    def encode(
        self, keypoints: ArrayLike, visibility: ArrayLike | None = None
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        return encode(keypoints, visibility, self.input_size, self.heatmap_size, self.sigma)

    def decode(self, heatmaps: ArrayLike) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        hm = np.asarray(heatmaps)
        if tuple(hm.shape[-2:]) != (self.heatmap_size[1], self.heatmap_size[0]):
            raise ValueError(f"heatmaps are {hm.shape[-2:]} (h, w); this codec expects {self.heatmap_size} (w, h)")
        return decode(hm, self.input_size)
