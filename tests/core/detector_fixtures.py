"""Small randomly initialised detector model folders for tests of the loading/inference code.

These test the machinery (files, hashes, tiling, post-processing), not the shipped model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from core.model_folder import save_model_folder
from core.models import build_model
from core.types import Lesion

TINY_KWARGS = {
    "widths": [16, 16, 32, 32],
    "depths": [1, 1, 1, 1],
    "decoder_widths": [16, 16, 16],
}


#: a small candidate verifier (core.models.verifier)
TINY_VERIFIER = {"widths": [8, 8, 8], "hidden": 8}
#: a small malignancy classifier (core.models.malignancy)
TINY_MALIGNANCY = {"widths": [8, 8, 8], "hidden": 8}


def make_model_folder(
    folder: Path,
    *,
    seed: int = 0,
    meta: dict | None = None,
    fine_width: int = 0,
    verifier_bias: float | None = None,
    malignancy: bool = False,
) -> str:
    """Write a tiny random ``lesion_fcn`` model folder (stride 4, or 2 with ``fine_width``);
    return its SHA-256.

    verifier_bias: when given, the network carries a random :data:`TINY_VERIFIER` whose
    output logit is shifted by this much (meta must then hold a "verifier" section).
    malignancy: the network also carries a random :data:`TINY_MALIGNANCY` (it needs the
    verifier; meta must then hold a "malignancy" section). Its weights are drawn after the
    others, so the detector and verifier are those of the same seed without it.
    """
    generator = torch.Generator().manual_seed(seed)
    kwargs = dict(TINY_KWARGS, fine_width=fine_width) if fine_width else dict(TINY_KWARGS)
    if verifier_bias is not None:
        kwargs["verifier"] = dict(TINY_VERIFIER)
    if malignancy:
        kwargs["malignancy"] = dict(TINY_MALIGNANCY)
    model = build_model("lesion_fcn", **kwargs)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
        if verifier_bias is not None:
            # larger random weights than the detector's: distinct verdicts for distinct crops
            for parameter in model.verifier.parameters():
                parameter.mul_(3.0)
            model.verifier.head[-1].bias.add_(verifier_bias)
        if malignancy:
            for parameter in model.malignancy.parameters():
                parameter.mul_(3.0)
    info = {"name": "test-detector", "version": "0.0-test", "tile": {"size": 128, "overlap": 32}}
    info.update(meta or {})
    return save_model_folder(folder, model, arch="lesion_fcn", arch_kwargs=kwargs, meta=info)


def disk_lesion(
    i: int, cx: int, cy: int, r: int, *, score: float = 0.9, p_mal: float = 0.5
) -> Lesion:
    """A round lesion region of radius ``r`` centred on (cx, cy): a 24-vertex outline."""
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    contour = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1).round()
    return Lesion(
        id=i,
        centroid=(float(cx), float(cy)),
        bbox=(cx - r, cy - r, cx + r + 1, cy + r + 1),
        contour=contour.astype(np.int32),
        area_px=float(np.pi * r * r),
        score=score,
        p_malignant=p_mal,
    )
