"""posekit.bench: composed crowds of real people, pipeline timing and the speed report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

import posekit
from posekit.bench import bench_pipeline, compose_crowd, person_pool, speed_vs_people, write_report

CANVAS = (640, 360)


def _labelled(ann: dict[str, Any]) -> np.ndarray:
    kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
    return kp[kp[:, 2] > 0, :2]


def _overlap(a: list[float], b: list[float]) -> float:
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(0.0, w) * max(0.0, h)


@pytest.mark.parametrize("n", [1, 3, 7])
def test_compose_crowd_pastes_exactly_n_people_where_their_keypoints_are(data_dir: Path, n: int) -> None:
    image, anns = compose_crowd(n, data_dir=data_dir, seed=3, canvas=CANVAS)
    background, none = compose_crowd(0, data_dir=data_dir, seed=3, canvas=CANVAS)
    assert image.shape == (CANVAS[1], CANVAS[0], 3)
    assert image.dtype == np.uint8
    assert none == []
    assert len(anns) == n
    changed = np.abs(image.astype(np.int16) - background.astype(np.int16)).max(axis=2) > 0
    on_person = 0
    total = 0
    for ann in anns:
        assert ann["num_keypoints"] >= 12
        assert ann["num_keypoints"] == len(_labelled(ann))
        x, y, w, h = ann["bbox"]
        assert x >= 0
        assert y >= 0
        assert x + w <= CANVAS[0]
        assert y + h <= CANVAS[1]
        xy = _labelled(ann)
        assert (xy[:, 0] >= 0).all()
        assert (xy[:, 0] < CANVAS[0]).all()
        assert (xy[:, 1] >= 0).all()
        assert (xy[:, 1] < CANVAS[1]).all()
        for px, py in xy.astype(int):  # pasted pixels in a 5x5 neighbourhood of each keypoint
            total += 1
            on_person += bool(changed[max(0, py - 2) : py + 3, max(0, px - 2) : px + 3].any())
        # cut out along the polygons: part of the box is the person, part is still background
        box = changed[int(y) : int(y + h), int(x) : int(x + w)]
        assert 0.15 < box.mean() < 0.97
        assert ann["area"] > 0.1 * w * h
    assert on_person >= 0.9 * total
    # nothing outside the people's boxes changed, and the boxes do not overlap
    outside = changed.copy()
    for ann in anns:
        x, y, w, h = ann["bbox"]
        outside[max(0, int(y) - 1) : int(y + h) + 2, max(0, int(x) - 1) : int(x + w) + 2] = False
    assert not outside.any()
    for i, a in enumerate(anns):
        for b in anns[i + 1 :]:
            assert _overlap(a["bbox"], b["bbox"]) == 0


def test_compose_crowd_keeps_each_person_shape(data_dir: Path) -> None:
    """Pasted keypoints are the source keypoints scaled and shifted: same shape, one scale."""
    _, anns = compose_crowd(4, data_dir=data_dir, seed=1, canvas=CANVAS)
    heights = [a["bbox"][3] for a in anns]
    assert max(heights) - min(heights) <= 1  # one common height
    for ann in anns:
        src = ann["source"]
        data = json.loads((data_dir / src["set"] / "person_keypoints.json").read_text())
        orig = next(a for a in data["annotations"] if a["id"] == src["annotation_id"])
        kp0 = np.asarray(orig["keypoints"], dtype=np.float64).reshape(-1, 3)
        kp1 = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
        assert ((kp0[:, 2] > 0) == (kp1[:, 2] > 0)).all()
        a, b = kp0[kp0[:, 2] > 0, :2], kp1[kp1[:, 2] > 0, :2]
        scale = (b.max(0) - b.min(0)) / (a.max(0) - a.min(0))
        assert abs(scale[0] - scale[1]) < 0.03 * scale.mean()  # no distortion
        np.testing.assert_allclose((a - a.mean(0)) * scale.mean(), b - b.mean(0), atol=1.0)


def test_compose_crowd_is_deterministic_per_seed(data_dir: Path) -> None:
    img1, anns1 = compose_crowd(5, data_dir=data_dir, seed=11, canvas=CANVAS)
    img2, anns2 = compose_crowd(5, data_dir=data_dir, seed=11, canvas=CANVAS)
    img3, anns3 = compose_crowd(5, data_dir=data_dir, seed=12, canvas=CANVAS)
    np.testing.assert_array_equal(img1, img2)
    assert anns1 == anns2
    assert not np.array_equal(img1, img3)
    assert [a["source"] for a in anns1] != [a["source"] for a in anns3]


def test_compose_crowd_uses_distinct_people_while_the_pool_lasts(data_dir: Path) -> None:
    people, backgrounds = person_pool(data_dir)
    assert len(people) >= 16
    assert backgrounds
    _, anns = compose_crowd(16, data_dir=data_dir, seed=0, canvas=(1280, 720))
    sources = {(a["source"]["set"], a["source"]["annotation_id"]) for a in anns}
    assert len(sources) == 16
    with pytest.raises(ValueError, match="n must be"):
        compose_crowd(-1, data_dir=data_dir, seed=0)


def _fake_result(peer: dict[str, Any]) -> dict[str, Any]:
    def entry(ms: float, found: list[int], stages: dict[str, float]) -> dict[str, Any]:
        return {
            "end_to_end": {"median_ms": ms, "mean_ms": ms + 1, "min_ms": ms - 1},
            "images_per_s": 1000 / ms,
            "stages": {k: {"median_ms": v, "mean_ms": v, "min_ms": v} for k, v in stages.items()},
            "load": {"median_ms": 5.0, "mean_ms": 5.0, "min_ms": 4.0},
            "people_found": found,
        }

    return {
        "settings": {
            "counts": [1, 4],
            "canvas": [1280, 720],
            "seed": 0,
            "images_per_count": 1,
            "repeats": 3,
            "warmup": 1,
        },
        "environment": {"cpu_count": 2},
        "pipelines": {
            "bottom": {
                "kind": "BottomUp",
                "by_count": {
                    "1": entry(100.0, [1], {"network": 95.0, "decode": 5.0}),
                    "4": entry(104.0, [4], {"network": 95.0, "decode": 9.0}),
                },
            },
            "top": {
                "kind": "TopDown",
                "by_count": {
                    "1": entry(50.0, [1], {"detect": 20.0, "network": 29.0, "nms": 0.1}),
                    "4": entry(140.0, [3], {"detect": 20.0, "network": 116.0, "nms": 0.2}),
                },
            },
            "peer": peer,
        },
    }


def test_write_report_writes_json_table_and_png(tmp_path: Path) -> None:
    result = _fake_result({"kind": "peer", "status": "not run", "note": "build it with `make peer`"})
    paths = write_report(result, tmp_path / "out")
    assert {p.name for p in paths.values()} == {"speed.json", "speed.md", "speed.png"}
    data = json.loads(paths["json"].read_text())
    assert data["pipelines"]["top"]["by_count"]["4"]["people_found"] == [3]
    assert data["ratios_end_to_end"]["median_ms"]["top"] == {"1": 1.0, "4": 2.8}
    assert data["ratios_end_to_end"]["median_ms"]["bottom"]["4"] == 1.04
    md = paths["md"].read_text()
    rows = [line for line in md.splitlines() if line.startswith("| 1 |") or line.startswith("| 4 |")]
    assert len(rows) == 4  # summary table and stage table
    assert any("140.0 (×2.80)" in r and "| 3 |" in r and "116.0" in r for r in rows)
    assert any("104.0 (×1.04)" in r for r in rows)
    assert "not run" in md
    assert "make peer" in md
    assert "top nms" not in md  # under 5 % of the time: JSON only
    png = cv2.imread(str(paths["png"]))
    assert png is not None
    assert png.shape[2] == 3
    assert (png < 200).any()
    assert (png == 255).mean() > 0.5


def test_write_report_overwrites_atomically(tmp_path: Path) -> None:
    result = _fake_result({"kind": "peer", "status": "not run"})
    write_report(result, tmp_path)
    result["pipelines"]["top"]["by_count"]["4"]["end_to_end"]["median_ms"] = 200.0
    paths = write_report(result, tmp_path)
    assert "200.0 (×4.00)" in paths["md"].read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["speed.json", "speed.md", "speed.png"]  # no temp files


class _Counter:
    """A stand-in pipeline: returns one 'person' per call and reports two stages."""

    def __init__(self) -> None:
        self.calls = 0
        self.last_timings: Any = None

    def __call__(self, image: np.ndarray) -> list[int]:
        from posekit.pipeline import Timings

        self.calls += 1
        self.last_timings = Timings({"a": 0.001, "b": 0.002})
        return [int(image.mean() > -1)]


def test_speed_vs_people_runs_every_model_on_every_count(data_dir: Path) -> None:
    models = {"x": _Counter(), "y": _Counter()}
    result = speed_vs_people(models, (1, 3), data_dir=data_dir, canvas=CANVAS, repeats=2, warmup=1, images_per_count=2)
    assert models["x"].calls == models["y"].calls == 2 * 2 * 3  # counts x images x (warm-up + repeats)
    assert result["crowds"]["3"]["people"] == [3, 3]
    for p in result["pipelines"].values():
        assert set(p["by_count"]) == {"1", "3"}
        assert set(p["by_count"]["3"]["stages"]) == {"a", "b"}
        assert p["by_count"]["3"]["stages"]["b"]["median_ms"] == pytest.approx(2.0)
        assert p["by_count"]["1"]["people_found"] == [1, 1]


@pytest.mark.network
@pytest.mark.parametrize(
    ("name", "stages"),
    [("openpose-mobilenet-thin", {"network", "decode"}), ("blazepose", {"detect", "crop", "network", "decode", "nms"})],
)
def test_bench_pipeline_reports_every_stage_of_a_real_model(data_dir: Path, name: str, stages: set[str]) -> None:
    model = posekit.load(name, threads=1, progress=False)
    image, _anns = compose_crowd(2, data_dir=data_dir, seed=0, canvas=(320, 200))
    r = bench_pipeline(model, [image], repeats=2, warmup=1)
    assert set(r["stages"]) == stages
    assert r["images"] == 1
    assert len(r["people_found"]) == 1
    e2e = r["end_to_end"]
    assert 0 < e2e["min_ms"] <= e2e["median_ms"]
    # every call's stages lie inside that call, so the mean stage times add up to at most the mean call
    assert sum(s["mean_ms"] for s in r["stages"].values()) <= e2e["mean_ms"] * 1.001
    assert r["images_per_s"] == pytest.approx(1000 / e2e["mean_ms"], rel=1e-2)
    assert r["load"]["median_ms"] > 0
    with pytest.raises(ValueError, match="repeats"):
        bench_pipeline(model, [image], repeats=0, warmup=0)
