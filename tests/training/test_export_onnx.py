"""``lesion-train export-onnx``: writes model.onnx and model.json's "onnx" entry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.core.detector_fixtures import make_model_folder
from training.cli import main

pytest.importorskip("onnxruntime")


def test_export_onnx_command_writes_the_file_and_entry(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "det"
    make_model_folder(folder, seed=2, meta={"metrics": {"auc": 0.5}})
    assert main(["export-onnx", str(folder)]) == 0
    meta = json.loads((folder / "model.json").read_text())
    assert meta["metrics"] == {"auc": 0.5}  # the rest of model.json is kept
    assert meta["onnx"]["kind"] == "detector" and (folder / "model.onnx").is_file()
    out = capsys.readouterr().out
    assert "model.onnx (detector, opset 17" in out and "max |onnx - torch|" in out


def test_export_onnx_command_names_a_bad_folder(tmp_path: Path, capsys) -> None:
    assert main(["export-onnx", str(tmp_path / "missing")]) == 2
    assert "model folder not found" in capsys.readouterr().err
