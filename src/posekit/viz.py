"""Drawing skeletons from a schema: one colour per limb, fading with confidence."""

from __future__ import annotations

import colorsys

import cv2
import numpy as np
from numpy.typing import NDArray

from posekit.poses import Poses
from posekit.schemas import KeypointSchema

__all__ = ["draw_poses", "limb_colors"]


def limb_colors(schema: KeypointSchema) -> list[tuple[int, int, int]]:
    """A distinct RGB colour per limb of ``schema`` (hues spread evenly, deterministic)."""
    n = max(1, len(schema.skeleton))
    return [tuple(int(255 * c) for c in colorsys.hsv_to_rgb(i / n, 0.85, 1.0)) for i in range(n)]  # type: ignore[misc]


def draw_poses(
    image: NDArray[np.uint8],
    poses: Poses,
    *,
    min_score: float = 0.0,
    thickness: int | None = None,
    draw_ids: bool = True,
) -> NDArray[np.uint8]:
    """Return a copy of the RGB ``image`` with every person's skeleton drawn on it.

    A limb is drawn when both of its keypoints were found with score > ``min_score``; its opacity
    follows the smaller of the two scores. Line width scales with the image size unless given.
    """
    out = image.copy()
    if len(poses) == 0:
        return out
    h, w = image.shape[:2]
    t = thickness or max(2, round(max(h, w) / 250))
    colors = limb_colors(poses.schema)
    kp = poses.keypoints
    sc = poses.keypoint_scores
    for i in range(len(poses)):
        layer = out.copy()
        alpha_acc = np.zeros((h, w), np.float32)
        for (a, b), color in zip(poses.schema.skeleton, colors, strict=True):
            if sc[i, a] <= min_score or sc[i, b] <= min_score:
                continue
            pa = tuple(round(v) for v in kp[i, a])
            pb = tuple(round(v) for v in kp[i, b])
            conf = float(np.clip(min(sc[i, a], sc[i, b]), 0.0, 1.0))
            alpha = 0.35 + 0.65 * conf
            cv2.line(layer, pa, pb, color, t, cv2.LINE_AA)
            cv2.line(alpha_acc, pa, pb, alpha, t, cv2.LINE_AA)
        for j in np.nonzero(sc[i] > min_score)[0]:
            p = tuple(round(v) for v in kp[i, j])
            cv2.circle(layer, p, t + 1, (255, 255, 255), -1, cv2.LINE_AA)
            cv2.circle(alpha_acc, p, t + 1, 1.0, -1, cv2.LINE_AA)
        a3 = alpha_acc[..., None]
        out = (layer * a3 + out * (1.0 - a3)).astype(np.uint8)
        if draw_ids and poses.track_ids is not None:
            found = kp[i][sc[i] > min_score]
            if len(found):
                x, y = found.min(axis=0)
                cv2.putText(out, str(int(poses.track_ids[i])), (int(x), max(12, int(y) - 6)),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 0), 2, cv2.LINE_AA)  # fmt: skip
    return out
