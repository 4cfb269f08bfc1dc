"""Small resampled crops as two matrix products: anti-alias blur and bilinear sampling
folded into one weight matrix per axis, built for many crops at once.

A crop of ``n x n`` pixels taken from an ``h x w`` window by "Gaussian blur (when
shrinking), then bilinear sampling" is linear and separable in the window's pixels::

    crop = Wy @ window @ Wx.T        Wy: (n, h), Wx: (n, w)

so it needs only the blurred values that the samples read, not a blur of the whole
window. The weights follow OpenCV's definitions (kernel size and normalisation, float
sample positions, BORDER_REFLECT_101 at the window's edges), so a float window gives what
``cv2.GaussianBlur`` then ``cv2.warpAffine`` give, to about 1e-6. OpenCV blurs uint8
windows in 8-bit fixed point and rounds the blurred window; here the blur is exact and only
the crop is rounded, so a pixel of a uint8 crop can differ from OpenCV's by one grey level.

Coordinates: pixel ``i`` of an axis is centred on ``i`` (OpenCV's convention).
"""

from __future__ import annotations

import numpy as np


def kernel_taps(sigmas: np.ndarray, taps_per_sigma: int) -> np.ndarray:
    """int64 (N,) taps of ``cv2.GaussianBlur(src, (0, 0), sigma)`` per sigma (0: one tap):
    round(2 * taps_per_sigma * sigma + 1) | 1, where OpenCV uses taps_per_sigma 3 for
    uint8 images and 4 for float ones."""
    taps = np.rint(2.0 * taps_per_sigma * np.asarray(sigmas, np.float64) + 1.0).astype(np.int64)
    return np.where(np.asarray(sigmas) > 0, taps | 1, 1)


def gaussian_kernels(sigmas: np.ndarray, taps_per_sigma: int) -> np.ndarray:
    """float64 (N, K) normalised Gaussians of :func:`kernel_taps` taps, centred in K (the
    largest), zero beyond each one's own taps; sigma 0 gives the identity kernel."""
    sigmas = np.asarray(sigmas, np.float64)
    taps = kernel_taps(sigmas, taps_per_sigma)
    width = int(taps.max()) if taps.size else 1
    offsets = np.arange(width, dtype=np.float64) - width // 2
    safe = np.where(sigmas > 0, sigmas, 1.0)[:, None]
    kernels = np.exp(-0.5 * (offsets[None, :] / safe) ** 2)
    kernels = np.where(np.abs(offsets)[None, :] <= (taps // 2)[:, None], kernels, 0.0)
    return kernels / kernels.sum(axis=1, keepdims=True)


def reflect101(index: np.ndarray, length: np.ndarray | int) -> np.ndarray:
    """Indices folded into [0, length) as BORDER_REFLECT_101 folds them (... 2 1 | 0 1 2 ...);
    ``length`` broadcasts against ``index``."""
    length = np.asarray(length)
    period = np.maximum(2 * (length - 1), 1)
    index = np.abs(index) % period
    return np.where(index >= length, period - index, index)


def axis_bands(
    lengths: np.ndarray,
    centres: np.ndarray,
    scales: np.ndarray,
    size: int,
    sigmas: np.ndarray,
    taps_per_sigma: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Sparse weights of one axis of N crops of ``size`` pixels.

    Crop k's pixel i samples its window (``lengths[k]`` pixels) at
    ``centres[k] + (i - (size - 1) / 2) / scales[k]`` (bilinear), after a Gaussian blur of
    ``sigmas[k]`` (0: none); both reflect at the window's edges.
    Returns (taps int64 (N, size, B), weights float64 (N, size, B)): crop pixel i of crop
    k is ``sum_b weights[k, i, b] * window_k[taps[k, i, b]]``; weights sum to 1.
    """
    lengths = np.asarray(lengths, np.int64)
    offsets = (np.arange(size, dtype=np.float64) - (size - 1) / 2.0)[None, :]
    position = np.asarray(centres, np.float64)[:, None] + offsets / np.asarray(scales)[:, None]
    first = np.floor(position)
    frac = (position - first)[..., None]  # (N, size, 1)
    # blur then interpolate = interpolate the kernel: the band of window pixels
    # first - R .. first + 1 + R, weighted (1 - frac) * k[b] + frac * k[b - 1]
    kernels = gaussian_kernels(sigmas, taps_per_sigma)[:, None, :]  # (N, 1, K)
    pad = np.zeros_like(kernels[..., :1])
    weights = (1.0 - frac) * np.concatenate([kernels, pad], axis=2) + frac * np.concatenate(
        [pad, kernels], axis=2
    )  # (N, size, K + 1)
    reach = np.arange(kernels.shape[2] + 1) - kernels.shape[2] // 2
    taps = first.astype(np.int64)[..., None] + reach
    # only crops near a window's edge reach past it: fold theirs alone
    limit = lengths[:, None, None]
    folds = ((taps < 0) | (taps >= limit)).any(axis=(1, 2))
    if folds.any():
        taps[folds] = reflect101(taps[folds], limit[folds])
    return taps, weights


def coarse_bands(
    taps: np.ndarray, weights: np.ndarray, starts: np.ndarray, stride: int, coarse_length: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same crops read from a map at ``stride`` instead of full resolution.

    Window k begins at full-resolution pixel ``starts[k]``; the map's pixel j is centred on
    ``stride * j + (stride - 1) / 2`` and is replicated beyond its ``coarse_length`` pixels
    (the bilinear upsampling of :func:`core.tiling.upsample_window`).
    Returns (cells int64 (N, n, 2B) counted from first, weights float64 (N, n, 2B),
    first int64 (N,): the first map pixel crop k reads).
    """
    position = (taps + np.asarray(starts, np.int64)[:, None, None] + 0.5) / stride - 0.5
    below = np.floor(position)
    frac = position - below
    cells = np.clip(np.concatenate([below, below + 1], axis=2), 0, coarse_length - 1)
    cells = cells.astype(np.int64)
    first = cells.reshape(len(cells), -1).min(axis=1)
    mixed = np.concatenate([weights * (1.0 - frac), weights * frac], axis=2)
    return cells - first[:, None, None], mixed, first


def densify(taps: np.ndarray, weights: np.ndarray, length: int) -> np.ndarray:
    """float32 (N, n, length) weight matrices of sparse (N, n, B) taps and weights
    (every tap below ``length``)."""
    count, size, _ = taps.shape
    index = (np.arange(count * size).reshape(count, size, 1) * length + taps).ravel()
    flat = np.bincount(index, weights=weights.ravel(), minlength=count * size * length)
    return flat.reshape(count, size, length).astype(np.float32)


def sample(window: np.ndarray, wy: np.ndarray, wx: np.ndarray) -> np.ndarray:
    """float32 (C, n, n) crop ``wy @ window @ wx.T`` of a (h, w) or (h, w, C) window;
    wy (n, h), wx (n, w) float32."""
    h, w = window.shape[:2]
    planes = window.reshape(h, w, -1)
    channels = planes.shape[2]
    # rows first: (n, h) @ (h, w*C), then each channel's (n, w) @ (w, n)
    rows = wy @ planes.reshape(h, w * channels).astype(np.float32, copy=False)
    return rows.reshape(-1, w, channels).transpose(2, 0, 1) @ wx.T


def sample_many(
    source: np.ndarray, firsts: tuple[np.ndarray, np.ndarray], wy: np.ndarray, wx: np.ndarray
) -> np.ndarray:
    """float32 (N, C, n, n) crops of one (H, W) or (H, W, C) ``source`` in one batch (for
    many small windows): crop k reads the window whose first pixel is (row firsts[0][k],
    column firsts[1][k]) with weights wy[k] (n, h) and wx[k] (n, w) as :func:`sample`
    does. Window pixels beyond the source's edges repeat them and must weigh 0."""
    rows = np.minimum(firsts[0][:, None] + np.arange(wy.shape[2]), source.shape[0] - 1)
    cols = np.minimum(firsts[1][:, None] + np.arange(wx.shape[2]), source.shape[1] - 1)
    windows = source[rows[:, :, None], cols[:, None, :]].astype(np.float32)
    count, h, w = windows.shape[:3]
    planes = windows.reshape(count, h, w, -1)
    mixed = wy @ planes.reshape(count, h, -1)  # (N, n, w*C)
    mixed = mixed.reshape(count, -1, w, planes.shape[3]).transpose(0, 3, 1, 2)
    return mixed @ wx[:, None].transpose(0, 1, 3, 2)


def round_to_uint8(values: np.ndarray) -> np.ndarray:
    """Values rounded half to even and saturated to uint8, as OpenCV's saturate_cast."""
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)
