"""posekit.eval.fast.evaluate_keypoints against pycocotools, the reference, on every COCO-style file.

Parity means every one of the 10 stats and the full precision (T,R,K,A,M) and recall (T,K,A,M)
arrays within 1e-9 of pycocotools' ``COCOeval`` run on the same (filled, renumbered) ground truth,
and the stats within 1e-9 of :func:`posekit.eval.coco.evaluate_coco`.

Sigmas per file: the COCO-17 constants (the evaluator's default) for 17 keypoints; CrowdPose's own
constants for CrowdPose; otherwise :func:`generic_sigmas`, a fixed non-uniform vector spanning the
COCO range (so a keypoint mix-up in the OKS would show).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from posekit.eval.coco import STAT_NAMES, _fill_missing, _load, evaluate_coco
from posekit.eval.fast import COCO_AREA_RANGES, KeypointEval, evaluate_keypoints

TOL = 1e-9

# Every COCO-style keypoint file (dict with images, annotations carrying keypoints) under
# ../shared/data, with its keypoint count. test_every_coco_keypoint_file_is_covered keeps it complete.
FILES = {
    "coco-val2017-dev/person_keypoints.json": 17,
    "coco-train2017-mini/person_keypoints.json": 17,
    "fixtures/coco/test_coco.json": 17,
    "fixtures/coco/test_coco_wholebody.json": 17,
    "fixtures/coco/test_keypoint_partition_metric.json": 133,
    "fixtures/halpe/test_halpe.json": 136,
    "fixtures/crowdpose/test_crowdpose.json": 14,
    "fixtures/ochuman/test_ochuman.json": 17,
    "fixtures/aic/test_aic.json": 14,
    "fixtures/mpii/test_mpii_trb.json": 40,
    "fixtures/jhmdb/test_jhmdb_sub1.json": 15,
    "fixtures/mhp/test_mhp.json": 16,
    "fixtures/posetrack18/annotations/test_posetrack18_val.json": 17,
    "fixtures/posetrack18/annotations/val/003418_mpii_test.json": 17,
    "fixtures/posetrack18/annotations/val/009473_mpii_test.json": 17,
    "fixtures/posetrack18/annotations/val/012834_mpii_test.json": 17,
    "fixtures/exlpose/test_exlpose.json": 14,
    "fixtures/humanart/test_humanart.json": 17,
    "fixtures/h36m/h36m_coco.json": 17,
    "posetrack-bonn/060470979_posetrack_style.json": 14,
}
# CrowdPose's OKS constants (left/right shoulder, elbow, wrist, hip, knee, ankle, head, neck).
CROWDPOSE_SIGMAS = np.array([.79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89, .79, .79]) / 10.0  # fmt: skip


def generic_sigmas(k: int) -> np.ndarray:
    """Sigmas for layouts without published constants: evenly from 0.025 to 0.107 (the COCO range)."""
    return np.linspace(0.025, 0.107, k)


def sigmas_for(relpath: str, k: int) -> np.ndarray | None:
    if k == 17:
        return None  # the evaluators' default COCO-17 constants
    return CROWDPOSE_SIGMAS if "crowdpose" in relpath else generic_sigmas(k)


def load_gt(data_dir: Path, relpath: str) -> dict[str, Any]:
    gt = json.loads((data_dir / relpath).read_text())
    for a in gt["annotations"]:
        if "bbox" not in a:  # MPII-TRB has none; pycocotools' OKS needs one: the labelled extent
            kp = np.asarray(a["keypoints"], np.float64).reshape(-1, 3)
            xy = kp[kp[:, 2] > 0, :2]
            lo, hi = (xy.min(0), xy.max(0)) if len(xy) else (np.zeros(2), np.zeros(2))
            a["bbox"] = [float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])]
    return gt


def gt_as_results(gt: dict[str, Any]) -> list[dict[str, Any]]:
    """Every evaluable ground-truth person (not crowd, some labelled keypoint) as a detection."""
    return [{"image_id": a["image_id"], "category_id": a["category_id"], "keypoints": list(a["keypoints"]), "score": 1.0}
            for a in gt["annotations"]
            if not a.get("iscrowd", 0) and any(v > 0 for v in a["keypoints"][2::3])]  # fmt: skip


def perturbed_results(gt: dict[str, Any], seed: int) -> list[dict[str, Any]]:
    """Seeded imperfect predictions: jitter, dropped people, duplicates, tied and random scores,
    false positives (some images get more than 20 detections), detections on people-free images."""
    rng = np.random.default_rng(seed)
    out: list[dict[str, Any]] = []
    k = len(gt["annotations"][0]["keypoints"]) // 3
    for a in gt["annotations"]:
        kp = np.asarray(a["keypoints"], np.float64).reshape(-1, 3)
        if a.get("iscrowd", 0) or rng.random() < 0.15:
            continue  # dropped
        x, y, w, h = a.get("bbox", (0, 0, 100, 100))
        scale = np.sqrt(max(float(a.get("area", w * h)), 1.0))
        for _ in range(1 + int(rng.random() < 0.25)):  # duplicates
            p = kp.copy()
            p[:, 0] = np.where(p[:, 2] > 0, p[:, 0], x + rng.random(k) * w)
            p[:, 1] = np.where(p[:, 2] > 0, p[:, 1], y + rng.random(k) * h)
            p[:, :2] += rng.normal(0, rng.choice([0.0, 0.02, 0.06, 0.15]) * scale, (k, 2))
            p[:, 2] = rng.random(k)
            score = float(rng.choice([0.5, 0.9, np.round(rng.random(), 1), rng.random()]))  # ties included
            out.append({"image_id": a["image_id"], "category_id": a["category_id"], "keypoints": p.ravel().tolist(),
                        "score": score})  # fmt: skip
    cat = gt["annotations"][0]["category_id"]
    for im in gt["images"]:
        n = int(rng.poisson(1.5)) + (25 if rng.random() < 0.1 else 0)
        for _ in range(n):  # false positives anywhere in the image
            w, h = im.get("width", 640), im.get("height", 480)
            centre, size = rng.uniform(0, [w, h]), rng.uniform(5, 200)
            p = np.c_[centre + rng.normal(0, size / 4, (k, 2)), rng.random(k)]
            out.append({"image_id": im["id"], "category_id": cat, "keypoints": p.ravel().tolist(),
                        "score": float(np.round(rng.random(), 2))})  # fmt: skip
    rng.shuffle(out)  # result order must not matter beyond pycocotools' stable tie-breaking
    return out


def reference(
    gt: dict[str, Any],
    results: list[dict[str, Any]],
    *,
    image_ids: list[int] | None = None,
    sigmas: Any = None,
    max_dets: int = 20,
    area_ranges: dict[str, tuple[float, float]] | None = None,
) -> COCOeval:
    """pycocotools' COCOeval on the ground truth filled and renumbered as evaluate_coco does."""
    g = _load(gt)
    _fill_missing(g)
    if not results:  # loadRes rejects an empty list: one result of a category that is not evaluated
        other = max(c["id"] for c in g["categories"]) + 1
        k = len(g["annotations"][0]["keypoints"])
        results = [{"image_id": g["images"][0]["id"], "category_id": other, "keypoints": [1.0] * k, "score": 1.0}]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = g
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))
        ev = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        if image_ids is not None:
            ev.params.imgIds = sorted(image_ids)
        if sigmas is not None:
            ev.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        ev.params.maxDets = [max_dets]
        if area_ranges is not None:
            ev.params.areaRng = [list(v) for v in area_ranges.values()]
            ev.params.areaRngLbl = list(area_ranges)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def assert_parity(fast: KeypointEval, ev: COCOeval, *, stats: bool = True) -> None:
    for key, got in (("precision", fast.precision), ("recall", fast.recall), ("scores", fast.scores)):
        want = ev.eval[key]
        assert got.shape == want.shape, key
        np.testing.assert_allclose(got, want, rtol=0, atol=TOL, err_msg=key)
    if stats:
        assert tuple(fast.stats) == STAT_NAMES
        np.testing.assert_allclose(list(fast.stats.values()), ev.stats, rtol=0, atol=TOL)


def test_every_coco_keypoint_file_is_covered(data_dir: Path):
    found = {}
    for path in sorted(data_dir.rglob("*.json")):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and "images" in data and any("keypoints" in a for a in data.get("annotations", [])):
            found[path.relative_to(data_dir).as_posix()] = len(data["annotations"][0]["keypoints"]) // 3
    assert found == FILES


@pytest.mark.parametrize("relpath", FILES)
def test_ground_truth_as_results(data_dir: Path, relpath: str):
    gt = load_gt(data_dir, relpath)
    sig = sigmas_for(relpath, FILES[relpath])
    results = gt_as_results(gt)
    fast = evaluate_keypoints(gt, results, sigmas=sig)
    assert_parity(fast, reference(gt, results, sigmas=sig))
    wrapped = evaluate_coco(gt, results, sigmas=sig)
    np.testing.assert_allclose(list(fast.stats.values()), list(wrapped.values()), rtol=0, atol=TOL)
    defined = {k: v for k, v in fast.stats.items() if v != -1}
    assert {"AP", "AR"} <= set(defined)
    assert defined == pytest.approx(dict.fromkeys(defined, 1.0), abs=1e-12)
    # every matched joint is perfect, and every labelled joint of a regular person is counted
    labelled = np.array([np.asarray(a["keypoints"]).reshape(-1, 3)[:, 2] > 0 for a in gt["annotations"]
                         if not a.get("iscrowd", 0) and a.get("num_keypoints", 1) != 0]).sum(0)  # fmt: skip
    np.testing.assert_array_equal(fast.keypoint_count, labelled)
    np.testing.assert_allclose(fast.keypoint_similarity[labelled > 0], 1.0, rtol=0, atol=1e-12)
    assert np.isnan(fast.keypoint_similarity[labelled == 0]).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("relpath", FILES)
def test_perturbed_results(data_dir: Path, relpath: str, seed: int):
    gt = load_gt(data_dir, relpath)
    sig = sigmas_for(relpath, FILES[relpath])
    results = perturbed_results(gt, seed)
    per_image = Counter(r["image_id"] for r in results)
    fast = evaluate_keypoints(gt, results, sigmas=sig)
    assert_parity(fast, reference(gt, results, sigmas=sig))
    wrapped = evaluate_coco(gt, results, sigmas=sig)
    np.testing.assert_allclose(list(fast.stats.values()), list(wrapped.values()), rtol=0, atol=TOL)
    assert 0.0 <= fast.stats["AP"] <= 1.0
    if len(gt_as_results(gt)) >= 10:  # enough people that the perturbations must cost something
        assert 0.0 < fast.stats["AP"] < 1.0
    if seed == 0 and relpath.startswith("coco-val2017-dev"):
        assert max(per_image.values()) > 20  # the per-image cap is exercised


def test_options_against_pycocotools(dev_set):
    """image subset, another max_dets, four area ranges, ties, unordered results: same arrays."""
    gt = dev_set.load()
    results = perturbed_results(gt, 7)
    ids = sorted({im["id"] for im in gt["images"]})[::2]
    ranges = {"all": (0, 1e10), "small": (0, 32**2), "medium": (32**2, 96**2), "large": (96**2, 1e10)}
    fast = evaluate_keypoints(gt, results, image_ids=ids, max_dets=5, area_ranges=ranges)
    ev = reference(gt, results, image_ids=ids, max_dets=5, area_ranges=ranges)
    assert fast.precision.shape == (10, 101, 1, 4, 1)
    assert_parity(fast, ev, stats=False)  # pycocotools' summarize reads maxDets=20 only
    p = fast.precision[:, :, :, 0, 0]
    assert fast.stats["AP"] == pytest.approx(float(np.mean(p[p > -1])), abs=1e-15)
    fast20 = evaluate_keypoints(gt, results, image_ids=ids)
    assert_parity(fast20, reference(gt, results, image_ids=ids))
    assert fast.stats["AR"] < fast20.stats["AR"]  # fewer detections per image recall less


def test_no_results_and_images_without_anything(dev_set):
    gt = dev_set.load()
    gt["images"].append({"id": 1, "file_name": "empty.jpg", "width": 10, "height": 10})  # no GT, no detection
    fast = evaluate_keypoints(gt, [])
    assert_parity(fast, reference(gt, []))
    assert fast.stats == dict.fromkeys(STAT_NAMES, 0.0)  # as evaluate_coco says: ground truth exists
    assert np.isnan(fast.keypoint_similarity).all()
    only_empty = evaluate_keypoints(gt, [], image_ids=[1])
    assert only_empty.stats == dict.fromkeys(STAT_NAMES, -1.0)  # nothing to evaluate: undefined
    assert_parity(only_empty, reference(gt, [], image_ids=[1]))
    people_free = [im["id"] for im in gt["images"] if not any(a["image_id"] == im["id"] for a in gt["annotations"])]
    results = gt_as_results(gt)
    results += [{**r, "image_id": people_free[i % len(people_free)], "score": 0.2} for i, r in enumerate(results[:20])]
    fast = evaluate_keypoints(gt, results)
    assert_parity(fast, reference(gt, results))
    assert fast.stats["AR"] == 1.0
    assert fast.stats["AP"] == pytest.approx(1.0, abs=1e-12)  # the false positives score below every true one


def test_crowd_and_zero_keypoint_ground_truth(dev_set):
    """Detections on crowd regions (any number) and on unlabelled people (one each) are ignored."""
    gt = dev_set.load()
    crowd = [a for a in gt["annotations"] if a["iscrowd"]]
    empty = [a for a in gt["annotations"] if not a["iscrowd"] and a["num_keypoints"] == 0]
    assert crowd
    assert empty
    rng = np.random.default_rng(3)
    results = [{**r, "score": 0.9} for r in gt_as_results(gt)]
    extra = []
    for a, n in [(a, 3) for a in crowd] + [(a, 1) for a in empty]:
        x, y, w, h = a["bbox"]
        for _ in range(n):  # keypoints inside the box: the box-distance OKS is exactly 1
            p = np.c_[x + rng.random(17) * w, y + rng.random(17) * h, np.ones(17)]
            extra.append({"image_id": a["image_id"], "category_id": 1, "keypoints": p.ravel().tolist(), "score": 1.0})
    fast = evaluate_keypoints(gt, results + extra)
    assert_parity(fast, reference(gt, results + extra))
    # the extras outscore every true detection, so one counted false positive would cost AP
    assert fast.stats == pytest.approx(dict.fromkeys(STAT_NAMES, 1.0), abs=1e-12)


def test_unlabelled_person_absorbs_one_detection_crowd_any():
    kp = np.c_[np.linspace(110, 190, 17), np.linspace(110, 290, 17), np.full(17, 2.0)]
    gt = {
        "images": [{"id": 1, "width": 1000, "height": 1000}],
        "categories": [{"id": 1, "name": "person"}],
        "annotations": [
            {"id": 0, "image_id": 1, "category_id": 1, "keypoints": kp.ravel().tolist(),
             "bbox": [100, 100, 100, 200], "area": 20000.0, "iscrowd": 0, "num_keypoints": 17},
            {"id": 1, "image_id": 1, "category_id": 1, "keypoints": [0] * 51,
             "bbox": [500, 100, 50, 100], "area": 5000.0, "iscrowd": 0, "num_keypoints": 0},
            {"id": 2, "image_id": 1, "category_id": 1, "keypoints": [0] * 51,
             "bbox": [700, 600, 200, 200], "area": 40000.0, "iscrowd": 1, "num_keypoints": 0},
        ],
    }  # fmt: skip
    rng = np.random.default_rng(0)

    def inside(x: float, y: float, w: float, h: float, score: float) -> dict[str, Any]:
        p = np.c_[x + rng.random(17) * w, y + rng.random(17) * h, np.ones(17)]
        return {"image_id": 1, "category_id": 1, "keypoints": p.ravel().tolist(), "score": score}

    results = [{"image_id": 1, "category_id": 1, "keypoints": kp.ravel().tolist(), "score": 0.5}]
    results += [inside(700, 600, 200, 200, 0.9) for _ in range(3)]  # crowd: all three ignored
    results += [inside(500, 100, 50, 100, 0.9) for _ in range(2)]  # unlabelled: the second is a miss
    fast = evaluate_keypoints(gt, results)
    assert_parity(fast, reference(gt, results))
    # all: one false positive above the true positive -> precision 1/2 at recall 1
    assert fast.stats["AP"] == pytest.approx(0.5, abs=1e-12)
    assert fast.stats["AR"] == 1.0
    # large: that false positive is smaller than the range, unmatched, hence ignored
    assert fast.stats["APl"] == pytest.approx(1.0, abs=1e-12)  # tp / (tp + fp + eps)
    assert fast.stats["APm"] == fast.stats["ARm"] == -1.0  # no medium person


def test_annotation_id_zero(data_dir: Path):
    relpath = "fixtures/exlpose/test_exlpose.json"
    gt = load_gt(data_dir, relpath)
    assert min(a["id"] for a in gt["annotations"]) == 0
    results = gt_as_results(gt)
    fast = evaluate_keypoints(gt, results, sigmas=generic_sigmas(14))
    assert fast.stats["AP"] == pytest.approx(1.0, abs=1e-12)
    assert_parity(fast, reference(gt, results, sigmas=generic_sigmas(14)))


def test_result_bbox_sets_detection_area(dev_set):
    """As loadRes: when the first result has a bbox, every detection's area is its bbox's."""
    gt = dev_set.load()
    rng = np.random.default_rng(5)
    results = perturbed_results(gt, 5)
    for r in results:
        r["bbox"] = [0.0, 0.0, float(rng.uniform(5, 200)), float(rng.uniform(5, 200))]
    fast = evaluate_keypoints(gt, results)
    assert_parity(fast, reference(gt, results))
    plain = evaluate_keypoints(gt, [{k: v for k, v in r.items() if k != "bbox"} for r in results])
    assert not np.array_equal(fast.precision, plain.precision)  # the area rule did change something


def test_several_categories(dev_set):
    gt = dev_set.load()
    gt["categories"].append({**gt["categories"][0], "id": 7, "name": "other person"})
    ids = sorted({a["image_id"] for a in gt["annotations"]})
    for a in gt["annotations"]:
        if a["image_id"] in ids[::3]:
            a["category_id"] = 7
    results = perturbed_results(gt, 11)
    for r in results:
        if r["image_id"] in ids[::3] and len(r["keypoints"]) and r["score"] < 0.8:
            r["category_id"] = 7  # most of them, not all: the rest are wrong-category misses
    results.append({**results[0], "category_id": 99})  # not a ground-truth category: dropped
    fast = evaluate_keypoints(gt, results)
    assert fast.category_ids == (1, 7)
    assert fast.precision.shape == (10, 101, 2, 3, 1)
    assert_parity(fast, reference(gt, results))


def test_per_keypoint_similarity_finds_the_bad_joint(dev_set):
    gt = dev_set.load()
    results = gt_as_results(gt)
    for r in results:
        kp = np.asarray(r["keypoints"], np.float64).reshape(17, 3)
        kp[9, 0] += 4.0  # left wrist 4 px off, everything else exact
        r["keypoints"] = kp.ravel().tolist()
    fast = evaluate_keypoints(gt, results)
    assert_parity(fast, reference(gt, results))
    sim = fast.keypoint_similarity
    assert sim[9] < 1.0
    np.testing.assert_allclose(np.delete(sim, 9), 1.0, rtol=0, atol=1e-12)


def test_inputs_unchanged_and_path_input(dev_set):
    gt = dev_set.load()
    results = perturbed_results(gt, 4)
    before = json.dumps(gt, sort_keys=True), json.dumps(results, sort_keys=True)
    from_dict = evaluate_keypoints(gt, results)
    assert (json.dumps(gt, sort_keys=True), json.dumps(results, sort_keys=True)) == before
    from_path = evaluate_keypoints(dev_set.annotations, results)
    assert from_path.stats == from_dict.stats
    np.testing.assert_array_equal(from_path.precision, from_dict.precision)
    assert from_dict.area_labels == tuple(COCO_AREA_RANGES)


def test_errors(data_dir: Path, dev_set):
    aic = load_gt(data_dir, "fixtures/aic/test_aic.json")
    with pytest.raises(ValueError, match="broadcast"):  # 17 COCO sigmas for 14 keypoints
        evaluate_keypoints(aic, gt_as_results(aic))
    gt = dev_set.load()
    stray = [{**gt_as_results(gt)[0], "image_id": -5}]
    with pytest.raises(ValueError, match="not in the ground truth"):
        evaluate_keypoints(gt, stray)
