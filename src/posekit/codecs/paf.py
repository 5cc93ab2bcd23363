"""OpenPose training targets: part-confidence heatmaps and part affinity fields (Cao et al. 2017).

Coordinate frame
----------------
Everything is in *map* pixels, the frame of :func:`posekit.bottomup.parse_people`: pixel centres
at integer coordinates, ``x`` = column, ``y`` = row. For a network of stride ``s`` (8 for OpenPose)
an input-pixel keypoint ``p`` is at map position ``(p + 0.5) / s - 0.5`` (see
:mod:`posekit.codecs.heatmap`); the inverse is what :meth:`posekit.pipeline.BottomUp.decode`
applies to the parser's output.

PAFs (paper, Sec. 2.3)
----------------------
For limb ``c`` from part ``a`` to part ``b`` of person ``k``, a map pixel ``p`` is *on the limb*
when ``0 <= v . (p - x_a) <= |x_b - x_a|`` and ``|v_perp . (p - x_a)| <= limb_width``, with
``v = (x_b - x_a) / |x_b - x_a|``; there the person's field is ``v``, elsewhere 0. The target is
the average over the people whose limb covers the pixel (``n_c(p)`` in the paper; 0 where none
does), so a pixel shared by two people holds the mean of their unit vectors. A limb contributes
only when both of its parts are labelled and finite and they do not coincide.

Heatmaps are peak-1 Gaussians at the exact sub-pixel part positions, the maximum over people
(:func:`posekit.codecs.heatmap.render_gaussians`). The targets decode with
:func:`posekit.bottomup.parse_people` (same ``limbs``), which is what makes this a codec.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from posekit.codecs.heatmap import people_arrays, render_gaussians

__all__ = ["encode_heatmaps", "encode_pafs"]


def _map_size(map_size: Sequence[int]) -> tuple[int, int]:
    w, h = (int(v) for v in map_size)
    if w < 1 or h < 1:
        raise ValueError(f"map_size must be at least 1x1, got {(w, h)}")
    return w, h


def encode_pafs(
    keypoints: ArrayLike,
    visibility: ArrayLike | None,
    limbs: Sequence[tuple[int, int]],
    map_size: Sequence[int],
    limb_width: float = 1.0,
) -> NDArray[np.float32]:
    """Part affinity fields ``(L, h, w, 2)`` (x, y components last, as the parser reads them).

    ``keypoints`` is ``(N, K, 2)`` in map pixels, ``visibility`` ``(N, K)`` (``> 0`` labelled;
    ``None``: all), ``limbs`` the ``L`` ``(a, b)`` part pairs (e.g. ``OPENPOSE_18.skeleton``),
    ``map_size`` ``(w, h)`` and ``limb_width`` the half-width ``sigma_l`` of the paper, in map
    pixels. See the module docstring for the definition.
    """
    if limb_width < 0:
        raise ValueError(f"limb_width must be non-negative, got {limb_width}")
    kp, valid = people_arrays(keypoints, visibility)
    w, h = _map_size(map_size)
    k = kp.shape[1]
    px = np.arange(w, dtype=np.float64)[None, :]
    py = np.arange(h, dtype=np.float64)[:, None]
    out = np.zeros((len(limbs), h, w, 2), dtype=np.float64)
    for c, (a, b) in enumerate(limbs):
        if not (0 <= a < k and 0 <= b < k):
            raise ValueError(f"limb ({a}, {b}) is outside 0..{k - 1}")
        total = np.zeros((h, w, 2), dtype=np.float64)
        count = np.zeros((h, w), dtype=np.float64)
        for n in np.nonzero(valid[:, a] & valid[:, b])[0]:
            d = kp[n, b] - kp[n, a]
            length = float(np.hypot(d[0], d[1]))
            if length < 1e-9:
                continue
            v = d / length
            # only the limb's bounding box, grown by the width, can be on the limb
            lo = np.minimum(kp[n, a], kp[n, b]) - limb_width
            hi = np.maximum(kp[n, a], kp[n, b]) + limb_width
            x0, y0 = max(int(np.floor(lo[0])), 0), max(int(np.floor(lo[1])), 0)
            x1, y1 = min(int(np.ceil(hi[0])) + 1, w), min(int(np.ceil(hi[1])) + 1, h)
            if x0 >= x1 or y0 >= y1:
                continue
            rx, ry = px[:, x0:x1] - kp[n, a, 0], py[y0:y1] - kp[n, a, 1]
            along = rx * v[0] + ry * v[1]
            across = np.abs(rx * v[1] - ry * v[0])
            on = (along >= 0.0) & (along <= length) & (across <= limb_width)
            total[y0:y1, x0:x1][on] += v
            count[y0:y1, x0:x1] += on
        out[c] = total / np.maximum(count, 1.0)[..., None]
    return out.astype(np.float32)


def encode_heatmaps(
    keypoints: ArrayLike, visibility: ArrayLike | None, map_size: Sequence[int], sigma: float = 1.0
) -> NDArray[np.float32]:
    """Part heatmaps ``(K, h, w)``: a peak-1 Gaussian per labelled part, the maximum over people.

    Same frame and arguments as :func:`encode_pafs`; ``sigma`` is in map pixels.
    """
    kp, valid = people_arrays(keypoints, visibility)
    return render_gaussians(kp, valid, _map_size(map_size), sigma)
