"""The training loop: one process or many (``torchrun``), CPU or GPU, resumable exactly.

``Trainer(cfg).fit()`` trains ``cfg.steps`` optimiser steps and writes into ``cfg.out``:

* ``last.pt`` — the full training state (model, AdamW moments, loss scaler, step, config), written
  atomically every ``checkpoint_every`` steps and at the end; ``fit(resume=True)`` continues from it.
* ``model.pt`` — the network alone, self-describing (``posekit eval --model trained --checkpoint``).
* ``metrics.csv`` (step, epoch, lr, loss, grad_norm, samples_per_s every ``log_every`` steps) and
  ``eval.csv`` (COCO AP/AR of the validation set, computed with :func:`posekit.eval.evaluate_keypoints`).
* ``config.json`` — the resolved configuration.

Exactness. Nothing random is carried between steps: a sample's augmentation depends only on
(seed, epoch, index) (see :mod:`posekit.train.data`), the learning rate only on the step, and the
torch generator (drop path) is reseeded from (seed, step, rank) before each step. So a run resumed
from step ``s`` performs exactly the computations the uninterrupted run performs after step ``s``,
and N ``torchrun`` processes see the same global batches as one process. With DDP, gradients are
averaged over processes; since losses are means over samples, that equals one process's gradient of
the whole batch (up to float summation order). BatchNorm layers (FastPose, the classic ViTPose
decoder) become SyncBatchNorm on CUDA; on CPU (gloo) their statistics are per process, so there
the equality holds for networks without BatchNorm (the simple-decoder ViTPose, MobileNet-thin).
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from posekit.train.build import build_model, model_pipeline, save_model_file
from posekit.train.config import TrainConfig, config_from_dict
from posekit.train.data import (
    BottomUpTrainSet,
    EpochSampler,
    IntegralTargets,
    StrideHeatmapTargets,
    TopDownTrainSet,
    collate,
)
from posekit.train.datasets import CocoKeypoints
from posekit.train.losses import heatmap_distillation, integral_l1, masked_l2_stages, weighted_mse
from posekit.train.optim import lr_factor, make_optimizer, set_lr

__all__ = ["CheckpointExistsError", "TrainResult", "Trainer"]

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "posekit-train"
METRIC_FIELDS = ("step", "epoch", "lr", "loss", "grad_norm", "samples_per_s")
EVAL_FIELDS = ("step", "AP", "AP50", "AP75", "APm", "APl", "AR")


class CheckpointExistsError(FileExistsError):
    """The output folder already holds a run and neither resuming nor overwriting was asked for."""


@dataclass
class TrainResult:
    out: Path
    step: int
    loss: float
    evaluations: list[dict[str, float]] = field(default_factory=list)


@dataclass(frozen=True)
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _dist_from_env() -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    return _Dist(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def _device(name: str, dist: _Dist) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if dev.type == "cuda" and dist.world > 1 and dev.index is None:
        dev = torch.device("cuda", dist.local_rank)
    return dev


def _image_dir(json_path: str, images: str | None) -> Path:
    return Path(images) if images else Path(json_path).parent / "images"


def _rewrite_csv_until(path: Path, step: int) -> None:
    """Drop rows logged after ``step`` (from a run that went on past its last checkpoint)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    keep = [rows[0]] + [r for r in rows[1:] if r and int(float(r[0])) <= step]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows(keep)
    os.replace(tmp, path)


class _CsvLog:
    def __init__(self, path: Path, fields: tuple[str, ...], enabled: bool) -> None:
        self.path, self.fields, self.enabled = path, fields, enabled

    def write(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        new = not self.path.exists()
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


class Trainer:
    """Trains the network of a :class:`~posekit.train.config.TrainConfig` (see the module docstring).

    ``progress`` shows a progress bar on the main process. Under ``torchrun`` (``WORLD_SIZE`` > 1) the
    process group is initialised here (gloo on CPU, nccl on CUDA) and torn down by :meth:`fit`.
    """

    def __init__(self, cfg: TrainConfig, *, progress: bool = True) -> None:
        self.cfg = cfg
        self.progress = progress
        self.dist = _dist_from_env()
        self.device = _device(cfg.device, self.dist)
        if cfg.threads:
            torch.set_num_threads(int(cfg.threads))
        if self.dist.world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            torch.distributed.init_process_group(backend=backend)
        self.out = Path(cfg.out)

        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        self.model = build_model(cfg.model, progress=progress and self.dist.main).to(self.device)
        self.model.train()
        # what the loss runs: the network itself, or (bottom-up) all its stages for intermediate supervision
        # (FastPose: its raw maps, whichever head decodes them at inference)
        self.net: nn.Module = {"vitpose": self.model, "fastpose": _Call(self.model, "forward_maps")}.get(
            cfg.model.kind, _Call(self.model, "stage_outputs")
        )
        if self.dist.world > 1:
            if self.device.type == "cuda":  # batch statistics over the global batch (SyncBatchNorm is CUDA-only)
                converted = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)  # replaces BN layers in place
                assert converted is self.model
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.net, device_ids=ids)

        coco = CocoKeypoints(cfg.data.train, _image_dir(cfg.data.train, cfg.data.train_images), schema=cfg.model.schema)
        self.dataset: torch.utils.data.Dataset[dict[str, torch.Tensor]]
        if cfg.model.kind == "vitpose":
            spec = self.model.spec  # type: ignore[attr-defined]
            self.dataset = TopDownTrainSet(coco, spec.codec, mean=spec.mean, std=spec.std, augment=cfg.data.augment,
                                           box_noise=_box_noise(cfg.data.box_noise), seed=cfg.seed)  # fmt: skip
        elif cfg.model.kind == "fastpose":
            from posekit.models.torch.estimator import ALPHAPOSE_MEAN, ALPHAPOSE_STD

            size = cfg.model.input_size
            targets = (
                IntegralTargets(size)
                if cfg.model.head == "integral"
                else StrideHeatmapTargets(size, sigma=cfg.model.sigma)
            )
            self.dataset = TopDownTrainSet(coco, targets, mean=ALPHAPOSE_MEAN, std=ALPHAPOSE_STD, augment=cfg.data.augment,
                                           box_noise=_box_noise(cfg.data.box_noise), seed=cfg.seed)  # fmt: skip
        else:
            self.dataset = BottomUpTrainSet(
                coco, input_size=cfg.model.input_size, augment=cfg.data.augment, seed=cfg.seed
            )
        self.sampler = EpochSampler(len(self.dataset), cfg.batch_size, seed=cfg.seed,  # type: ignore[arg-type]
                                    rank=self.dist.rank, world=self.dist.world)  # fmt: skip
        self.teacher: nn.Module | None = None
        if cfg.teacher:
            self.teacher = _load_teacher(cfg.teacher, self.model).to(self.device)
        o = cfg.optim
        self.optimizer = make_optimizer(self.model, lr=o.lr, weight_decay=o.weight_decay, betas=o.betas,
                                        layer_decay=o.layer_decay)  # fmt: skip
        self.amp_dtype = (torch.float16 if self.device.type == "cuda" else torch.bfloat16) if cfg.amp else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=bool(cfg.amp and self.device.type == "cuda"))
        self.step = 0
        self.metrics = _CsvLog(self.out / "metrics.csv", METRIC_FIELDS, self.dist.main)
        self.evals = _CsvLog(self.out / "eval.csv", EVAL_FIELDS, self.dist.main)

    # -- state ------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "version": 1,
            "config": self.cfg.to_dict(),
            "step": self.step,
            "model_state": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
        }

    def save_checkpoint(self) -> Path | None:
        """Write ``last.pt`` and ``model.pt`` (main process only); other ranks wait for it."""
        path = None
        if self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
            path = self.out / "last.pt"
            tmp = path.with_name("last.pt.tmp")
            torch.save(self.state_dict(), tmp)
            os.replace(tmp, path)
            save_model_file(self.out / "model.pt", self.model, self.cfg.model, self.cfg.task,
                            flip_augmented=self.cfg.data.augment)  # fmt: skip
        self._barrier()
        return path

    def load_checkpoint(self, path: str | Path) -> None:
        ck = torch.load(Path(path), map_location="cpu", weights_only=True)
        if not (isinstance(ck, dict) and ck.get("format") == CHECKPOINT_FORMAT):
            raise ValueError(f"{path} is not a posekit training checkpoint (last.pt)")
        saved = config_from_dict(ck["config"])
        if saved.model != self.cfg.model:
            raise ValueError(f"{path} was trained with a different model configuration: {saved.model} "
                             f"vs {self.cfg.model}")  # fmt: skip
        if (saved.seed, saved.batch_size, saved.task) != (self.cfg.seed, self.cfg.batch_size, self.cfg.task):
            log.warning("resuming with a different seed, batch size or task than %s was trained with: "
                        "the run will not reproduce the uninterrupted one", path)  # fmt: skip
        self.model.load_state_dict(ck["model_state"], strict=True)
        self.optimizer.load_state_dict(ck["optimizer"])
        self.scaler.load_state_dict(ck["scaler"])
        self.step = int(ck["step"])
        if self.dist.main:
            for p in (self.metrics.path, self.evals.path):
                _rewrite_csv_until(p, self.step)

    def _barrier(self) -> None:
        if self.dist.world > 1:
            torch.distributed.barrier()

    # -- one step ---------------------------------------------------------------------------------

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The task's loss of one (local) batch."""
        with self._autocast():
            if "xy" in batch:  # symmetric integral regression
                maps = self.net(batch["image"]).float()
                return integral_l1(maps, batch["xy"], batch["weights"], asg=self.cfg.model.asg) / maps.shape[1]
            if self.cfg.task == "topdown":
                pred = self.net(batch["image"]).float()
                loss = weighted_mse(pred, batch["heatmaps"], batch["weights"])
                if self.teacher is not None:
                    with torch.no_grad():
                        teacher = self.teacher(batch["image"]).float()
                    loss = loss + self.cfg.distill_weight * heatmap_distillation(pred, teacher)
                return loss
            stages = self.net(batch["image"])
            tgt, mask = batch["target"], batch["mask"]
            k = self.model.spec.paf_offset  # type: ignore[attr-defined]
            heat = masked_l2_stages([h.float() for _, h in stages], tgt[:, :k], mask)
            paf = masked_l2_stages([p.float() for p, _ in stages], tgt[:, k:], mask)
            return heat + paf

    def _batches(self, start: int, end: int) -> Iterator[dict[str, torch.Tensor]]:
        workers = self.cfg.data.workers
        loader = torch.utils.data.DataLoader(
            self.dataset,  # type: ignore[arg-type]
            batch_sampler=self.sampler.batches(start, end),  # type: ignore[arg-type]  # lazily, batch by batch
            num_workers=workers,
            collate_fn=collate,
            generator=torch.Generator().manual_seed(self.cfg.seed),  # keep the global RNG untouched
            persistent_workers=False,
        )
        for batch in loader:
            yield {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def train_step(self, batch: dict[str, torch.Tensor]) -> tuple[float, float]:
        """One optimiser step at ``self.step``; returns (loss, gradient norm before clipping)."""
        cfg, o = self.cfg, self.cfg.optim
        torch.manual_seed(hash((cfg.seed, self.step, self.dist.rank)) & 0x7FFF_FFFF)  # drop path
        set_lr(self.optimizer, o.lr, lr_factor(self.step, total_steps=cfg.steps, warmup_steps=o.warmup_steps,
               schedule=o.schedule, milestones=o.milestones, gamma=o.gamma, min_factor=o.min_lr_factor))  # fmt: skip
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at step {self.step}; lower optim.lr or turn amp off")
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        params = [p for p in self.model.parameters() if p.grad is not None]
        if o.clip_grad > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, o.clip_grad)
        else:
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))  # type: ignore[arg-type]
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        lv = loss.detach()
        if self.dist.world > 1:  # report the global batch's loss
            torch.distributed.all_reduce(lv)
            lv /= self.dist.world
        return float(lv), float(norm)

    # -- evaluation -------------------------------------------------------------------------------

    def evaluate(self) -> dict[str, float] | None:
        """COCO AP of the current network on ``data.val`` (GT boxes for top-down); main process only."""
        cfg = self.cfg
        if not cfg.data.val or not self.dist.main:
            return None
        from posekit.eval.fast import evaluate_keypoints
        from posekit.eval.predict import run_on_ground_truth

        with open(cfg.data.val) as f:
            gt = json.load(f)
        was = self.model.training
        try:
            pipe = model_pipeline(self.model, cfg.model, flip_test=cfg.data.val_flip_test)
            results = run_on_ground_truth(pipe, gt, _image_dir(cfg.data.val, cfg.data.val_images), gt_path=cfg.data.val,
                                          gt_boxes=cfg.task == "topdown", progress=False)  # fmt: skip
        finally:
            self.model.train(was)
        stats = evaluate_keypoints(gt, results).stats
        row = {"step": self.step, **{k: float(stats[k]) for k in EVAL_FIELDS[1:]}}
        self.evals.write(row)
        return row

    # -- loop -------------------------------------------------------------------------------------

    def fit(self, resume: bool | str | Path = False, *, overwrite: bool = False) -> TrainResult:
        """Train to ``cfg.steps``. ``resume=True`` continues from ``out/last.pt`` (a path: from that
        file). Without ``resume``, an output folder that already holds ``last.pt`` is an error unless
        ``overwrite``."""
        cfg = self.cfg
        last = self.out / "last.pt"
        if resume:
            path = last if resume is True else Path(resume)
            if not path.exists():
                raise FileNotFoundError(f"nothing to resume: {path} does not exist")
            self.load_checkpoint(path)
        elif last.exists() and not overwrite:
            raise CheckpointExistsError(f"{self.out} already holds a run (last.pt): resume it (--resume), "
                                        "pick another --out, or pass --overwrite")  # fmt: skip
        elif self.dist.main:
            for p in (self.metrics.path, self.evals.path):
                p.unlink(missing_ok=True)
        if self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
            tmp = self.out / "config.json.tmp"
            tmp.write_text(json.dumps(cfg.to_dict(), indent=2))
            os.replace(tmp, self.out / "config.json")

        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=self.step, desc="train", unit="step",
                   disable=not (self.progress and self.dist.main), dynamic_ncols=True)  # fmt: skip
        evaluations: list[dict[str, float]] = []
        window: list[float] = []
        loss = math.nan
        t0, seen = time.perf_counter(), 0
        try:
            for batch in self._batches(self.step, cfg.steps):
                loss, norm = self.train_step(batch)
                window.append(loss)
                seen += cfg.batch_size
                bar.update(1)
                if cfg.log_every and (self.step % cfg.log_every == 0 or self.step == cfg.steps):
                    dt = time.perf_counter() - t0
                    row = {"step": self.step, "epoch": (self.step - 1) // self.sampler.steps_per_epoch,
                           "lr": self.optimizer.param_groups[-1]["lr"], "loss": sum(window) / len(window),
                           "grad_norm": norm, "samples_per_s": seen / dt if dt > 0 else 0.0}  # fmt: skip
                    self.metrics.write(row)
                    bar.set_postfix(loss=f"{row['loss']:.4g}", lr=f"{row['lr']:.2e}")
                    window, t0, seen = [], time.perf_counter(), 0
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and self.step < cfg.steps:
                    self.save_checkpoint()
                if cfg.eval_every and self.step % cfg.eval_every == 0 and self.step < cfg.steps:
                    ev = self.evaluate()
                    self._barrier()
                    if ev:
                        evaluations.append(ev)
                        bar.write(f"step {self.step}: AP {ev['AP']:.4f}")
            self.save_checkpoint()
            ev = self.evaluate()
            if ev:
                evaluations.append(ev)
            self._barrier()
        finally:
            bar.close()
            if self.dist.world > 1 and torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()
        return TrainResult(self.out, self.step, loss, evaluations)


class _Call(nn.Module):
    """Runs another method of a network as ``forward`` (stage outputs, raw maps), so DDP sees that graph."""

    def __init__(self, model: nn.Module, method: str) -> None:
        super().__init__()
        self.model, self.method = model, method

    def forward(self, x: torch.Tensor) -> Any:
        return getattr(self.model, self.method)(x)


def _load_teacher(path: str, student: nn.Module) -> nn.Module:
    """A frozen teacher from a posekit model file, checked to fit the student's input and heatmaps."""
    from posekit.train.build import load_model_file

    teacher, _ = load_model_file(path)
    ts, ss = getattr(teacher, "spec", None), getattr(student, "spec", None)
    if ts is None or ss is None:
        raise ValueError(f"teacher {path} and the student must both be top-down heatmap models")
    if (ts.input_size, ts.heatmap_size, ts.schema.num_keypoints, ts.mean, ts.std) != (
        ss.input_size, ss.heatmap_size, ss.schema.num_keypoints, ss.mean, ss.std):  # fmt: skip
        raise ValueError(f"teacher {path} takes {ts.input_size} inputs and gives {ts.schema.num_keypoints} "
                         f"{ts.heatmap_size} heatmaps; the student {ss.input_size} and "
                         f"{ss.schema.num_keypoints} {ss.heatmap_size}: they must match")  # fmt: skip
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher.eval()


def _box_noise(spec: str | None) -> Any:
    if not spec:
        return None
    from posekit.train import boxnoise

    if spec in ("jitter", "random"):
        return boxnoise.RandomJitter()
    return boxnoise.BoxNoise.load(spec)
