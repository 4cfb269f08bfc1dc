"""Where synthesis gets its bodies and lesions from, and the per-process body pool.

``SynthSources`` bundles two seeded factories; ``default_sources`` builds them from a
``SynthConfig``'s source names (procedural bodies or a folder of body photos; the default
lesion bank, procedural lesions only, or a folder of lesion photos). Tests pass their own.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.errors import DataError
from training.sources.base import BENIGN, BodyPhoto, LesionPatch
from training.sources.procedural_lesions import BENIGN_KINDS, MALIGNANT_KINDS

BodyFactory = Callable[[np.random.Generator, int, int], BodyPhoto]
LesionFactory = Callable[[np.random.Generator, int, int], LesionPatch]

#: Procedural lesion kinds by label, used when only procedural lesions are asked for.
# every procedural kind of each class (actinic keratoses included: benign look-alikes of
# the pink, scaly carcinomas, so that class cannot be read from redness alone)
PROCEDURAL_KINDS = {1: BENIGN_KINDS, 2: MALIGNANT_KINDS}


@dataclass(frozen=True, eq=False)
class SynthSources:
    """Seeded factories of bodies and lesions (hashable by identity, so poolable).

    body(rng, width, height) -> BodyPhoto of exactly (height, width).
    lesion(rng, label, diameter_px) -> LesionPatch with that label (BENIGN or MALIGNANT),
        its lesion about ``diameter_px`` across (synthesis rescales it anyway).
    """

    body: BodyFactory
    lesion: LesionFactory


def fit_body(body: BodyPhoto, width: int, height: int) -> BodyPhoto:
    """Scale a body photo to cover (width, height) and centre-crop it; mm_per_px follows."""
    h, w = body.skin_mask.shape
    if (w, h) == (width, height):
        return body
    s = max(width / w, height / h)
    nw, nh = max(width, round(w * s)), max(height, round(h * s))
    x0, y0 = (nw - width) // 2, (nh - height) // 2
    crop = (slice(y0, y0 + height), slice(x0, x0 + width))
    image = cv2.resize(body.image, (nw, nh), interpolation=cv2.INTER_AREA)[crop]
    skin = cv2.resize(body.skin_mask.astype(np.uint8), (nw, nh), interpolation=cv2.INTER_NEAREST)
    moles = cv2.resize(body.mole_instances, (nw, nh), interpolation=cv2.INTER_NEAREST)
    return BodyPhoto(
        image=np.ascontiguousarray(image),
        skin_mask=np.ascontiguousarray(skin[crop].astype(bool)),
        mm_per_px=body.mm_per_px / s,
        mole_instances=np.ascontiguousarray(moles[crop]),
        region=body.region,
        source=body.source,
    )


def _procedural_body(rng: np.random.Generator, width: int, height: int) -> BodyPhoto:
    from training.sources.procedural_bodies import generate_body

    return fit_body(generate_body(rng, width=width, height=height), width, height)


def _folder_body(path: str) -> BodyFactory:
    from training.sources.real_bodies import RealBodyFolder

    folder = RealBodyFolder(path)

    def make(rng: np.random.Generator, width: int, height: int) -> BodyPhoto:
        return fit_body(folder[int(rng.integers(0, len(folder)))], width, height)

    return make


def _procedural_lesion(rng: np.random.Generator, label: int, diameter_px: int) -> LesionPatch:
    from training.sources.procedural_lesions import generate_lesion

    kinds = PROCEDURAL_KINDS[BENIGN if label == BENIGN else 2]
    kind = kinds[int(rng.integers(0, len(kinds)))]
    return generate_lesion(rng, kind=kind, diameter_px=diameter_px)


def _bank_lesion(bank) -> LesionFactory:
    def make(rng: np.random.Generator, label: int, diameter_px: int) -> LesionPatch:
        return bank.sample(rng, label=label, diameter_px=diameter_px)

    return make


#: lesion sources that only evaluation may blend: "holdout" is the real close-up test's
#: patients (and evaluate-detector's unseen-lesion test)
EVALUATION_ONLY_LESION_SOURCES = ("holdout",)


def check_training_lesion_source(lesion_source: str, where: Path) -> None:
    """DataError naming ``where`` (the recipe, or the command) when ``lesion_source`` is for
    evaluation only: photos that training could see must not blend those lesions."""
    if lesion_source in EVALUATION_ONLY_LESION_SOURCES:
        raise DataError(where, f"lesion_source {lesion_source!r} is for evaluation only")


@functools.lru_cache(maxsize=8)
def default_sources(
    body_source: str = "procedural",
    lesion_source: str = "default",
    procedural_fraction: float = 0.5,
) -> SynthSources:
    """Sources named by a config: body "procedural" or a folder of body photos; lesions
    "default" (the default lesion bank, train split), "holdout" (the default bank's held-out
    patients: for evaluation only, never training), "procedural", or a folder of lesion
    photos (mixed with procedural ones by ``procedural_fraction``). Cached per process."""
    body = _procedural_body if body_source == "procedural" else _folder_body(body_source)
    if lesion_source == "procedural":
        lesion: LesionFactory = _procedural_lesion
    elif lesion_source in ("default", "holdout"):
        from training.sources.bank import default_lesion_bank

        split = "train" if lesion_source == "default" else "holdout"
        lesion = _bank_lesion(default_lesion_bank(split=split))
    else:
        from training.sources.bank import LesionBank
        from training.sources.real_lesions import read_lesion_folder

        bank = LesionBank(
            [read_lesion_folder(lesion_source)], procedural_fraction=procedural_fraction
        )
        lesion = _bank_lesion(bank)
    return SynthSources(body=body, lesion=lesion)


class BodyPool:
    """Bodies generated once per (sources, seed, slot, size) and kept, oldest dropped first.

    Body generation is the slowest step of synthesis; a sample draws one of ``size`` slots
    and re-augments that body, so output depends only on (seed, index), never on which
    worker made it or in what order.
    """

    def __init__(self, capacity: int = 32) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple, tuple[SynthSources, BodyPhoto]] = OrderedDict()

    def get(
        self, sources: SynthSources, seed: int, slot: int, width: int, height: int
    ) -> BodyPhoto:
        key = (id(sources), seed, slot, width, height)
        item = self._items.get(key)
        if item is None or item[0] is not sources:  # ids of dead objects can be reused
            body = sources.body(np.random.default_rng([seed, 104729, slot]), width, height)
            self._items[key] = (sources, body)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
            return body
        self._items.move_to_end(key)
        return item[1]


#: The per-process pool (each DataLoader worker has its own).
BODY_POOL = BodyPool()


class LesionPool:
    """Lesions generated once per (sources, seed, label, slot) and kept (at 96 px across).

    Drawing a lesion (reading and masking a photo, or rendering a procedural one) costs
    more than blending it; pooled lesions are re-augmented at every use.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple, tuple[SynthSources, LesionPatch]] = OrderedDict()

    def get(self, sources: SynthSources, seed: int, label: int, slot: int) -> LesionPatch:
        key = (id(sources), seed, label, slot)
        item = self._items.get(key)
        if item is None or item[0] is not sources:
            rng = np.random.default_rng([seed, 15485863, label, slot])
            lesion = sources.lesion(rng, label, 96)
            self._items[key] = (sources, lesion)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
            return lesion
        self._items.move_to_end(key)
        return item[1]


#: The per-process lesion pool.
LESION_POOL = LesionPool()
