"""Synthetic tracking pairs: two visits of one body region with the exact mapping A -> B.

Both visits are rendered from the same lesion-free body on a canvas larger than the
photos. Visit A is the canvas frame at ``offset`` with its lesions blended in. Visit B
blends its own lesion set onto the same canvas (persisting lesions as in A or evolved;
gone ones left out; new ones added), then views it through ``Deformation`` T (smooth
body warp + camera homography) with ``cv2.remap`` of T's inverse. The flow is T itself,
evaluated exactly on A's pixels, so every A pixel + flow lands where that skin is in B.
Lesion ids are renumbered per photo; ``correspondences`` pairs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from training.sources.base import MALIGNANT
from training.synthesis import augment as aug
from training.synthesis.blend import Stamp
from training.synthesis.deform import random_deformation
from training.synthesis.detection import (
    LesionMeta,
    LesionRecord,
    PlacedLesion,
    SynthConfig,
    blend,
    class_map_of,
    mole_metas,
    plan_lesion,
    prepare_body,
    records,
    resolve_sources,
)
from training.synthesis.placement import body_features, to_grid
from training.synthesis.sources import SynthSources

#: Room kept around each lesion of A for growth in B (diameter factor).
MAX_GROWTH = 1.6
#: A lesion with fewer visible pixels than this in a photo counts as not visible there.
MIN_VISIBLE_PX = 4


@dataclass(frozen=True)
class PairSample:
    """Two synthetic visits and their ground truth.

    image_a, image_b: (H, W, 3) uint8 RGB. flow: (H, W, 2) float32, A pixel (x, y) +
    flow[y, x] = its position in B. valid: (H, W) bool, that position lies inside B.
    class_map_a/b: (H, W) uint8 {0, 1, 2}; instance_map_a/b: (H, W) uint16 (ids of
    lesions_a/b). correspondences: (id in A, id in B) of lesions visible in both.
    new_in_b: B ids of lesions that appeared. gone_from_a: A ids of lesions that vanished.
    changed: A ids of corresponding lesions that evolved (growth, shape, colour).
    only_in_a / only_in_b: ids visible in one photo only because of the viewpoint.
    skin_a: (H, W) bool, A's pixels that show skin (not background or clothing): where a
    flow can be judged on what the tracker is for.
    """

    image_a: np.ndarray = field(repr=False)
    image_b: np.ndarray = field(repr=False)
    flow: np.ndarray = field(repr=False)
    valid: np.ndarray = field(repr=False)
    class_map_a: np.ndarray = field(repr=False)
    class_map_b: np.ndarray = field(repr=False)
    instance_map_a: np.ndarray = field(repr=False)
    instance_map_b: np.ndarray = field(repr=False)
    lesions_a: tuple[LesionRecord, ...]
    lesions_b: tuple[LesionRecord, ...]
    correspondences: tuple[tuple[int, int], ...]
    new_in_b: tuple[int, ...]
    gone_from_a: tuple[int, ...]
    changed: tuple[int, ...]
    only_in_a: tuple[int, ...]
    only_in_b: tuple[int, ...]
    mm_per_px: float
    skin_a: np.ndarray | None = field(default=None, repr=False)


def evolve_lesion(placed: PlacedLesion, rng: np.random.Generator) -> PlacedLesion:
    """The same lesion some months later: larger, reshaped, darker; more so if malignant.

    Growth (diameter) is 1.05-1.3 for benign and 1.15-1.6 for malignant lesions, within
    the room ``plan_lesion`` kept for it; malignant lesions also gain blue-grey areas.
    """
    malignant = placed.meta.label == MALIGNANT
    growth = float(rng.uniform(1.15, MAX_GROWTH) if malignant else rng.uniform(1.05, 1.3))
    d_px = float(2 * np.sqrt(placed.mask.sum() / np.pi))
    img, mask = aug.resize_patch(placed.patch, placed.mask, max(d_px, 32.0))
    img, mask = aug.warp_lesion(
        img,
        mask,
        rng,
        rotate=False,
        flip=False,
        aspect_range=(0.88, 1.14),
        wobble=0.14 if malignant else 0.06,
    )
    f = img.astype(np.float32)
    ring = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & ~mask
    skin = f[ring].mean(axis=0) if ring.any() else f[~mask].mean(axis=0)
    gain = float(rng.uniform(1.1, 1.35) if malignant else rng.uniform(1.0, 1.15))
    lesion = skin * (np.maximum(f, 1.0) / np.maximum(skin, 1.0)) ** gain  # pigment ratio
    if malignant:  # blue-grey veil over a random part of the lesion
        blob = aug.smooth_field(rng, mask.shape, cell_px=max(mask.shape) / 3, amplitude=1.0)
        veil = np.clip(blob[..., 0] * 1.5, 0, 1) * mask
        tint = np.array([0.72, 0.78, 0.95], np.float32) * float(rng.uniform(0.8, 1.0))
        lesion = lesion * (1 - veil[..., None]) + lesion * tint * veil[..., None]
    alpha = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.0)[..., None]
    img = np.clip(f * (1 - alpha) + lesion * alpha + 0.5, 0, 255).astype(np.uint8)
    img, mask = aug.resize_patch(img, mask, d_px * growth)
    meta = replace(placed.meta, diameter_mm=placed.meta.diameter_mm * growth)
    return replace(placed, patch=img, mask=mask, meta=meta)


def _renumber(
    instances: np.ndarray, metas: dict[int, LesionMeta]
) -> tuple[np.ndarray, dict[int, LesionMeta], dict[int, int], dict[int, int]]:
    """Compact ids 1..n in key order; returns (map, metas by id, key->id, key->pixel count)."""
    keys, counts = np.unique(instances[instances > 0], return_counts=True)
    lut = np.zeros(int(instances.max()) + 1, np.uint16)
    key_to_id = {int(k): i + 1 for i, k in enumerate(keys)}
    for k, i in key_to_id.items():
        lut[k] = i
    by_id = {key_to_id[int(k)]: metas[int(k)] for k in keys}
    return lut[instances], by_id, key_to_id, dict(zip(keys.tolist(), counts.tolist(), strict=True))


def make_pair_sample(
    index: int,
    seed: int,
    config: SynthConfig = SynthConfig(),  # noqa: B008 (frozen, immutable)
    *,
    sources: SynthSources | None = None,
) -> PairSample:
    """Synthesise tracking pair number ``index`` of the dataset ``seed`` (deterministic)."""
    src = resolve_sources(config, sources)
    opt = config.pairs
    rng = np.random.default_rng([seed, index])
    w, h = config.width, config.height
    m = int(round(0.25 * w))
    cw, ch = w + 2 * m, h + 2 * m
    body = prepare_body(rng, seed, config, src, cw, ch)
    deformation = random_deformation(
        rng,
        (cw, ch),
        (m, m),
        (w, h),
        max_shift_frac=opt.max_shift_frac,
        max_rotation_deg=opt.max_rotation_deg,
        scale_range=opt.scale_range,
        perspective=opt.perspective,
        warp_frac=opt.warp_frac,
    )
    flow, valid = deformation.flow()
    frame = np.zeros((ch, cw), bool)
    frame[m : m + h, m : m + w] = True
    both = np.zeros((ch, cw), bool)
    both[m : m + h, m : m + w] = cv2.erode(valid.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0

    features = body_features(body.image, body.skin_mask)
    occupied = to_grid(body.mole_instances > 0, features)
    frame_grid = to_grid(frame, features, any_pixel=False)
    both_grid = to_grid(both, features, any_pixel=False)
    metas_a: dict[int, LesionMeta] = dict(mole_metas(body))
    metas_b: dict[int, LesionMeta] = dict(metas_a)
    key = max(metas_a, default=0) + 1
    placed: dict[int, PlacedLesion] = {}
    stamps_a: dict[int, Stamp] = {}
    n = int(rng.integers(config.lesions_per_image[0], config.lesions_per_image[1] + 1))
    for _ in range(n):
        p = plan_lesion(
            rng, body, features, occupied, config, src, seed, allowed=frame_grid, growth=MAX_GROWTH
        )
        stamp = blend(body.image, body.skin_mask, p) if p is not None else None
        if p is None or stamp is None:
            continue
        placed[key], stamps_a[key], metas_a[key], metas_b[key] = p, stamp, p.meta, p.meta
        key += 1

    in_both = [k for k, p in placed.items() if both[p.centre[1], p.centre[0]]]
    n_gone = min(len(in_both), int(rng.integers(opt.gone_range[0], opt.gone_range[1] + 1)))
    gone = set(rng.choice(in_both, size=n_gone, replace=False).tolist()) if n_gone else set()
    stamps_b: dict[int, Stamp] = {k: s for k, s in stamps_a.items() if k not in gone}
    changed: set[int] = set()
    for k in in_both:
        if k in gone:
            continue
        p = placed[k]
        prob = opt.change_malignant if p.meta.label == MALIGNANT else opt.change_benign
        if rng.random() >= prob:
            continue
        evolved = evolve_lesion(p, rng)
        stamp = blend(body.image, body.skin_mask, evolved)
        if stamp is not None:
            stamps_b[k], metas_b[k] = stamp, evolved.meta
            changed.add(k)
    new: set[int] = set()
    for _ in range(int(rng.integers(opt.new_range[0], opt.new_range[1] + 1))):
        p = plan_lesion(rng, body, features, occupied, config, src, seed, allowed=both_grid)
        stamp = blend(body.image, body.skin_mask, p) if p is not None else None
        if p is None or stamp is None:
            continue
        stamps_b[key], metas_b[key] = stamp, p.meta
        new.add(key)
        key += 1

    def render(stamps: dict[int, Stamp]) -> tuple[np.ndarray, np.ndarray]:
        image = body.image.copy()
        instances = body.mole_instances.astype(np.uint16).copy()
        for k, s in stamps.items():
            s.apply(image)
            s.paint_labels(instances, k)
        return image, instances

    canvas_a, keys_a = render(stamps_a)
    canvas_b, keys_b = render(stamps_b)
    image_a = np.ascontiguousarray(canvas_a[m : m + h, m : m + w])
    keys_a = np.ascontiguousarray(keys_a[m : m + h, m : m + w])
    inv = deformation.inverse_map()
    image_b = cv2.remap(
        canvas_b, inv[..., 0], inv[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
    )
    keys_b = cv2.remap(
        keys_b,
        inv[..., 0],
        inv[..., 1],
        cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    if opt.photometric and config.augment > 0:
        image_a = aug.camera_augment(image_a, rng, strength=config.augment)
        image_b = aug.illumination_change(image_b, rng, strength=config.augment)
        image_b = aug.camera_augment(image_b, rng, strength=config.augment)

    inst_a, by_id_a, ids_a, px_a = _renumber(keys_a, metas_a)
    inst_b, by_id_b, ids_b, px_b = _renumber(keys_b, metas_b)
    seen_a = {k for k, c in px_a.items() if c >= MIN_VISIBLE_PX}
    seen_b = {k for k, c in px_b.items() if c >= MIN_VISIBLE_PX}
    common = sorted(seen_a & seen_b)
    return PairSample(
        image_a=image_a,
        image_b=np.ascontiguousarray(image_b),
        flow=flow,
        valid=valid,
        class_map_a=class_map_of(inst_a, by_id_a),
        class_map_b=class_map_of(inst_b, by_id_b),
        instance_map_a=inst_a,
        instance_map_b=inst_b,
        lesions_a=records(inst_a, by_id_a),
        lesions_b=records(inst_b, by_id_b),
        correspondences=tuple((ids_a[k], ids_b[k]) for k in common),
        new_in_b=tuple(sorted(ids_b[k] for k in new if k in ids_b)),
        gone_from_a=tuple(sorted(ids_a[k] for k in gone if k in ids_a)),
        changed=tuple(sorted(ids_a[k] for k in changed if k in common)),
        only_in_a=tuple(sorted(ids_a[k] for k in ids_a if k not in common and k not in gone)),
        only_in_b=tuple(sorted(ids_b[k] for k in ids_b if k not in common and k not in new)),
        mm_per_px=body.mm_per_px,
        skin_a=np.ascontiguousarray(body.skin_mask[m : m + h, m : m + w]),
    )
