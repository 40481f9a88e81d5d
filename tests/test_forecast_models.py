"""Forecasting models on small generated series (trend + season + noise), without Prefect: the
statsmodels baselines and models, rolling-origin backtest origins, season detection, ``auto``'s
choice, the length arithmetic, and time columns that keep their type through report and predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trainflow.errors import DataError
from trainflow.spec import spec_from_dict
from trainflow.registry import REGISTRY
from trainflow.tasks.forecast import backtest, statistical
from trainflow.tasks.forecast import modality as forecast
from trainflow.tasks.forecast.config import ForecastConfig, check_length
from trainflow.tasks.forecast.plan import detect_season
from trainflow.tasks.forecast.timeaxis import TimeAxis


def seasonal_series(n: int = 72, season: int = 12, seed: int = 0, noise: float = 1.0) -> np.ndarray:
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    return 100 + 0.8 * t + 10 * np.sin(2 * np.pi * t / season) + rng.normal(0, noise, n)


def fit_one(name: str, y: np.ndarray, season: int = 12, log: bool = False, **options) -> dict:
    comp = REGISTRY.get("model", name)
    return statistical.fit_columns(comp.build(comp.config(**options)), y[:, None], season, log)


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def test_baselines_are_the_textbook_forecasts():
    y = seasonal_series()
    naive = statistical.forecast(fit_one("naive", y), y[:, None], 5)[:, 0]
    assert np.allclose(naive, y[-1])
    snaive = statistical.forecast(fit_one("seasonal_naive", y), y[:, None], 14)[:, 0]
    assert np.allclose(snaive, np.r_[y[-12:], y[-12:-10]])
    drift = statistical.forecast(fit_one("drift", y), y[:, None], 3)[:, 0]
    slope = (y[-1] - y[0]) / (len(y) - 1)
    assert np.allclose(drift, y[-1] + slope * np.arange(1, 4), atol=1e-3)


@pytest.mark.parametrize("name", ["ets", "arima", "theta"])
def test_statistical_models_beat_naive_on_trend_and_season(name):
    y = seasonal_series(84)
    state = fit_one(name, y[:72])
    assert statistical.check_state(json.loads(json.dumps(state))) is None  # plain JSON, and valid
    pred = statistical.forecast(state, y[:72, None], 12)[:, 0]
    naive = statistical.forecast(fit_one("naive", y[:72]), y[:72, None], 12)[:, 0]
    assert rmse(pred, y[72:]) < 0.5 * rmse(naive, y[72:]), (name, rmse(pred, y[72:]), rmse(naive, y[72:]))


def test_log_state_forecasts_in_the_original_scale():
    y = seasonal_series(72)
    state = fit_one("arima", np.log(y), log=True)
    pred = statistical.forecast(state, np.log(y)[:, None], 12)[:, 0]
    assert 100 < pred.mean() < 200  # exp of the log forecast, not the log values


def test_arima_takes_a_given_order_and_ets_a_given_form():
    y = seasonal_series(72)
    assert fit_one("arima", y, order=(1, 1, 0), seasonal_order=(0, 1, 1))["columns"][0]["form"] == {
        "order": [1, 1, 0], "seasonal_order": [0, 1, 1, 12], "trend": "n"}
    form = fit_one("ets", y, trend="add_damped", seasonal="add")["columns"][0]["form"]
    assert form == {"trend": "add", "damped": True, "seasonal": "add", "season": 12}


@pytest.mark.parametrize("state, problem", [
    ({"name": "arima", "log": False, "columns": [{"name": "arima", "params": ["x"], "form": {}}]}, "not finite"),
    ({"name": "arima", "log": False, "columns": [{"name": "arima", "params": [0.1, 1.0],
                                                  "form": {"order": "__import__('os')", "seasonal_order": [0, 0, 0, 0],
                                                           "trend": "n"}}]}, "'order'"),
    ({"name": "arima", "log": False, "columns": [{"name": "arima", "params": [0.1],
                                                  "form": {"order": [1, 1, 1], "seasonal_order": [0, 0, 0, 0],
                                                           "trend": "n"}}]}, "parameters where the order needs 3"),
    ({"name": "builtins.eval", "log": False, "columns": [{}]}, "unknown forecaster"),
])
def test_a_tampered_state_is_named(state, problem):
    assert problem in statistical.check_state(state)


def test_backtest_origins_are_inside_the_training_part():
    assert backtest.origins(100, 12, 3, 6, 20) == [76, 82, 88]
    assert backtest.origins(40, 12, 3, 12, 14) == [16, 28]  # an origin with too little history is dropped
    y = seasonal_series(60)[:, None]
    fitted_on = []

    def naive(past):  # fitted once, before the earliest origin; forecasts from each origin's history
        fitted_on.append(len(past))
        return lambda history: np.repeat(history[-1:], 12, axis=0)

    bt = backtest.run({"naive": naive}, y, [36, 48], 12)
    assert fitted_on == [36]
    assert bt.origins == [36, 48] and len(bt.errors["naive"]) == 2
    assert bt.errors["naive"][1] == pytest.approx(rmse(y[48:60, 0], np.repeat(y[47, 0], 12)))
    assert bt.mean("naive") == pytest.approx(np.mean(bt.errors["naive"]))


@pytest.mark.parametrize("times, season", [
    (pd.date_range("2000-01-01", periods=60, freq="MS").strftime("%Y-%m"), 12),
    (np.arange(1900, 1960), 11),  # integer years: no frequency hint, the autocorrelation peak
])
def test_season_is_detected_on_the_training_part(times, season):
    y = seasonal_series(60, season=season, noise=0.5)
    found, why = detect_season(y[:, None], TimeAxis.of(pd.Series(times)))
    assert found == season, why


def test_time_axis_keeps_years_and_months():
    years = TimeAxis.of(pd.Series(["1955", "1956", "1957"]))
    assert years.kind == "integer" and years.after(pd.Series(["1955", "1956", "1957"]), 2) == [1958, 1959]
    months = pd.Series(["2001-11", "2001-12", "2002-01"])
    assert TimeAxis.of(months).after(months, 2) == ["2002-02", "2002-03"]
    assert TimeAxis.of(months).season() == 12


def test_length_message_adds_up_and_suggests_what_fits():
    fc = ForecastConfig(horizon=12, lookback=24, season=12, detrend="seasonal_difference")
    with pytest.raises(DataError) as err:
        check_length(36, fc, "short.csv", network=True)
    msg = str(err.value)
    assert ("12 test steps (forecast.horizon) + one training window: 12 (seasonal_difference lag) + 24 "
            "(forecast.lookback) + 12 (the window's own horizon) = 60") in msg
    assert "detrend: difference with forecast.lookback: 11 or less" in msg
    assert "forecast.lookback: 0" not in msg and "forecast.horizon: 0" not in msg  # nothing that cannot work
    # the suggestion works: 12 + 1 + 11 + 12 = 36
    check_length(36, fc.model_copy(update={"detrend": "difference", "lookback": 11}), "short.csv", network=True)
    check_length(36, fc, "short.csv", network=False)  # statistical models need no window


# ---------------------------------------------------------------- through the modality's stages


def run_stages(tmp_path: Path, times, values, **spec_parts):
    path = tmp_path / "series.csv"
    pd.DataFrame({"t": times, "v": values}).to_csv(path, index=False)
    spec = spec_from_dict({"name": "fc", "task": "forecasting",
                           "data": {"loader": "timeseries_csv", "path": str(path)}, **spec_parts})
    comp, cfg = spec.data.resolve("data")
    cache = str(tmp_path / "cache")
    ref = forecast.store(comp.build(cfg), cache, "digest", cfg)
    split = forecast.split(ref, spec, cache)
    model = forecast.fit(split, spec.training_view(), cache)
    ev = forecast.evaluate(model, split, spec, str(tmp_path / "plots"))
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    forecast.export(model, str(run))
    return spec, model, ev, run, path


def test_auto_picks_ets_where_ets_clearly_wins(tmp_path):
    # multiplicative season on a linear trend, no log: ETS(A,A,M) is the true form
    t = np.arange(96)
    y = (100 + 3 * t) * (1 + 0.35 * np.sin(2 * np.pi * t / 12)) + np.random.default_rng(2).normal(0, 1, 96)
    times = pd.date_range("2010-01-01", periods=96, freq="MS").strftime("%Y-%m")
    _, model, ev, _, _ = run_stages(tmp_path, times, y, forecast={"horizon": 12},
                                    model={"name": "auto", "candidates": ["naive", "seasonal_naive", "drift", "ets",
                                                                          "arima", "theta"]})
    assert model.meta["chosen"] == "ets", model.meta["notes"]
    bt = ev.tables["Backtest on the training part (RMSE per origin)"]
    means = {row["forecaster"]: row["mean RMSE"] for row in bt}
    assert means["ets"] < 0.8 * min(v for k, v in means.items() if k != "ets"), means
    assert len(bt[0]) == 2 + 3  # the forecaster, three origins, the mean
    assert any("auto chose ets: the lowest mean backtest RMSE over 3 origin(s)" in n for n in model.meta["notes"])
    assert {"naive_rmse", "seasonal_naive_rmse", "drift_rmse", "ets_rmse", "arima_rmse"} <= set(ev.metrics)
    assert set(ev.plots) >= {"Forecast vs truth and baselines: v", "Backtest: mean RMSE per forecaster"}


def test_integer_years_stay_years_in_report_and_predict(tmp_path):
    years = np.arange(1900, 1960)
    y = seasonal_series(60, season=11, noise=0.5)
    _, model, ev, run, path = run_stages(tmp_path, years, y, forecast={"horizon": 8},
                                         model={"name": "theta"})
    assert [row["t"] for row in ev.tables["Forecast"]] == list(range(1952, 1960))
    assert any("time: whole numbers (step 1)" in n for n in ev.notes)
    assert any("season 11 detected" in n for n in model.meta["notes"]), model.meta["notes"]
    pred = forecast.predict(run, path)
    assert pred["t"].tolist() == list(range(1960, 1968)) and pred["t"].dtype.kind == "i"
    assert not (run / "model.safetensors").exists()  # a statistical model is JSON only


def test_network_ensemble_is_saved_and_predicts(tmp_path):
    times = pd.date_range("2010-01-01", periods=60, freq="MS").strftime("%Y-%m")
    _, model, ev, run, path = run_stages(
        tmp_path, times, seasonal_series(60), forecast={"horizon": 6, "lookback": 12, "origins": 1},
        model={"name": "gru", "hidden": 4, "front": "none"}, train={"epochs": 2, "batch_size": 16})
    config = json.loads((run / "model.json").read_text())
    assert config["forecaster"] == "network" and config["ensemble"] == 5  # short series: five seeds by default
    assert any("gru (the spec's model): mean backtest RMSE" in n for n in model.meta["notes"])
    pred = forecast.predict(run, path)
    assert pred["t"].tolist()[:2] == ["2015-01", "2015-02"] and np.isfinite(pred["v"]).all()


def test_network_training_leaves_the_thread_count_as_it_was(tmp_path, monkeypatch):
    import torch

    from trainflow.tasks.common import training

    seen, real = [], training.train_model

    def recording(*args, **kwargs):  # the count while the networks are built and trained
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "train_model", recording)
    before = torch.get_num_threads()
    wanted = 1 if before != 1 else 2
    spec = spec_from_dict({"name": "fc", "task": "forecasting", "data": {"loader": "timeseries_csv", "path": "x.csv"},
                           "forecast": {"horizon": 2, "lookback": 6}, "model": {"name": "gru", "hidden": 4},
                           "train": {"epochs": 1, "batch_size": 16, "num_threads": wanted}})
    fc = ForecastConfig(horizon=2, lookback=6)
    forecast.train_networks(seasonal_series(40)[:, None], fc, spec, "gru", [0, 1])
    assert seen == [wanted, wanted]
    assert torch.get_num_threads() == before


def test_a_pruned_trial_trains_no_further_ensemble_member():
    from trainflow.tasks.common import selection

    said = []

    def pruner(step, values):  # as a tuner's: stop after epoch 2, and from then on whenever asked
        if not said and step >= 2:
            said.append(step)
        return bool(said)

    spec = spec_from_dict({"name": "fc", "task": "forecasting", "data": {"loader": "timeseries_csv", "path": "x.csv"},
                           "forecast": {"horizon": 2, "lookback": 6}, "model": {"name": "gru", "hidden": 4},
                           "train": {"epochs": 5, "batch_size": 16}})
    with selection.reporting(pruner):
        model, _, results = forecast.train_networks(seasonal_series(40)[:, None], ForecastConfig(horizon=2, lookback=6),
                                                    spec, "gru", [0, 1, 2])
    assert [r.epochs_run for r in results] == [2] and len(model.members) == 1
    assert not selection.stop_asked()  # outside a tune nobody asks to stop
