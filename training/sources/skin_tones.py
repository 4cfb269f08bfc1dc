"""Skin colours across Fitzpatrick types I-VI, sampled in CIE L*a*b*.

Ranges follow colorimetric studies of constitutive skin colour (L* from about 75 for
very light to about 25 for very dark skin, b* 9-22, a* 6-18), the classes being
ordered by the individual typology angle ITA = atan((L* - 50) / b*). Each photo gets
its own draw, so hue and redness vary between photos of one type.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

#: Fitzpatrick type -> (L* range, b* range) of constitutive skin colour.
FITZPATRICK_LAB: dict[int, tuple[tuple[float, float], tuple[float, float]]] = {
    1: ((68.0, 76.0), (10.0, 15.0)),
    2: ((62.0, 70.0), (13.0, 18.5)),
    3: ((56.0, 64.0), (15.5, 21.0)),
    4: ((48.0, 57.0), (17.0, 22.0)),
    5: ((37.0, 48.0), (14.5, 20.5)),
    6: ((24.0, 37.0), (8.5, 15.5)),
}
#: How often each type is drawn when none is asked for (I..VI).
FITZPATRICK_WEIGHTS = np.array([0.14, 0.2, 0.2, 0.18, 0.14, 0.14])
ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV", 5: "V", 6: "VI"}


def fitzpatrick_of_source(source: str) -> int:
    """The Fitzpatrick type (1-6) a body photo's source names, as procedural bodies do
    ("procedural:<region>:fitzpatrick-<I..VI>"); 0 when it names none (real photos)."""
    numbers = {roman: number for number, roman in ROMAN.items()}
    for part in source.split(":"):
        if part.startswith("fitzpatrick-"):
            return numbers.get(part.removeprefix("fitzpatrick-"), 0)
    return 0


@dataclass(frozen=True)
class SkinTone:
    """One photo's constitutive skin colour.

    fitzpatrick: 1..6.
    lab: (L* 0-100, a*, b*) under D65.
    rgb: the same colour as sRGB floats in [0, 1].
    """

    fitzpatrick: int
    lab: tuple[float, float, float]
    rgb: tuple[float, float, float]

    @property
    def ita_degrees(self) -> float:
        """Individual typology angle in degrees (higher is lighter)."""
        return math.degrees(math.atan2(self.lab[0] - 50.0, self.lab[2]))


def lab_to_rgb(lab: tuple[float, float, float] | np.ndarray) -> np.ndarray:
    """CIE L*a*b* (D65) to sRGB float32 in [0, 1]; accepts one colour (3,) or an (..., 3) array."""
    arr = np.asarray(lab, np.float32)
    flat = arr.reshape(-1, 1, 3)
    rgb = cv2.cvtColor(flat, cv2.COLOR_Lab2RGB)
    return np.clip(rgb.reshape(arr.shape), 0.0, 1.0)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB float in [0, 1] (..., 3) to CIE L*a*b* (D65) float32 (..., 3)."""
    arr = np.asarray(rgb, np.float32)
    return cv2.cvtColor(arr.reshape(-1, 1, 3), cv2.COLOR_RGB2Lab).reshape(arr.shape)


def sample_skin_tone(rng: np.random.Generator, fitzpatrick: int | None = None) -> SkinTone:
    """Draw a skin colour; ``fitzpatrick`` (1..6) fixes the type, else it is drawn too."""
    if fitzpatrick is None:
        fitzpatrick = int(rng.choice(6, p=FITZPATRICK_WEIGHTS / FITZPATRICK_WEIGHTS.sum())) + 1
    if fitzpatrick not in FITZPATRICK_LAB:
        raise ValueError(f"Fitzpatrick type must be 1..6, got {fitzpatrick}")
    (l_lo, l_hi), (b_lo, b_hi) = FITZPATRICK_LAB[fitzpatrick]
    lightness = float(rng.uniform(l_lo, l_hi))
    yellow = float(rng.uniform(b_lo, b_hi))
    # Redness: lighter skin shows more blood; per-photo spread for flushed/sallow skin.
    red_mean = 10.5 if fitzpatrick <= 3 else 9.5
    red = float(np.clip(rng.normal(red_mean, 2.3), 5.0, 18.0))
    lab = (lightness, red, yellow)
    rgb = tuple(float(v) for v in lab_to_rgb(lab))
    return SkinTone(fitzpatrick=fitzpatrick, lab=lab, rgb=rgb)  # type: ignore[arg-type]
