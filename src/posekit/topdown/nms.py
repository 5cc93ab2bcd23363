"""Pose-level non-maximum suppression: AlphaPose's parametric pose NMS and OKS-NMS.

Both are pure functions of keypoints and scores that return the indices of the people to keep,
best first. Top-down pipelines need them because a detector may propose the same person twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from posekit.poses import Poses

__all__ = ["ParametricNMS", "oks", "oks_nms", "parametric_pose_nms"]


def _extent(keypoints: NDArray[np.floating], visible: NDArray[np.bool_]) -> NDArray[np.float64]:
    """``(N, 2)`` width and height of each person's visible-keypoint box (0 with none)."""
    lo = np.where(visible[..., None], keypoints, np.inf).min(axis=1)
    hi = np.where(visible[..., None], keypoints, -np.inf).max(axis=1)
    span = hi - lo
    return np.where(np.isfinite(span), span, 0.0)


def _greedy(
    scores: NDArray[np.floating], eliminated: Callable[[int, NDArray[np.intp]], NDArray[np.bool_]]
) -> NDArray[np.intp]:
    """Greedy NMS: the best remaining person is kept and removes the others ``eliminated`` says."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    alive = np.ones(len(order), dtype=bool)
    keep: list[int] = []
    for i in order:
        if not alive[i]:
            continue
        keep.append(int(i))
        alive[i] = False
        others = np.nonzero(alive)[0]
        if len(others):
            alive[others[eliminated(int(i), others)]] = False
    return np.asarray(keep, dtype=np.intp)


def parametric_pose_nms(
    keypoints: NDArray[np.floating],
    keypoint_scores: NDArray[np.floating],
    scores: NDArray[np.floating],
    *,
    delta1: float = 1.0,
    mu: float = 1.7,
    delta2: float = 2.65,
    gamma: float = 22.48 / 17,
    match_ratio: float = 5 / 17,
    alpha: float = 0.1,
) -> NDArray[np.intp]:
    """AlphaPose's parametric pose NMS (Fang et al., RMPE), returning kept indices, best first.

    The best remaining pose eliminates every other pose j whose distance to it is high:
    ``sum_k tanh(c_k/delta1) tanh(c'_k/delta1) [d_k <= r] + mu * sum_k exp(-d_k / (r delta2))``
    above ``gamma * K``, or which has at least ``match_ratio * K`` keypoints within ``r``, where
    ``d_k`` is the distance between the two poses' keypoint k and ``r = alpha x`` the best pose's
    size. The constants are AlphaPose's (gamma and the match count are per keypoint here, as
    given for 17 keypoints); distances are measured in units of ``r`` so the rule is scale-free.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    ks = np.asarray(keypoint_scores, dtype=np.float64)
    k = ks.shape[1]
    visible = ks > 0
    ref = alpha * np.maximum(_extent(kp, visible).max(axis=1), 1.0)

    def eliminated(i: int, others: NDArray[np.intp]) -> NDArray[np.bool_]:
        both = visible[i][None] & visible[others]
        d = np.where(both, np.linalg.norm(kp[others] - kp[i][None], axis=2) / ref[i], np.inf)
        near = d <= 1.0
        soft = (np.tanh(ks[i][None] / delta1) * np.tanh(ks[others] / delta1) * near).sum(axis=1)
        similarity = soft + mu * np.exp(-d / delta2).sum(axis=1)
        return (similarity > gamma * k) | (near.sum(axis=1) >= match_ratio * k)

    return _greedy(scores, eliminated)


def oks(
    reference: NDArray[np.floating],
    reference_visible: NDArray[np.bool_],
    others: NDArray[np.floating],
    others_visible: NDArray[np.bool_],
    area: float,
    sigmas: NDArray[np.floating],
) -> NDArray[np.float64]:
    """Object keypoint similarity of ``others (N, K, 2)`` to one ``reference (K, 2)`` for a person
    of ``area`` pixels, averaged over the keypoints found in both poses (as mmpose's OKS-NMS does:
    a duplicate that lost some keypoints still matches)."""
    var = (2 * np.asarray(sigmas, dtype=np.float64)) ** 2
    d2 = ((np.asarray(others, dtype=np.float64) - reference[None]) ** 2).sum(axis=2)
    e = d2 / var[None] / (area + np.spacing(1)) / 2
    both = reference_visible[None] & others_visible
    sim = np.where(both, np.exp(-np.where(both, e, 0.0)), 0.0)
    return sim.sum(axis=1) / np.maximum(both.sum(axis=1), 1)


def oks_nms(
    keypoints: NDArray[np.floating],
    keypoint_scores: NDArray[np.floating],
    scores: NDArray[np.floating],
    sigmas: NDArray[np.floating],
    *,
    threshold: float = 0.9,
    areas: NDArray[np.floating] | None = None,
) -> NDArray[np.intp]:
    """Greedy OKS-NMS: the best remaining pose eliminates poses with OKS above ``threshold``.
    ``areas`` default to each person's keypoint-box area."""
    kp = np.asarray(keypoints, dtype=np.float64)
    visible = np.asarray(keypoint_scores) > 0
    if areas is None:
        areas = _extent(kp, visible).prod(axis=1)
    area = np.asarray(areas, dtype=np.float64)

    def eliminated(i: int, others: NDArray[np.intp]) -> NDArray[np.bool_]:
        return oks(kp[i], visible[i], kp[others], visible[others], float(area[i]), sigmas) > threshold

    return _greedy(scores, eliminated)


@dataclass(frozen=True)
class ParametricNMS:
    """Parametric pose NMS as a pipeline step: ``Poses`` in, indices to keep out."""

    alpha: float = 0.1
    gamma: float = 22.48 / 17
    match_ratio: float = 5 / 17

    def __call__(self, poses: Poses) -> NDArray[np.intp]:
        if len(poses) < 2:
            return np.arange(len(poses))
        return parametric_pose_nms(poses.keypoints, poses.keypoint_scores, poses.scores, alpha=self.alpha,
                                   gamma=self.gamma, match_ratio=self.match_ratio)  # fmt: skip
