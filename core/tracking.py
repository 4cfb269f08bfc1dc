"""Tracking inference: dense flow from photo A to photo B at a working resolution.

Photos of any size and aspect are resized to one working size (A's aspect, long side
``working_size``, multiples of 32; B is resized to the same size), the network runs there
(again on B pre-aligned by each of a few guesses of the global motion, the flow that
explains the pair best kept: :mod:`core.prealignment`), the flow is refined at a finer resolution
(:mod:`core.flow_refinement`) and brought back to A's full resolution, with B's own scale, so that
A pixel (x, y) + flow[y, x] = its position in B's full-resolution pixels.
Coordinates: x right, y down, pixel centres at integer coordinates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from core.device import choose_device
from core.matching import match_lesions, split_by_field_of_view
from core.prealignment import prealigned
from core.types import Detection, ModelInfo, Tracking

if TYPE_CHECKING:  # torch is imported only on the torch path (the desktop build has none)
    import torch

#: Default long side of the working resolution, in pixels.
WORKING_SIZE = 512
_MULTIPLE = 32

#: Default long side of the refinement resolution (:mod:`core.flow_refinement`), in pixels;
#: never above photo A's own long side. 0 turns refinement off.
REFINE_SIZE = 1024

#: A flow function at working resolution: (image_a, image_b) uint8 (h, w, 3) RGB of the same
#: size -> float32 (h, w, 2) flow in working pixels.
FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def working_shape(height: int, width: int, working_size: int = WORKING_SIZE) -> tuple[int, int]:
    """(h, w) of the working resolution for a photo of (height, width): long side
    ``working_size`` rounded to a multiple of 32, aspect kept as closely as multiples allow."""
    if height <= 0 or width <= 0:
        raise ValueError(f"empty photo of size {width}x{height}")
    long_side = max(_MULTIPLE, int(round(working_size / _MULTIPLE)) * _MULTIPLE)
    scale = long_side / max(height, width)
    h = max(_MULTIPLE, int(round(height * scale / _MULTIPLE)) * _MULTIPLE)
    w = max(_MULTIPLE, int(round(width * scale / _MULTIPLE)) * _MULTIPLE)
    return h, w


def resize_pair(
    image_a: np.ndarray, image_b: np.ndarray, working_size: int = WORKING_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """Both photos resized (area filter) to A's working shape; uint8 (h, w, 3) each."""
    h, w = working_shape(*image_a.shape[:2], working_size)
    out = []
    for image in (image_a, image_b):
        interp = cv2.INTER_AREA if image.shape[0] > h else cv2.INTER_LINEAR
        out.append(cv2.resize(image, (w, h), interpolation=interp))
    return out[0], out[1]


def flow_to_full_resolution(
    flow_working: np.ndarray, shape_a: tuple[int, int], shape_b: tuple[int, int]
) -> np.ndarray:
    """Working-resolution flow (h, w, 2) -> float32 (H_A, W_A, 2) flow in full-res pixels.

    Both photos were resized to (h, w); the working position q_w = p_w + f_w(p_w) is
    mapped back with B's scale: q = (q_w + 0.5) * (W_B / w) - 0.5 (same for y).
    """
    h, w = flow_working.shape[:2]
    ha, wa = shape_a[:2]
    hb, wb = shape_b[:2]
    up = cv2.resize(flow_working.astype(np.float32), (wa, ha), interpolation=cv2.INTER_LINEAR)
    sx_a, sy_a, sx_b, sy_b = wa / w, ha / h, wb / w, hb / h
    if abs(sx_a - sx_b) < 1e-9 and abs(sy_a - sy_b) < 1e-9:
        up[..., 0] *= sx_b
        up[..., 1] *= sy_b
        return up
    # q - p = (p + 0.5) (s_B / s_A - 1) + f_w s_B
    xs = (np.arange(wa, dtype=np.float32) + 0.5) * np.float32(sx_b / sx_a - 1)
    ys = (np.arange(ha, dtype=np.float32) + 0.5) * np.float32(sy_b / sy_a - 1)
    up[..., 0] = up[..., 0] * np.float32(sx_b) + xs[None, :]
    up[..., 1] = up[..., 1] * np.float32(sy_b) + ys[:, None]
    return up


def estimate_flow_with(
    flow_fn: FlowFn,
    image_a: np.ndarray,
    image_b: np.ndarray,
    *,
    working_size: int = WORKING_SIZE,
    refine_size: int = 0,
) -> np.ndarray:
    """Run any working-resolution flow function end to end: resize, flow, back to full res.

    refine_size > 0: the working flow is brought to a finer resolution (long side
    ``refine_size``, at most A's own) and refined there (:func:`core.flow_refinement.refine_flow`)
    before it is brought to full resolution.
    """
    refine_size = min(int(refine_size), max(image_a.shape[:2]))
    if refine_size <= max(working_shape(*image_a.shape[:2], working_size)):
        a, b = resize_pair(image_a, image_b, working_size)
        return flow_to_full_resolution(flow_fn(a, b), image_a.shape, image_b.shape)
    from core.flow_refinement import refine_flow

    # the full-resolution photos are shrunk once; the working pair comes from the finer one
    fine_a, fine_b = resize_pair(image_a, image_b, refine_size)
    a, b = resize_pair(fine_a, fine_b, working_size)
    coarse = flow_to_full_resolution(flow_fn(a, b), fine_a.shape, fine_b.shape)
    flow = refine_flow(fine_a, fine_b, coarse)
    return flow_to_full_resolution(flow, image_a.shape, image_b.shape)


def _to_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    import torch

    t = torch.from_numpy(np.ascontiguousarray(image)).to(device)
    return t.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def network_flow_fn(model: Any, device: Any = "auto") -> FlowFn:
    """A :data:`FlowFn` that runs ``model`` on ``device``: a torch LesionTracker, or an
    object with a ``flow(a, b)`` method of the same meaning (e.g.
    :class:`core.runtime.OnnxTracker`; ``device`` is then ignored)."""
    onnx_flow = getattr(model, "flow", None)
    if onnx_flow is not None and callable(onnx_flow):
        return onnx_flow
    import torch

    dev = choose_device(device)

    def run(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        model.to(dev).eval()
        with torch.inference_mode():
            flow = model(_to_tensor(a, dev), _to_tensor(b, dev))[0]
        return flow.permute(1, 2, 0).float().cpu().numpy()

    return run


def estimate_flow(
    model: Any,
    image_a: np.ndarray,
    image_b: np.ndarray,
    *,
    device: Any = "auto",
    working_size: int | None = None,
    refine_size: int = REFINE_SIZE,
    prealign: bool = True,
) -> np.ndarray:
    """Dense flow A -> B: float32 (H_A, W_A, 2), A pixel + flow = its position in B.

    image_a, image_b: uint8 (H, W, 3) RGB of any sizes (B may differ from A in size).
    working_size: long side of the working resolution; default the model's
    ``working_size`` attribute (what it was trained for), else :data:`WORKING_SIZE`.
    refine_size: long side of the residual refinement (see :func:`estimate_flow_with`);
    0 gives the network's flow alone.
    prealign: run the network again on B pre-aligned by each guess of the global motion and
    keep the flow that explains the pair best (:func:`core.prealignment.prealigned`).
    """
    if working_size is None:
        working_size = int(getattr(model, "working_size", WORKING_SIZE))
    for name, image in (("A", image_a), ("B", image_b)):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"photo {name} must be uint8 (H, W, 3), got {image.dtype} {image.shape}"
            )
    flow_fn = network_flow_fn(model, device)
    return estimate_flow_with(
        prealigned(flow_fn) if prealign else flow_fn,
        image_a,
        image_b,
        working_size=working_size,
        refine_size=refine_size,
    )


def map_points(flow: np.ndarray, points: np.ndarray | list) -> np.ndarray:
    """Positions in B of points of A: float64 (N, 2) from (N, 2) (x, y) in A's pixels.

    The flow is sampled bilinearly; points outside A are clamped to its border for sampling.
    """
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return pts.copy()
    h, w = flow.shape[:2]
    x = np.clip(pts[:, 0], 0, w - 1)
    y = np.clip(pts[:, 1], 0, h - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    f = (
        flow[y0, x0] * (1 - fx) * (1 - fy)
        + flow[y0, x1] * fx * (1 - fy)
        + flow[y1, x0] * (1 - fx) * fy
        + flow[y1, x1] * fx * fy
    )
    return pts + f


def track(
    model: Any,
    info: ModelInfo,
    image_a: np.ndarray,
    image_b: np.ndarray,
    detection_a: Detection,
    detection_b: Detection,
    *,
    device: Any = "auto",
    working_size: int | None = None,
) -> Tracking:
    """Flow A -> B, then lesions of A matched to B's (see :func:`core.matching.match_lesions`);
    unmatched lesions the other photo cannot show are set apart from new and gone ones
    (:func:`core.matching.split_by_field_of_view`)."""
    flow = estimate_flow(model, image_a, image_b, device=device, working_size=working_size)
    matches, unmatched_b, unmatched_a = match_lesions(
        detection_a.lesions, detection_b.lesions, flow, image_a, image_b
    )
    new_in_b, gone, outside_a, outside_b = split_by_field_of_view(
        unmatched_b, unmatched_a, detection_a.lesions, detection_b.lesions, flow, image_b.shape
    )
    return Tracking(
        flow=flow,
        lesions_a=tuple(detection_a.lesions),
        lesions_b=tuple(detection_b.lesions),
        matches=matches,
        new_in_b=new_in_b,
        gone_from_a=gone,
        model=info,
        outside_view_of_a=outside_a,
        outside_view_of_b=outside_b,
    )
