"""Reading images of every storage kind as RGB uint8."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from posekit.io import ImageReadError, atomic_write_bytes, atomic_write_json, iter_image_paths, read_image


def _pattern(h: int = 40, w: int = 60) -> np.ndarray:
    """RGB image with a distinct colour in its top-left quadrant."""
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2, : w // 2] = (255, 0, 0)  # red, top-left
    return img


def test_png_round_trip_is_rgb(tmp_path: Path) -> None:
    p = tmp_path / "a.png"
    cv2.imwrite(str(p), _pattern()[..., ::-1])
    img = read_image(p)
    assert img.dtype == np.uint8
    assert img.shape == (40, 60, 3)
    assert tuple(img[0, 0]) == (255, 0, 0)


def test_grey_rgba_and_16_bit(tmp_path: Path) -> None:
    grey = tmp_path / "g.png"
    cv2.imwrite(str(grey), np.full((10, 12), 200, np.uint8))
    assert read_image(grey).shape == (10, 12, 3)
    assert read_image(grey)[0, 0].tolist() == [200, 200, 200]
    rgba = tmp_path / "rgba.png"
    cv2.imwrite(str(rgba), np.dstack([np.full((10, 12, 3), 50, np.uint8), np.zeros((10, 12), np.uint8)]))
    assert read_image(rgba).shape == (10, 12, 3)
    deep = tmp_path / "deep.png"
    cv2.imwrite(str(deep), np.full((10, 12, 3), 65535, np.uint16))
    img = read_image(deep)
    assert img.dtype == np.uint8
    assert img.max() == 255


def _jpeg_with_orientation(img_rgb: np.ndarray, orientation: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", img_rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    data = buf.tobytes()
    # An APP1 Exif segment holding one IFD0 entry: Orientation (0x0112), SHORT, count 1.
    tiff = b"MM\x00*\x00\x00\x00\x08" + b"\x00\x01" + b"\x01\x12\x00\x03\x00\x00\x00\x01"
    tiff += orientation.to_bytes(2, "big") + b"\x00\x00" + b"\x00\x00\x00\x00"
    payload = b"Exif\x00\x00" + tiff
    app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    return data[:2] + app1 + data[2:]


def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    p = tmp_path / "rotated.jpg"
    p.write_bytes(_jpeg_with_orientation(_pattern(), 6))  # 6: display rotated 90 degrees clockwise
    img = read_image(p)
    assert img.shape == (60, 40, 3)
    # the red top-left quadrant of the stored image is top-right once displayed
    assert img[5, 35, 0] > 200
    assert img[5, 5, 0] < 50


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty"), (b"\x89PNG\r\n\x1a\n garbage", "not a readable image"), (b"plain text", "not a readable image")],
)
def test_unreadable_files_raise_a_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    p = tmp_path / "bad.png"
    p.write_bytes(content)
    with pytest.raises(ImageReadError, match=message) as info:
        read_image(p)
    assert "bad.png" in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "missing.jpg")


def test_iter_image_paths_expands_folders_sorted_and_keeps_files(tmp_path: Path) -> None:
    (tmp_path / "b.jpg").write_bytes(b"x")
    (tmp_path / "a.PNG").write_bytes(b"x")
    (tmp_path / "notes.txt").write_bytes(b"x")
    extra = tmp_path / "elsewhere.txt"
    got = list(iter_image_paths([tmp_path, extra]))
    assert got == [tmp_path / "a.PNG", tmp_path / "b.jpg", extra]


def test_atomic_writes_replace_whole_files(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "r.json"
    atomic_write_json(target, {"a": 1})
    assert target.read_text() == '{"a":1}'
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["r.json"]


def test_atomic_output_renames_on_success_and_cleans_up_on_failure(tmp_path: Path) -> None:
    from posekit.io.files import atomic_output

    target = tmp_path / "model.onnx"
    with atomic_output(target, suffix=".onnx") as tmp:
        assert tmp.parent == tmp_path
        tmp.write_bytes(b"ok")
    assert target.read_bytes() == b"ok"
    assert target.stat().st_mode & 0o044, "readable like any ordinary file"

    def failing_writer() -> None:
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError, match="writer failed"):
        failing_writer()
    assert target.read_bytes() == b"ok", "the old file survives a failed write"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
