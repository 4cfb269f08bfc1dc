"""De-identification of exports: no name, record number or birth date, and images
re-encoded from pixels so they carry no EXIF (GPS above all), XMP or comments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

IDENTIFYING_FIELDS = ("name", "record_number", "birth_date")


def save_clean_image(image: np.ndarray, path: str | Path, *, quality: int = 90) -> Path:
    """Write an ``HxWx3 uint8 RGB`` array as JPEG/PNG (by suffix) with no metadata at all.

    The pixels are already in display orientation (``core.io.load_photo``), so dropping
    the EXIF orientation tag does not turn the photo.
    """
    path = Path(path)
    clean = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), mode="RGB")
    if path.suffix.lower() in (".jpg", ".jpeg"):
        clean.save(path, format="JPEG", quality=quality, exif=b"", optimize=True)
    else:
        clean.save(path, format="PNG")
    return path


def has_metadata(path: str | Path) -> bool:
    """Whether an image file holds EXIF (incl. GPS) or XMP/comment metadata."""
    with Image.open(path) as image:
        if len(image.getexif()) > 0:
            return True
        return any(key in image.info for key in ("exif", "xmp", "comment", "XML:com.adobe.xmp"))
