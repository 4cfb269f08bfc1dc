"""load_photo: every pixel format becomes RGB uint8 upright; bad files get a named reason."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from core import PhotoError, load_photo


def _gradient(h: int = 40, w: int = 60) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 4, y * 6, (x + y) * 2], axis=2).astype(np.uint8)


def test_png_round_trip_is_rgb(tmp_path: Path) -> None:
    rgb = _gradient()
    cv2.imwrite(str(tmp_path / "a.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    out = load_photo(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (40, 60, 3)
    np.testing.assert_array_equal(out, rgb)


def test_16bit_gray_and_alpha(tmp_path: Path) -> None:
    rgb16 = _gradient().astype(np.uint16) * 257
    cv2.imwrite(str(tmp_path / "c16.png"), cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(load_photo(tmp_path / "c16.png"), _gradient())

    gray = _gradient()[:, :, 0]
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    out = load_photo(tmp_path / "g.png")
    assert out.shape == (40, 60, 3)
    np.testing.assert_array_equal(out[:, :, 1], gray)

    bgra = np.zeros((10, 10, 4), np.uint8)
    bgra[:, :5] = (0, 0, 255, 255)  # opaque red on the left
    bgra[:, 5:] = (0, 0, 255, 0)  # transparent on the right: white
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    out = load_photo(tmp_path / "a.png")
    assert tuple(out[0, 0]) == (255, 0, 0) and tuple(out[0, 9]) == (255, 255, 255)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_applied(tmp_path: Path, orientation: int) -> None:
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:5, :5] = 255  # a white corner at the stored top-left
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(tmp_path / "p.jpg", exif=exif, quality=98)
    out = load_photo(tmp_path / "p.jpg")
    expected_shape = (20, 40, 3) if orientation == 3 else (40, 20, 3)
    assert out.shape == expected_shape
    corner = {3: (-3, -3), 6: (2, -3), 8: (-3, 2)}[orientation]  # where the corner shows
    assert out[corner[0], corner[1]].mean() > 200
    assert out[2, 2].mean() < 60 or orientation == 6 and out[2, -3].mean() > 200


def test_bad_files_are_named(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(PhotoError, match="empty.jpg: empty file"):
        load_photo(empty)

    with pytest.raises(PhotoError, match="missing.png: file not found"):
        load_photo(tmp_path / "missing.png")

    junk = tmp_path / "notes.jpg"
    junk.write_text("this is not a photo")
    with pytest.raises(PhotoError, match="notes.jpg"):
        load_photo(junk)

    good = tmp_path / "full.jpg"
    Image.fromarray(_gradient(200, 200)).save(good, quality=90)
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(good.read_bytes()[:-500])
    with pytest.raises(PhotoError, match="cut.jpg: truncated JPEG"):
        load_photo(truncated)

    png = tmp_path / "full.png"
    Image.fromarray(_gradient(200, 200)).save(png)
    cut_png = tmp_path / "cut.png"
    cut_png.write_bytes(png.read_bytes()[: len(png.read_bytes()) // 2])
    with pytest.raises(PhotoError, match="cut.png: truncated PNG"):
        load_photo(cut_png)


def test_oversized_photo_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((300, 400, 3), np.uint8)).save(path)
    with pytest.raises(PhotoError, match="big.png: photo too large"):
        load_photo(path, max_pixels=100_000)
