"""Strict loading of AlphaPose FastPose / FastPose_DUC checkpoints into :class:`FastPose`.

AlphaPose saves ``model.state_dict()`` of its ``FastPose`` module (``torch.save``), so the keys
are the module paths of ``alphapose/models/fastpose.py`` and ``fastpose_duc.py``:

* backbone ``preact.conv1.weight``, ``preact.bn1.{weight,bias,running_mean,running_var,
  num_batches_tracked}``, ``preact.layer{1-4}.{b}.conv{1,2,3}.weight``, ``...bn{1,2,3}.*``,
  ``preact.layer{1-4}.0.downsample.{0.weight,1.*}`` and, on the first block of each layer only,
  ``preact.layer{1-4}.0.se.fc.{0,2}.{weight,bias}``;
* FastPose: ``duc1.conv.weight``, ``duc1.bn.*``, ``duc2.conv.weight``, ``duc2.bn.*`` (``suffle1``
  is a PixelShuffle and has no keys);
* FastPose_DUC: ``duc{1,2,3}.{i}.weight`` for the convolutions at Sequential index
  ``i = 1, 4, 7, ...`` and their BatchNorms at ``i + 1`` (index 0 is the PixelShuffle);
* ``conv_out.weight`` / ``conv_out.bias``.

:class:`FastPose` uses exactly these names, so conversion is a strict identity map with checks:
a ``module.`` prefix (``nn.DataParallel``) is stripped, ``num_batches_tracked`` buffers absent from
old (PyTorch < 0.4.1) checkpoints are filled with 0, and anything else that is missing, unexpected
or of the wrong shape is reported -- and raised by :func:`load_alphapose` -- instead of silently
skipped. Deformable-convolution (``conv2_offset``), ShuffleResnet and ResNet-18 variants are not
supported and surface as unexpected / mismatched keys.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from posekit.models.torch.fastpose import DEPTHS, FastPose, FastPoseConfig

__all__ = [
    "CheckpointMismatchError",
    "ConversionReport",
    "convert_state_dict",
    "infer_config",
    "load_alphapose",
    "read_checkpoint",
]


@dataclass
class ConversionReport:
    """What did not line up between a checkpoint and the model."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    shape_mismatches: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(
        default_factory=list
    )  # (key, ckpt, model)
    filled: list[str] = field(default_factory=list)  # num_batches_tracked set to 0
    stripped_prefix: str = ""

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.shape_mismatches)

    def summary(self, limit: int = 10) -> str:
        def head(items: list[Any]) -> str:
            more = f" ... (+{len(items) - limit} more)" if len(items) > limit else ""
            return ", ".join(map(str, items[:limit])) + more

        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing: {head(self.missing)}")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected: {head(self.unexpected)}")
        if self.shape_mismatches:
            parts.append(
                f"{len(self.shape_mismatches)} shape mismatches (key, checkpoint, model): {head(self.shape_mismatches)}"
            )
        return "; ".join(parts) if parts else "all keys match"


class CheckpointMismatchError(ValueError):
    """The checkpoint does not fit the model; ``.report`` says how."""

    def __init__(self, report: ConversionReport) -> None:
        super().__init__(f"AlphaPose checkpoint does not match FastPose: {report.summary()}")
        self.report = report


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.pth`` file (``weights_only``), unwrapping ``{'state_dict': ...}`` / ``{'model': ...}``."""
    obj = torch.load(Path(path), map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, Mapping) and wrapper in obj and isinstance(obj[wrapper], Mapping):
            obj = obj[wrapper]
    if not isinstance(obj, Mapping):
        raise TypeError(f"{path}: expected a state dict, got {type(obj).__name__}")
    return {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _strip_prefix(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    keys = list(state)
    if keys and all(k.startswith("module.") for k in keys):
        return {k[len("module.") :]: v for k, v in state.items()}, "module."
    return dict(state), ""


def infer_config(state: Mapping[str, torch.Tensor], **overrides: Any) -> FastPoseConfig:
    """The :class:`FastPoseConfig` an AlphaPose state dict was saved from (depth, K, decoder, widths)."""
    state, _ = _strip_prefix(state)
    try:
        head = state["conv_out.weight"]
    except KeyError:
        raise KeyError("no 'conv_out.weight': not a FastPose checkpoint") from None
    blocks = []
    for layer in range(1, 5):
        idx = {int(m.group(1)) for k in state if (m := re.match(rf"preact\.layer{layer}\.(\d+)\.", k))}
        blocks.append(max(idx) + 1 if idx else 0)
    depth = next((d for d, b in DEPTHS.items() if tuple(blocks) == b), None)
    if depth is None:
        raise ValueError(f"backbone has {blocks} bottleneck blocks per stage; supported: {DEPTHS}")
    kwargs: dict[str, Any] = {
        "depth": depth,
        "num_keypoints": int(head.shape[0]),
        "conv_dim": int(head.shape[1]),
        "head_kernel": int(head.shape[2]),
    }
    if "duc1.conv.weight" in state:
        kwargs["decoder"] = "fastpose"
    else:
        kwargs["decoder"] = "duc"
        convs = []
        for stage in (1, 2, 3):
            idx = [int(m.group(1)) for k in state if (m := re.fullmatch(rf"duc{stage}\.(\d+)\.weight", k))]
            convs.append(sum(1 for i in idx if state[f"duc{stage}.{i}.weight"].dim() == 4))
        kwargs["duc_convs"] = tuple(convs)
    kwargs.update(overrides)
    return FastPoseConfig(**kwargs)


def convert_state_dict(
    state: Mapping[str, torch.Tensor], model: FastPose
) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Map an AlphaPose state dict onto ``model``'s keys; returns ``(state_dict, report)``."""
    state, prefix = _strip_prefix(state)
    report = ConversionReport(stripped_prefix=prefix)
    target = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for key, ref in target.items():
        if key not in state:
            if key.endswith("num_batches_tracked"):
                out[key] = torch.zeros_like(ref)
                report.filled.append(key)
            else:
                report.missing.append(key)
            continue
        value = state[key]
        if tuple(value.shape) != tuple(ref.shape):
            report.shape_mismatches.append((key, tuple(value.shape), tuple(ref.shape)))
            continue
        out[key] = value.detach().to(dtype=ref.dtype)
    report.unexpected = sorted(k for k in state if k not in target)
    return out, report


def load_alphapose(
    model: FastPose, state: Mapping[str, torch.Tensor] | str | Path, strict: bool = True
) -> ConversionReport:
    """Load an AlphaPose checkpoint (path or state dict) into ``model``.

    With ``strict=True`` (default) any missing, unexpected or mis-shaped key raises
    :class:`CheckpointMismatchError` and the model is left untouched; with ``strict=False`` the
    matching tensors are loaded and the report is returned for the caller to inspect.
    """
    if isinstance(state, (str, Path)):
        state = read_checkpoint(state)
    converted, report = convert_state_dict(state, model)
    if strict and not report.ok:
        raise CheckpointMismatchError(report)
    model.load_state_dict(converted, strict=strict)
    return report
