"""Which input columns a table model relies on: permutation importance on the test split.

scikit-learn's ``permutation_importance`` shuffles one original column at a time (before any
imputation or encoding, so a category's one-hot columns move together) and measures how much the
primary metric drops; 5 seeded repeats give the spread. At most :data:`MAX_ROWS` test rows (a seeded
sample) are used: the cost is columns x repeats predictions.
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


def permutation_table(pipe: Any, X: Any, y: Any, metric: str, predict: Callable[[Any, Any], tuple[Any, Any]],
                      seed: int) -> tuple[list[dict[str, Any]], str]:
    """Rows ``{column, drop, std}`` (most important first), the drop in ``metric`` when the column is
    shuffled (positive: the model needs it), and the note saying how it was measured."""
    from sklearn.inspection import permutation_importance

    from trainflow.tasks.common import metrics as M

    sign = 1.0 if M.greater_is_better(metric) else -1.0
    rows = np.arange(len(X))
    if len(rows) > MAX_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, MAX_ROWS, replace=False))
    X, y = X.iloc[rows], np.asarray(y)[rows]

    def score(estimator: Any, X_: Any, y_: Any) -> float:
        pred, proba = predict(estimator, X_)
        return sign * M.score([metric], y_, pred, proba)[metric]

    found = permutation_importance(pipe, X, y, scoring=score, n_repeats=REPEATS, random_state=seed, n_jobs=1)
    table = [{"column": str(c), "drop": float(m), "std": float(s)}
             for c, m, s in zip(X.columns, found.importances_mean, found.importances_std)]
    table.sort(key=lambda r: -r["drop"])
    note = (f"permutation importance: drop in test {metric} when one column is shuffled, mean and std over "
            f"{REPEATS} seeded repeats on {len(rows)} test rows")
    return table, note


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
