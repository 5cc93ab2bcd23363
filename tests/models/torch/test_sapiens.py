"""Sapiens pose in PyTorch: published sizes, heatmap shapes, and the checkpoint converter.

Every model here has random weights; checkpoints are synthetic state dicts written with the
reference key names (no download). The large sizes are only counted, on the meta device.
"""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

if os.environ.get("CI") == "true":
    import torch  # CI installs torch: a missing torch must fail there, not skip
else:
    torch = pytest.importorskip("torch")

from posekit.models.torch.convert import ConversionError
from posekit.models.torch.sapiens import (
    ARCHS,
    PUBLISHED_PARAMS,
    SapiensConfig,
    SapiensPose,
    build_sapiens,
    count_parameters,
    from_sapiens_checkpoint,
    load_sapiens,
    sapiens_spec,
)
from posekit.schemas import COCO_17
from posekit.schemas_wholebody import COCO_WHOLEBODY_133, SAPIENS_308

# Same code path as the published models (patch 16 with padding 2, 2 deconvs + 2 convs, no class
# token), small enough to run: 128x96 input -> 8x6 tokens -> 32x24 heatmaps.
TINY = SapiensConfig(embed_dim=64, depth=2, num_heads=4, img_size=(128, 96), head_channels=32)


def test_published_architectures() -> None:
    dims = {a: (c.embed_dim, c.depth, c.num_heads) for a, c in ARCHS.items()}
    assert dims == {"0.3b": (1024, 24, 16), "0.6b": (1280, 32, 16), "1b": (1536, 40, 24), "2b": (1920, 48, 32)}
    for cfg in ARCHS.values():
        assert cfg.img_size == (1024, 768)
        assert cfg.grid == (64, 48)  # 3072 tokens
        assert cfg.heatmap_size == (256, 192)  # stride 4
        assert cfg.head_channels == 768
        assert cfg.num_deconv == 2
        assert cfg.num_conv == 2


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_parameter_counts_match_the_published_sizes(arch: str) -> None:
    with torch.device("meta"):
        model = build_sapiens(arch, num_keypoints=308)
    assert all(p.is_meta for p in model.parameters())
    c, d = model.cfg.embed_dim, model.cfg.depth
    per_block = 4 * c * c + 4 * c + 2 * (c * 4 * c) + 4 * c + c + 4 * c  # qkv+proj, MLP, 2 LN
    expected = d * per_block + (3 * 16 * 16 + 1) * c + 3072 * c + 2 * c
    backbone = count_parameters(model.backbone)
    assert backbone == expected
    # The paper's counts are ~28-31M above the bare encoder for every size (a constant offset,
    # consistent with the pre-training decoder): the encoder is within 35M below each.
    gap = PUBLISHED_PARAMS[arch] - backbone
    assert 0 < gap < 35e6
    head = count_parameters(model.head)
    assert head == c * 768 * 16 + 768 * 768 * 16 + 2 * (768 * 768 + 768) + 768 * 308 + 308


@pytest.mark.parametrize("k", [17, 133, 308])
def test_tiny_forward_gives_heatmaps(k: int) -> None:
    torch.manual_seed(0)
    model = SapiensPose(replace(TINY, num_keypoints=k)).eval()
    x = torch.randn(2, 3, 128, 96)
    with torch.no_grad():
        feats = model.backbone(x)
        out = model(x)
    assert feats.shape == (2, 64, 8, 6)
    assert out.shape == (2, k, 32, 24)
    assert torch.isfinite(out).all()
    # each sample is computed on its own (instance norm works per sample and channel)
    with torch.no_grad():
        single = model(x[1:])
    torch.testing.assert_close(single, out[1:], rtol=1e-4, atol=1e-5)


def test_other_input_sizes_resize_the_position_table() -> None:
    model = SapiensPose(TINY).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 160, 128))
    assert out.shape == (1, 308, 40, 32)


def test_spec() -> None:
    spec = sapiens_spec(SAPIENS_308)
    assert spec.schema is SAPIENS_308
    assert spec.input_size == (768, 1024)
    assert spec.heatmap_size == (192, 256)
    assert spec.codec.sigma == 6.0
    assert spec.mean == (0.485, 0.456, 0.406)
    assert spec.std == (0.229, 0.224, 0.225)
    assert sapiens_spec(COCO_WHOLEBODY_133).schema.num_keypoints == 133
    assert sapiens_spec(COCO_17).codec.heatmap_size == (192, 256)


# --- checkpoint conversion ----------------------------------------------------------------------


def _reference_state_dict(cfg: SapiensConfig, *, cls_row: bool = False, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Random tensors under the reference (mmpretrain + Sapiens HeatmapHead) key names."""
    g = torch.Generator().manual_seed(1)
    c, h, k = cfg.embed_dim, cfg.head_channels, cfg.num_keypoints
    gh, gw = cfg.grid

    def r(*shape: int) -> torch.Tensor:
        if device == "meta":
            return torch.empty(*shape, device="meta")
        return torch.randn(*shape, generator=g) * 0.02

    sd = {
        "backbone.patch_embed.projection.weight": r(c, 3, 16, 16),
        "backbone.patch_embed.projection.bias": r(c),
        "backbone.pos_embed": r(1, gh * gw + int(cls_row), c),
        "backbone.ln1.weight": 1 + r(c),
        "backbone.ln1.bias": r(c),
        "head.deconv_layers.0.weight": r(c, h, 4, 4),
        "head.deconv_layers.3.weight": r(h, h, 4, 4),
        "head.conv_layers.0.weight": r(h, h, 1, 1),
        "head.conv_layers.0.bias": r(h),
        "head.conv_layers.3.weight": r(h, h, 1, 1),
        "head.conv_layers.3.bias": r(h),
        "head.final_layer.weight": r(k, h, 1, 1),
        "head.final_layer.bias": r(k),
    }
    for i in range(cfg.depth):
        p = f"backbone.layers.{i}."
        sd |= {
            p + "ln1.weight": 1 + r(c), p + "ln1.bias": r(c),
            p + "attn.qkv.weight": r(3 * c, c), p + "attn.qkv.bias": r(3 * c),
            p + "attn.proj.weight": r(c, c), p + "attn.proj.bias": r(c),
            p + "ln2.weight": 1 + r(c), p + "ln2.bias": r(c),
            p + "ffn.layers.0.0.weight": r(4 * c, c), p + "ffn.layers.0.0.bias": r(4 * c),
            p + "ffn.layers.1.weight": r(c, 4 * c), p + "ffn.layers.1.bias": r(c),
        }  # fmt: skip
    return sd


# Converter tests run on a small network (4 heads given explicitly: not a published size).
SMALL = SapiensConfig(embed_dim=64, depth=3, num_heads=4, img_size=(32, 32), head_channels=16, num_keypoints=17)


@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize("k", [17, 133, 308])
def test_converter_infers_published_sizes(arch: str, k: int) -> None:
    cfg = replace(ARCHS[arch], num_keypoints=k)
    sd = _reference_state_dict(cfg, device="meta")  # shapes only: nothing is allocated
    got, out = from_sapiens_checkpoint({"state_dict": sd, "meta": {}})
    assert got == cfg
    assert got.grid == (64, 48)
    assert out["backbone.pos_embed"].shape == (1, 3072, cfg.embed_dim)
    assert len(out) == len(sd) == 5 + 12 * cfg.depth + 8
    with pytest.raises(ConversionError, match="heads"):
        from_sapiens_checkpoint(sd, num_heads=cfg.num_heads * 2)


def test_converter_maps_every_reference_key() -> None:
    cfg = SMALL
    sd = _reference_state_dict(cfg)
    got_cfg, out = from_sapiens_checkpoint({"state_dict": sd, "meta": {}}, img_size=(32, 32), num_heads=4)
    assert (got_cfg.embed_dim, got_cfg.depth, got_cfg.num_heads) == (64, 3, 4)
    assert got_cfg.num_keypoints == 17
    assert got_cfg.head_channels == 16
    assert len(out) == len(sd)
    with pytest.raises(ConversionError, match="num_heads"):
        from_sapiens_checkpoint(sd, img_size=(32, 32))
    torch.testing.assert_close(out["backbone.blocks.2.mlp.fc1.weight"], sd["backbone.layers.2.ffn.layers.0.0.weight"])
    torch.testing.assert_close(out["head.deconvs.1.weight"], sd["head.deconv_layers.3.weight"])
    torch.testing.assert_close(out["head.convs.1.bias"], sd["head.conv_layers.3.bias"])
    torch.testing.assert_close(out["backbone.norm.weight"], sd["backbone.ln1.weight"])


def test_loaded_model_reproduces_a_hand_written_reference_forward() -> None:
    cfg = SMALL
    sd = _reference_state_dict(cfg)
    model = load_sapiens(sd, img_size=(32, 32), num_heads=4)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))

    # reference computation straight from the checkpoint tensors
    def ln(t: torch.Tensor, w: str) -> torch.Tensor:
        return torch.nn.functional.layer_norm(t, (t.shape[-1],), sd[w + ".weight"], sd[w + ".bias"], 1e-6)

    F = torch.nn.functional
    t = F.conv2d(x, sd["backbone.patch_embed.projection.weight"], sd["backbone.patch_embed.projection.bias"], 16, 2)
    b, c, gh, gw = t.shape
    t = t.flatten(2).transpose(1, 2) + sd["backbone.pos_embed"]
    heads = 4
    for i in range(cfg.depth):
        p = f"backbone.layers.{i}."
        y = F.linear(ln(t, p + "ln1"), sd[p + "attn.qkv.weight"], sd[p + "attn.qkv.bias"])
        q, k, v = y.reshape(b, -1, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, -1, c)
        t = t + F.linear(a, sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"])
        y = F.gelu(F.linear(ln(t, p + "ln2"), sd[p + "ffn.layers.0.0.weight"], sd[p + "ffn.layers.0.0.bias"]))
        t = t + F.linear(y, sd[p + "ffn.layers.1.weight"], sd[p + "ffn.layers.1.bias"])
    f = ln(t, "backbone.ln1").transpose(1, 2).reshape(b, c, gh, gw)
    for key in ("head.deconv_layers.0", "head.deconv_layers.3"):
        f = F.silu(F.instance_norm(F.conv_transpose2d(f, sd[key + ".weight"], stride=2, padding=1)))
    for key in ("head.conv_layers.0", "head.conv_layers.3"):
        f = F.silu(F.instance_norm(F.conv2d(f, sd[key + ".weight"], sd[key + ".bias"])))
    ref = F.conv2d(f, sd["head.final_layer.weight"], sd["head.final_layer.bias"])

    with torch.no_grad():
        out = model(x)
    assert out.shape == (1, 17, 8, 8)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_converter_drops_a_class_token_row() -> None:
    cfg = SMALL
    sd = _reference_state_dict(cfg, cls_row=True)
    _, out = from_sapiens_checkpoint(sd, img_size=(32, 32), num_heads=4)
    torch.testing.assert_close(out["backbone.pos_embed"], sd["backbone.pos_embed"][:, 1:])


def test_converter_is_strict() -> None:
    cfg = SMALL
    sd = _reference_state_dict(cfg)
    with pytest.raises(ConversionError, match="unexpected"):
        from_sapiens_checkpoint({**sd, "backbone.cls_token": torch.zeros(1, 1, 64)}, img_size=(32, 32), num_heads=4)
    missing = {k: v for k, v in sd.items() if k != "backbone.layers.2.ln2.bias"}
    with pytest.raises(ConversionError, match="missing"):
        from_sapiens_checkpoint(missing, img_size=(32, 32), num_heads=4)
    with pytest.raises(ConversionError, match="shape"):
        from_sapiens_checkpoint(sd, img_size=(64, 64), num_heads=4)  # position table is for 32x32
    with pytest.raises(ConversionError, match="not a Sapiens"):
        from_sapiens_checkpoint({k: v for k, v in sd.items() if not k.startswith("head.final_layer")})
