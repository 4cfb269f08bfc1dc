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

import numpy as np

from core.blas import single_threaded_blas
from core.crop_sampling import (
    axis_bands,
    coarse_bands,
    densify,
    round_to_uint8,
    sample,
    sample_many,
)
from core.postprocess import PostprocessConfig
from core.tiling import CoarseProbabilities
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


#: OpenCV's Gaussian kernel reaches 3 sigma for uint8 photos and 4 sigma for float maps;
#: the crops keep both, the verifier was trained on them
_PHOTO_TAPS_PER_SIGMA, _MAP_TAPS_PER_SIGMA = 3, 4
#: shrinking by less than this is not blurred first
_BLUR_BELOW_SCALE = 0.75


@dataclass(frozen=True)
class _CropWindows:
    """N crops of CROP_SIZE pixels, crop k spanning ``sides[k]`` photo pixels centred on
    (cx[k], cy[k]), and the photo windows they read: ``boxes`` int64 (N, 4) of
    (x0, y0, x1, y1), x1 and y1 exclusive, with room for the anti-alias blur, clipped to
    the photo."""

    cx: np.ndarray
    cy: np.ndarray
    scales: np.ndarray
    sigmas: np.ndarray
    boxes: np.ndarray

    @classmethod
    def around(
        cls, cx: np.ndarray, cy: np.ndarray, sides: np.ndarray, width: int, height: int
    ) -> _CropWindows:
        scales = CROP_SIZE / sides
        # shrinking blurs first, so that nothing aliases
        sigmas = np.where(scales < _BLUR_BELOW_SCALE, 0.5 / scales, 0.0)
        half = sides / 2 + np.ceil(3 * sigmas) + 2
        boxes = np.stack(
            [
                np.maximum(0, np.floor(cx - half)),
                np.maximum(0, np.floor(cy - half)),
                np.minimum(width, np.ceil(cx + half) + 1),
                np.minimum(height, np.ceil(cy + half) + 1),
            ],
            axis=1,
        ).astype(np.int64)
        return cls(cx, cy, scales, sigmas, boxes)

    def lengths(self, axis: int) -> np.ndarray:
        """int64 (N,) window widths (axis 0) or heights (1)."""
        return self.boxes[:, axis + 2] - self.boxes[:, axis]

    def bands(self, axis: int, taps_per_sigma: int) -> tuple[np.ndarray, np.ndarray]:
        """Sparse weights (:func:`core.crop_sampling.axis_bands`) along x (0) or y (1)."""
        centres = (self.cx if axis == 0 else self.cy) - self.boxes[:, axis]
        return axis_bands(
            self.lengths(axis), centres, self.scales, CROP_SIZE, self.sigmas, taps_per_sigma
        )

    def weights(self, axis: int, taps_per_sigma: int) -> np.ndarray:
        """float32 (N, CROP_SIZE, longest window) weight matrices along x (0) or y (1)."""
        return densify(*self.bands(axis, taps_per_sigma), int(self.lengths(axis).max()))


def _p_lesion_reader(
    heatmap: np.ndarray | CoarseProbabilities, windows: _CropWindows
) -> Callable[[int], np.ndarray]:
    """``read(k)``: float32 (CROP_SIZE, CROP_SIZE), the detector's P(lesion) =
    1 - P(background) over crop k's pixels."""
    if not isinstance(heatmap, CoarseProbabilities):
        wx = windows.weights(0, _MAP_TAPS_PER_SIGMA)
        wy = windows.weights(1, _MAP_TAPS_PER_SIGMA)

        def read_full(k: int) -> np.ndarray:
            x0, y0, x1, y1 = windows.boxes[k]
            window = heatmap[y0:y1, x0:x1, 0]
            return 1.0 - sample(window, wy[k, :, : y1 - y0], wx[k, :, : x1 - x0])[0]

        return read_full
    # the upsampling folded into the weights: only the stride grid's cells are read
    grid = heatmap.values[:, :, 0]
    per_axis = []
    for axis in (0, 1):
        cells, weights, first = coarse_bands(
            *windows.bands(axis, _MAP_TAPS_PER_SIGMA),
            windows.boxes[:, axis],
            heatmap.stride,
            grid.shape[1 - axis],
        )
        spans = cells.reshape(len(cells), -1).max(axis=1) + 1
        per_axis.append((densify(cells, weights, int(spans.max())), first, spans))
    (wx, x0, sx), (wy, y0, sy) = per_axis

    def read_grid(k: int) -> np.ndarray:
        window = grid[y0[k] : y0[k] + sy[k], x0[k] : x0[k] + sx[k]]
        return 1.0 - sample(window, wy[k, :, : sy[k]], wx[k, :, : sx[k]])[0]

    return read_grid


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


def _crop_planes(
    image: np.ndarray,
    heatmap: np.ndarray | CoarseProbabilities,
    regional: _CropWindows,
    fixed: _CropWindows,
) -> tuple[np.ndarray, np.ndarray]:
    """float32 (N, 6, S, S) photo planes (region-sized crop, fixed-size crop) and float32
    (N, S, S) P(lesion) of the candidates, unrounded."""
    count = len(regional.boxes)
    photo = np.empty((count, 6, CROP_SIZE, CROP_SIZE), np.float32)
    # the fixed-size crops' windows are small: one batch
    photo[:, 3:6] = sample_many(
        image,
        (fixed.boxes[:, 1], fixed.boxes[:, 0]),
        fixed.weights(1, _PHOTO_TAPS_PER_SIGMA),
        fixed.weights(0, _PHOTO_TAPS_PER_SIGMA),
    )
    # the region-sized ones reach 300 px, their P(lesion) windows of the stride grid 80:
    # one pair of matrix products each
    wx = regional.weights(0, _PHOTO_TAPS_PER_SIGMA)
    wy = regional.weights(1, _PHOTO_TAPS_PER_SIGMA)
    read_p_lesion = _p_lesion_reader(heatmap, regional)
    heat = np.empty((count, CROP_SIZE, CROP_SIZE), np.float32)

    def fill(k: int) -> None:
        x0, y0, x1, y1 = regional.boxes[k]
        photo[k, 0:3] = sample(image[y0:y1, x0:x1], wy[k, :, : y1 - y0], wx[k, :, : x1 - x0])
        heat[k] = read_p_lesion(k)

    # the matrix products release the GIL (a 12 MP photo can have a few hundred
    # candidates): spread them over the cores
    workers = min(count // 16, os.cpu_count() or 1, 8)
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(fill, range(count)))
    else:
        for k in range(count):
            fill(k)
    return photo, heat


def candidate_inputs(
    image: np.ndarray,
    heatmap: np.ndarray | CoarseProbabilities,
    lesions: Sequence[Lesion],
) -> tuple[np.ndarray, np.ndarray]:
    """The verifier's inputs for candidate ``lesions`` of an (H, W, 3) uint8 RGB ``image``.

    heatmap: the detector's output on the image (full (H, W, 3) or its coarse form, of
    which only the stride grid around the candidates is read).
    Returns (crops uint8 (N, 7, S, S), scalars float32 (N, 4)), S = :data:`CROP_SIZE`.
    Crops are centred on each region's centroid: planes 0-2 the photo over
    :func:`context_side` pixels, 3-5 the photo over :data:`FIXED_CONTEXT_PX` pixels, 6 the
    detector's P(lesion) over the first crop's pixels (x 255). A crop that shrinks is
    Gaussian-blurred first (sigma 0.5 / scale), then sampled bilinearly, as
    ``cv2.GaussianBlur`` and ``cv2.warpAffine`` do it, computed as the products of
    :mod:`core.crop_sampling` (planes 3-6 as OpenCV gives them, 0-2 within one grey level).
    """
    height, width = image.shape[:2]
    count = len(lesions)
    crops = np.zeros((count, 7, CROP_SIZE, CROP_SIZE), np.uint8)
    scalars = np.zeros((count, 4), np.float32)
    if count == 0:
        return crops, scalars
    cx = np.array([float(lesion.centroid[0]) for lesion in lesions])
    cy = np.array([float(lesion.centroid[1]) for lesion in lesions])
    sides = np.array([context_side(lesion.area_px) for lesion in lesions])
    regional = _CropWindows.around(cx, cy, sides, width, height)
    fixed = _CropWindows.around(cx, cy, np.full(count, FIXED_CONTEXT_PX), width, height)
    # numpy's BLAS single-threaded: the region-sized crops are spread over the cores below,
    # and OpenBLAS's own idle workers would take the cores from the next network pass
    with single_threaded_blas():
        photo, heat = _crop_planes(image, heatmap, regional, fixed)
    crops[:, 0:6] = round_to_uint8(photo)
    crops[:, 6] = np.clip(heat * 255.0 + 0.5, 0, 255).astype(np.uint8)
    for k, lesion in enumerate(lesions):
        scalars[k] = scalar_features(lesion, sides[k])
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
