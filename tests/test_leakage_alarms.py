"""Leakage alarms: a planted leaking column, a relabeled target and items duplicated across the split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import DATA
from tests.helpers import assert_fails_clearly, complete_runs, run_cli, write_spec
from trainflow.errors import ValidationFailed
from trainflow.spec import spec_from_dict
from trainflow.refs import DataRef
from trainflow.tasks.common import leakage
from trainflow.tasks.image import modality as image
from trainflow.tasks.sequence import modality as sequence


def penguins_with(tmp_path, **columns) -> pd.DataFrame:
    df = pd.read_csv(DATA / "penguins.csv").drop(columns=["year"])
    for name, make in columns.items():
        df[name] = make(df)
    return df


def lab_code(df: pd.DataFrame, noise: float = 0.01, seed: int = 0) -> pd.Series:
    """A code recorded *after* the species was known: the species' initial, wrong on ``noise`` of the rows."""
    rng = np.random.default_rng(seed)
    code = df["species"].str[0].to_numpy().copy()
    flip = rng.random(len(df)) < noise
    code[flip] = rng.choice(["A", "C", "G"], flip.sum())
    return pd.Series(code, index=df.index)


def spec(task="classification", **features):
    return spec_from_dict({"name": "t", "task": task, "data": {"loader": "csv", "path": "x.csv", "target": "species"},
                           "features": features})


def split_of(df: pd.DataFrame, seed: int = 0):
    train = df.sample(frac=0.75, random_state=seed)
    return train, df.drop(index=train.index)


def test_a_planted_leaking_column_raises_the_alarm_and_clean_columns_do_not():
    df = penguins_with(None, lab_code=lab_code)
    train, test = split_of(df)
    alarms = leakage.table_alarms(train, test, "species", spec())
    assert len(alarms) == 1 and "column 'lab_code' alone predicts the target" in alarms[0]
    assert leakage.table_alarms(train.drop(columns="lab_code"), test.drop(columns="lab_code"), "species", spec()) == []


def test_a_relabeled_target_and_duplicated_rows_are_named():
    df = penguins_with(None, code=lambda d: d["species"].map({"Adelie": 1, "Chinstrap": 2, "Gentoo": 3}))
    train, test = split_of(df)
    test = pd.concat([test, train.iloc[:7]])
    alarms = leakage.table_alarms(train, test, "species", spec())
    assert any("column 'code' is the target 'species' under other names" in a for a in alarms)
    assert not any("column 'code' alone" in a for a in alarms)  # one alarm per cause
    assert any(f"7 of {len(test)} test rows also appear in the training split" in a for a in alarms)


def test_regression_target_scaled_is_a_relabeling():
    X = pd.DataFrame({"grams": np.arange(50.0) * 3.0, "noise": np.random.default_rng(0).normal(size=50)})
    assert leakage.relabelings(X, pd.Series(X["grams"] / 1000), "regression") == ["grams"]


def test_relabelings_on_a_table_larger_than_the_sample_are_exact():
    """Above leakage.MAX_ROWS rows a sample clears columns first: a relabeling is still found, and a
    column that breaks the one-to-one map on a single row (which the sample may miss) is not named."""
    rng = np.random.default_rng(0)
    n = leakage.MAX_ROWS * 4
    y = pd.Series(rng.choice(["a", "b", "c"], n))
    X = pd.DataFrame({"code": y.map({"a": 1.0, "b": 2.0, "c": 3.0}), "noise": rng.normal(size=n)})
    X.loc[::7, "code"] = np.nan  # missing values do not break the map
    X["almost"] = y.map({"a": 1.0, "b": 2.0, "c": 3.0})
    X.loc[n - 1, "almost"] = {"a": 2.0, "b": 3.0, "c": 1.0}[y.iloc[n - 1]]
    assert leakage.relabelings(X, y, "classification") == ["code"]


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_one_feature_scores_are_those_of_cross_val_score(task):
    """The one-feature trees run without cross_val_score's machinery, but score exactly as it does:
    uneven classes (balanced accuracy), text and missing values, a column that leaks."""
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    rng = np.random.default_rng(3)
    n = 600
    y = pd.Series(rng.choice(["a", "b", "c"], n, p=[0.6, 0.3, 0.1])) if task == "classification" \
        else pd.Series(rng.normal(size=n))
    leak = y.map({"a": 0.0, "b": 1.0, "c": 2.0}) if task == "classification" else y * 2
    X = pd.DataFrame({"noise": rng.normal(size=n), "text": rng.choice(["x", "y", None], n),
                      "leak": leak.where(rng.random(n) > 0.05)})
    if task == "classification":
        folds, model, scoring = StratifiedKFold(3, shuffle=True, random_state=7), DecisionTreeClassifier(
            max_depth=4, random_state=7), "balanced_accuracy"
        target = y.astype(str).to_numpy()
    else:
        folds, model, scoring = KFold(3, shuffle=True, random_state=7), DecisionTreeRegressor(
            max_depth=6, random_state=7), "r2"
        target = y.to_numpy()
    expected = {c: float(np.mean(cross_val_score(model, leakage._as_numbers(X[c]), target, cv=folds, scoring=scoring)))
                for c in X.columns}
    assert leakage.single_feature_scores(X, y, task, seed=7) == expected
    assert expected["leak"] > 0.9 > expected["noise"]


def test_error_policy_stops_with_the_alarms():
    with pytest.raises(ValidationFailed, match="(?s)features.leakage is 'error'.*'lab_code'"):
        leakage.raise_or_warn(["leakage: column 'lab_code' alone predicts the target"], spec(leakage="error"))
    assert leakage.raise_or_warn(["x"], spec()) == ["x"]


def test_images_duplicated_across_the_split_are_counted(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (40, 8, 8, 1), dtype=np.uint8)
    x[20:] = x[:20]  # every image twice
    path = tmp_path / "imgs.npz"
    np.savez(path, x=x, y=np.arange(40) % 2)
    ref = DataRef(path=str(path), digest="d", modality="image", meta={"classes": ["a", "b"], "source": "imgs"})
    s = spec_from_dict({"name": "t", "data": {"loader": "digits"}, "split": {"test_size": 0.25}})
    split = image.split(ref, s, str(tmp_path / "cache"))
    assert any("test images also appear in the training split" in n for n in split.meta["notes"])
    with pytest.raises(ValidationFailed, match="images"):
        image.split(ref, s.model_copy(update={"features": s.features.model_copy(update={"leakage": "error"})}),
                    str(tmp_path / "cache"))


def test_series_duplicated_across_the_split_are_counted(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 12, 1))
    x[15:] = x[:15]
    path = tmp_path / "series.npz"
    np.savez(path, x=x, lengths=np.full(30, 12), ids=np.arange(30).astype(str), y=(np.arange(30) % 2).astype(str))
    ref = DataRef(path=str(path), digest="d", modality="sequence", meta={"source": "series"})
    s = spec_from_dict({"name": "t", "data": {"loader": "npz_series", "path": str(path)}})
    split = sequence.split(ref, s, str(tmp_path / "cache"))
    assert any("test series also appear in the training split" in n for n in split.meta["notes"])


@pytest.mark.usefixtures("prefect_server")
def test_planted_leak_warns_in_the_report_or_stops_a_scheduled_run(tmp_path, capsys):
    penguins_with(None, lab_code=lab_code).to_csv(tmp_path / "leaky.csv", index=False)
    raw = {"name": "leaky", "data": {"loader": "csv", "path": str(tmp_path / "leaky.csv"), "target": "species"}}
    rc, err = run_cli("run", write_spec(tmp_path / "warn.yaml", raw), "--out", tmp_path / "warn", capsys=capsys)
    assert rc == 0, err
    run, = complete_runs(tmp_path / "warn", "leaky")
    assert "column 'lab_code' alone predicts the target" in (run / "report.md").read_text()
    strict = write_spec(tmp_path / "error.yaml", {**raw, "features": {"leakage": "error"}})
    assert_fails_clearly(strict, tmp_path / "error", "leaky", 4,
                         ["features.leakage is 'error'", "column 'lab_code' alone predicts the target"], capsys)
