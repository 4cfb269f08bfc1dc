"""`lesion-train`: the training package's command line.

Each subcommand lives in its own module, which defines ``configure(parser)`` and
``run(args) -> int``; this file only dispatches, so that a subcommand's heavy imports
(torch, OpenCV) happen only when it runs.
"""

from __future__ import annotations

import argparse
import sys

from core.errors import LesionViewerError
from core.subcommands import add_subcommands

#: subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "sources": ("training.sources.cli", "inspect lesion and body sources, write previews"),
    "synth": ("training.synthesis.cli", "write a fixed synthetic dataset (detection or pairs)"),
    "detector": ("training.train_detector", "train the detection network"),
    "evaluate-detector": ("training.evaluate_detector", "evaluate a detector and its baseline"),
    "mine-negatives": (
        "training.hard_negatives",
        "find a detector's confident false positives on a synthetic pool (hard negatives)",
    ),
    "verifier": (
        "training.train_verifier",
        "train a detector's second stage, the verifier of its candidate regions",
    ),
    "malignancy": (
        "training.train_malignancy",
        "train a detector's third stage, the malignancy classifier of its listed regions",
    ),
    "sliding-window": (
        "training.baselines.sliding_window",
        "train the sliding-window patch-classifier baseline of the detector",
    ),
    "tracker": ("training.train_tracker", "train the tracking network"),
    "evaluate-tracker": ("training.evaluate_tracker", "evaluate a tracker and its baselines"),
    "export-onnx": ("training.export_onnx", "export model folders to model.onnx (ONNX Runtime)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lesion-train", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add_subcommands(sub, COMMANDS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except LesionViewerError as exc:
        print(f"lesion-train {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
