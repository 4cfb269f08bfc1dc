"""Start the app (``lesionviewer`` with no subcommand), or, on a machine without a display,
analyse a bundled photo on the command line instead and say so."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path

from core.resources import resource_path

log = logging.getLogger("lesionviewer")


def has_display() -> bool:
    """True when Qt can open a window: a platform was chosen explicitly
    (QT_QPA_PLATFORM, e.g. offscreen), or an X11/Wayland display is set, or the OS is
    Windows or macOS."""
    if os.environ.get("QT_QPA_PLATFORM"):
        return True
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def bundled_photo() -> Path | None:
    """The first shipped demo photo, if the demo assets are installed."""
    folder = resource_path("demo")
    photos = sorted(folder.glob("*.jpg")) if folder.is_dir() else []
    return photos[0] if photos else None


def headless_fallback(args) -> int:
    """No display: run ``lesionviewer analyze`` on a bundled photo and say where the
    results went."""
    photo = bundled_photo()
    print(
        "lesionviewer: no display found (DISPLAY/WAYLAND_DISPLAY unset, QT_QPA_PLATFORM "
        "unset), so the window cannot open.",
        file=sys.stderr,
    )
    if photo is None:
        print("lesionviewer: no bundled demo photo is installed either.", file=sys.stderr)
        return 1
    out = Path(tempfile.mkdtemp(prefix="lesionviewer-"))
    json_path = out / f"{photo.stem}.json"
    print(
        f"lesionviewer: analysing the bundled photo {photo.name} instead; results in {out}",
        file=sys.stderr,
    )
    from lesionviewer.cli import main

    argv = ["--device", str(getattr(args, "device", "auto") or "auto")]
    overlay_path = out / f"{photo.stem}_overlay.png"
    argv += ["analyze", str(photo), "--json", str(json_path), "--overlay", str(overlay_path)]
    return main(argv)


def setup_logging(data_dir: Path) -> Path:
    """Log to ``<data_dir>/logs/lesionviewer.log`` (and stderr for warnings)."""
    folder = Path(data_dir) / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "lesionviewer.log"
    root = logging.getLogger()
    if not any(getattr(h, "baseFilename", None) == str(path) for h in root.handlers):
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    return path


def build_window(data_dir: Path | str | None, device: str = "auto", *, detector=None, tracker=None):
    """Open the store and make the main window (no event loop): for launch and tests.

    Returns (window, reporter). Needs a QApplication.
    """
    from lesionviewer.app.analysis_jobs import AnalyzerHolder
    from lesionviewer.app.error_handler import ErrorReporter
    from lesionviewer.app.main_window import MainWindow
    from lesionviewer.app.session import AppSession
    from lesionviewer.store import Store

    store = Store.open(data_dir)
    holder = AnalyzerHolder(device, detector=detector, tracker=tracker)
    reporter = ErrorReporter()
    window = MainWindow(AppSession(store, holder), reporter)
    from core.device import choose_device, describe_device

    try:
        window.status.set_device(describe_device(choose_device(device)))
    except (RuntimeError, ValueError) as exc:
        window.status.set_device(f"unavailable ({exc})")
    return window, reporter


def launch(args) -> int:
    """Run the app: ``args.demo`` (open the demo patient), ``args.data_dir``,
    ``args.device``. Returns the exit code."""
    if not has_display():
        return headless_fallback(args)
    from PySide6.QtWidgets import QApplication

    from lesionviewer.app.main_window import APP_TITLE, app_icon

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName(APP_TITLE)
    app.setWindowIcon(app_icon())
    data_dir = getattr(args, "data_dir", None)
    if getattr(args, "demo", False):
        from lesionviewer.demo import ensure_demo

        data_dir, patient_id = ensure_demo(data_dir, device=args.device)
    else:
        patient_id = None
    window, reporter = build_window(data_dir, getattr(args, "device", "auto") or "auto")
    setup_logging(window.session.data_dir)
    reporter.install()
    window.show()
    window.analysis.load_models()
    if patient_id is not None:
        window.refresh_patients(select=patient_id)
    try:
        return int(app.exec())
    finally:
        reporter.uninstall()
        window.session.store.close()
