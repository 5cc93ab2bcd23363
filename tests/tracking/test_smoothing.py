"""One-Euro filter properties and the per-track, scale-aware PoseSmoother."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pytest

from posekit.poses import Poses
from posekit.tracking import OneEuroFilter, PoseSmoother, SmootherParams, person_sizes

Person = Callable[..., np.ndarray]
Make = Callable[..., Poses]


def run_filter(f: OneEuroFilter, xs: np.ndarray, times: np.ndarray, scale: float = 1.0) -> np.ndarray:
    return np.array([f(x, t, scale) for x, t in zip(xs, times, strict=True)])


def test_first_sample_passes_and_constant_is_unchanged() -> None:
    f = OneEuroFilter(min_cutoff=0.5, beta=3.0)
    value = np.array([[1.5, -2.0], [3.25, 7.0], [0.0, 1e3]])
    for i in range(20):
        np.testing.assert_array_equal(f(value, i / 30), value)


def test_any_shape_elementwise() -> None:
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(40, 2, 3, 4))
    times = np.arange(40) / 30
    joint = run_filter(OneEuroFilter(1.0, 0.5), xs, times)
    assert joint.shape == xs.shape
    one = run_filter(OneEuroFilter(1.0, 0.5), xs[:, 1, 2, 3], times)
    np.testing.assert_allclose(joint[:, 1, 2, 3], one)


def step_error(beta: float, frames_after: int) -> float:
    f = OneEuroFilter(min_cutoff=1.0, beta=beta, d_cutoff=1.0)
    xs = np.r_[np.zeros(30), np.ones(60)]
    out = run_filter(f, xs, np.arange(90) / 30)
    return float(1 - out[30 + frames_after])


def test_step_lag_shrinks_as_beta_grows() -> None:
    betas = [0.0, 0.1, 1.0, 10.0, 100.0]
    for k in (1, 3, 6):
        errors = [step_error(b, k) for b in betas]
        assert all(a > b for a, b in itertools.pairwise(errors)), errors
    # the step is followed (no overshoot, converges) whatever beta
    for b in betas:
        assert 0 <= step_error(b, 59) < 0.01


def test_beta_zero_is_a_first_order_low_pass() -> None:
    dt, cutoff = 1 / 30, 1.0
    alpha = 1 / (1 + 1 / (2 * np.pi * cutoff) / dt)
    out = run_filter(OneEuroFilter(cutoff, 0.0), np.r_[0.0, np.ones(5)], np.arange(6) * dt)
    np.testing.assert_allclose(out[1:], 1 - (1 - alpha) ** np.arange(1, 6))


def test_jitter_is_reduced() -> None:
    rng = np.random.default_rng(42)
    n = 600
    xs = 5.0 + rng.normal(0, 1, (n, 3))
    out = run_filter(OneEuroFilter(min_cutoff=1.0, beta=0.01), xs, np.arange(n) / 60)
    ratio = out[60:].var(axis=0) / xs[60:].var(axis=0)
    assert (ratio < 0.2).all(), ratio
    assert np.abs(out[60:].mean(axis=0) - 5.0).max() < 0.2  # no bias


def test_huge_min_cutoff_passes_input_through() -> None:
    rng = np.random.default_rng(1)
    xs = rng.normal(0, 10, (50, 4))
    times = np.arange(50) / 30
    out = run_filter(OneEuroFilter(min_cutoff=1e9, beta=0.0), xs, times)
    np.testing.assert_allclose(out, xs, atol=1e-6)
    errs = [np.abs(run_filter(OneEuroFilter(mc, 0.0), xs, times) - xs).max() for mc in (1.0, 10.0, 100.0, 1e4)]
    assert all(a > b for a, b in itertools.pairwise(errs))


def test_variable_dt() -> None:
    # one step sample: the response depends on the time elapsed, alpha = 1 / (1 + tau / dt)
    tau = 1 / (2 * np.pi * 1.0)
    for dt in (0.01, 0.05, 0.5):
        f = OneEuroFilter(1.0, 0.0)
        f(0.0, 0.0)
        assert float(f(1.0, dt)) == pytest.approx(1 / (1 + tau / dt))
    # irregular sampling of a step tracks the continuous first-order response like regular sampling
    rng = np.random.default_rng(3)
    irregular = np.cumsum(rng.uniform(1 / 1000, 1 / 250, 400))
    regular = np.arange(1, 400) / 1000
    for times in (irregular, regular):
        times = np.r_[0.0, times]
        out = run_filter(OneEuroFilter(1.0, 0.0), np.r_[0.0, np.ones(len(times) - 1)], times)
        expected = 1 - np.exp(-times[1:] / tau)
        assert np.abs(out[1:] - expected).max() < 0.02


def test_timestamps_must_increase() -> None:
    f = OneEuroFilter()
    f(np.zeros(2), 1.0)
    with pytest.raises(ValueError, match="increase"):
        f(np.zeros(2), 1.0)
    with pytest.raises(ValueError, match="shape"):
        f(np.zeros(3), 2.0)


def test_nan_elements_reset_and_reinitialise() -> None:
    f = OneEuroFilter(1.0, 0.0)
    f(np.array([0.0, 0.0]), 0.0)
    out = f(np.array([1.0, np.nan]), 0.1)
    assert 0 < out[0] < 1
    assert np.isnan(out[1])
    out = f(np.array([1.0, 5.0]), 0.2)
    assert out[1] == 5.0  # came back: passes through
    assert 0 < out[0] < 1
    out = f(np.array([1.0, 6.0]), 0.3)
    assert 5.0 < out[1] < 6.0  # and is filtered from then on


def test_scale_makes_filter_scale_equivariant() -> None:
    rng = np.random.default_rng(9)
    xs = np.cumsum(rng.normal(0, 1, (80, 2)), axis=0)
    times = np.cumsum(rng.uniform(0.02, 0.05, 80))
    small = run_filter(OneEuroFilter(0.5, 2.0), xs, times, scale=1.0)
    large = run_filter(OneEuroFilter(0.5, 2.0), 7 * xs, times, scale=7.0)
    np.testing.assert_allclose(large, 7 * small, rtol=1e-9, atol=1e-9)
    unscaled = run_filter(OneEuroFilter(0.5, 2.0), 7 * xs, times)
    assert np.abs(unscaled - 7 * small).max() > 0.1  # without the scale the behaviour differs


# ---------------------------------------------------------------- PoseSmoother


def tracked(make_poses: Make, people: list[np.ndarray], ids: list[int], scores: list[float] | None = None) -> Poses:
    poses = make_poses(people)
    ks = poses.keypoint_scores if scores is None else np.where(poses.visible, np.array(scores)[:, None], 0.0)
    return Poses(poses.keypoints, ks, poses.scores, poses.schema, track_ids=np.array(ids))


def wandering_person(person_keypoints: Person, scale: float, n: int = 60) -> list[np.ndarray]:
    """A person walking with seeded jitter; at ``scale`` everything (size, motion, noise) is scaled."""
    rng = np.random.default_rng(11)
    frames = []
    for f in range(n):
        kp = person_keypoints(100 + 3 * f, 200 + 2 * np.sin(f / 5), 100, phase=0.3 * f)
        frames.append(scale * (kp + rng.normal(0, 1.5, kp.shape)))
    return frames


def test_pose_smoother_is_scale_invariant(person_keypoints: Person, make_poses: Make) -> None:
    times = np.cumsum(np.random.default_rng(4).uniform(1 / 40, 1 / 20, 60))
    outputs = {}
    for scale in (1.0, 4.0):
        smoother = PoseSmoother()
        frames = wandering_person(person_keypoints, scale)
        outputs[scale] = np.stack(
            [
                smoother.smooth(tracked(make_poses, [kp], [3]), t).keypoints[0]
                for kp, t in zip(frames, times, strict=True)
            ]
        )
        raw = np.stack(frames)
        assert np.abs(outputs[scale] - raw).max() > 0.5 * scale  # it does smooth
    np.testing.assert_allclose(outputs[4.0], 4 * outputs[1.0], rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize(("beta", "max_ratio"), [(80.0, 0.8), (5.0, 0.4)])
def test_pose_smoother_reduces_jitter_of_still_person(
    person_keypoints: Person, make_poses: Make, beta: float, max_ratio: float
) -> None:
    """MediaPipe's beta 80 trades little jitter reduction for low lag; a smaller beta smooths more."""
    rng = np.random.default_rng(8)
    base = person_keypoints(300, 300, 200)
    smoother = PoseSmoother(SmootherParams(beta=beta))
    raw, out = [], []
    for f in range(150):
        kp = base + rng.normal(0, 1.0, base.shape)
        raw.append(kp)
        out.append(smoother.smooth(tracked(make_poses, [kp], [0]), f / 30).keypoints[0])
    raw_err = np.abs(np.stack(raw)[30:] - base).mean()
    out_err = np.abs(np.stack(out)[30:] - base).mean()
    assert out_err < max_ratio * raw_err


def test_missing_keypoints_stay_missing_and_reinitialise(person_keypoints: Person, make_poses: Make) -> None:
    smoother = PoseSmoother(SmootherParams(min_cutoff=1.0, beta=0.0))
    for f in range(8):
        kp = person_keypoints(100 + 5 * f, 200, 100)
        if f in (3, 4, 5):
            kp[9] = np.nan  # left wrist not found
        out = smoother.smooth(tracked(make_poses, [kp], [0]), f / 30)
        if f in (3, 4, 5):
            assert np.isnan(out.keypoints[0, 9]).all()
            assert out.keypoint_scores[0, 9] == 0
            assert out.visible[0].sum() == 16
        if f == 6:  # back: re-initialised, so exactly the input, while the rest lags behind
            np.testing.assert_allclose(out.keypoints[0, 9], kp[9], rtol=1e-6)
            assert out.keypoint_scores[0, 9] == pytest.approx(0.9)
            assert out.keypoints[0, 0, 0] < kp[0, 0] - 1
        if f == 7:
            assert out.keypoints[0, 9, 0] < kp[9, 0]


def test_scores_are_low_passed(person_keypoints: Person, make_poses: Make) -> None:
    smoother = PoseSmoother()
    kp = person_keypoints(100, 100, 100)
    out = smoother.smooth(tracked(make_poses, [kp], [0], [1.0]), 0.0)
    np.testing.assert_allclose(out.keypoint_scores[0], 1.0)
    out = smoother.smooth(tracked(make_poses, [kp], [0], [0.5]), 0.1)
    np.testing.assert_allclose(out.keypoint_scores[0], 0.1 * 0.5 + 0.9 * 1.0, rtol=1e-6)
    out = smoother.smooth(tracked(make_poses, [kp], [0], [0.5]), 0.2)
    np.testing.assert_allclose(out.keypoint_scores[0], 0.1 * 0.5 + 0.9 * 0.95, rtol=1e-6)


def test_tracks_are_independent_and_reset_when_lost(person_keypoints: Person, make_poses: Make) -> None:
    smoother = PoseSmoother(SmootherParams(min_cutoff=1.0, beta=0.0))
    a0, b0 = person_keypoints(100, 200, 100), person_keypoints(400, 200, 100)
    smoother.smooth(tracked(make_poses, [a0, b0], [0, 1]), 0.0)
    a1, b1 = a0 + 10, b0 + 10
    out = smoother.smooth(tracked(make_poses, [b1, a1], [1, 0]), 0.1)  # order does not matter
    lag_b, lag_a = (a1[0] - out.keypoints[1, 0])[0], (b1[0] - out.keypoints[0, 0])[0]
    assert lag_a == pytest.approx(lag_b, rel=1e-4)
    assert lag_a > 1
    # track 1 is absent for one call: its state is dropped, so it comes back unfiltered
    smoother.smooth(tracked(make_poses, [a1], [0]), 0.2)
    assert smoother.track_ids == frozenset({0})
    b2 = b1 + 30
    out = smoother.smooth(tracked(make_poses, [a1, b2, a1 + 200], [0, 1, -1]), 0.3)
    np.testing.assert_allclose(out.keypoints[1], b2, rtol=1e-6)
    np.testing.assert_allclose(out.keypoints[2], a1 + 200, rtol=1e-6)  # untracked: passes through
    assert out.track_ids.tolist() == [0, 1, -1]


def test_smoother_input_checks(person_keypoints: Person, make_poses: Make) -> None:
    smoother = PoseSmoother()
    kp = person_keypoints(100, 100, 100)
    with pytest.raises(ValueError, match="track_ids"):
        smoother.smooth(make_poses([kp]), 0.0)
    with pytest.raises(ValueError, match="unique"):
        smoother.smooth(tracked(make_poses, [kp, kp], [2, 2]), 0.0)
    smoother.smooth(tracked(make_poses, [kp], [2]), 1.0)
    with pytest.raises(ValueError, match="increase"):
        smoother.smooth(tracked(make_poses, [kp], [2]), 1.0)
    assert len(smoother.smooth(Poses(np.zeros((0, 17, 2)), np.zeros((0, 17)), np.zeros(0), "coco17",
                                     track_ids=np.zeros(0)), 2.0)) == 0  # fmt: skip


def test_person_sizes(make_poses: Make) -> None:
    kp = np.full((17, 2), np.nan)
    kp[0], kp[1] = (10, 20), (50, 120)
    assert person_sizes(make_poses([kp])).tolist() == [70.0]
