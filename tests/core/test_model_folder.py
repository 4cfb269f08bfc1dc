"""Model folders: round trip, and every way loading can fail names the folder and reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from core.errors import ModelError
from core.model_folder import file_sha256, load_model_folder
from tests.core.detector_fixtures import TINY_KWARGS, make_model_folder


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    make_model_folder(tmp_path / "det", seed=1)
    return tmp_path / "det"


def test_round_trip_restores_weights_and_metadata(folder: Path) -> None:
    meta = json.loads((folder / "model.json").read_text())
    assert meta["sha256"] == file_sha256(folder / "weights.safetensors")
    assert meta["architecture"] == "lesion_fcn" and meta["arch_kwargs"] == TINY_KWARGS
    assert meta["classes"] == ["background", "benign", "malignant"]
    assert meta["input"]["normalisation"]["mean"][0] == pytest.approx(0.485)
    model, loaded = load_model_folder(folder, "cpu")
    assert loaded["name"] == "test-detector" and not model.training
    again, _ = load_model_folder(folder, "cpu")
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), again(x))


def _edit_meta(folder: Path, **changes: object) -> None:
    meta = json.loads((folder / "model.json").read_text())
    meta.update(changes)
    (folder / "model.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda f: (f / "weights.safetensors").unlink(), "weights file"),
        (lambda f: (f / "model.json").unlink(), "model.json missing"),
        (lambda f: (f / "model.json").write_text("{not json"), "not valid JSON"),
        (lambda f: _edit_meta(f, sha256="0" * 64), "SHA-256"),
        (lambda f: _edit_meta(f, architecture="nope"), "unknown architecture"),
        (lambda f: _edit_meta(f, arch_kwargs={"bogus": 1}), "arguments rejected"),
        (lambda f: _drop_key(f, "name"), "lacks name"),
    ],
)
def test_bad_folders_raise_model_error(folder: Path, damage, reason: str) -> None:
    damage(folder)
    with pytest.raises(ModelError, match=reason) as info:
        load_model_folder(folder, "cpu")
    assert str(folder) in str(info.value)


def _drop_key(folder: Path, key: str) -> None:
    meta = json.loads((folder / "model.json").read_text())
    del meta[key]
    (folder / "model.json").write_text(json.dumps(meta))


def test_flipped_byte_in_weights_is_a_hash_mismatch(folder: Path) -> None:
    weights = folder / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="SHA-256"):
        load_model_folder(folder, "cpu")


def test_shape_mismatch_is_reported(folder: Path) -> None:
    wider = dict(TINY_KWARGS, decoder_widths=[16, 16, 32])
    _edit_meta(folder, arch_kwargs=wider)
    with pytest.raises(ModelError, match="shape mismatch"):
        load_model_folder(folder, "cpu")


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        load_model_folder(tmp_path / "absent", "cpu")
