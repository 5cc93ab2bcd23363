"""Optimiser and learning-rate schedule for training (PyTorch).

* :func:`param_groups` — AdamW parameter groups with *layer-wise learning-rate decay* (ViTPose,
  following BEiT/MAE fine-tuning): a parameter in transformer block ``i`` of ``L`` gets
  ``lr * decay ** (L - i)``, the patch embedding and position table ``lr * decay ** (L + 1)``,
  everything after the last block (final norm, decoder) the full ``lr``. Biases, normalisation
  weights and position tables get no weight decay.
* :func:`lr_factor` — linear warm-up, then ``constant``, ``step`` (multiply by ``gamma`` at each
  milestone) or ``cosine`` (to ``min_factor``) decay, as a factor of the base rate per step. It is
  a pure function of the step, so resuming needs nothing but the step count.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import torch
from torch import nn

__all__ = ["Schedule", "layer_id", "lr_factor", "make_optimizer", "param_groups"]

Schedule = Literal["constant", "step", "cosine"]

_BLOCK = re.compile(r"(?:^|\.)blocks\.(\d+)\.")
_EMBED = ("patch_embed", "pos_embed", "cls_token")


def layer_id(name: str, num_layers: int) -> int:
    """Depth of parameter ``name`` for layer-wise decay: 0 embeddings, ``i + 1`` block ``i``, ``L + 1`` the rest."""
    m = _BLOCK.search(name)
    if m is not None:
        return int(m.group(1)) + 1
    if any(part in name.split(".") for part in _EMBED):
        return 0
    return num_layers + 1


def _no_decay(name: str, p: nn.Parameter) -> bool:
    return p.ndim <= 1 or name.endswith(".bias") or any(part in name.split(".") for part in _EMBED[1:])


def param_groups(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float,
    layer_decay: float = 1.0,
    num_layers: int | None = None,
) -> list[dict[str, Any]]:
    """AdamW parameter groups: one per (depth, decay / no decay), each with its own ``lr``.

    ``num_layers`` is the number of transformer blocks (default: counted from the parameter names;
    0 for a network without ``blocks.N`` — then ``layer_decay`` has no effect). Each group carries
    ``lr_scale`` so schedules can multiply it.
    """
    if not 0.0 < layer_decay <= 1.0:
        raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay}")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if num_layers is None:
        ids = [int(m.group(1)) for n, _ in named if (m := _BLOCK.search(n)) is not None]
        num_layers = max(ids) + 1 if ids else 0
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, p in named:
        depth = layer_id(name, num_layers) if num_layers else 0
        nd = _no_decay(name, p)
        scale = layer_decay ** ((num_layers + 1 - depth) if num_layers else 0)
        g = groups.setdefault(
            (depth, nd),
            {
                "params": [],
                "names": [],
                "lr": lr * scale,
                "lr_scale": scale,
                "weight_decay": 0.0 if nd else weight_decay,
            },
        )
        g["params"].append(p)
        g["names"].append(name)
    return [groups[k] for k in sorted(groups)]


def make_optimizer(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float = 0.05,
    betas: Sequence[float] = (0.9, 0.999),
    layer_decay: float = 1.0,
) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups` (the group's ``names`` are dropped: they do not pickle into state)."""
    groups = param_groups(model, lr=lr, weight_decay=weight_decay, layer_decay=layer_decay)
    for g in groups:
        g.pop("names")
    b1, b2 = (float(b) for b in betas)
    return torch.optim.AdamW(groups, lr=lr, betas=(b1, b2), weight_decay=weight_decay)


def lr_factor(
    step: int,
    *,
    total_steps: int,
    warmup_steps: int = 0,
    warmup_start: float = 0.001,
    schedule: Schedule = "cosine",
    milestones: Iterable[int] = (),
    gamma: float = 0.1,
    min_factor: float = 0.0,
) -> float:
    """The multiple of the base learning rate used for optimiser step ``step`` (0-based)."""
    if schedule not in ("constant", "step", "cosine"):
        raise ValueError(f"schedule must be 'constant', 'step' or 'cosine', got {schedule!r}")
    if step < warmup_steps:
        return warmup_start + (1.0 - warmup_start) * step / warmup_steps
    if schedule == "constant":
        return 1.0
    if schedule == "step":
        return float(gamma ** sum(1 for m in milestones if step >= m))
    span = max(total_steps - warmup_steps, 1)
    t = min(max(step - warmup_steps, 0) / span, 1.0)
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * t))


def set_lr(optimizer: torch.optim.Optimizer, base_lr: float, factor: float) -> None:
    """Set every group's rate to ``base_lr * factor * lr_scale``."""
    for g in optimizer.param_groups:
        g["lr"] = base_lr * factor * g.get("lr_scale", 1.0)
