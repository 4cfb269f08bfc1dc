"""Building blocks shared by the networks: input normalisation, conv/deconv + BatchNorm + ReLU.

All blocks take and return float32 tensors (B, C, H, W). ``fuse()`` folds a block's
BatchNorm into its convolution for inference (same outputs within float rounding);
fused blocks must not be trained further. On the CPU, without autograd, a fused block
runs conv + bias + ReLU as one oneDNN primitive (``torch.ops.mkldnn`` pointwise
convolution), which saves a full read and write of the activation per layer: a
separate ReLU cost about a third of the network's time on a 2-core machine.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

#: ImageNet RGB mean and standard deviation, for inputs in [0, 1].
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel; mean and std are buffers saved with the weights.

    Input: float (B, 3, H, W) RGB in [0, 1]. Output: same shape, roughly zero mean, unit std.
    """

    def __init__(
        self, *, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
    ) -> None:
        super().__init__()
        self.register_buffer(
            "mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)
        )
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _mkldnn_op(name: str) -> object | None:
    ops = getattr(torch.ops, "mkldnn", None)
    try:
        return (
            getattr(ops, name) if ops is not None and torch.backends.mkldnn.is_available() else None
        )
    except (AttributeError, RuntimeError):
        return None


_CONV_POINTWISE = _mkldnn_op("_convolution_pointwise")
_DECONV_POINTWISE = _mkldnn_op("_convolution_transpose_pointwise")


def _use_fused_kernel(x: torch.Tensor, op: object | None) -> bool:
    """Whether a fused block may call the oneDNN pointwise kernel on ``x``."""
    return (
        op is not None
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and not torch.is_grad_enabled()
        and not torch.jit.is_scripting()
    )


def _fold_bn(
    weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d, out_dim: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of a conv whose output equals ``bn(conv(x))`` in eval mode."""
    assert bn.running_mean is not None and bn.running_var is not None
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shape = [1] * weight.dim()
    shape[out_dim] = -1
    new_weight = weight * scale.view(shape)
    base = bias if bias is not None else torch.zeros_like(bn.running_mean)
    new_bias = (base - bn.running_mean) * scale + bn.bias
    return new_weight, new_bias


class ConvBNAct(nn.Sequential):
    """``Conv2d -> BatchNorm2d -> ReLU`` (the ReLU optional), padding keeps ``H / stride``.

    ``kernel`` odd sizes get ``(kernel - 1) // 2 * dilation`` padding; a kernel equal to
    the stride (patchify stem) gets none.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel: int = 3,
        stride: int = 1,
        dilation: int = 1,
        act: bool = True,
    ) -> None:
        padding = 0 if kernel == stride else (kernel - 1) // 2 * dilation
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel,
                stride=stride,
                padding=padding,
                dilation=dilation,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels),
        ]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)
        self.act = act
        self.fused = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused and _use_fused_kernel(x, _CONV_POINTWISE):
            conv = self[0]
            return _CONV_POINTWISE(  # type: ignore[operator]
                x, conv.weight, conv.bias, list(conv.padding), list(conv.stride),
                list(conv.dilation), conv.groups, "relu" if self.act else "none", [], "",
            )  # fmt: skip
        return super().forward(x)

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold the BatchNorm (running statistics) into the conv; idempotent."""
        _fold_block(self, out_dim=0)


def _fold_block(block: nn.Sequential, *, out_dim: int) -> None:
    """Fold ``block[1]`` (BatchNorm) into ``block[0]`` (conv or deconv, output channels on
    ``out_dim`` of its weight) and mark the block fused; a folded block is left as it is."""
    conv, bn = block[0], block[1]
    if not isinstance(bn, nn.BatchNorm2d):
        return
    weight, bias = _fold_bn(conv.weight, conv.bias, bn, out_dim=out_dim)
    conv.weight.copy_(weight)
    conv.bias = nn.Parameter(bias)
    block[1] = nn.Identity()
    block.fused = True


class DeconvBNAct(nn.Sequential):
    """``ConvTranspose2d(kernel=stride=factor) -> BatchNorm2d -> ReLU``: learned upsampling.

    Output (B, out_channels, H * factor, W * factor); each input pixel paints a
    ``factor x factor`` block (a matrix product per pixel, fast on CPU and GPU).
    """

    def __init__(self, in_channels: int, out_channels: int, *, factor: int = 2) -> None:
        super().__init__(
            nn.ConvTranspose2d(in_channels, out_channels, factor, stride=factor, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )
        self.fused = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused and _use_fused_kernel(x, _DECONV_POINTWISE):
            conv = self[0]
            return _DECONV_POINTWISE(  # type: ignore[operator]
                x, conv.weight, conv.bias, list(conv.padding), list(conv.output_padding),
                list(conv.stride), list(conv.dilation), conv.groups, "relu", [], "",
            )  # fmt: skip
        return super().forward(x)

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold the BatchNorm into the transposed conv (weight layout: in, out, kh, kw)."""
        _fold_block(self, out_dim=1)


def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm of ``model``'s :class:`ConvBNAct`/:class:`DeconvBNAct` in place.

    Puts the model in eval mode and returns it. Use only for inference.
    """
    model.eval()
    for module in model.modules():
        if isinstance(module, ConvBNAct | DeconvBNAct):
            module.fuse()
    return model
