"""A second pass of the flow network on photo B pre-aligned to photo A.

Between visits the patient turns and the camera moves: displacements of a sixth of the
photo with ten degrees of rotation are common, and a network that matches features in a
local window loses some of them (the whole flow is then wrong, not just imprecise). But its
first flow is usually right on enough of the photo to say how B is turned, shifted and scaled
as a whole. Pre-alignment fits that similarity to the first flow (RANSAC, so the wrong part
does not count), warps B by it so that what is left is small, runs the network again and
composes the two. The second flow replaces the first only when it explains the pair better
(brightness-blind photometric error over the photo), so a pair the network already got right
stays as it was.

Everything here works at the working resolution: photos uint8 (h, w, 3) RGB of one size,
flows float32 (h, w, 2), A pixel (x, y) + flow[y, x] = its position in B; x right, y down.
No torch, no Qt.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from core.flow_refinement import local_contrast

#: A flow function at working resolution (see :data:`core.tracking.FlowFn`).
FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]

#: RANSAC inlier distance of the similarity fit, as a fraction of the diagonal.
FIT_TOLERANCE_FRACTION = 0.02
#: Grid step (pixels) of the flow samples the similarity is fitted to.
FIT_STEP = 4
#: Side of the window of the photometric error's local contrast, as a fraction of the long
#: side: wide enough that lighting changes between visits cancel out.
CONTRAST_WINDOW_FRACTION = 0.03
#: A flow that carries less than this share of A into B is not compared (a wrong flow that
#: throws most of A out of the frame must not win by having few pixels to explain).
MIN_OVERLAP = 0.2


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs, ys


def fit_similarity(flow: np.ndarray) -> np.ndarray | None:
    """float64 (2, 3) similarity S (rotation, uniform scale, shift) with p + flow(p) ~ S p,
    fitted by RANSAC to a grid of flow samples; None when no fit is found."""
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[0:h:FIT_STEP, 0:w:FIT_STEP]
    source = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
    target = source + flow[::FIT_STEP, ::FIT_STEP].reshape(-1, 2).astype(np.float32)
    tolerance = FIT_TOLERANCE_FRACTION * float(np.hypot(h, w))
    similarity, _ = cv2.estimateAffinePartial2D(
        source, target, method=cv2.RANSAC, ransacReprojThreshold=tolerance
    )
    return similarity


def compose_with_similarity(residual: np.ndarray, similarity: np.ndarray) -> np.ndarray:
    """The flow A -> B of a residual flow A -> B' where B'(q) = B(S q): p -> S(p + r(p)) - p."""
    xs, ys = _grid(*residual.shape[:2])
    qx, qy = xs + residual[..., 0], ys + residual[..., 1]
    s = similarity.astype(np.float32)
    out = np.empty_like(residual, dtype=np.float32)
    out[..., 0] = s[0, 0] * qx + s[0, 1] * qy + s[0, 2] - xs
    out[..., 1] = s[1, 0] * qx + s[1, 1] * qy + s[1, 2] - ys
    return out


def photometric_error(image_a: np.ndarray, image_b: np.ndarray, flow: np.ndarray) -> float:
    """Mean absolute difference of A's local contrast and B's carried back by ``flow``, over
    the A pixels the flow keeps inside B; inf when fewer than :data:`MIN_OVERLAP` stay."""
    h, w = flow.shape[:2]
    xs, ys = _grid(h, w)
    mx, my = xs + flow[..., 0], ys + flow[..., 1]
    inside = (mx >= 0) & (my >= 0) & (mx <= w - 1) & (my <= h - 1)
    if inside.mean() < MIN_OVERLAP:
        return float("inf")
    window = max(5, int(CONTRAST_WINDOW_FRACTION * max(h, w)) | 1)
    gray_b = cv2.cvtColor(image_b, cv2.COLOR_RGB2GRAY)
    b_at_a = cv2.remap(gray_b, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    contrast_a = local_contrast(cv2.cvtColor(image_a, cv2.COLOR_RGB2GRAY), window)
    return float(np.abs(contrast_a - local_contrast(b_at_a, window))[inside].mean())


def prealigned(flow_fn: FlowFn) -> FlowFn:
    """``flow_fn`` run twice: on (A, B), then on (A, B warped by the similarity the first flow
    implies); returns the composed second flow where its photometric error is lower, else the
    first."""

    def run(image_a: np.ndarray, image_b: np.ndarray) -> np.ndarray:
        first = np.asarray(flow_fn(image_a, image_b), np.float32)
        similarity = fit_similarity(first)
        if similarity is None:
            return first
        h, w = first.shape[:2]
        aligned_b = cv2.warpAffine(
            image_b,
            similarity,
            (w, h),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        second = compose_with_similarity(
            np.asarray(flow_fn(image_a, aligned_b), np.float32), similarity
        )
        if photometric_error(image_a, image_b, second) < photometric_error(image_a, image_b, first):
            return second
        return first

    return run
