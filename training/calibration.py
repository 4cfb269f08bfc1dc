"""Platt scaling: make a binary classifier's probabilities mean what they say.

A network trained with cross-entropy ranks well but its probabilities drift from the
frequencies they should match (the candidate verifier's middle scores were about half as
high as the share of true lesions among them). Platt scaling fits P = sigmoid(a * z + b) to
the network's logits z on held-back labelled data (a > 0 keeps the ranking, so recall and
AP are unchanged) and folds a and b into the network's last linear layer, so the shipped
weights give calibrated probabilities with no extra step at inference.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize
from scipy.special import expit, log_expit
from torch import nn


def log_loss(logits: np.ndarray, targets: np.ndarray) -> float:
    """Mean binary cross-entropy of sigmoid(``logits``) against ``targets`` in [0, 1] (n,),
    computed from the logits (exact where a probability would round to 0 or 1)."""
    z = np.asarray(logits, np.float64).ravel()
    y = np.asarray(targets, np.float64).ravel()
    return float(-np.mean(y * log_expit(z) + (1 - y) * log_expit(-z)))


def fit_platt(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(a, b) minimising the cross-entropy of sigmoid(a * logits + b) against ``labels``
    (0/1). logits, labels: (n,). Needs both classes.

    As in Platt's paper, the targets are (n+ + 1) / (n+ + 2) for positives and
    1 / (n- + 2) for negatives rather than 1 and 0: without that prior, classes that the
    logits separate perfectly would send a to infinity.
    """
    z = np.asarray(logits, np.float64).ravel()
    y = np.asarray(labels, np.float64).ravel()
    if z.shape != y.shape or not (0 < y.sum() < y.size):
        raise ValueError("Platt scaling needs logits and 0/1 labels of both classes")
    n_pos = float(y.sum())
    n_neg = float(y.size - n_pos)
    y = np.where(y > 0.5, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))

    def loss_and_gradient(params: np.ndarray) -> tuple[float, np.ndarray]:
        a, b = params
        t = a * z + b
        residual = expit(t) - y
        return log_loss(t, y), np.array([np.mean(residual * z), np.mean(residual)])

    result = minimize(loss_and_gradient, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    a, b = (float(v) for v in result.x)
    if not result.success or a <= 0:
        raise ValueError(f"Platt scaling failed ({result.message}, a = {a:.3g})")
    return a, b


@torch.no_grad()
def fold_into_linear(layer: nn.Linear, a: float, b: float) -> None:
    """Make ``layer`` (whose outputs are logits) output a * logit + b instead."""
    layer.weight.mul_(a)
    if layer.bias is None:
        raise ValueError("the layer needs a bias to take Platt's shift")
    layer.bias.mul_(a).add_(b)
