"""Whole-body schemas: layout sizes, names, flips, skeletons, sigmas, and the real WholeBody file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from posekit.schemas import COCO_17, KeypointSchema, convert_keypoints
from posekit.schemas_wholebody import (
    COCO_WHOLEBODY_133,
    GOLIATH_344_KEPT,
    GOLIATH_TEETH,
    SAPIENS_308,
    WHOLEBODY_SCHEMAS,
)

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "data" / "fixtures" / "coco" / "test_coco_wholebody.json"


def _side_free(name: str) -> str:
    """A name with its left/right marker replaced by ``*`` (the key two mirror partners share)."""
    for a in ("left_", "right_", "l_", "r_"):
        if name.startswith(a):
            return "*_" + name[len(a) :]
    return name.replace("_of_l_", "_of_*_").replace("_of_r_", "_of_*_")


def test_exported_tuple() -> None:
    assert WHOLEBODY_SCHEMAS == (COCO_WHOLEBODY_133, SAPIENS_308)
    assert len({s.name for s in WHOLEBODY_SCHEMAS}) == 2
    assert all(isinstance(s, KeypointSchema) for s in WHOLEBODY_SCHEMAS)


def test_wholebody_layout_sizes_and_parts() -> None:
    s = COCO_WHOLEBODY_133
    assert s.num_keypoints == 133 == 17 + 6 + 68 + 21 + 21
    assert len(set(s.keypoints)) == 133
    assert s.keypoints[:17] == COCO_17.keypoints
    assert s.keypoints[17:23] == (
        "left_big_toe",
        "left_small_toe",
        "left_heel",
        "right_big_toe",
        "right_small_toe",
        "right_heel",
    )
    assert s.keypoints[23:91] == tuple(f"face-{i}" for i in range(68))
    assert s.keypoints[91] == "left_hand_root"
    assert s.keypoints[112] == "right_hand_root"
    assert s.keypoints[92:96] == ("left_thumb1", "left_thumb2", "left_thumb3", "left_thumb4")
    assert s.keypoints[132] == "right_pinky_finger4"
    # 19 COCO limbs + 6 foot links + 2 hands x 5 fingers x 4 links
    assert len(s.skeleton) == 19 + 6 + 40
    assert s.skeleton[:19] == COCO_17.skeleton


def test_wholebody_sigmas_are_the_official_constants() -> None:
    sig = COCO_WHOLEBODY_133.sigmas_array()
    assert sig.shape == (133,)
    np.testing.assert_array_equal(sig[:17], COCO_17.sigmas_array())
    assert tuple(sig[17:23]) == (0.068, 0.066, 0.066, 0.092, 0.094, 0.094)
    assert sig[23] == 0.042
    assert sig[31] == 0.020
    assert sig[90] == 0.008
    np.testing.assert_array_equal(sig[91:112], sig[112:133])  # both hands share constants
    assert sig[91] == 0.029
    assert sig[95] == 0.047
    assert np.all((sig > 0) & (sig < 0.11))


@pytest.mark.parametrize("schema", WHOLEBODY_SCHEMAS, ids=lambda s: s.name)
def test_flip_permutation_is_a_left_right_involution(schema: KeypointSchema) -> None:
    perm = schema.flip_permutation()
    np.testing.assert_array_equal(perm[perm], np.arange(schema.num_keypoints))
    used = [i for p in schema.flip_pairs for i in p]
    assert len(used) == len(set(used)), "a keypoint is in two flip pairs"
    for a, b in schema.flip_pairs:
        na, nb = schema.keypoints[a], schema.keypoints[b]
        if na.startswith("face-"):
            continue
        assert _side_free(na) == _side_free(nb)
        assert na != nb
        if na.startswith("left_"):
            assert nb == "right_" + na[5:]
    # every left_* has a right_* partner
    for i, n in enumerate(schema.keypoints):
        if n.startswith("left_"):
            assert schema.keypoints[perm[i]] == "right_" + n[5:]


def test_wholebody_face_flip_is_the_68_point_mirror() -> None:
    s = COCO_WHOLEBODY_133
    perm = s.flip_permutation()
    face = {s.keypoints[i]: s.keypoints[perm[i]] for i in range(23, 91)}
    assert face["face-0"] == "face-16"
    assert face["face-8"] == "face-8"
    assert face["face-36"] == "face-45"
    assert face["face-30"] == "face-30"
    assert face["face-48"] == "face-54"
    assert face["face-66"] == "face-66"
    assert sum(1 for k, v in face.items() if k == v) == 68 - 2 * 29


def _components(schema: KeypointSchema) -> list[set[int]]:
    linked = {i for p in schema.skeleton for i in p}
    out: list[set[int]] = []
    while linked:
        seen: set[int] = set()
        todo = [min(linked)]
        while todo:
            i = todo.pop()
            if i not in seen:
                seen.add(i)
                todo += [b if a == i else a for a, b in schema.skeleton if i in (a, b)]
        out.append(seen)
        linked -= seen
    return out


@pytest.mark.parametrize("schema", WHOLEBODY_SCHEMAS, ids=lambda s: s.name)
def test_skeleton_indices_are_valid_and_unique(schema: KeypointSchema) -> None:
    k = schema.num_keypoints
    assert all(0 <= a < k and 0 <= b < k and a != b for a, b in schema.skeleton)
    assert len(set(map(frozenset, schema.skeleton))) == len(schema.skeleton)


def test_skeleton_components() -> None:
    # Both layouts hang the fingers from the body's wrists: one linked graph over body, feet and
    # hands. WholeBody's hand roots and face points, and Sapiens' face and extras, are unlinked.
    (wb,) = _components(COCO_WHOLEBODY_133)
    assert len(wb) == 17 + 6 + 2 * 20
    assert COCO_WHOLEBODY_133.index("left_hand_root") not in wb
    wb_l = COCO_WHOLEBODY_133.index("left_wrist")
    assert (wb_l, COCO_WHOLEBODY_133.index("left_thumb1")) in COCO_WHOLEBODY_133.skeleton
    assert not any(i >= 23 and i < 91 for p in COCO_WHOLEBODY_133.skeleton for i in p)
    (sap,) = _components(SAPIENS_308)
    assert len(sap) == 15 + 6 + 2 * 21


def test_sapiens_layout() -> None:
    s = SAPIENS_308
    assert s.num_keypoints == 308
    assert len(set(s.keypoints)) == 308
    assert len(GOLIATH_TEETH) == 36
    assert len(GOLIATH_344_KEPT) == 308
    assert GOLIATH_344_KEPT[219] == 219
    assert GOLIATH_344_KEPT[220] == 256
    # 15 body (COCO's without wrists, hips right after the elbows), then feet
    body = tuple(n for n in COCO_17.keypoints if not n.endswith("wrist"))
    assert s.keypoints[:15] == body
    assert s.keypoints[15:21] == COCO_WHOLEBODY_133.keypoints[17:23]
    assert s.keypoints[21] == "right_thumb4"
    assert s.keypoints[41] == "right_wrist"
    assert s.keypoints[42] == "left_thumb4"
    assert s.keypoints[62] == "left_wrist"
    assert s.keypoints[63:70] == (
        "left_olecranon", "right_olecranon", "left_cubital_fossa", "right_cubital_fossa",
        "left_acromion", "right_acromion", "neck",
    )  # fmt: skip
    assert s.keypoints[70] == "center_of_glabella"
    assert s.keypoints[219] == "midpoint_6_of_lower_inner_lip"
    assert s.keypoints[220] == "l_top_end_of_inferior_crus"
    assert s.keypoints[245] == "l_point_8_of_inner_helix"
    assert s.keypoints[271] == "r_point_2_of_inner_helix"
    assert s.keypoints[272] == "l_center_of_iris"
    assert s.keypoints[307] == "r_border_of_pupil_midpoint_2"
    assert not any(n.startswith("teeth") for n in s.keypoints)
    assert len(s.skeleton) == 65
    assert s.skeleton[:19] == tuple(
        (s.index(COCO_17.keypoints[a]), s.index(COCO_17.keypoints[b])) for a, b in COCO_17.skeleton
    )
    assert (s.index("left_wrist"), s.index("left_thumb_third_joint")) in s.skeleton


def test_sapiens_flip_pairs_follow_the_metadata() -> None:
    s = SAPIENS_308
    perm = s.flip_permutation()
    assert len(s.flip_pairs) == 125
    name = s.keypoints
    assert name[perm[s.index("inner_corner_of_r_nostril")]] == "inner_corner_of_l_nostril"
    assert name[perm[s.index("r_point_8_of_inner_helix")]] == "l_point_8_of_inner_helix"
    assert name[perm[s.index("l_border_of_iris_3")]] == "r_border_of_iris_3"
    # unpaired: the midline and, as in Sapiens' metadata, the eyebrows
    for n in ("neck", "tip_of_nose", "center_of_cupid_bow", "end_of_r_eyebrow", "upper_startpoint_of_l_eyebrow"):
        assert perm[s.index(n)] == s.index(n)


def test_sapiens_sigmas_follow_its_rule() -> None:
    s = SAPIENS_308
    sig = dict(zip(s.keypoints, s.sigmas_array(), strict=True))
    wb = dict(zip(COCO_WHOLEBODY_133.keypoints, COCO_WHOLEBODY_133.sigmas_array(), strict=True))
    shared = [n for n in s.keypoints if n in wb]
    assert len(shared) == 17 + 6 + 2 * 15  # body, feet, and each hand's tip..second joints
    assert all(sig[n] == wb[n] for n in shared)
    assert sig["neck"] == 0.079
    assert sig["left_olecranon"] == 0.072
    assert sig["right_acromion"] == 0.079
    assert sig["left_forefinger_third_joint"] == 0.026
    assert sig["right_thumb_third_joint"] == 0.022
    assert sig["l_center_of_iris"] == 0.010
    assert sig["tip_of_chin"] == 0.010


def test_fixture_wholebody_annotations_have_133_keypoints() -> None:
    if not FIXTURE.exists():
        pytest.skip(f"{FIXTURE} is not available")
    data = json.loads(FIXTURE.read_text())
    assert tuple(data["categories"][0]["keypoints"]) == COCO_WHOLEBODY_133.keypoints[:17]
    parts = ("keypoints", "foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts")
    for ann in data["annotations"]:
        flat = np.concatenate([np.asarray(ann[p], dtype=np.float64) for p in parts])
        assert flat.size == 3 * COCO_WHOLEBODY_133.num_keypoints
    # convert one real annotation to COCO-17 and Sapiens-308 by name
    ann = max(data["annotations"], key=lambda a: a["num_keypoints"])
    flat = np.concatenate([np.asarray(ann[p], dtype=np.float32) for p in parts]).reshape(133, 3)
    kp, vis = flat[None, :, :2], flat[None, :, 2]
    out_kp, out_sc = convert_keypoints(kp, vis, COCO_WHOLEBODY_133, COCO_17)
    body = np.asarray(ann["keypoints"], dtype=np.float32).reshape(17, 3)
    np.testing.assert_array_equal(out_kp[0], body[:, :2])
    np.testing.assert_array_equal(out_sc[0], body[:, 2])
    s_kp, s_sc = convert_keypoints(kp, vis, COCO_WHOLEBODY_133, SAPIENS_308)
    i, j = SAPIENS_308.index("left_wrist"), COCO_WHOLEBODY_133.index("left_wrist")
    np.testing.assert_array_equal(s_kp[0, i], kp[0, j])
    assert np.all(s_sc[0, SAPIENS_308.index("neck")] == 0)


def test_conversion_to_coco17_is_exact_for_the_body() -> None:
    rng = np.random.default_rng(0)
    kp = rng.uniform(0, 500, (3, 133, 2)).astype(np.float32)
    sc = rng.uniform(0.1, 1, (3, 133)).astype(np.float32)
    out_kp, out_sc = convert_keypoints(kp, sc, COCO_WHOLEBODY_133, COCO_17)
    np.testing.assert_array_equal(out_kp, kp[:, :17])
    np.testing.assert_array_equal(out_sc, sc[:, :17])
    back_kp, back_sc = convert_keypoints(out_kp, out_sc, COCO_17, COCO_WHOLEBODY_133)
    np.testing.assert_array_equal(back_kp[:, :17], kp[:, :17])
    assert np.all(back_sc[:, 17:] == 0)
    assert np.all(np.isnan(back_kp[:, 17:]))
    # Sapiens-308 -> COCO-17: everything but the wrists' positions comes across exactly
    s_kp, s_sc = convert_keypoints(kp[:, :17], sc[:, :17], COCO_17, SAPIENS_308)
    c_kp, c_sc = convert_keypoints(s_kp, s_sc, SAPIENS_308, COCO_17)
    np.testing.assert_array_equal(c_kp, kp[:, :17])
    np.testing.assert_array_equal(c_sc, sc[:, :17])
