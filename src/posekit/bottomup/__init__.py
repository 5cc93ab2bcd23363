"""Bottom-up assembly: part candidates from heatmaps, limbs from PAFs, people from limbs."""

from __future__ import annotations

from posekit.bottomup.paf import Connections, PafParams, assemble_people, match_limb, score_limb
from posekit.bottomup.parse import PeakParams, parse_people
from posekit.bottomup.peaks import find_peaks

__all__ = ["Connections", "PafParams", "PeakParams", "assemble_people", "find_peaks", "match_limb",
           "parse_people", "score_limb"]  # fmt: skip
