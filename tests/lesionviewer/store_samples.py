"""Small stand-ins for the store tests: photos on disk and core.types results."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from core.types import Detection, Lesion, LesionMatch, ModelInfo, Tracking

DETECTOR = ModelInfo("test-detector", "0.1", "a" * 64)
TRACKER = ModelInfo("test-tracker", "0.1", "b" * 64)


def write_photo(path: Path, seed: int, *, width: int = 64, height: int = 48) -> Path:
    """A small random-noise photo (PNG or JPEG by suffix), different for each seed."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return path


def square_lesion(
    lesion_id: int, x: int, y: int, size: int = 8, *, score: float = 0.9, p_malignant: float = 0.2
) -> Lesion:
    """A square lesion with its top-left corner at (x, y)."""
    contour = np.array(
        [[x, y], [x + size - 1, y], [x + size - 1, y + size - 1], [x, y + size - 1]],
        dtype=np.int32,
    )
    return Lesion(
        id=lesion_id,
        centroid=(x + (size - 1) / 2, y + (size - 1) / 2),
        bbox=(x, y, x + size, y + size),
        contour=contour,
        area_px=float(size * size),
        score=score,
        p_malignant=p_malignant,
    )


def detection(lesions: list[Lesion], *, width: int = 64, height: int = 48) -> Detection:
    heatmap = np.zeros((height, width, 3), dtype=np.float32)
    heatmap[..., 0] = 1.0
    return Detection(heatmap=heatmap, lesions=tuple(lesions), model=DETECTOR)


def tracking(
    lesions_a: list[Lesion],
    lesions_b: list[Lesion],
    pairs: list[tuple[int, int]],
    *,
    changed: tuple[int, ...] = (),
    outside_a: tuple[int, ...] = (),
    outside_b: tuple[int, ...] = (),
    width: int = 64,
    height: int = 48,
    uncertain: tuple[int, ...] = (),
) -> Tracking:
    """A tracking result matching ``pairs`` (A id, B id); ``outside_a`` are B ids outside
    photo A's view, ``outside_b`` A ids outside photo B's view; the matches of the A ids in
    ``uncertain`` have confidence 0.05 (the others 0.9)."""
    matches = tuple(
        LesionMatch(
            a,
            b,
            0.05 if a in uncertain else 0.9,
            1.2 if a in changed else 1.0,
            1.5,
            0.05,
            a in changed,
        )
        for a, b in pairs
    )
    matched_a = {a for a, _ in pairs}
    matched_b = {b for _, b in pairs}
    return Tracking(
        flow=np.zeros((height, width, 2), dtype=np.float32),
        lesions_a=tuple(lesions_a),
        lesions_b=tuple(lesions_b),
        matches=matches,
        new_in_b=tuple(le.id for le in lesions_b if le.id not in matched_b | set(outside_a)),
        gone_from_a=tuple(le.id for le in lesions_a if le.id not in matched_a | set(outside_b)),
        model=TRACKER,
        outside_view_of_a=tuple(outside_a),
        outside_view_of_b=tuple(outside_b),
    )
