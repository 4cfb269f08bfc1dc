"""The detector's number format on a CPU: float32 by default, bfloat16 when asked for."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from core.analyzer import Analyzer
from core.device import PRECISION_ENV, choose_precision, native_bfloat16
from tests.core.detector_fixtures import make_model_folder

VERIFIER = {
    "candidates": {"high": 0.5, "low": 0.3, "min_area_px": 1, "merge_px": 1},
    "min_score": 0.0,
}


def test_float32_unless_bfloat16_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PRECISION_ENV, raising=False)
    assert choose_precision() == "float32"
    assert choose_precision("BFloat16 ") == "bfloat16"
    monkeypatch.setenv(PRECISION_ENV, "bfloat16")
    assert choose_precision() == "bfloat16"
    assert choose_precision("float32") == "float32"  # the caller's word over the variable
    with pytest.raises(ValueError, match="unknown precision 'float16'"):
        choose_precision("float16")
    assert isinstance(native_bfloat16(), bool)


def test_bfloat16_runs_the_network_in_bfloat16_and_the_verifier_in_float32(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "detector"
    make_model_folder(folder, seed=3, meta={"verifier": VERIFIER}, verifier_bias=1.0)
    exact = Analyzer.load("cpu", detector=folder)
    fast = Analyzer.load("cpu", detector=folder, precision="bfloat16")
    assert (exact.precision, fast.precision) == ("float32", "bfloat16")
    network = fast._detector
    assert network.head.weight.dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in network.verifier.parameters())

    photo = np.full((160, 240, 3), 200, np.uint8)
    for centre in ((60, 50), (170, 110)):
        cv2.circle(photo, centre, 9, (70, 45, 35), -1)
    heat, heat32 = fast.heatmap(photo), exact.heatmap(photo)
    assert heat.dtype == np.float32
    np.testing.assert_allclose(heat.sum(axis=2), 1.0, atol=1e-4)
    # an 8-bit mantissa: the map moves a little, nowhere far
    difference = np.abs(heat - heat32)
    assert difference.mean() < 0.01 and difference.max() < 0.1
    assert difference.max() > 0  # it did run in another format
    # the verifier scores the candidates the same way: its inputs moved only as the map did
    lesions = fast.detect(photo).lesions
    assert lesions and all(0.0 <= lesion.score <= 1.0 for lesion in lesions)


def test_the_variable_reaches_the_analyzer_and_a_bad_one_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "detector"
    make_model_folder(folder, seed=4)
    monkeypatch.setenv(PRECISION_ENV, "bfloat16")
    assert Analyzer.load("cpu", detector=folder).precision == "bfloat16"
    monkeypatch.setenv(PRECISION_ENV, "half")
    with pytest.raises(ValueError, match="LESIONVIEWER_PRECISION: unknown precision 'half'"):
        Analyzer.load("cpu", detector=folder)
