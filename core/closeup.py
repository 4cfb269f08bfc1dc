"""Close-ups: photos of one lesion that fills much of the frame, analysed as they were tested.

The detector was trained on photos of body regions, where a lesion spans a few to a few
dozen pixels. A close-up (a phone held a few centimetres from the skin, like the
PAD-UFES-20 photos) shows one lesion hundreds of pixels wide and every freckle, pore and
hair in detail; analysed as a body photo, and a small one at that (enlarged, see
:mod:`core.multiscale`), its freckles become mole-sized spots and the lesion itself is
larger than anything the network saw. Nothing in the pixels tells the two kinds apart,
so the caller says which it is (``Analyzer.detect(image, closeup=True)``,
``lesionviewer analyze --closeup``).

A close-up is analysed reduced to a long side of the detector's
``inference.closeup_side_px`` pixels (model.json), which brings its lesion to the sizes
the network knows. ``lesion-train evaluate-detector`` chooses that side on the close-ups
of the patients whose lesions trained the detector, and reports the malignant AUC of the
held-out patients' close-ups read exactly this way: the reduced photo's regions, and the
photographed lesion's p_malignant from the region at the photo's centre
(:func:`central_lesion`), or from the heatmap's central third when no region was found
(:func:`central_p_malignant`). :func:`lift_detection` then brings the regions and the
heatmap back to the photo's own pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import cv2
import numpy as np

from core.tiling import CoarseProbabilities
from core.types import CloseupAssessment, Detection, Lesion

#: stride of the lifted heatmap's grid (photo pixels per grid pixel), as the network's own
LIFTED_STRIDE = 4


def resize_longer_side(image: np.ndarray, side: int) -> np.ndarray:
    """``image`` (H, W, C) resized so that its longer side is ``side`` pixels (aspect kept;
    area averaging when shrinking, bilinear when enlarging)."""
    h, w = image.shape[:2]
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interp)


def central_lesion(lesions: Sequence[Lesion], shape: tuple[int, int]) -> Lesion | None:
    """The region containing the centre of a photo of ``shape`` (height, width), the largest
    if several; else the one whose centroid is nearest the centre; None for no regions."""
    if not lesions:
        return None
    h, w = shape
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    containing = [
        lesion
        for lesion in lesions
        if cv2.pointPolygonTest(lesion.contour.reshape(-1, 1, 2).astype(np.int32), (cx, cy), False)
        >= 0
    ]
    if containing:
        return max(containing, key=lambda lesion: lesion.area_px)
    return min(lesions, key=lambda le: (le.centroid[0] - cx) ** 2 + (le.centroid[1] - cy) ** 2)


def _centre(heatmap: np.ndarray) -> np.ndarray:
    h, w = heatmap.shape[:2]
    return heatmap[h // 3 : h - h // 3, w // 3 : w - w // 3]


def central_p_malignant(heatmap: np.ndarray) -> float:
    """p_malignant read from the central third of a (H, W, 3) heatmap: sum p_mal / sum
    P(lesion) there (0 when the centre holds no lesion probability at all)."""
    centre = _centre(heatmap)
    lesion = float(centre[..., 1:].sum(dtype=np.float64))
    return float(centre[..., 2].sum(dtype=np.float64)) / lesion if lesion > 0 else 0.0


def central_p_lesion(heatmap: np.ndarray) -> float:
    """Mean P(lesion) = 1 - p background over the central third of a (H, W, 3) heatmap."""
    return float(1.0 - _centre(heatmap)[..., 0].mean(dtype=np.float64))


def assess(detection: Detection) -> CloseupAssessment:
    """The close-up's verdict from the detection of its reduced photo (not yet lifted)."""
    height, width = detection.shape
    lesion = central_lesion(detection.lesions, (height, width))
    if lesion is None:
        heatmap = detection.heatmap
        return CloseupAssessment(
            lesion_id=None,
            p_malignant=central_p_malignant(heatmap),
            p_lesion=central_p_lesion(heatmap),
            analysed_size=(width, height),
        )
    return CloseupAssessment(
        lesion_id=lesion.id,
        p_malignant=float(lesion.p_malignant),
        p_lesion=float(lesion.score),
        analysed_size=(width, height),
    )


def _lift_lesion(lesion: Lesion, sx: float, sy: float, width: int, height: int) -> Lesion:
    """``lesion`` of the reduced photo in the pixels of a photo ``sx`` x ``sy`` times larger.

    Pixel centres map as x -> (x + 0.5) sx - 0.5; pixel edges (the bbox) as x -> x sx."""
    cx, cy = lesion.centroid
    x0, y0, x1, y1 = lesion.bbox
    contour = np.rint((lesion.contour + 0.5) * np.array([sx, sy]) - 0.5).astype(np.int32)
    contour[:, 0] = np.clip(contour[:, 0], 0, width - 1)
    contour[:, 1] = np.clip(contour[:, 1], 0, height - 1)
    return replace(
        lesion,
        centroid=((cx + 0.5) * sx - 0.5, (cy + 0.5) * sy - 0.5),
        bbox=(
            max(0, math.floor(x0 * sx)),
            max(0, math.floor(y0 * sy)),
            min(width, math.ceil(x1 * sx)),
            min(height, math.ceil(y1 * sy)),
        ),
        contour=contour,
        area_px=float(lesion.area_px) * sx * sy,
    )


def lift_detection(
    detection: Detection, height: int, width: int, closeup: CloseupAssessment | None = None
) -> Detection:
    """The detection of a reduced photo, in the pixels of the (``height``, ``width``) photo.

    Regions keep their ids, scores and p_malignant; centroids, bboxes, outlines and areas
    are scaled. The heatmap becomes a :class:`core.tiling.CoarseProbabilities` at stride
    :data:`LIFTED_STRIDE` of the photo, bilinearly resampled from the reduced photo's full
    heatmap (each value a convex mix, so every pixel's probabilities still sum to 1).
    """
    small_h, small_w = detection.shape
    sx, sy = width / small_w, height / small_h
    stride = LIFTED_STRIDE
    grid_w, grid_h = math.ceil(width / stride), math.ceil(height / stride)
    # grid pixel j is centred on photo pixel stride * j + (stride - 1) / 2, which is reduced
    # photo pixel (stride * j + stride / 2) / sx - 0.5
    matrix = np.float32(
        [[stride / sx, 0.0, stride / 2 / sx - 0.5], [0.0, stride / sy, stride / 2 / sy - 0.5]]
    )
    values = cv2.warpAffine(
        np.ascontiguousarray(detection.heatmap, dtype=np.float32),
        matrix,
        (grid_w, grid_h),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    ).reshape(grid_h, grid_w, -1)
    lesions = tuple(_lift_lesion(le, sx, sy, width, height) for le in detection.lesions)
    return Detection(
        heatmap=CoarseProbabilities(values, stride, height, width),
        lesions=lesions,
        model=detection.model,
        closeup=closeup,
    )
