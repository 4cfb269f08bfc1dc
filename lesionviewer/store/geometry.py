"""Small polygon and box helpers for observations (photo pixels, x right, y down)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Box = tuple[int, int, int, int]


def as_polygon(points: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """(N, 2) float64 array of (x, y) vertices; ValueError if fewer than 3 or not finite."""
    polygon = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(polygon) < 3:
        raise ValueError("an outline needs at least 3 vertices")
    if not np.all(np.isfinite(polygon)):
        raise ValueError("outline vertices must be finite numbers")
    return polygon


def polygon_area(polygon: np.ndarray) -> float:
    """Area in pixels (shoelace formula, orientation ignored)."""
    x, y = polygon[:, 0], polygon[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def polygon_centroid(polygon: np.ndarray) -> tuple[float, float]:
    """Area centroid (x, y); the vertex mean for a degenerate (zero-area) polygon."""
    x, y = polygon[:, 0], polygon[:, 1]
    cross = x * np.roll(y, -1) - np.roll(x, -1) * y
    area2 = float(cross.sum())
    if abs(area2) < 1e-9:
        return float(x.mean()), float(y.mean())
    cx = float(((x + np.roll(x, -1)) * cross).sum() / (3.0 * area2))
    cy = float(((y + np.roll(y, -1)) * cross).sum() / (3.0 * area2))
    return cx, cy


def polygon_bbox(polygon: np.ndarray) -> Box:
    """(x0, y0, x1, y1) int pixels with x1/y1 exclusive, covering every vertex."""
    x0, y0 = np.floor(polygon.min(axis=0)).astype(int)
    x1, y1 = np.floor(polygon.max(axis=0)).astype(int) + 1
    return int(x0), int(y0), int(x1), int(y1)


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when disjoint)."""
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def inside(point: tuple[float, float], box: Box) -> bool:
    """Whether (x, y) lies in the box."""
    return box[0] <= point[0] < box[2] and box[1] <= point[1] < box[3]


def same_region(
    box_a: Box, centroid_a: tuple[float, float], box_b: Box, centroid_b: tuple[float, float]
) -> bool:
    """Two observations show the same region: boxes overlap with IoU >= 0.3, or either
    centroid lies in the other's box."""
    return box_iou(box_a, box_b) >= 0.3 or inside(centroid_a, box_b) or inside(centroid_b, box_a)
