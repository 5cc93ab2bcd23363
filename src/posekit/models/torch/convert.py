"""Checkpoint converters: published ViTPose state dicts -> :class:`~posekit.models.torch.vitpose.VitPose`.

Two layouts are read:

* ``from_mmpose_vitpose``: the reference repository's checkpoints (``ViTAE-Transformer/ViTPose``,
  mmpose 0.x): ``backbone.patch_embed.proj.*``, ``backbone.pos_embed``,
  ``backbone.blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*``, ``backbone.last_norm.*``,
  and ``keypoint_head.deconv_layers.{0,1,3,4}.*`` + ``keypoint_head.final_layer.*`` (classic
  decoder) or ``keypoint_head.final_layer.*`` alone, a 3x3 conv (simple decoder).
* ``from_transformers_vitpose``: Hugging Face ``VitPoseForPoseEstimation``:
  ``backbone.embeddings.{patch_embeddings.projection,position_embeddings}``,
  ``backbone.encoder.layer.N.{layernorm_before, attention.attention.{query,key,value},
  attention.output.dense, layernorm_after, mlp.fc1, mlp.fc2}``, ``backbone.layernorm``, and
  ``head.{deconv1,batchnorm1,deconv2,batchnorm2,conv}`` (classic) or ``head.conv`` (simple).

The network's size (width, depth, decoder, keypoints, input size) is read from the tensors'
shapes, unless a config is given. Conversion is strict: every key must be used, every parameter
and buffer of the target model must be produced, with its shape; otherwise :class:`ConversionError`
lists the missing, unexpected and mis-shaped keys (``strict=False`` returns them instead). Keys
that the reference models carry but never use at inference (the pre-training ``cls_token``) are
reported as ``ignored``, not unexpected. Mixture-of-experts (ViTPose+) checkpoints are not this
architecture: their expert keys come out as unexpected.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from posekit.models.torch.vitpose import ARCHS, VitPose, VitPoseConfig

__all__ = [
    "ConversionError",
    "ConvertedCheckpoint",
    "from_mmpose_vitpose",
    "from_transformers_vitpose",
    "load_vitpose",
]


class ConversionError(KeyError):
    """A checkpoint does not map one-to-one onto the target model."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass
class ConvertedCheckpoint:
    """The result of a conversion: a state dict for ``VitPose(config)`` and what did not fit."""

    state_dict: dict[str, Tensor]
    config: VitPoseConfig
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def report(self) -> str:
        parts = []
        for name, keys in (("missing", self.missing), ("unexpected", self.unexpected), ("mismatched", self.mismatched)):
            if keys:
                shown = ", ".join(keys[:12]) + (f", ... ({len(keys)} in all)" if len(keys) > 12 else "")
                parts.append(f"{name} keys: {shown}")
        return "; ".join(parts) or "all keys matched"

    def build(self) -> VitPose:
        """A ``VitPose`` with these weights, loaded strictly, in eval mode."""
        model = VitPose(self.config)
        model.load_state_dict(self.state_dict, strict=True)
        return model.eval()


# --- shared machinery -------------------------------------------------------------------------


def _unwrap(state_dict: Mapping[str, Any]) -> dict[str, Tensor]:
    """Accept a bare state dict or a training checkpoint ``{"state_dict": ..., "meta": ...}``."""
    if "state_dict" in state_dict and isinstance(state_dict["state_dict"], Mapping):
        state_dict = state_dict["state_dict"]
    elif "model" in state_dict and isinstance(state_dict["model"], Mapping):
        state_dict = state_dict["model"]
    return {k.removeprefix("module."): v for k, v in state_dict.items()}


def _expected(cfg: VitPoseConfig) -> dict[str, torch.Size]:
    """Names and shapes of every tensor in ``VitPose(cfg).state_dict()``, without allocating it."""
    with torch.device("meta"):
        model = VitPose(cfg)
    return {k: v.shape for k, v in model.state_dict().items()}


def _depth(keys: list[str], pattern: str) -> int:
    rx = re.compile(pattern)
    idx = [int(m.group(1)) for k in keys if (m := rx.match(k))]
    return max(idx) + 1 if idx else 0


def _infer_config(
    sd: Mapping[str, Tensor], *, patch: str, pos: str, block_rx: str, final: str, deconv: str
) -> VitPoseConfig:
    """Width, depth, decoder, keypoint count and input size from the checkpoint's own shapes."""
    try:
        proj, pe, fin = sd[patch], sd[pos], sd[final]
    except KeyError as exc:
        raise ConversionError(f"cannot infer the ViTPose size: the checkpoint has no {exc.args[0]!r}") from None
    dim, depth = int(proj.shape[0]), _depth(list(sd), block_rx)
    # Head counts are not in the tensors: a published size of this width and depth first, then one of
    # this width (ViT-S is 384 wide with 12 heads), else 64-wide heads; pass config= when in doubt.
    preset = next((a for a in ARCHS.values() if a.embed_dim == dim and a.depth == depth), None)
    same_width = next((a for a in ARCHS.values() if a.embed_dim == dim), None)
    heads = (preset or same_width).num_heads if (preset or same_width) else max(1, dim // 64)
    simple = deconv not in sd
    tokens = int(pe.shape[1]) - 1
    # The reference 256x192 crop gives a 16x12 grid; other inputs keep the 4:3 aspect ratio.
    gh = next((h for h in range(1, tokens + 1) if tokens % h == 0 and 3 * h >= 4 * (tokens // h)), tokens)
    gw = tokens // gh
    p = int(proj.shape[-1])
    base = preset or VitPoseConfig()
    return replace(
        base,
        embed_dim=dim,
        depth=depth,
        num_heads=heads,
        patch_size=p,
        img_size=(gh * p, gw * p),
        decoder="simple" if simple else "classic",
        num_keypoints=int(fin.shape[0]),
        deconv_channels=int(sd[deconv].shape[1]) if not simple else base.deconv_channels,
        drop_path_rate=0.0,
    )


def _finish(
    out: dict[str, Tensor], unexpected: list[str], ignored: list[str], cfg: VitPoseConfig, strict: bool
) -> ConvertedCheckpoint:
    want = _expected(cfg)
    missing = sorted(k for k in want if k not in out)
    extra = sorted(k for k in out if k not in want)
    mismatched = sorted(
        f"{k} {tuple(out[k].shape)} != {tuple(want[k])}" for k in out if k in want and out[k].shape != want[k]
    )
    res = ConvertedCheckpoint(
        state_dict={k: v for k, v in out.items() if k in want},
        config=cfg,
        missing=missing,
        unexpected=sorted(unexpected) + extra,
        mismatched=mismatched,
        ignored=sorted(ignored),
    )
    if strict and not res.ok:
        raise ConversionError(f"checkpoint does not match ViTPose {cfg.embed_dim}x{cfg.depth}: {res.report()}")
    return res


def _convert(
    sd: dict[str, Tensor],
    rules: list[tuple[str, str]],
    ignore: tuple[str, ...],
    special: Callable[[str, Tensor, dict[str, Tensor]], bool] | None = None,
) -> tuple[dict[str, Tensor], list[str], list[str]]:
    """Rename by the first matching ``(regex, template)``; ``special`` may consume a key itself."""
    compiled = [(re.compile(rx + r"\Z"), tpl) for rx, tpl in rules]
    out: dict[str, Tensor] = {}
    unexpected: list[str] = []
    ignored: list[str] = []
    for key, val in sd.items():
        if key in ignore:
            ignored.append(key)
            continue
        if special is not None and special(key, val, out):
            continue
        for rx, tpl in compiled:
            if m := rx.match(key):
                out[m.expand(tpl)] = val
                break
        else:
            unexpected.append(key)
    return out, unexpected, ignored


_BN = r"(weight|bias|running_mean|running_var|num_batches_tracked)"

# --- mmpose / reference ViTPose ---------------------------------------------------------------

_MMPOSE_RULES: list[tuple[str, str]] = [
    (r"backbone\.patch_embed\.proj\.(weight|bias)", r"backbone.patch_embed.\1"),
    (r"backbone\.pos_embed", r"backbone.pos_embed"),
    (r"backbone\.blocks\.(\d+)\.(norm1|norm2)\.(weight|bias)", r"backbone.blocks.\1.\2.\3"),
    (r"backbone\.blocks\.(\d+)\.attn\.(qkv|proj)\.(weight|bias)", r"backbone.blocks.\1.attn.\2.\3"),
    (r"backbone\.blocks\.(\d+)\.mlp\.(fc1|fc2)\.(weight|bias)", r"backbone.blocks.\1.mlp.\2.\3"),
    (r"backbone\.last_norm\.(weight|bias)", r"backbone.norm.\1"),
    (r"keypoint_head\.deconv_layers\.0\.weight", r"head.deconv1.weight"),
    (r"keypoint_head\.deconv_layers\.1\." + _BN, r"head.bn1.\1"),
    (r"keypoint_head\.deconv_layers\.3\.weight", r"head.deconv2.weight"),
    (r"keypoint_head\.deconv_layers\.4\." + _BN, r"head.bn2.\1"),
    (r"keypoint_head\.final_layer\.(weight|bias)", r"head.final.\1"),
]


def from_mmpose_vitpose(
    state_dict: Mapping[str, Any], *, config: VitPoseConfig | None = None, strict: bool = True
) -> ConvertedCheckpoint:
    """Convert a reference ViTPose checkpoint (``ViTAE-Transformer/ViTPose``, mmpose 0.x keys).

    ``state_dict`` may be the whole ``torch.load`` result (its ``"state_dict"`` is used). Raises
    :class:`ConversionError` on any missing, unexpected or mis-shaped key unless ``strict=False``.
    """
    sd = _unwrap(state_dict)
    cfg = config or _infer_config(
        sd,
        patch="backbone.patch_embed.proj.weight",
        pos="backbone.pos_embed",
        block_rx=r"backbone\.blocks\.(\d+)\.",
        final="keypoint_head.final_layer.weight",
        deconv="keypoint_head.deconv_layers.0.weight",
    )
    out, unexpected, ignored = _convert(sd, _MMPOSE_RULES, ignore=("backbone.cls_token",))
    return _finish(out, unexpected, ignored, cfg, strict)


# --- Hugging Face transformers ----------------------------------------------------------------

_HF_LAYER = r"backbone\.encoder\.layer\.(\d+)\."
_HF_RULES: list[tuple[str, str]] = [
    (r"backbone\.embeddings\.patch_embeddings\.projection\.(weight|bias)", r"backbone.patch_embed.\1"),
    (r"backbone\.embeddings\.position_embeddings", r"backbone.pos_embed"),
    (_HF_LAYER + r"layernorm_before\.(weight|bias)", r"backbone.blocks.\1.norm1.\2"),
    (_HF_LAYER + r"layernorm_after\.(weight|bias)", r"backbone.blocks.\1.norm2.\2"),
    (_HF_LAYER + r"attention\.output\.dense\.(weight|bias)", r"backbone.blocks.\1.attn.proj.\2"),
    (_HF_LAYER + r"mlp\.(fc1|fc2)\.(weight|bias)", r"backbone.blocks.\1.mlp.\2.\3"),
    (r"backbone\.layernorm\.(weight|bias)", r"backbone.norm.\1"),
    (r"head\.deconv1\.weight", r"head.deconv1.weight"),
    (r"head\.batchnorm1\." + _BN, r"head.bn1.\1"),
    (r"head\.deconv2\.weight", r"head.deconv2.weight"),
    (r"head\.batchnorm2\." + _BN, r"head.bn2.\1"),
    (r"head\.conv\.(weight|bias)", r"head.final.\1"),
]
_HF_QKV = re.compile(_HF_LAYER + r"attention\.attention\.(query|key|value)\.(weight|bias)\Z")


def from_transformers_vitpose(
    state_dict: Mapping[str, Any], *, config: VitPoseConfig | None = None, strict: bool = True
) -> ConvertedCheckpoint:
    """Convert a Hugging Face ``VitPoseForPoseEstimation`` state dict (``model.safetensors``).

    The separate query / key / value projections are stacked into one qkv projection (q, k, v in
    that order); a layer with only some of the three reports the others as missing.
    """
    sd = _unwrap(state_dict)
    cfg = config or _infer_config(
        sd,
        patch="backbone.embeddings.patch_embeddings.projection.weight",
        pos="backbone.embeddings.position_embeddings",
        block_rx=_HF_LAYER,
        final="head.conv.weight",
        deconv="head.deconv1.weight",
    )
    parts: dict[tuple[str, str], dict[str, Tensor]] = {}

    def qkv(key: str, val: Tensor, out: dict[str, Tensor]) -> bool:
        m = _HF_QKV.match(key)
        if m is None:
            return False
        parts.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = val
        return True

    out, unexpected, ignored = _convert(sd, _HF_RULES, ignore=(), special=qkv)
    missing_parts: list[str] = []
    for (layer, kind), got in sorted(parts.items()):
        names = ("query", "key", "value")
        if all(n in got for n in names):
            out[f"backbone.blocks.{layer}.attn.qkv.{kind}"] = torch.cat([got[n] for n in names], dim=0)
        else:
            missing_parts += [
                f"backbone.encoder.layer.{layer}.attention.attention.{n}.{kind}" for n in names if n not in got
            ]
    res = _finish(out, unexpected, ignored, cfg, strict=False)
    # A partial q/k/v triple leaves our qkv missing; name the source keys that are absent instead.
    if missing_parts:
        res.missing = sorted(set(res.missing) | set(missing_parts))
    if strict and not res.ok:
        raise ConversionError(f"checkpoint does not match ViTPose {cfg.embed_dim}x{cfg.depth}: {res.report()}")
    return res


_LAYOUTS: dict[str, Callable[..., ConvertedCheckpoint]] = {
    "mmpose": from_mmpose_vitpose,
    "transformers": from_transformers_vitpose,
}


def load_vitpose(
    state_dict: Mapping[str, Any],
    layout: str | None = None,
    *,
    config: VitPoseConfig | None = None,
    strict: bool = True,
) -> VitPose:
    """Build a ``VitPose`` from a checkpoint in either layout (guessed from the keys when ``None``).

    ``config`` overrides what is inferred from the tensors (the head count, for one, is not in them:
    a transformers ``config.json`` gives ``num_attention_heads``)."""
    if layout is None:
        keys = _unwrap(state_dict).keys()
        layout = "transformers" if any(k.startswith("backbone.embeddings.") for k in keys) else "mmpose"
    try:
        convert = _LAYOUTS[layout]
    except KeyError:
        raise KeyError(f"unknown checkpoint layout {layout!r}; expected one of {sorted(_LAYOUTS)}") from None
    res = convert(state_dict, config=config, strict=strict)
    model = VitPose(res.config)
    model.load_state_dict(res.state_dict, strict=strict)
    return model.eval()
