"""Forecast panels (``data.id``), prediction intervals and exogenous regressors: a small synthetic panel
of short series through the CLI on a real Prefect server, the per-series checks, and the regressor's effect."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import complete_runs, long_panel, run_cli, write_spec
from trainflow import resources
from trainflow.errors import DataError
from trainflow.spec import spec_from_dict
from trainflow.tasks.forecast import modality as forecast
from trainflow.tasks.forecast.panel_data import read_panel
from trainflow.tasks.forecast.timeaxis import TimeAxis

#: cheap candidates: a test measures the machinery, not the models
CANDIDATES = ["naive", "seasonal_naive", "drift", "theta", "ets"]


def panel(n_series: int = 20, seed: int = 0) -> pd.DataFrame:
    """Monthly series of 30-48 steps (season 6, level and amplitude per series); every seventh is 12 steps."""
    rng = np.random.default_rng(seed)
    values = []
    for k in range(n_series):
        n = 12 if k % 7 == 3 else int(rng.integers(30, 48))
        t = np.arange(n)
        y = 50 + 3 * k + 0.2 * t + (4 + k % 4) * np.sin(2 * np.pi * t / 6 + k) + rng.normal(0, 1, n)
        values.append(y)
    return long_panel(values)


@pytest.mark.usefixtures("prefect_server")
def test_panel_flow_scores_every_series_and_predict_writes_bounds(tmp_path, capsys):
    panel().to_csv(tmp_path / "panel.csv", index=False)
    spec = write_spec(tmp_path / "panel.yaml", {
        "name": "panel", "task": "forecasting", "validation": {"min_rows": 10},
        "data": {"loader": "timeseries_csv", "path": "panel.csv", "id": "series_id"},
        "forecast": {"horizon": 6, "season": 6, "origins": 2}, "model": {"name": "auto", "candidates": CANDIDATES},
        "resources": {"threads": 2}})
    out = tmp_path / "runs"
    assert run_cli("run", spec, "--out", out)[0] == 0
    [run] = complete_runs(out, "panel")
    m = json.loads((run / "metrics.json").read_text())["metrics"]
    assert m["series"] == 20
    assert {"mase", "smape", "rmse", "snaive_mase", "coverage_80", "coverage_95", "width_80", "msis_95"} <= set(m)
    assert m["mase"] < m["snaive_mase"]  # the trend defeats the seasonal naive
    assert m["coverage_80"] <= m["coverage_95"] and 0.5 < m["coverage_95"] <= 1
    report = (run / "report.md").read_text()
    assert "Worst series (by MASE)" in report and "Forecasters chosen (series)" in report
    assert "3 series fell back to naive" in report and "S03: naive (forecast.fallback)" in report
    assert "Interval calibration" in report and "calibrated on the backtest" in report
    config = json.loads((run / "model.json").read_text())
    assert sum(config["choices"].values()) == 20 and set(config["choices"]) <= set(CANDIDATES)
    assert (run / "plots" / "panel_forecasts.png").is_file()

    history = panel().query("series_id != 'S05'")  # ... and one series the model has not seen
    history = pd.concat([history, pd.DataFrame({"series_id": "NEW", "t": range(1, 31),
                                                "value": 60 + 5 * np.sin(np.arange(30))})])
    history.to_csv(tmp_path / "history.csv", index=False)
    assert run_cli("predict", run, tmp_path / "history.csv", "--out", tmp_path / "f.csv")[0] == 0
    f = pd.read_csv(tmp_path / "f.csv")
    assert list(f.columns) == ["series_id", "t", "step", "prediction", "lower_80", "upper_80", "lower_95", "upper_95"]
    assert len(f) == 20 * 6 and f.groupby("series_id").size().eq(6).all()
    assert ((f.lower_95 <= f.lower_80) & (f.lower_80 <= f.prediction) & (f.prediction <= f.upper_80)
            & (f.upper_80 <= f.upper_95)).all()
    last = history.groupby("series_id")["t"].max()
    assert (f.groupby("series_id")["t"].min() == last + 1).all()  # each series continues after its own end

    # a known series given less history than its saved model needs gets the fallback, with a warning
    # (a seasonal form fed less than a season used to forecast zeros, seasonal ETS to fail)
    short = pd.concat([history.query("series_id != 'S01'"), history.query("series_id == 'S01'").head(3)])
    short.to_csv(tmp_path / "short.csv", index=False)
    code, err = run_cli("predict", run, tmp_path / "short.csv", "--out", tmp_path / "g.csv", capsys=capsys)
    g = pd.read_csv(tmp_path / "g.csv").query("series_id == 'S01'")
    tail = history.query("series_id == 'S01'").head(3)["value"]
    assert code == 0 and len(g) == 6 and g.prediction.between(tail.min() - 1, tail.max() + 1).all(), (g, err)
    if config["series"]["S01"]["chosen"] not in ("naive", "drift"):  # (those fit on three steps)
        assert "not by their saved model: 'S01' (" in err, err


def test_panel_checks_name_the_series_and_line(tmp_path):
    path = tmp_path / "p.csv"
    for text, expected in [
        ("id,t,v\nA,1,1\nA,2,2\nB,1,3\nB,3,4\nA,3,5\n", "line 5: series 'B' jumps from '1' (line 4) to '3'; the step 2 is missing"),
        ("id,t,v\nA,1,1\nA,2,2\nB,1,3\nB,1,4\n", "line 5: series 'B' has the time '1' twice (also on line 4)"),
        ("id,m,v\nA,2020-01,1\nA,2020-02,2\nA,2020-03,2\nB,2020-01,3\nB,2020-03,4\n",
         "series 'B' jumps from '2020-01' (line 5) to '2020-03'; the step 2020-02-01 is missing"),
    ]:
        path.write_text(text)
        with pytest.raises(DataError, match=re.escape(expected)):
            read_panel(path, "id", None, None)
    path.write_text("id,t,v\nA,1,1\nA,2,n/a\nA,3,-\nA,4,?\nA,5,5\n")  # spreadsheet exports' missing values
    assert read_panel(path, "id", None, None)["v"].isna().tolist() == [False, True, True, True, False]
    # ids are kept as written: '007' and '7' are two series, not one series with repeated times
    path.write_text("id,t,v\n007,1,1\n007,2,2\n7,1,3\n7,2,4\n")
    assert sorted(read_panel(path, "id", None, None)["id"].unique()) == ["007", "7"]
    # dates written day-first are read day-first: the gap is found, not taken for 12 days of January
    days = pd.date_range("1990-01-01", periods=14, freq="MS").strftime("%d/%m/%Y").tolist()
    path.write_text("id,t,v\n" + "".join(f"A,{d},{i}\n" for i, d in enumerate(days))
                    + "".join(f"B,{d},{i}\n" for i, d in enumerate(days) if i != 8))
    with pytest.raises(DataError, match=re.escape("series 'B' jumps from '01/08/1990' (line 23) to '01/10/1990'; "
                                                  "the step 1990-09-01 is missing")):
        read_panel(path, "id", None, None)
    path.write_text("id,t,v\n" + "".join(f"A,{d},{i}\n" for i, d in enumerate(days)))
    axis = TimeAxis.of(read_panel(path, "id", None, None)["t"])
    assert (axis.freq, axis.fmt, axis.season()) == ("MS", "%d/%m/%Y", 12)
    assert axis.after(days, 2) == ["01/03/1991", "01/04/1991"]
    # ... and dates regular either way (daily month-first, monthly day-first) are refused, not guessed
    path.write_text("id,t,v\nA,01/01/2020,1\nA,01/02/2020,2\nA,01/03/2020,3\n")
    with pytest.raises(DataError, match=re.escape("read as regular times both day-first and month-first; write "
                                                  "them as YYYY-MM-DD")):
        read_panel(path, "id", None, None)
    path.write_text("id,t,v\n" + "".join(f"A,{i},{i}\n" for i in range(1, 30)) + "B,1,1\nB,2,2\n")
    spec = spec_from_dict({"name": "p", "task": "forecasting", "forecast": {"horizon": 6},
                           "data": {"loader": "timeseries_csv", "path": str(path), "id": "id"}})
    comp, cfg = spec.data.resolve("data")
    ref = forecast.store(comp.build(cfg), str(tmp_path), "d", cfg)
    with pytest.raises(DataError, match=r"1 of 2 series .* too short for forecast.horizon 6: 'B' \(2 steps\)"):
        forecast.split(ref, spec, str(tmp_path))
    # one short series in a panel of 25 is left out and named (forecast.max_short_share 0.05), not a failed run
    path.write_text("id,t,v\n" + "".join(f"S{k},{i},{i}\n" for k in range(24) for i in range(1, 13)) + "B,1,1\nB,2,2\n")
    ref = forecast.store(comp.build(cfg), str(tmp_path), "e", cfg)
    split = forecast.split(ref, spec, str(tmp_path))
    assert "1 of 25 series left out, too short for forecast.horizon 6 (each needs 9 steps): 'B' (2 steps)" in \
        split.meta["notes"]
    assert pd.read_parquet(split.train.path)["id"].nunique() == 24


def test_a_failed_panel_check_names_the_series(tmp_path):
    from trainflow.errors import ValidationFailed

    path = tmp_path / "p.csv"
    path.write_text("id,t,v\n" + "".join(f"{s},{i},{'' if s == 'EMPTY' else i}\n" for s in ("A", "EMPTY")
                                          for i in range(1, 16)) + "".join(f"B,{i},{i}\n" for i in range(1, 11)))
    spec = spec_from_dict({"name": "p", "task": "forecasting", "forecast": {"horizon": 3}, "validation": {"min_rows": 12},
                           "data": {"loader": "timeseries_csv", "path": str(path), "id": "id"}})
    comp, cfg = spec.data.resolve("data")
    ref = forecast.store(comp.build(cfg), str(tmp_path), "d", cfg)
    with pytest.raises(ValidationFailed) as failed:
        forecast.validate(ref, spec, None)
    assert "cannot be forecast (series EMPTY)" in str(failed.value), str(failed.value)
    assert "(steps per series) (series B)" in str(failed.value), str(failed.value)


def test_a_panel_mean_names_the_series_it_leaves_out():
    from trainflow.tasks.forecast import scores

    truth, pred = np.array([5.0, 6.0, 7.0]), np.array([5.5, 6.0, 6.0])
    per = {"flat": scores.point(truth, pred, scores.seasonal_scale(np.full(20, 5.0), 6)),  # no scale: no MASE
           "ok": scores.point(truth, pred, scores.seasonal_scale(np.arange(20.0), 6)),
           "unknown": scores.point(np.full(3, np.nan), pred, 1.0)}  # no known test value: no score at all
    assert scores.aggregate(per, [])["mase"] == per["ok"]["mase"]
    assert scores.left_out(per) == [
        "MASE is the mean over 1 of 3 series; left out, with no finite MASE: flat, unknown",
        "sMAPE is the mean over 2 of 3 series; left out, with no finite sMAPE: unknown",
        "RMSE is the mean over 2 of 3 series; left out, with no finite RMSE: unknown"]


def test_a_regressor_the_loader_does_not_read_is_a_spec_error():
    from trainflow.errors import SpecError

    with pytest.raises(SpecError, match=re.escape("'forecast.exogenous' names 'price', which 'data.values' (value) "
                                                  "does not list") + ".*e.g. values: \\[value, price\\]"):
        spec_from_dict({"name": "p", "task": "forecasting", "forecast": {"horizon": 6, "exogenous": ["price"]},
                        "data": {"loader": "timeseries_csv", "path": "p.csv", "id": "id", "values": ["value"]}})


def holiday_series(seed: int = 4) -> pd.DataFrame:
    """y = 10 * holiday + season + noise, 96 months; holidays at random months."""
    rng = np.random.default_rng(seed)
    t = np.arange(96)
    holiday = (rng.random(96) < 0.2).astype(int)
    y = 100 + 10 * holiday + 5 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 1, 96)
    return pd.DataFrame({"store": "A", "t": t + 1, "sales": y.round(3), "holiday": holiday})


#: the airline order: one fit per side (the order search is not what is tested)
AIRLINE = {"name": "arima", "order": [0, 1, 1], "seasonal_order": [0, 1, 1]}


def _stages(tmp_path, frame: pd.DataFrame, forecast_section: dict, model: dict = AIRLINE) -> tuple:
    tmp_path.mkdir()
    path = tmp_path / "sales.csv"
    frame.to_csv(path, index=False)
    spec = spec_from_dict({"name": "x", "task": "forecasting", "model": model, "forecast": forecast_section,
                           "data": {"loader": "timeseries_csv", "path": str(path), "id": "store"}})
    cache = str(tmp_path / "cache")
    split = forecast.stored_split(spec, cache, f"d{len(forecast_section)}")
    with resources.using(1):
        model = forecast.fit(split, spec.training_view(), cache)
        ev = forecast.evaluate(model, split, spec, str(tmp_path / "plots"))
    return model, ev


def test_exogenous_regressor_halves_the_error_and_predict_needs_its_future(tmp_path):
    frame = holiday_series()
    season = {"horizon": 12, "season": 12}
    _, without = _stages(tmp_path / "a", frame.drop(columns="holiday"), season)
    model, with_exog = _stages(tmp_path / "b", frame, {**season, "exogenous": ["holiday"]})
    assert with_exog.metrics["rmse"] <= 0.5 * without.metrics["rmse"], (with_exog.metrics, without.metrics)
    config = json.loads((Path(model.path) / "model.json").read_text())
    assert config["series"]["A"]["state"]["columns"][0]["form"]["exog"] == 1

    run = tmp_path / "run"
    run.mkdir()
    forecast.export(model, str(run))
    future = pd.DataFrame({"store": "A", "t": range(97, 109), "sales": np.nan, "holiday": [1, 0] * 6})
    pd.concat([frame, future]).to_csv(tmp_path / "h.csv", index=False)
    pred = forecast.predict(run, tmp_path / "h.csv")
    assert pred["t"].tolist() == list(range(97, 109))
    assert (pred["prediction"].to_numpy()[::2] - pred["prediction"].to_numpy()[1::2]).mean() > 7  # holidays lift it
    gap = frame.copy()
    gap.loc[30, "holiday"] = np.nan  # a regressor missing in the history is named, as in training
    pd.concat([gap, future]).to_csv(tmp_path / "h.csv", index=False)
    with pytest.raises(DataError, match=re.escape("Series 'A' in") + ".*" + re.escape(
            "the exogenous column 'holiday' is empty at step 31 of its history (time 31)")):
        forecast.predict(run, tmp_path / "h.csv")
    future.loc[future.index[4], "holiday"] = np.nan
    pd.concat([frame, future]).to_csv(tmp_path / "h.csv", index=False)
    with pytest.raises(DataError, match="Series 'A' .* the exogenous column 'holiday' has no future value at step 5 of 12"):
        forecast.predict(run, tmp_path / "h.csv")


def test_ets_with_a_regressor_halves_the_error(tmp_path):
    """Regression with ETS errors: least squares on the regressor, ETS on the rest (one form, no calibration:
    the regression is what is tested)."""
    frame, season = holiday_series(), {"horizon": 12, "season": 12, "calibrate": False}
    ets = {"name": "ets", "trend": "none", "seasonal": "add"}
    _, without = _stages(tmp_path / "a", frame.drop(columns="holiday"), season, ets)
    model, with_exog = _stages(tmp_path / "b", frame, {**season, "exogenous": ["holiday"]}, ets)
    assert with_exog.metrics["rmse"] <= 0.5 * without.metrics["rmse"], (with_exog.metrics, without.metrics)
    beta = json.loads((Path(model.path) / "model.json").read_text())["series"]["A"]["state"]["columns"][0]["form"]["beta"]
    assert 9 < beta[0] < 11  # y = 10 * holiday + ...
