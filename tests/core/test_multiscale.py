"""Multi-scale analysis: which enlargements, the resampling to one grid, the fusion."""

from __future__ import annotations

import numpy as np
import pytest

from core.multiscale import (
    analysis_scales,
    fuse_scales,
    fusion_stride,
    multiscale_probabilities,
    rescaled,
)
from core.tiling import CoarseProbabilities


def test_scales_stop_where_the_enlarged_long_side_passes_the_limit() -> None:
    assert analysis_scales(768, 1024, (2, 3, 4), 4096) == (1, 2, 3, 4)
    assert analysis_scales(1024, 768, (2, 3, 4), 3072) == (1, 2, 3)
    assert analysis_scales(1536, 2048, (2, 3, 4), 4096) == (1, 2)
    assert analysis_scales(3000, 4000, (2, 3, 4), 4096) == (1,)  # a phone's 12 MP photo
    assert analysis_scales(768, 1024, (), 4096) == (1,)
    assert analysis_scales(768, 1024, (2, 3), 0) == (1,)
    assert analysis_scales(100, 100, (1, 2, 2, 4), 4096) == (1, 2, 4)  # 1 and repeats once


def test_fusion_grid_is_as_coarse_as_every_scale_allows() -> None:
    assert fusion_stride([1, 2], 4) == 2  # the twice-enlarged map needs no resampling
    assert fusion_stride([1, 2, 4], 4) == 1
    assert fusion_stride([1, 2, 3], 4) == 1  # 4 / 3 is no whole stride
    assert fusion_stride([1, 0.25], 4) == 4  # a reduced map is read on the photo's grid
    assert fusion_stride([1, 2, 0.25], 4) == 2


def test_a_large_photo_is_also_analysed_reduced() -> None:
    assert analysis_scales(3000, 4000, (2, 4), 4096, (4,), 3000) == (1, 0.25)
    assert analysis_scales(2999, 2999, (2, 4), 4096, (4,), 3000) == (1,)  # below the limit
    assert analysis_scales(768, 1024, (2, 4), 4096, (4,), 3000) == (1, 2, 4)
    assert analysis_scales(3000, 4000, (2,), 4096, (2, 4, 4), 3000) == (1, 0.5, 0.25)
    assert analysis_scales(3000, 4000, (2,), 4096, (4,), 0) == (1,)  # 0: never reduced


def _map_of_enlarged_photo(factor: int, height: int, width: int, stride: int = 4):
    """A stride-4 map of the photo enlarged ``factor`` times whose channels are linear in
    the enlarged photo's coordinates (bilinear resampling reproduces them exactly)."""
    rows, cols = -(-height * factor // stride), -(-width * factor // stride)
    u = stride * np.arange(cols) + (stride - 1) / 2  # enlarged-photo centre of each map pixel
    v = stride * np.arange(rows) + (stride - 1) / 2
    uu, vv = np.meshgrid(u, v)
    return CoarseProbabilities(
        np.stack([uu, vv, np.zeros_like(uu)], axis=2).astype(np.float32),
        stride,
        height * factor,
        width * factor,
    )


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_each_map_is_read_at_the_photo_pixels_it_covers(factor: int) -> None:
    from core.multiscale import _resampled

    height, width = 30, 40
    grid = _resampled((factor, _map_of_enlarged_photo(factor, height, width)), 1, height, width)
    assert grid.shape == (height, width, 3)
    # photo pixel x is centred on enlarged pixel (x + 0.5) * factor - 0.5 (cv2.resize);
    # away from the borders, where the map is replicated, that is exactly what is read
    x, y = np.meshgrid(np.arange(width), np.arange(height))
    inner = (slice(2, -2), slice(2, -2))
    np.testing.assert_allclose(grid[..., 0][inner], ((x + 0.5) * factor - 0.5)[inner], atol=1e-3)
    np.testing.assert_allclose(grid[..., 1][inner], ((y + 0.5) * factor - 0.5)[inner], atol=1e-3)


def _probabilities(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    raw = rng.random((rows, cols, 3)).astype(np.float32) + 0.01
    return raw / raw.sum(axis=2, keepdims=True)


def test_fusion_keeps_the_surest_lesion_and_splits_it_as_all_scales_do() -> None:
    rng = np.random.default_rng(3)
    height, width = 16, 24
    as_is = CoarseProbabilities(_probabilities(rng, 4, 6), 4, height, width)
    twice = CoarseProbabilities(_probabilities(rng, 8, 12), 4, 2 * height, 2 * width)
    fused = fuse_scales([(1, as_is), (2, twice)], height, width)
    assert fused.stride == 2 and fused.values.shape == (8, 12, 3)
    np.testing.assert_allclose(fused.values.sum(axis=2), 1.0, atol=1e-5)
    # the twice-enlarged map is on the stride-2 grid already; the other is resampled
    from core.multiscale import _resampled

    coarse = _resampled((1, as_is), 2, height, width)
    np.testing.assert_allclose(
        fused.values[..., 0], np.minimum(coarse[..., 0], twice.values[..., 0]), atol=1e-6
    )
    sums = coarse[..., 1:] + twice.values[..., 1:]
    share = sums[..., 1] / sums.sum(axis=2)
    lesion = 1.0 - fused.values[..., 0]
    np.testing.assert_allclose(fused.values[..., 2], lesion * share, atol=1e-6)


def test_a_lesion_seen_at_one_scale_only_is_kept_whole() -> None:
    # the reason the maps are not averaged: a small mole only the enlarged photo shows
    height, width = 16, 16
    background = np.zeros((4, 4, 3), np.float32)
    background[..., 0] = 1.0
    seen = np.zeros((8, 8, 3), np.float32)
    seen[..., 0] = 1.0
    seen[3:5, 3:5] = (0.02, 0.08, 0.90)
    fused = fuse_scales(
        [
            (1, CoarseProbabilities(background, 4, height, width)),
            (2, CoarseProbabilities(seen, 4, 2 * height, 2 * width)),
        ],
        height,
        width,
    )
    np.testing.assert_allclose(fused.values[3:5, 3:5], seen[3:5, 3:5], atol=1e-6)


def test_the_work_is_split_by_pixel_count_and_the_photo_enlarged() -> None:
    image = np.random.default_rng(0).integers(0, 256, (20, 30, 3), np.uint8)
    calls = []

    def analyse(picture: np.ndarray, start: float, end: float) -> CoarseProbabilities:
        calls.append((picture.shape[:2], round(start, 6), round(end, 6)))
        rows, cols = -(-picture.shape[0] // 4), -(-picture.shape[1] // 4)
        values = np.zeros((rows, cols, 3), np.float32)
        values[..., 0] = 1.0
        return CoarseProbabilities(values, 4, *picture.shape[:2])

    fused = multiscale_probabilities(image, (1, 2, 3), analyse)
    assert [c[0] for c in calls] == [(20, 30), (40, 60), (60, 90)]
    expected = [(0.0, 1 / 14), (1 / 14, 5 / 14), (5 / 14, 1.0)]
    assert [c[1:] for c in calls] == [tuple(round(v, 6) for v in pair) for pair in expected]
    assert fused.stride == 1 and (fused.height, fused.width) == (20, 30)
    np.testing.assert_allclose(fused.values[..., 0], 1.0)


def test_a_large_lesion_only_the_reduced_photo_shows_is_kept_where_it_is() -> None:
    # the reason for the reduced pass: a mole too large for the network at full size
    height, width = 64, 96
    background = np.zeros((16, 24, 3), np.float32)
    background[..., 0] = 1.0
    quarter = np.zeros((4, 6, 3), np.float32)  # stride-4 map of the 16 x 24 reduced photo
    quarter[..., 0] = 1.0
    quarter[1, 2] = (0.05, 0.75, 0.20)  # reduced pixels 8-11 across, 4-7 down
    fused = fuse_scales(
        [
            (1, CoarseProbabilities(background, 4, height, width)),
            (0.25, CoarseProbabilities(quarter, 4, height // 4, width // 4)),
        ],
        height,
        width,
    )
    assert fused.stride == 4 and fused.values.shape == (16, 24, 3)
    lesion = 1.0 - fused.values[..., 0]
    # the map pixel is centred on reduced pixel (9.5, 5.5), photo pixel (9.5 + 0.5) * 4 - 0.5
    # = (39.5, 23.5), midway between the centres (4 j + 1.5) of grid cells 9-10 and 5-6;
    # each is 2 photo pixels = 1/8 of a reduced pixel off per axis: 0.95 * (7/8)^2
    centre = lesion[5:7, 9:11]
    np.testing.assert_allclose(centre, 0.95 * (7 / 8) ** 2, atol=1e-5)
    outside = lesion.copy()
    outside[5:7, 9:11] = 0.0
    assert outside.max() < centre.min()
    assert lesion[0, 0] == pytest.approx(0.0, abs=1e-6) and lesion[-1, -1] < 1e-6


def test_rescaled_enlarges_by_whole_factors_and_reduces_by_area() -> None:
    image = np.random.default_rng(1).integers(0, 256, (30, 41, 3), np.uint8)
    assert rescaled(image, 1) is image
    assert rescaled(image, 2).shape == (60, 82, 3)
    quarter = rescaled(image, 0.25)
    assert quarter.shape == (8, 10, 3) and quarter.dtype == np.uint8
    flat = np.full((40, 40, 3), 200, np.uint8)
    flat[:20] = 100
    np.testing.assert_array_equal(rescaled(flat, 0.25)[:5, :, 0], 100)
    np.testing.assert_array_equal(rescaled(flat, 0.25)[5:, :, 0], 200)


def test_the_photos_own_map_is_cropped_to_the_photo_not_interpolated() -> None:
    from core.multiscale import _resampled

    # a tiled map keeps its tiles' padding: 8 x 8 cells for a 26 x 30 photo at stride 4
    values = _probabilities(np.random.default_rng(5), 8, 8)
    grid = _resampled((1, CoarseProbabilities(values, 4, 26, 30)), 4, 26, 30)
    np.testing.assert_array_equal(grid, values[:7, :8])
    grid[...] = 0.0  # a copy: fusing never writes into the tiled map
    assert values.min() > 0


def test_where_no_scale_sees_any_lesion_class_the_fused_pixel_is_background() -> None:
    values = np.zeros((4, 4, 3), np.float32)
    values[..., 0] = 1.0
    reduced = np.zeros((1, 1, 3), np.float32)
    reduced[..., 0] = 1.0
    maps = [
        (1, CoarseProbabilities(values, 4, 16, 16)),
        (0.25, CoarseProbabilities(reduced, 4, 4, 4)),
    ]
    fused = fuse_scales(maps, 16, 16)
    assert np.isfinite(fused.values).all()
    np.testing.assert_array_equal(fused.values[..., 0], 1.0)
    np.testing.assert_array_equal(fused.values[..., 1:], 0.0)
