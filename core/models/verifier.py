"""The candidate verifier: the detector's second stage, one small CNN per candidate region.

The fully convolutional detector scores every pixel from what its receptive field shows,
and its confident mistakes (a hair across pale skin, a specular highlight, a pigment blotch
of the skin, a garment's edge) score as high as real moles. Post-processing therefore
takes the regions it finds at a *low* threshold as candidates, and this network looks at
each one again: two crops of the photo centred on the candidate (one sized to the region,
one of fixed size) and the detector's own P(lesion) around it, plus four numbers the
detector already gave (its score, p_malignant, the area and the crop's context size). It
answers P(the candidate is a true lesion), which becomes the region's score (see
:mod:`core.verification`, where the inputs are made).

The network is small (about 116 thousand weights, 465 KB; 38 MFLOP a candidate, where the
detector spends 9.5 GFLOP on a 1024x768 photo at one scale). It lives inside the detector's
model folder, its tensors under ``verifier.`` beside the fully convolutional network's, so
that the folder's one SHA-256 names both stages.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from core.models.layers import ConvBNAct

#: input planes of a candidate: RGB of the region-sized crop, RGB of the fixed-size crop,
#: the detector's P(lesion) on the region-sized crop (all uint8, 0-255)
CROP_PLANES = 7
#: numbers per candidate (see core.verification.candidate_inputs)
SCALARS = 4


class CropClassifier(nn.Module):
    """Logits (B,) for crops (B, planes, S, S) of candidate regions and, optionally, scalars
    (B, ``scalars``) per crop: the small CNN of the detector's later stages.

    crops: uint8 or float in 0-255 (they are scaled to [-0.5, 0.5] inside), S a multiple of 8
    (32 as trained); scalars: float32, None when ``scalars`` is 0.
    widths: channels of the three 3x3 conv stages (each two convs, then 2x2 max pooling);
    hidden: width of the fully connected layer that mixes the pooled features and scalars.
    """

    def __init__(
        self,
        *,
        planes: int,
        scalars: int,
        widths: Sequence[int] = (24, 48, 64),
        hidden: int = 96,
    ) -> None:
        super().__init__()
        if len(widths) != 3:
            raise ValueError("widths needs 3 entries")
        w1, w2, w3 = (int(w) for w in widths)
        self.planes, self.scalars = int(planes), int(scalars)
        self.features = nn.Sequential(
            ConvBNAct(self.planes, w1),
            ConvBNAct(w1, w1),
            nn.MaxPool2d(2),
            ConvBNAct(w1, w2),
            ConvBNAct(w2, w2),
            nn.MaxPool2d(2),
            ConvBNAct(w2, w3),
            ConvBNAct(w3, w3),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Linear(2 * w3 + self.scalars, int(hidden)),
            nn.ReLU(inplace=True),
            nn.Dropout(0.2),
            nn.Linear(int(hidden), 1),
        )

    @property
    def output_layer(self) -> nn.Linear:
        """The last layer (its single output is the logit), where calibration is folded."""
        return self.head[-1]

    def forward(self, crops: torch.Tensor, scalars: torch.Tensor | None = None) -> torch.Tensor:
        x = crops.float() * (1.0 / 255.0) - 0.5
        z = self.features(x)
        # mean and max pooling: the max keeps a small dark spot that the mean would dilute
        pooled = [z.mean(dim=(2, 3)), z.amax(dim=(2, 3))]
        if self.scalars:
            if scalars is None:
                raise ValueError(f"this network needs {self.scalars} scalars per crop")
            pooled.append(scalars.float())
        return self.head(torch.cat(pooled, dim=1))[:, 0]


class CandidateVerifier(CropClassifier):
    """Logits (B,) of P(true lesion) for candidate crops (B, 7, S, S) and scalars (B, 4)
    (see :func:`core.verification.candidate_inputs`); a :class:`CropClassifier`."""

    def __init__(self, *, widths: Sequence[int] = (24, 48, 64), hidden: int = 96) -> None:
        super().__init__(planes=CROP_PLANES, scalars=SCALARS, widths=widths, hidden=hidden)
