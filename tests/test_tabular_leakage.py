"""Preprocessing is fitted on the training split only: no imputer, scaler or sampler sees test rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import DATA, SPECS
from trainflow.spec import load_spec
from trainflow.tasks.tabular import modality as tabular


@pytest.fixture
def split(tmp_path):
    spec = load_spec(SPECS / "penguins.yaml")
    data = tabular.store(pd.read_csv(DATA / "penguins.csv", na_values=["NA"]).drop(columns=["year"]),
                         str(tmp_path), "d" * 64, type("C", (), {"target": "species", "path": "penguins.csv"})())
    return spec, tabular.split(data, spec, str(tmp_path))


def test_imputer_and_scaler_statistics_come_from_training_rows(split, tmp_path):
    spec, parts = split
    train = pd.read_parquet(parts.train.path)
    test = pd.read_parquet(parts.test.path)
    model = tabular.fit(parts, spec, str(tmp_path))
    pipe, _ = tabular.load_model(model.path)
    impute = pipe.named_steps["impute"].named_transformers_["num"]
    numeric = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    np.testing.assert_allclose(impute.statistics_, train[numeric].median().to_numpy())
    everything = pd.concat([train, test])[numeric].median().to_numpy()
    assert not np.allclose(impute.statistics_, everything)  # the test rows would have moved it
    scaler = pipe.named_steps["encode"].named_transformers_["remainder"]
    np.testing.assert_allclose(scaler.mean_, train[numeric].fillna(train[numeric].median()).mean().to_numpy())


def test_sampler_sees_exactly_the_training_rows(split, tmp_path, monkeypatch):
    from imblearn.over_sampling import SMOTE

    spec, parts = split
    seen = []
    real = SMOTE._fit_resample
    monkeypatch.setattr(SMOTE, "_fit_resample", lambda self, X, y: seen.append((X.copy(), y.copy())) or real(self, X, y))
    model = tabular.fit(parts, spec, str(tmp_path))
    n_train = parts.train.meta["rows"]
    assert len(seen) >= 1 and all(len(X) == n_train for X, _ in seen)
    # and the sampler is skipped at predict time: predicting the test split returns one row per row
    pipe, _ = tabular.load_model(model.path)
    test = pd.read_parquet(parts.test.path).drop(columns=["species"])
    n_calls = len(seen)
    assert len(pipe.predict(test)) == len(test)
    assert len(seen) == n_calls
    counts = model.meta["class_counts_after_resampling"]
    assert len(set(counts.values())) == 1  # SMOTE balanced the classes ...
    assert sum(counts.values()) > n_train  # ... by adding synthetic training rows only
