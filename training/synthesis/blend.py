"""Poisson blending of one lesion patch into a body photo, on a small region only.

The blend solves Perez et al.'s guided interpolation exactly on the pixels of the blend
region (the lesion and a ring of its own skin), with Dirichlet values from the body on the
region's border, in a (log L*, a*, b*) space: a lesion keeps its lightness ratio to the
skin (pigment absorbs a share of the light, on fair and dark skin alike) and its hue
offset from the skin (a brown lesion stays brown on grey-lit skin). Pixels outside the
blend region are never changed, so blends of non-overlapping lesions commute.

The result is a ``Stamp``: the changed pixels of a small box, the blend region and the
lesion label inside it. A blend whose lesion ends up too faint (the contrast check) is
retried with more of the lesion's own colours and finally dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.sparse import csc_matrix
from scipy.sparse.linalg import splu

#: Minimum colour difference (CIE76 Delta E) between a blended lesion and its skin ring.
MIN_CONTRAST = 5.0
#: Minimum fraction of label pixels that the blend must have changed.
MIN_CHANGED = 0.9


@dataclass(frozen=True)
class Stamp:
    """A blended lesion: a box of the photo with the pixels the blend changed.

    x0, y0: top-left corner of the box in the photo (pixels).
    pixels: (h, w, 3) uint8, the blended box (equal to the photo outside ``region``).
    region: (h, w) bool, the pixels the blend replaced.
    label: (h, w) bool, the lesion itself (inside ``region`` and inside the skin mask).
    contrast: Delta E between the lesion and its skin ring after blending.
    """

    x0: int
    y0: int
    pixels: np.ndarray = field(repr=False)
    region: np.ndarray = field(repr=False)
    label: np.ndarray = field(repr=False)
    contrast: float

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1), x1/y1 exclusive."""
        h, w = self.region.shape
        return self.x0, self.y0, self.x0 + w, self.y0 + h

    def apply(self, image: np.ndarray) -> None:
        """Write the blended pixels into ``image`` (H, W, 3) uint8, in place."""
        x0, y0, x1, y1 = self.box
        image[y0:y1, x0:x1][self.region] = self.pixels[self.region]

    def paint_labels(self, instance_map: np.ndarray, value: int) -> None:
        """Write ``value`` into ``instance_map`` on the lesion's label pixels, in place."""
        x0, y0, x1, y1 = self.box
        instance_map[y0:y1, x0:x1][self.label] = value


def poisson_solve(
    target: np.ndarray, source: np.ndarray, region: np.ndarray, *, mixed: bool = False
) -> np.ndarray:
    """Guided interpolation (Poisson image editing) on ``region``.

    target, source: float32 (h, w, C) on the same grid; region: (h, w) bool, not touching
    the border. Inside the region the result has the source's gradients (or, ``mixed``,
    whichever of source and target gradient is stronger), on its border it meets the
    target exactly. Returns float32 (h, w, C), equal to target outside the region.
    """
    h, w = region.shape
    ys, xs = np.nonzero(region)
    n = len(ys)
    out = target.astype(np.float32).copy()
    if n == 0:
        return out
    if ys.min() == 0 or xs.min() == 0 or ys.max() == h - 1 or xs.max() == w - 1:
        raise ValueError("blend region touches the border of its box")
    index = np.full((h, w), -1, np.int64)
    index[ys, xs] = np.arange(n)
    b = np.zeros((n, target.shape[2]), np.float64)
    rows, cols = [np.arange(n)], [np.arange(n)]
    vals = [np.full(n, 4.0)]
    src_p, dst_p = source[ys, xs], target[ys, xs]
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        ny, nx = ys + dy, xs + dx
        v = src_p - source[ny, nx]
        if mixed:
            vt = dst_p - target[ny, nx]
            stronger = np.abs(vt).sum(axis=1) > np.abs(v).sum(axis=1)
            v = np.where(stronger[:, None], vt, v)
        b += v
        q = index[ny, nx]
        inside = q >= 0
        b[~inside] += target[ny[~inside], nx[~inside]]
        rows.append(np.nonzero(inside)[0])
        cols.append(q[inside])
        vals.append(np.full(int(inside.sum()), -1.0))
    a = csc_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    )
    out[ys, xs] = splu(a).solve(b).astype(np.float32)
    return out


def _lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.clip(rgb, 0, 255).astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


#: Scale of log-lightness against a*, b* in the blend space (for mixed-gradient choices).
_LOG_L_SCALE = 40.0


def _to_blend_space(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 -> (K log(1 + L*), a*, b*) float32: lightness ratios, additive chroma."""
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    lab[..., 0] = _LOG_L_SCALE * np.log1p(lab[..., 0])
    return lab


def _from_blend_space(values: np.ndarray) -> np.ndarray:
    lab = values.astype(np.float32).copy()
    lab[..., 0] = np.clip(np.expm1(lab[..., 0] / _LOG_L_SCALE), 0.0, 100.0)
    rgb = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _ring(mask: np.ndarray, width: int, within: np.ndarray) -> np.ndarray:
    k = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    grown = cv2.dilate(mask.astype(np.uint8), k).astype(bool)
    near = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return grown & ~near & within


def contrast(image: np.ndarray, label: np.ndarray, within: np.ndarray) -> float:
    """Delta E (CIE76) between the mean Lab colour of ``label`` and of a ring of skin around it."""
    ring = _ring(label, max(2, int(0.25 * np.sqrt(label.sum()))), within)
    if not ring.any() or not label.any():
        return 0.0
    lab = _lab(image)
    return float(np.linalg.norm(lab[label].mean(axis=0) - lab[ring].mean(axis=0)))


def blend_lesion(
    image: np.ndarray,
    skin_mask: np.ndarray,
    patch: np.ndarray,
    patch_mask: np.ndarray,
    centre: tuple[int, int],
    *,
    mixed: bool = False,
    keep: float = 0.0,
    min_contrast: float = MIN_CONTRAST,
) -> Stamp | None:
    """Blend a lesion patch with its centroid at ``centre`` (x, y) of ``image``.

    image: (H, W, 3) uint8 body photo (not modified); skin_mask (H, W) bool.
    patch: (h, w, 3) uint8 at body scale, patch_mask (h, w) bool lesion.
    mixed: mixed-gradient guidance (body texture such as hair shows through the lesion).
    keep: 0..1, how much of the lesion's own (tint-corrected) colours to mix into the
        Poisson solution inside the lesion.
    Returns the Stamp, or None when the lesion does not fit on skin or ends up invisible
    (after retrying with normal guidance and more of its own colours).
    """
    H, W = skin_mask.shape
    ph, pw = patch_mask.shape
    ys, xs = np.nonzero(patch_mask)
    if len(ys) == 0:
        return None
    cx, cy = round(float(xs.mean())), round(float(ys.mean()))
    px0, py0 = centre[0] - cx, centre[1] - cy
    x0, y0 = max(0, px0), max(0, py0)
    x1, y1 = min(W, px0 + pw), min(H, py0 + ph)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return None
    sub = (slice(y0 - py0, y1 - py0), slice(x0 - px0, x1 - px0))
    lesion = patch_mask[sub]
    src = patch[sub]
    dst = image[y0:y1, x0:x1]
    skin = skin_mask[y0:y1, x0:x1]
    diam = 2.0 * np.sqrt(lesion.sum() / np.pi)
    r = int(np.clip(round(0.15 * diam), 2, 4))  # a thin ring of the lesion's own skin
    region = cv2.dilate(lesion.astype(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8))
    skin_in = cv2.erode(skin.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    region = region.astype(bool) & skin_in
    region[0, :] = region[-1, :] = region[:, 0] = region[:, -1] = False
    label = lesion & region
    if label.sum() < 0.5 * patch_mask.sum() or label.sum() < 3:
        return None
    src_log = _to_blend_space(src)
    dst_log = _to_blend_space(dst)
    ring = region & ~cv2.dilate(lesion.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    if not ring.any():
        ring = region & ~lesion
    offset = (dst_log[ring] - src_log[ring]).mean(axis=0) if ring.any() else 0.0
    alpha = cv2.GaussianBlur(label.astype(np.float32), (0, 0), 0.7)[..., None]
    attempts = [(mixed, keep)]
    if mixed:
        attempts.append((False, keep))
    attempts.append((False, max(keep, 0.6)))
    for use_mixed, use_keep in attempts:
        sol = poisson_solve(dst_log, src_log, region, mixed=use_mixed)
        if use_keep > 0:
            a = alpha * use_keep
            sol = sol * (1 - a) + (src_log + offset) * a
        out = _from_blend_space(sol)
        out[~region] = dst[~region]
        changed = np.abs(out.astype(np.int16) - dst.astype(np.int16)).max(axis=2) >= 2
        if changed[label].mean() < MIN_CHANGED:
            continue
        c = contrast(out, label, region | skin_in)
        if c < min_contrast:
            continue
        return Stamp(
            x0=int(x0),
            y0=int(y0),
            pixels=out,
            region=region,
            label=label,
            contrast=c,
        )
    return None
