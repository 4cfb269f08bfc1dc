"""Frozen dataclasses that cross package boundaries.

Coordinates everywhere: pixels of the photo as displayed (after EXIF orientation),
x to the right, y down, pixel centres at integer coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class ModelInfo:
    """Which model produced a result: enough to reproduce it."""

    name: str
    version: str
    sha256: str

    def to_json(self) -> dict:
        return {"name": self.name, "version": self.version, "sha256": self.sha256}


@dataclass(frozen=True)
class Lesion:
    """One lesion region found on one photo.

    id: 1-based, unique within the photo, ordered by decreasing score.
    centroid: (x, y) float pixels.
    bbox: (x0, y0, x1, y1) int pixels, x1/y1 exclusive.
    contour: (N, 2) int32 array of (x, y) outline vertices, a closed polygon.
    area_px: area in pixels.
    score: P(lesion) in [0, 1]: for a detector with a second stage, the candidate
        verifier's P(true lesion) (see :mod:`core.verification`); otherwise the peak
        lesion probability inside the region (see :mod:`core.postprocess` for why the peak
        and not the mean).
    p_malignant: P(malignant | lesion) in [0, 1]: the region's peak p malignant over its
        peak P(lesion) (see core.postprocess); for a detector with a third stage, that mixed
        with its malignancy classifier's (see :mod:`core.malignancy`).
    """

    id: int
    centroid: tuple[float, float]
    bbox: tuple[int, int, int, int]
    contour: np.ndarray = field(repr=False, compare=False)
    area_px: float
    score: float
    p_malignant: float

    def to_json(self) -> dict:
        """The lesion as in the ``analyze`` JSON schema (contour omitted)."""
        return {
            "id": int(self.id),
            "centroid": [round(float(self.centroid[0]), 2), round(float(self.centroid[1]), 2)],
            "bbox": [int(v) for v in self.bbox],
            "area_px": round(float(self.area_px), 1),
            "score": round(float(self.score), 4),
            "p_malignant": round(float(self.p_malignant), 4),
        }


class CoarseHeatmap(Protocol):
    """A heatmap kept at a lower resolution (``core.tiling.CoarseProbabilities``)."""

    height: int
    width: int

    def upsample(self) -> np.ndarray: ...

    def window(self, x0: int, y0: int, width: int, height: int) -> np.ndarray: ...

    def resized(self, width: int, height: int) -> np.ndarray: ...


@dataclass(frozen=True)
class CloseupAssessment:
    """What a close-up of one lesion says about it (see :mod:`core.closeup`).

    lesion_id: id of the region at the photo's centre, or None when no region was found.
    p_malignant: that region's p_malignant, else the heatmap's over its central third.
    p_lesion: that region's score, else the mean P(lesion) over the central third: how far
        a p_malignant read without a region speaks of a lesion at all.
    analysed_size: (width, height) in pixels of the reduced photo the detector saw.
    """

    lesion_id: int | None
    p_malignant: float
    p_lesion: float
    analysed_size: tuple[int, int]

    def to_json(self) -> dict:
        return {
            "lesion_id": self.lesion_id,
            "p_malignant": round(float(self.p_malignant), 4),
            "p_lesion": round(float(self.p_lesion), 4),
            "read_from": "region" if self.lesion_id is not None else "heatmap centre",
            "analysed_size": [int(v) for v in self.analysed_size],
        }


@dataclass(frozen=True, init=False, eq=False)
class Detection:
    """Result of detection on one photo.

    heatmap: float32 (H, W, 3), per pixel (p background, p benign, p malignant), rows sum to 1.
    lesions: the post-processed lesion regions.
    closeup: for a photo analysed as a close-up of one lesion, the verdict on that lesion;
        None for a body photo.

    Built from a full heatmap or from a :class:`CoarseHeatmap`; from the latter the full
    heatmap (12 bytes a pixel) is upsampled on first access only, so that a caller that
    needs only the lesions (``lesionviewer analyze --json``) never pays for it.
    """

    lesions: tuple[Lesion, ...]
    model: ModelInfo
    source: np.ndarray | CoarseHeatmap = field(repr=False)
    closeup: CloseupAssessment | None = None

    def __init__(
        self,
        heatmap: np.ndarray | CoarseHeatmap,
        lesions: tuple[Lesion, ...],
        model: ModelInfo,
        closeup: CloseupAssessment | None = None,
    ) -> None:
        object.__setattr__(self, "source", heatmap)
        object.__setattr__(self, "lesions", lesions)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "closeup", closeup)

    @cached_property
    def heatmap(self) -> np.ndarray:
        if isinstance(self.source, np.ndarray):
            return self.source
        return self.source.upsample()

    def heatmap_rows(self, y0: int, y1: int) -> np.ndarray:
        """float32 (y1 - y0, W, 3): rows [y0, y1) of :attr:`heatmap`, without making the
        whole full-resolution heatmap when it is not made yet (a 48 MP photo's is 580 MB)."""
        if isinstance(self.source, np.ndarray) or "heatmap" in self.__dict__:
            return self.heatmap[y0:y1]
        height, width = self.shape
        y1 = min(y1, height)
        return self.source.window(0, y0, width, y1 - y0)

    @property
    def shape(self) -> tuple[int, int]:
        if isinstance(self.source, np.ndarray):
            return self.source.shape[:2]
        return self.source.height, self.source.width


@dataclass(frozen=True)
class LesionMatch:
    """One lesion of photo A matched to one lesion of photo B.

    a, b: lesion ids in A and in B.
    confidence: in [0, 1], from the distance between the flow-carried A lesion and B's.
    area_ratio: area in B / area in A, corrected for the local scale change of the flow.
    delta_e: mean colour difference (CIE Delta E 2000 over Lab) of the lesion interiors.
    p_malignant_change: p_malignant in B minus in A.
    changed: the rule in ``core.matching.CHANGE_RULE`` flags the lesion.
    """

    a: int
    b: int
    confidence: float
    area_ratio: float
    delta_e: float
    p_malignant_change: float
    changed: bool

    def to_json(self) -> dict:
        return {
            "a": int(self.a),
            "b": int(self.b),
            "confidence": round(float(self.confidence), 4),
            "area_ratio": round(float(self.area_ratio), 4),
            "delta_e": round(float(self.delta_e), 2),
            "p_malignant_change": round(float(self.p_malignant_change), 4),
            "changed": bool(self.changed),
        }


@dataclass(frozen=True)
class Tracking:
    """Result of tracking photo A to photo B.

    flow: float32 (H_A, W_A, 2); A pixel (x, y) + flow[y, x] = its position (x, y) in B.
    new_in_b / gone_from_a: unmatched B / A lesion ids where the other photo shows that skin.
    outside_view_of_a: unmatched B ids lying outside photo A's field of view (neither new nor
    known: A never showed that skin); outside_view_of_b: unmatched A ids carried outside
    photo B (not gone: B does not show that skin).
    """

    flow: np.ndarray = field(repr=False)
    lesions_a: tuple[Lesion, ...]
    lesions_b: tuple[Lesion, ...]
    matches: tuple[LesionMatch, ...]
    new_in_b: tuple[int, ...]
    gone_from_a: tuple[int, ...]
    model: ModelInfo
    outside_view_of_a: tuple[int, ...] = ()
    outside_view_of_b: tuple[int, ...] = ()
