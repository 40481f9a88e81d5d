"""``auto`` on a panel scores named equal-weight combinations (``mean(ets,theta)`` ...) from its members'
backtest runs: one the backtest favours is chosen, saved, calibrated under its own name and predicted;
a saved one that names an unknown member, or does not match its fitted form, is refused (exit 3)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from tests.helpers import assert_damaged_model_exits_3, complete_runs, long_panel, run_cli, write_spec
from trainflow.errors import SpecError
from trainflow.spec import spec_from_dict
from trainflow.tasks.forecast.panel import MEAN_COMBINATIONS
from trainflow.tasks.forecast.panels import PANEL_CANDIDATES, _candidates

#: the naive forecast and the drift, and their mean: cheap candidates whose errors cancel below
CANDIDATES = ["naive", "drift", "mean(naive,drift)"]


def panel(n_series: int = 8, seed: int = 0) -> pd.DataFrame:
    """Concave growth (a square root, at a level per series): the naive forecast stays below the truth,
    the drift (the average slope of the whole history, steeper than the latest) overshoots it, so the
    mean of the two errs less than either, at every backtest origin and on the test."""
    rng = np.random.default_rng(seed)
    values = []
    for k in range(n_series):
        n = int(rng.integers(44, 56))
        y = (10 + k) * 10 * np.sqrt(np.arange(n) + 5) + rng.normal(0, 1, n)
        values.append(y)
    return long_panel(values, 'S{}')


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, prefect_server):
    """A run of the panel with ``auto`` over the three candidates, through the CLI on the real Prefect server."""
    tmp = tmp_path_factory.mktemp("combination")
    panel().to_csv(tmp / "panel.csv", index=False)
    spec = write_spec(tmp / "panel.yaml", {
        "name": "mix", "task": "forecasting", "validation": {"min_rows": 10},
        "data": {"loader": "timeseries_csv", "path": "panel.csv", "id": "series_id"},
        "forecast": {"horizon": 6, "season": 1}, "model": {"name": "auto", "candidates": CANDIDATES},
        "resources": {"threads": 1}})
    assert run_cli("run", spec, "--out", tmp / "runs")[0] == 0
    [run] = complete_runs(tmp / "runs", "mix")
    return tmp, run


def test_the_combination_the_backtest_favours_is_chosen_and_predicted(fitted, tmp_path):
    _, run = fitted
    config = json.loads((run / "model.json").read_text())
    assert config["choices"] == {"mean(naive,drift)": 8}
    assert "auto: mean(naive,drift) has the lowest backtest error over the panel" in config["notes"][1]
    # no seasonal naive among the candidates: the note names the measure the ranking then uses
    assert "MAE scaled by the series' mean step" in config["notes"][1] and "seasonal naive" not in config["notes"][1]
    for r in config["series"].values():  # each series' backtest says so too: the mean beats both members
        assert r["backtest"]["mean(naive,drift)"] < min(r["backtest"]["naive"], r["backtest"]["drift"])
        assert r["state"]["name"] == "combination" and r["state"]["columns"][0]["form"]["how"] == "mean"
    assert set(config["calibration"]["mean(naive,drift)"]) == {"80", "95"}  # its own factors
    report = (run / "report.md").read_text()
    assert "mean(naive,drift)" in report and "Forecasters chosen (series)" in report

    history = panel()
    history.to_csv(tmp_path / "history.csv", index=False)
    assert run_cli("predict", run, tmp_path / "history.csv", "--out", tmp_path / "f.csv")[0] == 0
    f = pd.read_csv(tmp_path / "f.csv")
    assert len(f) == 8 * 6 and ((f.lower_95 <= f.lower_80) & (f.lower_80 <= f.prediction)
                                & (f.prediction <= f.upper_80) & (f.upper_80 <= f.upper_95)).all()
    # the forecast is the mean of the naive one (the last value) and the drift (the last value plus the
    # average step of the training part, the saved parameter): halfway along the drift's line
    for sid, part in history.groupby("series_id"):
        y = part.value.to_numpy()
        train = y[:-6]
        expected = y[-1] + np.arange(1, 7) * (train[-1] - train[0]) / (len(train) - 1) / 2
        assert np.allclose(f[f.series_id == sid].prediction, expected, rtol=1e-3), sid


def _combination(c: dict) -> dict:
    return c["series"]["S0"]["state"]["columns"][0]["form"]["members"][0]


@pytest.mark.parametrize("damage, why", [
    (lambda c: _combination(c).update(name="prophet"), "'S0' with a combination member that is not a known forecaster"),
    (lambda c: c["series"]["S0"].update(chosen="mean(naive,prophet)"), "'S0' without a known forecaster"),
    (lambda c: c["series"]["S0"].update(chosen="mean(naive)"), "'S0' without a known forecaster"),  # one member
    (lambda c: c["series"]["S0"].update(chosen="naive"), "'S0' whose fitted forecaster is not its chosen 'naive'"),
    (lambda c: c["series"]["S0"].update(chosen="mean(naive,arima)"),
     "'S0' whose fitted forecaster is not its chosen 'mean(naive,arima)'"),
    (lambda c: c["calibration"].update({"mean(naive,prophet)": c["calibration"]["naive"]}),
     "a calibration for 'mean(naive,prophet)', not a known forecaster"),
])
def test_a_damaged_saved_combination_exits_3(fitted, damage, why, tmp_path, capsys):
    assert_damaged_model_exits_3(fitted[1], panel(), damage, why, tmp_path, capsys)


def test_auto_on_a_panel_scores_the_means_of_ets_theta_and_arima_when_named():
    data = {"loader": "timeseries_csv", "path": "p.csv", "id": "id"}
    spec = spec_from_dict({"name": "p", "task": "forecasting", "forecast": {"horizon": 6}, "model": {"name": "auto"},
                           "data": data})
    names, _, _ = _candidates(spec)
    assert names == list(PANEL_CANDIDATES) and "combination" in names
    assert not [n for n in names if n.startswith("mean(")]  # opt-in: on the dev panels they added selection noise
    named = spec_from_dict({"name": "p", "task": "forecasting", "forecast": {"horizon": 6}, "data": data,
                            "model": {"name": "auto", "candidates": ["ets", "theta", "combination", *MEAN_COMBINATIONS]}})
    names, options, _ = _candidates(named)
    assert {"combination", "mean(ets,theta)", "mean(ets,arima)", "mean(theta,arima)", "mean(ets,theta,arima)"} <= set(names)
    # each mean takes its members' options as candidates (damped ETS): the backtest combines their runs
    assert options["mean(ets,theta)"] == {"members": ["ets", "theta"], "how": "mean",
                                          "options": {"ets": {"trend": "add_damped"}, "theta": {}}}


def test_a_named_combination_is_for_a_panel_and_must_name_known_members():
    single = {"name": "p", "task": "forecasting", "forecast": {"horizon": 6},
              "data": {"loader": "timeseries_csv", "path": "p.csv"}}
    with pytest.raises(SpecError, match=re.escape("'mean(ets,theta)' names a combination, which auto scores in a panel")):
        spec_from_dict(single | {"model": {"name": "auto", "candidates": ["ets", "theta", "mean(ets,theta)"]}})
    with pytest.raises(SpecError, match=re.escape("'model.candidates[1]' must be one of") + ".*Got 'mean\\(ets,prophet\\)'"):
        spec_from_dict(single | {"data": {**single["data"], "id": "id"},
                                 "model": {"name": "auto", "candidates": ["ets", "mean(ets,prophet)"]}})
