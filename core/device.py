"""The one place where the compute device is chosen."""

from __future__ import annotations

import os

import torch

DEVICE_ENV = "LESIONVIEWER_DEVICE"


def choose_device(requested: str | torch.device | None = "auto") -> torch.device:
    """Return the torch device to run on.

    ``requested`` is ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or
    ``"cuda:N"``. The environment variable ``LESIONVIEWER_DEVICE`` overrides ``"auto"``.
    Asking for CUDA on a machine without it raises ``RuntimeError`` rather than silently
    running on the CPU.
    """
    if isinstance(requested, torch.device):
        return requested
    choice = (requested or "auto").strip().lower()
    if choice == "auto":
        choice = os.environ.get(DEVICE_ENV, "auto").strip().lower() or "auto"
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError("CUDA was requested but this machine has no usable CUDA device")
        return torch.device(choice)
    if choice == "cpu":
        return torch.device("cpu")
    raise ValueError(f"unknown device {requested!r}: use auto, cpu or cuda")


def describe_device(device: torch.device) -> str:
    """A short human-readable name of ``device`` for status bars and reports."""
    if device.type == "cuda":
        return f"CUDA ({torch.cuda.get_device_name(device)})"
    return f"CPU ({torch.get_num_threads()} threads)"
