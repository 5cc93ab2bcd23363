"""Every PyTorch architecture in posekit builds, runs, and exports to ONNX with a dynamic batch.

Random weights and small inputs (few blocks where the configuration allows it) keep this quick;
onnxruntime's batch-2 output must match PyTorch's within 1e-4.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

if os.environ.get("CI") == "true":
    import torch  # CI installs torch: a missing torch must fail there, not skip
else:
    torch = pytest.importorskip("torch")

from torch import nn


def _require(name: str) -> ModuleType:
    if os.environ.get("CI") == "true":
        return importlib.import_module(name)
    return pytest.importorskip(name)


@dataclass(frozen=True)
class Arch:
    module: str  # posekit.models.torch.<module>
    build: Callable[[], nn.Module]
    input_hw: tuple[int, int]
    output_shape: tuple[int, ...]  # per sample


def _mobilenet_thin() -> nn.Module:
    from posekit.models.torch.openpose_mobilenet import OpenPoseMobileNetThin

    return OpenPoseMobileNetThin()  # random init: no graph needed


def _openpose_vgg() -> nn.Module:
    from posekit.models.torch.openpose_vgg import OpenPoseVGG19

    return OpenPoseVGG19(stages=2)


def _openpose_vgg_2019() -> nn.Module:
    from posekit.models.torch.openpose_vgg import OpenPoseVGG19

    return OpenPoseVGG19(order="2019", paf_stages=2, cm_stages=2)  # PAF stages, then confidence-map stages


def _vitpose_s() -> nn.Module:
    from posekit.models.torch.vitpose import build_vitpose

    return build_vitpose("s", img_size=(64, 48), drop_path_rate=0.0)


def _fastpose_r50() -> nn.Module:
    from posekit.models.torch.fastpose import FASTPOSE_RES50_COCO, FastPose

    return FastPose(FASTPOSE_RES50_COCO, input_size=(96, 64))  # sides multiples of 32, as 256x192


def _sapiens_tiny() -> nn.Module:
    from posekit.models.torch.sapiens import build_sapiens

    # The 0.3b code path with a tiny width/depth/head.
    return build_sapiens("0.3b", num_keypoints=17, embed_dim=64, depth=2, num_heads=4, img_size=(64, 48),
                         head_channels=32)  # fmt: skip


ARCHS: dict[str, Arch] = {
    "openpose-mobilenet-thin": Arch("openpose_mobilenet", _mobilenet_thin, (64, 48), (57, 8, 6)),
    "openpose-vgg19": Arch("openpose_vgg", _openpose_vgg, (64, 48), (57, 8, 6)),
    "openpose-vgg19-2019": Arch("openpose_vgg", _openpose_vgg_2019, (64, 48), (57, 8, 6)),
    "vitpose-s": Arch("vitpose", _vitpose_s, (64, 48), (17, 16, 12)),
    "fastpose-r50": Arch("fastpose", _fastpose_r50, (96, 64), (17, 24, 16)),
    "sapiens-tiny": Arch("sapiens", _sapiens_tiny, (64, 48), (17, 16, 12)),
}


def test_every_torch_network_module_is_covered() -> None:
    """Each posekit.models.torch module defining an ``nn.Module`` appears in ARCHS."""
    import posekit.models.torch as pkg

    with_networks = set()
    for info in pkgutil.iter_modules(pkg.__path__):
        mod = importlib.import_module(f"{pkg.__name__}.{info.name}")
        if any(
            issubclass(obj, nn.Module) and obj.__module__ == mod.__name__
            for obj in vars(mod).values()
            if inspect.isclass(obj)
        ):
            with_networks.add(info.name)
    assert with_networks == {a.module for a in ARCHS.values()}


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_build_forward_and_onnx_batch2(name: str, tmp_path: Path) -> None:
    ort = _require("onnxruntime")
    _require("onnx")
    arch = ARCHS[name]
    torch.manual_seed(0)
    model = arch.build().eval()
    h, w = arch.input_hw
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 3, h, w)).astype(np.float32))
    with torch.no_grad():
        want = model(x)
    assert isinstance(want, torch.Tensor)
    assert want.shape == (2, *arch.output_shape)
    assert torch.isfinite(want).all()
    assert want.std() > 0
    # samples are independent: batch of 2 == two batches of 1
    with torch.no_grad():
        torch.testing.assert_close(model(x[1:]), want[1:], atol=1e-4, rtol=1e-4)

    path = tmp_path / f"{name}.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is deprecated
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, h, w),),  # traced at batch 1, run at batch 2
            str(path),
            input_names=["image"],
            output_names=["output"],
            dynamic_axes={"image": {0: "batch"}, "output": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape[0] == "batch"
    (got,) = sess.run(None, {"image": x.numpy()})
    assert got.shape == tuple(want.shape)
    np.testing.assert_allclose(got, want.numpy(), atol=1e-4, rtol=0)
