"""``lesion-train export-onnx MODEL_DIR...``: write model.onnx for the ONNX Runtime backend.

For each model folder (detector or tracker) the network is exported (see
:mod:`core.onnx_export`), checked against torch, and model.json gains its ``"onnx"`` entry
(nothing else in model.json changes). The desktop build runs its networks from these files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.onnx_export import DEFAULT_OPSET, export_onnx


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dirs", nargs="+", type=Path, metavar="MODEL_DIR")
    parser.add_argument(
        "--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})"
    )


def run(args: argparse.Namespace) -> int:
    for folder in args.model_dirs:
        entry = export_onnx(folder, opset=args.opset)
        size_mb = (folder / entry["file"]).stat().st_size / 1e6
        check = entry.get("check_max_abs_diff")
        checked = (
            f"max |onnx - torch| {check:g}" if check is not None else "unchecked (no onnxruntime)"
        )
        print(
            f"{folder}: {entry['file']} ({entry['kind']}, opset {entry['opset']}, "
            f"{size_mb:.1f} MB, sha256 {entry['sha256'][:12]}...), {checked}"
        )
    return 0
