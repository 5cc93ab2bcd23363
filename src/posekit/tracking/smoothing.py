"""Temporal smoothing of keypoints: the One-Euro filter and a per-track pose smoother.

The One-Euro filter (Casiez, Roussel and Vogel, CHI 2012) is a first-order low-pass filter whose
cutoff frequency adapts to the signal's speed: ``cutoff = min_cutoff + beta * |dx|``, where ``dx``
is the derivative low-passed at ``d_cutoff``. Slow signals are smoothed hard (little jitter), fast
ones lightly (little lag). The smoothing factor for a sample ``dt`` seconds after the previous one is
``alpha = 1 / (1 + tau / dt)`` with ``tau = 1 / (2 pi cutoff)``, so variable frame rates are handled.

``PoseSmoother`` applies one filter per tracked person with MediaPipe's video-mode settings for
BlazePose (``min_cutoff 0.05``, ``beta 80``, ``d_cutoff 1``, scores low-passed with ``alpha 0.1``),
with speeds measured in person sizes per second so that the smoothing does not depend on how large
the person appears.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike, NDArray

from posekit.poses import Poses

__all__ = ["OneEuroFilter", "PoseSmoother", "SmootherParams", "person_sizes"]


def _alpha(cutoff: NDArray[np.float64] | float, dt: float) -> NDArray[np.float64]:
    tau = 1.0 / (2.0 * np.pi * np.asarray(cutoff, dtype=np.float64))
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One-Euro filter over numpy arrays of any (fixed) shape, each element filtered independently.

    ``min_cutoff`` (Hz) sets the smoothing of a still signal, ``beta`` how fast the cutoff rises
    with speed, ``d_cutoff`` (Hz) the low-pass applied to the derivative. Call it with each new
    sample and its timestamp in seconds (strictly increasing); the first sample passes through
    unchanged.

    NaN handling: an element that is NaN in the input is NaN in the output and its state is
    dropped, so when it comes back its first value passes through again (a re-initialisation).

    ``scale`` (per call, a scalar or an array broadcastable to the samples) is the unit in which
    speeds are measured for the cutoff adaptation: the cutoff is ``min_cutoff + beta * |dx| / scale``.
    Pass a person's size to make the filter's behaviour independent of that size.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0) -> None:
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError("min_cutoff and d_cutoff must be > 0 and beta >= 0")
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        """Forget the state: the next sample passes through."""
        self._x: NDArray[np.float64] | None = None  # last filtered value (NaN = no state)
        self._dx: NDArray[np.float64] | None = None  # last filtered derivative
        self._t: float | None = None

    def __call__(self, x: ArrayLike, timestamp: float, scale: ArrayLike = 1.0) -> NDArray[np.float64]:
        x = np.array(x, dtype=np.float64)
        t = float(timestamp)
        if self._x is None or self._t is None:
            self._x = x.copy()
            self._dx = np.zeros_like(x)
            self._t = t
            return x
        if x.shape != self._x.shape:
            raise ValueError(f"sample shape {x.shape} differs from the filter's {self._x.shape}")
        dt = t - self._t
        if not dt > 0:
            raise ValueError(f"timestamps must increase strictly: {t} after {self._t}")
        assert self._dx is not None
        scale_arr = np.broadcast_to(np.asarray(scale, dtype=np.float64), x.shape)
        if np.any(scale_arr <= 0):
            raise ValueError("scale must be > 0")
        fresh = np.isnan(self._x)  # no state yet: pass through
        with np.errstate(invalid="ignore"):
            dx = (x - self._x) / dt
            dx_hat = self._dx + _alpha(self.d_cutoff, dt) * (dx - self._dx)
            cutoff = self.min_cutoff + self.beta * np.abs(dx_hat) / scale_arr
            x_hat = self._x + _alpha(cutoff, dt) * (x - self._x)
        x_hat = np.where(fresh, x, x_hat)
        dx_hat = np.where(fresh | np.isnan(x), 0.0, dx_hat)
        self._x = x_hat  # NaN wherever the input was NaN: state dropped
        self._dx = dx_hat
        self._t = t
        return x_hat.copy()


@dataclass(frozen=True)
class SmootherParams:
    """Settings of ``PoseSmoother``; the defaults are MediaPipe's BlazePose video-mode values.

    - ``min_cutoff`` (Hz, 0.05), ``beta`` (80), ``d_cutoff`` (Hz, 1.0): One-Euro parameters, with the
      keypoint speed measured in person sizes per second (so ``beta`` is per size-per-second).
    - ``score_alpha`` (0.1): keypoint scores are low-passed as ``s = a * new + (1 - a) * previous``.
    """

    min_cutoff: float = 0.05
    beta: float = 80.0
    d_cutoff: float = 1.0
    score_alpha: float = 0.1

    def __post_init__(self) -> None:
        if not 0 < self.score_alpha <= 1:
            raise ValueError("score_alpha must be in (0, 1]")
        if self.min_cutoff <= 0 or self.d_cutoff <= 0 or self.beta < 0:
            raise ValueError("min_cutoff and d_cutoff must be > 0 and beta >= 0")


@dataclass
class _TrackState:
    keypoints: OneEuroFilter
    scores: NDArray[np.float64]  # low-passed keypoint scores, 0 where missing


def person_sizes(poses: Poses) -> NDArray[np.float64]:
    """``(N,)`` size of each person: the mean of the width and height of ``bounding_boxes()``
    (MediaPipe's object scale), at least 1 pixel."""
    b = poses.bounding_boxes().astype(np.float64)
    return np.maximum(((b[:, 2] - b[:, 0]) + (b[:, 3] - b[:, 1])) / 2.0, 1.0)


class PoseSmoother:
    """Smooths each tracked person's keypoints over time, one One-Euro state per track id.

    ``smooth(poses, timestamp)`` needs ``poses.track_ids`` (from ``Tracker``); timestamps are in
    seconds and must increase strictly between calls.

    - Scale awareness: the keypoint speed that raises the cutoff is divided by the person's size
      (``person_sizes``: mean of box width and height), so a person twice as large moving twice as
      many pixels is smoothed identically, and the output scales with the input.
    - A track id absent from a call loses its state; when it comes back (or a new id appears) its
      first pose passes through unchanged. People with track id ``-1`` pass through unsmoothed.
    - A missing keypoint (score 0) stays missing (NaN, score 0) and its filter state is dropped; when
      it reappears its first position and score pass through.
    - Keypoint scores of present keypoints are low-passed with ``score_alpha`` (MediaPipe's
      visibility smoothing). Person scores, boxes and extras are returned unchanged.
    """

    def __init__(self, params: SmootherParams | None = None) -> None:
        self.params = params if params is not None else SmootherParams()
        self._tracks: dict[int, _TrackState] = {}
        self._last_time: float | None = None

    def reset(self) -> None:
        self._tracks.clear()
        self._last_time = None

    @property
    def track_ids(self) -> frozenset[int]:
        """Ids that currently have a filter state."""
        return frozenset(self._tracks)

    def smooth(self, poses: Poses, timestamp: float) -> Poses:
        if poses.track_ids is None:
            raise ValueError("PoseSmoother needs poses with track_ids (run a Tracker first)")
        t = float(timestamp)
        if self._last_time is not None and not t > self._last_time:
            raise ValueError(f"timestamps must increase strictly: {t} after {self._last_time}")
        ids = [int(i) for i in poses.track_ids]
        tracked = [i for i in ids if i >= 0]
        if len(set(tracked)) != len(tracked):
            raise ValueError("track ids must be unique within a frame")
        for gone in set(self._tracks) - set(tracked):
            del self._tracks[gone]
        self._last_time = t

        p = self.params
        kp_out = poses.keypoints.astype(np.float64)
        ks_out = poses.keypoint_scores.astype(np.float64)
        sizes = person_sizes(poses)
        for n, tid in enumerate(ids):
            if tid < 0:
                continue
            present = (poses.keypoint_scores[n] > 0) & np.isfinite(poses.keypoints[n]).all(axis=1)
            xy = np.where(present[:, None], poses.keypoints[n], np.nan)
            score = np.where(present, poses.keypoint_scores[n], 0.0).astype(np.float64)
            state = self._tracks.get(tid)
            if state is None:
                state = _TrackState(OneEuroFilter(p.min_cutoff, p.beta, p.d_cutoff), np.zeros_like(score))
                self._tracks[tid] = state
            kp_out[n] = state.keypoints(xy, t, scale=sizes[n])
            prev = state.scores
            new_score = np.where(prev > 0, p.score_alpha * score + (1 - p.score_alpha) * prev, score)
            state.scores = np.where(present, new_score, 0.0)
            ks_out[n] = state.scores
        return replace(poses, keypoints=kp_out, keypoint_scores=ks_out)
