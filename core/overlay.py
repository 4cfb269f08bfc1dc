"""Paper-style detection overlay: heat (malignant red, benign yellow), numbered outlines, legend."""

from __future__ import annotations

import cv2
import numpy as np

from core.types import CloseupAssessment, Detection

MALIGNANT_RGB = (230, 25, 25)
BENIGN_RGB = (255, 220, 0)
#: opacity of the heat where P(lesion) = 1
MAX_ALPHA = 0.6
#: heat below this P(lesion) is not drawn (no global tint)
MIN_P_LESION = 0.1
_STRIP_ROWS = 512


def _heat_strip(image: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """Blend the heat colour over one strip of rows; uint8 (h, W, 3)."""
    p_ben = heatmap[:, :, 1]
    p_mal = heatmap[:, :, 2]
    p_lesion = p_ben + p_mal
    ratio = np.divide(p_mal, p_lesion, out=np.zeros_like(p_mal), where=p_lesion > 1e-6)
    alpha = np.where(p_lesion >= MIN_P_LESION, p_lesion * MAX_ALPHA, 0.0).astype(np.float32)
    benign = np.asarray(BENIGN_RGB, np.float32)
    malignant = np.asarray(MALIGNANT_RGB, np.float32)
    colour = benign + (malignant - benign) * ratio[:, :, None]
    out = image.astype(np.float32)
    out += (colour - out) * alpha[:, :, None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _scale(image: np.ndarray) -> float:
    return max(1.0, min(image.shape[:2]) / 600.0)


def _draw_lesions(canvas: np.ndarray, detection: Detection) -> None:
    scale = _scale(canvas)
    thickness = max(1, round(1.5 * scale))
    font_scale = 0.5 * scale
    for lesion in detection.lesions:
        colour = MALIGNANT_RGB if lesion.p_malignant >= 0.5 else BENIGN_RGB
        contour = lesion.contour.reshape(-1, 1, 2).astype(np.int32)
        cv2.drawContours(canvas, [contour], -1, (0, 0, 0), thickness + 2, cv2.LINE_AA)
        cv2.drawContours(canvas, [contour], -1, colour, thickness, cv2.LINE_AA)
        text = str(lesion.id)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
        x0, y0 = lesion.bbox[0], lesion.bbox[1]
        x = int(min(max(x0, 0), canvas.shape[1] - tw - 4))
        y = int(y0 - 4 if y0 - th - 6 >= 0 else min(lesion.bbox[3] + th + 4, canvas.shape[0] - 2))
        cv2.rectangle(canvas, (x - 2, y - th - 3), (x + tw + 2, y + base), (0, 0, 0), -1)
        cv2.putText(
            canvas,
            text,
            (x, y),
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            colour,
            thickness,
            cv2.LINE_AA,
        )


def _draw_legend(canvas: np.ndarray) -> None:
    scale = _scale(canvas)
    font_scale = 0.45 * scale
    thickness = max(1, round(scale))
    entries = (("malignant", MALIGNANT_RGB), ("benign", BENIGN_RGB))
    (tw, th), _ = cv2.getTextSize("malignant", cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
    pad = int(6 * scale)
    swatch = th + 2
    width = pad * 3 + swatch + tw
    height = pad * (len(entries) + 1) + swatch * len(entries)
    if width >= canvas.shape[1] or height >= canvas.shape[0]:
        return
    region = canvas[:height, :width]
    region[...] = (region.astype(np.float32) * 0.35).astype(np.uint8)
    for row, (label, colour) in enumerate(entries):
        y = pad + row * (swatch + pad)
        cv2.rectangle(canvas, (pad, y), (pad + swatch, y + swatch), colour, -1)
        cv2.putText(
            canvas,
            label,
            (pad * 2 + swatch, y + swatch - 2),
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            (255, 255, 255),
            thickness,
            cv2.LINE_AA,
        )


def closeup_caption(verdict: CloseupAssessment) -> str:
    """The overlay's line for a close-up: ``close-up: region 1, p malignant 0.97``, or
    ``close-up: no region, centre P(lesion) 0.00, p malignant 0.43``."""
    if verdict.lesion_id is not None:
        where = f"region {verdict.lesion_id}"
    else:
        where = f"no region, centre P(lesion) {verdict.p_lesion:.2f}"
    return f"close-up: {where}, p malignant {verdict.p_malignant:.2f}"


def _draw_caption(canvas: np.ndarray, text: str) -> None:
    """``text`` in white on a darkened band along the bottom-left (left out when it does not
    fit the photo)."""
    scale = _scale(canvas)
    font_scale = 0.45 * scale
    thickness = max(1, round(scale))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
    pad = int(6 * scale)
    width, height = tw + 2 * pad, th + base + 2 * pad
    if width >= canvas.shape[1] or height >= canvas.shape[0]:
        return
    region = canvas[-height:, :width]
    region[...] = (region.astype(np.float32) * 0.35).astype(np.uint8)
    cv2.putText(
        canvas,
        text,
        (pad, canvas.shape[0] - pad - base),
        cv2.FONT_HERSHEY_SIMPLEX,
        font_scale,
        (255, 255, 255),
        thickness,
        cv2.LINE_AA,
    )


def detection_overlay(
    image: np.ndarray, detection: Detection, *, legend: bool = True
) -> np.ndarray:
    """The photo with the detection drawn on it: uint8 (H, W, 3) RGB, a new array.

    Heat: colour from yellow (benign) to red (malignant) by P(malignant | lesion),
    opacity ``MAX_ALPHA * P(lesion)`` where P(lesion) >= ``MIN_P_LESION``. Each lesion's
    outline in red (p_malignant >= 0.5) or yellow, with its id; a legend top-left; for a
    close-up, its verdict along the bottom (:func:`closeup_caption`).
    """
    if image.shape[:2] != tuple(detection.shape):
        raise ValueError(f"image {image.shape[:2]} and heatmap {detection.shape} differ in size")
    canvas = np.empty_like(image)
    # strip by strip from the detection's coarse map: never the whole full-resolution heatmap
    for y in range(0, image.shape[0], _STRIP_ROWS):
        rows = slice(y, y + _STRIP_ROWS)
        canvas[rows] = _heat_strip(image[rows], detection.heatmap_rows(y, y + _STRIP_ROWS))
    _draw_lesions(canvas, detection)
    if legend:
        _draw_legend(canvas)
    if detection.closeup is not None:
        _draw_caption(canvas, closeup_caption(detection.closeup))
    return canvas
