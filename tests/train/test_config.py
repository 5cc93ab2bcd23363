"""Training configuration: TOML files, overrides, and errors that name the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from posekit.train.config import TrainConfig, config_from_dict, load_config


def test_toml_file_with_overrides_and_relative_paths(tmp_path: Path):
    cfg_file = tmp_path / "sub" / "run.toml"
    cfg_file.parent.mkdir()
    cfg_file.write_text(
        'task = "topdown"\nsteps = 50\nout = "runs/x"\n'
        "[model]\nembed_dim = 64\ninput_size = [96, 128]\n"
        '[data]\ntrain = "data/train.json"\n'
        "[optim]\nlr = 1e-3\nmilestones = [10, 20]\n"
    )
    cfg = load_config(cfg_file, ["optim.lr=2e-4", "steps=7", "data.box_noise=jitter", "model.decoder=classic"])
    assert cfg.steps == 7
    assert cfg.optim.lr == 2e-4
    assert cfg.optim.milestones == (10, 20)
    assert cfg.model.embed_dim == 64
    assert cfg.model.input_size == (96, 128)
    assert cfg.model.decoder == "classic"
    assert cfg.data.train == str(cfg_file.parent.resolve() / "data" / "train.json")
    assert cfg.out == str(cfg_file.parent.resolve() / "runs" / "x")
    assert cfg.data.box_noise == "jitter"
    # the dict form round-trips
    assert config_from_dict(cfg.to_dict()) == cfg


def test_errors_name_the_problem(tmp_path: Path):
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['lr'\] in the config; allowed"):
        config_from_dict({"lr": 1.0})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['depht'\] in \[model\]"):
        config_from_dict({"model": {"depht": 3}})
    with pytest.raises(ValueError, match="task must be one of"):
        TrainConfig(task="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="trains with task='bottomup'"):
        config_from_dict({"model": {"kind": "openpose-mobilenet-thin"}})
    with pytest.raises(ValueError, match=r"data\.train"):
        load_config(None, [])
    with pytest.raises(ValueError, match="KEY=VALUE"):
        load_config(None, ["steps"])
    bad = tmp_path / "bad.toml"
    bad.write_text("steps = = 3\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_config(bad)


def test_fastpose_input_must_fit_its_stride():
    with pytest.raises(ValueError, match="multiples of 32"):
        config_from_dict({"model": {"kind": "fastpose", "input_size": [48, 64]}})
    assert config_from_dict({"model": {"kind": "fastpose", "input_size": [192, 256]}}).model.kind == "fastpose"
