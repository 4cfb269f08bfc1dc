"""Tiny, fast stand-in bodies and lesions for the synthesis tests (not product code)."""

from __future__ import annotations

import cv2
import numpy as np

from training.sources.base import BENIGN, BodyPhoto, LesionPatch
from training.synthesis.sources import SynthSources


def standin_body(rng: np.random.Generator, width: int, height: int) -> BodyPhoto:
    """A skin-coloured ellipse with mottled texture and two moles on a grey-blue wall."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy = width * rng.uniform(0.45, 0.55), height * rng.uniform(0.45, 0.55)
    skin = ((xx - cx) / (0.42 * width)) ** 2 + ((yy - cy) / (0.45 * height)) ** 2 <= 1.0
    tone = np.array([215, 165, 140], np.float32) * rng.uniform(0.6, 1.05)
    noise = cv2.GaussianBlur(rng.normal(0, 12, (height, width)).astype(np.float32), (0, 0), 3)
    shade = 1.0 - 0.25 * (((xx - cx) / width) ** 2 + ((yy - cy) / height) ** 2)
    img = np.where(
        skin[..., None],
        tone * shade[..., None] + noise[..., None],
        np.array([120, 130, 150], np.float32),
    )
    moles = np.zeros((height, width), np.uint16)
    for k in (1, 2):
        mx, my = int(cx + (k - 1.5) * 0.3 * width), int(cy + 0.2 * height)
        cv2.circle(moles, (mx, my), 3, k, -1)
    img[moles > 0] *= 0.45
    return BodyPhoto(
        image=np.clip(img, 0, 255).astype(np.uint8),
        skin_mask=skin,
        mm_per_px=0.35,
        mole_instances=moles,
        region="back",
        source="standin-body",
    )


def standin_lesion(rng: np.random.Generator, label: int, diameter_px: int) -> LesionPatch:
    """An irregular brown blob (darker, bluer for malignant) on a patch of skin."""
    size = int(diameter_px * 2)
    img = np.zeros((size, size, 3), np.float32) + np.array([205, 160, 135], np.float32)
    c = size / 2
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    radii = diameter_px / 2 * (1 + 0.15 * rng.standard_normal(24))
    pts = np.stack([c + radii * np.cos(angles), c + radii * np.sin(angles)], 1).astype(np.int32)
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [pts], 1)
    colour = [110, 70, 50] if label == BENIGN else [70, 50, 60]
    img[mask > 0] = colour
    img += rng.normal(0, 4, img.shape)
    return LesionPatch(
        image=np.clip(img, 0, 255).astype(np.uint8),
        mask=mask.astype(bool),
        label=label,
        diagnosis="NEV" if label == BENIGN else "MEL",
        source=f"standin:{diameter_px}",
        diameter_mm=None,
    )


STANDINS = SynthSources(body=standin_body, lesion=standin_lesion)
