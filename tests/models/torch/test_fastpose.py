"""FastPose rebuild: shapes, parameter counts, AlphaPose key layout, strict conversion, ONNX export."""

from __future__ import annotations

import os

import numpy as np
import pytest

if os.environ.get("CI") == "true":
    import torch
else:
    torch = pytest.importorskip("torch")

from posekit.models.torch.convert_alphapose import (
    CheckpointMismatchError,
    convert_state_dict,
    infer_config,
    load_alphapose,
    read_checkpoint,
)
from posekit.models.torch.fastpose import (
    FASTPOSE_DUC_RES152_COCO,
    FASTPOSE_RES50_COCO,
    FASTPOSE_RES50_HALPE26,
    FASTPOSE_RES50_HALPE136,
    FastPose,
    FastPoseConfig,
    count_parameters,
    export_onnx,
)

# ---------------------------------------------------------------------------------------------
# AlphaPose's state-dict layout, written out independently of posekit's modules from
# alphapose/models/{fastpose,fastpose_duc}.py, layers/SE_Resnet.py, layers/DUC.py, SE_module.py.


def _bn(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    return {
        f"{prefix}.weight": (c,),
        f"{prefix}.bias": (c,),
        f"{prefix}.running_mean": (c,),
        f"{prefix}.running_var": (c,),
        f"{prefix}.num_batches_tracked": (),
    }


def alphapose_layout(depth: int, num_joints: int, decoder: str = "fastpose", conv_dim: int = 128, stages=(4, 2, 1)):
    blocks = {50: (3, 4, 6, 3), 152: (3, 8, 36, 3)}[depth]
    keys: dict[str, tuple[int, ...]] = {"preact.conv1.weight": (64, 3, 7, 7), **_bn("preact.bn1", 64)}
    inplanes = 64
    for li, (n, planes) in enumerate(zip(blocks, (64, 128, 256, 512), strict=True), start=1):
        for b in range(n):
            p = f"preact.layer{li}.{b}"
            keys[f"{p}.conv1.weight"] = (planes, inplanes, 1, 1)
            keys.update(_bn(f"{p}.bn1", planes))
            keys[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            keys.update(_bn(f"{p}.bn2", planes))
            keys[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
            keys.update(_bn(f"{p}.bn3", planes * 4))
            if b == 0:  # the block with a downsample projection also gets SELayer(planes * 4), reduction=1
                keys[f"{p}.downsample.0.weight"] = (planes * 4, inplanes, 1, 1)
                keys.update(_bn(f"{p}.downsample.1", planes * 4))
                c = planes * 4
                keys.update(
                    {
                        f"{p}.se.fc.0.weight": (c, c),
                        f"{p}.se.fc.0.bias": (c,),
                        f"{p}.se.fc.2.weight": (c, c),
                        f"{p}.se.fc.2.bias": (c,),
                    }
                )
            inplanes = planes * 4
    if decoder == "fastpose":
        keys["duc1.conv.weight"] = (1024, 512, 3, 3)
        keys.update(_bn("duc1.bn", 1024))
        keys["duc2.conv.weight"] = (4 * conv_dim, 256, 3, 3)
        keys.update(_bn("duc2.bn", 4 * conv_dim))
    else:
        for s, (cin, cout, n) in enumerate(zip((2048, 1024, 512), (1024, 512, conv_dim), stages, strict=True), start=1):
            c = cin // 4
            for i in range(n):
                out = cout if i == n - 1 else c
                keys[f"duc{s}.{1 + 3 * i}.weight"] = (out, c, 3, 3)
                keys.update(_bn(f"duc{s}.{2 + 3 * i}", out))
    keys["conv_out.weight"] = (num_joints, conv_dim, 3, 3)
    keys["conv_out.bias"] = (num_joints,)
    return keys


def synthetic_checkpoint(layout, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, shape in layout.items():
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(1234, dtype=torch.long)
        elif k.endswith("running_var"):
            out[k] = torch.rand(shape, generator=g) + 0.5
        else:
            out[k] = torch.randn(shape, generator=g) * 0.05
    return out


def shapes(model) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def res50():
    return FastPose(FASTPOSE_RES50_COCO).eval()


# ---------------------------------------------------------------------------------------------


def test_output_shapes_coco_and_halpe(res50):
    x = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        assert res50(x).shape == (2, 17, 64, 48)
        halpe26 = FastPose(FASTPOSE_RES50_HALPE26).eval()
        assert halpe26(x[:1]).shape == (1, 26, 64, 48)
        halpe136 = FastPose(FASTPOSE_RES50_HALPE136).eval()
        kp, scores = halpe136(x[:1])
        maps = halpe136.forward_maps(x[:1])
    assert maps.shape == (1, 136, 64, 48)
    assert kp.shape == (1, 136, 2)
    assert scores.shape == (1, 136)
    assert float(kp.min()) >= 0
    assert float(kp[..., 0].max()) <= 47
    assert float(kp[..., 1].max()) <= 63
    # The integral head is the codec applied to the maps.
    from posekit.codecs.integral import decode

    xy_np, s_np = decode(maps.numpy())
    np.testing.assert_allclose(kp.numpy(), xy_np, atol=1e-4)
    np.testing.assert_allclose(scores.numpy(), s_np, atol=1e-6)


def test_res152_duc_output_shape():
    model = FastPose(FASTPOSE_DUC_RES152_COCO).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 128, 96)).shape == (1, 17, 32, 24)


# Parameter counts. torchvision's resnet50 has 25,557,032 parameters and resnet152 60,192,808
# (their model cards); without the 2048x1000 fc (2,049,000) the trunks are 23,508,032 and
# 58,143,808. AlphaPose adds bias-carrying SE layers without reduction to the first block of each
# stage and the DUC decoder.
SE = sum(2 * (c * c + c) for c in (256, 512, 1024, 2048))  # 11,148,800


def test_parameter_count_res50_matches_architecture_arithmetic(res50):
    duc1 = 512 * 1024 * 9 + 2 * 1024
    duc2 = 256 * 512 * 9 + 2 * 512
    head = 128 * 17 * 9 + 17
    assert count_parameters(res50.preact) == 23_508_032 + SE
    assert count_parameters(res50) == 23_508_032 + SE + duc1 + duc2 + head == 40_577_745


def test_parameter_count_res152_trunk():
    model = FastPose(FASTPOSE_DUC_RES152_COCO)
    assert count_parameters(model.preact) == 58_143_808 + SE


@pytest.mark.parametrize(
    ("config", "layout_args"),
    [
        (FASTPOSE_RES50_COCO, (50, 17)),
        (FASTPOSE_RES50_HALPE136, (50, 136, "fastpose", 256)),
        (FASTPOSE_DUC_RES152_COCO, (152, 17, "duc", 256)),
    ],
)
def test_state_dict_uses_alphapose_names_and_shapes(config, layout_args):
    layout = alphapose_layout(*layout_args)
    model = FastPose(config)
    assert shapes(model) == layout
    assert infer_config(synthetic_checkpoint(layout)) == FastPoseConfig(
        depth=config.depth, num_keypoints=config.num_keypoints, decoder=config.decoder, conv_dim=config.conv_dim
    )


def test_strict_load_of_official_layout(res50, tmp_path):
    ckpt = synthetic_checkpoint(alphapose_layout(50, 17), seed=1)
    model = FastPose(FASTPOSE_RES50_COCO)
    report = load_alphapose(model, ckpt)
    assert report.ok
    assert not report.filled
    assert report.stripped_prefix == ""
    loaded = model.state_dict()
    for k, v in ckpt.items():
        assert torch.equal(loaded[k], v), k
    # From a file, wrapped the way training scripts often save, with a DataParallel prefix.
    path = tmp_path / "fast_res50_256x192.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in ckpt.items()}}, path)
    model2 = FastPose(FASTPOSE_RES50_COCO).eval()
    report2 = load_alphapose(model2, path)
    assert report2.ok
    assert report2.stripped_prefix == "module."
    x = torch.randn(1, 3, 256, 192)
    with torch.no_grad():
        np.testing.assert_array_equal(model.eval()(x).numpy(), model2(x).numpy())
    assert set(read_checkpoint(path)) == {f"module.{k}" for k in ckpt}


def test_old_checkpoint_without_num_batches_tracked_is_filled():
    ckpt = {k: v for k, v in synthetic_checkpoint(alphapose_layout(50, 17)).items() if "num_batches_tracked" not in k}
    model = FastPose(FASTPOSE_RES50_COCO)
    report = load_alphapose(model, ckpt)
    assert report.ok
    assert len(report.filled) == sum("num_batches_tracked" in k for k in model.state_dict())


def test_missing_unexpected_and_misshaped_keys_are_reported():
    ckpt = synthetic_checkpoint(alphapose_layout(50, 17))
    del ckpt["preact.layer3.0.se.fc.2.bias"]
    ckpt["preact.layer2.0.conv2_offset.weight"] = torch.zeros(18, 128, 3, 3)  # a DCN checkpoint's extra key
    ckpt["conv_out.weight"] = torch.zeros(26, 128, 3, 3)  # a Halpe-26 head on a COCO model
    model = FastPose(FASTPOSE_RES50_COCO)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointMismatchError) as err:
        load_alphapose(model, ckpt)
    report = err.value.report
    assert report.missing == ["preact.layer3.0.se.fc.2.bias"]
    assert report.unexpected == ["preact.layer2.0.conv2_offset.weight"]
    assert report.shape_mismatches == [("conv_out.weight", (26, 128, 3, 3), (17, 128, 3, 3))]
    assert "1 missing" in str(err.value)
    assert "1 unexpected" in str(err.value)
    for k, v in model.state_dict().items():  # a failed strict load leaves the model untouched
        assert torch.equal(v, before[k]), k
    # Non-strict: the rest loads and the same report comes back.
    _, report_ns = convert_state_dict(ckpt, model)
    report_ns2 = load_alphapose(model, ckpt, strict=False)
    assert report_ns2.missing == report_ns.missing
    assert not report_ns2.ok
    assert torch.equal(model.state_dict()["duc1.conv.weight"], ckpt["duc1.conv.weight"])


def test_onnx_export_dynamic_batch_matches_torch(res50, tmp_path):
    onnx = pytest.importorskip("onnx") if os.environ.get("CI") != "true" else __import__("onnx")
    ort = pytest.importorskip("onnxruntime") if os.environ.get("CI") != "true" else __import__("onnxruntime")
    # Non-trivial BatchNorm statistics, so the comparison is not of near-constant maps.
    model = FastPose(FASTPOSE_RES50_COCO).eval()
    load_alphapose(model, synthetic_checkpoint(alphapose_layout(50, 17), seed=5))
    path = tmp_path / "fastpose_res50.onnx"
    assert export_onnx(model, path) == ["heatmaps"]
    onnx.checker.check_model(str(path))
    graph_input = onnx.load(str(path)).graph.input[0]
    assert graph_input.type.tensor_type.shape.dim[0].dim_param == "batch"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, 256, 192, generator=torch.Generator().manual_seed(0))  # batch 3, exported with 1
    with torch.no_grad():
        expected = model(x).numpy()
    (got,) = session.run(None, {"image": x.numpy()})
    assert got.shape == (3, 17, 64, 48)
    assert expected.std() > 1e-2
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_onnx_export_integral_head(tmp_path):
    ort = pytest.importorskip("onnxruntime") if os.environ.get("CI") != "true" else __import__("onnxruntime")
    model = FastPose(FASTPOSE_RES50_COCO, head="integral").eval()
    load_alphapose(model, synthetic_checkpoint(alphapose_layout(50, 17), seed=6))
    path = tmp_path / "fastpose_res50_integral.onnx"
    assert export_onnx(model, path) == ["keypoints", "scores"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(2, 3, 256, 192, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        kp, scores = model(x)
    got_kp, got_scores = session.run(None, {"image": x.numpy()})
    np.testing.assert_allclose(got_kp, kp.numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(got_scores, scores.numpy(), atol=1e-5, rtol=0)
