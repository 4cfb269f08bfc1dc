"""Starting a training run from a trained model folder (``--init-from``) and recording it."""

from __future__ import annotations

from pathlib import Path

import torch

from core.errors import ModelError


def load_warm_start(model: torch.nn.Module, folder: Path, arch: str, arch_kwargs: dict) -> dict:
    """Copy a model folder's weights (SHA-256 checked) into ``model`` and return its
    provenance for ``model.json``: name, version, sha256 and the folder's own training
    record, so a chain of runs stays traceable back to its first random initialisation.

    The folder must hold the same architecture with the same ``arch_kwargs``; anything else
    is refused with a ModelError naming the folder.
    """
    from core.model_folder import load_model_folder

    source, meta = load_model_folder(folder, "cpu")
    if meta["architecture"] != arch or meta["arch_kwargs"] != arch_kwargs:
        raise ModelError(folder, "architecture differs from the config's; cannot start from it")
    model.load_state_dict(source.state_dict())
    return {
        "name": meta["name"],
        "version": meta["version"],
        "sha256": meta["sha256"],
        "training": meta.get("training"),
        "data": meta.get("data"),
    }
