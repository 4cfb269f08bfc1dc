"""Analyzer on a small random model folder: loading, detect, progress, cancel, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core.analyzer import Analyzer
from core.errors import Cancelled, ModelError
from core.model_folder import load_model_folder
from core.tiling import tiled_heatmap
from tests.core.detector_fixtures import make_model_folder


@pytest.fixture(scope="module")
def analyzer(tmp_path_factory: pytest.TempPathFactory) -> Analyzer:
    folder = tmp_path_factory.mktemp("models") / "detector"
    make_model_folder(folder, seed=2, meta={"postprocess": {"min_area_px": 30}})
    return Analyzer.load("cpu", detector=folder)


def _photo(h: int = 150, w: int = 230) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_detect_returns_heatmap_lesions_and_model_identity(analyzer: Analyzer) -> None:
    detection = analyzer.detect(_photo())
    assert detection.heatmap.shape == (150, 230, 3) and detection.heatmap.dtype == np.float32
    np.testing.assert_allclose(detection.heatmap.sum(axis=2), 1.0, atol=1e-4)
    assert detection.model == analyzer.detector_info
    assert analyzer.detector_info.name == "test-detector"
    assert len(analyzer.detector_info.sha256) == 64
    assert analyzer.device == torch.device("cpu")
    assert analyzer.postprocess.min_area_px == 30 and analyzer.tile_size == 128
    assert all(lesion.area_px >= 30 for lesion in detection.lesions)
    assert [lesion.id for lesion in detection.lesions] == list(range(1, len(detection.lesions) + 1))


def test_the_full_heatmap_is_made_only_when_asked_for(analyzer: Analyzer) -> None:
    photo = _photo(170, 260)
    detection = analyzer.detect(photo)
    assert detection.shape == (170, 260)
    assert "heatmap" not in vars(detection)  # lesions and shape came from the coarse map
    heatmap = detection.heatmap
    assert "heatmap" in vars(detection) and detection.heatmap is heatmap  # made once
    np.testing.assert_array_equal(heatmap, analyzer.heatmap(photo))
    from core.postprocess import find_lesions

    full = find_lesions(heatmap, analyzer.postprocess)
    assert full  # the random model does find a region on this photo
    assert [(le.bbox, le.area_px, le.score) for le in full] == [
        (le.bbox, le.area_px, le.score) for le in detection.lesions
    ]


def test_a_small_photo_is_analysed_at_twice_its_size(tmp_path: Path) -> None:
    import cv2

    from core.analyzer import analysis_factor

    assert analysis_factor(150, 230, 0) == 1  # older model folders: never
    assert analysis_factor(150, 230, 230) == 2 and analysis_factor(150, 231, 230) == 1
    folder = tmp_path / "detector"
    make_model_folder(folder, seed=2, meta={"inference": {"upsample_below_px": 400}})
    small = Analyzer.load("cpu", detector=folder)
    photo = _photo(150, 230)
    detection = small.detect(photo)
    assert detection.shape == (150, 230) and detection.source.stride == 2
    # the stride-2 map of the photo: per pixel, the surer of a lesion of the stride-4 map of
    # the photo enlarged twice and that of the photo as it is, brought to the same grid
    enlarged = cv2.resize(photo, (460, 300), interpolation=cv2.INTER_CUBIC)
    small.upsample_below_px = 0
    fine = small.detect(enlarged).source.values
    as_is = small.detect(photo).source.values
    as_is = cv2.resize(as_is, (as_is.shape[1] * 2, as_is.shape[0] * 2))
    h, w = min(fine.shape[0], as_is.shape[0]), min(fine.shape[1], as_is.shape[1])
    merged = detection.source.values[:h, :w]
    surer = np.where((as_is[:h, :w, 0] < fine[:h, :w, 0])[..., None], as_is[:h, :w], fine[:h, :w])
    np.testing.assert_array_equal(merged, surer)
    assert (merged[..., 0] < fine[:h, :w, 0]).any()  # the photo as it is did add something
    # a photo over the limit is analysed as it is
    small.upsample_below_px = 400
    assert small.detect(_photo(150, 400)).source.stride == 2
    assert small.detect(_photo(150, 401)).source.stride == 4


def test_a_small_photo_is_also_analysed_mirrored(tmp_path: Path) -> None:
    from core.analyzer import mirror_analysis

    assert not mirror_analysis(150, 230, 0)  # older model folders: never
    assert mirror_analysis(150, 230, 230) and not mirror_analysis(150, 231, 230)
    folder = tmp_path / "detector"
    make_model_folder(folder, seed=2, meta={"inference": {"mirror_below_px": 400}})
    mirrored = Analyzer.load("cpu", detector=folder)
    photo = _photo(128, 128)  # one tile: the grid is its own mirror image

    def coarse(image: np.ndarray) -> np.ndarray:
        return mirrored.detect(image).source.values

    # averaged with its mirror, the map of the mirrored photo is the mirrored map
    np.testing.assert_allclose(coarse(photo[:, ::-1])[:, ::-1], coarse(photo), atol=1e-6)
    plain = coarse(photo)
    mirrored.mirror_below_px = 0  # the random network alone is not symmetric (its outputs
    # are all near 1/3, so the differences are small but far above float rounding)
    assert np.abs(coarse(photo[:, ::-1])[:, ::-1] - coarse(photo)).max() > 1e-4
    assert np.abs(coarse(photo) - plain).max() > 1e-4
    mirrored.mirror_below_px = 100  # a photo over the limit is analysed once
    np.testing.assert_array_equal(coarse(photo), mirrored.detect(photo).source.values)
    assert np.abs(coarse(photo) - plain).max() > 1e-4


def test_fused_inference_matches_the_unfused_model(analyzer: Analyzer, tmp_path: Path) -> None:
    folder = tmp_path / "det"
    make_model_folder(folder, seed=2)
    model, meta = load_model_folder(folder, "cpu")
    photo = _photo()
    reference = tiled_heatmap(model, photo, device=torch.device("cpu"), tile_size=128, overlap=32)
    np.testing.assert_allclose(analyzer.heatmap(photo), reference, atol=1e-4)


def test_progress_reaches_one_and_cancel_stops(analyzer: Analyzer) -> None:
    seen: list[float] = []
    analyzer.detect(_photo(300, 300), progress=seen.append)
    assert seen[-1] == 1.0 and seen == sorted(seen)
    with pytest.raises(Cancelled):
        analyzer.detect(_photo(300, 300), cancel=lambda: True)


def test_bad_images_and_missing_models(analyzer: Analyzer, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint8"):
        analyzer.detect(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError, match="RGB"):
        analyzer.detect(np.zeros((10, 10), np.uint8))
    with pytest.raises(ModelError, match="not found"):
        Analyzer.load("cpu", detector=tmp_path / "nothing")
    bad = Analyzer.load("cpu", detector=analyzer_folder(tmp_path), tracker=tmp_path / "none")
    with pytest.raises(ModelError):
        bad.tracker_info  # noqa: B018  (loads the tracker lazily)
    for meta in ({"inference": {"mirror_below_px": "big"}}, {"tile": {"size": -32}}):
        folder = tmp_path / f"malformed-{len(list(tmp_path.iterdir()))}"
        make_model_folder(folder, seed=4, meta=meta)
        with pytest.raises(ModelError, match=r"model\.json: .* must be a whole number"):
            Analyzer.load("cpu", detector=folder)


def analyzer_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "det2"
    make_model_folder(folder, seed=4)
    return folder


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_mixed_precision_agrees_with_cpu(tmp_path: Path) -> None:
    folder = tmp_path / "det"
    make_model_folder(folder, seed=5)
    photo = _photo(300, 420)
    on_cpu = Analyzer.load("cpu", detector=folder).heatmap(photo)
    on_gpu = Analyzer.load("cuda", detector=folder).heatmap(photo)
    np.testing.assert_allclose(on_gpu.sum(axis=2), 1.0, atol=1e-4)
    assert np.abs(on_gpu - on_cpu).mean() < 0.01


def test_track_and_map_points_use_the_tracker_folder(tmp_path: Path) -> None:
    from core.model_folder import save_model_folder
    from core.models import build_model

    detector, tracker = tmp_path / "det", tmp_path / "trk"
    make_model_folder(detector, seed=6)
    kwargs = {"pyramid_levels": 2, "refinement_iterations": 0, "working_size": 128}
    torch.manual_seed(0)
    save_model_folder(
        tracker,
        build_model("lesion_tracker", **kwargs),
        arch="lesion_tracker",
        arch_kwargs=kwargs,
        meta={"name": "test-tracker", "version": "0"},
    )
    analyzer = Analyzer.load("cpu", detector=detector, tracker=tracker)
    photo = _photo(120, 160)
    seen: list[float] = []
    result = analyzer.track(photo, photo, progress=seen.append)
    assert result.flow.shape == (120, 160, 2) and result.flow.dtype == np.float32
    assert result.model == analyzer.tracker_info and result.model.name == "test-tracker"
    assert seen == sorted(seen) and seen[-1] == 1.0
    points = analyzer.map_points(photo, photo, [[10.0, 20.0], [150.5, 100.25]])
    assert points.shape == (2, 2) and np.isfinite(points).all()
    with pytest.raises(Cancelled):
        analyzer.track(photo, photo, cancel=lambda: True)
