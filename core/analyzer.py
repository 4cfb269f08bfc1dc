"""The Analyzer: loaded models + the device, with ``detect``, ``track`` and ``map_points``.

One object per process (the app keeps one, the CLI makes one). The device is chosen
only through :func:`core.device.choose_device`, the backend (torch or ONNX Runtime)
through :func:`core.runtime.choose_backend`. The detector is loaded (SHA-256 checked) at
:meth:`Analyzer.load`; the tracker on first use. Calls may come from worker threads:
inference is read-only and the lazy tracker load is locked. With the ONNX backend nothing
here imports torch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.closeup import assess, lift_detection, resize_longer_side
from core.device import RuntimeDevice, choose_device, choose_precision
from core.errors import Cancelled, ModelError
from core.malignancy import ClassifyFn, MalignancySettings, reassess, torch_classify_fn
from core.memory import avoid_hugepage_stalls, reuse_freed_memory
from core.multiscale import analysis_scales, multiscale_probabilities
from core.postprocess import PostprocessConfig, find_lesions
from core.resources import models_dir
from core.runtime import choose_backend, load_onnx_folder
from core.tiling import CoarseProbabilities, tiled_probabilities
from core.types import Detection, ModelInfo, Tracking
from core.verification import (
    VerificationSettings,
    VerifyFn,
    apply_verdicts,
    candidate_inputs,
    torch_verify_fn,
)

if TYPE_CHECKING:
    import torch

Progress = Callable[[float], None]
Cancel = Callable[[], bool]

DEFAULT_TILE_SIZE = 1024
DEFAULT_OVERLAP = 96


def model_info(meta: dict) -> ModelInfo:
    """The (name, version, sha256) of a model.json dict."""
    return ModelInfo(
        name=str(meta["name"]), version=str(meta["version"]), sha256=str(meta["sha256"])
    )


def prepare_for_inference(
    model: torch.nn.Module, device: torch.device, precision: str = "float32"
) -> torch.nn.Module:
    """Eval mode, BatchNorm folded (when the network offers it), channels_last on ``device``.

    ``precision`` "bfloat16" (see :func:`core.device.choose_precision`) converts the
    network's weights on a CPU; a verifier and a malignancy classifier it carries stay
    float32 (a few per cent of the time, and they give the scores and p_malignant). On
    CUDA it is ignored: the tiles run under autocast.
    """
    import torch

    model.eval()
    fuse = getattr(model, "fuse_for_inference", None)
    if fuse is not None:
        fuse()
    model = model.to(device=device, memory_format=torch.channels_last)
    if precision == "bfloat16" and device.type == "cpu":
        model = model.to(dtype=torch.bfloat16)
        for stage in (getattr(model, "verifier", None), getattr(model, "malignancy", None)):
            if stage is not None:
                stage.float()
    return model


def _effective_precision(device: Any, backend: str, requested: str) -> str:
    """What the detector's network runs in: CUDA autocasts to float16, ONNX Runtime and
    the torch CPU backend without bfloat16 run float32."""
    if getattr(device, "type", "cpu") == "cuda":
        return "float16"
    return requested if backend == "torch" else "float32"


def _check_image(image: np.ndarray, name: str) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"{name}: expected an (H, W, 3) RGB array, got {getattr(image, 'shape', None)}"
        )
    if image.dtype != np.uint8:
        raise ValueError(f"{name}: expected uint8 pixels, got {image.dtype}")


def _scaled(progress: Progress | None, start: float, end: float) -> Progress | None:
    if progress is None:
        return None
    return lambda fraction: progress(start + (end - start) * fraction)


def mirror_analysis(height: int, width: int, mirror_below_px: int) -> bool:
    """Whether an image the network analyses (a photo, or a photo enlarged: see
    :mod:`core.multiscale`) is also analysed mirrored: when its long side is at most
    ``mirror_below_px`` (the detector's model.json ``inference.mirror_below_px``; 0 never).

    Every tile then goes through the network as it is and mirrored left-right, and the two
    maps are averaged (:func:`core.tiling.mirror_averaged`): the network's errors on the two
    differ, so the average has fewer confident false lesions and a steadier p_malignant.
    Twice the work, so only for images small enough that it costs little (a phone's 12 MP
    photo is not, nor a small photo enlarged 4 times: on the validation photos mirroring
    that one too cost 2.3x the time for a recall of 0.843 instead of 0.837). Since the
    verifier (1.7.x) even the twice-enlarged 1024 px photo gains nothing from it: on the
    validation photos (seeds 3003 and 3005, 120 photos of 1024 x 768) mirroring up to
    2048 px, 1024 px and never gave recall at <= 0.5 false positives per photo 0.908, 0.909
    and 0.907, AP 0.917, 0.916 and 0.917, malignant AUC 0.951, 0.952 and 0.950, in 0.72,
    0.60 and 0.57 s a photo; 1.7.5 mirrors up to 1024 px (1.7.4: 2048).
    """
    return mirror_below_px > 0 and max(height, width) <= mirror_below_px


#: Whole-number settings of a detector's model.json: (section, key).
_WHOLE_NUMBER_SETTINGS = (
    ("tile", "size"),
    ("tile", "overlap"),
    ("tile", "batch_size"),
    ("inference", "upsample_below_px"),
    ("inference", "max_enlarged_side_px"),
    ("inference", "mirror_below_px"),
    ("inference", "closeup_side_px"),
)


def _is_whole(value: object, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _check_settings(meta: dict, folder: Path) -> None:
    """ModelError naming the model.json when one of its whole-number settings is not one."""
    for section, key in _WHOLE_NUMBER_SETTINGS:
        value = (meta.get(section) or {}).get(key)
        if value is not None and not _is_whole(value, 0):
            raise ModelError(
                folder / "model.json",
                f"{section}.{key} must be a whole number of 0 or more, got {value!r}",
            )
    scales = (meta.get("inference") or {}).get("scales")
    if scales is not None and not (
        isinstance(scales, list) and all(_is_whole(k, 1) for k in scales)
    ):
        raise ModelError(
            folder / "model.json",
            f"inference.scales must be a list of whole numbers of 1 or more, got {scales!r}",
        )
    try:
        verification_settings(meta)
        malignancy_settings(meta)
    except ValueError as exc:
        raise ModelError(folder / "model.json", str(exc)) from exc


def verification_settings(meta: dict) -> VerificationSettings | None:
    """The second stage of a detector's model.json (see :mod:`core.verification`), or None
    for a detector without one. Raises ValueError for a malformed ``"verifier"`` section."""
    section = meta.get("verifier")
    return None if section is None else VerificationSettings.from_json(section)


def malignancy_settings(meta: dict) -> MalignancySettings | None:
    """The third stage of a detector's model.json (see :mod:`core.malignancy`), or None for
    a detector without one. Raises ValueError for a malformed ``"malignancy"`` section or
    one without a ``"verifier"`` (the classifier reads the verifier's crops)."""
    section = meta.get("malignancy")
    if section is None:
        return None
    if meta.get("verifier") is None:
        raise ValueError("malignancy needs a verifier section (it reads the verifier's crops)")
    return MalignancySettings.from_json(section)


#: the later stages of a detector: (network attribute = model.json section, what it is)
_STAGES = (("verifier", "candidate verifier"), ("malignancy", "malignancy classifier"))


def _check_stages_present(model: Any, meta: dict, folder: Path) -> None:
    """ModelError unless the network carries a verifier (a malignancy classifier) exactly
    when model.json has one."""
    for stage, name in _STAGES:
        in_network = getattr(model, stage, None) is not None
        in_meta = meta.get(stage) is not None
        if in_network and not in_meta:
            raise ModelError(folder, f"the network has a {name} but model.json does not")
        if in_meta and not in_network:
            raise ModelError(folder, f"model.json has a {name} but the network does not")


def enlargement_settings(inference: dict) -> tuple[tuple[int, ...], int]:
    """(scales, max_enlarged_side_px) of a detector's model.json ``inference`` section
    (see :func:`core.multiscale.analysis_scales`). Model folders from before multi-scale
    analysis name only ``upsample_below_px`` N: enlarged twice when the long side is at
    most N, i.e. scales (2,) up to 2 N; neither key: never enlarged.
    """
    if "scales" in inference:
        return tuple(int(k) for k in inference["scales"]), int(
            inference.get("max_enlarged_side_px", 0)
        )
    below = int(inference.get("upsample_below_px", 0))
    return ((2,), 2 * below) if below > 0 else ((), 0)


def reduction_settings(inference: dict) -> tuple[tuple[int, ...], int]:
    """(reductions, reduce_from_px) of a detector's model.json ``inference`` section (see
    :func:`core.multiscale.analysis_scales`); absent: never reduced."""
    reductions = tuple(int(r) for r in inference.get("reductions", ()))
    return reductions, int(inference.get("reduce_from_px", 0))


class Analyzer:
    """Detector (and, lazily, tracker) on one device. Build with :meth:`load`."""

    def __init__(
        self,
        *,
        device: torch.device | RuntimeDevice,
        detector: Any,
        detector_meta: dict,
        tracker_folder: Path,
        backend: str = "torch",
        precision: str = "float32",
    ) -> None:
        avoid_hugepage_stalls()  # full-resolution arrays: see core.memory
        reuse_freed_memory()  # no page-fault churn between layers and tiles: see core.memory
        self._device = device
        self._backend = backend
        self._precision = _effective_precision(device, backend, precision)
        if backend == "torch":
            self._detector = prepare_for_inference(detector, device, self._precision)
        else:
            self._detector = detector
        self._detector_meta = detector_meta
        self._detector_info = model_info(detector_meta)
        tile = detector_meta.get("tile") or {}
        self.tile_size = int(tile.get("size", DEFAULT_TILE_SIZE))
        self.overlap = int(tile.get("overlap", DEFAULT_OVERLAP))
        self.batch_size: int | None = tile.get("batch_size")
        # small photos are also analysed enlarged by these factors, as long as the enlarged
        # long side stays within the limit (see core.multiscale)
        inference = detector_meta.get("inference") or {}
        self.scales, self.max_enlarged_side_px = enlargement_settings(inference)
        # large photos are also analysed reduced by these divisors (see core.multiscale)
        self.reductions, self.reduce_from_px = reduction_settings(inference)
        # photos with a long side of at most this are also analysed mirrored (see
        # mirror_analysis; 0: never)
        self.mirror_below_px = int(inference.get("mirror_below_px", 0))
        # close-ups are analysed reduced to this long side (see core.closeup; 0: not offered)
        self.closeup_side_px = int(inference.get("closeup_side_px", 0))
        self.postprocess = PostprocessConfig.from_json(detector_meta.get("postprocess"))
        # the second stage (core.verification), when the detector has one
        self.verification = verification_settings(detector_meta)
        # set exactly when self.verification is
        self._verify: VerifyFn | None = None
        if self.verification is not None:
            if backend == "torch":
                self._verify = torch_verify_fn(self._detector.verifier, device)
            else:
                self._verify = self._detector.verify
        # the third stage (core.malignancy), when the detector has one (then it has a second)
        self.malignancy = malignancy_settings(detector_meta)
        self._classify: ClassifyFn | None = None
        if self.malignancy is not None:
            if backend == "torch":
                self._classify = torch_classify_fn(self._detector.malignancy, device)
            else:
                self._classify = self._detector.classify
        self._tracker_folder = tracker_folder
        self._tracker: tuple[Any, dict] | None = None
        self._tracker_lock = threading.Lock()

    @classmethod
    def load(
        cls,
        device: str | torch.device | RuntimeDevice = "auto",
        *,
        detector: str | Path | None = None,
        tracker: str | Path | None = None,
        backend: str = "auto",
        precision: str | None = None,
    ) -> Analyzer:
        """Load the detector model folder (default: the shipped ``models/detector``).

        ``tracker`` is the tracker model folder (default: shipped ``models/tracker``),
        loaded on the first :meth:`track`/:meth:`map_points`. ``backend``: ``"torch"``,
        ``"onnx"`` (ONNX Runtime on the CPU, the folders' ``model.onnx``) or ``"auto"``
        (torch when it is installed, else ONNX; see :func:`core.runtime.choose_backend`).
        ``precision``: the detector network's number format on a CPU, ``"float32"`` or
        ``"bfloat16"`` (None: ``LESIONVIEWER_PRECISION``, else float32; see
        :func:`core.device.choose_precision`).
        Raises :class:`core.errors.ModelError` for a missing or corrupt folder (or a missing
        or stale ``model.onnx`` for the ONNX backend), ``RuntimeError`` when CUDA is
        requested but unavailable (always, with the ONNX backend), ``ValueError`` for an
        unknown device or precision.
        """
        chosen_precision = choose_precision(precision)
        chosen_backend = choose_backend(backend)
        detector_folder = Path(detector) if detector is not None else models_dir() / "detector"
        tracker_folder = Path(tracker) if tracker is not None else models_dir() / "tracker"
        if chosen_backend == "onnx":
            if str(getattr(device, "type", device) or "auto").lower().startswith("cuda"):
                raise RuntimeError("the ONNX backend runs on the CPU only; use the torch backend")
            chosen: torch.device | RuntimeDevice = RuntimeDevice()
            model, meta = load_onnx_folder(detector_folder)
            if not hasattr(model, "tile_probabilities"):
                raise ModelError(detector_folder, "model.onnx is not a detector")
        else:
            from core.model_folder import load_model_folder

            chosen = choose_device(device)
            model, meta = load_model_folder(detector_folder, chosen)
        _check_settings(meta, detector_folder)
        _check_stages_present(model, meta, detector_folder)
        return cls(
            device=chosen,
            detector=model,
            detector_meta=meta,
            tracker_folder=tracker_folder,
            backend=chosen_backend,
            precision=chosen_precision,
        )

    @property
    def device(self) -> torch.device | RuntimeDevice:
        """Where the networks run (:class:`core.device.RuntimeDevice` for the ONNX backend)."""
        return self._device

    @property
    def precision(self) -> str:
        """The detector network's number format as it runs: "float32", "bfloat16" (asked
        for, torch on a CPU) or "float16" (autocast on CUDA)."""
        return self._precision

    @property
    def backend(self) -> str:
        """``"torch"`` or ``"onnx"``."""
        return self._backend

    @property
    def detector_info(self) -> ModelInfo:
        return self._detector_info

    @property
    def detector_meta(self) -> dict:
        """A copy of the detector's model.json."""
        return dict(self._detector_meta)

    @property
    def tracker_info(self) -> ModelInfo:
        """Loads the tracker if needed (ModelError when its folder is missing or corrupt)."""
        return model_info(self._load_tracker()[1])

    def heatmap(
        self, image: np.ndarray, *, progress: Progress | None = None, cancel: Cancel | None = None
    ) -> np.ndarray:
        """float32 (H, W, 3) per-pixel (p background, p benign, p malignant), rows sum to 1."""
        return self._coarse_probabilities(image, progress=progress, cancel=cancel).upsample()

    def probabilities(self, image: np.ndarray) -> CoarseProbabilities:
        """The detector's class probabilities of an (H, W, 3) uint8 RGB photo, at its output
        stride (multi-scale and tiled as :meth:`detect` runs it; no post-processing)."""
        return self._coarse_probabilities(image, progress=None, cancel=None)

    def _coarse_probabilities(
        self, image: np.ndarray, *, progress: Progress | None, cancel: Cancel | None
    ) -> CoarseProbabilities:
        _check_image(image, "image")
        height, width = image.shape[:2]
        factors = analysis_scales(
            height,
            width,
            self.scales,
            self.max_enlarged_side_px,
            self.reductions,
            self.reduce_from_px,
        )

        def analyse(picture: np.ndarray, start: float, end: float) -> CoarseProbabilities:
            # a reduced pass is there for large lesions, which need no second, mirrored look
            # (mirrored, the same recall, and the bench's 12 MP photo 18 % slower than
            # without the pass instead of 14 %)
            reduced = picture.shape[0] < height
            mirror = not reduced and mirror_analysis(*picture.shape[:2], self.mirror_below_px)
            return self._tiled(picture, _scaled(progress, start, end), cancel, mirror)

        # factors (1,): one pass, its map returned as it is
        return multiscale_probabilities(image, factors, analyse)

    def _tiled(
        self, image: np.ndarray, progress: Progress | None, cancel: Cancel | None, mirror: bool
    ) -> CoarseProbabilities:
        return tiled_probabilities(
            self._detector,
            image,
            device=self._device,
            tile_size=self.tile_size,
            overlap=self.overlap,
            batch_size=self.batch_size,
            mirror=mirror,
            progress=progress,
            cancel=cancel,
        )

    def detect(
        self,
        image: np.ndarray,
        *,
        closeup: bool = False,
        progress: Progress | None = None,
        cancel: Cancel | None = None,
    ) -> Detection:
        """Heatmap and lesion regions of an (H, W, 3) uint8 RGB photo.

        ``closeup``: the photo shows one lesion filling much of the frame, not a body
        region; it is then analysed reduced to ``closeup_side_px`` (see :mod:`core.closeup`),
        the result is given in the photo's own pixels and ``Detection.closeup`` holds the
        verdict on the photographed lesion. ValueError when the detector's model.json has no
        ``inference.closeup_side_px``.
        ``progress(fraction in [0, 1])`` is called as tiles finish; ``cancel()`` is polled
        between tile batches and raises :class:`core.errors.Cancelled` when it says True.
        """
        if closeup:
            return self._detect_closeup(image, progress=progress, cancel=cancel)
        coarse = self._coarse_probabilities(
            image, progress=_scaled(progress, 0.0, 0.9), cancel=cancel
        )
        if cancel is not None and cancel():
            raise Cancelled("detection")
        lesions = self._lesions(image, coarse)
        if progress is not None:
            progress(1.0)
        return Detection(heatmap=coarse, lesions=lesions, model=self._detector_info)

    def _detect_closeup(
        self, image: np.ndarray, *, progress: Progress | None, cancel: Cancel | None
    ) -> Detection:
        _check_image(image, "image")
        if self.closeup_side_px <= 0:
            raise ValueError(
                f"detector {self._detector_info.version} has no close-up setting "
                "(model.json inference.closeup_side_px)"
            )
        reduced = resize_longer_side(image, self.closeup_side_px)
        detection = self.detect(reduced, progress=progress, cancel=cancel)
        return lift_detection(detection, *image.shape[:2], closeup=assess(detection))

    def _lesions(self, image: np.ndarray, coarse: CoarseProbabilities) -> tuple:
        """Post-processing: the regions of the map, verified when the detector has a second
        stage (see core.verification), their p_malignant reassessed when it has a third
        (see core.malignancy)."""
        if self._verify is None:
            return find_lesions(coarse, self.postprocess)
        candidates = find_lesions(coarse, self.verification.candidates)
        crops, scalars = candidate_inputs(image, coarse, candidates)
        verdicts = self._verify(crops, scalars) if candidates else np.zeros(0, np.float32)
        min_score = self.verification.min_score
        if self._classify is not None and candidates:
            keep = np.asarray(verdicts) >= min_score
            candidates = reassess(candidates, crops, keep, self._classify, self.malignancy)
        return apply_verdicts(candidates, verdicts, min_score)

    def _load_tracker(self) -> tuple[Any, dict]:
        with self._tracker_lock:
            if self._tracker is None:
                if self._backend == "onnx":
                    model, meta = load_onnx_folder(self._tracker_folder)
                    if not hasattr(model, "flow"):
                        raise ModelError(self._tracker_folder, "model.onnx is not a tracker")
                else:
                    from core.model_folder import load_model_folder

                    model, meta = load_model_folder(self._tracker_folder, self._device)
                    model.eval()
                self._tracker = (model, meta)
            return self._tracker

    def track(
        self,
        image_a: np.ndarray,
        image_b: np.ndarray,
        *,
        detection_a: Detection | None = None,
        detection_b: Detection | None = None,
        progress: Progress | None = None,
        cancel: Cancel | None = None,
    ) -> Tracking:
        """Flow from A to B, lesion matches, new and gone lesions (see core.tracking).

        Detections not given are computed first (progress 0-0.35 for A, 0.35-0.7 for B).
        """
        from core import tracking

        _check_image(image_a, "image_a")
        _check_image(image_b, "image_b")
        model, meta = self._load_tracker()
        if detection_a is None:
            detection_a = self.detect(image_a, progress=_scaled(progress, 0.0, 0.35), cancel=cancel)
        if detection_b is None:
            detection_b = self.detect(image_b, progress=_scaled(progress, 0.35, 0.7), cancel=cancel)
        if cancel is not None and cancel():
            raise Cancelled("tracking")
        result = tracking.track(
            model, model_info(meta), image_a, image_b, detection_a, detection_b, device=self._device
        )
        if progress is not None:
            progress(1.0)
        return result

    def map_points(
        self,
        image_a: np.ndarray,
        image_b: np.ndarray,
        points: Sequence[Sequence[float]] | np.ndarray,
    ) -> np.ndarray:
        """Positions in B of ``points`` (N, 2) (x, y) of A: float64 (N, 2).

        Uses the tracker's flow A -> B (``core.tracking.estimate_flow``), sampled
        bilinearly at each point by ``core.tracking.map_points``.
        """
        from core import tracking

        _check_image(image_a, "image_a")
        _check_image(image_b, "image_b")
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        model, _ = self._load_tracker()
        flow = tracking.estimate_flow(model, image_a, image_b, device=self._device)
        return tracking.map_points(flow, pts)
