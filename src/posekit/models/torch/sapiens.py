"""Sapiens pose models (Khirodkar et al., ECCV 2024) in PyTorch: a plain ViT and a heatmap head.

The layout follows the published pose configs (``facebookresearch/sapiens``,
``pose/configs/sapiens_pose/*/sapiens_*-210e_*-1024x768.py``) and the modules they name:

* backbone (mmpretrain ``VisionTransformer``, MAE-pretrained): a 16x16 patch convolution with
  stride 16 and **padding 2** (a 1024x768 crop gives a 64x48 token grid), learned absolute
  position embeddings **without** a class token, ``depth`` pre-norm blocks
  ``x + MHSA(LN(x))``, ``x + MLP(LN(x))`` (GELU MLP of ratio 4, qkv bias, LayerNorm eps 1e-6)
  and a final LayerNorm. The blocks are :class:`posekit.models.torch.vitpose.Block`.
* head (Sapiens' ``HeatmapHead``, whose ``use_silu`` default is on): 2 x [ConvTranspose2d 4x4
  stride 2, no bias, + InstanceNorm2d (no affine parameters) + SiLU], 2 x [1x1 Conv2d +
  InstanceNorm2d + SiLU], a 1x1 Conv2d to K heatmaps; 768 channels throughout. Heatmaps are at
  stride 4: 256x192 for a 1024x768 input.

Sizes (mmpretrain ``arch_zoo`` entries ``sapiens_0.3b`` .. ``sapiens_2b``): embed dim / depth /
heads 1024/24/16, 1280/32/16, 1536/40/24, 1920/48/32, MLP width 4x. The input is RGB normalised
with the ImageNet mean/std (the configs' ``[123.675, 116.28, 103.53]`` / ``[58.395, 57.12,
57.375]`` on 0..255 pixels), decoded with UDP heatmaps of sigma 6.

:func:`from_sapiens_checkpoint` converts an mmpose/mmpretrain-layout state dict (``backbone.*``,
``head.*``) strictly: every key must be consumed and every shape must match.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from posekit.codecs.udp import UDPHeatmap
from posekit.models.torch.convert import ConversionError
from posekit.models.torch.vitpose import Block, VitPoseSpec, token_grid
from posekit.schemas import COCO_17, KeypointSchema

__all__ = [
    "ARCHS",
    "PUBLISHED_PARAMS",
    "SapiensBackbone",
    "SapiensConfig",
    "SapiensHead",
    "SapiensPose",
    "build_sapiens",
    "count_parameters",
    "from_sapiens_checkpoint",
    "load_sapiens",
    "sapiens_spec",
]


@dataclass(frozen=True)
class SapiensConfig:
    """Hyper-parameters of one Sapiens pose network; ``img_size`` is ``(height, width)``."""

    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    patch_size: int = 16
    patch_padding: int = 2
    img_size: tuple[int, int] = (1024, 768)
    in_chans: int = 3
    layer_norm_eps: float = 1e-6
    num_keypoints: int = 308
    head_channels: int = 768
    num_deconv: int = 2
    num_conv: int = 2

    def __post_init__(self) -> None:
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not a multiple of num_heads {self.num_heads}")

    @property
    def grid(self) -> tuple[int, int]:
        """Token grid ``(height, width)`` of an ``img_size`` input."""
        return token_grid(self.img_size, self.patch_size, self.patch_padding)

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """``(height, width)`` of the heatmaps: the token grid doubled by each deconvolution."""
        gh, gw = self.grid
        f = 2**self.num_deconv
        return f * gh, f * gw


ARCHS: dict[str, SapiensConfig] = {
    "0.3b": SapiensConfig(embed_dim=1024, depth=24, num_heads=16),
    "0.6b": SapiensConfig(embed_dim=1280, depth=32, num_heads=16),
    "1b": SapiensConfig(embed_dim=1536, depth=40, num_heads=24),
    "2b": SapiensConfig(embed_dim=1920, depth=48, num_heads=32),
}

# Parameter counts the Sapiens paper gives for its pretrained backbones (Table of model sizes).
PUBLISHED_PARAMS: dict[str, float] = {"0.3b": 0.336e9, "0.6b": 0.664e9, "1b": 1.169e9, "2b": 2.163e9}


def sapiens_spec(schema: KeypointSchema = COCO_17, cfg: SapiensConfig | None = None) -> VitPoseSpec:
    """How to feed a Sapiens pose model and decode its heatmaps (UDP, sigma 6)."""
    cfg = cfg or ARCHS["0.3b"]
    if schema.num_keypoints != cfg.num_keypoints:
        cfg = replace(cfg, num_keypoints=schema.num_keypoints)
    (ih, iw), (hh, hw) = cfg.img_size, cfg.heatmap_size
    return VitPoseSpec(
        schema=schema,
        input_size=(iw, ih),
        heatmap_size=(hw, hh),
        codec=UDPHeatmap((iw, ih), (hw, hh), sigma=6.0, blur_kernel_size=11),
    )


class SapiensBackbone(nn.Module):
    """Plain ViT without a class token: ``(B, 3, H, W)`` -> ``(B, C, H', W')`` at stride 16.

    Inputs of another size than ``cfg.img_size`` get the position table resized bicubically to
    their token grid (as the reference backbone does).
    """

    def __init__(self, cfg: SapiensConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.embed_dim
        self.patch_embed = nn.Conv2d(
            cfg.in_chans, c, kernel_size=cfg.patch_size, stride=cfg.patch_size, padding=cfg.patch_padding
        )
        gh, gw = cfg.grid
        self.pos_embed = nn.Parameter(torch.zeros(1, gh * gw, c))
        self.blocks = nn.ModuleList(
            Block(c, cfg.num_heads, cfg.mlp_ratio, True, 0.0, cfg.layer_norm_eps) for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(c, eps=cfg.layer_norm_eps)
        if self.pos_embed.device.type != "meta":
            nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def _pos(self, grid: tuple[int, int]) -> Tensor:
        if grid == self.cfg.grid:
            return self.pos_embed
        gh, gw = self.cfg.grid
        table = self.pos_embed.reshape(1, gh, gw, -1).permute(0, 3, 1, 2)
        table = F.interpolate(table, size=grid, mode="bicubic", align_corners=False)
        return table.flatten(2).transpose(1, 2)

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x)
        b, c, gh, gw = x.shape
        x = x.flatten(2).transpose(1, 2) + self._pos((gh, gw))
        for blk in self.blocks:
            x = blk(x, (gh, gw))
        return self.norm(x).transpose(1, 2).reshape(b, c, gh, gw)


class SapiensHead(nn.Module):
    """Deconvolutions (x2 each), 1x1 convolutions, each + InstanceNorm + SiLU; a 1x1 conv to K."""

    def __init__(self, in_channels: int, num_keypoints: int, channels: int = 768, num_deconv: int = 2,
                 num_conv: int = 2) -> None:  # fmt: skip
        super().__init__()
        self.deconvs = nn.ModuleList()
        for i in range(num_deconv):
            cin = in_channels if i == 0 else channels
            self.deconvs.append(nn.ConvTranspose2d(cin, channels, 4, stride=2, padding=1, bias=False))
        cin = channels if num_deconv else in_channels
        self.convs = nn.ModuleList()
        for i in range(num_conv):
            self.convs.append(nn.Conv2d(cin if i == 0 else channels, channels, 1))
        self.final = nn.Conv2d(channels if (num_deconv or num_conv) else in_channels, num_keypoints, 1)

    def forward(self, x: Tensor) -> Tensor:
        for layer in (*self.deconvs, *self.convs):
            x = F.silu(F.instance_norm(layer(x), eps=1e-5))
        return self.final(x)


class SapiensPose(nn.Module):
    """Sapiens pose: normalised ``(B, 3, H, W)`` crops -> heatmaps ``(B, K, H/4, W/4)``."""

    def __init__(self, cfg: SapiensConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or ARCHS["0.3b"]
        self.backbone = SapiensBackbone(cfg)
        self.head = SapiensHead(cfg.embed_dim, cfg.num_keypoints, cfg.head_channels, cfg.num_deconv, cfg.num_conv)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))


def build_sapiens(arch: str = "0.3b", num_keypoints: int = 308, **overrides: Any) -> SapiensPose:
    """A randomly initialised Sapiens pose model of a published size (``0.3b`` .. ``2b``).

    Build under ``torch.device("meta")`` to count the parameters of the large sizes without
    allocating them.
    """
    key = arch.lower().removeprefix("sapiens_")
    try:
        base = ARCHS[key]
    except KeyError:
        raise KeyError(f"unknown Sapiens arch {arch!r}; expected one of {sorted(ARCHS)}") from None
    return SapiensPose(replace(base, num_keypoints=num_keypoints, **overrides))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- checkpoint conversion ----------------------------------------------------------------------

_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), r)
    for p, r in (
        (r"^backbone\.patch_embed\.projection\.(weight|bias)$", r"backbone.patch_embed.\1"),
        (r"^backbone\.pos_embed$", "backbone.pos_embed"),
        (r"^backbone\.layers\.(\d+)\.ln1\.(weight|bias)$", r"backbone.blocks.\1.norm1.\2"),
        (r"^backbone\.layers\.(\d+)\.ln2\.(weight|bias)$", r"backbone.blocks.\1.norm2.\2"),
        (r"^backbone\.layers\.(\d+)\.attn\.(qkv|proj)\.(weight|bias)$", r"backbone.blocks.\1.attn.\2.\3"),
        (r"^backbone\.layers\.(\d+)\.ffn\.layers\.0\.0\.(weight|bias)$", r"backbone.blocks.\1.mlp.fc1.\2"),
        (r"^backbone\.layers\.(\d+)\.ffn\.layers\.1\.(weight|bias)$", r"backbone.blocks.\1.mlp.fc2.\2"),
        (r"^backbone\.ln1\.(weight|bias)$", r"backbone.norm.\1"),
        (r"^head\.final_layer\.(weight|bias)$", r"head.final.\1"),
    )
)


def _head_key(key: str) -> str | None:
    # HeatmapHead's Sequentials hold (layer, InstanceNorm, SiLU) triples: layer i sits at 3 * i.
    m = re.match(r"^head\.(deconv|conv)_layers\.(\d+)\.(weight|bias)$", key)
    if m is None or int(m.group(2)) % 3:
        return None
    return f"head.{m.group(1)}s.{int(m.group(2)) // 3}.{m.group(3)}"


def _rename(key: str) -> str | None:
    for pat, rep in _RULES:
        if pat.match(key):
            return pat.sub(rep, key)
    return _head_key(key)


def _infer_config(sd: Mapping[str, Tensor], img_size: tuple[int, int] | None, num_heads: int | None) -> SapiensConfig:
    try:
        c = sd["backbone.patch_embed.projection.weight"].shape[0]
        k = sd["head.final_layer.weight"].shape[0]
    except KeyError as e:
        raise ConversionError(f"not a Sapiens pose state dict: missing {e.args[0]!r}") from None
    depth = 1 + max(int(m.group(1)) for key in sd if (m := re.match(r"^backbone\.layers\.(\d+)\.", key)))
    arch = next((a for a, cfg in ARCHS.items() if (cfg.embed_dim, cfg.depth) == (c, depth)), None)
    if arch is not None:
        base = ARCHS[arch]
    elif num_heads is not None:
        base = SapiensConfig(embed_dim=c, depth=depth, num_heads=num_heads)
    else:
        raise ConversionError(f"no published Sapiens size has embed dim {c} and depth {depth}; give num_heads")
    if num_heads is not None and num_heads != base.num_heads:
        raise ConversionError(f"Sapiens {c}/{depth} has {base.num_heads} heads, not {num_heads}")
    n_deconv = sum(1 for key in sd if re.match(r"^head\.deconv_layers\.\d+\.weight$", key))
    n_conv = sum(1 for key in sd if re.match(r"^head\.conv_layers\.\d+\.weight$", key))
    channels = sd["head.final_layer.weight"].shape[1]
    cfg = replace(base, num_keypoints=k, head_channels=channels, num_deconv=n_deconv, num_conv=n_conv)
    return replace(cfg, img_size=img_size) if img_size is not None else cfg


def from_sapiens_checkpoint(
    state_dict: Mapping[str, Any], *, img_size: tuple[int, int] | None = None, num_heads: int | None = None
) -> tuple[SapiensConfig, dict[str, Tensor]]:
    """Convert a Sapiens pose checkpoint (mmpose layout) to :class:`SapiensPose` keys, strictly.

    Accepts the raw state dict or a ``{"state_dict": ...}`` wrapper. The size is inferred from the
    tensors (a published embed dim / depth gives its head count; any other needs ``num_heads``);
    ``img_size`` defaults to 1024x768. Returns the inferred config
    and the renamed tensors; raises :class:`ConversionError` on any unknown, missing or
    mis-shaped key. A position table with one extra leading row (a pre-training class token's) has
    that row dropped, as the reference loader does.
    """
    sd = state_dict.get("state_dict", state_dict) if isinstance(state_dict, Mapping) else state_dict
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    cfg = _infer_config(sd, img_size, num_heads)
    out: dict[str, Tensor] = {}
    unknown = []
    for key, value in sd.items():
        new = _rename(key)
        if new is None:
            unknown.append(key)
        else:
            out[new] = value
    if unknown:
        raise ConversionError(f"unexpected keys in Sapiens checkpoint: {sorted(unknown)[:10]}")
    with torch.device("meta"):
        expected = {k: v.shape for k, v in SapiensPose(cfg).state_dict().items()}
    pos = out.get("backbone.pos_embed")
    if pos is not None and pos.shape[1] == expected["backbone.pos_embed"][1] + 1:
        out["backbone.pos_embed"] = pos[:, 1:]
    missing = sorted(set(expected) - set(out))
    if missing:
        raise ConversionError(f"missing keys for Sapiens {cfg.embed_dim}/{cfg.depth}: {missing[:10]}")
    bad = [(k, tuple(out[k].shape), tuple(s)) for k, s in expected.items() if out[k].shape != s]
    if bad:
        raise ConversionError(f"shape mismatch (key, checkpoint, model): {bad[:5]}")
    return cfg, out


def load_sapiens(
    state_dict: Mapping[str, Any], *, img_size: tuple[int, int] | None = None, num_heads: int | None = None
) -> SapiensPose:
    """Build a :class:`SapiensPose` from a checkpoint (see :func:`from_sapiens_checkpoint`)."""
    cfg, sd = from_sapiens_checkpoint(state_dict, img_size=img_size, num_heads=num_heads)
    model = SapiensPose(cfg)
    model.load_state_dict(sd, strict=True)
    return model.eval()
