"""Synthetic detection photos: lesions blended onto body photos, with exact labels.

``make_detection_sample(index, seed, config)`` is a pure function of its arguments: the
random generator is ``np.random.default_rng([seed, index])``; bodies come from a
per-process pool keyed by (seed, slot) and are re-augmented per sample.

Pipeline: body (pooled, re-augmented) -> lesions drawn from the bank with a plausible
diameter in mm -> lesion augmentation (rotation, flip, stretch, outline wobble, colour)
-> placement by skin-ring matching -> log-domain Poisson blend on a small box -> labels
(pre-existing moles are benign instances) -> camera effects on the whole photo.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import find_objects

from training.sources.base import BENIGN, MALIGNANT, BodyPhoto
from training.sources.skin_tones import fitzpatrick_of_source
from training.synthesis import augment as aug
from training.synthesis.blend import Stamp, blend_lesion
from training.synthesis.placement import (
    SkinFeatures,
    body_features,
    choose_position,
    mark_disk,
    ring_descriptor,
    sample_diameter_mm,
    to_grid,
)
from training.synthesis.sources import BODY_POOL, LESION_POOL, SynthSources, default_sources


@dataclass(frozen=True)
class PairOptions:
    """How the second visit of a tracking pair differs from the first.

    max_shift_frac: largest camera translation, as a fraction of the image width.
    max_rotation_deg, scale_range, perspective: the rest of the viewpoint change.
    warp_frac: typical non-rigid (body pose) displacement, as a fraction of the width.
    new_range, gone_range: how many lesions appear in B / disappear from A (inclusive).
    change_benign, change_malignant: probability that a lesion evolves between visits.
    photometric: illumination change and separate camera effects on B.
    """

    max_shift_frac: float = 0.2
    max_rotation_deg: float = 12.0
    scale_range: tuple[float, float] = (0.87, 1.15)
    perspective: float = 0.08
    warp_frac: float = 0.025
    new_range: tuple[int, int] = (0, 2)
    gone_range: tuple[int, int] = (0, 2)
    change_benign: float = 0.15
    change_malignant: float = 0.6
    photometric: bool = True


@dataclass(frozen=True)
class SynthConfig:
    """What synthetic photos look like.

    width, height: output size in pixels.
    lesions_per_image: inclusive range of blended lesions (moles of the body come on top).
    malignant_fraction: probability that a blended lesion is malignant.
    diameter_mm: clinical diameter range of blended lesions.
    body_source: "procedural" or a folder of body photos.
    lesion_source: "default" (lesion bank, train split), "holdout" (its held-out patients:
        evaluation only), "procedural", or a folder.
    procedural_fraction: share of procedural lesions when lesion_source is a folder.
    body_pool: bodies kept per process and re-augmented (0: a new body per sample).
    lesion_pool: lesions kept per process and label, re-augmented at every use (0: fresh).
    augment: strength of lesion and camera augmentation (0 disables camera effects).
    mixed_fraction: share of blends with mixed gradients (body hair shows through).
    pairs: tracking-pair options.
    """

    width: int = 1024
    height: int = 768
    lesions_per_image: tuple[int, int] = (2, 7)
    malignant_fraction: float = 0.35
    diameter_mm: tuple[float, float] = (2.0, 20.0)
    body_source: str = "procedural"
    lesion_source: str = "default"
    procedural_fraction: float = 0.5
    body_pool: int = 24
    lesion_pool: int = 384
    augment: float = 1.0
    mixed_fraction: float = 0.25
    pairs: PairOptions = field(default_factory=PairOptions)


#: where a synthetic photo's lesion came from (:attr:`LesionRecord.origin`): a real lesion
#: photo blended in, a procedurally drawn lesion blended in, or one of the procedural body's
#: own moles (benign, 1 mm and up, drawn with the body)
LESION_ORIGINS = ("photo", "procedural", "body_mole")
_MOLE_SOURCE = re.compile(r":mole\d+$")


def mole_source(body_source: str, mole_id: int) -> str:
    """The ``source`` of a body's pre-existing mole: its body's source and the mole's id."""
    return f"{body_source}:mole{int(mole_id)}"


def lesion_origin(source: str) -> str:
    """The origin (one of :data:`LESION_ORIGINS`) of a lesion from its ``source``: a body
    mole (:func:`mole_source`), "procedural:<kind>", or a lesion photo's file name. Read
    from the source so that the records of stored pools say it too."""
    if _MOLE_SOURCE.search(source):
        return "body_mole"
    return "procedural" if source.startswith("procedural:") else "photo"


@dataclass(frozen=True)
class LesionRecord:
    """One labelled lesion of a synthetic photo.

    id: its value in the instance map (1-based). label: BENIGN (1) or MALIGNANT (2).
    diagnosis: a code of DIAGNOSIS_CLASS. source: lesion file / "procedural:..." / body mole.
    diameter_mm: its clinical diameter. bbox: (x0, y0, x1, y1) pixels, x1/y1 exclusive.
    centroid: (x, y) float pixels of its labelled pixels.
    """

    id: int
    label: int
    diagnosis: str
    source: str
    diameter_mm: float
    bbox: tuple[int, int, int, int]
    centroid: tuple[float, float]

    @property
    def origin(self) -> str:
        """Where it came from: one of :data:`LESION_ORIGINS` (see :func:`lesion_origin`)."""
        return lesion_origin(self.source)

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "label": self.label,
            "diagnosis": self.diagnosis,
            "source": self.source,
            "diameter_mm": round(self.diameter_mm, 2),
            "bbox": list(self.bbox),
            "centroid": [round(self.centroid[0], 2), round(self.centroid[1], 2)],
        }


@dataclass(frozen=True)
class DetectionSample:
    """A synthetic detection photo and its labels.

    image: (H, W, 3) uint8 RGB. class_map: (H, W) uint8 {0 skin/background, 1 benign,
    2 malignant}. instance_map: (H, W) uint16 (0 none, k = LesionRecord.id).
    skin_mask: (H, W) bool. lesions: one record per instance. mm_per_px: pixel size on skin.
    skin_type: the body's Fitzpatrick type 1-6, 0 when unknown (a real body photo).
    """

    image: np.ndarray = field(repr=False)
    class_map: np.ndarray = field(repr=False)
    instance_map: np.ndarray = field(repr=False)
    skin_mask: np.ndarray = field(repr=False)
    lesions: tuple[LesionRecord, ...]
    mm_per_px: float
    skin_type: int = 0


@dataclass(frozen=True)
class LesionMeta:
    """What a label map does not say about a lesion."""

    label: int
    diagnosis: str
    source: str
    diameter_mm: float


@dataclass(frozen=True)
class PlacedLesion:
    """A lesion ready to blend: augmented patch at body scale and its centre on the body.

    patch (h, w, 3) uint8, mask (h, w) bool, centre (x, y) in body pixels, reach_px: the
    radius kept clear for it (its blend region, times the growth it may have later).
    """

    meta: LesionMeta
    patch: np.ndarray = field(repr=False)
    mask: np.ndarray = field(repr=False)
    centre: tuple[int, int]
    reach_px: float
    mixed: bool
    keep: float


def resolve_sources(config: SynthConfig, sources: SynthSources | None) -> SynthSources:
    if sources is not None:
        return sources
    return default_sources(config.body_source, config.lesion_source, config.procedural_fraction)


def prepare_body(
    rng: np.random.Generator,
    seed: int,
    config: SynthConfig,
    sources: SynthSources,
    width: int,
    height: int,
) -> BodyPhoto:
    """The body of one sample: a pooled body re-augmented by ``rng`` (or a fresh one)."""
    if config.body_pool <= 0:
        return sources.body(rng, width, height)
    slot = int(rng.integers(0, config.body_pool))
    body = BODY_POOL.get(sources, seed, slot, width, height)
    if config.augment > 0:
        body = aug.augment_body(body, rng)
    return body


def plan_lesion(
    rng: np.random.Generator,
    body: BodyPhoto,
    features: SkinFeatures,
    occupied: np.ndarray,
    config: SynthConfig,
    sources: SynthSources,
    seed: int,
    *,
    allowed: np.ndarray | None = None,
    growth: float = 1.0,
) -> PlacedLesion | None:
    """Draw, size, augment and place one lesion; marks its reach in ``occupied`` (in place).

    occupied: bool on the descriptor grid (``placement.to_grid``); allowed likewise or None.
    growth: how much larger the lesion may become later (pairs keep room for it).
    Returns None when no skin position fits.
    """
    label = MALIGNANT if rng.random() < config.malignant_fraction else BENIGN
    d_mm = sample_diameter_mm(rng, label, None, config.diameter_mm)
    d_px = d_mm / body.mm_per_px
    if config.lesion_pool > 0:
        slot = int(rng.integers(0, config.lesion_pool))
        lesion = LESION_POOL.get(sources, seed, label, slot)
    else:
        lesion = sources.lesion(rng, label, int(np.clip(round(2 * d_px), 32, 128)))
    if lesion.diameter_mm:
        d_mm = sample_diameter_mm(rng, label, lesion.diameter_mm, config.diameter_mm)
        d_px = d_mm / body.mm_per_px
    # augment geometry at a working size, then bring to body scale
    image, mask = aug.resize_patch(lesion.image, lesion.mask, max(d_px, 28.0))
    s = config.augment
    image, mask = aug.warp_lesion(image, mask, rng, wobble=0.07 * s)
    image = aug.jitter_lesion_colour(image, mask, rng, strength=s)
    image, mask = aug.resize_patch(image, mask, d_px)
    ys, xs = np.nonzero(mask)
    rad = float(np.sqrt((xs - xs.mean()) ** 2 + (ys - ys.mean()) ** 2).max()) + 0.5
    reach = rad * growth + float(np.clip(0.15 * d_px * growth, 2.0, 4.0)) + 2.0
    centre = choose_position(
        features, ring_descriptor(image, mask), reach, occupied, rng, allowed=allowed
    )
    if centre is None:
        return None
    mark_disk(occupied, centre, reach)
    meta = LesionMeta(lesion.label, lesion.diagnosis, lesion.source, float(d_mm))
    return PlacedLesion(
        meta=meta,
        patch=image,
        mask=mask,
        centre=centre,
        reach_px=reach,
        mixed=bool(rng.random() < config.mixed_fraction),
        keep=float(rng.uniform(0.0, 0.3)),
    )


def blend(body_image: np.ndarray, skin: np.ndarray, lesion: PlacedLesion) -> Stamp | None:
    """Blend a placed lesion onto the (lesion-free) body image."""
    return blend_lesion(
        body_image,
        skin,
        lesion.patch,
        lesion.mask,
        lesion.centre,
        mixed=lesion.mixed,
        keep=lesion.keep,
    )


def mole_metas(body: BodyPhoto) -> dict[int, LesionMeta]:
    """Benign metadata of each pre-existing mole of a body, keyed by its mole id."""
    ids, counts = np.unique(body.mole_instances[body.mole_instances > 0], return_counts=True)
    return {
        int(k): LesionMeta(
            BENIGN,
            "NEV",
            mole_source(body.source, int(k)),
            float(2 * np.sqrt(c / np.pi)) * body.mm_per_px,
        )
        for k, c in zip(ids, counts, strict=True)
    }


def records(instance_map: np.ndarray, metas: dict[int, LesionMeta]) -> tuple[LesionRecord, ...]:
    """LesionRecords of every id of ``metas`` present in ``instance_map`` (H, W) uint16."""
    out = []
    boxes = find_objects(instance_map)
    for k in sorted(metas):
        if k > len(boxes) or boxes[k - 1] is None:
            continue
        sy, sx = boxes[k - 1]
        ys, xs = np.nonzero(instance_map[sy, sx] == k)
        ys, xs = ys + sy.start, xs + sx.start
        m = metas[k]
        bbox = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        centroid = (float(xs.mean()), float(ys.mean()))
        out.append(LesionRecord(k, m.label, m.diagnosis, m.source, m.diameter_mm, bbox, centroid))
    return tuple(out)


def class_map_of(instance_map: np.ndarray, metas: dict[int, LesionMeta]) -> np.ndarray:
    """(H, W) uint8 class map from an instance map and each instance's label."""
    lut = np.zeros(int(max([0, *metas.keys()])) + 1, np.uint8)
    for k, m in metas.items():
        lut[k] = m.label
    return np.take(lut, instance_map, mode="clip")


def make_detection_sample(
    index: int,
    seed: int,
    config: SynthConfig = SynthConfig(),  # noqa: B008 (frozen, immutable)
    *,
    sources: SynthSources | None = None,
) -> DetectionSample:
    """Synthesise detection photo number ``index`` of the dataset ``seed``.

    Deterministic in (index, seed, config, sources). See DetectionSample for the output.
    """
    src = resolve_sources(config, sources)
    rng = np.random.default_rng([seed, index])
    body = prepare_body(rng, seed, config, src, config.width, config.height)
    features = body_features(body.image, body.skin_mask)
    occupied = to_grid(body.mole_instances > 0, features)
    n = int(rng.integers(config.lesions_per_image[0], config.lesions_per_image[1] + 1))
    image = body.image.copy()
    metas: dict[int, LesionMeta] = {}
    lut = np.zeros(int(body.mole_instances.max()) + 1, np.uint16)
    next_id = 1
    for k, meta in mole_metas(body).items():
        lut[k] = next_id
        metas[next_id] = meta
        next_id += 1
    instance_map = lut[body.mole_instances]
    for _ in range(n):
        placed = plan_lesion(rng, body, features, occupied, config, src, seed)
        if placed is None:
            continue
        stamp = blend(body.image, body.skin_mask, placed)
        if stamp is None:
            continue
        stamp.apply(image)
        stamp.paint_labels(instance_map, next_id)
        metas[next_id] = placed.meta
        next_id += 1
    image = aug.camera_augment(image, rng, strength=config.augment)
    return DetectionSample(
        image=image,
        class_map=class_map_of(instance_map, metas),
        instance_map=instance_map,
        skin_mask=body.skin_mask,
        lesions=records(instance_map, metas),
        mm_per_px=body.mm_per_px,
        skin_type=fitzpatrick_of_source(body.source),
    )
