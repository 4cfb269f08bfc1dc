"""Errors in the GUI: a slot or a job that raises shows a dialog and is logged; the app
keeps running.

PySide6 hands an exception raised in a slot to ``sys.excepthook`` and carries on, so the
handler is installed there (and on ``threading.excepthook`` for stray threads).
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from types import TracebackType

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import QMessageBox, QWidget

from core.errors import LesionViewerError

log = logging.getLogger("lesionviewer.app")


def user_message(exc: BaseException) -> str:
    """One line for the clinician: our own errors say file and reason; others say what."""
    if isinstance(exc, LesionViewerError):  # store errors are LesionViewerErrors too
        return str(exc)
    return f"Unexpected error: {type(exc).__name__}: {exc}"


class ErrorReporter(QObject):
    """Shows errors in a (non-blocking) dialog and logs them with their traceback.

    ``error_shown(message)`` is emitted for every error shown; ``last_dialog`` is the most
    recent dialog (tests read it).
    """

    error_shown = Signal(str)
    _from_thread = Signal(object)

    def __init__(self, parent_widget: QWidget | None = None) -> None:
        super().__init__()
        self._parent_widget = parent_widget
        self.last_dialog: QMessageBox | None = None
        self._previous_hook = None
        self._from_thread.connect(self.report, Qt.ConnectionType.QueuedConnection)

    def set_parent_widget(self, widget: QWidget | None) -> None:
        self._parent_widget = widget

    def install(self) -> None:
        """Route uncaught exceptions (slots included) to this reporter."""
        self._previous_hook = sys.excepthook
        sys.excepthook = self._excepthook
        threading.excepthook = lambda args: self._from_thread.emit(args.exc_value)

    def uninstall(self) -> None:
        if self._previous_hook is not None:
            sys.excepthook = self._previous_hook
            threading.excepthook = threading.__excepthook__
            self._previous_hook = None

    def _excepthook(
        self,
        exc_type: type[BaseException],
        exc: BaseException,
        tb: TracebackType | None,
    ) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            if self._previous_hook is not None:
                self._previous_hook(exc_type, exc, tb)
            return
        if exc.__traceback__ is None and tb is not None:
            exc = exc.with_traceback(tb)
        if threading.current_thread() is threading.main_thread():
            self.report(exc)
        else:
            self._from_thread.emit(exc)

    @Slot(object)
    def report(self, exc: BaseException, context: str = "") -> None:
        """Log ``exc`` and show it in a dialog (GUI thread only)."""
        details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        log.error("%s%s", f"{context}: " if context else "", details.rstrip())
        message = user_message(exc)
        if context:
            message = f"{context}: {message}"
        box = QMessageBox(self._parent_widget)
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("LesionViewer")
        box.setText(message)
        box.setDetailedText(details)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        box.open()  # non-blocking: the event loop keeps running
        self.last_dialog = box
        self.error_shown.emit(message)
