"""Permutation importance's fast paths give scikit-learn's numbers (tasks/tabular/importance.py)."""

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score

from trainflow.tasks.common.metrics import balanced_accuracy_codes
from trainflow.tasks.tabular import importance


def test_counted_scores_equal_scikit_learns_with_a_class_the_rows_lack():
    rng = np.random.default_rng(0)
    y = rng.choice(["a", "b", "c"], 300, p=[0.7, 0.25, 0.05])
    pred = rng.choice(["a", "b", "c", "d"], 300)  # "d": a class the true rows never hold
    for metric, reference in (("accuracy", accuracy_score), ("balanced_accuracy", balanced_accuracy_score)):
        score = importance._scorer(metric, y, 1.0)
        assert score(pred, None, slice(None)) == pytest.approx(reference(y, pred), abs=1e-12)
        stacked = np.concatenate([y, pred])  # a second copy's predictions follow the first's
        assert score(stacked, None, slice(300, 600)) == pytest.approx(reference(y, pred), abs=1e-12)
        assert score(stacked, None, slice(0, 300)) == 1.0
    codes = np.unique(y, return_inverse=True)[1]
    assert balanced_accuracy_codes(codes, np.roll(codes, 1)) == pytest.approx(
        balanced_accuracy_score(codes, np.roll(codes, 1)))


def test_stacked_drops_equal_one_column_at_a_time():
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"signal": rng.normal(size=240), "noise": rng.normal(size=240),
                      "kind": pd.Categorical(rng.choice(["x", "y"], 240))})
    y = np.where(X["signal"] + 0.3 * rng.normal(size=240) > 0, "pos", "neg")
    model = LogisticRegression().fit(X[["signal", "noise"]], y)

    def predict(_, rows):
        return model.predict(rows[["signal", "noise"]]), None

    base = balanced_accuracy_score(y, predict(None, X)[0])
    drops = importance.stacked_drops(None, X, predict, lambda p, _, keep: base - balanced_accuracy_score(y, p[keep]), 3)
    # the reference: scikit-learn's loop, one shuffled column per prediction, the same permutations
    perm = np.random.default_rng(3)
    expected = np.empty_like(drops)
    for r in range(importance.REPEATS):
        shuffles = [perm.permutation(len(X)) for _ in X.columns]
        for j, c in enumerate(X.columns):
            shuffled = X.copy()
            shuffled[c] = X[c].to_numpy()[shuffles[j]]
            expected[j, r] = base - balanced_accuracy_score(y, predict(None, shuffled)[0])
    np.testing.assert_allclose(drops, expected)
    assert drops[0].mean() > 0.2 and drops[2].max() == 0  # the signal matters; a column the model ignores does not
