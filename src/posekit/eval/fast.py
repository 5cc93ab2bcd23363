"""Fast COCO keypoint evaluation (OKS AP/AR) with exactly pycocotools' semantics, in numpy.

:func:`evaluate_keypoints` reproduces ``COCOeval(iouType="keypoints")`` -- ``loadRes``,
``evaluate``, ``accumulate`` and ``summarize`` -- without pycocotools and without its
per-image, per-detection Python loops:

* OKS is computed for every (detection, ground truth) pair of every image in one batch of
  array operations, including the pycocotools special cases: only labelled keypoints (v > 0)
  count, and a ground truth with no labelled keypoint measures the distance of each predicted
  keypoint to its box doubled around the centre (``[x - w, x + 2w] x [y - h, y + 2h]``).
* Greedy matching runs in pycocotools' order (detections by score, stable, cut to ``max_dets``
  per image; best remaining ground truth with OKS >= threshold, later ones winning ties, ignored
  ground truth only when no regular one qualifies; crowd regions can absorb any number of
  detections) -- but as one loop over the detection rank (at most ``max_dets`` steps) that
  processes every image, OKS threshold and area range at once.
* Accumulation is a stable sort by score plus cumulative sums; precision is interpolated at the
  101 recall points exactly as ``accumulate`` does (-1 where a setting has no ground truth).

The numbers are the same floating-point operations in the same order as pycocotools, so AP/AR
and the precision/recall arrays agree to rounding (tests check 1e-9; in practice they are equal
except that a per-pair OKS sum may differ in its last bit).

Differences from the pycocotools *wrapper* :func:`posekit.eval.coco.evaluate_coco`: with no
results at all this computes the real (empty) evaluation -- 0 where ground truth exists, -1 where
a setting has none -- instead of returning 0.0 for every stat; and ``summarize`` reads the stats
at ``max_dets`` (pycocotools hard-codes 20, so it only differs when ``max_dets != 20``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from posekit.eval.coco import STAT_NAMES, _fill_missing, _load
from posekit.schemas import COCO_17

__all__ = ["COCO_AREA_RANGES", "COCO_SIGMAS", "KeypointEval", "evaluate_keypoints"]

# pycocotools builds its sigmas as ``np.array([.26, .25, ...]) / 10.0``; the schema lists the
# same constants divided already, which differs in the last bit for a few. Rebuild them the
# pycocotools way so OKS is bitwise identical.
COCO_SIGMAS: NDArray[np.float64] = np.round(np.asarray(COCO_17.sigmas, dtype=np.float64) * 10, 2) / 10.0
COCO_AREA_RANGES: dict[str, tuple[float, float]] = {
    "all": (0.0**2, 1e5**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e5**2),
}
# pycocotools' thresholds, built the same way (np.arange would drift).
IOU_THRESHOLDS: NDArray[np.float64] = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS: NDArray[np.float64] = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
_EPS = np.spacing(1)
_NEEDED = frozenset({"area", "iscrowd", "num_keypoints"})  # what _fill_missing fills
_PAIR_CHUNK = 1 << 16  # (detection, ground truth) pairs per OKS batch, bounds temporary memory


@dataclass(frozen=True)
class KeypointEval:
    """Result of :func:`evaluate_keypoints`.

    ``stats``: the 10 COCO keypoint numbers (names as :data:`posekit.eval.coco.STAT_NAMES`), -1 where
    undefined (no ground truth in that area range).
    ``precision``: ``(T, R, K, A, M)`` like pycocotools' ``eval['precision']`` (T = 10 OKS
    thresholds, R = 101 recall points, K categories, A area ranges, M = 1 max-detections setting);
    ``recall``: ``(T, K, A, M)``; ``scores``: ``(T, R, K, A, M)``, the detection score at each
    recall point (pycocotools' ``eval['scores']``). -1 where a setting has no ground truth.
    ``keypoint_similarity``: per keypoint ``j``, the mean OKS term ``exp(-d_j^2 / (2 s^2 k_j^2))``
    over the detection/ground-truth pairs matched at OKS 0.50 in the ``all`` area range (regular,
    non-ignored ground truth only) where the ground truth labels keypoint ``j``; NaN if none. It
    says which joints limit the score: 1.0 is a perfect joint, 0.5 an error of about
    1.18 * sigma * scale. ``keypoint_count`` holds the number of pairs behind each mean.
    """

    stats: dict[str, float]
    precision: NDArray[np.float64]
    recall: NDArray[np.float64]
    scores: NDArray[np.float64]
    keypoint_similarity: NDArray[np.float64]
    keypoint_count: NDArray[np.int64]
    category_ids: tuple[Any, ...]
    area_labels: tuple[str, ...]
    max_dets: int
    iou_thresholds: NDArray[np.float64] = field(default_factory=lambda: IOU_THRESHOLDS.copy())
    recall_thresholds: NDArray[np.float64] = field(default_factory=lambda: RECALL_THRESHOLDS.copy())


def _ground_truth(gt: str | os.PathLike[str] | dict[str, Any]) -> dict[str, Any]:
    """The ground truth with the fields pycocotools needs filled by ``_fill_missing``, on copies.

    Only the annotations lacking a field are copied and filled (a deep copy of everything would
    cost more than the evaluation). ``_fill_missing`` also renumbers ids; this evaluator never
    uses annotation ids (it matches by position), so id 0 is harmless here.
    """
    g = dict(gt) if isinstance(gt, dict) else _load(gt)
    anns = list(g.get("annotations", []))
    lacking = [i for i, a in enumerate(anns) if not a.keys() >= _NEEDED]
    if lacking:
        part = {"annotations": [dict(anns[i]) for i in lacking]}
        _fill_missing(part)
        for i, a in zip(lacking, part["annotations"], strict=True):
            anns[i] = a
    g["annotations"] = anns
    return g


def _keypoints(anns: Sequence[Mapping[str, Any]], what: str) -> NDArray[np.float64]:
    """``(N, J, 3)`` float64 keypoints of ``anns`` (missing keypoints: none labelled)."""
    if not anns:
        return np.zeros((0, 0, 3))
    rows = [a.get("keypoints") or () for a in anns]
    lengths = {len(r) for r in rows}
    lengths.discard(0)
    if len(lengths) > 1 or any(n % 3 for n in lengths):
        raise ValueError(f"{what} keypoints have different or invalid lengths: {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    if any(len(r) != n for r in rows):
        rows = [r if len(r) == n else [0.0] * n for r in rows]
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), n // 3, 3)


def _ragged_arange(counts: NDArray[np.int64]) -> NDArray[np.int64]:
    """``concatenate([arange(c) for c in counts])`` without the loop."""
    total = int(counts.sum())
    starts = np.cumsum(counts) - counts
    return np.arange(total, dtype=np.int64) - np.repeat(starts, counts)


def _oks_terms(
    xd: NDArray[np.float64],
    yd: NDArray[np.float64],
    xg: NDArray[np.float64],
    yg: NDArray[np.float64],
    box: NDArray[np.float64],
    area: NDArray[np.float64],
    boxed: NDArray[np.bool_],
    variances: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Per-keypoint ``e`` of pycocotools' ``computeOks`` for pairs (rows): ``(P, J)``.

    Coordinates are ``(P, J)``, ``box`` ``(P, 4)`` and ``area`` ``(P,)`` the ground truth's. Rows
    flagged ``boxed`` (ground truth without labelled keypoints) measure the distance to the
    ground-truth box doubled around its centre, the others the keypoint distance. Same operations
    in the same order as pycocotools (done in place).
    """
    dx = xd - xg
    dy = yd - yg
    if boxed.any():
        b = box[boxed]
        x0 = (b[:, 0] - b[:, 2])[:, None]
        x1 = (b[:, 0] + b[:, 2] * 2)[:, None]
        y0 = (b[:, 1] - b[:, 3])[:, None]
        y1 = (b[:, 1] + b[:, 3] * 2)[:, None]
        xb, yb = xd[boxed], yd[boxed]
        dx[boxed] = np.maximum(0.0, x0 - xb) + np.maximum(0.0, xb - x1)
        dy[boxed] = np.maximum(0.0, y0 - yb) + np.maximum(0.0, yb - y1)
    np.square(dx, out=dx)
    np.square(dy, out=dy)
    dx += dy
    dx /= variances
    dx /= (area + _EPS)[:, None]
    dx /= 2
    return dx


def _oks(
    dxy: tuple[NDArray[np.float64], NDArray[np.float64]],
    gxyv: tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]],
    g_box: NDArray[np.float64],
    g_area: NDArray[np.float64],
    pd: NDArray[np.int64],
    pg: NDArray[np.int64],
    variances: NDArray[np.float64],
) -> NDArray[np.float64]:
    """OKS of the pairs (detection ``pd[i]``, ground truth ``pg[i]``), in chunks to bound memory.

    ``dxy``: detections' x and y ``(Nd, J)``; ``gxyv``: ground truth's x, y and labelled flags.
    """
    (d_x, d_y), (g_x, g_y, g_lab) = dxy, gxyv
    n_joints = d_x.shape[1]
    out = np.empty(len(pd))
    for s in range(0, len(pd), _PAIR_CHUNK):
        i, g = pd[s : s + _PAIR_CHUNK], pg[s : s + _PAIR_CHUNK]
        lab = g_lab[g]  # a copy
        k1 = lab.sum(axis=1)
        boxed = k1 == 0
        e = _oks_terms(d_x[i], d_y[i], g_x[g], g_y[g], g_box[g], g_area[g], boxed, variances)
        np.negative(e, out=e)
        np.exp(e, out=e)
        lab[boxed] = True  # the box distance counts every keypoint
        np.putmask(e, ~lab, 0.0)
        out[s : s + _PAIR_CHUNK] = e.sum(axis=1) / np.where(boxed, n_joints, k1)
    return out


def _pow2_bucket(n: NDArray[np.int64]) -> NDArray[np.int64]:
    """Smallest power of two >= n (n >= 1): groups images of similar ground-truth count."""
    return (1 << np.ceil(np.log2(np.maximum(n, 1))).astype(np.int64)).astype(np.int64)


def _match(
    oks: NDArray[np.float64],
    n_det: NDArray[np.int64],
    gt_ignore: NDArray[np.bool_],
    crowd: NDArray[np.bool_],
    thresholds: NDArray[np.float64],
) -> tuple[NDArray[np.bool_], NDArray[np.bool_], NDArray[np.int64]]:
    """pycocotools' greedy matching for a batch of images padded to the same shape.

    ``oks`` ``(B, D, G)`` (padding -inf), ``n_det`` ``(B,)``, ``gt_ignore`` ``(A, B, G)``,
    ``crowd`` ``(B, G)``. For each area range, threshold and image, detection ``r`` (in score
    order) takes the best still-free ground truth with OKS >= threshold -- a regular one if any
    qualifies, else an ignored one; the last of equal OKS wins, as in pycocotools' loop over
    ground truth sorted ignored-last. Returns ``matched``/``ignored`` ``(A, T, B, D)`` and the
    matched ground-truth index ``(A, T, B, D)`` (-1 if none).
    """
    n_area = gt_ignore.shape[0]
    b, d, g = oks.shape
    t = len(thresholds)
    taken = np.zeros((n_area, t, b, g), dtype=bool)
    matched = np.zeros((n_area, t, b, d), dtype=bool)
    ignored = np.zeros((n_area, t, b, d), dtype=bool)
    which = np.full((n_area, t, b, d), -1, dtype=np.int64)
    thr = np.minimum(thresholds, 1 - 1e-10)[None, :, None, None]
    regular = ~gt_ignore[:, None]  # (A, 1, B, G)
    rev = np.arange(g - 1, -1, -1)
    for r in range(d):
        live = np.flatnonzero(n_det > r)
        if live.size == 0:
            break
        o = oks[live, r]  # (L, G)
        free = ~taken[:, :, live] | crowd[live]  # (A, T, L, G)
        cand = free & (o >= thr)
        best = np.full(cand.shape[:-1], -1, dtype=np.int64)
        for pool in (cand & regular[:, :, live], cand & ~regular[:, :, live]):
            score = np.where(pool, o, -np.inf)[..., ::-1]  # reversed: argmax finds the last max
            pick = rev[np.argmax(score, axis=-1)]
            use = (best < 0) & pool.any(axis=-1)
            best = np.where(use, pick, best)
        hit = best >= 0
        a_i, t_i, l_i = np.nonzero(hit)
        g_i = best[a_i, t_i, l_i]
        taken[a_i, t_i, live[l_i], g_i] = True
        matched[:, :, live, r] = hit
        ignored[a_i, t_i, live[l_i], r] = gt_ignore[a_i, live[l_i], g_i]
        which[:, :, live, r] = best
    return matched, ignored, which


def evaluate_keypoints(
    gt: str | os.PathLike[str] | dict[str, Any],
    results: Sequence[Mapping[str, Any]],
    *,
    image_ids: Sequence[Any] | None = None,
    sigmas: Sequence[float] | None = None,
    max_dets: int = 20,
    area_ranges: Mapping[str, tuple[float, float]] | None = None,
) -> KeypointEval:
    """COCO keypoint AP/AR of ``results`` (COCO results format) against ``gt``, like pycocotools.

    Takes what :func:`posekit.eval.coco.evaluate_coco` takes (a path or a dict, filled and
    renumbered the same way on a copy; neither input is modified). ``image_ids`` restricts the
    evaluation (default: every ground-truth image); ``sigmas`` overrides the COCO-17 constants
    (required when the keypoint count is not 17); ``max_dets`` detections per image are kept
    (highest scores, stable); ``area_ranges`` maps labels to inclusive ``(min, max)`` areas
    (default all/medium/large as COCO; AP/AR read ``all``, APm/ARm ``medium``, APl/ARl ``large``,
    -1 when a label is absent). Every ground-truth category is evaluated (K axis, sorted ids).

    Results follow ``COCO.loadRes``: each needs ``image_id``, ``category_id``, ``keypoints`` and
    ``score``; a detection's area is its keypoints' extent, or ``bbox`` w*h when the first result
    carries a non-empty ``bbox`` (as ``loadRes`` decides). Results on images outside the ground
    truth are an error; results of other categories or images outside ``image_ids`` are dropped.
    """
    if max_dets < 1:
        raise ValueError(f"max_dets must be >= 1, got {max_dets}")
    ranges = dict(COCO_AREA_RANGES if area_ranges is None else area_ranges)
    area_labels = tuple(ranges)
    area_lo = np.array([float(ranges[k][0]) for k in area_labels])
    area_hi = np.array([float(ranges[k][1]) for k in area_labels])
    n_area = len(area_labels)
    a_ref = area_labels.index("all") if "all" in area_labels else 0  # for the per-keypoint breakdown
    n_thr = len(IOU_THRESHOLDS)
    n_rec = len(RECALL_THRESHOLDS)

    g = _ground_truth(gt)
    gt_image_ids = [im["id"] for im in g.get("images", [])]
    known_images = set(gt_image_ids)
    if "categories" in g:
        cat_ids = tuple(sorted({c["id"] for c in g["categories"]}))
    else:
        cat_ids = tuple(sorted({a["category_id"] for a in g.get("annotations", [])}))
    img_ids = sorted(set(image_ids if image_ids is not None else gt_image_ids))
    n_img, n_cat = len(img_ids), len(cat_ids)
    img_index = {i: n for n, i in enumerate(img_ids)}
    cat_index = {c: n for n, c in enumerate(cat_ids)}

    # --- ground truth: group = category * n_img + image, dataset order within a group ----------
    g_anns = [a for a in g.get("annotations", []) if a["image_id"] in img_index and a["category_id"] in cat_index]
    g_group = np.array([cat_index[a["category_id"]] * n_img + img_index[a["image_id"]] for a in g_anns], np.int64)
    order = np.argsort(g_group, kind="stable")
    g_anns = [g_anns[i] for i in order]
    g_group = g_group[order]
    gkp = _keypoints(g_anns, "ground-truth")
    g_area = np.array([float(a["area"]) for a in g_anns], dtype=np.float64)
    g_crowd = np.array([bool(a["iscrowd"]) for a in g_anns], dtype=bool)
    g_ignore = np.array([a["num_keypoints"] == 0 for a in g_anns], dtype=bool) | g_crowd
    g_box = np.array([list(a.get("bbox") or (0.0, 0.0, 0.0, 0.0))[:4] for a in g_anns], dtype=np.float64).reshape(-1, 4)
    g_ig_area = g_ignore[None] | (g_area[None] < area_lo[:, None]) | (g_area[None] > area_hi[:, None])  # (A, Ng)

    # --- detections: loadRes area, grouped, score order (stable), cut to max_dets -------------
    res = all_results = list(results)
    stray = {r["image_id"] for r in res} - known_images
    if stray:
        raise ValueError(f"results for {len(stray)} image id(s) not in the ground truth, e.g. {sorted(stray)[:3]}")
    res = [r for r in res if r["image_id"] in img_index and r["category_id"] in cat_index]
    dkp = _keypoints(res, "result")
    # loadRes looks at the first result only: a non-empty bbox there means areas from boxes
    by_box = bool(all_results) and len(all_results[0].get("bbox") or ()) > 0
    if by_box:
        d_area = np.array([float(r["bbox"][2]) * float(r["bbox"][3]) for r in res], dtype=np.float64)
    elif dkp.shape[1]:
        xs, ys = dkp[..., 0], dkp[..., 1]
        d_area = (xs.max(1) - xs.min(1)) * (ys.max(1) - ys.min(1))
    else:
        d_area = np.zeros(len(res))
    d_score = np.array([r["score"] for r in res], dtype=np.float64)
    d_group = np.array([cat_index[r["category_id"]] * n_img + img_index[r["image_id"]] for r in res], np.int64)
    # pycocotools: within an image, argsort(-score, mergesort); keep the first max_dets
    order = np.lexsort((-d_score, d_group))  # lexsort is stable
    d_group, d_score, d_area, dkp = d_group[order], d_score[order], d_area[order], dkp[order]
    n_groups = n_cat * n_img
    det_start = np.searchsorted(d_group, np.arange(n_groups))
    d_rank = np.arange(len(d_group)) - det_start[d_group] if len(d_group) else np.zeros(0, np.int64)
    keep = d_rank < max_dets
    d_group, d_score, d_area, dkp, d_rank = d_group[keep], d_score[keep], d_area[keep], dkp[keep], d_rank[keep]

    n_joints = gkp.shape[1] if len(g_anns) else dkp.shape[1]
    if len(g_anns) and len(d_group) and dkp.shape[1] != gkp.shape[1]:
        raise ValueError(f"results have {dkp.shape[1]} keypoints, the ground truth {gkp.shape[1]}")
    sig = COCO_SIGMAS if sigmas is None else np.asarray(sigmas, dtype=np.float64).ravel()
    if (len(g_anns) and len(d_group)) and len(sig) != n_joints:
        raise ValueError(
            f"{len(sig)} OKS sigmas cannot broadcast to {n_joints} keypoints; pass sigmas of length {n_joints}"
        )
    variances = (sig * 2) ** 2

    gt_count = np.bincount(g_group, minlength=n_groups)
    gt_start = np.cumsum(gt_count) - gt_count

    # --- OKS for every (detection, ground truth) pair of every group, then greedy matching ----
    d_matched = np.zeros((n_area, n_thr, len(d_group)), dtype=bool)
    d_ignored = np.zeros((n_area, n_thr, len(d_group)), dtype=bool)
    d_which = np.full(len(d_group), -1, dtype=np.int64)  # matched gt (global index) at OKS .5, a_ref
    has_gt = np.flatnonzero(gt_count[d_group] > 0)  # detections in an image with ground truth
    if has_gt.size:
        per_det = gt_count[d_group[has_gt]]
        pd_ = np.repeat(has_gt, per_det)  # pair -> detection
        pg = np.repeat(gt_start[d_group[has_gt]], per_det) + _ragged_arange(per_det)  # pair -> gt
        dxy = (np.ascontiguousarray(dkp[..., 0]), np.ascontiguousarray(dkp[..., 1]))
        gxyv = (np.ascontiguousarray(gkp[..., 0]), np.ascontiguousarray(gkp[..., 1]), gkp[..., 2] > 0)
        pair_oks = _oks(dxy, gxyv, g_box, g_area, pd_, pg, variances)
        # A pair below the lowest threshold never matches. Matching needs only the other pairs and
        # the detections and ground truth that have one: the rest are never a candidate, so
        # dropping them (order kept) changes no choice; those detections stay unmatched.
        near = pair_oks >= min(float(IOU_THRESHOLDS.min()), 1 - 1e-10)
        pd_, pg, pair_oks = pd_[near], pg[near], pair_oks[near]
        u_d, pd_c = np.unique(pd_, return_inverse=True)  # compressed detections (sorted: order kept)
        u_g, pg_c = np.unique(pg, return_inverse=True)  # compressed ground truth
        ud_group, ug_group = d_group[u_d], g_group[u_g]
        ud_count = np.bincount(ud_group, minlength=n_groups)
        ug_count = np.bincount(ug_group, minlength=n_groups)
        ug_start = np.cumsum(ug_count) - ug_count
        ud_rank = np.arange(len(u_d)) - (np.cumsum(ud_count) - ud_count)[ud_group]
        ug_pos = np.arange(len(u_g)) - ug_start[ug_group]
        both = np.flatnonzero((ud_count > 0) & (ug_count > 0))
        bucket = _pow2_bucket(ug_count[both])
        for width in np.unique(bucket):
            grp = both[bucket == width]  # groups in this batch
            slot = np.full(n_groups, -1, dtype=np.int64)
            slot[grp] = np.arange(len(grp))
            dmax = int(ud_count[grp].max())
            gmax = int(ug_count[grp].max())
            mat = np.full((len(grp), dmax, gmax), -np.inf)
            ps = np.flatnonzero(slot[ud_group[pd_c]] >= 0)  # pairs in this batch
            mat[slot[ud_group[pd_c[ps]]], ud_rank[pd_c[ps]], ug_pos[pg_c[ps]]] = pair_oks[ps]
            # ground-truth attributes padded to gmax (padding never qualifies: its OKS is -inf)
            valid = np.arange(gmax)[None] < ug_count[grp][:, None]
            gglob = u_g[np.where(valid, ug_start[grp][:, None] + np.arange(gmax)[None], 0)]
            ig = g_ig_area[:, gglob] & valid[None]
            cr = g_crowd[gglob] & valid
            matched, ignored, which = _match(mat, ud_count[grp], ig, cr, IOU_THRESHOLDS)
            # back to flat detections
            dsel = np.flatnonzero(slot[ud_group] >= 0)
            s_i, r_i = slot[ud_group[dsel]], ud_rank[dsel]
            glob = u_d[dsel]
            d_matched[:, :, glob] = matched[:, :, s_i, r_i]
            d_ignored[:, :, glob] = ignored[:, :, s_i, r_i]
            w = which[a_ref, 0, s_i, r_i]
            d_which[glob] = np.where(w >= 0, u_g[ug_start[ud_group[dsel]] + np.maximum(w, 0)], -1)
    # unmatched detections outside the area range are ignored
    d_out = (d_area[None] < area_lo[:, None]) | (d_area[None] > area_hi[:, None])  # (A, Nd)
    d_ignored |= ~d_matched & d_out[:, None]

    # --- accumulate -----------------------------------------------------------------------------
    precision = -np.ones((n_thr, n_rec, n_cat, n_area, 1))
    recall = -np.ones((n_thr, n_cat, n_area, 1))
    scores = -np.ones((n_thr, n_rec, n_cat, n_area, 1))
    g_cat = g_group // max(n_img, 1)
    d_cat = d_group // max(n_img, 1)
    for k in range(n_cat):
        dsl = np.flatnonzero(d_cat == k)  # image order, score order within an image
        srt = np.argsort(-d_score[dsl], kind="mergesort")
        idx = dsl[srt]
        sc = d_score[idx]
        nd = len(idx)
        for a in range(n_area):
            npig = int(np.count_nonzero(~g_ig_area[a, g_cat == k]))
            if npig == 0:
                continue
            m = d_matched[a][:, idx]
            ig = d_ignored[a][:, idx]
            tp = np.cumsum(m & ~ig, axis=1).astype(float)
            fp = np.cumsum(~m & ~ig, axis=1).astype(float)
            rc = tp / npig
            pr = tp / (fp + tp + _EPS)
            recall[:, k, a, 0] = rc[:, -1] if nd else 0
            pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
            for t in range(n_thr):
                q = np.zeros(n_rec)
                ss = np.zeros(n_rec)
                at = np.searchsorted(rc[t], RECALL_THRESHOLDS, side="left")
                ok = at < nd
                q[ok] = pr[t, at[ok]]
                ss[ok] = sc[at[ok]]
                precision[t, :, k, a, 0] = q
                scores[t, :, k, a, 0] = ss

    # --- summarize (pycocotools' _summarizeKps) ------------------------------------------------
    def summary(ap: bool, iou: float | None = None, area: str = "all") -> float:
        s = precision if ap else recall
        if iou is not None:
            s = s[np.where(iou == IOU_THRESHOLDS)[0]]
        if area not in area_labels:
            return -1.0
        a = area_labels.index(area)
        s = s[..., a, 0] if not ap else s[:, :, :, a, 0]
        s = s[s > -1]
        return float(np.mean(s)) if s.size else -1.0

    stats_list = [
        summary(True), summary(True, 0.5), summary(True, 0.75), summary(True, area="medium"),
        summary(True, area="large"), summary(False), summary(False, 0.5), summary(False, 0.75),
        summary(False, area="medium"), summary(False, area="large"),
    ]  # fmt: skip
    stats = dict(zip(STAT_NAMES, stats_list, strict=True))

    # --- per-keypoint similarity over pairs matched at OKS .5, area "all" ------------------------
    sim = np.full(n_joints, np.nan)
    cnt = np.zeros(n_joints, dtype=np.int64)
    pair = (d_which >= 0) & ~d_ignored[a_ref, 0]
    if pair.any() and n_joints:
        di, gi = np.flatnonzero(pair), d_which[pair]
        labelled = gkp[gi, :, 2] > 0
        keep_pairs = labelled.any(axis=1)
        di, gi, labelled = di[keep_pairs], gi[keep_pairs], labelled[keep_pairs]
        e = _oks_terms(dkp[di, :, 0], dkp[di, :, 1], gkp[gi, :, 0], gkp[gi, :, 1], g_box[gi], g_area[gi],
                       np.zeros(len(di), dtype=bool), variances)  # fmt: skip
        terms = np.exp(-e)
        cnt = labelled.sum(axis=0).astype(np.int64)
        total = np.where(labelled, terms, 0.0).sum(axis=0)
        sim = np.divide(total, cnt, out=np.full(n_joints, np.nan), where=cnt > 0)

    return KeypointEval(
        stats=stats,
        precision=precision,
        recall=recall,
        scores=scores,
        keypoint_similarity=sim,
        keypoint_count=cnt,
        category_ids=cat_ids,
        area_labels=area_labels,
        max_dets=int(max_dets),
    )
