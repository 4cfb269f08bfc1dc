"""The detector's second stage: candidate inputs, verdicts, and the Analyzer running it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from core.analyzer import Analyzer
from core.errors import ModelError
from core.models import build_model
from core.postprocess import PostprocessConfig, find_lesions
from core.tiling import CoarseProbabilities
from core.types import Lesion
from core.verification import (
    CROP_SIZE,
    MAX_CONTEXT_PX,
    MIN_CONTEXT_PX,
    VerificationSettings,
    apply_verdicts,
    candidate_inputs,
    context_side,
)
from tests.core.detector_fixtures import TINY_KWARGS, TINY_VERIFIER, make_model_folder

CANDIDATES = {"high": 0.5, "low": 0.3, "min_area_px": 1, "merge_px": 1}


def _lesion(cx: float, cy: float, area: float, score: float = 0.9, p_mal: float = 0.2) -> Lesion:
    contour = np.array([[cx - 1, cy - 1], [cx + 1, cy - 1], [cx + 1, cy + 1]], np.int32)
    bbox = (int(cx) - 1, int(cy) - 1, int(cx) + 2, int(cy) + 2)
    return Lesion(1, (cx, cy), bbox, contour, area, score, p_mal)


def _disc_photo() -> tuple[np.ndarray, np.ndarray]:
    """A dark disc of radius 5 at (60, 40) on grey skin, and a heatmap that finds it."""
    image = np.full((90, 130, 3), 190, np.uint8)
    cv2.circle(image, (60, 40), 5, (60, 40, 30), -1)
    heatmap = np.zeros((90, 130, 3), np.float32)
    heatmap[..., 0] = 1.0
    disc = cv2.circle(np.zeros((90, 130), np.uint8), (60, 40), 5, 1, -1).astype(bool)
    heatmap[disc] = (0.1, 0.6, 0.3)
    return image, heatmap


def test_context_side_grows_with_the_region_within_bounds() -> None:
    assert context_side(1) == MIN_CONTEXT_PX
    assert context_side(math.pi * 10**2) == pytest.approx(80.0)  # 4 diameters
    assert context_side(1e7) == MAX_CONTEXT_PX


def test_crops_are_centred_on_the_candidate() -> None:
    image, heatmap = _disc_photo()
    lesion = _lesion(60.0, 40.0, math.pi * 25, score=0.9, p_mal=0.3)
    crops, scalars = candidate_inputs(image, heatmap, [lesion])
    assert crops.shape == (1, 7, CROP_SIZE, CROP_SIZE) and crops.dtype == np.uint8
    assert scalars.shape == (1, 4) and scalars.dtype == np.float32
    centre = slice(CROP_SIZE // 2 - 2, CROP_SIZE // 2 + 2)
    for planes in (slice(0, 3), slice(3, 6)):  # the disc in the middle, skin at the corners
        assert crops[0, planes, centre, centre].mean() < 80
        assert crops[0, planes, :3, :3].mean() > 170
    assert crops[0, 6, centre, centre].min() > 200 and crops[0, 6, :3, :3].max() == 0
    # 40 px of context (4 diameters) on 32: the disc (10 px) spans about 8 crop pixels
    dark = (crops[0, 0] < 125).sum(axis=1).max()
    assert 6 <= dark <= 10
    logit = math.log(0.9 / 0.1)
    np.testing.assert_allclose(
        scalars[0], [logit / 4, 0.3, math.log(math.pi * 25 + 1) / 3, math.log(40.0) / 3], 1e-5
    )


def test_candidates_at_the_edge_and_none_at_all() -> None:
    image, heatmap = _disc_photo()
    crops, scalars = candidate_inputs(image, heatmap, [_lesion(0.0, 89.0, 500.0)])
    assert crops.shape == (1, 7, CROP_SIZE, CROP_SIZE) and np.isfinite(scalars).all()
    crops, scalars = candidate_inputs(image, heatmap, [])
    assert crops.shape == (0, 7, CROP_SIZE, CROP_SIZE) and scalars.shape == (0, 4)


def test_the_coarse_map_gives_the_heat_of_the_full_map() -> None:
    rng = np.random.default_rng(3)
    values = rng.dirichlet((1.0, 1.0, 1.0), size=(24, 34)).astype(np.float32)
    coarse = CoarseProbabilities(values, 4, 90, 130)
    image = rng.integers(0, 256, (90, 130, 3), dtype=np.uint8)
    lesions = [_lesion(60.0, 40.0, 30.0), _lesion(3.0, 85.0, 400.0)]
    from_coarse, _ = candidate_inputs(image, coarse, lesions)
    from_full, _ = candidate_inputs(image, coarse.upsample(), lesions)
    assert np.abs(from_coarse.astype(int) - from_full.astype(int)).max() <= 1


def test_many_candidates_spread_over_threads_give_the_crops_of_one_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A photo with enough candidates is cropped on several threads, each writing its own
    rows, with numpy's BLAS held to one thread meanwhile (core.blas)."""
    from threadpoolctl import threadpool_info

    import core.verification as verification

    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    values = rng.dirichlet((1.0, 1.0, 1.0), size=(75, 100)).astype(np.float32)
    coarse = CoarseProbabilities(values, 4, 300, 400)
    centres = rng.uniform(0, [400, 300], size=(64, 2))
    areas = rng.uniform(2, 3000, 64)
    lesions = [
        _lesion(float(x), float(y), float(a)) for (x, y), a in zip(centres, areas, strict=True)
    ]
    seen_threads = []
    real_sample = verification.sample

    def watched(*args):
        seen_threads.append(
            [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
        )
        return real_sample(*args)

    monkeypatch.setattr(verification, "sample", watched)
    monkeypatch.setattr(verification.os, "cpu_count", lambda: 4)
    spread = candidate_inputs(image, coarse, lesions)
    assert seen_threads and all(set(counts) <= {1} for counts in seen_threads)
    monkeypatch.setattr(verification.os, "cpu_count", lambda: 1)
    alone = candidate_inputs(image, coarse, lesions)
    np.testing.assert_array_equal(spread[0], alone[0])
    np.testing.assert_array_equal(spread[1], alone[1])


def test_verdicts_rescore_filter_and_renumber() -> None:
    lesions = [_lesion(10.0, 10.0, 9.0, score=0.99), _lesion(30.0, 5.0, 9.0, score=0.6)]
    lesions.append(_lesion(50.0, 20.0, 9.0, score=0.5))
    kept = apply_verdicts(lesions, np.array([0.2, 0.9, 0.7]), min_score=0.5)
    assert [(lesion.id, lesion.centroid, lesion.score) for lesion in kept] == [
        (1, (30.0, 5.0), pytest.approx(0.9)),
        (2, (50.0, 20.0), pytest.approx(0.7)),
    ]
    assert kept[0].p_malignant == lesions[1].p_malignant and kept[0].bbox == lesions[1].bbox
    with pytest.raises(ValueError, match="2 verdicts for 3"):
        apply_verdicts(lesions, np.array([0.2, 0.9]), 0.5)


def test_settings_are_read_and_checked() -> None:
    settings = VerificationSettings.from_json({"candidates": CANDIDATES, "min_score": 0.4})
    assert settings.candidates == PostprocessConfig(**CANDIDATES) and settings.min_score == 0.4
    assert VerificationSettings.from_json(settings.to_json()) == settings
    for bad in ({"min_score": 0.4}, {"candidates": CANDIDATES, "min_score": 1.5}, []):
        with pytest.raises(ValueError):
            VerificationSettings.from_json(bad)


# ------------------------------------------------------------------ the Analyzer


def _photo() -> np.ndarray:
    rng = np.random.default_rng(7)
    image = np.full((160, 220, 3), (200, 160, 140), np.uint8)
    image = cv2.add(image, rng.integers(0, 20, image.shape, dtype=np.uint8))
    centres = ((50, 40), (150, 60), (100, 120))
    colours = ((70, 45, 35), (120, 60, 50), (40, 30, 30))
    for (x, y), radius, colour in zip(centres, (7, 4, 9), colours, strict=True):
        cv2.circle(image, (x, y), radius, colour, -1)
    return image


def _map_of_the_discs(image: np.ndarray, **_: object) -> CoarseProbabilities:
    """A stride-4 map that finds the three discs of :func:`_photo` (and nothing else): a
    tiny random detector's map is nearly flat, and these tests are about what follows it."""
    values = np.zeros((40, 55, 3), np.float32)
    values[...] = (0.95, 0.04, 0.01)
    for x, y in ((50, 40), (150, 60), (100, 120)):
        values[y // 4 - 1 : y // 4 + 2, x // 4 - 1 : x // 4 + 2] = (0.1, 0.6, 0.3)
    return CoarseProbabilities(values, 4, image.shape[0], image.shape[1])


def _verified(folder: Path, bias: float, min_score: float = 0.5) -> Analyzer:
    """An Analyzer whose detector carries a random verifier shifted by ``bias`` and whose
    map is :func:`_map_of_the_discs`."""
    meta = {"verifier": {"candidates": CANDIDATES, "min_score": min_score}}
    make_model_folder(folder, seed=21, meta=meta, verifier_bias=bias)
    analyzer = Analyzer.load("cpu", detector=folder)
    analyzer._coarse_probabilities = _map_of_the_discs  # type: ignore[method-assign]
    return analyzer


def test_the_verifier_decides_which_candidates_are_lesions(tmp_path: Path) -> None:
    photo = _photo()
    sure = _verified(tmp_path / "yes", bias=1e6)
    candidates = find_lesions(sure.probabilities(photo), sure.verification.candidates)
    assert len(candidates) == 3
    found = sure.detect(photo).lesions
    # every candidate kept, scored by the verifier, outlines and p_malignant the detector's
    assert [lesion.bbox for lesion in found] == [lesion.bbox for lesion in candidates]
    assert all(lesion.score > 0.999 for lesion in found)
    assert [lesion.p_malignant for lesion in found] == [lesion.p_malignant for lesion in candidates]
    doubtful = _verified(tmp_path / "no", bias=-1e6)
    assert doubtful.detect(photo).lesions == ()


def test_verifier_scores_are_its_own_and_min_score_filters(tmp_path: Path) -> None:
    photo = _photo()
    analyzer = _verified(tmp_path / "d", 0.0, min_score=0.0)
    candidates = find_lesions(analyzer.probabilities(photo), analyzer.verification.candidates)
    crops, scalars = candidate_inputs(photo, analyzer.probabilities(photo), candidates)
    model = analyzer._detector.verifier
    with torch.no_grad():
        expected = torch.sigmoid(model(torch.from_numpy(crops), torch.from_numpy(scalars)))
    got = sorted(lesion.score for lesion in analyzer.detect(photo).lesions)
    assert len(got) == 3 and max(got) - min(got) > 1e-4  # a random verifier: three verdicts
    np.testing.assert_allclose(got, sorted(expected.numpy().tolist()), atol=1e-5)
    threshold = float(np.median(got))
    strict = _verified(tmp_path / "e", 0.0, min_score=threshold)
    assert all(lesion.score >= threshold for lesion in strict.detect(photo).lesions)
    assert len(strict.detect(photo).lesions) == sum(score >= threshold for score in got)


def test_a_verifier_without_its_settings_or_settings_without_it_is_refused(
    tmp_path: Path,
) -> None:
    no_settings = tmp_path / "no-settings"
    make_model_folder(no_settings, seed=21, verifier_bias=0.0)
    with pytest.raises(ModelError, match="candidate verifier"):
        Analyzer.load("cpu", detector=no_settings)
    no_network = tmp_path / "no-network"
    meta = {"verifier": {"candidates": CANDIDATES, "min_score": 0.5}}
    make_model_folder(no_network, seed=21, meta=meta)
    with pytest.raises(ModelError, match="candidate verifier"):
        Analyzer.load("cpu", detector=no_network)
    bad = tmp_path / "bad"
    _verified(bad, 0.0)
    record = json.loads((bad / "model.json").read_text())
    record["verifier"]["min_score"] = "high"
    (bad / "model.json").write_text(json.dumps(record))
    with pytest.raises(ModelError, match="min_score"):
        Analyzer.load("cpu", detector=bad)


def test_the_verifier_rides_in_the_detector_weights_and_leaves_the_map_alone() -> None:
    torch.manual_seed(0)
    plain = build_model("lesion_fcn", **TINY_KWARGS)
    verified = build_model("lesion_fcn", **TINY_KWARGS, verifier=TINY_VERIFIER)
    extra = sorted(set(verified.state_dict()) - set(plain.state_dict()))
    assert extra and all(key.startswith("verifier.") for key in extra)
    verified.load_state_dict({**verified.state_dict(), **plain.state_dict()})
    x = torch.rand(1, 3, 64, 96)
    plain.eval(), verified.eval()
    with torch.no_grad():
        assert torch.equal(plain(x), verified(x))
        crops = torch.randint(0, 256, (5, 7, 32, 32), dtype=torch.uint8)
        numbers = torch.randn(5, 4)
        before = verified.verifier(crops, numbers)
        verified.fuse_for_inference()
        torch.testing.assert_close(verified.verifier(crops, numbers), before, atol=1e-4, rtol=0)
