"""From network maps to people: peaks, limb scores, matching and assembly in one call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from posekit.bottomup.paf import PafParams, assemble_people, match_limb, score_limb
from posekit.bottomup.peaks import find_peaks

__all__ = ["PeakParams", "parse_people"]


@dataclass(frozen=True)
class PeakParams:
    """Knobs of part-candidate search (defaults tuned for COCO AP)."""

    threshold: float = 0.03
    upsample: int = 1
    sigma: float = 0.0
    radius: int = 1


def parse_people(
    heatmaps: NDArray[np.float32],
    pafs: NDArray[np.float32],
    limbs: Sequence[tuple[int, int]],
    peak_params: PeakParams = PeakParams(),
    paf_params: PafParams = PafParams(),
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
    """People from ``(K, h, w)`` heatmaps and ``(L, h, w, 2)`` PAFs (one per limb).

    Returns keypoints ``(N, K, 2)`` in map pixels (NaN where missing), keypoint scores ``(N, K)``
    and person scores ``(N,)``.
    """
    if pafs.shape[0] != len(limbs) or pafs.shape[1:3] != heatmaps.shape[1:] or pafs.shape[3] != 2:
        raise ValueError(
            f"pafs must have shape ({len(limbs)}, {heatmaps.shape[1]}, {heatmaps.shape[2]}, 2), got {pafs.shape}"
        )
    cands = find_peaks(heatmaps, peak_params.threshold, upsample=peak_params.upsample,
                       sigma=peak_params.sigma, radius=peak_params.radius)  # fmt: skip
    max_len = paf_params.max_limb_length or heatmaps.shape[1] / 2.0
    conns = []
    for (a, b), paf in zip(limbs, pafs, strict=True):
        ca, cb = cands[a], cands[b]
        if len(ca) == 0 or len(cb) == 0:
            conns.append(match_limb(np.zeros((len(ca), len(cb)), np.float32), np.zeros((len(ca), len(cb)), bool)))
            continue
        score, valid = score_limb(paf, ca, cb, paf_params, max_len)
        conns.append(match_limb(score, valid))
    return assemble_people(cands, limbs, conns, paf_params)
