"""Checkpoint converters: published ViTPose state dicts -> :class:`~posekit.models.torch.vitpose.VitPose`.

Three layouts are read (``layout=`` names them in :func:`load_vitpose`):

* ``"mmpose"``, ``from_mmpose_vitpose``: the reference repository's checkpoints (``ViTAE-Transformer/ViTPose``,
  mmpose 0.x): ``backbone.patch_embed.proj.*``, ``backbone.pos_embed``,
  ``backbone.blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*``, ``backbone.last_norm.*``,
  and ``keypoint_head.deconv_layers.{0,1,3,4}.*`` + ``keypoint_head.final_layer.*`` (classic
  decoder) or ``keypoint_head.final_layer.*`` alone, a 3x3 conv (simple decoder).
* ``"mmpose1"``, ``from_mmpose1_vitpose``: mmpose 1.x checkpoints, the files on OpenMMLab's
  download server (``download.openmmlab.com/mmpose/v1/.../td-hm_ViTPose-*``). The backbone is
  mmpretrain's ``VisionTransformer`` (``with_cls_token=False``, ``patch_cfg=dict(padding=2)``):
  ``backbone.patch_embed.projection.*``, ``backbone.pos_embed`` (one row per patch, no class
  slot), ``backbone.layers.N.{ln1, attn.qkv, attn.proj, ln2, ffn.layers.0.0, ffn.layers.1}.*``,
  ``backbone.ln1.*``; the head is mmpose 1.x's ``HeatmapHead``: ``head.deconv_layers.{0,1,3,4}.*``
  + ``head.final_layer.*`` (classic) or ``head.final_layer.*`` alone, a 3x3 conv after the
  parameter-free ``FeatureMapProcessor`` neck (ReLU, bilinear x4) of the simple decoder. Files are
  ``{"meta": ..., "state_dict": ...}``. posekit's ViT adds the table's first row to every patch;
  for this layout that row is zero, so the numbers are mmpretrain's. A table with one extra row
  (a converted reference checkpoint) has it dropped, as mmpretrain's loader does.
* ``"transformers"``, ``from_transformers_vitpose``: Hugging Face ``VitPoseForPoseEstimation``:
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

import collections
import pickle
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from posekit.models.torch.vitpose import ARCHS, VitPose, VitPoseConfig

__all__ = [
    "LAYOUTS",
    "ConversionError",
    "ConvertedCheckpoint",
    "from_mmpose1_vitpose",
    "from_mmpose_vitpose",
    "from_transformers_vitpose",
    "guess_layout",
    "load_vitpose",
    "read_checkpoint",
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
    sd: Mapping[str, Tensor], *, patch: str, pos: str, block_rx: str, final: str, deconv: str, extra_tokens: int = 1
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
    tokens = int(pe.shape[1]) - extra_tokens
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


# --- mmpose 1.x (OpenMMLab's download server) -------------------------------------------------

_MMPOSE1_LAYER = r"backbone\.layers\.(\d+)\."
_MMPOSE1_RULES: list[tuple[str, str]] = [
    (r"backbone\.patch_embed\.projection\.(weight|bias)", r"backbone.patch_embed.\1"),
    (_MMPOSE1_LAYER + r"ln1\.(weight|bias)", r"backbone.blocks.\1.norm1.\2"),
    (_MMPOSE1_LAYER + r"ln2\.(weight|bias)", r"backbone.blocks.\1.norm2.\2"),
    (_MMPOSE1_LAYER + r"attn\.(qkv|proj)\.(weight|bias)", r"backbone.blocks.\1.attn.\2.\3"),
    (_MMPOSE1_LAYER + r"ffn\.layers\.0\.0\.(weight|bias)", r"backbone.blocks.\1.mlp.fc1.\2"),
    (_MMPOSE1_LAYER + r"ffn\.layers\.1\.(weight|bias)", r"backbone.blocks.\1.mlp.fc2.\2"),
    (r"backbone\.ln1\.(weight|bias)", r"backbone.norm.\1"),
    (r"head\.deconv_layers\.0\.weight", r"head.deconv1.weight"),
    (r"head\.deconv_layers\.1\." + _BN, r"head.bn1.\1"),
    (r"head\.deconv_layers\.3\.weight", r"head.deconv2.weight"),
    (r"head\.deconv_layers\.4\." + _BN, r"head.bn2.\1"),
    (r"head\.final_layer\.(weight|bias)", r"head.final.\1"),
]


def _is_grid(tokens: int) -> bool:
    """Whether ``tokens`` is an ``h x w`` grid with ``3h == 4w`` (the 4:3 crops ViTPose is trained on)."""
    return any(tokens % h == 0 and 3 * h == 4 * (tokens // h) for h in range(1, tokens + 1))


def from_mmpose1_vitpose(
    state_dict: Mapping[str, Any], *, config: VitPoseConfig | None = None, strict: bool = True
) -> ConvertedCheckpoint:
    """Convert an mmpose 1.x ViTPose checkpoint (mmpretrain ``VisionTransformer`` + ``HeatmapHead``).

    See the module docstring for the keys. ``pos_embed`` has one row per patch; posekit's table gets
    a zero row in front (added to every patch: no change). A table with one row more than the grid
    (a converted reference checkpoint) loses its first row, as mmpretrain's own loader does, and
    that row is reported as ``ignored``.
    """
    sd = _unwrap(state_dict)
    pe = sd.get("backbone.pos_embed")
    extra = 0
    if pe is not None and pe.ndim == 3:
        n = int(pe.shape[1])
        if config is not None:
            gh, gw = config.grid
            extra = n - gh * gw if n - gh * gw in (0, 1) else 0
        elif not _is_grid(n) and _is_grid(n - 1):
            extra = 1
    cfg = config or _infer_config(
        sd,
        patch="backbone.patch_embed.projection.weight",
        pos="backbone.pos_embed",
        block_rx=_MMPOSE1_LAYER,
        final="head.final_layer.weight",
        deconv="head.deconv_layers.0.weight",
        extra_tokens=extra,
    )

    def pos(key: str, val: Tensor, out: dict[str, Tensor]) -> bool:
        if key != "backbone.pos_embed":
            return False
        if extra:
            ignored_rows.append("backbone.pos_embed[:, 0] (class-token slot, dropped as mmpretrain does)")
            val = val[:, extra:]
        out[key] = torch.cat([val.new_zeros(val.shape[0], 1, val.shape[2]), val], dim=1) if val.ndim == 3 else val
        return True

    ignored_rows: list[str] = []
    out, unexpected, ignored = _convert(sd, _MMPOSE1_RULES, ignore=("backbone.cls_token",), special=pos)
    return _finish(out, unexpected, ignored + ignored_rows, cfg, strict)


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


LAYOUTS: dict[str, Callable[..., ConvertedCheckpoint]] = {
    "mmpose": from_mmpose_vitpose,
    "mmpose1": from_mmpose1_vitpose,
    "transformers": from_transformers_vitpose,
}


def guess_layout(state_dict: Mapping[str, Any]) -> str:
    """The layout a ViTPose checkpoint's keys point to (``"mmpose"`` when nothing else fits)."""
    keys = _unwrap(state_dict).keys()
    if any(k.startswith("backbone.embeddings.") for k in keys):
        return "transformers"
    if any(k.startswith("backbone.layers.") for k in keys) or "head.final_layer.weight" in keys:
        return "mmpose1"
    return "mmpose"


def load_vitpose(
    state_dict: Mapping[str, Any],
    layout: str | None = None,
    *,
    config: VitPoseConfig | None = None,
    strict: bool = True,
) -> VitPose:
    """Build a ``VitPose`` from a checkpoint in one of :data:`LAYOUTS` (guessed from the keys when ``None``).

    ``config`` overrides what is inferred from the tensors (the head count, for one, is not in them:
    a transformers ``config.json`` gives ``num_attention_heads``)."""
    if layout is None:
        layout = guess_layout(state_dict)
    try:
        convert = LAYOUTS[layout]
    except KeyError:
        raise KeyError(f"unknown checkpoint layout {layout!r}; expected one of {sorted(LAYOUTS)}") from None
    res = convert(state_dict, config=config, strict=strict)
    model = VitPose(res.config)
    model.load_state_dict(res.state_dict, strict=strict)
    return model.eval()


# --- reading checkpoint files ------------------------------------------------------------------


class _Opaque(dict):  # type: ignore[type-arg]
    """Stands in for any non-tensor object of a checkpoint's metadata (mmengine configs, numpy
    arrays, ...): it accepts whatever the pickle stream does to it and runs no code."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Opaque:
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def __setstate__(self, state: Any) -> None:
        self["__state__"] = state

    def append(self, item: Any) -> None:
        self.setdefault("__items__", []).append(item)

    def extend(self, items: Any) -> None:
        self.setdefault("__items__", []).extend(items)


def _opaque_global(name: str) -> type[_Opaque]:
    return type(name, (_Opaque,), {})


class _TensorsOnlyUnpickler(pickle.Unpickler):
    """Resolves torch's tensor-rebuilding functions and ``OrderedDict``; every other global becomes an
    inert :class:`_Opaque` (nothing outside torch is imported or called)."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name.startswith("_rebuild_"):
            return getattr(torch._utils, name)
        if module == "torch" and (name == "Size" or isinstance(getattr(torch, name, None), torch.dtype)):
            return getattr(torch, name)
        return _opaque_global(f"{module}.{name}")


class _tensors_only_pickle:  # a stand-in for the ``pickle`` module, as torch.load's pickle_module
    Unpickler = _TensorsOnlyUnpickler
    __name__ = "posekit_tensors_only_pickle"

    @staticmethod
    def load(f: Any, **kwargs: Any) -> Any:
        return _TensorsOnlyUnpickler(f, **kwargs).load()


def read_checkpoint(path: str | Path) -> dict[str, Tensor]:
    """The tensors of a ``.pth`` / ``.safetensors`` checkpoint, unwrapping ``{"state_dict": ...}``.

    ``.pth`` files are read with ``torch.load(weights_only=True)``. Training checkpoints whose
    metadata holds other objects (mmpose 1.x and Sapiens files carry mmengine configs and numpy
    arrays in ``meta``) are then read again with an unpickler that rebuilds tensors only and turns
    every other object into an inert placeholder, so no code from the file runs and mmengine is
    not needed.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ImportError(f"{path} is a safetensors file; install safetensors to read it") from None
        return dict(load_file(str(path)))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        obj = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_tensors_only_pickle)
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
    if not isinstance(obj, Mapping):
        raise TypeError(f"{path}: expected a state dict, got {type(obj).__name__}")
    return {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}
