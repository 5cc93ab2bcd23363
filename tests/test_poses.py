from __future__ import annotations

import json

import numpy as np
import pytest

from posekit.poses import Poses
from posekit.schemas import COCO_17, OPENPOSE_18


def _people(n: int = 3, *, boxes: bool = False, tracks: bool = False, seed: int = 0) -> Poses:
    rng = np.random.default_rng(seed)
    kp = rng.uniform(10, 400, (n, 17, 2)).astype(np.float32)
    ks = rng.uniform(0.2, 1.0, (n, 17)).astype(np.float32)
    if n:
        kp[0, 3] = np.nan  # person 0 lacks left_ear
        ks[0, 3] = 0
    sc = np.linspace(0.9, 0.5, n, dtype=np.float32)
    xy_min, xy_max = np.nanmin(kp, axis=1), np.nanmax(kp, axis=1)
    bx = np.concatenate([xy_min, xy_max], axis=1) if boxes else None
    tid = np.arange(n) + 7 if tracks else None
    return Poses(kp, ks, sc, COCO_17, bx, tid)


# --- validation -------------------------------------------------------------------------------


def test_wrong_keypoint_shape_names_the_expected_shape():
    with pytest.raises(
        ValueError, match=r"keypoints \(schema coco17\) must have shape \(\?, 17, 2\), got \(2, 18, 2\)"
    ):
        Poses(np.zeros((2, 18, 2)), np.zeros((2, 18)), np.zeros(2), "coco17")
    with pytest.raises(ValueError, match=r"\(\?, 17, 2\), got \(17, 2\)"):
        Poses(np.zeros((17, 2)), np.zeros(17), np.zeros(1), "coco17")


def test_wrong_score_shapes_name_the_expected_shape():
    with pytest.raises(ValueError, match=r"keypoint_scores must have shape \(2, 17\), got \(3, 17\)"):
        Poses(np.zeros((2, 17, 2)), np.zeros((3, 17)), np.zeros(2), "coco17")
    with pytest.raises(ValueError, match=r"scores must have shape \(2,\), got \(2, 1\)"):
        Poses(np.zeros((2, 17, 2)), np.zeros((2, 17)), np.zeros((2, 1)), "coco17")
    with pytest.raises(ValueError, match=r"boxes must have shape \(2, 4\), got \(2, 5\)"):
        Poses(np.zeros((2, 17, 2)), np.zeros((2, 17)), np.zeros(2), "coco17", boxes=np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"track_ids must have shape \(2,\), got \(3,\)"):
        Poses(np.zeros((2, 17, 2)), np.zeros((2, 17)), np.zeros(2), "coco17", track_ids=np.zeros(3))


def test_nan_scores_rejected():
    ks = np.zeros((1, 17))
    ks[0, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        Poses(np.zeros((1, 17, 2)), ks, np.zeros(1), "coco17")
    with pytest.raises(ValueError, match="NaN"):
        Poses(np.zeros((1, 17, 2)), np.zeros((1, 17)), np.array([np.nan]), "coco17")


def test_unknown_schema_name():
    with pytest.raises(KeyError, match="openpose18"):
        Poses(np.zeros((0, 17, 2)), np.zeros((0, 17)), np.zeros(0), "nope")


def test_schema_by_name_and_dtypes():
    p = Poses(np.zeros((1, 18, 2), np.float64), np.ones((1, 18)), [0.5], "openpose18", track_ids=[3])
    assert p.schema is OPENPOSE_18
    assert p.keypoints.dtype == np.float32
    assert p.keypoint_scores.dtype == np.float32
    assert p.scores.dtype == np.float32
    assert p.track_ids.dtype == np.int64
    assert len(p) == 1
    assert repr(p) == "Poses(1 people, schema=openpose18)"


# --- immutability -----------------------------------------------------------------------------


def test_copies_caller_data():
    kp = np.ones((2, 17, 2), np.float32)
    ks = np.ones((2, 17), np.float32)
    sc = np.ones(2, np.float32)
    bx = np.ones((2, 4), np.float32)
    tid = np.ones(2, np.int64)
    p = Poses(kp, ks, sc, COCO_17, bx, tid)
    for a in (kp, ks, sc, bx, tid):
        a[...] = 5
    assert (p.keypoints == 1).all()
    assert (p.keypoint_scores == 1).all()
    assert (p.scores == 1).all()
    assert (p.boxes == 1).all()
    assert (p.track_ids == 1).all()
    # even when the input already has the target dtype, nothing is shared
    for mine, theirs in ((p.keypoints, kp), (p.keypoint_scores, ks), (p.scores, sc), (p.boxes, bx), (p.track_ids, tid)):
        assert not np.shares_memory(mine, theirs)


def test_arrays_read_only():
    p = _people(2, boxes=True, tracks=True)
    for arr in (p.keypoints, p.keypoint_scores, p.scores, p.boxes, p.track_ids):
        assert not arr.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = 0
    with pytest.raises(AttributeError):
        p.scores = np.zeros(2)  # type: ignore[misc]


def test_caller_arrays_stay_writable():
    kp = np.zeros((1, 17, 2), np.float32)
    Poses(kp, np.zeros((1, 17)), np.zeros(1), COCO_17)
    assert kp.flags.writeable
    kp[0, 0, 0] = 1.0


# --- indexing ---------------------------------------------------------------------------------


def test_index_int():
    p = _people(3, boxes=True, tracks=True)
    one = p[1]
    assert isinstance(one, Poses)
    assert len(one) == 1
    np.testing.assert_array_equal(one.keypoints[0], p.keypoints[1])
    np.testing.assert_array_equal(one.boxes[0], p.boxes[1])
    assert one.track_ids.tolist() == [8]
    assert p[-1].track_ids.tolist() == [9]
    assert p[np.int64(0)].scores[0] == p.scores[0]
    with pytest.raises(IndexError, match="person 3 out of range for 3 people"):
        p[3]
    with pytest.raises(IndexError):
        p[-4]


def test_index_slice_mask_and_array():
    p = _people(4, tracks=True)
    s = p[1:3]
    assert len(s) == 2
    assert s.track_ids.tolist() == [8, 9]
    assert s.boxes is None
    m = p[p.scores > 0.7]
    assert m.track_ids.tolist() == [7, 8]
    np.testing.assert_array_equal(m.scores, p.scores[:2])
    a = p[np.array([3, 0])]
    assert a.track_ids.tolist() == [10, 7]
    assert len(p[p.scores > 10]) == 0
    assert [q.track_ids[0] for q in p] == [7, 8, 9, 10]


def test_indexing_results_are_independent_and_read_only():
    p = _people(3)
    q = p[:2]
    assert not q.keypoints.flags.writeable
    assert not np.shares_memory(q.keypoints, p.keypoints)


def test_empty():
    e = Poses.empty("openpose18")
    assert len(e) == 0
    assert e.keypoints.shape == (0, 18, 2)
    assert e.keypoint_scores.shape == (0, 18)
    assert e.scores.shape == (0,)
    assert e.to_coco(image_id=1) == []
    assert e.to_openpose() == {"version": 1.3, "people": []}
    assert e.bounding_boxes().shape == (0, 4)
    assert list(e) == []
    assert len(e.with_schema("coco17").keypoints) == 0


def test_visible_and_bounding_boxes():
    kp = np.full((2, 17, 2), np.nan, np.float32)
    ks = np.zeros((2, 17), np.float32)
    kp[0, 0], ks[0, 0] = (10, 20), 0.9
    kp[0, 5], ks[0, 5] = (30, 5), 0.8
    kp[0, 6] = (1000, 1000)  # not found (score 0): ignored by the box
    p = Poses(kp, ks, np.ones(2), COCO_17)
    assert p.visible[0].sum() == 2
    assert not p.visible[1].any()
    np.testing.assert_array_equal(p.bounding_boxes(), [[10, 5, 30, 20], [0, 0, 0, 0]])


# --- export -----------------------------------------------------------------------------------


def test_to_coco_layout():
    p = _people(2, boxes=True, tracks=True)
    out = p.to_coco(image_id=np.int64(42))
    assert len(out) == 2
    json.dumps(out)  # plain Python types only
    e = out[0]
    assert e["image_id"] == 42
    assert type(e["image_id"]) is int
    assert e["category_id"] == 1
    assert len(e["keypoints"]) == 51
    trip = np.asarray(e["keypoints"]).reshape(17, 3)
    # missing keypoint -> 0, 0, 0
    np.testing.assert_array_equal(trip[3], [0, 0, 0])
    found = np.arange(17) != 3
    np.testing.assert_allclose(trip[found, :2], p.keypoints[0, found], atol=5e-4)
    np.testing.assert_allclose(trip[found, 2], p.keypoint_scores[0, found], atol=5e-4)
    assert e["score"] == pytest.approx(float(p.scores[0]), abs=1e-5)
    x0, y0, x1, y1 = p.boxes[0].tolist()
    assert e["bbox"] == pytest.approx([x0, y0, x1 - x0, y1 - y0], abs=0.01)  # xywh
    assert e["track_id"] == 7
    assert out[1]["track_id"] == 8
    assert p.to_coco(1, category_id=3)[0]["category_id"] == 3


def test_to_coco_without_boxes_or_tracks_omits_them():
    e = _people(1).to_coco(image_id=1)[0]
    assert "bbox" not in e
    assert "track_id" not in e
    assert set(e) == {"image_id", "category_id", "keypoints", "score"}


def test_to_coco_never_writes_nan():
    kp = np.full((1, 17, 2), np.nan, np.float32)
    ks = np.zeros((1, 17), np.float32)
    kp[0, 0, 0] = 3.0  # half-missing coordinates but score 0: still missing
    out = Poses(kp, ks, np.ones(1), COCO_17).to_coco(1)[0]
    assert out["keypoints"] == [0.0] * 51


def test_to_openpose_layout():
    p = _people(2, tracks=True).with_schema("openpose18")
    doc = p.to_openpose()
    json.dumps(doc)
    assert doc["version"] == 1.3
    assert len(doc["people"]) == 2
    person = doc["people"][0]
    assert person["person_id"] == [7]
    flat = person["pose_keypoints_2d"]
    assert len(flat) == 18 * 3
    trip = np.asarray(flat).reshape(18, 3)
    np.testing.assert_allclose(trip[:, :2], np.nan_to_num(p.keypoints[0]) * p.visible[0][:, None], rtol=1e-6)
    np.testing.assert_allclose(trip[:, 2], p.keypoint_scores[0], rtol=1e-6)
    np.testing.assert_array_equal(trip[OPENPOSE_18.index("left_ear")], [0, 0, 0])
    assert _people(1).with_schema("openpose18").to_openpose()["people"][0]["person_id"] == [-1]


def test_with_schema():
    p = _people(2, boxes=True, tracks=True)
    assert p.with_schema("coco17") is p
    op = p.with_schema(OPENPOSE_18)
    assert op.schema is OPENPOSE_18
    assert op.keypoints.shape == (2, 18, 2)
    neck = OPENPOSE_18.index("neck")
    np.testing.assert_allclose(op.keypoints[:, neck], p.keypoints[:, 5:7].mean(axis=1), rtol=1e-6)
    np.testing.assert_array_equal(op.keypoints[:, OPENPOSE_18.index("right_wrist")], p.keypoints[:, 10])
    np.testing.assert_array_equal(op.scores, p.scores)
    np.testing.assert_array_equal(op.boxes, p.boxes)
    np.testing.assert_array_equal(op.track_ids, p.track_ids)
    back = op.with_schema("coco17")
    np.testing.assert_array_equal(back.keypoints, p.keypoints)
    np.testing.assert_array_equal(back.keypoint_scores, p.keypoint_scores)
