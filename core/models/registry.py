"""A small registry of network architectures, built by name with keyword-only arguments.

Weights are saved with the architecture name and its constructor arguments
(see :mod:`core.model_folder`), so a model folder can rebuild its network without
pickles: ``build_model(meta["architecture"], **meta["arch_kwargs"])``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import TypeVar

import torch

_REGISTRY: dict[str, Callable[..., torch.nn.Module]] = {}

ModuleT = TypeVar("ModuleT", bound=type[torch.nn.Module])


def register(arch: str) -> Callable[[ModuleT], ModuleT]:
    """Class decorator: make ``build_model(arch, **kwargs)`` construct this class.

    Raises ``ValueError`` when ``arch`` is already taken by a different class.
    """

    def decorate(cls: ModuleT) -> ModuleT:
        existing = _REGISTRY.get(arch)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise ValueError(f"architecture {arch!r} is already registered to {existing!r}")
        _REGISTRY[arch] = cls
        return cls

    return decorate


def _import_model_modules() -> None:
    """Import every module of :mod:`core.models` so that their ``@register`` lines run."""
    import core.models as package

    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"core.models.{info.name}")


def available() -> tuple[str, ...]:
    """Names of all registered architectures, sorted."""
    _import_model_modules()
    return tuple(sorted(_REGISTRY))


def build_model(arch: str, **kwargs: object) -> torch.nn.Module:
    """Construct the registered network ``arch`` with keyword arguments ``kwargs``.

    Raises ``KeyError`` naming the known architectures when ``arch`` is unknown and
    ``TypeError`` when the constructor rejects ``kwargs``.
    """
    if arch not in _REGISTRY:
        _import_model_modules()
    if arch not in _REGISTRY:
        raise KeyError(f"unknown architecture {arch!r} (known: {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[arch](**kwargs)
