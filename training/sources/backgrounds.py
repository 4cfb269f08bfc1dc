"""What surrounds the skin in a clinical photo: walls, curtains with folds, exam-table
paper, furniture, bedding, dark photo booths; and the fabric of clothing.

Backgrounds are rendered at a quarter of the resolution (they are out of focus behind
the patient) and returned lit, as float32 sRGB (H, W, 3) in [0, 1]. Fabric albedo for
clothing is full resolution. x right, y down.
"""

from __future__ import annotations

import math

import numpy as np

from training.sources.noise_fields import (
    fractal_noise,
    lowres_grid,
    smooth_noise,
    upsample_planes,
)
from training.sources.skin_tones import lab_to_rgb

BACKGROUND_KINDS = ("wall", "drape", "exam_paper", "furniture", "bedding", "dark", "flat")
_WEIGHTS = np.array([0.24, 0.22, 0.18, 0.1, 0.12, 0.1, 0.04])
#: Backgrounds are drawn this many times coarser than the photo.
BACKGROUND_FACTOR = 4

# Lab colours (L, a, b) and spreads of common clinic surroundings.
_WALL = [(88, 0, 6), (80, 1, 12), (75, -4, 2), (70, -6, -6), (84, -5, 8), (62, 0, 3)]
_DRAPE = [(58, -12, -14), (55, -18, 2), (70, -8, -10), (82, 0, 8), (45, -5, -20), (62, 8, 4)]
_WOOD = [(45, 10, 24), (35, 9, 18), (58, 8, 25), (28, 6, 10)]
_VINYL = [(20, 0, -2), (30, -2, -12), (45, 6, 12), (60, 0, 0)]
_FABRIC = [
    (92, 0, 2), (15, 0, 0), (45, 0, -2), (30, 2, -22), (42, -2, -25), (45, 45, 25),
    (75, 3, 14), (48, -20, 12), (70, 18, 2), (60, 0, -10), (25, 10, -25), (55, 25, 35),
]  # fmt: skip


def _jitter(rng: np.random.Generator, lab: tuple[float, float, float]) -> np.ndarray:
    out = np.array(lab, np.float32) + rng.normal(0, (4.0, 2.0, 3.0)).astype(np.float32)
    out[0] = np.clip(out[0], 2, 98)
    return lab_to_rgb(out)


def _pick(rng: np.random.Generator, palette: list[tuple[float, float, float]]) -> np.ndarray:
    return _jitter(rng, palette[int(rng.integers(len(palette)))])


def render_background(
    rng: np.random.Generator,
    height: int,
    width: int,
    mm_per_px: float,
    *,
    light: np.ndarray | None = None,
    gains: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> np.ndarray:
    """A lit background as planes: float32 (3, height, width), sRGB in [0, 1] before gains.

    One surface, or (one time in three) two surfaces meeting along a straight edge,
    such as a wall above an examination couch.
    light: optional float32 (ceil(height/4), ceil(width/4)) multiplier (shadows, vignette)
        on the coarse grid of :data:`BACKGROUND_FACTOR`.
    gains: per-channel camera multipliers.
    """
    gh, gw = -(-height // BACKGROUND_FACTOR), -(-width // BACKGROUND_FACTOR)
    xs, ys = lowres_grid(height, width, BACKGROUND_FACTOR)
    mm = mm_per_px * BACKGROUND_FACTOR  # mm per coarse pixel
    kind = str(rng.choice(BACKGROUND_KINDS, p=_WEIGHTS / _WEIGHTS.sum()))
    low = _surface(rng, kind, gh, gw, mm)
    if kind not in ("dark", "flat") and rng.random() < 0.35:
        other = str(rng.choice(BACKGROUND_KINDS[:5]))
        second = _surface(rng, other, gh, gw, mm)
        angle = rng.uniform(0, 2 * math.pi)
        offset = rng.uniform(-0.35, 0.35) * min(width, height)
        side = (xs - width / 2) * math.cos(angle) + (ys - height / 2) * math.sin(angle) - offset
        blend = np.clip(side / rng.uniform(1.0, 4.0) + 0.5, 0, 1)[..., None]
        low = low * (1 - blend) + second * blend
    # room lighting: a broad gradient across the frame
    gx, gy = rng.normal(0, 0.25, 2)
    gradient = np.clip(1.0 + gx * (xs / width - 0.5) + gy * (ys / height - 0.5), 0.5, 1.5)
    if light is not None:
        gradient = gradient * light
    low = np.clip(low, 0, 1) * gradient[..., None] * np.asarray(gains, np.float32)
    return upsample_planes(low.astype(np.float32), width, height)


def _surface(rng: np.random.Generator, kind: str, gh: int, gw: int, mm: float) -> np.ndarray:
    """One surface at coarse resolution (gh, gw, 3); ``mm`` is the size of a coarse pixel."""
    if kind == "wall":
        colour = _pick(rng, _WALL)
        mottling = 1.0 + 0.015 * fractal_noise(rng, gh, gw, 80 / mm)
        return colour * mottling[..., None]
    if kind == "drape":
        return _drape(rng, gh, gw, mm)
    if kind == "exam_paper":
        colour = _jitter(rng, (rng.uniform(88, 96), 0.0, rng.uniform(1, 7)))
        angle = rng.uniform(0, math.pi)
        crinkle = smooth_noise(rng, gh, gw, rng.uniform(6, 20) / mm, stretch=3.0, angle=angle)
        ridges = 1.0 - 0.06 * np.abs(crinkle) + 0.02 * smooth_noise(rng, gh, gw, 3 / mm)
        return colour * ridges[..., None]
    if kind == "furniture":
        if rng.random() < 0.5:
            colour = _pick(rng, _WOOD)
            angle = rng.uniform(0, math.pi)
            grain = smooth_noise(rng, gh, gw, rng.uniform(2, 6) / mm, stretch=12.0, angle=angle)
            stripes = 1.0 + 0.12 * np.sin(grain * 2.5) + 0.05 * smooth_noise(rng, gh, gw, 30 / mm)
            return colour * stripes[..., None]
        colour = _pick(rng, _VINYL)
        sheen = 1.0 + 0.12 * fractal_noise(rng, gh, gw, 120 / mm, octaves=2)
        return colour * np.clip(sheen, 0.6, 1.5)[..., None]
    if kind == "bedding":
        return fabric_albedo(rng, gh, gw, mm, folds=True)
    if kind == "dark":
        colour = _jitter(rng, (rng.uniform(3, 14), 0.0, 0.0))
        return colour * (1.0 + 0.1 * fractal_noise(rng, gh, gw, 60 / mm))[..., None]
    colour = _jitter(rng, (rng.uniform(30, 70), rng.uniform(0, 12), rng.uniform(0, 18)))
    return np.broadcast_to(colour, (gh, gw, 3)).astype(np.float32)


def _drape(rng: np.random.Generator, gh: int, gw: int, mm: float) -> np.ndarray:
    """A curtain: vertical-ish folds of varying spacing, with soft shading."""
    colour = _pick(rng, _DRAPE)
    angle = rng.normal(0, 0.12) + (math.pi / 2 if rng.random() < 0.2 else 0.0)
    ys, xs = np.mgrid[0:gh, 0:gw].astype(np.float32)
    across = xs * math.cos(angle) + ys * math.sin(angle)
    along = -xs * math.sin(angle) + ys * math.cos(angle)
    spacing = rng.uniform(35, 110) / mm  # coarse px per fold
    across = across + smooth_noise(rng, gh, gw, 200 / mm) * (0.25 * spacing)
    lo = float(across.min()) - 1.0
    knots = np.arange(lo, float(across.max()) + spacing + 1.0, spacing / 4.0)
    phase_steps = (2 * math.pi / 4.0) * np.exp(rng.normal(0, 0.35, len(knots)))
    phase = np.interp(across, knots, np.cumsum(phase_steps)).astype(np.float32)
    del along
    folds = 0.5 + 0.5 * np.sin(phase)
    shade = 0.62 + 0.38 * folds**0.7
    texture = 1.0 + 0.02 * smooth_noise(rng, gh, gw, 2 / mm)
    return colour * (shade * texture)[..., None]


def fabric_albedo(
    rng: np.random.Generator, height: int, width: int, mm_per_px: float, *, folds: bool = False
) -> np.ndarray:
    """Cloth: plain, striped or checked, with weave grain and (optionally) soft folds.

    Returns float32 (height, width, 3) sRGB in [0, 1].
    """
    base = _pick(rng, _FABRIC)
    pattern = rng.random()
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    if pattern < 0.25:  # stripes or checks
        second = _pick(rng, _FABRIC)
        period = rng.uniform(4, 25) / mm_per_px
        angle = rng.uniform(0, math.pi)
        q = xs * math.cos(angle) + ys * math.sin(angle)
        mix = (np.sin(q * (2 * math.pi / period)) > rng.uniform(-0.5, 0.5)).astype(np.float32)
        if rng.random() < 0.4:
            q2 = -xs * math.sin(angle) + ys * math.cos(angle)
            mix = 0.5 * (mix + (np.sin(q2 * (2 * math.pi / period)) > 0))
        out = base * (1 - mix[..., None]) + second * mix[..., None]
    else:
        out = np.broadcast_to(base, (height, width, 3)).astype(np.float32)
    weave_px = max(0.6 / mm_per_px, 1.0)
    shade = 1.0 + 0.04 * smooth_noise(rng, height, width, weave_px, stretch=2.0)
    if folds:
        fold = smooth_noise(rng, height, width, rng.uniform(30, 90) / mm_per_px, stretch=4.0,
                            angle=rng.uniform(0, math.pi))  # fmt: skip
        shade = shade * (0.85 + 0.12 * np.tanh(fold))
    return (out * shade[..., None]).astype(np.float32)


def garment_albedo(
    rng: np.random.Generator,
    height: int,
    width: int,
    mm_per_px: float,
    from_hem: np.ndarray,
) -> np.ndarray:
    """Clothing colour as planes: float32 (3, height, width), sRGB in [0, 1].

    from_hem: (height, width) px inside the garment from its hem (negative outside); a
    band along the hem (waistband, cuff) may get its own colour and a stitch line.
    """
    gh, gw = -(-height // BACKGROUND_FACTOR), -(-width // BACKGROUND_FACTOR)
    low = fabric_albedo(rng, gh, gw, mm_per_px * BACKGROUND_FACTOR)
    out = upsample_planes(low, width, height)
    grain = smooth_noise(rng, height, width, max(0.5 / mm_per_px, 1.0), stretch=2.5)
    grain *= 0.035
    grain += 1.0
    out *= grain[None]
    if rng.random() < 0.55:
        band_px = rng.uniform(8, 35) / mm_per_px
        band_colour = _pick(rng, _FABRIC) if rng.random() < 0.5 else low[gh // 2, gw // 2]
        inband = np.clip(band_px - from_hem + 0.5, 0, 1) * np.float32(0.9)
        stitch = np.clip(1.0 - np.abs(from_hem - band_px) / max(0.4 / mm_per_px, 0.7), 0, 1)
        stitch = 1.0 - 0.25 * stitch
        for c in range(3):
            out[c] += inband * (np.float32(band_colour[c]) - out[c])
            out[c] *= stitch
    return out
