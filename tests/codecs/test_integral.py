"""SIKR codec: two-step normalisation + soft-argmax decode, targets, and the ASG backward."""

from __future__ import annotations

import os

import numpy as np
import pytest

from posekit.codecs.integral import (
    decode,
    default_amplitude,
    encode,
    heatmap_to_normalized,
    normalized_to_heatmap,
    to_input_pixels,
)


def _torch():
    if os.environ.get("CI") == "true":
        import torch

        return torch
    return pytest.importorskip("torch")


def _logit(c: np.ndarray) -> np.ndarray:
    c = np.clip(c, 1e-12, 1 - 1e-7)
    return np.log(c) - np.log1p(-c)


def _peaked_logits(centres: np.ndarray, h: int, w: int, sigma: float = 2.0, peak: float = 0.95) -> np.ndarray:
    """Logits whose sigmoid is a Gaussian bump of height ``peak`` at each (x, y) centre."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    n, k, _ = centres.shape
    out = np.empty((n, k, h, w))
    for i in range(n):
        for j in range(k):
            x0, y0 = centres[i, j]
            out[i, j] = _logit(peak * np.exp(-((xs - x0) ** 2 + (ys - y0) ** 2) / (2 * sigma**2)))
    return out


def test_round_trip_subpixel_peak_within_005px():
    rng = np.random.default_rng(20240611)
    h, w = 64, 48
    centres = np.stack([rng.uniform(10, w - 11, (3, 17)), rng.uniform(10, h - 11, (3, 17))], axis=-1)
    assert np.any(np.abs(centres - np.round(centres)) > 0.2)  # genuinely sub-pixel
    xy, scores = decode(_peaked_logits(centres, h, w))
    assert xy.shape == (3, 17, 2)
    assert scores.shape == (3, 17)
    assert np.abs(xy - centres).max() < 0.05
    # The score is the peak of the confidence map (sampled, so at most the continuous peak).
    assert np.all(scores <= 0.95 + 1e-6)
    assert np.all(scores > 0.85)


def test_frame_pixel_centres_at_integers():
    h, w = 8, 6
    logits = np.full((1, 2, h, w), -40.0)
    logits[0, 0, 3, 5] = 40.0  # one hot pixel: row 3, column 5
    logits[0, 1] = 0.0  # flat map: the expectation is the map centre
    xy, scores = decode(logits)
    np.testing.assert_allclose(xy[0, 0], [5.0, 3.0], atol=1e-6)
    np.testing.assert_allclose(xy[0, 1], [(w - 1) / 2, (h - 1) / 2], atol=1e-6)
    np.testing.assert_allclose(scores[0], [1.0, 0.5], atol=1e-6)


def test_numpy_and_torch_decode_agree():
    torch = _torch()
    from posekit.codecs.integral import decode_torch

    rng = np.random.default_rng(7)
    logits = rng.normal(0.0, 3.0, (2, 5, 64, 48)).astype(np.float32)
    logits[:, :, 20:25, 10:14] += 8.0
    xy_np, s_np = decode(logits)
    xy_t, s_t = decode_torch(torch.from_numpy(logits))
    np.testing.assert_allclose(xy_t.numpy(), xy_np, atol=1e-4)
    np.testing.assert_allclose(s_t.numpy(), s_np, atol=1e-6)


def test_encode_targets_weights_and_frames():
    kp = np.array([[[96.0, 128.0], [0.0, 0.0], [191.0, 255.0], [200.0, 10.0], [40.0, 60.0]]])
    vis = np.array([[2, 1, 1, 1, 0]])
    target, weight = encode(kp, vis, input_size=(256, 192), keypoint_weights=[2, 1, 1, 1, 1])
    np.testing.assert_allclose(target[0, 0], [0.0, 0.0])  # the input centre
    np.testing.assert_allclose(target[0, 1], [-0.5, -0.5])
    np.testing.assert_allclose(target[0, 2], [191 / 192 - 0.5, 255 / 256 - 0.5], rtol=1e-6)
    np.testing.assert_array_equal(weight[0], [[2, 2], [1, 1], [1, 1], [0, 0], [0, 0]])  # x=200 > W, invisible
    # normalised -> heatmap pixels (64x48) -> input pixels with stride 4 recovers the keypoints.
    back = to_input_pixels(normalized_to_heatmap(target, (64, 48)), stride=4)
    np.testing.assert_allclose(back, kp, atol=1e-4)
    np.testing.assert_allclose(
        heatmap_to_normalized(normalized_to_heatmap(target, (64, 48)), (64, 48)), target, atol=1e-6
    )
    with pytest.raises(ValueError, match="disagree"):
        encode(kp, vis[:, :3], input_size=(256, 192))


def _expected_asg_grad(p, target, amp, weight):
    """dL/dp from the ASG formula, written out with explicit loops."""
    n, k, h, w = p.shape
    grad = np.zeros_like(p)
    for a in range(n):
        for b in range(k):
            mx = (p[a, b].sum(axis=0) * np.arange(w)).sum()
            my = (p[a, b].sum(axis=1) * np.arange(h)).sum()
            gx = weight[a, b, 0] * np.sign(mx - target[a, b, 0]) / n
            gy = weight[a, b, 1] * np.sign(my - target[a, b, 1]) / n
            for i in range(h):
                for j in range(w):
                    grad[a, b, i, j] = gx * amp[0] * np.sign(j - mx) + gy * amp[1] * np.sign(i - my)
    return grad


def test_asg_backward_matches_formula_and_differs_from_true_gradient():
    torch = _torch()
    from posekit.codecs.integral import integral_l1_asg

    rng = np.random.default_rng(3)
    n, k, h, w = 2, 3, 5, 6
    raw = rng.uniform(0.05, 1.0, (n, k, h, w))
    p_np = raw / raw.sum(axis=(2, 3), keepdims=True)
    target = rng.uniform(0.0, 5.0, (n, k, 2))
    weight = rng.choice([0.0, 1.0, 2.0], (n, k, 2))
    amp = default_amplitude((h, w))
    assert amp == (w / 8, h / 8)

    p = torch.tensor(p_np, dtype=torch.float64, requires_grad=True)
    loss = integral_l1_asg(p, torch.tensor(target), weight=torch.tensor(weight))
    mx = (p_np.sum(axis=2) * np.arange(w)).sum(axis=2)
    my = (p_np.sum(axis=3) * np.arange(h)).sum(axis=2)
    expected_loss = (
        weight[..., 0] * np.abs(mx - target[..., 0]) + weight[..., 1] * np.abs(my - target[..., 1])
    ).sum() / n
    assert loss.item() == pytest.approx(expected_loss, rel=1e-12)
    loss.backward()
    np.testing.assert_allclose(p.grad.numpy(), _expected_asg_grad(p_np, target, amp, weight), atol=1e-12)

    # Plain autograd of the same loss gives the asymmetric x_j * sign(mu - t) gradient instead.
    q = torch.tensor(p_np, dtype=torch.float64, requires_grad=True)
    xs, ys = torch.arange(w, dtype=torch.float64), torch.arange(h, dtype=torch.float64)
    mu = torch.stack([(q.sum(2) * xs).sum(2), (q.sum(3) * ys).sum(2)], dim=-1)
    ((torch.tensor(weight) * (mu - torch.tensor(target)).abs()).sum() / n).backward()
    assert not np.allclose(q.grad.numpy(), p.grad.numpy())

    # A scalar amplitude applies to both axes.
    p2 = torch.tensor(p_np, dtype=torch.float64, requires_grad=True)
    integral_l1_asg(p2, torch.tensor(target), amplitude=2.0, weight=torch.tensor(weight)).backward()
    np.testing.assert_allclose(p2.grad.numpy(), _expected_asg_grad(p_np, target, (2.0, 2.0), weight), atol=1e-12)


def test_asg_gradient_reaches_logits_and_pulls_towards_target():
    torch = _torch()
    from posekit.codecs.integral import decode_torch, integral_l1_asg, two_step_normalize

    rng = np.random.default_rng(11)
    logits = torch.tensor(rng.normal(0, 1, (1, 1, 16, 12)), dtype=torch.float32, requires_grad=True)
    target = torch.tensor([[[9.0, 12.0]]])
    opt = torch.optim.SGD([logits], lr=50.0)
    start = decode_torch(logits.detach())[0]
    for _ in range(60):
        opt.zero_grad()
        p, _ = two_step_normalize(logits)
        integral_l1_asg(p, target).backward()
        assert torch.isfinite(logits.grad).all()
        assert logits.grad.abs().sum() > 0
        opt.step()
    end = decode_torch(logits.detach())[0]
    assert (start - target).abs().max() > 3.0
    assert (end - target).abs().max() < 0.5


def test_asg_rejects_bad_shapes():
    torch = _torch()
    from posekit.codecs.integral import integral_l1_asg

    p = torch.full((1, 2, 4, 4), 1 / 16)
    with pytest.raises(ValueError, match="target_xy"):
        integral_l1_asg(p, torch.zeros(1, 3, 2))
    with pytest.raises(ValueError, match="weight"):
        integral_l1_asg(p, torch.zeros(1, 2, 2), weight=torch.ones(1, 3))
