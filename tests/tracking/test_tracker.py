"""Tracker: persistent ids on synthetic sequences (crossing, occlusion, re-entry, new people)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from posekit.poses import Poses
from posekit.tracking import Tracker, TrackerParams, box_iou

Person = Callable[..., np.ndarray]
Make = Callable[..., Poses]


def shuffled(poses: Poses, labels: list[str], rng: np.random.Generator) -> tuple[Poses, list[str]]:
    """The people in a random order, so the tracker cannot lean on detection order."""
    order = rng.permutation(len(poses))
    return poses[order], [labels[i] for i in order]


def crossing_frames(
    person_keypoints: Person, n_frames: int = 21, hide_b: range = range(0)
) -> list[tuple[list[np.ndarray], list[str]]]:
    """A walks right, B walks left, crossing between frames 10 and 11 where their boxes overlap heavily.

    They move 60 px towards each other per frame, more than they are apart at the crossing, so the
    last positions alone would swap them: only the constant-velocity prediction keeps them apart."""
    rng = np.random.default_rng(1)
    frames = []
    for f in range(n_frames):
        a = person_keypoints(100 + 30 * f, 300, 200, phase=0.5 * f)
        b = person_keypoints(715 - 30 * f, 305, 190, phase=0.5 * f + 1)
        people, labels = [a + rng.normal(0, 2, a.shape)], ["A"]
        if f not in hide_b:
            people.append(b + rng.normal(0, 2, b.shape))
            labels.append("B")
        frames.append((people, labels))
    return frames


def run(tracker: Tracker, frames: list[tuple[list[np.ndarray], list[str]]], make_poses: Make, schema: str = "coco17"):
    """Feed the frames in random person order; return the {label: id} seen at each frame."""
    rng = np.random.default_rng(2)
    history = []
    for f, (people, labels) in enumerate(frames):
        poses, labels = shuffled(make_poses(people, schema=schema), labels, rng)
        out = tracker.update(poses, f)
        assert out.track_ids is not None
        assert len(out) == len(poses)
        np.testing.assert_array_equal(out.keypoints, poses.keypoints)  # same people, same order
        history.append(dict(zip(labels, out.track_ids.tolist(), strict=True)))
    return history


@pytest.mark.parametrize(
    ("schema", "fallback_sigma"),
    [("coco17", 0.07), ("openpose18", 0.07), ("blazepose33", 0.07), ("blazepose33", None)],
)
def test_crossing_people_keep_their_ids(person_keypoints: Person, make_poses: Make, schema, fallback_sigma) -> None:
    frames = crossing_frames(person_keypoints)
    # the scenario really is hard: the boxes overlap a lot at the crossing
    mid = make_poses(frames[10][0]).bounding_boxes()
    assert box_iou(mid[:1], mid[1:])[0, 0] > 0.5
    history = run(Tracker(TrackerParams(fallback_sigma=fallback_sigma)), frames, make_poses, schema)
    assert history[0]["A"] != history[0]["B"]
    for ids in history:
        assert ids == history[0]


def test_person_occluded_at_the_crossing_gets_its_id_back(person_keypoints: Person, make_poses: Make) -> None:
    frames = crossing_frames(person_keypoints, hide_b=range(8, 12))
    history = run(Tracker(), frames, make_poses)
    a, b = history[0]["A"], history[0]["B"]
    assert all(h["A"] == a for h in history)
    assert [h.get("B") for h in history[12:]] == [b] * (len(frames) - 12)


def walk_with_gap(person_keypoints: Person, gap: range, n_frames: int, velocity: float = 8.0):
    frames = []
    for f in range(n_frames):
        people = [] if f in gap else [person_keypoints(100 + velocity * f, 300, 200, phase=0.4 * f)]
        frames.append((people, ["P"] * len(people)))
    return frames


def test_reappearing_near_prediction_gets_old_id(person_keypoints: Person, make_poses: Make) -> None:
    frames = walk_with_gap(person_keypoints, range(10, 16), 25)
    history = run(Tracker(TrackerParams(max_age=10)), frames, make_poses)
    assert all(h == {} for h in history[10:16])
    assert {h["P"] for h in history if h} == {0}


@pytest.mark.parametrize(("gap", "same"), [(5, True), (6, False), (20, False)])
def test_max_age_boundary(person_keypoints: Person, make_poses: Make, gap: int, same: bool) -> None:
    frames = walk_with_gap(person_keypoints, range(10, 10 + gap), 10 + gap + 3)
    history = run(Tracker(TrackerParams(max_age=5)), frames, make_poses)
    old, new = history[9]["P"], history[10 + gap]["P"]
    assert (old == new) is same
    if not same:
        assert new > old
    assert history[-1]["P"] == new


def test_reappearing_far_from_prediction_or_resized_gets_new_id(person_keypoints: Person, make_poses: Make) -> None:
    tracker = Tracker()
    for f in range(5):
        tracker.update(make_poses([person_keypoints(100 + 8 * f, 300, 200)]), f)
    # gone for 3 frames; predicted centre at frame 8 is x = 164
    far = tracker.update(make_poses([person_keypoints(400, 300, 200)]), 8)
    assert far.track_ids.tolist() == [1]
    tracker = Tracker()
    for f in range(5):
        tracker.update(make_poses([person_keypoints(100 + 8 * f, 300, 200)]), f)
    shrunk = tracker.update(make_poses([person_keypoints(164, 300, 100)]), 8)
    assert shrunk.track_ids.tolist() == [1]
    tracker = Tracker()
    for f in range(5):
        tracker.update(make_poses([person_keypoints(100 + 8 * f, 300, 200)]), f)
    near = tracker.update(make_poses([person_keypoints(166, 305, 190)]), 8)
    assert near.track_ids.tolist() == [0]


def test_new_person_gets_new_id(person_keypoints: Person, make_poses: Make) -> None:
    tracker = Tracker()
    first = tracker.update(make_poses([person_keypoints(100, 300, 200), person_keypoints(400, 300, 200)]), 0)
    assert sorted(first.track_ids.tolist()) == [0, 1]
    three = [person_keypoints(102, 300, 200), person_keypoints(398, 300, 200), person_keypoints(250, 320, 150)]
    out = tracker.update(make_poses(three), 1)
    assert out.track_ids.tolist() == [*first.track_ids.tolist(), 2]


def test_ids_are_never_reused(person_keypoints: Person, make_poses: Make) -> None:
    """People come and go (each appears once, for a while); every person gets a fresh id."""
    tracker = Tracker(TrackerParams(max_age=2))
    rng = np.random.default_rng(5)
    spans = [(start, start + int(rng.integers(3, 8))) for start in range(0, 60, 4)]
    xs = rng.uniform(50, 600, len(spans))
    ids_of: dict[int, set[int]] = {p: set() for p in range(len(spans))}
    for f in range(70):
        alive = [p for p, (s, e) in enumerate(spans) if s <= f < e]
        # stationary people at distinct places, so each one can only ever match itself
        poses = make_poses([person_keypoints(xs[p], 100 + 40 * (p % 5), 60) for p in alive])
        out = tracker.update(poses, f)
        for p, tid in zip(alive, out.track_ids.tolist(), strict=True):
            ids_of[p].add(tid)
    assert all(len(s) == 1 for s in ids_of.values())
    all_ids = [next(iter(s)) for s in ids_of.values()]
    assert len(set(all_ids)) == len(spans)
    tracker.reset()
    again = tracker.update(make_poses([person_keypoints(xs[0], 100, 60)]), 0)
    assert again.track_ids[0] > max(all_ids)


def test_empty_frames(person_keypoints: Person, make_poses: Make) -> None:
    tracker = Tracker(TrackerParams(max_age=3))
    out = tracker.update(Poses.empty("coco17"), 0)
    assert len(out) == 0
    assert out.track_ids is not None
    assert out.track_ids.shape == (0,)
    first = tracker.update(make_poses([person_keypoints(200, 300, 200)]), 1)
    for f in (2, 3):
        assert len(tracker.update(Poses.empty("coco17"), f)) == 0
    back = tracker.update(make_poses([person_keypoints(200, 300, 200)]), 4)
    assert back.track_ids.tolist() == first.track_ids.tolist() == [0]


def test_low_score_people_are_not_started_but_can_continue(person_keypoints: Person, make_poses: Make) -> None:
    tracker = Tracker(TrackerParams(min_new_track_score=0.5))
    out = tracker.update(make_poses([person_keypoints(100, 300, 200), person_keypoints(400, 300, 200)], [0.9, 0.2]), 0)
    assert out.track_ids.tolist() == [0, -1]
    assert tracker.track_ids == (0,)
    out = tracker.update(make_poses([person_keypoints(104, 300, 200)], [0.1]), 1)
    assert out.track_ids.tolist() == [0]


def test_person_without_keypoints_is_not_tracked(make_poses: Make) -> None:
    nobody = np.full((17, 2), np.nan)
    out = Tracker().update(make_poses([nobody]), 0)
    assert out.track_ids.tolist() == [-1]


def test_partial_keypoints_still_match(person_keypoints: Person, make_poses: Make) -> None:
    tracker = Tracker()
    tracker.update(make_poses([person_keypoints(200, 300, 200), person_keypoints(450, 300, 200)]), 0)
    upper = person_keypoints(201, 300, 200)
    upper[11:] = np.nan  # legs hidden
    out = tracker.update(make_poses([person_keypoints(451, 300, 200), upper]), 1)
    assert out.track_ids.tolist() == [1, 0]


def test_timestamps_and_frame_order_are_checked(person_keypoints: Person, make_poses: Make) -> None:
    tracker = Tracker()
    poses = make_poses([person_keypoints(200, 300, 200)])
    tracker.update(poses, 0, timestamp=0.0)
    with pytest.raises(ValueError, match="every update"):
        tracker.update(poses, 1)
    with pytest.raises(ValueError, match="frame_index"):
        tracker.update(poses, 0, timestamp=1.0)
    out = tracker.update(poses, 1, timestamp=0.04)
    assert out.track_ids.tolist() == [0]
    with pytest.raises(ValueError, match="schema"):
        tracker.update(poses.with_schema("openpose18"), 2, timestamp=0.08)


def test_velocity_uses_timestamps(person_keypoints: Person, make_poses: Make) -> None:
    """Frames arriving at uneven times: with timestamps, the prediction follows real time."""
    times = [0.0, 0.1, 0.2, 0.3, 0.9]  # then a 0.6 s gap with no frames dropped in between
    tracker = Tracker(TrackerParams(reid_max_distance=0.5))
    for f, t in enumerate(times):
        out = tracker.update(make_poses([person_keypoints(100 + 300 * t, 300, 200)]), f, timestamp=t)
        assert out.track_ids.tolist() == [0]


def test_box_iou() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]])
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]])
    iou = box_iou(a, b)
    np.testing.assert_allclose(iou, [[50 / 150, 0, 1], [0, 0, 0]])
