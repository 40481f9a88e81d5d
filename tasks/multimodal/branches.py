"""The branches of a multimodal pipeline: each input's modality offers its adapter through the
modality interface (:meth:`trainflow.modality.Modality.branch`; the adapters are
:class:`trainflow.tasks.common.branch.Branch` subclasses in each modality's folder), so this
package names no other modality's module."""

from __future__ import annotations

from trainflow import modalities
from trainflow.errors import DataError
from trainflow.registry import REGISTRY
from trainflow.tasks.common.branch import Branch, Items, stem  # noqa: F401  (the loaders' and fusion's names)


def branch(modality: str, where: str = "") -> Branch:
    """The adapter of ``modality``; DataError naming the input when it has none."""
    adapter = modalities.get(modality).branch() if modality in REGISTRY.names("modality") else None
    if adapter is None:
        raise DataError(f"{where}: {modality} data cannot be a multimodal input yet (inputs can be "
                        f"{', '.join(supported())}).")
    return adapter


def supported() -> list[str]:
    """The modalities that can be inputs of a multimodal pipeline (those offering an adapter)."""
    return sorted(m.name for m in modalities.all_modalities() if m.branch() is not None)
