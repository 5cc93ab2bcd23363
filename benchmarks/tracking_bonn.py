"""Tracking metrics of posekit's models + Tracker (+ PoseSmoother) on the Bonn PoseTrack sequence.

Runs ``openpose-mobilenet-thin`` and ``blazepose`` (``posekit.load``, default settings) on the 41
frames of ``../shared/data/posetrack-bonn`` (relative to the repository root) in frame order, gives
the people track ids with ``posekit.tracking.Tracker`` (default ``TrackerParams``; frame index and
timestamp ``frame / fps``), and scores them with ``posekit.eval.tracking.tracking_metrics`` against
the 14 MPII-style joints:

* ``none``: Tracker output as is;
* ``default``: then ``PoseSmoother`` at its defaults (MediaPipe's BlazePose video-mode One-Euro:
  ``min_cutoff 0.05 Hz, beta 80, d_cutoff 1 Hz``);
* a **small sweep** of other One-Euro settings, listed separately and labelled as such. It shows
  how the jitter / accuracy trade-off moves on this one sequence; nothing is tuned on it and no
  setting from it is recommended as a default on this evidence.

Reported: MOTA, ID switches, misses, false positives (people with track id -1 are untracked and
not counted; their number is shown), PCKh@0.5 overall and per frame (min / mean), MOTP, predicted
tracks per ground-truth track, and jitter (mean norm of the second difference of each matched joint
over three consecutive matched frames, px per frame² and in head sizes) next to the ground truth's
own jitter on the same triples. The frame rate is not stored with the sequence; ``--fps`` (25 by
default, the PAL rate) only changes the smoother's time constants, not the tracker's association.

Command (from the repository root)::

    /work/venv/bin/python benchmarks/tracking_bonn.py [--data DIR] [--fps 25] [--threads 2] [--out-dir DIR]

Writes ``benchmarks/results/tracking_bonn.json`` (every number, per-frame counts and PCKh, per-track
and per-joint jitter) and ``benchmarks/results/tracking_bonn.md`` (the tables), atomically.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

import posekit
from _results import cpu_name, write_results
from posekit.eval.tracking import TrackingResult, ground_truth_jitter, tracking_metrics
from posekit.io import read_image
from posekit.pipeline import VideoTopDown
from posekit.poses import Poses
from posekit.tracking import PoseSmoother, SmootherParams, Tracker

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "posetrack-bonn"
GT_NAME = "060470979_posetrack_style.json"
# (label, preset, video mode): "video" is what `posekit track` runs for top-down presets: crops follow
# people from frame to frame and the detector runs every 10 frames (posekit.pipeline.VideoTopDown).
MODELS = (
    ("openpose-mobilenet-thin", "openpose-mobilenet-thin", False),
    ("blazepose", "blazepose", False),
    ("blazepose, video mode", "blazepose", True),
)
# name -> SmootherParams (None = no smoothing). "default" is the shipped setting.
MAIN = {"none": None, "default": SmootherParams()}
# Small sweep, for information only (see the module docstring): lighter and heavier smoothing.
SWEEP = {
    "sweep: min_cutoff 1, beta 80": SmootherParams(min_cutoff=1.0),
    "sweep: min_cutoff 0.05, beta 8": SmootherParams(beta=8.0),
    "sweep: min_cutoff 1, beta 8": SmootherParams(min_cutoff=1.0, beta=8.0),
    "sweep: min_cutoff 0.5, beta 0": SmootherParams(min_cutoff=0.5, beta=0.0),
}


def track_sequence(frames: list[Poses], fps: float) -> list[Poses]:
    tracker = Tracker()
    return [tracker.update(p, frame_index=n, timestamp=n / fps) for n, p in enumerate(frames)]


def smooth_sequence(frames: list[Poses], params: SmootherParams | None, fps: float) -> list[Poses]:
    if params is None:
        return frames
    smoother = PoseSmoother(params)
    return [smoother.smooth(p, n / fps) for n, p in enumerate(frames)]


def summary(r: TrackingResult) -> dict[str, Any]:
    per_frame = np.array(list(r.pckh.per_frame.values()))
    return {
        "mota": r.mota, "id_switches": r.id_switches, "misses": r.misses, "false_positives": r.false_positives,
        "untracked": r.num_untracked, "matched": r.num_matched, "gt_people": r.num_gt,
        "pckh": r.pckh.pckh, "pckh_frame_min": float(per_frame.min()), "pckh_frame_mean": float(per_frame.mean()),
        "motp": r.motp, "fragmentations": r.fragmentations, "pred_tracks": r.num_pred_tracks,
        "pred_tracks_per_gt_track": r.mean_pred_tracks_per_gt_track,
        "jitter_px": r.jitter.jitter_px, "gt_jitter_px": r.jitter.gt_jitter_px, "jitter_norm": r.jitter.jitter_norm,
        "gt_jitter_norm": r.jitter.gt_jitter_norm, "jitter_samples": r.jitter.samples,
    }  # fmt: skip


def table(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        "| model | smoothing | MOTA | IDSW | misses | FP | untracked | PCKh@0.5 | per-frame PCKh min / mean | MOTP | "
        "pred tracks (per GT track) | jitter px (GT) | jitter / head (GT) | triples |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s = r["summary"]
        out.append(
            f"| {r['model']} | {r['smoothing']} | {s['mota']:.3f} | {s['id_switches']} | {s['misses']} | "
            f"{s['false_positives']} | {s['untracked']} | {s['pckh']:.3f} | {s['pckh_frame_min']:.3f} / "
            f"{s['pckh_frame_mean']:.3f} | {s['motp']:.3f} | {s['pred_tracks']} ({s['pred_tracks_per_gt_track']:.2f}) | "
            f"{s['jitter_px']:.2f} ({s['gt_jitter_px']:.2f}) | {s['jitter_norm']:.3f} ({s['gt_jitter_norm']:.3f}) | "
            f"{s['jitter_samples']} |"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"posetrack-bonn folder (default {DEFAULT_DATA})")
    ap.add_argument("--fps", type=float, default=25.0, help="frame rate for the timestamps frame / fps (default 25)")
    ap.add_argument("--threads", type=int, default=2, help="inference threads (default 2)")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results", help="where to write results")
    args = ap.parse_args(argv)
    if args.fps <= 0:
        ap.error("--fps must be positive")
    ann = args.data / GT_NAME
    if not ann.is_file():
        print(f"error: {ann} not found (the shared data lives in ../shared/data)", file=sys.stderr)
        return 2
    gt = json.loads(ann.read_text())
    cv2.setNumThreads(args.threads)
    images = sorted(gt["images"], key=lambda im: im["frame_id"])
    ids = [int(im["id"]) for im in images]
    pixels = [read_image(args.data / im["file_name"]) for im in images]
    own = ground_truth_jitter(gt)

    rows: list[dict[str, Any]] = []
    for name, preset, video in MODELS:
        model = posekit.load(preset, threads=args.threads, progress=False)
        if video:
            model = VideoTopDown(model, detect_every=10)
        t0 = time.perf_counter()
        raw = [model(image) for image in pixels]
        ms_per_frame = (time.perf_counter() - t0) / len(pixels) * 1e3
        tracked = track_sequence(raw, args.fps)
        print(f"{name}: ran and tracked {len(raw)} frames", file=sys.stderr)
        for kind, settings in (("main", MAIN), ("sweep", SWEEP)):
            for label, params in settings.items():
                preds = dict(zip(ids, smooth_sequence(tracked, params, args.fps), strict=True))
                res = tracking_metrics(gt, preds)
                rows.append({
                    "model": name, "schema": model.schema.name, "smoothing": label, "kind": kind,
                    "smoother_params": None if params is None else vars(params),
                    "summary": summary(res), "result": res.to_dict(), "ms_per_frame": ms_per_frame,
                })  # fmt: skip

    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    cpu = cpu_name()
    command = "/work/venv/bin/python benchmarks/tracking_bonn.py" + (f" --fps {args.fps:g}" if args.fps != 25.0 else "")
    report = {
        "benchmark": "benchmarks/tracking_bonn.py", "command": command, "data": str(ann), "date": now, "cpu": cpu,
        "threads": args.threads, "fps": args.fps, "frames": len(ids), "threshold": 0.5, "min_correct_fraction": 0.5,
        "gt_people": rows[0]["summary"]["gt_people"] if rows else 0,
        "gt_jitter_all_triples": {"jitter_px": own.jitter_px, "jitter_norm": own.jitter_norm, "samples": own.samples},
        "rows": rows,
    }  # fmt: skip

    main_rows = [r for r in rows if r["kind"] == "main"]
    sweep_rows = [r for r in rows if r["kind"] == "sweep"]
    lines = [
        f"Tracking on Bonn PoseTrack `060470979` ({len(ids)} frames in order, {report['gt_people']} people in "
        f"4 tracks, 14 MPII-style joints), `Tracker` at its defaults, timestamps frame / {args.fps:g} fps.",
        "",
        "A person is matched when PCKh's per-frame assignment pairs it with a tracked prediction and at least half "
        "of its labelled joints are correct at PCKh@0.5. MOTA = 1 - (misses + FP + IDSW) / GT people; people "
        "with track id -1 are untracked and not counted as FP. Jitter: mean |p[t+1] - 2 p[t] + p[t-1]| of matched "
        "joints over three consecutive matched frames (px / frame², and in head sizes); in brackets the ground "
        "truth's own value on the same triples (annotation noise + real motion).",
        "",
        f"Ground truth's own jitter over all its triples: {own.jitter_px:.2f} px, {own.jitter_norm:.3f} head "
        f"sizes ({own.samples} joint triples).",
        "",
        *table(main_rows),
        "",
        "**Small sweep of PoseSmoother settings (this sequence only; for information, not tuning):**",
        "",
        *table(sweep_rows),
        "",
        "MOTP: mean distance of correct joints of matched people, in head sizes (<= 0.5). "
        "Smoothing runs after the tracker, so the track ids and the untracked count do not depend on it; IDSW, "
        "misses and FP still can, because smoothed positions change which pairs pass the match rule.",
        "",
        f"Command: `{command}`",
        "",
        f"{cpu}, {args.threads} threads, OpenCV {cv2.__version__}; {now}.",
    ]
    write_results(args.out_dir, "tracking_bonn", report, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
