"""Child processes for the fault tests: write to a store in a loop until killed.

After each write returns, the child appends one line to ``done_file`` and flushes it to
disk, so the parent knows what the store claims to have saved before the kill.
"""

from __future__ import annotations

import os
from pathlib import Path


def _report(done_file: Path, text: str) -> None:
    with open(done_file, "a") as handle:
        handle.write(text + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def import_forever(data_dir: str, work_dir: str, done_file: str) -> None:
    """Import a new random photo per iteration into one visit, forever."""
    from lesionviewer.store import Store
    from tests.lesionviewer.store_samples import write_photo

    store = Store.open(data_dir, actor="child")
    visit_id = store.list_visits(store.list_patients()[0].id)[0].id
    index = 0
    while True:
        path = write_photo(Path(work_dir) / f"photo_{index}.png", 1000 + index, width=256)
        result = store.import_photo(visit_id, path)
        _report(Path(done_file), result.photo.sha256)
        index += 1


def analyse_forever(data_dir: str, photo_id: int, done_file: str) -> None:
    """Save a detection with many lesions on one photo, again and again."""
    from lesionviewer.store import Store
    from tests.lesionviewer.store_samples import detection, square_lesion

    store = Store.open(data_dir, actor="child")
    shift = 0
    while True:
        shift = (shift + 1) % 3
        lesions = [
            square_lesion(i + 1, (i % 12) * 5 + shift, (i // 12) * 5, size=4) for i in range(108)
        ]
        saved = store.save_detection(photo_id, detection(lesions))
        _report(Path(done_file), str(saved.analysis.id))
