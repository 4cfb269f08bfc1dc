"""Geometry of procedural body photos: silhouettes, surface height and clothing edges.

Every body part is a *tube*: a gently bent axis with a width profile along it (torso
with neck and shoulders, upper arm/elbow/forearm, thigh/knee/calf) and an elliptic
cross-section, plus anatomical bumps (scapulae, spine groove, pectorals, knee...).
A tube maps an image pixel to body coordinates ``s`` (along the axis) and ``t``
(across it), which give the signed distance to the silhouette, the surface height
used for shading, and where clothing starts.

Lengths in the layout are pixels unless the name ends in ``_mm``. Coordinates: x
right, y down, pixel centres at integer coordinates; angles in radians, measured
from +x towards +y.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

REGIONS = ("back", "chest", "abdomen", "arm", "leg")


@dataclass(frozen=True)
class Bump:
    """A Gaussian bump (height_mm > 0) or groove (< 0) on a tube, in body coordinates (mm)."""

    s_mm: float
    t_mm: float
    sigma_s_mm: float
    sigma_t_mm: float
    height_mm: float
    mirrored: bool = False  # also at -t_mm


@dataclass(frozen=True)
class Tube:
    """One body part seen from the camera.

    origin: image point (x, y) of s = 0 on the axis, px.
    angle: direction of increasing s, radians.
    bend: the axis is displaced across by ``bend * s**2`` (1/px).
    profile_s, profile_hw: (n,) float64 px; half width along s (outside the range: absent).
    depth_ratio: depth of the elliptic cross-section relative to the half width.
    bumps: anatomical relief.
    kind: "torso", "arm" or "leg".
    """

    origin: tuple[float, float]
    angle: float
    bend: float
    profile_s: np.ndarray
    profile_hw: np.ndarray
    depth_ratio: float
    bumps: tuple[Bump, ...]
    kind: str

    def to_image(self, s: float, t: float) -> tuple[float, float]:
        """Image point (x, y) of body coordinates (s, t) in px."""
        c, sn = math.cos(self.angle), math.sin(self.angle)
        t = t + self.bend * s * s
        return (self.origin[0] + s * c - t * sn, self.origin[1] + s * sn + t * c)


@dataclass(frozen=True)
class Garment:
    """Clothing over one end of a tube (waistband, sleeve, shorts, lifted shirt, sock).

    side: +1 covers s > edge, -1 covers s < edge.
    edge: s of the hem on the axis, px; sag: hem displacement at the tube sides, px.
    wave_amp, wave_freq: hem waviness (px, radians per px of t).
    flare: garment half width relative to the tube.
    """

    tube_index: int
    side: int
    edge: float
    sag: float
    wave_amp: float
    wave_freq: float
    wave_phase: float
    flare: float


@dataclass(frozen=True)
class SkinFeature:
    """A colour-only anatomical feature on skin: "areola" or "navel"; position px, radius px."""

    kind: str
    x: float
    y: float
    radius: float


@dataclass(frozen=True)
class BodyLayout:
    """Everything geometric about one procedural body photo (tubes back to front)."""

    region: str
    width: int
    height: int
    mm_per_px: float
    tubes: tuple[Tube, ...]
    garments: tuple[Garment, ...]
    features: tuple[SkinFeature, ...]
    hair_angle: float  # main direction of hair growth, radians


@dataclass
class TubeField:
    """A tube evaluated on a (possibly coarse) grid of image coordinates.

    dist: signed distance to the silhouette, px (positive inside).
    s, t: body coordinates, px. hw: local half width, px. z: surface height, px.
    """

    dist: np.ndarray
    s: np.ndarray
    t: np.ndarray
    hw: np.ndarray
    z: np.ndarray


def evaluate_tube(tube: Tube, xs: np.ndarray, ys: np.ndarray, mm_per_px: float) -> TubeField:
    """Body coordinates, silhouette distance and surface height at image points (xs, ys)."""
    c, sn = math.cos(tube.angle), math.sin(tube.angle)
    dx = xs - np.float32(tube.origin[0])
    dy = ys - np.float32(tube.origin[1])
    s = dx * c + dy * sn
    t = -dx * sn + dy * c - np.float32(tube.bend) * s * s
    hw = np.interp(s, tube.profile_s, tube.profile_hw, left=-1.0, right=-1.0).astype(np.float32)
    dist = hw - np.abs(t)
    u = t / np.maximum(hw, 1e-3)
    z = np.float32(tube.depth_ratio) * np.maximum(hw, 0) * np.sqrt(np.clip(1.0 - u * u, 0, 1))
    for bump in tube.bumps:
        s0, t0 = bump.s_mm / mm_per_px, bump.t_mm / mm_per_px
        ss, st = bump.sigma_s_mm / mm_per_px, bump.sigma_t_mm / mm_per_px
        h = bump.height_mm / mm_per_px
        gs = np.exp(-0.5 * ((s - s0) / ss) ** 2)
        z += h * gs * np.exp(-0.5 * ((t - t0) / st) ** 2)
        if bump.mirrored:
            z += h * gs * np.exp(-0.5 * ((t + t0) / st) ** 2)
    z *= dist > -2.0
    return TubeField(dist=dist, s=s, t=t, hw=hw, z=z.astype(np.float32))


def garment_distance(garment: Garment, field: TubeField) -> tuple[np.ndarray, np.ndarray]:
    """(signed distance to the garment outline, distance inside from the hem), both px."""
    u = field.t / np.maximum(field.hw, 1e-3)
    edge = garment.edge + garment.sag * np.clip(u * u, 0, 4)
    edge = edge + garment.wave_amp * np.sin(field.t * garment.wave_freq + garment.wave_phase)
    from_hem = garment.side * (field.s - edge)
    sides = field.hw * garment.flare - np.abs(field.t)
    return np.minimum(from_hem, sides), from_hem


def _profile(
    rng: np.random.Generator, knots_mm: list[tuple[float, float]], scale_mm: float, mm_per_px: float
) -> tuple[np.ndarray, np.ndarray]:
    """Dense smooth width profile (px) from (s_mm, half width / scale) knots, with wobble."""
    ks = np.array([k[0] for k in knots_mm])
    kw = np.array([k[1] for k in knots_mm]) * scale_mm
    s_mm = np.arange(ks[0], ks[-1] + 1e-6, 4.0)
    hw = np.interp(s_mm, ks, kw)
    # smooth the polyline (sigma 16 mm) so silhouettes have no corners, keeping the ends
    kernel = np.exp(-0.5 * (np.arange(-12, 13) / 4.0) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(hw, 12, mode="edge")
    hw = np.convolve(padded, kernel, mode="valid")
    wobble = np.interp(s_mm, np.linspace(ks[0], ks[-1], 24), rng.normal(0, 1, 24))
    hw = hw * (1.0 + 0.025 * wobble)
    hw[hw < 0] = 0
    return s_mm / mm_per_px, hw / mm_per_px


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _origin_for(
    centre: tuple[float, float], angle: float, s_c: float, t_c: float
) -> tuple[float, float]:
    """Origin that puts body point (s_c, t_c) (px, no bend) at image point ``centre``."""
    c, sn = math.cos(angle), math.sin(angle)
    return (centre[0] - s_c * c + t_c * sn, centre[1] - s_c * sn - t_c * c)


def _garment(
    rng: np.random.Generator, tube_index: int, side: int, edge: float, hw: float, loose: bool
) -> Garment:
    return Garment(
        tube_index=tube_index,
        side=side,
        edge=edge,
        sag=float(rng.uniform(-0.12, 0.18) * hw) * side,
        wave_amp=float(rng.uniform(0.0, 0.025) * hw),
        wave_freq=float(rng.uniform(2.0, 9.0) / max(hw, 1.0)),
        wave_phase=float(rng.uniform(0, 2 * math.pi)),
        flare=float(rng.uniform(1.04, 1.18) if loose else rng.uniform(1.0, 1.05)),
    )


_TORSO_KNOTS = [  # (s mm from the shoulder line, half width / shoulder half width)
    (-420, 0.30), (-70, 0.31), (-35, 0.35), (-10, 0.47), (15, 0.7), (45, 0.9), (95, 1.0),
    (200, 0.93), (300, 0.85), (400, 0.79), (480, 0.84), (560, 0.93), (900, 0.95),
]  # fmt: skip
_ARM_KNOTS = [  # s mm from the shoulder joint, half width / upper-arm half width
    (-40, 0.0), (-10, 0.8), (20, 1.08), (120, 1.0), (250, 0.86), (300, 0.8), (360, 0.9),
    (450, 0.78), (560, 0.6), (620, 0.66), (1100, 0.66),
]  # fmt: skip
_LEG_KNOTS = [  # s mm from the groin, half width / thigh half width
    (-500, 1.05), (0, 1.0), (200, 0.88), (400, 0.64), (470, 0.66), (560, 0.72),
    (720, 0.5), (850, 0.4), (1300, 0.42),
]  # fmt: skip


def _torso_bumps(region: str, w_mm: float) -> tuple[Bump, ...]:
    if region == "back":
        return (
            Bump(330, 0, 260, 0.035 * w_mm, -0.03 * w_mm),  # spine groove
            Bump(150, 0.45 * w_mm, 60, 0.17 * w_mm, 0.05 * w_mm, mirrored=True),  # scapulae
            Bump(380, 0.5 * w_mm, 90, 0.16 * w_mm, 0.03 * w_mm, mirrored=True),  # back muscles
        )
    return (
        Bump(150, 0.38 * w_mm, 70, 0.28 * w_mm, 0.07 * w_mm, mirrored=True),  # pectorals
        Bump(200, 0, 170, 0.03 * w_mm, -0.012 * w_mm),  # sternum / linea alba
        Bump(440, 0, 110, 0.5 * w_mm, 0.06 * w_mm),  # belly
    )


def _torso_layout(
    rng: np.random.Generator, region: str, width: int, height: int
) -> tuple[float, list[Tube], list[Garment], list[SkinFeature], float]:
    w_mm = float(rng.uniform(160.0, 215.0))
    upright = rng.random() < 0.72
    angle = (math.pi / 2 + rng.normal(0, 0.07)) if upright else rng.choice([0.0, math.pi])
    angle = float(angle + (0 if upright else rng.normal(0, 0.08)))
    across, along = (width, height) if upright else (height, width)
    frac = _log_uniform(rng, 0.55, 3.0)
    mm_per_px = float(np.clip(2 * w_mm / (frac * across), 0.08, 0.6))
    half_along_mm = along / 2 * mm_per_px
    s_c = {"back": (110, 430), "chest": (80, 300), "abdomen": (330, 520)}[region]
    s_c_mm = float(rng.uniform(*s_c))
    s_c_mm = max(s_c_mm, half_along_mm - 60.0)  # no more than 60 mm of neck in view
    t_c_mm = float(np.clip(rng.normal(0, 0.3 * w_mm), -0.8 * w_mm, 0.8 * w_mm))
    centre = (width / 2 + rng.normal(0, 0.05 * width), height / 2 + rng.normal(0, 0.05 * height))
    origin = _origin_for(centre, angle, s_c_mm / mm_per_px, t_c_mm / mm_per_px)
    ps, phw = _profile(rng, _TORSO_KNOTS, w_mm, mm_per_px)
    depth = {"back": 0.42, "chest": 0.5, "abdomen": 0.6}[region]
    bumps = _torso_bumps(region, w_mm)
    navel = (float(rng.uniform(410, 450)), float(rng.normal(0, 4)), float(rng.uniform(6, 10)))
    if region == "abdomen":
        bumps += (Bump(navel[0], navel[1], 0.8 * navel[2], 0.6 * navel[2], -0.7 * navel[2]),)
    torso = Tube(
        origin, angle, float(rng.normal(0, 6e-5)) * mm_per_px, ps, phw, depth, bumps, "torso"
    )
    tubes, garments, features = [torso], [], []
    s_vis = (s_c_mm - 1.1 * half_along_mm, s_c_mm + 1.1 * half_along_mm)
    hw_px = w_mm / mm_per_px
    waist = float(rng.uniform(470, 570))
    if s_vis[1] > waist:
        garments.append(_garment(rng, 0, +1, waist / mm_per_px, hw_px, loose=rng.random() < 0.5))
    if region in ("abdomen", "back") and rng.random() < 0.3:  # shirt lifted to show the skin
        top = s_c_mm - rng.uniform(0.35, 0.9) * half_along_mm
        garments.append(_garment(rng, 0, -1, top / mm_per_px, hw_px, loose=True))
    if region == "chest":
        s_ar, t_ar = rng.uniform(185, 235), rng.uniform(0.4, 0.5) * w_mm
        r_ar = rng.uniform(10, 17) / mm_per_px
        for sign in (-1, 1):
            x, y = torso.to_image(s_ar / mm_per_px, sign * t_ar / mm_per_px)
            features.append(SkinFeature("areola", x, y, r_ar))
    if region == "abdomen":
        x, y = torso.to_image(navel[0] / mm_per_px, navel[1] / mm_per_px)
        features.append(SkinFeature("navel", x, y, navel[2] / mm_per_px))
    sides_visible = 2 * w_mm / mm_per_px < 0.95 * across
    if sides_visible and s_vis[1] < 560 and rng.random() < 0.7:
        a_mm = float(rng.uniform(38, 50))
        aps, ahw = _profile(rng, _ARM_KNOTS, a_mm, mm_per_px)
        for sign in (-1, 1):
            tilt = float(rng.uniform(0.08, 0.35))
            start = torso.to_image(115 / mm_per_px, sign * (w_mm - 0.8 * a_mm) / mm_per_px)
            arm_bumps = (Bump(130, 0, 70, 0.6 * a_mm, 0.12 * a_mm),)
            tubes.append(
                Tube(start, angle + sign * tilt, float(rng.normal(0, 1e-4)) * mm_per_px,
                     aps, ahw, 0.9, arm_bumps, "arm")
            )  # fmt: skip
    return mm_per_px, tubes, garments, features, angle


def _limb_layout(
    rng: np.random.Generator, region: str, width: int, height: int
) -> tuple[float, list[Tube], list[Garment], list[SkinFeature], float]:
    is_leg = region == "leg"
    w_mm = float(rng.uniform(64, 88) if is_leg else rng.uniform(37, 52))
    frac = _log_uniform(rng, 0.35, 1.35)
    mm_per_px = float(np.clip(2 * w_mm / (frac * min(width, height)), 0.08, 0.6))
    if is_leg and rng.random() < 0.5:
        angle = float(math.pi / 2 + rng.normal(0, 0.2) + (math.pi if rng.random() < 0.2 else 0))
    else:
        angle = float(rng.uniform(0, 2 * math.pi))
    half_diag_mm = math.hypot(width, height) / 2 * mm_per_px
    lo, hi = (120, 720) if is_leg else (130, 430)
    s_c_mm = float(rng.uniform(lo, hi))
    if not is_leg:
        s_c_mm = min(s_c_mm, max(lo, 600 - 0.8 * half_diag_mm))
    t_c_mm = float(rng.normal(0, 0.3 * w_mm))
    centre = (width / 2 + rng.normal(0, 0.05 * width), height / 2 + rng.normal(0, 0.05 * height))
    origin = _origin_for(centre, angle, s_c_mm / mm_per_px, t_c_mm / mm_per_px)
    knots = _LEG_KNOTS if is_leg else _ARM_KNOTS
    if not is_leg:
        knots = [(-400, 1.05)] + knots[2:]  # the shoulder continues out of view or under a sleeve
    ps, phw = _profile(rng, knots, w_mm, mm_per_px)
    bend = float(rng.normal(0, 1.5e-4)) * mm_per_px
    if is_leg:
        bumps = (
            Bump(420, 0, 35, 0.35 * w_mm, 0.12 * w_mm),  # knee cap
            Bump(580, 0.15 * w_mm, 80, 0.35 * w_mm, 0.1 * w_mm),  # calf
            Bump(180, 0, 120, 0.45 * w_mm, 0.08 * w_mm),  # thigh muscles
        )
    else:
        bumps = (
            Bump(150, 0, 70, 0.5 * w_mm, 0.12 * w_mm),  # biceps
            Bump(300, 0, 20, 0.6 * w_mm, -0.05 * w_mm),  # elbow crease
            Bump(390, 0, 60, 0.5 * w_mm, 0.08 * w_mm),  # forearm muscles
        )
    tubes: list[Tube] = []
    garments: list[Garment] = []
    hw_px = w_mm / mm_per_px
    if is_leg and rng.random() < 0.4:  # the other leg, behind
        sign = 1 if rng.random() < 0.5 else -1
        gap = sign * 2 * w_mm * rng.uniform(0.9, 1.15) / mm_per_px
        other = (
            origin[0] - gap * math.sin(angle) + rng.normal(0, 20),
            origin[1] + gap * math.cos(angle) + rng.normal(0, 20),
        )
        ops, ohw = _profile(rng, knots, w_mm * rng.uniform(0.92, 1.05), mm_per_px)
        tubes.append(Tube(other, angle, bend, ops, ohw, 0.9, bumps, "leg"))
    tubes.append(Tube(origin, angle, bend, ps, phw, 0.95, bumps, region))
    s_min_vis = s_c_mm - half_diag_mm
    s_max_vis = s_c_mm + half_diag_mm
    top_limit = 90.0 if is_leg else 40.0
    if s_min_vis < top_limit:  # shorts or sleeve cover the top of the limb
        lo_edge = max(-30.0, min(s_min_vis + 30, top_limit - 10))
        edge = float(rng.uniform(lo_edge, top_limit)) / mm_per_px
        loose = rng.random() < 0.6
        for index in range(len(tubes)):
            garments.append(_garment(rng, index, -1, edge, hw_px, loose))
    if is_leg and s_max_vis > 800:  # sock
        edge = float(rng.uniform(770, 840)) / mm_per_px
        for index in range(len(tubes)):
            garments.append(_garment(rng, index, +1, edge, hw_px, loose=False))
    return mm_per_px, tubes, garments, [], angle


def sample_layout(
    rng: np.random.Generator, region: str | None, width: int, height: int
) -> BodyLayout:
    """Draw the framing, scale, silhouettes, clothing and anatomical features of one photo.

    region: one of REGIONS, or None to draw one.
    """
    if region is None:
        region = str(rng.choice(REGIONS))
    if region not in REGIONS:
        raise ValueError(f"unknown body region {region!r}; expected one of {REGIONS}")
    if region in ("back", "chest", "abdomen"):
        mm_per_px, tubes, garments, features, angle = _torso_layout(rng, region, width, height)
    else:
        mm_per_px, tubes, garments, features, angle = _limb_layout(rng, region, width, height)
    hair_angle = angle + float(rng.normal(0, 0.35))
    return BodyLayout(
        region=region,
        width=width,
        height=height,
        mm_per_px=mm_per_px,
        tubes=tuple(tubes),
        garments=tuple(garments),
        features=tuple(features),
        hair_angle=hair_angle,
    )
