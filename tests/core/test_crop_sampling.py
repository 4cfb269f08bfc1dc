"""Crops as weight matrices (core.crop_sampling): what a blur of the whole window and
bilinear sampling give, computed directly with scipy.ndimage; and what OpenCV 5's
GaussianBlur + warpAffine give, with which the shipped verifier's training crops were made.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import ndimage

from core.crop_sampling import (
    axis_bands,
    coarse_bands,
    densify,
    reflect101,
    round_to_uint8,
    sample,
    sample_many,
)
from core.tiling import upsample_window

SIZE = 32


def _opencv_crop(window: np.ndarray, cx: float, cy: float, side: float, blur: bool):
    """The reference: blur the whole window (when shrinking), then warp the crop out."""
    scale = SIZE / side
    if blur:
        window = cv2.GaussianBlur(window, (0, 0), 0.5 / scale)
    centre = (SIZE - 1) / 2.0
    matrix = np.float32([[scale, 0, centre - scale * cx], [0, scale, centre - scale * cy]])
    return cv2.warpAffine(
        window, matrix, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
    )


#: OpenCV 4 quantises warpAffine's sample positions to 1/32 px; OpenCV 5 samples at float
#: positions, as core.crop_sampling does (and as the verifier's training crops were made)
NEEDS_OPENCV_5 = pytest.mark.skipif(
    int(cv2.__version__.split(".")[0]) < 5, reason="OpenCV 4 quantises warp positions"
)


def _direct_crop(window: np.ndarray, cx: float, cy: float, side: float, taps: int):
    """The definition, computed the long way: blur the whole float window when shrinking
    (a Gaussian of ``taps`` sigma each side, reflected at the edges), then interpolate
    bilinearly at the crop's sample positions (reflected too)."""
    scale = SIZE / side
    planes = window.astype(np.float64).reshape(*window.shape[:2], -1)
    if scale < 0.75:
        sigma = 0.5 / scale
        radius = int(round(2 * taps * sigma + 1)) // 2
        kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
        kernel /= kernel.sum()
        for axis in (0, 1):
            planes = ndimage.correlate1d(planes, kernel, axis=axis, mode="mirror")
    offsets = (np.arange(SIZE) - (SIZE - 1) / 2.0) / scale
    ys, xs = np.meshgrid(cy + offsets, cx + offsets, indexing="ij")
    return np.stack(
        [
            ndimage.map_coordinates(planes[:, :, c], [ys, xs], order=1, mode="mirror")
            for c in range(planes.shape[2])
        ]
    )


def _weights(window: np.ndarray, cx: float, cy: float, side: float, blur: bool, taps: int):
    scale = np.array([SIZE / side])
    sigma = np.array([0.5 * side / SIZE if blur else 0.0])
    height, width = window.shape[:2]
    wx = densify(*axis_bands([width], [cx], scale, SIZE, sigma, taps), width)[0]
    wy = densify(*axis_bands([height], [cy], scale, SIZE, sigma, taps), height)[0]
    return wy, wx


# (centre x, centre y, side, blurred): inside, shrinking a lot, at a corner (reflection),
# enlarging (no blur), sub-pixel centres
CASES = [
    (60.0, 45.0, 80.0, True),
    (70.3, 52.8, 130.0, True),
    (3.2, 88.6, 60.0, True),
    (40.5, 30.25, 24.0, False),
    (0.0, 0.0, 40.0, False),
]


@pytest.mark.parametrize(("cx", "cy", "side", "blur"), CASES)
def test_a_crop_is_the_blur_then_the_interpolation(cx, cy, side, blur) -> None:
    rng = np.random.default_rng(2)
    window = rng.random((95, 140, 3)).astype(np.float32)
    for taps in (3, 4):
        wy, wx = _weights(window, cx, cy, side, blur, taps)
        expected = _direct_crop(window, cx, cy, side, taps)
        np.testing.assert_allclose(sample(window, wy, wx), expected, atol=2e-6)


@NEEDS_OPENCV_5
@pytest.mark.parametrize(("cx", "cy", "side", "blur"), CASES)
def test_a_float_crop_is_opencvs_blur_and_warp(cx, cy, side, blur) -> None:
    rng = np.random.default_rng(3)
    window = rng.random((95, 140)).astype(np.float32)
    wy, wx = _weights(window, cx, cy, side, blur, taps=4)  # OpenCV: 4 sigma for floats
    expected = _opencv_crop(window, cx, cy, side, blur)
    np.testing.assert_allclose(sample(window, wy, wx)[0], expected, atol=2e-6)


@NEEDS_OPENCV_5
@pytest.mark.parametrize(("cx", "cy", "side", "blur"), CASES)
def test_a_uint8_crop_is_within_one_grey_level_of_opencvs(cx, cy, side, blur) -> None:
    rng = np.random.default_rng(4)
    smooth = cv2.GaussianBlur(rng.random((95, 140, 3)).astype(np.float32), (0, 0), 2.0)
    window = np.clip(smooth * 1200 - 470, 0, 255).astype(np.uint8)  # edges and flat parts
    wy, wx = _weights(window, cx, cy, side, blur, taps=3)  # OpenCV: 3 sigma for uint8
    ours = round_to_uint8(sample(window, wy, wx)).transpose(1, 2, 0)
    expected = _opencv_crop(window, cx, cy, side, blur)
    difference = np.abs(ours.astype(int) - expected.astype(int))
    assert difference.max() <= 1
    if not blur:  # no fixed-point blur in between: the same rounding as OpenCV's
        assert difference.max() == 0


@NEEDS_OPENCV_5
def test_crops_of_a_coarse_map_read_its_upsampling() -> None:
    """A crop of the stride-4 map through coarse_bands = the same crop of the full-resolution
    upsampling (core.tiling.upsample_window) of its window."""
    rng = np.random.default_rng(5)
    grid = rng.random((30, 40)).astype(np.float32)  # a 160 x 120 photo at stride 4
    boxes = [(3, 5, 150, 118), (0, 0, 70, 64), (101, 40, 160, 120)]  # x0, y0, x1, y1
    cx, cy, side = np.array([77.0, 30.5, 131.2]), np.array([61.0, 29.0, 80.9]), 90.0
    n = len(boxes)
    scale, sigma = np.full(n, SIZE / side), np.full(n, 0.5 * side / SIZE)
    per_axis = []
    for axis in (0, 1):
        starts = np.array([box[axis] for box in boxes])
        lengths = np.array([box[axis + 2] - box[axis] for box in boxes])
        centres = (cx if axis == 0 else cy) - starts
        bands = axis_bands(lengths, centres, scale, SIZE, sigma, 4)
        cells, weights, first = coarse_bands(*bands, starts, 4, grid.shape[1 - axis])
        per_axis.append((densify(cells, weights, int(cells.max()) + 1), first))
    (wx, x0), (wy, y0) = per_axis
    crops = sample_many(grid, (y0, x0), wy, wx)[:, 0]
    for k, (bx0, by0, bx1, by1) in enumerate(boxes):
        window = upsample_window(grid[:, :, None], 4, bx0, by0, bx1 - bx0, by1 - by0)[:, :, 0]
        expected = _opencv_crop(window, cx[k] - bx0, cy[k] - by0, side, blur=True)
        np.testing.assert_allclose(crops[k], expected, atol=2e-6)


def test_reflection_is_opencvs() -> None:
    for length in (1, 2, 7):
        index = np.arange(-2 * length - 3, 3 * length + 3)
        expected = [cv2.borderInterpolate(int(i), length, cv2.BORDER_REFLECT_101) for i in index]
        assert reflect101(index, length).tolist() == expected


def test_sample_many_is_sample_of_each_window() -> None:
    rng = np.random.default_rng(6)
    photo = rng.integers(0, 256, (50, 60, 3), dtype=np.uint8)
    starts = np.array([[0, 0], [20, 31], [40, 45]])  # (row, column); the last runs off
    lengths = np.minimum(20, np.array(photo.shape[:2]) - starts)  # (N, 2) rows, columns
    scale, sigma = np.full(3, SIZE / 24.0), np.zeros(3)
    wy = densify(*axis_bands(lengths[:, 0], lengths[:, 0] / 2, scale, SIZE, sigma, 3), 20)
    wx = densify(*axis_bands(lengths[:, 1], lengths[:, 1] / 2, scale, SIZE, sigma, 3), 20)
    batch = sample_many(photo, (starts[:, 0], starts[:, 1]), wy, wx)
    for k, ((r, c), (h, w)) in enumerate(zip(starts, lengths, strict=True)):
        one = sample(photo[r : r + h, c : c + w], wy[k, :, :h], wx[k, :, :w])
        np.testing.assert_allclose(batch[k], one, rtol=1e-5, atol=1e-3)
