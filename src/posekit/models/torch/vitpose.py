"""ViTPose (Xu et al., NeurIPS 2022) in PyTorch: a plain ViT backbone and a heatmap decoder.

The layout follows the paper and its reference configs (``ViTAE-Transformer/ViTPose``):

* patch embedding: a 16x16 convolution, stride 16, **padding 2** (a 256x192 crop gives a 16x12
  token grid), then absolute position embeddings. The table has one extra slot (the pre-training
  class token's); it is *added to every patch*, as the reference forward does, so checkpoints load
  unchanged and give the same numbers.
* ``depth`` pre-norm blocks ``x + DropPath(MHSA(LN(x)))``, ``x + DropPath(MLP(LN(x)))`` with a
  GELU MLP of ratio 4, qkv bias, LayerNorm eps 1e-6, and a final LayerNorm; optionally some blocks
  attend within non-overlapping windows of the token grid instead of globally.
* decoder ``classic``: 2 x [ConvTranspose2d 4x4 stride 2 (no bias) + BatchNorm + ReLU], then a
  1x1 convolution to K heatmaps; ``simple``: ReLU, bilinear x4 upsampling, a 3x3 convolution.

Both decoders give stride-4 heatmaps (64x48 for a 256x192 input). Architecture presets ``s``,
``b``, ``l``, ``h`` are the published embed dims / depths / heads; :data:`VITPOSE_SPEC` tells how to
feed the model and decode its output (ImageNet mean/std on RGB in [0, 1], UDP heatmaps, sigma 2).
Checkpoint converters are in :mod:`posekit.models.torch.convert`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from posekit.codecs.udp import UDPHeatmap
from posekit.schemas import COCO_17, KeypointSchema

__all__ = [
    "ARCHS",
    "VITPOSE_CHECKPOINTS",
    "VITPOSE_SPEC",
    "ClassicDecoder",
    "SimpleDecoder",
    "VitPose",
    "VitPoseBackbone",
    "VitPoseCheckpoint",
    "VitPoseConfig",
    "VitPoseSpec",
    "build_vitpose",
    "count_parameters",
    "spec_for",
]

Decoder = Literal["classic", "simple"]


def token_grid(img_size: tuple[int, int], patch: int, padding: int) -> tuple[int, int]:
    """Token grid ``(height, width)`` of a padded patch embedding of an ``(H, W)`` input."""
    h, w = img_size
    return (h + 2 * padding - patch) // patch + 1, (w + 2 * padding - patch) // patch + 1


@dataclass(frozen=True)
class VitPoseConfig:
    """Hyper-parameters of one ViTPose network.

    ``img_size`` is ``(height, width)`` as in the reference configs. ``window_size`` (tokens,
    ``(height, width)``) with ``window_blocks`` (block indices) makes those blocks attend within
    windows; ``None`` (the published COCO models) keeps every block global.
    """

    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    patch_size: int = 16
    patch_padding: int = 2
    img_size: tuple[int, int] = (256, 192)
    in_chans: int = 3
    drop_path_rate: float = 0.0
    layer_norm_eps: float = 1e-6
    decoder: Decoder = "classic"
    num_keypoints: int = 17
    deconv_channels: int = 256
    window_size: tuple[int, int] | None = None
    window_blocks: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not a multiple of num_heads {self.num_heads}")
        if self.decoder not in ("classic", "simple"):
            raise ValueError(f"decoder must be 'classic' or 'simple', got {self.decoder!r}")
        if self.window_blocks and self.window_size is None:
            raise ValueError("window_blocks needs a window_size")
        if any(not 0 <= i < self.depth for i in self.window_blocks):
            raise ValueError(f"window_blocks {self.window_blocks} are outside 0..{self.depth - 1}")

    @property
    def grid(self) -> tuple[int, int]:
        """The token grid ``(height, width)`` of an ``img_size`` input."""
        return token_grid(self.img_size, self.patch_size, self.patch_padding)

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """``(height, width)`` of the output heatmaps (4x the token grid)."""
        gh, gw = self.grid
        return 4 * gh, 4 * gw


# Published sizes (ViTPose paper, Table 1 / reference configs); drop-path rates of the COCO configs.
ARCHS: dict[str, VitPoseConfig] = {
    "s": VitPoseConfig(embed_dim=384, depth=12, num_heads=12, drop_path_rate=0.1),
    "b": VitPoseConfig(embed_dim=768, depth=12, num_heads=12, drop_path_rate=0.3),
    "l": VitPoseConfig(embed_dim=1024, depth=24, num_heads=16, drop_path_rate=0.5),
    "h": VitPoseConfig(embed_dim=1280, depth=32, num_heads=16, drop_path_rate=0.55),
}


@dataclass(frozen=True)
class VitPoseSpec:
    """How to run a ViTPose network: its keypoints, input, normalisation and heatmap codec.

    ``input_size`` is ``(width, height)``. Pixels are RGB scaled to ``[0, 1]``, then
    ``(x - mean) / std`` per channel. Keypoints decode into input-crop pixels with ``codec``.
    """

    schema: KeypointSchema = COCO_17
    input_size: tuple[int, int] = (192, 256)
    heatmap_size: tuple[int, int] = (48, 64)
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    channel_order: str = "RGB"
    codec: UDPHeatmap = field(default_factory=lambda: UDPHeatmap((192, 256), (48, 64), sigma=2.0, blur_kernel_size=11))


VITPOSE_SPEC = VitPoseSpec()


def spec_for(cfg: VitPoseConfig, schema: KeypointSchema = COCO_17) -> VitPoseSpec:
    """The spec of a COCO-style ViTPose of ``cfg``'s input size (UDP, sigma 2, blur 11)."""
    (ih, iw), (hh, hw) = cfg.img_size, cfg.heatmap_size
    if schema.num_keypoints != cfg.num_keypoints:
        raise ValueError(f"schema {schema.name} has {schema.num_keypoints} keypoints; the model {cfg.num_keypoints}")
    return VitPoseSpec(
        schema=schema, input_size=(iw, ih), heatmap_size=(hw, hh),
        codec=UDPHeatmap((iw, ih), (hw, hh), sigma=2.0, blur_kernel_size=11),
    )  # fmt: skip


@dataclass(frozen=True)
class VitPoseCheckpoint:
    """Where published ViTPose weights live, and how to read them.

    The ``vitpose-*`` presets use mmpose's files, registered as unpinned weights in
    :mod:`posekit.models.torch.presets`. These transformers-layout files are the alternatives for
    ViTPose-B (pass one as ``checkpoint=``); no digest was checked from here (no network), so
    ``sha256`` is ``None``. ``layout`` names the converter in :mod:`posekit.models.torch.convert`
    (``"transformers"``: ``from_transformers_vitpose``).
    """

    name: str
    url: str
    layout: str
    file_format: str
    arch: str
    decoder: Decoder
    license: str = "Apache-2.0"
    sha256: str | None = None


_HF = "https://huggingface.co/usyd-community/{}/resolve/main/model.safetensors"

# COCO-trained, 256x192, the plain (non-MoE) ViT-B. The ViTPose+ repositories are
# mixture-of-experts backbones, a different architecture, and are left out. The reference
# repository's own .pth files are OneDrive share links, which are not direct downloads.
VITPOSE_CHECKPOINTS: dict[str, VitPoseCheckpoint] = {
    c.name: c
    for c in (
        VitPoseCheckpoint(
            "vitpose-b-simple-coco", _HF.format("vitpose-base-simple"), "transformers", "safetensors", "b", "simple"
        ),
        VitPoseCheckpoint("vitpose-b-coco", _HF.format("vitpose-base"), "transformers", "safetensors", "b", "classic"),
    )
}


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample while training."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (q, k, v stacked in that order)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4).unbind(0)
        attn = torch.softmax((q * self.scale) @ k.transpose(-2, -1), dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


def _to_windows(x: Tensor, grid: tuple[int, int], win: tuple[int, int]) -> tuple[Tensor, tuple[int, int]]:
    """``(B, H*W, C)`` tokens -> ``(B * nWin, wh * ww, C)``, zero-padding the grid to whole windows."""
    b, _, c = x.shape
    (h, w), (wh, ww) = grid, win
    x = x.reshape(b, h, w, c)
    ph, pw = (-h) % wh, (-w) % ww
    if ph or pw:
        x = F.pad(x, (0, 0, 0, pw, 0, ph))
    hp, wp = h + ph, w + pw
    x = x.reshape(b, hp // wh, wh, wp // ww, ww, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, wh * ww, c), (hp, wp)


def _from_windows(
    x: Tensor, batch: int, grid: tuple[int, int], padded: tuple[int, int], win: tuple[int, int]
) -> Tensor:
    (h, w), (hp, wp), (wh, ww) = grid, padded, win
    c = x.shape[-1]
    x = x.reshape(batch, hp // wh, wp // ww, wh, ww, c).permute(0, 1, 3, 2, 4, 5).reshape(batch, hp, wp, c)
    return x[:, :h, :w].reshape(batch, h * w, c)


class Block(nn.Module):
    """Pre-norm transformer block; with ``window`` set, attention stays within grid windows."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        qkv_bias: bool,
        drop_path: float,
        eps: float,
        window: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        self.window = window
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor, grid: tuple[int, int]) -> Tensor:
        y = self.norm1(x)
        if self.window is None:
            y = self.attn(y)
        else:
            win, padded = _to_windows(y, grid, self.window)
            y = _from_windows(self.attn(win), x.shape[0], grid, padded, self.window)
        x = x + self.drop_path(y)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class VitPoseBackbone(nn.Module):
    """Plain ViT: ``(B, 3, H, W)`` -> feature map ``(B, C, H', W')`` (stride 16, padding 2)."""

    def __init__(self, cfg: VitPoseConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.embed_dim
        self.patch_embed = nn.Conv2d(
            cfg.in_chans, c, kernel_size=cfg.patch_size, stride=cfg.patch_size, padding=cfg.patch_padding
        )
        gh, gw = cfg.grid
        self.pos_embed = nn.Parameter(torch.zeros(1, gh * gw + 1, c))
        # Stochastic depth grows linearly from 0 at the first block to drop_path_rate at the last.
        rates = [cfg.drop_path_rate * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]
        windows = set(cfg.window_blocks)
        self.blocks = nn.ModuleList(
            Block(
                c,
                cfg.num_heads,
                cfg.mlp_ratio,
                cfg.qkv_bias,
                rates[i],
                cfg.layer_norm_eps,
                cfg.window_size if i in windows else None,
            )
            for i in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(c, eps=cfg.layer_norm_eps)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x)
        b, c, gh, gw = x.shape
        if not torch.jit.is_tracing() and gh * gw + 1 != self.pos_embed.shape[1]:
            raise ValueError(
                f"input {tuple(x.shape)} gives a {gh}x{gw} token grid; this model was built for "
                f"{self.cfg.grid} ({self.cfg.img_size[0]}x{self.cfg.img_size[1]} inputs)"
            )
        x = x.flatten(2).transpose(1, 2) + self.pos_embed[:, 1:] + self.pos_embed[:, :1]
        for blk in self.blocks:
            x = blk(x, (gh, gw))
        return self.norm(x).transpose(1, 2).reshape(b, c, gh, gw)


class ClassicDecoder(nn.Module):
    """2 x (deconv 4x4 s2 + BN + ReLU), then a 1x1 conv to the heatmaps (x4 upsampling)."""

    def __init__(self, in_channels: int, num_keypoints: int, channels: int = 256) -> None:
        super().__init__()
        self.deconv1 = nn.ConvTranspose2d(in_channels, channels, 4, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.deconv2 = nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.final = nn.Conv2d(channels, num_keypoints, 1)
        for m in (self.deconv1, self.deconv2, self.final):
            nn.init.normal_(m.weight, std=0.001)
        nn.init.zeros_(self.final.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.deconv1(x)))
        x = F.relu(self.bn2(self.deconv2(x)))
        return self.final(x)


class SimpleDecoder(nn.Module):
    """ReLU, bilinear x4 upsampling (``align_corners=False``), a 3x3 conv to the heatmaps."""

    def __init__(self, in_channels: int, num_keypoints: int) -> None:
        super().__init__()
        self.final = nn.Conv2d(in_channels, num_keypoints, 3, padding=1)
        nn.init.normal_(self.final.weight, std=0.001)
        nn.init.zeros_(self.final.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(F.relu(x), scale_factor=4.0, mode="bilinear", align_corners=False)
        return self.final(x)


class VitPose(nn.Module):
    """ViTPose: normalised ``(B, 3, H, W)`` crops -> heatmaps ``(B, K, H/4, W/4)``."""

    def __init__(self, cfg: VitPoseConfig | None = None, spec: VitPoseSpec | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or ARCHS["b"]
        self.spec = spec or spec_for(cfg)
        self.backbone = VitPoseBackbone(cfg)
        self.head: nn.Module
        if cfg.decoder == "classic":
            self.head = ClassicDecoder(cfg.embed_dim, cfg.num_keypoints, cfg.deconv_channels)
        else:
            self.head = SimpleDecoder(cfg.embed_dim, cfg.num_keypoints)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))


def build_vitpose(arch: str = "b", decoder: Decoder = "classic", **overrides: object) -> VitPose:
    """A randomly initialised ViTPose of a published size (``s``, ``b``, ``l``, ``h``)."""
    try:
        base = ARCHS[arch.lower()]
    except KeyError:
        raise KeyError(f"unknown ViTPose arch {arch!r}; expected one of {sorted(ARCHS)}") from None
    return VitPose(replace(base, decoder=decoder, **overrides))  # type: ignore[arg-type]


def count_parameters(model: nn.Module) -> int:
    """Number of learnable parameters (BatchNorm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters())
