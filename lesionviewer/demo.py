"""``lesionviewer --demo``: a demo patient with two visits of synthetic body photos, already
analysed and tracked, so a new user sees every feature at once.

The photos ship in ``resources/demo/`` as small JPEGs named ``visit1_<site>.jpg`` and
``visit2_<site>.jpg`` (made once by ``training/make_demo_assets.py`` from the synthesis
package's temporal pairs; the app never imports training).
"""

from __future__ import annotations

import logging
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from core.errors import DataError, LesionViewerError
from core.resources import resource_path

log = logging.getLogger(__name__)

DEMO_NAME = "Demo Patient"
DEMO_RECORD = "DEMO-0001"
#: Visit dates of the demo (a year apart, as a yearly skin check).
DEMO_DATES = ("2024-03-12", "2025-03-18")
_NAME = re.compile(r"visit([12])_(.+)\.jpe?g$", re.IGNORECASE)


def demo_photos(folder: Path | None = None) -> dict[int, list[tuple[Path, str]]]:
    """The demo photos by visit (1, 2): [(file, body site)], sorted by site.

    Raises DataError when the folder lacks photos for both visits.
    """
    folder = Path(folder) if folder is not None else resource_path("demo")
    found: dict[int, list[tuple[Path, str]]] = {1: [], 2: []}
    for path in sorted(folder.glob("*")):
        match = _NAME.match(path.name)
        if match:
            found[int(match.group(1))].append((path, match.group(2).replace("_", " ")))
    if not found[1] or not found[2]:
        raise DataError(
            folder, "demo photos missing (need visit1_<site>.jpg and visit2_<site>.jpg)"
        )
    return found


def ensure_demo(
    data_dir: str | Path | None,
    *,
    device: str = "auto",
    photos_folder: Path | None = None,
    detector: Path | None = None,
    tracker: Path | None = None,
    say: Callable[[str], None] | None = None,
) -> tuple[Path, int]:
    """Create (once) the demo patient in ``data_dir`` (None: a new temporary folder),
    import its photos, analyse them and track visit 1 -> visit 2.

    Returns (data folder, patient id). An existing demo patient is reused as it is.
    Without usable models the photos are imported unanalysed and a warning is said.
    """
    from lesionviewer.app.analysis_jobs import AnalyzerHolder, PairJob, PhotoJob, run_analysis
    from lesionviewer.store import Store

    say = say or (lambda text: print(f"lesionviewer: {text}", file=sys.stderr))
    folder = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="lesionviewer-demo-"))
    with Store.open(folder) as store:
        for patient in store.search_patients(DEMO_RECORD):
            if patient.record_number == DEMO_RECORD:
                return store.data_dir, patient.id
        photos = demo_photos(photos_folder)
        say(f"creating the demo patient in {store.data_dir}")
        patient = store.add_patient(
            DEMO_NAME,
            record_number=DEMO_RECORD,
            birth_date="1970-01-01",
            sex="F",
            notes="Synthetic demo data: not a real person.",
        )
        jobs: dict[int, list[PhotoJob]] = {}
        for number, date in zip((1, 2), DEMO_DATES, strict=True):
            visit = store.add_visit(patient.id, date, notes="demo")
            jobs[number] = []
            for path, site in photos[number]:
                stored = store.import_photo(visit.id, path, body_site=site).photo
                jobs[number].append(PhotoJob(stored.id, stored.path, stored.sha256))
        data_folder = store.data_dir
    sites_2 = {
        Path(p).name.split("_", 1)[1]: job for (p, _), job in zip(photos[2], jobs[2], strict=True)
    }
    pairs = tuple(
        PairJob(job, sites_2[Path(p).name.split("_", 1)[1]])
        for (p, _), job in zip(photos[1], jobs[1], strict=True)
        if Path(p).name.split("_", 1)[1] in sites_2
    )
    holder = AnalyzerHolder(device, detector=detector, tracker=tracker)
    say(f"analysing {len(jobs[1]) + len(jobs[2])} demo photos and tracking {len(pairs)} pairs")
    try:
        outcome = run_analysis(
            data_folder,
            holder,
            tuple(jobs[1] + jobs[2]),
            pairs,
            progress=lambda fraction, message="": None,
            cancel=lambda: False,
        )
    except Exception as exc:  # the demo still opens: photos without analysis
        log.warning(
            "demo analysis failed: %s", exc, exc_info=not isinstance(exc, LesionViewerError)
        )
        say(f"warning: the demo photos could not be analysed ({exc}); analyse them in the app")
    else:
        say(f"demo ready: {outcome.lesions} lesions, {outcome.links} tracked across visits")
    return data_folder, patient.id
