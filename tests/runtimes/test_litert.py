"""The LiteRT runtime on the real BlazePose landmark model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import posekit.models.blazepose  # noqa: F401  (registers the BlazePose weights)
from posekit.runtimes import Runtime, load_runtime
from posekit.runtimes.litert import LiteRT
from posekit.weights import fetch

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def landmark_path() -> Path:
    return fetch("blazepose-landmark-full", progress=False)


@pytest.fixture(scope="module")
def runtime(landmark_path: Path) -> LiteRT:
    return LiteRT(landmark_path, threads=1)


def _crop(seed: int) -> np.ndarray:
    """A smooth random 256x256 RGB image in [0, 1] (batch of one)."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 1, (1, 8, 8, 3)).astype(np.float32)
    return np.repeat(np.repeat(small, 32, axis=1), 32, axis=2)


def test_loads_through_the_registry(landmark_path: Path) -> None:
    rt = load_runtime("litert", landmark_path, model_format="tflite")
    assert isinstance(rt, Runtime)
    assert rt.name == "litert"
    assert rt.input_shape == (1, 256, 256, 3)  # type: ignore[attr-defined]


def test_outputs_in_natural_name_order(runtime: LiteRT) -> None:
    out = runtime.run(_crop(0))
    shapes = [o.shape for o in out]
    # landmarks, pose flag, segmentation, heatmaps, world landmarks
    assert shapes == [(1, 195), (1, 1), (1, 256, 256, 1), (1, 64, 64, 39), (1, 117)]
    assert all(o.dtype == np.float32 for o in out)
    assert all(np.isfinite(o).all() for o in out)


def test_batch_of_two_equals_two_single_runs(runtime: LiteRT) -> None:
    a = _crop(1)
    single = runtime.run(a)
    batch = runtime.run(np.concatenate([a, a]))
    assert len(batch) == len(single)
    for s, b in zip(single, batch, strict=True):
        assert b.shape == (2, *s.shape[1:])
        np.testing.assert_allclose(b[0], s[0], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(b[1], s[0], rtol=1e-5, atol=1e-5)


def test_batch_items_are_not_mixed_up(runtime: LiteRT) -> None:
    a, b = _crop(2), _crop(3)
    batch = runtime.run(np.concatenate([a, b]))[0]
    np.testing.assert_allclose(batch[0], runtime.run(a)[0][0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(batch[1], runtime.run(b)[0][0], rtol=1e-5, atol=1e-5)
    assert not np.allclose(batch[0], batch[1])


def test_outputs_are_copies(runtime: LiteRT) -> None:
    first = runtime.run(_crop(4))[0]
    kept = first.copy()
    runtime.run(_crop(5))
    np.testing.assert_array_equal(first, kept)


def test_wrong_input_shape_names_the_expected_shape(runtime: LiteRT) -> None:
    with pytest.raises(ValueError, match=r"\(N, 256, 256, 3\)"):
        runtime.run(np.zeros((1, 224, 224, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(N, 256, 256, 3\)"):
        runtime.run(np.zeros((256, 256, 3), np.float32))


def test_selected_outputs_and_unknown_output_names(landmark_path: Path) -> None:
    rt = LiteRT(landmark_path, outputs=("Identity_4", "Identity"))
    world, landmarks = rt.run(_crop(6))
    assert world.shape == (1, 117)
    assert landmarks.shape == (1, 195)
    with pytest.raises(ValueError, match="no_such_output"):
        LiteRT(landmark_path, outputs=("Identity", "no_such_output"))
    with pytest.raises(ValueError, match="tflite"):
        LiteRT(landmark_path, model_format="onnx")
