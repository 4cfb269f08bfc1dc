"""The shipped detector (resources/models/detector) on a stored synthetic photo.

``tests/data/detector/synthetic_31337_3.png`` is a 384x288 synthetic photo made with a
seed no training used; ``.truth.json`` holds its true lesions and ``.expected.json`` the
lesions the shipped model found when it was released (with that model's SHA-256). The
test checks that the model still gives them, and that they agree with the truth.

After shipping a new model, regenerate the expected lesions (then look at them)::

    python -m tests.training.test_train_detector_shipped
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "detector"
PHOTO = DATA / "synthetic_31337_3.png"
TRUTH = DATA / "synthetic_31337_3.truth.json"
EXPECTED = DATA / "synthetic_31337_3.expected.json"
CENTROID_TOLERANCE_PX = 3.0


def _detect() -> tuple[list[dict], dict]:
    from core.analyzer import Analyzer
    from core.io import load_photo

    analyzer = Analyzer.load("cpu")
    detection = analyzer.detect(load_photo(PHOTO))
    return [lesion.to_json() for lesion in detection.lesions], analyzer.detector_info.to_json()


def test_shipped_detector_matches_stored_lesions() -> None:
    from core.resources import models_dir

    if not (models_dir() / "detector" / "model.json").is_file():
        pytest.fail("no shipped detector in resources/models/detector")
    expected = json.loads(EXPECTED.read_text())
    lesions, model = _detect()
    assert model["sha256"] == expected["model"]["sha256"], (
        "the shipped detector changed: regenerate " + EXPECTED.name + " (see module docstring)"
    )
    assert len(lesions) == len(expected["lesions"])
    for want in expected["lesions"]:
        got = min(
            lesions,
            key=lambda g: np.hypot(
                g["centroid"][0] - want["centroid"][0], g["centroid"][1] - want["centroid"][1]
            ),
        )
        dist = np.hypot(
            got["centroid"][0] - want["centroid"][0], got["centroid"][1] - want["centroid"][1]
        )
        assert dist <= CENTROID_TOLERANCE_PX, (want, got)
        assert (got["p_malignant"] >= 0.5) == (want["p_malignant"] >= 0.5), (want, got)
        assert got["area_px"] == pytest.approx(want["area_px"], rel=0.1, abs=4)


def test_stored_lesions_agree_with_the_truth() -> None:
    """The released model found the clear lesions of this photo and called their class."""
    truth = [
        t for t in json.loads(TRUTH.read_text())["lesions"] if t["bbox"][2] - t["bbox"][0] >= 10
    ]
    found = json.loads(EXPECTED.read_text())["lesions"]
    hits = 0
    for t in truth:
        x0, y0, x1, y1 = t["bbox"]
        inside = [
            f
            for f in found
            if x0 - 2 <= f["centroid"][0] <= x1 + 2 and y0 - 2 <= f["centroid"][1] <= y1 + 2
        ]
        if inside:
            hits += 1
    assert hits >= len(truth) - 1, (hits, len(truth))
    assert len(found) <= len(truth) + 2  # few false positives


def regenerate() -> None:
    lesions, model = _detect()
    EXPECTED.write_text(json.dumps({"model": model, "lesions": lesions}, indent=1) + "\n")
    print(f"wrote {EXPECTED} ({len(lesions)} lesions, model {model['sha256'][:12]}...)")


def test_shipped_detector_finds_small_and_large_moles_on_a_small_photo() -> None:
    """The demo leg photo (1024x768) is analysed enlarged and as it is: the large mole at the
    top of the right leg (about 40 px across) and the small ones are all found."""
    from core.analyzer import Analyzer
    from core.io import load_photo
    from core.resources import resource_path

    lesions = (
        Analyzer.load("cpu")
        .detect(load_photo(resource_path("demo", "visit1_left_leg.jpg")))
        .lesions
    )
    large = [le for le in lesions if np.hypot(le.centroid[0] - 675, le.centroid[1] - 62) < 6]
    assert len(large) == 1 and large[0].area_px > 1000
    assert sum(le.area_px < 300 for le in lesions) >= 4


if __name__ == "__main__":
    regenerate()
