"""Video throughput: the threaded stream runner against the sequential loop, in one run.

Both runners process the same real short video (the 41 Bonn PoseTrack frames, 960x540, written
to a temporary MP4 at 25 fps with cv2.VideoWriter) with ``openpose-mobilenet-thin`` and write an
overlay video. The runs alternate (sequential, threaded, then threaded, sequential, ...) after a
warm-up, so slow drift on a shared machine hits both alike; the ratio is threaded frames/s over
sequential frames/s, per pair of runs, and the median over pairs. The outputs of the two runners
are checked to be identical.

Command (from the repository root)::

    python benchmarks/stream_speed.py [--data DIR] [--repeats 2] [--threads 2] [--queue-size 8]

Writes ``benchmarks/results/stream_speed.json`` and ``.md`` (atomically).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

import posekit
from _results import cpu_name, write_results
from posekit.io.sinks import Sink, VideoSink
from posekit.io.video import Frame, open_source
from posekit.poses import Poses
from posekit.stream import STAGES, run_sequential, run_stream

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "posetrack-bonn" / "videos" / "060470979"
MODEL = "openpose-mobilenet-thin"


class KeypointsSink(Sink):
    """Keeps each frame's keypoints, to check that both runners give the same results."""

    def __init__(self) -> None:
        super().__init__()
        self.path = Path("memory")
        self.keypoints: list[np.ndarray] = []

    def _write(self, frame: Frame, poses: Poses) -> None:
        self.keypoints.append(poses.keypoints.copy())

    def _commit(self) -> None:
        pass

    def _discard(self) -> None:
        pass


def make_video(frames: list[Path], path: Path, fps: float = 25.0) -> Path:
    first = cv2.imread(str(frames[0]))
    h, w = first.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write an mp4v MP4 here")
    for f in frames:
        writer.write(cv2.imread(str(f)))
    writer.release()
    return path


def one_run(runner: Any, video: Path, model: Any, out: Path, queue_size: int) -> tuple[dict[str, Any], KeypointsSink]:
    keep = KeypointsSink()
    sink = VideoSink(out)
    summary = runner(video, model, [sink, keep], queue_size=queue_size, progress=False)
    row = summary.as_dict()
    row["codec"] = sink.codec
    return row, keep


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of video frames (default: Bonn 41 frames)")
    ap.add_argument("--repeats", type=int, default=2, help="pairs of runs, alternating the order (default 2)")
    ap.add_argument("--threads", type=int, default=2, help="inference threads (default 2)")
    ap.add_argument("--queue-size", type=int, default=8, help="bound of each queue of the threaded runner")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args(argv)
    frames = sorted(args.data.glob("*.jpg"))
    if not frames:
        print(f"error: no .jpg frames in {args.data} (the shared data lives in ../shared/data)", file=sys.stderr)
        return 2
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    cv2.setNumThreads(args.threads)
    model = posekit.load(MODEL, threads=args.threads, progress=False)
    runners = {"sequential": run_sequential, "threaded": run_stream}
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in runners}
    load_before = os.getloadavg()[0]
    identical = True
    with tempfile.TemporaryDirectory() as tmp:
        video = make_video(frames, Path(tmp) / "bonn.mp4")
        with open_source(video) as src:
            first = next(iter(src)).rgb
        for _ in range(3):  # warm-up: the first network calls are slower
            model(first)
        for rep in range(args.repeats):
            order = ["sequential", "threaded"] if rep % 2 == 0 else ["threaded", "sequential"]
            kept = {}
            for name in order:
                row, kept[name] = one_run(runners[name], video, model, Path(tmp) / f"{name}.mp4", args.queue_size)
                runs[name].append(row)
                print(f"repeat {rep + 1}/{args.repeats} {name:10s}: {row['frames']} frames in "
                      f"{row['wall_time']:.2f} s = {row['fps']:.2f} frames/s", file=sys.stderr)  # fmt: skip
            a, b = kept["sequential"].keypoints, kept["threaded"].keypoints
            same = len(a) == len(b) and all(np.array_equal(x, y, equal_nan=True) for x, y in zip(a, b, strict=False))
            identical &= same
    ratios = [t["fps"] / s["fps"] for s, t in zip(runs["sequential"], runs["threaded"], strict=True)]
    med = {k: statistics.median(r["fps"] for r in v) for k, v in runs.items()}
    busy = {k: {st: statistics.median(r["busy"][st] for r in v) / v[0]["frames"] * 1000 for st in STAGES}
            for k, v in runs.items()}  # fmt: skip
    load_after = os.getloadavg()[0]
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    cpu = cpu_name()
    report = {
        "benchmark": "benchmarks/stream_speed.py", "data": str(args.data), "frames": len(frames), "model": MODEL,
        "date": now, "cpu": cpu, "cpus": len(os.sched_getaffinity(0)), "threads": args.threads,
        "queue_size": args.queue_size, "opencv": cv2.__version__, "codec": runs["threaded"][0]["codec"],
        "fps_median": med, "ratio_per_pair": ratios, "ratio_median": statistics.median(ratios),
        "busy_ms_per_frame_median": busy, "identical_outputs": identical,
        "loadavg_1min_before_after": [load_before, load_after], "runs": runs,
    }  # fmt: skip
    busy_note = ""
    if max(load_before, load_after) > report["cpus"]:
        busy_note = " (more than the CPU count: other processes competed, so the ratio is noisy)"
    lines = [
        "| runner | frames/s (median) | busy ms/frame: load | infer | post | write (overlay video) |",
        "|---|---|---|---|---|---|",
    ]
    for k in runners:
        b = busy[k]
        lines.append(f"| {k} | {med[k]:.2f} | {b['load']:.1f} | {b['infer']:.1f} | {b['post']:.2f} | "
                     f"{b['write']:.1f} |")  # fmt: skip
    lines += [
        "",
        f"Threaded / sequential throughput: **{statistics.median(ratios):.3f}x** (median of "
        f"{', '.join(f'{r:.3f}' for r in ratios)}); outputs identical: {identical}.",
        "",
        f"{len(frames)} Bonn PoseTrack frames (960x540) as an mp4v MP4, `{MODEL}`, overlay video written with "
        f"codec {report['codec']}; {cpu}, {report['cpus']} CPUs, {args.threads} inference threads, queue size "
        f"{args.queue_size}, OpenCV {cv2.__version__}; 1-min load average {load_before:.1f} before and "
        f"{load_after:.1f} after{busy_note}; {now}.",
    ]
    write_results(args.out_dir, "stream_speed", report, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
