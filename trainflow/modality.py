"""Per-modality implementations of the pipeline stages.

The flow is the same for every kind of data; what "split", "fit" or "evaluate" means differs. Each
modality is a module in ``tasks/`` with the functions named in :data:`STAGE_FUNCTIONS`; the
flow's tasks look it up here by the loader's modality.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from trainflow.errors import ComponentError, expected

#: modality name -> module implementing its stages
MODALITIES: dict[str, str] = {
    "tabular": "trainflow.tasks.tabular",
    "image": "trainflow.tasks.image",
    "sequence": "trainflow.tasks.sequence",
    "forecast": "trainflow.tasks.forecast",
}

STAGE_FUNCTIONS = ("store", "validate", "split", "fit", "evaluate", "export", "predict")


def modality(name: str) -> ModuleType:
    """The module implementing the stages for data of kind ``name``."""
    if name not in MODALITIES:
        raise ComponentError(expected("The data modality", MODALITIES, name))
    return importlib.import_module(MODALITIES[name])
