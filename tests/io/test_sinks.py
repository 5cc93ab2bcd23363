"""Result sinks: complete files only, their layouts, and nothing partial after an exception."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from posekit.io.sinks import CSV_COLUMNS, CocoTrackJsonSink, CsvSink, OpenPoseJsonSink, Sink, VideoSink
from posekit.io.video import Frame
from posekit.poses import Poses
from posekit.schemas import get_schema

COCO = get_schema("coco17")
H, W = 48, 64


def _frame(i: int, ts: float | None = None) -> Frame:
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[:, :, 1] = 10 * i
    return Frame(rgb, i, i / 10 if ts is None else ts, "test")


def _poses(i: int, tracks: bool = True) -> Poses:
    """Two people; person 1 misses its nose; positions move with the frame index."""
    kp = np.zeros((2, COCO.num_keypoints, 2), np.float32)
    kp[0] = [(10 + j + i, 5 + j) for j in range(COCO.num_keypoints)]
    kp[1] = [(30 + j, 20 + j + i) for j in range(COCO.num_keypoints)]
    ks = np.full((2, COCO.num_keypoints), 0.9, np.float32)
    kp[1, 0] = np.nan
    ks[1, 0] = 0.0
    return Poses(kp, ks, [0.8, 0.6], COCO, track_ids=[7, 3] if tracks else None)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith("."))


def test_video_sink_writes_a_complete_overlay_video(tmp_path: Path) -> None:
    target = tmp_path / "out" / "overlay.mp4"
    sink = VideoSink(target, fps=10)
    for i in range(5):
        sink.write(_frame(i), _poses(i))
        assert not target.exists()  # nothing at the target until close
    sink.close()
    assert sink.codec in ("avc1", "mp4v")
    assert _leftovers(tmp_path) == []
    cap = cv2.VideoCapture(str(target))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(10)
    decoded = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        decoded.append(bgr[..., ::-1])
    cap.release()
    assert len(decoded) == 5
    assert decoded[0].shape == (H, W, 3)
    # the skeleton is drawn: pixels along person 0 are bright, the plain background is not
    x, y = 10 + 5, 5 + 5  # keypoint 5 of person 0 in frame 0
    assert decoded[0][y, x].max() > 120
    assert decoded[0][H - 2, 2].max() < 40


def test_video_sink_without_frames_writes_nothing(tmp_path: Path) -> None:
    sink = VideoSink(tmp_path / "none.mp4")
    sink.close()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="container suffix"):
        VideoSink(tmp_path / "noext")
    with pytest.raises(ValueError, match="FourCC"):
        VideoSink(tmp_path / "a.mp4", codecs=("h264x",))


def test_video_sink_rejects_a_frame_of_another_size(tmp_path: Path) -> None:
    def run() -> None:
        with VideoSink(tmp_path / "v.mp4") as sink:
            sink.write(_frame(0), _poses(0))
            sink.write(Frame(np.zeros((48, 32, 3), np.uint8), 1, 0.1, "test"), _poses(1))

    with pytest.raises(ValueError, match="frame 1 is 32x48"):
        run()
    assert list(tmp_path.iterdir()) == []


def _all_sinks(folder: Path) -> list[Sink]:
    return [
        VideoSink(folder / "v.mp4"),
        CocoTrackJsonSink(folder / "coco.json"),
        OpenPoseJsonSink(folder / "openpose"),
        CsvSink(folder / "table.csv"),
    ]


def test_an_exception_mid_stream_leaves_nothing_partial(tmp_path: Path) -> None:
    (tmp_path / "coco.json").write_text("[]")  # an earlier result must survive the failed run
    sinks = _all_sinks(tmp_path)
    for i in range(4):
        for s in sinks:
            s.write(_frame(i), _poses(i))
    # the run fails here: every sink is aborted
    for s in sinks:
        s.abort()
        s.close()  # a no-op after abort: nothing is committed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coco.json"]
    assert (tmp_path / "coco.json").read_text() == "[]"


def test_context_manager_aborts_on_error_and_keeps_frames_on_keyboard_interrupt(tmp_path: Path) -> None:
    def run(name: str, exc: BaseException) -> None:
        with CsvSink(tmp_path / name) as sink:
            sink.write(_frame(0), _poses(0))
            raise exc

    with pytest.raises(ZeroDivisionError):
        run("a.csv", ZeroDivisionError())
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(KeyboardInterrupt):
        run("b.csv", KeyboardInterrupt())
    sink = CsvSink(tmp_path / "c.csv")
    sink.close()
    rows = list(csv.DictReader((tmp_path / "b.csv").open()))
    assert len(rows) == 2 * COCO.num_keypoints
    with pytest.raises(RuntimeError, match="already closed"):
        sink.write(_frame(1), _poses(1))


def test_coco_track_json(tmp_path: Path) -> None:
    path = tmp_path / "coco.json"
    with CocoTrackJsonSink(path) as sink:
        for i in range(3):
            sink.write(_frame(i), _poses(i))
        sink.write(_frame(3), _poses(3, tracks=False))
    res = json.loads(path.read_text())
    assert len(res) == 8
    assert [r["image_id"] for r in res] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert [r["frame_id"] for r in res] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert [r["track_id"] for r in res] == [7, 3, 7, 3, 7, 3, -1, -1]
    assert res[2]["keypoints"][:3] == [11.0, 5.0, 0.9]  # frame 1, person 0, nose
    assert res[1]["keypoints"][:3] == [0, 0, 0]  # the missing nose
    assert all(r["category_id"] == 1 and len(r["keypoints"]) == 51 for r in res)

    with CocoTrackJsonSink(path, image_ids={0: 1001, 1: 1002}) as sink:
        sink.write(_frame(1), _poses(1))
    assert {r["image_id"] for r in json.loads(path.read_text())} == {1002}
    with CocoTrackJsonSink(path, image_ids=lambda f: 500 + f.index) as sink:
        sink.write(_frame(4), _poses(4))
    assert {r["image_id"] for r in json.loads(path.read_text())} == {504}
    with pytest.raises(KeyError, match="no entry for frame 9"), CocoTrackJsonSink(path, image_ids={}) as sink:
        sink.write(_frame(9), _poses(9))
    assert {r["image_id"] for r in json.loads(path.read_text())} == {504}  # untouched by the failed run


def test_openpose_json_per_frame(tmp_path: Path) -> None:
    folder = tmp_path / "op"
    with OpenPoseJsonSink(folder, name="clip", schema="openpose18") as sink:
        for i in (0, 1, 12):
            sink.write(_frame(i), _poses(i))
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"clip_{i:012d}_keypoints.json" for i in (0, 1, 12)]
    doc = json.loads((folder / names[1]).read_text())
    assert [p["person_id"] for p in doc["people"]] == [[7], [3]]
    assert len(doc["people"][0]["pose_keypoints_2d"]) == 18 * 3
    assert doc["people"][0]["pose_keypoints_2d"][:3] == pytest.approx([11.0, 5.0, 0.9])


def test_csv_columns_and_rows(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    with CsvSink(path) as sink:
        sink.write(_frame(0), _poses(0))
        sink.write(_frame(1, ts=math.nan), _poses(1, tracks=False))
        sink.write(_frame(2), Poses.empty(COCO))
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    assert tuple(header) == CSV_COLUMNS == ("frame", "timestamp", "person", "track_id", "keypoint", "x", "y", "score")
    assert len(rows) == 2 * 2 * COCO.num_keypoints  # frame 2 has nobody
    first = dict(zip(header, rows[0], strict=True))
    assert first == {"frame": "0", "timestamp": "0.000000", "person": "0", "track_id": "7", "keypoint": "nose",
                     "x": "10.000", "y": "5.000", "score": "0.90000"}  # fmt: skip
    missing = dict(zip(header, rows[COCO.num_keypoints], strict=True))  # person 1, nose
    assert (missing["track_id"], missing["keypoint"], missing["x"], missing["y"], missing["score"]) == (
        "3", "nose", "", "", "0.00000")  # fmt: skip
    later = [dict(zip(header, r, strict=True)) for r in rows[2 * COCO.num_keypoints :]]
    assert {r["timestamp"] for r in later} == {""}  # unknown timestamp
    assert {r["track_id"] for r in later} == {"-1"}
    assert [r["keypoint"] for r in later[: COCO.num_keypoints]] == list(COCO.keypoints)
    # one type per column: every non-empty cell of a numeric column parses as that type
    for r in rows:
        int(r[0]), int(r[2]), int(r[3])
        for v in (r[1], r[5], r[6], r[7]):
            if v:
                float(v)


def test_csv_without_frames_is_a_header(tmp_path: Path) -> None:
    with CsvSink(tmp_path / "t.csv"):
        pass
    assert (tmp_path / "t.csv").read_text().strip() == ",".join(CSV_COLUMNS)
    assert _leftovers(tmp_path) == []
