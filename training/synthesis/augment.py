"""Seeded augmentation of lesion patches, body photos and whole synthetic photos.

Every function takes an explicit ``numpy.random.Generator``; none touches global state.
Images are RGB uint8 unless stated; masks are bool. Coordinates: x right, y down.
"""

from __future__ import annotations

import cv2
import numpy as np

from training.sources.base import BodyPhoto


def smooth_field(
    rng: np.random.Generator, shape: tuple[int, int], cell_px: float, amplitude: float
) -> np.ndarray:
    """A smooth random 2-D displacement field.

    Returns float32 (h, w, 2) (dx, dy) in pixels, of typical magnitude ``amplitude``,
    varying over about ``cell_px`` pixels (coarse noise upsampled bicubically).
    """
    h, w = shape
    gh = max(2, int(np.ceil(h / max(cell_px, 1.0))) + 1)
    gw = max(2, int(np.ceil(w / max(cell_px, 1.0))) + 1)
    coarse = rng.standard_normal((gh, gw, 2)).astype(np.float32) * amplitude
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)


def _mask_diameter(mask: np.ndarray) -> float:
    """Equivalent-circle diameter of a bool mask, in pixels."""
    return float(2.0 * np.sqrt(max(int(mask.sum()), 1) / np.pi))


def resize_patch(
    image: np.ndarray, mask: np.ndarray, diameter_px: float
) -> tuple[np.ndarray, np.ndarray]:
    """Scale a lesion patch so that its mask's equivalent diameter is ``diameter_px``.

    image (h, w, 3) uint8, mask (h, w) bool -> the resized pair (at least 5x5 pixels).
    """
    factor = diameter_px / _mask_diameter(mask)
    h, w = mask.shape
    nw, nh = max(5, round(w * factor)), max(5, round(h * factor))
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    out = cv2.resize(image, (nw, nh), interpolation=interp)
    m = cv2.resize(mask.astype(np.float32), (nw, nh), interpolation=cv2.INTER_LINEAR) >= 0.5
    if not m.any():  # a lesion shrunk below a pixel keeps its centre pixel
        m[nh // 2, nw // 2] = True
    return out, m


def _pad_reflect(image: np.ndarray, mask: np.ndarray, pad: int) -> tuple[np.ndarray, np.ndarray]:
    img = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    m = np.pad(mask, pad)
    return img, m


def warp_lesion(
    image: np.ndarray,
    mask: np.ndarray,
    rng: np.random.Generator,
    *,
    rotate: bool = True,
    flip: bool = True,
    aspect_range: tuple[float, float] = (0.75, 1.33),
    wobble: float = 0.08,
) -> tuple[np.ndarray, np.ndarray]:
    """Rotate, flip, stretch and wobble the outline of a lesion patch.

    The patch is padded by reflection so that rotated corners stay skin. ``wobble`` is the
    elastic displacement amplitude as a fraction of the lesion diameter (outline wobble).
    Returns (image (h', w', 3) uint8, mask (h', w') bool), the lesion near the centre.
    """
    diam = _mask_diameter(mask)
    pad = int(np.ceil(0.25 * max(mask.shape))) + 2
    img, m = _pad_reflect(image, mask, pad)
    h, w = m.shape
    angle = float(rng.uniform(0, 360)) if rotate else 0.0
    aspect = float(np.exp(rng.uniform(np.log(aspect_range[0]), np.log(aspect_range[1]))))
    sx, sy = np.sqrt(aspect), 1.0 / np.sqrt(aspect)
    c = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    rot = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), angle, 1.0)
    lin = rot[:, :2] @ np.diag([sx, sy])
    if flip and rng.random() < 0.5:
        lin = lin @ np.diag([-1.0, 1.0])
    affine = np.hstack([lin, (c - lin @ c)[:, None]])
    # elastic wobble: displace sampling positions by a smooth field (backward map)
    inv = cv2.invertAffineTransform(affine)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    field = smooth_field(rng, (h, w), cell_px=max(diam / 2.5, 3.0), amplitude=wobble * diam)
    mx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2] + field[..., 0]
    my = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2] + field[..., 1]
    mx, my = mx.astype(np.float32), my.astype(np.float32)
    out = cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    mm = cv2.remap(m.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderValue=0.0) >= 0.5
    if not mm.any():
        return image, mask
    ys_, xs_ = np.nonzero(mm)
    margin = max(2, int(np.ceil(0.35 * diam)))
    y0, y1 = max(0, ys_.min() - margin), min(h, ys_.max() + 1 + margin)
    x0, x1 = max(0, xs_.min() - margin), min(w, xs_.max() + 1 + margin)
    return out[y0:y1, x0:x1], mm[y0:y1, x0:x1]


def jitter_lesion_colour(
    image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, *, strength: float = 1.0
) -> np.ndarray:
    """Jitter a lesion's contrast against its own skin, its hue and saturation, and brightness.

    Works on the lesion (feathered mask) relative to the mean of the surrounding skin, so
    the skin ring keeps its colour. Returns (h, w, 3) uint8.
    """
    img = image.astype(np.float32)
    ring = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & ~mask
    skin = img[ring].mean(axis=0) if ring.any() else img[~mask].mean(axis=0)
    alpha = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 0.8)[..., None]
    contrast = float(np.exp(rng.normal(0.0, 0.18 * strength)))
    contrast = float(np.clip(contrast, 0.7, 1.5))
    lesion = skin + (img - skin) * contrast
    # hue / saturation in HSV on the lesion only
    hsv = cv2.cvtColor(np.clip(lesion, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV).astype(
        np.float32
    )
    hsv[..., 0] = (hsv[..., 0] + rng.normal(0.0, 2.0 * strength)) % 180.0
    hsv[..., 1] *= float(np.clip(np.exp(rng.normal(0.0, 0.1 * strength)), 0.75, 1.25))
    lesion = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB)
    out = img * (1 - alpha) + lesion.astype(np.float32) * alpha
    out *= float(np.exp(rng.normal(0.0, 0.06 * strength)))
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def augment_body(body: BodyPhoto, rng: np.random.Generator, *, max_zoom: float = 1.25) -> BodyPhoto:
    """Re-augment a (pooled) body photo: mirror, zoom-and-crop, skin-tone and exposure jitter.

    The output has the input's size; ``mm_per_px`` is divided by the zoom; the skin mask
    and mole instances are transformed with the image (nearest neighbour).
    """
    image, skin, moles = body.image, body.skin_mask, body.mole_instances
    if rng.random() < 0.5:
        image, skin, moles = image[:, ::-1], skin[:, ::-1], moles[:, ::-1]
    h, w = skin.shape
    zoom = float(rng.uniform(1.0, max_zoom))
    mm_per_px = body.mm_per_px
    if zoom > 1.02:
        cw, ch = round(w / zoom), round(h / zoom)
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        image = cv2.resize(
            image[y0 : y0 + ch, x0 : x0 + cw], (w, h), interpolation=cv2.INTER_LINEAR
        )
        skin = cv2.resize(
            skin[y0 : y0 + ch, x0 : x0 + cw].astype(np.uint8),
            (w, h),
            interpolation=cv2.INTER_NEAREST,
        ).astype(bool)
        moles = cv2.resize(
            moles[y0 : y0 + ch, x0 : x0 + cw], (w, h), interpolation=cv2.INTER_NEAREST
        )
        mm_per_px = body.mm_per_px * cw / w
    gains = np.exp(rng.normal(0.0, 0.04, size=3)).astype(np.float32)
    image = cv2.LUT(np.ascontiguousarray(image), _tone_luts(gains, 1.0))
    return BodyPhoto(
        image=np.ascontiguousarray(image),
        skin_mask=np.ascontiguousarray(skin),
        mm_per_px=float(mm_per_px),
        mole_instances=np.ascontiguousarray(moles),
        region=body.region,
        source=body.source,
    )


def _tone_luts(gains: np.ndarray, gamma: float) -> np.ndarray:
    """(256, 1, 3) uint8 lookup table: per-channel gain, then a global gamma."""
    x = np.arange(256, dtype=np.float32)[:, None] * gains[None, :]
    y = 255.0 * (np.clip(x, 0, 255) / 255.0) ** gamma
    return np.clip(y + 0.5, 0, 255).astype(np.uint8)[:, None, :]


def camera_augment(
    image: np.ndarray, rng: np.random.Generator, *, strength: float = 1.0, jpeg: bool = True
) -> np.ndarray:
    """Whole-photo camera effects: exposure, colour temperature, blur, sensor noise, JPEG.

    image (H, W, 3) uint8 RGB -> same shape uint8. ``strength`` 0 returns the input.
    """
    if strength <= 0:
        return image
    exposure = float(np.exp(rng.normal(0.0, 0.12 * strength)))
    temp = float(rng.normal(0.0, 0.05 * strength))  # >0 warmer, <0 cooler
    gains = np.array([exposure * (1 + temp), exposure, exposure * (1 - temp)], np.float32)
    gamma = float(np.exp(rng.normal(0.0, 0.08 * strength)))
    out = cv2.LUT(np.ascontiguousarray(image), _tone_luts(gains, gamma))
    if rng.random() < 0.5 * strength:
        out = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.4, 1.3)))
    sigma = float(rng.uniform(0.0, 5.0 * strength))
    if sigma > 0.3:
        h, w = out.shape[:2]
        noise = rng.standard_normal((h, w), dtype=np.float32) * sigma
        chroma = rng.standard_normal((h // 4 + 1, w // 4 + 1, 3), dtype=np.float32) * (0.5 * sigma)
        noisy = out.astype(np.float32)
        noisy += noise[..., None]
        noisy += cv2.resize(chroma, (w, h), interpolation=cv2.INTER_LINEAR)
        out = np.clip(noisy + 0.5, 0, 255).astype(np.uint8)
    if jpeg and rng.random() < 0.7:
        quality = int(rng.integers(55, 96))
        ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(out)


def illumination_change(
    image: np.ndarray, rng: np.random.Generator, *, strength: float = 1.0
) -> np.ndarray:
    """A different lighting set-up: a smooth multiplicative gain field and a colour cast.

    image (H, W, 3) uint8 -> uint8. Used on the second visit of a tracking pair.
    """
    h, w = image.shape[:2]
    coarse = rng.normal(0.0, 0.12 * strength, size=(3, 4)).astype(np.float32)
    gain = np.exp(cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC))[..., None]
    cast = np.exp(rng.normal(0.0, 0.04 * strength, size=3)).astype(np.float32)
    out = image.astype(np.float32) * gain * cast
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
