"""Detection (and tracking) time with torch vs ONNX Runtime, same process, same photo.

    python packaging/backend_speed.py [--models DIR] [--width 4000 --height 3000] [--repeats 3]

Loads the detector and tracker of DIR (default: the shipped models; each folder needs its
model.onnx) with both backends on the CPU, warms each up once, then times ``detect`` on a
synthetic photo of the given size (12 MP by default) and ``map_points`` (tracker flow) on a
pair, alternating the backends, and prints the medians, the ratio and the largest heatmap
difference. Needs torch and onnxruntime (a source checkout, not the frozen app).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.analyzer import Analyzer  # noqa: E402
from core.resources import models_dir  # noqa: E402


def _photo(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(120, 220, (height // 16, width // 16, 3), dtype=np.uint8)
    image = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(40):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        cv2.circle(image, (x, y), int(rng.integers(8, 40)), (80, 50, 40), -1)
    return image


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=None)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    root = args.models or models_dir()
    folders = {"detector": root / "detector", "tracker": root / "tracker"}
    analyzers = {name: Analyzer.load("cpu", backend=name, **folders) for name in ("torch", "onnx")}
    photo = _photo(args.height, args.width, seed=0)
    other = np.ascontiguousarray(np.roll(photo, (15, -20), axis=(0, 1)))
    detect_s: dict[str, list[float]] = {name: [] for name in analyzers}
    flow_s: dict[str, list[float]] = {name: [] for name in analyzers}
    heatmaps = {}
    for name, analyzer in analyzers.items():  # warm-up (and the heatmaps to compare)
        heatmaps[name] = analyzer.heatmap(photo)
        analyzer.map_points(photo, other, [[0.0, 0.0]])
    for _ in range(args.repeats):
        for name, analyzer in analyzers.items():
            start = time.perf_counter()
            analyzer.detect(photo)
            detect_s[name].append(time.perf_counter() - start)
            start = time.perf_counter()
            analyzer.map_points(photo, other, [[0.0, 0.0]])
            flow_s[name].append(time.perf_counter() - start)
    megapixels = args.width * args.height / 1e6
    print(f"photo {args.width}x{args.height} ({megapixels:.1f} MP), models {root}")
    for label, table in (("detect", detect_s), ("tracker flow", flow_s)):
        medians = {name: statistics.median(times) for name, times in table.items()}
        runs = ", ".join(
            f"{name} {medians[name]:.2f} s ({' '.join(f'{t:.2f}' for t in table[name])})"
            for name in table
        )
        print(
            f"{label}: median of {args.repeats}: {runs}; onnx/torch "
            f"{medians['onnx'] / medians['torch']:.2f}"
        )
    difference = float(np.abs(heatmaps["onnx"] - heatmaps["torch"]).max())
    print(f"heatmap max |onnx - torch| = {difference:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
