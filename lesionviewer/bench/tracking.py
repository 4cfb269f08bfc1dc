"""Bench section "tracking": a pair of 12-MP photos tracked end to end, against OpenCV DIS.

Ours: ``core.tracking.track`` (both photos resized to the working resolution, the tracker
network, its flow refined at up to 1024 px (``core.flow_refinement``), brought back to
12 MP, 40 lesions matched). The reference: OpenCV DIS
optical flow (medium preset, grey levels) run through the same resize-and-upsample pipeline
(``core.tracking.estimate_flow_with``) at the same working resolution. Both are timed
interleaved in this process; figures are medians, the ratio is of the medians.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from lesionviewer.bench import BenchOptions, Measurement

SECTION = "tracking"
SIZE_12MP = (4000, 3000)


def _pair(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Photo A and photo B = A moved by a tenth of the width and turned 3 degrees."""
    import cv2

    from lesionviewer.bench.detection import synthetic_photo

    a = synthetic_photo(width, height, seed=1)
    m = cv2.getRotationMatrix2D((width / 2, height / 2), 3.0, 1.02)
    m[0, 2] += width / 10
    b = cv2.warpAffine(a, m, (width, height), borderMode=cv2.BORDER_REFLECT101)
    return a, b


def _lesions(width: int, height: int, count: int, seed: int):
    import cv2

    from core.types import Lesion

    rng = np.random.default_rng(seed)
    out = []
    for k in range(1, count + 1):
        cx, cy = rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height
        r = float(rng.uniform(8, 40))
        angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        contour = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1).astype(np.int32)
        x, y, w, h = cv2.boundingRect(contour)
        out.append(Lesion(k, (cx, cy), (x, y, x + w, y + h), contour, np.pi * r * r, 0.9, 0.2))
    return tuple(out)


def _tracker(options: BenchOptions):
    from core.model_folder import load_model_folder
    from core.models.registry import build_model
    from core.resources import models_dir
    from core.types import ModelInfo

    folder = models_dir() / "tracker"
    if (folder / "model.json").is_file():
        model, meta = load_model_folder(folder, "cpu")
        return model, ModelInfo(meta["name"], meta["version"], meta["sha256"]), "shipped tracker"
    model = build_model("lesion_tracker").eval()
    info = ModelInfo("untrained", "0", "0" * 64)
    return model, info, "default architecture, untrained weights (speed does not depend on them)"


def measure(options: BenchOptions) -> list[Measurement]:
    import cv2
    import torch

    from core.device import choose_device
    from core.tracking import estimate_flow, estimate_flow_with, track
    from core.types import Detection

    device = choose_device(options.device)
    width, height = (1600, 1200) if options.quick else SIZE_12MP
    repeats = max(1, 2 if options.quick else options.repeats)
    a, b = _pair(width, height)
    model, info, note = _tracker(options)
    model = model.to(device).eval()
    working = int(getattr(model, "working_size", 512))
    heat = np.zeros((1, 1, 3), np.float32)
    det_a = Detection(heat, _lesions(width, height, 40, 2), info)
    det_b = Detection(heat, _lesions(width, height, 40, 3), info)

    def dis(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        grey = cv2.COLOR_RGB2GRAY
        flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        return flow.calc(cv2.cvtColor(x, grey), cv2.cvtColor(y, grey), None)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    runs = {
        "ours": lambda: track(model, info, a, b, det_a, det_b, device=device),
        "flow": lambda: estimate_flow(model, a, b, device=device),
        "dis": lambda: estimate_flow_with(dis, a, b, working_size=working),
    }
    for fn in runs.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    mp = width * height / 1e6
    ratio = med["ours"] / med["dis"]
    where = f"{device.type}, working long side {working} px, median of {repeats}; {note}"
    return [
        Measurement(
            SECTION,
            f"{mp:.0f} MP pair tracked end to end",
            med["ours"],
            "s",
            note=f"flow + 40 lesions matched; {where}",
        ),
        Measurement(SECTION, f"{mp:.0f} MP pair, tracker flow only", med["flow"], "s", note=where),
        Measurement(
            SECTION,
            f"{mp:.0f} MP pair, OpenCV DIS (medium)",
            med["dis"],
            "s",
            note=f"same resize and upsampling; {where}",
        ),
        Measurement(
            SECTION,
            "tracking time / DIS time",
            ratio,
            "x",
            "<= 5",
            ratio <= 5.0,
            note="same pair, same working resolution, same run",
        ),
    ]
