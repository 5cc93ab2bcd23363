"""The onnxruntime runtime on the ONNX export of the MobileNet-thin OpenPose network."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import pytest

import posekit
from posekit.models.openpose import MOBILENET_THIN, OpenPoseNet, network_input_size
from posekit.runtimes import RUNTIMES, Runtime, load_runtime
from posekit.weights import fetch

if TYPE_CHECKING:
    from tests.conftest import CocoSet

pytestmark = pytest.mark.network


def _require(name: str) -> ModuleType:
    """Import ``name``; skip when it is absent, except under CI (where it must be installed)."""
    if os.environ.get("CI", "").strip().lower() == "true":
        return importlib.import_module(name)
    return pytest.importorskip(name)


@pytest.fixture(scope="module")
def torch_mod() -> ModuleType:
    _require("onnxruntime")
    _require("onnx")
    torch = _require("torch")
    torch.set_num_threads(2)
    return torch


@pytest.fixture(scope="module")
def model(torch_mod: ModuleType):  # type: ignore[no-untyped-def]
    from posekit.models.torch.openpose_mobilenet import OpenPoseMobileNetThin

    return OpenPoseMobileNetThin.from_graph(fetch(MOBILENET_THIN.weights, progress=False))


@pytest.fixture(scope="module")
def onnx_path(model, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    from posekit.models.torch.openpose_mobilenet import export_onnx

    return export_onnx(tmp_path_factory.mktemp("onnx") / "openpose-mobilenet-thin.onnx", model)


@pytest.fixture(scope="module")
def image(dev_set: CocoSet) -> np.ndarray:
    """The first dev image (by file name) with a well-labelled person."""
    gt = dev_set.load()
    ids = {a["image_id"] for a in gt["annotations"] if a.get("num_keypoints", 0) >= 10}
    first = min((im for im in gt["images"] if im["id"] in ids), key=lambda im: im["file_name"])
    return posekit.read_image(dev_set.image_path(first))


def test_registered_and_loads_by_name(onnx_path: Path) -> None:
    from posekit.runtimes.onnxruntime import OnnxRuntime

    assert RUNTIMES["onnxruntime"] == "posekit.runtimes.onnxruntime:OnnxRuntime"
    rt = load_runtime("onnxruntime", onnx_path, model_format="onnx", outputs=[MOBILENET_THIN.output], threads=2)
    assert isinstance(rt, OnnxRuntime)
    assert isinstance(rt, Runtime)
    assert rt.name == "onnxruntime"
    assert rt.outputs == [MOBILENET_THIN.output]
    assert rt.session.get_session_options().intra_op_num_threads == 2
    assert rt.metadata["posekit.schema"] == "openpose18"
    assert rt.metadata["posekit.stride"] == "8"


def test_rejects_other_formats_and_unknown_outputs(onnx_path: Path) -> None:
    with pytest.raises(ValueError, match="onnx"):
        load_runtime("onnxruntime", onnx_path, model_format="tensorflow")
    with pytest.raises(ValueError, match="no outputs"):
        load_runtime("onnxruntime", onnx_path, model_format="onnx", outputs=["nope"])


def test_matches_pytorch_on_a_real_image(torch_mod: ModuleType, model, onnx_path: Path, image: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    torch = torch_mod
    rt = load_runtime("onnxruntime", onnx_path, model_format="onnx", threads=2)
    net = OpenPoseNet(MOBILENET_THIN, runtime=rt)
    size = network_input_size(image.shape[:2], 432)
    x = net.preprocess(image, size)
    (out,) = rt.run(x)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert out.dtype == np.float32
    assert out.shape == ref.shape == (1, 57, 54, size[0] // 8)
    assert np.abs(out - ref).max() < 1e-4
    assert ref[0, :18].max() > 0.5  # a person is there: the comparison is not of near-zero maps
    heat, pafs = net(image, size)  # OpenPoseNet drives the runtime through the protocol
    np.testing.assert_array_equal(heat, out[0, :18])
    assert pafs.shape == (19, 54, size[0] // 8, 2)


def test_dynamic_batch_and_size(torch_mod: ModuleType, model, onnx_path: Path, image: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    torch = torch_mod
    rt = load_runtime("onnxruntime", onnx_path, model_format="onnx", threads=2)
    net = OpenPoseNet(MOBILENET_THIN, runtime=rt)
    x = np.concatenate([net.preprocess(image, (432, 368)), net.preprocess(image[:, ::-1].copy(), (432, 368))])
    (out,) = rt.run(x)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert out.shape == (2, 57, 46, 54)
    assert np.abs(out - ref).max() < 1e-4
    assert np.abs(out[0] - out[1]).max() > 0.1  # the two batch items really differ
