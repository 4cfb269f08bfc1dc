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


def _record_tiled_passes(analyzer: Analyzer) -> list[tuple[tuple[int, int], bool]]:
    """From now on, every tiled network pass of ``analyzer`` appends ((h, w), mirrored) to
    the returned list."""
    calls: list[tuple[tuple[int, int], bool]] = []
    tiled = analyzer._tiled

    def recording(picture, progress, cancel, mirror):  # noqa: ANN001, ANN202
        calls.append((picture.shape[:2], mirror))
        return tiled(picture, progress, cancel, mirror)

    analyzer._tiled = recording
    return calls


def test_a_large_photo_is_also_analysed_reduced(tmp_path: Path) -> None:
    import cv2

    from core.analyzer import reduction_settings
    from core.multiscale import fuse_scales

    assert reduction_settings({}) == ((), 0)
    assert reduction_settings({"reductions": [4], "reduce_from_px": 3000}) == ((4,), 3000)
    folder = tmp_path / "detector"
    meta = {"inference": {"reductions": [4], "reduce_from_px": 400}}
    make_model_folder(folder, seed=2, meta=meta)
    analyzer = Analyzer.load("cpu", detector=folder)
    photo = _photo(320, 448)
    detection = analyzer.detect(photo)  # 448 >= 400: as it is and at a quarter (112 x 80)
    assert detection.shape == (320, 448) and detection.source.stride == 4
    analyzer.reductions = ()
    as_is = analyzer.detect(photo).source
    quarter = analyzer.detect(cv2.resize(photo, (112, 80), interpolation=cv2.INTER_AREA)).source
    expected = fuse_scales([(1, as_is), (0.25, quarter)], 320, 448)
    np.testing.assert_array_equal(detection.source.values, expected.values)
    assert (detection.source.values[..., 0] <= as_is.values[..., 0] + 1e-6).all()
    assert (detection.source.values[..., 0] < as_is.values[..., 0] - 1e-5).any()
    analyzer.reductions, analyzer.reduce_from_px = (4,), 449  # below the limit: as it is
    np.testing.assert_array_equal(analyzer.detect(photo).source.values, as_is.values)
    # the reduced pass (for large lesions) is not mirrored, the photo as it is still is
    analyzer.reduce_from_px, analyzer.mirror_below_px = 400, 10_000
    calls = _record_tiled_passes(analyzer)
    analyzer.detect(photo)
    assert calls == [((320, 448), True), ((80, 112), False)]


def test_a_small_photo_is_also_analysed_enlarged(tmp_path: Path) -> None:
    import cv2

    from core.analyzer import enlargement_settings
    from core.multiscale import fuse_scales

    # older model folders: twice, up to a long side of N; neither key: never
    assert enlargement_settings({"upsample_below_px": 400}) == ((2,), 800)
    assert enlargement_settings({}) == ((), 0)
    assert enlargement_settings({"scales": [2, 3], "max_enlarged_side_px": 700}) == ((2, 3), 700)
    folder = tmp_path / "detector"
    meta = {"inference": {"scales": [2, 3], "max_enlarged_side_px": 700}}
    make_model_folder(folder, seed=2, meta=meta)
    small = Analyzer.load("cpu", detector=folder)
    photo = _photo(150, 230)
    detection = small.detect(photo)  # 230 * 3 = 690 <= 700: as it is, twice and 3 times
    assert detection.shape == (150, 230) and detection.source.stride == 1
    small.scales = ()

    def enlarged(factor: int) -> np.ndarray:
        size = (230 * factor, 150 * factor)
        return small.detect(cv2.resize(photo, size, interpolation=cv2.INTER_CUBIC)).source

    expected = fuse_scales([(k, enlarged(k)) for k in (1, 2, 3)], 150, 230)
    np.testing.assert_array_equal(detection.source.values, expected.values)
    # per pixel, the lesion probability is at least that of the photo as it is, and more
    # somewhere (the random network's maps differ between scales)
    as_is = small.detect(photo).source
    assert as_is.stride == 4
    background, background_as_is = detection.heatmap[:, :, 0], as_is.upsample()[:, :, 0]
    assert (background <= background_as_is + 1e-6).all()
    assert (background < background_as_is - 1e-5).any()
    # each image the network analyses is mirrored when its own long side is within the limit
    calls = _record_tiled_passes(small)
    small.scales, small.mirror_below_px = (2, 3), 460
    small.detect(photo)
    assert calls == [((150, 230), True), ((300, 460), True), ((450, 690), False)]
    # a photo whose enlarged long side would exceed the limit is enlarged less, or not at all
    small.scales = (2, 3)
    assert small.detect(_photo(150, 300)).source.stride == 2  # 600 <= 700 < 900: twice
    assert small.detect(_photo(150, 351)).source.stride == 4  # 702 > 700: as it is


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
    malformed = (
        {"inference": {"mirror_below_px": "big"}},
        {"tile": {"size": -32}},
        {"inference": {"scales": [2, 0]}},
        {"inference": {"scales": 3}},
    )
    for meta in malformed:
        folder = tmp_path / f"malformed-{len(list(tmp_path.iterdir()))}"
        make_model_folder(folder, seed=4, meta=meta)
        with pytest.raises(ModelError, match=r"model\.json: .* must be a (list of )?whole num"):
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
