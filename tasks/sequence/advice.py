"""Advice for the report about sequence preprocessing that may not fit the data.

``normalize: per_series`` (the UCR convention) removes each series' level (mean) and scale (std):
right when classes differ by shape, wrong when the level or the scale is what tells them apart
(sensor readings, accelerometer axes, ...). The check here fits a small classifier on the level
and scale of each channel alone, cross-validated on the training split: when those few numbers
already separate the classes well, per-series normalization throws that information away and
the report says so.

``normalize: auto`` (the default) makes the choice from the training split instead:
:func:`choose_normalization` here (per_series unless level and scale alone separate the classes),
or, for the ridge models, the better leave-one-out accuracy of the two (see ``classical.fit``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: cross-validated balanced accuracy of level+scale alone above which the report warns
SEPARATES = 0.8


def level_scale(series: list[np.ndarray]) -> np.ndarray:
    """Per series: the mean and std of every channel, [n, 2 * channels]."""
    with np.errstate(all="ignore"):
        rows = [np.concatenate([np.nanmean(s, axis=0), np.nanstd(s, axis=0)]) for s in series]
    return np.nan_to_num(np.asarray(rows, dtype=np.float64))


def level_scale_score(series: list[np.ndarray], y: Any, seed: int = 0) -> float | None:
    """Cross-validated balanced accuracy of a logistic regression on level and scale alone (None when
    a class has fewer than 2 series)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.asarray([str(v) for v in y])
    counts = np.unique(y, return_counts=True)[1]
    if len(counts) < 2 or counts.min() < 2:
        return None
    folds = StratifiedKFold(n_splits=int(min(5, counts.min())), shuffle=True, random_state=seed)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return float(cross_val_score(model, level_scale(series), y, cv=folds, scoring="balanced_accuracy").mean())


def choose_normalization(series: list[np.ndarray], y: Any, task: str) -> tuple[str, str]:
    """``normalize: auto`` without a model-specific check: ``global`` when the level and scale of each
    channel alone separate the training classes (the check of :func:`normalization_notes`), else
    ``per_series`` (the UCR convention); the choice and the sentence that says why."""
    if task != "classification" or y is None:
        return "per_series", "normalize auto -> per_series (the UCR convention; no class labels to check)"
    score = level_scale_score(series, y)
    if score is not None and score >= SEPARATES:
        return "global", (f"normalize auto -> global: each channel's level and scale alone separate the training "
                          f"classes (balanced accuracy {score:.2f}, 5-fold CV), so they are kept")
    shown = "not checked: a class has one series" if score is None else f"balanced accuracy {score:.2f} < {SEPARATES}"
    return "per_series", f"normalize auto -> per_series: level and scale alone do not separate the classes ({shown})"


def normalization_notes(train: dict[str, Any], normalize: str) -> list[str]:
    """A report note when ``normalize: per_series`` discards level/scale that separates the training classes."""
    if normalize != "per_series" or train.get("y") is None:
        return []
    score = level_scale_score(train["series"], train["y"])
    if score is None or score < SEPARATES:
        return []
    return [f"normalize: per_series removes each series' level and scale, yet in the training split these alone "
            f"separate the classes (balanced accuracy {score:.2f}, 5-fold CV of a logistic regression on each "
            f"channel's mean and std). If level and scale carry meaning here, try "
            f"--set preprocess.sequence.normalize=global (see docs/sequence.md)."]
