"""Layer-wise learning-rate decay groups and the warm-up / step / cosine schedule."""

from __future__ import annotations

import math
import os

import pytest

if os.environ.get("CI", "").strip().lower() == "true":
    import torch
else:
    torch = pytest.importorskip("torch")

from posekit.models.torch.vitpose import VitPose, VitPoseConfig
from posekit.train.optim import layer_id, lr_factor, make_optimizer, param_groups, set_lr


def _tiny() -> VitPose:
    return VitPose(VitPoseConfig(embed_dim=32, depth=3, num_heads=2, img_size=(64, 48), decoder="simple"))


def test_layer_id_of_vit_parameters():
    assert layer_id("backbone.patch_embed.weight", 3) == 0
    assert layer_id("backbone.pos_embed", 3) == 0
    assert layer_id("backbone.blocks.0.attn.qkv.weight", 3) == 1
    assert layer_id("backbone.blocks.2.mlp.fc1.bias", 3) == 3
    assert layer_id("backbone.norm.weight", 3) == 4
    assert layer_id("head.final.weight", 3) == 4


def test_groups_scale_lr_by_depth_and_skip_decay_on_biases_norms_and_positions():
    model = _tiny()
    groups = param_groups(model, lr=1.0, weight_decay=0.1, layer_decay=0.5)
    by_name = {n: g for g in groups for n in g["names"]}
    # every trainable parameter is in exactly one group
    assert sorted(by_name) == sorted(n for n, _ in model.named_parameters())
    assert by_name["backbone.patch_embed.weight"]["lr"] == pytest.approx(0.5**4)
    assert by_name["backbone.blocks.0.attn.qkv.weight"]["lr"] == pytest.approx(0.5**3)
    assert by_name["backbone.blocks.2.attn.qkv.weight"]["lr"] == pytest.approx(0.5**1)
    assert by_name["head.final.weight"]["lr"] == pytest.approx(1.0)
    assert by_name["backbone.blocks.1.attn.qkv.weight"]["weight_decay"] == 0.1
    for no_decay in ("backbone.pos_embed", "backbone.blocks.1.norm1.weight", "backbone.blocks.1.attn.qkv.bias",
                     "head.final.bias"):  # fmt: skip
        assert by_name[no_decay]["weight_decay"] == 0.0, no_decay


def test_without_layer_decay_every_group_has_the_base_rate():
    groups = param_groups(_tiny(), lr=3e-4, weight_decay=0.1, layer_decay=1.0)
    assert [g["lr"] for g in groups] == pytest.approx([3e-4] * len(groups))
    with pytest.raises(ValueError, match="layer_decay"):
        param_groups(_tiny(), lr=1.0, weight_decay=0.0, layer_decay=0.0)


def test_set_lr_keeps_each_groups_scale():
    opt = make_optimizer(_tiny(), lr=1.0, layer_decay=0.5)
    set_lr(opt, 2e-3, 0.5)
    assert {round(g["lr"] / (1e-3 * g["lr_scale"]), 9) for g in opt.param_groups} == {1.0}
    assert max(g["lr"] for g in opt.param_groups) == pytest.approx(1e-3)


def test_schedule_values():
    kw = {"total_steps": 110, "warmup_steps": 10, "warmup_start": 0.0}
    assert lr_factor(0, **kw) == 0.0
    assert lr_factor(5, **kw) == pytest.approx(0.5)
    assert lr_factor(10, **kw) == pytest.approx(1.0)
    assert lr_factor(60, **kw) == pytest.approx(0.5)  # half-way through the cosine
    assert lr_factor(110, **kw) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(35, **kw, min_factor=0.1) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.25)))
    step = {"total_steps": 100, "schedule": "step", "milestones": (30, 60), "gamma": 0.1}
    assert [lr_factor(s, **step) for s in (0, 29, 30, 59, 60, 99)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    assert lr_factor(50, total_steps=100, schedule="constant") == 1.0
    with pytest.raises(ValueError, match="schedule"):
        lr_factor(0, total_steps=10, schedule="linear")  # type: ignore[arg-type]
