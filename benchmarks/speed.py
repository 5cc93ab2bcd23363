"""Speed against the number of people: top-down cost grows with the crowd, bottom-up stays flat.

Composed 1280x720 images with exactly 1, 2, 4, 8 and 16 real COCO people (cut out along their
segmentation polygons, pasted onto a person-free COCO background; see ``posekit.bench``) go to:

* ``openpose-mobilenet-thin`` (bottom-up: one network pass, then PAF parsing);
* ``blazepose`` (top-down: its tiled person detector, then the landmark model on each person);
* ``blazepose`` on the ground-truth boxes of the pasted people (detector skipped: the
  per-person cost alone, with exactly n crops);
* MediaPipe 0.10.21's own ``solutions.pose`` (keeps at most one person), timed by
  ``benchmarks/peer_mediapipe_time.py`` in the throwaway venv ``benchmarks/.peer/mediapipe-venv``
  on the same pixels (saved as PNG). Build that venv once with
  ``python benchmarks/peer_mediapipe.py --build``; without it the report says "not run".

posekit's pipelines run with 2 threads; timed rounds interleave counts and pipelines, so a busy
spell of a shared machine spreads over all rows. The report gives each pipeline's time at n people
divided by its own time at 1 person next to the milliseconds.

Command (from the repository root; about 2-3 minutes on 2 cores)::

    /work/venv/bin/python benchmarks/speed.py [--repeats 12] [--warmup 1] [--images-per-count 2] [--no-peer]

Writes ``benchmarks/results/speed.json``, ``speed.md`` and ``speed.png`` (atomically).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

import posekit
from posekit.bench import compose_crowd, speed_vs_people, write_report

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
DEFAULT_OUT = ROOT / "benchmarks" / "results"
PEER_SCRIPT = ROOT / "benchmarks" / "peer_mediapipe_time.py"
PEER_PYTHON = ROOT / "benchmarks" / ".peer" / "mediapipe-venv" / "bin" / "python"
PEER_NAME = "mediapipe solution (peer)"
BUILD_HINT = "python benchmarks/peer_mediapipe.py --build"

log = logging.getLogger("speed")


class WithBoxes:
    """A top-down pipeline called with given boxes for each image (looked up by the array's id)."""

    def __init__(self, model: Any, boxes: dict[int, NDArray[np.float32]]) -> None:
        self.model = model
        self.boxes = boxes

    @property
    def last_timings(self) -> Any:
        return self.model.last_timings

    def __call__(self, image: NDArray[np.uint8]) -> Any:
        return self.model(image, boxes=self.boxes[id(image)])


def _xyxy(anns: list[dict[str, Any]]) -> NDArray[np.float32]:
    return np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)], np.float32).reshape(-1, 4)


def _ms_stats(ms: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(ms), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "min_ms": round(min(ms), 3),
    }


def run_peer(crowds: dict[int, list[tuple[NDArray[np.uint8], Any]]], repeats: int, warmup: int) -> dict[str, Any]:
    """MediaPipe's solution on the same images, as a pipeline entry of the speed result."""
    entry: dict[str, Any] = {"kind": "MediaPipe legacy solutions.pose (subprocess, peer venv)"}
    if not PEER_PYTHON.exists():
        entry["status"] = "not run"
        entry["note"] = f"not run: its venv {PEER_PYTHON.parent.parent} is missing; build it with `{BUILD_HINT}`"
        return entry
    with tempfile.TemporaryDirectory(prefix="posekit-speed-peer-") as tmp:
        files: dict[int, list[Path]] = {}
        for n, items in crowds.items():
            files[n] = []
            for k, (img, _) in enumerate(items):
                path = Path(tmp) / f"crowd{n:02d}_{k}.png"  # lossless: the same pixels posekit gets
                cv2.imwrite(str(path), np.ascontiguousarray(img[..., ::-1]))
                files[n].append(path)
        out = Path(tmp) / "times.json"
        cmd = [str(PEER_PYTHON), str(PEER_SCRIPT), "--out", str(out), "--repeats", str(repeats)]
        cmd += ["--warmup", str(warmup), *(str(p) for ps in files.values() for p in ps)]
        log.info("peer: %s ... (%d images)", " ".join(cmd[:2]), sum(len(v) for v in files.values()))
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if proc.returncode != 0:
            entry["status"] = "failed"
            entry["note"] = f"the peer run failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}"
            return entry
        data = json.loads(out.read_text())
    times = data["images"]
    entry["kind"] = f"MediaPipe {data['mediapipe']} legacy solution, subprocess"
    entry["note"] = (
        f"`{data['solution']}` in its own venv on the same pixels (PNG), timed after the posekit rounds; "
        "it keeps at most one person, so its cost cannot grow with the crowd and it finds 1 person per image "
        "at most. It uses MediaPipe's own thread settings (this machine has 2 CPUs)."
    )
    entry["by_count"] = {}
    for n, paths in files.items():
        ms = [t for p in paths for t in times[p.name]["ms"]]
        entry["by_count"][str(n)] = {
            "images": len(paths),
            "repeats": repeats,
            "warmup": warmup,
            "end_to_end": _ms_stats(ms),
            "images_per_s": round(len(ms) / (sum(ms) / 1e3), 3),
            "stages": {},
            "people_found": [times[p.name]["people_found"] for p in paths],
        }
    return entry


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Speed against the number of people: posekit's bottom-up and top-down pipelines and "
        "MediaPipe's own solution on composed crowds of 1-16 real COCO people. Writes speed.json, speed.md and "
        "speed.png.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder (coco-val2017-dev, ...)")
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT, help="folder for speed.json/.md/.png")
    p.add_argument("--counts", type=int, nargs="+", default=[1, 2, 4, 8, 16], help="people per image")
    p.add_argument("--images-per-count", type=int, default=2, help="composed images per count (seeds seed, seed+1..)")
    p.add_argument("--repeats", type=int, default=12, help="timed rounds")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    p.add_argument("--threads", type=int, default=2, help="threads for posekit's pipelines")
    p.add_argument("--seed", type=int, default=0, help="first composition seed")
    p.add_argument("--no-peer", action="store_true", help="skip MediaPipe's own solution")
    p.add_argument("--no-gt-boxes", action="store_true", help="skip blazepose on ground-truth boxes")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    crowds = {
        n: [compose_crowd(n, data_dir=args.data, seed=args.seed + k) for k in range(args.images_per_count)]
        for n in args.counts
    }
    topdown = posekit.load("blazepose", threads=args.threads, progress=False)
    models: dict[str, Any] = {
        "openpose-mobilenet-thin": posekit.load("openpose-mobilenet-thin", threads=args.threads, progress=False),
        "blazepose": topdown,
    }
    if not args.no_gt_boxes:
        boxes = {id(img): _xyxy(anns) for items in crowds.values() for img, anns in items}
        models["blazepose on GT boxes"] = WithBoxes(topdown, boxes)
    result = speed_vs_people(
        models, args.counts, data_dir=args.data, seed=args.seed, repeats=args.repeats, warmup=args.warmup,
        images_per_count=args.images_per_count, crowds=crowds,
    )  # fmt: skip
    result["settings"]["threads"] = args.threads
    result["settings"]["command"] = " ".join(["python benchmarks/speed.py", *(sys.argv[1:] if argv is None else argv)])
    if "blazepose on GT boxes" in result["pipelines"]:
        result["pipelines"]["blazepose on GT boxes"]["kind"] = "TopDown with the pasted people's boxes"
        result["pipelines"]["blazepose on GT boxes"]["note"] = (
            "the same blazepose pipeline given the ground-truth boxes of the pasted people: no detector, "
            "exactly n people, so its time is the per-person cost alone"
        )
    if not args.no_peer:
        result["pipelines"][PEER_NAME] = run_peer(crowds, args.repeats, args.warmup)
    paths = write_report(result, args.out_dir)
    print(paths["md"].read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
