"""Inference backends: torch (the source default) or ONNX Runtime (the desktop build).

A model folder may hold ``model.onnx`` beside its weights (written by
``lesion-train export-onnx``, see :mod:`core.onnx_export`); model.json then has an
``"onnx"`` entry::

    {"file": "model.onnx", "sha256": hex of model.onnx, "weights_sha256": the weights'
     SHA-256 it was exported from, "opset": int, "kind": "detector" | "tracker",
     "inputs": [{"name", "dtype", "layout"}], "outputs": [{"name", "dtype", "layout"}],
     "output_stride": 4 (detector), "working_size": int (tracker), "exporter": "torch X",
     "verifier": {"file": "verifier.onnx", "sha256", ...} (a detector with a second stage,
     see core.verification: uint8 (N, 7, S, S) "crops" and float32 (N, 4) "scalars" ->
     float32 (N,) "p_true"), "malignancy": {"file": "malignancy.onnx", ...} (a third
     stage, see core.malignancy: uint8 (N, 3, S, S) "crops" -> float32 (N,) "p_malignant")}

The ONNX graphs take uint8 (B, H, W, 3) RGB photos (H, W multiples of 32) and do the
scaling to [0, 1], the normalisation and (detector) the softmax inside, so this module
needs numpy and onnxruntime only, never torch. Nothing here imports torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.device import torch_available
from core.errors import ModelError
from core.model_folder import file_sha256, read_model_meta

BACKEND_ENV = "LESIONVIEWER_BACKEND"
BACKENDS = ("auto", "torch", "onnx")
ONNX_FILE = "model.onnx"


def choose_backend(requested: str | None = "auto") -> str:
    """``"torch"`` or ``"onnx"`` for a request of ``"auto"``, ``"torch"`` or ``"onnx"``.

    ``"auto"`` (overridden by the environment variable ``LESIONVIEWER_BACKEND``) is torch
    when it can be imported, else ONNX Runtime. Asking for torch where it is absent raises
    ``RuntimeError``; an unknown name raises ``ValueError``.
    """
    choice = (requested or "auto").strip().lower()
    if choice == "auto":
        choice = os.environ.get(BACKEND_ENV, "auto").strip().lower() or "auto"
    if choice not in BACKENDS:
        raise ValueError(f"unknown backend {requested!r}: use auto, torch or onnx")
    if choice == "auto":
        return "torch" if torch_available() else "onnx"
    if choice == "torch" and not torch_available():
        raise RuntimeError("the torch backend was requested but torch is not installed")
    return choice


def _session(path: Path, folder: Path) -> Any:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ModelError(folder, "onnxruntime is not installed (pip install onnxruntime)") from exc
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: no per-node placement chatter on stderr
    try:
        return ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelError(folder, f"{path.name} is not a loadable ONNX model ({exc})") from exc


def _check_input(images: np.ndarray, name: str) -> np.ndarray:
    if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
        raise ValueError(f"{name}: expected uint8 (B, H, W, 3), got {images.dtype} {images.shape}")
    if images.shape[1] % 32 or images.shape[2] % 32:
        raise ValueError(f"{name}: height and width must be multiples of 32, got {images.shape}")
    return np.ascontiguousarray(images)


@dataclass(frozen=True)
class OnnxDetector:
    """The detector as an ONNX Runtime session (CPU). Used by :func:`core.tiling.tiled_heatmap`.

    session: the ``onnxruntime.InferenceSession``; output_stride: 4 (the probability map's
    pixel is ``output_stride`` photo pixels).
    """

    session: Any
    input_name: str
    output_stride: int
    #: the second stage's session (``verifier.onnx``), when the detector has one
    verifier: Any = None
    #: the third stage's session (``malignancy.onnx``), when the detector has one
    malignancy: Any = None

    def verify(self, crops: np.ndarray, scalars: np.ndarray) -> np.ndarray:
        """P(true lesion) float32 (N,) of candidates: uint8 (N, 7, S, S) crops and float32
        (N, 4) scalars (see core.verification.candidate_inputs)."""
        if self.verifier is None:
            raise ValueError("this detector has no candidate verifier")
        if len(crops) == 0:
            return np.zeros(0, np.float32)
        feeds = {
            "crops": np.ascontiguousarray(crops, dtype=np.uint8),
            "scalars": np.ascontiguousarray(scalars, dtype=np.float32),
        }
        return self.verifier.run(None, feeds)[0]

    def classify(self, crops: np.ndarray) -> np.ndarray:
        """P(malignant | lesion) float32 (N,) of uint8 (N, 3, S, S) region-sized photo crops
        (planes 0-2 of core.verification.candidate_inputs; see core.malignancy)."""
        if self.malignancy is None:
            raise ValueError("this detector has no malignancy classifier")
        if len(crops) == 0:
            return np.zeros(0, np.float32)
        feeds = {"crops": np.ascontiguousarray(crops, dtype=np.uint8)}
        return self.malignancy.run(None, feeds)[0]

    def tile_probabilities(self, tiles: np.ndarray) -> np.ndarray:
        """Softmax class probabilities of uint8 (B, H, W, 3) RGB tiles (H, W multiples of 32):
        float32 (B, H / stride, W / stride, C), each pixel's C values summing to 1."""
        tiles = _check_input(tiles, "tiles")
        return self.session.run(None, {self.input_name: tiles})[0]


@dataclass(frozen=True)
class OnnxTracker:
    """The tracker as an ONNX Runtime session (CPU). Used by :mod:`core.tracking`.

    working_size: long side (pixels) of the resolution the network was trained for.
    """

    session: Any
    input_names: tuple[str, str]
    working_size: int

    def flow(self, image_a: np.ndarray, image_b: np.ndarray) -> np.ndarray:
        """Flow A -> B of two uint8 (h, w, 3) RGB images of the same size (multiples of 32):
        float32 (h, w, 2) in their pixels, A pixel + flow = its position in B."""
        if image_a.shape != image_b.shape:
            raise ValueError(f"image sizes differ: {image_a.shape} vs {image_b.shape}")
        a = _check_input(image_a[None], "image_a")
        b = _check_input(image_b[None], "image_b")
        feeds = {self.input_names[0]: a, self.input_names[1]: b}
        return self.session.run(None, feeds)[0][0]


def onnx_entry(folder: str | Path, meta: dict | None = None) -> dict | None:
    """model.json's ``"onnx"`` entry of ``folder`` (None when it has none)."""
    meta = read_model_meta(folder) if meta is None else meta
    entry = meta.get("onnx")
    return entry if isinstance(entry, dict) else None


def _checked_file(folder: Path, entry: dict) -> Path:
    """The ONNX file an entry names ({"file", "sha256"}), present and its hash checked."""
    path = folder / str(entry.get("file", ONNX_FILE))
    if not path.is_file():
        raise ModelError(folder, f"{path.name} missing")
    digest = file_sha256(path)
    if digest != str(entry.get("sha256", "")).lower():
        raise ModelError(
            folder,
            f"SHA-256 of {path.name} is {digest[:12]}..., model.json says "
            f"{str(entry.get('sha256', ''))[:12]}... (corrupt or replaced ONNX file)",
        )
    return path


def load_onnx_folder(folder: str | Path) -> tuple[OnnxDetector | OnnxTracker, dict]:
    """Open the ``model.onnx`` of a model folder on the CPU; return (network, model.json).

    Raises :class:`ModelError` (folder + reason) when model.json has no ``"onnx"`` entry,
    the file is missing, its SHA-256 differs from the entry's, the entry was exported from
    other weights than model.json's (stale export), or ONNX Runtime cannot load it.
    """
    folder = Path(folder)
    meta = read_model_meta(folder)
    entry = onnx_entry(folder, meta)
    if entry is None:
        raise ModelError(
            folder, "no ONNX export (model.json has no 'onnx' entry; run lesion-train export-onnx)"
        )
    path = _checked_file(folder, entry)
    if str(entry.get("weights_sha256", "")).lower() != str(meta["sha256"]).lower():
        raise ModelError(
            folder,
            f"{path.name} was exported from other weights than model.json's "
            "(stale export; run lesion-train export-onnx again)",
        )
    session = _session(path, folder)
    names = [i.name for i in session.get_inputs()]
    kind = entry.get("kind")
    if kind == "detector" and len(names) == 1:
        second, third = entry.get("verifier"), entry.get("malignancy")
        for name, stage in (("verifier", second), ("malignancy", third)):
            if (stage is not None) != (meta.get(name) is not None):
                raise ModelError(
                    folder, f"model.json's {name} and its ONNX export's disagree (export again)"
                )
        net: OnnxDetector | OnnxTracker = OnnxDetector(
            session=session,
            input_name=names[0],
            output_stride=int(entry["output_stride"]),
            verifier=_session(_checked_file(folder, second), folder) if second else None,
            malignancy=_session(_checked_file(folder, third), folder) if third else None,
        )
    elif kind == "tracker" and len(names) == 2:
        net = OnnxTracker(
            session=session,
            input_names=(names[0], names[1]),
            working_size=int(entry["working_size"]),
        )
    else:
        raise ModelError(folder, f"{path.name}: unknown kind {kind!r} with inputs {names}")
    return net, meta
