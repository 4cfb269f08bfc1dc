"""A bank of lesions for synthesis: real lesions of the training patients plus procedural ones."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from training.sources.base import BENIGN, MALIGNANT, LesionPatch, LesionSource
from training.sources.procedural_lesions import BENIGN_KINDS, MALIGNANT_KINDS, generate_lesion

#: Where the development lesions live, relative to the repository root: ../shared/data.
PAD_UFES_DEV = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pad-ufes20-dev"


def _labels_of(source: LesionSource) -> list[int]:
    labels = getattr(source, "labels", None)
    if callable(labels):
        return list(labels())
    return [source[i].label for i in range(len(source))]


def resize_to_diameter(patch: LesionPatch, diameter_px: int) -> LesionPatch:
    """Scale a patch so that its lesion's longer bbox side is ``diameter_px`` pixels."""
    ys, xs = np.nonzero(patch.mask)
    current = max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) if len(xs) else 1
    factor = diameter_px / max(1, current)
    h, w = patch.mask.shape
    size = (max(2, round(w * factor)), max(2, round(h * factor)))
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    image = cv2.resize(patch.image, size, interpolation=interp)
    mask = cv2.resize(patch.mask.astype(np.float32), size, interpolation=cv2.INTER_LINEAR) > 0.5
    return LesionPatch(
        image=image,
        mask=mask,
        label=patch.label,
        diagnosis=patch.diagnosis,
        source=patch.source,
        diameter_mm=patch.diameter_mm,
    )


class LesionBank:
    """Draws lesions for synthesis, from real sources or procedurally.

    real: LesionSources (e.g. RealLesionFolder); their labels are read once.
    procedural_fraction: probability in [0, 1] that a draw is procedural; 1.0 is used
    whenever no real lesion of the wanted label exists.
    """

    def __init__(self, real: Sequence[LesionSource], *, procedural_fraction: float) -> None:
        if not 0.0 <= procedural_fraction <= 1.0:
            raise ValueError("procedural_fraction must be in [0, 1]")
        self.real = list(real)
        self.procedural_fraction = float(procedural_fraction)
        self._by_label: dict[int, list[tuple[int, int]]] = {BENIGN: [], MALIGNANT: []}
        for s, source in enumerate(self.real):
            for i, label in enumerate(_labels_of(source)):
                self._by_label.setdefault(label, []).append((s, i))

    def real_count(self, label: int | None = None) -> int:
        """Number of real lesions (of ``label`` when given)."""
        if label is None:
            return sum(len(v) for v in self._by_label.values())
        return len(self._by_label.get(label, []))

    def sample(
        self, rng: np.random.Generator, *, label: int | None = None, diameter_px: int
    ) -> LesionPatch:
        """One lesion whose longer side is about ``diameter_px`` pixels.

        label: BENIGN or MALIGNANT, or None for either (each with probability 1/2).
        Real patches are resized to the diameter; procedural ones are drawn at it.
        """
        if label is None:
            label = BENIGN if rng.random() < 0.5 else MALIGNANT
        if label not in (BENIGN, MALIGNANT):
            raise ValueError(f"label must be BENIGN ({BENIGN}) or MALIGNANT ({MALIGNANT})")
        pool = self._by_label.get(label, [])
        if pool and rng.random() >= self.procedural_fraction:
            s, i = pool[int(rng.integers(len(pool)))]
            return resize_to_diameter(self.real[s][i], diameter_px)
        kinds = BENIGN_KINDS if label == BENIGN else MALIGNANT_KINDS
        kind = str(rng.choice(kinds))
        return generate_lesion(rng, kind=kind, diameter_px=max(4, int(diameter_px)))


def real_lesions_present() -> bool:
    """Whether ../shared/data/pad-ufes20-dev is there for :func:`default_lesion_bank`;
    without it synthetic photos carry procedural lesions only (a different photo set for
    the same seed)."""
    return (PAD_UFES_DEV / "labels.csv").is_file()


def default_lesion_bank(*, split: str = "train", procedural_fraction: float = 0.5) -> LesionBank:
    """The project's lesion bank: ../shared/data/pad-ufes20-dev (when present) + procedural.

    split: "train" (only the training patients of :func:`pad_ufes_holdout`), "holdout"
    (only the held-out patients, for evaluation), or "all". Without the real folder the
    bank is purely procedural.
    """
    if split not in ("train", "holdout", "all"):
        raise ValueError("split must be 'train', 'holdout' or 'all'")
    if not real_lesions_present():
        return LesionBank([], procedural_fraction=1.0)
    from training.sources.real_lesions import read_lesion_folder
    from training.sources.splits import pad_ufes_holdout

    folder = read_lesion_folder(PAD_UFES_DEV, skip_bad=True, check_photos=False)
    if split != "all":
        train, holdout = pad_ufes_holdout(PAD_UFES_DEV / "labels.csv")
        keep = train if split == "train" else holdout
        folder = folder.subset({f"patient:{p}" for p in keep})
    return LesionBank([folder], procedural_fraction=procedural_fraction)
