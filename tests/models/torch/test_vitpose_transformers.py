"""ViTPose against Hugging Face ``transformers``: converted weights give the same heatmaps.

``VitPoseForPoseEstimation`` is built from a config with random weights (no download), its state
dict goes through :func:`~posekit.models.torch.convert.from_transformers_vitpose` /
:func:`~posekit.models.torch.convert.load_vitpose`, is loaded strictly into posekit's ``VitPose``
of the same shape, and both run on the same random input.

``transformers`` is optional. Locally the tests skip without it; under ``CI=true`` they must run
when ``transformers`` is listed in the ``test`` extra of ``pyproject.toml`` (a missing package is
then an error) and skip, saying so, when it is not listed.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest

PYPROJECT = Path(__file__).resolve().parents[3] / "pyproject.toml"


def _in_test_extra(name: str) -> bool:
    extras = tomllib.loads(PYPROJECT.read_text())["project"].get("optional-dependencies", {})
    return any(re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0].lower() == name for req in extras.get("test", []))


if os.environ.get("CI", "").strip().lower() == "true":
    import torch  # CI installs torch: a missing torch must fail there, not skip

    if not _in_test_extra("transformers"):
        pytest.skip("CI=true and transformers is not in the 'test' extra of pyproject.toml", allow_module_level=True)
    import transformers  # listed in the test extra: a missing package must fail under CI
else:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip(
        "transformers", reason="transformers is not installed (pip install transformers; no weights are downloaded)"
    )

from posekit.models.torch.convert import from_transformers_vitpose, load_vitpose  # noqa: E402  (after the import guard)
from posekit.models.torch.vitpose import VitPose, VitPoseConfig  # noqa: E402

HIDDEN, DEPTH, HEADS = 384, 2, 12  # ViT-S width and heads, fewer blocks
IMG = (256, 192)
KEYPOINTS = 17


def _hf_model(simple: bool, *, heads: int = HEADS, seed: int = 0) -> torch.nn.Module:
    """A random ``VitPoseForPoseEstimation``; every parameter and BN statistic is perturbed."""
    backbone = transformers.VitPoseBackboneConfig(
        image_size=list(IMG),
        patch_size=[16, 16],
        hidden_size=HIDDEN,
        num_hidden_layers=DEPTH,
        num_attention_heads=heads,
        mlp_ratio=4,
        qkv_bias=True,
        layer_norm_eps=1e-6,  # the published ViTPose configs; the class default is 1e-12
        out_indices=[DEPTH],  # the last block's output (after the final LayerNorm)
    )
    cfg = transformers.VitPoseConfig(backbone_config=backbone, use_simple_decoder=simple, num_labels=KEYPOINTS)
    model = transformers.VitPoseForPoseEstimation(cfg)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        # The library's init leaves LayerNorm / BN at identity and biases at zero, which would hide
        # a swapped weight/bias or a missed statistic: give every tensor distinct random values.
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if name.endswith(("layernorm_before.weight", "layernorm_after.weight", "layernorm.weight")) or (
                "batchnorm" in name and name.endswith("weight")
            ):
                p.copy_(1.0 + 0.2 * noise)
            elif name == "head.conv.weight":
                p.copy_(0.01 * noise)  # heatmaps of order 1, as trained models give
            else:
                p.copy_(0.05 * noise)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=gen))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=gen))
    return model.eval()


def _posekit_config(simple: bool, heads: int = HEADS) -> VitPoseConfig:
    return VitPoseConfig(
        embed_dim=HIDDEN,
        depth=DEPTH,
        num_heads=heads,
        img_size=IMG,
        decoder="simple" if simple else "classic",
        num_keypoints=KEYPOINTS,
    )


def _max_diff(ours: torch.nn.Module, theirs: torch.nn.Module, dtype: torch.dtype) -> tuple[float, float]:
    x = torch.randn(2, 3, *IMG, generator=torch.Generator().manual_seed(1), dtype=dtype)
    ours, theirs = ours.to(dtype), theirs.to(dtype)
    with torch.no_grad():
        ref = theirs(pixel_values=x).heatmaps
        got = ours(x)
    assert got.shape == ref.shape == (2, KEYPOINTS, IMG[0] // 4, IMG[1] // 4)
    return (got - ref).abs().max().item(), ref.abs().max().item()


@pytest.mark.parametrize("simple", [False, True], ids=["classic", "simple"])
def test_from_transformers_matches_hf(simple: bool) -> None:
    hf = _hf_model(simple)
    cfg = _posekit_config(simple)
    res = from_transformers_vitpose(hf.state_dict(), config=cfg)
    assert res.ok, res.report()
    assert not res.ignored
    ours = VitPose(cfg)
    ours.load_state_dict(res.state_dict, strict=True)
    ours.eval()
    diff, scale = _max_diff(ours, hf, torch.float32)
    assert scale > 0.1  # the heatmaps are not trivially small
    assert diff <= 1e-5, f"max |posekit - transformers| = {diff:.3g} (heatmap scale {scale:.3g})"
    # In float64 the two graphs agree to rounding: any real difference (a LayerNorm eps, a
    # position-embedding slot, a q/k/v order) would show far above this bound.
    diff64, _ = _max_diff(ours, hf, torch.float64)
    assert diff64 <= 1e-10, f"float64 max |posekit - transformers| = {diff64:.3g}"


@pytest.mark.parametrize("simple", [False, True], ids=["classic", "simple"])
def test_load_vitpose_infers_shape_from_hf_state_dict(simple: bool) -> None:
    # Width, depth, decoder, keypoints and input size come from the tensors; the head count is not in
    # them: a published size of the same width gives it (ViT-S: 384 wide, 12 heads), and config=
    # overrides it for anything else (here a 6-head model of the same width).
    hf = _hf_model(simple, heads=HIDDEN // 64)
    guessed = load_vitpose(hf.state_dict())
    assert guessed.cfg.num_heads == HEADS
    ours = load_vitpose(hf.state_dict(), config=_posekit_config(simple, heads=HIDDEN // 64))
    assert ours.cfg == _posekit_config(simple, heads=HIDDEN // 64)
    diff, _ = _max_diff(ours, hf, torch.float32)
    assert diff <= 1e-5, f"max |posekit - transformers| = {diff:.3g}"


def test_load_vitpose_vit_s_width_keeps_12_heads() -> None:
    hf = _hf_model(False)
    ours = load_vitpose(hf.state_dict())
    assert ours.cfg.num_heads == HEADS
