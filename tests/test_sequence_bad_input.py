"""Bad sequence/forecasting input through the CLI: a clear message, a non-zero exit, no finished-looking run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import assert_fails_clearly, run_cli, write_spec

pytestmark = pytest.mark.usefixtures("prefect_server")

TS_HEAD = "@problemName toy\n@univariate true\n@equalLength false\n@classLabel true a b\n@data\n"
GOOD_ROWS = "".join(f"{i},{i + 1},{i % 3},{i * 2}:{'ab'[i % 2]}\n" for i in range(12))


def classification_spec(tmp_path: Path, file: str, text: str, loader: str = "ts", **data) -> Path:
    path = tmp_path / file
    path.write_text(text)
    raw = {"name": "bad", "task": "classification",
           "data": {"loader": loader, "path": str(path), **data}, "validation": {"min_rows": 4},
           "model": {"name": "cnn1d", "filters": [4], "kernels": [3]}, "train": {"epochs": 1}}
    return write_spec(tmp_path / "spec.yaml", raw)


def forecast_spec(tmp_path: Path, text: str, **forecast) -> Path:
    path = tmp_path / "series.csv"
    path.write_text(text)
    raw = {"name": "bad", "task": "forecasting", "data": {"loader": "timeseries_csv", "path": str(path)},
           "validation": {"min_rows": 4}, "forecast": {"horizon": 3, "lookback": 3, "season": 2, **forecast},
           "model": {"name": "gru", "hidden": 4, "front": "none"}, "train": {"epochs": 1}}
    return write_spec(tmp_path / "spec.yaml", raw)


MONTHS = [f"{2000 + i // 12}-{i % 12 + 1:02d}" for i in range(40)]
SERIES = "month,value\n" + "".join(f"{m},{100 + i + 5 * (i % 2)}\n" for i, m in enumerate(MONTHS))

CASES = {
    "ts without @data": (lambda p: classification_spec(p, "x.ts", TS_HEAD.replace("@data\n", "") + GOOD_ROWS),
                         3, ["x.ts", "line 5: missing '@data' line"]),
    "ts row with another channel count": (
        lambda p: classification_spec(p, "x.ts", TS_HEAD.replace("@univariate true", "@dimensions 1") + GOOD_ROWS
                                      + "1,2:3,4:a\n"), 3, ["x.ts", "line 18", "2 channel(s), expected 1"]),
    "ts label not in @classLabel": (lambda p: classification_spec(p, "x.ts", TS_HEAD + GOOD_ROWS + "1,2,3:c\n"),
                                    3, ["x.ts", "line 18", "class label 'c'", "@classLabel"]),
    "long csv duplicate (series, time)": (
        lambda p: classification_spec(p, "long.csv", "series_id,time,value,label\n" + "".join(
            f"{s},{t},{s * t},{'ab'[s % 2]}\n" for s in range(6) for t in range(4)) + "3,2,9,b\n", loader="long_csv"),
        3, ["long.csv", "series '3' has more than one row for time '2'", "lines 16, 26"]),
    "all-NaN series": (lambda p: classification_spec(p, "x.ts", TS_HEAD + GOOD_ROWS + "?,?,?:a\n"),
                       4, ["nan_share", "all NaN", "1 of 13"]),
    "forecast dates unsorted": (lambda p: forecast_spec(p, SERIES.replace("2001-05", "2001-13").replace(
        "2001-04", "2001-05").replace("2001-13", "2001-04")), 3, ["series.csv", "line 18", "comes before", "sort"]),
    "forecast duplicate dates": (lambda p: forecast_spec(p, SERIES.replace("2001-05", "2001-04")), 3,
                                 ["series.csv", "line 18", "repeats line 17"]),
    "horizon longer than the series": (lambda p: forecast_spec(p, SERIES, horizon=50), 3,
                                       ["forecast.horizon is 50", "has only 40 steps"]),
    # the airline settings on 36 months: the sum names every part, and the fix keeps seasonal_difference off
    "36 months with a network and the airline settings": (
        lambda p: forecast_spec(p, "".join(SERIES.splitlines(keepends=True)[:37]), horizon=12, lookback=24,
                                season=12, detrend="seasonal_difference"), 3,
        ["series.csv' has 36 steps, too few for a network",
         "12 test steps (forecast.horizon) + one training window: 12 (seasonal_difference lag) + 24 "
         "(forecast.lookback) + 12 (the window's own horizon) = 60",
         "detrend: difference with forecast.lookback: 11 or less", "model.name: auto"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_sequence_input_fails_clearly(case, tmp_path, capsys):
    make, code, phrases = CASES[case]
    assert_fails_clearly(make(tmp_path), tmp_path / "runs", "bad", code, phrases, capsys)


def test_forecast_loader_needs_the_forecasting_task(tmp_path, capsys):
    spec = forecast_spec(tmp_path, SERIES)
    rc, err = run_cli("run", spec, "--out", tmp_path / "runs", "--set", "task=classification", capsys=capsys)
    assert rc == 2 and "set 'task: forecasting'" in err


def test_auto_with_an_unknown_candidate_is_a_spec_error(tmp_path, capsys):
    (tmp_path / "series.csv").write_text(SERIES)
    spec = write_spec(tmp_path / "spec.yaml", {
        "name": "bad", "task": "forecasting", "data": {"loader": "timeseries_csv", "path": "series.csv"},
        "model": {"name": "auto", "candidates": ["ets", "arimaa"], "options": {"gru": {"hidden": 4}}}})
    rc, err = run_cli("run", spec, "--out", tmp_path / "runs", capsys=capsys)
    assert rc == 2, err
    assert "'model.candidates[1]' must be one of" in err and "(did you mean 'arima'?)" in err
    assert "'model.options.gru': 'gru' is not among model.candidates (ets, arimaa)" in err
    assert "Traceback" not in err
