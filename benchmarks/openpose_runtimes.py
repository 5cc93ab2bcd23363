"""Forward-pass speed of the MobileNet-thin OpenPose network: OpenCV DNN vs onnxruntime vs PyTorch.

One run, same inputs: every coco-val2017-dev image (``../shared/data``) resized to the default
input size (height 432, aspect ratio kept, sides multiples of 8) by ``OpenPoseNet.preprocess``
outside the timer. Backends, each with 2 threads:

* ``opencv``: the frozen TensorFlow graph ``graph_opt.pb`` in OpenCV's DNN module (the default
  runtime of ``openpose-mobilenet-thin``);
* ``onnxruntime``: ``posekit.runtimes.onnxruntime.OnnxRuntime`` on the ONNX export of the PyTorch
  rebuild (``posekit.models.torch.openpose_mobilenet.export_onnx``, written to a temporary folder
  unless ``--onnx`` names a file);
* ``pytorch``: the rebuild itself, eager, under ``torch.inference_mode``.

Each backend first runs once on every distinct input shape (warm-up, untimed). Then, per image
and repeat, each backend runs one forward pass, the backends' order rotating from image to image
so that a busy spell of a shared machine does not land on one backend, with a short untimed pause
(``--gap``) before every pass so one backend's spinning worker threads do not slow the next. The report gives, per
backend, the mean and median milliseconds per image (a pass's time, averaged over the repeats), the
mean and median of the per-image time ratios against OpenCV, and the largest absolute difference
of the raw (1, 57, h, w) outputs between backends over all images.

Command (from the repository root; about 2 minutes on 2 cores)::

    /work/venvt/bin/python benchmarks/openpose_runtimes.py [--repeats 2] [--threads 2] [--no-torch]

Writes ``benchmarks/results/openpose_runtimes.json`` and ``.md`` (atomically).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent))

import posekit
from _results import cpu_name, write_results
from posekit.models.openpose import MOBILENET_THIN, OpenPoseNet, network_input_size
from posekit.runtimes import load_runtime
from posekit.weights import fetch

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
DEFAULT_OUT = ROOT / "benchmarks" / "results"

Forward = Callable[[NDArray[np.float32]], NDArray[np.float32]]


def _inputs(data: Path, height: int, limit: int | None) -> tuple[list[str], list[NDArray[np.float32]]]:
    """File names and network inputs of the dev images, sorted by name."""
    import json

    root = data / "coco-val2017-dev"
    images = sorted(json.loads((root / "person_keypoints.json").read_text())["images"], key=lambda im: im["file_name"])
    if limit:
        images = images[:limit]
    prep = OpenPoseNet(MOBILENET_THIN, runtime=_NoRuntime())
    names, xs = [], []
    for im in images:
        img = posekit.read_image(root / "images" / im["file_name"])
        xs.append(prep.preprocess(img, network_input_size(img.shape[:2], height)))
        names.append(im["file_name"])
    return names, xs


class _NoRuntime:
    name = "none"

    def run(self, inputs: NDArray[np.float32]) -> list[NDArray[np.float32]]:
        raise RuntimeError("preprocessing only")


def _backends(threads: int, onnx_path: Path | None, tmp: Path, use_torch: bool) -> tuple[dict[str, Forward], dict]:
    graph = fetch(MOBILENET_THIN.weights)
    info: dict[str, Any] = {}
    fwd: dict[str, Forward] = {}

    import cv2

    cv = load_runtime("opencv", graph, model_format="tensorflow", outputs=[MOBILENET_THIN.output], threads=threads)
    fwd["opencv"] = lambda x: cv.run(x)[0]
    info["opencv"] = {"version": cv2.__version__, "model": f"{graph.name} (frozen TensorFlow graph)"}

    model = None
    if use_torch or onnx_path is None:
        import torch

        from posekit.models.torch.openpose_mobilenet import OpenPoseMobileNetThin, export_onnx

        torch.set_num_threads(threads)
        model = OpenPoseMobileNetThin.from_graph(graph)
        if onnx_path is None:
            t0 = time.perf_counter()
            onnx_path = export_onnx(tmp / "openpose-mobilenet-thin.onnx", model, source=graph)
            info["export_seconds"] = round(time.perf_counter() - t0, 2)

    import onnxruntime

    ort = load_runtime("onnxruntime", onnx_path, model_format="onnx", outputs=[MOBILENET_THIN.output], threads=threads)
    fwd["onnxruntime"] = lambda x: ort.run(x)[0]
    info["onnxruntime"] = {"version": onnxruntime.__version__, "model": f"{onnx_path.name} (ONNX export)"}

    if use_torch and model is not None:
        import torch

        def run_torch(x: NDArray[np.float32]) -> NDArray[np.float32]:
            with torch.inference_mode():
                return model(torch.from_numpy(x)).numpy()

        fwd["pytorch"] = run_torch
        info["pytorch"] = {"version": torch.__version__, "model": "OpenPoseMobileNetThin (eager)"}
    return fwd, info


def _stats(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "median": statistics.median(values)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder (default: %(default)s)")
    ap.add_argument("--out-dir", type=Path, default=DEFAULT_OUT, help="results folder (default: %(default)s)")
    ap.add_argument("--height", type=int, default=432, help="network input height (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=2, help="threads of every backend (default: %(default)s)")
    ap.add_argument("--repeats", type=int, default=2, help="timed passes per image and backend (default: %(default)s)")
    ap.add_argument("--images", type=int, default=None, help="only the first N images (default: all)")
    ap.add_argument("--onnx", type=Path, default=None, help="an existing ONNX export (default: export one now)")
    ap.add_argument("--gap", type=float, default=0.02,
                    help="untimed pause before every timed pass, seconds (default: %(default)s)")  # fmt: skip
    ap.add_argument("--no-torch", action="store_true", help="leave PyTorch eager out of the timing")
    args = ap.parse_args(argv)

    names, xs = _inputs(args.data, args.height, args.images)
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        fwd, info = _backends(args.threads, args.onnx, Path(tmp), not args.no_torch)
        order = list(fwd)
        shapes = sorted({x.shape for x in xs})
        print(f"{len(xs)} images, {len(shapes)} input shapes, backends {order}, {args.threads} threads")

        # Warm-up on every shape; the outputs for the parity check come from here too (first pass).
        for shape in shapes:
            x = next(x for x in xs if x.shape == shape)
            for name in order:
                fwd[name](x)

        times = {name: np.zeros((len(xs), args.repeats)) for name in order}
        diffs: dict[str, float] = {}
        out_max = 0.0
        for i, x in enumerate(xs):
            outs = {}
            for r in range(args.repeats):
                k = (i * args.repeats + r) % len(order)
                for name in order[k:] + order[:k]:
                    time.sleep(args.gap)  # let the previous backend's worker threads go idle
                    t0 = time.perf_counter()
                    y = fwd[name](x)
                    times[name][i, r] = time.perf_counter() - t0
                    outs.setdefault(name, y)
            out_max = max(out_max, float(np.abs(outs["opencv"]).max()))
            for a_i, a in enumerate(order):
                for b in order[a_i + 1 :]:
                    key = f"{b} vs {a}"
                    diffs[key] = max(diffs.get(key, 0.0), float(np.abs(outs[a] - outs[b]).max()))
            if (i + 1) % 10 == 0 or i + 1 == len(xs):
                now = {n: round(1000 * times[n][: i + 1].mean(), 1) for n in order}
                print(f"  {i + 1}/{len(xs)} images, mean ms so far {now}")
    load_end = os.getloadavg()

    per_image_ms = {n: 1000 * times[n].mean(axis=1) for n in order}
    rows: dict[str, Any] = {}
    for n in order:
        ms = per_image_ms[n]
        ratio = per_image_ms["opencv"] / ms  # > 1: faster than OpenCV
        rows[n] = {
            **info[n],
            "ms_per_image": {k: round(v, 2) for k, v in _stats(list(ms)).items()},
            "min_ms": round(float(ms.min()), 2),
            "speedup_vs_opencv": {k: round(v, 3) for k, v in _stats(list(ratio)).items()},
            "per_image_ms": [round(float(v), 2) for v in ms],
        }
    report = {
        "description": "OpenPose MobileNet-thin forward pass (raw network, no pre/post-processing)",
        "data": "coco-val2017-dev",
        "images": names,
        "input_shapes": [list(s) for s in shapes],
        "height": args.height,
        "threads": args.threads,
        "repeats": args.repeats,
        "order": "rotating per image and repeat",
        "gap_seconds": args.gap,
        "cpu": cpu_name(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "loadavg_1min": {"start": round(load_start[0], 2), "end": round(load_end[0], 2)},
        "export_seconds": info.get("export_seconds"),
        "backends": rows,
        "max_abs_diff": {k: float(f"{v:.3g}") for k, v in diffs.items()},
        "max_abs_output_opencv": round(out_max, 4),
    }

    widths = sorted({s[3] for s in shapes})
    lines = [
        "# OpenPose MobileNet-thin: OpenCV DNN vs onnxruntime vs PyTorch",
        "",
        f"Raw forward pass of `openpose-mobilenet-thin` on the {len(xs)} coco-val2017-dev images at height "
        f"{args.height}, aspect ratio kept ({len(shapes)} input widths, {widths[0]}-{widths[-1]} px); "
        f"{args.threads} threads per backend; {args.repeats} timed passes per image and backend in one process, "
        f"the backends' order rotating, {1000 * args.gap:.0f} ms untimed pause before each pass; after a warm-up on every input shape. {cpu_name()}, {os.cpu_count()} CPUs, "
        f"1-minute load average {load_start[0]:.2f} at the start and {load_end[0]:.2f} at the end "
        "(a shared machine: compare the rows, not the absolute numbers).",
        "",
        "| backend | version | mean ms / image | median ms / image | speed-up vs OpenCV (mean of per-image ratios) "
        "| median per-image speed-up |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for n in order:
        row = rows[n]
        lines.append(
            f"| {n} | {row['version']} | {row['ms_per_image']['mean']:.1f} | {row['ms_per_image']['median']:.1f} "
            f"| {row['speedup_vs_opencv']['mean']:.2f}x | {row['speedup_vs_opencv']['median']:.2f}x |"
        )
    lines += [
        "",
        f"Largest absolute output difference over all images (outputs reach {out_max:.2f}): "
        + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items())
        + ".",
        "",
        "Command: `/work/venvt/bin/python benchmarks/openpose_runtimes.py` "
        f"(onnxruntime model exported in {info.get('export_seconds', 'n/a')} s, not timed).",
    ]
    write_results(args.out_dir, "openpose_runtimes", report, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
