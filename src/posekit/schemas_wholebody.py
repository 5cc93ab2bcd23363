"""Whole-body keypoint schemas: COCO-WholeBody (133 keypoints) and Sapiens / Goliath (308).

Facts only, written out here as data; sources:

* **COCO-WholeBody-133** (Jin et al., ECCV 2020): body (the 17 COCO keypoints, same names and
  order), 6 foot, 68 face (``face-0`` .. ``face-67``, the 68-point iBUG layout), 21 left-hand and
  21 right-hand keypoints, in that order -- the order of ``keypoints``, ``foot_kpts``,
  ``face_kpts``, ``lefthand_kpts``, ``righthand_kpts`` in the annotation files. Names, left/right
  pairs and the 65 skeleton links follow mmpose's dataset metadata
  (``configs/_base_/datasets/coco_wholebody.py``); the OKS sigmas are the per-keypoint constants
  of the official evaluation (``jin-s13/COCO-WholeBody``, ``evaluation/myeval_wholebody.py``).
  Current mmpose links each finger's first joint to the body's wrist (the hand roots stay
  unlinked); older copies of that file started the finger chains at ``*_hand_root`` instead.
* **Sapiens-308** (Khirodkar et al., ECCV 2024): the Goliath layout the Sapiens pose models
  predict, from ``facebookresearch/sapiens``, ``pose/configs/_base_/datasets/goliath.py``.
  Goliath annotates 344 keypoints; Sapiens drops the 36 teeth keypoints (Goliath indices
  220..255) and shifts the rest down, giving 308 output channels. The layout is: 15 body
  keypoints (COCO's without the wrists), 6 foot, 21 right hand (ending with the right wrist), 21
  left hand (ending with the left wrist), 7 extra arm/neck keypoints, 150 face keypoints
  (eyebrows, eyes, nose, lips) and 88 ear, iris and pupil keypoints.

  *Flip pairs* are the metadata's ``swap`` entries. The metadata gives the 18 eyebrow keypoints
  (``..._of_r_eyebrow`` / ``..._of_l_eyebrow``) **no** swap partner, so the flip permutation here
  leaves them in place, as Sapiens' own flip test does (a faithful copy of its behaviour, not an
  anatomical claim). *Skeleton*: the metadata's 65 links (COCO body, feet, fingers from the
  wrist). *Sigmas*: Sapiens computes them in that file rather than listing them -- 0.010 by
  default ("mostly face keypoints"), a few hand-set values (the fingers' third joints, the neck
  and the arm extras), and COCO-WholeBody's sigma for every keypoint whose name is also a
  COCO-WholeBody name. :data:`SAPIENS_308` applies the same rule.
"""

from __future__ import annotations

import itertools

from posekit.schemas import COCO_17, KeypointSchema

__all__ = [
    "COCO_WHOLEBODY_133",
    "GOLIATH_344_KEPT",
    "GOLIATH_TEETH",
    "SAPIENS_308",
    "WHOLEBODY_SCHEMAS",
]

_FINGERS = ("thumb", "forefinger", "middle_finger", "ring_finger", "pinky_finger")


def _index_pairs(names: tuple[str, ...], pairs: list[tuple[str, str]]) -> tuple[tuple[int, int], ...]:
    where = {n: i for i, n in enumerate(names)}
    return tuple((where[a], where[b]) for a, b in pairs)


# --- COCO-WholeBody-133 -------------------------------------------------------------------------

_WB_FOOT = ("left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel")
_WB_FACE = tuple(f"face-{i}" for i in range(68))


def _wb_hand(side: str) -> tuple[str, ...]:
    # The root (wrist of the hand annotation), then each finger from its base (1) to its tip (4).
    return (f"{side}_hand_root", *(f"{side}_{f}{j}" for f in _FINGERS for j in range(1, 5)))


_WB_NAMES = (*COCO_17.keypoints, *_WB_FOOT, *_WB_FACE, *_wb_hand("left"), *_wb_hand("right"))

# Mirror partners inside the 68-point face (face-i <-> face-j); points on the midline have none.
_FACE_MIRROR = (
    *((i, 16 - i) for i in range(8)),  # jaw line 0..16, 8 is the chin
    *((17 + i, 26 - i) for i in range(5)),  # eyebrows
    (31, 35), (32, 34),  # nostrils; 27..30 (nose bridge) and 33 are central
    (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),  # eyes
    (48, 54), (49, 53), (50, 52),  # outer lips, upper; 51 central
    (55, 59), (56, 58),  # outer lips, lower; 57 central
    (60, 64), (61, 63),  # inner lips, upper; 62 central
    (65, 67),  # inner lips, lower; 66 central
)  # fmt: skip


def _wb_flip_pairs() -> tuple[tuple[int, int], ...]:
    pairs: list[tuple[str, str]] = []
    for n in _WB_NAMES:
        if n.startswith("left_"):
            pairs.append((n, "right_" + n[5:]))
    pairs += [(f"face-{a}", f"face-{b}") for a, b in _FACE_MIRROR]
    return _index_pairs(_WB_NAMES, pairs)


def _hand_links(side: str, root: str, base: str) -> list[tuple[str, str]]:
    """Links root -> each finger's first joint -> ... -> tip; ``base`` names the first joint."""
    links: list[tuple[str, str]] = []
    for f in _FINGERS:
        chain = [f"{side}_{root}", f"{side}_{f}{base}", f"{side}_{f}2", f"{side}_{f}3", f"{side}_{f}4"]
        links += list(itertools.pairwise(chain))
    return links


_COCO_LINKS = [(COCO_17.keypoints[a], COCO_17.keypoints[b]) for a, b in COCO_17.skeleton]
_FOOT_LINKS = [(f"{s}_ankle", f"{s}_{p}") for s in ("left", "right") for p in ("big_toe", "small_toe", "heel")]

_WB_SIGMAS = (
    # body (COCO's)
    .026, .025, .025, .035, .035, .079, .079, .072, .072, .062, .062, .107, .107, .087, .087, .089, .089,
    # foot
    .068, .066, .066, .092, .094, .094,
    # face-0 .. face-67
    .042, .043, .044, .043, .040, .035, .031, .025, .020, .023, .029, .032, .037, .038, .043, .041, .045,
    .013, .012, .011, .011, .012, .012, .011, .011, .013, .015, .009, .007, .007, .007, .012, .009, .008,
    .016, .010, .017, .011, .009, .011, .009, .007, .013, .008, .011, .012, .010, .034, .008, .008, .009,
    .008, .008, .007, .010, .008, .009, .009, .009, .007, .007, .008, .011, .008, .008, .008, .010, .008,
    # left hand: root, thumb 1-4, forefinger 1-4, middle 1-4, ring 1-4, pinky 1-4
    .029, .022, .035, .037, .047, .026, .025, .024, .035, .018, .024, .022, .026, .017, .021, .021, .032,
    .020, .019, .022, .031,
    # right hand (the same constants)
    .029, .022, .035, .037, .047, .026, .025, .024, .035, .018, .024, .022, .026, .017, .021, .021, .032,
    .020, .019, .022, .031,
)  # fmt: skip

COCO_WHOLEBODY_133 = KeypointSchema(
    name="coco_wholebody133",
    keypoints=_WB_NAMES,
    skeleton=_index_pairs(
        _WB_NAMES,
        _COCO_LINKS + _FOOT_LINKS + _hand_links("left", "wrist", "1") + _hand_links("right", "wrist", "1"),
    ),
    flip_pairs=_wb_flip_pairs(),
    sigmas=_WB_SIGMAS,
)


# --- Sapiens-308 (Goliath without teeth) --------------------------------------------------------

_SAP_BODY = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
)  # fmt: skip


def _sap_hand(side: str) -> tuple[str, ...]:
    # Per finger: tip (4), then towards the palm (3, 2), then the "third joint"; the wrist last.
    out: list[str] = []
    for f in _FINGERS:
        out += [f"{side}_{f}4", f"{side}_{f}3", f"{side}_{f}2", f"{side}_{f}_third_joint"]
    return (*out, f"{side}_wrist")


_SAP_EXTRA = (
    "left_olecranon", "right_olecranon", "left_cubital_fossa", "right_cubital_fossa",
    "left_acromion", "right_acromion", "neck",
)  # fmt: skip


def _eyebrow(side: str) -> tuple[str, ...]:
    e = f"of_{side}_eyebrow"
    return (
        f"upper_startpoint_{e}", f"lower_startpoint_{e}", f"end_{e}", f"upper_midpoint_1_{e}",
        f"lower_midpoint_1_{e}", f"upper_midpoint_2_{e}", f"upper_midpoint_3_{e}",
        f"lower_midpoint_2_{e}", f"lower_midpoint_3_{e}",
    )  # fmt: skip


# Midpoint numbers of each eye contour in the order Goliath lists them ("c" = centerpoint). The
# left eye's lash lines run inner, outer, centre, 2, 1, 6, 5, 4, 3 and the right eye's 1..6; the
# eyelid and crease lines use the orders below.
_L_LID = ("6", "2", "5", "c", "4", "1", "3")
_R_LID = ("3", "1", "4", "c", "5", "2", "6")


def _mid(side: str, m: str, line: str) -> str:
    return f"{side}_centerpoint_of_{line}" if m == "c" else f"{side}_midpoint_{m}_of_{line}"


def _eye(side: str, lid: str) -> tuple[str, ...]:
    lash = ("2", "1", "6", "5", "4", "3") if side == "l" else ("1", "2", "3", "4", "5", "6")
    order = _L_LID if side == "l" else _R_LID
    out = [f"{side}_inner_end_of_{lid}_lash_line", f"{side}_outer_end_of_{lid}_lash_line"]
    out.append(f"{side}_centerpoint_of_{lid}_lash_line")
    out += [_mid(side, m, f"{lid}_lash_line") for m in lash]
    out.append(f"{side}_outer_end_of_{lid}_eyelid_line")
    out += [_mid(side, m, f"{lid}_eyelid_line") for m in order]
    if lid == "upper":
        out += [_mid(side, m, "upper_crease_line") for m in order]
    return tuple(out)


def _lips(kind: str) -> tuple[str, ...]:
    return (
        f"midpoint_1_of_upper_{kind}_lip", f"midpoint_2_of_upper_{kind}_lip",
        f"midpoint_1_of_lower_{kind}_lip", f"midpoint_2_of_lower_{kind}_lip",
        *(f"midpoint_{i}_of_upper_{kind}_lip" for i in range(3, 7)),
        *(f"midpoint_{i}_of_lower_{kind}_lip" for i in range(3, 7)),
    )  # fmt: skip


_SAP_FACE = (
    "center_of_glabella", "center_of_nose_root", "tip_of_nose_bridge", "midpoint_1_of_nose_bridge",
    "midpoint_2_of_nose_bridge", "midpoint_3_of_nose_bridge", "center_of_labiomental_groove",
    "tip_of_chin",
    *_eyebrow("r"), *_eyebrow("l"),
    *_eye("l", "upper"), *_eye("r", "upper"), *_eye("l", "lower"), *_eye("r", "lower"),
    "tip_of_nose", "bottom_center_of_nose", "r_outer_corner_of_nose", "l_outer_corner_of_nose",
    "inner_corner_of_r_nostril", "outer_corner_of_r_nostril", "upper_corner_of_r_nostril",
    "inner_corner_of_l_nostril", "outer_corner_of_l_nostril", "upper_corner_of_l_nostril",
    "r_outer_corner_of_mouth", "l_outer_corner_of_mouth", "center_of_cupid_bow",
    "center_of_lower_outer_lip", *_lips("outer"),
    "r_inner_corner_of_mouth", "l_inner_corner_of_mouth", "center_of_upper_inner_lip",
    "center_of_lower_inner_lip", *_lips("inner"),
)  # fmt: skip


def _ear(side: str) -> tuple[str, ...]:
    # Goliath's right ear lists inner-helix point 8 second and point 2 last (left: 2 then 8 last).
    helix = (1, 2, 3, 4, 5, 6, 7) if side == "l" else (1, 8, 3, 4, 5, 6, 7)
    last = 8 if side == "l" else 2
    return (
        f"{side}_top_end_of_inferior_crus", f"{side}_top_end_of_superior_crus",
        f"{side}_start_of_antihelix", f"{side}_end_of_antihelix", f"{side}_midpoint_1_of_antihelix",
        f"{side}_midpoint_1_of_inferior_crus", f"{side}_midpoint_2_of_antihelix",
        f"{side}_midpoint_3_of_antihelix",
        *(f"{side}_point_{i}_of_inner_helix" for i in helix),
        f"{side}_highest_point_of_antitragus", f"{side}_bottom_point_of_tragus",
        f"{side}_protruding_point_of_tragus", f"{side}_top_point_of_tragus",
        f"{side}_start_point_of_crus_of_helix", f"{side}_deepest_point_of_concha",
        f"{side}_tip_of_ear_lobe", f"{side}_midpoint_between_22_15",
        f"{side}_bottom_connecting_point_of_ear_lobe", f"{side}_top_connecting_point_of_helix",
        f"{side}_point_{last}_of_inner_helix",
    )  # fmt: skip


def _ring(side: str, part: str) -> tuple[str, ...]:
    b = f"{side}_border_of_{part}"
    return (
        f"{side}_center_of_{part}", f"{b}_3", f"{b}_midpoint_1", f"{b}_12", f"{b}_midpoint_4",
        f"{b}_9", f"{b}_midpoint_3", f"{b}_6", f"{b}_midpoint_2",
    )  # fmt: skip


_SAP_NAMES = (
    *_SAP_BODY, *_WB_FOOT, *_sap_hand("right"), *_sap_hand("left"), *_SAP_EXTRA, *_SAP_FACE,
    *_ear("l"), *_ear("r"),
    *_ring("l", "iris"), *_ring("r", "iris"), *_ring("l", "pupil"), *_ring("r", "pupil"),
)  # fmt: skip

# Goliath's 344-keypoint indices: the 36 teeth sit at 220..255; the Sapiens channel i holds
# Goliath keypoint GOLIATH_344_KEPT[i].
GOLIATH_TEETH = tuple(range(220, 256))
GOLIATH_344_KEPT = tuple(i for i in range(344) if i not in GOLIATH_TEETH)


def _mirror(name: str) -> str | None:
    """The left/right partner a Goliath name's ``swap`` entry gives (``None``: no partner)."""
    if name.endswith("_eyebrow"):
        return None  # the metadata leaves the eyebrows unpaired
    for a, b in (("left_", "right_"), ("right_", "left_"), ("l_", "r_"), ("r_", "l_")):
        if name.startswith(a):
            return b + name[len(a) :]
    for a, b in (("_of_r_nostril", "_of_l_nostril"), ("_of_l_nostril", "_of_r_nostril")):
        if name.endswith(a):
            return name[: -len(a)] + b
    return None


def _sap_flip_pairs() -> tuple[tuple[int, int], ...]:
    pairs = []
    for n in _SAP_NAMES:
        m = _mirror(n)
        if m is not None and (n.startswith(("left_", "l_")) or n.endswith("_of_l_nostril")):
            pairs.append((n, m))
    return _index_pairs(_SAP_NAMES, pairs)


# Sapiens' hand-set sigmas; every name shared with COCO-WholeBody takes that dataset's sigma,
# everything else 0.010.
_SAP_CUSTOM_SIGMAS = {
    **{f"{s}_{f}_third_joint": v for s in ("left", "right") for f, v in
       zip(_FINGERS, (0.022, 0.026, 0.018, 0.017, 0.020), strict=True)},
    "neck": 0.079,
    "left_olecranon": 0.072, "right_olecranon": 0.072,
    "left_cubital_fossa": 0.072, "right_cubital_fossa": 0.072,
    "left_acromion": 0.079, "right_acromion": 0.079,
}  # fmt: skip
_SAP_DEFAULT_SIGMA = 0.010


def _sap_sigmas() -> tuple[float, ...]:
    wb = dict(zip(_WB_NAMES, _WB_SIGMAS, strict=True))
    return tuple(wb.get(n, _SAP_CUSTOM_SIGMAS.get(n, _SAP_DEFAULT_SIGMA)) for n in _SAP_NAMES)


SAPIENS_308 = KeypointSchema(
    name="sapiens308",
    keypoints=_SAP_NAMES,
    skeleton=_index_pairs(
        _SAP_NAMES,
        _COCO_LINKS
        + _FOOT_LINKS
        + _hand_links("left", "wrist", "_third_joint")
        + _hand_links("right", "wrist", "_third_joint"),
    ),
    flip_pairs=_sap_flip_pairs(),
    sigmas=_sap_sigmas(),
)

WHOLEBODY_SCHEMAS: tuple[KeypointSchema, ...] = (COCO_WHOLEBODY_133, SAPIENS_308)
