"""Automatic segmentation of the one lesion in a clinical close-up, with a mask cache.

The photo is assumed to be centred on a single lesion (how clinicians take close-ups and
how PAD-UFES-20, ISIC clinical and Dermofit photos are framed). Steps, at a working size
of at most ``WORK_SIDE`` pixels:

1. surgical-pen ink (saturated blue/purple, thin strokes) is found by colour and thinness;
2. dark and light hairs are found by black-hat / top-hat filtering;
3. pen and hair are inpainted (OpenCV Telea);
4. the skin colour is modelled by a robust quadratic fit (per CIE-Lab channel) to the
   image border, so vignetting and shading gradients cancel;
5. a lesion score (darker, redder or differently coloured than that skin) is thresholded;
6. connected components are ranked by closeness to the centre, compactness and contrast,
   ring-shaped ones (left-over pen circles, skin folds) are penalised;
7. the chosen component is filled, smoothed and brought back to full resolution.

When nothing plausible is found the mask falls back to a centred ellipse.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage

#: Bump whenever the algorithm changes: cached masks of older versions are ignored.
MASK_ALGORITHM_VERSION = "lesion-mask-v2"
#: Longest side of the working image, in pixels.
WORK_SIDE = 256
#: The final mask is dilated by this fraction of the lesion's equivalent radius (>= 2 px).
DILATE_FRACTION = 0.1
#: Environment variable that overrides the cache folder.
CACHE_ENV = "LESIONVIEWER_CACHE"


def _working_image(image: np.ndarray) -> tuple[np.ndarray, float]:
    h, w = image.shape[:2]
    scale = min(1.0, WORK_SIDE / max(h, w))
    if scale < 1.0:
        size = (max(8, round(w * scale)), max(8, round(h * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image, scale


def _lab(image: np.ndarray) -> np.ndarray:
    """(h, w, 3) float32 CIE-Lab: L in [0, 100], a and b about [-128, 127]."""
    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def _disk(radius: int) -> np.ndarray:
    radius = max(1, int(radius))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def pen_mask(image: np.ndarray) -> np.ndarray:
    """Surgical-pen ink on a working-size RGB uint8 image -> (h, w) bool.

    Ink is darker than the skin and turned from the skin's hue towards purple or blue
    (CIE-Lab hue angle at least 25 degrees below the skin's, or blue above red), and it is
    drawn as strokes: compact blobs of that colour (blue nevi, blue-grey melanoma areas,
    red lesions) survive a morphological opening and are kept out, unless they sit on a
    stroke and are smaller than the strokes (ink pooled where the pen stopped).
    """
    lab = _lab(image)
    rgb = image.astype(np.float32)
    r, b = rgb[..., 0], rgb[..., 2]
    l_, a_, b_ = lab[..., 0], lab[..., 1], lab[..., 2]
    skin_l = float(np.median(l_))
    skin_angle = float(np.degrees(np.arctan2(np.median(b_), np.median(a_))))
    angle = np.degrees(np.arctan2(b_, a_))
    chroma = np.hypot(a_, b_)
    side = max(image.shape[:2])
    turned = (angle < skin_angle - 22) & (angle > -175) & (chroma > 3)
    side = max(image.shape[:2])
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    local_dark = cv2.morphologyEx(gray, cv2.MORPH_BLACKHAT, _disk(round(side * 0.03)))
    purple = turned & (l_ < skin_l - 6) & (local_dark > 6)
    skin_bb = float(np.median(b_))
    blue = (
        (b > r + 8)
        | ((b > r + 5) & (l_ < skin_l - 15))
        | ((b_ < min(skin_bb - 15, -6)) & (l_ < skin_l - 10))
    ) & (l_ < skin_l + 5)
    radius = round(side * 0.035)
    purple = cv2.morphologyEx(purple.astype(np.uint8), cv2.MORPH_CLOSE, _disk(1))
    opened = cv2.morphologyEx(purple, cv2.MORPH_OPEN, _disk(radius)).astype(bool)
    strokes = _keep_strokes(purple.astype(bool) & ~opened, side)
    blobs = opened
    # blue ink is specific (skin never has blue above red): thick strokes count too
    blue = cv2.morphologyEx(blue.astype(np.uint8), cv2.MORPH_CLOSE, _disk(1)).astype(bool)
    strokes |= _keep_strokes(blue, side)
    blobs |= cv2.morphologyEx(blue.astype(np.uint8), cv2.MORPH_OPEN, _disk(radius)).astype(bool)
    # faint ink: a loop of thin, darker, hue-turned line around the centre (pink-purple pen)
    loop = _thin_loop(l_, angle, chroma, skin_l, skin_angle, side)
    strokes |= loop
    if strokes.sum() < 0.002 * strokes.size:
        return np.zeros_like(strokes)
    # hysteresis: grow the sure strokes into connected, weaker ink-coloured pixels, so a
    # stroke is found whole where parts of it are thick, pale or crossed by hair
    thin_dark = cv2.morphologyEx(gray, cv2.MORPH_BLACKHAT, _disk(round(side * 0.05))) > 5
    # (blue only: a pink lesion is hue-turned from the skin as well, blue never)
    weak = ((b > r + 2) | (b_ < min(skin_bb - 10, -3))) & (l_ < skin_l - 3)
    weak = cv2.morphologyEx((weak & thin_dark).astype(np.uint8), cv2.MORPH_CLOSE, _disk(1))
    strokes = _geodesic_grow(strokes, weak.astype(bool), steps=max(4, round(side * 0.3)))
    ink = strokes.copy()
    near_stroke = cv2.dilate(strokes.astype(np.uint8), _disk(2)).astype(bool)
    labels, n = ndimage.label(blobs)
    total = int(strokes.sum())
    for k in range(1, n + 1):
        blob = labels == k
        if (blob & near_stroke).any() and blob.sum() < 0.5 * total:
            ink |= blob
    return ink


def _geodesic_grow(seed: np.ndarray, allowed: np.ndarray, steps: int) -> np.ndarray:
    """Grow bool ``seed`` inside ``allowed`` by at most ``steps`` 8-connected pixel steps."""
    grown = seed.astype(np.uint8)
    region = (allowed | seed).astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    for _ in range(steps):
        nxt = cv2.dilate(grown, kernel) & region
        if np.array_equal(nxt, grown):
            break
        grown = nxt
    return grown.astype(bool)


def _thin_loop(
    l_: np.ndarray,
    angle: np.ndarray,
    chroma: np.ndarray,
    skin_l: float,
    skin_angle: float,
    side: int,
) -> np.ndarray:
    """Thin dark line of ink-turned hue that nearly closes a loop around the centre.

    Catches faint or pinkish-purple pen circles whose colour alone is too close to a red
    lesion: the evidence is the shape (a long thin line around the lesion), confirmed by a
    mean hue turned towards purple.
    """
    h, w = l_.shape
    lum = np.clip(l_ * 2.55, 0, 255).astype(np.uint8)
    line = cv2.morphologyEx(lum, cv2.MORPH_BLACKHAT, _disk(max(2, round(side * 0.025))))
    thin = (line > 10) & (l_ < skin_l - 2)
    thin = cv2.morphologyEx(thin.astype(np.uint8), cv2.MORPH_CLOSE, _disk(1)).astype(bool)
    labels, n = ndimage.label(thin, structure=np.ones((3, 3)))
    out = np.zeros((h, w), bool)
    turn = skin_angle - angle
    for k, slc in enumerate(ndimage.find_objects(labels), start=1):
        comp = labels[slc] == k
        area = int(comp.sum())
        if area < side * 0.4:
            continue
        ys, xs = np.nonzero(comp)
        (_, _), (rw, rh), _ = cv2.minAreaRect(np.stack([xs, ys], 1).astype(np.float32))
        if max(rw, rh) < 0.3 * side or area / max(1.0, rw * rh) > 0.3:
            continue
        full = np.zeros((h, w), bool)
        full[slc] = comp
        if float(np.median(turn[full])) < 8 or float(np.median(chroma[full])) < 4:
            continue
        if pen_enclosure(full) is not None:
            # keep the outer band only: hairs and skin lines joined to the loop from inside
            # are not ink
            closed = cv2.morphologyEx(full.astype(np.uint8), cv2.MORPH_CLOSE, _disk(side // 25))
            filled = ndimage.binary_fill_holes(closed).astype(np.uint8)
            inner = cv2.erode(filled, _disk(max(2, round(side * 0.03)))).astype(bool)
            out |= full & ~inner
    return out


def _keep_strokes(candidates: np.ndarray, side: int) -> np.ndarray:
    """Keep components of ``candidates`` shaped like pen strokes: long, thin or ring-like."""
    labels, n = ndimage.label(candidates, structure=np.ones((3, 3)))
    keep = np.zeros(n + 1, bool)
    for k, slc in enumerate(ndimage.find_objects(labels), start=1):
        comp = labels[slc] == k
        area = int(comp.sum())
        if area < side * 0.15:
            continue
        ys, xs = np.nonzero(comp)
        (_, _), (rw, rh), _ = cv2.minAreaRect(np.stack([xs, ys], 1).astype(np.float32))
        length, width = max(rw, rh), min(rw, rh)
        fill = area / max(1.0, rw * rh)
        keep[k] = length >= 0.22 * side and (
            width < 0.05 * side or fill < 0.3 or length > 3.5 * width
        )
    return keep[labels]


def pen_enclosure(ink: np.ndarray) -> np.ndarray | None:
    """Region enclosed by pen strokes that surround the image centre, or None.

    Clinicians circle the lesion: when the ink forms a (nearly) closed loop around the
    centre, the lesion is inside it. Gaps up to ~8% of the image side are bridged.
    """
    if not ink.any():
        return None
    h, w = ink.shape
    for radius in (round(max(h, w) * 0.02), round(max(h, w) * 0.04)):
        closed = cv2.morphologyEx(ink.astype(np.uint8), cv2.MORPH_CLOSE, _disk(radius))
        inside = ndimage.binary_fill_holes(closed) & ~closed.astype(bool)
        labels, n = ndimage.label(inside)
        if n == 0:
            continue
        yy, xx = np.mgrid[0:h, 0:w]
        best, best_d = None, np.inf
        for k in range(1, n + 1):
            region = labels == k
            if region.sum() < 0.01 * h * w:
                continue
            d = np.hypot(xx[region] - w / 2, yy[region] - h / 2).min() / max(h, w)
            if d < best_d:
                best, best_d = region, d
        if best is not None and best_d < 0.15:
            return best
    return None


def hair_mask(image: np.ndarray) -> np.ndarray:
    """Dark and light hairs on a working-size RGB uint8 image -> (h, w) bool."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    side = max(image.shape[:2])
    kernel = _disk(max(2, round(side / 64)))
    dark = cv2.morphologyEx(gray, cv2.MORPH_BLACKHAT, kernel)
    light = cv2.morphologyEx(gray, cv2.MORPH_TOPHAT, kernel)
    hair = (dark > 18) | (light > 28)
    # hairs are long and thin: drop specks
    labels, n = ndimage.label(hair)
    if n:
        sizes = ndimage.sum(hair, labels, index=np.arange(1, n + 1))
        keep = np.concatenate([[False], sizes >= max(6, side // 20)])
        hair = keep[labels]
    return hair


def _robust_skin_fit(lab: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Fit a quadratic surface per Lab channel to ``valid`` pixels, trimming outliers."""
    h, w = lab.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    xx, yy = xx / w - 0.5, yy / h - 0.5
    basis = np.stack([np.ones_like(xx), xx, yy, xx * xx, yy * yy, xx * yy], axis=-1)
    pts = basis[valid]
    values = lab[valid]
    keep = np.ones(len(pts), bool)
    coef = np.zeros((6, 3), np.float32)
    for _ in range(3):
        if keep.sum() < 20:
            break
        coef, *_ = np.linalg.lstsq(pts[keep], values[keep], rcond=None)
        resid = np.abs(values - pts @ coef) / np.array([1.0, 1.5, 1.0], np.float32)
        err = resid.max(axis=1)
        keep = err < max(3.0, 2.5 * float(np.median(err[keep])))
    return (basis.reshape(-1, 6) @ coef).reshape(h, w, 3)


def lesion_score(image: np.ndarray, ignore: np.ndarray) -> np.ndarray:
    """Per-pixel 'unlike the surrounding skin' score of a cleaned working image.

    Returns (h, w) float32 >= 0: a weighted Lab colour distance to the fitted skin,
    larger for darker and redder pixels. ``ignore`` (bool) pixels are not used to fit skin.
    """
    lab = _lab(image)
    h, w = lab.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    rr = np.hypot((xx - (w - 1) / 2) / w, (yy - (h - 1) / 2) / h)
    border = (rr > 0.36) & ~ignore
    if border.sum() < 50:
        border = ~ignore
    skin = _robust_skin_fit(lab, border)
    d = lab - skin
    d_l, d_a, d_b = d[..., 0], d[..., 1], d[..., 2]
    darker = np.maximum(-d_l, 0.0)
    lighter = np.maximum(d_l, 0.0)
    score = np.sqrt(
        (1.0 * darker) ** 2 + (0.5 * lighter) ** 2 + (1.6 * np.maximum(d_a, 0)) ** 2 + d_b**2
    )
    return cv2.GaussianBlur(score.astype(np.float32), (0, 0), max(1.0, w / 128))


def _choose_component(candidate: np.ndarray, score: np.ndarray) -> np.ndarray | None:
    h, w = candidate.shape
    labels, n = ndimage.label(candidate)
    if n == 0:
        return None
    yy, xx = np.mgrid[0:h, 0:w]
    best, best_value = None, 0.0
    diag = np.hypot(h, w)
    for k in range(1, n + 1):
        comp = labels == k
        area = int(comp.sum())
        if area < 0.002 * h * w:
            continue
        filled = ndimage.binary_fill_holes(comp)
        solidity = area / max(1, int(filled.sum()))
        ys, xs = np.nonzero(filled)
        hull = cv2.convexHull(np.stack([xs, ys], 1).astype(np.int32))
        convexity = min(1.0, int(filled.sum()) / max(1.0, cv2.contourArea(hull)))
        cy, cx = yy[comp].mean(), xx[comp].mean()
        dist = np.hypot(cx - (w - 1) / 2, cy - (h - 1) / 2) / diag
        # nearest point of the component to the centre also counts (lesions off-centre)
        near = np.hypot(xx[comp] - (w - 1) / 2, yy[comp] - (h - 1) / 2).min() / diag
        centre_weight = np.exp(-((dist / 0.22) ** 2)) * np.exp(-((near / 0.12) ** 2))
        touches = comp[0].any() + comp[-1].any() + comp[:, 0].any() + comp[:, -1].any()
        contrast = float(score[comp].mean())
        # skin folds and creases are long and narrow; lesions rarely exceed 2.5:1
        (_, _), (rw, rh), _ = cv2.minAreaRect(np.stack([xs, ys], 1).astype(np.float32))
        aspect = max(rw, rh) / max(1.0, min(rw, rh))
        slender = min(1.0, 2.5 / aspect) ** 1.5
        value = (
            np.sqrt(area)
            * contrast
            * centre_weight
            * (solidity**1.5)
            * convexity
            * slender
            * (0.5**touches)
        )
        if value > best_value:
            best, best_value = filled, value
    return best


def _fallback(shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (w // 2, h // 2), (max(1, w // 5), max(1, h // 5)), 0, 0, 360, 1, -1)
    return mask.astype(bool)


def segment_lesion(image: np.ndarray) -> np.ndarray:
    """Segment the lesion of a centred close-up.

    image: (H, W, 3) uint8 RGB. Returns (H, W) bool, True on the lesion: one filled,
    smooth, connected region. Falls back to a centred ellipse (2/5 of each side) when no
    plausible region is found.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError("segment_lesion needs an (H, W, 3) uint8 RGB image")
    full_h, full_w = image.shape[:2]
    work, _ = _working_image(image)
    h, w = work.shape[:2]
    pen = pen_mask(work)
    hair = hair_mask(work)
    ink = cv2.dilate(pen.astype(np.uint8), _disk(max(2, w // 80))).astype(bool)
    clean = cv2.inpaint(
        cv2.cvtColor(work, cv2.COLOR_RGB2BGR),
        (cv2.dilate(hair.astype(np.uint8), _disk(1)) | ink).astype(np.uint8) * 255,
        max(3, w // 64),
        cv2.INPAINT_TELEA,
    )
    clean = cv2.cvtColor(clean, cv2.COLOR_BGR2RGB)
    score = lesion_score(clean, ink)
    yy, xx = np.mgrid[0:h, 0:w]
    rr = np.hypot((xx - (w - 1) / 2) / w, (yy - (h - 1) / 2) / h)
    ring = score[rr > 0.36]
    noise = float(np.median(ring) + 2.5 * 1.4826 * np.median(np.abs(ring - np.median(ring))))
    centre = score[rr < 0.2]
    otsu_input = np.clip(centre / max(1e-6, float(score.max())) * 255, 0, 255).astype(np.uint8)
    otsu, _ = cv2.threshold(otsu_input, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    otsu_value = otsu / 255.0 * float(score.max())
    threshold = max(noise, 0.5 * otsu_value + 0.5 * noise, 4.0)
    candidate = (score > threshold) & ~ink
    enclosed = pen_enclosure(pen)
    if enclosed is not None:
        candidate &= enclosed
    candidate = cv2.morphologyEx(
        candidate.astype(np.uint8), cv2.MORPH_OPEN, _disk(max(1, w // 100))
    ).astype(bool)
    chosen = _choose_component(candidate, score)
    if chosen is None or chosen.sum() > 0.8 * h * w:
        chosen = _fallback((h, w))
    soft = cv2.GaussianBlur(
        cv2.morphologyEx(chosen.astype(np.uint8), cv2.MORPH_CLOSE, _disk(max(2, w // 40))).astype(
            np.float32
        ),
        (0, 0),
        max(1.0, w / 100),
    )
    soft = cv2.resize(soft, (full_w, full_h), interpolation=cv2.INTER_LINEAR)
    mask = soft > 0.5
    if not mask.any():
        return _fallback((full_h, full_w))
    labels, n = ndimage.label(mask)
    if n > 1:
        sizes = ndimage.sum(mask, labels, index=np.arange(1, n + 1))
        mask = labels == (1 + int(np.argmax(sizes)))
    mask = ndimage.binary_fill_holes(mask)
    # grow a little: the lesion's faint edge must not be left as a halo outside the mask
    radius = np.sqrt(mask.sum() / np.pi)
    grow = max(2, round(DILATE_FRACTION * radius))
    return cv2.dilate(mask.astype(np.uint8), _disk(grow)).astype(bool)


def cache_dir(override: str | Path | None = None) -> Path:
    """Folder of cached masks: ``override``, else $LESIONVIEWER_CACHE, else the user cache."""
    if override is not None:
        root = Path(override)
    elif os.environ.get(CACHE_ENV):
        root = Path(os.environ[CACHE_ENV])
    else:
        import platformdirs

        root = Path(platformdirs.user_cache_dir("lesionviewer"))
    return root / "lesion-masks" / MASK_ALGORITHM_VERSION


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class MaskCache:
    """Masks of photo files, computed once and kept as PNG named by the file's SHA-256.

    The cache key also includes :data:`MASK_ALGORITHM_VERSION` (as a folder), so masks of
    an older algorithm are never reused. ``hits`` and ``misses`` count lookups.
    """

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = cache_dir(folder)
        self.hits = 0
        self.misses = 0

    def path_for(self, sha256: str) -> Path:
        return self.folder / f"{sha256}.png"

    def mask_for(self, photo_path: str | Path, image: np.ndarray) -> np.ndarray:
        """(H, W) bool mask of ``image`` (the decoded content of ``photo_path``)."""
        target = self.path_for(file_sha256(photo_path))
        if target.is_file():
            stored = cv2.imread(str(target), cv2.IMREAD_GRAYSCALE)
            if stored is not None and stored.shape == image.shape[:2]:
                self.hits += 1
                return stored > 127
        self.misses += 1
        mask = segment_lesion(image)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            temp = target.with_suffix(f".{os.getpid()}.tmp.png")
            cv2.imwrite(str(temp), mask.astype(np.uint8) * 255)
            os.replace(temp, target)
        except OSError:
            pass  # a read-only cache only costs time
        return mask


def crop_lesion(
    image: np.ndarray, mask: np.ndarray, *, margin: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Crop ``image`` (H, W, 3) and ``mask`` (H, W) bool around the lesion.

    The box is the mask's bounding box grown by ``margin`` times the lesion radius
    (half the longer bbox side) on each side, clipped to the image. Returns copies.
    """
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return image.copy(), mask.copy()
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    pad = int(round(margin * max(x1 - x0, y1 - y0) / 2))
    h, w = mask.shape
    x0, y0 = max(0, x0 - pad), max(0, y0 - pad)
    x1, y1 = min(w, x1 + pad), min(h, y1 + pad)
    return image[y0:y1, x0:x1].copy(), mask[y0:y1, x0:x1].copy()
