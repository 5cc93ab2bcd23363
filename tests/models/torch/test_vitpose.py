"""ViTPose in PyTorch: shapes, published parameter counts, checkpoint layouts, ONNX export.

Every model here has random weights; the checkpoints are synthetic state dicts written with the
official key names (no download).
"""

from __future__ import annotations

import io
import os
import pickle

import numpy as np
import pytest

if os.environ.get("CI") == "true":
    import torch  # CI installs torch: a missing torch must fail there, not skip
else:
    torch = pytest.importorskip("torch")

from posekit.codecs.udp import UDPHeatmap
from posekit.models.torch.convert import (
    LAYOUTS,
    ConversionError,
    from_mmpose1_vitpose,
    from_mmpose_vitpose,
    from_transformers_vitpose,
    guess_layout,
    load_vitpose,
    read_checkpoint,
)
from posekit.models.torch.vitpose import (
    ARCHS,
    VITPOSE_SPEC,
    Block,
    VitPose,
    VitPoseConfig,
    build_vitpose,
    count_parameters,
)
from posekit.schemas import COCO_17

# A small network with the real layout (patch 16, padding 2, 256x192 input, both decoders) keeps
# the converter tests fast; the published sizes are checked by counting alone.
TINY = VitPoseConfig(embed_dim=64, depth=3, num_heads=4)


def _import_or_skip(name: str):  # type: ignore[no-untyped-def]
    if os.environ.get("CI") == "true":
        return __import__(name)
    return pytest.importorskip(name)


# --- architecture -----------------------------------------------------------------------------


def test_spec_describes_the_published_coco_model() -> None:
    assert VITPOSE_SPEC.schema is COCO_17
    assert VITPOSE_SPEC.input_size == (192, 256)
    assert VITPOSE_SPEC.heatmap_size == (48, 64)
    assert VITPOSE_SPEC.mean == (0.485, 0.456, 0.406)
    assert VITPOSE_SPEC.std == (0.229, 0.224, 0.225)
    assert VITPOSE_SPEC.channel_order == "RGB"
    assert VITPOSE_SPEC.codec == UDPHeatmap((192, 256), (48, 64), sigma=2.0, blur_kernel_size=11)
    assert ARCHS["b"].grid == (16, 12)
    assert ARCHS["b"].heatmap_size == (64, 48)


@pytest.mark.parametrize("decoder", ["classic", "simple"])
def test_forward_gives_stride_4_heatmaps(decoder: str) -> None:
    torch.manual_seed(0)
    model = build_vitpose("s", decoder, depth=4).eval()  # ViT-S widths; fewer blocks for speed
    x = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        out = model(x)
        feats = model.backbone(x)
    assert feats.shape == (2, 384, 16, 12)
    assert out.shape == (2, 17, 64, 48)
    assert torch.isfinite(out).all()
    # Samples in a batch are independent.
    with torch.no_grad():
        one = model(x[1:])
    torch.testing.assert_close(out[1:], one, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="token grid"):
        model(torch.randn(1, 3, 224, 224))


# Published figures: the ViTPose paper's backbone sizes (86M / 307M / 632M for B / L / H) and the
# whole model with the classic decoder (S 24M, B 90M, L 309M, H 638M). Within 3 %.
PUBLISHED_TOTAL = {"s": 24e6, "b": 90e6, "l": 309e6, "h": 638e6}
PUBLISHED_BACKBONE = {"b": 86e6, "l": 307e6, "h": 632e6}


@pytest.mark.parametrize("arch", ["s", "b", "l", "h"])
def test_parameter_counts_match_the_published_figures(arch: str) -> None:
    with torch.device("meta"):  # counts only: no memory, no forward
        classic = build_vitpose(arch, "classic")
        simple = build_vitpose(arch, "simple")
    total, backbone = count_parameters(classic), count_parameters(classic.backbone)
    print(f"ViTPose-{arch.upper()}: {total / 1e6:.2f}M (classic), {count_parameters(simple) / 1e6:.2f}M (simple), "
          f"backbone {backbone / 1e6:.2f}M")  # fmt: skip
    assert total == pytest.approx(PUBLISHED_TOTAL[arch], rel=0.03)
    if arch in PUBLISHED_BACKBONE:
        assert backbone == pytest.approx(PUBLISHED_BACKBONE[arch], rel=0.03)
    # The simple decoder is one 3x3 conv: 9 * C * 17 + 17 parameters on top of the backbone.
    c = ARCHS[arch].embed_dim
    assert count_parameters(simple) - backbone == 9 * c * 17 + 17


def test_classic_decoder_layout() -> None:
    head = VitPose(TINY).head
    assert isinstance(head.deconv1, torch.nn.ConvTranspose2d)
    assert head.deconv1.bias is None
    assert head.deconv1.kernel_size == (4, 4)
    assert head.deconv1.stride == (2, 2)
    assert head.final.kernel_size == (1, 1)
    assert head.final.out_channels == 17


def test_windowed_attention_is_local_and_global_when_the_window_is_the_grid() -> None:
    torch.manual_seed(1)
    grid = (16, 12)
    blk = Block(64, 4, 4.0, True, 0.0, 1e-6, window=(4, 4)).eval()
    x = torch.randn(2, grid[0] * grid[1], 64)
    y = x.clone()
    y[:, 0] += torch.randn(64)  # token (0, 0): window rows 0-3, columns 0-3 (not a constant: LN removes it)
    with torch.no_grad():
        a, b = blk(x, grid), blk(y, grid)
    changed = (a - b).abs().amax(dim=(0, 2)).reshape(grid) > 1e-6
    inside = torch.zeros(grid, dtype=torch.bool)
    inside[:4, :4] = True
    assert changed[inside].all()
    assert not changed[~inside].any()

    full = Block(64, 4, 4.0, True, 0.0, 1e-6, window=grid).eval()
    full.load_state_dict(blk.state_dict())
    glob = Block(64, 4, 4.0, True, 0.0, 1e-6).eval()
    glob.load_state_dict(blk.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(full(x, grid), glob(x, grid))
    # A window that does not divide the grid pads it and still runs.
    odd = Block(64, 4, 4.0, True, 0.0, 1e-6, window=(5, 5)).eval()
    with torch.no_grad():
        assert odd(x, grid).shape == x.shape


def test_drop_path_only_while_training() -> None:
    torch.manual_seed(2)
    model = build_vitpose("s", drop_path_rate=0.5, depth=2)
    x = torch.randn(4, 3, 256, 192)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x))
    assert model.backbone.blocks[-1].drop_path.p == 0.5
    assert model.backbone.blocks[0].drop_path.p == 0.0


# --- checkpoint layouts -----------------------------------------------------------------------


def _official_tensors(cfg: VitPoseConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors for each official weight, keyed by neutral names, with the published shapes."""
    g = torch.Generator().manual_seed(seed)
    c, k, d = cfg.embed_dim, cfg.num_keypoints, cfg.deconv_channels
    hid = int(c * cfg.mlp_ratio)
    gh, gw = cfg.grid

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * 0.02

    t: dict[str, torch.Tensor] = {
        "patch.w": r(c, 3, 16, 16), "patch.b": r(c), "pos": r(1, gh * gw + 1, c),
        "norm.w": 1 + r(c), "norm.b": r(c),
    }  # fmt: skip
    for i in range(cfg.depth):
        t |= {
            f"{i}.n1.w": 1 + r(c), f"{i}.n1.b": r(c), f"{i}.q.w": r(c, c), f"{i}.k.w": r(c, c),
            f"{i}.v.w": r(c, c), f"{i}.q.b": r(c), f"{i}.k.b": r(c), f"{i}.v.b": r(c),
            f"{i}.proj.w": r(c, c), f"{i}.proj.b": r(c), f"{i}.n2.w": 1 + r(c), f"{i}.n2.b": r(c),
            f"{i}.fc1.w": r(hid, c), f"{i}.fc1.b": r(hid), f"{i}.fc2.w": r(c, hid), f"{i}.fc2.b": r(c),
        }  # fmt: skip
    if cfg.decoder == "classic":
        for j, cin in ((1, c), (2, d)):
            t |= {
                f"de{j}.w": r(cin, d, 4, 4), f"bn{j}.w": 1 + r(d), f"bn{j}.b": r(d),
                f"bn{j}.mean": r(d), f"bn{j}.var": 1 + r(d).abs(), f"bn{j}.n": torch.tensor(7),
            }  # fmt: skip
        t |= {"final.w": r(k, d, 1, 1), "final.b": r(k)}
    else:
        t |= {"final.w": r(k, c, 3, 3), "final.b": r(k)}
    return t


def _mmpose_layout(t: dict[str, torch.Tensor], cfg: VitPoseConfig) -> dict[str, torch.Tensor]:
    """The reference repository's keys (ViTAE-Transformer/ViTPose, mmpose 0.x)."""
    sd = {
        "backbone.cls_token": torch.zeros(1, 1, cfg.embed_dim),  # pre-training leftover, unused
        "backbone.patch_embed.proj.weight": t["patch.w"], "backbone.patch_embed.proj.bias": t["patch.b"],
        "backbone.pos_embed": t["pos"],
        "backbone.last_norm.weight": t["norm.w"], "backbone.last_norm.bias": t["norm.b"],
        "keypoint_head.final_layer.weight": t["final.w"], "keypoint_head.final_layer.bias": t["final.b"],
    }  # fmt: skip
    for i in range(cfg.depth):
        p = f"backbone.blocks.{i}."
        sd |= {
            p + "norm1.weight": t[f"{i}.n1.w"], p + "norm1.bias": t[f"{i}.n1.b"],
            p + "attn.qkv.weight": torch.cat([t[f"{i}.q.w"], t[f"{i}.k.w"], t[f"{i}.v.w"]]),
            p + "attn.qkv.bias": torch.cat([t[f"{i}.q.b"], t[f"{i}.k.b"], t[f"{i}.v.b"]]),
            p + "attn.proj.weight": t[f"{i}.proj.w"], p + "attn.proj.bias": t[f"{i}.proj.b"],
            p + "norm2.weight": t[f"{i}.n2.w"], p + "norm2.bias": t[f"{i}.n2.b"],
            p + "mlp.fc1.weight": t[f"{i}.fc1.w"], p + "mlp.fc1.bias": t[f"{i}.fc1.b"],
            p + "mlp.fc2.weight": t[f"{i}.fc2.w"], p + "mlp.fc2.bias": t[f"{i}.fc2.b"],
        }  # fmt: skip
    if cfg.decoder == "classic":
        for j, (conv, bn) in ((1, (0, 1)), (2, (3, 4))):
            p = "keypoint_head.deconv_layers."
            sd |= {
                f"{p}{conv}.weight": t[f"de{j}.w"], f"{p}{bn}.weight": t[f"bn{j}.w"], f"{p}{bn}.bias": t[f"bn{j}.b"],
                f"{p}{bn}.running_mean": t[f"bn{j}.mean"], f"{p}{bn}.running_var": t[f"bn{j}.var"],
                f"{p}{bn}.num_batches_tracked": t[f"bn{j}.n"],
            }  # fmt: skip
    return sd


def _transformers_layout(t: dict[str, torch.Tensor], cfg: VitPoseConfig) -> dict[str, torch.Tensor]:
    """Hugging Face ``VitPoseForPoseEstimation`` keys (separate query / key / value)."""
    sd = {
        "backbone.embeddings.patch_embeddings.projection.weight": t["patch.w"],
        "backbone.embeddings.patch_embeddings.projection.bias": t["patch.b"],
        "backbone.embeddings.position_embeddings": t["pos"],
        "backbone.layernorm.weight": t["norm.w"], "backbone.layernorm.bias": t["norm.b"],
        "head.conv.weight": t["final.w"], "head.conv.bias": t["final.b"],
    }  # fmt: skip
    for i in range(cfg.depth):
        p = f"backbone.encoder.layer.{i}."
        sd |= {
            p + "layernorm_before.weight": t[f"{i}.n1.w"], p + "layernorm_before.bias": t[f"{i}.n1.b"],
            p + "attention.attention.query.weight": t[f"{i}.q.w"], p + "attention.attention.query.bias": t[f"{i}.q.b"],
            p + "attention.attention.key.weight": t[f"{i}.k.w"], p + "attention.attention.key.bias": t[f"{i}.k.b"],
            p + "attention.attention.value.weight": t[f"{i}.v.w"], p + "attention.attention.value.bias": t[f"{i}.v.b"],
            p + "attention.output.dense.weight": t[f"{i}.proj.w"], p + "attention.output.dense.bias": t[f"{i}.proj.b"],
            p + "layernorm_after.weight": t[f"{i}.n2.w"], p + "layernorm_after.bias": t[f"{i}.n2.b"],
            p + "mlp.fc1.weight": t[f"{i}.fc1.w"], p + "mlp.fc1.bias": t[f"{i}.fc1.b"],
            p + "mlp.fc2.weight": t[f"{i}.fc2.w"], p + "mlp.fc2.bias": t[f"{i}.fc2.b"],
        }  # fmt: skip
    if cfg.decoder == "classic":
        for j in (1, 2):
            sd |= {
                f"head.deconv{j}.weight": t[f"de{j}.w"], f"head.batchnorm{j}.weight": t[f"bn{j}.w"],
                f"head.batchnorm{j}.bias": t[f"bn{j}.b"], f"head.batchnorm{j}.running_mean": t[f"bn{j}.mean"],
                f"head.batchnorm{j}.running_var": t[f"bn{j}.var"],
                f"head.batchnorm{j}.num_batches_tracked": t[f"bn{j}.n"],
            }  # fmt: skip
    return sd


@pytest.mark.parametrize("decoder", ["classic", "simple"])
def test_both_layouts_convert_strictly_to_the_same_model(decoder: str) -> None:
    cfg = VitPoseConfig(embed_dim=64, depth=3, num_heads=4, decoder=decoder)
    t = _official_tensors(cfg)
    mm = from_mmpose_vitpose({"state_dict": _mmpose_layout(t, cfg), "meta": {}})
    hf = from_transformers_vitpose(_transformers_layout(t, cfg), config=cfg)
    assert mm.ok
    assert hf.ok
    assert mm.ignored == ["backbone.cls_token"]
    assert hf.ignored == []
    # The mmpose config was inferred from the shapes alone (head count given for the HF one).
    assert (mm.config.embed_dim, mm.config.depth, mm.config.decoder, mm.config.img_size) == (64, 3, decoder, (256, 192))
    assert mm.state_dict.keys() == hf.state_dict.keys() == VitPose(cfg).state_dict().keys()
    for key, val in mm.state_dict.items():
        torch.testing.assert_close(hf.state_dict[key], val, rtol=0, atol=0, msg=key)

    model = VitPose(cfg)
    model.load_state_dict(hf.state_dict, strict=True)
    # Values land where they belong: q, k, v stacked in order; the final norm; the last conv.
    qkv = model.backbone.blocks[1].attn.qkv.weight
    torch.testing.assert_close(qkv[64:128], t["1.k.w"], rtol=0, atol=0)
    torch.testing.assert_close(model.backbone.norm.weight, t["norm.w"], rtol=0, atol=0)
    torch.testing.assert_close(model.head.final.weight, t["final.w"], rtol=0, atol=0)
    if decoder == "classic":
        torch.testing.assert_close(model.head.bn2.running_var, t["bn2.var"], rtol=0, atol=0)

    # And they compute the same heatmaps.
    x = torch.randn(1, 3, 256, 192)
    with torch.no_grad():
        a = mm.build()(x)
        b = load_vitpose(_transformers_layout(t, cfg))(x)  # layout guessed from the keys
    torch.testing.assert_close(a, b)


def test_published_sizes_are_inferred_with_their_head_counts() -> None:
    cfg = ARCHS["s"]
    res = from_mmpose_vitpose(_mmpose_layout(_official_tensors(cfg), cfg))
    assert (res.config.embed_dim, res.config.depth, res.config.num_heads) == (384, 12, 12)
    assert res.ok


def test_missing_and_extra_keys_are_reported() -> None:
    cfg = TINY
    sd = _mmpose_layout(_official_tensors(cfg), cfg)
    del sd["backbone.blocks.2.mlp.fc2.bias"]
    sd["keypoint_head.associate_heads.0.weight"] = torch.zeros(3)
    with pytest.raises(ConversionError) as err:
        from_mmpose_vitpose(sd)
    msg = str(err.value)
    assert "missing keys: backbone.blocks.2.mlp.fc2.bias" in msg
    assert "unexpected keys: keypoint_head.associate_heads.0.weight" in msg
    loose = from_mmpose_vitpose(sd, strict=False)
    assert loose.missing == ["backbone.blocks.2.mlp.fc2.bias"]
    assert loose.unexpected == ["keypoint_head.associate_heads.0.weight"]
    assert not loose.ok

    hf = _transformers_layout(_official_tensors(cfg), cfg)
    del hf["backbone.encoder.layer.0.attention.attention.value.weight"]
    hf["backbone.encoder.layer.0.mlp.experts.0.weight"] = torch.zeros(2)  # a ViTPose+ (MoE) key
    res = from_transformers_vitpose(hf, config=cfg, strict=False)
    assert "backbone.encoder.layer.0.attention.attention.value.weight" in res.missing
    assert res.unexpected == ["backbone.encoder.layer.0.mlp.experts.0.weight"]
    with pytest.raises(ConversionError, match=r"value\.weight"):
        from_transformers_vitpose(hf, config=cfg)


def test_mis_shaped_tensors_are_reported() -> None:
    cfg = TINY
    sd = _mmpose_layout(_official_tensors(cfg), cfg)
    sd["backbone.blocks.0.mlp.fc1.weight"] = torch.zeros(10, 64)
    with pytest.raises(ConversionError, match=r"mismatched keys: backbone.blocks.0.mlp.fc1.weight \(10, 64\)"):
        from_mmpose_vitpose(sd, config=cfg)


# --- mmpose 1.x (OpenMMLab's download server) ---------------------------------------------------


def _mmpose1_layout(
    t: dict[str, torch.Tensor], cfg: VitPoseConfig, *, cls_row: bool = False
) -> dict[str, torch.Tensor]:
    """mmpose 1.x keys: mmpretrain ``VisionTransformer`` (no class token) + ``HeatmapHead``."""
    pos = t["pos"][:, 1:]  # one row per patch
    if cls_row:  # a converted reference checkpoint keeps the class-token slot
        pos = torch.cat([torch.full_like(pos[:, :1], 5.0), pos], dim=1)
    sd = {
        "backbone.patch_embed.projection.weight": t["patch.w"], "backbone.patch_embed.projection.bias": t["patch.b"],
        "backbone.pos_embed": pos,
        "backbone.ln1.weight": t["norm.w"], "backbone.ln1.bias": t["norm.b"],
        "head.final_layer.weight": t["final.w"], "head.final_layer.bias": t["final.b"],
    }  # fmt: skip
    for i in range(cfg.depth):
        p = f"backbone.layers.{i}."
        sd |= {
            p + "ln1.weight": t[f"{i}.n1.w"], p + "ln1.bias": t[f"{i}.n1.b"],
            p + "attn.qkv.weight": torch.cat([t[f"{i}.q.w"], t[f"{i}.k.w"], t[f"{i}.v.w"]]),
            p + "attn.qkv.bias": torch.cat([t[f"{i}.q.b"], t[f"{i}.k.b"], t[f"{i}.v.b"]]),
            p + "attn.proj.weight": t[f"{i}.proj.w"], p + "attn.proj.bias": t[f"{i}.proj.b"],
            p + "ln2.weight": t[f"{i}.n2.w"], p + "ln2.bias": t[f"{i}.n2.b"],
            p + "ffn.layers.0.0.weight": t[f"{i}.fc1.w"], p + "ffn.layers.0.0.bias": t[f"{i}.fc1.b"],
            p + "ffn.layers.1.weight": t[f"{i}.fc2.w"], p + "ffn.layers.1.bias": t[f"{i}.fc2.b"],
        }  # fmt: skip
    if cfg.decoder == "classic":
        for j, (conv, bn) in ((1, (0, 1)), (2, (3, 4))):
            p = "head.deconv_layers."
            sd |= {
                f"{p}{conv}.weight": t[f"de{j}.w"], f"{p}{bn}.weight": t[f"bn{j}.w"], f"{p}{bn}.bias": t[f"bn{j}.b"],
                f"{p}{bn}.running_mean": t[f"bn{j}.mean"], f"{p}{bn}.running_var": t[f"bn{j}.var"],
                f"{p}{bn}.num_batches_tracked": t[f"bn{j}.n"],
            }  # fmt: skip
    return sd


@pytest.mark.parametrize("decoder", ["classic", "simple"])
def test_mmpose1_layout_converts_strictly_and_computes_what_mmpretrain_does(decoder: str) -> None:
    cfg = VitPoseConfig(embed_dim=64, depth=3, num_heads=4, decoder=decoder)
    t = _official_tensors(cfg)
    sd = _mmpose1_layout(t, cfg)
    assert guess_layout({"state_dict": sd}) == "mmpose1"
    res = from_mmpose1_vitpose({"meta": {"epoch": 210}, "state_dict": sd})
    assert res.ok, res.report()
    assert (res.config.embed_dim, res.config.depth, res.config.decoder, res.config.img_size) == (
        64,
        3,
        decoder,
        (256, 192),
    )
    assert res.state_dict.keys() == VitPose(cfg).state_dict().keys()
    # mmpretrain adds the table to the patches with no class slot: posekit's slot is zero
    assert torch.count_nonzero(res.state_dict["backbone.pos_embed"][:, 0]) == 0
    torch.testing.assert_close(res.state_dict["backbone.pos_embed"][:, 1:], t["pos"][:, 1:], rtol=0, atol=0)
    # The same tensors in the reference layout with a zero class slot give the same heatmaps.
    t0 = dict(t)
    t0["pos"] = torch.cat([torch.zeros_like(t["pos"][:, :1]), t["pos"][:, 1:]], dim=1)
    x = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        want = from_mmpose_vitpose(_mmpose_layout(t0, cfg)).build()(x)
        got = load_vitpose({"state_dict": sd}, "mmpose1")(x)
        guessed = load_vitpose(sd)(x)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.testing.assert_close(guessed, want, rtol=0, atol=0)


def test_mmpose1_table_with_a_class_slot_loses_it_as_mmpretrain_does() -> None:
    cfg = TINY
    t = _official_tensors(cfg)
    plain = from_mmpose1_vitpose(_mmpose1_layout(t, cfg))
    with_slot = from_mmpose1_vitpose(_mmpose1_layout(t, cfg, cls_row=True))
    assert with_slot.ok
    assert with_slot.config.img_size == (256, 192)
    assert any("class-token slot" in k for k in with_slot.ignored)
    torch.testing.assert_close(with_slot.state_dict["backbone.pos_embed"], plain.state_dict["backbone.pos_embed"])


def test_mmpose1_missing_unexpected_and_mis_shaped_keys_are_reported() -> None:
    cfg = TINY
    sd = _mmpose1_layout(_official_tensors(cfg), cfg)
    del sd["backbone.layers.1.ffn.layers.1.bias"]
    sd["head.conv_layers.0.weight"] = torch.zeros(3)  # a Sapiens-style head is not ViTPose's
    sd["backbone.layers.0.attn.proj.weight"] = torch.zeros(8, 64)
    with pytest.raises(ConversionError) as err:
        load_vitpose(sd, "mmpose1")
    msg = str(err.value)
    assert "missing keys: backbone.blocks.1.mlp.fc2.bias" in msg
    assert "unexpected keys: head.conv_layers.0.weight" in msg
    assert "mismatched keys: backbone.blocks.0.attn.proj.weight (8, 64)" in msg
    loose = from_mmpose1_vitpose(sd, strict=False)
    assert loose.missing == ["backbone.blocks.1.mlp.fc2.bias"]
    assert loose.unexpected == ["head.conv_layers.0.weight"]
    # a file in the reference layout is not read as mmpose 1.x
    ref = _mmpose_layout(_official_tensors(cfg), cfg)
    with pytest.raises(ConversionError, match="cannot infer the ViTPose size"):
        load_vitpose(ref, "mmpose1")
    with pytest.raises(KeyError, match=r"expected one of \['mmpose', 'mmpose1', 'transformers'\]"):
        load_vitpose(ref, "mmpose2")
    assert sorted(LAYOUTS) == ["mmpose", "mmpose1", "transformers"]


class _MmengineLikeConfig(dict):  # stands in for mmengine's ConfigDict in a checkpoint's meta
    pass


def test_checkpoint_files_with_foreign_objects_in_their_metadata_are_read_without_running_them(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = TINY
    sd = _mmpose1_layout(_official_tensors(cfg), cfg)
    meta = {"dataset_meta": {"flip_indices": np.arange(17)}, "cfg": _MmengineLikeConfig(a=1), "epoch": 210}
    path = tmp_path / "td-hm_ViTPose.pth"
    torch.save({"meta": meta, "state_dict": sd}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)  # what a plain safe load says
    got = read_checkpoint(path)
    assert got.keys() == sd.keys()
    for k, v in sd.items():
        torch.testing.assert_close(got[k], v, rtol=0, atol=0)
    assert load_vitpose(got).cfg.embed_dim == 64


# --- ONNX -------------------------------------------------------------------------------------


def test_onnx_export_with_dynamic_batch_matches_pytorch() -> None:
    _import_or_skip("onnx")
    ort = _import_or_skip("onnxruntime")
    torch.manual_seed(3)
    model = build_vitpose("s", "classic").eval()
    # Random BatchNorm statistics, so the export is checked on a non-trivial head too.
    for bn in (model.head.bn1, model.head.bn2):
        bn.running_mean.normal_(0, 0.1)
        bn.running_var.uniform_(0.5, 1.5)
    buf = io.BytesIO()
    torch.onnx.export(
        model, (torch.randn(1, 3, 256, 192),), buf, dynamo=False, opset_version=17,
        input_names=["image"], output_names=["heatmaps"],
        dynamic_axes={"image": {0: "batch"}, "heatmaps": {0: "batch"}},
    )  # fmt: skip
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        x = torch.randn(batch, 3, 256, 192)
        with torch.no_grad():
            want = model(x).numpy()
        (got,) = sess.run(None, {"image": x.numpy()})
        assert got.shape == (batch, 17, 64, 48)
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
