"""Selection scores: how a run's model was chosen, never on the test split.

Every choice (a sweep's or a tuner's winner, an early-stopping epoch) rests on a score the test
split has not seen: k-fold cross-validation on the training split (tables, TF-IDF text, classical
sequence models), the validation part (networks: the split's, or one carve-out of the training part)
or the rolling-origin backtest (forecasting). The
model's fit leaves what it measured in the :class:`~trainflow.refs.ModelRef`'s meta (``cv``, the
training ``history`` with ``val_*`` columns, ``selection``); :func:`selection_of` reads it as one
record ``{method, metric, value, greater_is_better}``, which metrics.json keeps as ``selection``.

:func:`reporting` installs, for the current thread of work, a function that receives intermediate
scores while a model fits (the training loop after every epoch, cross-validation after every fold)
and may answer stop: the one way a fit is stopped from outside. The tuner's pruner is one such
listener (:mod:`trainflow.tasks.common.tuning`); a caller of the training loop may pass its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from trainflow.refs import ModelRef

if TYPE_CHECKING:
    from trainflow.spec import PipelineSpec

#: folds of the cross-validation a sweep or a tune gives candidates whose spec sets none
DEFAULT_FOLDS = 5
#: share of the training split a sweep or a tune holds out to score networks whose spec holds out none
DEFAULT_VAL_FRACTION = 0.2

_REPORT: ContextVar[Callable[[int, dict[str, float]], bool | None] | None] = ContextVar("trainflow_report",
                                                                                       default=None)


class Stopped(Exception):
    """A fit that cannot stop part-way (cross-validation between folds) stopped by the listener of
    :func:`reporting` (a pruned trial); the message says where."""


@contextmanager
def reporting(hook: Callable[[int, dict[str, float]], bool | None]) -> Iterator[None]:
    """Make ``hook(step, values)`` the listener of every intermediate score reported while the block
    runs (in this thread or context); a true answer stops the fit: the training loop ends after that
    epoch as after early stopping, a fold loop raises :class:`Stopped`. The tuner's pruner is one such
    listener."""
    token = _REPORT.set(hook)
    try:
        yield
    finally:
        _REPORT.reset(token)


def listener() -> Callable[[int, dict[str, float]], bool | None] | None:
    """The listener of :func:`reporting` installed for this context, or None."""
    return _REPORT.get()


def stop_asked() -> bool:
    """Whether the listener of :func:`reporting` has already answered stop in this context (asked with
    no scores): a loop of fits (an ensemble's members, one after another) ends there, as the pruned
    trial that asked is not a candidate."""
    hook = _REPORT.get()
    return bool(hook is not None and hook(0, {}))


def report(step: int, values: dict[str, float]) -> None:
    """Hand a fold loop's intermediate score to the listener of :func:`reporting`, if any; raise
    :class:`Stopped` when it answers stop (a fold loop has no partial model worth keeping)."""
    hook = _REPORT.get()
    if hook is not None and hook(step, values):
        raise Stopped(f"stopped after step {step} by the listener")


def selection_overrides(spec: PipelineSpec) -> list[str]:
    """``--set`` overrides that make a candidate of ``spec`` carry a selection score: cross-validation
    folds when the spec sets none, and a validation part for networks that hold out none."""
    extra = []
    if spec.split.cv_folds < 2:
        extra.append(f"split.cv_folds={DEFAULT_FOLDS}")
    from trainflow import modalities

    train = getattr(spec, "train", None)
    # a modality trained by the shared loop declares the `train` section (every spec has it once any
    # such modality is registered); a classical model ignores the field
    neural = "train" in modalities.get(spec.modality).sections
    # the split's validation part, when the spec gives one, is what scores a network: nothing to carve
    if neural and train is not None and getattr(train, "val_fraction", 1) == 0 and not spec.split.validation:
        extra.append(f"train.val_fraction={DEFAULT_VAL_FRACTION}")
    return extra


def network_metric(spec: PipelineSpec) -> str:
    """What scores a network on its validation part: its validation loss, the criterion that already
    picks the kept epoch; unlike accuracy it does not move in steps of one example (two networks tie
    on the accuracy of a few hundred images more often than not)."""
    return "val_loss"


def selection_of(model: ModelRef, spec: PipelineSpec) -> dict[str, Any] | None:
    """The score that chose ``model`` (see the module docstring), or None when its fit measured none
    (a table without ``split.cv_folds``, a network without a validation part)."""
    from trainflow.tasks.common.metrics import greater_is_better

    meta = model.meta
    if meta.get("selection"):
        return dict(meta["selection"])
    cv = meta.get("cv")
    if cv and cv.get("folds"):
        return {"method": f"{len(cv['folds'])}-fold cross-validation on the training split", "metric": cv["metric"],
                "value": float(cv["mean"]), "std": float(cv.get("std", 0.0)),
                "greater_is_better": greater_is_better(cv["metric"])}
    history = meta.get("history") or []
    metric = network_metric(spec)
    best = int(meta.get("best_epoch") or len(history))
    rows = [h for h in history if h.get("epoch") == best and metric in h] or [h for h in history if metric in h][-1:]
    if rows:
        from trainflow.tasks.common.validation_part import method

        return {"method": f"{method(meta.get('validation_part'))} (epoch {rows[0]['epoch']})", "metric": metric,
                "value": float(rows[0][metric]), "greater_is_better": metric != "val_loss"}
    return None


def none_record(spec: PipelineSpec) -> dict[str, Any]:
    """The ``selection`` of a run whose model nothing chose (one model, no score measured)."""
    from trainflow.tasks.common.metrics import PRIMARY

    return {"method": "none", "metric": spec.evaluate.primary or PRIMARY[spec.task], "value": None}


def usable(value: Any) -> bool:
    """Whether ``value`` is a number a selection can rank (not None, not NaN)."""
    return isinstance(value, (int, float)) and not math.isnan(value)


def better(a: float, b: float | None, greater: bool) -> bool:
    """Whether score ``a`` beats ``b`` (None: nothing yet) in the metric's direction."""
    return b is None or (a > b if greater else a < b)
