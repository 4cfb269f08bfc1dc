"""Platt scaling: the fit recovers a known miscalibration and folds into a linear layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from training.calibration import fit_platt, fold_into_linear, log_loss
from training.statistics import expected_calibration_error


def test_platt_recovers_a_known_miscalibration() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0.0, 2.0, 40_000)
    # the truth is sigmoid(0.5 z + 1): the raw logits are over-confident and biased
    labels = (rng.random(z.size) < 1 / (1 + np.exp(-(0.5 * z + 1.0)))).astype(np.int64)
    a, b = fit_platt(z, labels)
    assert a == pytest.approx(0.5, abs=0.03) and b == pytest.approx(1.0, abs=0.05)
    raw = 1 / (1 + np.exp(-z))
    calibrated = 1 / (1 + np.exp(-(a * z + b)))
    assert expected_calibration_error(labels, calibrated) < 0.01
    assert expected_calibration_error(labels, raw) > 0.1


def test_separable_classes_give_a_finite_scale() -> None:
    z = np.array([-3.0, -2.0, -1.0, 1.0, 2.0, 3.0])
    a, b = fit_platt(z, np.array([0, 0, 0, 1, 1, 1]))
    assert 0 < a < 20 and abs(b) < 1e-3  # Platt's target prior keeps it bounded


def test_one_class_is_refused() -> None:
    with pytest.raises(ValueError, match="both classes"):
        fit_platt(np.array([0.1, 0.2]), np.array([1, 1]))


def test_folding_turns_the_layer_into_a_times_its_output_plus_b() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(5, 1)
    x = torch.randn(7, 5)
    before = layer(x).detach()
    fold_into_linear(layer, 0.7, -1.3)
    assert torch.allclose(layer(x).detach(), 0.7 * before - 1.3, atol=1e-6)


def test_calibration_error_of_simple_cases() -> None:
    assert expected_calibration_error(np.array([1, 0]), np.array([1.0, 0.0])) == 0.0
    # all predictions 0.9, half right: off by 0.4
    labels = np.array([1, 0, 1, 0])
    assert expected_calibration_error(labels, np.full(4, 0.9)) == pytest.approx(0.4)
    assert np.isnan(expected_calibration_error(np.array([]), np.array([])))


def test_log_loss_from_logits_matches_the_textbook_formula_and_stays_finite() -> None:
    z = np.array([-2.0, 0.5, 3.0])
    y = np.array([0.0, 1.0, 1.0])
    p = 1 / (1 + np.exp(-z))
    textbook = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert log_loss(z, y) == pytest.approx(textbook, rel=1e-12)
    # a confident mistake costs its margin, where clipped probabilities would cap it
    assert log_loss(np.array([-800.0]), np.array([1.0])) == pytest.approx(800.0)
