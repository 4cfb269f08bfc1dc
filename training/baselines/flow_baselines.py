"""Classical flow baselines for the tracker, all with the same signature.

Each function takes two uint8 (h, w, 3) RGB photos of the same size (the working
resolution) and returns a float32 (h, w, 2) flow, A pixel + flow = its position in B.
Run them end to end with :func:`core.tracking.estimate_flow_with`, as the tracker is run.

- ``dis_flow``: OpenCV DIS optical flow, medium preset.
- ``farneback_flow``: OpenCV Farneback, a 6-level pyramid for large motion.
- ``sift_homography_flow``: SIFT keypoints, ratio-test matching, RANSAC homography; the
  flow of the homography (one global projective motion, no non-rigid part).
- ``dense_sift_flow``: in the spirit of SIFT Flow (Liu et al. 2011): dense SIFT descriptors
  on a 4-pixel grid, matched coarse to fine (a level at 1/4 resolution, or less reduced for
  small images, searching a quarter of the width, then the working level searching +-3 cells
  around the upsampled solution, refined to sub-cell by a parabola through the costs);
  smoothness comes from aggregating the matching cost over neighbouring cells (a box
  filter of the cost volume) and a median filter of the winning displacements, instead of
  SIFT Flow's belief propagation, to keep it fast.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
from scipy.ndimage import median_filter

FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def dis_flow(image_a: np.ndarray, image_b: np.ndarray) -> np.ndarray:
    """OpenCV DIS optical flow (medium preset) on grey levels."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(_gray(image_a), _gray(image_b), None).astype(np.float32)


def farneback_flow(image_a: np.ndarray, image_b: np.ndarray) -> np.ndarray:
    """OpenCV Farneback flow (pyramid 6 levels, window 21, 5 iterations, Gaussian window)."""
    return cv2.calcOpticalFlowFarneback(
        _gray(image_a), _gray(image_b), None, 0.5, 6, 21, 5, 7, 1.5, cv2.OPTFLOW_FARNEBACK_GAUSSIAN
    ).astype(np.float32)


def homography_flow(homography: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Flow (h, w, 2) of a 3x3 homography mapping A pixels to B pixels."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    pts = np.stack([xs, ys, np.ones_like(xs)], -1) @ homography.T
    z = np.where(np.abs(pts[..., 2]) < 1e-9, 1e-9, pts[..., 2])
    return np.stack([pts[..., 0] / z - xs, pts[..., 1] / z - ys], -1).astype(np.float32)


def sift_homography_flow(image_a: np.ndarray, image_b: np.ndarray) -> np.ndarray:
    """SIFT + ratio test (0.8) + RANSAC homography (3 px); zero flow when it fails."""
    sift = cv2.SIFT_create(nfeatures=4000)
    ka, da = sift.detectAndCompute(_gray(image_a), None)
    kb, db = sift.detectAndCompute(_gray(image_b), None)
    shape = image_a.shape[:2]
    if da is None or db is None or len(ka) < 4 or len(kb) < 4:
        return np.zeros(shape + (2,), np.float32)
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(da, db, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < 0.8 * p[1].distance]
    if len(good) < 4:
        return np.zeros(shape + (2,), np.float32)
    src = np.float32([ka[m.queryIdx].pt for m in good])
    dst = np.float32([kb[m.trainIdx].pt for m in good])
    homography, inliers = cv2.findHomography(src, dst, cv2.RANSAC, 3.0)
    if homography is None or int(inliers.sum()) < 8 or not plausible_homography(homography, shape):
        return np.zeros(shape + (2,), np.float32)
    return homography_flow(homography, shape)


def plausible_homography(homography: np.ndarray, shape: tuple[int, int]) -> bool:
    """Whether ``homography`` could be a change of camera between two visits.

    A RANSAC fit on few or clustered matches can fold the image (a corner behind the
    camera) or blow it up a thousandfold; such a fit gives flows of 1e10 px, so it is
    refused: every corner keeps a positive depth, the image stays a convex, unmirrored
    quadrilateral and its area changes by at most 10x either way.
    """
    h, w = shape
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [w - 1, h - 1, 1], [0, h - 1, 1]], np.float64)
    mapped = corners @ np.asarray(homography, np.float64).T
    if np.any(mapped[:, 2] <= 1e-6):
        return False
    quad = (mapped[:, :2] / mapped[:, 2:]).astype(np.float32)
    if not cv2.isContourConvex(quad.reshape(-1, 1, 2)):
        return False
    source = corners[:, :2].astype(np.float32)
    # a signed area of the other sign means a mirrored image, which no camera produces
    ratio = cv2.contourArea(quad, oriented=True) / cv2.contourArea(source, oriented=True)
    return 0.1 <= ratio <= 10.0


# ----------------------------------------------------------------------------- dense SIFT flow

_STEP = 4  # grid step of the dense descriptors, pixels


def dense_sift(gray: np.ndarray, step: int = _STEP, size: float = 12.0) -> np.ndarray:
    """SIFT descriptors on a grid: float32 (rows, cols, 128), cell (i, j) centred on
    pixel (j * step + step / 2, i * step + step / 2), L2-normalised."""
    h, w = gray.shape
    rows, cols = h // step, w // step
    kps = [
        cv2.KeyPoint(float(j * step + step / 2), float(i * step + step / 2), size, 0)
        for i in range(rows)
        for j in range(cols)
    ]
    _, desc = cv2.SIFT_create().compute(gray, kps)
    desc = desc.reshape(rows, cols, 128).astype(np.float32)
    return desc / (np.linalg.norm(desc, axis=2, keepdims=True) + 1e-6)


def _match(
    da: np.ndarray,
    db: np.ndarray,
    init: np.ndarray,
    radius: int,
    smooth: int,
    subcell: bool = False,
) -> np.ndarray:
    """Per-cell displacement (rows, cols, 2) float32 (dx, dy) in cells = init + best offset
    within +-radius cells (to a fraction of a cell by a parabola when ``subcell``); the cost
    (1 - cosine) is box-filtered over smooth x smooth cells."""
    rows, cols = da.shape[:2]
    ii, jj = np.mgrid[0:rows, 0:cols]
    offsets = [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]
    costs = np.empty((len(offsets), rows, cols), np.float32)
    for k, (dy, dx) in enumerate(offsets):
        ti = ii + init[..., 1] + dy
        tj = jj + init[..., 0] + dx
        inside = (ti >= 0) & (ti < rows) & (tj >= 0) & (tj < cols)
        sampled = db[np.clip(ti, 0, rows - 1), np.clip(tj, 0, cols - 1)]
        cost = 1.0 - (da * sampled).sum(2)
        cost[~inside] = 2.0
        costs[k] = cv2.blur(cost, (smooth, smooth), borderType=cv2.BORDER_REFLECT)
    best = costs.argmin(0)
    offs = np.array(offsets)[best]  # (rows, cols, 2) as (dy, dx)
    disp = (init + offs[..., ::-1]).astype(np.float32)
    if subcell:  # parabola through the best cost and its two neighbours, per axis
        side = 2 * radius + 1
        grid = costs.reshape(side, side, rows, cols)
        by, bx = best // side, best % side
        for axis, b_ax in enumerate((bx, by)):
            lo = np.clip(b_ax - 1, 0, side - 1)
            hi = np.clip(b_ax + 1, 0, side - 1)
            ky, kx = (by, lo) if axis == 0 else (lo, bx)
            c_lo = grid[ky, kx, ii, jj]
            ky, kx = (by, hi) if axis == 0 else (hi, bx)
            c_hi = grid[ky, kx, ii, jj]
            c0 = grid[by, bx, ii, jj]
            denom = c_lo - 2 * c0 + c_hi
            ok = (b_ax > 0) & (b_ax < side - 1) & (denom > 1e-6)
            step = np.where(ok, 0.5 * (c_lo - c_hi) / np.where(ok, denom, 1.0), 0.0)
            disp[..., axis] += np.clip(step, -0.5, 0.5)
    return median_filter(disp, size=(3, 3, 1), mode="nearest")


def dense_sift_flow(image_a: np.ndarray, image_b: np.ndarray) -> np.ndarray:
    """Dense-SIFT coarse-to-fine flow (see the module docstring)."""
    h, w = image_a.shape[:2]
    ga, gb = _gray(image_a), _gray(image_b)
    factor = int(np.clip(w // 128, 1, 4))  # the coarse level keeps at least 128 columns
    small = (w // factor, h // factor)
    ca = dense_sift(cv2.resize(ga, small, interpolation=cv2.INTER_AREA))
    cb = dense_sift(cv2.resize(gb, small, interpolation=cv2.INTER_AREA))
    radius = int(np.ceil(0.25 * w / (_STEP * factor)))  # a quarter of the width
    coarse = _match(ca, cb, np.zeros(ca.shape[:2] + (2,), int), radius=radius, smooth=5)
    coarse = np.round(coarse).astype(int)
    fa, fb = dense_sift(ga), dense_sift(gb)
    rows, cols = fa.shape[:2]
    init = cv2.resize(
        coarse.astype(np.float32) * factor, (cols, rows), interpolation=cv2.INTER_NEAREST
    )
    fine = _match(fa, fb, np.round(init).astype(int), radius=3, smooth=3, subcell=True)
    flow_cells = cv2.GaussianBlur(fine.astype(np.float32) * _STEP, (0, 0), 1.0)
    # cell centres sit at j * step + step / 2, where a linear resize puts them
    return cv2.resize(flow_cells, (w, h), interpolation=cv2.INTER_LINEAR)


BASELINES: dict[str, FlowFn] = {
    "DIS (medium)": dis_flow,
    "Farneback": farneback_flow,
    "SIFT+RANSAC homography": sift_homography_flow,
    "dense SIFT flow": dense_sift_flow,
}
