"""Paired comparison of a challenger with the champion on the same test rows.

The champion's saved model is loaded the way ``trainflow predict`` loads it (the run folder's
metrics.json read as untrusted data, the modality's ``predict`` with its trust checks) and scored
on the challenger's test rows, and so is the challenger's own saved model: both metric values, their
difference and a paired bootstrap interval of the difference (:mod:`~trainflow.tasks.common.uncertainty`).
Anything that stops the champion scoring those rows (other columns, another modality, a damaged
file) is returned as a reason, never raised: promotion then falls back to the ``point`` rule.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from trainflow import modalities
from trainflow import trust
from trainflow.errors import TrainflowError
from trainflow.tasks.common import uncertainty as U


class CannotCompare(Exception):
    """Why the two models cannot be scored on the same rows (a readable sentence)."""


def run_modality(run_dir: str | Path) -> str:
    """The modality of a saved run, from its metrics.json read as untrusted data (as ``predict`` does)."""
    summary = trust.read_json(Path(run_dir) / "metrics.json")
    return summary.get("modality") or modalities.modality_of_loader(summary["spec"]["data"]["loader"])


def _frame(run_dir: str | Path, input_path: Path, who: str) -> Any:
    try:
        mod = modalities.get(run_modality(run_dir))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. a scikit-learn version warning: the result is what counts
            return mod.predict(run_dir, input_path)
    except (TrainflowError, OSError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise CannotCompare(f"the {who} model in '{run_dir}' cannot score the new test rows "
                            f"({type(exc).__name__}: {str(exc).strip()[:300]})") from None


def _proba(frame: Any, classes: list[str]) -> np.ndarray | None:
    cols = [f"proba_{c}" for c in classes]
    if not any(c in frame.columns for c in cols):
        return None
    out = np.column_stack([frame[c].to_numpy(dtype=float) if c in frame.columns else np.zeros(len(frame))
                           for c in cols])
    total = out.sum(axis=1, keepdims=True)
    return out / np.where(total > 0, total, 1)  # a class the model never saw gets probability 0


def align(task: str, truth: Any, new: Any, old: Any) -> tuple[Any, tuple[Any, Any], tuple[Any, Any], list[str] | None]:
    """Truth and the two models' prediction frames as metric inputs: for classification integer codes
    of the challenger's classes (a class only the champion predicts gets a code of its own, never
    right) with probabilities aligned to them; values for regression; 0/1 matrices for multi-label.
    Returns ``(y, (pred, proba) new, (pred, proba) old, classes or labels)``."""
    if len(new) != len(old) or len(new) != len(truth):
        raise CannotCompare(f"the models returned {len(new)} and {len(old)} predictions for {len(truth)} rows")
    if task == "multilabel":
        labels = [str(c) for c in truth.columns]
        missing = [lab for lab in labels if lab not in old.columns]
        if missing:
            raise CannotCompare(f"the champion does not predict the label(s) {', '.join(missing)}")

        def pair(frame: Any) -> tuple[Any, Any]:
            proba = np.column_stack([frame[f"proba_{lab}"].to_numpy(float) for lab in labels]) \
                if all(f"proba_{lab}" in frame.columns for lab in labels) else None
            return frame[labels].to_numpy(dtype=int), proba

        return truth.to_numpy(dtype=int), pair(new), pair(old), labels
    if task != "classification":
        try:
            return (np.asarray(truth, dtype=float), (new["prediction"].to_numpy(dtype=float), None),
                    (old["prediction"].to_numpy(dtype=float), None), None)
        except (ValueError, TypeError) as exc:
            raise CannotCompare(f"the predictions are not numbers ({exc})") from None
    proba_cols = [str(c)[len("proba_"):] for c in new.columns if str(c).startswith("proba_")]
    classes = proba_cols or sorted({str(v) for v in np.asarray(truth)} | {str(v) for v in new["prediction"]})
    index = {c: i for i, c in enumerate(classes)}

    def codes(values: Any) -> np.ndarray:
        return np.asarray([index.get(str(v), len(classes)) for v in values], dtype=np.int64)

    return (codes(truth), (codes(new["prediction"]), _proba(new, classes)),
            (codes(old["prediction"]), _proba(old, classes)), classes)


def score_both(challenger_dir: str | Path, champion_dir: str | Path, split: Any, modality: str) -> tuple[Any, ...]:
    """Both saved models' predictions for the challenger's test rows (``split``) and the rows' truth:
    ``(truth, new frame, old frame)``. CannotCompare says why not."""
    if not (Path(champion_dir) / "metrics.json").is_file():
        raise CannotCompare(f"the champion's run folder '{champion_dir}' has no metrics.json")
    try:
        theirs = run_modality(champion_dir)
    except (TrainflowError, KeyError, TypeError, AttributeError) as exc:
        raise CannotCompare(f"the champion's metrics.json cannot be read ({exc})") from None
    if theirs != modality:
        raise CannotCompare(f"the champion reads {theirs} data, this run {modality} data")
    rows = modalities.get(modality).scoring_rows(split)
    if rows is None:
        raise CannotCompare(f"the {modality} modality cannot hand its test rows to predict")
    path, truth = rows
    return truth, _frame(challenger_dir, path, "new"), _frame(champion_dir, path, "champion's")


def compare(metric: str, task: str, truth: Any, new: Any, old: Any, seed: int = 0,
            resamples: int = U.RESAMPLES, modality: str | None = None, run_dir: str | Path | None = None,
            split: Any = None) -> dict[str, Any]:
    """Metric ``metric`` of the two models' prediction frames on the same rows, their difference
    (new - old) and its paired bootstrap 95% interval (see :func:`uncertainty.paired_difference`), or
    the ``modality``'s own comparison where its rows are not independent
    (:meth:`~trainflow.modality.Modality.paired_difference`, given the challenger's ``run_dir`` and ``split``)."""
    own = None
    if modality is not None:
        try:
            own = modalities.get(modality).paired_difference(run_dir, split, metric, truth, new, old,
                                                             seed=seed, resamples=resamples)
        except (TrainflowError, KeyError, ValueError, TypeError) as exc:
            raise CannotCompare(f"the two models' predictions cannot be compared ({str(exc).strip()[:300]})") from None
    if own is not None:
        if not (np.isfinite(own["new"]) and np.isfinite(own["old"])):
            raise CannotCompare(f"'{metric}' cannot be computed from both models' predictions on these rows")
        return {"metric": metric, **own}
    y, a, b, labels = align(task, truth, new, old)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = U.paired_difference(metric, y, a, b, task, labels, resamples=resamples, seed=seed)
    if not (np.isfinite(out["new"]) and np.isfinite(out["old"])):
        raise CannotCompare(f"'{metric}' cannot be computed from both models' predictions on these rows")
    return {"metric": metric, **out}


def verdict(comparison: dict[str, Any], higher_is_better: bool, tolerance: float) -> bool | None:
    """Paired rule: promote when the interval of the difference lies above ``-tolerance`` (higher is
    better) or below ``+tolerance`` (lower is better); None without an interval."""
    interval = comparison.get("interval")
    if interval is None:
        return None
    return interval[0] > -tolerance if higher_is_better else interval[1] < tolerance
