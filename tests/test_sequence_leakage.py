"""No leakage: normalization statistics come from the training series / the past only, and the
forecasting split is chronological."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from trainflow.spec import spec_from_dict
from trainflow.tasks.forecast import modality as forecast
from trainflow.tasks.sequence import modality as sequence
from trainflow.tasks.sequence.loaders import SeriesSet


def test_global_normalization_is_fitted_on_training_series_only(tmp_path):
    rng = np.random.default_rng(0)
    train = [rng.normal(0, 1, (16, 1)) for _ in range(8)]
    test = [rng.normal(1000, 50, (16, 1)) for _ in range(8)]  # wildly different: would move any pooled statistic
    data = SeriesSet(train + test, ["a", "b"] * 8, [str(i) for i in range(16)], "toy",
                     fold=["train"] * 8 + ["test"] * 8)
    spec = spec_from_dict({"name": "leak", "data": {"loader": "ts", "path": "unused.ts"},
                           "preprocess": {"sequence": {"normalize": "global"}},
                           "model": {"name": "cnn1d", "filters": [4], "kernels": [3]},
                           "train": {"epochs": 1, "checkpoint": False}})
    ref = sequence.store(data, str(tmp_path), "digest", spec.data.resolve("data")[1])
    split = sequence.split(ref, spec, str(tmp_path))
    model = sequence.fit(split, spec, str(tmp_path))
    state = json.loads((tmp_path / "models" / model.path.split("/")[-1] / "model.json").read_text())["preprocess"]
    values = np.concatenate(train)
    assert np.isclose(state["mean"][0], values.mean()) and np.isclose(state["std"][0], values.std())


def test_forecast_scaling_uses_the_past_only_and_the_split_is_chronological(tmp_path):
    values = np.r_[np.linspace(10, 20, 40), np.full(6, 1e6)]  # the test horizon is absurdly large
    df = pd.DataFrame({"t": np.arange(46), "v": values})
    path = tmp_path / "s.csv"
    df.to_csv(path, index=False)
    spec = spec_from_dict({"name": "leak", "task": "forecasting", "data": {"loader": "timeseries_csv", "path": str(path)},
                           "forecast": {"horizon": 6, "lookback": 4, "season": 4, "detrend": "none"},
                           "model": {"name": "gru", "hidden": 4, "front": "none"},
                           "train": {"epochs": 1, "checkpoint": False}})
    comp, cfg = spec.data.resolve("data")
    ref = forecast.store(comp.build(cfg), str(tmp_path), "digest", cfg)
    split = forecast.split(ref, spec, str(tmp_path))
    train, test = pd.read_parquet(split.train.path), pd.read_parquet(split.test.path)
    assert train["t"].astype(int).tolist() == list(range(40)) and test["t"].astype(int).tolist() == list(range(40, 46))
    model = forecast.fit(split, spec, str(tmp_path))
    state = json.loads((tmp_path / "models" / model.path.split("/")[-1] / "model.json").read_text())["transform"]
    assert np.isclose(state["mean"][0], values[:40].mean()) and np.isclose(state["std"][0], values[:40].std())
