"""Reading photos into the one pixel format the rest of the code uses.

Every photo becomes an ``HxWx3 uint8 RGB`` array in display orientation (EXIF rotation
applied), whatever its file held: 8- or 16-bit, grayscale, RGB, with or without alpha.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import simplejpeg
from PIL import Image

from core.errors import PhotoError

#: Largest photo accepted, in pixels. Total-body photography cameras reach ~60 MP.
MAX_PIXELS = 120_000_000
#: Largest file accepted, in bytes.
MAX_FILE_BYTES = 512 * 1024 * 1024

SUPPORTED_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")

#: Pillow's names of the formats OpenCV decodes here ("MPO": multi-picture JPEG of cameras).
DECODED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "TIFF", "BMP", "DIB", "WEBP", "GIF", "PPM"})

#: Camera RAW suffixes: some are TIFF inside, and decoding them as TIFF gives the small
#: embedded preview instead of the photo.
RAW_SUFFIXES = frozenset(
    {".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".orf", ".rw2"}
    | {".raf", ".pef", ".srw", ".x3f", ".raw", ".3fr", ".iiq", ".erf", ".kdc", ".mrw"}
)

#: Suffixes of photo formats people will try (phones, cameras) that load_photo refuses with
#: a named reason; file pickers list them so that the refusal is seen, not a silent skip.
REFUSED_PHOTO_SUFFIXES = frozenset({".heic", ".heif", ".avif"} | RAW_SUFFIXES)

# ISO base media "ftyp" brands of still-image formats that neither decoder reads.
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: libjpeg-turbo complaints about valid files (metadata, rare but legal coding choices):
#: OpenCV decodes those leniently. Every other complaint after a good header is damage.
_HARMLESS_JPEG_COMPLAINTS = (
    "Invalid SOS parameters for sequential JPEG",
    "unknown JFIF revision",
    "Unknown Adobe color transform",
    "ICC",
    "Unsupported color conversion",
    "Unsupported JPEG data precision",
    "Unsupported JPEG process",
    "Requested features are incompatible",
)
#: Deflate never compresses better than about 1032:1; PNG data beyond that is missing.
_DEFLATE_MAX_RATIO = 1032

# Images this project itself limits by MAX_PIXELS; Pillow's own bomb guard would refuse
# large clinical photos with a less helpful message.
Image.MAX_IMAGE_PIXELS = None
# load_photo reports every decoding failure itself as one PhotoError line; OpenCV's own
# "[ERROR] imdecode ..." log lines would only repeat it, less clearly, on stderr.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
# Pillow warns about damaged EXIF blocks while reading headers; such a photo is shown
# without rotation (or refused for its pixels), and the warning would be a stray stderr line.
warnings.filterwarnings("ignore", message=r".*(EXIF|exif)", category=UserWarning, module=r"PIL\.")


def _unsupported_format(path: Path, head: bytes) -> str | None:
    """The reason a recognisable but unsupported file is refused, or None."""
    suffix = path.suffix.lower()
    if suffix in RAW_SUFFIXES:
        return f"camera RAW files ({suffix}) are not supported; export the photo as JPEG or TIFF"
    if head[4:8] == b"ftyp":
        box_end = min(int.from_bytes(head[:4], "big"), len(head))
        brands = {head[8:12]} | {head[i : i + 4] for i in range(16, box_end - 3, 4)}
        if brands & _AVIF_BRANDS:  # AVIF files also list the generic HEIF brand "mif1"
            return "AVIF images are not supported; export the photo as JPEG or PNG"
        if brands & _HEIF_BRANDS:
            return "HEIC/HEIF photos are not supported; export the photo as JPEG"
        return "a video or ISO media file, not a photo"
    if head.startswith(b"%PDF"):
        return "a PDF document, not a photo"
    return None


def _check_png(path: Path, data: bytes, width: int, height: int) -> None:
    """Walk the PNG chunks: refuse a cut-off file, a chunk whose CRC does not match, or
    image data too short to hold ``width x height`` pixels (tiny file, huge header)."""
    view = memoryview(data)
    position, idat_bytes = len(_PNG_SIGNATURE), 0
    while True:
        if position + 8 > len(data):
            raise PhotoError(path, "truncated PNG (IEND chunk missing)")
        length, kind = struct.unpack(">I4s", view[position : position + 8])
        name = kind.decode("latin-1")
        if not name.isalpha():
            raise PhotoError(path, f"corrupt PNG (no valid chunk at byte {position})")
        end = position + 12 + length
        if end > len(data):
            raise PhotoError(path, f"truncated PNG (file ends inside its {name} chunk)")
        (stored_crc,) = struct.unpack(">I", view[end - 4 : end])
        if zlib.crc32(view[position + 4 : end - 4]) != stored_crc:
            raise PhotoError(
                path, f"corrupt PNG (CRC error in its {name} chunk at byte {position})"
            )
        if kind == b"IDAT":
            idat_bytes += length
        if kind == b"IEND":
            break
        position = end
    depth, colour_type = data[24], data[25]  # IHDR, checked by its CRC above
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour_type, 1)
    pixel_bytes = width * height * depth * channels // 8  # filter bytes come on top
    if idat_bytes * _DEFLATE_MAX_RATIO < pixel_bytes:
        raise PhotoError(
            path, f"corrupt PNG ({idat_bytes} bytes of image data cannot hold {width}x{height} px)"
        )


def _decode_jpeg(path: Path, data: bytes) -> np.ndarray | None:
    """Decode a JPEG strictly (libjpeg-turbo warnings are errors) as ``HxWx3 uint8 RGB``.

    Truncated or corrupt entropy-coded data (garbage in the middle, a cut-off copy)
    raises PhotoError; data after the end-of-image marker (phones append motion-photo
    videos or maker data there) is fine. Returns None when OpenCV should decode it:
    CMYK/YCCK files (checked here first), headers or harmless complaints libjpeg-turbo's
    strict mode does not accept. JPEG has no checksum: damage that still decodes as
    valid codes to the right end of the data cannot be seen by any decoder.
    """
    try:
        colorspace = simplejpeg.decode_jpeg_header(data)[2]
    except ValueError:
        return None
    try:
        if colorspace in ("CMYK", "YCCK"):
            simplejpeg.decode_jpeg(data, colorspace="CMYK", min_height=1, min_width=1, min_factor=8)
            return None
        return simplejpeg.decode_jpeg(data, colorspace="RGB")
    except ValueError as exc:
        text = str(exc)
        if "Premature end of JPEG file" in text:
            raise PhotoError(path, "truncated JPEG (the file ends inside the image data)") from exc
        if any(harmless in text for harmless in _HARMLESS_JPEG_COMPLAINTS):
            return None
        detail = text.removeprefix("Corrupt JPEG data: ")
        raise PhotoError(path, f"corrupt JPEG data ({detail})") from exc


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


def _read_header(data: bytes) -> tuple[int, int, str, int] | None:
    """(width, height, Pillow format name, EXIF orientation 1-8) from the file's header
    without decoding pixels, or None when Pillow does not recognise the file."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
            kind = str(im.format or "")
            try:
                if kind == "PNG":  # Pillow's PNG getexif() decodes the whole image first
                    exif = Image.Exif()
                    if im.info.get("exif"):
                        exif.load(im.info["exif"])
                else:
                    exif = im.getexif()
                value = exif.get(0x0112, 1)
            except Exception:  # broken EXIF block: no orientation to apply
                value = 1
    except Exception:
        return None
    orientation = int(value) if value in range(1, 9) else 1
    return int(width), int(height), kind, orientation


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a TIFF's first directory (Pillow cannot open e.g. float RGB)."""
    order = {b"II": "<", b"MM": ">"}.get(data[:2])
    if order is None or len(data) < 16:
        return None
    version = struct.unpack(order + "H", data[2:4])[0]
    if version == 42:
        count_format, entry_size, value_at = "H", 12, 8
        offset = struct.unpack(order + "I", data[4:8])[0]
    elif version == 43:  # BigTIFF
        count_format, entry_size, value_at = "Q", 20, 12
        offset = struct.unpack(order + "Q", data[8:16])[0]
    else:
        return None
    count_size = struct.calcsize(count_format)
    if offset + count_size > len(data):
        return None
    (count,) = struct.unpack(order + count_format, data[offset : offset + count_size])
    found: dict[int, int] = {}
    for index in range(min(count, 4096)):
        start = offset + count_size + index * entry_size
        if start + entry_size > len(data):
            return None
        tag, kind = struct.unpack(order + "HH", data[start : start + 4])
        if tag in (256, 257):
            value_format = {3: "H", 4: "I", 16: "Q"}.get(kind)
            if value_format is None:
                return None
            size = struct.calcsize(value_format)
            raw = data[start + value_at : start + value_at + size]
            found[tag] = struct.unpack(order + value_format, raw)[0]
    if 256 in found and 257 in found:
        return found[256], found[257]
    return None


def _fallback_header(data: bytes) -> tuple[int, int, str, int] | None:
    """Size of PNG and TIFF files Pillow refuses (a bad CRC it checks, float RGB TIFF)."""
    if data.startswith(_PNG_SIGNATURE) and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return width, height, "PNG", 1
    size = _tiff_size(data)
    if size is not None:
        return size[0], size[1], "TIFF", 1
    return None


def to_rgb8(pixels: np.ndarray) -> np.ndarray:
    """Convert a decoded OpenCV array (gray, BGR or BGRA; uint8, uint16 or float) to RGB uint8.

    Alpha is composited over white, the colour of an empty page, so transparent
    surroundings do not look like dark skin.
    """
    if pixels.dtype == np.uint16:
        pixels = ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif pixels.dtype in (np.float32, np.float64):
        finite = np.isfinite(pixels)
        if not finite.any():
            raise ValueError("no finite pixel values (all NaN or infinite)")
        scale = 255.0 if float(pixels[finite].max()) <= 1.0 else 1.0
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
    missing, empty, truncated, corrupt (bad PNG CRC, damaged JPEG data), oversized
    (checked from the header, before decoding) or of an unsupported format (HEIC, AVIF,
    camera RAW, PDF, ...).
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
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PhotoError(path, f"cannot read ({exc.strerror or exc})") from exc
    unsupported = _unsupported_format(path, data[:64])
    if unsupported is not None:
        raise PhotoError(path, unsupported)
    header = _read_header(data) or _fallback_header(data)
    if header is None:
        kind = path.suffix.lower() or "without suffix"
        raise PhotoError(path, f"not a readable image (format {kind} unknown or corrupt)")
    width, height, kind, orientation = header
    if kind not in DECODED_FORMATS:
        raise PhotoError(path, f"{kind} files are not supported; use JPEG, PNG or TIFF")
    if width * height > max_pixels:
        raise PhotoError(
            path, f"photo too large ({width}x{height} px, limit {max_pixels / 1e6:.0f} MP)"
        )
    rgb = None
    if data.startswith(_PNG_SIGNATURE):
        _check_png(path, data, width, height)
    elif data.startswith(b"\xff\xd8\xff"):
        rgb = _decode_jpeg(path, data)
    if rgb is None:
        buffer = np.frombuffer(data, dtype=np.uint8)
        pixels = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
        if pixels is None or pixels.size == 0:
            raise PhotoError(path, f"corrupt image data (the {kind} decoder gave up)")
        if pixels.shape[0] * pixels.shape[1] > max_pixels:
            raise PhotoError(path, f"photo too large ({pixels.shape[1]}x{pixels.shape[0]} px)")
        try:
            rgb = to_rgb8(pixels)
        except ValueError as exc:
            raise PhotoError(path, str(exc)) from exc
    return _apply_orientation(rgb, orientation)


def save_rgb(path: str | Path, image: np.ndarray, *, quality: int = 95) -> None:
    """Write an ``HxWx3 uint8 RGB`` array as PNG or JPEG (by suffix)."""
    path = Path(path)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if path.suffix.lower() in (".jpg", ".jpeg") else []
    ok = cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise OSError(f"{path.name}: could not write image")
