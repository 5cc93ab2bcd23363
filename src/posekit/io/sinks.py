"""Result sinks for frame streams: ``write(frame, poses)`` per frame, then ``close()``.

Every sink writes into a temporary file (or folder) beside its target and renames it into place
on :meth:`Sink.close`, so a target path only ever holds a complete file. :meth:`Sink.abort` (called
by the context manager and the stream runners when an exception ends the run) deletes the
temporary output and leaves any earlier file at the target untouched. A run ended by
``KeyboardInterrupt`` is closed normally: the results of the frames so far are complete.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np

from posekit.io.files import atomic_write_json
from posekit.io.video import Frame, Source
from posekit.poses import Poses
from posekit.viz import draw_poses

__all__ = ["CSV_COLUMNS", "CocoTrackJsonSink", "CsvSink", "OpenPoseJsonSink", "Sink", "VideoSink"]

logger = logging.getLogger(__name__)

CSV_COLUMNS = ("frame", "timestamp", "person", "track_id", "keypoint", "x", "y", "score")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_file_beside(target: Path) -> Path:
    """A new empty temporary file in ``target``'s folder, with ordinary permissions and the same
    suffix (writers such as ``cv2.VideoWriter`` pick the container from it)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())
    return Path(tmp)


def _fsync(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


class Sink:
    """Base class. Subclasses implement ``_write``, ``_commit`` and ``_discard``."""

    path: Path

    def __init__(self) -> None:
        self.frames_written = 0
        self._done = False

    def start(self, source: Source) -> None:
        """Called by the runners before the first frame (a sink may read ``fps`` or ``size``)."""

    def write(self, frame: Frame, poses: Poses) -> None:
        if self._done:
            raise RuntimeError(f"{type(self).__name__}({self.path}) is already closed")
        self._write(frame, poses)
        self.frames_written += 1

    def close(self) -> None:
        """Finish and rename the output into place. Idempotent."""
        if self._done:
            return
        self._done = True
        try:
            self._commit()
        except BaseException:
            self._discard()
            raise

    def abort(self) -> None:
        """Delete the temporary output; the target keeps whatever it held before. Idempotent."""
        if self._done:
            return
        self._done = True
        self._discard()

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        if isinstance(ev, Exception):
            self.abort()
        else:  # normal end, or KeyboardInterrupt / SystemExit: keep the frames so far
            self.close()

    def _write(self, frame: Frame, poses: Poses) -> None:
        raise NotImplementedError

    def _commit(self) -> None:
        raise NotImplementedError

    def _discard(self) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"


class VideoSink(Sink):
    """An overlay video: every frame with its skeletons (and track ids) drawn on it.

    ``codecs`` are tried in order (FourCC codes); the first that opens is used and reported in
    ``codec``. The pip OpenCV wheels carry no H.264 encoder, so 'avc1' usually falls back to
    'mp4v' (MPEG-4 Part 2, which browsers do not play). ``fps`` defaults to the source's rate,
    else 30. A run with no frames writes no file (a video cannot be empty) and logs a warning.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fps: float | None = None,
        codecs: Sequence[str] = ("avc1", "mp4v"),
        min_score: float = 0.0,
        draw_ids: bool = True,
        draw: Callable[[np.ndarray, Poses], np.ndarray] | None = None,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        if not self.path.suffix:
            raise ValueError(f"{self.path}: give a video file name with a container suffix such as .mp4")
        if not codecs or any(len(c) != 4 for c in codecs):
            raise ValueError(f"codecs must be four-character FourCC codes, got {list(codecs)}")
        self.fps = fps
        self.codecs = tuple(codecs)
        self.codec: str | None = None
        self._draw = draw or (lambda rgb, poses: draw_poses(rgb, poses, min_score=min_score, draw_ids=draw_ids))
        self._writer: Any = None
        self._tmp: Path | None = None
        self._size: tuple[int, int] | None = None

    def start(self, source: Source) -> None:
        if self.fps is None and source.fps:
            self.fps = source.fps

    def _open(self, size: tuple[int, int]) -> None:
        self._tmp = _temp_file_beside(self.path)
        fps = float(self.fps or 30.0)
        old = cv2.getLogLevel()
        cv2.setLogLevel(0)  # silence OpenCV's errors for the codecs that are not available
        try:
            for code in self.codecs:
                writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*code), fps, size)
                if writer.isOpened():
                    self._writer, self.codec, self._size = writer, code, size
                    break
                writer.release()
        finally:
            cv2.setLogLevel(old)
        if self._writer is None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None
            raise RuntimeError(f"{self.path}: none of the codecs {list(self.codecs)} can write this file")
        logger.info("%s: writing with codec %s", self.path, self.codec)

    def _write(self, frame: Frame, poses: Poses) -> None:
        h, w = frame.rgb.shape[:2]
        if self._writer is None:
            self._open((w, h))
        elif (w, h) != self._size:
            raise ValueError(f"{self.path}: frame {frame.index} is {w}x{h}, the video is {self._size}")
        out = self._draw(frame.rgb, poses)
        self._writer.write(np.ascontiguousarray(out[..., ::-1]))

    def _commit(self) -> None:
        if self._writer is None:
            logger.warning("%s: no frames, so no video was written", self.path)
            return
        self._writer.release()
        self._writer = None
        assert self._tmp is not None
        _fsync(self._tmp)
        os.replace(self._tmp, self.path)
        self._tmp = None

    def _discard(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None


def _image_id(image_ids: Mapping[int, int] | Callable[[Frame], int] | None, frame: Frame) -> int:
    if image_ids is None:
        return frame.index
    if callable(image_ids):
        return int(image_ids(frame))
    try:
        return int(image_ids[frame.index])
    except KeyError:
        raise KeyError(f"image_ids has no entry for frame {frame.index}") from None


class CocoTrackJsonSink(Sink):
    """One JSON file of COCO keypoint results for every frame (a list of per-person dicts).

    Each entry is :meth:`Poses.to_coco` plus ``frame_id`` (the frame index) and ``track_id``
    (-1 when the poses carry no track ids). ``image_id`` is the frame index, or
    ``image_ids[frame.index]`` for a mapping, or ``image_ids(frame)`` for a callable. Results are
    kept in memory and written on close.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        image_ids: Mapping[int, int] | Callable[[Frame], int] | None = None,
        category_id: int = 1,
        schema: str | None = None,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.image_ids = image_ids
        self.category_id = category_id
        self.schema = schema
        self.results: list[dict[str, Any]] = []

    def _write(self, frame: Frame, poses: Poses) -> None:
        if self.schema is not None:
            poses = poses.with_schema(self.schema)
        for entry in poses.to_coco(_image_id(self.image_ids, frame), self.category_id):
            entry["frame_id"] = frame.index
            entry.setdefault("track_id", -1)
            self.results.append(entry)

    def _commit(self) -> None:
        atomic_write_json(self.path, self.results)

    def _discard(self) -> None:
        self.results = []


class OpenPoseJsonSink(Sink):
    """One OpenPose-layout JSON per frame in folder ``path``: ``{name}_{index:012d}_keypoints.json``
    (OpenPose's own naming), ``people[].person_id`` = ``[track_id]`` (``[-1]`` without tracks).

    Files are written into a hidden temporary folder inside ``path`` and each is renamed into
    ``path`` on close (so every file there is complete); abort removes the temporary folder (and
    ``path`` itself if this sink created it).
    """

    def __init__(self, path: str | os.PathLike[str], *, name: str = "frame", schema: str | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.name = name
        self.schema = schema
        self._tmpdir: Path | None = None
        self._made_folder = False
        self.files: list[Path] = []

    def _write(self, frame: Frame, poses: Poses) -> None:
        if self._tmpdir is None:
            self._made_folder = not self.path.exists()
            self.path.mkdir(parents=True, exist_ok=True)
            self._tmpdir = Path(tempfile.mkdtemp(prefix=".openpose.", suffix=".tmp", dir=self.path))
        if self.schema is not None:
            poses = poses.with_schema(self.schema)
        fname = f"{self.name}_{frame.index:012d}_keypoints.json"
        (self._tmpdir / fname).write_text(json.dumps(poses.to_openpose(), separators=(",", ":")))
        self.files.append(self.path / fname)

    def _commit(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        if self._tmpdir is None:
            return
        mode = 0o666 & ~_umask()
        for final in self.files:
            tmp = self._tmpdir / final.name
            os.chmod(tmp, mode)
            _fsync(tmp)
            os.replace(tmp, final)
        shutil.rmtree(self._tmpdir, ignore_errors=True)
        self._tmpdir = None

    def _discard(self) -> None:
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
            if self._made_folder and not any(self.path.iterdir()):
                self.path.rmdir()
        self.files = []


def _num(v: float, digits: int) -> str:
    return "" if not math.isfinite(v) else f"{v:.{digits}f}"


class CsvSink(Sink):
    """A flat table, one row per person and keypoint (missing keypoints included, with empty x, y
    and score 0), columns :data:`CSV_COLUMNS`: ``frame`` (int), ``timestamp`` (seconds, empty when
    unknown), ``person`` (row of the person in that frame's Poses), ``track_id`` (int, -1 without
    tracks), ``keypoint`` (name), ``x``, ``y`` (pixels, empty when missing), ``score``. Every column
    has one type, so ``pandas.read_csv(...).to_parquet(...)`` works as is.
    """

    def __init__(self, path: str | os.PathLike[str], *, schema: str | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.schema = schema
        self._tmp: Path | None = None
        self._file: io.TextIOWrapper | None = None
        self._csv: Any = None

    def _ensure_open(self) -> None:
        if self._file is None:
            self._tmp = _temp_file_beside(self.path)
            self._file = open(self._tmp, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed in _commit
            self._csv = csv.writer(self._file)
            self._csv.writerow(CSV_COLUMNS)

    def _write(self, frame: Frame, poses: Poses) -> None:
        self._ensure_open()
        if self.schema is not None:
            poses = poses.with_schema(self.schema)
        names = poses.schema.keypoints
        ts = _num(frame.timestamp, 6)
        kp, ks = poses.keypoints, poses.keypoint_scores
        for i in range(len(poses)):
            tid = -1 if poses.track_ids is None else int(poses.track_ids[i])
            rows = [(frame.index, ts, i, tid, name, _num(float(kp[i, j, 0]), 3), _num(float(kp[i, j, 1]), 3),
                     f"{float(ks[i, j]):.5f}") for j, name in enumerate(names)]  # fmt: skip
            self._csv.writerows(rows)

    def _commit(self) -> None:
        self._ensure_open()  # header only when no frame was written
        assert self._file is not None
        assert self._tmp is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        os.replace(self._tmp, self.path)
        self._tmp = None

    def _discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None
