"""The app's cache of detection heatmaps, next to the store (the store keeps only lesions).

A heatmap is kept as uint8 (h, w, 3) probabilities * 255, shrunk so its long side is at
most ``MAX_SIDE``, in ``<data_dir>/cache/heatmaps/<photo sha256>.npz``, written
atomically. It only feeds the overlay; losing it costs a re-analysis, nothing else.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

from core.types import Detection

MAX_SIDE = 1024


def cache_path(data_dir: Path, photo_sha256: str) -> Path:
    return Path(data_dir) / "cache" / "heatmaps" / f"{photo_sha256}.npz"


def compact_heatmap(heatmap: np.ndarray | Detection, *, max_side: int = MAX_SIDE) -> np.ndarray:
    """float (H, W, 3) probabilities, or a detection's -> uint8 (h, w, 3), long side <=
    ``max_side``. A detection's is shrunk from its coarse map: a large photo's full heatmap
    (12 bytes a pixel, 2.4 GB at 200 MP) is never made."""
    h, w = heatmap.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if isinstance(heatmap, Detection):
        if scale < 1.0 and not isinstance(heatmap.source, np.ndarray):
            return _to_uint8(heatmap.source.resized(*size))
        heatmap = heatmap.heatmap
    small = heatmap
    if scale < 1.0:
        small = cv2.resize(heatmap.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    return _to_uint8(small)


def _to_uint8(small: np.ndarray) -> np.ndarray:
    if small.dtype == np.uint8:
        return small
    return np.clip(np.asarray(small, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def save_heatmap(data_dir: Path, photo_sha256: str, heatmap: np.ndarray | Detection) -> Path:
    """Store the compact heatmap of a photo (a heatmap or a detection); returns its path."""
    target = cache_path(data_dir, photo_sha256)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, heatmap=compact_heatmap(heatmap))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def load_heatmap(data_dir: Path, photo_sha256: str) -> np.ndarray | None:
    """The cached uint8 heatmap of a photo, or None when there is none (or it is unreadable)."""
    return load_heatmap_file(cache_path(data_dir, photo_sha256))


def load_heatmap_file(path: Path) -> np.ndarray | None:
    """A cached uint8 heatmap file, or None when missing or unreadable."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as data:
            heatmap = data["heatmap"]
    except (OSError, ValueError, KeyError):
        return None
    if heatmap.ndim != 3 or heatmap.shape[2] != 3 or heatmap.dtype != np.uint8:
        return None
    return heatmap
