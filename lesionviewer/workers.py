"""The one worker mechanism of the app: QThreadPool + QRunnable, results by queued signals.

A request is made on the GUI thread: it captures immutable inputs (paths, ids, frozen
dataclasses, read-only arrays) in a plain function ``job(progress, cancel) -> result``.
The function runs on a pool thread and must not touch Qt widgets; it reports through
``progress(fraction, message="")`` (fraction in [0, 1]) and polls ``cancel() -> bool``,
the same callbacks ``core`` functions take. Results, errors and progress come back to the
GUI thread by queued signals only.

Requests are keyed: submitting a new request under a key that already has one running
cancels the stale one and drops its result, so a view never shows an out-of-date answer.
Nothing here calls ``processEvents`` and nothing blocks the GUI thread.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal, Slot

log = logging.getLogger(__name__)

ProgressFn = Callable[..., None]
CancelFn = Callable[[], bool]
JobFn = Callable[[ProgressFn, CancelFn], Any]


class Cancelled(Exception):
    """Raised inside a job (by its progress callback) once its request was cancelled."""


class CancelToken:
    """A thread-safe flag a job polls; calling the token returns whether it is set."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def __call__(self) -> bool:
        return self._event.is_set()


class _JobSignals(QObject):
    """Signals a job emits from its pool thread; the pool receives them queued."""

    progress = Signal(int, float, str)
    finished = Signal(int, object)
    failed = Signal(int, object)
    cancelled = Signal(int)


class _Job(QRunnable):
    def __init__(self, request_id: int, fn: JobFn, token: CancelToken, signals: _JobSignals):
        super().__init__()
        self.setAutoDelete(True)
        self._id = request_id
        self._fn = fn
        self._token = token
        self._signals = signals

    def _progress(self, fraction: float, message: str = "") -> None:
        if self._token():
            raise Cancelled()
        self._signals.progress.emit(self._id, float(fraction), str(message))

    def run(self) -> None:  # pool thread
        if self._token():
            self._signals.cancelled.emit(self._id)
            return
        try:
            result = self._fn(self._progress, self._token)
        except BaseException as exc:  # delivered to the GUI thread, never swallowed
            if isinstance(exc, Cancelled) or self._token():
                # core raises its own Cancelled once cancel() is True: not a failure
                self._signals.cancelled.emit(self._id)
            else:
                self._signals.failed.emit(self._id, exc)
        else:
            if self._token():
                self._signals.cancelled.emit(self._id)
            else:
                self._signals.finished.emit(self._id, result)


@dataclass
class Request:
    """A submitted job: its key, id, cancel token and the GUI-thread callbacks."""

    key: str
    id: int
    token: CancelToken
    on_done: Callable[[Any], None] | None
    on_error: Callable[[BaseException], None] | None
    on_progress: Callable[[float, str], None] | None
    on_cancelled: Callable[[], None] | None
    signals: _JobSignals = field(repr=False, default=None)  # type: ignore[assignment]

    def cancel(self) -> None:
        """Ask the job to stop; its result, if any, is dropped."""
        self.token.set()

    @property
    def cancelled(self) -> bool:
        return self.token()


class WorkerPool(QObject):
    """Runs jobs on a QThreadPool and delivers their outcome on the GUI thread.

    Signals (all on the GUI thread): ``busy_changed(bool)`` when the first job starts or
    the last one ends; ``progress(key, fraction, message)`` for every job's progress;
    ``error(key, exception)`` for a job that raised and has no ``on_error``.
    """

    busy_changed = Signal(bool)
    progress = Signal(str, float, str)
    error = Signal(str, object)

    def __init__(self, parent: QObject | None = None, *, max_threads: int = 2) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max_threads)
        self._ids = itertools.count(1)
        self._requests: dict[int, Request] = {}
        self._latest: dict[str, int] = {}

    # -- submitting --------------------------------------------------------------------
    def submit(
        self,
        key: str,
        fn: JobFn,
        *,
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        on_progress: Callable[[float, str], None] | None = None,
        on_cancelled: Callable[[], None] | None = None,
    ) -> Request:
        """Run ``fn(progress, cancel)`` off the GUI thread; a newer request of ``key``
        cancels the one already running under that key."""
        stale = self._latest.get(key)
        if stale is not None and stale in self._requests:
            self._requests[stale].cancel()
        request_id = next(self._ids)
        signals = _JobSignals()  # lives on the GUI thread; emits from the pool are queued
        signals.progress.connect(self._on_progress, Qt.ConnectionType.QueuedConnection)
        signals.finished.connect(self._on_finished, Qt.ConnectionType.QueuedConnection)
        signals.failed.connect(self._on_failed, Qt.ConnectionType.QueuedConnection)
        signals.cancelled.connect(self._on_cancelled, Qt.ConnectionType.QueuedConnection)
        request = Request(
            key, request_id, CancelToken(), on_done, on_error, on_progress, on_cancelled, signals
        )
        was_idle = not self._requests
        self._requests[request_id] = request
        self._latest[key] = request_id
        if was_idle:
            self.busy_changed.emit(True)
        self._pool.start(_Job(request_id, fn, request.token, signals))
        return request

    def cancel(self, key: str | None = None) -> None:
        """Cancel the running request of ``key``, or every request when ``key`` is None."""
        for request in list(self._requests.values()):
            if key is None or request.key == key:
                request.cancel()

    def is_busy(self, key: str | None = None) -> bool:
        return any(key is None or r.key == key for r in self._requests.values())

    def wait_for_done(self, msecs: int = -1) -> bool:
        """Block until the pool threads finish (for shutdown and tests; never in a slot)."""
        return self._pool.waitForDone(msecs)

    # -- delivery on the GUI thread ----------------------------------------------------
    def _retire(self, request_id: int) -> Request | None:
        request = self._requests.pop(request_id, None)
        if request is not None and self._latest.get(request.key) == request_id:
            del self._latest[request.key]
        if request is not None and not self._requests:
            self.busy_changed.emit(False)
        return request

    @Slot(int, float, str)
    def _on_progress(self, request_id: int, fraction: float, message: str) -> None:
        request = self._requests.get(request_id)
        if request is None or request.cancelled:
            return
        self.progress.emit(request.key, fraction, message)
        if request.on_progress is not None:
            request.on_progress(fraction, message)

    @Slot(int, object)
    def _on_finished(self, request_id: int, result: object) -> None:
        request = self._retire(request_id)
        if request is None:
            return
        if request.cancelled:
            if request.on_cancelled is not None:
                request.on_cancelled()
            return
        if request.on_done is not None:
            request.on_done(result)

    @Slot(int, object)
    def _on_failed(self, request_id: int, exc: object) -> None:
        request = self._retire(request_id)
        if request is None or request.cancelled:
            return
        log.error("job %r failed", request.key, exc_info=exc)  # type: ignore[arg-type]
        if request.on_error is not None:
            request.on_error(exc)  # type: ignore[arg-type]
        else:
            self.error.emit(request.key, exc)

    @Slot(int)
    def _on_cancelled(self, request_id: int) -> None:
        request = self._retire(request_id)
        if request is not None and request.on_cancelled is not None:
            request.on_cancelled()
