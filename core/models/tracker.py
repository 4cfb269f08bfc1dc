"""The lesion tracker: a network that predicts where every pixel of photo A went in photo B.

Design, from the paper (Li et al. 2016) and beyond it:
- Trunk (shared by both photos): the detector's conv trunk split into a smaller conv part
  (its patchify stem and first two stages, strides 4 and 8) and an atrous part (the
  detector's stride-16 stage run at stride 8 with dilated convs, so context grows without
  losing resolution). Layer shapes equal the detector's, so :func:`init_from_detector`
  copies a trained detector's weights.
- Merge by subtraction (the paper): the estimator sees f_A - f_B(warped).
- Beyond the paper, for displacements of a fifth of the image width: a local correlation
  volume (cost volume, radius r), a coarse-to-fine pyramid (strides 32, 16, 8) where each
  level warps B's features by the upsampled coarser flow and predicts a residual, and
  iterative refinement at the finest level with shared weights (PWC-Net / RAFT-lite).
  Each part can be switched off, which is how the ablation is measured.
- Optionally (``soft_argmax=True``), each update adds the soft-argmax of the cost volume
  (the expected offset under softmax(temperature * correlation), a learnt temperature) to
  the estimator's output, so the matching features get a direct gradient: trained from
  random weights on a CPU budget, the plain estimator stayed at zero flow for hundreds of
  steps, this one did not.

Flow convention: (B, 2, H, W) float32, channel 0 = dx, 1 = dy, in input pixels;
A pixel (x, y) + flow[:, :, y, x] = its position in B. Pixel centres at integer coordinates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from core.models.layers import IMAGENET_MEAN, IMAGENET_STD, ConvBNAct, Normalize, fuse_batchnorm
from core.models.registry import register


def warp(features: torch.Tensor, flow: torch.Tensor, stride: int) -> torch.Tensor:
    """Sample ``features`` (B, C, h, w) at each pixel + flow / stride (bilinear, zeros outside).

    flow: (B, 2, h, w) in input pixels; ``stride`` converts it to feature pixels.
    """
    b, _, h, w = features.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, device=flow.device, dtype=flow.dtype),
        torch.arange(w, device=flow.device, dtype=flow.dtype),
        indexing="ij",
    )
    x = xs + flow[:, 0] / stride
    y = ys + flow[:, 1] / stride
    grid = torch.stack([(2 * x + 1) / w - 1, (2 * y + 1) / h - 1], dim=-1)
    return F.grid_sample(features, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def local_correlation(fa: torch.Tensor, fb: torch.Tensor, radius: int) -> torch.Tensor:
    """Cost volume: (B, (2r+1)^2, h, w), mean over channels of fa(p) * fb(p + d), |d|_inf <= r."""
    b, c, h, w = fa.shape
    padded = F.pad(fb, (radius, radius, radius, radius))
    out = []
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            out.append((fa * padded[:, :, dy : dy + h, dx : dx + w]).mean(1, keepdim=True))
    return torch.cat(out, 1)


class FlowEstimator(nn.Module):
    """Conv stack (dilations 1, 2, 4, 1) from merged features to a 2-channel flow update."""

    def __init__(self, in_channels: int, width: int = 64) -> None:
        super().__init__()
        act = nn.LeakyReLU(0.1, inplace=True)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width * 3 // 2, 3, padding=1),
            act,
            nn.Conv2d(width * 3 // 2, width, 3, padding=1),
            act,
            nn.Conv2d(width, width, 3, padding=2, dilation=2),
            act,
            nn.Conv2d(width, width // 2, 3, padding=4, dilation=4),
            act,
            nn.Conv2d(width // 2, 2, 3, padding=1),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@register("lesion_tracker")
class LesionTracker(nn.Module):
    """Dense flow from photo A to photo B.

    Input: two float32 (B, 3, H, W) RGB tensors in [0, 1] of the same size (normalised
    inside); H, W are padded to a multiple of :attr:`size_multiple` = 32 internally.
    ``forward(a, b)`` -> flow (B, 2, H, W) float32 in input pixels.
    ``forward_pyramid(a, b)`` -> list of flows at strides 32/16/8 (coarse to fine, one per
    level and refinement step), each (B, 2, H_pad / s, W_pad / s), in input pixels.

    widths, depths: the detector's encoder widths/depths at strides 4, 8, 16 (the first three
    entries of ``LesionFCN``'s), so detector weights fit.
    feature_dim: channels of the matching features at every level.
    atrous_dilations: dilation of each conv of the atrous part (1 + depths[2] convs).
    correlation_radius: radius of the local cost volume; 0 = subtraction only (the paper).
    pyramid_levels: 1 (stride 8 only), 2 (16, 8) or 3 (32, 16, 8).
    refinement_iterations: extra warp-and-update steps at stride 8, sharing its weights.
    working_size: long side (pixels) of the resolution the network was trained for; used by
    :func:`core.tracking.estimate_flow` unless told otherwise. Does not change the weights.
    soft_argmax: add the cost volume's soft-argmax offset to every update (needs
    correlation_radius > 0; adds one weight, ``temperature``).
    """

    size_multiple = 32
    output_stride = 8

    def __init__(
        self,
        *,
        widths: Sequence[int] = (32, 64, 128),
        depths: Sequence[int] = (2, 2, 2),
        feature_dim: int = 64,
        atrous_dilations: Sequence[int] = (2, 2, 4),
        correlation_radius: int = 4,
        pyramid_levels: int = 3,
        refinement_iterations: int = 1,
        estimator_width: int = 64,
        working_size: int = 512,
        soft_argmax: bool = False,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        w4, w8, w16 = (int(w) for w in widths[:3])
        d4, d8, d16 = (int(d) for d in depths[:3])
        if len(atrous_dilations) != 1 + d16:
            raise ValueError(f"atrous_dilations needs {1 + d16} entries (1 + depths[2])")
        if pyramid_levels not in (1, 2, 3):
            raise ValueError("pyramid_levels must be 1, 2 or 3")
        self.working_size = int(working_size)
        self.correlation_radius = int(correlation_radius)
        self.pyramid_levels = int(pyramid_levels)
        self.refinement_iterations = int(refinement_iterations)
        self.soft_argmax = bool(soft_argmax)
        if self.soft_argmax and self.correlation_radius <= 0:
            raise ValueError("soft_argmax needs correlation_radius > 0")
        self.normalize = Normalize(mean=mean, std=std)
        # conv part: the detector's stem and stages at strides 4 and 8 (same layer shapes)
        self.stem = ConvBNAct(3, w4, kernel=4, stride=4)
        self.stages = nn.ModuleList(
            [
                nn.Sequential(*[ConvBNAct(w4, w4) for _ in range(d4)]),
                nn.Sequential(ConvBNAct(w4, w8, stride=2), *[ConvBNAct(w8, w8) for _ in range(d8)]),
            ]
        )
        # atrous part: the detector's stride-16 stage, dilated instead of strided
        dil = [int(d) for d in atrous_dilations]
        self.atrous = nn.Sequential(
            ConvBNAct(w8, w16, dilation=dil[0]),
            *[ConvBNAct(w16, w16, dilation=d) for d in dil[1:]],
        )
        self.project = nn.Sequential(nn.Conv2d(w16 + w8, feature_dim, 1), nn.LeakyReLU(0.1))
        self.down = nn.ModuleList(
            [ConvBNAct(feature_dim, feature_dim, stride=2) for _ in range(self.pyramid_levels - 1)]
        )
        corr_ch = (2 * self.correlation_radius + 1) ** 2 if self.correlation_radius > 0 else 0
        uses_flow = self.pyramid_levels > 1 or self.refinement_iterations > 0
        estimator_in = feature_dim + corr_ch + (2 if uses_flow else 0)
        self.estimators = nn.ModuleList(
            [FlowEstimator(estimator_in, estimator_width) for _ in range(self.pyramid_levels)]
        )
        if self.soft_argmax:
            r = self.correlation_radius
            dys, dxs = torch.meshgrid(
                torch.arange(-r, r + 1.0), torch.arange(-r, r + 1.0), indexing="ij"
            )  # the order of local_correlation's channels: dy outer, dx inner
            self.register_buffer(
                "offsets", torch.stack([dxs.reshape(-1), dys.reshape(-1)], 0), persistent=False
            )
            self.temperature = nn.Parameter(torch.tensor(5.0))

    # ------------------------------------------------------------------ parts
    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Stride-8 trunk features (B, widths[1] + widths[2], H / 8, W / 8)."""
        x = self.stem(self.normalize(x))
        for stage in self.stages:
            x = stage(x)
        return torch.cat([self.atrous(x), x], 1)

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Matching features, fine to coarse: strides 8, 16, 32 (as many as levels)."""
        feats = [self.project(self.trunk(x))]
        for down in self.down:
            feats.append(down(feats[-1]))
        return feats

    def _update(
        self, level: int, fa: torch.Tensor, fb: torch.Tensor, flow: torch.Tensor | None
    ) -> torch.Tensor:
        stride = 8 * 2**level
        fb_w = fb if flow is None else warp(fb, flow, stride)
        parts = [fa - fb_w]
        corr = None
        if self.correlation_radius > 0:
            corr = local_correlation(fa, fb_w, self.correlation_radius)
            parts.append(F.leaky_relu(corr, 0.1))
        if self.pyramid_levels > 1 or self.refinement_iterations > 0:
            parts.append(torch.zeros_like(fa[:, :2]) if flow is None else flow / stride)
        delta = self.estimators[level](torch.cat(parts, 1))
        if self.soft_argmax and corr is not None:
            weights = torch.softmax(corr * self.temperature, dim=1)
            delta = delta + torch.einsum("bkhw,ck->bchw", weights, self.offsets.to(corr.dtype))
        delta = delta * stride
        return delta if flow is None else flow + delta

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.size_multiple, (-w) % self.size_multiple
        return F.pad(x, (0, pw, 0, ph), mode="replicate") if (ph or pw) else x

    # ------------------------------------------------------------------ forward
    def forward_pyramid(self, image_a: torch.Tensor, image_b: torch.Tensor) -> list[torch.Tensor]:
        """Flows of every level and step, coarse to fine (see the class docstring)."""
        if image_a.shape != image_b.shape:
            raise ValueError(
                f"image sizes differ: {tuple(image_a.shape)} vs {tuple(image_b.shape)}"
            )
        n = image_a.shape[0]
        both = self.pyramid(torch.cat([self._pad(image_a), self._pad(image_b)], 0))
        flows: list[torch.Tensor] = []
        flow: torch.Tensor | None = None
        for level in reversed(range(self.pyramid_levels)):
            fa, fb = both[level][:n], both[level][n:]
            if flow is not None:
                flow = F.interpolate(flow, size=fa.shape[-2:], mode="bilinear", align_corners=False)
            flow = self._update(level, fa, fb, flow)
            flows.append(flow)
        fa, fb = both[0][:n], both[0][n:]
        for _ in range(self.refinement_iterations):
            flow = self._update(0, fa, fb, flow)
            flows.append(flow)
        return flows

    def forward(self, image_a: torch.Tensor, image_b: torch.Tensor) -> torch.Tensor:
        """Flow (B, 2, H, W) in input pixels: the finest flow upsampled bilinearly."""
        h, w = image_a.shape[-2:]
        flow = self.forward_pyramid(image_a, image_b)[-1]
        flow = F.interpolate(
            flow, scale_factor=self.output_stride, mode="bilinear", align_corners=False
        )
        return flow[..., :h, :w]

    def fuse_for_inference(self) -> LesionTracker:
        """Fold BatchNorm into the convs (in place, eval mode); returns self."""
        fuse_batchnorm(self)
        return self


def init_from_detector(
    model: LesionTracker, detector_state: Mapping[str, torch.Tensor]
) -> list[str]:
    """Copy a trained detector's trunk into ``model`` (in place); returns the copied keys.

    ``detector_state`` is a ``LesionFCN`` state dict (unfused): its ``normalize``, ``stem`` and
    ``stages.0``/``stages.1`` go to the same names, ``stages.2`` (the stride-16 stage) goes to
    ``atrous`` (same weight shapes; the tracker runs it dilated at stride 8). Tensors whose
    shape differs are skipped. Raises ValueError when nothing fits.
    """
    own = model.state_dict()
    copied: dict[str, torch.Tensor] = {}
    for key, value in detector_state.items():
        if key.startswith("stages.2."):
            target = "atrous." + key[len("stages.2.") :]
        elif key.startswith(("normalize.", "stem.", "stages.0.", "stages.1.")):
            target = key
        else:
            continue
        if target in own and own[target].shape == value.shape:
            copied[target] = value.detach().to(own[target].dtype)
    if not copied:
        raise ValueError("no detector weights fit this tracker (different widths or layout)")
    model.load_state_dict(copied, strict=False)
    return sorted(copied)
