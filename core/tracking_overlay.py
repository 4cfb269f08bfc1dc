"""A picture of a tracking result: photos A and B side by side, a line per matched lesion.

Colours: unchanged matches green, changed ones red (the rule of core.matching.CHANGE_RULE);
new lesions in B magenta with "new", lesions gone from A blue with "gone"; lesions the other
photo does not show grey, and photo A's field of view drawn on B as a thin grey outline. No Qt.
"""

from __future__ import annotations

import cv2
import numpy as np

from core.matching import field_of_view
from core.types import Lesion, Tracking

UNCHANGED = (40, 200, 60)
CHANGED = (235, 40, 40)
NEW = (220, 40, 220)
GONE = (40, 110, 255)
OUT_OF_VIEW = (170, 170, 170)


def _scaled(image: np.ndarray, height: int) -> tuple[np.ndarray, float]:
    scale = height / image.shape[0]
    size = (max(1, int(round(image.shape[1] * scale))), height)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def _point(lesion: Lesion, scale: float, dx: int = 0) -> tuple[int, int]:
    return int(round(lesion.centroid[0] * scale)) + dx, int(round(lesion.centroid[1] * scale))


def _outline(canvas, lesion: Lesion, scale: float, dx: int, colour, thickness: int) -> None:
    contour = (
        (np.asarray(lesion.contour, np.float64).reshape(-1, 2) * scale).round().astype(np.int32)
    )
    contour[:, 0] += dx
    if len(contour) >= 2:
        cv2.polylines(canvas, [contour.reshape(-1, 1, 2)], True, colour, thickness, cv2.LINE_AA)


def tracking_overlay(
    image_a: np.ndarray, image_b: np.ndarray, tracking: Tracking, *, height: int = 1200
) -> np.ndarray:
    """RGB uint8 (height, W_A' + W_B', 3): A left, B right, both scaled to ``height`` rows
    (at most their own height)."""
    height = int(min(height, max(image_a.shape[0], image_b.shape[0])))
    a, sa = _scaled(image_a, height)
    b, sb = _scaled(image_b, height)
    canvas = np.concatenate([a, b], axis=1).copy()
    off = a.shape[1]
    t = max(1, height // 400)
    font = 0.4 + height / 2000
    by_a = {le.id: le for le in tracking.lesions_a}
    by_b = {le.id: le for le in tracking.lesions_b}
    for match in tracking.matches:
        la, lb = by_a.get(match.a), by_b.get(match.b)
        if la is None or lb is None:
            continue
        colour = CHANGED if match.changed else UNCHANGED
        _outline(canvas, la, sa, 0, colour, t)
        _outline(canvas, lb, sb, off, colour, t)
        cv2.line(canvas, _point(la, sa), _point(lb, sb, off), colour, t, cv2.LINE_AA)
        x, y = _point(la, sa)
        cv2.putText(canvas, str(match.a), (x + 4 * t, y - 4 * t), 0, font, colour, t, cv2.LINE_AA)
        x, y = _point(lb, sb, off)
        cv2.putText(canvas, str(match.b), (x + 4 * t, y - 4 * t), 0, font, colour, t, cv2.LINE_AA)
    for lesion_id in tracking.new_in_b:
        lb = by_b.get(lesion_id)
        if lb is not None:
            x, y = _point(lb, sb, off)
            r = int(max(8 * t, np.sqrt(lb.area_px / np.pi) * sb * 2))
            cv2.circle(canvas, (x, y), r, NEW, 2 * t, cv2.LINE_AA)
            cv2.putText(canvas, "new", (x + r, y), 0, font, NEW, t, cv2.LINE_AA)
    for lesion_id in tracking.gone_from_a:
        la = by_a.get(lesion_id)
        if la is not None:
            x, y = _point(la, sa)
            r = int(max(8 * t, np.sqrt(la.area_px / np.pi) * sa * 2))
            cv2.circle(canvas, (x, y), r, GONE, 2 * t, cv2.LINE_AA)
            cv2.putText(canvas, "gone", (x + r, y), 0, font, GONE, t, cv2.LINE_AA)
    for lesion_id in tracking.outside_view_of_a:
        if (lb := by_b.get(lesion_id)) is not None:
            _outline(canvas, lb, sb, off, OUT_OF_VIEW, t)
    for lesion_id in tracking.outside_view_of_b:
        if (la := by_a.get(lesion_id)) is not None:
            _outline(canvas, la, sa, 0, OUT_OF_VIEW, t)
    view = (field_of_view(tracking.flow) * sb).round().astype(np.int32)
    panel_b = canvas[:, off:]  # B's half only, so the outline is clipped at the divider
    cv2.polylines(panel_b, [view.reshape(-1, 1, 2)], True, OUT_OF_VIEW, t, cv2.LINE_AA)
    cv2.line(canvas, (off, 0), (off, height - 1), (255, 255, 255), t)
    return canvas
