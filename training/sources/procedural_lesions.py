"""Procedural skin lesions with exact masks, parametrised by the ABCD features.

A lesion is drawn on a patch of plain skin (twice its diameter across, so about one lesion
radius of skin on each side) with a soft edge, ready for Poisson blending. Colour comes
from a small optical model: pigments darken the skin multiplicatively (Beer-Lambert:
melanin absorbs blue most, haemoglobin green and blue), and surface materials (keratin
scale, crust, regression scar, pearly sheen, specular highlights) are mixed on top.
Everything random is drawn from the given ``numpy.random.Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from training.sources.base import BENIGN, MALIGNANT, LesionPatch

BENIGN_KINDS = (
    "nevus",
    "compound_nevus",
    "seborrheic_keratosis",
    "angioma",
    "lentigo",
    "actinic_keratosis",
)
MALIGNANT_KINDS = ("melanoma", "bcc", "scc")
KINDS = BENIGN_KINDS + MALIGNANT_KINDS
DIAGNOSIS = {
    "nevus": "NEV",
    "compound_nevus": "NEV",
    "seborrheic_keratosis": "SEK",
    "angioma": "ANG",
    "lentigo": "LEN",
    "actinic_keratosis": "ACK",
    "melanoma": "MEL",
    "bcc": "BCC",
    "scc": "SCC",
}
#: Typical clinical diameter range in mm per kind.
DIAMETER_MM = {
    "nevus": (2.5, 6.0),
    "compound_nevus": (3.0, 7.0),
    "seborrheic_keratosis": (5.0, 18.0),
    "angioma": (1.5, 5.0),
    "lentigo": (3.0, 12.0),
    "actinic_keratosis": (3.0, 14.0),
    "melanoma": (6.0, 22.0),
    "bcc": (4.0, 15.0),
    "scc": (5.0, 18.0),
}

_MELANIN = np.array([0.55, 0.95, 1.45], np.float32)  # absorbance per unit density, RGB
_BLOOD = np.array([0.15, 1.25, 1.0], np.float32)
_SKIN_TONES = np.array(
    [
        [0.91, 0.76, 0.67],
        [0.84, 0.65, 0.54],
        [0.74, 0.53, 0.40],
        [0.58, 0.40, 0.29],
        [0.40, 0.27, 0.19],
        [0.26, 0.17, 0.12],
    ],
    np.float32,
)


@dataclass(frozen=True)
class LesionParams:
    """The ABCD description of one procedural lesion.

    asymmetry: 0 (round, centred pigment) to 1 (lopsided shape and pigment).
    border_irregularity: 0 (smooth oval) to 1 (notched, ragged border).
    colour_count: number of distinct colours (1-6).
    diameter_px: lesion diameter in output pixels. diameter_mm: clinical size.
    skin_tone: 0 (very fair) to 1 (very dark).
    """

    kind: str
    asymmetry: float
    border_irregularity: float
    colour_count: int
    diameter_px: int
    diameter_mm: float
    skin_tone: float


def _noise(rng: np.random.Generator, size: int, cells: float, octaves: int = 3) -> np.ndarray:
    """Smooth value noise, (size, size) float32, roughly in [-1, 1]."""
    out = np.zeros((size, size), np.float32)
    amplitude, total = 1.0, 0.0
    for _ in range(octaves):
        n = max(2, int(round(cells)))
        grid = rng.standard_normal((n, n)).astype(np.float32)
        out += amplitude * cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
        total += amplitude
        amplitude *= 0.5
        cells *= 2.1
    return out / total


def sample_params(
    rng: np.random.Generator, kind: str | None = None, diameter_px: int = 64
) -> LesionParams:
    """Draw ABCD parameters typical of ``kind`` (any of KINDS; random when None)."""
    if kind is None:
        kind = str(rng.choice(KINDS))
    if kind not in KINDS:
        raise ValueError(f"unknown lesion kind {kind!r}; known: {', '.join(KINDS)}")
    malignant = kind in MALIGNANT_KINDS
    asym = rng.uniform(0.45, 1.0) if kind == "melanoma" else rng.uniform(0.0, 0.45)
    if kind in ("bcc", "scc", "lentigo", "seborrheic_keratosis", "actinic_keratosis"):
        asym = rng.uniform(0.2, 0.7)
    border = rng.uniform(0.5, 1.0) if kind == "melanoma" else rng.uniform(0.05, 0.4)
    if kind in ("scc", "bcc", "actinic_keratosis"):
        border = rng.uniform(0.3, 0.8)
    colours = int(rng.integers(3, 7)) if kind == "melanoma" else int(rng.integers(1, 3))
    if malignant and kind != "melanoma":
        colours = int(rng.integers(2, 5))
    lo, hi = DIAMETER_MM[kind]
    return LesionParams(
        kind=kind,
        asymmetry=float(asym),
        border_irregularity=float(border),
        colour_count=colours,
        diameter_px=int(diameter_px),
        diameter_mm=float(np.exp(rng.uniform(np.log(lo), np.log(hi)))),
        skin_tone=float(rng.beta(1.4, 3.2)),
    )


def _skin(rng: np.random.Generator, size: int, tone: float, scale: float) -> np.ndarray:
    """Plain skin patch (size, size, 3) float32 in [0, 1]: tone, mottling, pores."""
    pos = tone * (len(_SKIN_TONES) - 1)
    i = min(int(pos), len(_SKIN_TONES) - 2)
    base = _SKIN_TONES[i] * (1 - (pos - i)) + _SKIN_TONES[i + 1] * (pos - i)
    base = base * rng.uniform(0.92, 1.06, 3).astype(np.float32)
    red_amp = rng.uniform(0.03, 0.1)
    blotch = np.clip(_noise(rng, size, 4, 2) + 0.2, 0, None)[..., None]  # red, never green
    redness = red_amp * blotch * np.array([0.1, -1.0, -0.7], np.float32)
    mottle = 1 + rng.uniform(0.03, 0.06) * _noise(rng, size, 6 * max(1.0, scale), 3)[..., None]
    fine = 1 + 0.025 * rng.standard_normal((size, size, 1)).astype(np.float32)
    # skin lines: fine furrows in two crossing directions
    lines = np.zeros((size, size), np.float32)
    for _ in range(2):
        grain = rng.standard_normal((size, size)).astype(np.float32)
        length = max(3, int(size / 6))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0 / length
        rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), rng.uniform(0, 180), 1)
        kernel = cv2.warpAffine(kernel, rot, (length, length))
        lines += cv2.filter2D(grain, -1, kernel / max(1e-6, kernel.sum()))
    lines = np.clip(-lines / (lines.std() + 1e-6) - 1.0, 0, None)
    fine = fine * (1 - rng.uniform(0.01, 0.04) * cv2.GaussianBlur(lines, (0, 0), 0.8))[..., None]
    skin = base * mottle * fine * (1 + redness)
    # sun damage: scattered light-brown freckles (older skin, where keratoses and BCC grow)
    spots = int(rng.poisson(rng.uniform(0, 14) * (size / 128) ** 2))
    if spots:
        dots = np.zeros((size, size), np.float32)
        ys, xs = rng.integers(0, size, spots), rng.integers(0, size, spots)
        dots[ys, xs] = rng.uniform(0.5, 1.0, spots)
        dots = cv2.GaussianBlur(dots, (0, 0), max(0.8, size / 60))
        dots /= max(1e-6, float(dots.max()))
        skin = skin * np.exp(-0.35 * dots[..., None] * _MELANIN)
    pores = int(rng.poisson(size * size / (180 * scale * scale)))
    if pores:
        ys, xs = rng.integers(0, size, pores), rng.integers(0, size, pores)
        dots = np.zeros((size, size), np.float32)
        dots[ys, xs] = rng.uniform(0.3, 1.0, pores)
        dots = cv2.GaussianBlur(dots, (0, 0), max(0.5, 0.6 * scale))
        skin *= 1 - 0.25 * (dots / max(1e-6, dots.max()))[..., None]
    return skin


def _shape(
    rng: np.random.Generator, p: LesionParams, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Soft coverage alpha, depth u (0 at border, 1 at centre) and unit coords (x, y)."""
    radius = p.diameter_px / 2
    c = (size - 1) / 2 + rng.normal(0, 0.04 * radius, 2)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    elong = rng.uniform(1.0, 1.25 + 0.4 * p.asymmetry)
    dx, dy = (xx - c[0]) / radius, (yy - c[1]) / radius
    rx = (dx * np.cos(angle) + dy * np.sin(angle)) * np.sqrt(elong)
    ry = (-dx * np.sin(angle) + dy * np.cos(angle)) / np.sqrt(elong)
    theta = np.arctan2(ry, rx)
    rho = np.hypot(rx, ry)
    # border radius as a function of angle, tabulated (cheaper than per-pixel harmonics)
    table_theta = np.linspace(-np.pi, np.pi, 721)
    table = np.ones_like(table_theta)
    for k in (1, 2, 3):
        table += p.asymmetry * 0.16 / k * np.cos(k * table_theta + rng.uniform(0, 2 * np.pi))
    for k in range(4, 14):
        amp = p.border_irregularity * 0.11 * rng.uniform(0.3, 1.0) / (k / 4) ** 1.2
        table += amp * np.cos(k * table_theta + rng.uniform(0, 2 * np.pi))
    index = np.rint((theta + np.pi) * (720 / (2 * np.pi))).astype(np.intp)
    edge = table.astype(np.float32)[index]
    rough = _noise(rng, size, max(3.0, size / 10), 2)
    edge += p.border_irregularity * 0.08 * rough
    sd = edge - rho  # > 0 inside, in units of the radius
    softness = {
        "lentigo": 0.25,
        "melanoma": 0.14,
        "scc": 0.3,
        "bcc": 0.28,
        "actinic_keratosis": 0.4,
        "seborrheic_keratosis": 0.12,
    }.get(p.kind, 0.09)
    soft_px = max(0.6, softness * radius * rng.uniform(0.6, 1.4))
    alpha = np.clip(0.5 + sd * radius / (2 * soft_px), 0, 1)
    alpha = alpha * alpha * (3 - 2 * alpha)
    u = np.clip(sd / np.maximum(edge, 1e-3), 0, 1)
    return alpha.astype(np.float32), u.astype(np.float32), dx, dy


def _shade(rgb: np.ndarray, height: np.ndarray, strength: float, shine: float, rng) -> np.ndarray:
    """Light a raised lesion from the upper left: Lambert shading plus a soft highlight."""
    gy, gx = np.gradient(height)
    light = np.array([-0.6, -0.7]) + rng.normal(0, 0.15, 2)
    lambert = 1 + strength * (gx * light[0] + gy * light[1]) * -1
    out = rgb * np.clip(lambert, 0.6, 1.4)[..., None]
    if shine > 0:
        spec = np.clip(-(gx * light[0] + gy * light[1]), 0, None) * height
        spec = (spec / max(1e-6, spec.max())) ** 3
        out = out + shine * spec[..., None]
    return out


def render_lesion(rng: np.random.Generator, p: LesionParams) -> tuple[np.ndarray, np.ndarray]:
    """Render ``p`` -> (image (S, S, 3) uint8 RGB, mask (S, S) bool), S = 2 * diameter_px."""
    size = max(8, 2 * p.diameter_px)
    scale = p.diameter_px / 64.0
    skin = _skin(rng, size, p.skin_tone, max(scale, 0.3))
    alpha, u, dx, dy = _shape(rng, p, size)
    cells = max(3.0, 5 * p.diameter_px / 64)
    n1, n2, n3 = (_noise(rng, size, cells, 3) for _ in range(3))
    off = rng.normal(0, 0.5 * p.asymmetry, 2)
    lopsided = np.clip(1 + 0.6 * p.asymmetry * (dx * off[0] + dy * off[1]), 0.3, 1.8)
    melanin = np.zeros((size, size), np.float32)
    blood = np.zeros((size, size), np.float32)
    overlays: list[tuple[np.ndarray, np.ndarray]] = []  # (weight map, colour)
    height = np.zeros((size, size), np.float32)
    kind = p.kind
    dark_skin = p.skin_tone
    if kind == "nevus":
        melanin = rng.uniform(0.7, 1.9) * (0.7 + 0.3 * u**0.6) * (1 + 0.22 * n1)
    elif kind == "compound_nevus":
        melanin = rng.uniform(0.5, 1.3) * (0.7 + 0.3 * u**0.5) * (1 + 0.2 * n1)
        blood = 0.15 + 0.1 * n2
        height = u**0.6 * rng.uniform(3, 6) * scale
    elif kind == "lentigo":
        melanin = rng.uniform(0.35, 0.8) * (1 + 0.25 * n1) * (0.8 + 0.2 * u)
    elif kind == "angioma":
        blood = rng.uniform(0.8, 1.7) * (0.6 + 0.4 * u**0.5) * (1 + 0.25 * n1)
        melanin = 0.25 + 0.35 * np.clip(n2, 0, 1)
        height = u**0.5 * 3 * scale
    elif kind == "seborrheic_keratosis":
        melanin = rng.uniform(0.6, 1.9) * (1 + 0.3 * n1) * (0.9 + 0.1 * u)
        warts = _noise(rng, size, cells * 3.5, 2)
        height = (u**0.3) * (2 + 2.5 * warts) * scale
        plugs = np.clip(_noise(rng, size, cells * 6, 1) - 1.3, 0, None) * 2
        overlays.append((np.clip(plugs, 0, 0.45) * u, np.array([0.8, 0.74, 0.62])))
        overlays.append((np.clip(0.12 + 0.2 * warts, 0, 0.4) * u, np.array([0.62, 0.52, 0.4])))
    elif kind == "melanoma":
        melanin = rng.uniform(1.0, 2.2) * lopsided * (1 + 0.45 * n1) * (0.55 + 0.45 * u**0.7)
        if p.colour_count >= 3:  # black/dark-brown clods
            melanin += 1.4 * np.clip(n2 - 0.25, 0, None) * u
        if p.colour_count >= 4:  # blue-grey veil
            veil = np.clip(n3 * 1.6 - 0.2, 0, 0.8) * u
            overlays.append((veil, np.array([0.36, 0.4, 0.48]) * (1.1 - 0.5 * dark_skin)))
        if p.colour_count >= 5:  # regression: white-grey scar
            scar = np.clip(-n2 * 1.5 - 0.45, 0, 0.5) * (u > 0.1)
            overlays.append((scar, np.array([0.78, 0.7, 0.7]) * (1.05 - 0.4 * dark_skin)))
        if p.colour_count >= 6:  # red (inflammation)
            blood = 0.6 * np.clip(n3 + 0.3, 0, None)
        else:
            blood = 0.15 * np.clip(n3, 0, None)
    elif kind == "actinic_keratosis":
        # rough, ill-defined pink-to-brown patch with adherent white-yellow scale
        patchy = np.clip(0.6 + 0.6 * n1, 0, 1.4)
        blood = rng.uniform(0.12, 0.45) * patchy * (0.6 + 0.4 * u**0.5)
        melanin = rng.uniform(0.0, 0.6) * np.clip(0.5 + n2, 0, 1.5) * (0.7 + 0.3 * u)
        flakes = _noise(rng, size, cells * 5, 2) * 1.3 + rng.uniform(-0.9, 0.0)
        flakes = np.clip(flakes, 0, 1) * (0.6 + 0.4 * rng.random((size, size), np.float32))
        overlays.append((rng.uniform(0.2, 0.6) * flakes * u**0.4, np.array([0.9, 0.84, 0.74])))
        height = u**0.5 * (0.5 + 0.6 * flakes) * scale
    elif kind == "bcc":
        # mostly a subtle pink patch or pearly papule; few are ulcerated or pigmented
        nodular = rng.random() < 0.5
        blood = rng.uniform(0.15, 0.5) * (0.7 + 0.3 * u**0.5) * (1 + 0.35 * n1)
        if nodular:
            height = np.clip(u * 2.0, 0, 1) ** 0.7 * rng.uniform(2, 5) * scale
            sheen = np.clip(0.6 * u**0.8 + 0.2 * n2, 0, 1)
            overlays.append((rng.uniform(0.1, 0.3) * sheen, np.array([0.94, 0.86, 0.84])))
        else:
            flakes = np.clip(_noise(rng, size, cells * 5, 2) * 1.2 - 0.5, 0, 1)
            overlays.append((0.25 * flakes * u**0.5, np.array([0.9, 0.84, 0.78])))
            height = u**0.5 * scale
        vessels = np.abs(_noise(rng, size, cells * 1.6, 2))
        vessels = np.clip(1 - vessels * 16, 0, 1) * (u > 0.05) * (u < 0.9)
        blood = blood + rng.uniform(0.1, 0.5) * vessels
        if rng.random() < 0.2:  # small central erosion with a thin crust
            ulcer = np.clip((u - rng.uniform(0.8, 0.95)) * 6 + 0.4 * n2, 0, 1)
            overlays.append((0.6 * ulcer, np.array([0.5, 0.25, 0.18])))
        melanin = np.clip(n3, 0, None) * (rng.uniform(0.5, 1.5) if rng.random() < 0.15 else 0.2)
    elif kind == "scc":
        # pink-red keratotic patch or plaque, often scaly, sometimes crusted
        blood = rng.uniform(0.2, 0.65) * (0.6 + 0.4 * u**0.5) * (1 + 0.35 * n1)
        scale_map = _noise(rng, size, cells * 4, 2) * 1.2 + rng.uniform(-0.8, 0.1)
        scale_map = np.clip(scale_map, 0, 1) * (0.7 + 0.3 * rng.random((size, size), np.float32))
        overlays.append((rng.uniform(0.25, 0.6) * scale_map * u**0.5, np.array([0.9, 0.86, 0.78])))
        height = u**0.4 * (1 + 2 * scale_map) * scale
        if rng.random() < 0.25:
            crust = np.clip((u - 0.7) * 5 + n2, 0, 1)
            overlays.append((0.6 * crust, np.array([0.5, 0.27, 0.17])))
        melanin = rng.uniform(0.0, 0.4) * np.clip(n3, 0, None)
    melanin = np.asarray(melanin, np.float32)
    blood = np.asarray(blood, np.float32)
    # pigment shows less on dark skin that is already full of melanin
    # the same spread of subtlety for every kind, so class is not readable from contrast
    contrast = (1.0 - 0.45 * dark_skin) * rng.uniform(0.55, 1.05)
    absorb = (melanin[..., None] * _MELANIN + blood[..., None] * _BLOOD) * contrast
    lesion = skin * np.exp(-absorb)
    for weight, colour in overlays:
        w = np.clip(np.asarray(weight, np.float32), 0, 1)[..., None]
        lesion = lesion * (1 - w) + colour.astype(np.float32) * (1 + 0.05 * n1[..., None]) * w
    texture = 1 + 0.05 * rng.standard_normal((size, size, 1)).astype(np.float32)
    lesion = lesion * cv2.GaussianBlur(texture, (0, 0), max(0.5, 0.8 * scale))[..., None]
    if np.any(height):
        height = cv2.GaussianBlur(height.astype(np.float32), (0, 0), max(0.7, scale))
        shine = {"bcc": 0.15, "angioma": 0.15, "compound_nevus": 0.1}.get(kind, 0.05)
        lesion = _shade(lesion, height * alpha, 0.35, shine, rng)
        skin = _shade(skin, height * alpha, 0.35, 0.0, rng)
    a = alpha[..., None]
    image = skin * (1 - a) + lesion * a
    image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.4, 0.9) * max(0.5, scale))
    image = image + rng.normal(0, 0.008, image.shape).astype(np.float32)
    out = np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)
    return out, alpha > 0.5


def generate_lesion(
    rng: np.random.Generator, *, kind: str | None = None, diameter_px: int = 64
) -> LesionPatch:
    """One procedural lesion on plain skin, drawn from ``rng``.

    kind: one of KINDS ("nevus", "compound_nevus", "seborrheic_keratosis", "angioma",
    "lentigo", "actinic_keratosis", "melanoma", "bcc", "scc"), random when None. BCC and
    SCC are drawn mostly as subtle pink, scaly, ill-defined patches (as in clinical
    datasets) and benign keratoses overlap them in colour and contrast. diameter_px: lesion diameter
    in pixels (>= 4); the patch is (2 * diameter_px, 2 * diameter_px, 3) uint8 RGB with
    skin around the lesion, its mask (bool) covers the lesion only. label is MALIGNANT
    for melanoma, bcc and scc, else BENIGN; diameter_mm is a size typical of the kind.
    """
    if diameter_px < 4:
        raise ValueError("diameter_px must be at least 4")
    params = sample_params(rng, kind, diameter_px)
    image, mask = render_lesion(rng, params)
    return LesionPatch(
        image=image,
        mask=mask,
        label=MALIGNANT if params.kind in MALIGNANT_KINDS else BENIGN,
        diagnosis=DIAGNOSIS[params.kind],
        source=f"procedural:{params.kind}",
        diameter_mm=params.diameter_mm,
    )
