"""Warm-up imports: the libraries fit and evaluate will import, run ahead of them while the flow's
thread would only wait for the validation's child process (see :func:`trainflow.flows.pipeline.validating`).

A performance concern, kept apart from the :class:`~trainflow.modality.Modality` interface: a
modality adds its own steps with :func:`add` when its module is imported; every modality gets the
report's plotting library after them. Steps run one at a time under :data:`WARMING`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

#: held by the flow's thread for each warm-up import and by an in-process validation for its whole
#: run: two threads' first imports of the same packages can deadlock (``_DeadlockError``)
WARMING = threading.Lock()

_STEPS: dict[str, list[Callable[[], Any]]] = {}


def add(modality: str, *steps: Callable[[], Any]) -> None:
    """Register import steps of ``modality`` (by its registered name), in the order its stages need them."""
    _STEPS.setdefault(modality, []).extend(steps)


def steps(modality: str) -> list[Callable[[], Any]]:
    """The warm-up steps of ``modality``: its own, then the report's plotting library."""
    from trainflow.tasks.common import plots

    return [*_STEPS.get(modality, ()), plots.warm_up]


def run_next(steps: Iterator[Callable[[], Any]]) -> bool:
    """Run the next step of ``steps`` under :data:`WARMING`; False when none is left. A failure is left
    to the stage that needs the library to report."""
    step = next(steps, None)
    if step is None:
        return False
    with WARMING:
        try:
            step()
        except Exception:
            pass
    return True
