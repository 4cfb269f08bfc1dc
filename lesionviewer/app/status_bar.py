"""The status bar: device, model versions, progress of the running job and its cancel."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QProgressBar, QPushButton, QStatusBar, QWidget

from lesionviewer.workers import WorkerPool


class AppStatusBar(QStatusBar):
    """Shows ``device_text`` and ``models_text`` permanently and the workers' progress."""

    def __init__(self, workers: WorkerPool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._workers = workers
        self.device_label = QLabel("Device: ...")
        self.models_label = QLabel("Models: not loaded")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setFixedWidth(180)
        self.progress.setTextVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the running analysis (what is saved stays)")
        for w in (self.progress, self.cancel_button):
            w.setVisible(False)
        self.addPermanentWidget(self.progress)
        self.addPermanentWidget(self.cancel_button)
        self.addPermanentWidget(self.models_label)
        self.addPermanentWidget(self.device_label)
        self.cancel_button.clicked.connect(self._on_cancel)
        workers.progress.connect(self._on_progress)
        self._job_keys = {"analysis", "import"}

    def set_device(self, text: str) -> None:
        self.device_label.setText(f"Device: {text}")

    def set_models(self, text: str) -> None:
        self.models_label.setText(f"Models: {text}")

    def job_started(self, message: str) -> None:
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.cancel_button.setVisible(True)
        self.showMessage(message)

    def job_ended(self, message: str = "") -> None:
        self.progress.setVisible(False)
        self.cancel_button.setVisible(False)
        self.showMessage(message, 8000)

    def _on_progress(self, key: str, fraction: float, message: str) -> None:
        if key in self._job_keys:
            self.progress.setValue(int(round(fraction * 1000)))
            if message:
                self.showMessage(message)

    def _on_cancel(self) -> None:
        for key in self._job_keys:
            self._workers.cancel(key)
        self.showMessage("cancelling...")
