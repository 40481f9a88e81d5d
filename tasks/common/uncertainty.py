"""Bootstrap intervals: how far a test metric (or the difference of two models' metrics on the same
rows) could move with another draw of test rows.

Percentile intervals (95% by default) from seeded resamples of the test rows. Classification is
resampled **within each true class** (the test split is stratified, so its class counts are fixed by
design; a resample that lost a rare class would leave balanced accuracy or macro F1 undefined). For
the metrics of a confusion matrix (accuracy, balanced accuracy, macro precision/recall/F1) the
resamples are drawn as multinomial counts of its cells, which costs the same for 100 rows as for a
million; other metrics are recomputed on resampled rows (up to :data:`MAX_ROWS` rows; beyond that a
mean-type metric such as RMSE or MAE uses the normal approximation of its mean, others get none).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

RESAMPLES = 1000
LEVEL = 0.95
#: rows beyond which metrics other than the confusion-matrix ones are not bootstrapped row by row
MAX_ROWS = 50_000
#: most cells (classes^2, or classes^3 for a paired comparison) drawn as multinomial counts
MAX_CELLS = 40_000
CONFUSION_METRICS = ("accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro")
MEAN_METRICS = {"rmse": lambda e: e ** 2, "mae": np.abs}  # metric -> per-row loss whose mean it is built on


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> list[float] | None:
    """The central ``level`` percentile interval of bootstrap ``values`` (NaNs dropped); None if none."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return None
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return [float(low), float(high)]


def mean_interval(values: np.ndarray, resamples: int = RESAMPLES, seed: int = 0) -> list[float] | None:
    """The bootstrap percentile interval of the mean of ``values`` (one per independent unit: a row,
    a series), e.g. paired differences: their mean is beyond noise when the interval excludes 0."""
    values = np.asarray(values, dtype=float)
    draws = values[np.random.default_rng(seed).integers(0, len(values), (resamples, len(values)))].mean(axis=1)
    return percentile_interval(draws)


# ---------------------------------------------------------------- metrics of confusion matrices


def confusion_metric(name: str, C: np.ndarray) -> np.ndarray:
    """``name`` (one of :data:`CONFUSION_METRICS`) of a batch of confusion matrices ``C`` [B, true, pred],
    as scikit-learn computes it: macro averages over the classes present as truth or prediction,
    precision/F1 of a class never predicted count 0; balanced accuracy averages the recalls of the
    classes present as truth."""
    C = np.asarray(C, dtype=float)
    rows, cols = C.sum(axis=2), C.sum(axis=1)
    diag = np.diagonal(C, axis1=1, axis2=2)
    total = rows.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if name == "accuracy":
            return diag.sum(axis=1) / total
        recall = np.where(rows > 0, diag / np.where(rows > 0, rows, 1), 0.0)
        if name == "balanced_accuracy":
            return recall.sum(axis=1) / (rows > 0).sum(axis=1)
        precision = np.where(cols > 0, diag / np.where(cols > 0, cols, 1), 0.0)
        present = (rows > 0) | (cols > 0)
        if name == "recall_macro":
            per = recall
        elif name == "precision_macro":
            per = precision
        else:
            denom = precision + recall
            per = np.where(denom > 0, 2 * precision * recall / np.where(denom > 0, denom, 1), 0.0)
        return (per * present).sum(axis=1) / present.sum(axis=1)


def _class_draws(y: np.ndarray, cells: np.ndarray, k: int, n_cells: int, resamples: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Resampled counts [B, k, n_cells] of ``cells`` (each row's cell index), within each true class."""
    out = np.zeros((resamples, k, n_cells))
    for c in np.unique(y):
        counts = np.bincount(cells[y == c], minlength=n_cells)
        out[:, c, :] = rng.multinomial(counts.sum(), counts / counts.sum(), size=resamples)
    return out


def _codes(*arrays: Any) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(a).astype(np.int64) for a in arrays)


# ---------------------------------------------------------------- row resampling


def row_resamples(n: int, resamples: int, seed: int, strata: np.ndarray | None = None,
                  chunk_cells: int = 5_000_000) -> Iterator[np.ndarray]:
    """Blocks of resampled row indices [b, n] (at most ``chunk_cells`` indices a block), ``resamples``
    rows in all; within each stratum when ``strata`` is given."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(strata == s) for s in np.unique(strata)] if strata is not None else [np.arange(n)]
    step = max(1, chunk_cells // max(n, 1))
    for start in range(0, resamples, step):
        b = min(step, resamples - start)
        block = np.empty((b, n), dtype=np.int64)
        for rows in groups:
            block[:, rows] = rows[rng.integers(0, len(rows), (b, len(rows)))]
        yield block


def _rowwise(stat: Callable[[np.ndarray], float], n: int, resamples: int, seed: int,
             strata: np.ndarray | None) -> np.ndarray:
    import warnings

    with warnings.catch_warnings():  # a resample may lack a class: scikit-learn warns, the draw is NaN or kept
        warnings.simplefilter("ignore")
        return np.array([stat(idx) for block in row_resamples(n, resamples, seed, strata) for idx in block], dtype=float)


def _normal_mean(loss: np.ndarray, finish: Callable[[np.ndarray], np.ndarray], resamples: int,
                 seed: int) -> np.ndarray:
    """Draws of ``finish(mean of loss)`` from the normal approximation of the mean (large samples)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(loss.mean(), loss.std(ddof=1) / np.sqrt(len(loss)), resamples)
    return finish(np.maximum(means, 0) if finish is np.sqrt else means)


# ---------------------------------------------------------------- one model


def metric_draws(name: str, y_true: Any, y_pred: Any, proba: Any = None, labels: Any = None, task: str = "classification",
                 resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray | None:
    """Bootstrap draws of metric ``name`` for one model's test predictions (integer-coded classes for
    classification); None where the metric cannot be resampled (see the module docstring)."""
    from trainflow.tasks.common.metrics import score

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    n = len(y_true)
    if n < 2:
        return None
    cls = task == "classification"
    if cls and name in CONFUSION_METRICS:
        t, p = _codes(y_true, y_pred)
        k = int(max(t.max(), p.max())) + 1
        if k * k <= MAX_CELLS:
            draws = _class_draws(t, p, k, k, resamples, np.random.default_rng(seed))
            return confusion_metric(name, draws)
    if name in MEAN_METRICS and not cls and n > MAX_ROWS:
        loss = MEAN_METRICS[name](np.asarray(y_true, dtype=float) - np.asarray(y_pred, dtype=float))
        return _normal_mean(loss.ravel(), np.sqrt if name == "rmse" else (lambda m: m), resamples, seed)
    if n > MAX_ROWS:
        return None
    proba = None if proba is None else np.asarray(proba)
    strata = y_true if cls else None

    def stat(idx: np.ndarray) -> float:
        return score([name], y_true[idx], y_pred[idx], None if proba is None else proba[idx], labels)[name]

    return _rowwise(stat, n, resamples, seed, strata)


def metric_interval(name: str, y_true: Any, y_pred: Any, proba: Any = None, labels: Any = None,
                    task: str = "classification", resamples: int = RESAMPLES, seed: int = 0,
                    level: float = LEVEL) -> list[float] | None:
    """The bootstrap ``level`` interval ``[low, high]`` of metric ``name``; None where none can be drawn."""
    draws = metric_draws(name, y_true, y_pred, proba, labels, task, resamples, seed)
    return None if draws is None else percentile_interval(draws, level)


# ---------------------------------------------------------------- two models on the same rows


def paired_difference(name: str, y_true: Any, new: tuple[Any, Any], old: tuple[Any, Any], task: str,
                      labels: Any = None, resamples: int = RESAMPLES, seed: int = 0,
                      level: float = LEVEL) -> dict[str, Any]:
    """Metric ``name`` of two models scored on the same rows, their difference ``new - old`` and its
    paired bootstrap interval (the same resampled rows for both models in every draw).

    ``new`` and ``old`` are ``(predictions, probabilities or None)``; classification predictions are
    integer codes of the same classes as ``y_true`` (a class unknown to one model gets a code of its
    own). Returns ``{"new", "old", "difference", "interval", "resamples", "method"}``; ``interval``
    is None where the metric cannot be resampled."""
    from trainflow.tasks.common.metrics import score

    y_true = np.asarray(y_true)
    (pa, qa), (pb, qb) = new, old
    pa, pb = np.asarray(pa), np.asarray(pb)
    value_new = score([name], y_true, pa, qa, labels)[name]
    value_old = score([name], y_true, pb, qb, labels)[name]
    out: dict[str, Any] = {"new": value_new, "old": value_old, "difference": value_new - value_old,
                           "interval": None, "resamples": resamples, "level": level, "rows": int(len(y_true))}
    cls = task == "classification"
    draws = None
    if len(y_true) < 2:
        out["method"] = "none: fewer than two rows"
        return out
    if cls and name in CONFUSION_METRICS:
        t, a, b = _codes(y_true, pa, pb)
        k = int(max(t.max(), a.max(), b.max())) + 1
        if k ** 3 <= MAX_CELLS:
            joint = _class_draws(t, a * k + b, k, k * k, resamples, np.random.default_rng(seed)).reshape(
                resamples, k, k, k)
            draws = confusion_metric(name, joint.sum(axis=3)) - confusion_metric(name, joint.sum(axis=2))
            out["method"] = "stratified paired bootstrap (multinomial counts of the joint confusion cells)"
    if draws is None and name in MEAN_METRICS and not cls and len(y_true) > MAX_ROWS:
        # the two models' mean losses on the same rows are jointly normal for a large test split
        loss = MEAN_METRICS[name]
        y = np.asarray(y_true, dtype=float)
        both = np.column_stack([loss(y - pa.astype(float)).ravel(), loss(y - pb.astype(float)).ravel()])
        means = np.random.default_rng(seed).multivariate_normal(
            both.mean(axis=0), np.cov(both, rowvar=False) / len(both), resamples)
        finish = np.sqrt if name == "rmse" else (lambda m: m)
        means = np.maximum(means, 0)
        draws = finish(means[:, 0]) - finish(means[:, 1])
        out["method"] = "normal approximation of the two models' mean losses on the same rows (large test split)"
    if draws is None and len(y_true) <= MAX_ROWS:
        qa = None if qa is None else np.asarray(qa)
        qb = None if qb is None else np.asarray(qb)

        def stat(idx: np.ndarray) -> float:
            return (score([name], y_true[idx], pa[idx], None if qa is None else qa[idx], labels)[name]
                    - score([name], y_true[idx], pb[idx], None if qb is None else qb[idx], labels)[name])

        draws = _rowwise(stat, len(y_true), resamples, seed, y_true if cls else None)
        out["method"] = ("stratified " if cls else "") + "paired bootstrap of the test rows"
    if draws is None:
        out["method"] = f"none: {len(y_true)} rows is more than {MAX_ROWS} for metric '{name}'"
        return out
    out["interval"] = percentile_interval(draws, level)
    return out
