"""LesionViewer's inference library: photos, networks, tiled inference, lesions, tracking.

No Qt here: the app and the training package both build on this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.errors import DataError, LesionViewerError, ModelError, PhotoError
from core.io import load_photo
from core.types import Detection, Lesion, LesionMatch, ModelInfo, Tracking

if TYPE_CHECKING:
    from core.analyzer import Analyzer

__all__ = [
    "Analyzer",
    "DataError",
    "Detection",
    "Lesion",
    "LesionMatch",
    "LesionViewerError",
    "ModelError",
    "ModelInfo",
    "PhotoError",
    "Tracking",
    "load_photo",
]


def __getattr__(name: str) -> Any:
    # The analyzer pulls in torch; keep `import core` cheap for readers of photos.
    if name == "Analyzer":
        from core.analyzer import Analyzer

        return Analyzer
    raise AttributeError(f"module 'core' has no attribute {name!r}")
