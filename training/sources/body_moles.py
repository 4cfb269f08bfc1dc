"""Pre-existing small benign lesions on procedural bodies: nevi (1-4 mm, brown, round,
soft-edged) and a few cherry angiomas (red), recorded as instances.

Every mole lies wholly inside the region it is allowed in (skin, away from clothing,
areolae and the navel); its instance pixels are those within its half-contrast outline.
"""

from __future__ import annotations

import math

import numpy as np

from training.sources.skin_tones import SkinTone, lab_to_rgb

MAX_MOLES = 30


def place_moles(
    rng: np.random.Generator,
    albedo: np.ndarray,
    allowed: np.ndarray,
    tone: SkinTone,
    mm_per_px: float,
    *,
    count: int | None = None,
) -> tuple[np.ndarray, int]:
    """Paint moles into ``albedo`` (float32 planes (3, H, W) sRGB, changed in place).

    allowed: (H, W) bool, where a mole may lie.
    count: how many to try to place; None draws it from a density of 0.002-0.05 per cm^2.
    Returns (instances uint16 (H, W), 0 = none, k = k-th mole; number of moles).
    """
    height, width = allowed.shape
    instances = np.zeros((height, width), np.uint16)
    area_cm2 = float(allowed.sum()) * (mm_per_px / 10.0) ** 2
    if area_cm2 <= 0:
        return instances, 0
    if count is None:
        density = math.exp(rng.uniform(math.log(0.002), math.log(0.05)))  # moles per cm^2
        count = int(rng.poisson(density * area_cm2))
    wanted = min(MAX_MOLES, count)
    placed = 0
    candidates = np.flatnonzero(allowed) if wanted else np.zeros(0, np.int64)
    for _ in range(wanted * 8):
        if placed >= wanted:
            break
        angioma = rng.random() < 0.12
        diameter_mm = rng.uniform(0.8, 3.0) if angioma else math.exp(rng.uniform(0.0, 1.386))
        radius = max(0.6, diameter_mm / 2.0 / mm_per_px)
        reach = int(math.ceil(radius * 1.6)) + 1
        pick = int(candidates[rng.integers(candidates.size)])
        cx, cy = pick % width + rng.uniform(-0.5, 0.5), pick // width + rng.uniform(-0.5, 0.5)
        if not (reach < cx < width - reach - 1 and reach < cy < height - reach - 1):
            continue
        x0, x1 = int(cx) - reach, int(cx) + reach + 1
        y0, y1 = int(cy) - reach, int(cy) + reach + 1
        if not allowed[y0:y1, x0:x1].all() or instances[y0:y1, x0:x1].any():
            continue
        placed += 1
        _paint(rng, albedo, instances, placed, (x0, y0, x1, y1), (cx, cy), radius, tone, angioma)
    return instances, placed


def _paint(
    rng: np.random.Generator,
    albedo: np.ndarray,
    instances: np.ndarray,
    ident: int,
    box: tuple[int, int, int, int],
    centre: tuple[float, float],
    radius: float,
    tone: SkinTone,
    angioma: bool,
) -> None:
    x0, y0, x1, y1 = box
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    theta = rng.uniform(0, math.pi)
    aspect = rng.uniform(0.72, 1.0)
    dx, dy = xx - centre[0], yy - centre[1]
    along = dx * math.cos(theta) + dy * math.sin(theta)
    across = (-dx * math.sin(theta) + dy * math.cos(theta)) / aspect
    rho = np.hypot(along, across) / radius
    softness = rng.uniform(0.2, 0.5) if not angioma else rng.uniform(0.1, 0.25)
    # alpha 0.5 on rho = 1, fading over `softness` of the radius (at least ~0.7 px)
    width = max(softness, 0.7 / radius)
    alpha = np.clip((1.0 - rho) / width + 0.5, 0.0, 1.0)
    alpha = alpha * alpha * (3.0 - 2.0 * alpha)
    inside = rho <= 1.0
    if not inside.any():
        cy, cx = int(round(centre[1])) - y0, int(round(centre[0])) - x0
        inside[cy, cx] = True
        alpha[cy, cx] = max(alpha[cy, cx], 0.6)
    instances[y0:y1, x0:x1][inside] = ident
    skin_l, skin_a, skin_b = tone.lab
    if angioma:
        lab = (rng.uniform(32, 50), rng.uniform(30, 45), rng.uniform(10, 22))
    elif skin_l > 45:
        lab = (skin_l * rng.uniform(0.42, 0.72), skin_a + rng.uniform(1, 7),
               skin_b + rng.uniform(-2, 8))  # fmt: skip
    else:
        lab = (max(8.0, skin_l - rng.uniform(7, 17)), skin_a + rng.uniform(-1, 4),
               skin_b + rng.uniform(-3, 4))  # fmt: skip
    ratio = lab_to_rgb(lab) / np.maximum(np.asarray(tone.rgb, np.float32), 1e-3)
    # darker centre, paler rim, like a junctional/compound naevus
    centre_weight = 1.0 + 0.25 * (1.0 - np.clip(rho, 0, 1))
    for c in range(3):
        mole = np.float32(min(float(ratio[c]), 2.0)) ** centre_weight
        albedo[c, y0:y1, x0:x1] *= 1.0 - alpha * (1.0 - mole)
