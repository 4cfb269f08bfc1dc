"""Cheap, seeded noise fields for procedural textures.

Noise is drawn on a coarse grid (one value per feature cell), smoothed there and
interpolated to the target size in one ``cv2.warpAffine`` call, so a full-resolution
field costs about one pass over the image whatever its feature size. Every function
takes an explicit ``numpy.random.Generator``; none keeps state.

Coordinates: x right, y down, pixel centres at integer coordinates.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# Standard deviation of unit white noise after the grid smoothing below (sigma 0.7 cells)
# and bilinear interpolation; dividing by it gives fields of standard deviation ~1.
_SMOOTH_SIGMA = 0.7
_SMOOTHED_STD = 0.355


def smooth_noise(
    rng: np.random.Generator,
    height: int,
    width: int,
    cell_px: float,
    *,
    stretch: float = 1.0,
    angle: float = 0.0,
) -> np.ndarray:
    """Smooth random field with features about ``cell_px`` pixels across.

    Args:
        rng: source of randomness.
        height, width: output size in pixels.
        cell_px: feature size across, in pixels (values below 1.5 give per-pixel grain).
        stretch: features are ``stretch`` times longer along ``angle`` than across.
        angle: direction of elongation in radians (0 = along +x, pi/2 = along +y).

    Returns:
        float32 (height, width) field, mean ~0, standard deviation ~1.
    """
    if cell_px < 1.5 and stretch <= 1.0:
        grain = rng.random((height, width), dtype=np.float32)
        grain -= 0.5
        grain *= 3.46  # uniform on [-0.5, 0.5] has std 1/sqrt(12)
        return grain
    cell_across = max(cell_px, 1.0)
    cell_along = max(cell_px * stretch, 1.0)
    c, s = math.cos(angle), math.sin(angle)
    # extent of the frame along and across the elongation: the grid must cover it
    extent_along = abs(c) * width + abs(s) * height
    extent_across = abs(s) * width + abs(c) * height
    grid_w = int(extent_along / cell_along) + 5
    grid_h = int(extent_across / cell_across) + 5
    grid = rng.random((grid_h, grid_w), dtype=np.float32)
    grid -= 0.5
    grid = cv2.GaussianBlur(grid, (0, 0), _SMOOTH_SIGMA, borderType=cv2.BORDER_REFLECT)
    grid *= 1.0 / (_SMOOTHED_STD * 0.2887)  # uniform noise has std 1/sqrt(12)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    jx, jy = rng.random(2)
    # destination pixel -> grid coordinates: rotate into (along, across), scale by the cells.
    tx = grid_w / 2.0 + jx - (c * cx + s * cy) / cell_along
    ty = grid_h / 2.0 + jy - (-s * cx + c * cy) / cell_across
    matrix = np.array(
        [[c / cell_along, s / cell_along, tx], [-s / cell_across, c / cell_across, ty]],
        dtype=np.float64,
    )
    return cv2.warpAffine(
        grid,
        matrix,
        (width, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT,
    )


def fractal_noise(
    rng: np.random.Generator,
    height: int,
    width: int,
    cell_px: float,
    *,
    octaves: int = 3,
    persistence: float = 0.5,
) -> np.ndarray:
    """Sum of ``octaves`` smooth fields, each half the cell size and ``persistence`` times
    the amplitude of the one before. float32 (height, width), standard deviation ~1."""
    total = np.zeros((height, width), np.float32)
    amplitude, norm = 1.0, 0.0
    for octave in range(octaves):
        total += amplitude * smooth_noise(rng, height, width, cell_px / (2**octave))
        norm += amplitude**2
        amplitude *= persistence
    total *= 1.0 / math.sqrt(norm)
    return total


def upsample(field: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize of a low-resolution field (2-D or HxWxC) to ``(height, width)``.

    Pixel centres are aligned (OpenCV's half-pixel convention), so a field computed at
    full-resolution coordinates ``(i + 0.5) * f - 0.5`` lands where it belongs.
    """
    return cv2.resize(field, (width, height), interpolation=cv2.INTER_LINEAR)


def upsample_planes(field: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize of a low-resolution colour field (h, w, C) to planes (C, height, width).

    Full-resolution colour is kept planar because per-pixel weights then broadcast over
    the leading axis, which numpy does about ten times faster than over a trailing one.
    """
    out = np.empty((field.shape[2], height, width), np.float32)
    for c in range(field.shape[2]):
        cv2.resize(
            np.ascontiguousarray(field[:, :, c], dtype=np.float32),
            (width, height),
            dst=out[c],
            interpolation=cv2.INTER_LINEAR,
        )
    return out


def lowres_grid(height: int, width: int, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Full-resolution coordinates (x, y) of the pixel centres of a grid ``factor`` times
    coarser than ``(height, width)``; each float32 of shape (ceil(h/f), ceil(w/f))."""
    gh, gw = -(-height // factor), -(-width // factor)
    xs = (np.arange(gw, dtype=np.float32) + 0.5) * (width / gw) - 0.5
    ys = (np.arange(gh, dtype=np.float32) + 0.5) * (height / gh) - 0.5
    return np.meshgrid(xs, ys)


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    """Hermite step from 0 (x <= edge0) to 1 (x >= edge1), elementwise, float32."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0).astype(np.float32, copy=False)
    return t * t * (3.0 - 2.0 * t)
