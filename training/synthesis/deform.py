"""The geometric change between two visits: a smooth non-rigid warp and a new viewpoint.

A ``Deformation`` maps canvas coordinates (the lesion-free body on a canvas larger than
the photos, the first visit being the frame at ``offset``) to the second visit's pixels:

    T(p) = H(p + d(p))

with d a smooth displacement field (body pose; bilinear on a coarse grid of float64
control values, Lipschitz constant kept below 0.35 so that p -> p + d(p) is invertible)
and H a homography (camera translation, rotation, zoom, perspective). The forward map is
exact by definition (the ground-truth flow); its inverse, used only to render the second
visit with ``cv2.remap``, is solved by fixed-point iteration (within about 0.05 pixel).
Coordinates: x right, y down, pixel centres at integer coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from training.synthesis.augment import smooth_field

#: Spacing of the displacement control grid, in canvas pixels.
GRID_STEP = 32
#: Largest slope of the displacement field (keeps the warp a diffeomorphism).
MAX_SLOPE = 0.35


def _apply_h(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    x, y = pts[..., 0], pts[..., 1]
    w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
    return np.stack(
        [(h[0, 0] * x + h[0, 1] * y + h[0, 2]) / w, (h[1, 0] * x + h[1, 1] * y + h[1, 2]) / w],
        axis=-1,
    )


@dataclass(frozen=True)
class Deformation:
    """T(p) = H(p + d(p)) from canvas pixels to second-visit pixels.

    homography: (3, 3) float64. grid: (gh, gw, 2) float64 displacement (dx, dy) at canvas
    points (GRID_STEP * j, GRID_STEP * i), bilinear in between, constant beyond the edges.
    offset: (ox, oy), the first visit's top-left corner in the canvas.
    size: (width, height) of both visits' photos.
    """

    homography: np.ndarray = field(repr=False)
    grid: np.ndarray = field(repr=False)
    offset: tuple[int, int]
    size: tuple[int, int]

    def displacement(self, pts: np.ndarray) -> np.ndarray:
        """d(p) for canvas points (..., 2) float64 -> (..., 2) float64."""
        gh, gw = self.grid.shape[:2]
        gx = np.clip(pts[..., 0] / GRID_STEP, 0, gw - 1)
        gy = np.clip(pts[..., 1] / GRID_STEP, 0, gh - 1)
        x0 = np.minimum(np.floor(gx).astype(np.int64), gw - 2)
        y0 = np.minimum(np.floor(gy).astype(np.int64), gh - 2)
        fx, fy = (gx - x0)[..., None], (gy - y0)[..., None]
        g = self.grid
        top = g[y0, x0] * (1 - fx) + g[y0, x0 + 1] * fx
        bottom = g[y0 + 1, x0] * (1 - fx) + g[y0 + 1, x0 + 1] * fx
        return top * (1 - fy) + bottom * fy

    def forward(self, pts: np.ndarray) -> np.ndarray:
        """T(p): canvas points (..., 2) -> second-visit points (..., 2), float64."""
        pts = np.asarray(pts, np.float64)
        return _apply_h(self.homography, pts + self.displacement(pts))

    def inverse(self, pts: np.ndarray, *, tol: float = 1e-3, max_iter: int = 40) -> np.ndarray:
        """T^-1(q): second-visit points (..., 2) -> canvas points (..., 2), float64."""
        u = _apply_h(np.linalg.inv(self.homography), np.asarray(pts, np.float64))
        p = u - self.displacement(u)
        for _ in range(max_iter):
            nxt = u - self.displacement(p)
            step = np.abs(nxt - p).max() if nxt.size else 0.0
            p = nxt
            if step < tol * (1 - MAX_SLOPE):
                break
        return p

    def flow(self) -> tuple[np.ndarray, np.ndarray]:
        """Ground-truth flow of the first visit: (flow (H, W, 2) float32, valid (H, W) bool).

        A pixel p (first-visit coordinates) + flow[p] = its position in the second visit;
        valid where that position lies inside the second photo.
        """
        w, h = self.size
        ox, oy = self.offset
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        # integer canvas points sit at multiples of 1/GRID_STEP of a grid cell, which
        # cv2.remap's 1/32 sub-cell table represents exactly: this is exact bilinear.
        assert GRID_STEP == 32
        d = cv2.remap(
            self.grid.astype(np.float32),
            (xs + ox) / GRID_STEP,
            (ys + oy) / GRID_STEP,
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        p = np.stack([xs, ys], axis=-1).astype(np.float64)
        q = _apply_h(self.homography, p + np.array(self.offset, np.float64) + d)
        valid = (q[..., 0] >= 0) & (q[..., 0] <= w - 1) & (q[..., 1] >= 0) & (q[..., 1] <= h - 1)
        return (q - p).astype(np.float32), valid

    def inverse_map(self) -> np.ndarray:
        """Canvas position of every second-visit pixel: (H, W, 2) float32 for cv2.remap."""
        w, h = self.size
        s = 4  # solve on every 4th pixel, interpolate, then one exact fixed-point step
        ys, xs = np.mgrid[0 : h + s : s, 0 : w + s : s].astype(np.float64)
        coarse = self.inverse(np.stack([xs, ys], axis=-1)).astype(np.float32)
        fy, fx = np.mgrid[0:h, 0:w].astype(np.float32)
        guess = cv2.remap(coarse, fx / s, fy / s, cv2.INTER_LINEAR)
        u = _apply_h(np.linalg.inv(self.homography), np.stack([fx, fy], axis=-1).astype(np.float64))
        return (u - self.displacement(guess.astype(np.float64))).astype(np.float32)


def _border_points(w: int, h: int, n: int = 24) -> np.ndarray:
    t = np.linspace(0, 1, n)
    xs, ys = t * (w - 1), t * (h - 1)
    return np.concatenate(
        [
            np.stack([xs, np.zeros(n)], 1),
            np.stack([xs, np.full(n, h - 1.0)], 1),
            np.stack([np.zeros(n), ys], 1),
            np.stack([np.full(n, w - 1.0), ys], 1),
        ]
    )


def random_deformation(
    rng: np.random.Generator,
    canvas: tuple[int, int],
    offset: tuple[int, int],
    size: tuple[int, int],
    *,
    max_shift_frac: float = 0.2,
    max_rotation_deg: float = 12.0,
    scale_range: tuple[float, float] = (0.87, 1.15),
    perspective: float = 0.08,
    warp_frac: float = 0.025,
) -> Deformation:
    """A random deformation whose second-visit photo lies entirely inside the canvas.

    canvas: (width, height) of the canvas; offset: first-visit frame corner in it; size:
    (width, height) of the photos. The camera translation reaches ``max_shift_frac`` of
    the width; if the view would leave the canvas, the change is shrunk and retried.
    """
    cw, ch = canvas
    w, h = size
    gw, gh = cw // GRID_STEP + 2, ch // GRID_STEP + 2
    field_ = smooth_field(rng, (gh, gw), cell_px=5.0, amplitude=1.0).astype(np.float64)
    rms = float(np.sqrt((field_**2).mean())) + 1e-9
    grid = field_ * (warp_frac * w * float(rng.uniform(0.3, 1.0)) / rms)
    slope = (
        max(
            np.abs(np.diff(grid, axis=0)).max(initial=0.0),
            np.abs(np.diff(grid, axis=1)).max(initial=0.0),
        )
        / GRID_STEP
    )
    if slope > MAX_SLOPE:
        grid *= MAX_SLOPE / slope
    angle = np.deg2rad(rng.uniform(-max_rotation_deg, max_rotation_deg))
    zoom = float(np.exp(rng.uniform(np.log(scale_range[0]), np.log(scale_range[1]))))
    direction = rng.uniform(0, 2 * np.pi)
    shift = float(rng.uniform(0.0, max_shift_frac)) * w
    corner_jitter = rng.uniform(-1, 1, size=(4, 2)) * perspective * 0.5 * min(w, h)
    corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float64)
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    to_frame = np.array([[1, 0, -offset[0]], [0, 1, -offset[1]], [0, 0, 1]], np.float64)
    for attempt in range(12):
        k = 0.75**attempt
        a, z = angle * k, zoom**k
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) * z
        t = shift * k * np.array([np.cos(direction), np.sin(direction)])
        dst = (corners - centre) @ rot.T + centre + t + corner_jitter * k
        h_frame = cv2.getPerspectiveTransform(corners.astype(np.float32), dst.astype(np.float32))
        deformation = Deformation(
            homography=h_frame.astype(np.float64) @ to_frame,
            grid=grid * k,
            offset=offset,
            size=size,
        )
        back = deformation.inverse(_border_points(w, h))
        if (
            np.isfinite(back).all()
            and back[:, 0].min() >= 1
            and back[:, 1].min() >= 1
            and back[:, 0].max() <= cw - 2
            and back[:, 1].max() <= ch - 2
        ):
            return deformation
    return Deformation(to_frame, grid * 0.0, offset, size)  # no view change fits: keep the frame
