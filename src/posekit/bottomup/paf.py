"""Part affinity fields: limb scores by line integrals, bipartite matching, person assembly.

All coordinates are in PAF/heatmap pixels (pixel centres at integers). For a limb from part ``a``
to part ``b``, a candidate pair (p, q) is scored by sampling the limb's PAF at ``samples`` points
on the segment p -> q and projecting each sample on the segment's unit direction; the mean
projection, penalised for limbs longer than ``max_limb_length``, is the pair's score. A pair is a
possible connection when enough samples agree and its score is positive. Each limb's connections
are then chosen greedily by score with every candidate used at most once (a bipartite matching),
and people are assembled by joining connections that share a part candidate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "Connections",
    "PafParams",
    "assemble_people",
    "bilinear_sample",
    "match_limb",
    "score_limb",
    "suppress_fragments",
]


@dataclass(frozen=True)
class PafParams:
    """Knobs of limb scoring and person assembly (defaults tuned for COCO AP)."""

    samples: int = 10
    paf_threshold: float = 0.05
    min_hit_ratio: float = 0.8
    max_limb_length: float | None = None  # heatmap pixels; None: half the map height
    min_parts: int = 3
    min_mean_score: float = 0.2
    min_person_score: float = 0.02
    fragment_max_parts: int = 4  # see suppress_fragments; 0 disables


@dataclass(frozen=True)
class Connections:
    """Chosen connections of one limb: candidate indices into parts a and b, and scores."""

    a: NDArray[np.intp]
    b: NDArray[np.intp]
    score: NDArray[np.float32]


def bilinear_sample(field: NDArray[np.float32], pts: NDArray[np.float32]) -> NDArray[np.float32]:
    """Sample an ``(h, w, C)`` field at ``(..., 2)`` x, y points (clamped to the border)."""
    h, w = field.shape[:2]
    x = np.clip(pts[..., 0], 0.0, w - 1.0)
    y = np.clip(pts[..., 1], 0.0, h - 1.0)
    x0 = np.minimum(x.astype(np.intp), w - 2) if w > 1 else np.zeros(x.shape, np.intp)
    y0 = np.minimum(y.astype(np.intp), h - 2) if h > 1 else np.zeros(y.shape, np.intp)
    fx = (x - x0)[..., None]
    fy = (y - y0)[..., None]
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    top = field[y0, x0] * (1 - fx) + field[y0, x1] * fx
    bottom = field[y1, x0] * (1 - fx) + field[y1, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def score_limb(
    paf: NDArray[np.float32],
    cand_a: NDArray[np.float32],
    cand_b: NDArray[np.float32],
    params: PafParams,
    max_length: float,
) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """Score every pair of candidates (rows of ``cand_a`` x rows of ``cand_b``) on one limb.

    ``paf`` is the limb's ``(h, w, 2)`` field. Returns ``(na, nb)`` scores and a validity mask.
    """
    pa = cand_a[:, None, :2]
    d = cand_b[None, :, :2] - pa  # (na, nb, 2)
    length = np.sqrt((d**2).sum(-1))
    unit = d / np.maximum(length, 1e-6)[..., None]
    t = np.linspace(0.0, 1.0, params.samples, dtype=np.float32)
    pts = pa[:, :, None, :] + t[None, None, :, None] * d[:, :, None, :]  # (na, nb, S, 2)
    vec = bilinear_sample(paf, pts)  # (na, nb, S, 2)
    proj = (vec * unit[:, :, None, :]).sum(-1)
    mean = proj.mean(-1)
    prior = np.minimum(0.0, max_length / np.maximum(length, 1e-6) - 1.0)
    score = (mean + prior).astype(np.float32)
    hits = (proj > params.paf_threshold).mean(-1)
    valid = (hits >= params.min_hit_ratio) & (score > 0) & (length > 1e-6)
    return score, valid


def match_limb(score: NDArray[np.float32], valid: NDArray[np.bool_]) -> Connections:
    """Greedy bipartite matching: best-scoring valid pairs first, each candidate used once."""
    ia, ib = np.nonzero(valid)
    if ia.size == 0:
        return Connections(ia, ib, np.zeros(0, np.float32))
    s = score[ia, ib]
    order = np.argsort(-s, kind="stable")
    used_a = np.zeros(score.shape[0], bool)
    used_b = np.zeros(score.shape[1], bool)
    keep = []
    for k in order.tolist():
        a, b = ia[k], ib[k]
        if not used_a[a] and not used_b[b]:
            used_a[a] = used_b[b] = True
            keep.append(k)
            if len(keep) == min(score.shape):
                break
    sel = np.asarray(keep, dtype=np.intp)
    return Connections(ia[sel], ib[sel], s[sel])


def assemble_people(
    candidates: Sequence[NDArray[np.float32]],
    limbs: Sequence[tuple[int, int]],
    connections: Sequence[Connections],
    params: PafParams,
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
    """Join connections into people.

    Limbs are taken in the given order (a tree from the neck outwards, then redundant limbs). A
    connection whose two parts belong to no one starts a person; one whose part ``a`` belongs to a
    person extends it when that person lacks part ``b`` (and vice versa); one joining two people
    merges them when their parts do not overlap. Returns keypoints ``(N, K, 2)`` (NaN where
    missing), keypoint scores ``(N, K)`` (peak values, 0 where missing) and person scores ``(N,)``:
    the mean over all K parts of the peak values, times the mean connection score.
    """
    k = len(candidates)
    owner = [np.full(len(c), -1, dtype=np.intp) for c in candidates]
    people: list[NDArray[np.intp]] = []  # each: (K,) candidate index per part, -1 missing
    conn_sum: list[float] = []
    conn_n: list[int] = []
    for (pa, pb), conns in zip(limbs, connections, strict=True):
        for ca, cb, s in zip(conns.a.tolist(), conns.b.tolist(), conns.score.tolist(), strict=True):
            oa, ob = owner[pa][ca], owner[pb][cb]
            if oa >= 0 and oa == ob:
                conn_sum[oa] += s
                conn_n[oa] += 1
            elif oa >= 0 and ob < 0:
                if people[oa][pb] < 0:
                    people[oa][pb] = cb
                    owner[pb][cb] = oa
                    conn_sum[oa] += s
                    conn_n[oa] += 1
            elif ob >= 0 and oa < 0:
                if people[ob][pa] < 0:
                    people[ob][pa] = ca
                    owner[pa][ca] = ob
                    conn_sum[ob] += s
                    conn_n[ob] += 1
            elif oa < 0 and ob < 0:
                person = np.full(k, -1, dtype=np.intp)
                person[pa], person[pb] = ca, cb
                owner[pa][ca] = owner[pb][cb] = len(people)
                people.append(person)
                conn_sum.append(s)
                conn_n.append(1)
            else:  # two different people
                p, q = people[oa], people[ob]
                if not np.any((p >= 0) & (q >= 0)):
                    merged = np.where(p >= 0, p, q)
                    people[oa] = merged
                    for part in np.nonzero(q >= 0)[0]:
                        owner[part][q[part]] = oa
                    people[ob] = np.full(k, -1, dtype=np.intp)  # emptied; dropped below
                    conn_sum[oa] += conn_sum[ob] + s
                    conn_n[oa] += conn_n[ob] + 1
                    conn_n[ob] = 0
    kps, kscores, pscores = [], [], []
    for person, cs, cn in zip(people, conn_sum, conn_n, strict=True):
        found = person >= 0
        n_found = int(found.sum())
        if n_found < params.min_parts or cn == 0:
            continue
        xy = np.full((k, 2), np.nan, dtype=np.float32)
        sc = np.zeros(k, dtype=np.float32)
        for part in np.nonzero(found)[0]:
            xy[part] = candidates[part][person[part], :2]
            sc[part] = candidates[part][person[part], 2]
        mean_conn = cs / cn
        if (sc[found].sum() + cs) / (n_found + cn) < params.min_mean_score:
            continue
        person_score = float(sc.sum() / k * mean_conn)
        if person_score < params.min_person_score:
            continue
        kps.append(xy)
        kscores.append(np.clip(sc, 0.0, 1.0))
        pscores.append(person_score)
    if not kps:
        return np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32), np.zeros(0, np.float32)
    kp_arr, ks_arr, ps_arr = np.stack(kps), np.stack(kscores), np.asarray(pscores, dtype=np.float32)
    keep = suppress_fragments(kp_arr, ks_arr, ps_arr, params.fragment_max_parts)
    return kp_arr[keep], ks_arr[keep], ps_arr[keep]


def suppress_fragments(
    keypoints: NDArray[np.float32], keypoint_scores: NDArray[np.float32], scores: NDArray[np.float32], max_parts: int
) -> NDArray[np.bool_]:
    """Mask of people to keep: drop small fragments lying inside a better person.

    A person with at most ``max_parts`` parts, all inside the keypoint box of another person who
    has more parts and a higher score, is taken for a piece of that person (typically a second
    face found on an ear in close-ups) and dropped.
    """
    n = len(scores)
    keep = np.ones(n, dtype=bool)
    found = keypoint_scores > 0
    count = found.sum(axis=1)
    big = np.where(found[..., None], keypoints, np.nan)
    with np.errstate(invalid="ignore"):
        lo, hi = np.nanmin(big, axis=1), np.nanmax(big, axis=1)  # (N, 2) boxes
    for j in np.nonzero(count <= max_parts)[0]:
        pts = keypoints[j][found[j]]
        inside = np.all((pts[None] >= lo[:, None]) & (pts[None] <= hi[:, None]), axis=(1, 2))
        better = (count > count[j]) & (scores >= scores[j])
        better[j] = False
        keep[j] = not np.any(inside & better)
    return keep
