"""Networks of LesionViewer, built by name through :func:`core.models.registry.build_model`."""

from __future__ import annotations

from core.models.registry import available, build_model, register

__all__ = ["available", "build_model", "register"]
