"""The dependency law of ARCHITECTURE.md: lesionviewer -> core, training -> core."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO_ROOT


def test_import_linter_contracts_hold() -> None:
    exe = shutil.which("lint-imports")
    if exe is None:
        pytest.skip("import-linter is not installed")
    result = subprocess.run([exe], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_core_and_training_import_without_qt() -> None:
    """Import every core and training module with Qt made unimportable."""
    script = textwrap.dedent(
        """
        import importlib, pkgutil, sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {"PySide6", "shiboken6", "pyqtgraph", "lesionviewer"}:
                    raise ImportError("blocked by the dependency law: " + name)
                return None

        sys.meta_path.insert(0, Block())
        import core, training
        for package in (core, training):
            for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
                importlib.import_module(info.name)
        banned = {"PySide6", "pyqtgraph", "lesionviewer"}
        bad = [m for m in sys.modules if m.split(".")[0] in banned]
        assert not bad, bad
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr
