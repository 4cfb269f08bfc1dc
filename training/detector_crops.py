"""Random training crops of synthetic detection photos, with scale and colour augmentation.

Lesions cover a tiny fraction of a body photo, so most crops are centred near a lesion
(a random lesion pixel, or a random lesion and then one of its pixels, so that a 3 px mole
is as likely a centre as a 60 px one); the rest are anywhere (skin, hair, clothing,
background). Each crop is a random similarity transform of the photo (scale, rotation,
flip), so lesions of ~6 px to ~200 px are seen whatever sizes synthesis drew. Every random
choice comes from a ``numpy.random.Generator`` seeded by (seed, epoch, image index): the
crops do not depend on the DataLoader worker that made them or on the number of workers.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


@dataclass(frozen=True)
class CropRecipe:
    """How crops are drawn.

    crop_size: side of the square crop in pixels.
    crops_per_image: crops drawn from each photo (one photo is expensive to synthesise).
    scale_range: (low, high) zoom factors, drawn log-uniformly (> 1 enlarges lesions).
    lesion_centred: probability that a crop is centred near a lesion pixel.
    rotate: random rotation by any angle (else multiples of 90 degrees).
    colour: strength of the brightness/contrast/saturation/hue/gamma jitter (0 = none).
    noise: standard deviation of added Gaussian noise, in 0-255 units, drawn up to this.
    blur: probability of a slight Gaussian blur (defocus, motion of a hand-held camera).
    border_bars: probability of a uniform dark band over one side of the crop, labelled
        background (the black padding and dark backdrops of real tiles and scans).
    hard_negative: probability that a crop is centred on one of the photo's mined hard
        negatives (``lesion-train mine-negatives``), when the photo has any.
    centre_on: what a lesion-centred crop draws uniformly: "pixel" (large lesions are
        centres in proportion to their area) or "lesion" (every lesion alike; needs the
        photo's instance map).
    """

    crop_size: int = 256
    crops_per_image: int = 4
    scale_range: tuple[float, float] = (0.5, 2.0)
    lesion_centred: float = 0.7
    rotate: bool = True
    colour: float = 1.0
    noise: float = 6.0
    blur: float = 0.2
    border_bars: float = 0.0
    hard_negative: float = 0.0
    centre_on: str = "pixel"

    def __post_init__(self) -> None:
        if self.centre_on not in ("pixel", "lesion"):
            raise ValueError(f"centre_on must be 'pixel' or 'lesion', not {self.centre_on!r}")

    @classmethod
    def from_dict(cls, d: dict) -> CropRecipe:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "scale_range" in known:
            known["scale_range"] = tuple(float(v) for v in known["scale_range"])
        return cls(**known)


def _affine(
    rng: np.random.Generator, recipe: CropRecipe, centre: tuple[float, float]
) -> tuple[np.ndarray, float]:
    """2x3 matrix mapping photo pixels to crop pixels, and the zoom factor."""
    lo, hi = recipe.scale_range
    scale = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    angle = float(rng.uniform(0, 360)) if recipe.rotate else 90.0 * int(rng.integers(4))
    flip = bool(rng.integers(2))
    c = (recipe.crop_size - 1) / 2.0
    rad = math.radians(angle)
    a, b = scale * math.cos(rad), scale * math.sin(rad)
    fx = -1.0 if flip else 1.0
    # crop = R S F (p - centre) + c
    m = np.array([[a * fx, -b, 0.0], [b * fx, a, 0.0]], np.float64)
    m[:, 2] = np.array([c, c]) - m[:, :2] @ np.asarray(centre, np.float64)
    return m, scale


def colour_jitter(image: np.ndarray, rng: np.random.Generator, recipe: CropRecipe) -> np.ndarray:
    """Photometric jitter of an RGB uint8 crop (camera, light and skin-tone variation)."""
    s = recipe.colour
    x = image.astype(np.float32) / 255.0
    if s > 0:
        gains = 1.0 + s * rng.uniform(-0.08, 0.08, 3).astype(np.float32)  # white balance
        x = x * gains * (1.0 + s * float(rng.uniform(-0.2, 0.2)))  # exposure
        mean = x.mean(axis=(0, 1), keepdims=True)
        x = (x - mean) * (1.0 + s * float(rng.uniform(-0.25, 0.25))) + mean  # contrast
        grey = x.mean(axis=2, keepdims=True)
        x = (x - grey) * (1.0 + s * float(rng.uniform(-0.3, 0.3))) + grey  # saturation
        x = np.clip(x, 0.0, 1.0) ** float(math.exp(s * rng.uniform(-0.25, 0.25)))  # gamma
    if recipe.blur > 0 and rng.random() < recipe.blur:
        x = cv2.GaussianBlur(x, (0, 0), float(rng.uniform(0.5, 1.2)))
    if recipe.noise > 0:
        sigma = float(rng.uniform(0, recipe.noise)) / 255.0
        x = x + rng.standard_normal(x.shape, dtype=np.float32) * sigma
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


class Crops(NamedTuple):
    """Crops of one photo: images (K, S, S, 3) uint8, class maps (K, S, S) uint8 and, when
    the photo's instance map was given, instance maps (K, S, S) uint16 (else None)."""

    images: np.ndarray
    labels: np.ndarray
    instances: np.ndarray | None


def _lesion_pixel_sets(
    class_map: np.ndarray, instance_map: np.ndarray | None, centre_on: str
) -> list[np.ndarray]:
    """Flat indices of lesion pixels to draw crop centres from: one set of every lesion
    pixel ("pixel"), or a set per lesion ("lesion"); empty when the photo has none."""
    if centre_on == "lesion":
        if instance_map is None:
            raise ValueError("centre_on='lesion' needs the photo's instance map")
        flat = instance_map.ravel()
        return [np.flatnonzero(flat == k) for k in np.unique(flat[flat > 0])]
    pixels = np.flatnonzero(class_map.ravel() > 0)
    return [pixels] if pixels.size else []


def random_crops(
    image: np.ndarray,
    class_map: np.ndarray,
    rng: np.random.Generator,
    recipe: CropRecipe,
    negatives: np.ndarray | None = None,
    instance_map: np.ndarray | None = None,
) -> Crops:
    """``recipe.crops_per_image`` augmented crops of one photo.

    image: (H, W, 3) uint8 RGB; class_map: (H, W) integer {0, 1, 2}; negatives: float32
    (N, 2) hard-negative centroids (x, y) of this photo, or None; instance_map: (H, W)
    integer lesion ids (0 = none, ids < 65536), or None.
    Returns :class:`Crops` (S = crop_size); the instance crops are cut with the same
    transforms as the labels. Pixels outside the photo are filled by reflection (labels
    reflect with them).
    """
    h, w = class_map.shape
    s = recipe.crop_size
    lesion_sets = _lesion_pixel_sets(class_map, instance_map, recipe.centre_on)
    images = np.empty((recipe.crops_per_image, s, s, 3), np.uint8)
    labels = np.empty((recipe.crops_per_image, s, s), np.uint8)
    instances = None
    if instance_map is not None:
        instances = np.empty((recipe.crops_per_image, s, s), np.uint16)
        instance_map = instance_map.astype(np.uint16, copy=False)
    has_negatives = negatives is not None and len(negatives) > 0
    for k in range(recipe.crops_per_image):
        # the extra draw only when asked for, so that older recipes give the same crops
        if recipe.hard_negative > 0 and has_negatives and rng.random() < recipe.hard_negative:
            cx, cy = negatives[int(rng.integers(len(negatives)))]
            jitter = 0.25 * recipe.crop_size
            centre = (cx + rng.uniform(-jitter, jitter), cy + rng.uniform(-jitter, jitter))
        elif lesion_sets and rng.random() < recipe.lesion_centred:
            pixels = lesion_sets[0]
            if recipe.centre_on == "lesion":  # "pixel" draws as before: same old crops
                pixels = lesion_sets[int(rng.integers(len(lesion_sets)))]
            cy, cx = divmod(int(pixels[rng.integers(pixels.size)]), w)
            # keep the lesion inside the crop but not always in its middle
            jitter = 0.35 * s
            centre = (cx + rng.uniform(-jitter, jitter), cy + rng.uniform(-jitter, jitter))
        else:
            centre = (rng.uniform(0, w - 1), rng.uniform(0, h - 1))
        m, scale = _affine(rng, recipe, centre)
        src = image
        if scale < 0.75:  # shrinking: low-pass first so that fine texture does not alias
            src = cv2.GaussianBlur(image, (0, 0), 0.45 / scale)
        images[k] = cv2.warpAffine(
            src, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
        )
        labels[k] = _warp_labels(class_map.astype(np.uint8), m, s)
        if instances is not None:
            instances[k] = _warp_labels(instance_map, m, s)
        images[k] = colour_jitter(images[k], rng, recipe)
        if recipe.border_bars > 0 and rng.random() < recipe.border_bars:
            band = _border_bar(images[k], labels[k], rng)
            if instances is not None:
                instances[k][band] = 0
    return Crops(images, labels, instances)


def _warp_labels(label_map: np.ndarray, m: np.ndarray, side: int) -> np.ndarray:
    return cv2.warpAffine(
        label_map, m, (side, side), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT_101
    )


def _border_bar(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> tuple:
    """Paint a uniform dark band (5-40 % of the side) along one edge; it is background.
    Returns the band's index expression."""
    s = labels.shape[0]
    width = int(rng.uniform(0.05, 0.4) * s)
    colour = rng.uniform(0, 60, 3) if rng.random() < 0.8 else rng.uniform(60, 200, 3)
    band = [np.s_[:width, :], np.s_[-width:, :], np.s_[:, :width], np.s_[:, -width:]][
        int(rng.integers(4))
    ]
    image[band] = np.clip(colour + rng.normal(0, 2, image[band].shape), 0, 255).astype(np.uint8)
    labels[band] = 0
    return band


class CropDataset(Dataset):
    """Wraps a detection dataset (items {"image": uint8 (3,H,W), "class_map": (H,W)} and
    "instance_map" (H,W) where needed) and yields, per photo, {"image": uint8 (K,3,S,S),
    "class_map": int64 (K,S,S)} and, with ``instances`` (for a loss that weighs lesions by
    size), "instance_map" int64 (K,S,S). The instance maps are read only when
    ``instances`` is set or the recipe centres crops per lesion: older recipes do no extra
    work.

    Index ``i`` covers the whole schedule: epoch ``e, j = divmod(i, photos_per_epoch)``;
    it reads photo ``i`` of ``base`` (``fresh_photos_per_epoch``: every epoch new photos,
    so ``base`` must hold ``photos_per_epoch * epochs``) or photo ``j`` (the same photos
    each epoch), and draws its crops from ``default_rng([seed, e, j])``. Holding no
    per-epoch state lets persistent DataLoader workers serve every epoch. ``negatives``:
    {photo index of ``base``: (N, 2) hard-negative centroids} for ``recipe.hard_negative``.
    """

    def __init__(
        self,
        base: Dataset,
        recipe: CropRecipe,
        *,
        photos_per_epoch: int,
        epochs: int,
        seed: int,
        fresh_photos_per_epoch: bool = False,
        negatives: dict[int, np.ndarray] | None = None,
        instances: bool = False,
    ) -> None:
        self.base = base
        self.instances = bool(instances)
        self.negatives = negatives or {}
        self.recipe = recipe
        self.photos_per_epoch = int(photos_per_epoch)
        self.epochs = int(epochs)
        self.seed = int(seed)
        self.fresh = bool(fresh_photos_per_epoch)

    def __len__(self) -> int:
        return self.photos_per_epoch * self.epochs

    def photo_index(self, index: int) -> int:
        return index if self.fresh else index % self.photos_per_epoch

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        epoch, j = divmod(int(index), self.photos_per_epoch)
        photo = self.photo_index(index)
        item = self.base[photo]
        image = item["image"].permute(1, 2, 0).contiguous().numpy()
        class_map = np.asarray(item["class_map"], dtype=np.uint8)
        instance_map = None
        if self.instances or self.recipe.centre_on == "lesion":
            if "instance_map" not in item:
                raise ValueError(f"photo {photo} has no instance map, which the recipe needs")
            instance_map = np.asarray(item["instance_map"], dtype=np.uint16)
        rng = np.random.default_rng([self.seed, epoch, j])
        crops = random_crops(
            image, class_map, rng, self.recipe, self.negatives.get(photo), instance_map
        )
        out = {
            "image": torch.from_numpy(crops.images).permute(0, 3, 1, 2).contiguous(),
            "class_map": torch.from_numpy(crops.labels.astype(np.int64)),
        }
        if self.instances:
            out["instance_map"] = torch.from_numpy(crops.instances.astype(np.int64))
        return out


class EpochSampler(Sampler[int]):
    """Indices of a :class:`CropDataset`, epoch after epoch from ``start_epoch``.

    Each epoch is a permutation of its ``photos_per_epoch`` indices drawn from a
    ``torch.Generator`` seeded by (seed, epoch); with ``world_size`` processes, process
    ``rank`` takes every ``world_size``-th index of it (the DistributedSampler scheme), the
    epoch's share cut to ``per_process`` indices (at most ``limit``) so that all processes
    step together.
    """

    def __init__(
        self,
        photos_per_epoch: int,
        epochs: int,
        *,
        seed: int,
        start_epoch: int = 0,
        rank: int = 0,
        world_size: int = 1,
        limit: int | None = None,
    ) -> None:
        self.n, self.epochs, self.seed = int(photos_per_epoch), int(epochs), int(seed)
        self.start, self.rank, self.world = int(start_epoch), int(rank), int(world_size)
        self.per_process = self.n // self.world
        if limit is not None:
            self.per_process = min(self.per_process, int(limit))

    def __len__(self) -> int:
        return self.per_process * (self.epochs - self.start)

    def __iter__(self) -> Iterator[int]:
        for epoch in range(self.start, self.epochs):
            g = torch.Generator().manual_seed(self.seed * 10007 + epoch)
            order = torch.randperm(self.n, generator=g)[self.rank :: self.world]
            for j in order[: self.per_process].tolist():
                yield epoch * self.n + int(j)


def collate_crops(items: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Concatenate per-photo crop stacks into one batch (B*K, ...)."""
    return {key: torch.cat([it[key] for it in items], dim=0) for key in items[0]}
