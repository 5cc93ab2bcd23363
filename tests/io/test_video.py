"""Frame sources: real videos made from the Bonn PoseTrack frames, truncated copies, image folders,
camera and URL dispatch (with a stand-in capture: no device or network is touched)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from posekit.io.images import read_image
from posekit.io.video import CaptureSource, Frame, ImageSequenceSource, SourceError, natural_key, open_source

BONN = "posetrack-bonn/videos/060470979"
FPS = 25.0


def _write_video(path: Path, frames: list[Path], fourcc: str) -> Path:
    first = cv2.imread(str(frames[0]))
    h, w = first.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, (w, h))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} into {path.suffix}"
    for f in frames:
        writer.write(cv2.imread(str(f)))
    writer.release()
    return path


@pytest.fixture(scope="module")
def bonn_frames(data_dir: Path) -> list[Path]:
    frames = sorted((data_dir / BONN).glob("*.jpg"))
    assert len(frames) == 41
    return frames


@pytest.fixture(scope="module")
def bonn_videos(bonn_frames: list[Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The 41 Bonn frames as an MP4 (MPEG-4 Part 2) and as a Motion-JPEG AVI, at 25 fps."""
    d = tmp_path_factory.mktemp("bonn_video")
    return {
        "mp4": _write_video(d / "bonn.mp4", bonn_frames, "mp4v"),
        "avi": _write_video(d / "bonn.avi", bonn_frames, "MJPG"),
    }


def _truncated(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def test_video_decodes_every_frame_with_sizes_and_increasing_timestamps(
    bonn_videos: dict[str, Path], bonn_frames: list[Path]
) -> None:
    with open_source(bonn_videos["mp4"]) as src:
        assert isinstance(src, CaptureSource)
        assert src.size == (960, 540)
        assert src.fps == pytest.approx(FPS)
        assert src.frame_count == 41
        frames = list(src)
    assert src.error is None
    assert [f.index for f in frames] == list(range(41))
    assert all(f.rgb.shape == (540, 960, 3) and f.rgb.dtype == np.uint8 for f in frames)
    ts = np.array([f.timestamp for f in frames])
    assert np.all(np.diff(ts) > 0)
    np.testing.assert_allclose(ts, np.arange(41) / FPS, atol=1e-3)  # constant-rate file: pts = i / fps
    assert frames[0].source == str(bonn_videos["mp4"])
    # RGB and in order: each decoded frame is closest to its own source JPEG (lossy codec)
    for i in (0, 20, 40):
        ref = read_image(bonn_frames[i]).astype(np.int16)
        diffs = [np.abs(frames[j].rgb.astype(np.int16) - ref).mean() for j in range(41)]
        assert int(np.argmin(diffs)) == i
        assert diffs[i] < 8.0
        swapped = np.abs(frames[i].rgb[..., ::-1].astype(np.int16) - ref).mean()
        assert diffs[i] < swapped


def test_posetrack18_fixture_video(data_dir: Path) -> None:
    path = data_dir / "fixtures/posetrack18/videos/000001_mpiinew_test/000001_mpiinew_test.mp4"
    with open_source(str(path)) as src:
        frames = list(src)
        assert src.size == (1280, 720)
    assert len(frames) == 5
    assert src.error is None
    np.testing.assert_allclose([f.timestamp for f in frames], np.arange(5) / 30.0, atol=1e-3)


def test_truncated_avi_yields_the_decodable_frames_and_records_the_stop(
    bonn_videos: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with open_source(bonn_videos["avi"]) as src:
        full = [f.rgb for f in src]
    assert len(full) == 41
    cut = _truncated(bonn_videos["avi"], tmp_path / "cut.avi", 0.6)
    with caplog.at_level("WARNING", logger="posekit.io.video"), open_source(cut) as src:
        assert src.frame_count == 41  # the header still announces every frame
        frames = list(src)
    n = len(frames)
    assert 15 < n < 41
    assert src.error is not None
    assert src.error.index == n
    assert src.error.expected == 41
    assert f"stopped at frame {n}" in caplog.text
    # every frame before the cut is exactly the one decoded from the complete file
    for f, ref in zip(frames[:-1], full, strict=False):
        assert np.array_equal(f.rgb, ref)
    assert np.all(np.diff([f.timestamp for f in frames]) > 0)


def test_truncated_mp4_without_its_index_is_a_clear_error(bonn_videos: dict[str, Path], tmp_path: Path) -> None:
    # OpenCV's MP4 writer puts the index ('moov') at the end: a cut file has no readable frame
    cut = _truncated(bonn_videos["mp4"], tmp_path / "cut.mp4", 0.9)
    with pytest.raises(SourceError, match=r"cut\.mp4: cannot be opened as a video.*truncated"):
        open_source(cut)


def test_image_folder_natural_order_fps_timestamps_and_skipped_files(tmp_path: Path) -> None:
    for k in (10, 2, 1):
        img = np.full((24, 32, 3), k * 10, np.uint8)
        cv2.imwrite(str(tmp_path / f"frame{k}.png"), img)
    (tmp_path / "frame5.png").write_bytes(b"not a png")
    (tmp_path / "notes.txt").write_text("ignored")
    with open_source(tmp_path, fps=10) as src:
        assert isinstance(src, ImageSequenceSource)
        assert src.size == (32, 24)
        assert src.fps == 10.0
        frames = list(src)
    assert [int(f.rgb[0, 0, 0]) for f in frames] == [10, 20, 100]  # 1, 2, 10 (5 is skipped)
    assert [f.index for f in frames] == [0, 1, 3]  # indices are positions in the sequence
    assert [f.timestamp for f in frames] == pytest.approx([0.0, 0.1, 0.3])
    assert [i for i, _ in src.skipped] == [2]
    assert "frame5.png" in src.skipped[0][1]


def test_image_glob_list_and_single_image(tmp_path: Path) -> None:
    for k in (3, 1, 20):
        cv2.imwrite(str(tmp_path / f"img_{k}.jpg"), np.full((16, 16, 3), k, np.uint8))
    with open_source(str(tmp_path / "img_*.jpg")) as src:
        frames = list(src)
    assert len(frames) == 3
    assert src.fps is None
    assert all(math.isnan(f.timestamp) for f in frames)  # unknown without fps
    names = [tmp_path / "img_20.jpg", tmp_path / "img_1.jpg"]
    with open_source(names, fps=5) as src:
        assert [f.timestamp for f in src] == [0.0, 0.2]
    with open_source(tmp_path / "img_3.jpg") as src:
        assert len(list(src)) == 1


def test_natural_key() -> None:
    assert sorted(["f10.png", "f2.png", "F1.png"], key=natural_key) == ["F1.png", "f2.png", "f10.png"]


def test_unknown_and_missing_specs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"no such file or folder; expected a video file, a folder of images"):
        open_source(tmp_path / "nope.mp4")
    with pytest.raises(SourceError, match=r"unsupported URL scheme 'ftp'.*rtsp://"):
        open_source("ftp://example.invalid/video.mp4")
    with pytest.raises(SourceError, match=r"unsupported source of type object"):
        open_source(object())
    with pytest.raises(SourceError, match=r"unsupported source True"):
        open_source(True)
    with pytest.raises(SourceError, match=r"camera index must be >= 0"):
        open_source(-1)
    with pytest.raises(SourceError, match=r"no files match the pattern"):
        open_source(str(tmp_path / "*.png"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match=r"the folder holds no images"):
        open_source(empty)
    not_video = tmp_path / "clip.mp4"
    not_video.write_text("hello")
    with pytest.raises(SourceError, match=r"cannot be opened as a video"):
        open_source(not_video)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    with pytest.raises(SourceError, match=r"none of the 1 images can be read"):
        open_source(bad)
    with pytest.raises(ValueError, match=r"fps must be a positive number"):
        open_source([tmp_path / "x.png"], fps=0)


class FakeCapture:
    """Stands in for cv2.VideoCapture: delivers ``n`` frames, then reads fail (a disconnect)."""

    instances: list[FakeCapture] = []  # noqa: RUF012 - test bookkeeping
    n = 3
    opens = True

    def __init__(self, target: Any, backend: int = 0) -> None:
        self.target, self.backend, self.count, self.released = target, backend, 0, False
        FakeCapture.instances.append(self)

    def isOpened(self) -> bool:
        return self.opens

    def get(self, prop: int) -> float:
        return {cv2.CAP_PROP_FPS: 30.0, cv2.CAP_PROP_FRAME_WIDTH: 8.0, cv2.CAP_PROP_FRAME_HEIGHT: 6.0}.get(prop, 0.0)

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.count >= self.n:
            return False, None
        self.count += 1
        frame = np.zeros((6, 8, 3), np.uint8)
        frame[..., 0] = self.count  # blue channel in BGR
        return True, frame

    def release(self) -> None:
        self.released = True


@pytest.fixture
def fake_capture(monkeypatch: pytest.MonkeyPatch) -> type[FakeCapture]:
    FakeCapture.instances = []
    FakeCapture.opens = True
    monkeypatch.setattr(cv2, "VideoCapture", FakeCapture)
    return FakeCapture


def test_camera_that_disconnects_ends_cleanly(fake_capture: type[FakeCapture]) -> None:
    for spec in (0, "1"):
        with open_source(spec) as src:
            assert isinstance(src, CaptureSource)
            assert src.kind == "camera"
            assert src.frame_count is None
            frames: list[Frame] = list(src)
            with pytest.raises(RuntimeError, match="only be iterated once"):
                iter(src)
        assert len(frames) == 3
        assert [int(f.rgb[0, 0, 2]) for f in frames] == [1, 2, 3]  # BGR -> RGB
        ts = [f.timestamp for f in frames]
        assert ts[0] == 0.0
        assert all(b >= a for a, b in itertools.pairwise(ts))
        assert src.error is not None
        assert src.error.index == 3
        assert "disconnected" in src.error.reason
    assert [c.target for c in fake_capture.instances] == [0, 1]
    assert all(c.released for c in fake_capture.instances)


def test_stream_urls_go_to_ffmpeg_without_being_contacted_here(fake_capture: type[FakeCapture]) -> None:
    url = "rtsp://camera.invalid:554/live"
    with open_source(url) as src:
        assert src.kind == "stream"
        assert src.fps == 30.0
        assert src.size == (8, 6)
        assert len(list(src)) == 3
    assert src.error is not None
    assert "stream ended" in src.error.reason
    cap = fake_capture.instances[-1]
    assert (cap.target, cap.backend) == (url, cv2.CAP_FFMPEG)
    fake_capture.opens = False
    with pytest.raises(SourceError, match=r"stream 'http://camera.invalid/x.mjpg' could not be opened"):
        open_source("http://camera.invalid/x.mjpg")
    with pytest.raises(SourceError, match=r"camera 'camera 2' could not be opened"):
        open_source(2)
