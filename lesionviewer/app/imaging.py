"""Pixels for the views: image pyramids, heatmap overlays, lesion crops, numpy <-> QImage.

Everything here may run on a worker thread (QImage, unlike QPixmap, is thread-safe to
create). Arrays are RGB(A) uint8 (H, W, C) unless stated otherwise.
"""

from __future__ import annotations

import cv2
import numpy as np
from PySide6.QtGui import QImage

#: Overlay colours of the paper's figure: benign lesions yellow, malignant lesions red.
BENIGN_RGB = (255, 214, 0)
MALIGNANT_RGB = (230, 20, 20)


def to_qimage(pixels: np.ndarray, *, copy: bool = True) -> QImage:
    """A QImage of ``pixels`` (H, W, 3) RGB or (H, W, 4) RGBA uint8.

    copy=True: the QImage owns a copy. copy=False: it shares the array's memory (no copy,
    which matters for 12-MP photos: a copy holds the GIL for tens of ms and stalls the GUI
    thread) and keeps the array alive as an attribute; nobody may write to the array.
    """
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    h, w, c = pixels.shape
    fmt = {3: QImage.Format.Format_RGB888, 4: QImage.Format.Format_RGBA8888}[c]
    image = QImage(pixels.data, w, h, pixels.strides[0], fmt)
    if copy:
        return image.copy()
    image._pixels = pixels  # the memory the QImage reads stays alive with the wrapper
    return image


def build_pyramid(image: np.ndarray, *, min_side: int = 384) -> list[np.ndarray]:
    """Halve ``image`` (H, W, 3) uint8 until its long side is under ``2 * min_side``.

    Level 0 is ``image`` itself; level k is about 1 / 2**k of its size (INTER_AREA).
    """
    levels = [image]
    while max(levels[-1].shape[:2]) >= 2 * min_side:
        prev = levels[-1]
        size = (max(1, prev.shape[1] // 2), max(1, prev.shape[0] // 2))
        levels.append(cv2.resize(prev, size, interpolation=cv2.INTER_AREA))
    return levels


def downsample_to(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """``image`` shrunk so its long side is at most ``max_side``; returns (image, scale)."""
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale >= 1.0:
        return image, 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def heatmap_probabilities(heatmap: np.ndarray) -> np.ndarray:
    """float32 (h, w, 3) probabilities from a float heatmap or a uint8 (p * 255) one."""
    if heatmap.dtype == np.uint8:
        return heatmap.astype(np.float32) / 255.0
    return heatmap.astype(np.float32, copy=False)


def heatmap_overlay(heatmap: np.ndarray, *, max_side: int = 2048) -> np.ndarray:
    """RGBA uint8 overlay of a (h, w, 3) heatmap (p background, p benign, p malignant).

    Colour mixes yellow (benign) and red (malignant) by their share of the lesion
    probability; alpha is the lesion probability 1 - p background. The overlay is at most
    ``max_side`` on its long side; the view stretches it over the photo.
    """
    small, _ = downsample_to(heatmap, max_side)
    probs = heatmap_probabilities(small)
    p_ben, p_mal = probs[..., 1], probs[..., 2]
    lesion = np.clip(p_ben + p_mal, 0.0, 1.0)
    share = np.where(lesion > 1e-6, p_mal / np.maximum(lesion, 1e-6), 0.0)[..., None]
    rgb = (1.0 - share) * np.array(BENIGN_RGB, np.float32) + share * np.array(
        MALIGNANT_RGB, np.float32
    )
    alpha = (np.clip(lesion * 1.4, 0.0, 1.0) * 255.0)[..., None]
    return np.concatenate([rgb, alpha], axis=2).round().astype(np.uint8)


def sample_heatmap(
    heatmap: np.ndarray, photo_size: tuple[int, int], x: float, y: float
) -> tuple[float, float, float] | None:
    """(p background, p benign, p malignant) at photo pixel (x, y), or None outside.

    ``photo_size`` is (width, height); the heatmap may be at a lower resolution.
    """
    w, h = photo_size
    if not (0 <= x < w and 0 <= y < h):
        return None
    hh, hw = heatmap.shape[:2]
    row = min(hh - 1, int(y * hh / h))
    col = min(hw - 1, int(x * hw / w))
    p = heatmap_probabilities(heatmap[row : row + 1, col : col + 1])[0, 0]
    return float(p[0]), float(p[1]), float(p[2])


def lesion_crop(
    image: np.ndarray, bbox: tuple[int, int, int, int], *, margin: float = 0.6, size: int = 128
) -> np.ndarray:
    """A square ``size`` x ``size`` RGB crop around ``bbox`` (x0, y0, x1, y1) with a margin
    of ``margin`` times the lesion size on each side; outside the photo is black."""
    x0, y0, x1, y1 = bbox
    side = max(x1 - x0, y1 - y0, 8) * (1.0 + 2.0 * margin)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    half = side / 2.0
    # affine map of the square [cx-half, cx+half] onto [0, size]
    s = size / side
    matrix = np.array([[s, 0, (half - cx) * s], [0, s, (half - cy) * s]], dtype=np.float64)
    return cv2.warpAffine(
        image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )
