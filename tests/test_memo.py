"""The in-process memo of files just written: served while the file is unchanged, never stale;
and the tabular fit resamples the training split exactly once."""

from __future__ import annotations

import os

import pandas as pd

from tests.conftest import DATA, SPECS
from trainflow import memo
from trainflow.spec import load_spec
from trainflow.refs import read_parquet, write_parquet
from trainflow.tasks.tabular import modality as tabular


def test_a_remembered_frame_is_served_until_the_file_changes(tmp_path):
    memo.clear()
    path = tmp_path / "t.parquet"
    df = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})
    write_parquet(df, path)
    memo.remember(path, df)
    assert read_parquet(path) is df
    other = pd.DataFrame({"a": [3.0, 4.0, 5.0], "b": ["u", "v", "w"]})
    write_parquet(other, path)
    os.utime(path, ns=(1, 1))  # a different stamp even on a coarse clock
    got = read_parquet(path)
    assert got is not df and got.equals(other)
    assert read_parquet(path, keep=False) is got  # the last reader takes it ...
    assert memo.recall(path) is None  # ... and it is gone


def test_fit_resamples_once_and_reports_the_counts(tmp_path, monkeypatch):
    from imblearn.over_sampling import SMOTE

    spec = load_spec(SPECS / "penguins.yaml")
    data = tabular.store(pd.read_csv(DATA / "penguins.csv", na_values=["NA"]).drop(columns=["year"]),
                         str(tmp_path), "e" * 64, type("C", (), {"target": "species", "path": "penguins.csv"})())
    parts = tabular.split(data, spec, str(tmp_path))
    calls = []
    real = SMOTE._fit_resample
    monkeypatch.setattr(SMOTE, "_fit_resample", lambda self, X, y: calls.append(len(X)) or real(self, X, y))
    model = tabular.fit(parts, spec, str(tmp_path))
    assert calls == [parts.train.meta["rows"]]
    counts = model.meta["class_counts_after_resampling"]
    largest = max(parts.meta["class_counts"]["train"].values())
    assert counts == {c: largest for c in ("Adelie", "Chinstrap", "Gentoo")}
    pipe, _ = tabular.load_model(model.path)  # the saved model has no trace of the recorder
    assert "fit_resample" not in vars(pipe.named_steps["resample"])
