"""Metrics: named scoring functions, plus the per-class report and confusion matrix.

A metric component is called as ``fn(y_true, y_pred, proba, labels)`` and returns a float;
``greater_is_better`` (registered beside it) tells champion comparisons which way is better.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trainflow.registry import REGISTRY, component

CLS = ("classification",)
REG = ("regression", "forecasting")

DEFAULTS = {
    "classification": ["accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro",
                       "roc_auc", "log_loss"],
    "regression": ["rmse", "mae", "r2"],
    "forecasting": ["rmse", "mae", "mape"],
    "multilabel": ["hamming_loss", "subset_accuracy", "micro_f1", "macro_f1", "samples_f1", "macro_roc_auc"],
}
PRIMARY = {"classification": "balanced_accuracy", "regression": "rmse", "forecasting": "rmse", "multilabel": "micro_f1"}
ML = ("multilabel",)


def require_scorable_test(y_train: Any, y_test: Any, where: str) -> None:
    """DataError when no test label was seen in training: a classifier cannot be scored on them
    (typically every class has a single row, as with an id column chosen as the target).
    ``where`` names the data in the message, e.g. ``"'data.csv' (column 'label')"``."""
    from trainflow.errors import DataError

    seen = {str(v) for v in np.asarray(y_train).tolist()}
    if not any(str(v) in seen for v in np.asarray(y_test).tolist()):
        values, counts = np.unique(np.concatenate([np.asarray(y_train), np.asarray(y_test)]).astype(str),
                                   return_counts=True)
        raise DataError(f"No test row of {where} has a class seen in training: its {len(values)} classes have "
                        f"{int(counts.max())} row(s) at most ({int((counts == 1).sum())} have a single row). A "
                        f"classifier needs several rows per class; check that the target is the label to predict, "
                        f"not an identifier.")


@component("metric", "accuracy", tasks=CLS, greater_is_better=True)
def accuracy(y_true, y_pred, proba=None, labels=None) -> float:
    """Share of correct predictions."""
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(y_true, y_pred))


@component("metric", "balanced_accuracy", tasks=CLS, greater_is_better=True)
def balanced_accuracy(y_true, y_pred, proba=None, labels=None) -> float:
    """Mean recall over classes (robust to imbalance)."""
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(y_true, y_pred))


def balanced_accuracy_codes(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """:func:`balanced_accuracy` for integer class codes (``y_pred`` may hold codes ``y_true`` lacks,
    e.g. -1): the same arithmetic as scikit-learn's (recall of each class present in ``y_true``,
    their mean) without its input checks, which cost ~5 ms a call where a loop scores hundreds of
    predictions (leakage alarms, permutation importance)."""
    counts = np.bincount(y_true)
    hits = np.bincount(y_true[y_pred == y_true], minlength=len(counts))
    present = counts > 0
    return float(np.mean(hits[present] / counts[present]))


def _prf(which: int):
    def metric(y_true, y_pred, proba=None, labels=None) -> float:
        from sklearn.metrics import precision_recall_fscore_support

        return float(precision_recall_fscore_support(y_true, y_pred, average="macro", zero_division=0)[which])

    return metric


for _i, _name, _doc in ((0, "precision_macro", "Precision averaged over classes."),
                        (1, "recall_macro", "Recall averaged over classes."),
                        (2, "f1_macro", "F1 averaged over classes.")):
    _fn = _prf(_i)
    _fn.__doc__ = _doc
    component("metric", _name, tasks=CLS, greater_is_better=True)(_fn)


@component("metric", "roc_auc", tasks=CLS, greater_is_better=True)
def roc_auc(y_true, y_pred, proba=None, labels=None) -> float:
    """Area under the ROC curve (one-vs-rest, macro average for several classes)."""
    from sklearn.metrics import roc_auc_score

    return _area(y_true, proba, roc_auc_score, lambda: roc_auc_score(
        y_true, proba, multi_class="ovr", average="macro", labels=list(range(proba.shape[1]))))


def _area(y_true, proba, score, several) -> float:
    """An area under a curve from class probabilities: ``score`` on the positive column for two
    classes, ``several()`` for more; NaN without probabilities or with one class in ``y_true``."""
    if proba is None or len(np.unique(y_true)) < 2:
        return float("nan")
    if proba.shape[1] == 2:
        return float(score(y_true, proba[:, 1]))
    return float(several())


@component("metric", "log_loss", tasks=CLS, greater_is_better=False)
def log_loss(y_true, y_pred, proba=None, labels=None) -> float:
    """Cross-entropy of the predicted probabilities."""
    from sklearn.metrics import log_loss as sk_log_loss

    if proba is None:
        return float("nan")
    from trainflow.tasks.common.calibration import summing_to_one

    proba = summing_to_one(proba)
    return float(sk_log_loss(y_true, proba, labels=list(range(proba.shape[1]))))


@component("metric", "top_2_accuracy", tasks=CLS, greater_is_better=True)
def top_2_accuracy(y_true, y_pred, proba=None, labels=None) -> float:
    """Share of rows whose true class is among the two most probable."""
    return top_k(y_true, proba, 2)


@component("metric", "top_5_accuracy", tasks=CLS, greater_is_better=True)
def top_5_accuracy(y_true, y_pred, proba=None, labels=None) -> float:
    """Share of rows whose true class is among the five most probable."""
    return top_k(y_true, proba, 5)


def top_k(y_true, proba, k: int) -> float:
    """Top-k accuracy for integer-coded ``y_true`` (nan without probabilities)."""
    if proba is None:
        return float("nan")
    k = min(k, proba.shape[1])
    top = np.argsort(-proba, axis=1)[:, :k]
    return float(np.mean([t in row for t, row in zip(np.asarray(y_true), top)]))


@component("metric", "rmse", tasks=REG, greater_is_better=False)
def rmse(y_true, y_pred, proba=None, labels=None) -> float:
    """Root mean squared error."""
    diff = np.asarray(y_true, dtype=float) - np.asarray(y_pred, dtype=float)
    return float(np.sqrt(np.mean(diff**2)))


@component("metric", "mae", tasks=REG, greater_is_better=False)
def mae(y_true, y_pred, proba=None, labels=None) -> float:
    """Mean absolute error."""
    return float(np.mean(np.abs(np.asarray(y_true, dtype=float) - np.asarray(y_pred, dtype=float))))


@component("metric", "r2", tasks=REG, greater_is_better=True)
def r2(y_true, y_pred, proba=None, labels=None) -> float:
    """Coefficient of determination."""
    from sklearn.metrics import r2_score

    return float(r2_score(y_true, y_pred))


@component("metric", "mape", tasks=REG, greater_is_better=False)
def mape(y_true, y_pred, proba=None, labels=None) -> float:
    """Mean absolute percentage error, in percent (rows with a true value of 0 are skipped)."""
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    keep = y_true != 0
    return float(np.mean(np.abs((y_true[keep] - y_pred[keep]) / y_true[keep])) * 100)


# ---------------------------------------------------------------- multi-label: 0/1 matrices (rows x labels)


@component("metric", "hamming_loss", tasks=ML, greater_is_better=False)
def hamming_loss(y_true, y_pred, proba=None, labels=None) -> float:
    """Share of wrong label assignments (rows x labels)."""
    return float(np.mean(np.asarray(y_true) != np.asarray(y_pred)))


@component("metric", "subset_accuracy", tasks=ML, greater_is_better=True)
def subset_accuracy(y_true, y_pred, proba=None, labels=None) -> float:
    """Share of rows whose whole label set is right."""
    return float(np.mean((np.asarray(y_true) == np.asarray(y_pred)).all(axis=1)))


def _f1(average: str):
    def metric(y_true, y_pred, proba=None, labels=None) -> float:
        from sklearn.metrics import f1_score

        # samples: a row with no true and no predicted label is predicted perfectly (F1 1, not 0);
        # micro/macro: a label never true nor predicted scores 0, as scikit-learn's usual warning case
        return float(f1_score(y_true, y_pred, average=average, zero_division=1 if average == "samples" else 0))

    metric.__doc__ = {"micro": "F1 over all label assignments pooled.", "macro": "F1 averaged over labels.",
                      "samples": "F1 averaged over rows (each row's label set; an empty set predicted "
                                 "empty scores 1)."}[average]
    return metric


for _avg in ("micro", "macro", "samples"):
    component("metric", f"{_avg}_f1", tasks=ML, greater_is_better=True)(_f1(_avg))


@component("metric", "macro_roc_auc", tasks=ML, greater_is_better=True)
def macro_roc_auc(y_true, y_pred, proba=None, labels=None) -> float:
    """ROC-AUC averaged over the labels that take both values in the test rows (nan without probabilities)."""
    from sklearn.metrics import roc_auc_score

    y_true = np.asarray(y_true)
    both = [j for j in range(y_true.shape[1]) if len(np.unique(y_true[:, j])) == 2]
    if proba is None or not both:
        return float("nan")
    return float(np.mean([roc_auc_score(y_true[:, j], np.asarray(proba)[:, j]) for j in both]))


def score(names: list[str], y_true, y_pred, proba=None, labels=None) -> dict[str, float]:
    """Every named metric, in order."""
    return {n: REGISTRY.get("metric", n).build(y_true, y_pred, proba, labels) for n in names}


def greater_is_better(name: str) -> bool:
    """Direction of a metric, for comparing runs."""
    return bool(REGISTRY.get("metric", name).extra.get("greater_is_better", True))


def classification_details(y_true, y_pred, labels: list[str]) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """Per-class precision/recall/F1/support and the confusion matrix, for integer-coded labels."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    idx = list(range(len(labels)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=idx, zero_division=0)
    per_class = {str(lab): {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                 for i, lab in enumerate(labels)}
    cm = confusion_matrix(y_true, y_pred, labels=idx)
    return per_class, {"labels": [str(x) for x in labels], "matrix": cm.tolist()}


@component("metric", "pr_auc", tasks=CLS, greater_is_better=True)
def pr_auc(y_true, y_pred, proba=None, labels=None) -> float:
    """Area under the precision-recall curve (average precision; macro over classes for several)."""
    from sklearn.metrics import average_precision_score

    return _area(y_true, proba, average_precision_score, lambda: average_precision_score(
        np.eye(proba.shape[1])[np.asarray(y_true, dtype=int)], proba, average="macro"))


@component("metric", "brier", tasks=CLS, greater_is_better=False)
def brier(y_true, y_pred, proba=None, labels=None) -> float:
    """Brier score: mean squared error of the class probabilities (nan without probabilities)."""
    from trainflow.tasks.common.calibration import brier as score_brier

    return float("nan") if proba is None else score_brier(y_true, proba)


@component("metric", "ece", tasks=CLS, greater_is_better=False)
def ece(y_true, y_pred, proba=None, labels=None) -> float:
    """Expected calibration error of the predicted class's probability, 15 bins (nan without probabilities)."""
    from trainflow.tasks.common.calibration import ece as score_ece

    return float("nan") if proba is None else score_ece(y_true, proba)
