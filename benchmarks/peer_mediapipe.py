"""Peer benchmark and parity fixtures: Google's own MediaPipe Pose (legacy solution, BlazePose).

posekit never imports mediapipe. This script runs mediapipe in a throwaway, git-ignored venv
``benchmarks/.peer/mediapipe-venv`` and writes plain JSON that posekit's tests and benchmarks
read: small per-image fixtures and an accuracy/timing result file.

Step 1, build the peer venv (once; pulls ~1 GB from PyPI, jax/jaxlib included)::

    /work/venv/bin/python benchmarks/peer_mediapipe.py --build

It runs ``python3.11 -m venv benchmarks/.peer/mediapipe-venv`` (or this interpreter) and
``pip install mediapipe==0.10.21 "numpy<2" pycocotools opencv-python-headless==4.11.0.86
opencv-contrib-python==4.11.0.86`` into it (mediapipe 0.10.21 needs numpy 1.x; it depends on
opencv-contrib-python, pinned to the same OpenCV so that both wheels' ``cv2`` are identical).

Step 2, record parity fixtures (``tests/fixtures/mediapipe/<stem>.json``)::

    benchmarks/.peer/mediapipe-venv/bin/python benchmarks/peer_mediapipe.py record

Step 3, evaluate on all 77 images of coco-val2017-dev (the default command)::

    benchmarks/.peer/mediapipe-venv/bin/python benchmarks/peer_mediapipe.py eval

writes ``benchmarks/results/peer_mediapipe.json`` (COCOeval keypoint stats for several person
scores, ms per image). Started with another interpreter (e.g. /work/venv/bin/python),
``record`` and ``eval`` re-execute themselves with the peer venv's python.

The solution is exactly ``mediapipe.solutions.pose.Pose(static_image_mode=True,
model_complexity=1, enable_segmentation=False, smooth_landmarks=False)`` with default
confidences (0.5). model_complexity=1 is the "full" landmark model shipped in the wheel and
runs offline; 0 (lite) and 2 (heavy) make mediapipe download a model at construction time.
The script makes any download attempt an error. Besides the plain solution it builds the
same graph (same side inputs and options) with two more of its output streams observed,
``pose_detection`` (detector score and 4 keypoints) and ``pose_rect_from_detection`` (the
rotated square crop), checks that the landmarks are identical and stores those too.

Fixture format (one JSON per image, floats rounded to 3 decimals):

* ``image``: path relative to ``../shared/data``; ``rot90``: k for ``np.rot90(rgb, k)``
  applied to the decoded HxWx3 RGB array before mediapipe saw it (0 = unrotated);
  ``width``/``height``: the size of the array mediapipe saw (after rotation).
* ``decoder``: images are read with ``cv2.imread`` (OpenCV 4.11.0.86, libjpeg-turbo) and
  converted BGR->RGB; other JPEG decoders may differ by a grey level or so.
* ``landmarks``: 33 rows ``[x_px, y_px, z, visibility, presence]`` with x_px = x * width,
  y_px = y * height, z as mediapipe reports it (normalised, roughly the scale of x:
  z_px = z * width) and presence ``null`` (the legacy solution does not fill it).
* ``world_landmarks``: 33 rows ``[x, y, z]`` in metres, hip-centred.
* ``detection``: detector ``score`` and ``keypoints_px`` (4 x [x, y]: hip centre, point
  above the head, upper-body pair); ``roi``: ``center_px``, ``size_px`` (``[w, h]`` of the
  square crop in pixels, already enlarged by 1.25, i.e. 2.5 * |kp1 - kp0|) and ``rotation``
  (radians, MediaPipe's ``NormalizedRect`` value: ``pi/2 - atan2(-(y1 - y0), x1 - x0)``).
* ``check``: OKS of the COCO-17 subset against the image's annotated person, and the share of
  those 17 points inside its GT bbox (+10 %); a fixture is written only when both pass.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PEER_DIR = HERE / ".peer"
VENV_DIR = PEER_DIR / "mediapipe-venv"
VENV_PYTHON = VENV_DIR / "bin" / "python"
SHARED_DATA = REPO.parent / "shared" / "data"
DATA_DIR = SHARED_DATA / "coco-val2017-dev"
RESULTS = HERE / "results" / "peer_mediapipe.json"
FIXTURES = REPO / "tests" / "fixtures" / "mediapipe"

MEDIAPIPE_PIN = "mediapipe==0.10.21"
OPENCV_PIN = "opencv-python-headless==4.11.0.86"
OPENCV_CONTRIB_PIN = "opencv-contrib-python==4.11.0.86"

# Candidate single-person images (one person clearly dominates), and the one also recorded rotated.
CANDIDATES = [
    "000000000785.jpg",
    "000000109313.jpg",
    "000000153797.jpg",
    "000000368212.jpg",
    "000000343803.jpg",
    "000000181303.jpg",
]
ROTATED = "000000000785.jpg"

# BlazePose-33 index of each COCO-17 keypoint.
BLAZEPOSE_TO_COCO = [0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]

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

SOLUTION = (
    "mediapipe.solutions.pose.Pose(static_image_mode=True, model_complexity=1, "
    "enable_segmentation=False, smooth_landmarks=False)"
)


# --------------------------------------------------------------------------- build


def _run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run(cmd, check=False, text=True, **kwargs)


def build() -> None:
    """Create the throwaway venv and install mediapipe, pycocotools and OpenCV into it."""
    PEER_DIR.mkdir(parents=True, exist_ok=True)
    if not VENV_PYTHON.exists():
        base = shutil.which("python3.11") or sys.executable
        if _run([base, "-m", "venv", str(VENV_DIR)]).returncode != 0:
            raise SystemExit("could not create " + str(VENV_DIR))
    pip = [str(VENV_PYTHON), "-m", "pip", "install", "--disable-pip-version-check"]
    _run([*pip, "--upgrade", "pip"])
    packages = [MEDIAPIPE_PIN, "numpy<2", "pycocotools", OPENCV_PIN, OPENCV_CONTRIB_PIN]
    if _run(pip + packages).returncode != 0:
        raise SystemExit("pip install into the peer venv failed")
    check = _run(
        [
            str(VENV_PYTHON),
            "-c",
            "import mediapipe, cv2, numpy; print(mediapipe.__version__, cv2.__version__, numpy.__version__)",
        ]
    )
    if check.returncode != 0:
        raise SystemExit("mediapipe does not import in the peer venv")
    print(f"peer ready; next: {VENV_PYTHON} {Path(__file__).resolve()} record|eval")


def _ensure_peer_python() -> None:
    """Re-execute with the peer venv's python when mediapipe is not importable here."""
    try:
        import mediapipe  # noqa: F401
    except ImportError:
        if VENV_PYTHON.exists() and Path(sys.prefix).resolve() != VENV_DIR.resolve():
            os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), str(Path(__file__).resolve()), *sys.argv[1:]])
        raise SystemExit(f"mediapipe is not importable; run `{Path(__file__).name} --build` first") from None


# ---------------------------------------------------------------------- mediapipe


def _forbid_downloads() -> list[str]:
    """Make mediapipe's model download helper raise; returns the list of attempted paths."""
    from mediapipe.python.solutions import download_utils, pose

    attempts: list[str] = []

    def refuse(model_path: str) -> None:
        mp_root = Path(download_utils.__file__).resolve().parents[3]
        if (mp_root / model_path).exists():
            return
        attempts.append(model_path)
        raise RuntimeError(f"mediapipe tried to download {model_path} (not shipped in the wheel)")

    download_utils.download_oss_model = refuse
    pose.download_utils.download_oss_model = refuse
    return attempts


def make_pose(extra_outputs: bool = False) -> Any:
    """The legacy solution; with ``extra_outputs`` the same graph also exposes detection and crop."""
    from mediapipe.python.solution_base import SolutionBase
    from mediapipe.python.solutions import pose as mp_pose

    kwargs: dict[str, Any] = {
        "static_image_mode": True,
        "model_complexity": 1,
        "enable_segmentation": False,
        "smooth_landmarks": False,
    }
    if not extra_outputs:
        return mp_pose.Pose(**kwargs)

    class PoseWithCrop(mp_pose.Pose):  # type: ignore[misc]
        """Same graph, side inputs and options as ``Pose(**kwargs)``; two more output streams."""

        def __init__(self) -> None:
            mp_pose._download_oss_pose_landmark_model(1)
            SolutionBase.__init__(
                self,
                binary_graph_path=mp_pose._BINARYPB_FILE_PATH,
                side_inputs={
                    "model_complexity": 1,
                    "smooth_landmarks": False,
                    "enable_segmentation": False,
                    "smooth_segmentation": False,
                    "use_prev_landmarks": False,
                },
                calculator_params={
                    "posedetectioncpu__TensorsToDetectionsCalculator.min_score_thresh": 0.5,
                    "poselandmarkbyroicpu__tensorstoposelandmarksandsegmentation__ThresholdingCalculator.threshold": 0.5,
                },
                outputs=["pose_landmarks", "pose_world_landmarks", "pose_detection", "pose_rect_from_detection"],
            )

    return PoseWithCrop()


def read_rgb(path: Path, rot90: int = 0) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(path)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if rot90:
        rgb = np.ascontiguousarray(np.rot90(rgb, rot90))
    return rgb


def landmarks_array(result: Any, width: int, height: int) -> np.ndarray | None:
    """(33, 5) float array: x_px, y_px, z, visibility, presence (NaN when not set)."""
    if result.pose_landmarks is None:
        return None
    rows = []
    for lm in result.pose_landmarks.landmark:
        presence = lm.presence if lm.HasField("presence") else float("nan")
        rows.append([lm.x * width, lm.y * height, lm.z, lm.visibility, presence])
    return np.asarray(rows, dtype=np.float64)


def _r(v: float) -> float | None:
    return None if not np.isfinite(v) else round(float(v), 3)


def fixture_record(
    image_rel: str, rgb: np.ndarray, rot90: int, plain: Any, extended: Any, version: str
) -> dict[str, Any] | None:
    """Run both graphs on ``rgb`` and build the fixture dict (None when no pose is found)."""
    height, width = rgb.shape[:2]
    res = plain.process(rgb)
    lms = landmarks_array(res, width, height)
    if lms is None:
        return None
    res2 = extended.process(rgb)
    lms2 = landmarks_array(res2, width, height)
    if lms2 is None or not np.allclose(lms[:, :4], lms2[:, :4], atol=1e-6):
        raise RuntimeError(f"{image_rel}: the extended graph disagrees with the plain solution")
    det = res2.pose_detection
    rect = res2.pose_rect_from_detection
    world = [[_r(w.x), _r(w.y), _r(w.z)] for w in res.pose_world_landmarks.landmark]
    return {
        "image": image_rel,
        "rot90": rot90,
        "width": width,
        "height": height,
        "decoder": "cv2.imread BGR->RGB (opencv 4.11.0.86)",
        "mediapipe_version": version,
        "solution": SOLUTION,
        "landmark_fields": ["x_px", "y_px", "z", "visibility", "presence"],
        "landmarks": [[_r(v) for v in row] for row in lms],
        "world_landmarks": world,
        "detection": {
            "score": _r(det.score[0]),
            "keypoints_px": [[_r(k.x * width), _r(k.y * height)] for k in det.location_data.relative_keypoints],
        },
        "roi": {
            "center_px": [_r(rect.x_center * width), _r(rect.y_center * height)],
            "size_px": [_r(rect.width * width), _r(rect.height * height)],
            "rotation": _r(rect.rotation),
        },
    }


def _gt_by_image(ann_file: Path) -> tuple[dict[str, int], dict[int, list[dict[str, Any]]], dict[str, Any]]:
    data = json.loads(ann_file.read_text())
    ids = {im["file_name"]: im["id"] for im in data["images"]}
    anns: dict[int, list[dict[str, Any]]] = {}
    for a in data["annotations"]:
        anns.setdefault(a["image_id"], []).append(a)
    return ids, anns, data


def oks(pred_xy: np.ndarray, ann: dict[str, Any]) -> float:
    """COCO object keypoint similarity of one (17, 2) prediction against one annotation."""
    sigmas = (
        np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89])
        / 10.0
    )
    gt = np.asarray(ann["keypoints"], dtype=np.float64).reshape(17, 3)
    vis = gt[:, 2] > 0
    if not vis.any():
        return 0.0
    d2 = ((pred_xy - gt[:, :2]) ** 2).sum(1)
    e = d2 / (2 * (2 * sigmas) ** 2 * (ann["area"] + np.spacing(1)))
    return float(np.exp(-e)[vis].mean())


def record(args: argparse.Namespace) -> int:
    import mediapipe as mp

    attempts = _forbid_downloads()
    ids, anns, _ = _gt_by_image(args.data / "person_keypoints.json")
    args.fixtures.mkdir(parents=True, exist_ok=True)
    kept: list[str] = []
    with make_pose() as plain, make_pose(extra_outputs=True) as extended:
        cases = [(name, 0) for name in args.candidates]
        if args.rotated:
            cases.append((args.rotated, 1))
        unrotated: dict[str, np.ndarray] = {}
        for name, k in cases:
            path = args.data / "images" / name
            rel = path.resolve().relative_to(SHARED_DATA.resolve()).as_posix()
            rgb = read_rgb(path, k)
            fix = fixture_record(rel, rgb, k, plain, extended, mp.__version__)
            if fix is None:
                print(f"{name} rot90={k}: no pose found -> skipped")
                continue
            lms = np.array([[np.nan if v is None else v for v in row] for row in fix["landmarks"]])
            xy = lms[BLAZEPOSE_TO_COCO, :2]
            if k:
                # back to the unrotated image: np.rot90 k=1 maps (x, y) -> (y, W - x)
                w0 = rgb.shape[0]
                xy = np.stack([w0 - xy[:, 1], xy[:, 0]], axis=1)
            people = [a for a in anns.get(ids[name], []) if a["num_keypoints"] > 0 and not a["iscrowd"]]
            best = max(people, key=lambda a: oks(xy, a)) if people else None
            score = oks(xy, best) if best else 0.0
            inside = 0.0
            if best:
                x0, y0, bw, bh = best["bbox"]
                mx, my = 0.1 * bw, 0.1 * bh
                sel = xy
                inside = float(
                    np.mean(
                        (sel[:, 0] >= x0 - mx)
                        & (sel[:, 0] <= x0 + bw + mx)
                        & (sel[:, 1] >= y0 - my)
                        & (sel[:, 1] <= y0 + bh + my)
                    )
                )
            extra = ""
            if k and name in unrotated:
                diff = np.linalg.norm(xy - unrotated[name], axis=1)
                extra = f" | vs unrotated: median {np.median(diff):.1f} px, max {diff.max():.1f} px"
                fix["unrotated_median_px_diff_coco17"] = round(float(np.median(diff)), 3)
            elif not k:
                unrotated[name] = xy
            ok = best is not None and inside >= 0.9 and score >= args.min_oks
            print(
                f"{name} rot90={k}: det {fix['detection']['score']:.3f}, "
                f"COCO-17 in GT bbox(+10%) {inside:.2f}, OKS {score:.3f} -> {'keep' if ok else 'drop'}{extra}"
            )
            if not ok:
                continue
            fix["check"] = {"oks_vs_gt": round(score, 3), "coco17_in_gt_bbox": round(inside, 3)}
            stem = Path(name).stem + (f"_rot90_{k}" if k else "")
            out = args.fixtures / f"{stem}.json"
            out.write_text(json.dumps(fix, separators=(",", ":")) + "\n")
            kept.append(out.name)
    print(f"download attempts: {attempts or 'none'}")
    print(f"wrote {len(kept)} fixtures to {args.fixtures}: {', '.join(kept)}")
    return 0


# --------------------------------------------------------------------------- eval


def coco_eval(ann_file: Path, results: list[dict[str, Any]], img_ids: list[int]) -> dict[str, float]:
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_file))
    if not results:
        return dict.fromkeys(STAT_NAMES, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "keypoints")
        ev.params.imgIds = img_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {n: float(v) for n, v in zip(STAT_NAMES, ev.stats, strict=True)}


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    import cv2
    import mediapipe as mp

    attempts = _forbid_downloads()
    ann_file = args.data / "person_keypoints.json"
    ids, _, data = _gt_by_image(ann_file)
    names = sorted(ids)
    if args.limit:
        names = names[: args.limit]
    images = {n: read_rgb(args.data / "images" / n) for n in names}

    per_image: dict[str, dict[str, Any]] = {}
    times: list[float] = []
    with make_pose() as pose:
        for _ in range(args.warmup):
            pose.process(images[names[0]])
        for n in names:
            rgb = images[n]
            t0 = time.perf_counter()
            res = pose.process(rgb)
            times.append((time.perf_counter() - t0) * 1000.0)
            lms = landmarks_array(res, rgb.shape[1], rgb.shape[0])
            per_image[n] = {"landmarks": lms}
    # Same graph with the detection stream observed: detector score as another person score.
    with make_pose(extra_outputs=True) as pose2:
        for n in names:
            rgb = images[n]
            res = pose2.process(rgb)
            lms = landmarks_array(res, rgb.shape[1], rgb.shape[0])
            ref = per_image[n]["landmarks"]
            if (lms is None) != (ref is None) or (
                lms is not None and not np.allclose(lms[:, :4], ref[:, :4], atol=1e-6)
            ):
                raise RuntimeError(f"{n}: the extended graph disagrees with the plain solution")
            per_image[n]["det_score"] = float(res.pose_detection.score[0]) if res.pose_detection else None

    scorers = {
        "mean_visibility_coco17": lambda lm, det: float(np.mean(lm[BLAZEPOSE_TO_COCO, 3])),
        "detector_score": lambda lm, det: float(det),
        "constant_1": lambda lm, det: 1.0,
        "mean_visibility_33": lambda lm, det: float(np.mean(lm[:33, 3])),
    }
    stats: dict[str, dict[str, float]] = {}
    found = [n for n in names if per_image[n]["landmarks"] is not None]
    for key, fn in scorers.items():
        results = []
        for n in found:
            lm = per_image[n]["landmarks"]
            kps = np.concatenate([lm[BLAZEPOSE_TO_COCO, :2], lm[BLAZEPOSE_TO_COCO, 3:4]], axis=1)
            results.append(
                {
                    "image_id": ids[n],
                    "category_id": 1,
                    "keypoints": [round(float(v), 2) for v in kps.ravel()],
                    "score": fn(lm, per_image[n]["det_score"]),
                }
            )
        stats[key] = coco_eval(ann_file, results, [ids[n] for n in names])

    with_people = {a["image_id"] for a in data["annotations"] if a["num_keypoints"] > 0 and not a["iscrowd"]}
    found_ids = {ids[n] for n in found}
    out: dict[str, Any] = {
        "peer": f"MediaPipe Pose (BlazePose full), legacy solution, mediapipe {mp.__version__}",
        "solution": SOLUTION,
        "min_detection_confidence": 0.5,
        "min_tracking_confidence": 0.5,
        "opencv": cv2.__version__,
        "numpy": np.__version__,
        "cpu_count": os.cpu_count(),
        "num_images": len(names),
        "num_detections": len(found),
        "detections_on_images_with_people": len(found_ids & with_people),
        "detections_on_images_without_people": len(found_ids - with_people),
        "images_with_people": len(with_people & {ids[n] for n in names}),
        "model_downloads_attempted": attempts,
        "keypoint_score": "visibility (COCOeval ignores it); person score variants below",
        "stats": stats["mean_visibility_coco17"],
        "stats_by_person_score": stats,
        "pose_presence": "not exposed: the legacy solution leaves Landmark.presence unset and does not output the pose flag",
        "timing": {
            "what": "pose.process(rgb) wall time per image, image already decoded, after warm-up",
            "warmup_calls": args.warmup,
            "ms_mean": round(statistics.fmean(times), 2),
            "ms_median": round(statistics.median(times), 2),
            "ms_min": round(min(times), 2),
            "ms_max": round(max(times), 2),
            "ms_mean_with_detection": round(
                statistics.fmean(t for t, n in zip(times, names, strict=True) if per_image[n]["landmarks"] is not None),
                2,
            )
            if found
            else None,
            "ms_mean_without_detection": round(
                statistics.fmean(t for t, n in zip(times, names, strict=True) if per_image[n]["landmarks"] is None), 2
            )
            if len(found) < len(names)
            else None,
        },
    }
    return out


# ---------------------------------------------------------------------------- cli


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=(
            "Run Google's MediaPipe Pose (legacy solution, model_complexity=1) as a peer: "
            "build its throwaway venv, record parity fixtures, or evaluate on coco-val2017-dev."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "command",
        nargs="?",
        default="eval",
        choices=["eval", "record"],
        help="eval: COCO keypoint AP + ms/image on all images; record: write per-image fixtures",
    )
    p.add_argument("--build", action="store_true", help=f"create {VENV_DIR} and install mediapipe into it, then exit")
    p.add_argument("--data", type=Path, default=DATA_DIR, help="COCO folder with person_keypoints.json and images/")
    p.add_argument("--out", type=Path, default=RESULTS, help="eval: result JSON")
    p.add_argument("--warmup", type=int, default=3, help="eval: untimed calls before timing")
    p.add_argument("--limit", type=int, default=0, help="eval: only the first N images (0 = all)")
    p.add_argument("--fixtures", type=Path, default=FIXTURES, help="record: output folder")
    p.add_argument("--candidates", nargs="+", default=CANDIDATES, help="record: image file names")
    p.add_argument("--rotated", default=ROTATED, help="record: image also recorded with np.rot90(k=1) ('' = none)")
    p.add_argument("--min-oks", type=float, default=0.5, help="record: keep a fixture only above this OKS to GT")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.build:
        build()
        return 0
    _ensure_peer_python()
    if args.command == "record":
        return record(args)
    out = evaluate(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    for key, st in out["stats_by_person_score"].items():
        print(f"{key:>24}: AP {st['AP']:.3f}  AP50 {st['AP50']:.3f}  AP75 {st['AP75']:.3f}  AR {st['AR']:.3f}")
    t = out["timing"]
    print(
        f"detections {out['num_detections']}/{out['num_images']} images; ms/image mean {t['ms_mean']}, median {t['ms_median']}"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
