"""Small randomly initialised detector model folders for tests of the loading/inference code.

These test the machinery (files, hashes, tiling, post-processing), not the shipped model.
"""

from __future__ import annotations

from pathlib import Path

import torch

from core.model_folder import save_model_folder
from core.models import build_model

TINY_KWARGS = {
    "widths": [16, 16, 32, 32],
    "depths": [1, 1, 1, 1],
    "decoder_widths": [16, 16, 16],
}


def make_model_folder(
    folder: Path, *, seed: int = 0, meta: dict | None = None, fine_width: int = 0
) -> str:
    """Write a tiny random ``lesion_fcn`` model folder (stride 4, or 2 with ``fine_width``);
    return its SHA-256."""
    generator = torch.Generator().manual_seed(seed)
    kwargs = dict(TINY_KWARGS, fine_width=fine_width) if fine_width else TINY_KWARGS
    model = build_model("lesion_fcn", **kwargs)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    info = {"name": "test-detector", "version": "0.0-test", "tile": {"size": 128, "overlap": 32}}
    info.update(meta or {})
    return save_model_folder(folder, model, arch="lesion_fcn", arch_kwargs=kwargs, meta=info)
