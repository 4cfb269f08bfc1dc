"""Find shipped resources (models, icons, demo data) from source and from a frozen build."""

from __future__ import annotations

import sys
from pathlib import Path


def resources_root() -> Path:
    """The folder that holds ``models/``, ``icons/`` and ``demo/``.

    In a PyInstaller build the folder is unpacked next to the executable (``sys._MEIPASS``);
    from source or from an installed wheel it is the ``resources`` package.
    """
    frozen_base = getattr(sys, "_MEIPASS", None)
    if frozen_base is not None:
        return Path(frozen_base) / "resources"
    import resources  # the package that holds the shipped files

    return Path(resources.__file__).resolve().parent


def resource_path(*parts: str) -> Path:
    """Path of a shipped resource, e.g. ``resource_path("models", "detector")``."""
    return resources_root().joinpath(*parts)


def models_dir() -> Path:
    """The folder of shipped model folders."""
    return resource_path("models")
