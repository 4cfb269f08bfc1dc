"""Reports of a patient or a visit: the lesion table (flagged first), CSV and JSON of the
lesions, an annotated PDF (Qt, imported lazily), and a de-identified option.

    report = collect_report(store, patient_id, visit_id=None, deidentify=False)
    export_report(store, patient_id, out_dir, visit_id=..., deidentify=True)

CSV/JSON need no Qt; only :mod:`lesionviewer.reports.pdf` imports PySide6.
"""

from lesionviewer.reports.export import export_report
from lesionviewer.reports.tables import (
    HIGH_P_MALIGNANT,
    LesionRow,
    ReportData,
    collect_report,
)

__all__ = ["HIGH_P_MALIGNANT", "LesionRow", "ReportData", "collect_report", "export_report"]
