"""Rotated square crops: ROIs, the image <-> crop maps and the crops themselves."""

from __future__ import annotations

import numpy as np
import pytest

from posekit.topdown.crops import Rois, crop_images, crop_matrices, from_crop, to_crop

ROTATIONS = [0.0, 0.3, -1.1, np.pi / 2, -np.pi / 2, np.pi, -np.pi, 2.5]


def _corners(rois: Rois, out_size: int) -> np.ndarray:
    """``(N, 4, 2)`` image positions of each crop's four corners."""
    s = float(out_size)
    crop = np.broadcast_to(np.array([[0, 0], [s, 0], [s, s], [0, s]]), (len(rois), 4, 2))
    return from_crop(crop, rois, out_size)


@pytest.mark.parametrize("rotation", ROTATIONS)
def test_to_crop_and_from_crop_are_inverse(rotation: float) -> None:
    rng = np.random.default_rng(7)
    n, k, out = 5, 12, 256
    rois = Rois(rng.uniform(-50, 700, (n, 2)), rng.uniform(20, 900, n), np.full(n, rotation))
    pts = rng.uniform(-200, 900, (n, k, 2))
    crop = to_crop(pts, rois, out)
    np.testing.assert_allclose(from_crop(crop, rois, out), pts, atol=0.01)
    np.testing.assert_allclose(to_crop(from_crop(crop, rois, out), rois, out), crop, atol=0.01)


def test_round_trip_with_random_rotations_per_person() -> None:
    rng = np.random.default_rng(11)
    n = 20
    rois = Rois(rng.uniform(0, 640, (n, 2)), rng.uniform(10, 1000, n), rng.uniform(-np.pi, np.pi, n))
    pts = rng.uniform(-100, 740, (n, 33, 2))
    np.testing.assert_allclose(from_crop(to_crop(pts, rois, 224), rois, 224), pts, atol=0.01)


def test_crop_geometry_centre_scale_and_rotation_sign() -> None:
    rois = Rois([[300.0, 200.0]], [100.0], [np.pi / 2])
    out = 50
    # the ROI centre is the crop centre
    np.testing.assert_allclose(to_crop(np.array([[[300.0, 200.0]]]), rois, out), [[[25.0, 25.0]]], atol=1e-9)
    # positive rotation turns the crop's "up" towards the image's +x: a point to the right of the
    # centre (image) is straight above the centre in the crop, at half the distance (100 px -> 50 px)
    np.testing.assert_allclose(to_crop(np.array([[[340.0, 200.0]]]), rois, out), [[[25.0, 5.0]]], atol=1e-9)
    m = crop_matrices(rois, out)
    assert m.shape == (1, 2, 3)
    np.testing.assert_allclose(np.abs(np.linalg.det(m[0, :, :2])), (out / 100.0) ** 2)


@pytest.mark.parametrize("rotation", [0.0, 0.6, -np.pi / 2, 2.2, np.pi])
def test_a_bright_pixel_lands_where_to_crop_predicts(rotation: float) -> None:
    """``crop_images`` applies the crop matrix to pixel indices (MediaPipe's convention, kept for
    landmark parity), so pixel (row, col) lands at crop index ``to_crop((col, row))``. In the
    continuous convention of the module docstring (pixel centres at +0.5) that is off by at most
    |(0.5, 0.5) - k R (0.5, 0.5)|, up to 1.5 crop pixels for k ~ 1."""
    h, w = 200, 300
    row, col = 121, 173
    image = np.zeros((h, w, 3), dtype=np.uint8)
    image[row, col] = 255
    out = 64
    rois = Rois([[160.0, 110.0]], [60.0], [rotation])  # 64 / 60: each image pixel covers ~1 crop pixel
    crop = crop_images(image, rois, out)
    assert crop.shape == (1, out, out, 3)
    assert crop.dtype == np.uint8
    weight = crop[0, :, :, 0].astype(np.float64)
    assert weight.max() > 50, "the bright pixel must appear in the crop"
    assert (crop[0, :, :, 0] == 0).mean() > 0.99, "only the bright pixel's neighbourhood is lit"
    rr, cc = np.mgrid[0:out, 0:out]
    found = np.array([(weight * cc).sum(), (weight * rr).sum()]) / weight.sum()  # crop pixel index
    predicted = to_crop(np.array([[[col, row]]], dtype=np.float64), rois, out)[0, 0]
    assert np.linalg.norm(found - predicted) < 0.5, f"found {found}, predicted {predicted}"
    # continuous convention: within the documented half-pixel bound
    centre = to_crop(np.array([[[col + 0.5, row + 0.5]]]), rois, out)[0, 0]
    k = out / 60.0
    half = np.array([0.5, 0.5])
    rot = np.array([[np.cos(rotation), np.sin(rotation)], [-np.sin(rotation), np.cos(rotation)]])
    shift = np.linalg.norm(half - k * rot @ half)
    assert abs(np.linalg.norm(found + 0.5 - centre) - shift) < 0.2
    if rotation == 0.0:
        assert np.linalg.norm(found + 0.5 - centre) < 1.0
    # and back: the crop position maps to the pixel
    back = from_crop(found[None, None], rois, out)[0, 0]
    assert np.linalg.norm(back - [col, row]) < 0.5


def test_crop_images_replicates_or_zeroes_outside_the_image() -> None:
    import cv2

    image = np.full((40, 40, 3), 200, dtype=np.uint8)
    rois = Rois([[0.0, 0.0]], [40.0], [0.0])  # three quarters of it lie outside the image
    replicated = crop_images(image, rois, 32)
    zeroed = crop_images(image, rois, 32, border=cv2.BORDER_CONSTANT)
    assert (replicated == 200).all()
    assert (zeroed[0, :10, :10] == 0).all()
    assert (zeroed[0, 20:, 20:] == 200).all()


def test_crop_images_one_crop_per_roi_in_order() -> None:
    image = np.zeros((100, 200, 3), dtype=np.uint8)
    image[:, 100:] = 255
    rois = Rois([[50.0, 50.0], [150.0, 50.0], [50.0, 50.0]], [40.0, 40.0, 40.0], [0.0, 0.0, 1.0])
    crops = crop_images(image, rois, 16)
    assert crops.shape == (3, 16, 16, 3)
    assert (crops[0] == 0).all()
    assert (crops[1] == 255).all()
    assert (crops[2] == 0).all()
    assert len(crop_images(image, rois[np.array([], dtype=int)], 16)) == 0


def test_from_boxes_gives_upright_squares_of_scaled_longer_side() -> None:
    boxes = np.array([[10.0, 20.0, 110.0, 320.0], [0.0, 0.0, 80.0, 40.0]])
    rois = Rois.from_boxes(boxes)
    np.testing.assert_allclose(rois.centers, [[60.0, 170.0], [40.0, 20.0]])
    np.testing.assert_allclose(rois.sizes, [1.25 * 300.0, 1.25 * 80.0])
    np.testing.assert_allclose(rois.rotations, 0.0)
    np.testing.assert_allclose(Rois.from_boxes(boxes, scale=1.0).sizes, [300.0, 80.0])
    assert len(Rois.from_boxes(np.zeros((0, 4)))) == 0
    # the square's box contains the original box
    sq = rois.boxes()
    assert (sq[:, :2] <= boxes[:, :2]).all()
    assert (sq[:, 2:] >= boxes[:, 2:]).all()


@pytest.mark.parametrize("rotation", ROTATIONS)
def test_boxes_enclose_the_rotated_square_tightly(rotation: float) -> None:
    rois = Rois([[200.0, 150.0], [-30.0, 400.0]], [120.0, 333.0], [rotation, rotation / 2])
    corners = _corners(rois, 256)
    boxes = rois.boxes()
    assert boxes.shape == (2, 4)
    assert boxes.dtype == np.float32
    np.testing.assert_allclose(boxes[:, :2], corners.min(axis=1), atol=1e-3)
    np.testing.assert_allclose(boxes[:, 2:], corners.max(axis=1), atol=1e-3)


def test_rois_index_like_arrays() -> None:
    rois = Rois([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], [10.0, 20.0, 30.0], [0.1, 0.2, 0.3])
    sub = rois[np.array([2, 0])]
    assert len(sub) == 2
    np.testing.assert_allclose(sub.centers, [[5.0, 6.0], [1.0, 2.0]])
    np.testing.assert_allclose(sub.sizes, [30.0, 10.0])
    np.testing.assert_allclose(rois[1].rotations, [0.2])
    with pytest.raises(ValueError, match="reshape"):
        Rois([[1.0, 2.0]], [1.0, 2.0], [0.0])
