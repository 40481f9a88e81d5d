"""One global network over a forecast panel (``model.name: global_mlp`` with ``data.id``): it trains on
windows from every series, forecasts each with calibrated intervals, predicts a history file with a
series it has not seen, refuses a damaged saved model (exit 3), and trains no final members once a
tuner has pruned the trial."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from tests.helpers import complete_runs, long_panel, run_cli, write_spec
from trainflow.errors import DataError
from trainflow.tasks.forecast import modality as forecast


def panel(n_series: int = 12, seed: int = 0) -> pd.DataFrame:
    """Series of 40-60 steps sharing one shape (season 6, trend) at different levels and scales; S03 is 9 steps."""
    rng = np.random.default_rng(seed)
    values = []
    for k in range(n_series):
        n = 9 if k == 3 else int(rng.integers(40, 60))
        t = np.arange(n)
        y = (1 + k) * (20 + 0.3 * t + 4 * np.sin(2 * np.pi * t / 6) + rng.normal(0, 0.5, n))
        values.append(y)
    return long_panel(values)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, prefect_server):
    """A run of the panel with a small global MLP through the CLI on the real Prefect server."""
    tmp = tmp_path_factory.mktemp("global")
    panel().to_csv(tmp / "panel.csv", index=False)
    spec = write_spec(tmp / "global.yaml", {
        "name": "global", "task": "forecasting", "seed": 0, "model": {"name": "global_mlp", "hidden": [32]},
        "validation": {"min_rows": 5}, "data": {"loader": "timeseries_csv", "path": "panel.csv", "id": "series_id"},
        "forecast": {"horizon": 6, "season": 6, "ensemble": 2}, "train": {"epochs": 40, "num_threads": 1},
        "resources": {"threads": 1}})
    assert run_cli("run", spec, "--out", tmp / "runs")[0] == 0
    [run] = complete_runs(tmp / "runs", "global")
    return tmp, json.loads((run / "metrics.json").read_text()), run


def test_one_network_forecasts_every_series_with_ordered_intervals(fitted):
    tmp, metrics, run = fitted
    m = metrics["metrics"]
    assert m["series"] == 12 and {"mase", "smape", "rmse", "coverage_80", "coverage_95", "msis_95"} <= set(m)
    assert m["mase"] < m["snaive_mase"]  # the shared trend defeats the seasonal naive
    assert m["coverage_80"] <= m["coverage_95"] and m["coverage_95"] >= 0.5
    config = json.loads((run / "model.json").read_text())
    assert config["forecaster"] == "global" and config["choices"] == {"global_mlp": 11, "naive": 1}
    assert config["series"]["S03"]["chosen"] == "naive"  # 9 steps: too short for lag 6 + half the lookback
    assert set(config["calibration"]["global_mlp"]) == {"80", "95"}
    assert (run / "model.safetensors").is_file() and not list(run.glob("*.pkl"))
    report = (run / "report.md").read_text()
    assert "validation part carved by time" in report and "1 series fell back to naive" in report
    assert "Worst series (by MASE)" in report and (run / "plots" / "panel_forecasts.png").is_file()


def test_predict_continues_each_series_and_a_new_one(fitted, tmp_path):
    _, _, run = fitted
    history = panel().query("series_id != 'S05'")
    t = np.arange(45)
    new = pd.DataFrame({"series_id": "NEW", "t": t + 1, "value": 500 + 2 * t + 40 * np.sin(2 * np.pi * t / 6)})
    pd.concat([history, new]).to_csv(tmp_path / "history.csv", index=False)
    assert run_cli("predict", run, tmp_path / "history.csv", "--out", tmp_path / "f.csv")[0] == 0
    f = pd.read_csv(tmp_path / "f.csv")
    assert list(f.columns) == ["series_id", "t", "step", "prediction", "lower_80", "upper_80", "lower_95", "upper_95"]
    assert len(f) == 12 * 6 and f.groupby("series_id").size().eq(6).all()
    assert ((f.lower_95 <= f.lower_80) & (f.lower_80 <= f.prediction) & (f.prediction <= f.upper_80)
            & (f.upper_80 <= f.upper_95)).all()
    last = pd.concat([history, new]).groupby("series_id")["t"].max()
    assert (f.groupby("series_id")["t"].min() == last + 1).all()  # each series continues after its own end
    # the unseen series is scaled by its own history: its forecast continues its level, trend and season,
    # closer than the seasonal naive (off by the trend, 12 per season)
    fresh = f[f.series_id == "NEW"].prediction.to_numpy()
    ahead = 45 + np.arange(6)
    truth = 500 + 2 * ahead + 40 * np.sin(2 * np.pi * ahead / 6)
    assert np.abs(fresh - truth).mean() < 6, fresh - truth


def test_damaged_saved_files_exit_3(fitted, tmp_path, capsys):
    _, _, run = fitted
    panel().to_csv(tmp_path / "history.csv", index=False)
    for i, (name, damage) in enumerate([("model.json", lambda c: c | {"build": {**c["build"], "lookback": 10 ** 6}}),
                         ("model.json", lambda c: c | {"series": {"S00": {"chosen": "global_mlp", "mean": [0.0],
                                                                            "std": [-1.0]}}}),
                         ("model.safetensors", None)]):
        broken = tmp_path / "runs" / "global" / f"broken-{i}"
        shutil.copytree(run, broken)
        if damage is None:
            (broken / name).write_bytes((run / name).read_bytes()[:200])
        else:
            (broken / name).write_text(json.dumps(damage(json.loads((run / name).read_text()))))
        code, err = run_cli("predict", broken, tmp_path / "history.csv", "--out", tmp_path / "f.csv", capsys=capsys)
        assert code == 3 and "damaged" in err and name in err, err
    with pytest.raises(DataError, match="damaged"):
        forecast.load_model(broken)


def test_a_pruned_trial_trains_no_final_members(tmp_path):
    from trainflow.spec import spec_from_dict
    from trainflow.tasks.common import selection
    from trainflow.tasks.forecast import global_panel
    from trainflow.tasks.forecast.config import ForecastConfig

    said = []

    def pruner(step, values):  # as a tuner's: stop at the validated fit's epoch 2, then whenever asked
        if not said and step >= 2 and "val_loss" in values:
            said.append(step)
        return bool(said)

    spec = spec_from_dict({"name": "g", "task": "forecasting", "seed": 0, "model": {"name": "global_mlp", "hidden": [8]},
                           "data": {"loader": "timeseries_csv", "path": "x.csv", "id": "series_id"},
                           "forecast": {"horizon": 6, "season": 6, "ensemble": 2}, "train": {"epochs": 5, "num_threads": 1}})
    t, rng = np.arange(48), np.random.default_rng(0)
    ys = {f"S{k}": (1 + k) * (20 + 0.3 * t + 4 * np.sin(t * np.pi / 3) + rng.normal(0, 0.5, 48)) for k in range(4)}
    with selection.reporting(pruner):
        done = global_panel.train(spec, "global_mlp", ForecastConfig(horizon=6, season=6, lookback=12, ensemble=2), ys,
                                  {s: None for s in ys}, [], str(tmp_path), "k", None, "x.csv")
    assert said == [2] and done.result.epochs_run == 2
    assert len(done.model.members) == 1  # the pruned fit itself, not two fresh members of one epoch each
