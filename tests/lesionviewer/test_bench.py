"""`lesionviewer bench` dispatcher: sections, table, JSON (no timing asserted here)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from lesionviewer.bench import BenchOptions, Measurement
from lesionviewer.bench.detection import demo_body_photo, synthetic_photo
from lesionviewer.cli import main


def test_sections_run_and_write_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[BenchOptions] = []

    def measure(options: BenchOptions) -> list:
        seen.append(options)
        return [
            Measurement("gui", "frame time", 0.012, "s", "<= 0.016", True),
            {"section": "gui", "name": "startup", "value": 1.5, "unit": "s"},
        ]

    fake = types.ModuleType("lesionviewer.bench.gui")
    fake.measure = measure  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "lesionviewer.bench.gui", fake)
    out = tmp_path / "bench.json"
    assert main(["bench", "--only", "gui", "--repeats", "2", "--json", str(out)]) == 0
    assert seen == [BenchOptions(repeats=2, device="auto", model=None, quick=False)]
    doc = json.loads(out.read_text())
    assert doc["schema"] == 1 and "torch" in doc["machine"]
    assert [r["name"] for r in doc["results"]] == ["frame time", "startup"]
    assert "frame time" in capsys.readouterr().out


def test_unknown_section_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--only", "nonsense"]) == 2
    assert "nonsense" in capsys.readouterr().err


def test_synthetic_photo_is_deterministic() -> None:
    a, b = synthetic_photo(320, 200, seed=7), synthetic_photo(320, 200, seed=7)
    assert a.shape == (200, 320, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert a.std() > 3  # not a flat image


def test_demo_body_photo_puts_the_four_demo_photos_in_panels() -> None:
    from core.io import load_photo
    from core.resources import resource_path

    photo = demo_body_photo(2048, 1536)
    assert photo.shape == (1536, 2048, 3) and photo.dtype == np.uint8
    # the bottom-right panel is the second visit's leg photo at its own 1024x768 size
    leg = load_photo(resource_path("demo", "visit2_left_leg.jpg"))
    assert leg.shape == (768, 1024, 3)
    diff = np.abs(photo[768:, 1024:].astype(np.int16) - leg.astype(np.int16))
    assert float(diff.mean()) < 1.0
    # odd sizes leave at most one row / column black at the bottom / right
    odd = demo_body_photo(401, 301)
    assert odd.shape == (301, 401, 3) and odd[:300, :400].std() > 3
