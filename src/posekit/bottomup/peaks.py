"""Part candidates: local maxima of the part heatmaps, with sub-pixel refinement.

Coordinates are in heatmap pixels, pixel centres at integer positions (the frame of the network's
output). Upsampling is an option for separating close peaks; results are mapped back to the
heatmap frame, so callers never see the upsampled grid.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

__all__ = ["find_peaks", "smooth_and_upsample"]


def smooth_and_upsample(heatmaps: NDArray[np.float32], upsample: int, sigma: float) -> NDArray[np.float32]:
    """``(K, h, w)`` -> ``(K, h*u, w*u)``: bicubic upsampling, then Gaussian smoothing.

    ``sigma`` is in heatmap pixels (it is scaled by ``upsample``); 0 disables smoothing.
    """
    if upsample <= 1 and sigma <= 0:
        return heatmaps
    k, h, w = heatmaps.shape
    hwc = np.ascontiguousarray(heatmaps.transpose(1, 2, 0))
    if upsample > 1:
        hwc = cv2.resize(hwc, (w * upsample, h * upsample), interpolation=cv2.INTER_CUBIC)
    if sigma > 0:
        hwc = cv2.GaussianBlur(hwc, (0, 0), sigmaX=sigma * upsample, borderType=cv2.BORDER_REPLICATE)
    hwc = hwc.reshape(hwc.shape[0], hwc.shape[1], k)
    return np.ascontiguousarray(hwc.transpose(2, 0, 1))


def find_peaks(
    heatmaps: NDArray[np.float32],
    threshold: float = 0.1,
    *,
    upsample: int = 1,
    sigma: float = 0.0,
    radius: int = 1,
) -> list[NDArray[np.float32]]:
    """Local maxima of each heatmap channel.

    Returns one ``(n, 3)`` array per channel: x, y (heatmap pixels, sub-pixel by a quadratic fit
    around each maximum) and the peak value. A peak is a value above ``threshold`` that is the
    maximum of its ``(2*radius+1)``-square neighbourhood on the (upsampled) grid.
    """
    if heatmaps.ndim != 3:
        raise ValueError(f"heatmaps must have shape (K, h, w), got {heatmaps.shape}")
    maps = smooth_and_upsample(heatmaps.astype(np.float32, copy=False), upsample, sigma)
    k, hh, ww = maps.shape
    # cv2.dilate handles few channels, so stack the maps vertically with -inf rows between them,
    # which keeps every neighbourhood inside its own map.
    r = radius
    padded = np.full((k, hh + 2 * r, ww), -np.inf, dtype=np.float32)
    padded[:, r : r + hh] = maps
    kernel = np.ones((2 * r + 1, 2 * r + 1), np.uint8)
    dil = cv2.dilate(padded.reshape(k * (hh + 2 * r), ww), kernel, borderType=cv2.BORDER_REPLICATE)
    dil = dil.reshape(k, hh + 2 * r, ww)[:, r : r + hh]
    is_peak = (maps >= dil) & (maps > threshold)
    ch, ys, xs = np.nonzero(is_peak)
    # A flat maximum (equal values, e.g. a blob centred between pixels) yields several tied
    # pixels: keep only the first in raster order within the neighbourhood.
    keep = np.ones(len(ys), dtype=bool)
    for oy in range(-r, 1):
        for ox in range(-r, r + 1):
            if oy == 0 and ox >= 0:
                break
            ny, nx = ys + oy, xs + ox
            ok = (ny >= 0) & (nx >= 0) & (nx < ww)
            keep[ok] &= ~is_peak[ch[ok], ny[ok], nx[ok]]
    ch, ys, xs = ch[keep], ys[keep], xs[keep]
    vals = maps[ch, ys, xs]
    # Quadratic sub-pixel refinement from the neighbours one heatmap pixel away (``step`` grid
    # pixels: nearer neighbours on an upsampled grid carry the interpolation's ripple); no
    # refinement along an axis where a neighbour would fall outside the map.
    step = max(1, upsample)
    inx = (xs >= step) & (xs < ww - step)
    iny = (ys >= step) & (ys < hh - step)
    xl = maps[ch, ys, np.clip(xs - step, 0, ww - 1)]
    xr = maps[ch, ys, np.clip(xs + step, 0, ww - 1)]
    yu = maps[ch, np.clip(ys - step, 0, hh - 1), xs]
    yd = maps[ch, np.clip(ys + step, 0, hh - 1), xs]
    dx = np.where(inx, _quadratic_offset(xl, vals, xr), 0.0) * step
    dy = np.where(iny, _quadratic_offset(yu, vals, yd), 0.0) * step
    fx = (xs + dx + 0.5) / upsample - 0.5
    fy = (ys + dy + 0.5) / upsample - 0.5
    out = []
    bounds = np.searchsorted(ch, np.arange(k + 1))
    for c in range(k):
        s, e = bounds[c], bounds[c + 1]
        out.append(np.stack([fx[s:e], fy[s:e], vals[s:e]], axis=1).astype(np.float32))
    return out


def _quadratic_offset(
    left: NDArray[np.float32], centre: NDArray[np.float32], right: NDArray[np.float32]
) -> NDArray[np.float32]:
    denom = left - 2.0 * centre + right
    with np.errstate(divide="ignore", invalid="ignore"):
        off = np.where(denom < -1e-12, 0.5 * (left - right) / denom, 0.0)
    return np.clip(off, -0.5, 0.5).astype(np.float32)
