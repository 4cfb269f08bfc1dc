"""`lesionviewer analyze IMAGE... --json OUT [--overlay OUT] [--closeup] [--device D]
[--precision P] [--model DIR]`.

With one IMAGE, ``--json`` and ``--overlay`` name files. With several, they name
folders (created if needed) that receive one ``<image stem>.json`` / ``<image stem>.png``
per image (``-2``, ``-3``... appended when stems repeat). Each JSON is::

    {"schema": 1, "image": {"width", "height"}, "model": {"name", "version", "sha256"},
     "lesions": [{"id", "centroid": [x, y], "bbox": [x0, y0, x1, y1], "area_px",
                  "score", "p_malignant"}],
     "closeup": {"lesion_id", "p_malignant", "p_lesion", "read_from", "analysed_size"}}

``"closeup"`` is there only with ``--closeup``: the photos are close-ups of one lesion
(a phone a few centimetres from the skin), not body regions. They are analysed reduced, as
the detector's real close-up AUC was measured (see ``core.closeup``), and ``"closeup"``
gives the photographed lesion's p_malignant: that of the region at the photo's centre
(``lesion_id``), or read from the heatmap's centre (``lesion_id`` null) when no region was
found; ``p_lesion`` is that region's score, or the mean P(lesion) there, which says how
far such a p_malignant speaks of a lesion at all. Coordinates are always the photo's own
pixels.

``--precision bfloat16`` runs the detector's network in bfloat16 on a CPU (see
``core.device.choose_precision``): much faster on CPUs that compute it natively, and the
scores move a little; float32 is the default.

Bad input (missing, corrupt or unsupported photo; bad model folder; unusable device)
prints one line naming the file and the reason, and the exit code is 2. With several
images the good ones are still analysed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from core.errors import LesionViewerError
from core.io import load_photo, save_rgb
from core.overlay import closeup_caption
from core.types import Detection

SCHEMA = 1


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="photo files")
    parser.add_argument(
        "--json", required=True, metavar="OUT", help="JSON file (one image) or folder (several)"
    )
    parser.add_argument(
        "--overlay", metavar="OUT", help="overlay PNG file (one image) or folder (several)"
    )
    parser.add_argument(
        "--closeup",
        action="store_true",
        help="the photos are close-ups of one lesion (a phone a few cm from the skin), "
        "not body regions: analysed as the detector's close-up AUC was measured",
    )
    parser.add_argument(
        "--device",
        dest="analyze_device",
        choices=("auto", "cpu", "cuda"),
        default=None,
        help="compute device (default: auto, CUDA when available)",
    )
    parser.add_argument(
        "--precision",
        choices=("float32", "bfloat16"),
        default=None,
        help="number format of the network on a CPU (default: float32, or "
        "LESIONVIEWER_PRECISION); bfloat16 is faster where the CPU has it, less exact",
    )
    parser.add_argument(
        "--model", metavar="DIR", help="detector model folder (default: the shipped one)"
    )


def detection_json(detection: Detection) -> dict:
    """The ``analyze`` JSON document (schema 1) of one detection."""
    height, width = detection.shape
    document = {
        "schema": SCHEMA,
        "image": {"width": int(width), "height": int(height)},
        "model": detection.model.to_json(),
        "lesions": [lesion.to_json() for lesion in detection.lesions],
    }
    if detection.closeup is not None:
        document["closeup"] = detection.closeup.to_json()
    return document


def _summary(detection: Detection) -> str:
    """``8 lesions``; for a close-up ``2 regions, close-up: region 2, p malignant 0.43``
    (the overlay's caption, :func:`core.overlay.closeup_caption`)."""
    count = len(detection.lesions)
    if detection.closeup is None:
        return f"{count} lesions"
    return f"{count} region{'' if count == 1 else 's'}, {closeup_caption(detection.closeup)}"


def _write_json(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _outputs(images: list[Path], target: str, suffix: str) -> list[Path]:
    """Output path per image: ``target`` itself for one image, else target/<stem><suffix>."""
    if len(images) == 1:
        return [Path(target)]
    folder = Path(target)
    seen: dict[str, int] = {}
    paths = []
    for image in images:
        count = seen.get(image.stem, 0) + 1
        seen[image.stem] = count
        name = image.stem if count == 1 else f"{image.stem}-{count}"
        paths.append(folder / f"{name}{suffix}")
    return paths


def run(args: argparse.Namespace) -> int:
    from core.analyzer import Analyzer
    from core.device import choose_precision
    from core.overlay import detection_overlay

    device = args.analyze_device or getattr(args, "device", None) or "auto"
    images = [Path(p) for p in args.images]
    json_paths = _outputs(images, args.json, ".json")
    overlay_paths = _outputs(images, args.overlay, ".png") if args.overlay else None
    if len(images) > 1 and Path(args.json).is_file():
        print(f"lesionviewer: {args.json}: must be a folder for several images", file=sys.stderr)
        return 2
    try:
        precision = choose_precision(args.precision)
    except ValueError as exc:  # only LESIONVIEWER_PRECISION can be wrong: argparse checks
        print(f"lesionviewer: {exc}", file=sys.stderr)
        return 2
    try:
        analyzer = Analyzer.load(device, detector=args.model, precision=precision)
    except (RuntimeError, ValueError) as exc:  # device unavailable or unknown
        print(f"lesionviewer: device {device}: {exc}", file=sys.stderr)
        return 2
    if args.closeup and analyzer.closeup_side_px <= 0:
        folder = args.model or "the shipped detector"
        print(
            f"lesionviewer: {folder}: has no close-up setting (model.json "
            "inference.closeup_side_px), so --closeup cannot be used",
            file=sys.stderr,
        )
        return 2
    status = 0
    for index, image_path in enumerate(images):
        written: list[Path] = []  # this image's outputs so far, removed if a later one fails
        try:
            image = load_photo(image_path)
            detection = analyzer.detect(image, closeup=args.closeup)
            _write_json(json_paths[index], detection_json(detection))
            written.append(json_paths[index])
            if overlay_paths is not None:
                overlay_paths[index].parent.mkdir(parents=True, exist_ok=True)
                save_rgb(overlay_paths[index], detection_overlay(image, detection))
        except LesionViewerError as exc:
            print(f"lesionviewer: {exc}", file=sys.stderr)
            status = 2
            continue
        except OSError as exc:
            for path in written:
                path.unlink(missing_ok=True)
            print(f"lesionviewer: {image_path.name}: cannot write output ({exc})", file=sys.stderr)
            status = 2
            continue
        print(f"{image_path.name}: {_summary(detection)} -> {json_paths[index]}")
    return status
