"""The stream runners: the threaded one gives the sequential one's outputs in the same order, and
both end cleanly on a source stop or an interrupt and leave nothing half-written on an error."""

from __future__ import annotations

import _thread
import csv
import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from posekit.io.sinks import CocoTrackJsonSink, CsvSink, OpenPoseJsonSink, Sink, VideoSink
from posekit.io.video import Frame, Source, open_source
from posekit.poses import Poses
from posekit.schemas import get_schema
from posekit.stream import STAGES, RunSummary, StageError, run_sequential, run_stream

COCO = get_schema("coco17")
RUNNERS = [pytest.param(run_sequential, id="sequential"), pytest.param(run_stream, id="threaded")]
BONN = "posetrack-bonn/videos/060470979"


class FakeModel:
    """Deterministic Poses computed from the pixels (cheap: the point is the plumbing), with a small
    random delay so the threads interleave differently on every run."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.calls = 0
        self.fail_on = fail_on

    def __call__(self, rgb: np.ndarray) -> Poses:
        self.calls += 1
        if self.fail_on is not None and int(rgb[0, 0, 0]) == self.fail_on:
            raise ValueError(f"cannot handle frame with marker {self.fail_on}")
        time.sleep(random.uniform(0, 0.003))
        h, w = rgb.shape[:2]
        means = rgb.reshape(-1, 3).mean(axis=0)
        n = 1 + int(means[1]) % 3
        kp = np.zeros((n, COCO.num_keypoints, 2), np.float32)
        for i in range(n):
            kp[i, :, 0] = (means[0] + 7 * i + np.arange(COCO.num_keypoints)) % w
            kp[i, :, 1] = (means[2] + 5 * i + np.arange(COCO.num_keypoints)) % h
        ks = np.full((n, COCO.num_keypoints), 0.5, np.float32)
        return Poses(kp, ks, np.linspace(0.9, 0.5, n), COCO)


class OrderedTracker:
    """A stateful post-process hook: fails unless frames come in order; numbers people per frame."""

    def __init__(self) -> None:
        self.last = -1

    def __call__(self, poses: Poses, frame: Frame) -> Poses:
        assert frame.index > self.last, f"frame {frame.index} after {self.last}"
        self.last = frame.index
        time.sleep(random.uniform(0, 0.002))
        ids = 100 * frame.index + np.arange(len(poses))
        return Poses(poses.keypoints, poses.keypoint_scores, poses.scores, poses.schema, track_ids=ids)


class Collect(Sink):
    """Keeps every frame's results in memory."""

    def __init__(self) -> None:
        super().__init__()
        self.path = Path("memory")
        self.items: list[tuple[int, float, np.ndarray, np.ndarray | None]] = []
        self.committed = self.discarded = False

    def _write(self, frame: Frame, poses: Poses) -> None:
        self.items.append((frame.index, frame.timestamp, poses.keypoints.copy(), poses.track_ids))

    def _commit(self) -> None:
        self.committed = True

    def _discard(self) -> None:
        self.discarded = True


class MarkedSource(Source):
    """``n`` synthetic frames whose pixel (0, 0, 0) is the frame index; optionally raises after
    ``raise_after`` frames. Counts how many frames were handed out."""

    def __init__(self, n: int, raise_after: int | None = None, exc: BaseException | None = None) -> None:
        self.name, self.fps, self.size, self.frame_count = "marked", 10.0, (40, 30), n
        self.n, self.raise_after, self.exc = n, raise_after, exc
        self.yielded = 0
        self.closed = False

    def __iter__(self) -> Iterator[Frame]:
        for i in range(self.n):
            if self.raise_after is not None and i == self.raise_after:
                raise self.exc or KeyboardInterrupt
            rgb = np.full((30, 40, 3), (i * 37) % 256, np.uint8)
            rgb[0, 0, 0] = i
            self.yielded += 1
            yield Frame(rgb, i, i / 10, self.name)

    def close(self) -> None:
        self.closed = True


def _csv_frames(path: Path) -> list[int]:
    with path.open(newline="") as f:
        return sorted({int(r["frame"]) for r in csv.DictReader(f)})


def _same(a: Collect, b: Collect) -> None:
    assert [i[0] for i in a.items] == [i[0] for i in b.items]
    for x, y in zip(a.items, b.items, strict=True):
        assert x[1] == y[1]
        np.testing.assert_array_equal(x[2], y[2])
        np.testing.assert_array_equal(x[3], y[3])


@pytest.fixture(scope="module")
def bonn_video(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    frames = sorted((data_dir / BONN).glob("*.jpg"))
    path = tmp_path_factory.mktemp("stream") / "bonn.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (960, 540))
    for f in frames:
        writer.write(cv2.imread(str(f)))
    writer.release()
    return path


def test_threaded_gives_the_sequential_outputs_in_order(bonn_video: Path, tmp_path: Path) -> None:
    outs = {}
    for runner in (run_sequential, run_stream):
        d = tmp_path / runner.__name__
        collect = Collect()
        sinks = [collect, CsvSink(d / "t.csv"), CocoTrackJsonSink(d / "c.json"), OpenPoseJsonSink(d / "op")]
        summary = runner(bonn_video, FakeModel(), sinks, postprocess=OrderedTracker(), queue_size=2, progress=False)
        assert summary.frames == 41
        assert summary.source_stop is None
        assert not summary.interrupted
        assert collect.committed
        assert [i[0] for i in collect.items] == list(range(41))
        assert all(ids is not None and ids[0] == 100 * i for i, _, _, ids in collect.items)
        outs[runner.__name__] = (collect, d)
    (seq, d1), (thr, d2) = outs["run_sequential"], outs["run_stream"]
    _same(seq, thr)
    assert (d1 / "t.csv").read_bytes() == (d2 / "t.csv").read_bytes()
    assert (d1 / "c.json").read_bytes() == (d2 / "c.json").read_bytes()
    assert sorted(p.name for p in (d2 / "op").iterdir()) == sorted(p.name for p in (d1 / "op").iterdir())
    assert len(list((d2 / "op").iterdir())) == 41


def test_many_runs_keep_order_with_tiny_queues() -> None:
    ref = Collect()
    run_sequential(MarkedSource(60), FakeModel(), [ref], postprocess=OrderedTracker(), progress=False)
    for _ in range(3):
        got = Collect()
        run_stream(MarkedSource(60), FakeModel(), [got], postprocess=OrderedTracker(), queue_size=1, progress=False)
        _same(ref, got)


def test_summary(bonn_video: Path) -> None:
    s = run_stream(str(bonn_video), FakeModel(), [], max_frames=7, progress=False)
    assert isinstance(s, RunSummary)
    assert s.frames == 7
    assert s.runner == "threaded"
    assert set(s.busy) == set(STAGES)
    assert all(v >= 0 for v in s.busy.values())
    assert s.busy["infer"] > 0
    assert s.wall_time > 0
    assert s.fps == pytest.approx(7 / s.wall_time)
    d = s.as_dict()
    assert json.loads(json.dumps(d)) == d


def test_back_pressure_bounds_the_frames_in_flight() -> None:
    src = MarkedSource(40)
    lags = []

    class Slow(Collect):
        def _write(self, frame: Frame, poses: Poses) -> None:
            time.sleep(0.002)
            lags.append(src.yielded - 1 - frame.index)
            super()._write(frame, poses)

    q = 2
    run_stream(src, FakeModel(), [Slow()], queue_size=q, progress=False)
    assert len(lags) == 40
    # at most q frames in each of the 3 queues plus one held by each of the 4 stages
    assert max(lags) <= 3 * q + 4
    assert not src.closed  # a Source passed in stays the caller's to close


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("stage", ["infer", "post", "write"])
def test_a_stage_exception_propagates_and_leaves_no_files(runner: Any, stage: str, tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text("old")
    model = FakeModel(fail_on=5 if stage == "infer" else None)

    def post(poses: Poses, frame: Frame) -> Poses:
        if stage == "post" and frame.index == 5:
            raise ValueError("post failed")
        return poses

    class Failing(Collect):
        def _write(self, frame: Frame, poses: Poses) -> None:
            if stage == "write" and frame.index == 5:
                raise ValueError("disk full")
            super()._write(frame, poses)

    collect = Failing()
    sinks = [CsvSink(tmp_path / "t.csv"), VideoSink(tmp_path / "v.mp4"), CocoTrackJsonSink(tmp_path / "c.json"),
             OpenPoseJsonSink(tmp_path / "op"), collect]  # fmt: skip
    with pytest.raises(StageError, match=rf"stage '{stage}' failed on frame 5: ValueError") as info:
        runner(MarkedSource(20), model, sinks, postprocess=post, queue_size=2, progress=False)
    assert info.value.stage == stage
    assert info.value.frame_index == 5
    assert isinstance(info.value.__cause__, ValueError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json"]  # no new file, no temp file
    assert (tmp_path / "c.json").read_text() == "old"
    assert collect.discarded
    assert not collect.committed
    assert [i[0] for i in collect.items] == list(range(len(collect.items)))
    assert len(collect.items) <= 5


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_model_returning_something_else_is_named(runner: Any) -> None:
    with pytest.raises(StageError, match=r"stage 'infer' failed on frame 0: TypeError: the model returned dict"):
        runner(MarkedSource(3), lambda rgb: {}, [], progress=False)


@pytest.mark.parametrize("runner", RUNNERS)
def test_keyboard_interrupt_from_the_source_ends_cleanly(runner: Any, tmp_path: Path) -> None:
    src = MarkedSource(20, raise_after=6)
    sinks = [CsvSink(tmp_path / "t.csv"), VideoSink(tmp_path / "v.mp4"), CocoTrackJsonSink(tmp_path / "c.json")]
    summary = runner(src, FakeModel(), sinks, queue_size=2, progress=False)
    assert summary.interrupted
    assert summary.frames == 6  # every frame read before the interrupt is finished
    assert _csv_frames(tmp_path / "t.csv") == list(range(6))
    assert sorted({r["frame_id"] for r in json.loads((tmp_path / "c.json").read_text())}) == list(range(6))
    cap = cv2.VideoCapture(str(tmp_path / "v.mp4"))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 6
    cap.release()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json", "t.csv", "v.mp4"]


@pytest.mark.parametrize("runner", RUNNERS)
def test_ctrl_c_in_the_main_thread_keeps_a_complete_prefix(runner: Any, tmp_path: Path) -> None:
    class InterruptingModel(FakeModel):
        def __call__(self, rgb: np.ndarray) -> Poses:
            if int(rgb[0, 0, 0]) == 8:
                _thread.interrupt_main()  # what Ctrl+C does: KeyboardInterrupt in the main thread
            return super().__call__(rgb)

    summary = runner(MarkedSource(200), InterruptingModel(), [CsvSink(tmp_path / "t.csv")], progress=False)
    assert summary.interrupted
    assert 8 <= summary.frames < 200
    assert _csv_frames(tmp_path / "t.csv") == list(range(summary.frames))


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_source_error_flushes_the_frames_so_far(runner: Any, tmp_path: Path) -> None:
    summary = runner(MarkedSource(20, raise_after=4, exc=OSError("network gone")), FakeModel(),
                     [CsvSink(tmp_path / "t.csv")], progress=False)  # fmt: skip
    assert summary.frames == 4
    assert not summary.interrupted
    assert summary.source_stop is not None
    assert summary.source_stop.index == 4
    assert "OSError: network gone" in str(summary.source_stop)
    assert _csv_frames(tmp_path / "t.csv") == [0, 1, 2, 3]


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_truncated_video_is_processed_up_to_the_cut(runner: Any, bonn_video: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.avi"
    data = bonn_video.read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    with open_source(cut) as src:
        n = len(list(src))
    summary = runner(cut, FakeModel(), [CsvSink(tmp_path / "t.csv")], progress=False)
    assert 0 < n < 41
    assert summary.frames == n
    assert summary.source_stop is not None
    assert summary.source_stop.index == n
    assert summary.source_stop.expected == 41
    assert _csv_frames(tmp_path / "t.csv") == list(range(n))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="queue_size must be >= 1"):
        run_stream(MarkedSource(1), FakeModel(), queue_size=0)
    with pytest.raises(ValueError, match="max_frames must be >= 0"):
        run_sequential(MarkedSource(1), FakeModel(), max_frames=-1)


@pytest.mark.network
def test_real_openpose_model_on_three_frames(bonn_video: Path, tmp_path: Path) -> None:
    import posekit

    model = posekit.load("openpose-mobilenet-thin")
    results = {}
    for runner in (run_sequential, run_stream):
        collect = Collect()
        video = tmp_path / f"{runner.__name__}.mp4"
        summary = runner(bonn_video, model, [collect, VideoSink(video)], max_frames=3, progress=False)
        assert summary.frames == 3
        assert summary.model_stages.keys() == {"network", "decode"}
        assert video.is_file()
        results[runner.__name__] = collect
    _same(results["run_sequential"], results["run_stream"])
    # the four people of the Bonn sequence are found in each frame
    assert all(len(kp) >= 3 for _, _, kp, _ in results["run_stream"].items)
