"""What every lesion source and body source hands to synthesis.

Shapes and dtypes are stated on each field; images are RGB uint8, masks bool.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

#: Pixel classes of the detection label maps.
BACKGROUND, BENIGN, MALIGNANT = 0, 1, 2
CLASS_NAMES = ("background", "benign", "malignant")

#: Diagnosis codes known to the readers, mapped to benign (1) or malignant (2).
#: Codes follow PAD-UFES-20, ISIC/HAM10000 and Dermofit; aliases map to one code.
DIAGNOSIS_CLASS: dict[str, int] = {
    # malignant
    "MEL": MALIGNANT,  # melanoma
    "BCC": MALIGNANT,  # basal cell carcinoma
    "SCC": MALIGNANT,  # squamous cell carcinoma (incl. intraepithelial carcinoma in Dermofit)
    "IEC": MALIGNANT,  # intraepithelial carcinoma (Bowen's disease)
    "AKIEC": MALIGNANT,  # HAM10000: actinic keratoses and intraepithelial carcinoma
    # benign
    "NEV": BENIGN,  # nevus (PAD-UFES-20)
    "NV": BENIGN,  # nevus (HAM10000)
    "ML": BENIGN,  # melanocytic nevus (Dermofit)
    "ACK": BENIGN,  # actinic keratosis
    "AK": BENIGN,
    "SEK": BENIGN,  # seborrhoeic keratosis
    "SK": BENIGN,
    "BKL": BENIGN,  # HAM10000: benign keratosis-like
    "DF": BENIGN,  # dermatofibroma
    "VASC": BENIGN,  # vascular lesion
    "PYO": BENIGN,  # pyogenic granuloma
    "ANG": BENIGN,  # angioma (procedural)
    "LEN": BENIGN,  # lentigo (procedural)
}


@dataclass(frozen=True)
class LesionPatch:
    """One lesion, cropped with a margin of surrounding skin.

    image: (h, w, 3) uint8 RGB.
    mask: (h, w) bool, True on the lesion.
    label: BENIGN or MALIGNANT.
    diagnosis: a code of DIAGNOSIS_CLASS.
    source: where it came from (file name or "procedural:<seed>").
    diameter_mm: clinical diameter when known, else None (synthesis then draws one).
    """

    image: np.ndarray = field(repr=False)
    mask: np.ndarray = field(repr=False)
    label: int
    diagnosis: str
    source: str
    diameter_mm: float | None = None


class LesionSource(Protocol):
    """A finite, indexable collection of lesions (real ones come from files)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> LesionPatch: ...


@dataclass(frozen=True)
class BodyPhoto:
    """A photo of a body region, with the exact skin mask and the moles it already has.

    image: (H, W, 3) uint8 RGB.
    skin_mask: (H, W) bool, True on skin.
    mm_per_px: physical size of one pixel on the skin (known for procedural bodies,
        estimated for real ones).
    mole_instances: (H, W) uint16, 0 where no mole, k > 0 for the k-th pre-existing mole.
        These are benign lesions and are labelled as such.
    region: "back", "chest", "abdomen", "arm", "leg" or "unknown".
    source: where it came from.
    """

    image: np.ndarray = field(repr=False)
    skin_mask: np.ndarray = field(repr=False)
    mm_per_px: float
    mole_instances: np.ndarray = field(repr=False)
    region: str
    source: str
