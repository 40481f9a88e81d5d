"""Scoring and writing metrics.json for the plain scripts: the metrics trainflow reports, computed
the way a plain script would (scikit-learn on one set of probabilities)."""

from __future__ import annotations

import json
from pathlib import Path

from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix, log_loss,
                             precision_recall_fscore_support, roc_auc_score)


def score(y, proba) -> tuple[dict[str, float], list[list[int]]]:
    """Classification metrics and the confusion matrix for integer labels ``y`` and class probabilities."""
    pred = proba.argmax(axis=1)
    p, r, f, _ = precision_recall_fscore_support(y, pred, average="macro", zero_division=0)
    auc = roc_auc_score(y, proba[:, 1]) if proba.shape[1] == 2 else roc_auc_score(y, proba, multi_class="ovr")
    metrics = {"accuracy": accuracy_score(y, pred), "balanced_accuracy": balanced_accuracy_score(y, pred),
               "precision_macro": p, "recall_macro": r, "f1_macro": f, "roc_auc": auc,
               "log_loss": log_loss(y, proba, labels=list(range(proba.shape[1])))}
    return {k: float(v) for k, v in metrics.items()}, confusion_matrix(y, pred).tolist()


def write(out: Path, metrics: dict[str, float], confusion: list[list[int]]) -> None:
    (out / "metrics.json").write_text(json.dumps({"metrics": metrics, "confusion": confusion}, indent=2))


def evaluate_and_publish(meter, pipe, test_xy, out: Path) -> None:
    """The plain scripts' last stages, timed by ``meter``: ``test_xy()`` gives the test features and
    integer labels, the fitted ``pipe`` scores them, metrics.json is written; then the report."""
    with meter.stage("evaluate"):
        X, y = test_xy()
        metrics, confusion = score(y, pipe.predict_proba(X))
    with meter.stage("publish"):
        write(out, metrics, confusion)
    meter.extra["metrics"] = metrics
    meter.report()
