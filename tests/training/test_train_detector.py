"""`lesion-train detector` end to end on tiny toy photos: model folder, resume, loss."""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import pytest
import torch

import training.train_detector as td
from core.errors import DataError
from core.model_folder import load_model_folder
from tests.training.detector_standins import TINY_CONFIG, use_toy_data
from training.train_detector import DetectorLoss, configure, run


def _args(tmp_path: Path, config: dict, *extra: str) -> argparse.Namespace:
    """Parsed arguments; sys.argv is set as `lesion-train detector ...` would set it."""
    cfg_path = tmp_path / "detector.json"
    cfg_path.write_text(json.dumps(config))
    argv = [
        "--config", str(cfg_path),
        "--out", str(tmp_path / "model"),
        "--work-dir", str(tmp_path / "work"),
        "--device", "cpu",
        "--threads", "1",
        *extra,
    ]  # fmt: skip
    sys.argv = ["/some/bin/lesion-train", "detector", *argv]
    parser = argparse.ArgumentParser()
    configure(parser)
    return parser.parse_args(argv)


@pytest.fixture(autouse=True)
def _keep_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", list(sys.argv))


def test_loss_prefers_right_labels_and_weights_lesions() -> None:
    loss_fn = DetectorLoss([1.0, 3.0, 3.0], dice_weight=1.0)
    target = torch.zeros(1, 8, 8, dtype=torch.int64)
    target[0, 2:4, 2:4] = 2
    right = torch.full((1, 3, 8, 8), -4.0)
    right[:, 0] = 4.0
    right[0, :, 2:4, 2:4] = torch.tensor([-4.0, -4.0, 4.0])[:, None, None]
    wrong = torch.full((1, 3, 8, 8), -4.0)
    wrong[:, 0] = 4.0  # misses the lesion entirely
    assert float(loss_fn(right, target)) < 0.1 < float(loss_fn(wrong, target))
    # the Dice term is what punishes a missed lesion beyond its few pixels' CE
    ce_only = DetectorLoss([1.0, 3.0, 3.0], dice_weight=0.0)
    assert float(loss_fn(wrong, target)) > float(ce_only(wrong, target)) + 0.4


def test_train_writes_complete_model_folder_and_resume_is_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_toy_data(monkeypatch.setattr)
    config = copy.deepcopy(TINY_CONFIG)
    straight = tmp_path / "straight"
    straight.mkdir()
    assert run(_args(straight, config)) == 0
    model, meta = load_model_folder(straight / "model")  # checks the SHA-256
    assert meta["name"] == "detector" and meta["architecture"] == "lesion_fcn"
    assert meta["classes"] == ["background", "benign", "malignant"]
    assert meta["tile"] == {"size": 128, "overlap": 16}
    training = meta["training"]
    assert training["command"].startswith("lesion-train detector --config ")
    assert training["seed"] == 7
    assert training["config"]["model"] == config["model"]
    assert [h["epoch"] for h in training["history"]] == [1, 2]
    assert training["crops_seen"] == 2 * 2 * 2 * 2  # epochs x steps x photos x crops
    assert {"val_recall", "val_ap", "val_nll"} <= set(meta["metrics"]["validation"])
    assert meta["data"]["distinct_train_photos"] == 8 and meta["data"]["val_seed"] == 2
    assert "normalisation" in meta["input"]
    assert (straight / "work" / "checkpoint_last.pt").is_file()

    # the same run stopped after epoch 1 and resumed ends with the same weights
    interrupted = tmp_path / "interrupted"
    interrupted.mkdir()
    real_epoch = td.train_one_epoch
    calls = {"n": 0}

    def stop_in_second_epoch(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_epoch(*a, **k)

    monkeypatch.setattr(td, "train_one_epoch", stop_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        run(_args(interrupted, config))
    assert not (interrupted / "model").exists()
    monkeypatch.setattr(td, "train_one_epoch", real_epoch)
    assert run(_args(interrupted, config, "--resume")) == 0
    resumed, resumed_meta = load_model_folder(interrupted / "model")
    assert resumed_meta["sha256"] == meta["sha256"]
    for (name, a), b in zip(model.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_resume_refuses_other_recipe_and_missing_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.errors import DataError, ModelError

    use_toy_data(monkeypatch.setattr)
    config = copy.deepcopy(TINY_CONFIG)
    config["train"]["epochs"] = 1
    with pytest.raises(ModelError, match="no checkpoint"):
        run(_args(tmp_path, config, "--resume"))
    assert run(_args(tmp_path, config, "--steps", "1")) == 0
    with pytest.raises(ModelError, match="different config"):
        run(_args(tmp_path, config, "--resume", "--epochs", "3"))
    (tmp_path / "broken.json").write_text("{not json")
    parser = argparse.ArgumentParser()
    configure(parser)
    with pytest.raises(DataError, match="broken.json"):
        run(parser.parse_args(["--config", str(tmp_path / "broken.json")]))


def test_time_limit_stops_after_an_epoch_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_toy_data(monkeypatch.setattr)
    config = copy.deepcopy(TINY_CONFIG)
    config["train"]["epochs"] = 3
    assert run(_args(tmp_path, config, "--time-limit-min", "0")) == 0
    _, meta = load_model_folder(tmp_path / "model")
    assert meta["training"]["stopped_early"] == {"after_epoch": 1, "of": 3, "reason": "time limit"}
    assert len(meta["training"]["history"]) == 1


def test_init_from_starts_from_a_model_folder_and_records_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_toy_data(monkeypatch.setattr)
    config = copy.deepcopy(TINY_CONFIG)
    config["train"]["epochs"] = 1
    first = tmp_path / "first"
    first.mkdir()
    assert run(_args(first, config)) == 0
    _, first_meta = load_model_folder(first / "model")
    second = tmp_path / "second"
    second.mkdir()
    config["train"]["lr"] = 1e-9  # (almost) no update: the weights must come from `first`
    config["train"]["weight_decay"] = 0.0
    assert run(_args(second, config, "--init-from", str(first / "model"))) == 0
    start, meta = load_model_folder(second / "model")
    assert meta["training"]["init_from"]["sha256"] == first_meta["sha256"]
    assert meta["training"]["init_from"]["training"]["seed"] == 7
    ref, _ = load_model_folder(first / "model")
    for (name, a), b in zip(ref.state_dict().items(), start.state_dict().values(), strict=True):
        if a.dtype.is_floating_point and "running" not in name:
            assert torch.allclose(a, b, atol=1e-5), name


def test_border_bars_are_background() -> None:
    import numpy as np

    from training.detector_crops import CropRecipe, random_crops

    image = np.full((64, 64, 3), 200, np.uint8)
    class_map = np.ones((64, 64), np.uint8)  # all lesion
    recipe = CropRecipe(crop_size=32, crops_per_image=16, border_bars=1.0, scale_range=(1, 1))
    images, labels, _ = random_crops(image, class_map, np.random.default_rng(0), recipe)
    for img, lab in zip(images, labels, strict=True):
        assert 0 < (lab == 0).mean() <= 0.45
        bar = lab == 0
        assert img[~bar].mean() > img[bar].mean() or img[bar].mean() > 60  # painted band


def test_hard_negatives_are_recorded_and_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_toy_data(monkeypatch.setattr)
    mined = tmp_path / "negatives.json"
    mined.write_text(
        json.dumps({"model": {"name": "detector"}, "min_score": 0.3,
                    "negatives": {"0": [[40.0, 30.0, 0.9]], "2": [[10.0, 20.0, 0.7]]}})
    )  # fmt: skip
    config = copy.deepcopy(TINY_CONFIG)
    config["train"]["epochs"] = 1
    config["data"]["hard_negatives"] = str(mined)
    config["crops"]["hard_negative"] = 0.5
    assert run(_args(tmp_path, config)) == 0
    _, meta = load_model_folder(tmp_path / "model")
    assert meta["data"]["hard_negatives"]["regions"] == 2
    config["data"]["hard_negatives"] = str(tmp_path / "missing.json")
    with pytest.raises(DataError, match="missing.json"):
        run(_args(tmp_path, config))


def _one_epoch_toy_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict, Path, torch.nn.Module]:
    """(config, folder, network) of a toy detector trained one epoch into tmp_path/model."""
    use_toy_data(monkeypatch.setattr)
    config = copy.deepcopy(TINY_CONFIG)
    config["train"]["epochs"] = 1
    assert run(_args(tmp_path, config)) == 0
    folder = tmp_path / "model"
    source, _ = load_model_folder(folder)
    return config, folder, source


def test_init_from_a_stride_4_folder_into_a_fine_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fine branch may be added on top of a trained folder: everything else is copied,
    the new tensors are listed, and a network that differs otherwise is refused."""
    from core.errors import ModelError
    from core.models import build_model
    from training.warm_start import load_warm_start

    config, folder, source = _one_epoch_toy_folder(tmp_path, monkeypatch)
    kwargs = dict(config["model"]["kwargs"], fine_width=8)
    fine = build_model("lesion_fcn", **kwargs)
    record = load_warm_start(fine, folder, "lesion_fcn", kwargs)
    assert record["new_parameters"] and all(
        name.split(".")[0] in {"fine_stem", "up2", "fuse2", "head2"}
        for name in record["new_parameters"]
    )
    for name, tensor in source.state_dict().items():
        torch.testing.assert_close(fine.state_dict()[name], tensor, msg=name)
    wider = dict(config["model"]["kwargs"], decoder_widths=[16, 16, 16])
    with pytest.raises(ModelError, match="do not fit"):
        load_warm_start(build_model("lesion_fcn", **wider), folder, "lesion_fcn", wider)


def test_init_from_a_folder_into_a_network_with_fewer_convs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A smaller ``depths`` entry leaves a stage's last convs out: the shared tensors are
    copied, the folder's others are listed as dropped, and nothing starts fresh."""
    from core.models import build_model
    from training.warm_start import load_warm_start

    config, folder, source = _one_epoch_toy_folder(tmp_path, monkeypatch)
    depths = list(config["model"]["kwargs"]["depths"])
    assert depths[3] >= 1, "the toy network needs a conv after the stride-32 entry"
    kwargs = dict(config["model"]["kwargs"], depths=depths[:3] + [depths[3] - 1])
    slim = build_model("lesion_fcn", **kwargs)
    record = load_warm_start(slim, folder, "lesion_fcn", kwargs)
    last = f"stages.3.{depths[3]}."
    assert record["dropped_parameters"]
    assert all(name.startswith(last) for name in record["dropped_parameters"])
    assert "new_parameters" not in record
    assert record["arch_kwargs"] == config["model"]["kwargs"]
    copied = slim.state_dict()
    for name, tensor in source.state_dict().items():
        if not name.startswith(last):
            torch.testing.assert_close(copied[name], tensor, msg=name)
