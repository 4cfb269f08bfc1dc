"""Model folders: ``weights.safetensors`` + ``model.json``, verified by SHA-256.

``model.json`` (written by :func:`save_model_folder`) holds at least::

    {"format": 1, "name": str, "version": str, "sha256": hex of weights.safetensors,
     "weights": "weights.safetensors", "architecture": registry name,
     "arch_kwargs": {...constructor keyword arguments...},
     "classes": ["background", "benign", "malignant"],
     "input": {"tensor": "float32 (B, 3, H, W) RGB in [0, 1]", "normalisation": {mean, std}},
     ...whatever the caller adds: "tile": {"size", "overlap"}, "postprocess": {...},
     "training": {"command", "seed", "data"}, "metrics": {...}}

Weights are never unpickled: safetensors only. Every failure to load raises
:class:`core.errors.ModelError` naming the folder and the reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import ModelError

if TYPE_CHECKING:  # torch is imported inside the functions that need it: reading a
    import torch  # model.json or checking a file's hash must work where torch is absent


WEIGHTS_FILE = "weights.safetensors"
META_FILE = "model.json"
FORMAT_VERSION = 1
_REQUIRED = ("name", "version", "sha256", "architecture", "arch_kwargs")


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (streamed)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _atomic_write(path: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _input_description(model: torch.nn.Module) -> dict:
    description: dict[str, Any] = {"tensor": "float32 (B, 3, H, W) RGB in [0, 1], x right, y down"}
    normalize = getattr(model, "normalize", None)
    if normalize is not None and hasattr(normalize, "mean"):
        description["normalisation"] = {
            "inside_network": True,
            "mean": [round(float(v), 6) for v in normalize.mean.flatten()],
            "std": [round(float(v), 6) for v in normalize.std.flatten()],
        }
    return description


def save_model_folder(
    folder: str | Path,
    model: torch.nn.Module,
    *,
    arch: str,
    arch_kwargs: dict,
    meta: dict,
) -> str:
    """Write ``model``'s weights and ``model.json`` into ``folder`` (created); return SHA-256.

    ``meta`` must hold "name" and "version"; everything in it is stored, plus the
    architecture, its constructor kwargs, the weights' SHA-256 and (unless given) the
    input description. Save the un-fused training model, not a BatchNorm-folded one.
    Files are written atomically (temp file + rename).
    """
    from safetensors.torch import save_file

    for key in ("name", "version"):
        if key not in meta:
            raise ValueError(f"meta needs {key!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    weights = folder / WEIGHTS_FILE
    _atomic_write(weights, lambda tmp: save_file(state, tmp, metadata={"architecture": arch}))
    digest = file_sha256(weights)
    record = {
        "format": FORMAT_VERSION,
        **meta,
        "sha256": digest,
        "weights": WEIGHTS_FILE,
        "architecture": arch,
        "arch_kwargs": json.loads(json.dumps(dict(arch_kwargs))),
    }
    record.setdefault("input", _input_description(model))
    if hasattr(model, "num_classes") and "classes" not in record:
        from core.models.detector import CLASSES

        record["classes"] = list(CLASSES[: int(model.num_classes)])
    text = json.dumps(record, indent=2, sort_keys=False) + "\n"
    _atomic_write(folder / META_FILE, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return digest


def read_model_meta(folder: str | Path) -> dict:
    """Parse and check ``folder/model.json`` (no weights read). Raises ModelError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(folder, "model folder not found")
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise ModelError(folder, f"{META_FILE} missing")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(folder, f"{META_FILE} is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise ModelError(folder, f"{META_FILE} must hold a JSON object")
    missing = [key for key in _REQUIRED if key not in meta]
    if missing:
        raise ModelError(folder, f"{META_FILE} lacks {', '.join(missing)}")
    if not isinstance(meta["arch_kwargs"], dict):
        raise ModelError(folder, f"{META_FILE}: arch_kwargs must be an object")
    return meta


def load_model_folder(
    folder: str | Path, device: torch.device | str = "cpu"
) -> tuple[torch.nn.Module, dict]:
    """Rebuild the network of a model folder, in eval mode on ``device``; return (model, meta).

    Checks, in order, raising :class:`ModelError` (folder + reason) on failure: folder and
    model.json present, JSON valid with the required keys, weights file present, its
    SHA-256 equal to model.json's, architecture known, constructor accepts arch_kwargs,
    weights readable as safetensors, and names/shapes equal to the network's.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from core.models.registry import build_model

    folder = Path(folder)
    meta = read_model_meta(folder)
    weights = folder / str(meta.get("weights", WEIGHTS_FILE))
    if not weights.is_file():
        raise ModelError(folder, f"weights file {weights.name} missing")
    digest = file_sha256(weights)
    if digest != str(meta["sha256"]).lower():
        raise ModelError(
            folder,
            f"SHA-256 of {weights.name} is {digest[:12]}..., model.json says "
            f"{str(meta['sha256'])[:12]}... (corrupt or replaced weights)",
        )
    try:
        model = build_model(str(meta["architecture"]), **meta["arch_kwargs"])
    except KeyError as exc:
        raise ModelError(folder, f"unknown architecture {meta['architecture']!r}") from exc
    except (TypeError, ValueError) as exc:
        raise ModelError(folder, f"architecture arguments rejected ({exc})") from exc
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(
            folder, f"{weights.name} is not a readable safetensors file ({exc})"
        ) from exc
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ModelError(
            folder,
            f"weights do not fit {meta['architecture']} (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]})",
        )
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise ModelError(
                folder,
                f"shape mismatch for {key}: weights {tuple(tensor.shape)}, "
                f"network {tuple(expected[key].shape)}",
            )
    model.load_state_dict(state, strict=True)
    model.eval()
    return model.to(device), meta
