"""Procedural photos of body regions with their exact skin masks.

A photo is composed back to front: a background (wall, curtain, exam-table paper,
furniture, bedding, dark booth), body parts (silhouettes from
:mod:`training.sources.body_shapes`) covered by skin (:mod:`training.sources.skin_texture`)
with small benign moles (:mod:`training.sources.body_moles`), clothing over the ends of
body parts, hair, lighting and a camera (:mod:`training.sources.photo_effects`).
The skin mask is where skin is the front-most surface (coverage >= 0.5).

Scale is physical: ``mm_per_px`` is drawn per photo (about 0.08 to 0.6 mm/px, from a
close clinical crop to a whole back) and every texture feature is sized in mm.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from training.sources.backgrounds import garment_albedo, render_background
from training.sources.base import BodyPhoto
from training.sources.body_moles import place_moles
from training.sources.body_shapes import (
    REGIONS,
    BodyLayout,
    evaluate_tube,
    garment_distance,
    sample_layout,
)
from training.sources.noise_fields import lowres_grid, smooth_noise, upsample
from training.sources.photo_effects import (
    Light,
    camera_finish,
    sample_light,
    shade_surface,
    vignette_field,
)
from training.sources.skin_texture import hair_layer, skin_albedo
from training.sources.skin_tones import ROMAN, sample_skin_tone

__all__ = ["REGIONS", "generate_body"]

_FACTOR = 4  # geometry and shading are computed on a grid this many times coarser


class _Layer:
    """One surface of the photo at coarse resolution: skin of a tube or a garment."""

    def __init__(self, kind: str, dist: np.ndarray, z: np.ndarray, from_hem: np.ndarray | None):
        self.kind = kind
        self.dist = dist
        self.z = z
        self.from_hem = from_hem


def _layers(
    rng: np.random.Generator, layout: BodyLayout, xs: np.ndarray, ys: np.ndarray
) -> list[_Layer]:
    layers: list[_Layer] = []
    gh, gw = xs.shape
    for index, tube in enumerate(layout.tubes):
        field = evaluate_tube(tube, xs, ys, layout.mm_per_px)
        layers.append(_Layer("skin", field.dist, field.z, None))
        for garment in layout.garments:
            if garment.tube_index != index:
                continue
            dist, from_hem = garment_distance(garment, field)
            fold_cell = rng.uniform(15, 45) / (layout.mm_per_px * _FACTOR)
            folds = smooth_noise(rng, gh, gw, fold_cell, stretch=3.0, angle=tube.angle)
            fold_height = rng.uniform(1.0, 6.0) / layout.mm_per_px
            z = field.z * garment.flare + np.float32(fold_height) * np.tanh(folds)
            z += np.float32(3.0 / layout.mm_per_px) * np.clip(dist / 4.0, 0, 1)  # cloth thickness
            layers.append(_Layer("cloth", dist, z.astype(np.float32), from_hem))
    return layers


def generate_body(
    rng: np.random.Generator,
    *,
    width: int = 1024,
    height: int = 768,
    region: str | None = None,
    fitzpatrick: int | None = None,
) -> BodyPhoto:
    """Draw one procedural photo of a body region.

    Args:
        rng: the only source of randomness (same state, same photo, bit for bit).
        width, height: photo size in pixels.
        region: "back", "chest", "abdomen", "arm", "leg", or None to draw one.
        fitzpatrick: skin type 1..6, or None to draw one.

    Returns:
        BodyPhoto with image (H, W, 3) uint8 RGB, skin_mask (H, W) bool (skin is the
        front-most surface), mole_instances (H, W) uint16 (pre-existing benign moles and
        angiomas, each wholly inside the skin mask), mm_per_px, region and
        source "procedural:<region>:fitzpatrick-<I..VI>".
    """
    if width < 32 or height < 32:
        raise ValueError(f"body photo must be at least 32x32 px, got {width}x{height}")
    layout = sample_layout(rng, region, width, height)
    tone = sample_skin_tone(rng, fitzpatrick)
    light = sample_light(rng, subject_lightness=tone.lab[0])
    mm = layout.mm_per_px
    xs, ys = lowres_grid(height, width, _FACTOR)
    layers = _layers(rng, layout, xs, ys)

    # Shading per layer at coarse resolution, with contact shadows cast by later layers;
    # skin shading is composited there too (it is smooth; the silhouettes are not).
    gh, gw = xs.shape
    vignette = vignette_field(gh, gw, light.vignette)
    reach = 8.0 / (mm * _FACTOR) + 1.0
    shade_skin_low: np.ndarray | None = None
    spec_skin_low = np.zeros((gh, gw), np.float32)
    cloth_shading: list[tuple[np.ndarray, np.ndarray]] = []
    for i, layer in enumerate(layers):
        shade, spec = shade_surface(layer.z, float(_FACTOR), light)
        for later in layers[i + 1 :]:
            outside = np.minimum(later.dist, 0.0) / (_FACTOR * reach)
            shade *= 1.0 - 0.35 * np.exp(outside) * (later.dist < 0)
        if layer.kind == "cloth":
            cloth_shading.append((shade * vignette, spec * (0.25 * vignette)))
            continue
        alpha = np.clip(layer.dist + 0.5, 0.0, 1.0)
        if shade_skin_low is None:
            shade_skin_low = shade
        else:
            shade_skin_low += alpha * (shade - shade_skin_low)
        spec_skin_low += alpha * (spec - spec_skin_low)
    assert shade_skin_low is not None  # every layout has at least one body part

    # Coverage at full resolution (front-most surface wins), one channel at a time.
    gains = np.asarray(light.gains, np.float32)
    w_bg = np.ones((height, width), np.float32)
    w_skin = np.zeros_like(w_bg)
    w_cloth = np.zeros_like(w_bg)
    any_skin = any_cloth = False  # skip multiplying weights that are still all zero
    cloth_rgb: np.ndarray | None = None
    cloth_index = 0
    for layer in layers:
        if layer.kind == "cloth":
            shade_low, spec_low = cloth_shading[cloth_index]
            cloth_index += 1
        if float(layer.dist.max()) < -1.0:
            continue
        alpha = upsample(layer.dist, width, height)
        alpha += 0.5
        np.clip(alpha, 0.0, 1.0, out=alpha)
        keep = 1.0 - alpha
        w_bg *= keep
        if any_skin:
            w_skin *= keep
        if any_cloth:
            w_cloth *= keep
        if layer.kind == "skin":
            w_skin += alpha
            any_skin = True
            continue
        w_cloth += alpha
        any_cloth = True
        assert layer.from_hem is not None
        colour = garment_albedo(rng, height, width, mm, upsample(layer.from_hem, width, height))
        colour *= upsample(shade_low, width, height)[None]
        colour += upsample(spec_low, width, height)[None]
        colour *= gains[:, None, None]
        if cloth_rgb is None:
            cloth_rgb = colour
        else:
            cloth_rgb += alpha[None] * (colour - cloth_rgb)

    bar = _black_bar(rng, height)
    if bar is not None:
        w_skin[bar] = 0.0
    skin_mask = w_skin >= 0.5

    # Skin colour, moles and hair.
    albedo = skin_albedo(rng, height, width, tone, mm, layout.region, layout.hair_angle,
                         layout.features, light.gains)  # fmt: skip
    allowed = cv2.erode(skin_mask.view(np.uint8), np.ones((5, 5), np.uint8)).view(bool)
    allowed = allowed & _away_from_features(layout, height, width)
    mole_instances, _ = place_moles(rng, albedo, allowed, tone, mm)
    hair = hair_layer(rng, height, width, tone, mm, layout.region, layout.hair_angle,
                      float(skin_mask.sum()))  # fmt: skip

    # Background lit by the room, shadowed by the body; then everything composited.
    bg_light = _body_shadow(rng, layers, light) * vignette
    image = render_background(rng, height, width, mm, light=bg_light, gains=light.gains)
    image *= w_bg[None]
    shade_skin = upsample(shade_skin_low * vignette, width, height)
    shade_skin *= w_skin
    albedo *= shade_skin[None]
    image += albedo
    if float(spec_skin_low.max()) > 1.0 / 512.0:  # a highlight worth a full-size pass
        spec_skin = upsample(spec_skin_low * vignette, width, height)
        spec_skin *= w_skin
        for c in range(3):
            image[c] += spec_skin * gains[c]
    if cloth_rgb is not None:
        cloth_rgb *= w_cloth[None]
        image += cloth_rgb
    if hair is not None:
        canvas, hair_rgb = hair
        near_skin = cv2.dilate(skin_mask.view(np.uint8), np.ones((9, 9), np.uint8))
        coverage = cv2.multiply(canvas, near_skin, dtype=cv2.CV_32F)
        coverage *= np.float32(1.0 / 255.0)
        lit = np.maximum(shade_skin, np.float32(0.4))  # hairs beyond the outline: room light
        tmp = np.empty_like(lit)
        for c in range(3):  # image += coverage * (hair colour * light - image)
            np.multiply(lit, np.float32(hair_rgb[c] * gains[c]), out=tmp)
            tmp -= image[c]
            tmp *= coverage
            image[c] += tmp
    if bar is not None:
        image[:, bar] = rng.uniform(0.0, 0.03)
    photo = camera_finish(rng, image)
    return BodyPhoto(
        image=photo,
        skin_mask=skin_mask,
        mm_per_px=float(mm),
        mole_instances=mole_instances,
        region=layout.region,
        source=f"procedural:{layout.region}:fitzpatrick-{ROMAN[tone.fitzpatrick]}",
    )


def _black_bar(rng: np.random.Generator, height: int) -> slice | None:
    """Rows blacked out along the top or bottom edge, as in total-body-photography tiles."""
    if rng.random() >= 0.08:
        return None
    rows = int(rng.uniform(0.02, 0.07) * height)
    return slice(0, rows) if rng.random() < 0.7 else slice(height - rows, height)


def _away_from_features(layout: BodyLayout, height: int, width: int) -> np.ndarray:
    """False on and around areolae and the navel, where no mole is drawn."""
    keep = np.ones((height, width), np.uint8)
    for feature in layout.features:
        centre = (int(round(feature.x)), int(round(feature.y)))
        cv2.circle(keep, centre, int(math.ceil(feature.radius * 1.8)) + 2, 0, -1)
    return keep.view(bool)


def _body_shadow(rng: np.random.Generator, layers: list[_Layer], light: Light) -> np.ndarray:
    """Soft shadow the body and clothing cast on the background, on the coarse grid:
    float32 (gh, gw) in (0, 1]."""
    cover = np.zeros_like(layers[0].dist)
    for layer in layers:
        cover = np.maximum(cover, np.clip(layer.dist + 0.5, 0, 1))
    offset = rng.uniform(8, 40) / _FACTOR
    dx, dy = -light.direction[0] * offset, -light.direction[1] * offset
    shifted = cv2.warpAffine(cover, np.float32([[1, 0, dx], [0, 1, dy]]), cover.shape[::-1])
    soft = cv2.GaussianBlur(shifted, (0, 0), rng.uniform(3, 12))
    return (1.0 - rng.uniform(0.1, 0.45) * soft).astype(np.float32)
