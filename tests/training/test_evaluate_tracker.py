"""`lesion-train evaluate-tracker` end to end on tiny inputs: report, PCK plot, model.json."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch

from core.model_folder import load_model_folder, save_model_folder
from core.models.registry import build_model

TINY = {
    "widths": [8, 16, 16],
    "depths": [1, 1, 1],
    "atrous_dilations": [2, 2],
    "feature_dim": 8,
    "estimator_width": 16,
    "correlation_radius": 2,
    "working_size": 128,
}


def texture(seed: int, shape=(150, 200)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.random((shape[0] // 5, shape[1] // 5, 3)).astype(np.float32)
    img = cv2.resize(noise, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    return np.clip(img * 200 + 30, 0, 255).astype(np.uint8)


def test_evaluation_writes_report_plot_and_model_json(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model("lesion_tracker", **TINY)
    folder = tmp_path / "model"
    digest = save_model_folder(
        folder,
        model,
        arch="lesion_tracker",
        arch_kwargs=TINY,
        meta={"name": "tracker", "version": "0", "metrics": {"validation": {"epe_px": 9.0}}},
    )
    photos, tiles = tmp_path / "photos", tmp_path / "tiles"
    photos.mkdir()
    tiles.mkdir()
    cv2.imwrite(str(photos / "p.png"), texture(1))
    cv2.imwrite(str(tiles / "t.png"), texture(2, (180, 240)))
    config = {"data": {"source": "image_folder", "folder": str(photos), "width": 96, "height": 64}}
    (tmp_path / "c.json").write_text(json.dumps(config))
    from training.cli import main

    out = tmp_path / "eval"
    args = ["evaluate-tracker", "--model", str(folder), "--config", str(tmp_path / "c.json")]
    args += ["--out-dir", str(out), "--synthetic-pairs", "1", "--real-pairs-per-tile", "1"]
    args += ["--real-tiles", str(tiles), "--device", "cpu", "--no-baselines"]
    assert main([*args, "--update-model-json"]) == 0
    report = json.loads((out / "tracker_eval.json").read_text())
    for set_name in ("held-out synthetic pairs", "real tiles, known deformations"):
        tracker = report["results"][set_name]["tracker"]
        assert len(tracker["pck_curve"]) == 101 and tracker["pck_curve"][0] == 0.0
        assert 0.0 <= tracker["pck@0.05"] <= 1.0
    assert cv2.imread(str(out / "pck.png")) is not None
    _, meta = load_model_folder(folder)  # the SHA-256 still matches the weights
    assert meta["sha256"] == digest
    evaluation = meta["metrics"]["evaluation"]
    assert meta["metrics"]["validation"] == {"epe_px": 9.0}  # kept
    tracker = evaluation["results"]["held-out synthetic pairs"]["tracker"]
    assert "pck_curve" not in tracker and "lesion_matching_accuracy" in tracker
    assert evaluation["held_out_seed"] == report["seed"]


def test_pck_over_skin_leaves_out_the_background() -> None:
    from training.evaluate_tracker import ALPHAS, Tally, score_pair
    from training.tracking_pairs import KnownPair

    h, w = 60, 80
    image = texture(3, (h, w))
    true_flow = np.zeros((h, w, 2), np.float32)
    true_flow[..., 0] = 5.0
    skin = np.zeros((h, w), bool)
    skin[:, : w // 2] = True  # the left half is skin, the right half a plain wall
    flow = true_flow.copy()
    flow[:, w // 2 :] = 30.0  # wrong on the wall only
    pair = KnownPair(image, image, true_flow, np.ones((h, w), bool), skin_a=skin)
    tally = Tally(hits=np.zeros(len(ALPHAS), np.int64))
    score_pair(tally, pair, flow)
    figures = tally.summary()
    assert figures["pck_skin@0.05"] == 1.0
    assert 0.4 < figures["pck@0.05"] < 0.6
    without = Tally(hits=np.zeros(len(ALPHAS), np.int64))
    score_pair(without, KnownPair(image, image, true_flow, np.ones((h, w), bool)), flow)
    assert "pck_skin@0.05" not in without.summary()
