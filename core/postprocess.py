"""Heatmap -> lesion regions (the paper's region proposals, made readable).

Steps, on P(lesion) = p_benign + p_malignant = 1 - p_background:
1. hysteresis threshold: pixels >= ``low`` form candidate regions, and a candidate is
   kept only if some pixel reaches ``high`` (suppresses faint blotches, keeps whole
   outlines of confident lesions);
2. a small morphological closing (``merge_px``) joins fragments of one lesion that a
   thin gap splits (hair across a mole, a ring-shaped lesion);
3. regions smaller than ``min_area_px`` (specks) are dropped;
4. per region: outer contour (cv2.findContours), bbox, centroid, area,
   score = the region's peak P(lesion), p_malignant = sum p_mal / sum (p_ben + p_mal);
   ids 1.. ordered by decreasing score.

The score is the peak, not the mean: the mean is diluted by the soft rim down to ``low``,
more so the smaller the lesion, so small true lesions ranked below faint blotches. On the
validation photos (synthetic seed 8888, 60 photos) the peak raised recall at <= 0.5 false
positives per photo from 0.64 to 0.68 (lesions of 2 mm and more: 0.82 to 0.85) and average
precision from 0.72 to 0.75; the mean of the top 9 pixels, the 90th percentile and the mean
over the core above ``high`` came in between.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from core.types import Lesion


@dataclass(frozen=True)
class PostprocessConfig:
    """Thresholds of :func:`find_lesions` (probabilities in [0, 1], sizes in pixels)."""

    high: float = 0.5
    low: float = 0.3
    min_area_px: int = 12
    merge_px: int = 3
    max_lesions: int = 500

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict | None) -> PostprocessConfig:
        """Build from a ``model.json`` "postprocess" entry (unknown keys ignored)."""
        if not data:
            return cls()
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def lesion_probability(heatmap: np.ndarray) -> np.ndarray:
    """P(lesion) = 1 - p_background: float32 (H, W) in [0, 1] from a (H, W, 3) heatmap."""
    p = np.subtract(1.0, heatmap[:, :, 0], dtype=np.float32)
    np.clip(p, 0.0, 1.0, out=p)
    return p


def _candidate_regions(
    p_lesion: np.ndarray, config: PostprocessConfig
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Connected regions of the closed low-threshold mask and which reach ``high``.

    Returns (count, labels int32 (H, W), stats, centroids, keep bool (count,)).
    """
    low = (p_lesion >= config.low).astype(np.uint8)
    if config.merge_px > 0:
        size = 2 * config.merge_px + 1
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
        low = cv2.morphologyEx(low, cv2.MORPH_CLOSE, kernel)
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(
        low, connectivity=8, ltype=cv2.CV_32S
    )
    keep = np.zeros(count, dtype=bool)
    keep[labels[p_lesion >= config.high]] = True  # hysteresis: reaches the high threshold
    keep[0] = False
    return count, labels, stats, centroids, keep


def find_lesions(
    heatmap: np.ndarray, config: PostprocessConfig | None = None
) -> tuple[Lesion, ...]:
    """Lesion regions of a (H, W, 3) float32 heatmap (p background, p benign, p malignant).

    Returns :class:`core.types.Lesion` tuples with ids 1.. by decreasing score, at most
    ``config.max_lesions``. Coordinates are full-resolution pixels (x right, y down);
    bbox (x0, y0, x1, y1) with x1, y1 exclusive; contour (N, 2) int32 (x, y).
    """
    config = config or PostprocessConfig()
    if heatmap.ndim != 3 or heatmap.shape[2] != 3:
        raise ValueError(f"expected a (H, W, 3) heatmap, got shape {heatmap.shape}")
    p_lesion = lesion_probability(heatmap)
    count, labels, stats, centroids, keep = _candidate_regions(p_lesion, config)
    found = []
    for label in np.flatnonzero(keep):
        x, y, w, h, area = (int(v) for v in stats[label])
        if area < config.min_area_px:
            continue
        region = labels[y : y + h, x : x + w] == label
        p_region = p_lesion[y : y + h, x : x + w][region]
        p_mal = heatmap[y : y + h, x : x + w, 2][region]
        lesion_sum = float(p_region.sum(dtype=np.float64))
        score = float(p_region.max())
        p_malignant = float(p_mal.sum(dtype=np.float64)) / lesion_sum if lesion_sum > 0 else 0.0
        contours, _ = cv2.findContours(
            region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
        )
        contour = max(contours, key=cv2.contourArea).reshape(-1, 2).astype(np.int32)
        contour += np.array([x, y], dtype=np.int32)
        found.append(
            (
                score,
                (float(centroids[label][0]), float(centroids[label][1])),
                (x, y, x + w, y + h),
                contour,
                float(area),
                min(max(p_malignant, 0.0), 1.0),
            )
        )
    found.sort(key=lambda item: -item[0])
    return tuple(
        Lesion(
            id=index + 1,
            centroid=centroid,
            bbox=bbox,
            contour=contour,
            area_px=area,
            score=min(max(score, 0.0), 1.0),
            p_malignant=p_malignant,
        )
        for index, (score, centroid, bbox, contour, area, p_malignant) in enumerate(
            found[: config.max_lesions]
        )
    )
