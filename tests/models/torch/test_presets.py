"""Checkpoint presets: registered official weights (not pinned), their download and offline errors,
the Sapiens presets, and reading the network for export.

No published checkpoint is reachable here. Downloads come from a local HTTP server on 127.0.0.1;
networks are random, of the real layouts, and shrunk (monkeypatched size tables) where the test
needs no real size.
"""

from __future__ import annotations

import dataclasses
import os
import re
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest

if os.environ.get("CI") == "true":
    import torch  # CI installs torch: a missing torch must fail there, not skip
else:
    torch = pytest.importorskip("torch")

import posekit
from posekit.models import MODELS
from posekit.models.torch import presets, sapiens
from posekit.models.torch.estimator import IMAGENET_MEAN, TorchHeatmapEstimator
from posekit.models.torch.presets import (
    CHECKPOINT_PRESETS,
    CheckpointRequiredError,
    CheckpointUnavailableError,
    load_network,
)
from posekit.models.torch.sapiens import SapiensConfig, SapiensPose
from posekit.models.torch.vitpose import VitPose, VitPoseConfig
from posekit.pipeline import TopDown
from posekit.weights import REGISTRY, UrlSource, WeightsUnavailableError, get_entry, recorded_sha256

TINY_VIT = VitPoseConfig(embed_dim=64, depth=2, num_heads=4)
TINY_SAPIENS = SapiensConfig(embed_dim=64, depth=2, num_heads=4, head_channels=16)


def _rename(sd: dict[str, torch.Tensor], rules: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
    out = {}
    for key, val in sd.items():
        for rx, tpl in rules:
            if re.fullmatch(rx, key):
                key = re.sub(rx, tpl, key)
                break
        out[key] = val.clone()
    return out


_MMPRETRAIN_VIT = [
    (r"backbone\.patch_embed\.(weight|bias)", r"backbone.patch_embed.projection.\1"),
    (r"backbone\.blocks\.(\d+)\.norm1\.(.*)", r"backbone.layers.\1.ln1.\2"),
    (r"backbone\.blocks\.(\d+)\.norm2\.(.*)", r"backbone.layers.\1.ln2.\2"),
    (r"backbone\.blocks\.(\d+)\.attn\.(.*)", r"backbone.layers.\1.attn.\2"),
    (r"backbone\.blocks\.(\d+)\.mlp\.fc1\.(.*)", r"backbone.layers.\1.ffn.layers.0.0.\2"),
    (r"backbone\.blocks\.(\d+)\.mlp\.fc2\.(.*)", r"backbone.layers.\1.ffn.layers.1.\2"),
    (r"backbone\.norm\.(.*)", r"backbone.ln1.\1"),
    (r"head\.final\.(.*)", r"head.final_layer.\1"),
]


def mmpose1_checkpoint(model: VitPose) -> dict[str, torch.Tensor]:
    """``model`` under mmpose 1.x key names (the files on OpenMMLab's server)."""
    sd = _rename(
        model.state_dict(),
        [
            *_MMPRETRAIN_VIT,
            (r"head\.deconv1\.(.*)", r"head.deconv_layers.0.\1"),
            (r"head\.bn1\.(.*)", r"head.deconv_layers.1.\1"),
            (r"head\.deconv2\.(.*)", r"head.deconv_layers.3.\1"),
            (r"head\.bn2\.(.*)", r"head.deconv_layers.4.\1"),
        ],
    )
    sd["backbone.pos_embed"] = sd["backbone.pos_embed"][:, 1:] + sd["backbone.pos_embed"][:, :1]
    return sd


def sapiens_checkpoint(model: SapiensPose) -> dict[str, torch.Tensor]:
    """``model`` under Sapiens' (mmpretrain + HeatmapHead) key names; the head's Sequentials hold
    (layer, norm, activation) triples, so layer j sits at index 3 * j."""
    sd = _rename(model.state_dict(), _MMPRETRAIN_VIT)
    out = {}
    for key, val in sd.items():
        m = re.fullmatch(r"head\.(deconv|conv)s\.(\d+)\.(.*)", key)
        out[f"head.{m.group(1)}_layers.{3 * int(m.group(2))}.{m.group(3)}" if m else key] = val
    return out


def _save(path: Path, sd: dict[str, torch.Tensor]) -> Path:
    # like the released files: a training checkpoint with non-tensor metadata
    torch.save({"meta": {"dataset_meta": {"flip_indices": np.arange(3)}, "epoch": 210}, "state_dict": sd}, path)
    return path


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("POSEKIT_CACHE", str(root))
    get_entry("openpose-mobilenet-thin")  # built-in entries loaded before tests patch some
    return root


@pytest.fixture
def tiny_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    """vitpose-s and sapiens-0.3b accept tiny networks of the same layouts."""
    monkeypatch.setitem(presets._VITPOSE_SIZES, "s", (TINY_VIT.embed_dim, TINY_VIT.depth))
    monkeypatch.setitem(sapiens.ARCHS, "0.3b", TINY_SAPIENS)


def _closed_port_url(name: str) -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{name}"


@pytest.fixture
def file_server(http_server: Any) -> Any:
    return http_server({})


# --- the registry ---------------------------------------------------------------------------------


def test_every_checkpoint_preset_has_registered_official_weights() -> None:
    assert {"vitpose-s", "vitpose-b", "vitpose-l", "vitpose-h", "fastpose-r50"} <= set(CHECKPOINT_PRESETS)
    sapiens_presets = {n for n in CHECKPOINT_PRESETS if n.startswith("sapiens-")}
    # 17 and 133 keypoints for every size; 308 for the three sizes published
    assert sapiens_presets == {
        *(f"sapiens-{s}" for s in ("0.3b", "0.6b", "1b", "2b")),
        *(f"sapiens-{s}-wholebody" for s in ("0.3b", "0.6b", "1b", "2b")),
        *(f"sapiens-{s}-308" for s in ("0.3b", "0.6b", "1b")),
    }
    for name, preset in CHECKPOINT_PRESETS.items():
        entry = get_entry(preset.weights)
        assert not entry.pinned, "nobody could check these files from here: they must not claim a digest"
        (src,) = entry.sources
        assert isinstance(src, UrlSource)
        assert src.url.startswith("https://")
        assert src.url.endswith(entry.filename) or "drive.usercontent.google.com" in src.url
        info = MODELS[name]
        assert preset.weights in info.weights
        assert info.family == "top-down"
    assert get_entry("vitpose-b-coco").sources[0].url == (  # type: ignore[union-attr]
        "https://download.openmmlab.com/mmpose/v1/body_2d_keypoint/topdown_heatmap/coco/"
        "td-hm_ViTPose-base_8xb64-210e_coco-256x192-216eae50_20230314.pth"
    )
    assert MODELS["sapiens-1b-308"].schema == "sapiens308"
    assert MODELS["sapiens-0.6b-wholebody"].schema == "coco_wholebody133"
    assert "non-commercial" in MODELS["sapiens-2b"].license


@pytest.mark.parametrize("name", sorted(CHECKPOINT_PRESETS))
def test_offline_presets_name_the_url_and_the_alternatives(
    name: str, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = get_entry(CHECKPOINT_PRESETS[name].weights)
    url = _closed_port_url(entry.filename)
    monkeypatch.setitem(REGISTRY, entry.name, dataclasses.replace(entry, sources=(UrlSource(url),)))
    with pytest.raises(CheckpointUnavailableError) as err:
        posekit.load(name, progress=False)
    msg = str(err.value)
    assert url in msg
    assert "unreachable" in msg
    assert "checkpoint=" in msg
    assert "--checkpoint FILE" in msg
    assert f"posekit weights fetch {entry.name} --from FILE" in msg
    assert isinstance(err.value, WeightsUnavailableError)  # the CLI prints it as a plain message
    with pytest.raises(CheckpointRequiredError, match="not a file"):
        posekit.load(name, checkpoint=cache / "absent.pth")


# --- download on first use, over HTTP -----------------------------------------------------------------


def test_vitpose_downloads_its_registered_checkpoint_once_then_trusts_the_record(
    cache: Path, tiny_sizes: None, file_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    model = VitPose(TINY_VIT).eval()
    entry = get_entry("vitpose-s-coco")
    ckpt = _save(tmp_path / entry.filename, mmpose1_checkpoint(model))
    file_server.files["/" + entry.filename] = ckpt.read_bytes()
    url = file_server.url("/" + entry.filename)
    monkeypatch.setitem(REGISTRY, entry.name, dataclasses.replace(entry, sources=(UrlSource(url),)))

    net = load_network("vitpose-s", progress=False)
    assert net.source.parent.parent == cache
    assert recorded_sha256(entry.name) is not None
    x = torch.randn(1, 3, 256, 192)
    with torch.no_grad():
        torch.testing.assert_close(net.model(x), model(x))
    assert (net.input_size, net.decode, net.mean, net.schema) == ((192, 256), "udp", IMAGENET_MEAN, "coco17")
    # second use: from the cache, checked against the record, no request
    load_network("vitpose-s", progress=False)
    assert file_server.requests == ["/" + entry.filename]
    # the file on the server changes: the cached copy is still the trusted one
    net.source.write_bytes(b"corrupted")
    file_server.files["/" + entry.filename] = b"something else entirely"
    with pytest.raises(CheckpointUnavailableError, match="recorded on first use"):
        load_network("vitpose-s", progress=False)


def test_unknown_preset_and_option_errors_name_the_allowed_values(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="expected one of"):
        load_network("vitpose-x")
    with pytest.raises(TypeError, match=r"its own options are \['layout'\]"):
        load_network("vitpose-s", tmp_path / "x.pth", decode="udp")


# --- Sapiens ---------------------------------------------------------------------------------------------


def _tiny_sapiens_file(tmp_path: Path, k: int) -> tuple[Path, SapiensPose]:
    torch.manual_seed(k)
    model = SapiensPose(dataclasses.replace(TINY_SAPIENS, num_keypoints=k)).eval()
    return _save(tmp_path / f"sapiens_{k}.pth", sapiens_checkpoint(model)), model


def test_sapiens_preset_runs_top_down_at_1024x768(tiny_sizes: None, tmp_path: Path, dev_set) -> None:  # type: ignore[no-untyped-def]
    path, model = _tiny_sapiens_file(tmp_path, 17)
    pipe = posekit.load("sapiens-0.3b", checkpoint=path, progress=False, flip_test=False)
    assert isinstance(pipe, TopDown)
    est = pipe.estimator
    assert isinstance(est, TorchHeatmapEstimator)
    assert (est.input_size, est.decode, est.alignment, est.schema.name) == ((768, 1024), "udp", "udp", "coco17")
    torch.testing.assert_close(est._mean.flatten(), torch.tensor(IMAGENET_MEAN))
    x = torch.randn(1, 3, 1024, 768)
    with torch.no_grad():
        out = est.model(x)
        torch.testing.assert_close(out, model(x))
    assert out.shape == (1, 17, 256, 192)
    image = posekit.read_image(dev_set.images / "000000040083.jpg")
    boxes = np.array([[50, 40, 300, 420]], dtype=np.float32)
    poses = pipe(image, boxes=boxes)
    assert poses.keypoints.shape == (1, 17, 2)
    np.testing.assert_array_equal(poses.boxes, boxes)


@pytest.mark.parametrize(("name", "k", "schema"), [("sapiens-0.3b-wholebody", 133, "coco_wholebody133"),
                                                   ("sapiens-0.3b-308", 308, "sapiens308")])  # fmt: skip
def test_sapiens_whole_body_presets_load_their_keypoints(
    name: str, k: int, schema: str, tiny_sizes: None, tmp_path: Path
) -> None:
    path, _ = _tiny_sapiens_file(tmp_path, k)
    net = load_network(name, path)
    assert net.schema == schema
    assert net.model.cfg.num_keypoints == k
    assert net.codec.startswith("UDP heatmaps 192x256")
    assert "sigma 6" in net.codec


def test_sapiens_checkpoints_of_another_size_or_keypoint_set_are_refused(tiny_sizes: None, tmp_path: Path) -> None:
    path, _ = _tiny_sapiens_file(tmp_path, 308)
    with pytest.raises(ValueError, match=r"predicts 308 keypoints; sapiens-0.3b has 17 .*sapiens-0.3b-308"):
        load_network("sapiens-0.3b", path)
    with pytest.raises(ValueError, match=r"Sapiens-0.6B \(width 1280, depth 32\)"):
        load_network("sapiens-0.6b-308", path)


def test_export_keeps_large_weights_in_one_external_data_file(tiny_sizes: None, tmp_path: Path) -> None:
    """Above the protobuf limit (Sapiens 0.6B and up) the tensors go to ``<name>.onnx.data``."""
    pytest.importorskip("onnxruntime")
    from posekit.models.torch.export import export_network

    path, _ = _tiny_sapiens_file(tmp_path, 17)
    net = load_network("sapiens-0.3b", path)
    out = tmp_path / "out" / "sapiens.onnx"
    export_network("sapiens-0.3b", net, out, protobuf_limit=0)  # verifies against PyTorch itself
    assert sorted(p.name for p in out.parent.iterdir()) == ["sapiens.onnx", "sapiens.onnx.data"]
    assert out.stat().st_size < out.with_name("sapiens.onnx.data").stat().st_size
