"""The one worker mechanism: results on the GUI thread, stale requests cancelled."""

from __future__ import annotations

import threading
import time

import pytest
from PySide6.QtCore import QThread
from PySide6.QtWidgets import QApplication

from core.errors import Cancelled as CoreCancelled
from lesionviewer.workers import WorkerPool


@pytest.fixture
def pool(qtbot):
    workers = WorkerPool()
    yield workers
    workers.cancel()
    workers.wait_for_done(5000)


def test_result_and_progress_arrive_on_the_gui_thread(qtbot, pool) -> None:
    seen: dict = {}

    def job(progress, cancel):
        seen["job_thread"] = QThread.currentThread()
        progress(0.5, "half")
        return 42

    def done(value):
        seen["value"] = value
        seen["done_thread"] = QThread.currentThread()

    progress_seen = []
    pool.submit("k", job, on_done=done, on_progress=lambda f, m: progress_seen.append((f, m)))
    qtbot.waitUntil(lambda: "value" in seen, timeout=5000)
    gui = QApplication.instance().thread()
    assert seen["value"] == 42
    assert seen["done_thread"] is gui
    assert seen["job_thread"] is not gui
    assert progress_seen == [(0.5, "half")]
    assert not pool.is_busy()


def test_newer_request_cancels_the_stale_one(qtbot, pool) -> None:
    started = threading.Event()
    outcome: list = []

    def slow(progress, cancel):
        started.set()
        while not cancel():
            time.sleep(0.005)
        raise CoreCancelled("slow job")  # what core raises when cancel() says True

    pool.submit(
        "view",
        slow,
        on_done=lambda v: outcome.append("stale done"),
        on_cancelled=lambda: outcome.append("stale cancelled"),
    )
    assert started.wait(5)
    pool.submit("view", lambda p, c: "fresh", on_done=outcome.append)
    qtbot.waitUntil(lambda: len(outcome) == 2, timeout=5000)
    assert sorted(outcome) == ["fresh", "stale cancelled"]


def test_a_failing_job_reports_its_exception(qtbot, pool) -> None:
    errors: list = []

    def bad(progress, cancel):
        raise ValueError("broken photo")

    pool.submit("k", bad, on_error=errors.append)
    qtbot.waitUntil(lambda: bool(errors), timeout=5000)
    assert isinstance(errors[0], ValueError) and "broken photo" in str(errors[0])


def test_cancel_by_key_stops_a_job_at_its_next_progress(qtbot, pool) -> None:
    started = threading.Event()
    cancelled: list = []

    def long_job(progress, cancel):
        started.set()
        for i in range(2000):
            progress(i / 2000)  # raises once the request is cancelled
            time.sleep(0.002)
        return "finished"

    pool.submit(
        "analysis",
        long_job,
        on_done=cancelled.append,
        on_cancelled=lambda: cancelled.append("cancelled"),
    )
    assert started.wait(5)
    pool.cancel("analysis")
    qtbot.waitUntil(lambda: bool(cancelled), timeout=5000)
    assert cancelled == ["cancelled"]
