"""Plain Gaussian heatmap codec: frame, multi-person encoding, the quarter-pixel decode."""

from __future__ import annotations

import numpy as np
import pytest

from posekit.codecs.heatmap import GaussianHeatmap, decode, encode, render_gaussians, stride

INPUT = (192, 256)  # (W, H)
HEAT = (48, 64)  # stride 4


def test_stride_and_peak_position_follow_the_pixel_centre_frame():
    assert stride(INPUT, HEAT) == (4.0, 4.0)
    # Input pixel 9.5 is the centre of the 4x4 block of map pixel 2: (2 + 0.5) * 4 - 0.5.
    hm, w = encode([[[9.5, 13.5]]], [[1]], INPUT, HEAT, sigma=2.0)
    assert w.tolist() == [1.0]
    y, x = np.unravel_index(hm[0].argmax(), hm[0].shape)
    assert (x, y) == (2, 3)
    assert hm[0, 3, 2] == pytest.approx(1.0)
    # Unnormalised Gaussian: one map pixel away is exp(-1 / (2 sigma^2)).
    assert hm[0, 3, 3] == pytest.approx(np.exp(-1 / 8), rel=1e-6)
    assert hm[0, 5, 2] == pytest.approx(np.exp(-4 / 8), rel=1e-6)


def test_round_trip_within_the_documented_tolerance():
    rng = np.random.default_rng(0)
    # Interior keypoints anywhere on the sub-pixel grid: error <= 0.25 map px = 1 input px.
    kp = np.stack([rng.uniform(12, 180, 200), rng.uniform(12, 244, 200)], axis=1)
    worst = 0.0
    for p in kp:
        hm, w = encode(p[None], None, INPUT, HEAT, sigma=2.0)
        out, score = decode(hm, INPUT)
        assert w[0] == 1.0
        assert np.exp(-0.5 / 8) - 1e-6 <= score[0] <= 1.0  # the nearest pixel is <= 0.5 px away per axis
        err = np.abs(out[0] - p)
        assert np.all(err <= 0.25 * 4 + 1e-4)
        worst = max(worst, float(err.max()))
    assert worst > 0.5  # the tolerance is real (quantisation), not an artefact of easy points


def test_exact_on_pixel_centres_and_quarter_shift_direction():
    codec = GaussianHeatmap(INPUT, HEAT, sigma=2.0)
    centre = np.array([[(10 + 0.5) * 4 - 0.5, (20 + 0.5) * 4 - 0.5]])
    out, _ = codec.decode(codec.encode(centre)[0])
    np.testing.assert_allclose(out, centre, atol=1e-4)
    # A keypoint 0.4 map px right of and 0.3 px above a centre: argmax there, then +0.25 / -0.25.
    p = centre + np.array([[0.4 * 4, -0.3 * 4]])
    out, _ = codec.decode(codec.encode(p)[0])
    np.testing.assert_allclose(out, centre + np.array([[0.25 * 4, -0.25 * 4]]), atol=1e-4)


def test_multi_person_max_visibility_and_weights():
    kp = np.array([[[17.5, 17.5], [100.0, 100.0]], [[149.5, 201.5], [np.nan, np.nan]]])  # on centres
    vis = np.array([[1, 0], [1, 1]])
    hm, w = encode(kp, vis, INPUT, HEAT, sigma=1.5)
    assert hm.shape == (2, 64, 48)
    assert w.tolist() == [1.0, 0.0]  # keypoint 1: invisible for one person, NaN for the other
    assert not hm[1].any()
    # Two peaks of value 1 in channel 0, max-combined (not summed).
    assert hm[0].max() == pytest.approx(1.0, abs=1e-6)
    single, _ = encode(kp[:1], vis[:1], INPUT, HEAT, sigma=1.5)
    other, _ = encode(kp[1:], vis[1:], INPUT, HEAT, sigma=1.5)
    np.testing.assert_allclose(hm[0], np.maximum(single[0], other[0]))


def test_far_outside_gets_zero_weight_and_empty_decodes_to_nan():
    hm, w = encode([[[-100.0, 50.0]]], [[1]], INPUT, HEAT, sigma=2.0)
    assert w.tolist() == [0.0]
    assert not hm.any()
    out, score = decode(hm, INPUT)
    assert np.isnan(out).all()
    assert score.tolist() == [0.0]


def test_decode_batches_and_border_tolerance():
    rng = np.random.default_rng(1)
    kp = np.stack([rng.uniform(0, 191, (3, 5)), rng.uniform(0, 255, (3, 5))], axis=-1)  # (B, K, 2)
    maps = np.stack([encode(k[:, None].transpose(1, 0, 2), None, INPUT, HEAT, 2.0)[0] for k in kp])
    assert maps.shape == (3, 5, 64, 48)
    out, score = decode(maps, INPUT)
    assert out.shape == (3, 5, 2)
    assert score.shape == (3, 5)
    # Anywhere inside the grid (border included) the error is at most 0.5 map px.
    assert np.abs(out - kp).max() <= 0.5 * 4 + 1e-4


def test_render_gaussians_is_the_map_frame_encoder():
    a = render_gaussians([[[3.25, 4.5]]], [[True]], (10, 8), 1.0)
    b, _ = encode([[[3.25, 4.5]]], None, (10, 8), (10, 8), 1.0)
    np.testing.assert_allclose(a, b)
    assert a[0, 4, 3] == pytest.approx(np.exp(-(0.25**2 + 0.5**2) / 2), rel=1e-6)


def test_codec_rejects_wrong_map_size():
    with pytest.raises(ValueError, match="expects"):
        GaussianHeatmap(INPUT, HEAT).decode(np.zeros((1, 48, 64)))
