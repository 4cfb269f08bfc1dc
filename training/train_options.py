"""Command-line options every trainer (`lesion-train detector`, `tracker`) shares."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_common_training_options(
    parser: argparse.ArgumentParser, *, task: str, default_config: Path
) -> None:
    """--config, --out, --work-dir, --resume, --device, --epochs, --time-limit-min and
    --init-from.

    ``task`` names the defaults: the model folder ``resources/models/<task>`` and the
    checkpoint folder ``runs/<task>``.
    """
    parser.add_argument("--config", type=Path, default=default_config, help="recipe (JSON)")
    parser.add_argument(
        "--out", type=Path, default=Path("resources/models") / task, help="model folder"
    )
    parser.add_argument(
        "--work-dir", type=Path, default=Path("runs") / task, help="checkpoints and logs"
    )
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    parser.add_argument(
        "--time-limit-min",
        type=float,
        default=None,
        help="stop after the epoch that would otherwise end past this many minutes "
        "(the model is saved and model.json says so; --resume can finish the schedule)",
    )
    parser.add_argument(
        "--init-from",
        type=Path,
        default=None,
        help="start from the weights of this model folder (same architecture); "
        "its identity and training record are stored in the new model.json",
    )
