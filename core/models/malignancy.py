"""The malignancy classifier: the detector's third stage, one small CNN per listed region.

The fully convolutional detector says how malignant a region looks through its per-pixel
benign/malignant split, learnt together with finding lesions at all, from crops in which
lesions are a few per cent of the pixels. This network is trained on one question only,
malignant or benign, on the region-sized photo crops of the detector's own true candidates
(planes 0-2 of :func:`core.verification.candidate_inputs`: the region's centroid, 4 region
diameters across, 32 x 32 pixels). Its answer is mixed with the detector's p_malignant
(:func:`core.malignancy.mixed_p_malignant`, with the weight chosen on validation photos).
Optional, and not in the shipped detector (see :mod:`core.malignancy`).

It has the verifier's shape (:class:`core.models.verifier.CropClassifier`, 3 input planes
and no scalars: 114 thousand weights, about 36 MFLOP a region, run only on the regions the
verifier keeps) and lives in the detector's model folder too, its tensors under
``malignancy.``, so that the folder's one SHA-256 names every stage.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.malignancy import MALIGNANCY_PLANES
from core.models.verifier import CropClassifier


class MalignancyClassifier(CropClassifier):
    """Logits (B,) of P(malignant | lesion) for region-sized photo crops (B, 3, S, S),
    uint8 or float in 0-255 (S = 32 as trained)."""

    def __init__(self, *, widths: Sequence[int] = (24, 48, 64), hidden: int = 96) -> None:
        super().__init__(planes=MALIGNANCY_PLANES, scalars=0, widths=widths, hidden=hidden)
