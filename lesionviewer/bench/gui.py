"""GUI figures of issue 5.

- The longest stall of the GUI event loop while the app opens and analyses a 12-MP photo:
  a 5 ms precise QTimer runs on the GUI thread; its worst lateness (gap between two
  ticks minus 5 ms) while the photo is opened (decode + pyramid on a worker, display on
  the GUI thread) and then analysed (detection, storage, heatmap cache, overlay reload)
  is the stall. Target <= 100 ms.
- Time to open a patient with 10 visits x 5 photos: the store API and the app's full open
  (store + view data) as ratios to reading the same rows with plain sqlite3
  (``lesionviewer.store.bench_support``).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lesionviewer.bench import BenchOptions, Measurement

SECTION = "gui"
TICK_MS = 5
STALL_TARGET_MS = 100.0


def _application():
    if not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ) and sys.platform not in (
        "win32",
        "darwin",
    ):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    return QApplication.instance() or QApplication([])


class StallProbe:
    """Records the gaps between ticks of a precise QTimer on the GUI thread."""

    def __init__(self) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.gaps: list[float] = []
        self._last = 0.0

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self._last)
        self._last = now

    def start(self) -> None:
        self.gaps = []
        self._last = time.perf_counter()
        self.timer.start()

    def stop(self) -> float:
        """The worst lateness in ms since ``start``."""
        self.timer.stop()
        self._tick()
        return max(0.0, (max(self.gaps) * 1000.0) - TICK_MS)


def _wait(signal, timeout_s: float) -> list:
    """Run the event loop until ``signal`` fires (returns its args) or time runs out."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop, got = QEventLoop(), []

    def fired(*args) -> None:
        got.append(args)
        loop.quit()

    signal.connect(fired)
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    signal.disconnect(fired)
    if not got:
        raise TimeoutError(f"no {signal} within {timeout_s:.0f} s")
    return list(got[0])


def _model_folder(options: BenchOptions, scratch: Path) -> tuple[Path, str]:
    """The detector to analyse with, and a note saying which."""
    from core.resources import models_dir

    if options.model:
        return Path(options.model), f"model folder {Path(options.model).name}"
    shipped = models_dir() / "detector"
    if (shipped / "model.json").is_file():
        return shipped, "shipped detector"
    import torch

    from core.model_folder import save_model_folder
    from core.models.registry import build_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model("lesion_fcn")
    folder = scratch / "detector"
    meta = {"name": "untrained-default", "version": "bench"}
    save_model_folder(folder, model, arch="lesion_fcn", arch_kwargs={}, meta=meta)
    return folder, "no shipped detector: untrained default LesionFCN (same compute)"


def _synthetic_photo(path: Path, width: int, height: int) -> None:
    import cv2

    rng = np.random.default_rng(12)
    small = rng.normal((150, 175, 215), 12, (height // 8, width // 8, 3)).clip(0, 255)
    image = cv2.resize(small.astype(np.uint8), (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(40):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        cv2.circle(image, (x, y), int(rng.integers(8, 40)), (40, 60, 90), -1, cv2.LINE_AA)
    cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 92])


def measure_stall(options: BenchOptions) -> list[Measurement]:
    """Worst event-loop stall while a 12-MP photo is opened, then analysed, in the app."""
    _application()
    from lesionviewer.app.launch import build_window
    from lesionviewer.store import Store

    width, height = (4000, 3000) if not options.quick else (2000, 1500)
    with tempfile.TemporaryDirectory(prefix="lv-bench-gui-") as tmp:
        scratch = Path(tmp)
        photo_path = scratch / "back_12mp.jpg"
        _synthetic_photo(photo_path, width, height)
        detector, note = _model_folder(options, scratch)
        with Store.open(scratch / "data") as store:
            patient = store.add_patient("Bench", record_number="B-1")
            visit = store.add_visit(patient.id, "2025-01-01")
            photo = store.import_photo(visit.id, photo_path, body_site="back").photo
        window, _ = build_window(scratch / "data", options.device, detector=detector)
        try:
            window.resize(1400, 900)
            window.show()
            window.session.open(patient.id)
            probe = StallProbe()
            probe.start()
            window.show_photo(photo.id)
            _wait(window.photo_panel.loaded, 120)
            open_stall = probe.stop()
            probe.start()
            started = time.perf_counter()
            window.analysis.analyse_visit(visit.id)
            _wait(window.analysis.analysed, 1800)
            _wait(window.photo_panel.loaded, 120)  # the overlay of the new heatmap is shown
            analysis_s = time.perf_counter() - started
            analyse_stall = probe.stop()
            window.close()
        finally:
            window.workers.cancel()
            window.workers.wait_for_done(60000)
            window.session.store.close()
    mp = width * height / 1e6
    device = window.status.device_label.text().removeprefix("Device: ")
    return [
        Measurement(
            SECTION,
            f"longest GUI stall, opening a {mp:.0f}-MP photo",
            open_stall,
            "ms",
            f"<= {STALL_TARGET_MS:.0f}",
            open_stall <= STALL_TARGET_MS,
            f"5 ms QTimer lateness; decode + pyramid on a worker; {device}",
        ),
        Measurement(
            SECTION,
            f"longest GUI stall, analysing a {mp:.0f}-MP photo",
            analyse_stall,
            "ms",
            f"<= {STALL_TARGET_MS:.0f}",
            analyse_stall <= STALL_TARGET_MS,
            f"5 ms QTimer lateness over detection, storage and overlay reload; {note}; {device}",
        ),
        Measurement(
            SECTION,
            f"analysis time of the {mp:.0f}-MP photo in the app",
            analysis_s,
            "s",
            note=f"{note}; {device}",
        ),
    ]


def measure_open_patient(options: BenchOptions) -> list[Measurement]:
    """Open a patient with 10 visits x 5 photos: store API and app, as ratios to sqlite3."""
    from lesionviewer.app.store_adapter import open_patient
    from lesionviewer.store import Store
    from lesionviewer.store.bench_support import bench_open_patient, build_bench_store

    repeats = max(5, options.repeats * 4)
    with tempfile.TemporaryDirectory(prefix="lv-bench-open-") as tmp:
        folder = Path(tmp) / "store"
        patient_id = build_bench_store(folder)
        timing = bench_open_patient(folder, patient_id, repeats=repeats)
        with Store.open(folder) as store:
            open_patient(store, patient_id)
            app_times = []
            for _ in range(repeats):
                start = time.perf_counter()
                open_patient(store, patient_id)
                app_times.append(time.perf_counter() - start)
    app_median = statistics.median(app_times)
    what = f"{timing.visits} visits, {timing.photos} photos, {timing.observations} lesions"
    return [
        Measurement(
            SECTION,
            "open patient: store API",
            timing.api_median_s * 1000,
            "ms",
            note=f"median of {repeats}; {what}",
        ),
        Measurement(
            SECTION,
            "open patient: plain sqlite3",
            timing.plain_sqlite_median_s * 1000,
            "ms",
            note=f"median of {repeats}; same rows",
        ),
        Measurement(SECTION, "open patient: store API / plain sqlite3", timing.ratio, "x"),
        Measurement(
            SECTION,
            "open patient: app (store + view data) / plain sqlite3",
            app_median / timing.plain_sqlite_median_s,
            "x",
            note=f"app median {app_median * 1000:.2f} ms",
        ),
    ]


def measure(options: BenchOptions) -> list[Measurement]:
    return measure_open_patient(options) + measure_stall(options)
