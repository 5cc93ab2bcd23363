"""Symmetric integral keypoint regression (SIKR), the regression codec of AlphaPose's FastPose.

Decoding ("two-step normalisation", AlphaPose TPAMI 2022, Sec. 3):

1. confidence map ``c = sigmoid(logits)``, element-wise;
2. probability map ``p = c / sum(c)`` over the ``h x w`` map of one keypoint.

The keypoint is the soft-argmax (expectation) of ``p``: ``x = sum(p * j)``, ``y = sum(p * i)`` for
column ``j`` and row ``i``; its score is ``max(c)``, the peak of the confidence map (not of ``p``).

Frames
------
*Heatmap pixels* (what :func:`decode` returns): pixel centres at integer coordinates, so column
``j`` spans ``[j - 0.5, j + 0.5)`` and the expectation ranges over ``[0, w - 1]`` x ``[0, h - 1]``.

*Normalised* (AlphaPose's regression target, :func:`encode`): ``x_n = x / w - 0.5`` and
``y_n = y / h - 0.5``, computed from heatmap pixels on the prediction side and from *input* pixels
(``x_in / W_in - 0.5``) on the target side. Since ``W_in = stride * w``, a model trained this way
predicts ``x = x_in / stride``, so **input pixel = stride * heatmap pixel**
(:func:`to_input_pixels` with the default ``offset=0``). That is AlphaPose's convention; it is not
the geometric centre of a heatmap cell, which would be ``stride * x + (stride - 1) / 2`` (pass
``offset=(stride - 1) / 2`` for networks trained with that alignment). FastPose at 256x192 has
stride 4 and a 64x48 map.

Training
--------
:func:`integral_l1_asg` is the L1 regression loss with the amplitude symmetric gradient (ASG) of the
paper in its backward pass; see its docstring for the exact formula.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:  # torch is optional for the NumPy half of this module
    import torch

__all__ = [
    "decode",
    "decode_torch",
    "default_amplitude",
    "encode",
    "heatmap_to_normalized",
    "integral_l1_asg",
    "normalized_to_heatmap",
    "to_input_pixels",
    "two_step_normalize",
]


def _sigmoid(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Overflow-free logistic function."""
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def decode(logits: ArrayLike) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Two-step normalisation + soft-argmax of heatmap logits (NumPy).

    Args:
        logits: ``(N, K, h, w)`` raw network outputs (any float dtype; computed in float64).

    Returns:
        ``(xy, scores)``: ``(N, K, 2)`` keypoints in heatmap pixels (pixel centres at integers,
        ``x`` = column, ``y`` = row) and ``(N, K)`` scores ``max(sigmoid(logits))``.
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 4:
        raise ValueError(f"logits must be (N, K, h, w), got shape {z.shape}")
    n, k, h, w = z.shape
    c = _sigmoid(z.reshape(n, k, h * w))
    scores = c.max(axis=2)
    p = (c / c.sum(axis=2, keepdims=True)).reshape(n, k, h, w)
    x = (p.sum(axis=2) * np.arange(w, dtype=np.float64)).sum(axis=2)
    y = (p.sum(axis=3) * np.arange(h, dtype=np.float64)).sum(axis=2)
    return np.stack([x, y], axis=-1).astype(np.float32), scores.astype(np.float32)


def two_step_normalize(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(p, scores)``: the two-step normalisation of ``(N, K, h, w)`` logits (torch), ``p`` shaped like them."""
    import torch

    n, k, h, w = logits.shape
    c = torch.sigmoid(logits.reshape(n, k, h * w))
    scores = c.amax(dim=2)
    p = (c / c.sum(dim=2, keepdim=True)).reshape(n, k, h, w)
    return p, scores


def _expectation_torch(p: torch.Tensor) -> torch.Tensor:
    """Soft-argmax ``(N, K, 2)`` of an already normalised ``(N, K, h, w)`` map."""
    import torch

    h, w = p.shape[-2:]
    xs = torch.arange(w, dtype=p.dtype, device=p.device)
    ys = torch.arange(h, dtype=p.dtype, device=p.device)
    x = (p.sum(dim=2) * xs).sum(dim=2)
    y = (p.sum(dim=3) * ys).sum(dim=2)
    return torch.stack([x, y], dim=-1)


def decode_torch(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`decode` in PyTorch: differentiable, traceable to ONNX, same frame and outputs."""
    if logits.dim() != 4:
        raise ValueError(f"logits must be (N, K, h, w), got shape {tuple(logits.shape)}")
    p, scores = two_step_normalize(logits)
    return _expectation_torch(p), scores


def heatmap_to_normalized(xy: ArrayLike, heatmap_size: tuple[int, int]) -> NDArray[np.float64]:
    """Heatmap pixels -> AlphaPose's normalised frame (``x / w - 0.5``); ``heatmap_size`` is (h, w)."""
    h, w = heatmap_size
    return np.asarray(xy, dtype=np.float64) / np.array([w, h], dtype=np.float64) - 0.5


def normalized_to_heatmap(xy_n: ArrayLike, heatmap_size: tuple[int, int]) -> NDArray[np.float64]:
    """Inverse of :func:`heatmap_to_normalized`."""
    h, w = heatmap_size
    return (np.asarray(xy_n, dtype=np.float64) + 0.5) * np.array([w, h], dtype=np.float64)


def to_input_pixels(xy: ArrayLike, stride: float, offset: float = 0.0) -> NDArray[np.float64]:
    """Heatmap pixels -> network-input pixels: ``stride * xy + offset``.

    ``offset=0`` is AlphaPose's training convention (see the module docstring); use
    ``(stride - 1) / 2`` for the pixel-centre-aligned mapping.
    """
    return np.asarray(xy, dtype=np.float64) * float(stride) + float(offset)


def encode(
    keypoints: ArrayLike,
    visible: ArrayLike,
    input_size: tuple[int, int],
    keypoint_weights: ArrayLike | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Regression targets and weights, as AlphaPose's integral target generator builds them.

    Args:
        keypoints: ``(..., K, 2)`` keypoints in network-input pixels (x, y).
        visible: ``(..., K)`` visibility / validity (``> 0`` means labelled).
        input_size: network input ``(H, W)``, e.g. ``(256, 192)``.
        keypoint_weights: optional ``(K,)`` per-keypoint multipliers (AlphaPose doubles the 26
            body keypoints of Halpe-136, for instance).

    Returns:
        ``(target, weight)``, both ``(..., K, 2)`` float32: ``target = xy / (W, H) - 0.5`` and
        ``weight = (visible > 0) * keypoint_weights``, zeroed for targets outside ``[-0.5, 0.5]``.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    vis = np.asarray(visible, dtype=np.float64)
    if kp.shape[-1] != 2 or kp.shape[:-1] != vis.shape:
        raise ValueError(f"keypoints (..., K, 2) and visible (..., K) disagree: {kp.shape} vs {vis.shape}")
    h, w = input_size
    target = kp / np.array([w, h], dtype=np.float64) - 0.5
    weight = np.repeat((vis > 0).astype(np.float64)[..., None], 2, axis=-1)
    if keypoint_weights is not None:
        kw = np.asarray(keypoint_weights, dtype=np.float64)
        if kw.shape != (kp.shape[-2],):
            raise ValueError(f"keypoint_weights must be ({kp.shape[-2]},), got {kw.shape}")
        weight = weight * kw[:, None]
    outside = np.any(np.abs(target) > 0.5, axis=-1)
    weight[outside] = 0.0
    return target.astype(np.float32), weight.astype(np.float32)


def default_amplitude(heatmap_size: tuple[int, int]) -> tuple[float, float]:
    """The paper's ``A_grad``: 1/8 of the heatmap size, per axis: ``(w / 8, h / 8)`` for (x, y)."""
    h, w = heatmap_size
    return w / 8.0, h / 8.0


_ASG_FUNCTION: Any = None


def _asg_function() -> Any:
    """Build (once) the autograd Function; deferred so this module imports without torch."""
    global _ASG_FUNCTION
    if _ASG_FUNCTION is not None:
        return _ASG_FUNCTION
    import torch

    class IntegralL1ASG(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, prob: torch.Tensor, target: torch.Tensor, amp: torch.Tensor, weight: torch.Tensor):
            mu = _expectation_torch(prob)  # (N, K, 2), heatmap pixels
            diff = mu - target
            ctx.save_for_backward(mu, diff, amp, weight)
            ctx.map_shape = prob.shape
            return (weight * diff.abs()).sum() / prob.shape[0]

        @staticmethod
        def backward(ctx: Any, grad_out: torch.Tensor):
            mu, diff, amp, weight = ctx.saved_tensors
            n, _, h, w = ctx.map_shape
            # dL/dmu = weight * sign(mu - t) / N, exactly as for the plain L1 loss ...
            g = grad_out * weight * torch.sign(diff) / n  # (N, K, 2)
            xs = torch.arange(w, dtype=mu.dtype, device=mu.device)
            ys = torch.arange(h, dtype=mu.dtype, device=mu.device)
            # ... but dmu/dp_j = j (the absolute position) is replaced by A * sign(j - mu).
            sx = amp[0] * torch.sign(xs - mu[..., 0:1])  # (N, K, w)
            sy = amp[1] * torch.sign(ys - mu[..., 1:2])  # (N, K, h)
            grad = g[..., 0, None, None] * sx[:, :, None, :] + g[..., 1, None, None] * sy[:, :, :, None]
            return grad, None, None, None

    _ASG_FUNCTION = IntegralL1ASG
    return _ASG_FUNCTION


def integral_l1_asg(
    pred_map: torch.Tensor,
    target_xy: torch.Tensor,
    amplitude: float | tuple[float, float] | None = None,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """L1 loss of the soft-argmax of ``pred_map``, with the amplitude symmetric gradient (ASG).

    Forward: ``mu = sum_j p_j * x_j`` (per axis, heatmap pixels), and
    ``L = sum_{n,k,axis} weight * |mu - t| / N`` (``N`` = batch size, as AlphaPose's
    ``weighted_l1_loss`` divides by the batch).

    Backward (ASG, AlphaPose TPAMI 2022, Sec. 3): the true gradient
    ``dL/dp_j = weight * sign(mu - t) * x_j / N`` grows with the absolute position ``x_j`` and so is
    asymmetric about the prediction. It is replaced by::

        dL/dp_j = weight * sign(mu - t) * A_grad * sign(x_j - mu) / N

    separately for x (over columns, ``A_grad = amplitude[0]``) and y (over rows,
    ``amplitude[1]``); a map location collects the x and y terms of its column and row. ``sign(0)``
    is 0. The default ``A_grad`` is the paper's 1/8 of the heatmap size per axis (``w / 8`` for x,
    ``h / 8`` for y). Note: AlphaPose's released code (``IngetralCoordinate``, criterion.py) uses a
    fixed ``AMPLITUDE = 2`` on coordinates normalised by the map size, takes ``sign(0)`` as +1 and
    forces the sign to +1 when ``mu`` falls outside the map; this function follows the paper.

    Args:
        pred_map: ``(N, K, h, w)`` probability map ``p`` (already two-step normalised, each map
            summing to 1); gradients flow on through whatever produced it (sigmoid, normalisation).
        target_xy: ``(N, K, 2)`` targets in heatmap pixels (see :func:`normalized_to_heatmap`).
        amplitude: ``A_grad``: a scalar for both axes or ``(A_x, A_y)``; ``None`` for the default.
        weight: ``(N, K)`` or ``(N, K, 2)`` target weights (default 1).

    Returns:
        The scalar loss.
    """
    import torch

    if pred_map.dim() != 4:
        raise ValueError(f"pred_map must be (N, K, h, w), got shape {tuple(pred_map.shape)}")
    n, k, h, w = pred_map.shape
    target = torch.as_tensor(target_xy, dtype=pred_map.dtype, device=pred_map.device)
    if target.shape != (n, k, 2):
        raise ValueError(f"target_xy must be ({n}, {k}, 2), got {tuple(target.shape)}")
    if amplitude is None:
        amplitude = default_amplitude((h, w))
    amp_pair = (float(amplitude), float(amplitude)) if np.isscalar(amplitude) else tuple(map(float, amplitude))  # type: ignore[arg-type]
    amp = torch.tensor(amp_pair, dtype=pred_map.dtype, device=pred_map.device)
    if weight is None:
        wt = torch.ones((n, k, 2), dtype=pred_map.dtype, device=pred_map.device)
    else:
        wt = torch.as_tensor(weight, dtype=pred_map.dtype, device=pred_map.device)
        if wt.shape == (n, k):
            wt = wt[..., None].expand(n, k, 2)
        if wt.shape != (n, k, 2):
            raise ValueError(f"weight must be ({n}, {k}) or ({n}, {k}, 2), got {tuple(wt.shape)}")
    return _asg_function().apply(pred_map, target.detach(), amp, wt.detach())
