from __future__ import annotations

import numpy as np
import pytest

from posekit.schemas import BLAZEPOSE_33, COCO_17, OPENPOSE_18, SCHEMAS, KeypointSchema, convert_keypoints, get_schema

ALL = [COCO_17, OPENPOSE_18, BLAZEPOSE_33]


def _mirror(name: str) -> str:
    if "left" in name:
        return name.replace("left", "right")
    return name.replace("right", "left")


def test_sizes():
    assert COCO_17.num_keypoints == 17
    assert OPENPOSE_18.num_keypoints == 18
    assert BLAZEPOSE_33.num_keypoints == 33
    assert len(OPENPOSE_18.skeleton) == 19  # the 19 PAF limbs of the COCO-18 OpenPose model
    assert len(COCO_17.skeleton) == 19
    assert set(SCHEMAS) == {"coco17", "openpose18", "blazepose33", "mpii14", "coco_wholebody133", "sapiens308"}


def test_coco_order_is_the_official_one():
    assert COCO_17.keypoints[:3] == ("nose", "left_eye", "right_eye")
    assert COCO_17.index("left_shoulder") == 5
    assert COCO_17.index("right_ankle") == 16


def test_openpose_order_is_the_official_one():
    assert OPENPOSE_18.keypoints[:2] == ("nose", "neck")
    assert OPENPOSE_18.index("right_shoulder") == 2
    assert OPENPOSE_18.index("left_ear") == 17


@pytest.mark.parametrize("schema", ALL, ids=lambda s: s.name)
def test_skeleton_indices_valid_and_zero_based(schema: KeypointSchema):
    idx = np.asarray(schema.skeleton)
    assert idx.min() == 0  # 0-based: some limb touches keypoint 0 (the nose in all three)
    assert idx.max() <= schema.num_keypoints - 1
    assert all(a != b for a, b in schema.skeleton)
    assert len(set(map(frozenset, schema.skeleton))) == len(schema.skeleton)  # no duplicate limbs
    # every keypoint is on some limb
    assert set(idx.ravel().tolist()) == set(range(schema.num_keypoints))


def test_coco_skeleton_is_the_official_one_made_zero_based():
    # pycocotools / COCO annotation file skeleton, 1-based
    official = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
                [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]  # fmt: skip
    assert [list(p) for p in COCO_17.skeleton] == [[a - 1, b - 1] for a, b in official]


@pytest.mark.parametrize("schema", ALL, ids=lambda s: s.name)
def test_flip_pairs_are_left_right_name_pairs(schema: KeypointSchema):
    assert schema.flip_pairs, "every built-in schema has left/right keypoints"
    for a, b in schema.flip_pairs:
        na, nb = schema.keypoints[a], schema.keypoints[b]
        assert "left" in na
        assert nb == na.replace("left", "right")
    # every keypoint with a side is in exactly one pair; the others are in none
    in_pairs = [i for p in schema.flip_pairs for i in p]
    assert len(in_pairs) == len(set(in_pairs))
    sided = {i for i, n in enumerate(schema.keypoints) if "left" in n or "right" in n}
    assert set(in_pairs) == sided


@pytest.mark.parametrize("schema", ALL, ids=lambda s: s.name)
def test_flip_permutation_is_an_involution_that_mirrors_names(schema: KeypointSchema):
    perm = schema.flip_permutation()
    assert perm.shape == (schema.num_keypoints,)
    assert sorted(perm.tolist()) == list(range(schema.num_keypoints))
    np.testing.assert_array_equal(perm[perm], np.arange(schema.num_keypoints))
    assert not np.array_equal(perm, np.arange(schema.num_keypoints))
    for i, j in enumerate(perm.tolist()):
        assert schema.keypoints[j] == _mirror(schema.keypoints[i])


def test_sigmas():
    assert len(COCO_17.sigmas) == 17
    assert len(OPENPOSE_18.sigmas) == 18
    assert COCO_17.sigmas_array().dtype == np.float64
    assert COCO_17.sigmas_array()[0] == pytest.approx(0.026)
    # OpenPose sigmas are COCO's by name (neck gets the shoulder constant)
    for i, name in enumerate(OPENPOSE_18.keypoints):
        want = 0.079 if name == "neck" else COCO_17.sigmas[COCO_17.index(name)]
        assert OPENPOSE_18.sigmas[i] == pytest.approx(want)
    assert BLAZEPOSE_33.sigmas is None
    with pytest.raises(ValueError, match="no OKS sigmas"):
        BLAZEPOSE_33.sigmas_array()


def test_schema_validation():
    with pytest.raises(ValueError, match="unique"):
        KeypointSchema("bad", ("a", "a"), ())
    with pytest.raises(ValueError, match=r"outside 0\.\.1"):
        KeypointSchema("bad", ("a", "b"), ((1, 2),))  # 1-based by mistake
    with pytest.raises(ValueError, match="3 sigmas for 2 keypoints"):
        KeypointSchema("bad", ("a", "b"), ((0, 1),), sigmas=(0.1, 0.1, 0.1))


def test_index_unknown_name_lists_valid_names():
    with pytest.raises(KeyError, match="left_shoulder"):
        COCO_17.index("neck")


def test_get_schema():
    assert get_schema("coco17") is COCO_17
    assert get_schema(OPENPOSE_18) is OPENPOSE_18


def test_unknown_schema_name_lists_valid_names():
    with pytest.raises(KeyError) as info:
        get_schema("coco18")
    msg = str(info.value)
    assert "coco18" in msg
    for name in ("coco17", "openpose18", "blazepose33"):
        assert name in msg


def _random_coco(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    kp = rng.uniform(0, 500, (n, 17, 2)).astype(np.float32)
    sc = rng.uniform(0.1, 1.0, (n, 17)).astype(np.float32)
    return kp, sc


def test_coco_to_openpose():
    kp, sc = _random_coco(3)
    out_kp, out_sc = convert_keypoints(kp, sc, "coco17", "openpose18")
    assert out_kp.shape == (3, 18, 2)
    assert out_sc.shape == (3, 18)
    assert out_kp.dtype == np.float32
    for j, name in enumerate(OPENPOSE_18.keypoints):
        if name == "neck":
            continue
        i = COCO_17.index(name)
        np.testing.assert_array_equal(out_kp[:, j], kp[:, i])
        np.testing.assert_array_equal(out_sc[:, j], sc[:, i])
    ls, rs = COCO_17.index("left_shoulder"), COCO_17.index("right_shoulder")
    neck = OPENPOSE_18.index("neck")
    np.testing.assert_allclose(out_kp[:, neck], (kp[:, ls] + kp[:, rs]) / 2, rtol=1e-6)
    np.testing.assert_array_equal(out_sc[:, neck], np.minimum(sc[:, ls], sc[:, rs]))


def test_neck_missing_when_a_shoulder_is_missing():
    kp, sc = _random_coco(3, seed=1)
    sc[0, COCO_17.index("left_shoulder")] = 0
    kp[0, COCO_17.index("left_shoulder")] = np.nan
    sc[1, COCO_17.index("right_shoulder")] = 0  # missing by score, coordinates left as garbage
    out_kp, out_sc = convert_keypoints(kp, sc, COCO_17, OPENPOSE_18)
    neck = OPENPOSE_18.index("neck")
    assert out_sc[0, neck] == 0
    assert np.isnan(out_kp[0, neck]).all()
    assert out_sc[1, neck] == 0
    assert np.isnan(out_kp[1, neck]).all()
    assert out_sc[2, neck] > 0
    assert np.isfinite(out_kp[2, neck]).all()


def test_coco_openpose_coco_round_trip_is_exact():
    kp, sc = _random_coco(4, seed=2)
    sc[1, 3] = 0
    kp[1, 3] = np.nan
    op_kp, op_sc = convert_keypoints(kp, sc, "coco17", "openpose18")
    back_kp, back_sc = convert_keypoints(op_kp, op_sc, "openpose18", "coco17")
    np.testing.assert_array_equal(back_kp, kp)  # NaN == NaN in assert_array_equal
    np.testing.assert_array_equal(back_sc, sc)


def test_openpose_coco_openpose_round_trip_is_exact():
    rng = np.random.default_rng(3)
    kp = rng.uniform(0, 300, (2, 18, 2)).astype(np.float32)
    sc = rng.uniform(0.1, 1.0, (2, 18)).astype(np.float32)
    neck, ls, rs = (OPENPOSE_18.index(n) for n in ("neck", "left_shoulder", "right_shoulder"))
    # a consistent neck (the shoulder midpoint with their min score) survives the round trip exactly
    kp[:, neck] = (kp[:, ls] + kp[:, rs]) / 2
    sc[:, neck] = np.minimum(sc[:, ls], sc[:, rs])
    coco_kp, coco_sc = convert_keypoints(kp, sc, "openpose18", "coco17")
    assert coco_kp.shape == (2, 17, 2)
    for i, name in enumerate(COCO_17.keypoints):
        np.testing.assert_array_equal(coco_kp[:, i], kp[:, OPENPOSE_18.index(name)])
    back_kp, back_sc = convert_keypoints(coco_kp, coco_sc, "coco17", "openpose18")
    np.testing.assert_array_equal(back_kp, kp)
    np.testing.assert_array_equal(back_sc, sc)


def test_blazepose_to_coco_by_name():
    rng = np.random.default_rng(4)
    kp = rng.uniform(0, 300, (2, 33, 2)).astype(np.float32)
    sc = rng.uniform(0.1, 1.0, (2, 33)).astype(np.float32)
    out_kp, out_sc = convert_keypoints(kp, sc, "blazepose33", "coco17")
    assert BLAZEPOSE_33.keypoints[11] == "left_shoulder"
    np.testing.assert_array_equal(out_kp[:, 5], kp[:, 11])  # blaze 11 left_shoulder -> coco 5
    np.testing.assert_array_equal(out_sc[:, 5], sc[:, 11])
    np.testing.assert_array_equal(out_kp[:, 16], kp[:, 28])  # right_ankle
    np.testing.assert_array_equal(out_kp[:, 1], kp[:, 2])  # left_eye (not left_eye_inner)
    assert (out_sc > 0).all()  # every COCO keypoint exists in BlazePose


def test_coco_to_blazepose_marks_extra_points_missing():
    kp, sc = _random_coco(1, seed=5)
    out_kp, out_sc = convert_keypoints(kp, sc, "coco17", "blazepose33")
    for j, name in enumerate(BLAZEPOSE_33.keypoints):
        if name in COCO_17.keypoints:
            assert out_sc[0, j] == sc[0, COCO_17.index(name)]
        else:
            assert out_sc[0, j] == 0
            assert np.isnan(out_kp[0, j]).all()


def test_convert_empty():
    kp, sc = convert_keypoints(np.zeros((0, 17, 2)), np.zeros((0, 17)), "coco17", "openpose18")
    assert kp.shape == (0, 18, 2)
    assert sc.shape == (0, 18)
