"""Lighting and camera for procedural body photos.

Lighting: Lambert shading of the surface height of each body part by a mostly frontal
light (a flash or the room), an ambient term, a broad specular highlight (flash on
skin oil), colour temperature / white-balance error and lens vignetting.
Camera: slight defocus, sensor noise (luminance and chroma) and JPEG re-encoding.
All random choices come from the given ``numpy.random.Generator``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from training.sources.noise_fields import upsample_planes


@dataclass(frozen=True)
class Light:
    """One photo's lighting.

    direction: unit vector (x right, y down, z towards the camera) pointing to the light.
    ambient: share of light that reaches every surface (0..1).
    specular: strength of the highlight; shininess: its sharpness (Blinn-Phong exponent).
    gains: per-channel (R, G, B) multipliers: exposure times colour temperature.
    vignette: relative darkening at the frame corners (0..1).
    """

    direction: tuple[float, float, float]
    ambient: float
    specular: float
    shininess: float
    gains: tuple[float, float, float]
    vignette: float


def sample_light(rng: np.random.Generator, subject_lightness: float = 60.0) -> Light:
    """Draw the lighting of one photo.

    subject_lightness: L* of the skin; auto-exposure partly brightens photos of dark skin.
    """
    flash = rng.random() < 0.6
    spread = 0.25 if flash else 0.6
    lx, ly = rng.normal(0, spread, 2)
    norm = math.sqrt(lx * lx + ly * ly + 1.0)
    warmth = rng.normal(0.0, 0.05)  # + warm (tungsten), - cool (daylight/flash)
    auto_exposure = float(np.clip((60.0 / max(subject_lightness, 1.0)) ** 0.35, 1.0, 1.35))
    exposure = rng.uniform(0.85, 1.12) * auto_exposure
    gains = (
        exposure * (1.0 + warmth),
        exposure * (1.0 + rng.normal(0.0, 0.015)),
        exposure * (1.0 - warmth),
    )
    return Light(
        direction=(lx / norm, ly / norm, 1.0 / norm),
        ambient=float(rng.uniform(0.25, 0.5)),
        specular=float(rng.uniform(0.02, 0.12) if flash else rng.uniform(0.0, 0.04)),
        shininess=float(rng.uniform(6, 30)),
        gains=tuple(float(g) for g in gains),  # type: ignore[arg-type]
        vignette=float(rng.uniform(0.0, 0.35)),
    )


def shade_surface(z: np.ndarray, spacing: float, light: Light) -> tuple[np.ndarray, np.ndarray]:
    """Diffuse shading and specular highlight of a height field.

    z: float32 (h, w) surface height in full-resolution pixels, sampled every ``spacing`` px.
    Returns (shade, specular), float32 (h, w): shade in [ambient, 1], specular >= 0.
    """
    gy, gx = np.gradient(z, spacing)
    np.clip(gx, -8, 8, out=gx)
    np.clip(gy, -8, 8, out=gy)
    inv = 1.0 / np.sqrt(gx * gx + gy * gy + 1.0)
    lx, ly, lz = light.direction
    diffuse = np.maximum((-gx * lx - gy * ly + lz) * inv, 0.0)
    shade = light.ambient + (1.0 - light.ambient) * diffuse
    hx, hy, hz = lx, ly, lz + 1.0
    hn = math.sqrt(hx * hx + hy * hy + hz * hz)
    facing = np.maximum((-gx * hx - gy * hy + hz) * inv / hn, 0.0)
    specular = light.specular * facing**light.shininess
    return shade.astype(np.float32), specular.astype(np.float32)


def vignette_field(height: int, width: int, strength: float) -> np.ndarray:
    """Radial falloff on a (height, width) grid covering the frame, float32: 1 at the
    centre, 1 - strength at the corners (grid may be coarser than the photo)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    r2 = ((xs + 0.5) / width - 0.5) ** 2 + ((ys + 0.5) / height - 0.5) ** 2
    return (1.0 - strength * (r2 / 0.5) ** 1.2).astype(np.float32)


def camera_finish(rng: np.random.Generator, planes: np.ndarray) -> np.ndarray:
    """Turn a lit image, float32 planes (3, H, W) sRGB (values >= 0), into a camera's
    uint8 RGB output (H, W, 3): sensor noise, quantisation, slight defocus and (usually)
    JPEG re-encoding. ``planes`` is used as scratch space.
    """
    _, height, width = planes.shape
    grain = rng.random((height, width), dtype=np.float32)
    grain -= 0.5
    grain *= np.float32(rng.uniform(0.003, 0.018) * 3.46)
    planes += grain[None]
    if rng.random() < 0.4:  # chroma noise, blotchy after demosaicing
        chroma = rng.standard_normal((height // 4 + 1, width // 4 + 1, 3), dtype=np.float32)
        chroma *= np.float32(rng.uniform(0.003, 0.012))
        planes += upsample_planes(chroma, width, height)
    # |x| * 255 with rounding and saturation; values are >= 0 up to the noise just added
    out = cv2.merge([cv2.convertScaleAbs(planes[c], alpha=255.0) for c in range(3)])
    sigma = rng.uniform(0.0, 1.1)
    if sigma > 0.35:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    if rng.random() < 0.65:
        quality = int(rng.integers(55, 96))
        ok, buffer = cv2.imencode(".jpg", out[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:  # pragma: no cover - OpenCV always encodes a valid uint8 image
            raise RuntimeError("JPEG encoding failed")
        out = np.ascontiguousarray(cv2.imdecode(buffer, cv2.IMREAD_COLOR)[:, :, ::-1])
    return out
