from __future__ import annotations

import numpy as np
import pytest

from posekit.bottomup.peaks import find_peaks, smooth_and_upsample


def gaussian(h: int, w: int, centres: list[tuple[float, float]], sigma: float = 1.5, peak: float = 1.0) -> np.ndarray:
    """Max of Gaussian blobs at sub-pixel (x, y) centres, pixel centres at integers."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.zeros((h, w))
    for cx, cy in centres:
        out = np.maximum(out, peak * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2)))
    return out.astype(np.float32)


def _match(found: np.ndarray, truth: list[tuple[float, float]]) -> np.ndarray:
    """Distance from each true centre to its nearest found peak (and a one-to-one check)."""
    assert len(found) == len(truth), f"found {found[:, :2].tolist()} for {truth}"
    d = np.hypot(found[None, :, 0] - np.array(truth)[:, None, 0], found[None, :, 1] - np.array(truth)[:, None, 1])
    assert sorted(d.argmin(1).tolist()) == list(range(len(truth)))
    return d.min(1)


# off-grid centres that avoid exact half-pixel ties (see test_plateau_gives_one_peak)
CENTRES = [(10.3, 12.8), (30.71, 7.2), (22.05, 30.4), (5.45, 33.9)]


@pytest.mark.parametrize(("sigma", "upsample"), [(1.0, 1), (1.5, 1), (2.5, 1), (1.0, 2), (1.5, 2), (2.5, 2),
                                                 (1.0, 4), (1.5, 4)])  # fmt: skip
def test_subpixel_positions_recovered(sigma: float, upsample: int):
    maps = gaussian(40, 40, CENTRES, sigma)[None]
    (found,) = find_peaks(maps, 0.1, upsample=upsample)
    assert found.dtype == np.float32
    assert found.shape[1] == 3
    err = _match(found, CENTRES)
    assert err.max() < 0.1, err
    assert (found[:, 2] > 0.8).all()  # peak values close to the blob height


def test_dense_subpixel_sweep():
    worst = 0.0
    for ox in np.linspace(-0.45, 0.45, 10):
        for oy in np.linspace(-0.45, 0.45, 10):
            c = [(15 + ox, 16 + oy)]
            (found,) = find_peaks(gaussian(32, 32, c, 1.2)[None], 0.1)
            worst = max(worst, float(_match(found, c).max()))
    assert worst < 0.1


def test_peak_value_is_the_map_value():
    maps = gaussian(20, 20, [(7.0, 9.0)], 1.5, peak=0.6)[None]
    (found,) = find_peaks(maps, 0.1)
    np.testing.assert_allclose(found, [[7.0, 9.0, 0.6]], atol=1e-5)


def test_threshold_respected():
    maps = np.stack([
        gaussian(30, 30, [(5.2, 5.3)], peak=0.9) + gaussian(30, 30, [(20.4, 22.6)], peak=0.3),
        gaussian(30, 30, [(12.2, 14.7)], peak=0.25),
    ])  # fmt: skip
    low = find_peaks(maps, 0.2)
    assert [len(c) for c in low] == [2, 1]
    high = find_peaks(maps, 0.5)
    assert [len(c) for c in high] == [1, 0]
    assert abs(high[0][0, 0] - 5.2) < 0.1
    # strictly above the threshold
    (at,) = find_peaks(gaussian(30, 30, [(10.0, 10.0)], peak=0.5)[None], 0.5)
    assert len(at) == 0
    assert all(len(c) == 0 for c in find_peaks(np.zeros((3, 10, 10), np.float32), 0.0))


def test_no_cross_channel_leakage():
    """Each channel's peaks come only from that channel, even when a strong blob sits in the
    same place (or at the shared border rows of the stacked maps) in a neighbouring channel."""
    h, w = 24, 30
    strong_bottom = gaussian(h, w, [(8.3, h - 1.2)], peak=1.0)  # near the bottom edge
    weak_top = gaussian(h, w, [(8.3, 0.8)], peak=0.3)  # right below it after vertical stacking
    same_place = gaussian(h, w, [(8.3, h - 1.2)], peak=0.2)
    maps = np.stack([strong_bottom, weak_top, same_place, np.zeros((h, w), np.float32)])
    for radius in (1, 2, 3):
        out = find_peaks(maps, 0.1, radius=radius)
        assert len(out) == 4
        assert [len(c) for c in out] == [1, 1, 1, 0], radius
        np.testing.assert_allclose(out[1][0, :2], [8.3, 0.8], atol=0.1)
        np.testing.assert_allclose(out[2][0, 2], maps[2].max(), rtol=1e-6)


def test_radius_suppresses_close_peaks():
    maps = gaussian(20, 30, [(10.2, 10.1), (12.9, 10.3)], sigma=0.7)[None]
    assert len(find_peaks(maps, 0.1, radius=1)[0]) == 2
    assert len(find_peaks(maps, 0.1, radius=3)[0]) == 1


def test_channels_and_shape_errors():
    out = find_peaks(np.zeros((5, 8, 8), np.float32))
    assert len(out) == 5
    assert all(c.shape == (0, 3) for c in out)
    with pytest.raises(ValueError, match=r"\(K, h, w\)"):
        find_peaks(np.zeros((8, 8), np.float32))


def test_border_peak_is_found():
    maps = gaussian(16, 16, [(0.0, 7.3), (15.0, 15.0)])[None]
    (found,) = find_peaks(maps, 0.1)
    _match(found, [(0.0, 7.3), (15.0, 15.0)])
    found = found[np.argsort(found[:, 0])]
    assert abs(found[0, 1] - 7.3) < 0.1  # the axis away from the border is refined as usual


def test_border_peak_position():
    truth = [(0.0, 7.3), (15.0, 15.0)]
    (found,) = find_peaks(gaussian(16, 16, truth)[None], 0.1)
    assert _match(found, truth).max() < 0.1, found.tolist()
    assert np.all((found[:, :2] >= 0) & (found[:, :2] <= 15))


@pytest.mark.parametrize(("sigma", "upsample"), [(2.5, 4), (3.5, 4)])
def test_subpixel_with_large_upsample_and_broad_peaks(sigma: float, upsample: int):
    rng = np.random.default_rng(0)
    truth = [(float(x), float(y)) for x, y in rng.uniform(12, 28, (40, 2))]  # away from the borders
    errs = [_match(find_peaks(gaussian(40, 40, [c], sigma)[None], 0.1, upsample=upsample)[0], [c])[0] for c in truth]
    assert max(errs) < 0.1, errs


def test_smooth_and_upsample_frames():
    maps = gaussian(10, 12, [(4.3, 5.1)])[None]
    assert smooth_and_upsample(maps, 1, 0.0) is maps
    up = smooth_and_upsample(maps, 3, 0.0)
    assert up.shape == (1, 30, 36)
    sm = smooth_and_upsample(maps, 1, 1.0)
    assert sm.shape == maps.shape
    assert sm.max() < maps.max()
    # smoothing does not move a peak
    (found,) = find_peaks(maps, 0.1, sigma=1.0)
    assert np.hypot(found[0, 0] - 4.3, found[0, 1] - 5.1) < 0.1


@pytest.mark.parametrize(
    ("centre", "sigma", "upsample"),
    [
        ((10.5, 8.0), 1.5, 1),  # exact tie between two pixels
        ((10.5, 8.5), 1.5, 1),  # between four pixels
        ((10.0, 8.0), 1.5, 2),  # on a pixel centre, which falls between upsampled pixels
        ((20.405669159611612, 16.96387000894329), 3.5, 8),  # a float32 tie on a finely upsampled broad peak
    ],
)
def test_plateau_gives_one_peak(centre: tuple[float, float], sigma: float, upsample: int):
    (found,) = find_peaks(gaussian(40, 40, [centre], sigma)[None], 0.1, upsample=upsample)
    assert len(found) == 1, found.tolist()
