"""``lesionviewer --self-test``: check an installation (from source or a frozen build).

Steps, each printed as one line with its time (``ok``/``FAIL``/``skip``)::

    models   load the detector and tracker model folders, SHA-256 checked
    photos   read the bundled photo pair (``resources/demo``: visit1_<site>.jpg, visit2_<site>.jpg)
    detect   detection on both photos (heatmap shape, probabilities, lesions inside the photo)
    track    tracking A -> B (flow shape and finite values, matches refer to real lesions)
    store    a store in a temporary folder: migrations, import, results saved, integrity
    views    main window, photo view and compare view rendered (grab) and checked non-uniform
    report   the patient's PDF report written and checked (header, pages, end marker)

A step whose inputs failed is skipped (and counts as a failure); the other steps still run,
so one run shows every problem. Exit code 0 when every step passed, 1 otherwise, and the
last line names the failing steps and their reasons.

Options (added to ``lesionviewer``'s parser by :func:`add_options`): ``--models DIR`` (a
folder holding ``detector/`` and ``tracker/``; default: the shipped ``resources/models``),
``--self-test-photos DIR`` (default: the bundled ``resources/demo``) and
``--self-test-out DIR`` (keep the store, screenshots and report there).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.resources import models_dir, resource_path

STEPS = ("models", "photos", "detect", "track", "store", "views", "report")


class StepFailed(Exception):
    """A self-test check failed; the message is the reason shown to the user."""


class StepSkipped(Exception):
    """A step could not run because a step it needs failed."""


@dataclass
class StepResult:
    """One step's outcome: status "ok", "FAIL" or "skip", seconds taken, one-line detail."""

    name: str
    status: str
    seconds: float
    detail: str


@dataclass
class SelfTestState:
    """What the steps hand to each other (None where a step failed)."""

    work_dir: Path
    device: str = "auto"
    models_root: Path | None = None
    analyzer: Any = None
    photos: tuple[Path, Path] | None = None
    site: str = ""
    images: tuple[np.ndarray, np.ndarray] | None = None
    detections: tuple[Any, Any] | None = None
    tracking: Any = None
    store_ids: dict[str, Any] = field(default_factory=dict)


def add_options(parser: argparse.ArgumentParser) -> None:
    """The self-test's options on the ``lesionviewer`` parser (next to ``--self-test``)."""
    parser.add_argument(
        "--models",
        metavar="DIR",
        help="self-test: folder with detector/ and tracker/ model folders (default: shipped)",
    )
    parser.add_argument(
        "--self-test-photos",
        metavar="DIR",
        help="self-test: folder with visit1_<site>.jpg and visit2_<site>.jpg (default: bundled)",
    )
    parser.add_argument(
        "--self-test-out",
        metavar="DIR",
        help="self-test: keep the store, screenshots and PDF report in this folder",
    )
    parser.add_argument(
        "--startup-probe",
        action="store_true",
        help=argparse.SUPPRESS,  # start the app, print when its event loop is first idle, exit
    )


# ---------------------------------------------------------------------------------- steps
def step_models(state: SelfTestState) -> str:
    """Load both model folders through the Analyzer (SHA-256 of each weights file checked)."""
    from core.analyzer import Analyzer
    from core.errors import ModelError
    from core.model_folder import META_FILE

    root = state.models_root or models_dir()
    detector, tracker = root / "detector", root / "tracker"
    for folder in (detector, tracker):
        if not (folder / META_FILE).is_file():
            shipped = "no shipped model" if state.models_root is None else "no model"
            raise StepFailed(f"{shipped}: {folder} has no {META_FILE}")
    try:
        analyzer = Analyzer.load(state.device, detector=detector, tracker=tracker)
        tracker_info = analyzer.tracker_info  # loads and checks the tracker now
    except ModelError as exc:
        raise StepFailed(str(exc)) from exc
    state.analyzer = analyzer
    det = analyzer.detector_info
    return (
        f"detector {det.name} {det.version} sha256 {det.sha256[:12]}, tracker "
        f"{tracker_info.name} {tracker_info.version} sha256 {tracker_info.sha256[:12]} "
        f"(SHA-256 verified) on {analyzer.device} with {analyzer.backend}"
    )


def step_photos(state: SelfTestState, folder: Path | None) -> str:
    """Find and decode the bundled pair: the first body site with a photo in both visits."""
    from core.errors import DataError
    from core.io import load_photo
    from lesionviewer.demo import demo_photos

    folder = folder or resource_path("demo")
    try:
        found = demo_photos(folder)
    except DataError as exc:
        raise StepFailed(str(exc)) from exc
    later = {site: path for path, site in found[2]}
    pairs = [(path, later[site], site) for path, site in found[1] if site in later]
    if not pairs:
        raise StepFailed(f"{folder}: no body site has a photo in both visits")
    path_a, path_b, site = pairs[0]
    state.images = (load_photo(path_a), load_photo(path_b))
    state.photos, state.site = (path_a, path_b), site
    (ha, wa), (hb, wb) = state.images[0].shape[:2], state.images[1].shape[:2]
    return f"{path_a.name} {wa}x{ha}, {path_b.name} {wb}x{hb} ({site})"


def _check_detection(detection: Any, image: np.ndarray, name: str) -> None:
    heatmap = detection.heatmap
    if heatmap.shape != (*image.shape[:2], 3) or heatmap.dtype != np.float32:
        raise StepFailed(f"{name}: heatmap {heatmap.shape} {heatmap.dtype}, photo {image.shape}")
    if not np.isfinite(heatmap).all():
        raise StepFailed(f"{name}: heatmap has NaN or infinite values")
    sums = heatmap.sum(axis=2)
    if float(np.abs(sums - 1.0).max()) > 1e-3:
        raise StepFailed(
            f"{name}: heatmap rows do not sum to 1 (max error {np.abs(sums - 1).max()})"
        )
    h, w = image.shape[:2]
    for lesion in detection.lesions:
        x, y = lesion.centroid
        if not (0 <= x < w and 0 <= y < h) or not (0.0 <= lesion.p_malignant <= 1.0):
            raise StepFailed(f"{name}: lesion {lesion.id} outside the photo or bad p_malignant")


def step_detect(state: SelfTestState) -> str:
    if state.analyzer is None or state.images is None:
        raise StepSkipped("needs models and photos")
    detections = tuple(state.analyzer.detect(image) for image in state.images)
    for detection, image, name in zip(detections, state.images, "AB", strict=True):
        _check_detection(detection, image, f"photo {name}")
    state.detections = detections  # type: ignore[assignment]
    return f"{len(detections[0].lesions)} lesions on A, {len(detections[1].lesions)} on B"


def step_closeup(state: SelfTestState) -> str:
    """Photo A cut down to a close-up of its surest lesion (8 diameters across, at least 64
    px; the central third of the photo when it has none), analysed as a close-up."""
    if state.analyzer is None or state.images is None or state.detections is None:
        raise StepSkipped("needs models, photos and detections")
    if state.analyzer.closeup_side_px <= 0:
        raise StepSkipped("the detector has no close-up setting (inference.closeup_side_px)")
    image, lesions = state.images[0], state.detections[0].lesions
    h, w = image.shape[:2]
    if lesions:
        surest = max(lesions, key=lambda lesion: lesion.score)
        (cx, cy), diameter = surest.centroid, 2.0 * np.sqrt(surest.area_px / np.pi)
        half = max(32, int(4 * diameter))
    else:
        (cx, cy), half = (w / 2, h / 2), max(1, min(h, w) // 6)
    x0, y0 = max(0, int(cx) - half), max(0, int(cy) - half)
    crop = np.ascontiguousarray(image[y0 : int(cy) + half, x0 : int(cx) + half])
    detection = state.analyzer.detect(crop, closeup=True)
    _check_detection(detection, crop, "close-up")
    verdict = detection.closeup
    if verdict is None or not 0.0 <= verdict.p_malignant <= 1.0:
        raise StepFailed(f"close-up: no verdict on its lesion ({verdict})")
    where = "central region" if verdict.lesion_id is not None else "centre, no region"
    return (
        f"{crop.shape[1]}x{crop.shape[0]} crop of A analysed at "
        f"{verdict.analysed_size[0]}x{verdict.analysed_size[1]}: {where}, "
        f"p malignant {verdict.p_malignant:.2f}"
    )


def step_track(state: SelfTestState) -> str:
    if state.analyzer is None or state.images is None or state.detections is None:
        raise StepSkipped("needs models, photos and detections")
    (image_a, image_b), (det_a, det_b) = state.images, state.detections
    tracking = state.analyzer.track(image_a, image_b, detection_a=det_a, detection_b=det_b)
    if tracking.flow.shape != (*image_a.shape[:2], 2) or not np.isfinite(tracking.flow).all():
        raise StepFailed(f"flow {tracking.flow.shape} not finite (H, W, 2) of photo A")
    ids_a = {lesion.id for lesion in tracking.lesions_a}
    ids_b = {lesion.id for lesion in tracking.lesions_b}
    for match in tracking.matches:
        if match.a not in ids_a or match.b not in ids_b:
            raise StepFailed(f"match {match.a}->{match.b} names a lesion that does not exist")
    state.tracking = tracking
    median = float(np.median(np.linalg.norm(tracking.flow, axis=2)))
    return (
        f"{len(tracking.matches)} matched, {len(tracking.new_in_b)} new, "
        f"{len(tracking.gone_from_a)} gone, median |flow| {median:.1f} px"
    )


def step_store(state: SelfTestState) -> str:
    """A fresh store in the work folder: migrations, a patient with two visits, results."""
    if state.photos is None:
        raise StepSkipped("needs the photos")
    from lesionviewer.app.heatmap_cache import save_heatmap
    from lesionviewer.store import LATEST_VERSION, Store, check_integrity, errors_only
    from lesionviewer.store.migrations import schema_version

    data_dir = state.work_dir / "store"
    with Store.open(data_dir, actor="self-test") as store:
        version = schema_version(store.db)
        if version != LATEST_VERSION:
            raise StepFailed(
                f"schema version {version} after migrations, expected {LATEST_VERSION}"
            )
        patient = store.add_patient("Self-test patient", record_number="SELF-TEST")
        visits = [store.add_visit(patient.id, d) for d in ("2024-01-15", "2025-01-20")]
        photos = [
            store.import_photo(visit.id, path, body_site=state.site).photo
            for visit, path in zip(visits, state.photos, strict=True)
        ]
        saved = 0
        if state.detections is not None:
            for photo, detection in zip(photos, state.detections, strict=True):
                saved += len(store.save_detection(photo.id, detection).observations)
                save_heatmap(data_dir, photo.sha256, detection)
        links = 0
        if state.tracking is not None:
            links = len(store.save_tracking(photos[0].id, photos[1].id, state.tracking))
        problems = errors_only(check_integrity(store))
        if problems:
            raise StepFailed(f"integrity check: {problems[0]}")
    state.store_ids = {
        "data_dir": data_dir,
        "patient": patient.id,
        "visits": tuple(v.id for v in visits),
        "photos": tuple(p.id for p in photos),
    }
    return f"schema v{version}, 2 photos, {saved} observations, {links} links, integrity ok"


def step_views(state: SelfTestState, out_dir: Path) -> str:
    if not state.store_ids:
        raise StepSkipped("needs the store")
    from lesionviewer.self_test_views import render_views

    return render_views(state, out_dir)


def _pdf_pages(data: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data))


def step_report(state: SelfTestState) -> str:
    if not state.store_ids:
        raise StepSkipped("needs the store")
    from lesionviewer.reports import export_report
    from lesionviewer.store import Store

    out = state.work_dir / "report"
    with Store.open(state.store_ids["data_dir"], actor="self-test") as store:
        written = export_report(store, state.store_ids["patient"], out, formats=("pdf",))
    path = Path(written["pdf"])
    data = path.read_bytes() if path.is_file() else b""
    if not data.startswith(b"%PDF-") or b"%%EOF" not in data[-1024:]:
        raise StepFailed(f"{path} is not a complete PDF ({len(data)} bytes)")
    pages = _pdf_pages(data)
    if pages < 1:
        raise StepFailed(f"{path} has no pages")
    return f"{path.name}: {pages} pages, {len(data) / 1024:.0f} KiB"


# --------------------------------------------------------------------------------- runner
def run_step(name: str, fn: Callable[[], str], say: Callable[[str], None]) -> StepResult:
    """Run one step, time it and print its line; exceptions become FAIL with a reason."""
    start = time.perf_counter()
    try:
        detail, status = fn(), "ok"
    except StepSkipped as exc:
        detail, status = f"skipped: {exc}", "skip"
    except StepFailed as exc:
        detail, status = str(exc), "FAIL"
    except Exception as exc:  # any other error is a failure of this step, with its reason
        frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        where = f" at {Path(frame.filename).name}:{frame.lineno}" if frame else ""
        detail, status = f"{type(exc).__name__}: {exc}{where}", "FAIL"
    seconds = time.perf_counter() - start
    say(f"self-test: {status:4s} {name:7s} {seconds:7.2f} s  {detail}")
    return StepResult(name, status, seconds, detail)


def run_self_test(args: argparse.Namespace) -> int:
    """Run every step (see the module docstring); 0 when all passed, 1 otherwise."""

    def say(line: str) -> None:
        print(line, flush=True)

    models = getattr(args, "models", None)
    photos = getattr(args, "self_test_photos", None)
    keep = getattr(args, "self_test_out", None)
    work_dir = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="lesionviewer-selftest-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    for leftover in ("store", "views", "report"):  # a kept folder from an earlier run
        shutil.rmtree(work_dir / leftover, ignore_errors=True)
    state = SelfTestState(
        work_dir=work_dir,
        device=str(getattr(args, "device", None) or "auto"),
        models_root=Path(models) if models else None,
    )
    frozen = "frozen" if getattr(sys, "frozen", False) else "source"
    platform = os.environ.get("QT_QPA_PLATFORM") or ("x11" if os.environ.get("DISPLAY") else "-")
    python = sys.version.split()[0]
    say(f"self-test: lesionviewer ({frozen}, Python {python}, Qt platform {platform})")
    start = time.perf_counter()
    steps: list[tuple[str, Callable[[], str]]] = [
        ("models", lambda: step_models(state)),
        ("photos", lambda: step_photos(state, Path(photos) if photos else None)),
        ("detect", lambda: step_detect(state)),
        ("closeup", lambda: step_closeup(state)),
        ("track", lambda: step_track(state)),
        ("store", lambda: step_store(state)),
        ("views", lambda: step_views(state, work_dir / "views")),
        ("report", lambda: step_report(state)),
    ]
    try:
        results = [run_step(name, fn, say) for name, fn in steps]
    finally:
        if not keep:
            shutil.rmtree(work_dir, ignore_errors=True)
    total = time.perf_counter() - start
    failed = [r for r in results if r.status != "ok"]
    if not failed:
        say(f"self-test: passed, {len(results)} steps in {total:.1f} s")
        return 0
    reasons = "; ".join(f"{r.name}: {r.detail}" for r in failed)
    say(f"self-test: FAILED {len(failed)} of {len(results)} steps ({total:.1f} s): {reasons}")
    return 1
