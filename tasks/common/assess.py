"""What every evaluation adds to its scores: bootstrap intervals and, for classifiers, calibration.

A modality's ``evaluate`` scores its test predictions and ends with :func:`assess`, which adds

- a bootstrap 95% interval (:mod:`trainflow.tasks.common.uncertainty`) for the primary metric and
  accuracy / macro F1 / RMSE / micro and macro F1 (multi-label) where they were scored;
- for classifiers with probabilities: the Brier score and ECE as metrics, the reliability table and
  diagram (:mod:`trainflow.tasks.common.calibration`); multi-label: per label, and their means.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trainflow.refs import Evaluation
from trainflow.tasks.common import calibration as C
from trainflow.tasks.common import metrics as M
from trainflow.tasks.common import uncertainty as U

if TYPE_CHECKING:
    from trainflow.spec import PipelineSpec

#: metrics that get an interval beside the primary one, where scored
WITH_INTERVAL = ("accuracy", "f1_macro", "rmse", "micro_f1", "macro_f1")


def intervals(metrics: dict[str, float], names: list[str], y_true: Any, y_pred: Any, proba: Any, labels: Any,
              task: str, seed: int) -> dict[str, list[float]]:
    """Bootstrap 95% intervals of the metrics ``names`` that ``metrics`` holds (see the module docstring)."""
    out = {}
    for name in dict.fromkeys(names):
        if name not in metrics or not np.isfinite(metrics[name]):
            continue
        interval = U.metric_interval(name, y_true, y_pred, proba, labels, task=task, seed=seed)
        if interval is not None:
            out[name] = interval
    return out


def assess(ev: Evaluation, spec: PipelineSpec, y_true: Any, y_pred: Any, proba: Any = None, labels: Any = None,
           plots_dir: str | Path | None = None) -> Evaluation:
    """``ev`` with intervals and calibration added; ``y_true``/``y_pred`` integer class codes
    (classification), values (regression) or 0/1 matrices (multi-label), ``proba`` the class (label)
    probabilities or None."""
    task = spec.task
    primary = spec.evaluate.primary or M.PRIMARY[task]
    metrics, tables, charts = dict(ev.metrics), dict(ev.tables), dict(ev.plots)
    notes = list(ev.notes)
    found = intervals(metrics, [primary, *WITH_INTERVAL], y_true, y_pred, proba, labels, task, spec.seed)
    if found:
        how = "within each class" if task == "classification" else "rows"
        notes.append(f"95% intervals: percentile bootstrap of the test rows ({U.RESAMPLES} resamples, {how}, "
                     f"seed {spec.seed}) for {', '.join(found)}")
    if proba is not None and task in ("classification", "multilabel"):
        curves: dict[str, list[dict[str, float]]]
        if task == "classification":
            proba = np.asarray(proba, dtype=float)
            metrics["brier"] = C.brier(y_true, proba)
            table = C.reliability(*C.top_label(y_true, proba))
            metrics["ece"] = C.ece_of(table)
            curves = {"predicted class": table}
            tables["Calibration (test split, 15 bins of the predicted class's probability)"] = [
                {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in table]
        else:
            Y, proba = np.asarray(y_true, dtype=float), np.asarray(proba, dtype=float)
            names = [str(x) for x in (labels if labels is not None else range(Y.shape[1]))]
            curves = {n: C.reliability(proba[:, j], Y[:, j]) for j, n in enumerate(names)}
            per_label = [{"label": n, "brier": float(np.mean((proba[:, j] - Y[:, j]) ** 2)),
                          "ece": C.ece_of(curves[n])} for j, n in enumerate(names)]
            metrics["brier"] = float(np.mean([r["brier"] for r in per_label]))
            metrics["ece"] = float(np.nanmean([r["ece"] for r in per_label]))
            tables["Calibration per label (test split, 15 bins)"] = [
                {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in per_label]
        if plots_dir is not None:
            charts["Reliability diagram"] = C.reliability_png(curves, Path(plots_dir) / "reliability.png",
                                                              "Reliability (test split)")
    return ev.model_copy(update={"metrics": metrics, "intervals": {**ev.intervals, **found}, "tables": tables,
                                 "plots": charts, "notes": notes})
