"""Close-ups: the photographed lesion's verdict, and regions/heatmaps lifted to the photo."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from core.analyzer import Analyzer
from core.closeup import (
    assess,
    central_lesion,
    central_p_malignant,
    lift_detection,
    resize_longer_side,
)
from core.postprocess import PostprocessConfig, find_lesions
from core.types import Detection, ModelInfo
from tests.core.detector_fixtures import disk_lesion, make_model_folder

INFO = ModelInfo("test", "0", "0" * 64)


def test_central_lesion_prefers_the_one_over_the_centre() -> None:
    off = disk_lesion(1, 20, 20, 10)
    over = disk_lesion(2, 55, 45, 12)
    assert central_lesion((off, over), (100, 100)) is over
    near = disk_lesion(3, 60, 30, 5)
    assert central_lesion((off, near), (100, 100)) is near
    assert central_lesion((), (100, 100)) is None


def test_central_p_malignant_reads_the_middle() -> None:
    heat = np.zeros((30, 30, 3), np.float32)
    heat[..., 0] = 1.0
    heat[10:20, 10:20] = (0.2, 0.2, 0.6)
    heat[0:5, 0:5] = (0.0, 1.0, 0.0)  # a benign corner does not count
    assert central_p_malignant(heat) == pytest.approx(0.75)


def _small_detection() -> Detection:
    """A 40 x 30 heatmap with a malignant-leaning blob left of centre and a benign one."""
    yy, xx = np.mgrid[0:30, 0:40].astype(np.float32)
    blob = np.exp(-((xx - 17) ** 2 + (yy - 14) ** 2) / 12.0)
    spot = np.exp(-((xx - 34) ** 2 + (yy - 5) ** 2) / 3.0)
    heat = np.zeros((30, 40, 3), np.float32)
    heat[..., 1] = 0.3 * blob + 0.9 * spot
    heat[..., 2] = 0.65 * blob
    heat[..., 0] = 1.0 - heat[..., 1] - heat[..., 2]
    lesions = find_lesions(heat, PostprocessConfig(high=0.5, low=0.3, min_area_px=1))
    return Detection(heatmap=heat, lesions=lesions, model=INFO)


def test_assess_reads_the_region_at_the_centre_or_the_heatmap() -> None:
    detection = _small_detection()
    verdict = assess(detection)
    central = next(le for le in detection.lesions if abs(le.centroid[0] - 17) < 2)
    assert verdict.lesion_id == central.id
    assert verdict.p_malignant == pytest.approx(central.p_malignant)
    assert verdict.analysed_size == (40, 30)
    empty = Detection(heatmap=detection.heatmap, lesions=(), model=INFO)
    fallback = assess(empty)
    assert fallback.lesion_id is None
    assert fallback.p_malignant == pytest.approx(central_p_malignant(detection.heatmap))
    assert fallback.p_lesion == pytest.approx(1.0 - detection.heatmap[10:20, 13:27, 0].mean())
    assert fallback.to_json()["read_from"] == "heatmap centre"
    assert verdict.p_lesion == pytest.approx(central.score)


def test_lifting_scales_regions_and_heatmap_to_the_photo() -> None:
    small = _small_detection()
    lifted = lift_detection(small, 300, 400, closeup=assess(small))
    assert lifted.shape == (300, 400)
    assert lifted.closeup == assess(small)
    assert len(lifted.lesions) == len(small.lesions) >= 2
    heat = lifted.heatmap
    assert heat.shape == (300, 400, 3) and heat.dtype == np.float32
    np.testing.assert_allclose(heat.sum(axis=2), 1.0, atol=1e-5)
    # the same picture as enlarging the small heatmap directly, but for the resampling's
    # softening of the sharp spot
    direct = cv2.resize(small.heatmap, (400, 300), interpolation=cv2.INTER_LINEAR)
    assert np.abs(heat - direct)[8:-8, 8:-8].max() < 0.1
    for before, after in zip(small.lesions, lifted.lesions, strict=True):
        assert (after.id, after.score, after.p_malignant) == (
            before.id,
            before.score,
            before.p_malignant,
        )
        assert after.centroid[0] == pytest.approx((before.centroid[0] + 0.5) * 10 - 0.5)
        assert after.centroid[1] == pytest.approx((before.centroid[1] + 0.5) * 10 - 0.5)
        assert after.area_px == pytest.approx(before.area_px * 100)
        x0, y0, x1, y1 = after.bbox
        assert (x0, y0) == (before.bbox[0] * 10, before.bbox[1] * 10)
        assert (x1, y1) == (before.bbox[2] * 10, before.bbox[3] * 10)
        xs, ys = after.contour[:, 0], after.contour[:, 1]
        assert x0 <= xs.min() and xs.max() < x1 and y0 <= ys.min() and ys.max() < y1
        # the lifted region is where the lifted heatmap says lesion
        cx, cy = (round(v) for v in after.centroid)
        assert heat[cy, cx, 0] < 0.7


def test_lifted_heatmap_is_aligned_with_the_photo() -> None:
    """A heatmap linear in x and y survives both bilinear steps exactly: any offset of
    half a pixel or a stride would show."""
    yy, xx = np.mgrid[0:30, 0:40].astype(np.float32)
    heat = np.stack([0.5 - 0.01 * xx, 0.3 + 0.005 * yy, 0.2 + 0.01 * xx - 0.005 * yy], axis=2)
    lifted = lift_detection(Detection(heatmap=heat, lesions=(), model=INFO), 300, 400).heatmap
    direct = cv2.resize(heat, (400, 300), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(lifted[10:-10, 10:-10], direct[10:-10, 10:-10], atol=1e-4)


def test_resize_longer_side_keeps_the_aspect() -> None:
    image = np.zeros((300, 600, 3), np.uint8)
    assert resize_longer_side(image, 160).shape == (80, 160, 3)
    assert resize_longer_side(image[:, :150], 160).shape == (160, 80, 3)


@pytest.fixture(scope="module")
def closeup_analyzer(tmp_path_factory: pytest.TempPathFactory) -> Analyzer:
    folder = tmp_path_factory.mktemp("closeup-detector")
    make_model_folder(folder, meta={"inference": {"closeup_side_px": 64}})
    return Analyzer.load("cpu", detector=folder)


def _photo(height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(3)
    image = np.full((height, width, 3), (200, 160, 140), np.uint8)
    cv2.circle(image, (width // 2, height // 2), min(height, width) // 4, (90, 50, 40), -1)
    noise = rng.integers(-8, 9, image.shape)
    return np.clip(image.astype(int) + noise, 0, 255).astype(np.uint8)


def test_analyzer_closeup_is_the_reduced_photo_lifted(closeup_analyzer: Analyzer) -> None:
    photo = _photo(240, 320)
    detection = closeup_analyzer.detect(photo, closeup=True)
    reduced = closeup_analyzer.detect(resize_longer_side(photo, 64))
    assert detection.shape == (240, 320)
    assert detection.closeup == assess(reduced)
    assert detection.closeup.analysed_size == (64, 48)
    assert [(le.id, le.score, le.p_malignant) for le in detection.lesions] == [
        (le.id, le.score, le.p_malignant) for le in reduced.lesions
    ]
    np.testing.assert_allclose(detection.heatmap.sum(axis=2), 1.0, atol=1e-5)
    # a body photo (the default) carries no close-up verdict
    assert closeup_analyzer.detect(photo).closeup is None


def test_a_detector_without_the_setting_refuses_closeups(tmp_path: Path) -> None:
    make_model_folder(tmp_path / "plain")
    analyzer = Analyzer.load("cpu", detector=tmp_path / "plain")
    with pytest.raises(ValueError, match="closeup_side_px"):
        analyzer.detect(_photo(64, 64), closeup=True)


@pytest.mark.parametrize("shape", [(1, 1), (2, 700), (500, 3), (97, 61)])
def test_closeups_of_any_shape(closeup_analyzer: Analyzer, shape: tuple[int, int]) -> None:
    photo = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    detection = closeup_analyzer.detect(photo, closeup=True)
    assert detection.shape == shape
    assert detection.heatmap.shape == (*shape, 3)
    np.testing.assert_allclose(detection.heatmap.sum(axis=2), 1.0, atol=1e-5)
    for lesion in detection.lesions:
        x0, y0, x1, y1 = lesion.bbox
        assert 0 <= x0 < x1 <= shape[1] and 0 <= y0 < y1 <= shape[0]
