"""`lesionviewer track A B --json OUT [--points PTS.json] [--overlay OUT.png] [--device D]`.

Detects lesions on both photos, estimates the flow A -> B and matches the lesions. The JSON::

    {"schema": 1, "model": {"detector": {...}, "tracker": {...}},
     "images": {"a": {"width", "height"}, "b": {...}},
     "points": [[x, y], ...]        (positions in B of PTS.json's points of A, same order),
     "lesions_a": [...], "lesions_b": [...]   (as in ``analyze``),
     "matches": [{"a", "b", "confidence", "area_ratio", "delta_e", "p_malignant_change",
                  "changed"}],
     "new_in_b": [ids], "gone_from_a": [ids], "outside_view_of_a": [B ids],
     "outside_view_of_b": [A ids], "change_rule": "..."}

PTS.json is ``[[x, y], ...]`` in A's pixels. Bad input prints one line naming the file and
the reason; the exit code is 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from core.errors import DataError, LesionViewerError
from core.io import load_photo, save_rgb
from core.types import Tracking
from lesionviewer.commands.analyze import _write_json

SCHEMA = 1


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image_a", metavar="A", help="photo of the earlier visit")
    parser.add_argument("image_b", metavar="B", help="photo of the later visit")
    parser.add_argument("--json", required=True, metavar="OUT", help="result JSON file")
    parser.add_argument("--points", metavar="PTS.json", help="[[x, y], ...] in A to map into B")
    parser.add_argument("--overlay", metavar="OUT.png", help="A and B side by side with matches")
    parser.add_argument(
        "--device",
        dest="track_device",
        choices=("auto", "cpu", "cuda"),
        default=None,
        help="compute device (default: auto, CUDA when available)",
    )
    parser.add_argument("--detector", metavar="DIR", help="detector model folder")
    parser.add_argument("--tracker", metavar="DIR", help="tracker model folder")


def read_points(path: str | Path) -> np.ndarray:
    """(N, 2) float64 points from a JSON ``[[x, y], ...]`` file; DataError when malformed."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DataError(path, "file not found") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(path, f"not a JSON file ({exc})") from exc
    if not isinstance(data, list) or not all(
        isinstance(p, list)
        and len(p) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in p)
        for p in data
    ):
        raise DataError(path, "expected a JSON list of [x, y] number pairs")
    points = np.asarray(data, np.float64).reshape(-1, 2)
    if not np.isfinite(points).all():
        raise DataError(path, "points must be finite numbers")
    return points


def tracking_json(tracking: Tracking, image_a, image_b, points_b: np.ndarray, detector) -> dict:
    from core.matching import CHANGE_RULE

    return {
        "schema": SCHEMA,
        "model": {"detector": detector.to_json(), "tracker": tracking.model.to_json()},
        "images": {
            "a": {"width": int(image_a.shape[1]), "height": int(image_a.shape[0])},
            "b": {"width": int(image_b.shape[1]), "height": int(image_b.shape[0])},
        },
        "points": [[round(float(x), 2), round(float(y), 2)] for x, y in points_b],
        "lesions_a": [le.to_json() for le in tracking.lesions_a],
        "lesions_b": [le.to_json() for le in tracking.lesions_b],
        "matches": [m.to_json() for m in tracking.matches],
        "new_in_b": [int(i) for i in tracking.new_in_b],
        "gone_from_a": [int(i) for i in tracking.gone_from_a],
        "outside_view_of_a": [int(i) for i in tracking.outside_view_of_a],
        "outside_view_of_b": [int(i) for i in tracking.outside_view_of_b],
        "change_rule": CHANGE_RULE,
    }


def run(args: argparse.Namespace) -> int:
    from core.analyzer import Analyzer
    from core.tracking import map_points
    from core.tracking_overlay import tracking_overlay

    device = args.track_device or getattr(args, "device", None) or "auto"
    try:
        image_a = load_photo(args.image_a)
        image_b = load_photo(args.image_b)
        points = read_points(args.points) if args.points else np.zeros((0, 2))
        try:
            analyzer = Analyzer.load(device, detector=args.detector, tracker=args.tracker)
        except (RuntimeError, ValueError) as exc:
            print(f"lesionviewer: device {device}: {exc}", file=sys.stderr)
            return 2
        detection_a = analyzer.detect(image_a)
        detection_b = analyzer.detect(image_b)
        result = analyzer.track(image_a, image_b, detection_a=detection_a, detection_b=detection_b)
        document = tracking_json(
            result, image_a, image_b, map_points(result.flow, points), detection_a.model
        )
        if args.overlay:  # first, so that a failure here leaves no JSON behind
            Path(args.overlay).parent.mkdir(parents=True, exist_ok=True)
            save_rgb(args.overlay, tracking_overlay(image_a, image_b, result))
        try:
            _write_json(Path(args.json), document)
        except OSError:
            if args.overlay:
                Path(args.overlay).unlink(missing_ok=True)
            raise
    except LesionViewerError as exc:
        print(f"lesionviewer: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        target = exc.filename or args.json
        print(
            f"lesionviewer: {target}: cannot write output ({exc.strerror or exc})", file=sys.stderr
        )
        return 2
    return 0
