"""Starting a training run from a trained model folder (``--init-from``) and recording it."""

from __future__ import annotations

from pathlib import Path

import torch

from core.errors import ModelError


def load_warm_start(model: torch.nn.Module, folder: Path, arch: str, arch_kwargs: dict) -> dict:
    """Copy a model folder's weights (SHA-256 checked) into ``model`` and return its
    provenance for ``model.json``: name, version, sha256, the folder's own training record
    and, when the config's network differs from the folder's, the names of the parameters
    that start fresh (``new_parameters``) and of the folder's that are left out
    (``dropped_parameters``), so a chain of runs stays traceable back to its first random
    initialisation.

    The folder must hold the same architecture. Its ``arch_kwargs`` may differ only where
    the config's network *adds* modules (the detector's ``fine_width``) or *leaves some
    out* (a smaller entry of the detector's ``depths``: a stage's last convs): every tensor
    the two networks share by name must have the same shape; added ones keep their own
    initialisation, and the folder's others are not copied. A network whose shared tensors
    do not fit is refused with a ModelError naming the folder.
    """
    from core.model_folder import load_model_folder

    source, meta = load_model_folder(folder, "cpu")
    if meta["architecture"] != arch:
        raise ModelError(folder, "architecture differs from the config's; cannot start from it")
    state = source.state_dict()
    target = model.state_dict()
    new_parameters: list[str] = []
    dropped_parameters: list[str] = []
    if meta["arch_kwargs"] != arch_kwargs:
        mismatched = [
            key for key, tensor in state.items()
            if key in target and target[key].shape != tensor.shape
        ]  # fmt: skip
        if mismatched:
            raise ModelError(
                folder,
                f"network differs from the config's ({len(mismatched)} tensors do not fit, "
                f"e.g. {mismatched[0]}); cannot start from it",
            )
        new_parameters = sorted(key for key in target if key not in state)
        dropped_parameters = sorted(key for key in state if key not in target)
        state = {key: tensor for key, tensor in state.items() if key in target}
    model.load_state_dict(state, strict=not new_parameters)
    record = {
        "name": meta["name"],
        "version": meta["version"],
        "sha256": meta["sha256"],
        "training": meta.get("training"),
        "data": meta.get("data"),
    }
    if new_parameters or dropped_parameters:
        record["arch_kwargs"] = meta["arch_kwargs"]
    if new_parameters:
        record["new_parameters"] = new_parameters
    if dropped_parameters:
        record["dropped_parameters"] = dropped_parameters
    return record
