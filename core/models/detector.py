"""The lesion detector: a fully convolutional network that labels every pixel.

Classes per pixel: 0 background (skin, clothing, anything), 1 benign lesion,
2 malignant lesion.

Design (for CPU speed as much as accuracy):
- a patchify stem (4x4 conv, stride 4) goes straight to stride 4: full-resolution
  layers with few channels are memory-bound and waste time;
- an encoder of plain 3x3 conv + BatchNorm + ReLU stages at strides 4, 8, 16 and 32
  (dense 3x3 convs with channel counts that are multiples of 16 keep oneDNN/cuDNN
  near their matrix-multiply speed; stride 32 gives a receptive field of several
  hundred pixels, enough for lesions of ~6 to ~200 px);
- a light decoder of 2x2 transposed convs ("deconv") with additive skip links back to
  stride 4, a 1x1 head, and bilinear upsampling of the logits to full resolution;
- optionally (``fine_width`` > 0) a stride-2 refinement for lesions of a few pixels, which
  one stride-4 output pixel blurs away: a 2x2 patchify stem of the photo plus the
  deconvolved stride-4 decoder features, one 3x3 conv, and a 1x1 head whose logits are
  *added* to the bilinearly doubled stride-4 logits. That head starts at zero, so a network
  warm-started from a stride-4 one begins with its exact output and learns only the detail.
BatchNorm is folded into the convs for inference (:func:`core.models.layers.fuse_batchnorm`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from core.models.layers import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ConvBNAct,
    DeconvBNAct,
    Normalize,
    fuse_batchnorm,
)
from core.models.malignancy import MalignancyClassifier
from core.models.registry import register
from core.models.verifier import CandidateVerifier

CLASSES = ("background", "benign", "malignant")


@register("lesion_fcn")
class LesionFCN(nn.Module):
    """Per-pixel background/benign/malignant logits for an RGB photo.

    Input: float32 (B, 3, H, W) RGB in [0, 1] (normalised inside, buffers ``mean``/``std``).
    ``forward`` returns logits (B, num_classes, H, W); ``logits_lowres`` returns them at
    stride s = :attr:`output_stride` (4, or 2 with the fine branch), i.e.
    (B, num_classes, H / s, W / s), where output pixel (i, j) is centred on input pixel
    (s j + (s - 1) / 2, s i + (s - 1) / 2) (x, y).
    H and W are padded (replicate) to a multiple of :attr:`size_multiple` = 32 inside.

    widths: encoder channels at strides 4, 8, 16, 32.
    depths: 3x3 convs per encoder stage after its (strided) entry.
    decoder_widths: decoder channels at strides 16, 8, 4.
    fine_width: channels of the stride-2 refinement; 0 (the default) leaves it out.
    verifier: constructor arguments of the second stage, a
    :class:`core.models.verifier.CandidateVerifier` kept as :attr:`verifier` (its tensors
    are saved with the network's, under ``verifier.``); None (the default): no second stage.
    The forward pass never uses it: :mod:`core.verification` runs it on candidate regions.
    malignancy: constructor arguments of the third stage, a
    :class:`core.models.malignancy.MalignancyClassifier` kept as :attr:`malignancy` (tensors
    under ``malignancy.``; it needs the verifier's crops, so a verifier too); None (the
    default): none. :mod:`core.malignancy` runs it on the listed regions.
    """

    size_multiple = 32

    def __init__(
        self,
        *,
        widths: Sequence[int] = (32, 64, 128, 192),
        depths: Sequence[int] = (2, 2, 2, 1),
        decoder_widths: Sequence[int] = (64, 32, 32),
        num_classes: int = 3,
        fine_width: int = 0,
        verifier: dict | None = None,
        malignancy: dict | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        if len(widths) != 4 or len(depths) != 4 or len(decoder_widths) != 3:
            raise ValueError("widths and depths need 4 entries, decoder_widths 3")
        w4, w8, w16, w32 = (int(w) for w in widths)
        d16, d8, d4 = (int(w) for w in decoder_widths)
        self.num_classes = int(num_classes)
        self.normalize = Normalize(mean=mean, std=std)
        self.stem = ConvBNAct(3, w4, kernel=4, stride=4)
        stages = []
        in_ch = w4
        for index, (width, depth) in enumerate(zip((w4, w8, w16, w32), depths, strict=True)):
            layers: list[nn.Module] = []
            if index > 0:
                layers.append(ConvBNAct(in_ch, width, stride=2))
            layers += [ConvBNAct(width, width) for _ in range(int(depth))]
            stages.append(nn.Sequential(*layers))
            in_ch = width
        #: encoder stages at strides 4, 8, 16, 32 (the tracker reuses stem + stages)
        self.stages = nn.ModuleList(stages)
        self.up16 = DeconvBNAct(w32, w16)
        self.fuse16 = ConvBNAct(w16, d16)
        self.up8 = DeconvBNAct(d16, w8)
        self.fuse8 = ConvBNAct(w8, d8)
        self.up4 = DeconvBNAct(d8, w4)
        self.fuse4 = ConvBNAct(w4, d4)
        self.head = nn.Conv2d(d4, self.num_classes, 1)
        self.fine_width = int(fine_width)
        #: photo pixels per output pixel of :meth:`logits_lowres`
        self.output_stride = 2 if self.fine_width else 4
        if self.fine_width:
            f = self.fine_width
            self.fine_stem = ConvBNAct(3, f, kernel=2, stride=2)
            self.up2 = DeconvBNAct(d4, f)
            self.fuse2 = ConvBNAct(f, f)
            self.head2 = nn.Conv2d(f, self.num_classes, 1)
            nn.init.zeros_(self.head2.weight)
            nn.init.zeros_(self.head2.bias)
        self.verifier = CandidateVerifier(**verifier) if verifier is not None else None
        if malignancy is not None and verifier is None:
            raise ValueError("a malignancy classifier reads the verifier's crops: add a verifier")
        self.malignancy = MalignancyClassifier(**malignancy) if malignancy is not None else None

    def _pad(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        h, w = x.shape[-2:]
        m = self.size_multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        return x, h, w

    def _encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outputs = []
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return outputs

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Encoder outputs {"s4", "s8", "s16"}: (B, widths[i], H / s, W / s) for H, W
        multiples of 32 (other sizes are padded at the bottom/right first)."""
        x, _, _ = self._pad(x)
        x = self.stem(self.normalize(x))
        out = {}
        for key, stage in zip(("s4", "s8", "s16"), self.stages[:3], strict=True):
            x = stage(x)
            out[key] = x
        return out

    def logits_lowres(self, x: torch.Tensor) -> torch.Tensor:
        """Logits at stride s = :attr:`output_stride`:
        (B, num_classes, ceil(H / 32) * 32 / s, ceil(W / 32) * 32 / s)."""
        x, _, _ = self._pad(x)
        x = self.normalize(x)
        e4, e8, e16, e32 = self._encode(x)
        y = self.fuse16(self.up16(e32) + e16)
        y = self.fuse8(self.up8(y) + e8)
        y = self.fuse4(self.up4(y) + e4)
        logits = self.head(y)
        if not self.fine_width:
            return logits
        # bilinear doubling keeps the stride-4 centres: output pixel j of the doubled map
        # sits on photo pixel 2 j + 0.5, the centre of the fine stem's patch j
        coarse = F.interpolate(logits, scale_factor=2, mode="bilinear", align_corners=False)
        fine = self.fuse2(self.up2(y) + self.fine_stem(x))
        return coarse + self.head2(fine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes, H, W): :meth:`logits_lowres` upsampled bilinearly."""
        h, w = x.shape[-2:]
        logits = self.logits_lowres(x)
        logits = F.interpolate(
            logits, scale_factor=self.output_stride, mode="bilinear", align_corners=False
        )
        return logits[..., :h, :w]

    @torch.no_grad()
    def fuse_for_inference(self) -> LesionFCN:
        """Fold BatchNorm into the convs and the input normalisation into the stems.

        In place, eval mode, idempotent; returns self. Outputs are unchanged (within
        float rounding): both stems are patchify convs without padding (4x4 stride 4,
        2x2 stride 2), so ``conv((x - mean) / std)`` is exactly a conv of ``x`` with
        rescaled weights.
        """
        fuse_batchnorm(self)
        if isinstance(self.normalize, Normalize):
            mean = self.normalize.mean.view(1, -1, 1, 1)
            std = self.normalize.std.view(1, -1, 1, 1)
            stems = [self.stem] + ([self.fine_stem] if self.fine_width else [])
            for stem in stems:
                conv = stem[0]
                weight = conv.weight / std
                shift = (weight * mean).sum(dim=(1, 2, 3))
                conv.weight.copy_(weight)
                conv.bias = nn.Parameter(conv.bias - shift)
            self.normalize = nn.Identity()
        return self
