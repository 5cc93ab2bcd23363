"""Box noise for top-down training: train on boxes that look like a detector's, not like the labels.

In the spirit of AlphaPose's part-guided proposal generator (PGPG), :class:`BoxNoise` learns the
distribution of the offsets between detected boxes and the ground-truth boxes they match, and
moves a training box by an offset drawn from it. An offset is relative to the ground-truth box::

    (dcx / w_gt, dcy / h_gt, log(w_det / w_gt), log(h_det / h_gt))

where ``dcx, dcy`` is the shift of the box centre. Sampling is a kernel density draw: one observed
offset, chosen uniformly, plus Gaussian noise of a small per-offset bandwidth.

Conditioning is optional and deliberately simple: offsets can be bucketed by the ground-truth box's
aspect ratio ``h / w`` (``aspect_edges``), which :meth:`BoxNoise.sample` can read from the box it is
given. A bucket with fewer than ``min_bucket`` pairs falls back to all pairs. AlphaPose conditions
on clustered "atomic poses"; with a few hundred matched pairs at most here, that is not estimable.

:class:`RandomJitter` is the fallback when no detections are at hand: a uniform or Gaussian shift
of the centre and change of the size. Both implement :class:`BoxSampler`.

Measured on the shared data: the 118 detections of ``fixtures/coco/test_coco_det_AP_H_56.json``
(a COCO person detector at 56 AP) lie on the 4 fixture images, whose 14 non-crowd person boxes
all find a match at IoU 0.5; the offsets' standard deviations are 0.04 and 0.03 (centre, in box
widths and heights) and 0.10 and 0.07 (log width, log height), with means within 0.03 of 0.
BlazePose's square alignment boxes (``AlignmentBoxes(..., along=1, across=1)``, MediaPipe's
crop circle) are another shape: on ``coco-train2017-mini`` only 4 of 86 labelled people reach IoU
0.5 with one (21 at IoU 0.3, where log width averages +0.58, i.e. boxes 1.8x wider than COCO's
tight boxes), so fit those with a lower ``iou_threshold`` and more images than this mini set.
(``AlignmentBoxes``' default body boxes are closer to the labels; see its docstring.)

Boxes are xywh in image pixels (COCO's convention).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from posekit.boxes import box_iou

__all__ = [
    "OFFSET_NAMES",
    "BoxNoise",
    "BoxSampler",
    "RandomJitter",
    "apply_offsets",
    "box_offsets",
    "match_detections",
]

log = logging.getLogger(__name__)

OFFSET_NAMES = ("dcx", "dcy", "dlogw", "dlogh")
_FORMAT = "posekit.boxnoise"
_VERSION = 1


@runtime_checkable
class BoxSampler(Protocol):
    """Anything that moves a box at random: ``sample(bbox_xywh, rng) -> bbox_xywh (4,)``."""

    def sample(self, bbox_xywh: ArrayLike, rng: np.random.Generator) -> NDArray[np.float64]: ...


def _xywh(boxes: ArrayLike, what: str) -> NDArray[np.float64]:
    b = np.asarray(boxes, dtype=np.float64)
    if b.ndim == 1 and b.size == 4:
        b = b.reshape(1, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{what} must be xywh boxes of shape (N, 4), got {b.shape}")
    return b


def _xyxy(b: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def box_offsets(det_xywh: ArrayLike, gt_xywh: ArrayLike) -> NDArray[np.float64]:
    """``(N, 4)`` offsets of detected boxes from their ground-truth boxes (see the module docstring).

    Both arguments are ``(N, 4)`` xywh with positive sizes, row ``i`` of one paired with row ``i`` of
    the other.
    """
    d, g = _xywh(det_xywh, "det_xywh"), _xywh(gt_xywh, "gt_xywh")
    if len(d) != len(g):
        raise ValueError(f"det_xywh and gt_xywh must pair up row by row, got {len(d)} and {len(g)} boxes")
    if np.any(d[:, 2:] <= 0) or np.any(g[:, 2:] <= 0):
        raise ValueError("box widths and heights must be positive to take offsets")
    dc = (d[:, :2] + d[:, 2:] / 2) - (g[:, :2] + g[:, 2:] / 2)
    return np.concatenate([dc / g[:, 2:], np.log(d[:, 2:] / g[:, 2:])], axis=1)


def apply_offsets(bbox_xywh: ArrayLike, offsets: ArrayLike) -> NDArray[np.float64]:
    """The inverse of :func:`box_offsets`: move ``(N, 4)`` (or ``(4,)``) boxes by offsets of the same shape."""
    one = np.asarray(bbox_xywh).ndim == 1
    b = _xywh(bbox_xywh, "bbox_xywh")
    o = np.asarray(offsets, dtype=np.float64).reshape(b.shape)
    center = b[:, :2] + b[:, 2:] / 2 + o[:, :2] * b[:, 2:]
    size = b[:, 2:] * np.exp(o[:, 2:])
    out = np.concatenate([center - size / 2, size], axis=1)
    return out[0] if one else out


def match_detections(
    det_xywh: ArrayLike,
    det_scores: ArrayLike,
    det_image_ids: ArrayLike,
    gt_xywh: ArrayLike,
    gt_image_ids: ArrayLike,
    iou_threshold: float = 0.5,
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Greedy one-to-one matching of detections to ground-truth boxes of the same image.

    Detections are taken by decreasing score (ties by input order); each takes the still unmatched
    ground-truth box of its image with the highest IoU, if that IoU is ``>= iou_threshold``.
    Returns ``(det_index, gt_index)``, in the order the pairs were made.
    """
    d, g = _xywh(det_xywh, "det_xywh"), _xywh(gt_xywh, "gt_xywh")
    scores = np.asarray(det_scores, dtype=np.float64).reshape(-1)
    d_img = np.asarray(det_image_ids).reshape(-1)
    g_img = np.asarray(gt_image_ids).reshape(-1)
    if not (len(scores) == len(d_img) == len(d)):
        raise ValueError(f"got {len(d)} detection boxes, {len(scores)} scores and {len(d_img)} image ids")
    if len(g_img) != len(g):
        raise ValueError(f"got {len(g)} ground-truth boxes and {len(g_img)} image ids")
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    det_idx: list[int] = []
    gt_idx: list[int] = []
    for image_id in np.unique(d_img):
        ds = np.flatnonzero(d_img == image_id)
        gs = np.flatnonzero(g_img == image_id)
        if len(gs) == 0:
            continue
        ds = ds[np.argsort(-scores[ds], kind="stable")]
        iou = box_iou(_xyxy(d[ds]), _xyxy(g[gs]))
        taken = np.zeros(len(gs), dtype=bool)
        for row, di in enumerate(ds):
            cand = np.where(taken, -1.0, iou[row])
            best = int(np.argmax(cand))
            if cand[best] >= iou_threshold:
                taken[best] = True
                det_idx.append(int(di))
                gt_idx.append(int(gs[best]))
    return np.asarray(det_idx, dtype=np.intp), np.asarray(gt_idx, dtype=np.intp)


def _aspect_bucket(gt_xywh: NDArray[np.float64], edges: tuple[float, ...]) -> NDArray[np.intp]:
    """Bucket ``i`` holds aspect ratios ``h / w`` in ``[edges[i-1], edges[i])``."""
    aspect = gt_xywh[:, 3] / np.maximum(gt_xywh[:, 2], 1e-12)
    return np.searchsorted(np.asarray(edges, dtype=np.float64), aspect, side="right").astype(np.intp)


def _scott_bandwidth(offsets: NDArray[np.float64], factor: float) -> NDArray[np.float64]:
    """Scott's rule per offset: ``factor * std * n ** (-1 / (d + 4))`` with ``d = 4``."""
    n = len(offsets)
    if n < 2:
        return np.zeros(4)
    return factor * offsets.std(axis=0, ddof=1) * n ** (-1.0 / 8.0)


def _read_json(path: str | os.PathLike[str]) -> Any:
    with open(path) as f:
        return json.load(f)


def _ground_truth(gt: dict[str, Any]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Non-crowd person boxes with a positive size (labelled keypoints or not) and their image ids."""
    boxes, ids = [], []
    for a in gt.get("annotations", []):
        bbox = a.get("bbox")
        if a.get("iscrowd", 0) or a.get("category_id", 1) != 1 or bbox is None or len(bbox) != 4:
            continue
        if bbox[2] > 0 and bbox[3] > 0:
            boxes.append(bbox)
            ids.append(int(a["image_id"]))
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.asarray(ids, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class BoxNoise:
    """Fitted detector-box offsets and a kernel density sampler over them.

    ``offsets (M, 4)`` are :data:`OFFSET_NAMES` per matched pair, ``buckets (M,)`` each pair's
    aspect-ratio bucket (all 0 when ``aspect_edges`` is empty), ``bandwidth (4,)`` the standard
    deviation of the Gaussian kernel per offset. ``source`` says where the offsets came from.
    """

    offsets: NDArray[np.float64]
    bandwidth: NDArray[np.float64]
    buckets: NDArray[np.intp] = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    aspect_edges: tuple[float, ...] = ()
    min_bucket: int = 20
    source: str = ""

    def __post_init__(self) -> None:
        o = np.asarray(self.offsets, dtype=np.float64)
        if o.ndim != 2 or o.shape[1] != 4 or len(o) == 0:
            raise ValueError(f"offsets must have shape (M, 4) with M >= 1, got {o.shape}")
        if not np.isfinite(o).all():
            raise ValueError("offsets must be finite")
        bw = np.asarray(self.bandwidth, dtype=np.float64).reshape(-1)
        if bw.shape != (4,) or np.any(bw < 0):
            raise ValueError(f"bandwidth must be 4 non-negative numbers, got {bw}")
        b = np.asarray(self.buckets, dtype=np.intp).reshape(-1)
        if b.size == 0:
            b = np.zeros(len(o), dtype=np.intp)
        edges = tuple(float(e) for e in self.aspect_edges)
        if len(b) != len(o) or np.any(b < 0) or np.any(b > len(edges)):
            raise ValueError(f"buckets must be {len(o)} integers in [0, {len(edges)}], got {b}")
        if any(e1 <= e0 for e0, e1 in itertools.pairwise(edges)) or any(e <= 0 for e in edges):
            raise ValueError(f"aspect_edges must be positive and increasing, got {edges}")
        if self.min_bucket < 1:
            raise ValueError(f"min_bucket must be >= 1, got {self.min_bucket}")
        for name, value in (("offsets", o), ("bandwidth", bw), ("buckets", b)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        object.__setattr__(self, "aspect_edges", edges)

    # --- fitting -----------------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        det_xywh: ArrayLike,
        gt_xywh: ArrayLike,
        *,
        aspect_edges: Sequence[float] = (),
        min_bucket: int = 20,
        bandwidth: float = 1.0,
        source: str = "",
    ) -> BoxNoise:
        """Fit on matched pairs (row ``i`` of ``det_xywh`` matched to row ``i`` of ``gt_xywh``).

        The kernel bandwidth is Scott's rule per offset, times ``bandwidth`` (0 resamples the
        observed offsets exactly).
        """
        g = _xywh(gt_xywh, "gt_xywh")
        offsets = box_offsets(det_xywh, g)
        if len(offsets) == 0:
            raise ValueError("no matched pairs to fit: check that detections and ground truth share image ids")
        if bandwidth < 0:
            raise ValueError(f"bandwidth must be >= 0, got {bandwidth}")
        edges = tuple(float(e) for e in aspect_edges)
        return cls(offsets, _scott_bandwidth(offsets, bandwidth), _aspect_bucket(g, edges), edges, min_bucket, source)

    @classmethod
    def from_matches(
        cls,
        det_xywh: ArrayLike,
        det_scores: ArrayLike,
        det_image_ids: ArrayLike,
        gt_xywh: ArrayLike,
        gt_image_ids: ArrayLike,
        *,
        iou_threshold: float = 0.5,
        **fit_kwargs: Any,
    ) -> BoxNoise:
        """Match detections to ground truth (:func:`match_detections`) and fit on the pairs."""
        di, gi = match_detections(det_xywh, det_scores, det_image_ids, gt_xywh, gt_image_ids, iou_threshold)
        d, g = _xywh(det_xywh, "det_xywh"), _xywh(gt_xywh, "gt_xywh")
        return cls.fit(d[di], g[gi], **fit_kwargs)

    @classmethod
    def from_coco(
        cls,
        det_json_path: str | os.PathLike[str],
        gt_json_path: str | os.PathLike[str],
        *,
        iou_threshold: float = 0.5,
        min_score: float = 0.0,
        **fit_kwargs: Any,
    ) -> BoxNoise:
        """Fit on a COCO results file of person detections against a COCO annotation file.

        Detections with ``score < min_score``, of another category than 1, or on images absent
        from the annotation file are left out. Ground truth is every non-crowd person box (people
        without labelled keypoints too, so that a detection of one is not paired with a neighbour).
        """
        dets = _read_json(det_json_path)
        if not isinstance(dets, list):
            raise ValueError(f"{det_json_path} is not a COCO results file (a JSON list of detections)")
        gt = _read_json(gt_json_path)
        known = {int(im["id"]) for im in gt.get("images", [])}
        keep = [x for x in dets if x.get("category_id", 1) == 1 and float(x.get("score", 1.0)) >= min_score]
        on_known = [x for x in keep if int(x["image_id"]) in known]
        if len(on_known) < len(keep):
            log.info("%d of %d detections are on images without ground truth", len(keep) - len(on_known), len(keep))
        g, g_ids = _ground_truth(gt)
        d = np.asarray([x["bbox"] for x in on_known], dtype=np.float64).reshape(-1, 4)
        s = np.asarray([float(x.get("score", 1.0)) for x in on_known])
        d_ids = np.asarray([int(x["image_id"]) for x in on_known], dtype=np.int64)
        fit_kwargs.setdefault("source", f"{Path(det_json_path).name} vs {Path(gt_json_path).name}")
        return cls.from_matches(d, s, d_ids, g, g_ids, iou_threshold=iou_threshold, **fit_kwargs)

    @classmethod
    def from_detector(
        cls,
        detector: Callable[[NDArray[np.uint8]], Any],
        gt_json_path: str | os.PathLike[str],
        image_dir: str | os.PathLike[str],
        *,
        image_ids: Iterable[int] | None = None,
        iou_threshold: float = 0.5,
        **fit_kwargs: Any,
    ) -> BoxNoise:
        """Fit on a detector's own boxes over an annotated image folder.

        ``detector`` maps an RGB image to :class:`~posekit.detectors.Detections` (xyxy boxes and
        scores), e.g. ``AlignmentBoxes(BlazePoseDetector())`` from
        :mod:`posekit.models.torch.presets`, the boxes posekit's top-down presets crop from.
        ``image_ids`` restricts the images (all images of the file by default).
        """
        from posekit.io.images import read_image

        gt = _read_json(gt_json_path)
        images = {int(im["id"]): im for im in gt.get("images", [])}
        ids = list(images) if image_ids is None else [int(i) for i in image_ids]
        missing = [i for i in ids if i not in images]
        if missing:
            raise ValueError(f"image ids {missing[:5]} are not in {gt_json_path}")
        boxes, scores, d_ids = [], [], []
        for iid in ids:
            det = detector(read_image(Path(image_dir) / images[iid]["file_name"]))
            b = np.asarray(det.boxes, dtype=np.float64).reshape(-1, 4)
            boxes.append(np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1))
            scores.append(np.asarray(det.scores, dtype=np.float64).reshape(-1))
            d_ids.append(np.full(len(b), iid, dtype=np.int64))
        g, g_ids = _ground_truth(gt)
        sel = np.isin(g_ids, ids)
        fit_kwargs.setdefault("source", f"{type(detector).__name__} on {Path(gt_json_path).name}")
        return cls.from_matches(
            np.concatenate(boxes) if boxes else np.zeros((0, 4)),
            np.concatenate(scores) if scores else np.zeros(0),
            np.concatenate(d_ids) if d_ids else np.zeros(0, dtype=np.int64),
            g[sel],
            g_ids[sel],
            iou_threshold=iou_threshold,
            **fit_kwargs,
        )

    # --- sampling ----------------------------------------------------------------------------------

    def _pool(self, bbox: NDArray[np.float64]) -> NDArray[np.intp]:
        if not self.aspect_edges:
            return np.arange(len(self.offsets))
        bucket = int(_aspect_bucket(bbox.reshape(1, 4), self.aspect_edges)[0])
        pool = np.flatnonzero(self.buckets == bucket)
        return pool if len(pool) >= self.min_bucket else np.arange(len(self.offsets))

    def sample_offset(self, bbox_xywh: ArrayLike, rng: np.random.Generator) -> NDArray[np.float64]:
        """One offset for ``bbox_xywh``: draws an observed offset index, then 4 normals (in that order)."""
        b = np.asarray(bbox_xywh, dtype=np.float64).reshape(4)
        pool = self._pool(b)
        i = pool[rng.integers(len(pool))]
        return self.offsets[i] + self.bandwidth * rng.standard_normal(4)

    def sample(self, bbox_xywh: ArrayLike, rng: np.random.Generator) -> NDArray[np.float64]:
        """``bbox_xywh (4,)`` moved by one :meth:`sample_offset` draw.

        A box with a non-positive width or height is returned unchanged, after the same draws.
        """
        b = np.asarray(bbox_xywh, dtype=np.float64).reshape(4)
        off = self.sample_offset(b, rng)
        if b[2] <= 0 or b[3] <= 0:
            return b.copy()
        return apply_offsets(b, off)

    # --- summary and files -------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Pair count, and mean / std / 5th / 50th / 95th percentiles of each offset (overall and per bucket)."""

        def stats(o: NDArray[np.float64]) -> dict[str, Any]:
            out: dict[str, Any] = {"count": len(o)}
            for j, name in enumerate(OFFSET_NAMES):
                p5, p50, p95 = np.percentile(o[:, j], [5, 50, 95])
                out[name] = {
                    "mean": float(o[:, j].mean()),
                    "std": float(o[:, j].std(ddof=1)) if len(o) > 1 else 0.0,
                    "p5": float(p5),
                    "p50": float(p50),
                    "p95": float(p95),
                }
            return out

        result = stats(self.offsets)
        result["bandwidth"] = dict(zip(OFFSET_NAMES, (float(v) for v in self.bandwidth), strict=True))
        result["source"] = self.source
        if self.aspect_edges:
            lo = (0.0, *self.aspect_edges)
            hi = (*self.aspect_edges, float("inf"))
            result["buckets"] = [
                {"aspect_h_over_w": [lo[k], hi[k]], **stats(self.offsets[self.buckets == k])}
                for k in range(len(self.aspect_edges) + 1)
                if (self.buckets == k).any()
            ]
        return result

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "offset_names": list(OFFSET_NAMES),
            "source": self.source,
            "aspect_edges": list(self.aspect_edges),
            "min_bucket": self.min_bucket,
            "bandwidth": self.bandwidth.tolist(),
            "offsets": np.round(self.offsets, 6).tolist(),
            "buckets": self.buckets.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BoxNoise:
        if data.get("format") != _FORMAT or data.get("version") != _VERSION:
            raise ValueError(
                f"not a box-noise file: expected format {_FORMAT!r} version {_VERSION}, "
                f"got {data.get('format')!r} version {data.get('version')!r}"
            )
        if tuple(data.get("offset_names", ())) != OFFSET_NAMES:
            raise ValueError(f"offset_names must be {list(OFFSET_NAMES)}, got {data.get('offset_names')}")
        return cls(
            np.asarray(data["offsets"], dtype=np.float64).reshape(-1, 4),
            np.asarray(data["bandwidth"], dtype=np.float64),
            np.asarray(data["buckets"], dtype=np.intp),
            tuple(data.get("aspect_edges", ())),
            int(data.get("min_bucket", 20)),
            str(data.get("source", "")),
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write a small JSON file (offsets rounded to 1e-6)."""
        Path(path).write_text(json.dumps(self.to_dict()) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BoxNoise:
        return cls.from_dict(_read_json(path))


@dataclass(frozen=True)
class RandomJitter:
    """Box noise without fitted data: shift the centre and change the size at random.

    The centre moves by ``shift * (w, h)`` and each side is multiplied by ``exp(scale * z)``, ``z``
    drawn independently for width and height. With ``distribution="uniform"`` (default) each
    component of ``shift`` and ``z`` is uniform in ``[-1, 1]`` times the factor; with
    ``"gaussian"`` it is a standard normal clipped to ``[-2, 2]``. The defaults (``shift_factor``
    0.1, ``scale_factor`` 0.1: up to 10 % of the box off-centre and about ±10 % in size; standard
    deviation 0.058 for each uniform component) are of the order of the spread measured for a
    good detector's boxes around COCO's labels (see the module docstring). One ``rng`` call draws
    all four numbers.
    """

    shift_factor: float = 0.1
    scale_factor: float = 0.1
    distribution: Literal["uniform", "gaussian"] = "uniform"

    def __post_init__(self) -> None:
        if self.distribution not in ("uniform", "gaussian"):
            raise ValueError(f"distribution must be 'uniform' or 'gaussian', got {self.distribution!r}")
        if self.shift_factor < 0 or self.scale_factor < 0:
            raise ValueError(
                f"shift_factor and scale_factor must be >= 0, got {self.shift_factor}, {self.scale_factor}"
            )

    def sample(self, bbox_xywh: ArrayLike, rng: np.random.Generator) -> NDArray[np.float64]:
        """``bbox_xywh (4,)`` moved at random (unchanged, after the draw, if its width or height is <= 0)."""
        b = np.asarray(bbox_xywh, dtype=np.float64).reshape(4)
        gaussian = self.distribution == "gaussian"
        z = np.clip(rng.standard_normal(4), -2.0, 2.0) if gaussian else rng.uniform(-1.0, 1.0, 4)
        if b[2] <= 0 or b[3] <= 0:
            return b.copy()
        off = z * np.array([self.shift_factor, self.shift_factor, self.scale_factor, self.scale_factor])
        return apply_offsets(b, off)
