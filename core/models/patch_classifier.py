"""The sliding-window baseline's patch classifier (the paper's comparison method).

A small CNN that labels one square RGB patch as background, benign or malignant
lesion (the class of its centre). Run at every ``DEFAULT_STRIDE`` position of a photo
(one patch per position) it makes a coarse heatmap: that is the baseline the detector's
speed and accuracy are compared against. It lives in ``core`` so that
``lesionviewer bench`` can time the baseline's inference without importing
``training``; the training and evaluation code is in ``training/baselines``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from core.models.layers import IMAGENET_MEAN, IMAGENET_STD, ConvBNAct, Normalize, fuse_batchnorm
from core.models.registry import register

#: side of the square patch classified at each position, pixels
DEFAULT_PATCH_SIZE = 64
#: step between patch centres, pixels (fine enough to hit lesions of ~6 px and more)
DEFAULT_STRIDE = 8


def window_grid(
    height: int, width: int, *, patch_size: int = DEFAULT_PATCH_SIZE, stride: int = DEFAULT_STRIDE
) -> tuple[int, int]:
    """Number of patch positions (rows, columns) of a sliding-window pass over a photo.

    Patch centres are at ``stride / 2 + k * stride`` on each axis (the photo is padded
    by reflection so every centre has a full patch), so rows = ceil(height / stride).
    """
    return -(-height // stride), -(-width // stride)


@register("patch_cnn")
class PatchClassifier(nn.Module):
    """Class logits (B, num_classes) for RGB patches (B, 3, patch_size, patch_size) in [0, 1].

    One stride-2 3x3 conv + BN + ReLU per entry of ``widths`` (so ``patch_size`` must be
    a multiple of ``2 ** len(widths)``), one more 3x3 conv at the coarsest level, global
    average pooling and a linear layer: ~35 MFLOP per 64 px patch. Strided convs, not
    max-pooling, keep it as fast per FLOP as the detector, so the speed comparison is fair.
    """

    def __init__(
        self,
        *,
        patch_size: int = DEFAULT_PATCH_SIZE,
        widths: Sequence[int] = (32, 64, 128, 128),
        num_classes: int = 3,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        if patch_size % (2 ** len(widths)):
            raise ValueError(f"patch_size must be a multiple of {2 ** len(widths)}")
        self.patch_size = int(patch_size)
        self.num_classes = int(num_classes)
        self.normalize = Normalize(mean=mean, std=std)
        layers: list[nn.Module] = []
        in_ch = 3
        for width in widths:
            layers.append(ConvBNAct(in_ch, int(width), stride=2))
            in_ch = int(width)
        layers.append(ConvBNAct(in_ch, in_ch))
        self.body = nn.Sequential(*layers)
        self.classifier = nn.Linear(in_ch, self.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(self.normalize(x))
        return self.classifier(y.mean(dim=(2, 3)))

    def fuse_for_inference(self) -> PatchClassifier:
        """Fold BatchNorm into the convs (in place, eval mode); returns self."""
        fuse_batchnorm(self)
        return self
