"""Reading photos into the one pixel format the rest of the code uses.

Every photo becomes an ``HxWx3 uint8 RGB`` array in display orientation (EXIF rotation
applied), whatever its file held: 8- or 16-bit, grayscale, RGB, with or without alpha.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from core.errors import PhotoError

#: Largest photo accepted, in pixels. Total-body photography cameras reach ~60 MP.
MAX_PIXELS = 120_000_000
#: Largest file accepted, in bytes.
MAX_FILE_BYTES = 512 * 1024 * 1024

SUPPORTED_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")

# Images this project itself limits by MAX_PIXELS; Pillow's own bomb guard would refuse
# large clinical photos with a less helpful message.
Image.MAX_IMAGE_PIXELS = None


def _check_complete(path: Path, data: bytes) -> None:
    """Refuse JPEG and PNG files whose end marker is missing (truncated downloads/copies)."""
    if data[:3] == b"\xff\xd8\xff":
        tail = data[-64:].rstrip(b"\x00\r\n ")
        if not tail.endswith(b"\xff\xd9"):
            raise PhotoError(path, "truncated JPEG (end-of-image marker missing)")
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        if b"IEND" not in data[-32:]:
            raise PhotoError(path, "truncated PNG (IEND chunk missing)")


def _exif_orientation(path: Path) -> int:
    """EXIF orientation tag (1-8), 1 when absent or unreadable."""
    try:
        with Image.open(path) as im:
            value = im.getexif().get(0x0112, 1)
    except Exception:  # header unreadable by Pillow: no orientation to apply
        return 1
    return int(value) if value in range(1, 9) else 1


def _apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip ``image`` so that it shows as the camera's EXIF tag says."""
    ops = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1, :],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
        7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
        8: lambda a: np.swapaxes(a, 0, 1)[::-1, :],
    }
    return np.ascontiguousarray(ops[orientation](image))


def _header_size(path: Path) -> tuple[int, int] | None:
    try:
        with Image.open(path) as im:
            return im.size
    except Exception:
        return None


def to_rgb8(pixels: np.ndarray) -> np.ndarray:
    """Convert a decoded OpenCV array (gray, BGR or BGRA; uint8, uint16 or float) to RGB uint8.

    Alpha is composited over white, the colour of an empty page, so transparent
    surroundings do not look like dark skin.
    """
    if pixels.dtype == np.uint16:
        pixels = ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif pixels.dtype in (np.float32, np.float64):
        scale = 255.0 if float(np.nanmax(pixels)) <= 1.0 else 1.0
        pixels = np.clip(np.nan_to_num(pixels) * scale, 0, 255).round().astype(np.uint8)
    elif pixels.dtype != np.uint8:
        raise ValueError(f"unsupported pixel type {pixels.dtype}")
    if pixels.ndim == 2:
        return np.repeat(pixels[:, :, None], 3, axis=2)
    channels = pixels.shape[2]
    if channels == 1:
        return np.repeat(pixels, 3, axis=2)
    if channels == 2:  # gray + alpha
        gray, alpha = pixels[:, :, :1].astype(np.float32), pixels[:, :, 1:2] / 255.0
        out = gray * alpha + 255.0 * (1 - alpha)
        return np.repeat(out.round().astype(np.uint8), 3, axis=2)
    if channels == 4:
        bgr, alpha = pixels[:, :, :3].astype(np.float32), pixels[:, :, 3:4] / 255.0
        pixels = (bgr * alpha + 255.0 * (1 - alpha)).round().astype(np.uint8)
    return cv2.cvtColor(np.ascontiguousarray(pixels[:, :, :3]), cv2.COLOR_BGR2RGB)


def load_photo(path: str | Path, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Load a photo as ``HxWx3 uint8 RGB`` in display orientation.

    Raises :class:`core.errors.PhotoError` naming the file and the reason when it is
    missing, empty, truncated, oversized, of an unsupported format or undecodable.
    """
    path = Path(path)
    if not path.exists():
        raise PhotoError(path, "file not found")
    if path.is_dir():
        raise PhotoError(path, "is a folder, not a photo")
    size = path.stat().st_size
    if size == 0:
        raise PhotoError(path, "empty file")
    if size > MAX_FILE_BYTES:
        raise PhotoError(path, f"file too large ({size / 1e6:.0f} MB)")
    header = _header_size(path)
    if header is not None and header[0] * header[1] > max_pixels:
        raise PhotoError(
            path, f"photo too large ({header[0]}x{header[1]} px, limit {max_pixels / 1e6:.0f} MP)"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PhotoError(path, f"cannot read ({exc.strerror or exc})") from exc
    _check_complete(path, data)
    buffer = np.frombuffer(data, dtype=np.uint8)
    pixels = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
    if pixels is None or pixels.size == 0:
        kind = path.suffix.lower() or "unknown"
        if header is None:
            raise PhotoError(path, f"not a readable image (format {kind} unknown or corrupt)")
        raise PhotoError(path, "corrupt image data")
    if pixels.shape[0] * pixels.shape[1] > max_pixels:
        raise PhotoError(path, f"photo too large ({pixels.shape[1]}x{pixels.shape[0]} px)")
    try:
        rgb = to_rgb8(pixels)
    except ValueError as exc:
        raise PhotoError(path, str(exc)) from exc
    return _apply_orientation(rgb, _exif_orientation(path))


def save_rgb(path: str | Path, image: np.ndarray, *, quality: int = 95) -> None:
    """Write an ``HxWx3 uint8 RGB`` array as PNG or JPEG (by suffix)."""
    path = Path(path)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if path.suffix.lower() in (".jpg", ".jpeg") else []
    ok = cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise OSError(f"{path.name}: could not write image")
