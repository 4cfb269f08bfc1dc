"""Post-processing: synthetic heatmaps with known regions."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from core.postprocess import PostprocessConfig, find_lesions
from core.tiling import CoarseProbabilities


def _heatmap(h: int = 120, w: int = 160) -> np.ndarray:
    heat = np.zeros((h, w, 3), np.float32)
    heat[:, :, 0] = 1.0
    return heat


def _paint(heat: np.ndarray, mask: np.ndarray, p_ben: float, p_mal: float) -> None:
    heat[mask] = (1.0 - p_ben - p_mal, p_ben, p_mal)


def _disc(shape: tuple[int, int], cx: int, cy: int, r: int) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.circle(mask, (cx, cy), r, 1, -1)
    return mask.astype(bool)


def test_regions_have_geometry_scores_and_order() -> None:
    heat = _heatmap()
    malignant = _disc(heat.shape[:2], 40, 50, 10)
    benign = np.zeros(heat.shape[:2], bool)
    benign[80:90, 100:130] = True
    _paint(heat, malignant, 0.1, 0.8)
    _paint(heat, benign, 0.6, 0.1)
    lesions = find_lesions(heat)
    assert [lesion.id for lesion in lesions] == [1, 2]
    first, second = lesions
    assert first.score == pytest.approx(0.9, abs=1e-4)
    assert first.p_malignant == pytest.approx(0.8 / 0.9, abs=1e-4)
    assert first.centroid == pytest.approx((40, 50), abs=0.5)
    assert first.area_px == malignant.sum()
    assert second.bbox == (100, 80, 130, 90)  # x1, y1 exclusive
    assert second.p_malignant == pytest.approx(1 / 7, abs=1e-4)
    xs, ys = second.contour[:, 0], second.contour[:, 1]
    assert (xs.min(), ys.min(), xs.max(), ys.max()) == (100, 80, 129, 89)


def test_p_malignant_is_read_at_the_most_suspicious_part() -> None:
    # a mole benign-looking but for a small malignant-looking patch: the region-wide mean
    # would call it 0.2; the peak ratio reads the patch
    heat = _heatmap()
    mole = _disc(heat.shape[:2], 60, 60, 15)
    _paint(heat, mole, 0.9, 0.05)
    patch = _disc(heat.shape[:2], 60, 60, 3)
    _paint(heat, patch, 0.2, 0.75)
    (lesion,) = find_lesions(heat)
    assert lesion.score == pytest.approx(0.95, abs=1e-4)
    assert lesion.p_malignant == pytest.approx(0.75 / 0.95, abs=1e-4)
    region_mean = heat[mole, 2].sum() / (1.0 - heat[mole, 0]).sum()
    assert region_mean < 0.15


def test_specks_are_dropped_and_faint_regions_need_a_strong_core() -> None:
    heat = _heatmap()
    speck = np.zeros(heat.shape[:2], bool)
    speck[10:12, 10:12] = True  # 4 px
    faint = _disc(heat.shape[:2], 120, 30, 8)  # below the high threshold everywhere
    halo = _disc(heat.shape[:2], 60, 80, 12)
    core = _disc(heat.shape[:2], 60, 80, 4)
    _paint(heat, speck, 0.9, 0.05)
    _paint(heat, faint, 0.2, 0.2)
    _paint(heat, halo, 0.2, 0.15)
    _paint(heat, core, 0.5, 0.4)
    lesions = find_lesions(heat, PostprocessConfig(high=0.5, low=0.3, min_area_px=12))
    assert len(lesions) == 1
    assert lesions[0].area_px == pytest.approx(halo.sum(), rel=0.02)  # hysteresis keeps halo


def test_fragments_split_by_a_thin_gap_merge() -> None:
    heat = _heatmap()
    blob = _disc(heat.shape[:2], 80, 60, 15)
    blob[:, 79:81] = False  # a hair across the lesion
    _paint(heat, blob, 0.7, 0.2)
    assert len(find_lesions(heat, PostprocessConfig(merge_px=3))) == 1
    assert len(find_lesions(heat, PostprocessConfig(merge_px=0))) == 2


def test_empty_heatmap_gives_no_lesions() -> None:
    assert find_lesions(_heatmap()) == ()
    with pytest.raises(ValueError):
        find_lesions(np.zeros((10, 10), np.float32))


def test_score_is_the_peak_so_a_soft_rim_does_not_sink_a_small_lesion() -> None:
    # a small confident lesion with a wide faint rim (as the network paints small moles)
    # against a larger blotch that just reaches the high threshold everywhere: the mean
    # would rank the blotch first (0.55 against 0.42), the peak ranks the lesion first
    heat = _heatmap()
    rim = _disc(heat.shape[:2], 40, 60, 10)
    core = _disc(heat.shape[:2], 40, 60, 2)
    blotch = _disc(heat.shape[:2], 120, 60, 12)
    _paint(heat, rim, 0.35, 0.05)
    _paint(heat, core, 0.9, 0.08)
    _paint(heat, blotch, 0.5, 0.05)
    first, second = find_lesions(heat)
    assert first.centroid == pytest.approx((40, 60), abs=0.5)
    assert first.score == pytest.approx(0.98, abs=1e-4)
    assert second.score == pytest.approx(0.55, abs=1e-4)


def _coarse_with_blobs(seed: int, height: int, width: int) -> CoarseProbabilities:
    """A stride-4 map with blobs of every kind: faint, confident, touching the border,
    pairs a few pixels apart (joined by the closing or not), in the padding beyond the
    photo (the coarse map is larger than height / 4 x width / 4)."""
    rng = np.random.default_rng(seed)
    h, w = -(-height // 4) + 2, -(-width // 4) + 3
    p_lesion = np.zeros((h, w), np.float32)
    for _ in range(40):
        cx, cy = rng.uniform(-2, w + 1), rng.uniform(-2, h + 1)
        r = rng.uniform(0.6, 4.0)
        peak = rng.uniform(0.2, 1.0)
        yy, xx = np.mgrid[0:h, 0:w]
        p_lesion = np.maximum(p_lesion, peak * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / r**2))
    share = rng.uniform(0, 1, (h, w)).astype(np.float32)
    values = np.stack([1 - p_lesion, p_lesion * share, p_lesion * (1 - share)], axis=2)
    return CoarseProbabilities(values.astype(np.float32), 4, height, width)


@pytest.mark.parametrize("seed", range(6))
def test_coarse_search_windows_find_exactly_the_lesions_of_the_full_heatmap(seed: int) -> None:
    coarse = _coarse_with_blobs(seed, 150 + 7 * seed, 210 - 5 * seed)
    full = coarse.upsample()
    assert full.shape == (coarse.height, coarse.width, 3)
    for config in (PostprocessConfig(), PostprocessConfig(merge_px=5, min_area_px=4)):
        expected = find_lesions(full, config)
        found = find_lesions(coarse, config)
        assert len(expected) > 3
        assert len(found) == len(expected)
        for a, b in zip(found, expected, strict=True):
            assert (a.id, a.bbox, a.area_px) == (b.id, b.bbox, b.area_px)
            np.testing.assert_array_equal(a.contour, b.contour)
            assert a.centroid == pytest.approx(b.centroid, abs=1e-9)
            assert a.score == b.score
            assert a.p_malignant == pytest.approx(b.p_malignant, abs=1e-9)
