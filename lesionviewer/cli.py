"""`lesionviewer`: the app (no subcommand) and its headless subcommands.

Each subcommand lives in its own module, which defines ``configure(parser)`` and
``run(args) -> int``. Errors from bad input print one line naming the file and the
reason and exit non-zero.
"""

from __future__ import annotations

import argparse
import sys

from core.errors import LesionViewerError
from core.subcommands import add_subcommands

#: subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "analyze": ("lesionviewer.commands.analyze", "detect lesions on photos; JSON and overlay"),
    "track": ("lesionviewer.commands.track", "track lesions from photo A to photo B"),
    "bench": ("lesionviewer.bench", "measure speed and memory (medians, ratios)"),
    "export-corrections": (
        "lesionviewer.commands.export_corrections",
        "write clinicians' corrections as labelled training data",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lesionviewer", description=__doc__.splitlines()[0])
    parser.add_argument("--demo", action="store_true", help="open a demo patient")
    parser.add_argument("--self-test", action="store_true", help="check the installation")
    parser.add_argument("--data-dir", help="store folder (default: the user's data folder)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    from lesionviewer.self_test import add_options

    add_options(parser)  # --models, --self-test-photos, --self-test-out, hidden --startup-probe
    sub = parser.add_subparsers(dest="command")
    add_subcommands(sub, COMMANDS)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command:
            return int(args._run(args) or 0)
        if args.self_test:
            from lesionviewer.self_test import run_self_test

            return run_self_test(args)
        if args.startup_probe:
            from lesionviewer.startup_probe import run_startup_probe

            return run_startup_probe(args)
        from lesionviewer.app.launch import launch

        return launch(args)
    except LesionViewerError as exc:
        print(f"lesionviewer: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
