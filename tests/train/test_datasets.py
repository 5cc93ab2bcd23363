"""CocoKeypoints on real COCO data and the dataset fixtures (augmentation: test_augment.py)."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from posekit.eval import coco as eval_coco
from posekit.io.images import read_image
from posekit.train.augment import random_top_down
from posekit.train.datasets import CocoKeypoints


def _labelled_people(data):
    return [a for a in data["annotations"] if not a.get("iscrowd") and any(v > 0 for v in a["keypoints"][2::3])]


@pytest.fixture(scope="module")
def mini(data_dir):
    root = data_dir / "coco-train2017-mini"
    return CocoKeypoints(root / "person_keypoints.json", root / "images"), json.loads(
        (root / "person_keypoints.json").read_text()
    )


def test_mini_sample_counts(mini):
    ds, data = mini
    people = _labelled_people(data)
    samples = ds.top_down_samples()
    assert len(samples) == len(people) == 86  # DATA.md: 86 persons
    assert {s.annotation_id for s in samples} == {a["id"] for a in people}
    by_id = {a["id"]: a for a in people}
    for s in samples:
        assert s.keypoints.shape == (17, 3)
        np.testing.assert_array_equal(s.keypoints.ravel(), by_id[s.annotation_id]["keypoints"])
        np.testing.assert_array_equal(s.bbox, by_id[s.annotation_id]["bbox"])
        assert s.image_path.is_file()
    bu = ds.bottom_up_samples()
    assert len(bu) == len({a["image_id"] for a in people})
    assert sum(len(b.keypoints) for b in bu) == 86
    assert len(ds.bottom_up_samples(include_empty=True)) == len(data["images"])


@pytest.mark.parametrize(
    ("rel_json", "rel_images"),
    [
        ("crowdpose/test_crowdpose.json", "crowdpose"),
        ("aic/test_aic.json", "aic"),
        ("posetrack18/annotations/test_posetrack18_val.json", "posetrack18"),
        ("exlpose/test_exlpose.json", "exlpose"),
        ("jhmdb/test_jhmdb_sub1.json", "jhmdb"),
    ],
)
def test_fixtures_with_missing_fields_load(data_dir, rel_json, rel_images):
    path = data_dir / "fixtures" / rel_json
    data = json.loads(path.read_text())
    assert any("area" not in a for a in data["annotations"])  # the trap is really there
    ds = CocoKeypoints(path, data_dir / "fixtures" / rel_images, schema=None)
    k = len(data["categories"][0]["keypoints"])
    assert ds.schema.num_keypoints == k
    assert len(ds.schema.flip_pairs) >= 6  # shoulders..ankles at least
    samples = ds.top_down_samples()
    people = _labelled_people(data)
    assert len(samples) == len(people) > 0
    # the file's own ids survive (ExLPose uses id 0), although the evaluation helper renumbers them
    assert sorted(s.annotation_id for s in samples) == sorted(a["id"] for a in people)
    for s in samples:
        assert s.keypoints.shape == (k, 3)
        assert s.image_path.is_file()
    img = read_image(samples[0].image_path)
    out = random_top_down(samples[0], np.random.default_rng(0), image=img, schema=ds.schema)
    assert out.image.shape == (256, 192, 3)


def test_fill_missing_is_reused(data_dir, monkeypatch):
    calls = []
    real = eval_coco._fill_missing
    monkeypatch.setattr("posekit.train.datasets._fill_missing", lambda gt: (calls.append(1), real(gt))[1], raising=True)
    CocoKeypoints(data_dir / "fixtures/aic/test_aic.json", data_dir / "fixtures/aic", schema=None)
    assert calls == [1]


def test_schema_mismatch_raises(data_dir):
    with pytest.raises(ValueError, match="14 keypoints"):
        CocoKeypoints(data_dir / "fixtures/aic/test_aic.json", data_dir / "fixtures/aic")


def test_ignore_mask_marks_crowd_region(mini):
    ds, data = mini
    crowd = [a for a in data["annotations"] if a["iscrowd"]]
    assert crowd
    a = crowd[0]
    iid = a["image_id"]
    im = ds.images[iid]
    h, w = im["height"], im["width"]
    mask = ds.ignore_mask(iid)
    assert mask.shape == (h, w)
    # decode the RLE independently (uncompressed counts, column-major)
    counts = a["segmentation"]["counts"]
    flat = np.zeros(h * w, bool)
    pos = 0
    for i, c in enumerate(counts):
        if i % 2:
            flat[pos : pos + c] = True
        pos += c
    crowd_px = flat.reshape(w, h).T
    assert crowd_px.sum() > 100
    assert mask[crowd_px].all()
    # inside the crowd box but outside its region, and away from unlabelled people: not marked
    x, y, bw, bh = a["bbox"]
    others = np.zeros((h, w), bool)
    for b in ds.people[iid]:
        if not b["_crowd"] and not b["_labelled"]:
            bx, by, bbw, bbh = b["bbox"]
            others[math.floor(by) : math.ceil(by + bbh), math.floor(bx) : math.ceil(bx + bbw)] = True
    region = np.zeros((h, w), bool)
    region[math.ceil(y) : math.floor(y + bh), math.ceil(x) : math.floor(x + bw)] = True
    free = region & ~crowd_px & ~others
    if free.any():
        assert not mask[free].any()
    # labelled people are never ignored
    for s in ds.top_down_samples():
        if s.image_id == iid:
            for xk, yk, v in s.keypoints:
                if v > 0 and not crowd_px[int(yk), int(xk)] and not others[int(yk), int(xk)]:
                    assert not mask[int(yk), int(xk)]
    # strided mask: a cell is marked when any of its pixels is
    m4 = ds.ignore_mask(iid, (h, w), stride=4)
    assert m4.shape == (-(-h // 4), -(-w // 4))
    ys, xs = np.nonzero(mask)
    assert m4[ys // 4, xs // 4].all()
    assert m4.sum() * 16 >= mask.sum()


def test_ignore_mask_unlabelled_person_polygon(mini):
    ds, data = mini
    a = next(
        a
        for a in data["annotations"]
        if not a["iscrowd"] and a["num_keypoints"] == 0 and isinstance(a["segmentation"], list)
    )
    im = ds.images[a["image_id"]]
    poly = np.round(np.asarray(a["segmentation"][0]).reshape(-1, 2)).astype(np.int32)
    ref = np.zeros((im["height"], im["width"]), np.uint8)
    cv2.fillPoly(ref, [poly], 1)
    mask = ds.ignore_mask(a["image_id"])
    assert mask[ref > 0].all()


def test_ignore_mask_in_copied_json_polygon_and_box(dev_set, tmp_path):
    data = dev_set.load()
    img = next(im for im in data["images"] if any(a["image_id"] == im["id"] for a in _labelled_people(data)))
    poly = [50.0, 50.0, 120.0, 50.0, 120.0, 90.0, 50.0, 90.0]
    data["annotations"] += [
        {"id": 999998, "image_id": img["id"], "category_id": 1, "iscrowd": 1, "bbox": [50.0, 50.0, 70.0, 40.0],
         "keypoints": [0] * 51, "segmentation": [poly]},
        {"id": 999999, "image_id": img["id"], "category_id": 1, "iscrowd": 1, "bbox": [10.0, 200.0, 30.0, 40.0],
         "keypoints": [0] * 51},
    ]  # fmt: skip
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    ds = CocoKeypoints(path, dev_set.images)
    assert len(ds.top_down_samples()) == len(_labelled_people(dev_set.load()))  # crowds are not samples
    base = CocoKeypoints(dev_set.annotations, dev_set.images).ignore_mask(img["id"])
    mask = ds.ignore_mask(img["id"])
    assert mask[50:91, 50:121].all()  # polygon region
    assert mask[200:240, 10:40].all()  # box fallback (no segmentation)
    added = mask & ~base
    assert added.sum() == 71 * 41 + 30 * 40 - (base[50:91, 50:121].sum() + base[200:240, 10:40].sum())
