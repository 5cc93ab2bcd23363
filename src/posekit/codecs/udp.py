"""UDP heatmaps: the unbiased encoding and decoding of Huang et al., CVPR 2020.

Coordinate frame
----------------
Keypoints are ``(x, y)`` in the pixels of the network's *input* image (the crop), with pixel
centres at integer coordinates: the first pixel's centre is ``0`` and the last one's is ``W - 1``
(``H - 1`` down). Heatmap pixels follow the same convention in their own grid. UDP aligns the two
grids at their end pixels, so that heatmap coordinate ``u`` is input coordinate ``u * sx`` with

    sx = (W - 1) / (w - 1),    sy = (H - 1) / (h - 1)

(``(W, H)`` the input size, ``(w, h)`` the heatmap size). The usual ``W / w`` stride instead
shifts every prediction by half a heatmap pixel, and flipping the image mirrors ``x -> W - 1 - x``
while the naive heatmap flip mirrors ``u -> w - 1 - u``: with UDP's scale these agree exactly, so
flip testing needs no one-pixel ``shift_heatmap`` fix.

Encoding puts an unnormalised Gaussian ``exp(-d^2 / (2 sigma^2))`` (peak 1) at the keypoint's
exact sub-pixel heatmap position (the whole grid, not a 3-sigma window). Decoding takes each
heatmap's argmax and refines it with one Newton step on the log of the Gaussian-blurred heatmap,
using the gradient and the Hessian from central differences (DARK, Zhang et al. 2020, in UDP's
frame). A Gaussian is exactly quadratic in log space, so for a clean Gaussian target the step lands
on the encoded position; blurring first makes real, noisy network outputs Gaussian-like.

Everything here is NumPy; no framework is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "UDPHeatmap",
    "decode",
    "encode",
    "flip_heatmaps",
    "flip_keypoints",
    "gaussian_blur",
    "udp_scale",
]

# Log-space floor and ceiling of the refinement (as in DARK): keeps log finite on empty pixels.
_LOG_MIN, _LOG_MAX = 1e-3, 50.0


def _size(size: Sequence[int], what: str) -> tuple[int, int]:
    w, h = (int(v) for v in size)
    if w < 2 or h < 2:
        raise ValueError(f"{what} must be at least 2x2 pixels (UDP divides by size - 1), got {(w, h)}")
    return w, h


def udp_scale(input_size: Sequence[int], heatmap_size: Sequence[int]) -> tuple[float, float]:
    """``(sx, sy)``: input pixels per heatmap pixel, ``(W - 1) / (w - 1)`` and ``(H - 1) / (h - 1)``."""
    (iw, ih), (hw, hh) = _size(input_size, "input_size"), _size(heatmap_size, "heatmap_size")
    return (iw - 1) / (hw - 1), (ih - 1) / (hh - 1)


def encode(
    keypoints: ArrayLike,
    visibility: ArrayLike | None,
    input_size: Sequence[int],
    heatmap_size: Sequence[int],
    sigma: float = 2.0,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Heatmap targets of one instance.

    ``keypoints`` is ``(K, 2)`` ``(x, y)`` in input pixels (see the module docstring for the frame);
    ``visibility`` is ``(K,)`` (``> 0`` means labelled; ``None`` means all are). ``input_size`` and
    ``heatmap_size`` are ``(width, height)``; ``sigma`` is in heatmap pixels.

    Returns ``heatmaps`` ``(K, h, w)`` float32 and ``weights`` ``(K,)`` float32: 1 for a keypoint
    that is labelled, finite, and whose Gaussian reaches the heatmap (its centre lies less than
    ``3 sigma`` outside the grid); 0 otherwise, with an all-zero heatmap.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 2 or kp.shape[1] != 2:
        raise ValueError(f"keypoints must be (K, 2), got {kp.shape}")
    k = kp.shape[0]
    vis = np.ones(k) if visibility is None else np.asarray(visibility, dtype=np.float64).reshape(-1)
    if vis.shape != (k,):
        raise ValueError(f"visibility must be ({k},), got {vis.shape}")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    hw, hh = _size(heatmap_size, "heatmap_size")
    sx, sy = udp_scale(input_size, heatmap_size)

    finite = np.isfinite(kp).all(axis=1)
    mu = np.where(finite[:, None], kp, 0.0) / np.array([sx, sy])
    reach = 3.0 * sigma
    inside = (mu[:, 0] > -reach) & (mu[:, 0] < hw - 1 + reach) & (mu[:, 1] > -reach) & (mu[:, 1] < hh - 1 + reach)
    valid = (vis > 0) & finite & inside

    gx = np.exp(-((np.arange(hw)[None, :] - mu[:, :1]) ** 2) / (2.0 * sigma**2))  # (K, w)
    gy = np.exp(-((np.arange(hh)[None, :] - mu[:, 1:]) ** 2) / (2.0 * sigma**2))  # (K, h)
    heatmaps = gy[:, :, None] * gx[:, None, :]
    heatmaps[~valid] = 0.0
    return heatmaps.astype(np.float32), valid.astype(np.float32)


def gaussian_blur(heatmaps: ArrayLike, kernel_size: int = 11) -> NDArray[np.float64]:
    """Blur each ``(h, w)`` map of ``(..., h, w)`` with a normalised Gaussian of odd ``kernel_size``.

    The kernel's sigma is OpenCV's default for the size, ``0.3 * ((k - 1) / 2 - 1) + 0.8`` (2.0 for
    11); outside the map counts as zero.
    """
    hm = np.asarray(heatmaps, dtype=np.float64)
    if kernel_size <= 1:
        return hm.copy()
    if kernel_size % 2 != 1:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")
    r = kernel_size // 2
    s = 0.3 * ((kernel_size - 1) * 0.5 - 1.0) + 0.8
    t = np.arange(-r, r + 1, dtype=np.float64)
    kern = np.exp(-(t**2) / (2.0 * s * s))
    kern /= kern.sum()
    h, w = hm.shape[-2:]
    lead = [(0, 0)] * (hm.ndim - 2)
    p = np.pad(hm, [*lead, (r, r), (r, r)])
    rows = sum(kern[i] * p[..., i : i + h, :] for i in range(kernel_size))
    return sum(kern[i] * rows[..., :, i : i + w] for i in range(kernel_size))  # type: ignore[return-value]


def decode(
    heatmaps: ArrayLike, input_size: Sequence[int], *, blur_kernel_size: int = 11
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Keypoints and scores from heatmaps ``(..., K, h, w)`` (one instance or a batch).

    Returns ``keypoints`` ``(..., K, 2)`` ``(x, y)`` in input pixels of ``input_size`` ``(W, H)``
    (the frame of the module docstring) and ``scores`` ``(..., K)``: each heatmap's maximum. A
    heatmap with no positive value gives NaN coordinates and score 0. ``blur_kernel_size`` is the
    blur before the refinement (UDP/ViTPose use 11 for 64x48 heatmaps; 0 or 1 turns it off).

    The refinement is one Newton step ``-H^-1 g`` on the log of the blurred heatmap, with central
    differences around the argmax (around its inward neighbour on the map's border). It is skipped
    where the Hessian is not negative definite (no peak to fit), and kept within one heatmap pixel
    of the argmax. Near the border (closer than the blur's radius) the zero-padded blur pulls
    the estimate inwards, as in the reference implementations; without the blur a clean Gaussian
    decodes exactly everywhere.
    """
    hm = np.asarray(heatmaps, dtype=np.float32)
    if hm.ndim < 3:
        raise ValueError(f"heatmaps must be (..., K, h, w), got {hm.shape}")
    lead, (h, w) = hm.shape[:-2], hm.shape[-2:]
    sx, sy = udp_scale(input_size, (w, h))
    flat = hm.reshape(-1, h, w)
    n = flat.shape[0]
    idx = flat.reshape(n, -1).argmax(axis=1)
    scores = flat.reshape(n, -1)[np.arange(n), idx]
    y, x = np.divmod(idx, w)

    logh = np.log(np.clip(gaussian_blur(flat, blur_kernel_size), _LOG_MIN, _LOG_MAX))
    # The difference stencil is centred on the argmax, moved one pixel inwards on the border: a
    # Newton step lands on a quadratic's peak from any point, so this stays exact where padding the
    # map (DARK's choice) would bias border keypoints.
    i = np.arange(n)
    cx, cy = np.clip(x, 1, max(w - 2, 1)), np.clip(y, 1, max(h - 2, 1))
    can = (w >= 3) & (h >= 3)

    def at(dy: int, dx: int) -> NDArray[np.float64]:
        return logh[i, np.clip(cy + dy, 0, h - 1), np.clip(cx + dx, 0, w - 1)]

    c = at(0, 0)
    gx = 0.5 * (at(0, 1) - at(0, -1))
    gy = 0.5 * (at(1, 0) - at(-1, 0))
    hxx = at(0, 1) - 2.0 * c + at(0, -1)
    hyy = at(1, 0) - 2.0 * c + at(-1, 0)
    hxy = 0.25 * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))
    det = hxx * hyy - hxy * hxy
    peak = can & (hxx < 0) & (det > 1e-12)
    safe = np.where(peak, det, 1.0)
    rx = np.where(peak, cx - (hyy * gx - hxy * gy) / safe, x)
    ry = np.where(peak, cy - (hxx * gy - hxy * gx) / safe, y)

    kx = np.clip(rx, x - 1.0, x + 1.0) * sx
    ky = np.clip(ry, y - 1.0, y + 1.0) * sy
    kps = np.stack([kx, ky], axis=-1)
    empty = ~(scores > 0)
    kps[empty] = np.nan
    scores = np.where(empty, 0.0, scores)
    return kps.reshape(*lead, 2).astype(np.float32), scores.reshape(lead).astype(np.float32)


def _permutation(num_keypoints: int, flip_pairs: Sequence[tuple[int, int]]) -> NDArray[np.intp]:
    perm = np.arange(num_keypoints)
    for a, b in flip_pairs:
        perm[a], perm[b] = b, a
    return perm


def flip_heatmaps(heatmaps: ArrayLike, flip_pairs: Sequence[tuple[int, int]]) -> NDArray[np.float32]:
    """Heatmaps ``(..., K, h, w)`` of the horizontally flipped image: mirror ``w``, swap left/right.

    With UDP's frame this is exact (no half-pixel shift); applying it twice gives the input back.
    Average ``flip_heatmaps(model(flipped_image))`` with ``model(image)`` for flip testing.
    """
    hm = np.asarray(heatmaps, dtype=np.float32)
    perm = _permutation(hm.shape[-3], flip_pairs)
    return np.ascontiguousarray(hm[..., perm, :, ::-1])


def flip_keypoints(
    keypoints: ArrayLike, flip_pairs: Sequence[tuple[int, int]], input_width: int
) -> NDArray[np.float32]:
    """Keypoints ``(..., K, 2)`` of the horizontally flipped image: ``x -> W - 1 - x``, swap left/right."""
    kp = np.array(keypoints, dtype=np.float32)
    perm = _permutation(kp.shape[-2], flip_pairs)
    out = kp[..., perm, :]
    out[..., 0] = (input_width - 1) - out[..., 0]
    return out


@dataclass(frozen=True)
class UDPHeatmap:
    """A UDP codec bound to its sizes: ``encode(keypoints, visibility)`` / ``decode(heatmaps)``.

    ``input_size`` and ``heatmap_size`` are ``(width, height)``; ``sigma`` is in heatmap pixels.
    ViTPose at 256x192 uses ``UDPHeatmap((192, 256), (48, 64), sigma=2)`` with an 11 blur.
    """

    input_size: tuple[int, int]
    heatmap_size: tuple[int, int]
    sigma: float = 2.0
    blur_kernel_size: int = 11

    @property
    def scale(self) -> tuple[float, float]:
        return udp_scale(self.input_size, self.heatmap_size)

    def encode(
        self, keypoints: ArrayLike, visibility: ArrayLike | None = None
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        return encode(keypoints, visibility, self.input_size, self.heatmap_size, self.sigma)

    def decode(self, heatmaps: ArrayLike) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        hm = np.asarray(heatmaps)
        if tuple(hm.shape[-2:]) != (self.heatmap_size[1], self.heatmap_size[0]):
            raise ValueError(f"heatmaps are {hm.shape[-2:]} (h, w); this codec expects {self.heatmap_size} (w, h)")
        return decode(hm, self.input_size, blur_kernel_size=self.blur_kernel_size)
