"""Patient-level train/holdout split of PAD-UFES-20 style labels tables.

Patients held out here never enter synthesis; the evaluation reports real AUC on them.
The split is deterministic and stable: each patient's side depends only on a hash of its
id, so adding patients to the table never moves an existing patient across the split.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from core.errors import DataError
from training.sources.base import DIAGNOSIS_CLASS, MALIGNANT
from training.sources.real_lesions import _line, _read_csv

#: Fraction of patients held out, within each stratum (any malignant lesion or none).
HOLDOUT_FRACTION = 0.3
_SALT = "lesionviewer/pad-ufes-holdout/v1"


def _rank(patient: str) -> str:
    return hashlib.sha256(f"{_SALT}:{patient}".encode()).hexdigest()


def _is_malignant(row: dict[str, str], table: Path, number: int) -> bool:
    value = (row.get("malignant") or "").strip().lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no"):
        return False
    code = (row.get("diagnostic") or "").strip().upper()
    if code not in DIAGNOSIS_CLASS:
        raise DataError(table, f"line {number}: unknown diagnosis {row.get('diagnostic')!r}")
    return DIAGNOSIS_CLASS[code] == MALIGNANT


def pad_ufes_holdout(
    labels_csv_path: str | Path, *, fraction: float = HOLDOUT_FRACTION
) -> tuple[set[str], set[str]]:
    """Split the patients of a PAD-UFES-20 labels table into (train, holdout) id sets.

    A patient is malignant when any of its lesions is (``malignant`` column, or the
    ``diagnostic`` code when that column is absent). Within the malignant and the benign
    patients, ``round(fraction * n)`` patients with the smallest salted SHA-256 of their
    id are held out. Ids are the ``patient_id`` strings as written in the table.
    Raises DataError for a missing file or column.
    """
    table = Path(labels_csv_path)
    if not table.is_file():
        raise DataError(table, "labels table not found")
    columns, rows = _read_csv(table)
    if "patient_id" not in columns or not ({"malignant", "diagnostic"} & set(columns)):
        raise DataError(table, "missing column(s): needs patient_id and malignant or diagnostic")
    malignant: dict[str, bool] = {}
    for index, row in enumerate(rows):
        number = _line(row, index + 2)
        patient = (row.get("patient_id") or "").strip()
        if not patient:
            raise DataError(table, f"line {number}: empty patient_id")
        malignant[patient] = malignant.get(patient, False) or _is_malignant(row, table, number)
    holdout: set[str] = set()
    for flag in (True, False):
        stratum = sorted((p for p, m in malignant.items() if m == flag), key=_rank)
        holdout.update(stratum[: round(fraction * len(stratum))])
    return set(malignant) - holdout, holdout
