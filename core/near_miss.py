"""A second look at lesions the matching gate left unmatched.

Where skin has no texture the flow can be off by twice its usual slack, and a small lesion
carried there lands beyond the gate of its partner: the clinician is told of one lesion gone
and one new where nothing happened. A lesion of A and a lesion of B that are both left
unmatched are allowed to pair when

- the carried distance is within the gate with its slack for the flow's error raised from
  2 % to :data:`NEAR_MISS_FRACTION` of the diagonal,
- their areas (A's corrected for the flow's scale) agree within :data:`NEAR_MISS_AREA_RATIO`,
- and the flow does *not* explain the lesion's surroundings (:func:`surroundings_agreement`
  below :data:`MAX_SURROUNDINGS_NCC`): where the flow lines up the skin around the lesion,
  it is right there, and a lesion that is not where it says is gone, not misplaced.

Chosen on validation pairs (216 synthetic pairs of seeds 4002-4006, 56 known-deformation pairs
of the real tiles, seeds 1234 and 4321): 14 small lesions were lost to a flow error of 2-3.5 %
of the diagonal, their sizes agreed within 1.3x in radius, and their surroundings correlated
at 0.24 or less (plain skin gives the flow nothing to hold on to). The pass recovered 10 of
them; the one wrong pairing it made (a gone lesion and a new one on a real tile) had
surroundings the flow lined up at 0.64. A slack of 0.04-0.05 started pairing gone lesions with
new ones on synthetic pairs too.

Coordinates: (x, y) pixels; A positions in photo A, carried and B positions in photo B.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from core.flow_refinement import local_contrast

#: Slack of the second look for the flow's error, as a fraction of B's diagonal (the gate's
#: is :data:`core.matching.GATE_MIN_FRACTION`).
NEAR_MISS_FRACTION = 0.035
#: Largest ratio of the two lesions' areas (larger over smaller) that may pair.
NEAR_MISS_AREA_RATIO = 2.0
#: Largest correlation of the surroundings under the flow at which the flow may be doubted.
MAX_SURROUNDINGS_NCC = 0.4
#: Half-side of the surroundings' window: this fraction of A's diagonal, at least 6 radii.
SURROUNDINGS_FRACTION = 0.05
#: Side of the local-contrast window, as a fraction of A's long side (at least 5 px).
CONTRAST_FRACTION = 0.012
#: Samples across half the window: larger windows are read in blocks (a 12 MP photo's
#: window of 600 px in 4 px blocks), so a lesion costs about the same on any photo size.
SAMPLES_PER_HALF_WINDOW = 80


def _grey_blocks(image: np.ndarray, step: int) -> np.ndarray:
    """uint8 grey levels of an (h, w, 3) RGB crop, averaged over step x step blocks."""
    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    if step == 1:
        return grey
    size = (grey.shape[1] // step, grey.shape[0] // step)
    return cv2.resize(grey[: size[1] * step, : size[0] * step], size, interpolation=cv2.INTER_AREA)


def surroundings_agreement(
    image_a: np.ndarray,
    image_b: np.ndarray,
    flow: np.ndarray,
    centroid_a: tuple[float, float],
    radius: float,
    offset: tuple[float, float],
) -> float:
    """How well ``flow`` lines up the skin around a lesion of A with photo B.

    image_a, image_b: uint8 (H, W, 3) RGB; flow: float32 (H_A, W_A, 2) A -> B; centroid_a:
    the lesion's (x, y) in A; radius: the larger lesion radius of the candidate pair (px);
    offset: (dx, dy) from the lesion's carried position to the candidate B lesion.
    Returns the normalised cross-correlation in [-1, 1] of A's local contrast and B's carried
    back by the flow, over a window around the lesion with both lesions left out (the A
    lesion, and where the flow brings the B lesion); NaN when too little of it lies in B.
    """
    h, w = flow.shape[:2]
    window = max(5, int(CONTRAST_FRACTION * max(h, w)) | 1)
    half = max(6.0 * radius, SURROUNDINGS_FRACTION * float(np.hypot(h, w))) + window
    # a large photo is judged on a coarser grid: the same skin, a bounded cost per lesion
    step = max(1, int(round(half / SAMPLES_PER_HALF_WINDOW)))
    window = max(3, int(window / step) | 1)
    cx, cy = centroid_a
    x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
    nx = (int(min(w, cx + half + 1)) - x0) // step
    ny = (int(min(h, cy + half + 1)) - y0) // step
    if nx < 3 * window or ny < 3 * window:
        return float("nan")
    # sample (i, j) is the mean of A's step x step block at (x0 + j step, y0 + i step)
    centre = (step - 1) / 2.0
    xs = (x0 + centre + step * np.arange(nx, dtype=np.float32))[None, :].repeat(ny, 0)
    ys = (y0 + centre + step * np.arange(ny, dtype=np.float32))[:, None].repeat(nx, 1)
    at = flow[y0 + step // 2 : y0 + ny * step : step, x0 + step // 2 : x0 + nx * step : step]
    map_x, map_y = xs + at[..., 0], ys + at[..., 1]
    h_b, w_b = image_b.shape[:2]
    inside_b = (map_x >= 0) & (map_y >= 0) & (map_x <= w_b - 1) & (map_y <= h_b - 1)
    if not inside_b.any():
        return float("nan")
    # only the part of B the window maps to is read (photos may be 12 MP and more)
    bx0, by0 = int(map_x[inside_b].min()), int(map_y[inside_b].min())
    bx1 = min(w_b, bx0 + step * ((int(map_x[inside_b].max()) + 2 - bx0) // step + 1))
    by1 = min(h_b, by0 + step * ((int(map_y[inside_b].max()) + 2 - by0) // step + 1))
    gray_a = _grey_blocks(image_a[y0 : y0 + ny * step, x0 : x0 + nx * step], step)
    gray_b = _grey_blocks(image_b[by0:by1, bx0:bx1], step)
    b_at_a = cv2.remap(
        gray_b,
        (map_x - bx0 - centre) / step,
        (map_y - by0 - centre) / step,
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    keep_out = 1.5 * radius + 2.0
    keep = (
        inside_b
        & (np.hypot(xs - cx, ys - cy) > keep_out)
        & (np.hypot(xs - cx - offset[0], ys - cy - offset[1]) > keep_out)
    )
    # the contrast window's border is biased: judge only the window's inner part
    keep[:window] = keep[-window:] = False
    keep[:, :window] = keep[:, -window:] = False
    if keep.sum() < 50:
        return float("nan")
    a = local_contrast(gray_a, window)[keep].astype(np.float64)
    b = local_contrast(b_at_a, window)[keep].astype(np.float64)
    a -= a.mean()
    b -= b.mean()
    norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / norm) if norm > 0 else 0.0


def near_miss_allowed(
    distance: np.ndarray,
    wide_gate: np.ndarray,
    area_a: np.ndarray,
    area_b: np.ndarray,
    unmatched_a: np.ndarray,
    unmatched_b: np.ndarray,
    surroundings: Callable[[int, int], float],
) -> np.ndarray:
    """bool (N, M): which (A lesion, B lesion) pairs the second look allows.

    distance: float (N, M) carried distance (px of B); wide_gate: float (N, M) the matching
    gate with :data:`NEAR_MISS_FRACTION` as its slack; area_a: float (N,) A's areas times the
    flow's local scale; area_b: float (M,); unmatched_a (N,), unmatched_b (M,): bool, left
    unmatched by the gate; surroundings(i, j): the :func:`surroundings_agreement` of the pair,
    asked only for pairs that pass the other tests.
    """
    larger = np.maximum(area_a[:, None], area_b[None])
    smaller = np.maximum(np.minimum(area_a[:, None], area_b[None]), 1e-6)
    allowed = (
        (distance <= wide_gate)
        & (larger / smaller < NEAR_MISS_AREA_RATIO)
        & unmatched_a[:, None]
        & unmatched_b[None]
    )
    for i, j in zip(*np.nonzero(allowed), strict=True):
        # NaN (too little of the window in B) leaves the flow in doubt too
        allowed[i, j] = not surroundings(int(i), int(j)) >= MAX_SURROUNDINGS_NCC
    return allowed
