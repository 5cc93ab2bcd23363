"""Training losses (PyTorch): heatmap MSE, OpenPose's staged masked L2, integral L1, distillation.

Every loss returns a scalar tensor. Targets (and teachers) are treated as constants: gradients flow
only into the predictions (and, for :func:`token_distillation`, into ``proj``).

Shapes: heatmaps are ``(N, K, h, w)``; the frame of any coordinates is that of the codec that made
the targets (:mod:`posekit.codecs.heatmap`, :mod:`posekit.codecs.paf`,
:mod:`posekit.codecs.integral`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from posekit.codecs.integral import decode_torch, integral_l1_asg, two_step_normalize

__all__ = ["heatmap_distillation", "integral_l1", "masked_l2_stages", "token_distillation", "weighted_mse"]


def _same_shape(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{what}: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")


def weighted_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Target-weighted heatmap MSE (SimpleBaseline / mmpose ``KeypointMSELoss``, without the 1/2).

    ``pred`` and ``target`` are ``(N, K, h, w)``; ``weight`` is ``(N, K)`` (e.g. the codec's
    per-keypoint weights; ``None``: all 1). The loss is
    ``sum_{n,k,i,j} weight[n,k] * (pred - target)^2 / (N * K * h * w)``: the mean over every map
    element, so a zero weight removes a keypoint's contribution without renormalising the others.
    """
    _same_shape(pred, target, "weighted_mse")
    if pred.dim() != 4:
        raise ValueError(f"weighted_mse: pred must be (N, K, h, w), got {tuple(pred.shape)}")
    sq = (pred - target.detach()) ** 2
    if weight is not None:
        wt = torch.as_tensor(weight, dtype=pred.dtype, device=pred.device)
        if wt.shape != pred.shape[:2]:
            raise ValueError(f"weighted_mse: weight must be {tuple(pred.shape[:2])}, got {tuple(wt.shape)}")
        sq = sq * wt.detach()[:, :, None, None]
    return sq.mean()


def masked_l2_stages(preds: Sequence[torch.Tensor], target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """OpenPose's intermediate supervision: masked L2 of every stage's output, summed over stages.

    ``preds`` are the stages' outputs, each shaped like ``target`` (e.g. ``(N, C, h, w)`` heatmaps
    or PAFs); ``mask`` broadcasts against them (typically ``(N, 1, h, w)``) and is 0 on regions with
    unannotated people, so predictions there get neither loss nor gradient. Per stage the loss is
    ``sum(mask * (pred - target)^2) / (2 N)`` (Caffe's ``EuclideanLoss`` on masked maps, as in the
    OpenPose training code), and the stages are summed.
    """
    if len(preds) == 0:
        raise ValueError("masked_l2_stages: no stage outputs")
    t = target.detach()
    m = torch.as_tensor(mask, dtype=t.dtype, device=t.device).detach()
    total = t.new_zeros(())
    for s, p in enumerate(preds):
        _same_shape(p, t, f"masked_l2_stages (stage {s})")
        total = total + (m * (p - t) ** 2).sum() / (2.0 * p.shape[0])
    return total


def integral_l1(
    pred_maps: torch.Tensor,
    target_xy: torch.Tensor,
    weight: torch.Tensor | None = None,
    *,
    asg: bool = False,
    amplitude: float | tuple[float, float] | None = None,
) -> torch.Tensor:
    """L1 loss of the integral (soft-argmax) keypoints of heatmap logits, AlphaPose's regression loss.

    ``pred_maps`` are ``(N, K, h, w)`` logits, decoded by :func:`posekit.codecs.integral.decode_torch`
    (two-step normalisation + soft-argmax, heatmap pixels); ``target_xy`` is ``(N, K, 2)`` in heatmap
    pixels; ``weight`` ``(N, K)`` or ``(N, K, 2)`` (``None``: 1). The loss is
    ``sum weight * |xy - target| / N``. With ``asg=True`` the same value is computed by
    :func:`posekit.codecs.integral.integral_l1_asg`, whose backward pass is the amplitude symmetric
    gradient (``amplitude`` as there); otherwise the gradient is the true one.
    """
    if asg:
        prob, _ = two_step_normalize(pred_maps)
        return integral_l1_asg(prob, target_xy, amplitude, weight)
    xy, _ = decode_torch(pred_maps)
    n, k = xy.shape[:2]
    target = torch.as_tensor(target_xy, dtype=xy.dtype, device=xy.device).detach()
    if target.shape != xy.shape:
        raise ValueError(f"integral_l1: target_xy must be ({n}, {k}, 2), got {tuple(target.shape)}")
    diff = (xy - target).abs()
    if weight is not None:
        wt = torch.as_tensor(weight, dtype=xy.dtype, device=xy.device).detach()
        if wt.shape == (n, k):
            wt = wt[..., None]
        elif wt.shape != (n, k, 2):
            raise ValueError(f"integral_l1: weight must be ({n}, {k}) or ({n}, {k}, 2), got {tuple(wt.shape)}")
        diff = diff * wt
    return diff.sum() / n


def heatmap_distillation(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """MSE from the student's heatmaps to the (detached) teacher's: ``mean((s - t)^2)``."""
    _same_shape(student, teacher, "heatmap_distillation")
    return ((student - teacher.detach()) ** 2).mean()


def token_distillation(
    student_tokens: torch.Tensor,
    teacher_tokens: torch.Tensor,
    proj: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """MSE from (projected) student tokens to the (detached) teacher's tokens.

    ``student_tokens`` is ``(N, T, C_s)``, ``teacher_tokens`` ``(N, T, C_t)``; ``proj`` (e.g. an
    ``nn.Linear(C_s, C_t)``, trained with the student) maps the student's channels to the teacher's
    and is required when ``C_s != C_t``. The loss is ``mean((proj(s) - t)^2)``.
    """
    s = student_tokens if proj is None else proj(student_tokens)
    _same_shape(s, teacher_tokens, "token_distillation (after proj)" if proj is not None else "token_distillation")
    return ((s - teacher_tokens.detach()) ** 2).mean()
