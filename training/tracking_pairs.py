"""Tracking pairs from one photo by a known deformation, with exact flow and lesion truth.

Photo B is photo A seen again after the body and the camera moved and the light changed:
a forward map T(p) = Aff(p + S(p)) (rotation, scale, shear, a translation of up to a fifth
of the width, and a smooth non-rigid field S) carries each A pixel p to T(p) in B, so the
flow T(p) - p is exact. B is rendered by inverting T (fixed-point iteration on the smooth
part), then relit (gamma, per-channel gain, a brightness gradient), blurred and noised.
Small lesions can be painted on A (some of them "gone" in B) and new ones on B, so that
lesion matching can be scored on real skin. Every random choice comes from the given
``numpy.random.Generator``. Coordinates: x right, y down, pixel centres at integers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from core.types import Lesion


@dataclass(frozen=True)
class WarpParams:
    """Ranges of the random deformation and relighting."""

    max_shift_fraction: float = 0.2  # translation up to this fraction of the width
    max_rotation_deg: float = 12.0
    scale_range: tuple[float, float] = (0.85, 1.2)
    max_shear: float = 0.05
    smooth_fraction: float = 0.02  # amplitude of the non-rigid part, fraction of the width
    smooth_grid: tuple[int, int] = (4, 5)  # control points (rows, cols) of the smooth field
    gain_range: tuple[float, float] = (0.8, 1.2)
    gamma_range: tuple[float, float] = (0.8, 1.25)
    noise_sigma: float = 2.0


@dataclass(frozen=True)
class KnownPair:
    """image_a, image_b: uint8 (H, W, 3) RGB; flow: float32 (H, W, 2), A pixel + flow = its
    position in B; valid: bool (H, W), the position lies inside B.
    lesions_a/lesions_b: painted lesions (ids from 1); correspondences (id_a, id_b);
    new_in_b: ids of B lesions painted where A showed the skin; gone_from_a: ids.
    skin_a: bool (H, W), A's skin pixels, when known (synthetic pairs).
    faint_in_a: ids of B lesions that are neither new nor matched because photo A shows
    their partner with fewer than the visibility threshold's pixels (synthetic pairs)."""

    image_a: np.ndarray = field(repr=False)
    image_b: np.ndarray = field(repr=False)
    flow: np.ndarray = field(repr=False)
    valid: np.ndarray = field(repr=False)
    lesions_a: tuple[Lesion, ...] = ()
    lesions_b: tuple[Lesion, ...] = ()
    correspondences: tuple[tuple[int, int], ...] = ()
    new_in_b: tuple[int, ...] = ()
    gone_from_a: tuple[int, ...] = ()
    skin_a: np.ndarray | None = field(default=None, repr=False)
    faint_in_a: tuple[int, ...] = ()


def random_forward_map(
    rng: np.random.Generator, shape: tuple[int, int], params: WarpParams = WarpParams()
) -> tuple[np.ndarray, np.ndarray]:
    """(affine 2x3, smooth field float32 (H, W, 2)) of a random T(p) = Aff(p + S(p))."""
    h, w = shape
    angle = np.radians(rng.uniform(-params.max_rotation_deg, params.max_rotation_deg))
    scale = np.exp(rng.uniform(*np.log(params.scale_range)))
    shear = rng.uniform(-params.max_shear, params.max_shear)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    lin = scale * rot @ np.array([[1.0, shear], [0.0, 1.0]])
    shift_dir = rng.uniform(0, 2 * np.pi)
    shift = (
        rng.uniform(0, params.max_shift_fraction)
        * w
        * np.array([np.cos(shift_dir), np.sin(shift_dir)])
    )
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    affine = np.hstack([lin, (centre - lin @ centre + shift)[:, None]])
    gh, gw = params.smooth_grid
    coarse = rng.normal(0, params.smooth_fraction * w / 2, (gh, gw, 2)).astype(np.float32)
    smooth = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    return affine, smooth


def apply_forward_map(affine: np.ndarray, smooth: np.ndarray, points: np.ndarray) -> np.ndarray:
    """T(p) for float points (N, 2) (x, y), the smooth field sampled bilinearly."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    mx = np.ascontiguousarray(pts[:, 0].astype(np.float32)[None])
    my = np.ascontiguousarray(pts[:, 1].astype(np.float32)[None])
    sx, sy = (
        cv2.remap(
            np.ascontiguousarray(smooth[..., c]),
            mx,
            my,
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )[0]
        for c in (0, 1)
    )
    moved = pts + np.stack([sx, sy], 1)
    return moved @ affine[:, :2].T + affine[:, 2]


def render_warp(
    image: np.ndarray, affine: np.ndarray, smooth: np.ndarray, out_shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(B image, flow A->B) for the forward map; B sampled from A by inverting T."""
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    flow = np.stack(
        [
            affine[0, 0] * (xs + smooth[..., 0])
            + affine[0, 1] * (ys + smooth[..., 1])
            + affine[0, 2]
            - xs,
            affine[1, 0] * (xs + smooth[..., 0])
            + affine[1, 1] * (ys + smooth[..., 1])
            + affine[1, 2]
            - ys,
        ],
        -1,
    ).astype(np.float32)
    hb, wb = out_shape
    qy, qx = np.mgrid[0:hb, 0:wb].astype(np.float32)
    inv = cv2.invertAffineTransform(affine)
    inv = inv.astype(np.float32)
    rx = inv[0, 0] * qx + inv[0, 1] * qy + inv[0, 2]
    ry = inv[1, 0] * qx + inv[1, 1] * qy + inv[1, 2]
    sx, sy = np.ascontiguousarray(smooth[..., 0]), np.ascontiguousarray(smooth[..., 1])
    px, py = rx.copy(), ry.copy()
    for _ in range(8):  # p = r - S(p): converges, S is smooth and small
        dx = cv2.remap(sx, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        dy = cv2.remap(sy, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        px, py = rx - dx, ry - dy
    warped = cv2.remap(image, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    return warped, flow


def relight(
    image: np.ndarray, rng: np.random.Generator, params: WarpParams = WarpParams()
) -> np.ndarray:
    """Another day's light: gamma, per-channel gain, a linear brightness gradient, blur, noise."""
    h, w = image.shape[:2]
    x = image.astype(np.float32) / 255.0
    x = x ** rng.uniform(*params.gamma_range)
    gain = rng.uniform(*params.gain_range) * (1 + rng.uniform(-0.06, 0.06, 3))
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = ((xs / w - 0.5) * np.cos(angle) + (ys / h - 0.5) * np.sin(angle)) * rng.uniform(0, 0.25)
    x = x * gain[None, None] * (1 + ramp)[..., None]
    sigma = rng.uniform(0, 1.0)
    if sigma > 0.3:
        x = cv2.GaussianBlur(x, (0, 0), sigma)
    x = x * 255 + rng.normal(0, params.noise_sigma, x.shape)
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


def _blob(rng: np.random.Generator, shape: tuple[int, int], centre, radius: float):
    """Soft elliptical mask (float32 alpha, bool mask) of a small lesion."""
    alpha = np.zeros(shape, np.float32)
    axes = (
        max(2, int(radius * rng.uniform(0.8, 1.2))),
        max(2, int(radius * rng.uniform(0.6, 1.0))),
    )
    cv2.ellipse(alpha, (int(centre[0]), int(centre[1])), axes, rng.uniform(0, 180), 0, 360, 1.0, -1)
    mask = alpha > 0.5
    alpha = cv2.GaussianBlur(alpha, (0, 0), max(0.8, radius * 0.2))
    return alpha, mask


_LESION_COLOURS = np.array([[95, 55, 40], [120, 70, 50], [70, 40, 35], [150, 50, 60]], np.float32)


def _paint(image: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Multiply-blend a lesion colour in, keeping the skin's texture under it."""
    tint = colour[None, None] / 200.0
    out = image.astype(np.float32) * (1 - alpha[..., None] * (1 - np.clip(tint, 0, 1)))
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def lesion_from_mask(lesion_id: int, mask: np.ndarray, p_malignant: float = 0.0) -> Lesion | None:
    """A :class:`Lesion` (score 1) of a bool mask's largest outline; None when empty."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    contour = max(contours, key=cv2.contourArea).reshape(-1, 2).astype(np.int32)
    ys, xs = np.nonzero(mask)
    x, y, w, h = cv2.boundingRect(contour)
    return Lesion(
        lesion_id,
        (float(xs.mean()), float(ys.mean())),
        (x, y, x + w, y + h),
        contour,
        float(len(xs)),
        1.0,
        float(p_malignant),
    )


def view_of_a_in_b(flow: np.ndarray, shape_b: tuple[int, int]) -> np.ndarray:
    """Bool (H_B, W_B): the pixels of B that photo A shows, every A pixel moved by ``flow``
    (float32 (H_A, W_A, 2), A pixel + flow = its position in B), the gaps a stretch leaves
    between moved pixels closed."""
    h, w = shape_b
    ys, xs = np.mgrid[0 : flow.shape[0], 0 : flow.shape[1]]
    tx = np.rint(xs + flow[..., 0]).astype(np.int64)
    ty = np.rint(ys + flow[..., 1]).astype(np.int64)
    inside = (tx >= 0) & (tx < w) & (ty >= 0) & (ty < h)
    seen = np.zeros((h, w), np.uint8)
    seen[ty[inside], tx[inside]] = 1
    return cv2.morphologyEx(seen, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8)) > 0


def make_known_pair(
    image: np.ndarray,
    rng: np.random.Generator,
    *,
    params: WarpParams = WarpParams(),
    lesions: int = 0,
    gone: int = 0,
    new: int = 0,
    lesion_radius: tuple[float, float] = (0.004, 0.012),
) -> KnownPair:
    """A pair from one photo: A = photo (+ painted lesions), B = deformed, relit A (+ new ones).

    lesions: how many lesions to paint on A, ``gone`` of them absent from B; ``new`` lesions
    painted on B only. Radii are fractions of the photo width. Lesions whose B position
    falls outside B count as gone. A lesion painted on B counts as new only where photo A
    showed the skin at its centre (:func:`view_of_a_in_b`), the rule synthesis pairs follow;
    elsewhere it is just a lesion of B that A could not show, as when the camera moves
    between real visits.
    """
    h, w = image.shape[:2]
    affine, smooth = random_forward_map(rng, (h, w), params)
    margin = int(0.05 * w)
    painted_a, painted_src = image.copy(), image.copy()
    masks_a = []
    gone_ids = (
        set(rng.choice(np.arange(1, lesions + 1), size=min(gone, lesions), replace=False).tolist())
        if lesions
        else set()
    )
    centres: list[np.ndarray] = []
    for lesion_id in range(1, lesions + 1):
        radius = rng.uniform(*lesion_radius) * w
        for _ in range(20):  # keep lesions apart
            c = rng.uniform([margin, margin], [w - margin, h - margin])
            if all(np.hypot(*(c - o)) > 6 * radius + 0.03 * w for o in centres):
                break
        centres.append(c)
        alpha, mask = _blob(rng, (h, w), c, radius)
        colour = _LESION_COLOURS[rng.integers(len(_LESION_COLOURS))]
        painted_a = _paint(painted_a, alpha, colour)
        if lesion_id not in gone_ids:
            painted_src = _paint(painted_src, alpha, colour)
        masks_a.append(mask)
    image_b, flow = render_warp(painted_src, affine, smooth, (h, w))
    tx, ty = np.mgrid[0:h, 0:w][::-1]
    valid = (
        (tx + flow[..., 0] >= 0)
        & (tx + flow[..., 0] <= w - 1)
        & (ty + flow[..., 1] >= 0)
        & (ty + flow[..., 1] <= h - 1)
    )
    lesions_a, lesions_b, corr = [], [], []
    for lesion_id, mask in enumerate(masks_a, start=1):
        la = lesion_from_mask(lesion_id, mask)
        if la is None:
            continue
        lesions_a.append(la)
        if lesion_id in gone_ids:
            continue
        ys, xs = np.nonzero(mask)
        moved = apply_forward_map(affine, smooth, np.stack([xs, ys], 1))
        mask_b = np.zeros((h, w), np.uint8)
        inside = (
            (moved[:, 0] >= 0)
            & (moved[:, 0] <= w - 1)
            & (moved[:, 1] >= 0)
            & (moved[:, 1] <= h - 1)
        )
        if inside.mean() < 0.9:
            gone_ids.add(lesion_id)
            continue
        pts = np.round(moved[inside]).astype(int)
        mask_b[pts[:, 1], pts[:, 0]] = 1
        mask_b = cv2.morphologyEx(mask_b, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
        lb = lesion_from_mask(len(lesions_b) + 1, mask_b.astype(bool))
        if lb is not None:
            lesions_b.append(lb)
            corr.append((lesion_id, lb.id))
    image_b = image_b.copy()
    seen_by_a = view_of_a_in_b(flow, (h, w)) if new else None
    centres_b = [np.array(le.centroid) for le in lesions_b]
    new_ids = []
    for _ in range(new):
        radius = rng.uniform(*lesion_radius) * w
        for _ in range(20):
            c = rng.uniform([margin, margin], [w - margin, h - margin])
            if all(np.hypot(*(c - o)) > 6 * radius + 0.03 * w for o in centres_b):
                break
        centres_b.append(c)
        alpha, mask = _blob(rng, (h, w), c, radius)
        image_b = _paint(image_b, alpha, _LESION_COLOURS[rng.integers(len(_LESION_COLOURS))])
        lb = lesion_from_mask(len(lesions_b) + 1, mask)
        if lb is not None:
            lesions_b.append(lb)
            if seen_by_a[int(round(c[1])), int(round(c[0]))]:  # set: new > 0 here
                new_ids.append(lb.id)
    image_b = relight(image_b, rng, params)
    return KnownPair(
        image_a=painted_a,
        image_b=image_b,
        flow=flow,
        valid=valid,
        lesions_a=tuple(lesions_a),
        lesions_b=tuple(lesions_b),
        correspondences=tuple(corr),
        new_in_b=tuple(new_ids),
        gone_from_a=tuple(sorted(gone_ids)),
    )
