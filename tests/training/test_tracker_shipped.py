"""The shipped tracker (resources/models/tracker) on a stored small synthetic pair.

``tests/data/tracker/`` holds a 320x240 pair made by ``make_pair_sample(7, 990001, ...)``
(procedural lesions, a seed no training used): ``pair_a.png``, ``pair_b.png``, the true
lesion instance maps ``instances_a.png`` / ``instances_b.png`` (uint8, 0 none, k = lesion
id) and ``truth.json`` (true flow at probe points, correspondences, new and gone lesions).
``expected.json`` holds what the shipped model gave when it was released (with its SHA-256):
flow at the probe points, the lesion matches, new and gone lesions. The test checks that the
model still gives them, and that they agree with the truth.

After shipping a new model, regenerate the expected output (then look at it)::

    python -m tests.training.test_tracker_shipped
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "tracker"
PAIR_INDEX, PAIR_SEED = 7, 990001
FLOW_TOLERANCE_PX = 0.5
#: Largest median error of the stored flow against the truth: 0.05 of the pair's diagonal
#: (400 px), the PCK@0.05 criterion. The released CPU-trained model is coarse (about 12 px).
TRUTH_MEDIAN_ERROR_PX = 20.0


def make_stored_pair() -> None:
    """Write the pair, its instance maps and truth.json (deterministic)."""
    from training.synthesis.detection import SynthConfig
    from training.synthesis.pairs import make_pair_sample

    config = SynthConfig(
        width=320, height=240, lesion_source="procedural", lesions_per_image=(4, 7)
    )
    s = make_pair_sample(PAIR_INDEX, PAIR_SEED, config)
    DATA.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(DATA / "pair_a.png"), s.image_a[..., ::-1])
    cv2.imwrite(str(DATA / "pair_b.png"), s.image_b[..., ::-1])
    cv2.imwrite(str(DATA / "instances_a.png"), s.instance_map_a.astype(np.uint8))
    cv2.imwrite(str(DATA / "instances_b.png"), s.instance_map_b.astype(np.uint8))
    ys, xs = np.mgrid[20:240:40, 20:320:50]
    probes = [
        [int(x), int(y)] for x, y in zip(xs.ravel(), ys.ravel(), strict=True) if s.valid[y, x]
    ]
    truth = {
        "pair": {"index": PAIR_INDEX, "seed": PAIR_SEED, "config": "320x240 procedural 4-7"},
        "points": probes,
        "flow_at_points": [[round(float(v), 3) for v in s.flow[y, x]] for x, y in probes],
        "correspondences": [list(c) for c in s.correspondences],
        "new_in_b": list(s.new_in_b),
        "gone_from_a": list(s.gone_from_a),
        "only_in_a": list(s.only_in_a),
    }
    (DATA / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")


def _lesions(instances: np.ndarray) -> tuple:
    from core.types import Lesion

    out = []
    for k in np.unique(instances):
        if k == 0:
            continue
        mask = (instances == k).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        contour = max(contours, key=cv2.contourArea).reshape(-1, 2).astype(np.int32)
        ys, xs = np.nonzero(mask)
        x, y, w, h = cv2.boundingRect(contour)
        centroid = (float(xs.mean()), float(ys.mean()))
        out.append(
            Lesion(int(k), centroid, (x, y, x + w, y + h), contour, float(len(xs)), 1.0, 0.0)
        )
    return tuple(out)


def _track() -> dict:
    """The shipped model's output on the stored pair, as stored in expected.json."""
    from core.io import load_photo
    from core.matching import match_lesions
    from core.model_folder import load_model_folder
    from core.resources import models_dir
    from core.tracking import estimate_flow, map_points

    folder = models_dir() / "tracker"
    if not (folder / "model.json").is_file():
        pytest.fail("no shipped tracker in resources/models/tracker")
    model, meta = load_model_folder(folder, "cpu")
    image_a, image_b = load_photo(DATA / "pair_a.png"), load_photo(DATA / "pair_b.png")
    points = np.asarray(json.loads((DATA / "truth.json").read_text())["points"], np.float64)
    flow = estimate_flow(model, image_a, image_b, device="cpu")
    mapped = map_points(flow, points)
    lesions_a = _lesions(cv2.imread(str(DATA / "instances_a.png"), cv2.IMREAD_UNCHANGED))
    lesions_b = _lesions(cv2.imread(str(DATA / "instances_b.png"), cv2.IMREAD_UNCHANGED))
    matches, new_in_b, gone = match_lesions(lesions_a, lesions_b, flow, image_a, image_b)
    return {
        "model": {k: meta.get(k) for k in ("name", "version", "sha256")},
        "flow_at_points": [
            [round(float(v), 3) for v in q - p] for p, q in zip(points, mapped, strict=True)
        ],
        "matches": sorted([int(m.a), int(m.b)] for m in matches),
        "new_in_b": sorted(int(i) for i in new_in_b),
        "gone_from_a": sorted(int(i) for i in gone),
    }


@pytest.fixture(scope="module")
def tracked() -> dict:
    return _track()


def test_shipped_tracker_gives_the_stored_output(tracked: dict) -> None:
    expected = json.loads((DATA / "expected.json").read_text())
    assert tracked["model"]["sha256"] == expected["model"]["sha256"], (
        "the shipped tracker changed: regenerate expected.json (see module docstring)"
    )
    np.testing.assert_allclose(
        tracked["flow_at_points"], expected["flow_at_points"], atol=FLOW_TOLERANCE_PX
    )
    assert tracked["matches"] == expected["matches"]
    assert tracked["new_in_b"] == expected["new_in_b"]
    assert tracked["gone_from_a"] == expected["gone_from_a"]


def test_stored_output_agrees_with_the_truth() -> None:
    """The released model's flow is close to the true one; its matching is right."""
    expected = json.loads((DATA / "expected.json").read_text())
    truth = json.loads((DATA / "truth.json").read_text())
    err = np.linalg.norm(
        np.asarray(expected["flow_at_points"]) - np.asarray(truth["flow_at_points"]), axis=1
    )
    assert np.median(err) <= TRUTH_MEDIAN_ERROR_PX, err
    zero_flow_err = np.linalg.norm(np.asarray(truth["flow_at_points"]), axis=1)
    assert np.median(err) < 0.6 * np.median(zero_flow_err), (err, zero_flow_err)
    assert expected["matches"] == sorted(truth["correspondences"])
    assert expected["new_in_b"] == sorted(truth["new_in_b"])
    assert expected["gone_from_a"] == sorted(truth["gone_from_a"] + truth["only_in_a"])


def regenerate() -> None:
    out = _track()
    (DATA / "expected.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {DATA / 'expected.json'} (model {out['model']['sha256'][:12]}...)")


if __name__ == "__main__":
    regenerate()
