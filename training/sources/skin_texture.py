"""Skin albedo and hair for procedural body photos, sized in millimetres.

Colour variation is modelled as absorption by melanin (brown: blotches, freckles),
haemoglobin (red: flushing) and deep veins (blue-grey), applied multiplicatively to
the photo's constitutive skin colour; relief (pores ~0.1 mm, fine criss-cross skin
lines) darkens luminance. Features smaller than a pixel fade out, so one generator
serves close-ups at 0.08 mm/px and whole backs at 0.6 mm/px.

Images are float32 sRGB in [0, 1], shape (H, W, 3); x right, y down.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from training.sources.body_shapes import SkinFeature
from training.sources.noise_fields import fractal_noise, smooth_noise, upsample, upsample_planes
from training.sources.skin_tones import SkinTone

# Relative absorption per sRGB channel (R, G, B).
MELANIN = np.array([0.55, 0.8, 1.0], np.float32)
HAEMOGLOBIN = np.array([0.04, 1.0, 0.55], np.float32)
DEEP_VEIN = np.array([1.0, 0.72, 0.35], np.float32)

#: Probability that a photo of the region shows terminal (dark, long) hair.
TERMINAL_HAIR_PROBABILITY = {"leg": 0.6, "arm": 0.6, "chest": 0.45, "abdomen": 0.4, "back": 0.2}
MAX_TERMINAL_HAIRS = 3500
MAX_VELLUS_HAIRS = 2500


def skin_albedo(
    rng: np.random.Generator,
    height: int,
    width: int,
    tone: SkinTone,
    mm_per_px: float,
    region: str,
    hair_angle: float,
    features: tuple[SkinFeature, ...] = (),
    gains: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> np.ndarray:
    """Skin colour before shading, as planes: float32 (3, height, width), sRGB in [0, 1].

    gains: per-channel camera multipliers folded into the colour (saves a full pass).
    """
    light = float(np.clip((tone.lab[0] - 30.0) / 45.0, 0.0, 1.0))  # 0 very dark .. 1 very light
    factor = 8 if mm_per_px > 0.2 else 4
    gh, gw = -(-height // factor), -(-width // factor)
    px_low = mm_per_px * factor  # mm per coarse pixel
    melanin = fractal_noise(rng, gh, gw, rng.uniform(12, 35) / px_low, octaves=3)
    melanin *= rng.uniform(0.02, 0.07)
    blood = fractal_noise(rng, gh, gw, rng.uniform(6, 20) / px_low, octaves=2)
    blood = np.maximum(blood + rng.normal(0.0, 0.3), -0.5) * rng.uniform(0.008, 0.035) * light
    absorb = melanin[..., None] * MELANIN + blood[..., None] * HAEMOGLOBIN
    vein_visibility = light * rng.uniform(0.0, 1.0) * (0.5 if region == "back" else 1.0)
    if vein_visibility > 0.05:
        veins = smooth_noise(rng, gh, gw, rng.uniform(5, 10) / px_low, stretch=4.0,
                             angle=hair_angle + rng.normal(0, 0.4))  # fmt: skip
        veins = np.clip(1.0 - np.abs(veins) / 0.25, 0.0, 1.0) ** 2
        veins *= smooth_noise(rng, gh, gw, 30 / px_low) > 0.2
        absorb += (veins * (0.07 * vein_visibility))[..., None] * DEEP_VEIN
    colour = np.asarray(tone.rgb, np.float32) * np.asarray(gains, np.float32)
    albedo = upsample_planes(np.exp(-absorb) * colour, width, height)

    # Fine luminance relief: pores and the criss-cross skin lines.
    pore_px = rng.uniform(0.3, 0.5) / mm_per_px
    relief = smooth_noise(rng, height, width, pore_px)
    resolved = float(np.clip((pore_px - 1.0) / 3.0, 0.0, 1.0))
    if resolved > 0:  # sparse dark pores
        relief -= 1.1
        np.maximum(relief, 0.0, out=relief)
        relief *= -0.08 * resolved
    else:  # pores below a pixel: fine grain only
        relief *= 0.01
    relief += 1.0
    line_px = rng.uniform(0.25, 0.45) / mm_per_px
    if line_px >= 1.5:
        depth = rng.uniform(0.025, 0.06) * min(1.0, (line_px - 1.0) / 3.0)
        base_angle = rng.uniform(0, math.pi)
        for offset in (0.0, rng.uniform(1.0, 2.0)):
            lines = smooth_noise(rng, height, width, line_px, stretch=rng.uniform(3, 7),
                                 angle=base_angle + offset)  # fmt: skip
            np.abs(lines, out=lines)
            lines *= -3.5
            lines += 1.0
            np.maximum(lines, 0.0, out=lines)
            lines *= -depth
            relief += lines
    pigment = _pigment_spots(rng, height, width, tone, mm_per_px, region, light)
    red = _red_specks(rng, height, width, mm_per_px, light)
    veins = _spider_veins(rng, height, width, mm_per_px, region, light)
    if veins is not None:
        red = veins if red is None else np.maximum(red, veins, out=red)
    # the fine mottle is partly melanin (brown), partly blood (pink), more so on light skin
    redness = rng.uniform(0.0, 0.6) * light
    mottle_colour = MELANIN * (1.0 - redness) + HAEMOGLOBIN * redness
    plane = np.empty_like(relief)
    for c in range(3):  # albedo *= relief - mottle colour * pigment - haemoglobin * red
        np.multiply(pigment, np.float32(-mottle_colour[c]), out=plane)
        plane += relief
        if red is not None:
            plane -= red * np.float32(HAEMOGLOBIN[c])
        albedo[c] *= plane
    for feature in features:
        _draw_feature(albedo, feature)
    return albedo


def _pigment_spots(
    rng: np.random.Generator,
    height: int,
    width: int,
    tone: SkinTone,
    mm_per_px: float,
    region: str,
    light: float,
) -> np.ndarray:
    """Melanin density of mottling (always) and freckles (often on light skin), float32 (H, W)."""
    cell = max(rng.uniform(0.3, 0.9) / mm_per_px, 1.5)
    spots = smooth_noise(rng, height, width, cell)
    chance = {1: 0.6, 2: 0.5, 3: 0.3, 4: 0.15, 5: 0.08, 6: 0.04}[tone.fitzpatrick]
    if region in ("back", "arm", "chest"):
        chance = min(1.0, chance * 1.25)
    mottle = rng.uniform(0.008, 0.03)
    if rng.random() >= chance:
        spots *= mottle
        return spots
    gh, gw = -(-height // 16), -(-width // 16)
    density = upsample(smooth_noise(rng, gh, gw, 50 / (mm_per_px * 16)), width, height)
    freckles = smooth_noise(rng, height, width, max(rng.uniform(0.7, 1.8) / mm_per_px, 1.5))
    freckles += density * np.float32(rng.uniform(0.3, 0.8))
    freckles -= rng.uniform(1.0, 1.9)
    freckles *= 1.3
    np.clip(freckles, 0.0, 1.0, out=freckles)
    freckles *= rng.uniform(0.08, 0.25) * (0.4 + 0.6 * light)
    spots *= mottle
    spots += freckles
    return spots


def _red_specks(
    rng: np.random.Generator, height: int, width: int, mm_per_px: float, light: float
) -> np.ndarray | None:
    """Sparse tiny red dots (follicles, petechiae, < 0.6 mm), float32 (H, W), or None."""
    cell = rng.uniform(0.25, 0.5) / mm_per_px
    if cell < 1.2 or rng.random() < 0.4:
        return None
    specks = smooth_noise(rng, height, width, cell)
    specks -= rng.uniform(1.7, 2.4)
    np.clip(specks, 0.0, 1.0, out=specks)
    specks *= rng.uniform(0.1, 0.28) * light
    return specks


def _spider_veins(
    rng: np.random.Generator, height: int, width: int, mm_per_px: float, region: str, light: float
) -> np.ndarray | None:
    """Fine red-purple telangiectasia: a few meandering threads (0.1-0.2 mm wide, 3-15 mm
    long) and sometimes a faint reticular network; float32 (H, W) haemoglobin, or None."""
    chance = {"leg": 0.5, "chest": 0.35, "back": 0.3, "abdomen": 0.25, "arm": 0.25}[region]
    if light < 0.45 or mm_per_px > 0.3 or rng.random() >= chance:
        return None
    canvas = np.zeros((height, width), np.uint8)
    count = int(rng.integers(3, 25))
    steps = 12
    lengths = rng.uniform(3, 15, count) / mm_per_px
    heading = rng.uniform(0, 2 * math.pi, count)[:, None] + np.cumsum(
        rng.normal(0, 0.6, (count, steps)), axis=1
    )
    step = (lengths / steps)[:, None]
    xs = rng.uniform(0, width, count)[:, None] + np.cumsum(np.cos(heading) * step, axis=1)
    ys = rng.uniform(0, height, count)[:, None] + np.cumsum(np.sin(heading) * step, axis=1)
    pts = np.round(np.stack([xs, ys], axis=2) * 8).astype(np.int32)
    value = int(255 * min(1.0, 0.15 / mm_per_px) * rng.uniform(0.4, 0.8))
    cv2.polylines(canvas, list(pts), False, max(value, 20), 1, cv2.LINE_AA, 3)
    veins = canvas.astype(np.float32) * np.float32(rng.uniform(0.25, 0.5) * light / 255.0)
    return veins


def _draw_feature(albedo: np.ndarray, feature: SkinFeature) -> None:
    """Areola (pigmented disc with a nipple) or navel (shadowed slit), soft-edged, in place."""
    height, width = albedo.shape[1:]
    r = feature.radius
    x0, x1 = int(max(0, feature.x - 1.6 * r)), int(min(width, feature.x + 1.6 * r + 1))
    y0, y1 = int(max(0, feature.y - 1.6 * r)), int(min(height, feature.y + 1.6 * r + 1))
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    if feature.kind == "areola":
        d = np.hypot(xx - feature.x, yy - feature.y) / max(r, 0.5)
        disc = np.clip((1.15 - d) / 0.3, 0, 1)
        nipple = np.clip((0.35 - d) / 0.15, 0, 1)
        colour = np.exp(-(MELANIN * 0.4 + HAEMOGLOBIN * 0.12))
        centre = np.exp(-(MELANIN * 0.25 + HAEMOGLOBIN * 0.1))
        for c in range(3):
            albedo[c, y0:y1, x0:x1] *= (1.0 - disc * (1.0 - colour[c])) * (
                1.0 - nipple * (1.0 - centre[c])
            )
    else:
        d = np.hypot((xx - feature.x) * 1.6, yy - feature.y) / max(r, 0.5)
        hole = np.clip((1.0 - d) / 0.7, 0, 1) ** 1.5
        albedo[:, y0:y1, x0:x1] *= 1.0 - hole * 0.55


def hair_layer(
    rng: np.random.Generator,
    height: int,
    width: int,
    tone: SkinTone,
    mm_per_px: float,
    region: str,
    hair_angle: float,
    skin_area_px: float,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Terminal and vellus hair as (coverage uint8 (H, W), 255 = opaque; colour float32 (3,)).

    Hairs are thin curved polylines (0.05-0.1 mm wide, 3-25 mm long) drawn over the whole
    frame; the caller keeps them on and near skin. None when the photo shows no hair.
    """
    canvas = np.zeros((height, width), np.uint8)
    area_cm2 = skin_area_px * (mm_per_px / 10.0) ** 2
    drew = False
    if rng.random() < TERMINAL_HAIR_PROBABILITY[region]:
        density = math.exp(rng.uniform(math.log(0.5), math.log(25.0)))  # hairs per cm^2
        count = int(min(MAX_TERMINAL_HAIRS, density * area_cm2))
        # fewer hairs drawn than the density asks for: make each a little more visible
        boost = min(2.0, math.sqrt(density * area_cm2 / max(count, 1)))
        if count > 0:
            _draw_hairs(rng, canvas, count, mm_per_px, hair_angle, (2.5, 16.0),
                        rng.uniform(0.05, 0.1), boost, spread=rng.uniform(0.25, 0.8))  # fmt: skip
            drew = True
        colour_lab = _terminal_hair_lab(rng, tone)
    else:
        colour_lab = (min(tone.lab[0] + 8, 85), tone.lab[1] * 0.5, tone.lab[2] + 5)
    if mm_per_px < 0.2 and rng.random() < 0.7:
        count = int(min(MAX_VELLUS_HAIRS, rng.uniform(10, 40) * area_cm2))
        _draw_hairs(rng, canvas, count, mm_per_px, hair_angle, (1.0, 4.0), 0.03, 0.35,
                    spread=0.6)  # fmt: skip
        drew = drew or count > 0
    if not drew:
        return None
    from training.sources.skin_tones import lab_to_rgb

    return canvas, lab_to_rgb(colour_lab).astype(np.float32)


def _terminal_hair_lab(rng: np.random.Generator, tone: SkinTone) -> tuple[float, float, float]:
    roll = rng.random()
    if tone.fitzpatrick <= 2 and roll < 0.3:  # blond
        return (rng.uniform(45, 62), rng.uniform(2, 6), rng.uniform(15, 25))
    if tone.fitzpatrick <= 2 and roll < 0.38:  # red
        return (rng.uniform(35, 45), rng.uniform(18, 26), rng.uniform(22, 30))
    if roll > 0.92:  # grey
        return (rng.uniform(55, 70), 0.0, rng.uniform(0, 4))
    return (rng.uniform(8, 26), rng.uniform(1, 5), rng.uniform(2, 10))


def _draw_hairs(
    rng: np.random.Generator,
    canvas: np.ndarray,
    count: int,
    mm_per_px: float,
    main_angle: float,
    length_mm: tuple[float, float],
    width_mm: float,
    boost: float,
    spread: float,
) -> None:
    """Draw ``count`` curved hairs into ``canvas`` (uint8 coverage), in 3 opacity groups."""
    height, width = canvas.shape
    points_per_hair = 7
    lengths = np.exp(rng.uniform(*np.log(length_mm), size=count)) / mm_per_px
    starts = rng.uniform((-20, -20), (width + 20, height + 20), size=(count, 2))
    angle0 = main_angle + rng.normal(0, spread, size=count)
    angle0 += np.where(rng.random(count) < 0.1, math.pi, 0.0)  # some grow the other way
    bend = rng.normal(0, 1.8, size=count)  # total turning in radians
    steps = np.linspace(0, 1, points_per_hair)
    wiggle = rng.normal(0, 0.08, size=(count, points_per_hair))
    angles = angle0[:, None] + bend[:, None] * steps[None, :] + wiggle
    step_len = (lengths / (points_per_hair - 1))[:, None]
    dx = np.cos(angles) * step_len
    dy = np.sin(angles) * step_len
    dx[:, 0] = 0
    dy[:, 0] = 0
    xs = starts[:, :1] + np.cumsum(dx, axis=1)
    ys = starts[:, 1:] + np.cumsum(dy, axis=1)
    shift = 3
    pts = np.stack([xs, ys], axis=2) * (1 << shift)
    pts = np.round(pts).astype(np.int32)
    width_px = width_mm / mm_per_px
    thickness = 1 if width_px < 1.6 else 2
    base_opacity = min(1.0, width_px / thickness) * boost
    groups = np.array_split(np.arange(count), 3)
    root = points_per_hair - 2  # the last segments are the thinner, paler tip
    for group, level in zip(groups, (0.35, 0.6, 0.9), strict=True):
        if len(group) == 0:
            continue
        value = int(np.clip(base_opacity * level * 255, 8, 255))
        cv2.polylines(canvas, list(pts[group, :root]), False, value, thickness, cv2.LINE_AA, shift)
        tip = pts[group, root - 1 :]
        cv2.polylines(canvas, list(tip), False, max(value // 2, 4), 1, cv2.LINE_AA, shift)
