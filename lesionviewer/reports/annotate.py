"""Photos with numbered lesion outlines drawn on them (OpenCV; no Qt) for reports.

Colours: malignant red, benign yellow (as in the app); flagged lesions drawn thicker.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

from lesionviewer.store import Observation

MALIGNANT_RGB = (220, 30, 30)
BENIGN_RGB = (245, 200, 0)


def annotated_photo(
    image: np.ndarray,
    observations: Iterable[Observation],
    *,
    max_side: int = 1400,
    flagged_labels: set[str] | frozenset[str] = frozenset(),
) -> np.ndarray:
    """A copy of ``image`` (HxWx3 uint8 RGB) scaled so its longer side is ``max_side``
    (small photos are enlarged so outlines and labels stay sharp in print), with every
    observation's outline and label drawn on it."""
    height, width = image.shape[:2]
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    canvas = cv2.resize(image, size, interpolation=interpolation)
    canvas = np.ascontiguousarray(canvas.copy())
    line = max(1, round(max(canvas.shape[:2]) / 400))
    font_scale = max(0.4, max(canvas.shape[:2]) / 1200)
    for obs in observations:
        colour = MALIGNANT_RGB if obs.malignant else BENIGN_RGB
        points = np.round(np.asarray(obs.outline, dtype=np.float64) * scale).astype(np.int32)
        thickness = line * 2 if obs.lesion_label in flagged_labels else line
        cv2.polylines(canvas, [points.reshape(-1, 1, 2)], True, colour, thickness, cv2.LINE_AA)
        x = int(round(obs.bbox[2] * scale)) + 2
        y = max(int(round(obs.bbox[1] * scale)) + 10, 12)
        for ink, extra in (((0, 0, 0), 2), (colour, 0)):
            cv2.putText(
                canvas,
                obs.lesion_label,
                (x, y),
                cv2.FONT_HERSHEY_SIMPLEX,
                font_scale,
                ink,
                line + extra,
                cv2.LINE_AA,
            )
    return canvas
