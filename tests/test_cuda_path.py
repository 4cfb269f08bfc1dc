"""The CUDA path: inference parity with the CPU and short training runs on the GPU.

Skipped on machines without CUDA (CI has none); run on a GPU machine with
``python -m pytest -q tests/test_cuda_path.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def _train(kind: str, out: Path, work: Path, *extra: str) -> None:
    command = [
        sys.executable,
        "-m",
        "training.cli",
        kind,
        "--device",
        "cuda",
        "--epochs",
        "1",
        "--steps",
        "4",
        "--out",
        str(out),
        "--work-dir",
        str(work),
        *extra,
    ]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert (out / "model.json").is_file() and (out / "weights.safetensors").is_file()


def _tracker_recipe(root: Path) -> Path:
    """The shipped tracker recipe with pairs made on the fly (the recipe's pair pool is a
    local ``runs/`` folder that a fresh GPU machine does not have)."""
    cfg = json.loads((REPO_ROOT / "training/configs/tracker.json").read_text())
    cfg["data"]["source"] = "synth_pairs"
    cfg["data"].pop("mix", None)
    cfg["data"]["pool_size"] = 8
    cfg["data"]["val_pairs"] = 2
    path = root / "tracker.json"
    path.write_text(json.dumps(cfg))
    return path


def _detector_recipe(root: Path) -> Path:
    """The small-lesion detector recipe (instance maps in the crops, weighted loss) with
    photos made on the fly instead of its local pool folder."""
    cfg = json.loads((REPO_ROOT / "training/configs/detector_small.json").read_text())
    defaults = json.loads((REPO_ROOT / "training/configs/detector.json").read_text())
    cfg["data"] = defaults["data"]
    path = root / "detector.json"
    path.write_text(json.dumps(cfg))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cuda")
    _train(
        "detector",
        root / "detector",
        root / "work-det",
        "--config",
        str(_detector_recipe(root)),
    )
    _train(
        "tracker",
        root / "tracker",
        root / "work-trk",
        "--detector",
        str(root / "detector"),
        "--config",
        str(_tracker_recipe(root)),
    )
    return root / "detector", root / "tracker"


def _pair() -> tuple[np.ndarray, np.ndarray]:
    from training.synthesis.detection import SynthConfig
    from training.synthesis.pairs import make_pair_sample

    sample = make_pair_sample(0, 7, SynthConfig(width=640, height=480))
    return sample.image_a, sample.image_b


def test_detection_on_cuda_matches_cpu(trained: tuple[Path, Path]) -> None:
    from core.analyzer import Analyzer

    image, _ = _pair()
    on_gpu = Analyzer.load("cuda", detector=trained[0]).detect(image)
    on_cpu = Analyzer.load("cpu", detector=trained[0]).detect(image)
    assert on_gpu.heatmap.shape == on_cpu.heatmap.shape == (*image.shape[:2], 3)
    np.testing.assert_allclose(on_gpu.heatmap.sum(axis=2), 1.0, atol=1e-3)
    # autocast (half precision) on the GPU: probabilities agree to a few hundredths
    assert float(np.abs(on_gpu.heatmap - on_cpu.heatmap).max()) < 0.05


def test_tracking_on_cuda_matches_cpu(trained: tuple[Path, Path]) -> None:
    from core.analyzer import Analyzer

    image_a, image_b = _pair()
    gpu = Analyzer.load("cuda", detector=trained[0], tracker=trained[1])
    cpu = Analyzer.load("cpu", detector=trained[0], tracker=trained[1])
    flow_gpu = gpu.track(image_a, image_b).flow
    flow_cpu = cpu.track(image_a, image_b).flow
    assert flow_gpu.shape == (*image_a.shape[:2], 2)
    assert float(np.median(np.abs(flow_gpu - flow_cpu))) < 0.5
