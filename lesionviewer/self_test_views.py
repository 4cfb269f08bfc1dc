"""The self-test's view step: open the real main window on the self-test store, show the
photo and the comparison, grab them, and check each grab is non-empty and not uniform.

Rendering uses whatever Qt platform is set (``offscreen``, or ``xcb`` under an X server such
as Xvfb, which is what needs the xcb libraries); with no display on Linux it picks offscreen.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

#: A grab passes when its grey values spread at least this much (0-255 scale) ...
MIN_STD = 3.0
#: ... and it holds at least this many distinct colours.
MIN_COLOURS = 32
WAIT_S = 60.0


def ensure_application() -> Any:
    """The QApplication (created when there is none; offscreen when Linux has no display)."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("QT_QPA_PLATFORM")
        or os.environ.get("DISPLAY")
        or os.environ.get("WAYLAND_DISPLAY")
    ):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        app = QApplication(sys.argv[:1])
    elif not isinstance(app, QApplication):
        raise RuntimeError("a non-widget Qt application already exists; cannot open windows")
    return app


def wait_until(condition: Callable[[], bool], timeout_s: float = WAIT_S) -> bool:
    """Run the event loop until ``condition()`` holds or ``timeout_s`` passes."""
    from PySide6.QtCore import QEventLoop, QTimer

    if condition():
        return True
    deadline = time.monotonic() + timeout_s
    loop = QEventLoop()
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: loop.quit() if condition() or time.monotonic() > deadline else 0)
    timer.start()
    loop.exec()
    timer.stop()
    return condition()


def image_array(image: Any) -> np.ndarray:
    """A QImage as an (H, W, 3) uint8 RGB array (copied)."""
    from PySide6.QtGui import QImage

    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    h, w, stride = rgb.height(), rgb.width(), rgb.bytesPerLine()
    if h == 0 or w == 0:
        return np.zeros((h, w, 3), np.uint8)
    data = np.frombuffer(rgb.constBits(), np.uint8, count=h * stride).reshape(h, stride)
    return data[:, : w * 3].reshape(h, w, 3).copy()


def check_grab(pixels: np.ndarray, name: str) -> str:
    """Raise StepFailed unless ``pixels`` is non-empty and not (nearly) uniform."""
    from lesionviewer.self_test import StepFailed

    h, w = pixels.shape[:2]
    if h < 16 or w < 16:
        raise StepFailed(f"{name}: grabbed image is empty ({w}x{h})")
    grey = pixels.astype(np.float32).mean(axis=2)
    colours = len(np.unique(pixels.reshape(-1, 3)[:: max(1, h * w // 200_000)], axis=0))
    if float(grey.std()) < MIN_STD or colours < MIN_COLOURS:
        raise StepFailed(
            f"{name}: grabbed image is uniform (std {grey.std():.1f}, {colours} colours)"
        )
    return f"{name} {w}x{h}"


def render_views(state: Any, out_dir: Path) -> str:
    """Open the main window on ``state.store_ids``, grab main/photo/compare; return detail."""
    from lesionviewer.app.launch import build_window
    from lesionviewer.self_test import StepFailed

    app = ensure_application()
    ids = state.store_ids
    root = state.models_root
    window, reporter = build_window(
        ids["data_dir"],
        state.device,
        detector=root / "detector" if root else None,
        tracker=root / "tracker" if root else None,
    )
    errors: list[str] = []
    reporter.error_shown.connect(errors.append)
    grabs: dict[str, np.ndarray] = {}
    try:
        window.resize(1280, 800)
        window.show()
        window.refresh_patients(select=ids["patient"])
        window.session.open(ids["patient"])
        photo_a, _photo_b = ids["photos"]
        window.show_photo(photo_a)
        shown = wait_until(
            lambda: (
                window.photo_panel.photo is not None
                and window.photo_panel.photo.photo_id == photo_a
                and not window.workers.is_busy()
            )
        )
        if not shown:
            raise StepFailed(f"photo view did not show photo {photo_a} within {WAIT_S:.0f} s")
        grabs["main_window"] = image_array(window.grab().toImage())
        grabs["photo_view"] = image_array(window.photo_panel.view.grab().toImage())
        window.compare_visits(*ids["visits"])
        if not wait_until(lambda: bool(errors) or not window.workers.is_busy()):
            raise StepFailed(f"compare view did not load within {WAIT_S:.0f} s")
        if window.tabs.currentWidget() is not window.compare_view:
            raise StepFailed("compare view was not opened for the two visits")
        grabs["compare_view"] = image_array(window.compare_view.grab().toImage())
        if errors:
            raise StepFailed(f"the app reported an error: {errors[0]}")
        details = [check_grab(pixels, name) for name, pixels in grabs.items()]
    finally:
        if grabs:
            _save(grabs, out_dir)
        window.close()
        window.session.store.close()
        app.processEvents()
    platform = app.platformName()
    return f"Qt {platform}: " + ", ".join(details)


def _save(grabs: dict[str, np.ndarray], out_dir: Path) -> None:
    from PySide6.QtGui import QImage

    out_dir.mkdir(parents=True, exist_ok=True)
    for name, pixels in grabs.items():
        h, w = pixels.shape[:2]
        image = QImage(pixels.tobytes(), w, h, 3 * w, QImage.Format.Format_RGB888)
        image.save(str(out_dir / f"{name}.png"))
