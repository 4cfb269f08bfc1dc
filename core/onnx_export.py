"""Export a model folder's network to ``model.onnx`` for the ONNX Runtime backend.

The exported graph is the inference form (BatchNorm folded, normalisation inside) wrapped so
that it takes what the app has, uint8 photos, and gives what the app needs:

- detector: ``image`` uint8 (B, H, W, 3) RGB -> ``probabilities`` float32
  (B, H / 4, W / 4, C) softmax, the stride-4 map that :func:`core.tiling.tiled_heatmap` blends;
- tracker: ``image_a``, ``image_b`` uint8 (B, H, W, 3) RGB -> ``flow`` float32 (B, H, W, 2),
  A pixel + flow = its position in B, in input pixels.

A detector with a second stage (:mod:`core.verification`) also gets ``verifier.onnx``:
``crops`` uint8 (N, 7, S, S) and ``scalars`` float32 (N, 4) -> ``p_true`` float32 (N,); one
with a third (:mod:`core.malignancy`) ``malignancy.onnx``: ``crops`` uint8 (N, 3, S, S) ->
``p_malignant`` float32 (N,).

B, H and W are dynamic; H and W must be multiples of 32 (tiles and working sizes are). The
file's SHA-256 and the weights' SHA-256 it came from go into model.json's ``"onnx"`` entry
(see :mod:`core.runtime`); the export is checked against torch with ONNX Runtime when that is
installed. Needs torch (this is the training side of the models).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.errors import ModelError
from core.model_folder import META_FILE, _atomic_write, file_sha256, load_model_folder
from core.runtime import ONNX_FILE
from core.verification import CROP_SIZE

DEFAULT_OPSET = 17
_DETECTOR_SAMPLE = (2, 96, 128)
_TRACKER_SAMPLE = (1, 128, 160)


def _to_float(images: torch.Tensor) -> torch.Tensor:
    return images.permute(0, 3, 1, 2).float() / 255.0


class DetectorGraph(nn.Module):
    """uint8 (B, H, W, 3) -> softmax probabilities (B, H / 4, W / 4, C) of a LesionFCN."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        logits = self.net.logits_lowres(_to_float(image))
        return F.softmax(logits.float(), dim=1).permute(0, 2, 3, 1)


def _write_onnx(
    target: Path,
    graph: nn.Module,
    samples: tuple[torch.Tensor, ...],
    inputs: list[str],
    outputs: list[str],
    dynamic: dict,
    opset: int,
) -> None:
    """Trace ``graph`` on ``samples`` into ``target`` (written atomically)."""

    def write(tmp: str) -> None:
        # grad on: without it the fused blocks call oneDNN-only kernels that have no ONNX form
        with warnings.catch_warnings(), torch.enable_grad():
            warnings.simplefilter("ignore")  # tracer notes on shape checks that are constant
            torch.onnx.export(
                graph,
                samples,
                tmp,
                input_names=inputs,
                output_names=outputs,
                dynamic_axes=dynamic,
                opset_version=opset,
                dynamo=False,
            )

    _atomic_write(target, write)


class CropStageGraph(nn.Module):
    """uint8 crops (N, P, S, S) [, float32 scalars (N, K)] -> the sigmoid (N,) of a
    :class:`core.models.verifier.CropClassifier`'s logit (the verifier's P(true lesion), the
    malignancy classifier's P(malignant | lesion))."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, crops: torch.Tensor, *scalars: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(crops, *scalars).float())


VERIFIER_ONNX_FILE = "verifier.onnx"
MALIGNANCY_ONNX_FILE = "malignancy.onnx"


def _export_crop_stage(
    target: Path, net: nn.Module, output: tuple[str, str], layouts: tuple[str, ...], opset: int
) -> dict:
    """Write ``target`` from a CropClassifier ``net`` (fused, eval mode); return its
    model.json entry. ``output``: (name, layout); ``layouts``: the crops' and, when the
    network takes scalars, the scalars'."""
    graph = CropStageGraph(net.eval()).eval()
    generator = torch.Generator().manual_seed(0)
    shape = (int(net.planes), CROP_SIZE, CROP_SIZE)
    width = int(net.scalars)

    def samples(n: int) -> tuple[torch.Tensor, ...]:
        crops = torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=generator)
        return (crops, torch.randn(n, width, generator=generator)) if width else (crops,)

    names = ["crops", "scalars"][: 1 + bool(width)]
    dynamic = {name: {0: "n"} for name in (*names, output[0])}
    _write_onnx(target, graph, samples(3), names, [output[0]], dynamic, opset)
    entry: dict = {
        "file": target.name,
        "sha256": file_sha256(target),
        "inputs": [
            {"name": name, "layout": layout} for name, layout in zip(names, layouts, strict=True)
        ],
        "outputs": [{"name": output[0], "layout": output[1]}],
    }
    try:
        import onnxruntime as ort
    except ImportError:
        return entry
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    more = samples(5)
    with torch.inference_mode():
        expected = graph(*more).numpy()
    got = session.run(None, {name: t.numpy() for name, t in zip(names, more, strict=True)})[0]
    entry["check_max_abs_diff"] = float(f"{float(np.abs(got - expected).max()):.3g}")
    return entry


def _export_verifier(folder: Path, verifier: nn.Module, opset: int) -> dict:
    """Write ``folder/verifier.onnx``; return its model.json entry."""
    return _export_crop_stage(
        folder / VERIFIER_ONNX_FILE,
        verifier,
        ("p_true", "float32 (N,) P(true lesion)"),
        (
            "uint8 (N, 7, S, S), see core.verification",
            "float32 (N, 4), see core.verification",
        ),
        opset,
    )


def _export_malignancy(folder: Path, classifier: nn.Module, opset: int) -> dict:
    """Write ``folder/malignancy.onnx``; return its model.json entry."""
    return _export_crop_stage(
        folder / MALIGNANCY_ONNX_FILE,
        classifier,
        ("p_malignant", "float32 (N,) P(malignant | lesion)"),
        ("uint8 (N, 3, S, S), planes 0-2 of the verifier's crops, see core.malignancy",),
        opset,
    )


class TrackerGraph(nn.Module):
    """uint8 (B, H, W, 3) x 2 -> flow (B, H, W, 2) of a LesionTracker."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image_a: torch.Tensor, image_b: torch.Tensor) -> torch.Tensor:
        return self.net(_to_float(image_a), _to_float(image_b)).permute(0, 2, 3, 1)


def inference_graph(model: nn.Module) -> tuple[str, nn.Module]:
    """("detector" | "tracker", the wrapped, fused, eval-mode network) of a loaded model."""
    model = model.to("cpu").eval()
    fuse = getattr(model, "fuse_for_inference", None)
    if fuse is not None:
        fuse()
    if hasattr(model, "logits_lowres"):
        return "detector", DetectorGraph(model).eval()
    if hasattr(model, "forward_pyramid"):
        return "tracker", TrackerGraph(model).eval()
    raise ValueError(f"no ONNX export for {type(model).__name__}")


def _samples(kind: str, shape: tuple[int, int, int], seed: int) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    count = 1 if kind == "detector" else 2
    b, h, w = shape
    return tuple(
        torch.randint(0, 256, (b, h, w, 3), dtype=torch.uint8, generator=generator)
        for _ in range(count)
    )


def _names(kind: str) -> tuple[list[str], list[str]]:
    if kind == "detector":
        return ["image"], ["probabilities"]
    return ["image_a", "image_b"], ["flow"]


def _max_difference(graph: nn.Module, kind: str, path: Path) -> float | None:
    """Largest |ONNX - torch| on photos of another size than the traced one (None without
    onnxruntime)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs, _ = _names(kind)
    samples = _samples(kind, (1, 160, 96), seed=1)
    with torch.inference_mode():
        expected = graph(*samples).numpy()
    got = session.run(None, {n: s.numpy() for n, s in zip(inputs, samples, strict=True)})[0]
    if got.shape != expected.shape:
        raise ModelError(path.parent, f"ONNX output {got.shape} differs from torch's")
    return float(np.abs(got - expected).max())


def export_onnx(folder: str | Path, *, opset: int = DEFAULT_OPSET) -> dict:
    """Write ``folder/model.onnx`` and add the ``"onnx"`` entry to its model.json; return it.

    The weights are loaded (SHA-256 checked) and fused, traced with sample photos, and the
    file is checked against torch on a photo of another size (``"check_max_abs_diff"`` in
    the entry; for the detector in probability, for the tracker in pixels). model.json is
    re-read right before it is written and only its ``"onnx"`` key changes. Files are
    written atomically. Raises :class:`ModelError` for a bad folder.
    """
    folder = Path(folder)
    try:
        import onnx  # noqa: F401  (torch's exporter writes the file through it)
    except ImportError as exc:
        raise ModelError(folder, "exporting needs the onnx package (pip install onnx)") from exc
    model, meta = load_model_folder(folder, "cpu")
    kind, graph = inference_graph(model)
    inputs, outputs = _names(kind)
    layout = "uint8 (B, H, W, 3) RGB 0-255, H and W multiples of 32"
    if kind == "detector":
        out_layout = "float32 (B, H / 4, W / 4, C) softmax over C (classes of model.json)"
        samples = _samples(kind, _DETECTOR_SAMPLE, seed=0)
    else:
        out_layout = "float32 (B, H, W, 2) flow A -> B in input pixels (dx, dy)"
        samples = _samples(kind, _TRACKER_SAMPLE, seed=0)
    dynamic = {n: {0: "batch", 1: "height", 2: "width"} for n in inputs}
    if kind == "detector":
        dynamic[outputs[0]] = {0: "batch", 1: "height_4", 2: "width_4"}
    else:
        dynamic[outputs[0]] = {0: "batch", 1: "height", 2: "width"}

    target = folder / ONNX_FILE
    _write_onnx(target, graph, samples, inputs, outputs, dynamic, opset)
    entry: dict = {
        "file": ONNX_FILE,
        "sha256": file_sha256(target),
        "weights_sha256": str(meta["sha256"]),
        "kind": kind,
        "opset": opset,
        "exporter": f"torch {torch.__version__.split('+')[0]} (TorchScript exporter)",
        "inputs": [{"name": n, "layout": layout} for n in inputs],
        "outputs": [{"name": n, "layout": out_layout} for n in outputs],
    }
    if kind == "detector":
        entry["output_stride"] = int(model.output_stride)
        if getattr(model, "verifier", None) is not None:
            entry["verifier"] = _export_verifier(folder, model.verifier, opset)
        if getattr(model, "malignancy", None) is not None:
            entry["malignancy"] = _export_malignancy(folder, model.malignancy, opset)
    else:
        entry["working_size"] = int(model.working_size)
    difference = _max_difference(graph, kind, target)
    if difference is not None:
        entry["check_max_abs_diff"] = float(f"{difference:.3g}")
    meta_path = folder / META_FILE
    current = json.loads(meta_path.read_text(encoding="utf-8"))  # others may have added keys
    if str(current.get("sha256")) != str(meta["sha256"]):
        raise ModelError(folder, "weights changed during the export; run it again")
    current["onnx"] = entry
    text = json.dumps(current, indent=2) + "\n"
    _atomic_write(meta_path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return entry
