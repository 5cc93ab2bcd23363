"""COCO-format keypoint datasets for training: top-down person samples and bottom-up image samples.

:class:`CocoKeypoints` reads a COCO keypoints JSON (``images``, ``annotations`` with ``keypoints``
as flat ``[x, y, v] * K``). Files that lack ``area``, ``iscrowd`` or ``num_keypoints`` (CrowdPose,
AIC, PoseTrack18, ExLPose, JHMDB) are completed with the same helper the COCO evaluation uses.
Whether a person counts as labelled is decided from the keypoints themselves (``v > 0``), never from
``num_keypoints``, which some files carry stale.

Coordinates are image pixels with pixel (row i, column j) at (x, y) = (j, i).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from posekit.eval.coco import _fill_missing
from posekit.schemas import KeypointSchema, get_schema

__all__ = ["BottomUpSample", "CocoKeypoints", "TopDownSample", "schema_from_category"]


@dataclass(frozen=True, eq=False)
class TopDownSample:
    """One person: ``bbox`` is xywh ``(4,)``, ``keypoints`` is ``(K, 3)`` (x, y, visibility)."""

    image_path: Path
    image_id: int
    annotation_id: int
    bbox: NDArray[np.float64]
    keypoints: NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class BottomUpSample:
    """One image: every labelled, non-crowd person's ``keypoints (N, K, 3)`` and ``bboxes (N, 4)`` xywh."""

    image_path: Path
    image_id: int
    keypoints: NDArray[np.float64]
    bboxes: NDArray[np.float64]


def schema_from_category(category: dict[str, Any], name: str = "dataset") -> KeypointSchema:
    """A schema from a COCO category's ``keypoints`` names (``"Right Shoulder"`` -> ``right_shoulder``).

    Flip pairs come from ``left_``/``right_`` names; the skeleton is left empty.
    """
    names = tuple(str(n).strip().lower().replace(" ", "_") for n in category["keypoints"])
    pairs = []
    for i, n in enumerate(names):
        if n.startswith("left_") and "right_" + n[5:] in names:
            pairs.append((i, names.index("right_" + n[5:])))
    return KeypointSchema(name=name, keypoints=names, skeleton=(), flip_pairs=tuple(pairs))


def _bbox_of(ann: dict[str, Any], kps: NDArray[np.float64]) -> NDArray[np.float64]:
    if ann.get("bbox") is not None and len(ann["bbox"]) == 4:
        return np.asarray(ann["bbox"], dtype=np.float64)
    vis = kps[kps[:, 2] > 0, :2]
    if len(vis) == 0:
        return np.zeros(4)
    lo, hi = vis.min(0), vis.max(0)
    return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])


def _decode_rle(rle: dict[str, Any]) -> NDArray[np.bool_] | None:
    """Decode a COCO RLE to ``(H, W)`` bool; ``None`` for compressed RLE without pycocotools."""
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, list):
        # Uncompressed RLE: alternating runs of 0 and 1 over the column-major (Fortran) pixel order.
        values = np.zeros(len(counts), dtype=bool)
        values[1::2] = True
        flat = np.repeat(values, np.asarray(counts, dtype=np.int64))
        if flat.size != h * w:
            raise ValueError(f"RLE counts sum to {flat.size}, expected {h}x{w}={h * w}")
        return flat.reshape(w, h).T
    try:
        from pycocotools import mask as mask_utils
    except ImportError:
        return None
    c = counts.encode() if isinstance(counts, str) else counts
    return mask_utils.decode({"size": [h, w], "counts": c}).astype(bool)


def _paint_region(mask: NDArray[np.uint8], ann: dict[str, Any]) -> None:
    """Mark ``ann``'s region in ``mask``: polygons, RLE, or (failing both) its box."""
    h, w = mask.shape
    seg = ann.get("segmentation")
    if isinstance(seg, list) and seg and all(isinstance(p, list) and len(p) >= 6 for p in seg):
        polys = [np.round(np.asarray(p, dtype=np.float64).reshape(-1, 2)).astype(np.int32) for p in seg]
        cv2.fillPoly(mask, polys, 1)
        return
    if isinstance(seg, dict) and "counts" in seg:
        decoded = _decode_rle(seg)
        if decoded is not None:
            if decoded.shape != (h, w):
                raise ValueError(f"RLE size {decoded.shape} does not match the image shape {(h, w)}")
            mask[decoded] = 1
            return
    bbox = ann.get("bbox")
    if bbox is not None and len(bbox) == 4:
        x, y, bw, bh = (float(v) for v in bbox)
        x0, y0 = max(0, math.floor(x)), max(0, math.floor(y))
        x1, y1 = min(w, math.ceil(x + bw)), min(h, math.ceil(y + bh))
        mask[y0:y1, x0:x1] = 1


class CocoKeypoints:
    """A COCO-format keypoint file and its image folder.

    ``schema`` names the keypoint layout (``"coco17"``, a :class:`KeypointSchema`), or ``None`` to
    build one from the file's first category (see :func:`schema_from_category`). The number of
    keypoints in the file must match the schema.
    """

    def __init__(
        self,
        annotation_json: str | os.PathLike[str] | dict[str, Any],
        image_dir: str | os.PathLike[str],
        schema: str | KeypointSchema | None = "coco17",
    ) -> None:
        if isinstance(annotation_json, dict):
            data = json.loads(json.dumps(annotation_json))
        else:
            with open(annotation_json) as f:
                data = json.load(f)
        self.image_dir = Path(image_dir)
        anns: list[dict[str, Any]] = data.get("annotations", [])
        original_ids = [a.get("id", i) for i, a in enumerate(anns)]
        _fill_missing(data)  # renumbers ids from 1: keep the file's own ids
        for a, orig in zip(anns, original_ids, strict=True):
            a["id"] = orig
        if schema is None:
            cats = data.get("categories") or []
            if not cats or "keypoints" not in cats[0]:
                raise ValueError("schema=None needs a category with keypoint names in the file")
            self.schema = schema_from_category(cats[0])
        else:
            self.schema = get_schema(schema)
        k = self.schema.num_keypoints

        self.images: dict[int, dict[str, Any]] = {int(im["id"]): im for im in data.get("images", [])}
        self.people: dict[int, list[dict[str, Any]]] = {i: [] for i in self.images}
        for a in anns:
            kps = np.asarray(a.get("keypoints", []), dtype=np.float64).reshape(-1, 3)
            if len(kps) != k:
                raise ValueError(f"annotation {a['id']} has {len(kps)} keypoints; schema {self.schema.name!r} has {k}")
            iid = int(a["image_id"])
            if iid not in self.images:
                raise ValueError(f"annotation {a['id']} refers to unknown image {iid}")
            a["_kps"] = kps
            a["_crowd"] = bool(a.get("iscrowd", 0))
            a["_labelled"] = bool((kps[:, 2] > 0).any())
            self.people[iid].append(a)

    def image_path(self, image_id: int) -> Path:
        return self.image_dir / self.images[image_id]["file_name"]

    def top_down_samples(self) -> list[TopDownSample]:
        """One sample per non-crowd person with at least one labelled keypoint, in file order by image."""
        out = []
        for iid, anns in self.people.items():
            for a in anns:
                if a["_crowd"] or not a["_labelled"]:
                    continue
                kps = a["_kps"].copy()
                out.append(TopDownSample(self.image_path(iid), iid, a["id"], _bbox_of(a, kps), kps))
        return out

    def bottom_up_samples(self, include_empty: bool = False) -> list[BottomUpSample]:
        """One sample per image holding all its labelled, non-crowd people.

        Images with no such person are left out unless ``include_empty``. Crowd regions and people
        without labelled keypoints are not samples: see :meth:`ignore_mask`.
        """
        k = self.schema.num_keypoints
        out = []
        for iid, anns in self.people.items():
            keep = [a for a in anns if not a["_crowd"] and a["_labelled"]]
            if not keep and not include_empty:
                continue
            kps = np.stack([a["_kps"] for a in keep]) if keep else np.zeros((0, k, 3))
            boxes = np.stack([_bbox_of(a, a["_kps"]) for a in keep]) if keep else np.zeros((0, 4))
            out.append(BottomUpSample(self.image_path(iid), iid, kps, boxes))
        return out

    def ignore_mask(self, image_id: int, shape: tuple[int, int] | None = None, stride: int = 1) -> NDArray[np.bool_]:
        """Where a bottom-up loss should be ignored: crowd regions and people with no labelled keypoints.

        ``shape`` is the image's ``(height, width)`` in annotation pixels (taken from the file when
        omitted). Regions are drawn from polygons or RLE; a compressed (string) RLE needs
        ``pycocotools`` and, without it, falls back to the annotation's box, as does an annotation
        without segmentation. The result is ``(ceil(H / stride), ceil(W / stride))``; a cell is
        marked when any pixel it covers is.
        """
        im = self.images[image_id]
        if shape is None:
            if "height" not in im or "width" not in im:
                raise ValueError(f"image {image_id} has no height/width in the file: pass shape")
            shape = (int(im["height"]), int(im["width"]))
        h, w = int(shape[0]), int(shape[1])
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        full = np.zeros((h, w), dtype=np.uint8)
        for a in self.people[image_id]:
            if a["_crowd"] or not a["_labelled"]:
                _paint_region(full, a)
        if stride == 1:
            return full.astype(bool)
        hs, ws = -(-h // stride), -(-w // stride)
        padded = np.zeros((hs * stride, ws * stride), dtype=np.uint8)
        padded[:h, :w] = full
        return padded.reshape(hs, stride, ws, stride).max(axis=(1, 3)).astype(bool)
