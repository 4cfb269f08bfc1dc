"""The detector's third stage: a second opinion on how malignant each listed region is.

A detector folder whose network carries a :class:`core.models.malignancy.MalignancyClassifier`
(it needs the second stage too, :mod:`core.verification`) has a ``"malignancy"`` section in
its model.json::

    {"weight": w, "training": {...}, "metrics": {...}}

and :meth:`core.analyzer.Analyzer.detect`, once the verifier has kept a region, gives the
classifier the region-sized photo crop the verifier saw (planes 0-2 of
:func:`core.verification.candidate_inputs`) and reports

    p_malignant = sigmoid((1 - w) * logit(detector's p_malignant) + w * logit(classifier's))

(:func:`mixed_p_malignant`). Scores, outlines and areas stay as they were.

Why: the detector learns its benign/malignant split together with finding lesions at all,
from crops in which lesions are a few per cent of the pixels; a classifier trained on that
one question alone ranks the synthetic validation photos' lesions better. But on real
close-ups of patients whose lesions no training photo used it ranked at chance, and mixing
it in lowered their AUC, so the shipped detector has no third stage (the README's model
card gives the figures). The stage stays for detectors trained on more varied lesions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from core.types import Lesion

if TYPE_CHECKING:
    import torch

#: the classifier's input planes: RGB of the region-sized crop (planes 0-2 of the verifier's)
MALIGNANCY_PLANES = 3

#: region-sized photo crops -> P(malignant | lesion): uint8 (N, 3, S, S) -> float (N,)
ClassifyFn = Callable[[np.ndarray], np.ndarray]

#: probabilities are clipped to [_EPS, 1 - _EPS] before their logits are mixed
_EPS = 1e-4


@dataclass(frozen=True)
class MalignancySettings:
    """The ``"malignancy"`` section of a detector's model.json.

    weight: the classifier's share w in [0, 1] of the mixed logit (0: the detector alone).
    """

    weight: float

    @classmethod
    def from_json(cls, data: dict) -> MalignancySettings:
        """Raises ValueError (with the key) for a missing or out-of-range weight."""
        weight = data.get("weight") if isinstance(data, dict) else None
        if not isinstance(weight, int | float) or isinstance(weight, bool) or not 0 <= weight <= 1:
            raise ValueError(f"malignancy.weight must be a number in [0, 1], got {weight!r}")
        return cls(float(weight))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), _EPS, 1.0 - _EPS)
    return np.log(p / (1.0 - p))


def mixed_p_malignant(
    p_detector: np.ndarray | Sequence[float], p_classifier: np.ndarray, weight: float
) -> np.ndarray:
    """float64 (N,): sigmoid((1 - weight) logit(p_detector) + weight logit(p_classifier)),
    the probabilities clipped to [1e-4, 1 - 1e-4] first. Weight 0 gives the detector's
    (clipped) values, 1 the classifier's."""
    z = (1.0 - weight) * _logit(p_detector) + weight * _logit(p_classifier)
    return 1.0 / (1.0 + np.exp(-z))


def reassess(
    lesions: Sequence[Lesion],
    crops: np.ndarray,
    keep: np.ndarray,
    classify: ClassifyFn,
    settings: MalignancySettings,
) -> list[Lesion]:
    """``lesions`` with the p_malignant of those where ``keep`` (bool (N,)) mixed with the
    classifier's on their crops (uint8 (N, >= 3, S, S), the verifier's inputs: planes 0-2
    are read); the others unchanged (the verifier drops them, so they are not classified)."""
    keep = np.asarray(keep, bool).reshape(-1)
    if len(keep) != len(lesions) or len(crops) != len(lesions):
        raise ValueError(f"{len(crops)} crops and {len(keep)} flags for {len(lesions)} regions")
    out = list(lesions)
    chosen = np.flatnonzero(keep)
    if len(chosen) == 0:
        return out
    p_classifier = classify(np.ascontiguousarray(crops[chosen, :MALIGNANCY_PLANES]))
    p_detector = [lesions[k].p_malignant for k in chosen]
    mixed = mixed_p_malignant(p_detector, p_classifier, settings.weight)
    for k, p in zip(chosen, mixed, strict=True):
        out[k] = replace(out[k], p_malignant=float(p))
    return out


def torch_classify_fn(module: torch.nn.Module, device: torch.device) -> ClassifyFn:
    """A :data:`ClassifyFn` running a :class:`core.models.malignancy.MalignancyClassifier`
    (eval mode) on ``device``, in batches of 256 crops."""
    import torch

    def run(crops: np.ndarray) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for start in range(0, len(crops), 256):
                batch = torch.from_numpy(crops[start : start + 256]).to(device)
                batch = batch.contiguous(memory_format=torch.channels_last)
                out.append(torch.sigmoid(module(batch).float()).cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    return run
