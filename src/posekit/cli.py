"""The ``posekit`` command line: predict, eval, models, weights."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

log = logging.getLogger("posekit")

DEFAULT_MODEL = "openpose-mobilenet-thin"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="posekit",
        description="Multi-person 2D human pose estimation on the CPU.",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    pr = sub.add_parser(
        "predict",
        help="find every person's keypoints in images, folders and videos",
        description=(
            "Find every person's keypoints in images, folders of images and videos. Writes OUT/results.json "
            "(COCO keypoint results), OUT/images.json (the image ids used) and an overlay image "
            "OUT/<name>.pose.jpg per image; for a video, OUT/<name>.json (results per frame) and "
            "OUT/<name>.pose.mp4 (use `posekit track` for track ids). Unreadable inputs are reported "
            "and skipped; the exit status is then 1."
        ),
    )
    pr.add_argument(
        "sources", nargs="*", metavar="SOURCE", help="image or video files, or folders (images directly inside)"
    )
    pr.add_argument("--demo", action="store_true", help="run on the built-in demo image (fetched on first use)")
    pr.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"model preset (default: {DEFAULT_MODEL}; see `posekit models`)"
    )
    pr.add_argument("--checkpoint", type=Path, default=None,
                    help="local checkpoint for the checkpoint presets (vitpose-*, fastpose-r50, sapiens-*; default: their "
                    "registered weights, downloaded on first use; see `posekit models`)")  # fmt: skip
    pr.add_argument("--out", default="posekit-out", type=Path, help="output folder (default: posekit-out)")
    pr.add_argument("--input-size", type=int, default=None, metavar="H",
                    help="network input height in pixels, a multiple of 8 (default: the model's)")  # fmt: skip
    pr.add_argument("--scales", type=_floats, default=None, metavar="S1,S2",
                    help="multi-scale: run the network at these multiples of the input size and average "
                    "(e.g. 0.85,1.15: more accurate, about 2.3x slower)")  # fmt: skip
    pr.add_argument("--schema", default="coco17", choices=["coco17", "openpose18", "blazepose33"],
                    help="keypoint layout of the written results (default: coco17)")  # fmt: skip
    pr.add_argument("--no-overlay", action="store_true", help="do not write overlay images")
    pr.add_argument(
        "--openpose-json",
        action="store_true",
        help="also write OUT/<name>_keypoints.json per image in OpenPose's layout",
    )
    pr.add_argument("--threads", type=int, default=None, help="inference threads (default: the runtime's)")
    pr.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    ev = sub.add_parser(
        "eval",
        help="COCO keypoint AP or PCKh of results, or of a model run on an annotated folder",
        description=(
            "COCO keypoint AP/AR (pycocotools' numbers, computed by posekit's exact vectorised evaluator) with a "
            "per-keypoint breakdown, or PCKh for MPII-style ground truth. Evaluates a results JSON, or runs --model "
            "on the ground truth's images first."
        ),
    )
    ev.add_argument("results", type=Path, nargs="?", help="COCO keypoint results JSON (as `posekit predict` writes)")
    ev.add_argument("--gt", type=Path, required=True, help="COCO-format keypoint ground-truth JSON")
    ev.add_argument("--images", type=Path, default=None,
                    help="images.json from `posekit predict`: maps its image ids to the ground truth's by file name")  # fmt: skip
    ev.add_argument(
        "--model", default=None, help="run this model preset on the ground truth's images instead of reading RESULTS"
    )
    ev.add_argument("--checkpoint", type=Path, default=None,
                    help="local checkpoint for --model presets: trained (required), vitpose-*, fastpose-r50, sapiens-* (default: their registered weights)")  # fmt: skip
    ev.add_argument("--gt-boxes", action="store_true",
                    help="top-down --model: estimate on the ground-truth person boxes instead of detecting")  # fmt: skip
    ev.add_argument(
        "--image-dir", type=Path, default=None, help="folder of the ground truth's images (default: GT's folder/images)"
    )
    ev.add_argument(
        "--metric", choices=["ap", "pckh"], default="ap", help="COCO OKS AP (default) or PCKh (MPII-style GT)"
    )
    ev.add_argument("--sigmas", type=_floats, default=None, metavar="S1,S2,...",
                    help="OKS sigmas, one per keypoint (default: COCO-17's; needed for other layouts)")  # fmt: skip
    ev.add_argument("--threshold", type=float, default=0.5, help="PCKh threshold in head sizes (default 0.5)")
    ev.add_argument(
        "--reference", action="store_true", help="compute AP with pycocotools instead (slower, same numbers)"
    )
    ev.add_argument("--json", action="store_true", help="print the numbers as JSON")
    ev.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    tr = sub.add_parser(
        "track",
        help="poses with persistent track ids in a video, image sequence, camera or stream",
        description=(
            "Track every person through a video file, a folder or glob of frames, a camera (0, 1, ...) or a stream "
            "URL (rtsp://...). Stages run in threads connected by bounded queues (load, infer, track+smooth, write). "
            "Writes OUT/tracks.json (COCO-style results with frame_id and track_id), OUT/keypoints.csv (one row per "
            "keypoint), OUT/openpose/ (OpenPose JSON per frame) and OUT/overlay.mp4. Ctrl+C stops cleanly with "
            "everything so far written; a truncated video is processed up to where it breaks."
        ),
    )
    tr.add_argument("source", help="video file, image folder or glob, camera index, or stream URL")
    tr.add_argument("--model", default=DEFAULT_MODEL, help=f"model preset (default: {DEFAULT_MODEL})")
    tr.add_argument("--checkpoint", type=Path, default=None,
                    help="local checkpoint for the checkpoint presets (vitpose-*, fastpose-r50, sapiens-*; default: their "
                    "registered weights, downloaded on first use; see `posekit models`)")  # fmt: skip
    tr.add_argument("--out", default="posekit-track", type=Path, help="output folder (default: posekit-track)")
    tr.add_argument("--fps", type=float, default=None, help="frame rate of an image sequence (for timestamps)")
    tr.add_argument("--no-smooth", action="store_true", help="no One-Euro smoothing of keypoints")
    tr.add_argument("--detect-every", type=int, default=10, metavar="N",
                    help="top-down models: crops follow each person from frame to frame and the person detector "
                    "runs every N frames (and when nobody is tracked); 1 detects on every frame (default 10)")  # fmt: skip
    tr.add_argument("--no-video", action="store_true", help="do not write the overlay video")
    tr.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    tr.add_argument("--sequential", action="store_true", help="one loop instead of threaded stages")
    tr.add_argument("--threads", type=int, default=None, help="inference threads (default: the runtime's)")
    tr.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    be = sub.add_parser(
        "bench",
        help="per-stage timings, and speed against the number of people",
        description=(
            "Time each pipeline stage (and end to end) on your images, or, with --crowd DATA, on composed images of "
            "1, 2, 4, 8 and 16 real COCO people to show how cost grows with the crowd (top-down) or stays flat "
            "(bottom-up). DATA is a folder holding coco-val2017-dev/ and coco-train2017-mini/ (../shared/data here). "
            "Writes OUT/speed.json, OUT/speed.md and, with --crowd, OUT/speed.png."
        ),
    )
    be.add_argument("images", nargs="*", type=Path, metavar="IMAGE", help="images or folders to time on")
    be.add_argument("--models", default="openpose-mobilenet-thin,blazepose", help="comma-separated presets")
    be.add_argument(
        "--crowd", type=Path, default=None, metavar="DATA", help="compose crowds from this COCO data folder"
    )
    be.add_argument("--counts", default="1,2,4,8,16", help="crowd sizes with --crowd (default 1,2,4,8,16)")
    be.add_argument("--repeats", type=int, default=3, help="timed rounds (default 3)")
    be.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    be.add_argument("--threads", type=int, default=2, help="inference threads (default 2)")
    be.add_argument("--out", type=Path, default=Path("posekit-bench"), help="output folder (default posekit-bench)")

    ex = sub.add_parser(
        "export",
        help="export a model to ONNX (needs posekit[torch])",
        description=(
            "Export a model's network to ONNX with a dynamic batch (and, for the OpenPose network, dynamic height and "
            "width), with posekit's description of its input and outputs (schema, stride, codec, normalisation, "
            "channel layout) in the file's metadata. MODEL is openpose-mobilenet-thin or a checkpoint preset "
            "(vitpose-s|b|l|h, fastpose-r50, sapiens-*; see `posekit models`), read from --checkpoint FILE or, "
            "without it, from its registered weights (downloaded on first use). The exported file is checked: "
            "onnxruntime's output must equal PyTorch's within 1e-4. Needs the torch extra: "
            "pip install 'posekit[torch]'."
        ),
    )
    ex.add_argument("model", metavar="MODEL", help="openpose-mobilenet-thin or a checkpoint preset")
    ex.add_argument("--out", type=Path, required=True, help="the .onnx file to write")
    ex.add_argument("--checkpoint", type=Path, default=None,
                    help="local checkpoint of a checkpoint preset (default: its registered weights)")  # fmt: skip
    ex.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")

    from posekit.train.command import add_parser as _add_train_parser

    _add_train_parser(sub)
    sub.add_parser("models", help="list model presets", description="List the model presets.")

    w = sub.add_parser(
        "weights",
        help="list, fetch or locate pretrained files",
        description="List, fetch or locate pretrained files in the local cache.",
    )
    wsub = w.add_subparsers(dest="weights_command", required=True, metavar="ACTION")
    wsub.add_parser(
        "list",
        help="list registered files, whether they are cached, and whether their sha256 is pinned",
        description="List registered files. 'unpinned' files have no sha256 in posekit's registry: the first "
        "download is trusted and its digest recorded ('recorded'), later uses are checked against it.",
    )
    wf = wsub.add_parser(
        "fetch",
        help="fetch files into the cache (with no NAME: every pinned file; checkpoints only by name)",
        description="Fetch files into the cache. With no NAME, every pinned file; the large unpinned checkpoints "
        "of the vitpose-*, fastpose-r50 and sapiens-* presets only when named.",
    )
    wf.add_argument("names", nargs="*", metavar="NAME")
    wf.add_argument("--from", dest="from_path", type=Path, default=None,
                    help="take the file from PATH (the file itself or a package archive holding it) instead of a source")  # fmt: skip
    wf.add_argument("--force", action="store_true", help="fetch again even when cached")
    wpath = wsub.add_parser("path", help="print the cache path of a file (fetching it if needed)")
    wpath.add_argument("name", metavar="NAME")
    return p


def _quiet_opencv() -> None:
    """OpenCV's own warnings (e.g. probing a non-video file) duplicate posekit's error messages."""
    try:
        import cv2

        cv2.setLogLevel(2)  # errors only
    except (ImportError, AttributeError):  # pragma: no cover - older or partial OpenCV builds
        pass


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"scales must be positive, got {text!r}")
    return values


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    if not args.verbose:
        _quiet_opencv()
    try:
        if args.command == "predict":
            return _predict(args)
        if args.command == "eval":
            return _eval(args)
        if args.command == "models":
            return _models()
        if args.command == "bench":
            return _bench(args)
        if args.command == "track":
            return _track(args)
        if args.command == "export":
            return _export(args)
        if args.command == "train":
            from posekit.train.command import run as _train

            return _train(args)
        return _weights(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one error style at the edge: a message, no traceback
        if args.verbose:
            raise
        from posekit.weights import WeightsUnavailableError

        kind = "" if isinstance(exc, WeightsUnavailableError) else f"{type(exc).__name__}: "
        print(f"error: {kind}{exc}", file=sys.stderr)
        return 2


def _load_model(args: argparse.Namespace, **kwargs: Any) -> Any:
    """``posekit.load`` with the command's --checkpoint, turning a preset's unknown option into a usage error."""
    import posekit

    if getattr(args, "checkpoint", None) is not None:
        kwargs["checkpoint"] = args.checkpoint
    try:
        return posekit.load(args.model, **kwargs)
    except TypeError as exc:
        raise ValueError(f"{args.model} does not take these options ({exc})") from None


def _image_id(path: Path, index: int, used: set[int]) -> int:
    """COCO file names are image ids (000000000139.jpg -> 139); other names are numbered."""
    iid = int(path.stem) if path.stem.isdigit() else index
    while iid in used:
        iid += 1_000_000
    used.add(iid)
    return iid


def _predict(args: argparse.Namespace) -> int:
    import cv2
    from tqdm.auto import tqdm

    from posekit.io import (
        IMAGE_SUFFIXES,
        ImageReadError,
        atomic_write_bytes,
        atomic_write_json,
        iter_image_paths,
        read_image,
    )
    from posekit.viz import draw_poses
    from posekit.weights import fetch

    sources: list[Any] = list(args.sources)
    if args.demo:
        sources.append(fetch("demo-image", progress=not args.quiet))
    if not sources:
        raise ValueError("give at least one SOURCE (an image, a video or a folder), or --demo")
    paths = list(iter_image_paths(sources))
    if not paths:
        raise ValueError(f"no images found in {', '.join(map(str, sources))}")
    from posekit.models import MODELS

    info = MODELS.get(args.model)
    if info is None:
        raise ValueError(f"unknown model {args.model!r}; expected one of {sorted(MODELS)}")
    if info.family != "bottom-up" and (args.input_size is not None or args.scales is not None):
        raise ValueError(f"--input-size and --scales apply to bottom-up models; {args.model} is {info.family}")
    kwargs: dict[str, Any] = {"progress": not args.quiet}
    if args.input_size is not None:
        kwargs["input_size"] = args.input_size
    if args.scales is not None:
        kwargs["scales"] = args.scales
    if args.threads is not None:
        kwargs["threads"] = args.threads
    model = _load_model(args, **kwargs)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    images: list[dict[str, Any]] = []
    failed: list[tuple[Path, str]] = []
    used_ids: set[int] = set()
    used_names: set[str] = set()
    n_people = 0
    for index, path in enumerate(tqdm(paths, desc="predict", unit="img", disable=args.quiet), start=1):
        if path.is_file() and path.suffix.lower() not in IMAGE_SUFFIXES:
            try:  # not an image by name: a video?
                _predict_video(args, model, path, out, used_names)
            except (ValueError, RuntimeError) as exc:
                failed.append((path, f"not a readable image or video ({exc})"))
                tqdm.write(f"error: {path}: not a readable image or video", file=sys.stderr)
            continue
        try:
            image = read_image(path)
            poses = model(image).with_schema(args.schema)
        except (ImageReadError, ValueError) as exc:
            failed.append((path, str(exc)))
            tqdm.write(f"error: {exc}", file=sys.stderr)
            continue
        iid = _image_id(path, index, used_ids)
        name = path.stem
        while name in used_names:
            name += "_"
        used_names.add(name)
        images.append(
            {"id": iid, "file_name": path.name, "path": str(path), "width": image.shape[1], "height": image.shape[0]}
        )
        results.extend(poses.to_coco(iid))
        n_people += len(poses)
        if not args.no_overlay:
            ok, buf = cv2.imencode(".jpg", draw_poses(image, poses)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
            if ok:
                atomic_write_bytes(out / f"{name}.pose.jpg", buf.tobytes())
        if args.openpose_json:
            atomic_write_json(out / f"{name}_keypoints.json", poses.to_openpose())
    atomic_write_json(out / "results.json", results)
    atomic_write_json(out / "images.json", images)
    print(f"{len(images)} image(s), {n_people} person(s) -> {out / 'results.json'}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} input(s) failed:", file=sys.stderr)
        for path, msg in failed:
            print(f"  {path}: {msg}", file=sys.stderr)
        return 1
    return 0


def _predict_video(args: argparse.Namespace, model: Any, path: Path, out: Path, used_names: set[str]) -> None:
    """Poses on every frame of a video (no tracking: see `posekit track`): OUT/<name>.json holds COCO
    results with ``frame_id`` (image ids are frame indices) and OUT/<name>.pose.mp4 the overlay."""
    from posekit.io.sinks import CocoTrackJsonSink, Sink, VideoSink
    from posekit.io.video import open_source
    from posekit.stream import run_stream

    name = path.stem
    while name in used_names:
        name += "_"
    used_names.add(name)
    sinks: list[Sink] = [CocoTrackJsonSink(out / f"{name}.json", schema=args.schema)]
    if not args.no_overlay:
        sinks.append(VideoSink(out / f"{name}.pose.mp4"))
    with open_source(path) as source:
        summary = run_stream(source, model, sinks, progress=not args.quiet)
    if summary.source_stop is not None:
        print(f"warning: {path}: stopped early: {summary.source_stop}", file=sys.stderr)


def _eval(args: argparse.Namespace) -> int:
    from posekit.eval import STAT_NAMES, evaluate_coco, evaluate_keypoints, pckh

    with open(args.gt) as f:
        gt = json.load(f)
    if args.model is not None:
        if args.results is not None:
            raise ValueError("give either RESULTS or --model, not both")
        results = _run_on_ground_truth(args, gt)
        image_ids = None
    else:
        if args.results is None:
            raise ValueError("give a RESULTS file, or --model to run a model on the ground truth's images")
        results, image_ids = _read_results(args, gt)
    if args.metric == "pckh":
        res = pckh(gt, results, threshold=args.threshold)
        if args.json:
            print(json.dumps(res.to_dict(), indent=2))
        else:
            print(f"PCKh@{args.threshold:g}  {res.pckh:.4f}   ({res.num_matched}/{res.num_gt_people} people matched)")
            for name, value in res.per_joint.items():
                print(f"  {name:16} {value:.4f}")
        return 0
    per_kp: dict[str, float] = {}
    if args.reference:
        stats = evaluate_coco(gt, results, image_ids=image_ids, sigmas=args.sigmas)
    else:
        ev = evaluate_keypoints(gt, results, image_ids=image_ids, sigmas=args.sigmas)
        stats = ev.stats
        names = _keypoint_names(gt, len(ev.keypoint_similarity))
        per_kp = {n: float(v) for n, v in zip(names, ev.keypoint_similarity, strict=True)}
    if args.json:
        print(json.dumps({"stats": stats, "keypoint_similarity": per_kp}, indent=2))
        return 0
    for name in STAT_NAMES:
        print(f"{name:>5}  {stats[name]:.4f}")
    if per_kp:
        print("mean OKS term per keypoint (pairs matched at OKS 0.5; 1 = exact):")
        for name, value in per_kp.items():
            print(f"  {name:16} {value:.3f}")
    return 0


def _keypoint_names(gt: dict[str, Any], k: int) -> list[str]:
    for cat in gt.get("categories", []):
        if len(cat.get("keypoints", [])) == k:
            return [str(n) for n in cat["keypoints"]]
    return [f"keypoint_{i}" for i in range(k)]


def _read_results(args: argparse.Namespace, gt: dict[str, Any]) -> tuple[list[dict[str, Any]], list[int] | None]:
    with open(args.results) as f:
        results = json.load(f)
    if not isinstance(results, list):
        raise ValueError(f"{args.results}: expected a JSON list of COCO keypoint results")
    if args.images is None:
        return results, None
    with open(args.images) as f:
        ours = json.load(f)
    by_name = {im["file_name"]: im["id"] for im in gt["images"]}
    missing = [im["file_name"] for im in ours if im["file_name"] not in by_name]
    if missing:
        raise ValueError(f"{len(missing)} predicted image(s) are not in the ground truth, e.g. {missing[0]}")
    remap = {im["id"]: by_name[im["file_name"]] for im in ours}
    return [{**r, "image_id": remap[r["image_id"]]} for r in results], sorted(remap.values())


def _run_on_ground_truth(args: argparse.Namespace, gt: dict[str, Any]) -> list[dict[str, Any]]:
    from posekit.eval.predict import run_on_ground_truth

    model = _load_model(args, progress=not args.quiet)
    if args.gt_boxes and not hasattr(model, "estimator"):
        raise ValueError(f"--gt-boxes needs a top-down model; {args.model} is bottom-up (it finds people itself)")
    return run_on_ground_truth(model, gt, args.image_dir or args.gt.parent / "images", gt_path=args.gt,
                               gt_boxes=args.gt_boxes, progress=not args.quiet, desc=f"eval {args.model}")  # fmt: skip


def _track(args: argparse.Namespace) -> int:
    from posekit.io.sinks import CocoTrackJsonSink, CsvSink, OpenPoseJsonSink, Sink, VideoSink
    from posekit.io.video import open_source
    from posekit.pipeline import VideoTopDown
    from posekit.stream import run_sequential, run_stream
    from posekit.tracking import PoseSmoother, Tracker

    kwargs: dict[str, Any] = {"progress": not args.quiet}
    if args.threads is not None:
        kwargs["threads"] = args.threads
    model = _load_model(args, **kwargs)
    if args.detect_every > 1 and hasattr(getattr(model, "estimator", None), "next_rois"):
        model = VideoTopDown(model, detect_every=args.detect_every)
    out: Path = args.out
    sinks: list[Sink] = [
        CocoTrackJsonSink(out / "tracks.json", schema="coco17"),
        CsvSink(out / "keypoints.csv"),
        OpenPoseJsonSink(out / "openpose"),
    ]
    if not args.no_video:
        sinks.append(VideoSink(out / "overlay.mp4"))
    tracker = Tracker()
    smoother = None if args.no_smooth else PoseSmoother()
    default_dt = 1.0 / (args.fps or 30.0)

    def track(poses: Any, frame: Any) -> Any:
        stamp = frame.timestamp if frame.timestamp == frame.timestamp else frame.index * default_dt  # NaN: by index
        poses = tracker.update(poses, frame.index, stamp)
        return smoother.smooth(poses, stamp) if smoother is not None else poses

    runner = run_sequential if args.sequential else run_stream
    with open_source(args.source, fps=args.fps) as source:
        summary = runner(source, model, sinks, postprocess=track, max_frames=args.max_frames, progress=not args.quiet)
    print(f"{summary.frames} frame(s) at {summary.fps:.1f} frames/s, {tracker.tracks_started} track(s) -> {out}",
          file=sys.stderr)  # fmt: skip
    if summary.source_stop is not None:
        print(f"warning: the source stopped early: {summary.source_stop}", file=sys.stderr)
    if summary.interrupted:
        print("interrupted: outputs hold the frames processed so far", file=sys.stderr)
        return 130
    return 0


def _export_openpose(args: argparse.Namespace) -> None:
    from posekit.io.files import atomic_output
    from posekit.models.torch.openpose_mobilenet import export_onnx

    if args.checkpoint is not None:
        raise ValueError("openpose-mobilenet-thin takes no --checkpoint (it reads its registered graph)")
    with atomic_output(args.out, suffix=".onnx") as tmp:
        export_onnx(tmp, opset=args.opset)


def _export_preset(args: argparse.Namespace) -> None:
    from posekit.models.torch.export import export_checkpoint_preset

    export_checkpoint_preset(args.model, args.out, args.checkpoint, opset=args.opset)


def _export(args: argparse.Namespace) -> int:
    from posekit.models.torch.presets import CHECKPOINT_PRESETS  # registering needs no torch

    allowed = ["openpose-mobilenet-thin", *sorted(CHECKPOINT_PRESETS)]
    if args.model not in allowed:
        raise ValueError(f"cannot export {args.model!r}; expected one of {allowed}")
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ValueError("export needs PyTorch and ONNX: pip install 'posekit[torch]'") from None
    if args.model == "openpose-mobilenet-thin":
        _export_openpose(args)
    else:
        _export_preset(args)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _bench(args: argparse.Namespace) -> int:
    import posekit
    from posekit import bench
    from posekit.io import atomic_write_bytes, atomic_write_json, iter_image_paths, read_image

    names = [n for n in args.models.split(",") if n]
    models = {n: posekit.load(n, threads=args.threads, progress=True) for n in names}
    if args.crowd is not None:
        counts = [int(c) for c in args.counts.split(",")]
        result = bench.speed_vs_people(models, counts, data_dir=args.crowd, repeats=args.repeats, warmup=args.warmup)
        paths = bench.write_report(result, args.out)
        print(bench.report_markdown(result))
        print("wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
        return 0
    if not args.images:
        raise ValueError(
            "give IMAGE files or folders to time on, or --crowd DATA for the speed-versus-people comparison"
        )
    images = [read_image(p) for p in iter_image_paths(args.images)]
    if not images:
        raise ValueError("no images found")
    result = {n: bench.bench_pipeline(m, images, repeats=args.repeats, warmup=args.warmup) for n, m in models.items()}
    atomic_write_json(args.out / "speed.json", result)
    lines = ["| pipeline | stage | median ms | min ms |", "|---|---|---:|---:|"]
    for name, r in result.items():
        for stage, st in {"load (JPEG decode)": r["load"], **r["stages"], "end to end": r["end_to_end"]}.items():
            lines.append(f"| {name} | {stage} | {st['median_ms']:.1f} | {st['min_ms']:.1f} |")
        lines.append(f"| {name} | images/s | {r['images_per_s']:.2f} | |")
    table = "\n".join(lines) + "\n"
    atomic_write_bytes(args.out / "speed.md", table.encode())
    print(table)
    return 0


def _models() -> int:
    from posekit.models import MODELS

    for info in MODELS.values():
        print(f"{info.name:28} {info.family:10} {info.schema:11} {info.license:12} {info.description}")
    return 0


def _weights(args: argparse.Namespace) -> int:
    from posekit.weights import REGISTRY, cached_path, expected_sha256, fetch, get_entry, import_file, sha256_file

    if args.weights_command == "list":
        get_entry(DEFAULT_MODEL)  # loads the built-in entries
        for e in REGISTRY.values():
            p = cached_path(e)
            want = expected_sha256(e)
            state = "cached" if p.exists() and want is not None and sha256_file(p) == want else "not cached"
            pin = "pinned" if e.pinned else ("unpinned, recorded" if want is not None else "unpinned")
            size = f"{e.size / 1e6:7.1f} MB" if e.size is not None else "      ? MB"
            print(f"{e.name:30} {size}  {state:10}  {pin:18}  {e.license}")
        return 0
    if args.weights_command == "path":
        print(fetch(args.name))
        return 0
    names = args.names
    if not names:
        get_entry(DEFAULT_MODEL)
        names = [e.name for e in REGISTRY.values() if e.pinned]  # checkpoints (GBs, unpinned): by name only
    if args.from_path is not None:
        if len(names) != 1:
            raise ValueError("--from takes exactly one NAME")
        print(import_file(names[0], args.from_path))
        return 0
    for name in names:
        print(fetch(name, force=args.force))
    return 0


if __name__ == "__main__":
    sys.exit(main())
