"""ONNX Runtime backend: export, file checks, parity with torch, and a run without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from core.analyzer import Analyzer
from core.errors import ModelError
from core.model_folder import save_model_folder
from core.models import build_model
from tests.core.detector_fixtures import make_model_folder

pytest.importorskip("onnxruntime")

from core.onnx_export import export_onnx  # noqa: E402
from core.runtime import choose_backend, load_onnx_folder  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TRACKER_KWARGS = {
    "pyramid_levels": 2,
    "refinement_iterations": 1,
    "working_size": 128,
    "soft_argmax": True,
}


def _tracker_folder(folder: Path, seed: int = 0) -> None:
    """A tiny tracker whose every weight is random (the stock flow head starts at zero)."""
    generator = torch.Generator().manual_seed(seed)
    model = build_model("lesion_tracker", **TRACKER_KWARGS)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    meta = {"name": "test-tracker", "version": "0"}
    save_model_folder(folder, model, arch="lesion_tracker", arch_kwargs=TRACKER_KWARGS, meta=meta)


def _photo(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), (200, 160, 140), np.uint8)
    image = cv2.add(image, rng.integers(0, 20, image.shape, dtype=np.uint8))
    for _ in range(5):
        x, y = int(rng.integers(20, width - 20)), int(rng.integers(20, height - 20))
        cv2.circle(image, (x, y), int(rng.integers(5, 14)), (70, 45, 35), -1)
    return image


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("onnx")
    detector, tracker = root / "detector", root / "tracker"
    # with a second stage (min_score 0: every candidate stays, scored by the verifier), so
    # that parity and the run without torch cover it too
    thresholds = {"high": 0.4, "low": 0.25}
    meta = {"postprocess": thresholds, "verifier": {"candidates": thresholds, "min_score": 0.0}}
    make_model_folder(detector, seed=11, meta=meta, verifier_bias=0.0)
    _tracker_folder(tracker, seed=12)
    export_onnx(detector)
    export_onnx(tracker)
    return detector, tracker


def test_export_records_the_file_and_keeps_the_rest_of_model_json(folders) -> None:
    detector, tracker = folders
    for folder, kind in ((detector, "detector"), (tracker, "tracker")):
        meta = json.loads((folder / "model.json").read_text())
        entry = meta["onnx"]
        assert entry["kind"] == kind and (folder / entry["file"]).is_file()
        assert entry["weights_sha256"] == meta["sha256"] and len(entry["sha256"]) == 64
        assert entry["check_max_abs_diff"] < (1e-3 if kind == "detector" else 0.05)
    assert json.loads((detector / "model.json").read_text())["tile"]["size"] == 128


def test_heatmaps_and_lesions_agree_with_torch(folders) -> None:
    detector, _ = folders
    photo = _photo(300, 420, seed=1)  # several tiles of 128 with overlap: blending is tested
    with_torch = Analyzer.load("cpu", detector=detector, backend="torch").detect(photo)
    onnx = Analyzer.load("cpu", detector=detector, backend="onnx")
    assert onnx.backend == "onnx" and onnx.device.type == "cpu"
    with_onnx = onnx.detect(photo)
    assert with_onnx.heatmap.shape == with_torch.heatmap.shape
    assert np.abs(with_onnx.heatmap - with_torch.heatmap).max() < 1e-3
    assert with_onnx.model == with_torch.model
    assert len(with_torch.lesions) > 0
    assert [lesion.bbox for lesion in with_onnx.lesions] == [
        lesion.bbox for lesion in with_torch.lesions
    ]
    for a, b in zip(with_onnx.lesions, with_torch.lesions, strict=True):
        assert abs(a.score - b.score) < 1e-3 and abs(a.p_malignant - b.p_malignant) < 1e-3


def test_a_stride_2_detector_agrees_with_torch(tmp_path: Path) -> None:
    """The fine branch's stride-2 map goes through export, tiling and blending unchanged."""
    folder = tmp_path / "fine"
    make_model_folder(folder, seed=13, fine_width=8, meta={"postprocess": {"high": 0.4}})
    export_onnx(folder)
    assert json.loads((folder / "model.json").read_text())["onnx"]["output_stride"] == 2
    photo = _photo(300, 420, seed=4)
    with_torch = Analyzer.load("cpu", detector=folder, backend="torch").detect(photo)
    with_onnx = Analyzer.load("cpu", detector=folder, backend="onnx").detect(photo)
    assert np.abs(with_onnx.heatmap - with_torch.heatmap).max() < 1e-3
    assert len(with_torch.lesions) > 0
    assert [lesion.bbox for lesion in with_onnx.lesions] == [
        lesion.bbox for lesion in with_torch.lesions
    ]


def test_flow_and_tracking_agree_with_torch(folders) -> None:
    detector, tracker = folders
    a, b = _photo(150, 200, seed=2), _photo(170, 210, seed=3)
    results = []
    for backend in ("torch", "onnx"):
        analyzer = Analyzer.load("cpu", detector=detector, tracker=tracker, backend=backend)
        results.append(analyzer.track(a, b))
    flow_torch, flow_onnx = results[0].flow, results[1].flow
    assert flow_onnx.shape == (150, 200, 2) and flow_onnx.dtype == np.float32
    assert np.abs(flow_torch).mean() > 1.0  # a random tracker that moves pixels
    assert np.median(np.abs(flow_onnx - flow_torch)) < 0.05
    assert [(m.a, m.b) for m in results[0].matches] == [(m.a, m.b) for m in results[1].matches]


def test_a_corrupt_or_stale_onnx_file_is_refused(folders, tmp_path: Path) -> None:
    import shutil

    detector, _ = folders
    copy = tmp_path / "det"
    shutil.copytree(detector, copy)
    data = bytearray((copy / "model.onnx").read_bytes())
    data[-10] ^= 0xFF
    (copy / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="SHA-256 of model.onnx"):
        load_onnx_folder(copy)
    shutil.copy(detector / "model.onnx", copy / "model.onnx")
    meta = json.loads((copy / "model.json").read_text())
    meta["onnx"]["weights_sha256"] = "0" * 64
    (copy / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="stale export"):
        Analyzer.load("cpu", detector=copy, backend="onnx")
    (copy / "model.onnx").unlink()
    with pytest.raises(ModelError, match="model.onnx missing"):
        load_onnx_folder(copy)


def test_backend_choice() -> None:
    assert choose_backend("auto") == "torch"  # torch is installed here
    assert choose_backend("onnx") == "onnx"
    with pytest.raises(ValueError, match="unknown backend"):
        choose_backend("tensorrt")
    with pytest.raises(RuntimeError, match="CPU only"):
        Analyzer.load("cuda", detector=REPO / "nowhere", backend="onnx")


NO_TORCH = textwrap.dedent(
    """
    import json, sys
    import numpy as np

    class NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ModuleNotFoundError(f"No module named {name!r} (blocked)")
            return None

    sys.meta_path.insert(0, NoTorch())
    from core.analyzer import Analyzer
    from core.device import describe_device

    analyzer = Analyzer.load(detector=sys.argv[1], tracker=sys.argv[2])
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 255, (140, 180, 3), dtype=np.uint8)
    detection = analyzer.detect(photo)
    tracking = analyzer.track(photo, photo, detection_a=detection, detection_b=detection)
    points = analyzer.map_points(photo, photo, [[10.0, 20.0]])
    print(json.dumps({
        "backend": analyzer.backend,
        "device": describe_device(analyzer.device),
        "heatmap": list(detection.heatmap.shape),
        "flow": list(tracking.flow.shape),
        "points": points.shape[0],
        "verified": analyzer.verification is not None,
        "lesions": len(detection.lesions),
        "torch_loaded": any(m == "torch" or m.startswith("torch.") for m in sys.modules),
    }))
    """
)


def test_detect_and_track_run_without_torch(folders) -> None:
    detector, tracker = folders
    env = {k: v for k, v in os.environ.items() if k not in ("LESIONVIEWER_BACKEND",)}
    done = subprocess.run(
        [sys.executable, "-c", NO_TORCH, str(detector), str(tracker)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["backend"] == "onnx" and "ONNX Runtime" in report["device"]
    assert report["heatmap"] == [140, 180, 3] and report["flow"] == [140, 180, 2]
    assert report["points"] == 1 and report["torch_loaded"] is False
    assert report["verified"] and report["lesions"] > 0  # the second stage ran without torch


@pytest.mark.parametrize("name", ["detector", "tracker"])
def test_shipped_models_have_a_current_onnx_export(name: str) -> None:
    """The desktop build runs model.onnx: a retrained model needs `lesion-train export-onnx`."""
    folder = REPO / "resources" / "models" / name
    if not (folder / "model.json").is_file():
        pytest.skip(f"no shipped {name} in the checkout yet")
    network, meta = load_onnx_folder(folder)  # ModelError if missing, corrupt or stale
    assert meta["onnx"]["kind"] == name


def test_a_detector_with_a_verifier_exports_both_stages_and_agrees(tmp_path: Path) -> None:
    from tests.core.test_verification import CANDIDATES, _map_of_the_discs
    from tests.core.test_verification import _photo as discs_photo

    folder = tmp_path / "verified"
    meta = {"verifier": {"candidates": CANDIDATES, "min_score": 0.0}}
    make_model_folder(folder, seed=21, meta=meta, verifier_bias=0.0)
    entry = export_onnx(folder)["verifier"]
    assert (folder / entry["file"]).is_file() and entry["check_max_abs_diff"] < 1e-4
    photo = discs_photo()
    found = {}
    for backend in ("torch", "onnx"):
        analyzer = Analyzer.load("cpu", detector=folder, backend=backend)
        analyzer._coarse_probabilities = _map_of_the_discs  # the verifier is under test here
        found[backend] = analyzer.detect(photo).lesions
    assert len(found["torch"]) == 3
    assert [lesion.bbox for lesion in found["onnx"]] == [lesion.bbox for lesion in found["torch"]]
    for a, b in zip(found["onnx"], found["torch"], strict=True):
        assert abs(a.score - b.score) < 1e-4
    # the second stage's file is checked like the first's
    (folder / entry["file"]).write_bytes(b"not onnx")
    with pytest.raises(ModelError, match="verifier.onnx"):
        Analyzer.load("cpu", detector=folder, backend="onnx")
