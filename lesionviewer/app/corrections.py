"""Clinicians' corrections, all through the Store API (stored, audited, kept on
re-analysis): add a missed lesion, delete a false one, change its class, re-link a
match, split a track, edit a lesion's notes, status and biopsy result."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal

from lesionviewer.app.session import AppSession


class CorrectionsController(QObject):
    """Each method writes through the store and re-reads the patient.

    ``corrected(message)`` says what was done (for the status bar).
    """

    corrected = Signal(str)

    def __init__(self, session: AppSession) -> None:
        super().__init__()
        self.session = session

    @property
    def store(self):
        return self.session.store

    def _done(self, message: str) -> None:
        self.session.reload()
        self.corrected.emit(message)

    def add_lesion(self, photo_id: int, contour: np.ndarray, *, malignant: bool = False) -> int:
        """A lesion the machine missed, outlined as (N, 2) (x, y) photo pixels."""
        outline = [(float(x), float(y)) for x, y in np.asarray(contour).reshape(-1, 2)]
        obs = self.store.add_manual_observation(photo_id, outline, malignant=malignant)
        self._done(f"added lesion {obs.lesion_label} ({obs.class_name}); right-click to change")
        return obs.id

    def apply(self, action: str, observation_id: int) -> None:
        """``action`` in {"delete", "benign", "malignant"} (from a context menu)."""
        if action == "delete":
            obs = self.store.delete_observation(observation_id, reason="not a lesion")
            self._done(f"deleted {obs.lesion_label} from this photo")
        elif action in ("benign", "malignant"):
            obs = self.store.set_class(observation_id, action)
            self._done(f"{obs.lesion_label} is now {action}")
        else:
            raise ValueError(f"unknown correction {action!r}")

    def relink(self, observation_a: int, observation_b: int) -> None:
        """B's observation is the same lesion as A's."""
        lesion_id = self.store.get_observation(observation_a).lesion_id
        obs = self.store.relink(observation_b, lesion_id)
        self._done(f"linked as {obs.lesion_label}")

    def split(self, observation_b: int) -> None:
        """B's observation (and the lesion's later ones) is a different lesion."""
        lesion = self.store.split_track(observation_b)
        self._done(f"split off as new lesion {lesion.label}")

    def save_lesion(self, lesion_id: int, changes: dict) -> None:
        lesion = self.store.update_lesion(lesion_id, **changes)
        self._done(f"saved notes of {lesion.label}")
