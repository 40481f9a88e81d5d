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


def evaluate_and_publish(meter, pipe, test_xy, out: Path, full_report: bool = False) -> None:
    """The plain scripts' last stages, timed by ``meter``: ``test_xy()`` gives the test features and
    integer labels, the fitted ``pipe`` scores them, metrics.json is written; then the report.
    ``full_report``: also what trainflow's report holds (:func:`report`)."""
    with meter.stage("evaluate"):
        X, y = test_xy()
        proba = pipe.predict_proba(X)
        metrics, confusion = score(y, proba)
        if full_report:
            # trainflow's importance rows for this many columns (tasks/tabular/importance.py: rows_for)
            rows = int(min(2000, max(200, 60_000 // max(1, X.shape[1] * 5))))
            metrics["report"] = report(y, proba, pipe, X, out / "plots", rows)
    with meter.stage("publish"):
        write(out, metrics, confusion)
    meter.extra["metrics"] = metrics
    meter.report()


def report(y, proba, pipe, X, out: Path, importance_rows: int, seed: int = 0) -> dict[str, object]:
    """What trainflow's report adds to the scores, written as a plain script would with the same
    libraries: bootstrap 95% intervals (1,000 resamples within each class, vectorised with numpy),
    Brier score, a 15-bin reliability table and its ECE (``sklearn.calibration.calibration_curve``),
    permutation importance (``sklearn.inspection.permutation_importance``, 5 repeats, on the same
    number of seeded test rows as trainflow) and four PNG plots (matplotlib's pyplot)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.calibration import calibration_curve
    from sklearn.inspection import permutation_importance

    rng = np.random.default_rng(seed)
    pred, k = proba.argmax(axis=1), proba.shape[1]
    by_class = [np.flatnonzero(y == c) for c in range(k)]
    draws = np.concatenate([rows[rng.integers(0, len(rows), (1000, len(rows)), dtype=np.int32)] for rows in by_class], axis=1)
    cells = (y * k + pred)[draws]
    counts = np.stack([np.bincount(r, minlength=k * k) for r in cells]).reshape(-1, k, k).astype(float)
    recall = np.diagonal(counts, axis1=1, axis2=2) / counts.sum(axis=2)
    precision = np.diagonal(counts, axis1=1, axis2=2) / np.maximum(counts.sum(axis=1), 1)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0)
    stats = {"balanced_accuracy": recall.mean(axis=1), "f1_macro": f1.mean(axis=1),
             "accuracy": np.trace(counts, axis1=1, axis2=2) / counts.sum(axis=(1, 2))}
    intervals = {n: np.percentile(v, [2.5, 97.5]).tolist() for n, v in stats.items()}
    top = proba.max(axis=1)
    truth, mean_p = calibration_curve((pred == y).astype(int), top, n_bins=15, strategy="uniform")
    bins = np.minimum((top * 15).astype(int), 14)
    weights = np.bincount(bins, minlength=15)[np.bincount(bins, minlength=15) > 0] / len(y)
    ece = float(np.sum(weights * np.abs(truth - mean_p)))
    brier = float(np.mean(np.sum((proba - np.eye(k)[y]) ** 2, axis=1)))
    sample = np.sort(rng.choice(len(y), min(len(y), importance_rows), replace=False))
    imp = permutation_importance(pipe, X.iloc[sample], y[sample], scoring="balanced_accuracy", n_repeats=5,
                                 random_state=seed)
    order = np.argsort(-imp.importances_mean)
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots()
    ax.imshow(confusion_matrix(y, pred), cmap="Blues")
    ax.set_title("Confusion matrix (test split)")
    fig.tight_layout()
    fig.savefig(out / "confusion_matrix.png", dpi=80)
    fig, ax = plt.subplots()
    ax.bar(range(k), np.bincount(y, minlength=k))
    ax.set_title("Test classes")
    fig.tight_layout()
    fig.savefig(out / "class_balance.png", dpi=80)
    fig, ax = plt.subplots(figsize=(6, 8))
    shown = order[:30][::-1]
    ax.barh([X.columns[i] for i in shown], imp.importances_mean[shown], xerr=imp.importances_std[shown])
    ax.set_title("Permutation importance")
    fig.tight_layout()
    fig.savefig(out / "importance.png", dpi=80)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], ":")
    ax.plot(mean_p, truth, "o-")
    ax.set_title("Reliability (test split)")
    fig.tight_layout()
    fig.savefig(out / "reliability.png", dpi=80)
    plt.close("all")
    return {"intervals": intervals, "ece": ece, "brier": brier,
            "importance": {str(X.columns[i]): float(imp.importances_mean[i]) for i in order}}
