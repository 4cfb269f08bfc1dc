"""The one place where the compute device is chosen.

torch is imported inside the functions: where it is absent (the desktop build runs its
networks with ONNX Runtime), ``choose_device`` answers a :class:`RuntimeDevice` for the CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

DEVICE_ENV = "LESIONVIEWER_DEVICE"
PRECISION_ENV = "LESIONVIEWER_PRECISION"
#: number formats the detector's network can run in on a CPU (see :func:`choose_precision`)
PRECISIONS = ("float32", "bfloat16")


@dataclass(frozen=True)
class RuntimeDevice:
    """The CPU as seen by ONNX Runtime: ``.type`` and ``.index`` like a ``torch.device``."""

    type: str = "cpu"
    index: int | None = None

    def __str__(self) -> str:
        return self.type


def torch_available() -> bool:
    """Whether ``import torch`` works here (False in the ONNX-only desktop build)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def choose_device(requested: Any = "auto") -> torch.device | RuntimeDevice:
    """Return the device to run on.

    ``requested`` is ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or
    ``"cuda:N"`` (or a ``torch.device``/:class:`RuntimeDevice`, returned as is). The
    environment variable ``LESIONVIEWER_DEVICE`` overrides ``"auto"``. Asking for CUDA on a
    machine without it raises ``RuntimeError`` rather than silently running on the CPU.
    Without torch the answer is :class:`RuntimeDevice` (the CPU, through ONNX Runtime).
    """
    if isinstance(requested, RuntimeDevice):
        return requested
    if not isinstance(requested, str | None):
        return requested  # a torch.device
    choice = (requested or "auto").strip().lower()
    if choice == "auto":
        choice = os.environ.get(DEVICE_ENV, "auto").strip().lower() or "auto"
    if choice not in ("auto", "cpu") and not choice.startswith("cuda"):
        raise ValueError(f"unknown device {requested!r}: use auto, cpu or cuda")
    try:
        import torch
    except ImportError:
        if choice.startswith("cuda"):
            raise RuntimeError(
                "CUDA was requested but this build has no torch (it runs on the CPU "
                "through ONNX Runtime)"
            ) from None
        return RuntimeDevice()
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError("CUDA was requested but this machine has no usable CUDA device")
        return torch.device(choice)
    return torch.device("cpu")


def choose_precision(requested: str | None = None) -> str:
    """The number format of the detector's network on a CPU: ``"float32"`` (the default)
    or ``"bfloat16"`` (opt-in).

    bfloat16 halves the network's memory traffic; on CPUs that compute it natively
    (AVX512-BF16 or AMX: recent AMD Ryzen and EPYC, Intel Xeon) a 12 MP photo takes about
    0.64x the time, elsewhere oneDNN emulates it. Its 8-bit mantissa moves the heatmap and
    the scores a little (the held-out lesion-level figures hardly: see the README), and a
    clinic's findings should not depend on the computer, so it is not the default.
    ``None`` reads ``LESIONVIEWER_PRECISION`` (unset: float32). The torch backend on a CPU
    uses it; CUDA keeps its float16 autocast and ONNX Runtime float32. ValueError for an
    unknown name.
    """
    raw = requested if requested is not None else os.environ.get(PRECISION_ENV, "")
    choice = (raw or "float32").strip().lower()
    if choice not in PRECISIONS:
        # name where a wrong value came from: a setting left in the environment is easy to miss
        source = "" if requested is not None else f"{PRECISION_ENV}: "
        raise ValueError(f"{source}unknown precision {choice!r}: use {' or '.join(PRECISIONS)}")
    return choice


def native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX), as torch sees it."""
    try:
        import torch.cpu
    except ImportError:
        return False
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def describe_device(device: torch.device | RuntimeDevice) -> str:
    """A short human-readable name of ``device`` for status bars and reports."""
    if isinstance(device, RuntimeDevice):
        return f"CPU (ONNX Runtime, {os.cpu_count() or 1} cores)"
    import torch

    if device.type == "cuda":
        return f"CUDA ({torch.cuda.get_device_name(device)})"
    return f"CPU ({torch.get_num_threads()} threads)"
