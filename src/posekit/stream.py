"""Running a pose model over a frame stream: load -> infer -> post-process -> write.

:func:`run_stream` runs each stage in its own thread, connected by bounded queues (so a slow stage
holds back the ones before it instead of filling memory), the way AlphaPose's video demo does;
:func:`run_sequential` does the same work in one loop. Both take the same arguments and give the
same outputs in the same order:

>>> from posekit.io.sinks import CsvSink, VideoSink
>>> summary = run_stream("clip.mp4", posekit.load("openpose-mobilenet-thin"),
...                      [VideoSink("out.mp4"), CsvSink("out.csv")])      # doctest: +SKIP

Ending a run:

- the source ends, or stops early (truncated file, unplugged camera, an exception raised while
  iterating it): every frame read so far is processed, the sinks are closed (complete files) and
  the summary records the stop in ``source_stop``;
- ``KeyboardInterrupt`` (Ctrl+C, or raised by the source): reading stops, the frames already read
  are finished, the sinks are closed, and the summary has ``interrupted=True`` (a second Ctrl+C
  stops at once, still closing the sinks with the frames written so far);
- an exception in the model, the post-process hook or a sink: the other stages stop, every sink
  is aborted (no output file is created or replaced) and :class:`StageError` is raised, naming the
  stage and the frame, with the original exception as its ``__cause__``.

Ordering: each stage is one thread reading a FIFO queue, so frames reach the post-process hook
(for example a tracker) and the sinks in source order.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from posekit.io.sinks import Sink
from posekit.io.video import Frame, Source, SourceStop, open_source
from posekit.poses import Poses

__all__ = ["STAGES", "PostProcess", "RunSummary", "StageError", "run_sequential", "run_stream"]

logger = logging.getLogger(__name__)

STAGES = ("load", "infer", "post", "write")
PostProcess = Callable[[Poses, Frame], Poses]


class StageError(RuntimeError):
    """An exception in one stage of a run; ``stage`` is one of :data:`STAGES`, ``frame_index`` the
    frame being handled (None when not tied to a frame); the original is ``__cause__``."""

    def __init__(self, stage: str, frame_index: int | None, cause: BaseException) -> None:
        where = f" on frame {frame_index}" if frame_index is not None else ""
        super().__init__(f"stage {stage!r} failed{where}: {type(cause).__name__}: {cause}")
        self.stage = stage
        self.frame_index = frame_index


@dataclass
class RunSummary:
    """What a run did. ``busy`` is seconds spent working in each stage (not waiting on queues);
    ``model_stages`` sums the model's own ``last_timings`` (e.g. network, decode) when it has them."""

    frames: int = 0
    wall_time: float = 0.0
    busy: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    model_stages: dict[str, float] = field(default_factory=dict)
    source_stop: SourceStop | None = None
    interrupted: bool = False
    runner: str = ""

    @property
    def fps(self) -> float:
        return self.frames / self.wall_time if self.wall_time > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "runner": self.runner,
            "frames": self.frames,
            "wall_time": self.wall_time,
            "fps": self.fps,
            "busy": dict(self.busy),
            "model_stages": dict(self.model_stages),
            "source_stop": None if self.source_stop is None else str(self.source_stop),
            "interrupted": self.interrupted,
        }


def _identity(poses: Poses, frame: Frame) -> Poses:
    return poses


def _check_poses(out: Any, what: str) -> Poses:
    if not isinstance(out, Poses):
        raise TypeError(f"{what} returned {type(out).__name__}, expected posekit.Poses")
    return out


class _Context:
    """The parts both runners share: opening, per-frame work, closing."""

    def __init__(self, source: Any, model: Callable[[Any], Poses], sinks: Sequence[Sink],
                 postprocess: PostProcess | None, max_frames: int | None, progress: bool, runner: str) -> None:  # fmt: skip
        if max_frames is not None and max_frames < 0:
            raise ValueError(f"max_frames must be >= 0, got {max_frames}")
        self.owns_source = not isinstance(source, Source)
        self.source = open_source(source)
        self.model = model
        self.sinks = list(sinks)
        self.post = postprocess or _identity
        self.max_frames = max_frames
        self.summary = RunSummary(runner=runner)
        self.lock = threading.Lock()
        total = self.source.frame_count
        if max_frames is not None:
            total = max_frames if total is None else min(total, max_frames)
        self.bar = tqdm(total=total, unit="frame", desc=self.source.name, disable=not progress, dynamic_ncols=True)
        self.t0 = time.perf_counter()
        try:
            for s in self.sinks:
                s.start(self.source)
        except BaseException:
            self.bar.close()
            if self.owns_source:
                self.source.close()
            raise

    def timed(self, stage: str, fn: Callable[..., Any], *args: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*args)
        finally:
            dt = time.perf_counter() - t
            with self.lock:
                self.summary.busy[stage] += dt

    def infer(self, frame: Frame) -> tuple[Frame, Poses]:
        poses = _check_poses(self.timed("infer", self.model, frame.rgb), "the model")
        timings = getattr(getattr(self.model, "last_timings", None), "stages", None)
        if isinstance(timings, dict):
            for k, v in timings.items():
                self.summary.model_stages[k] = self.summary.model_stages.get(k, 0.0) + float(v)
        return frame, poses

    def postprocess(self, item: tuple[Frame, Poses]) -> tuple[Frame, Poses]:
        frame, poses = item
        return frame, _check_poses(self.timed("post", self.post, poses, frame), "the post-process hook")

    def write(self, item: tuple[Frame, Poses]) -> None:
        frame, poses = item
        t = time.perf_counter()
        try:
            for s in self.sinks:
                s.write(frame, poses)
        finally:
            with self.lock:
                self.summary.busy["write"] += time.perf_counter() - t
        self.summary.frames += 1
        self.bar.update(1)

    def source_ended(self, exc: BaseException | None, index: int) -> None:
        """Record why reading stopped (a source exception counts as a stop, not a failure)."""
        if exc is not None:
            self.summary.source_stop = SourceStop(index, f"the source raised {type(exc).__name__}: {exc}")
            logger.warning("%s: %s", self.source.name, self.summary.source_stop)
        elif self.source.error is not None:
            self.summary.source_stop = self.source.error

    def finish(self, failure: StageError | None) -> RunSummary:
        """Close (or on failure abort) every sink and the source; raise ``failure`` if any."""
        try:
            if failure is None:
                for s in self.sinks:
                    try:
                        s.close()
                    except Exception as e:
                        failure = _fail("write", None, e)
                        break
            if failure is not None:
                for s in self.sinks:
                    s.abort()
        finally:
            self.bar.close()
            if self.owns_source:
                self.source.close()
            self.summary.wall_time = time.perf_counter() - self.t0
        if failure is not None:
            raise failure
        return self.summary


def _fail(stage: str, frame_index: int | None, exc: BaseException) -> StageError:
    err = StageError(stage, frame_index, exc)
    err.__cause__ = exc
    return err


def run_sequential(
    source: Any,
    model: Callable[[Any], Poses],
    sinks: Sequence[Sink] = (),
    *,
    postprocess: PostProcess | None = None,
    max_frames: int | None = None,
    queue_size: int = 8,
    progress: bool = True,
) -> RunSummary:
    """One loop: read a frame, run ``model(frame.rgb)``, ``postprocess(poses, frame)``, write it
    to every sink. Same arguments and behaviour as :func:`run_stream` (``queue_size`` is unused)."""
    ctx = _Context(source, model, sinks, postprocess, max_frames, progress, "sequential")
    failure: StageError | None = None
    it = iter(ctx.source)
    index: int | None = None
    try:
        while ctx.max_frames is None or ctx.summary.frames < ctx.max_frames:
            stage = "load"
            try:
                frame = ctx.timed("load", next, it)
            except StopIteration:
                ctx.source_ended(None, ctx.summary.frames)
                break
            except KeyboardInterrupt:
                ctx.summary.interrupted = True
                break
            except Exception as e:
                ctx.source_ended(e, ctx.summary.frames)
                break
            index = frame.index
            try:
                stage = "infer"
                item = ctx.infer(frame)
                stage = "post"
                item = ctx.postprocess(item)
                stage = "write"
                ctx.write(item)
            except KeyboardInterrupt:
                ctx.summary.interrupted = True
                break
            except Exception as e:
                failure = _fail(stage, index, e)
                break
    except KeyboardInterrupt:  # pragma: no cover - Ctrl+C between two statements of the loop itself
        ctx.summary.interrupted = True
    return ctx.finish(failure)


_END = object()


def run_stream(
    source: Any,
    model: Callable[[Any], Poses],
    sinks: Sequence[Sink] = (),
    *,
    postprocess: PostProcess | None = None,
    max_frames: int | None = None,
    queue_size: int = 8,
    progress: bool = True,
) -> RunSummary:
    """Run ``model`` over every frame of ``source`` with one thread per stage.

    ``source``: anything :func:`posekit.io.video.open_source` accepts (opened and closed here), or
    an open :class:`~posekit.io.video.Source` (left open for the caller). ``model(rgb) -> Poses``.
    ``sinks``: :class:`~posekit.io.sinks.Sink` objects, each given every frame. ``postprocess(poses,
    frame) -> Poses`` runs in its own stage, frames in order (identity by default). ``queue_size``
    bounds each queue between stages. ``max_frames`` stops reading after that many frames.
    ``progress`` shows a tqdm bar with frames/s on stderr. Returns a :class:`RunSummary`; see the
    module documentation for how runs end.
    """
    if queue_size < 1:
        raise ValueError(f"queue_size must be >= 1, got {queue_size}")
    ctx = _Context(source, model, sinks, postprocess, max_frames, progress, "threaded")
    queues = [queue.Queue[Any](maxsize=queue_size) for _ in range(3)]
    stop_reading = threading.Event()  # interrupt: read no more, finish what was read
    abort = threading.Event()  # failure or second interrupt: every stage leaves now
    failures: list[StageError] = []

    def put(q: queue.Queue[Any], item: Any) -> bool:
        while not abort.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def get(q: queue.Queue[Any]) -> Any:
        while not abort.is_set():
            try:
                return q.get(timeout=0.05)
            except queue.Empty:
                continue
        return _END

    def fail(stage: str, index: int | None, exc: BaseException) -> None:
        with ctx.lock:
            failures.append(_fail(stage, index, exc))
        abort.set()

    def load() -> None:
        it = iter(ctx.source)
        n = 0
        try:
            while not stop_reading.is_set() and (ctx.max_frames is None or n < ctx.max_frames):
                try:
                    frame = ctx.timed("load", next, it)
                except StopIteration:
                    ctx.source_ended(None, n)
                    break
                except KeyboardInterrupt:
                    ctx.summary.interrupted = True
                    break
                except Exception as e:
                    ctx.source_ended(e, n)
                    break
                if not put(queues[0], frame):
                    return
                n += 1
            put(queues[0], _END)
        except BaseException as e:  # pragma: no cover - a bug in this function
            fail("load", None, e)

    def worker(stage: str, fn: Callable[[Any], Any], qin: queue.Queue[Any], qout: queue.Queue[Any] | None) -> None:
        index = None
        try:
            while True:
                item = get(qin)
                if item is _END:
                    break
                index = item.index if isinstance(item, Frame) else item[0].index
                out = fn(item)
                if qout is not None and not put(qout, out):
                    return
            if qout is not None:
                put(qout, _END)
        except KeyboardInterrupt:
            ctx.summary.interrupted = True
            stop_reading.set()
            abort.set()
        except BaseException as e:
            fail(stage, index, e)

    stages = [("infer", ctx.infer), ("post", ctx.postprocess), ("write", ctx.write)]
    threads = [threading.Thread(target=load, name="posekit-load", daemon=True)]
    for i, (stage, fn) in enumerate(stages):
        qout = queues[i + 1] if i + 1 < len(queues) else None
        threads.append(threading.Thread(target=worker, args=(stage, fn, queues[i], qout), name=f"posekit-{stage}",
                                        daemon=True))  # fmt: skip
    while True:
        try:
            for t in threads:
                if t.ident is None:  # not started yet (also after a Ctrl+C that came while starting)
                    t.start()
            for t in threads:
                while t.is_alive():
                    t.join(0.1)
            break
        except KeyboardInterrupt:
            ctx.summary.interrupted = True
            if stop_reading.is_set():
                logger.warning("second interrupt: stopping now, keeping the frames written so far")
                abort.set()
            else:
                logger.warning("interrupted: finishing the frames already read (Ctrl+C again to stop now)")
                stop_reading.set()
    return ctx.finish(failures[0] if failures else None)
