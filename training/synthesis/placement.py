"""Where to put a lesion: local feature matching between its skin ring and body skin.

As in Li et al. (arXiv 1612.01074), a lesion goes where the body's skin looks like the skin
around the lesion in its own photo. The descriptor of a skin region is its CIE Lab mean and
standard deviation and its texture (mean |Sobel| gradient of the grey level); body descriptors are
computed once per photo on a coarse grid (``SkinFeatures``), the lesion's from the ring of
skin around its mask. A position is drawn at random among the best-matching candidates
that lie inside the skin mask (with a margin from its border) and away from other lesions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

#: Coarse grid step of the body descriptors, in pixels.
GRID = 4
#: Descriptor weights: L mean, a mean, b mean, L std, texture.
_WEIGHTS = np.array([1.0, 1.5, 1.5, 0.7, 0.7], np.float32)

#: Diameter distributions (median mm, log-sigma): malignant lesions are larger.
_DIAMETER_PRIOR = {1: (4.5, 0.45), 2: (9.0, 0.40)}
DIAMETER_RANGE_MM = (2.0, 20.0)


def sample_diameter_mm(
    rng: np.random.Generator,
    label: int,
    known_mm: float | None = None,
    diameter_range: tuple[float, float] = DIAMETER_RANGE_MM,
) -> float:
    """A physically plausible lesion diameter in millimetres.

    Uses the lesion's recorded diameter when known (jittered by +-10 %), else a log-normal
    prior (benign median 4.5 mm, malignant 9 mm), clipped to ``diameter_range``.
    """
    lo, hi = diameter_range
    if known_mm is not None and known_mm > 0:
        d = float(known_mm) * float(rng.uniform(0.9, 1.1))
    else:
        median, sigma = _DIAMETER_PRIOR.get(int(label), _DIAMETER_PRIOR[1])
        d = float(np.exp(rng.normal(np.log(median), sigma)))
    return float(np.clip(d, lo, hi))


def _lab(image: np.ndarray) -> np.ndarray:
    """RGB uint8 -> Lab float32 with L in [0, 100] and a, b roughly in [-128, 127]."""
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    lab[..., 0] *= 100.0 / 255.0
    lab[..., 1:] -= 128.0
    return lab


@dataclass(frozen=True)
class SkinFeatures:
    """Body skin descriptors on a coarse grid; cell (i, j) covers pixels [GRID*j, GRID*(j+1)) in x.

    descriptors: float32 (h', w', 5); skin: bool (h', w') cells fully on skin.
    """

    descriptors: np.ndarray = field(repr=False)
    skin: np.ndarray = field(repr=False)
    shape: tuple[int, int]


def body_features(image: np.ndarray, skin_mask: np.ndarray, window_px: int = 24) -> SkinFeatures:
    """Compute the skin descriptors of a body photo (H, W, 3) uint8 with skin mask (H, W) bool."""
    h, w = skin_mask.shape
    gh, gw = (h + GRID - 1) // GRID, (w + GRID - 1) // GRID
    small = cv2.resize(image, (gw, gh), interpolation=cv2.INTER_AREA)
    lab = _lab(small)
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    gx = cv2.Sobel(gray, cv2.CV_16S, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_16S, 0, 1, ksize=3)
    # |gx| + |gy| of the grey level, scaled like the L-channel gradient magnitude
    grad = cv2.addWeighted(cv2.convertScaleAbs(gx), 0.5, cv2.convertScaleAbs(gy), 0.5, 0)
    grad = cv2.resize(grad, (gw, gh), interpolation=cv2.INTER_AREA).astype(np.float32) * (
        100.0 / 255.0 / 4.0
    )
    k = max(3, window_px // GRID) | 1
    skin_f = cv2.resize(skin_mask.astype(np.float32), (gw, gh), interpolation=cv2.INTER_AREA)
    wsum = cv2.boxFilter(skin_f, -1, (k, k), normalize=False) + 1e-3
    mean = cv2.boxFilter(lab * skin_f[..., None], -1, (k, k), normalize=False) / wsum[..., None]
    sq = cv2.boxFilter(lab[..., 0] ** 2 * skin_f, -1, (k, k), normalize=False) / wsum
    std_l = np.sqrt(np.maximum(sq - mean[..., 0] ** 2, 0.0))
    tex = cv2.boxFilter(grad * skin_f, -1, (k, k), normalize=False) / wsum
    desc = np.dstack([mean, std_l, tex]).astype(np.float32)
    return SkinFeatures(descriptors=desc, skin=skin_f > 0.999, shape=(h, w))


def ring_descriptor(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Descriptor (5,) float32 of the skin ring around a lesion patch at body scale.

    image (h, w, 3) uint8 and mask (h, w) bool: the patch already resized to body scale.
    """
    lab = _lab(image)
    d = max(2, int(round(0.3 * np.sqrt(mask.sum()))))
    ring = cv2.dilate(mask.astype(np.uint8), np.ones((2 * d + 1, 2 * d + 1), np.uint8)).astype(bool)
    ring &= ~mask
    if ring.sum() < 4:
        ring = ~mask
    if not ring.any():
        ring = np.ones_like(mask)
    vals = lab[ring]
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    gx = np.abs(cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3))
    gy = np.abs(cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3))
    grad = ((gx + gy) * (100.0 / 255.0 / 8.0))[ring]
    return np.array([*vals.mean(axis=0), vals[:, 0].std(), grad.mean()], dtype=np.float32)


def to_grid(mask: np.ndarray, features: SkinFeatures, *, any_pixel: bool = True) -> np.ndarray:
    """A full-resolution (H, W) bool mask on the descriptor grid (returned as is if already).

    any_pixel: a cell is True when any of its pixels is (else: when its centre pixel is).
    """
    gh, gw = features.skin.shape
    if mask.shape == (gh, gw):
        return mask.astype(bool, copy=True)
    m = mask.astype(np.uint8)
    out = cv2.resize(m, (gw, gh), interpolation=cv2.INTER_NEAREST) > 0
    if any_pixel:
        out |= cv2.resize(m, (gw, gh), interpolation=cv2.INTER_AREA) > 0
    return out


def mark_disk(grid_mask: np.ndarray, centre: tuple[int, int], radius_px: float) -> None:
    """Set the grid cells within ``radius_px`` (full-resolution pixels) of ``centre``, in place."""
    cx, cy = (centre[0] + 0.5) / GRID - 0.5, (centre[1] + 0.5) / GRID - 0.5
    r = radius_px / GRID + 0.75
    gh, gw = grid_mask.shape
    ys, xs = np.ogrid[0:gh, 0:gw]
    grid_mask |= (xs - cx) ** 2 + (ys - cy) ** 2 <= r * r


def choose_position(
    features: SkinFeatures,
    descriptor: np.ndarray,
    radius_px: float,
    occupied: np.ndarray,
    rng: np.random.Generator,
    *,
    allowed: np.ndarray | None = None,
    margin_px: float = 4.0,
    top_k: int = 12,
) -> tuple[int, int] | None:
    """Pick a lesion centre (x, y) in full-resolution pixels, or None when nothing fits.

    radius_px: radius of the area the lesion and its blend region need.
    occupied: bool, pixels taken by other lesions or moles (kept clear by radius_px), at
        full resolution (H, W) or already on the grid (see ``to_grid``).
    allowed: optional bool (H, W) or grid mask, where the centre may go.
    The centre lies on a skin cell at least ``radius_px + margin_px`` from the skin border;
    among the best-matching candidates (``top_k`` or the best 15 %, whichever is more), one
    is drawn with ``rng``.
    """
    h, w = features.shape
    reach = (radius_px + margin_px) / GRID
    er = int(np.ceil(reach))
    valid = features.skin.astype(np.uint8)
    if er > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * er + 1, 2 * er + 1))
        valid = cv2.erode(valid, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    occ = to_grid(occupied, features)
    if occ.any():
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * er + 3, 2 * er + 3))
        occ = cv2.dilate(occ.astype(np.uint8), kernel).astype(bool)
    ok = valid.astype(bool) & ~occ
    if allowed is not None:
        ok &= to_grid(allowed, features, any_pixel=False)
    ys, xs = np.nonzero(ok)
    if len(ys) == 0:
        return None
    diff = (features.descriptors[ys, xs] - descriptor[None, :]) * _WEIGHTS
    dist = np.sqrt((diff**2).sum(axis=1))
    k = min(max(top_k, len(dist) * 3 // 20), len(dist))
    best = np.argpartition(dist, k - 1)[:k]
    best = best[np.argsort(dist[best], kind="stable")]
    pick = best[int(rng.integers(0, k))]
    x = min(w - 1, int(xs[pick]) * GRID + int(rng.integers(0, GRID)))
    y = min(h - 1, int(ys[pick]) * GRID + int(rng.integers(0, GRID)))
    return x, y
