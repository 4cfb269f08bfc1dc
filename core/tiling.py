"""Tiled (sliding-window) inference of a per-pixel classifier on photos of any size.

MONAI-style: the photo is cut into overlapping tiles of at most ``tile_size`` pixels
(same shape for every tile of a photo, so they batch), the network's stride-4
softmax probabilities of every tile are blended with smooth weights that ramp down
(sin^2 / cos^2) over each overlap. The result is the blended stride-4 map
(:class:`CoarseProbabilities`); the full-resolution heatmap is its bilinear upsampling,
made whole only when asked for (post-processing upsamples just the windows around
lesions). Memory is bounded by one tile batch plus the stride-4 map (12 MP: 9 MB), plus
the full heatmap when one is asked for (144 MB), whatever the photo size.

The tile grid is fitted to the photo: per axis the fewest tiles with at least
``overlap`` pixels of overlap, then the tile is shrunk to the smallest multiple of 32
that still covers the photo with evenly spread tiles, so the work grows linearly with
the pixel count instead of jumping by whole tiles. Tiles start at multiples of 32, in phase
with a whole-photo pass, and on a CPU no tile holds more than :data:`CPU_BATCH_PIXELS`
(:func:`plan_tiles`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from core.errors import Cancelled

if TYPE_CHECKING:  # torch is imported only on the torch path (the desktop build has none)
    import torch

#: uint8 (B, h, w, 3) RGB tiles -> float32 (B, h / stride, w / stride, C) probabilities
TileFn = Callable[[np.ndarray], np.ndarray]

#: tile side multiple (the detector's size_multiple)
TILE_MULTIPLE = 32

#: On a CPU, tiles go through the network together up to about this many pixels a batch,
#: and no tile holds more (see :func:`plan_tiles`).
#: Larger batches' activations outgrow the caches and every pixel costs more: for a 12 MP
#: photo on 2 cores (detector 1.7.1), four 2048 x 1568 tiles took 0.79 s one at a time and
#: 0.95 s two at a time; nine 1408 x 1088 tiles 0.85 s two at a time, 0.87 s one at a time.
CPU_BATCH_PIXELS = 3_300_000
#: tiles per batch on a GPU
CUDA_BATCH_SIZE = 8


def default_batch_size(on_cuda: bool, tile_height: int, tile_width: int) -> int:
    """Tiles per network call when the model folder does not say: :data:`CUDA_BATCH_SIZE`
    on a GPU; on a CPU as many as fit in :data:`CPU_BATCH_PIXELS` pixels, at least one."""
    if on_cuda:
        return CUDA_BATCH_SIZE
    return max(1, CPU_BATCH_PIXELS // (tile_height * tile_width))


@dataclass(frozen=True)
class TileGrid:
    """Tile placement along one axis, in full-resolution pixels.

    starts: first pixel of every tile, multiples of 32; tile i covers
    ``[starts[i], starts[i] + size)`` of the photo padded at the end (replicate).
    size: tile length, a multiple of 32.
    padded: the extent the tiles cover, ``ceil(length / 32) * 32``: the low-resolution map
    has ``padded / stride`` pixels on this axis.
    """

    starts: tuple[int, ...]
    size: int
    padded: int


def plan_axis(length: int, *, tile_size: int, overlap: int, stride: int = 4) -> TileGrid:
    """Tiles for one axis of ``length`` pixels (see the module docstring).

    ``tile_size`` must be a multiple of 32 and larger than ``2 * overlap``. Tiles start at
    multiples of 32, the network's coarsest stride: a tile then sees the photo in the same
    phase as a pass over the whole photo does, and gives the same map but within reach of
    its edges (at other offsets every pixel of the tile moves: on a 12 MP photo 1 % of the
    stride-4 pixels by more than 0.1 in P(background), away from any seam). ``stride``, the
    output stride, divides 32.
    """
    if length <= 0:
        raise ValueError("image axis must be at least 1 pixel long")
    if tile_size % TILE_MULTIPLE or tile_size <= 2 * overlap:
        raise ValueError(f"tile_size {tile_size} must be a multiple of 32 and > 2 * overlap")
    if TILE_MULTIPLE % stride:
        raise ValueError(f"the output stride {stride} must divide {TILE_MULTIPLE}")
    # the extent a whole-photo pass analyses too (the network pads to a multiple of 32)
    padded = math.ceil(length / TILE_MULTIPLE) * TILE_MULTIPLE
    if padded <= tile_size:
        return TileGrid(starts=(0,), size=padded, padded=padded)
    count = math.ceil((padded - overlap) / (tile_size - overlap))
    while True:
        # the smallest tile that spreads evenly with the overlap; starts rounded to 32 can
        # eat into the overlap, and then the tile grows by 32 (or one more tile is needed)
        size = math.ceil((padded + (count - 1) * overlap) / count / TILE_MULTIPLE) * TILE_MULTIPLE
        while size <= tile_size:
            last = padded - size
            starts = [
                round(last * i / (count - 1) / TILE_MULTIPLE) * TILE_MULTIPLE for i in range(count)
            ]
            if all(a + size - b >= overlap for a, b in zip(starts, starts[1:], strict=False)):
                return TileGrid(starts=tuple(starts), size=size, padded=padded)
            size += TILE_MULTIPLE
        count += 1


def plan_tiles(
    width: int,
    height: int,
    *,
    tile_size: int,
    overlap: int,
    stride: int = 4,
    max_pixels: int | None = None,
) -> tuple[TileGrid, TileGrid]:
    """The tile grids (along x, along y) of a ``width`` x ``height`` photo (see
    :func:`plan_axis`).

    With ``max_pixels``, a tile holds at most that many pixels: when :func:`plan_axis`'s
    tiles are larger, the pair of smaller tile sizes that analyses the fewest pixels is
    taken (on a CPU a larger tile's activations outgrow the caches: on 2 cores a 2048 x
    2048 tile took 64 ns a pixel, a 2048 x 1376 one 60, medians of 10 interleaved passes).
    """
    gx = plan_axis(width, tile_size=tile_size, overlap=overlap, stride=stride)
    gy = plan_axis(height, tile_size=tile_size, overlap=overlap, stride=stride)
    if max_pixels is None or gx.size * gy.size <= max_pixels:
        return gx, gy
    sides = range(tile_size, 2 * overlap, -TILE_MULTIPLE)
    along_x = {plan_axis(width, tile_size=s, overlap=overlap, stride=stride) for s in sides}
    along_y = {plan_axis(height, tile_size=s, overlap=overlap, stride=stride) for s in sides}

    def cost(pair: tuple[TileGrid, TileGrid]) -> tuple[int, int, int, int]:
        x, y = pair  # fewest pixels, then fewest tiles, then wider tiles: one answer
        count = len(x.starts) * len(y.starts)
        return count * x.size * y.size, count, -x.size, -y.size

    fitting = [(x, y) for x in along_x for y in along_y if x.size * y.size <= max_pixels]
    if not fitting:  # tiles cannot get that small with this overlap: the smallest ones
        pairs = [(x, y) for x in along_x for y in along_y]
        return min(pairs, key=lambda pair: (pair[0].size * pair[1].size, cost(pair)))
    return min(fitting, key=cost)


def axis_weights(grid: TileGrid, stride: int = 4) -> list[np.ndarray]:
    """Blending weights of every tile along one axis at the low (``stride``) resolution.

    Each weight is 1 inside the tile and ramps down as sin^2 over the overlap with a
    neighbour, so that the two ramps of an overlap sum to 1; sides at the photo's
    border stay 1. All weights are > 0. float32 arrays of length ``grid.size / stride``.
    """
    n = grid.size // stride
    weights = []
    for i, start in enumerate(grid.starts):
        w = np.ones(n, dtype=np.float64)
        if i > 0:
            ramp = (grid.starts[i - 1] + grid.size - start) // stride
            if ramp > 0:
                k = np.arange(ramp)
                w[:ramp] = np.sin(0.5 * np.pi * (k + 0.5) / ramp) ** 2
        if i + 1 < len(grid.starts):
            ramp = (start + grid.size - grid.starts[i + 1]) // stride
            if ramp > 0:
                k = np.arange(ramp)
                w[n - ramp :] = np.minimum(
                    w[n - ramp :], np.cos(0.5 * np.pi * (k + 0.5) / ramp) ** 2
                )
        weights.append(np.maximum(w, 1e-4).astype(np.float32))
    return weights


def _extract(image: np.ndarray, x0: int, y0: int, tw: int, th: int, out: np.ndarray) -> None:
    """Copy the tile at (x0, y0) of size (tw, th) into ``out`` (th, tw, 3), replicating edges."""
    h, w = image.shape[:2]
    x1, y1 = min(x0 + tw, w), min(y0 + th, h)
    crop = image[y0:y1, x0:x1]
    if crop.shape[0] == th and crop.shape[1] == tw:
        out[...] = crop
        return
    out[...] = cv2.copyMakeBorder(
        np.ascontiguousarray(crop),
        0,
        th - crop.shape[0],
        0,
        tw - crop.shape[1],
        cv2.BORDER_REPLICATE,
    )


def upsample_window(
    coarse: np.ndarray, stride: int, x0: int, y0: int, width: int, height: int
) -> np.ndarray:
    """Pixels [y0, y0 + height) x [x0, x0 + width) of the bilinear upsampling of ``coarse``.

    coarse: float32 (h, w, C) with coarse pixel (i, j) centred on full-resolution pixel
    (stride * j + (stride - 1) / 2, stride * i + (stride - 1) / 2); beyond its edges the
    map is replicated. Returns float32 (height, width, C), every value a convex mix of the
    coarse pixels within one cell of it (so per-pixel probabilities still sum to 1). Any
    window gives the same values as the same pixels of the whole map.
    """
    if (x0, y0) == (0, 0) and coarse.shape[:2] == (height / stride, width / stride):
        # the whole map at an exact multiple: resize is twice as fast, same values
        out = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)
        return out.reshape(height, width, -1)
    # only the coarse cells the window reads (plus one) are handed to OpenCV, so a small
    # window of a large map costs what the window costs
    i0, j0 = max(0, y0 // stride - 1), max(0, x0 // stride - 1)
    i1 = min(coarse.shape[0], (y0 + height) // stride + 2)
    j1 = min(coarse.shape[1], (x0 + width) // stride + 2)
    shift = (1.0 / stride - 1.0) / 2.0  # dst x -> src (x + 0.5) / stride - 0.5
    matrix = np.array(
        [
            [1.0 / stride, 0.0, x0 / stride + shift - j0],
            [0.0, 1.0 / stride, y0 / stride + shift - i0],
        ]
    )
    out = cv2.warpAffine(
        np.ascontiguousarray(coarse[i0:i1, j0:j1]),
        matrix,
        (width, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return out.reshape(height, width, -1)  # cv2 drops a single channel axis


def upsample_probabilities(lowres: np.ndarray, height: int, width: int, stride: int) -> np.ndarray:
    """Bilinear upsampling of a (h, w, C) float32 map at ``stride`` to (height, width, C).

    Low-res pixel (i, j) is centred on full-res pixel (stride * j + (stride - 1) / 2, ...).
    Convex weights, so per-pixel probabilities still sum to 1. See :func:`upsample_window`.
    """
    return upsample_window(lowres, stride, 0, 0, width, height)


@dataclass(frozen=True)
class CoarseProbabilities:
    """A photo's class probabilities at the network's output stride (tiled inference output).

    values: float32 (h, w, C), each pixel's C values summing to 1, h >= height / stride and
    w >= width / stride (the tiles' padding beyond the photo is kept); pixel (i, j) is
    centred on photo pixel (stride * j + (stride - 1) / 2, stride * i + (stride - 1) / 2).
    height, width: the photo's size. The full-resolution heatmap is :meth:`upsample`;
    post-processing upsamples only the windows it needs (see core.postprocess).
    """

    values: np.ndarray
    stride: int
    height: int
    width: int

    def upsample(self) -> np.ndarray:
        """float32 (height, width, C): the full-resolution heatmap (12 bytes per pixel)."""
        return upsample_window(self.values, self.stride, 0, 0, self.width, self.height)

    def window(self, x0: int, y0: int, width: int, height: int) -> np.ndarray:
        """float32 (height, width, C): the same pixels of :meth:`upsample`, alone."""
        return upsample_window(self.values, self.stride, x0, y0, width, height)

    def resized(self, width: int, height: int) -> np.ndarray:
        """float32 (height, width, C): the photo's probabilities at another size (area
        averaging to shrink, bilinear to enlarge), made from the stride grid without the
        whole full-resolution map (a 48 MP photo's is 580 MB). For display: the grid's last
        cells reach up to ``stride - 1`` pixels past the photo's edge."""
        rows = math.ceil(self.height / self.stride)
        cols = math.ceil(self.width / self.stride)
        grid = np.ascontiguousarray(self.values[:rows, :cols])
        shrink = width < cols or height < rows
        interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        return cv2.resize(grid, (width, height), interpolation=interp).reshape(height, width, -1)


def torch_tile_fn(model: torch.nn.Module, device: torch.device) -> TileFn:
    """A :data:`TileFn` running a torch network (eval mode, on ``device``).

    On CUDA the network runs under float16 autocast; on the CPU in the dtype of its weights
    (float32, or bfloat16: see :func:`core.device.choose_precision`). Softmax over the
    classes in float32.
    """
    import torch
    import torch.nn.functional as F

    forward = getattr(model, "logits_lowres", None)
    if forward is None:
        forward = model
    use_amp = device.type == "cuda"
    # on the CPU the tiles are given in the weights' dtype (float32 for a network without any)
    weights = (p.dtype for p in model.parameters()) if isinstance(model, torch.nn.Module) else ()
    dtype = torch.float32 if use_amp else next(iter(weights), torch.float32)
    # float16, not bfloat16: its 11-bit mantissa keeps the GPU's heatmap within 0.03 of the
    # CPU's (bfloat16: 0.12) and lesion scores within 0.011 (0.077), at the same speed
    # (demo photos + a 12 MP photo on an H200); the folded network's activations stay far
    # below float16's range
    amp_dtype = torch.float16

    def run(tiles: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            # (B, H, W, 3) -> (B, 3, H, W) view: channels_last memory, no copy
            batch = torch.from_numpy(tiles).permute(0, 3, 1, 2)
            batch = batch.to(device, non_blocking=True).float().div_(255.0).to(dtype)
            with torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=use_amp):
                logits = forward(batch)
            # softmax over the class axis of the (B, C, h, w) logits, then (B, h, w, C); the
            # network runs channels_last, so the permuted view is already contiguous (a
            # softmax over a last axis of 3 is ten times slower in torch on the CPU)
            probs = F.softmax(logits.float(), dim=1).permute(0, 2, 3, 1)
            return probs.cpu().numpy()

    return run


def mirror_averaged(tile_fn: TileFn) -> TileFn:
    """``tile_fn`` run on each tile and on its mirror image (left-right) in one batch, the
    mirror's probabilities flipped back and the two averaged. The tiles' width is a multiple
    of the output stride, so the flipped map lines up pixel for pixel."""

    def run(tiles: np.ndarray) -> np.ndarray:
        n = len(tiles)
        probs = tile_fn(np.concatenate([tiles, tiles[:, :, ::-1]]))
        return 0.5 * (probs[:n] + probs[n:, :, ::-1])

    return run


def tiled_heatmap(model: Any, image: np.ndarray, **options: Any) -> np.ndarray:
    """Per-pixel class probabilities of ``image``: float32 (H, W, C), each pixel summing to 1.

    :func:`tiled_probabilities` (same arguments) upsampled to full resolution.
    """
    return tiled_probabilities(model, image, **options).upsample()


def tiled_probabilities(
    model: Any,
    image: np.ndarray,
    *,
    device: Any = None,
    tile_size: int = 768,
    overlap: int = 96,
    batch_size: int | None = None,
    mirror: bool = False,
    progress: Callable[[float], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> CoarseProbabilities:
    """Class probabilities of ``image`` by tiled inference, at the network's output stride.

    model: a torch network in eval mode on ``device`` that maps float (B, 3, h, w) RGB in
    [0, 1] to logits at stride ``model.output_stride`` (via ``logits_lowres`` when it has
    one), or an object with ``tile_probabilities`` (a :data:`TileFn`, e.g.
    :class:`core.runtime.OnnxDetector`; ``device`` is then ignored).
    image: (H, W, 3) uint8 RGB, any size.
    Returns the blended softmax probabilities at the output stride (each pixel's C values
    summing to 1); ``.upsample()`` gives the full-resolution heatmap.
    On CUDA the network runs under float16 autocast; on the CPU in float32.
    ``batch_size``: tiles per network call (default :func:`default_batch_size`).
    ``mirror``: every tile is also analysed mirrored and the two maps averaged
    (:func:`mirror_averaged`; twice the work).
    ``progress(fraction)`` is called after each batch, and ``cancel()`` is polled before
    each batch; when it returns True, :class:`Cancelled` is raised.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    height, width = image.shape[:2]
    stride = int(getattr(model, "output_stride", 1))
    on_cuda = getattr(device, "type", "cpu") == "cuda"
    gx, gy = plan_tiles(
        width,
        height,
        tile_size=tile_size,
        overlap=overlap,
        stride=stride,
        max_pixels=None if on_cuda else CPU_BATCH_PIXELS,
    )
    wx, wy = axis_weights(gx, stride), axis_weights(gy, stride)
    tiles = [(j, i) for j in range(len(gy.starts)) for i in range(len(gx.starts))]
    if batch_size is None:
        batch_size = default_batch_size(on_cuda, gy.size, gx.size)
    tile_fn: TileFn = getattr(model, "tile_probabilities", None) or torch_tile_fn(model, device)
    if mirror:
        tile_fn = mirror_averaged(tile_fn)
    channels: int | None = None
    acc: np.ndarray | None = None
    sum_x = np.zeros(gx.padded // stride, dtype=np.float32)
    sum_y = np.zeros(gy.padded // stride, dtype=np.float32)
    for i, start in enumerate(gx.starts):
        sum_x[start // stride : (start + gx.size) // stride] += wx[i]
    for j, start in enumerate(gy.starts):
        sum_y[start // stride : (start + gy.size) // stride] += wy[j]
    tw, th = gx.size, gy.size
    buffer = np.empty((batch_size, th, tw, 3), dtype=np.uint8)
    for first in range(0, len(tiles), batch_size):
        if cancel is not None and cancel():
            raise Cancelled("detection")
        chunk = tiles[first : first + batch_size]
        for k, (j, i) in enumerate(chunk):
            _extract(image, gx.starts[i], gy.starts[j], tw, th, buffer[k])
        probs = tile_fn(buffer[: len(chunk)])
        if acc is None:
            channels = probs.shape[3]
            acc = np.zeros((gy.padded // stride, gx.padded // stride, channels), np.float32)
        for k, (j, i) in enumerate(chunk):
            y0, x0 = gy.starts[j] // stride, gx.starts[i] // stride
            weight = wy[j][:, None, None] * wx[i][None, :, None]
            region = acc[y0 : y0 + th // stride, x0 : x0 + tw // stride]
            region += probs[k, : th // stride, : tw // stride] * weight
        if progress is not None:
            progress(min(1.0, (first + len(chunk)) / len(tiles)))
    assert acc is not None and channels is not None
    acc /= (sum_y[:, None] * sum_x[None, :])[:, :, None]
    return CoarseProbabilities(acc, stride, height, width)
