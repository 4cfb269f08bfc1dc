"""Tracker training data: the pair pool, its augmentation, validation settings."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from training.tracker_data import (
    AugmentedPool,
    CachedPairs,
    PairAugment,
    augment_pair,
    tracker_dataset,
    validation_config,
)
from training.tracking_pairs import make_known_pair

NO_JITTER = {"brightness": 0.0, "contrast": 0.0, "colour": 0.0, "gamma": 0.0}


def texture(seed: int, shape=(240, 320), grain: int = 6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.random((shape[0] // grain, shape[1] // grain, 3)).astype(np.float32)
    img = cv2.resize(noise, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    return np.clip(img * 200 + 30, 0, 255).astype(np.uint8)


def warp_residual(item: dict[str, torch.Tensor]) -> tuple[float, float]:
    """Median |A - B(A + flow)| over valid pixels, and the same without the flow."""
    a = item["image_a"].permute(1, 2, 0).numpy().astype(np.float32)
    b = item["image_b"].permute(1, 2, 0).numpy().astype(np.float32)
    f = item["flow"].permute(1, 2, 0).numpy()
    v = item["valid"].numpy()
    h, w = v.shape
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    warped = cv2.remap(b, gx + f[..., 0], gy + f[..., 1], cv2.INTER_LINEAR)
    return float(np.median(np.abs(warped - a)[v])), float(np.median(np.abs(b - a)[v]))


@pytest.mark.parametrize("flip", [0.0, 1.0])
def test_augmented_flow_still_maps_a_onto_b(flip: float) -> None:
    pair = make_known_pair(texture(0), np.random.default_rng(1))
    aug = PairAugment(crop_scale=(0.6, 0.8), hflip=flip, vflip=flip, **NO_JITTER)
    for seed in range(3):
        item = augment_pair(
            pair.image_a,
            pair.image_b,
            pair.flow,
            pair.valid,
            np.random.default_rng(seed),
            (160, 128),
            aug,
        )
        assert item["image_a"].shape == (3, 128, 160) and item["flow"].shape == (2, 128, 160)
        assert item["valid"].dtype == torch.bool and item["valid"].float().mean() > 0.3
        with_flow, without = warp_residual(item)
        assert with_flow < 12 and with_flow < 0.5 * without, (with_flow, without)


def test_valid_is_cleared_where_the_target_leaves_the_window() -> None:
    h, w = 96, 128
    image = texture(2, (h, w), grain=4)
    flow = np.zeros((h, w, 2), np.float32)
    flow[..., 0] = 30.0  # everything moves 30 px right
    item = augment_pair(
        image,
        image,
        flow,
        np.ones((h, w), bool),
        np.random.default_rng(0),
        (128, 96),
        PairAugment(crop_scale=(1.0, 1.0), hflip=0, vflip=0, **NO_JITTER),
    )
    valid = item["valid"].numpy()
    assert not valid[:, -25:].any() and valid[:, :90].all()


def test_jitter_changes_colours_not_the_flow() -> None:
    pair = make_known_pair(texture(3), np.random.default_rng(4))
    plain = PairAugment(hflip=0, vflip=0, **NO_JITTER)
    jittered = PairAugment(hflip=0, vflip=0, brightness=0.3, contrast=0.3, colour=0.1, gamma=0.3)
    args = (pair.image_a, pair.image_b, pair.flow, pair.valid)
    x = augment_pair(*args, np.random.default_rng(5), (160, 128), plain)
    y = augment_pair(*args, np.random.default_rng(5), (160, 128), jittered)
    assert torch.equal(x["flow"], y["flow"]) and torch.equal(x["valid"], y["valid"])
    assert not torch.equal(x["image_a"], y["image_a"])


class _Pool(torch.utils.data.Dataset):
    def __init__(self) -> None:
        self.pairs = [make_known_pair(texture(s), np.random.default_rng(s)) for s in (6, 7)]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        p = self.pairs[i]
        return {
            "image_a": torch.from_numpy(p.image_a).permute(2, 0, 1),
            "image_b": torch.from_numpy(p.image_b).permute(2, 0, 1),
            "flow": torch.from_numpy(p.flow).permute(2, 0, 1),
            "valid": torch.from_numpy(p.valid),
        }


def test_augmented_pool_is_seeded_by_index() -> None:
    pool = AugmentedPool(_Pool(), 6, seed=3, size=(128, 96), aug=PairAugment())
    assert len(pool) == 6
    assert torch.equal(pool[4]["image_a"], pool[4]["image_a"])
    assert not torch.equal(pool[0]["image_a"], pool[2]["image_a"])  # same pair, new view
    again = AugmentedPool(_Pool(), 6, seed=3, size=(128, 96), aug=PairAugment())
    assert torch.equal(pool[5]["flow"], again[5]["flow"])


def test_synth_folder_source_with_augmentation(tmp_path) -> None:
    from training.synthesis import store
    from training.synthesis.detection import SynthConfig
    from training.synthesis.pairs import make_pair_sample

    config = SynthConfig(width=160, height=128, lesion_source="procedural", body_pool=0)
    store.make_dirs(tmp_path, "pairs")
    entries = [
        store.write_pair(tmp_path, i, make_pair_sample(i, 5, config), ".png") for i in (0, 1)
    ]
    store.write_manifest(tmp_path, {"kind": "pairs", "seed": 5, "n": 2, "samples": entries})
    data = {
        "source": "synth_folder",
        "folder": str(tmp_path),
        "width": 128,
        "height": 96,
        "augment": {"crop_scale": [0.8, 1.0]},
        "val": {"source": "synth_pairs", "synth_config": {"width": 160, "height": 128}},
    }
    train = tracker_dataset(data, length=5, seed=1)
    assert len(train) == 5
    item = train[3]
    assert item["image_a"].dtype == torch.uint8 and item["image_a"].shape == (3, 96, 128)
    assert item["flow"].dtype == torch.float32 and item["valid"].shape == (96, 128)
    plain = tracker_dataset({**data, "augment": None}, length=99, seed=1)
    assert len(plain) == 2  # the folder as it is
    val = validation_config(data)
    assert "augment" not in val and val["source"] == "synth_pairs"
    assert json.dumps(val)  # plain JSON, stored in model.json


def test_cached_pairs_make_each_item_once() -> None:
    calls: list[int] = []

    class Counting(_Pool):
        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            calls.append(i)
            return super().__getitem__(i)

    cached = CachedPairs(Counting())
    cached[0], cached[1], cached[0]
    assert calls == [0, 1] and len(cached) == 2


def test_pad_ufes_split_keeps_held_out_patients_out(shared_data) -> None:
    from training.tracker_data import WarpPairDataset, pad_ufes_split_files

    folder = shared_data / "pad-ufes20-dev" / "images"
    if not folder.is_dir():
        pytest.skip("PAD-UFES-20 dev images not present")
    files = sorted(folder.glob("*.jpg")) + sorted(folder.glob("*.png"))
    train = pad_ufes_split_files(folder, files, "train")
    holdout = pad_ufes_split_files(folder, files, "holdout")
    assert train and holdout and not set(train) & set(holdout)
    assert set(train) | set(holdout) == set(files)
    ds = WarpPairDataset(1, 0, size=(128, 96), folder=folder, split="train")
    assert set(ds.files) == set(train)


def test_mix_source_cycles_every_pool(tmp_path) -> None:
    from training.synthesis import store
    from training.synthesis.detection import SynthConfig
    from training.synthesis.pairs import make_pair_sample

    pool = tmp_path / "pool"
    store.make_dirs(pool, "pairs")
    config = SynthConfig(width=160, height=128, lesion_source="procedural", body_pool=0)
    entries = [store.write_pair(pool, 0, make_pair_sample(0, 5, config), ".png")]
    store.write_manifest(pool, {"kind": "pairs", "seed": 5, "n": 1, "samples": entries})
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "p.png"), texture(8, (200, 260)))
    data = {
        "source": "mix",
        "mix": [
            {"source": "synth_folder", "folder": str(pool)},
            {
                "source": "image_folder",
                "folder": str(photos),
                "pool_size": 2,
                "width": 160,
                "height": 128,
            },
        ],
        "width": 128,
        "height": 96,
        "augment": {},
    }
    ds = tracker_dataset(data, length=6, seed=2)
    assert isinstance(ds, AugmentedPool) and len(ds.pool) == 3 and len(ds) == 6
    for i in range(3):  # one item of each pool member, all at the training size
        assert ds[i]["image_a"].shape == (3, 96, 128) and ds[i]["flow"].shape == (2, 96, 128)
