"""`lesionviewer bench [--only detection,tracking,gui] [--json OUT] [--repeats N]`.

Measures speed and memory on this machine and prints a table; ``--json OUT`` also
writes ``{"schema": 1, "machine": {...}, "results": [measurement, ...]}``.

Sections are modules ``lesionviewer.bench.<section>`` (skipped when not present in the
build). Each defines ``measure(options: BenchOptions) -> list[Measurement]``: medians
of repeated runs, and ratios computed from measurements of the same process/run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

SECTIONS = ("detection", "tracking", "gui")


@dataclass(frozen=True)
class BenchOptions:
    """What every section gets: repeats per measurement, device request, model folder."""

    repeats: int = 5
    device: str = "auto"
    model: str | None = None
    quick: bool = False


@dataclass(frozen=True)
class Measurement:
    """One benchmark figure.

    value in ``unit``; ``target`` in words (e.g. ">= 0.40"), ``ok`` whether it holds
    (None when there is no target); ``note`` says how it was measured.
    """

    section: str
    name: str
    value: float
    unit: str
    target: str = ""
    ok: bool | None = None
    note: str = ""

    def to_json(self) -> dict:
        return asdict(self)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma list of sections ({', '.join(SECTIONS)})"
    )
    parser.add_argument("--json", metavar="OUT", help="write the results as JSON")
    parser.add_argument("--repeats", type=int, default=5, help="runs per measurement (median)")
    parser.add_argument(
        "--device", dest="bench_device", default=None, help="auto, cpu or cuda (default auto)"
    )
    parser.add_argument("--model", metavar="DIR", help="detector model folder to time")
    parser.add_argument("--quick", action="store_true", help="smaller photos, fewer runs")


def machine() -> dict:
    """Where the figures come from."""
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def _format_value(value: float) -> str:
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-2):
        return f"{value:.3g}"
    return f"{value:.3f}".rstrip("0").rstrip(".")


def print_table(results: list[Measurement], stream: TextIO | None = None) -> None:
    """Print ``results`` as an aligned text table (to stdout by default)."""
    stream = stream or sys.stdout
    rows = [("section", "measurement", "value", "unit", "target", "ok")]
    for m in results:
        ok = "" if m.ok is None else ("yes" if m.ok else "NO")
        rows.append((m.section, m.name, _format_value(m.value), m.unit, m.target, ok))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for index, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)), file=stream)
        if index == 0:
            print("  ".join("-" * w for w in widths), file=stream)


def run(args: argparse.Namespace) -> int:
    options = BenchOptions(
        repeats=max(1, int(args.repeats)),
        device=args.bench_device or getattr(args, "device", None) or "auto",
        model=args.model,
        quick=bool(args.quick),
    )
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        print(f"lesionviewer: bench: unknown section(s) {', '.join(unknown)}", file=sys.stderr)
        return 2
    results: list[Measurement] = []
    for section in wanted:
        module_name = f"{__name__}.{section}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            print(f"bench: section {section} is not in this build, skipped", file=sys.stderr)
            continue
        for item in module.measure(options):
            results.append(item if isinstance(item, Measurement) else Measurement(**item))
        print_table([m for m in results if m.section == section])
        print()
    if args.json:
        document = {
            "schema": 1,
            "machine": machine(),
            "options": asdict(options),
            "results": [m.to_json() for m in results],
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0
