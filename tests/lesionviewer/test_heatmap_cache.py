"""The app's heatmap cache: compact uint8 maps, made from a detection's coarse map."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.tiling import CoarseProbabilities
from core.types import Detection, ModelInfo
from lesionviewer.app.heatmap_cache import compact_heatmap, load_heatmap, save_heatmap

INFO = ModelInfo("m", "1", "0" * 64)


def _coarse(height: int, width: int, seed: int = 0) -> CoarseProbabilities:
    """A smooth stride-4 map: a few soft blobs of lesion probability."""
    rows, cols = -(-height // 4), -(-width // 4)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    rng = np.random.default_rng(seed)
    lesion = np.zeros((rows, cols), np.float32)
    for _ in range(6):
        cy, cx, r = rng.uniform(0, rows), rng.uniform(0, cols), rng.uniform(5, 30)
        lesion = np.maximum(lesion, np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r)))
    values = np.stack([1 - lesion, 0.6 * lesion, 0.4 * lesion], axis=2).astype(np.float32)
    return CoarseProbabilities(values, 4, height, width)


def test_a_detections_compact_map_comes_from_its_coarse_map(tmp_path: Path) -> None:
    coarse = _coarse(3000, 4000)
    lazy = Detection(heatmap=coarse, lesions=(), model=INFO)
    small = compact_heatmap(lazy)
    assert small.shape == (768, 1024, 3) and small.dtype == np.uint8
    assert "heatmap" not in lazy.__dict__  # the 144 MB full heatmap was never made
    # the same picture as shrinking the full heatmap, within 2 levels of 255 (1 here)
    reference = compact_heatmap(coarse.upsample())
    assert np.abs(small.astype(int) - reference.astype(int)).max() <= 2
    save_heatmap(tmp_path, "ab" * 32, lazy)
    np.testing.assert_array_equal(load_heatmap(tmp_path, "ab" * 32), small)


def test_a_small_photos_map_is_kept_whole() -> None:
    coarse = _coarse(300, 400, seed=1)
    detection = Detection(heatmap=coarse, lesions=(), model=INFO)
    small = compact_heatmap(detection)
    assert small.shape == (300, 400, 3)
    np.testing.assert_array_equal(small, compact_heatmap(coarse.upsample()))
