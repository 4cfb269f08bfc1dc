"""The detector's second stage: candidate regions -> verified lesions.

A detector folder whose network carries a :class:`core.models.verifier.CandidateVerifier`
has a ``"verifier"`` section in its model.json::

    {"candidates": {high, low, min_area_px, merge_px}, "min_score": float, ...}

and :meth:`core.analyzer.Analyzer.detect` then works in two steps:

1. :func:`core.postprocess.find_lesions` with the ``candidates`` thresholds, lower than a
   lone detector would use, so that faint and tiny lesions become candidates too;
2. the verifier looks at each candidate (:func:`candidate_inputs`) and its P(true lesion)
   becomes the region's score; regions below ``min_score`` are dropped
   (:func:`apply_verdicts`). Outlines, areas and p_malignant stay the detector's.

Why: the detector's most confident false positives (hair, specular highlights, pigment
blotches of the skin, garment edges) score as high as real moles, so at a fixed number of
false positives per photo its recall is capped by them, not by what it finds. A classifier
trained on exactly these confusions (the detector's own candidates on photos it was not
trained on) separates much of them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import cv2
import numpy as np

from core.postprocess import PostprocessConfig
from core.tiling import CoarseProbabilities, upsample_window
from core.types import Lesion

if TYPE_CHECKING:
    import torch

#: side of the crops the verifier sees, pixels
CROP_SIZE = 32
#: the region-sized crop spans this many region diameters ...
CONTEXT_PER_DIAMETER = 4.0
#: ... within these bounds (photo pixels)
MIN_CONTEXT_PX, MAX_CONTEXT_PX = 16.0, 256.0
#: the fixed-size crop spans this many photo pixels (a small mole and its skin, enlarged)
FIXED_CONTEXT_PX = 24.0
#: logits of the detector's score are clipped to this (a float32 peak can be exactly 1)
_MAX_LOGIT = 12.0

#: verifier inputs -> P(true lesion): uint8 (N, 7, S, S) crops, float32 (N, 4) -> float (N,)
VerifyFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class VerificationSettings:
    """The ``"verifier"`` section of a detector's model.json.

    candidates: thresholds of the candidate search (:func:`core.postprocess.find_lesions`).
    min_score: verified P(true lesion) a candidate needs to be reported.
    """

    candidates: PostprocessConfig
    min_score: float

    @classmethod
    def from_json(cls, data: dict) -> VerificationSettings:
        """Raises ValueError (with the key) for a missing or out-of-range entry."""
        if not isinstance(data, dict) or not isinstance(data.get("candidates"), dict):
            raise ValueError("verifier.candidates must be an object of thresholds")
        score = data.get("min_score")
        if not isinstance(score, int | float) or isinstance(score, bool) or not 0 <= score <= 1:
            raise ValueError(f"verifier.min_score must be a number in [0, 1], got {score!r}")
        return cls(PostprocessConfig.from_json(data["candidates"]), float(score))

    def to_json(self) -> dict:
        return {"candidates": self.candidates.to_json(), "min_score": self.min_score}


def context_side(area_px: float) -> float:
    """Photo pixels spanned by the region-sized crop of a region of ``area_px`` pixels."""
    diameter = 2.0 * math.sqrt(max(float(area_px), 1.0) / math.pi)
    return min(max(CONTEXT_PER_DIAMETER * diameter, MIN_CONTEXT_PX), MAX_CONTEXT_PX)


def _window(cx: float, cy: float, side: float, width: int, height: int) -> tuple[int, ...]:
    """(x0, y0, x1, y1), x1 and y1 exclusive: the photo window that a crop of ``side``
    around (cx, cy) reads, with room for the anti-alias blur, clipped to the photo."""
    scale = CROP_SIZE / side
    sigma = 0.5 / scale if scale < 0.75 else 0.0
    margin = int(math.ceil(3 * sigma)) + 2
    half = side / 2 + margin
    x0, y0 = max(0, int(math.floor(cx - half))), max(0, int(math.floor(cy - half)))
    x1, y1 = min(width, int(math.ceil(cx + half)) + 1), min(height, int(math.ceil(cy + half)) + 1)
    return x0, y0, x1, y1


def _crop(window: np.ndarray, cx: float, cy: float, side: float) -> np.ndarray:
    """CROP_SIZE x CROP_SIZE resampling of ``side`` x ``side`` pixels centred on (cx, cy),
    given in the window's own coordinates. Shrinking blurs first, so that nothing aliases."""
    scale = CROP_SIZE / side
    if scale < 0.75:
        window = cv2.GaussianBlur(window, (0, 0), 0.5 / scale)
    centre = (CROP_SIZE - 1) / 2.0
    matrix = np.float32([[scale, 0, centre - scale * cx], [0, scale, centre - scale * cy]])
    return cv2.warpAffine(
        window,
        matrix,
        (CROP_SIZE, CROP_SIZE),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT_101,
    )


def _p_lesion_window(
    heatmap: np.ndarray | CoarseProbabilities, x0: int, y0: int, x1: int, y1: int
) -> np.ndarray:
    if isinstance(heatmap, CoarseProbabilities):
        # the background channel alone: a third of the upsampling, the same values
        background = upsample_window(
            heatmap.values[:, :, :1], heatmap.stride, x0, y0, x1 - x0, y1 - y0
        )[:, :, 0]
    else:
        background = heatmap[y0:y1, x0:x1, 0]
    return np.clip(1.0 - background, 0.0, 1.0).astype(np.float32)


def scalar_features(lesion: Lesion, side: float) -> list[float]:
    """The four numbers the verifier gets beside the crops, each of order 1: the detector's
    score as a logit / 4, p_malignant, log(area + 1) / 3 and log(context side) / 3."""
    score = min(max(float(lesion.score), 1e-6), 1.0 - 1e-6)
    logit = min(max(math.log(score / (1.0 - score)), -_MAX_LOGIT), _MAX_LOGIT)
    return [
        logit / 4.0,
        float(lesion.p_malignant),
        math.log(float(lesion.area_px) + 1.0) / 3.0,
        math.log(side) / 3.0,
    ]


def candidate_inputs(
    image: np.ndarray,
    heatmap: np.ndarray | CoarseProbabilities,
    lesions: Sequence[Lesion],
) -> tuple[np.ndarray, np.ndarray]:
    """The verifier's inputs for candidate ``lesions`` of an (H, W, 3) uint8 RGB ``image``.

    heatmap: the detector's output on the image (full (H, W, 3) or its coarse form; only
    windows around the candidates are upsampled).
    Returns (crops uint8 (N, 7, S, S), scalars float32 (N, 4)), S = :data:`CROP_SIZE`.
    Crops are centred on each region's centroid: planes 0-2 the photo over
    :func:`context_side` pixels, 3-5 the photo over :data:`FIXED_CONTEXT_PX` pixels, 6 the
    detector's P(lesion) over the first crop's pixels (x 255).
    """
    height, width = image.shape[:2]
    crops = np.zeros((len(lesions), 7, CROP_SIZE, CROP_SIZE), np.uint8)
    scalars = np.zeros((len(lesions), 4), np.float32)

    def fill(index: int) -> None:
        lesion = lesions[index]
        cx, cy = (float(v) for v in lesion.centroid)
        side = context_side(lesion.area_px)
        x0, y0, x1, y1 = _window(cx, cy, side, width, height)
        window = image[y0:y1, x0:x1]
        crops[index, 0:3] = _crop(window, cx - x0, cy - y0, side).transpose(2, 0, 1)
        p_lesion = _p_lesion_window(heatmap, x0, y0, x1, y1)
        heat = _crop(p_lesion, cx - x0, cy - y0, side)
        crops[index, 6] = np.clip(heat * 255.0 + 0.5, 0, 255).astype(np.uint8)
        fx0, fy0, fx1, fy1 = _window(cx, cy, FIXED_CONTEXT_PX, width, height)
        fixed = _crop(image[fy0:fy1, fx0:fx1], cx - fx0, cy - fy0, FIXED_CONTEXT_PX)
        crops[index, 3:6] = fixed.transpose(2, 0, 1)
        scalars[index] = scalar_features(lesion, side)

    # OpenCV releases the GIL, and the anti-alias blur of large regions is most of the work
    # (a 12 MP photo can have a few hundred candidates): spread them over the cores
    workers = min(len(lesions) // 16, os.cpu_count() or 1, 8)
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(fill, range(len(lesions))))
    else:
        for index in range(len(lesions)):
            fill(index)
    return crops, scalars


def apply_verdicts(
    lesions: Sequence[Lesion], p_true: np.ndarray, min_score: float
) -> tuple[Lesion, ...]:
    """Candidates rescored with the verifier's P(true lesion) ``p_true`` (N,), those below
    ``min_score`` dropped, ids 1.. again by decreasing score (ties: top then left edge)."""
    p_true = np.asarray(p_true, dtype=np.float64).reshape(-1)
    if len(p_true) != len(lesions):
        raise ValueError(f"{len(p_true)} verdicts for {len(lesions)} candidates")
    kept = [
        replace(lesion, score=min(max(float(p), 0.0), 1.0))
        for lesion, p in zip(lesions, p_true, strict=True)
        if p >= min_score
    ]
    kept.sort(key=lambda item: (-item.score, item.bbox[1], item.bbox[0]))
    return tuple(replace(lesion, id=index + 1) for index, lesion in enumerate(kept))


def torch_verify_fn(module: torch.nn.Module, device: torch.device) -> VerifyFn:
    """A :data:`VerifyFn` running a :class:`core.models.verifier.CandidateVerifier` (eval
    mode) on ``device``, in batches of 256 candidates."""
    import torch

    def run(crops: np.ndarray, scalars: np.ndarray) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for start in range(0, len(crops), 256):
                # channels_last, as the folded network's weights are: 1.6x faster on a CPU
                batch = torch.from_numpy(crops[start : start + 256]).to(device)
                batch = batch.contiguous(memory_format=torch.channels_last)
                numbers = torch.from_numpy(scalars[start : start + 256]).to(device)
                out.append(torch.sigmoid(module(batch, numbers).float()).cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    return run
