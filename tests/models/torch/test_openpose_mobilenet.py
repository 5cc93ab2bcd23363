"""The frozen-graph reader and the PyTorch MobileNet-thin OpenPose rebuild, on the real graph."""

from __future__ import annotations

import collections
import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import pytest

import posekit
from posekit.models.openpose import MOBILENET_THIN, OpenPoseNet, network_input_size
from posekit.models.torch.graphdef import Node, constants, parse_graphdef, read_graphdef
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
def graph_path() -> Path:
    return fetch(MOBILENET_THIN.weights, progress=False)


@pytest.fixture(scope="module")
def nodes(graph_path: Path) -> list[Node]:
    return read_graphdef(graph_path)


# --- the GraphDef reader (numpy only) ---------------------------------------------------------


def test_graph_nodes_and_ops(nodes: list[Node]) -> None:
    assert len(nodes) == 506
    ops = collections.Counter(n.op for n in nodes)
    assert ops == {
        "Const": 222, "Conv2D": 72, "BiasAdd": 72, "DepthwiseConv2dNative": 71, "Relu": 60,
        "ConcatV2": 7, "Placeholder": 1, "MaxPool": 1,
    }  # fmt: skip
    by_name = {n.name: n for n in nodes}
    image = by_name["image"]
    assert image.op == "Placeholder"
    assert image.attr["shape"] == (-1, -1, -1, 3)
    out = by_name[MOBILENET_THIN.output]
    assert out.op == "ConcatV2"
    assert out.inputs == (
        "Openpose/MConv_Stage6_L2_5_pointwise/BatchNorm/FusedBatchNorm",
        "Openpose/MConv_Stage6_L1_5_pointwise/BatchNorm/FusedBatchNorm",
        "Openpose/concat_stage7/axis",
    )
    conv0 = by_name["MobilenetV1/Conv2d_0/Conv2D"]
    assert conv0.attr["strides"] == [1, 2, 2, 1]
    assert conv0.attr["padding"] == b"SAME"
    assert conv0.attr["data_format"] == b"NHWC"
    pool = by_name["Conv2d_3_pool"]
    assert pool.attr["ksize"] == [1, 2, 2, 1]


def test_graph_constants(nodes: list[Node]) -> None:
    consts = constants(nodes)
    assert len(consts) == 222
    assert consts["MobilenetV1/Conv2d_0/weights"].shape == (3, 3, 3, 24)
    assert consts["Openpose/MConv_Stage1_L1_1_depthwise/depthwise_weights"].shape == (3, 3, 864, 1)
    assert consts["Openpose/MConv_Stage6_L2_5_pointwise/weights"].shape == (1, 1, 64, 19)
    assert int(consts["feat_concat/axis"]) == 3
    floats = [v for v in consts.values() if v.dtype == np.float32]
    assert sum(v.size for v in floats) == 1_930_872
    assert all(np.isfinite(v).all() for v in floats)
    # Folded batch-norm offsets are real numbers, not an all-zero placeholder.
    assert np.abs(consts["MobilenetV1/Conv2d_0/Conv2D_bn_offset"]).max() > 0.1


def _key(num: int, wire: int) -> bytes:
    return _varint((num << 3) | wire)


def _varint(v: int) -> bytes:
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _len(num: int, payload: bytes) -> bytes:
    return _key(num, 2) + _varint(len(payload)) + payload


def test_reader_on_hand_encoded_graph() -> None:
    """Scalar fill of float_val, negative ints, packed lists and unknown fields, by hand."""
    shape = _len(2, _len(2, _key(1, 0) + _varint(2)) + _len(2, _key(1, 0) + _varint(3)))
    tensor = _key(1, 0) + _varint(1) + shape + _len(5, np.float32(1.5).tobytes())  # DT_FLOAT, one value
    const = _len(1, b"c") + _len(2, b"Const") + _len(5, _len(1, b"value") + _len(2, _len(8, tensor)))
    ints = _len(3, b"".join(_varint(v) for v in (1, -2, 3)))
    other = (
        _len(1, b"n") + _len(2, b"Op") + _len(3, b"c") + _len(3, b"^c")
        + _len(5, _len(1, b"k") + _len(2, _key(3, 0) + _varint(-7)))
        + _len(5, _len(1, b"l") + _len(2, _len(1, ints)))
        + _key(99, 0) + _varint(5)  # unknown field: skipped
    )  # fmt: skip
    nodes = parse_graphdef(_len(1, const) + _len(1, other) + _len(4, b"\x08\x01"))
    assert [n.name for n in nodes] == ["c", "n"]
    value = constants(nodes)["c"]
    assert value.dtype == np.float32
    np.testing.assert_array_equal(value, np.full((2, 3), 1.5, np.float32))
    assert nodes[1].inputs == ("c", "^c")
    assert nodes[1].attr == {"k": -7, "l": [1, -2, 3]}


def test_reader_rejects_truncated_data(graph_path: Path) -> None:
    with pytest.raises((ValueError, IndexError)):
        parse_graphdef(graph_path.read_bytes()[:1000])


# --- the PyTorch network ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch_mod() -> ModuleType:
    torch = _require("torch")
    torch.set_num_threads(2)
    return torch


@pytest.fixture(scope="module")
def model(torch_mod: ModuleType, graph_path: Path):  # type: ignore[no-untyped-def]
    from posekit.models.torch.openpose_mobilenet import OpenPoseMobileNetThin

    return OpenPoseMobileNetThin.from_graph(graph_path)


def _dev_images(dev_set: CocoSet, n: int = 3) -> list[np.ndarray]:
    """The first ``n`` dev images (by file name) showing a person with 10 or more labelled keypoints."""
    gt = dev_set.load()
    with_people = {a["image_id"] for a in gt["annotations"] if a.get("num_keypoints", 0) >= 10}
    images = sorted((im for im in gt["images"] if im["id"] in with_people), key=lambda im: im["file_name"])[:n]
    assert len(images) == n
    return [posekit.read_image(dev_set.image_path(im)) for im in images]


def test_every_weight_loaded_strictly(torch_mod: ModuleType, nodes: list[Node], model) -> None:  # type: ignore[no-untyped-def]
    from posekit.models.torch.openpose_mobilenet import OpenPoseMobileNetThin, WeightsMismatchError, load_graph_weights

    consts = constants(nodes)
    names = model.tf_names()
    assert len(names) == len(model.state_dict()) == 215  # 222 constants minus 7 concat axes
    np.testing.assert_array_equal(
        model.conv0.conv.weight.detach().numpy(), consts["MobilenetV1/Conv2d_0/weights"].transpose(3, 2, 0, 1)
    )
    dw = model.stages[5].l2[0].depthwise.conv.weight.detach().numpy()
    np.testing.assert_array_equal(
        dw, consts["Openpose/MConv_Stage6_L2_1_depthwise/depthwise_weights"].transpose(2, 3, 0, 1)
    )

    missing = dict(consts)
    del missing["Openpose/MConv_Stage3_L1_2_pointwise/weights"]
    with pytest.raises(WeightsMismatchError, match=r"missing \[.*MConv_Stage3_L1_2_pointwise/weights"):
        load_graph_weights(OpenPoseMobileNetThin(), missing)
    extra = {**consts, "Openpose/extra/weights": np.zeros((1, 1, 2, 2), np.float32)}
    with pytest.raises(WeightsMismatchError, match=r"unexpected \['Openpose/extra/weights'\]"):
        load_graph_weights(OpenPoseMobileNetThin(), extra)
    wrong = {**consts, "MobilenetV1/Conv2d_0/Conv2D_bn_offset": np.zeros(23, np.float32)}
    with pytest.raises(WeightsMismatchError, match="shape mismatches"):
        load_graph_weights(OpenPoseMobileNetThin(), wrong)


def test_same_padding_matches_tensorflow_rule(torch_mod: ModuleType) -> None:
    """3x3 stride-2 windows start where TensorFlow's SAME starts them, on even and odd sides."""
    from posekit.models.torch.openpose_mobilenet import _TFConv

    torch = torch_mod
    conv = _TFConv(1, 1, 3, 2, depthwise=False, bias=False)
    with torch.no_grad():
        conv.conv.weight.copy_(torch.arange(9, dtype=torch.float32).reshape(1, 1, 3, 3))
    for h, w in ((6, 8), (7, 5), (8, 7)):
        x = np.random.default_rng(h * w).normal(size=(h, w)).astype(np.float32)
        out_h, out_w = -(-h // 2), -(-w // 2)
        pt = max((out_h - 1) * 2 + 3 - h, 0) // 2  # TensorFlow: pad_before = total // 2
        pl = max((out_w - 1) * 2 + 3 - w, 0) // 2
        padded = np.zeros((h + 4, w + 4), np.float32)
        padded[pt : pt + h, pl : pl + w] = x
        k = np.arange(9, dtype=np.float32).reshape(3, 3)
        want = np.array([[(padded[2 * i : 2 * i + 3, 2 * j : 2 * j + 3] * k).sum() for j in range(out_w)]
                         for i in range(out_h)])  # fmt: skip
        with torch.no_grad():
            got = conv(torch.from_numpy(x)[None, None])[0, 0].numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_matches_opencv_on_real_images(torch_mod: ModuleType, model, dev_set: CocoSet, graph_path: Path) -> None:  # type: ignore[no-untyped-def]
    torch = torch_mod
    net = OpenPoseNet(MOBILENET_THIN, threads=2, progress=False)
    for image in _dev_images(dev_set):
        size = network_input_size(image.shape[:2], 432)
        x = net.preprocess(image, size)
        ref = net.runtime.run(x)[0]
        with torch.no_grad():
            out = model(torch.from_numpy(x)).numpy()
        assert out.shape == ref.shape == (1, 57, 432 // 8, size[0] // 8)
        assert np.abs(out - ref).max() < 1e-3
        assert ref[0, :18].max() > 0.5  # real people in the images: a real comparison, not of zeros


def test_batch_equals_single_runs(torch_mod: ModuleType, model) -> None:  # type: ignore[no-untyped-def]
    torch = torch_mod
    x = torch.from_numpy(np.random.default_rng(3).uniform(0, 255, (2, 3, 64, 48)).astype(np.float32))
    with torch.no_grad():
        both = model(x)
        one = model(x[1:])
    assert both.shape == (2, 57, 8, 6)
    torch.testing.assert_close(both[1:], one, rtol=1e-4, atol=1e-4)


def test_onnx_export_metadata(torch_mod: ModuleType, model, graph_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    onnx = _require("onnx")
    from posekit.models.torch.openpose_mobilenet import INPUT_NAME, OUTPUT_NAME, export_onnx

    path = export_onnx(tmp_path / "openpose.onnx", model, source=graph_path)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["posekit.schema"] == "openpose18"
    assert meta["posekit.stride"] == "8"
    assert meta["posekit.paf_offset"] == "19"
    assert meta["posekit.output"] == OUTPUT_NAME
    assert meta["posekit.source_sha256"] == posekit.weights.get_entry(MOBILENET_THIN.weights).sha256
    assert "18: background" in meta["posekit.channels"]
    (inp,) = proto.graph.input
    assert inp.name == INPUT_NAME
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    assert [o.name for o in proto.graph.output] == [OUTPUT_NAME]
    assert not list(tmp_path.glob("*.tmp"))
