"""COCO keypoint evaluation on real annotations (../shared/data)."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from posekit.eval import STAT_NAMES, evaluate_coco
from posekit.poses import Poses
from posekit.schemas import COCO_17


def gt_as_results(gt: dict[str, Any]) -> list[dict[str, Any]]:
    """Every evaluable ground-truth person (not crowd, some labelled keypoint) as a detection."""
    out = []
    for ann in gt["annotations"]:
        if ann.get("iscrowd", 0) or not any(v > 0 for v in ann["keypoints"][2::3]):
            continue
        out.append({"image_id": ann["image_id"], "category_id": ann["category_id"],
                    "keypoints": list(ann["keypoints"]), "score": 1.0})  # fmt: skip
    return out


@pytest.fixture(scope="module")
def dev_gt(dev_set) -> dict[str, Any]:
    return dev_set.load()


def test_dev_set_shape(dev_gt: dict[str, Any]):
    # the counts DATA.md promises; the tests below rely on them
    assert len(dev_gt["images"]) == 77
    assert len(gt_as_results(dev_gt)) == 91


def test_ground_truth_as_results_is_perfect(dev_gt: dict[str, Any], dev_set):
    stats = evaluate_coco(dev_set.annotations, gt_as_results(dev_gt))  # from the path
    assert tuple(stats) == STAT_NAMES
    assert stats["AP"] == pytest.approx(1.0)
    assert stats["AP50"] == pytest.approx(1.0)
    assert stats["AP75"] == pytest.approx(1.0)
    assert stats["AR"] == pytest.approx(1.0)


def test_ground_truth_through_poses_to_coco_is_perfect(dev_gt: dict[str, Any]):
    """The export path a model uses: Poses -> to_coco -> evaluate."""
    by_image: dict[int, list[np.ndarray]] = {}
    for r in gt_as_results(dev_gt):
        by_image.setdefault(r["image_id"], []).append(np.asarray(r["keypoints"], np.float32).reshape(17, 3))
    results = []
    for image_id, people in by_image.items():
        trip = np.stack(people)
        found = trip[..., 2] > 0
        kp = np.where(found[..., None], trip[..., :2], np.nan)
        poses = Poses(kp, found.astype(np.float32), np.ones(len(people)), COCO_17)
        results += poses.to_coco(image_id)
    assert len(results) == 91
    assert evaluate_coco(dev_gt, results)["AP"] == pytest.approx(1.0)


def test_worse_results_score_lower(dev_gt: dict[str, Any]):
    rng = np.random.default_rng(0)
    results = gt_as_results(dev_gt)
    noisy = copy.deepcopy(results)
    for r in noisy:
        kp = np.asarray(r["keypoints"], np.float64).reshape(-1, 3)
        kp[:, :2] += rng.normal(0, 8, (len(kp), 2))
        r["keypoints"] = kp.ravel().tolist()
    ap_noisy = evaluate_coco(dev_gt, noisy)["AP"]
    assert 0.0 < ap_noisy < 0.95
    ap_half = evaluate_coco(dev_gt, results[::2])["AP"]  # every other person missed
    assert ap_half < 0.7


def test_no_results_and_image_subsets(dev_gt: dict[str, Any]):
    assert evaluate_coco(dev_gt, []) == dict.fromkeys(STAT_NAMES, 0.0)
    results = gt_as_results(dev_gt)
    one_image = results[0]["image_id"]
    only = [r for r in results if r["image_id"] == one_image]
    # the other images' people count as misses unless evaluation is restricted to this image
    assert evaluate_coco(dev_gt, only)["AR"] < 0.5
    assert evaluate_coco(dev_gt, only, image_ids=[one_image])["AP"] == pytest.approx(1.0)


def test_ground_truth_is_not_modified(dev_gt: dict[str, Any]):
    before = json.dumps(dev_gt, sort_keys=True)
    results = gt_as_results(dev_gt)
    results_before = json.dumps(results, sort_keys=True)
    evaluate_coco(dev_gt, results)
    assert json.dumps(dev_gt, sort_keys=True) == before
    assert json.dumps(results, sort_keys=True) == results_before  # loadRes adds fields to a copy only


# --- ground truth that lacks fields pycocotools needs -------------------------------------------


@pytest.mark.parametrize(
    ("relpath", "num_keypoints", "lacking"),
    [
        ("fixtures/aic/test_aic.json", 14, {"area", "iscrowd"}),
        ("fixtures/crowdpose/test_crowdpose.json", 14, {"area"}),
        ("fixtures/jhmdb/test_jhmdb_sub1.json", 15, {"area", "iscrowd", "num_keypoints"}),
        ("fixtures/posetrack18/annotations/test_posetrack18_val.json", 17, {"area"}),
    ],
)
def test_missing_fields_are_filled(data_dir: Path, relpath: str, num_keypoints: int, lacking: set[str],
                                   caplog: pytest.LogCaptureFixture):  # fmt: skip
    path = data_dir / relpath
    gt = json.loads(path.read_text())
    present = set.intersection(*(set(a) for a in gt["annotations"]))
    assert not (lacking & present), "the fixture should lack these fields (that is the point of the test)"
    results = gt_as_results(gt)
    assert results
    with caplog.at_level(logging.WARNING, logger="posekit.eval.coco"):
        stats = evaluate_coco(path, results, sigmas=[0.05] * num_keypoints)
    assert stats["AP"] == pytest.approx(1.0)
    assert stats["AR"] == pytest.approx(1.0)
    warned = " ".join(r.getMessage() for r in caplog.records)
    for field in lacking:
        assert field in warned


def test_sigmas_must_match_keypoints(data_dir: Path):
    path = data_dir / "fixtures/aic/test_aic.json"
    gt = json.loads(path.read_text())
    with pytest.raises(ValueError, match="broadcast"):  # 17 COCO sigmas cannot apply to 14 keypoints
        evaluate_coco(gt, gt_as_results(gt))


def test_annotation_id_zero(data_dir: Path):
    path = data_dir / "fixtures/exlpose/test_exlpose.json"
    gt = json.loads(path.read_text())
    assert min(a["id"] for a in gt["annotations"]) == 0
    assert evaluate_coco(gt, gt_as_results(gt), sigmas=[0.05] * 14)["AP"] == pytest.approx(1.0)
