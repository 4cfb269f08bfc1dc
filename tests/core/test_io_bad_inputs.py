"""load_photo on the bad and unusual files clinics really have: damaged JPEG/PNG data,
phone formats, decompression bombs, 16-bit/float/alpha pixels. Each refusal names the
file and the reason; each odd-but-valid file loads."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import core.io
from core import PhotoError, load_photo


def _photo(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """A smooth gradient with noise (JPEG-compresses like a photo, not like flat colour)."""
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 2, y * 2, (x + y)], axis=2).astype(np.int32)
    noise = np.random.default_rng(seed).integers(0, 40, (h, w, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def _jpeg(path: Path, rgb: np.ndarray | None = None) -> bytes:
    Image.fromarray(_photo() if rgb is None else rgb).save(path, quality=90)
    return path.read_bytes()


def _png(path: Path, rgb: np.ndarray | None = None) -> bytes:
    Image.fromarray(_photo() if rgb is None else rgb).save(path)
    return path.read_bytes()


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _png_with_header(width: int, height: int, idat: bytes) -> bytes:
    """A PNG whose IHDR claims ``width x height`` RGB pixels, with valid CRCs."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a pixel decoder runs (the refusal must come from the header)."""

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("decoder called")

    monkeypatch.setattr(core.io.cv2, "imdecode", refuse)
    monkeypatch.setattr(core.io.simplejpeg, "decode_jpeg", refuse)


# ------------------------------------------------------------------ damaged JPEG data
def test_jpeg_with_garbage_in_the_middle_is_refused(tmp_path: Path) -> None:
    data = bytearray(_jpeg(tmp_path / "ok.jpg"))
    middle = len(data) // 2
    data[middle : middle + 300] = np.random.default_rng(1).bytes(300)
    (tmp_path / "garbled.jpg").write_bytes(bytes(data))
    with pytest.raises(PhotoError, match=r"^garbled\.jpg: corrupt JPEG data \("):
        load_photo(tmp_path / "garbled.jpg")


def test_jpeg_cut_inside_the_image_data_is_truncated(tmp_path: Path) -> None:
    data = _jpeg(tmp_path / "ok.jpg")
    (tmp_path / "half.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(PhotoError, match=r"half\.jpg: truncated JPEG"):
        load_photo(tmp_path / "half.jpg")


def test_data_after_the_jpeg_end_marker_is_accepted(tmp_path: Path) -> None:
    """Phones append motion-photo videos or maker data after the end-of-image marker."""
    data = _jpeg(tmp_path / "ok.jpg")
    video = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8
    (tmp_path / "motion.jpg").write_bytes(data + video)
    np.testing.assert_array_equal(
        load_photo(tmp_path / "motion.jpg"), load_photo(tmp_path / "ok.jpg")
    )


def test_jpeg_pixels_equal_opencv_decoding(tmp_path: Path) -> None:
    _jpeg(tmp_path / "ok.jpg")
    expected = cv2.cvtColor(cv2.imread(str(tmp_path / "ok.jpg")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(load_photo(tmp_path / "ok.jpg"), expected)


def test_grayscale_and_cmyk_jpegs_load_as_rgb(tmp_path: Path) -> None:
    rgb = _photo()
    Image.fromarray(rgb[:, :, 0]).save(tmp_path / "gray.jpg", quality=95)
    gray = load_photo(tmp_path / "gray.jpg")
    assert gray.shape == (96, 128, 3)
    assert np.array_equal(gray[:, :, 0], gray[:, :, 2])
    assert np.abs(gray[:, :, 0].astype(int) - rgb[:, :, 0]).mean() < 4

    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "print.jpg", quality=95)
    cmyk = load_photo(tmp_path / "print.jpg")
    assert cmyk.shape == (96, 128, 3) and np.abs(cmyk.astype(int) - rgb).mean() < 15


# ------------------------------------------------------------------ damaged PNG data
def test_png_with_a_broken_crc_names_the_chunk(tmp_path: Path) -> None:
    data = bytearray(_png(tmp_path / "ok.png"))
    idat = data.find(b"IDAT")
    data[idat + 20] ^= 0xFF  # one flipped byte inside the compressed pixels
    (tmp_path / "flipped.png").write_bytes(bytes(data))
    with pytest.raises(PhotoError, match=r"flipped\.png: corrupt PNG \(CRC error in its IDAT"):
        load_photo(tmp_path / "flipped.png")

    header = bytearray(_png(tmp_path / "ok.png"))
    header[29] ^= 0xFF  # the IHDR chunk's CRC itself
    (tmp_path / "header.png").write_bytes(bytes(header))
    with pytest.raises(PhotoError, match=r"header\.png: corrupt PNG \(CRC error in its IHDR"):
        load_photo(tmp_path / "header.png")


def test_png_cut_inside_a_chunk_is_truncated(tmp_path: Path) -> None:
    data = _png(tmp_path / "ok.png")
    (tmp_path / "cut.png").write_bytes(data[: len(data) - 40])
    with pytest.raises(PhotoError, match=r"cut\.png: truncated PNG"):
        load_photo(tmp_path / "cut.png")


def test_bytes_after_png_end_chunk_are_accepted(tmp_path: Path) -> None:
    data = _png(tmp_path / "ok.png")
    (tmp_path / "tail.png").write_bytes(data + b"appended by some uploader\n")
    np.testing.assert_array_equal(load_photo(tmp_path / "tail.png"), _photo())


def test_decompression_bomb_refused_from_its_header(tmp_path: Path, no_decoding: None) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_with_header(100_000, 100_000, zlib.compress(bytes(10_000))))
    assert bomb.stat().st_size < 200
    with pytest.raises(PhotoError, match=r"bomb\.png: photo too large \(100000x100000 px"):
        load_photo(bomb)


def test_huge_header_under_the_limit_with_tiny_data_is_refused_undecoded(
    tmp_path: Path, no_decoding: None
) -> None:
    """110 MP claimed, 17 bytes of pixels: deflate cannot expand that far."""
    liar = tmp_path / "liar.png"
    liar.write_bytes(_png_with_header(10_000, 11_000, zlib.compress(bytes(1_000))))
    with pytest.raises(PhotoError, match=r"liar\.png: corrupt PNG \(\d+ bytes of image data"):
        load_photo(liar)


def test_large_flat_bilevel_png_is_not_mistaken_for_a_bomb(tmp_path: Path) -> None:
    """1 bit per pixel, all white: compresses ~2700:1 against pixels, but not against bits."""
    Image.fromarray(np.ones((3000, 3000), bool)).save(tmp_path / "scan.png", optimize=True)
    out = load_photo(tmp_path / "scan.png")
    assert out.shape == (3000, 3000, 3) and out.min() == 255


def test_oversized_jpeg_refused_before_decoding(tmp_path: Path, no_decoding: None) -> None:
    _jpeg(tmp_path / "wide.jpg")
    with pytest.raises(PhotoError, match=r"wide\.jpg: photo too large \(128x96 px"):
        load_photo(tmp_path / "wide.jpg", max_pixels=10_000)


# --------------------------------------------------------------- unsupported formats
def _iso_media(brand: bytes, *compatible: bytes) -> bytes:
    """An ISO base media file start: ``ftyp`` box with major and compatible brands."""
    brands = b"".join(compatible)
    return struct.pack(">I", 16 + len(brands)) + b"ftyp" + brand + bytes(4) + brands + bytes(200)


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        (
            "IMG_0042.HEIC",
            _iso_media(b"heic", b"mif1", b"heic"),
            "HEIC/HEIF photos are not supported",
        ),
        (
            "IMG_0042.jpg",
            _iso_media(b"mif1", b"mif1", b"heic"),
            "HEIC/HEIF photos are not supported",
        ),
        (
            "photo.avif",
            _iso_media(b"avif", b"avif", b"mif1", b"miaf"),
            "AVIF images are not supported",
        ),
        (
            "clip.mp4",
            _iso_media(b"isom", b"isom", b"mp41"),
            "a video or ISO media file, not a photo",
        ),
        ("scan.pdf", b"%PDF-1.7\n" + bytes(300), "a PDF document, not a photo"),
        ("notes.png", b"hello, this is text\n" * 20, "not a readable image"),
    ],
)
def test_unsupported_formats_are_named(
    tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(PhotoError, match=f"^{name}: {reason}"):
        load_photo(tmp_path / name)


def test_camera_raw_is_refused_not_read_as_its_tiff_preview(tmp_path: Path) -> None:
    Image.fromarray(_photo()).save(tmp_path / "preview.tif")
    (tmp_path / "DSC_0001.NEF").write_bytes((tmp_path / "preview.tif").read_bytes())
    with pytest.raises(PhotoError, match=r"DSC_0001\.NEF: camera RAW files \(\.nef\)"):
        load_photo(tmp_path / "DSC_0001.NEF")


@pytest.mark.parametrize("suffix", [".tga", ".ico", ".pcx"])
def test_formats_pillow_knows_but_we_do_not_decode(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"image{suffix}"
    Image.fromarray(_photo(32, 32)).save(path)
    with pytest.raises(PhotoError, match=f"image\\{suffix}: .* files are not supported"):
        load_photo(path)


# ------------------------------------------------------------ unusual but valid pixels
def test_16bit_rgb_and_gray_tiff(tmp_path: Path) -> None:
    rgb = _photo()
    wide = rgb.astype(np.uint16) * 257
    cv2.imwrite(str(tmp_path / "rgb16.tif"), cv2.cvtColor(wide, cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(load_photo(tmp_path / "rgb16.tif"), rgb)
    cv2.imwrite(str(tmp_path / "gray16.tif"), wide[:, :, 1])
    np.testing.assert_array_equal(load_photo(tmp_path / "gray16.tif")[:, :, 2], rgb[:, :, 1])


def test_float_tiff_in_unit_range(tmp_path: Path) -> None:
    """Pillow cannot open a 3-channel float TIFF; its size comes from the TIFF directory."""
    rgb = _photo()
    cv2.imwrite(
        str(tmp_path / "f.tif"), cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2BGR)
    )
    np.testing.assert_array_equal(load_photo(tmp_path / "f.tif"), rgb)
    with pytest.raises(PhotoError, match=r"f\.tif: photo too large \(128x96"):
        load_photo(tmp_path / "f.tif", max_pixels=1000)


def test_all_nan_float_tiff_is_refused(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "nan.tif"), np.full((8, 8, 3), np.nan, np.float32))
    with pytest.raises(PhotoError, match=r"nan\.tif: no finite pixel values"):
        load_photo(tmp_path / "nan.tif")


def test_signed_integer_tiff_is_refused_with_its_type(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "s16.tif"), _photo().astype(np.int16))
    with pytest.raises(PhotoError, match=r"s16\.tif: unsupported pixel type int16"):
        load_photo(tmp_path / "s16.tif")


def test_gray_alpha_png_8_and_16_bit_composited_over_white(tmp_path: Path) -> None:
    la = np.zeros((10, 10, 2), np.uint8)
    la[:, :, 0] = 100
    la[:, :5, 1] = 255  # opaque left half, transparent right half
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    out = load_photo(tmp_path / "la.png")
    assert out.shape == (10, 10, 3)
    assert tuple(out[0, 0]) == (100, 100, 100) and tuple(out[0, 9]) == (255, 255, 255)

    rgba16 = np.zeros((10, 10, 4), np.uint16)
    rgba16[:, :, :3] = 100 * 257
    rgba16[:, :5, 3] = 65535
    cv2.imwrite(str(tmp_path / "rgba16.png"), rgba16)
    out16 = load_photo(tmp_path / "rgba16.png")
    assert tuple(out16[0, 0]) == (100, 100, 100) and tuple(out16[0, 9]) == (255, 255, 255)


def test_exif_rotated_png_is_upright(tmp_path: Path) -> None:
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:5, :5] = 255
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    image.save(tmp_path / "phone.png", exif=exif)
    out = load_photo(tmp_path / "phone.png")
    assert out.shape == (40, 20, 3) and out[2, -3].mean() > 200
