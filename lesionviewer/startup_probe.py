"""``lesionviewer --startup-probe`` (hidden): start the app as ``lesionviewer`` does, note the
moment its event loop is first idle with the main window shown, print it and exit.

The printed line is ``startup-probe: ready_at=<seconds since the epoch> window=<title>``;
a harness that notes ``time.time()`` just before it launches the program gets the launch
to interactive-window time as the difference (``packaging/startup_time.py`` does this for
the frozen build and for the app run from source).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time

PREFIX = "startup-probe: ready_at="


def run_startup_probe(args: argparse.Namespace) -> int:
    """Run :func:`lesionviewer.app.launch.launch` with a zero-time timer that fires once the
    event loop has handled the queued events (show, expose, paint); then quit. A fresh
    temporary data folder is used unless ``--data-dir`` is given."""
    from lesionviewer.app.launch import has_display, launch

    if not has_display():
        print("startup-probe: no display (set DISPLAY or QT_QPA_PLATFORM)", file=sys.stderr)
        return 1
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    temp_dir = None
    if not getattr(args, "data_dir", None):
        temp_dir = tempfile.mkdtemp(prefix="lesionviewer-probe-")
        args.data_dir = temp_dir
    outcome: dict[str, float] = {}

    def probe() -> None:
        windows = [w for w in app.topLevelWidgets() if isinstance(w, QMainWindow)]
        ready = [w for w in windows if w.isVisible() and w.windowHandle() is not None]
        ready = [w for w in ready if w.windowHandle().isExposed()]
        if not ready:
            QTimer.singleShot(0, probe)  # not on screen yet: try again when next idle
            return
        outcome["ready_at"] = time.time()
        print(f"{PREFIX}{outcome['ready_at']:.6f} window={ready[0].windowTitle()!r}", flush=True)
        for window in windows:
            window.close()
        app.quit()

    QTimer.singleShot(0, probe)
    try:
        code = launch(args)
    finally:
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)
    if "ready_at" not in outcome:
        print("startup-probe: the main window never became ready", file=sys.stderr)
        return 1
    return code
