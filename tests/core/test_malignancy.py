"""The detector's third stage (core.malignancy): the mix, the settings, the Analyzer, ONNX."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.analyzer import Analyzer
from core.errors import ModelError
from core.malignancy import MalignancySettings, mixed_p_malignant, reassess
from core.models import build_model
from core.postprocess import find_lesions
from core.verification import candidate_inputs
from tests.core.detector_fixtures import (
    TINY_KWARGS,
    TINY_MALIGNANCY,
    TINY_VERIFIER,
    disk_lesion,
    make_model_folder,
)
from tests.core.test_verification import CANDIDATES, _map_of_the_discs, _photo


def test_the_mix_runs_from_the_detector_alone_to_the_classifier_alone() -> None:
    detector = np.array([0.1, 0.5, 0.9, 0.0, 1.0])
    classifier = np.array([0.8, 0.2, 0.5, 0.5, 0.5])
    np.testing.assert_allclose(mixed_p_malignant(detector, classifier, 0.0)[:3], detector[:3])
    np.testing.assert_allclose(mixed_p_malignant(detector, classifier, 1.0), classifier)
    # 0 and 1 are clipped to 1e-4 and 1 - 1e-4: their logits stay finite
    np.testing.assert_allclose(mixed_p_malignant(detector, classifier, 0.0)[3:], [1e-4, 1 - 1e-4])
    half = mixed_p_malignant(detector, classifier, 0.5)
    c, d = classifier[:3], detector[:3]
    logit = np.log(c / (1 - c)) + np.log(d / (1 - d))
    np.testing.assert_allclose(half[:3], 1 / (1 + np.exp(-logit / 2)))
    # two opinions that agree stay put; a higher opinion of either raises the mix
    assert mixed_p_malignant([0.3], [0.3], 0.4)[0] == pytest.approx(0.3)
    assert mixed_p_malignant([0.3], [0.6], 0.4)[0] > mixed_p_malignant([0.3], [0.5], 0.4)[0]
    assert mixed_p_malignant([0.4], [0.5], 0.4)[0] > mixed_p_malignant([0.3], [0.5], 0.4)[0]


def test_settings_are_read_and_checked() -> None:
    assert MalignancySettings.from_json({"weight": 0.6, "training": {}}).weight == 0.6
    assert MalignancySettings.from_json({"weight": 1}).weight == 1.0
    for bad in ({}, {"weight": "high"}, {"weight": 1.5}, {"weight": -0.1}, {"weight": True}, []):
        with pytest.raises(ValueError, match="malignancy.weight"):
            MalignancySettings.from_json(bad)


def test_only_the_kept_regions_are_classified_on_their_photo_planes() -> None:
    lesions = [disk_lesion(k + 1, 20 * k + 10, 10, 3, p_mal=0.2) for k in range(3)]
    crops = np.zeros((3, 7, 32, 32), np.uint8)
    crops[:, 0:3] = np.arange(3, dtype=np.uint8)[:, None, None, None] + 1
    crops[:, 3:] = 99  # the fixed-size crop and the P(lesion) plane: not the classifier's
    seen = []

    def classify(batch: np.ndarray) -> np.ndarray:
        seen.append(batch.copy())
        return np.full(len(batch), 0.9, np.float32)

    keep = np.array([True, False, True])
    out = reassess(lesions, crops, keep, classify, MalignancySettings(0.5))
    assert len(seen) == 1 and seen[0].shape == (2, 3, 32, 32)
    assert sorted(np.unique(seen[0]).tolist()) == [1, 3]  # regions 1 and 3, planes 0-2 only
    expected = mixed_p_malignant([0.2], [0.9], 0.5)[0]
    assert [lesion.p_malignant for lesion in out] == pytest.approx([expected, 0.2, expected])
    assert [lesion.score for lesion in out] == [lesion.score for lesion in lesions]
    assert reassess(lesions, crops, np.zeros(3, bool), classify, MalignancySettings(0.5)) == lesions
    assert len(seen) == 1  # nothing kept, nothing classified
    with pytest.raises(ValueError, match="flags"):
        reassess(lesions, crops, keep[:2], classify, MalignancySettings(0.5))


# ------------------------------------------------------------------ the Analyzer

META = {
    "verifier": {"candidates": CANDIDATES, "min_score": 0.0},
    "malignancy": {"weight": 0.5},
}


def _analyzer(folder: Path, *, malignancy: bool, backend: str = "torch") -> Analyzer:
    meta = META if malignancy else {"verifier": META["verifier"]}
    if not (folder / "model.json").is_file():
        make_model_folder(folder, seed=21, meta=meta, verifier_bias=0.0, malignancy=malignancy)
    analyzer = Analyzer.load("cpu", detector=folder, backend=backend)
    analyzer._coarse_probabilities = _map_of_the_discs  # type: ignore[method-assign]
    return analyzer


def test_the_classifier_changes_p_malignant_and_nothing_else(tmp_path: Path) -> None:
    photo = _photo()
    plain = _analyzer(tmp_path / "plain", malignancy=False)
    mixed = _analyzer(tmp_path / "mixed", malignancy=True)
    assert plain.malignancy is None and mixed.malignancy == MalignancySettings(0.5)
    before, after = plain.detect(photo).lesions, mixed.detect(photo).lesions
    assert len(before) == 3
    for a, b in zip(before, after, strict=True):
        assert (a.id, a.bbox, a.area_px, a.score) == (b.id, b.bbox, b.area_px, b.score)
    # the classifier's own verdicts on the verifier's crops, mixed half and half
    candidates = find_lesions(mixed.probabilities(photo), mixed.verification.candidates)
    crops, _ = candidate_inputs(photo, mixed.probabilities(photo), candidates)
    with torch.no_grad():
        own = torch.sigmoid(mixed._detector.malignancy(torch.from_numpy(crops[:, :3]))).numpy()
    expected = mixed_p_malignant([c.p_malignant for c in candidates], own, 0.5)
    by_box = {c.bbox: p for c, p in zip(candidates, expected, strict=True)}
    wanted = [by_box[b.bbox] for b in after]
    assert [b.p_malignant for b in after] == pytest.approx(wanted, abs=1e-5)
    moved = [abs(a.p_malignant - b.p_malignant) for a, b in zip(before, after, strict=True)]
    assert max(moved) > 1e-3


def test_a_classifier_and_its_settings_come_together_and_need_a_verifier(tmp_path: Path) -> None:
    no_settings = tmp_path / "no-settings"
    meta = {"verifier": META["verifier"]}
    make_model_folder(no_settings, seed=21, meta=meta, verifier_bias=0.0, malignancy=True)
    with pytest.raises(ModelError, match="malignancy classifier"):
        Analyzer.load("cpu", detector=no_settings)
    no_network = tmp_path / "no-network"
    make_model_folder(no_network, seed=21, meta=META, verifier_bias=0.0)
    with pytest.raises(ModelError, match="malignancy classifier"):
        Analyzer.load("cpu", detector=no_network)
    bad = tmp_path / "bad"
    make_model_folder(bad, seed=21, meta=META, verifier_bias=0.0, malignancy=True)
    record = json.loads((bad / "model.json").read_text())
    record["malignancy"]["weight"] = 2
    (bad / "model.json").write_text(json.dumps(record))
    with pytest.raises(ModelError, match="malignancy.weight"):
        Analyzer.load("cpu", detector=bad)
    record["malignancy"]["weight"] = 0.5
    del record["verifier"]
    (bad / "model.json").write_text(json.dumps(record))
    with pytest.raises(ModelError, match="needs a verifier"):
        Analyzer.load("cpu", detector=bad)
    with pytest.raises(ValueError, match="add a verifier"):
        build_model("lesion_fcn", **TINY_KWARGS, malignancy=TINY_MALIGNANCY)


def test_the_classifier_rides_in_the_detector_weights() -> None:
    torch.manual_seed(0)
    verified = build_model("lesion_fcn", **TINY_KWARGS, verifier=TINY_VERIFIER)
    third = build_model(
        "lesion_fcn", **TINY_KWARGS, verifier=TINY_VERIFIER, malignancy=TINY_MALIGNANCY
    )
    extra = sorted(set(third.state_dict()) - set(verified.state_dict()))
    assert extra and all(key.startswith("malignancy.") for key in extra)
    third.eval()
    crops = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        before = third.malignancy(crops)
        third.fuse_for_inference()
        torch.testing.assert_close(third.malignancy(crops), before, atol=1e-4, rtol=0)


def test_the_onnx_backend_exports_and_agrees(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from core.onnx_export import export_onnx

    folder = tmp_path / "mixed"
    make_model_folder(folder, seed=21, meta=META, verifier_bias=0.0, malignancy=True)
    entry = export_onnx(folder)["malignancy"]
    assert (folder / entry["file"]).is_file() and entry["check_max_abs_diff"] < 1e-4
    photo = _photo()
    torch_found = _analyzer(folder, malignancy=True).detect(photo).lesions
    onnx_found = _analyzer(folder, malignancy=True, backend="onnx").detect(photo).lesions
    assert [a.bbox for a in onnx_found] == [b.bbox for b in torch_found]
    for a, b in zip(onnx_found, torch_found, strict=True):
        assert abs(a.p_malignant - b.p_malignant) < 1e-4
    (folder / entry["file"]).write_bytes(b"not onnx")
    with pytest.raises(ModelError, match="malignancy.onnx"):
        Analyzer.load("cpu", detector=folder, backend="onnx")
