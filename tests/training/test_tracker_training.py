"""Tracker training: known-deformation pairs, loss, evaluation scoring, baselines, trainer."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from core.model_folder import load_model_folder
from training.baselines.flow_baselines import BASELINES, dense_sift_flow, homography_flow
from training.evaluate_tracker import ALPHAS, Tally, score_pair
from training.tracking_pairs import (
    apply_forward_map,
    make_known_pair,
    random_forward_map,
    render_warp,
    view_of_a_in_b,
)
from training.train_tracker import multiscale_loss


def texture(seed: int, shape=(192, 256), grain: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.random((shape[0] // grain, shape[1] // grain, 3)).astype(np.float32)
    img = cv2.resize(noise, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    return np.clip(img * 200 + 30, 0, 255).astype(np.uint8)


def test_rendered_b_shows_each_a_pixel_where_the_flow_says() -> None:
    image = texture(0)
    rng = np.random.default_rng(1)
    affine, smooth = random_forward_map(rng, image.shape[:2])
    warped, flow = render_warp(image, affine, smooth, image.shape[:2])
    ys, xs = np.mgrid[20:170:7, 20:230:7]
    pts = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)
    moved = pts + flow[ys.ravel(), xs.ravel()]
    np.testing.assert_allclose(moved, apply_forward_map(affine, smooth, pts), atol=1e-3)
    inside = (moved[:, 0] > 2) & (moved[:, 0] < 253) & (moved[:, 1] > 2) & (moved[:, 1] < 189)
    sampled = cv2.remap(
        warped.astype(np.float32),
        moved[inside, 0].astype(np.float32)[None],
        moved[inside, 1].astype(np.float32)[None],
        cv2.INTER_LINEAR,
    )[0]
    original = image[ys.ravel()[inside], xs.ravel()[inside]].astype(np.float32)
    assert np.median(np.abs(sampled - original)) < 4.0


def test_known_pair_lesion_truth_is_consistent() -> None:
    pair = make_known_pair(
        texture(2, (240, 320)), np.random.default_rng(3), lesions=6, gone=1, new=2
    )
    ids_b = {le.id for le in pair.lesions_b}
    assert len(pair.new_in_b) == 2 and set(pair.new_in_b) <= ids_b
    assert {b for _, b in pair.correspondences} | set(pair.new_in_b) == ids_b
    seen_by_a = view_of_a_in_b(pair.flow, pair.image_b.shape[:2])
    assert 0.3 < seen_by_a.mean() < 1.0  # the camera moved: A shows part of B's skin
    assert len(pair.correspondences) + len(pair.gone_from_a) == len(pair.lesions_a)
    by_b = {le.id: le for le in pair.lesions_b}
    for a_id, b_id in pair.correspondences:
        la = next(le for le in pair.lesions_a if le.id == a_id)
        x, y = (int(round(v)) for v in la.centroid)
        target = np.array(la.centroid) + pair.flow[y, x]
        assert np.hypot(*(target - np.array(by_b[b_id].centroid))) < 3.0


def test_a_lesion_painted_where_photo_a_never_looked_is_not_new() -> None:
    # a large shift leaves part of B unseen by A; lesions painted there are lesions of B
    # without a partner, but no photo could show they are new
    unseen = new = 0
    for seed in range(12):
        pair = make_known_pair(texture(seed, (240, 320)), np.random.default_rng(seed), new=3)
        seen_by_a = view_of_a_in_b(pair.flow, (240, 320))
        for lesion in pair.lesions_b:
            x, y = (int(round(v)) for v in lesion.centroid)
            assert (lesion.id in pair.new_in_b) == seen_by_a[y, x]
            unseen += not seen_by_a[y, x]
            new += seen_by_a[y, x]
    assert unseen > 0 and new > 0


def test_view_of_a_in_b_is_the_moved_frame() -> None:
    flow = np.zeros((100, 120, 2), np.float32)
    flow[..., 0] = 30.0
    seen = view_of_a_in_b(flow, (100, 120))
    assert not seen[:, :30].any() and seen[:, 30:].all()


def test_multiscale_loss_is_small_for_the_true_flow() -> None:
    gt = torch.randn(1, 2, 64, 96) * 5
    valid = torch.ones(1, 64, 96, dtype=torch.bool)
    perfect = [torch.nn.functional.avg_pool2d(gt, s) for s in (32, 16, 8)]
    wrong = [p + 3.0 for p in perfect]
    good = multiscale_loss(perfect, gt, valid, gamma=0.8, q=0.7)
    bad = multiscale_loss(wrong, gt, valid, gamma=0.8, q=0.7)
    assert float(good) < 0.1 < float(bad)


def test_scoring_the_true_flow_is_perfect_and_zero_flow_is_not() -> None:
    pair = make_known_pair(
        texture(4, (240, 320)), np.random.default_rng(5), lesions=6, gone=1, new=1
    )
    right, zero = (Tally(hits=np.zeros(len(ALPHAS), np.int64)) for _ in range(2))
    score_pair(right, pair, pair.flow)
    score_pair(zero, pair, np.zeros_like(pair.flow))
    s = right.summary()
    assert s["pck@0.01"] == 1.0 and s["lesion_matching_accuracy"] == 1.0
    assert s["new_lesion_recall"] == 1.0 and s["new_lesion_precision"] == 1.0
    assert zero.summary()["pck@0.01"] < 1.0


def test_new_calls_on_lesions_the_truth_leaves_unlabelled_count_only_in_strict_precision() -> None:
    pair = make_known_pair(
        texture(4, (240, 320)), np.random.default_rng(5), lesions=6, gone=1, new=2
    )
    assert len(pair.new_in_b) == 2
    # the truth knows the first new lesion only as a speck photo A barely showed
    speck, kept = pair.new_in_b
    faint = dataclasses.replace(pair, new_in_b=(kept,), faint_in_a=(speck,))
    unlabelled = dataclasses.replace(pair, new_in_b=(kept,))
    for case in (faint, unlabelled):
        tally = Tally(hits=np.zeros(len(ALPHAS), np.int64))
        score_pair(tally, case, case.flow)  # the true flow calls both lesions new
        s = tally.summary()
        assert s["new_lesion_recall"] == 1.0 and s["new_lesion_precision_strict"] == 0.5
        assert s["new_lesion_precision"] == (1.0 if case is faint else 0.5)


@pytest.mark.parametrize("name", list(BASELINES))
def test_baselines_recover_a_plain_shift(name: str) -> None:
    a = texture(6, (160, 224))
    b = np.roll(a, (3, 6), axis=(0, 1))  # B = A moved 6 right, 3 down
    flow = BASELINES[name](a, b)
    assert flow.shape == (160, 224, 2) and flow.dtype == np.float32
    centre = np.median(flow[40:120, 50:170].reshape(-1, 2), axis=0)
    np.testing.assert_allclose(centre, [6.0, 3.0], atol=1.0)


def test_dense_sift_flow_handles_a_large_shift() -> None:
    a = texture(7, (192, 256), grain=8)
    b = np.roll(a, (0, 40), axis=(0, 1))
    flow = dense_sift_flow(a, b)
    np.testing.assert_allclose(np.median(flow[50:150, 60:200, 0]), 40.0, atol=2.0)
    hflow = homography_flow(np.array([[1, 0, 5.0], [0, 1, -2.0], [0, 0, 1]]), (4, 4))
    np.testing.assert_allclose(hflow[2, 2], [5.0, -2.0])


def test_trainer_runs_resumes_and_writes_a_loadable_model_folder(tmp_path: Path) -> None:
    from training.synthesis import store
    from training.synthesis.detection import SynthConfig
    from training.synthesis.pairs import make_pair_sample

    pool = tmp_path / "pool"  # the recipe's source: a fixed pool of synthetic pairs
    small = {"width": 128, "height": 96, "lesion_source": "procedural", "body_pool": 0}
    store.make_dirs(pool, "pairs")
    entries = [
        store.write_pair(pool, i, make_pair_sample(i, 9, SynthConfig(**small)), ".png")
        for i in range(2)
    ]
    store.write_manifest(pool, {"kind": "pairs", "seed": 9, "n": 2, "samples": entries})
    config = json.loads(Path("training/configs/tracker.json").read_text())
    assert config["data"]["source"] == "mix" and "augment" in config["data"]
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "p.png"), texture(10, (200, 260)))
    config["data"]["mix"] = [
        {"source": "synth_folder", "folder": str(pool)},
        {
            "source": "image_folder",
            "folder": str(photos),
            "pool_size": 2,
            "width": 128,
            "height": 96,
        },
    ]
    config["data"].update(width=96, height=64, val_pairs=2, synth_config=small)
    config["train"].update(epochs=2, steps_per_epoch=1, batch_size=2, workers=0)
    config["model"]["kwargs"].update(widths=[8, 16, 16], depths=[1, 1, 1], atrous_dilations=[2, 2])
    config["model"]["kwargs"].update(feature_dim=8, estimator_width=16, correlation_radius=2)
    cfg = tmp_path / "tracker.json"
    cfg.write_text(json.dumps(config))
    from training.cli import main

    common = ["tracker", "--config", str(cfg), "--work-dir", str(tmp_path / "run")]
    common += ["--out", str(tmp_path / "model"), "--device", "cpu", "--no-detector-init"]
    assert main([*common, "--stop-after", "1"]) == 0  # as if the machine went away
    _, first = load_model_folder(tmp_path / "model")
    assert len(first["history"]) == 1
    assert main([*common, "--resume"]) == 0
    model, meta = load_model_folder(tmp_path / "model")
    assert meta["training"]["seed"] == config["seed"] and len(meta["history"]) == 2
    assert model.working_size == 96 and meta["training"]["command"]
    assert "pck_0.05" in meta["metrics"]["validation"]
    # --init-from: a new run starts from that folder's weights and records it
    warm = [*common[:3], "--work-dir", str(tmp_path / "run2"), "--out", str(tmp_path / "model2")]
    warm += ["--device", "cpu", "--epochs", "1", "--init-from", str(tmp_path / "model")]
    assert main(warm) == 0
    _, second = load_model_folder(tmp_path / "model2")
    assert second["training"]["init_from"]["sha256"] == meta["sha256"]
    assert second["training"]["init_from"]["training"]["seed"] == config["seed"]
    assert second["training"]["initialised_from"].startswith("tracker ")
    assert main([*warm[:-1], str(tmp_path / "no-such-model")]) == 2  # a clear error, no crash
