"""Subcommands of the project's command lines, each in its own lazily imported module.

Both ``lesionviewer`` and ``lesion-train`` list their subcommands as
``name -> (module, one-line help)``; each module defines ``configure(parser)`` and
``run(args) -> int``. Importing only the modules that exist lets a slim (frozen) build
leave subcommands out.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Mapping


def add_subcommands(
    subparsers: argparse._SubParsersAction, commands: Mapping[str, tuple[str, str]]
) -> None:
    """Add one parser per available command; its ``args._run`` is the module's ``run``."""
    for name, (module_name, help_text) in commands.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # subcommand not available in this build
        parser = subparsers.add_parser(name, help=help_text, description=help_text)
        module.configure(parser)
        parser.set_defaults(_run=module.run)
