"""`lesionviewer export-corrections --data-dir D --out DIR`: clinicians' corrections as
labelled data (crops, masks, a PAD-UFES-20-like labels.csv and labels.json) that
``lesion-train`` reads as a real lesion folder. Format: lesionviewer.store.export_corrections.
"""

from __future__ import annotations

import argparse

from lesionviewer.store import Store
from lesionviewer.store.export_corrections import export_corrections


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        default=argparse.SUPPRESS,
        help="store folder (default: LESIONVIEWER_DATA_DIR or the user's data folder)",
    )
    parser.add_argument("--out", required=True, help="output folder (created)")


def run(args: argparse.Namespace) -> int:
    with Store.open(getattr(args, "data_dir", None), readonly=True) as store:
        summary = export_corrections(store, args.out)
    print(
        f"wrote {summary.lesions} corrected lesions and {summary.rejected} rejected "
        f"detections to {summary.out_dir}"
    )
    return 0
