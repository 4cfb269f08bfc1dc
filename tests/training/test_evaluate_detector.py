"""evaluate-detector: close-up lesion choice, synthetic scoring, model.json update, a full run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from core.errors import DataError
from core.model_folder import load_model_folder, save_model_folder
from core.models.registry import build_model
from core.types import Detection, ModelInfo
from tests.core.detector_fixtures import disk_lesion
from tests.training.detector_standins import TINY_CONFIG, ToyDetectionDataset, toy_photo
from training import evaluate_detector as ev

INFO = ModelInfo("test", "0", "0" * 64)


def _oracle(dataset: ToyDetectionDataset):
    """A perfect detector for the toy photos: lesions straight from the instance maps."""

    def detect(image: np.ndarray) -> Detection:
        for i in range(len(dataset)):
            img, class_map, inst = ev_photo = toy_photo(i, dataset.seed)
            if np.array_equal(img, image):
                break
        del ev_photo
        lesions = []
        for k in range(1, int(inst.max()) + 1):
            ys, xs = np.nonzero(inst == k)
            label = int(class_map[ys[0], xs[0]])
            r = int(round(np.sqrt(len(xs) / np.pi)))
            lesions.append(
                disk_lesion(k, int(xs.mean()), int(ys.mean()), r, p_mal=0.9 if label == 2 else 0.1)
            )
        heat = np.zeros(image.shape, np.float32)
        heat[..., 0] = 1
        return Detection(heat, tuple(lesions), INFO)

    return detect


def test_evaluate_synthetic_scores_and_times_each_detector() -> None:
    dataset = ToyDetectionDataset(4, 11)
    nothing = lambda image: Detection(np.zeros(image.shape, np.float32), (), INFO)  # noqa: E731
    out, metrics = ev.evaluate_synthetic(
        {"detector": _oracle(dataset), "baseline": nothing},
        dataset,
        4,
        {"baseline": 2},
        progress=lambda s: None,
    )
    assert out["detector"]["recall"] == 1.0 and out["detector"]["fp_per_image"] == 0.0
    assert out["detector"]["auc_malignant"] in (1.0, None)  # None: one class only
    assert out["baseline"]["recall"] == 0.0 and out["baseline"]["n_images"] == 2
    # a perfect detector on every resample of photos: an interval of one value
    assert out["detector"]["ci95"]["recall_at_max_fp"] == [1.0, 1.0]
    assert out["baseline"]["ci95"]["ap"] == [0.0, 0.0]
    # every true lesion of the toy photos is in one contrast band (their skin is around them)
    for name in ("detector", "baseline"):
        bands = out[name]["recall_by_contrast"]
        assert sum(b["n"] for b in bands) == out[name]["n_true"]
    assert all(b["recall"] == 1.0 for b in out["detector"]["recall_by_contrast"] if b["n"])
    assert out["timing"]["photos"] == 2
    assert set(out["timing"]["median_s_per_photo"]) == {"detector", "baseline"}


def _tiny_model_folder(folder: Path) -> str:
    cfg = TINY_CONFIG["model"]
    model = build_model(cfg["arch"], **cfg["kwargs"])
    meta = {
        "name": "detector",
        "version": "test",
        "tile": {"size": 128, "overlap": 16},
        "training": {
            "config": {
                "data": {
                    "train_seed": 1,
                    "val_seed": 2,
                    "synth_config": {"width": 128, "height": 96},  # toy_photo's size
                }
            }
        },
        "metrics": {"validation": {"val_recall": 0.5}},
    }
    return save_model_folder(folder, model, arch=cfg["arch"], arch_kwargs=cfg["kwargs"], meta=meta)


def test_update_model_json_keeps_validation_and_hash(tmp_path: Path) -> None:
    sha = _tiny_model_folder(tmp_path / "m")
    assert ev.update_model_json(tmp_path / "m", {"evaluation": {"x": 1}}) == sha
    _, meta = load_model_folder(tmp_path / "m")
    assert meta["metrics"] == {"validation": {"val_recall": 0.5}, "evaluation": {"x": 1}}
    assert "closeup_side_px" not in (meta.get("inference") or {})
    # the close-up side chosen on the training patients becomes the detector's setting
    assert ev.update_model_json(tmp_path / "m", {"evaluation": {}}, closeup_side_px=160) == sha
    _, meta = load_model_folder(tmp_path / "m")
    assert meta["inference"]["closeup_side_px"] == 160
    # another evaluation of the same weights stays; one of other weights goes
    same = {"model": {"sha256": sha}, "x": 2}
    other = {"model": {"sha256": "f" * 64}, "x": 3}
    ev.update_model_json(tmp_path / "m", {"evaluation_a": same, "evaluation_b": other})
    assert ev.update_model_json(tmp_path / "m", {"evaluation": {"x": 4}}) == sha
    _, meta = load_model_folder(tmp_path / "m")
    assert set(meta["metrics"]) == {"validation", "evaluation", "evaluation_a"}
    assert meta["metrics"]["evaluation"] == {"x": 4}


def _fake_real_data(root: Path) -> None:
    """10 patients of close-ups (PAD-UFES-20 layout) and one TBP tile."""
    pad = root / "pad-ufes20-dev"
    (pad / "images").mkdir(parents=True)
    lines = ["file,img_id,patient_id,diagnostic,malignant"]
    for p in range(10):
        image, _, _ = toy_photo(p, 5, size=(80, 80))
        cv2.imwrite(str(pad / "images" / f"P{p}.png"), image[:, :, ::-1])
        mal = p % 2
        lines.append(f"images/P{p}.png,P{p}.png,{100 + p},{'MEL' if mal else 'NEV'},{mal}")
    (pad / "labels.csv").write_text("\n".join(lines) + "\n")
    (root / "itobos-tbp-dev" / "images").mkdir(parents=True)
    tile, _, _ = toy_photo(0, 6)
    cv2.imwrite(str(root / "itobos-tbp-dev" / "images" / "tile.png"), tile[:, :, ::-1])


def test_run_end_to_end_on_toy_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import training.synthesis.datasets as datasets

    monkeypatch.setattr(datasets, "DetectionDataset", ToyDetectionDataset)
    monkeypatch.setattr(ev, "real_lesions_present", lambda: True)  # as with ../shared/data
    _tiny_model_folder(tmp_path / "m")
    _fake_real_data(tmp_path / "data")
    parser = argparse.ArgumentParser()
    ev.configure(parser)
    common = ["--model", str(tmp_path / "m"), "--n", "3", "--device", "cpu"]
    common += ["--data", str(tmp_path / "data"), "--closeup-side", "96", "--threads", "1"]
    common += ["--unseen-lesions", "2"]
    with pytest.raises(Exception, match="seed 2 was used in training"):
        ev.run(parser.parse_args([*common, "--seed", "2"]))
    args = parser.parse_args([*common, "--out", str(tmp_path / "ev"), "--update-model-json"])
    assert ev.run(args) == 0
    result = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert result["synthetic"]["photos"] == 3 and result["synthetic"]["detector"]["n_images"] == 3
    assert result["synthetic"]["lesion_sources"] == "PAD-UFES-20 training patients and procedural"
    unseen = result["synthetic"]["unseen_lesions"]  # photos with the held-out patients' lesions
    assert unseen["photos"] == 2 and unseen["n_images"] == 2 and "auc_malignant" in unseen
    assert unseen["lesion_sources"] == "PAD-UFES-20 held-out patients and procedural"
    assert result["real_closeups"]["n"] == 4  # 30 % of 5 malignant + 30 % of 5 benign, rounded
    assert "tile.png" in result["tbp_tiles"]["photos"]
    assert (tmp_path / "ev" / "overlays" / "overlay_tile.png").is_file()
    assert cv2.imread(str(tmp_path / "ev" / "roc.png")) is not None
    _, meta = load_model_folder(tmp_path / "m")  # hash still verified
    assert meta["metrics"]["evaluation"]["synthetic"]["seed"] == 9999
    assert meta["inference"]["closeup_side_px"] == 96  # what detect(closeup=True) will use
    # photos of another size: the synthetic figures alone, recorded beside the others
    large = ["--width", "160", "--height", "120", "--seed", "31"]
    args = parser.parse_args(
        [*common, *large, "--out", str(tmp_path / "ev3"), "--update-model-json"]
    )
    assert ev.run(args) == 0
    result = json.loads((tmp_path / "ev3" / "metrics.json").read_text())
    assert result["synthetic"]["size"] == [160, 120] and result["synthetic"]["seed"] == 31
    assert "real_closeups" not in result and "tbp_tiles" not in result
    _, meta = load_model_folder(tmp_path / "m")
    assert meta["metrics"]["evaluation_160x120"]["synthetic"]["size"] == [160, 120]
    assert meta["metrics"]["evaluation"]["synthetic"]["size"] == [128, 96]  # kept
    assert meta["inference"]["closeup_side_px"] == 96
    # auto: the side is chosen on the 6 training patients, then the 4 held out are scored
    args = parser.parse_args([*common, "--out", str(tmp_path / "ev2"), "--closeup-side", "auto"])
    assert ev.run(args) == 0
    closeups = json.loads((tmp_path / "ev2" / "metrics.json").read_text())["real_closeups"]
    chosen = closeups["detector"]
    assert chosen["closeup_side_px"] in ev.CLOSEUP_SIDES
    assert set(chosen["train_patients_auc_by_side"]) == {str(s) for s in ev.CLOSEUP_SIDES}


def test_without_the_real_lesions_it_says_so_and_leaves_model_json_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same seed makes other photos when ../shared/data is absent (procedural lesions
    only): their figures are labelled, and never written into model.json."""
    import training.synthesis.datasets as datasets

    monkeypatch.setattr(datasets, "DetectionDataset", ToyDetectionDataset)
    monkeypatch.setattr(ev, "real_lesions_present", lambda: False)
    _tiny_model_folder(tmp_path / "m")
    before = (tmp_path / "m" / "model.json").read_text()
    parser = argparse.ArgumentParser()
    ev.configure(parser)
    common = ["--model", str(tmp_path / "m"), "--n", "2", "--device", "cpu", "--threads", "1"]
    common += ["--data", str(tmp_path / "none")]
    with pytest.raises(DataError, match="model.json's figures need the real lesions"):
        ev.run(parser.parse_args([*common, "--out", str(tmp_path / "a"), "--update-model-json"]))
    assert (tmp_path / "m" / "model.json").read_text() == before
    assert ev.run(parser.parse_args([*common, "--out", str(tmp_path / "b")])) == 0
    assert "procedural lesions only" in capsys.readouterr().err
    result = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert result["synthetic"]["lesion_sources"] == "procedural only"
    assert "unseen_lesions" not in result["synthetic"]  # no held-out patients' lesions either


def test_closeup_side_is_chosen_on_training_patients_only(tmp_path: Path) -> None:
    _fake_real_data(tmp_path)
    pad = tmp_path / "pad-ufes20-dev"
    train, holdout = ev.pad_ufes_rows(pad, "train"), ev.pad_ufes_rows(pad, "holdout")
    assert len(train) == 6 and len(holdout) == 4
    assert not {r["patient_id"] for r in train} & {r["patient_id"] for r in holdout}
    seen: list[int] = []

    def detect(image: np.ndarray) -> Detection:
        """Records the size it was shown; finds nothing (no signal at any side)."""
        seen.append(max(image.shape[:2]))
        heatmap = np.zeros((*image.shape[:2], 3), np.float32)
        heatmap[..., 0] = 1.0
        return Detection(heatmap=heatmap, lesions=(), model=None)

    side, aucs = ev.choose_closeup_side(detect, pad, sides=(96, 128))
    assert seen == [96] * 6 + [128] * 6 and set(aucs) == {"96", "128"}
    assert side == 96  # a tie (no signal at either side) goes to the smaller side


class _WithPixelSize(ToyDetectionDataset):
    """Toy photos whose pixels are ``mm_per_px`` mm on the skin."""

    mm_per_px = 0.2

    def __getitem__(self, index: int) -> dict:
        return {**super().__getitem__(index), "mm_per_px": torch.tensor(self.mm_per_px)}


def test_lesions_under_2mm_are_dont_care_in_the_clinical_figures() -> None:
    dataset = _WithPixelSize(4, 11)
    oracle = _oracle(dataset)
    diameters = []
    for i in range(len(dataset)):
        inst = np.asarray(dataset[i]["instance_map"])
        diameters += [2 * np.sqrt((inst == k).sum() / np.pi) for k in np.unique(inst) if k]
    cut_px = ev.CLINICAL_MIN_DIAMETER_MM / dataset.mm_per_px
    assert min(diameters) < cut_px < max(diameters)  # the toy photos have both kinds

    def large_only(image: np.ndarray) -> Detection:
        found = oracle(image)
        kept = tuple(le for le in found.lesions if 2 * np.sqrt(le.area_px / np.pi) >= cut_px)
        return Detection(found.heatmap, kept, INFO)

    out, _ = ev.evaluate_synthetic({"detector": large_only}, dataset, 4, {}, progress=print)
    assert out["detector"]["recall"] < 1.0
    assert out["detector"]["lesions_from_2mm"]["recall"] == 1.0
    assert out["detector"]["lesions_from_2mm"]["n_true"] < out["detector"]["n_true"]


class _ToyWithSkinTypes(ToyDetectionDataset):
    """Toy photos on bodies of Fitzpatrick types 1, 2, ..., 6, 1, ... and one unknown (0)."""

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = super().__getitem__(index)
        item["skin_type"] = torch.tensor(0 if index == self.length - 1 else index % 6 + 1)
        return item


def test_figures_by_skin_type_at_the_operating_point_of_all_photos() -> None:
    dataset = _ToyWithSkinTypes(7, 11)
    blind_on_dark = _oracle(dataset)
    dark = {i for i in range(7) if i % 6 + 1 in (5, 6) and i != 6}

    def detect(image: np.ndarray) -> Detection:
        index = next(i for i in range(7) if np.array_equal(toy_photo(i, 11)[0], image))
        found = blind_on_dark(image)
        return Detection(found.heatmap, () if index in dark else found.lesions, INFO)

    out, _ = ev.evaluate_synthetic({"detector": detect}, dataset, 7, {}, progress=lambda s: None)
    groups = out["detector"]["by_skin_type"]
    assert set(groups) == {"I-II", "III-IV", "V-VI"}
    # six photos have a known type; the seventh (unknown) is in no group
    assert [groups[g]["n_images"] for g in ("I-II", "III-IV", "V-VI")] == [2, 2, 2]
    assert groups["I-II"]["recall_at_operating_point"] == 1.0
    assert groups["III-IV"]["recall_at_operating_point"] == 1.0
    assert groups["V-VI"]["recall_at_operating_point"] == 0.0
    assert groups["V-VI"]["fp_per_image_at_operating_point"] == 0.0
    # the toy lesions stand out from their skin: all visible, found or missed alike
    assert all(groups[g]["share_visible"] == 1.0 for g in groups)
    assert groups["I-II"]["recall_visible_at_operating_point"] == 1.0
    assert groups["V-VI"]["recall_visible_at_operating_point"] == 0.0


class _ToyWithOrigins(ToyDetectionDataset):
    """Toy photos whose odd-numbered lesions are "photo" lesions, the others "procedural"
    (what a DetectionDataset's ``sample(i).lesions`` records say)."""

    def sample(self, index: int) -> SimpleNamespace:
        instances = np.asarray(self[index]["instance_map"])
        ids = [int(k) for k in np.unique(instances) if k]
        return SimpleNamespace(
            lesions=[
                SimpleNamespace(
                    id=k,
                    origin="photo" if k % 2 else "procedural",
                    source=f"images/{k % 3}.jpg" if k % 2 else f"procedural:{k}",
                )
                for k in ids
            ]
        )


def test_figures_by_lesion_origin() -> None:
    dataset = _ToyWithOrigins(4, 11)
    oracle = _oracle(dataset)

    def photos_only(image: np.ndarray) -> Detection:
        found = oracle(image)
        return Detection(found.heatmap, tuple(le for le in found.lesions if le.id % 2), INFO)

    out, _ = ev.evaluate_synthetic(
        {"detector": photos_only}, dataset, 4, {}, progress=lambda s: None
    )
    groups = out["detector"]["by_lesion_origin"]
    assert set(groups) == {"photo", "procedural", "blended"}  # no body moles in these
    assert groups["photo"]["recall"] == 1.0 and groups["procedural"]["recall"] == 0.0
    assert groups["photo"]["n"] + groups["procedural"]["n"] == out["detector"]["n_true"]
    assert groups["blended"]["n"] == out["detector"]["n_true"]
    assert groups["blended"]["recall"] == out["detector"]["recall_at_max_fp"]
    # the photo lesions' AUC interval resamples their lesion photos, not the toy photos
    photo_ids = {int(k) for i in range(4) for k in np.unique(dataset[i]["instance_map"]) if k % 2}
    assert groups["photo"]["n_clusters"] == len({k % 3 for k in photo_ids})
    # a dataset that cannot say where its lesions came from: no such figures
    plain, _ = ev.evaluate_synthetic(
        {"detector": oracle}, ToyDetectionDataset(4, 11), 4, {}, progress=lambda s: None
    )
    assert "by_lesion_origin" not in plain["detector"]
