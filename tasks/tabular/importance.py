"""Which input columns a table model relies on: permutation importance on the test split.

Permutation importance as scikit-learn defines it shuffles one original column at a time (before any
imputation or encoding, so a category's one-hot columns move together) and measures how much the
primary metric drops; 5 seeded repeats give the spread. The cost is columns x repeats predictions of
the rows used, so a wide table uses fewer test rows (a seeded sample, :func:`rows_for`): the same
columns and data always give the same rows, on any machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

REPEATS = 5
#: a seeded sample of this many test rows ranks columns as well as the whole split and keeps the cost
#: (columns x repeats predictions) small next to the fit: 50 columns of a 200-tree forest on 5,000 rows
#: took longer than the fit itself
MAX_ROWS = 2_000
#: row predictions (columns x repeats x rows) a table's importance may cost: 50 columns of a 200-tree
#: forest or of gradient boosting at 2,000 rows cost longer than the fit (23 s against 19 s at 20,000
#: training rows; 105 s against 66 s at 100,000 with a core busy), since each prediction pays the
#: model's own start-up too
ROW_PREDICTIONS = 60_000
#: the fewest rows a wide table's importance uses (fewer would rank noise)
MIN_ROWS = 200


def rows_for(columns: int) -> int:
    """Test rows the importance of ``columns`` columns uses at most."""
    return int(min(MAX_ROWS, max(MIN_ROWS, ROW_PREDICTIONS // max(1, columns * REPEATS))))


def permutation_table(pipe: Any, X: Any, y: Any, metric: str, predict: Callable[[Any, Any], tuple[Any, Any]],
                      seed: int) -> tuple[list[dict[str, Any]], str]:
    """Rows ``{column, drop, std}`` (most important first), the drop in ``metric`` when the column is
    shuffled (positive: the model needs it), and the note saying how it was measured."""
    from trainflow.tasks.common import metrics as M

    sign = 1.0 if M.greater_is_better(metric) else -1.0
    rows, most = np.arange(len(X)), rows_for(X.shape[1])
    if len(rows) > most:
        rows = np.sort(np.random.default_rng(seed).choice(rows, most, replace=False))
    X, y = X.iloc[rows].reset_index(drop=True), np.asarray(y)[rows]

    score = _scorer(metric, y, sign)
    base = score(*predict(pipe, X), slice(None))
    drops = stacked_drops(pipe, X, predict, lambda pred, proba, keep: base - score(pred, proba, keep), seed)
    table = [{"column": str(c), "drop": float(d.mean()), "std": float(d.std())} for c, d in zip(X.columns, drops)]
    table.sort(key=lambda r: -r["drop"])
    note = (f"permutation importance: drop in test {metric} when one column is shuffled, mean and std over "
            f"{REPEATS} seeded repeats on {len(rows)} test rows")
    return table, note


def _scorer(metric: str, y: np.ndarray, sign: float) -> Callable[[Any, Any, slice], float]:
    """``score(pred, proba, rows)``: ``sign`` x ``metric`` of the predictions of ``rows`` against ``y``.
    Accuracy and balanced accuracy are counted on class codes (:func:`~trainflow.tasks.common.metrics.
    balanced_accuracy_codes`): scikit-learn's checks took longer than 250 predictions of a forest."""
    from trainflow.tasks.common import metrics as M

    if metric not in ("accuracy", "balanced_accuracy"):
        return lambda pred, proba, keep: sign * M.score([metric], y, np.asarray(pred)[keep],
                                                        None if proba is None else proba[keep])[metric]
    labels, truth = np.unique(np.asarray(y), return_inverse=True)

    def counted(pred: Any, proba: Any, keep: slice) -> float:
        pred = np.asarray(pred)[keep]
        at = np.minimum(np.searchsorted(labels, pred), len(labels) - 1)
        codes = np.where(labels[at] == pred, at, -1)  # a class the rows lack matches no true code
        if metric == "accuracy":
            return sign * float(np.mean(codes == truth))
        return sign * M.balanced_accuracy_codes(truth, codes)

    return counted


def stacked_drops(pipe: Any, X: Any, predict: Callable[[Any, Any], tuple[Any, Any]],
                  drop: Callable[[Any, Any, slice], float], seed: int) -> np.ndarray:
    """``drop(pred, proba, rows)`` of each column (rows) in each repeat (columns of the result):
    scikit-learn's permutation importance (one column's values shuffled, the rest kept), but each
    repeat shuffles every column in its own copy of the rows and predicts all copies at once, since
    the cost of a model's prediction is mostly its start-up: a 200-tree forest took 45 ms per call
    whatever the rows, 250 calls (50 columns x 5 repeats) 14 s, where 5 calls take under a second."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    n, columns = len(X), list(X.columns)
    drops = np.empty((len(columns), REPEATS))
    kept = np.tile(np.arange(n), len(columns))
    for r in range(REPEATS):
        shuffles = [rng.permutation(n) for _ in columns]
        stacked = {}
        for j, c in enumerate(columns):
            rows = kept.copy()
            rows[j * n:(j + 1) * n] = shuffles[j]  # copy j: column j shuffled, the others as they are
            stacked[c] = X[c].take(rows).reset_index(drop=True)  # keeps the column's dtype
        pred, proba = predict(pipe, pd.DataFrame(stacked, columns=X.columns))
        for j in range(len(columns)):
            drops[j, r] = drop(pred, proba, slice(j * n, (j + 1) * n))
    return drops


def importance_png(table: list[dict[str, Any]], path: str | Path, metric: str) -> str:
    """Horizontal bars of the drops with their spread (std) as error bars, most important on top."""
    from trainflow.tasks.common import plots

    shown = table[:30]
    fig = plots._figure((6, 1.2 + 0.3 * len(shown)))
    ax = fig.subplots()
    pos = np.arange(len(shown))[::-1]
    ax.barh(pos, [r["drop"] for r in shown], xerr=[r["std"] for r in shown], color="tab:blue", capsize=2)
    ax.set_yticks(pos, [r["column"] for r in shown])
    ax.axvline(0, color="grey", linewidth=1)
    ax.set_xlabel(f"drop in {metric} when shuffled")
    ax.set_title("Permutation importance (test split)")
    return plots._save(fig, path)
