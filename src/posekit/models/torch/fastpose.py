"""AlphaPose's FastPose single-person pose network, rebuilt in PyTorch (no torchvision).

Architecture, as in AlphaPose's ``alphapose/models/fastpose.py``, ``fastpose_duc.py`` and
``layers/SE_Resnet.py`` / ``layers/DUC.py`` (module names below are the state-dict names):

* ``preact``: an SE-ResNet (50 or 152 bottleneck layers, ResNet v1.5: the stride sits on the 3x3
  convolution). Only the *first* block of each of ``layer1..layer4`` (the one with a
  ``downsample`` projection) carries a squeeze-excitation ``se``, applied to the block output
  before the residual sum; it is ``fc = [Linear(C, C), ReLU, Linear(C, C), Sigmoid]`` with no
  channel reduction (AlphaPose's ``SELayer`` defaults to ``reduction=1``) and biases.
  256x192 input -> 2048 x 8 x 6.
* ``decoder="fastpose"`` (FastPose, the ResNet-50 models of the AlphaPose model zoo):
  ``suffle1`` = PixelShuffle(2) (no weights; the misspelling is AlphaPose's), then ``duc1`` =
  DUC(512 -> 1024) and ``duc2`` = DUC(256 -> 4 * conv_dim), each ``conv`` (3x3, no bias) ->
  ``bn`` -> ReLU -> PixelShuffle(2). ``conv_dim`` is 128 by default and 256 in the Halpe-136 /
  Halpe-26 regression configs (``CONV_DIM: 256``).
* ``decoder="duc"`` (FastPose_DUC, the ResNet-152 model): ``duc1``, ``duc2``, ``duc3`` are
  ``Sequential(PixelShuffle(2), [Conv3x3 -> BN -> ReLU] x n)`` with ``n = (4, 2, 1)`` convolutions
  (``STAGE{1,2,3}.NUM_CONV``); the last convolution of a stage maps to 1024, 512, 256 channels.
* ``conv_out``: Conv2d(conv_dim -> K) with bias. AlphaPose's code uses a 3x3 kernel (padding 1)
  for both decoders -- the ``FINAL_CONV_KERNEL: 1`` of its ResNet-152 config is never read -- so
  ``head_kernel=3`` is the default and the only value that loads AlphaPose checkpoints.

Output: ``(N, K, 64, 48)`` for a 256x192 input (stride 4). ``head="heatmap"`` returns those maps
as they are; ``head="integral"`` decodes them with :func:`posekit.codecs.integral.decode_torch`
(two-step normalisation + soft-argmax) into ``(keypoints (N, K, 2) in heatmap pixels, scores)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from posekit.codecs.integral import decode_torch

__all__ = [
    "DEPTHS",
    "DUC",
    "FASTPOSE_DUC_RES152_COCO",
    "FASTPOSE_RES50_COCO",
    "FASTPOSE_RES50_HALPE26",
    "FASTPOSE_RES50_HALPE136",
    "Bottleneck",
    "FastPose",
    "FastPoseConfig",
    "SEResNet",
    "SqueezeExcite",
    "count_parameters",
    "export_onnx",
]

# Bottleneck blocks per stage (He et al. 2016, Table 1).
DEPTHS: dict[int, tuple[int, int, int, int]] = {
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}


@dataclass(frozen=True)
class FastPoseConfig:
    """What to build. ``input_size`` is (H, W); the output map is ``input_size / 4``."""

    depth: int = 50
    num_keypoints: int = 17
    decoder: Literal["fastpose", "duc"] = "fastpose"
    conv_dim: int = 128
    duc_convs: tuple[int, int, int] = (4, 2, 1)
    head_kernel: int = 3
    head: Literal["heatmap", "integral"] = "heatmap"
    input_size: tuple[int, int] = (256, 192)

    @property
    def heatmap_size(self) -> tuple[int, int]:
        return self.input_size[0] // 4, self.input_size[1] // 4

    @property
    def stride(self) -> int:
        return 4


# AlphaPose model-zoo layouts (configs/<set>/resnet/256x192_res*.yaml).
FASTPOSE_RES50_COCO = FastPoseConfig(depth=50, num_keypoints=17)  # fast_res50_256x192.pth, MSE heatmaps
FASTPOSE_RES50_HALPE26 = FastPoseConfig(depth=50, num_keypoints=26)  # halpe26_fast_res50_256x192.pth
FASTPOSE_RES50_HALPE136 = FastPoseConfig(  # halpe136_fast_res50_256x192.pth: L1JointRegression, sigmoid
    depth=50, num_keypoints=136, conv_dim=256, head="integral"
)
FASTPOSE_DUC_RES152_COCO = FastPoseConfig(depth=152, num_keypoints=17, decoder="duc", conv_dim=256)


class SqueezeExcite(nn.Module):
    """Channel gating ``x * sigmoid(fc2(relu(fc1(mean_hw(x)))))`` without reduction."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(channels, channels), nn.ReLU(inplace=True), nn.Linear(channels, channels), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc(x.mean(dim=(2, 3)))
        return x * gate[:, :, None, None]


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 (x4 channels) residual block, optional SE before the sum."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1, project: bool = False, se: bool = False) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.se = SqueezeExcite(out_channels) if se else None
        self.downsample = (
            nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )
            if project
            else None
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.se is not None:
            out = self.se(out)
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class SEResNet(nn.Module):
    """AlphaPose's ``SEResnet`` trunk (no pooling head): (N, 3, H, W) -> (N, 2048, H/32, W/32)."""

    def __init__(self, depth: int = 50) -> None:
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"depth must be one of {sorted(DEPTHS)}, got {depth}")
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        channels = 64
        for i, (blocks, width) in enumerate(zip(DEPTHS[depth], (64, 128, 256, 512), strict=True)):
            stride = 1 if i == 0 else 2
            layer = [Bottleneck(channels, width, stride, project=True, se=True)]
            channels = width * Bottleneck.expansion
            layer += [Bottleneck(channels, width) for _ in range(blocks - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*layer))
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class DUC(nn.Module):
    """Dense upsampling convolution: 3x3 conv (no bias) -> BN -> ReLU -> PixelShuffle(2)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.pixel_shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pixel_shuffle(self.relu(self.bn(self.conv(x))))


def _duc_stage(in_channels: int, out_channels: int, num_convs: int) -> nn.Sequential:
    """FastPose_DUC stage: PixelShuffle(2), then ``num_convs`` x (3x3 conv -> BN -> ReLU)."""
    if num_convs < 1:
        raise ValueError(f"a DUC stage needs at least one convolution, got {num_convs}")
    c = in_channels // 4
    layers: list[nn.Module] = [nn.PixelShuffle(2)]
    for i in range(num_convs):
        out = out_channels if i == num_convs - 1 else c
        layers += [nn.Conv2d(c, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class FastPose(nn.Module):
    """FastPose / FastPose_DUC with AlphaPose's module names (see the module docstring)."""

    def __init__(self, config: FastPoseConfig = FASTPOSE_RES50_COCO, **overrides: object) -> None:
        super().__init__()
        cfg = replace(config, **overrides) if overrides else config  # type: ignore[arg-type]
        if cfg.head not in ("heatmap", "integral"):
            raise ValueError(f"head must be 'heatmap' or 'integral', got {cfg.head!r}")
        if cfg.head_kernel % 2 != 1:
            raise ValueError(f"head_kernel must be odd, got {cfg.head_kernel}")
        self.config = cfg
        self.preact = SEResNet(cfg.depth)
        if cfg.decoder == "fastpose":
            self.suffle1 = nn.PixelShuffle(2)
            self.duc1 = DUC(512, 1024)
            self.duc2 = DUC(256, 4 * cfg.conv_dim)
        elif cfg.decoder == "duc":
            n1, n2, n3 = cfg.duc_convs
            self.duc1 = _duc_stage(2048, 1024, n1)
            self.duc2 = _duc_stage(1024, 512, n2)
            self.duc3 = _duc_stage(512, cfg.conv_dim, n3)
        else:
            raise ValueError(f"decoder must be 'fastpose' or 'duc', got {cfg.decoder!r}")
        self.conv_out = nn.Conv2d(cfg.conv_dim, cfg.num_keypoints, cfg.head_kernel, padding=cfg.head_kernel // 2)

    def forward_maps(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised image -> (N, K, H/4, W/4) raw maps (logits)."""
        out = self.preact(x)
        if self.config.decoder == "fastpose":
            out = self.duc2(self.duc1(self.suffle1(out)))
        else:
            out = self.duc3(self.duc2(self.duc1(out)))
        return self.conv_out(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Maps for ``head="heatmap"``; ``(keypoints, scores)`` in heatmap pixels for ``"integral"``."""
        maps = self.forward_maps(x)
        if self.config.head == "integral":
            return decode_torch(maps)
        return maps


def count_parameters(module: nn.Module, names: Sequence[str] | None = None) -> int:
    """Number of trainable parameters (BatchNorm running statistics are buffers, not counted)."""
    params = module.named_parameters()
    return sum(p.numel() for n, p in params if names is None or any(n.startswith(k) for k in names))


INPUT_NAME = "image"


def export_onnx(model: FastPose, path: str | Path, opset: int = 17, batch: int = 1) -> list[str]:
    """Export ``model`` (in eval mode) to ONNX with a dynamic batch axis; returns the output names.

    Input ``image``: (batch, 3, H, W) float32 at the configured ``input_size``. Outputs ``heatmaps``
    (batch, K, H/4, W/4) for the heatmap head, ``keypoints`` (batch, K, 2) + ``scores`` (batch, K)
    for the integral head. Uses the TorchScript exporter (``dynamo=False``).
    """
    h, w = model.config.input_size
    outputs = ["keypoints", "scores"] if model.config.head == "integral" else ["heatmaps"]
    dynamic = {name: {0: "batch"} for name in [INPUT_NAME, *outputs]}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is deprecated
            torch.onnx.export(
                model,
                (torch.zeros(batch, 3, h, w),),
                str(path),
                input_names=[INPUT_NAME],
                output_names=outputs,
                dynamic_axes=dynamic,
                opset_version=opset,
                dynamo=False,
            )
    finally:
        model.train(was_training)
    return outputs
