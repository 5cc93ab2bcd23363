"""UDP heatmap codec: exact round trips, its coordinate frame, and flip symmetry."""

from __future__ import annotations

import numpy as np
import pytest

from posekit.codecs.udp import UDPHeatmap, decode, encode, flip_heatmaps, flip_keypoints, gaussian_blur, udp_scale
from posekit.schemas import COCO_17

INPUT, HEATMAP = (192, 256), (48, 64)  # (W, H): ViTPose's 256x192 crop and its 64x48 heatmaps
SX, SY = udp_scale(INPUT, HEATMAP)


def _random_keypoints(rng: np.random.Generator, n: int, margin: float) -> np.ndarray:
    """``n`` sub-pixel keypoints at least ``margin`` heatmap pixels inside the heatmap grid."""
    x = rng.uniform(margin * SX, (HEATMAP[0] - 1 - margin) * SX, n)
    y = rng.uniform(margin * SY, (HEATMAP[1] - 1 - margin) * SY, n)
    return np.stack([x, y], axis=1)


def test_scale_is_udp_not_stride() -> None:
    assert udp_scale(INPUT, HEATMAP) == pytest.approx((191 / 47, 255 / 63))
    with pytest.raises(ValueError, match="at least 2x2"):
        udp_scale((192, 256), (1, 64))


def test_encode_peak_sits_on_the_udp_position() -> None:
    # The input's last pixel centre (W - 1, H - 1) is the heatmap's last pixel centre: UDP aligns the ends.
    kp = np.array([[0.0, 0.0], [191.0, 255.0], [SX * 10, SY * 20]])
    hm, w = encode(kp, None, INPUT, HEATMAP, sigma=2.0)
    assert hm.shape == (3, 64, 48)
    assert hm.dtype == np.float32
    np.testing.assert_array_equal(w, [1, 1, 1])
    for k, (row, col) in enumerate([(0, 0), (63, 47), (20, 10)]):
        assert np.unravel_index(hm[k].argmax(), hm[k].shape) == (row, col)
        assert hm[k, row, col] == pytest.approx(1.0)
    # One heatmap pixel from the peak the Gaussian is exp(-1 / (2 sigma^2)).
    assert hm[2, 20, 11] == pytest.approx(np.exp(-1 / 8), rel=1e-6)


def test_encode_weights_invisible_nan_and_far_outside() -> None:
    kp = np.array([[50.0, 60.0], [50.0, 60.0], [np.nan, 3.0], [-40.0, 60.0], [-5.0, 60.0]])
    hm, w = encode(kp, [1, 0, 1, 1, 1], INPUT, HEATMAP, sigma=2.0)
    # invisible, NaN, and 10 heatmap px left of the grid (beyond 3 sigma) get weight 0 and no target;
    # 1.2 heatmap px outside still reaches the grid and is kept.
    np.testing.assert_array_equal(w, [1, 0, 0, 0, 1])
    assert not hm[1:4].any()
    assert hm[4].max() > 0.8


@pytest.mark.parametrize("sigma", [1.5, 2.0, 3.0])
def test_round_trip_without_blur_is_exact_everywhere(sigma: float) -> None:
    # Without the blur the log of the target is exactly quadratic: the Newton step recovers the
    # encoded point anywhere on the grid, borders included.
    rng = np.random.default_rng(0)
    for _ in range(20):
        kp = _random_keypoints(rng, 17, margin=0.0)
        hm, _ = encode(kp, None, INPUT, HEATMAP, sigma)
        got, scores = decode(hm, INPUT, blur_kernel_size=0)
        np.testing.assert_allclose(got, kp, atol=1e-3)
        assert (scores > np.exp(-0.5 / sigma**2) - 1e-6).all()  # peak within half a pixel of a sample


def test_round_trip_with_the_default_blur() -> None:
    # ViTPose's decoding (blur 11) on sigma-2 targets: within 0.05 input pixels away from the borders.
    rng = np.random.default_rng(1)
    codec = UDPHeatmap(INPUT, HEATMAP, sigma=2.0, blur_kernel_size=11)
    worst = 0.0
    for _ in range(50):
        kp = _random_keypoints(rng, 17, margin=5.0)
        hm, _ = codec.encode(kp)
        got, _ = codec.decode(hm)
        worst = max(worst, float(np.abs(got - kp).max()))
    assert worst < 0.05


def test_refinement_beats_the_argmax() -> None:
    rng = np.random.default_rng(2)
    kp = _random_keypoints(rng, 200, margin=5.0)
    hm = np.stack([encode(p[None], None, INPUT, HEATMAP, 2.0)[0][0] for p in kp])
    refined, _ = decode(hm, INPUT)
    y, x = np.divmod(hm.reshape(len(kp), -1).argmax(1), HEATMAP[0])
    coarse = np.stack([x * SX, y * SY], axis=1)
    assert np.abs(refined - kp).mean() < 0.01 * np.abs(coarse - kp).mean()


def test_decode_batches_and_empty_maps() -> None:
    rng = np.random.default_rng(3)
    kp = _random_keypoints(rng, 2 * 17, margin=5.0).reshape(2, 17, 2)
    hm = np.stack([encode(k, None, INPUT, HEATMAP, 2.0)[0] for k in kp])
    hm[1, 4] = 0.0  # a keypoint the network did not find
    got, scores = decode(hm, INPUT)
    assert got.shape == (2, 17, 2)
    assert scores.shape == (2, 17)
    assert np.isnan(got[1, 4]).all()
    assert scores[1, 4] == 0
    ok = np.ones((2, 17), bool)
    ok[1, 4] = False
    np.testing.assert_allclose(got[ok], kp[ok], atol=0.05)
    with pytest.raises(ValueError, match="this codec expects"):
        UDPHeatmap(INPUT, HEATMAP).decode(hm[..., :40])


def test_blur_preserves_mass_and_the_centre() -> None:
    img = np.zeros((31, 31))
    img[15, 15] = 1.0
    out = gaussian_blur(img, 11)
    assert out.sum() == pytest.approx(1.0)
    assert np.unravel_index(out.argmax(), out.shape) == (15, 15)
    np.testing.assert_allclose(out, out[::-1, ::-1])  # symmetric kernel
    with pytest.raises(ValueError, match="odd"):
        gaussian_blur(img, 4)


def test_flip_heatmaps_is_an_involution() -> None:
    rng = np.random.default_rng(4)
    hm = rng.random((3, 17, 64, 48)).astype(np.float32)
    once = flip_heatmaps(hm, COCO_17.flip_pairs)
    assert not np.array_equal(once, hm)
    np.testing.assert_array_equal(flip_heatmaps(once, COCO_17.flip_pairs), hm)
    # left_eye (1) of the flipped maps is right_eye (2) of the originals, mirrored.
    np.testing.assert_array_equal(once[:, 1], hm[:, 2, :, ::-1])
    np.testing.assert_array_equal(once[:, 0], hm[:, 0, :, ::-1])  # the nose has no partner


def test_flip_commutes_with_encode_and_decode() -> None:
    # Under UDP a flipped image's targets are exactly the flipped targets (no half-pixel shift),
    # and decoding the flipped heatmaps gives the flipped keypoints.
    rng = np.random.default_rng(5)
    for _ in range(10):
        kp = _random_keypoints(rng, 17, margin=0.0)
        hm, _ = encode(kp, None, INPUT, HEATMAP, 2.0)
        fkp = flip_keypoints(kp, COCO_17.flip_pairs, INPUT[0])
        fhm, _ = encode(fkp, None, INPUT, HEATMAP, 2.0)
        np.testing.assert_allclose(flip_heatmaps(hm, COCO_17.flip_pairs), fhm, atol=1e-6)
        got, _ = decode(fhm, INPUT, blur_kernel_size=0)
        np.testing.assert_allclose(got, fkp, atol=1e-3)
    np.testing.assert_allclose(flip_keypoints(fkp, COCO_17.flip_pairs, INPUT[0]), kp, atol=1e-4)
