"""The registered modalities: look one up by name, list them, find the one a loader gives, and the
spec sections they add. The interface itself is :mod:`trainflow.modality`; this module sits above
the registry, which the interface does not import."""

from __future__ import annotations

from functools import lru_cache

from pydantic import BaseModel

from trainflow.errors import ComponentError, expected
from trainflow.modality import Modality
from trainflow.registry import REGISTRY


@lru_cache(maxsize=None)
def _instance(cls: type[Modality]) -> Modality:
    return cls()


def get(name: str) -> Modality:
    """The registered modality ``name`` (ComponentError listing the known ones otherwise)."""
    return _instance(REGISTRY.get("modality", name, where="the data modality").build)


def all_modalities() -> list[Modality]:
    """Every registered modality, by name."""
    return [get(n) for n in REGISTRY.names("modality")]


def modality_of_loader(loader: str) -> str:
    """The modality a registered loader gives (every loader names one when it registers)."""
    comp = REGISTRY.get("loader", loader, where="data.loader")
    if comp.modality not in REGISTRY.names("modality"):
        raise ComponentError(expected(f"The modality of loader '{loader}' (module {comp.module})",
                                      REGISTRY.names("modality"), comp.modality))
    return comp.modality


def sections() -> dict[str, type[BaseModel]]:
    """Every spec section the registered modalities add (path -> model); two modalities may share a
    section only with the same model."""
    found: dict[str, tuple[type[BaseModel], str]] = {}
    for mod in all_modalities():
        for path, model in mod.sections.items():
            old = found.get(path)
            if old is not None and old[0] is not model:
                raise ComponentError(f"The spec section '{path}' of modality '{mod.name}' ({model.__name__}) "
                                     f"clashes with the one of modality '{old[1]}' ({old[0].__name__}).")
            found.setdefault(path, (model, mod.name))
    return {path: model for path, (model, _) in found.items()}
