"""Speed against the number of people: composed crowd images, per-stage timings, a report.

A top-down pipeline runs its single-person network once per detected person, so its cost grows
with the crowd; a bottom-up pipeline runs one forward pass and a cheap parse whatever the crowd.
To measure that on real-looking images with a known number of people, :func:`compose_crowd`
pastes real annotated COCO people (cut out along their segmentation polygons) onto a real
person-free COCO background, in rows of equal height, and returns their shifted annotations.

:func:`bench_pipeline` times a posekit pipeline per stage (from ``model.last_timings.stages``),
end to end, and the JPEG decode of the same image; :func:`speed_vs_people` does it for several
pipelines and crowd sizes; :func:`write_report` writes JSON, a markdown table and a PNG plot drawn
with OpenCV.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from posekit.io import atomic_write_bytes, read_image

__all__ = [
    "bench_pipeline",
    "compose_crowd",
    "person_pool",
    "plot_png",
    "ratios",
    "report_markdown",
    "speed_vs_people",
    "write_report",
]

log = logging.getLogger(__name__)

PERSON_SETS = ("coco-val2017-dev", "coco-train2017-mini")
BACKGROUND_SET = "coco-val2017-dev"

MIN_KEYPOINTS = 12
MIN_HEIGHT_PX = 120  # source box height: big enough to keep detail after scaling
ASPECT_RANGE = (1.3, 4.5)  # box height / width: standing-ish people that fit in a row
MAX_OCCLUSION = 0.3  # share of the box covered by other annotated people's boxes


@dataclass(frozen=True)
class _Person:
    set_name: str
    file_name: str
    ann: dict[str, Any]


def _load_set(data_dir: Path, name: str) -> dict[str, Any]:
    with open(data_dir / name / "person_keypoints.json") as f:
        data: dict[str, Any] = json.load(f)
    return data


def _box_cover(box: Sequence[float], other: Sequence[float]) -> float:
    """Share of ``box`` (xywh) covered by ``other`` (xywh)."""
    x0, y0 = max(box[0], other[0]), max(box[1], other[1])
    x1 = min(box[0] + box[2], other[0] + other[2])
    y1 = min(box[1] + box[3], other[1] + other[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    return inter / max(box[2] * box[3], 1e-9)


def _usable(ann: dict[str, Any], others: list[dict[str, Any]]) -> bool:
    seg = ann.get("segmentation")
    if ann.get("iscrowd") or ann.get("num_keypoints", 0) < MIN_KEYPOINTS:
        return False
    x, y, w, h = ann["bbox"]
    if h < MIN_HEIGHT_PX or w <= 0 or not ASPECT_RANGE[0] <= h / w <= ASPECT_RANGE[1]:
        return False
    kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
    lab = kp[kp[:, 2] > 0, :2]
    if len(lab) and not (
        (lab[:, 0] >= x).all() and (lab[:, 0] <= x + w).all() and (lab[:, 1] >= y).all() and (lab[:, 1] <= y + h).all()
    ):
        return False
    if seg is not None and not isinstance(seg, list):
        return False  # RLE: only crowd regions use it in COCO
    return sum(_box_cover(ann["bbox"], o["bbox"]) for o in others if o is not ann) <= MAX_OCCLUSION


@cache
def _pool_cached(data_dir: str) -> tuple[tuple[_Person, ...], tuple[str, ...]]:
    root = Path(data_dir)
    people: list[_Person] = []
    for name in PERSON_SETS:
        data = _load_set(root, name)
        files = {im["id"]: im["file_name"] for im in data["images"]}
        by_image: dict[int, list[dict[str, Any]]] = {}
        for a in data["annotations"]:
            by_image.setdefault(a["image_id"], []).append(a)
        for image_id, anns in sorted(by_image.items()):
            people.extend(_Person(name, files[image_id], a) for a in anns if _usable(a, anns))
    bg = _load_set(root, BACKGROUND_SET)
    with_anns = {a["image_id"] for a in bg["annotations"]}
    backgrounds = tuple(sorted(im["file_name"] for im in bg["images"] if im["id"] not in with_anns))
    if not people or not backgrounds:
        raise ValueError(f"{root}: no usable people ({len(people)}) or person-free backgrounds ({len(backgrounds)})")
    return tuple(people), backgrounds


def person_pool(data_dir: str | os.PathLike[str]) -> tuple[tuple[_Person, ...], tuple[str, ...]]:
    """The people that :func:`compose_crowd` pastes and the background file names it uses.

    People: non-crowd annotations with at least 12 labelled keypoints (all inside the box), a box
    at least 120 px tall and 1.3-4.5 times taller than wide, at most 30 % covered by other people's
    boxes, from coco-val2017-dev and coco-train2017-mini. Backgrounds: coco-val2017-dev images
    without any person annotation."""
    return _pool_cached(str(Path(data_dir).resolve()))


def _background(data_dir: Path, file_name: str, canvas: tuple[int, int]) -> NDArray[np.uint8]:
    """The image scaled to cover the canvas (W, H) and centre-cropped: no distortion."""
    img = read_image(data_dir / BACKGROUND_SET / "images" / file_name)
    w, h = canvas
    s = max(w / img.shape[1], h / img.shape[0])
    rw, rh = max(w, round(img.shape[1] * s)), max(h, round(img.shape[0] * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    big = cv2.resize(img, (rw, rh), interpolation=interp)
    x0, y0 = (rw - w) // 2, (rh - h) // 2
    return np.ascontiguousarray(big[y0 : y0 + h, x0 : x0 + w])


def _layout(n: int, aspects: Sequence[float], canvas: tuple[int, int]) -> tuple[int, int, float]:
    """Rows, columns and the common person height (px) that fits ``n`` people (width/height
    ``aspects``) in a grid with the largest possible height."""
    w, h = canvas
    margin = 0.02 * min(w, h)
    widest = max(aspects)
    best = (1, n, 0.0)
    for rows in range(1, n + 1):
        cols = math.ceil(n / rows)
        slot_w, slot_h = (w - 2 * margin) / cols, (h - 2 * margin) / rows
        height = min(0.92 * slot_h, 0.9 * slot_w / widest, 0.8 * h)
        if height > best[2]:
            best = (rows, cols, height)
    return best


def _paste(
    canvas_img: NDArray[np.uint8],
    src: NDArray[np.uint8],
    ann: dict[str, Any],
    height: float,
    origin: tuple[int, int],
) -> dict[str, Any]:
    """Paste the person of ``ann`` (from ``src``), scaled to ``height`` px, with its top-left
    corner at ``origin``; return the annotation in canvas coordinates (continuous pixels)."""
    x, y, bw, bh = ann["bbox"]
    ix0, iy0 = max(0, math.floor(x)), max(0, math.floor(y))
    ix1, iy1 = min(src.shape[1], math.ceil(x + bw)), min(src.shape[0], math.ceil(y + bh))
    scale = height / (iy1 - iy0)
    tw, th = max(1, round((ix1 - ix0) * scale)), max(1, round((iy1 - iy0) * scale))
    sx, sy = tw / (ix1 - ix0), th / (iy1 - iy0)
    patch = cv2.resize(src[iy0:iy1, ix0:ix1], (tw, th), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    ox, oy = origin

    def to_canvas(xy: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.stack([(xy[:, 0] - ix0) * sx + ox, (xy[:, 1] - iy0) * sy + oy], axis=1)

    polygons = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in ann.get("segmentation") or [] if len(p) >= 6]
    if polygons:
        mask = np.zeros((th, tw), np.uint8)
        local = [np.round(to_canvas(p) - [ox, oy] - 0.5).astype(np.int32) for p in polygons]
        cv2.fillPoly(mask, local, 255, lineType=cv2.LINE_8)
    else:
        mask = np.full((th, tw), 255, np.uint8)
    alpha = cv2.GaussianBlur(mask, (3, 3), 0).astype(np.float32)[..., None] / 255.0  # soft 1-px edge
    region = canvas_img[oy : oy + th, ox : ox + tw]
    region[:] = np.round(alpha * patch + (1 - alpha) * region).astype(np.uint8)

    kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
    lab = kp[:, 2] > 0
    kp_out = np.zeros_like(kp)
    kp_out[lab, :2] = to_canvas(kp[lab, :2])
    kp_out[lab, 2] = kp[lab, 2]
    return {
        "category_id": 1,
        "iscrowd": 0,
        "bbox": [round(float(v), 2) for v in (ox, oy, tw, th)],
        "area": float(np.count_nonzero(mask)),
        "num_keypoints": int(lab.sum()),
        "keypoints": [round(float(v), 2) for v in kp_out.ravel()],
        "segmentation": [[round(float(v), 2) for v in to_canvas(p).ravel()] for p in polygons],
    }


def compose_crowd(
    n: int,
    *,
    data_dir: str | os.PathLike[str],
    seed: int,
    canvas: tuple[int, int] = (1280, 720),
) -> tuple[NDArray[np.uint8], list[dict[str, Any]]]:
    """An RGB image of size ``canvas`` (W, H) holding exactly ``n`` real people, and their COCO
    annotations (``keypoints``, ``bbox``, ``area``, ``segmentation`` in canvas pixels, plus
    ``source``: the set, file and annotation id each person came from).

    ``data_dir`` is the shared data folder (``../shared/data``). The background is a person-free
    dev-set image scaled to cover the canvas; the people (see :func:`person_pool`, distinct while
    the pool lasts) are cut out along their segmentation polygons, scaled to one common height and
    placed in a grid (one slot each, bottom-aligned with a small random shift) so none overlap.
    The same ``seed`` gives the same image; the background depends on the seed only, so
    ``compose_crowd(0, ...)`` is the bare background of ``compose_crowd(n, ...)``.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    root = Path(data_dir)
    people, backgrounds = person_pool(root)
    bg_rng = np.random.default_rng([seed, 0])
    image = _background(root, backgrounds[int(bg_rng.integers(len(backgrounds)))], canvas)
    if n == 0:
        return image, []
    rng = np.random.default_rng([seed, 1])
    picks = rng.choice(len(people), size=n, replace=n > len(people))
    chosen = [people[int(i)] for i in picks]
    aspects = [p.ann["bbox"][2] / p.ann["bbox"][3] for p in chosen]
    rows, cols, height = _layout(n, aspects, canvas)
    w, h = canvas
    margin = 0.02 * min(w, h)
    slot_w, slot_h = (w - 2 * margin) / cols, (h - 2 * margin) / rows
    anns: list[dict[str, Any]] = []
    for i, person in enumerate(chosen):
        r, c = divmod(i, cols)
        in_row = min(cols, n - r * cols)  # centre a short last row
        left = margin + (w - 2 * margin - in_row * slot_w) / 2 + c * slot_w
        top = margin + r * slot_h
        src = read_image(root / person.set_name / "images" / person.file_name)
        x0, y0, bw, bh = person.ann["bbox"]
        iy0, iy1 = max(0, math.floor(y0)), min(src.shape[0], math.ceil(y0 + bh))
        ix0, ix1 = max(0, math.floor(x0)), min(src.shape[1], math.ceil(x0 + bw))
        pw = round((ix1 - ix0) * height / (iy1 - iy0))
        ph = round(height)
        spare_x = max(0.0, slot_w - pw)
        ox = int(left + spare_x / 2 + rng.uniform(-0.3, 0.3) * spare_x)
        oy = int(top + slot_h - ph - rng.uniform(0.0, 0.5) * max(0.0, slot_h - ph))
        ox, oy = min(max(ox, 0), w - pw), min(max(oy, 0), h - ph)
        ann = _paste(image, src, person.ann, height, (ox, oy))
        ann["id"] = i + 1
        ann["image_id"] = 0
        ann["source"] = {"set": person.set_name, "file_name": person.file_name, "annotation_id": person.ann["id"]}
        anns.append(ann)
    return image, anns


# ----------------------------------------------------------------------------- timing


def _stats_ms(seconds: Sequence[float]) -> dict[str, float]:
    ms = [s * 1e3 for s in seconds]
    return {
        "median_ms": round(statistics.median(ms), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "min_ms": round(min(ms), 3),
    }


def _time_load(images: Sequence[NDArray[np.uint8]], repeats: int) -> list[float]:
    """Seconds of ``posekit.read_image`` on each image saved once as a quality-95 JPEG."""
    out: list[float] = []
    with tempfile.TemporaryDirectory(prefix="posekit-bench-") as tmp:
        paths = []
        for i, img in enumerate(images):
            ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 95])
            if not ok:
                raise RuntimeError("JPEG encoding failed")
            p = Path(tmp) / f"{i}.jpg"
            p.write_bytes(buf.tobytes())
            paths.append(p)
        read_image(paths[0])  # warm the decoder
        for _ in range(repeats):
            for p in paths:
                t0 = time.perf_counter()
                read_image(p)
                out.append(time.perf_counter() - t0)
    return out


def _call(model: Callable[[NDArray[np.uint8]], Any], image: NDArray[np.uint8]) -> tuple[float, dict[str, float], int]:
    """One timed call: wall seconds, the model's stage seconds and the number of people returned."""
    t0 = time.perf_counter()
    poses = model(image)
    total = time.perf_counter() - t0
    timings = getattr(model, "last_timings", None)
    stages = {k: float(v) for k, v in (getattr(timings, "stages", None) or {}).items()}
    return total, stages, len(poses)


class _Samples:
    """Timed calls of one model on one set of images."""

    def __init__(self, n_images: int) -> None:
        self.total: list[float] = []
        self.stages: dict[str, list[float]] = {}
        self.found = [0] * n_images

    def add(self, index: int, sample: tuple[float, dict[str, float], int]) -> None:
        total, stages, found = sample
        self.total.append(total)
        for name, sec in stages.items():
            self.stages.setdefault(name, []).append(sec)
        self.found[index] = found

    def summary(self, repeats: int, warmup: int, load: dict[str, float]) -> dict[str, Any]:
        return {
            "images": len(self.found),
            "repeats": repeats,
            "warmup": warmup,
            "end_to_end": _stats_ms(self.total),
            "images_per_s": round(len(self.total) / sum(self.total), 3),
            "stages": {name: _stats_ms(v) for name, v in self.stages.items()},
            "load": load,
            "people_found": list(self.found),
        }


def _check_args(repeats: int, warmup: int) -> None:
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats} and {warmup}")


def bench_pipeline(
    model: Callable[[NDArray[np.uint8]], Any],
    images: Sequence[NDArray[np.uint8]],
    *,
    repeats: int,
    warmup: int,
) -> dict[str, Any]:
    """Time ``model(image)`` on every image, ``repeats`` times after ``warmup`` untimed rounds.

    Returns ``end_to_end`` and each stage of ``model.last_timings.stages`` as ``median_ms``,
    ``mean_ms`` and ``min_ms`` over all timed calls, ``images_per_s`` (calls / total time),
    ``load`` (``posekit.read_image`` of each image saved once as a JPEG, same statistics) and
    ``people_found`` (people returned for each image, last round)."""
    if not images:
        raise ValueError("no images to time")
    _check_args(repeats, warmup)
    for _ in range(warmup):
        for img in images:
            model(img)
    samples = _Samples(len(images))
    for _ in range(repeats):
        for i, img in enumerate(images):
            samples.add(i, _call(model, img))
    return samples.summary(repeats, warmup, _stats_ms(_time_load(images, repeats)))


def _environment() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


def speed_vs_people(
    models: Mapping[str, Callable[[NDArray[np.uint8]], Any]],
    counts: Sequence[int] = (1, 2, 4, 8, 16),
    *,
    data_dir: str | os.PathLike[str],
    seed: int = 0,
    canvas: tuple[int, int] = (1280, 720),
    repeats: int = 3,
    warmup: int = 1,
    images_per_count: int = 1,
    crowds: Mapping[int, Sequence[tuple[NDArray[np.uint8], list[dict[str, Any]]]]] | None = None,
) -> dict[str, Any]:
    """What :func:`bench_pipeline` reports, for every model on composed images of each crowd size.

    The same ``images_per_count`` images per count (seeds ``seed``, ``seed + 1``, ...) go to
    every model. After ``warmup`` untimed rounds, each of the ``repeats`` timed rounds runs every
    (count, model) pair once in a shuffled order, so slow spells of a shared machine spread over
    all rows instead of inflating one. ``crowds`` (count -> list of :func:`compose_crowd` results) replaces composing.

    Result: ``settings``, ``environment``, ``crowds`` (per count: seeds, people per image, JPEG
    decode time) and ``pipelines``: name -> ``{"kind", "by_count": {str(count): bench result}}``.
    """
    _check_args(repeats, warmup)
    counts = [int(c) for c in counts]
    if crowds is None:
        crowds = {
            n: [compose_crowd(n, data_dir=data_dir, seed=seed + k, canvas=canvas) for k in range(images_per_count)]
            for n in counts
        }
    images = {n: [img for img, _ in crowds[n]] for n in counts}
    for _ in range(warmup):
        for n in counts:
            for model in models.values():
                for img in images[n]:
                    model(img)
    samples = {(name, n): _Samples(len(images[n])) for name in models for n in counts}
    pairs = [(n, name) for n in counts for name in models]
    for rep in range(repeats):
        order = np.random.default_rng([seed, rep]).permutation(len(pairs))  # no fixed position in a round
        for j in order:
            n, name = pairs[int(j)]
            for i, img in enumerate(images[n]):
                samples[name, n].add(i, _call(models[name], img))
        log.info("round %d/%d done", rep + 1, repeats)
    loads = {n: _stats_ms(_time_load(images[n], repeats)) for n in counts}
    result: dict[str, Any] = {
        "settings": {
            "counts": counts,
            "canvas": list(canvas),
            "seed": seed,
            "images_per_count": images_per_count,
            "repeats": repeats,
            "warmup": warmup,
            "timed": "model(rgb) wall time on a decoded image; stages from model.last_timings.stages; "
            "each round runs every (count, model) pair once, in a shuffled order",
        },
        "environment": _environment(),
        "crowds": {
            str(n): {
                "people": [len(a) for _, a in crowds[n]],
                "seeds": [seed + k for k in range(len(crowds[n]))],
                "load": loads[n],
            }
            for n in counts
        },
        "pipelines": {
            name: {
                "kind": type(model).__name__,
                "by_count": {str(n): samples[name, n].summary(repeats, warmup, loads[n]) for n in counts},
            }
            for name, model in models.items()
        },
    }
    for name, p in result["pipelines"].items():
        for n, r in p["by_count"].items():
            log.info(
                "%s, %s people: %.1f ms median, found %s", name, n, r["end_to_end"]["median_ms"], r["people_found"]
            )
    return result


# ----------------------------------------------------------------------------- report


def ratios(result: Mapping[str, Any], stat: str = "median_ms") -> dict[str, dict[str, float]]:
    """Per pipeline: end-to-end time (``stat``: median_ms, mean_ms or min_ms) at each count
    divided by the same pipeline's time at the smallest count."""
    out: dict[str, dict[str, float]] = {}
    for name, p in result["pipelines"].items():
        by = p.get("by_count") or {}
        if not by:
            continue
        first = by[min(by, key=int)]["end_to_end"][stat]
        out[name] = {c: round(r["end_to_end"][stat] / first, 2) for c, r in by.items()}
    return out


def _found(r: Mapping[str, Any]) -> str:
    return ", ".join(str(v) for v in r.get("people_found", []))


def report_markdown(result: Mapping[str, Any], main_share: float = 0.05) -> str:
    """The markdown report: one row per people count; per pipeline its median end-to-end ms
    (with the ratio to its smallest-count time), people found and the median ms of its main
    stages (those taking at least ``main_share`` of the end-to-end time at some count)."""
    settings = result["settings"]
    counts = [str(c) for c in settings["counts"]]
    rat = ratios(result)
    pipes = result["pipelines"]
    header = ["people", "JPEG decode ms"]
    align = ["---:", "---:"]
    stage_names: dict[str, list[str]] = {}
    for name, p in pipes.items():
        by = p.get("by_count") or {}
        names: list[str] = []
        for r in by.values():
            total = r["end_to_end"]["median_ms"]
            for s, st in r.get("stages", {}).items():
                if s not in names and st["median_ms"] >= main_share * total:
                    names.append(s)
        stage_names[name] = names
        header += [f"{name} ms (× vs {counts[0]})", f"{name} found", *(f"{name} {s}" for s in names)]
        align += ["---:"] * (2 + len(names))
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    rat_min = ratios(result, "min_ms")
    ran = [name for name, p in pipes.items() if p.get("by_count")]
    summary = [
        "| people | " + " | ".join(f"{name} median ms (×) | {name} min ms (×)" for name in ran) + " |",
        "|---:|" + "---:|---:|" * len(ran),
    ]
    for c in counts:
        cells = [c]
        for name in ran:
            r = pipes[name]["by_count"].get(c)
            cells += ["-", "-"] if r is None else [
                f"{r['end_to_end']['median_ms']:.1f} (×{rat[name][c]:.2f})",
                f"{r['end_to_end']['min_ms']:.1f} (×{rat_min[name][c]:.2f})"]  # fmt: skip
        summary.append("| " + " | ".join(cells) + " |")
    for c in counts:
        crowd = result.get("crowds", {}).get(c, {})
        loads = [crowd["load"]["median_ms"]] if "load" in crowd else [
            p["by_count"][c]["load"]["median_ms"] for p in pipes.values()
            if c in (p.get("by_count") or {}) and "load" in p["by_count"][c]]  # fmt: skip
        row = [c, f"{statistics.median(loads):.1f}" if loads else "-"]
        for name, p in pipes.items():
            r = (p.get("by_count") or {}).get(c)
            if r is None:
                row += [p.get("status", "not run"), "-", *("-" for _ in stage_names[name])]
                continue
            row.append(f"{r['end_to_end']['median_ms']:.1f} (×{rat[name][c]:.2f})")
            row.append(_found(r))
            row += [f"{r['stages'][s]['median_ms']:.1f}" if s in r["stages"] else "-" for s in stage_names[name]]
        lines.append("| " + " | ".join(row) + " |")
    env = result.get("environment", {})
    notes = [f"- **{name}** ({p.get('kind', '?')}): {p['note']}" for name, p in pipes.items() if p.get("note")]
    text = [
        "# Speed against the number of people",
        "",
        f"Composed {settings['canvas'][0]}x{settings['canvas'][1]} images with exactly *n* real COCO people "
        f"pasted onto a person-free COCO background ({settings['images_per_count']} image(s) per count, seeds "
        f"from {settings['seed']}); every pipeline gets the same images. Times are medians over "
        f"{settings['repeats']} timed rounds after {settings['warmup']} warm-up round(s), in ms per image, on a "
        f"decoded image; (×r) is the time at *n* people divided by the same pipeline's time at {counts[0]}. "
        '"found" is the number of people each pipeline returned for each image. "JPEG decode" is '
        "`posekit.read_image` of the same image saved as a quality-95 JPEG. Stage columns show each "
        f"pipeline's main stages (at least {main_share:.0%} of its time at some count); the JSON has all of them.",
        "",
        "## End to end",
        "",
        "Median and fastest (min) of the timed calls; the min is the least disturbed by other work on the machine. "
        "The plot joins the fastest calls, with a bar up to each median.",
        "",
        *summary,
        "",
        "## Stages and people found (medians)",
        "",
        *lines,
        "",
        *notes,
        "",
        f"Machine: {env.get('cpu_count')} CPUs ({env.get('machine')}), Python {env.get('python')}, numpy "
        f"{env.get('numpy')}, OpenCV {env.get('opencv')}, {env.get('date')}. The machine may be shared: "
        "compare ratios and pipelines within this run rather than absolute ms across runs.",
        "",
    ]
    return "\n".join(text)


_COLOURS = [(180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148), (75, 86, 140)]  # BGR


def _nice_step(span: float, target: int = 6) -> float:
    raw = span / max(target, 1)
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)


def _text(img: NDArray[np.uint8], s: str, org: tuple[int, int], scale: float = 0.55, colour: tuple[int, int, int] = (0, 0, 0),
          anchor: str = "left", thickness: int = 1) -> None:  # fmt: skip
    (tw, th), _ = cv2.getTextSize(s, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    x, y = org
    if anchor == "center":
        x -= tw // 2
    elif anchor == "right":
        x -= tw
    cv2.putText(img, s, (x, y + th // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)


_STAT_WORDS = {"min_ms": "fastest", "median_ms": "median", "mean_ms": "mean"}


def plot_png(result: Mapping[str, Any], size: tuple[int, int] = (1200, 620), stat: str = "min_ms") -> bytes:
    """PNG bytes: end-to-end ms against people in the image, one line per pipeline.

    Lines join each count's ``stat`` (default the fastest timed call, the least disturbed by other
    work on a shared machine); a thin bar at each point spans the fastest call to the median. The
    ratio to the smallest count is written at each line's end and the legend gives the people each
    pipeline found at the largest count."""
    if stat not in _STAT_WORDS:
        raise ValueError(f"stat must be one of {sorted(_STAT_WORDS)}, got {stat!r}")
    word = _STAT_WORDS[stat]
    w, h = size
    img = np.full((h, w, 3), 255, np.uint8)
    names = [n for n, p in result["pipelines"].items() if p.get("by_count")]
    top_count = str(max(int(c) for c in result["settings"]["counts"])) if result["settings"]["counts"] else ""
    found = {
        n: f"found {_found(by[top_count])} of {top_count} people"
        for n in names
        if top_count in (by := result["pipelines"][n]["by_count"])
    }
    legend_w = max((cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, 0.55, 1)[0][0] for n in names
                    for t in (n, found.get(n, ""))), default=0) + 60  # fmt: skip
    left, right, top, bottom = 90, legend_w + 100, 60, 75
    x0, x1, y0, y1 = left, w - right, top, h - bottom  # plot area (y0 top)
    series = {
        name: sorted((int(c), r["end_to_end"][stat]) for c, r in (p.get("by_count") or {}).items())
        for name, p in result["pipelines"].items()
    }
    series = {k: v for k, v in series.items() if v}  # same order as names
    counts = [int(c) for c in result["settings"]["counts"]]
    xmin, xmax = 0, max(counts) if counts else 1
    ymax_data = max(
        (max(r["end_to_end"][stat], r["end_to_end"]["median_ms"]) for n in names
         for r in result["pipelines"][n]["by_count"].values()), default=1.0)  # fmt: skip
    step = _nice_step(ymax_data * 1.08)
    ymax = step * math.ceil(ymax_data * 1.08 / step)

    def px(c: float, ms: float) -> tuple[int, int]:
        return (round(x0 + (c - xmin) / (xmax - xmin) * (x1 - x0)), round(y1 - ms / ymax * (y1 - y0)))

    # grid, ticks and labels
    v = 0.0
    while v <= ymax + 1e-9:
        _, yy = px(xmin, v)
        cv2.line(img, (x0, yy), (x1, yy), (225, 225, 225), 1, cv2.LINE_AA)
        cv2.line(img, (x0 - 6, yy), (x0, yy), (0, 0, 0), 1, cv2.LINE_AA)
        _text(img, f"{v:g}", (x0 - 10, yy), 0.5, anchor="right")
        v += step
    for c in counts:
        xx, _ = px(c, 0)
        cv2.line(img, (xx, y0), (xx, y1), (235, 235, 235), 1, cv2.LINE_AA)
        cv2.line(img, (xx, y1), (xx, y1 + 6), (0, 0, 0), 1, cv2.LINE_AA)
        _text(img, str(c), (xx, y1 + 20), 0.5, anchor="center")
    cv2.line(img, (x0, y1), (x1, y1), (0, 0, 0), 1, cv2.LINE_AA)
    cv2.line(img, (x0, y0), (x0, y1), (0, 0, 0), 1, cv2.LINE_AA)
    _text(img, "people in the image", ((x0 + x1) // 2, h - 25), 0.6, anchor="center")
    label = f"end-to-end ms per image ({word})"
    (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.6, 1)
    strip = np.full((th + 12, tw + 10, 3), 255, np.uint8)
    _text(strip, label, (5, (th + 12) // 2), 0.6)
    strip = cv2.rotate(strip, cv2.ROTATE_90_COUNTERCLOCKWISE)
    sy = max(0, (y0 + y1) // 2 - strip.shape[0] // 2)
    img[sy : sy + strip.shape[0], 8 : 8 + strip.shape[1]] = strip
    canvas = result["settings"].get("canvas", ["?", "?"])
    _text(img, f"Speed against the number of people ({canvas[0]}x{canvas[1]} composed images)", ((x0 + x1) // 2, 25), 0.65,
          anchor="center", thickness=2)  # fmt: skip
    # lines
    rat = ratios(result, stat)
    end_labels: list[tuple[int, int, str, tuple[int, int, int]]] = []
    for i, (name, pts) in enumerate(series.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        xy = np.array([px(c, ms) for c, ms in pts], np.int32)
        by = result["pipelines"][name]["by_count"]
        for c, _ in pts:  # a thin bar from the fastest call to the median
            (bx, b_top), (_, b_low) = (
                px(c, by[str(c)]["end_to_end"]["median_ms"]),
                px(c, by[str(c)]["end_to_end"]["min_ms"]),
            )
            cv2.line(img, (bx, b_top), (bx, b_low), colour, 1, cv2.LINE_AA)
            cv2.line(img, (bx - 5, b_low), (bx + 5, b_low), colour, 1, cv2.LINE_AA)
        cv2.polylines(img, [xy], False, colour, 2, cv2.LINE_AA)
        for p in xy:
            cv2.circle(img, (int(p[0]), int(p[1])), 5, colour, -1, cv2.LINE_AA)
        end_labels.append((int(xy[-1][1]), int(xy[-1][0]), f"x{rat[name][str(pts[-1][0])]:.2f}", colour))
    placed: list[int] = []  # ratio labels right of the line ends, pushed apart so none overlap
    for y_end, x_end, text, colour in sorted(end_labels):
        yy = max([y_end, *(q + 18 for q in placed)])
        placed.append(yy)
        _text(img, text, (x_end + 12, yy), 0.5, colour)
    # legend, right of the plot area
    if names:
        lw = legend_w
        lx, ly = x1 + 85, y0
        row = 46
        cv2.rectangle(img, (lx, ly), (lx + lw, ly + 10 + row * len(names)), (150, 150, 150), 1)
        for i, n in enumerate(names):
            colour = _COLOURS[i % len(_COLOURS)]
            yy = ly + 18 + row * i
            cv2.line(img, (lx + 10, yy), (lx + 40, yy), colour, 2, cv2.LINE_AA)
            cv2.circle(img, (lx + 25, yy), 4, colour, -1, cv2.LINE_AA)
            _text(img, n, (lx + 48, yy), 0.55)
            _text(img, found.get(n, ""), (lx + 48, yy + 20), 0.45, (90, 90, 90))
        notes = [f"lines: {word} of the timed calls", "bars: from the fastest call to the median"]
        if counts:
            notes.append(f"x r: {word} at {max(counts)} / at {min(counts)} people")
        for k, note in enumerate(notes):
            _text(img, note, (lx, ly + 30 + row * len(names) + 20 * k), 0.45, (90, 90, 90))
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def write_report(result: Mapping[str, Any], out_dir: str | os.PathLike[str], stem: str = "speed") -> dict[str, Path]:
    """Write ``<stem>.json`` (the result plus ``ratios_end_to_end`` for the median and the fastest
    call), ``<stem>.md`` (:func:`report_markdown`) and ``<stem>.png`` (:func:`plot_png`) into
    ``out_dir``, each atomically; returns their paths by kind (``json``, ``md``, ``png``)."""
    out = Path(out_dir)
    data = {**result, "ratios_end_to_end": {st: ratios(result, st) for st in ("median_ms", "min_ms")}}
    paths = {
        "json": atomic_write_bytes(out / f"{stem}.json", (json.dumps(data, indent=1) + "\n").encode()),
        "md": atomic_write_bytes(out / f"{stem}.md", report_markdown(result).encode()),
        "png": atomic_write_bytes(out / f"{stem}.png", plot_png(result)),
    }
    log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return paths
