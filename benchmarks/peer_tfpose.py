"""Peer benchmark: tf-pose-estimation's own C++ post-processing (``pafprocess``).

This script makes the tf-pose-estimation 0.11.0 post-processing measurable side by side
with posekit on the COCO val2017 dev subset, without shipping any of its code: the peer's
sdist is fetched from PyPI and its SWIG extension is built in a throwaway, git-ignored
folder ``benchmarks/.peer/``.

Step 1, build the peer (once; needs PyPI and a C++ compiler)::

    /work/venv/bin/python benchmarks/peer_tfpose.py --build

This creates the venv ``benchmarks/.peer/venv``, installs numpy, opencv-python-headless,
pycocotools, swig and setuptools into it (plus ``pip install -e`` of the repository when
its ``pyproject.toml`` exists), fetches the tf-pose 0.11.0 sdist into
``benchmarks/.peer/tf-pose-0.11.0``, patches the Python-2 calls of its bundled ``numpy.i``
and builds ``_pafprocess`` in ``benchmarks/.peer/pafprocess``.

Step 2, evaluate (network forward with OpenCV DNN, then the peer post-processing)::

    benchmarks/.peer/venv/bin/python benchmarks/peer_tfpose.py [--pb /tmp/graph_opt.pb]

It prints all COCOeval keypoint stats (person score = tf-pose's human score, and as
variants the mean part score and tf-pose's ``int(x * w + 0.5)`` pixel rounding), mean
network and post-processing ms/image, and writes ``benchmarks/results/peer_tfpose.json``.
The input is resized with ``cv2.INTER_CUBIC`` as tf-pose's ``_get_scaled_img`` does
(``--resize linear`` uses ``blobFromImage(size=...)`` instead), then fed as raw BGR 0-255
float. See ``--help`` for all options.

As a module (e.g. from a side-by-side script run with the peer venv's python)::

    from peer_tfpose import tfpose_postprocess
    humans = tfpose_postprocess(output[0], upsample=8)  # output: (1, 57, H, W)

Faithfulness to ``TfPoseEstimator.inference`` (tf_pose/estimator.py), without TensorFlow:

* ``tf.image.resize_area(align_corners=False)`` by an integer factor is exact pixel
  replication (every output pixel lies inside one input pixel, and the weights are powers
  of two for x2/x4/x8), so it is reproduced with ``cv2.INTER_NEAREST`` (checked identical
  to ``np.repeat``).
* ``Smoother(25, 3.0)``: the same kernel as ``Smoother.gauss_kernel`` (differences of the
  normal CDF, ``sqrt(outer(k, k))``, normalised), which is separable, applied as a
  depthwise convolution with zero ("SAME") padding via ``cv2.sepFilter2D``.
* peaks: ``tf.nn.pool(MAX, 3x3, SAME)`` == ``cv2.dilate`` (the border never wins);
  ``peaks = where(smoothed == maxpooled, smoothed, 0)`` on all 19 channels.
* ``pafprocess.process_paf(peaks, heatMat_up, pafMat_up)`` with float32 HxWxC arrays;
  part coordinates normalised by the upsampled map width/height (as ``estimate_paf``).
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PEER_DIR = HERE / ".peer"
VENV_DIR = PEER_DIR / "venv"
VENV_PYTHON = VENV_DIR / "bin" / "python"
SRC_DIR = PEER_DIR / "tf-pose-0.11.0"
EXT_DIR = PEER_DIR / "pafprocess"
RESULTS = HERE / "results" / "peer_tfpose.json"

DATA_DIR = REPO.parent / "shared" / "data" / "coco-val2017-dev"
DEFAULT_PB = Path("/tmp/graph_opt.pb")
OUTPUT_LAYER = "Openpose/concat_stage7"
TFPOSE_VERSION = "0.11.0"
OPENCV_PIN = "opencv-python-headless==4.11.0.86"

# OpenPose COCO-18 index for each COCO-17 keypoint (Neck, index 1, is dropped).
OPENPOSE_TO_COCO = [0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10]

STAT_NAMES = [
    "AP",
    "AP50",
    "AP75",
    "AP_medium",
    "AP_large",
    "AR",
    "AR50",
    "AR75",
    "AR_medium",
    "AR_large",
]

Human = tuple[np.ndarray, float]


# --------------------------------------------------------------------------- build


def _run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run(cmd, check=False, text=True, **kwargs)


def _fetch_sdist() -> Path:
    """Unpack the tf-pose sdist into SRC_DIR (pip fails at metadata but keeps the tree)."""
    if (SRC_DIR / "tf_pose" / "pafprocess" / "pafprocess.cpp").is_file():
        print(f"sdist already unpacked at {SRC_DIR}")
        return SRC_DIR
    tmp = PEER_DIR / "pip-tmp"
    dl = PEER_DIR / "dl"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    dl.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, TMPDIR=str(tmp))
    proc = _run(
        [
            str(VENV_PYTHON),
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-clean",
            f"tf-pose=={TFPOSE_VERSION}",
            "-d",
            str(dl),
        ],
        env=env,
        capture_output=True,
    )
    hits = glob.glob(str(tmp / "pip-download-*" / "tf-pose_*" / "tf_pose" / "pafprocess"))
    if not hits:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit("could not find the unpacked tf-pose sdist under " + str(tmp))
    if proc.returncode != 0:
        print("(pip download failed at metadata build, as expected; sdist tree kept)")
    unpacked = Path(hits[0]).parent.parent
    shutil.copytree(unpacked, SRC_DIR)
    shutil.rmtree(tmp, ignore_errors=True)
    return SRC_DIR


def _build_extension() -> None:
    """Copy tf_pose/pafprocess, patch numpy.i for Python 3 and build _pafprocess."""
    shutil.rmtree(EXT_DIR, ignore_errors=True)
    shutil.copytree(SRC_DIR / "tf_pose" / "pafprocess", EXT_DIR)
    # Stale SWIG 3.0.12 outputs: let SWIG regenerate them from the patched numpy.i.
    for stale in ("pafprocess_wrap.cpp", "pafprocess.py", "__init__.py"):
        (EXT_DIR / stale).unlink(missing_ok=True)
    numpy_i = EXT_DIR / "numpy.i"
    text = numpy_i.read_text()
    text = text.replace("PyString_Check", "PyUnicode_Check").replace("PyInt_Check", "PyLong_Check")
    numpy_i.write_text(text)
    env = dict(os.environ, PATH=f"{VENV_DIR / 'bin'}{os.pathsep}{os.environ['PATH']}")
    proc = _run([str(VENV_PYTHON), "setup.py", "build_ext", "--inplace"], cwd=EXT_DIR, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"building _pafprocess failed (exit {proc.returncode})")
    check = _run(
        [
            str(VENV_PYTHON),
            "-c",
            "import pafprocess; print(pafprocess.get_num_humans())",
        ],
        cwd=EXT_DIR,
    )
    if check.returncode != 0:
        raise SystemExit("built _pafprocess does not import")


def build() -> None:
    """Create the peer venv, fetch the tf-pose sdist and build its C++ extension."""
    PEER_DIR.mkdir(parents=True, exist_ok=True)
    if not VENV_PYTHON.exists():
        proc = _run([sys.executable, "-m", "venv", str(VENV_DIR)])
        if proc.returncode != 0:
            raise SystemExit("could not create " + str(VENV_DIR))
    pip = [str(VENV_PYTHON), "-m", "pip", "install", "--disable-pip-version-check"]
    packages = ["numpy", OPENCV_PIN, "pycocotools", "swig", "setuptools"]
    if _run(pip + packages).returncode != 0:
        raise SystemExit("pip install into the peer venv failed")
    if (REPO / "pyproject.toml").is_file():
        if _run([*pip, "-e", str(REPO)]).returncode != 0:
            print(f"WARNING: pip install -e {REPO} failed; the peer itself does not need it")
    else:
        print(f"{REPO / 'pyproject.toml'} does not exist yet: posekit not installed")
    _fetch_sdist()
    _build_extension()
    print(f"peer ready; run the evaluation with {VENV_PYTHON} {Path(__file__).resolve()}")


# ---------------------------------------------------------------- post-processing

_PAFPROCESS: ModuleType | None = None
_KERNELS: dict[tuple[int, float], np.ndarray] = {}


def load_pafprocess() -> ModuleType:
    """Import the SWIG module built by ``--build`` from benchmarks/.peer/pafprocess."""
    global _PAFPROCESS
    if _PAFPROCESS is None:
        if str(EXT_DIR) not in sys.path:
            sys.path.insert(0, str(EXT_DIR))
        try:
            import pafprocess  # type: ignore[import-not-found]
        except ImportError as exc:
            raise ImportError(f"pafprocess not built in {EXT_DIR}: run `{Path(__file__).name} --build`") from exc
        _PAFPROCESS = pafprocess
    return _PAFPROCESS


def gauss_kernel_1d(kernlen: int = 25, nsig: float = 3.0) -> np.ndarray:
    """1-D factor of tf-pose's ``Smoother.gauss_kernel`` (sqrt of outer product, normalised).

    ``sqrt(outer(k, k)) / sum == outer(s, s)`` with ``s = sqrt(k) / sum(sqrt(k))``.
    """
    key = (kernlen, nsig)
    if key not in _KERNELS:
        interval = (2 * nsig + 1.0) / kernlen
        x = np.linspace(-nsig - interval / 2.0, nsig + interval / 2.0, kernlen + 1)
        cdf = np.array([0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) for v in x])
        s = np.sqrt(np.diff(cdf))
        _KERNELS[key] = (s / s.sum()).astype(np.float32)
    return _KERNELS[key]


def _upsample(x: np.ndarray, factor: int) -> np.ndarray:
    """``tf.image.resize_area`` by an integer factor == pixel replication (exact)."""
    import cv2

    h, w = x.shape[:2]
    up = cv2.resize(x, (w * factor, h * factor), interpolation=cv2.INTER_NEAREST)
    return up.reshape(h * factor, w * factor, x.shape[2])


def _smooth(heat: np.ndarray, kernlen: int = 25, sigma: float = 3.0) -> np.ndarray:
    """Depthwise Gaussian convolution, zero padding (TF ``SAME``), on an HxWxC map."""
    import cv2

    k = gauss_kernel_1d(kernlen, sigma)
    out = cv2.sepFilter2D(heat, -1, k, k, borderType=cv2.BORDER_CONSTANT)
    return out.reshape(heat.shape)


def _maxpool3(x: np.ndarray) -> np.ndarray:
    """3x3 max-pool, stride 1, TF ``SAME`` padding (padding never selected)."""
    import cv2

    return cv2.dilate(x, np.ones((3, 3), np.uint8)).reshape(x.shape)


def tfpose_postprocess(output: np.ndarray, upsample: int = 8, timings: dict[str, float] | None = None) -> list[Human]:
    """tf-pose 0.11.0 post-processing of one ``Openpose/concat_stage7`` output.

    Args:
        output: (57, H, W) float32 network output (19 heatmaps incl. background, 38 PAFs).
        upsample: integer upsampling factor of the maps (tf-pose's ``upsample_size``).
        timings: if given, ms of each stage are added to it (``upsample``,
            ``smooth_peaks``, ``pafprocess`` = the C++ call plus reading the humans).

    Returns:
        One ``(parts, score)`` per human: ``parts`` is (18, 3) float32 with
        ``x_norm, y_norm, part_score`` in OpenPose COCO-18 order (zeros when missing),
        ``score`` is ``pafprocess.get_score`` (subset score / part count).
    """
    pp = load_pafprocess()
    t0 = time.perf_counter()
    if output.ndim == 4:
        output = output[0]
    hwc = np.asarray(output, dtype=np.float32).transpose(1, 2, 0)
    heat_up = np.ascontiguousarray(hwc[:, :, :19])
    paf_up = np.ascontiguousarray(hwc[:, :, 19:])
    if upsample != 1:
        heat_up = _upsample(heat_up, upsample)
        paf_up = _upsample(paf_up, upsample)
    t1 = time.perf_counter()
    smoothed = _smooth(heat_up)
    peaks = smoothed.copy()
    peaks[smoothed != _maxpool3(smoothed)] = 0.0
    t2 = time.perf_counter()
    pp.process_paf(peaks, heat_up, paf_up)
    h, w = heat_up.shape[:2]
    humans: list[Human] = []
    for human_id in range(pp.get_num_humans()):
        parts = np.zeros((18, 3), np.float32)
        added = False
        for part_idx in range(18):
            cid = int(pp.get_part_cid(human_id, part_idx))
            if cid < 0:
                continue
            added = True
            parts[part_idx] = (
                float(pp.get_part_x(cid)) / w,
                float(pp.get_part_y(cid)) / h,
                pp.get_part_score(cid),
            )
        if added:
            humans.append((parts, float(pp.get_score(human_id))))
    if timings is not None:
        t3 = time.perf_counter()
        for key, dt in (("upsample", t1 - t0), ("smooth_peaks", t2 - t1), ("pafprocess", t3 - t2)):
            timings[key] = timings.get(key, 0.0) + dt * 1e3
    return humans


def humans_to_coco(
    humans: list[Human],
    image_id: int,
    img_w: int,
    img_h: int,
    score_mode: str = "human",
    round_pixels: bool = False,
) -> list[dict[str, Any]]:
    """COCO-17 keypoint results; missing parts get (0, 0, 0).

    ``score_mode``: ``human`` (tf-pose's human score) or ``mean_part`` (mean score of the
    detected parts). ``round_pixels``: ``int(x * w + 0.5)`` as tf-pose draws, else float.
    """
    results = []
    for parts, human_score in humans:
        kps = np.zeros((17, 3), np.float64)
        for coco_idx, op_idx in enumerate(OPENPOSE_TO_COCO):
            x, y, s = (float(v) for v in parts[op_idx])
            if s <= 0.0 and x == 0.0 and y == 0.0:
                continue
            px, py = x * img_w, y * img_h
            if round_pixels:
                px, py = float(int(px + 0.5)), float(int(py + 0.5))
            kps[coco_idx] = (px, py, s)
        present = parts[:, 2] > 0
        if score_mode == "human":
            score = human_score
        elif score_mode == "mean_part":
            score = float(parts[present, 2].mean()) if present.any() else 0.0
        else:
            raise ValueError(score_mode)
        results.append(
            {
                "image_id": int(image_id),
                "category_id": 1,
                "keypoints": [round(float(v), 3) for v in kps.ravel()],
                "score": float(score),
            }
        )
    return results


# --------------------------------------------------------------------- evaluation


def run_network(
    net: Any, img: np.ndarray, size: tuple[int, int], interp: str = "cubic"
) -> tuple[np.ndarray, float, float]:
    """Forward one BGR uint8 image; returns ((57,H,W) output, preprocess ms, forward ms)."""
    import cv2

    t0 = time.perf_counter()
    if interp == "cubic":  # tf-pose's own _get_scaled_img(): cv2.INTER_CUBIC
        resized = cv2.resize(img, size, interpolation=cv2.INTER_CUBIC)
        blob = cv2.dnn.blobFromImage(resized, 1.0, size, (0, 0, 0), False, False)
    else:
        blob = cv2.dnn.blobFromImage(img, 1.0, size, (0, 0, 0), False, False)
    t1 = time.perf_counter()
    net.setInput(blob)
    out = net.forward(OUTPUT_LAYER)
    t2 = time.perf_counter()
    return out[0], (t1 - t0) * 1e3, (t2 - t1) * 1e3


def coco_eval(ann_file: Path, results: list[dict[str, Any]], img_ids: list[int]) -> dict[str, float]:
    """COCOeval(keypoints) restricted to ``img_ids``; all 10 stats by name."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_file))
    if not results:
        return {name: 0.0 for name in STAT_NAMES}
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, iouType="keypoints")
        ev.params.imgIds = sorted(img_ids)
        ev.evaluate()
        ev.accumulate()
    ev.summarize()
    return {name: float(v) for name, v in zip(STAT_NAMES, ev.stats, strict=True)}


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    import cv2

    cv2.setNumThreads(args.threads)
    load_pafprocess()
    ann = json.loads(Path(args.ann).read_text())
    images = [im for im in ann["images"] if (Path(args.images) / im["file_name"]).is_file()]
    images.sort(key=lambda im: im["id"])
    if args.limit:
        images = images[: args.limit]
    net = cv2.dnn.readNetFromTensorflow(str(args.pb))
    size = (args.width, args.height)

    warm = cv2.imread(str(Path(args.images) / images[0]["file_name"]))
    for _ in range(2):
        run_network(net, warm, size, args.resize)

    per_image: list[tuple[dict[str, Any], list[Human]]] = []
    pre_ms: list[float] = []
    net_ms: list[float] = []
    post_ms: list[float] = []
    stage_ms: dict[str, float] = {}
    results: dict[str, list[dict[str, Any]]] = {
        "human": [],
        "mean_part": [],
        "human_rounded": [],
    }
    for im in images:
        img = cv2.imread(str(Path(args.images) / im["file_name"]))
        h, w = img.shape[:2]
        out, t_pre, t_net = run_network(net, img, size, args.resize)
        t0 = time.perf_counter()
        humans = tfpose_postprocess(out, args.upsample, stage_ms)
        dets = humans_to_coco(humans, im["id"], w, h)
        post_ms.append((time.perf_counter() - t0) * 1e3)
        pre_ms.append(t_pre)
        net_ms.append(t_net)
        results["human"].extend(dets)
        results["mean_part"].extend(humans_to_coco(humans, im["id"], w, h, "mean_part"))
        results["human_rounded"].extend(humans_to_coco(humans, im["id"], w, h, round_pixels=True))
        per_image.append((im, humans))

    img_ids = [im["id"] for im in images]
    stats: dict[str, dict[str, float]] = {}
    for variant, dets in results.items():
        print(f"\n== COCOeval keypoints, person score = {variant} ==")
        stats[variant] = coco_eval(Path(args.ann), dets, img_ids)

    report = {
        "peer": f"tf-pose-estimation {TFPOSE_VERSION} pafprocess (C++/SWIG)",
        "graph": str(args.pb),
        "input_size_wh": list(size),
        "input_resize": args.resize,
        "upsample": args.upsample,
        "threads": args.threads,
        "num_images": len(images),
        "num_detections": len(results["human"]),
        "stats": stats["human"],
        "stats_mean_part_score": stats["mean_part"],
        "stats_rounded_pixels": stats["human_rounded"],
        "ms_per_image": {
            "preprocess_mean": float(np.mean(pre_ms)),
            "network_mean": float(np.mean(net_ms)),
            "network_median": float(np.median(net_ms)),
            "postprocess_mean": float(np.mean(post_ms)),
            "postprocess_median": float(np.median(post_ms)),
            **{f"post_{k}_mean": v / len(images) for k, v in stage_ms.items()},
        },
        "python": sys.executable,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
    }
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=(
            "Build (--build) or evaluate tf-pose-estimation's pafprocess post-processing "
            "on the COCO val2017 dev subset, as a peer for posekit."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--build",
        action="store_true",
        help="create benchmarks/.peer/venv, fetch the tf-pose sdist and build _pafprocess",
    )
    p.add_argument("--pb", type=Path, default=DEFAULT_PB, help="graph_opt.pb (MobileNet-thin)")
    p.add_argument("--images", type=Path, default=DATA_DIR / "images", help="image folder")
    p.add_argument(
        "--ann",
        type=Path,
        default=DATA_DIR / "person_keypoints.json",
        help="COCO keypoint ground truth",
    )
    p.add_argument("--width", type=int, default=432, help="network input width")
    p.add_argument("--height", type=int, default=368, help="network input height")
    p.add_argument("--upsample", type=int, default=8, help="map upsampling factor")
    p.add_argument(
        "--resize",
        choices=["linear", "cubic"],
        default="cubic",
        help=(
            "input resize to WxH: cubic = tf-pose's own cv2.INTER_CUBIC resize, "
            "linear = cv2.dnn.blobFromImage(size=...) (bilinear)"
        ),
    )
    p.add_argument("--threads", type=int, default=2, help="cv2.setNumThreads")
    p.add_argument("--limit", type=int, default=0, help="only the first N images (0 = all)")
    p.add_argument("--out", type=Path, default=RESULTS, help="result JSON")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.build:
        build()
        return 0
    report = evaluate(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    ms = report["ms_per_image"]
    print(
        f"\nAP {report['stats']['AP']:.4f} (mean-part-score AP "
        f"{report['stats_mean_part_score']['AP']:.4f}) on {report['num_images']} images; "
        f"network {ms['network_mean']:.1f} ms/img, post-processing "
        f"{ms['postprocess_mean']:.1f} ms/img -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
