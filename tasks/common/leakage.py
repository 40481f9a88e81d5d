"""Leakage alarms: a result too good to be true, caught before training.

Three checks, each on data the model would see, never on anything fitted on test rows:

- a single feature that on its own predicts the target (or, in a multi-label table, one of the
  labels) almost perfectly: a quick one-feature model (a depth-limited decision tree)
  cross-validated on the *training split only*;
- a feature identical to the target up to relabeling (a one-to-one map between their values, or for
  regression an exact linear function of the target);
- items duplicated across the train/test split: rows of a table by a hash of their values, images
  and series by a digest of their content.

Each alarm is a warning naming the column or the count; with ``features.leakage: error`` (for
scheduled runs) the alarms stop the run as a failed validation (exit 4).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import numpy as np

from trainflow.alerts import warn
from trainflow.errors import ValidationFailed
from trainflow.tasks.common.metrics import balanced_accuracy_codes

if TYPE_CHECKING:
    from trainflow.spec import PipelineSpec

FOLDS = 3
MAX_ROWS = 5000  # rows the one-feature models see; enough to tell a near-perfect feature, cheap on wide tables


def _pd():
    import pandas as pd

    return pd


def _as_numbers(s: Any) -> np.ndarray:
    """A column as one float array a tree can split: categories become codes, missing a value below all."""
    pd = _pd()
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        values = s.to_numpy(dtype=float, na_value=np.nan)
    else:
        values = pd.factorize(s, use_na_sentinel=True)[0].astype(float)
        values[values < 0] = np.nan
    low = np.nanmin(values) - 1 if np.isfinite(values).any() else 0.0
    return np.where(np.isnan(values), low, values).reshape(-1, 1)


def single_feature_scores(X: Any, y: Any, task: str, seed: int = 0) -> dict[str, float]:
    """Cross-validated score of a depth-limited tree on each column alone: balanced accuracy or R^2.

    The same folds, trees and scores as ``cross_val_score`` per column, without its per-call
    machinery (parameter checks, a joblib pool, the scorer): that machinery cost ~15 ms a fit,
    ~2 s of CPU for 50 columns x 3 folds, while the fits themselves take a few ms each."""
    from sklearn import config_context
    from sklearn.base import clone
    from sklearn.metrics import r2_score
    from sklearn.model_selection import KFold, StratifiedKFold
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    if len(X) > MAX_ROWS:
        rows = X.sample(MAX_ROWS, random_state=seed).index
        X, y = X.loc[rows], y.loc[rows]
    cls = task == "classification"
    if cls:
        # integer codes in sorted order of the labels: the trees split and predict exactly as on the labels
        _, target = np.unique(y.astype(str).to_numpy(), return_inverse=True)
        smallest = int(np.bincount(target).min())
        if smallest < 2:
            return {}
        folds = StratifiedKFold(min(FOLDS, smallest), shuffle=True, random_state=seed)
        model, score = DecisionTreeClassifier(max_depth=4, random_state=seed), balanced_accuracy_codes
    else:
        target = y.to_numpy(dtype=float)
        folds = KFold(FOLDS, shuffle=True, random_state=seed)
        model, score = DecisionTreeRegressor(max_depth=6, random_state=seed), r2_score
    # the folds depend only on the row count and the target, so they are the same for every column
    splits = list(folds.split(np.zeros((len(target), 1)), target))
    scores = {}
    with config_context(skip_parameter_validation=True):  # the arguments are ours; checking them was half the time
        for col in X.columns:
            values = _as_numbers(X[col])
            per_fold = [score(target[te], clone(model).fit(values[tr], target[tr]).predict(values[te]))
                        for tr, te in splits]
            scores[str(col)] = float(np.mean(per_fold))
    return scores


def relabelings(X: Any, y: Any, task: str, seed: int = 0) -> list[str]:
    """Columns equal to the target up to renaming its values (regression: up to a linear map)."""
    if task != "classification":
        return [str(col) for col in X.columns if _linear_in(X[col], y)]
    # A one-to-one map over all rows is one on every subset of them, so a sample that breaks it
    # clears a column exactly; only the columns the sample cannot clear are checked on every row.
    rows = np.random.default_rng(seed).choice(len(X), min(len(X), MAX_ROWS), replace=False)
    sample, y_sample = X.iloc[rows], y.iloc[rows]  # one take of the table, not one per column
    return [str(col) for col in X.columns
            if _one_to_one(sample[col], y_sample) is not False and _one_to_one(X[col], y)]


def _one_to_one(f: Any, y: Any) -> bool | None:
    """Whether the non-missing pairs of ``f`` and ``y`` map one-to-one; None when ``f`` has under two
    values there (no evidence either way)."""
    pd = _pd()
    fc, yc = pd.factorize(f, use_na_sentinel=True)[0], pd.factorize(y, use_na_sentinel=True)[0]
    both = (fc >= 0) & (yc >= 0)
    fc, yc = fc[both], yc[both]
    n_f = len(np.unique(fc))
    if n_f < 2:
        return None
    n_y, n_pairs = len(np.unique(yc)), len(np.unique(fc.astype(np.int64) * (int(yc.max()) + 1) + yc))
    return n_pairs == n_f == n_y  # each value of f names one y, and each y one f


def _linear_in(f: Any, y: Any) -> bool:
    """Whether a numeric column is an exact linear function of a numeric target (non-missing pairs)."""
    pd = _pd()
    if not pd.api.types.is_numeric_dtype(f):
        return False
    fv, yv = f.to_numpy(dtype=float, na_value=np.nan), y.to_numpy(dtype=float, na_value=np.nan)
    both = ~np.isnan(fv) & ~np.isnan(yv)
    fv, yv = fv[both], yv[both]
    if len(fv) < 2 or fv.min() == fv.max():
        return False
    with np.errstate(invalid="ignore", divide="ignore"):
        return bool(abs(np.corrcoef(fv, yv)[0, 1]) > 1 - 1e-9)


def row_digests(df: Any) -> np.ndarray:
    """One 64-bit hash per row of a table, from its values (not its index)."""
    return _pd().util.hash_pandas_object(df, index=False).to_numpy()


def item_digests(items: Any) -> list[str]:
    """A SHA-256 digest of each item's content (an image array, a series)."""
    # hashed in place (a contiguous array is a buffer): no copy of each item's bytes
    return [hashlib.sha256(memoryview(np.ascontiguousarray(item)).cast("B")).hexdigest() for item in items]


def duplicates_across(train: Any, test: Any) -> int:
    """How many test items have a digest that also occurs in the training split."""
    train, test = np.asarray(train), np.asarray(test)
    if train.dtype.kind in "iu" and test.dtype.kind in "iu" and len(train):
        # row hashes: a binary search in the sorted training hashes, half the time of a Python set
        known = np.sort(train)
        at = np.minimum(np.searchsorted(known, test), len(known) - 1)
        return int((known[at] == test).sum())
    seen = set(train.tolist())
    return int(sum(d in seen for d in test.tolist()))


def duplicate_alarm(train_digests: Any, test_digests: Any, what: str) -> list[str]:
    """The alarm for ``what`` (rows, images, series) found in both splits, if any."""
    n = duplicates_across(train_digests, test_digests)
    if not n:
        return []
    return [f"leakage: {n} of {len(test_digests)} test {what} also appear in the training split "
            f"(identical content), so the test score overstates how the model does on new data"]


def table_alarms(train: Any, test: Any, target: str, spec: PipelineSpec) -> list[str]:
    """All alarms for a split table (features plus target), on the training split except the duplicate count."""
    X, y = train.drop(columns=[target]), train[target]
    alarms = []
    relabeled = relabelings(X, y, spec.task, seed=spec.split.seed)
    alarms += [f"leakage: column '{c}' is the target '{target}' under other names (a one-to-one map between "
               f"their values); drop it unless it is known before the target is" for c in relabeled]
    scores = single_feature_scores(X.drop(columns=relabeled), y, spec.task, seed=spec.split.seed)
    alarms += _alone_alarms(scores, "the target", spec)
    alarms += duplicate_alarm(row_digests(train), row_digests(test), "rows")
    return alarms


def label_alarms(train: Any, labels: list[str], spec: PipelineSpec) -> list[str]:
    """The one-feature alarm of :func:`table_alarms` for each label of a multi-label training split
    (features plus 0/1 label columns): a column that alone predicts one label almost perfectly."""
    X = train.drop(columns=labels)
    alarms = []
    for lab in labels:
        if train[lab].nunique() == 2:  # a label constant in training is reported elsewhere
            alarms += _alone_alarms(single_feature_scores(X, train[lab], "classification", seed=spec.split.seed),
                                    f"the label '{lab}'", spec)
    return alarms


def _alone_alarms(scores: dict[str, float], what: str, spec: PipelineSpec) -> list[str]:
    """An alarm for each column whose one-feature score reaches ``features.leakage_score``, best first."""
    threshold = spec.features.leakage_score
    metric = "R^2" if spec.task == "regression" else "balanced accuracy"
    return [f"leakage: column '{c}' alone predicts {what}: cross-validated {metric} {s:.3f} on the training "
            f"split (alarm at {threshold:g}); a full model cannot do much better, so check that it is "
            f"known before {what} is" for c, s in sorted(scores.items(), key=lambda kv: -kv[1]) if s >= threshold]


def raise_or_warn(alarms: list[str], spec: PipelineSpec) -> list[str]:
    """Warn about each alarm and return them, or stop the run under ``features.leakage: error``."""
    if alarms and spec.features.leakage == "error":
        raise ValidationFailed("features.leakage is 'error' and the data raised leakage alarms:\n"
                               + "\n".join(f"  - {a}" for a in alarms))
    for alarm in alarms:
        warn(alarm)
    return alarms
