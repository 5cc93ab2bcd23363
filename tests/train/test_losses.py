"""Training losses: hand-computed values, masks and weights really zero gradients, gradients flow."""

from __future__ import annotations

import os

import numpy as np
import pytest

if os.environ.get("CI", "").strip().lower() == "true":
    import torch
else:
    torch = pytest.importorskip("torch")

from posekit.codecs.integral import decode_torch, integral_l1_asg, two_step_normalize
from posekit.train.losses import (
    heatmap_distillation,
    integral_l1,
    masked_l2_stages,
    token_distillation,
    weighted_mse,
)


def test_weighted_mse_value_and_zero_weight():
    pred = torch.zeros(1, 2, 2, 2, requires_grad=True)
    target = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]], [[2.0, 2.0], [0.0, 0.0]]]])
    # Squared errors: keypoint 0 sums to 1, keypoint 1 to 8; 8 elements in all.
    assert weighted_mse(pred, target).item() == pytest.approx(9 / 8)
    assert weighted_mse(pred, target, torch.tensor([[1.0, 0.5]])).item() == pytest.approx(5 / 8)
    loss = weighted_mse(pred, target, torch.tensor([[1.0, 0.0]]))
    assert loss.item() == pytest.approx(1 / 8)
    loss.backward()
    assert pred.grad is not None
    assert not pred.grad[0, 1].any()  # the zero-weight keypoint gets no gradient
    assert pred.grad[0, 0, 0, 0].item() == pytest.approx(2 * (0 - 1) / 8)
    with pytest.raises(ValueError, match="weight"):
        weighted_mse(pred, target, torch.ones(2))


def test_masked_l2_stages_value_sum_over_stages_and_mask_gradient():
    target = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]], [[[0.0, 0.0], [0.0, 0.0]]]])  # (2, 1, 2, 2)
    mask = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]], [[[1.0, 1.0], [0.0, 1.0]]]])
    s1 = torch.zeros(2, 1, 2, 2, requires_grad=True)
    s2 = torch.ones(2, 1, 2, 2, requires_grad=True)
    # Stage 1: masked squares 1 + 9 + 16 = 26 (image 0) + 0 (image 1); / (2 * 2) = 6.5.
    assert masked_l2_stages([s1], target, mask).item() == pytest.approx(6.5)
    # Stage 2: image 0 -> 0 + 4 + 9 = 13; image 1 -> 1 + 1 + 1 = 3; 16 / 4 = 4.
    loss = masked_l2_stages([s1, s2], target, mask)
    assert loss.item() == pytest.approx(6.5 + 4.0)
    loss.backward()
    for p in (s1, s2):
        assert p.grad is not None
        assert not p.grad[mask.expand_as(p) == 0].any()  # unannotated regions: no gradient at all
        assert p.grad[mask.expand_as(p) > 0].abs().sum() > 0
    # d/dp of (p - t)^2 / (2N) = (p - t) / N.
    assert s1.grad[0, 0, 1, 1].item() == pytest.approx((0 - 4) / 2)
    # A mask of one channel broadcasts over several (e.g. PAF x/y channels).
    two = torch.zeros(2, 3, 2, 2)
    assert masked_l2_stages([two], torch.ones(2, 3, 2, 2), mask).item() == pytest.approx(3 * 6 / 4)
    with pytest.raises(ValueError, match="no stage"):
        masked_l2_stages([], target, mask)


def test_integral_l1_matches_the_codec_and_its_asg_function():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 5, 6, generator=g, dtype=torch.float64)
    target = torch.rand(2, 3, 2, generator=g, dtype=torch.float64) * 4
    weight = torch.tensor([[1.0, 0.0, 2.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    xy, _ = decode_torch(logits)
    expected = ((xy - target).abs() * weight[..., None]).sum() / 2
    a = logits.clone().requires_grad_(True)
    plain = integral_l1(a, target, weight)
    assert plain.item() == pytest.approx(expected.item(), rel=1e-12)
    b = logits.clone().requires_grad_(True)
    asg = integral_l1(b, target, weight, asg=True)
    assert asg.item() == pytest.approx(expected.item(), rel=1e-12)
    # The ASG path is the codec's autograd function: same gradient as calling it directly.
    c = logits.clone().requires_grad_(True)
    direct = integral_l1_asg(two_step_normalize(c)[0], target, None, weight)
    plain.backward()
    asg.backward()
    direct.backward()
    torch.testing.assert_close(b.grad, c.grad)
    assert not torch.allclose(a.grad, b.grad)  # ASG really replaces the true gradient
    # A zero-weight keypoint gets no gradient in either path; the others do.
    for grad in (a.grad, b.grad):
        assert not grad[0, 1].any()
        assert grad[0, 0].abs().sum() > 0
        assert grad[1].abs().sum() > 0
    # Hand-computed: a map peaked at column 2, row 1, with the target one pixel to its left.
    peaked = torch.full((1, 1, 3, 4), -50.0, dtype=torch.float64)
    peaked[0, 0, 1, 2] = 50.0
    loss = integral_l1(peaked, torch.tensor([[[1.0, 1.0]]], dtype=torch.float64))
    assert loss.item() == pytest.approx(1.0, abs=1e-9)


def test_distillation_zero_for_identical_positive_otherwise_and_gradients():
    g = torch.Generator().manual_seed(1)
    teacher = torch.rand(2, 4, 8, 6, generator=g)
    assert heatmap_distillation(teacher.clone(), teacher).item() == 0.0
    student = (teacher + 0.1 * torch.randn(2, 4, 8, 6, generator=g)).requires_grad_(True)
    t = teacher.clone().requires_grad_(True)
    loss = heatmap_distillation(student, t)
    assert loss.item() > 0
    assert loss.item() == pytest.approx(((student - teacher) ** 2).mean().item(), rel=1e-6)
    loss.backward()
    assert student.grad is not None
    assert student.grad.abs().sum() > 0
    assert t.grad is None  # the teacher is a constant
    with pytest.raises(ValueError, match="shapes differ"):
        heatmap_distillation(student, teacher[:, :2])


def test_token_distillation_with_and_without_projection():
    g = torch.Generator().manual_seed(2)
    tokens = torch.randn(2, 5, 8, generator=g)
    assert token_distillation(tokens.clone(), tokens).item() == 0.0
    other = tokens + 1.0
    assert token_distillation(tokens, other).item() == pytest.approx(1.0, rel=1e-6)
    # Student 4 channels, teacher 8: a linear projection is trained along with the student.
    torch.manual_seed(0)
    proj = torch.nn.Linear(4, 8)
    student = torch.randn(2, 5, 4, generator=g, requires_grad=True)
    teacher = torch.randn(2, 5, 8, generator=g)
    loss = token_distillation(student, teacher, proj)
    assert loss.item() > 0
    assert loss.item() == pytest.approx(((proj(student) - teacher) ** 2).mean().item(), rel=1e-6)
    loss.backward()
    assert student.grad.abs().sum() > 0
    assert proj.weight.grad.abs().sum() > 0
    assert proj.bias.grad.abs().sum() > 0
    # Identical after projection -> zero.
    with torch.no_grad():
        target = proj(student)
    assert token_distillation(student, target, proj).item() == 0.0
    with pytest.raises(ValueError, match="after proj"):
        token_distillation(student, teacher, torch.nn.Linear(4, 6))


def test_losses_drive_a_tiny_optimisation():
    # Minimising weighted_mse on a free map reaches the weighted keypoints' targets only.
    target = torch.from_numpy(np.random.default_rng(0).random((1, 2, 4, 4)).astype(np.float32))
    pred = torch.zeros(1, 2, 4, 4, requires_grad=True)
    opt = torch.optim.SGD([pred], lr=5.0)
    for _ in range(200):
        opt.zero_grad()
        weighted_mse(pred, target, torch.tensor([[1.0, 0.0]])).backward()
        opt.step()
    torch.testing.assert_close(pred[0, 0].detach(), target[0, 0], atol=1e-4, rtol=0)
    assert not pred[0, 1].any()
