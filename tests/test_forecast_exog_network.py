"""Exogenous regressors as input channels of the forecasting networks (issue 26 item 4): on a small panel
with y = 10 * holiday + season + noise the global network's test RMSE with ``forecast.exogenous: [holiday]``
is at most half the RMSE without; the regressors' scaling is saved in the JSON; ``trainflow predict``
needs their future values (a missing one is a data error naming the column and step) and follows them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import complete_runs, run_cli, write_spec
from trainflow import resources
from trainflow.errors import DataError
from trainflow.spec import spec_from_dict
from trainflow.tasks.forecast import modality as forecast

H = 12


def holiday_panel(n_series: int = 6, n: int = 72, seed: int = 1) -> pd.DataFrame:
    """Monthly series: y = level + 10 * holiday + season + noise (sd 1), holidays at random months."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n_series):
        t = np.arange(n)
        holiday = (rng.random(n) < 0.2).astype(int)
        y = 50 + 5 * k + 10 * holiday + (3 + k % 3) * np.sin(2 * np.pi * t / 12 + k) + rng.normal(0, 1, n)
        rows += [{"store": f"S{k}", "t": i + 1, "sales": round(float(v), 3), "holiday": int(d)}
                 for i, (v, d) in enumerate(zip(y, holiday))]
    return pd.DataFrame(rows)


def _spec(folder: Path, section: dict, data: dict | None = None, model: dict | None = None, epochs: int = 200) -> dict:
    """A small global MLP (one seed, one torch thread, 200 epochs at most) over ``folder/sales.csv``."""
    return {"name": "exog", "task": "forecasting", "seed": 0, "model": model or {"name": "global_mlp", "hidden": [32]},
            "forecast": {"horizon": H, "season": 12, "ensemble": 1, **section},
            "train": {"epochs": epochs, "num_threads": 1}, "resources": {"threads": 1},
            "data": {"loader": "timeseries_csv", "path": str(folder / "sales.csv"),
                     **({"id": "store"} if data is None else data)}}


def _stages(folder: Path, frame: pd.DataFrame, section: dict, data: dict | None = None,
            model: dict | None = None, epochs: int = 200) -> tuple:
    """Split, fit and evaluate without a flow (the stages the flow runs), the model exported to ``folder/run``."""
    folder.mkdir()
    frame.to_csv(folder / "sales.csv", index=False)
    spec = spec_from_dict(_spec(folder, section, data, model, epochs))
    cache = str(folder / "cache")
    split = forecast.stored_split(spec, cache, "d")
    with resources.using(1):
        fitted = forecast.fit(split, spec.training_view(), cache)
        ev = forecast.evaluate(fitted, split, spec, str(folder / "plots"))
    run = folder / "run"
    run.mkdir()
    forecast.export(fitted, str(run))
    return run, ev


@pytest.fixture(scope="module")
def runs(tmp_path_factory, prefect_server):
    """The panel without the regressor (the stages) and with it (``trainflow run`` on the real Prefect
    server, so that ``trainflow predict`` reads a real run folder)."""
    tmp = tmp_path_factory.mktemp("exog")
    frame = holiday_panel()
    _, without = _stages(tmp / "without", frame.drop(columns="holiday"), {})
    frame.to_csv(tmp / "sales.csv", index=False)
    spec = write_spec(tmp / "exog.yaml", _spec(tmp, {"exogenous": ["holiday"]}))
    assert run_cli("run", spec, "--out", tmp / "runs")[0] == 0
    [run] = complete_runs(tmp / "runs", "exog")
    return frame, without, (run, json.loads((run / "metrics.json").read_text())["metrics"])


def test_the_regressor_halves_the_global_networks_error(runs):
    _, without, (run, with_exog) = runs
    assert with_exog["rmse"] <= 0.5 * without.metrics["rmse"], (with_exog, without.metrics)
    assert with_exog["coverage_95"] >= with_exog["coverage_80"] > 0.5  # conformal intervals, as before
    config = json.loads((run / "model.json").read_text())
    assert config["forecaster"] == "global" and config["exogenous"] == ["holiday"]
    assert config["build"] == {"in_channels": 2, "out_features": H, "lookback": 24 + H, "task": "forecasting"}
    stats = config["series"]["S0"]
    assert len(stats["exog_mean"]) == len(stats["exog_std"]) == 1 and stats["exog_std"][0] > 0
    assert (run / "model.safetensors").is_file() and not list(run.rglob("*.pkl"))
    assert "holiday as input channels" in (run / "report.md").read_text()


def _future(frame: pd.DataFrame, holiday: int) -> pd.DataFrame:
    """Each series' history and the horizon after it: the value empty, the regressor given."""
    future = pd.DataFrame([{"store": sid, "t": 73 + i, "sales": np.nan, "holiday": holiday}
                           for sid in frame.store.unique() for i in range(H)])
    return pd.concat([frame, future])


def test_predict_follows_the_future_regressor_and_needs_all_of_it(runs, tmp_path, capsys):
    frame, _, (run, _) = runs
    new = holiday_panel(1, seed=7).assign(store="NEW")  # a series the model has not seen: its own scaling
    preds = {}
    for holiday in (0, 1):
        _future(pd.concat([frame, new]), holiday).to_csv(tmp_path / "h.csv", index=False)
        assert run_cli("predict", run, tmp_path / "h.csv", "--out", tmp_path / f"f{holiday}.csv")[0] == 0
        preds[holiday] = pd.read_csv(tmp_path / f"f{holiday}.csv")
    f = preds[1]
    assert list(f.columns) == ["store", "t", "step", "prediction", "lower_80", "upper_80", "lower_95", "upper_95"]
    assert len(f) == 7 * H and f.t.tolist()[:H] == list(range(73, 73 + H))
    assert ((f.lower_95 <= f.lower_80) & (f.lower_80 <= f.prediction) & (f.prediction <= f.upper_95)).all()
    lift = preds[1].prediction - preds[0].prediction
    assert 6 < lift.mean() < 14, lift  # y = 10 * holiday + ...: the network reads the horizon's regressor
    assert lift[f.store == "NEW"].mean() > 5, lift[f.store == "NEW"]

    gap = _future(frame, 1)
    gap.loc[(gap.store == "S2") & (gap.t == 77), "holiday"] = np.nan
    gap.to_csv(tmp_path / "gap.csv", index=False)
    code, err = run_cli("predict", run, tmp_path / "gap.csv", "--out", tmp_path / "g.csv", capsys=capsys)
    assert code == 3 and "Series 'S2'" in err and "'holiday' has no future value at step 5 of 12" in err, err
    frame.to_csv(tmp_path / "no_future.csv", index=False)  # the history alone: no future regressor at all
    with pytest.raises(DataError, match="Series 'S0' .* 'holiday' has no future value at step 1 of 12"):
        forecast.predict(run, tmp_path / "no_future.csv")


def test_a_damaged_regressor_scaling_is_refused(runs, tmp_path):
    _, _, (run, _) = runs
    config = json.loads((run / "model.json").read_text())
    config["series"]["S1"]["exog_std"] = [-1.0]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.json").write_text(json.dumps(config))
    (broken / "model.safetensors").write_bytes((run / "model.safetensors").read_bytes())
    with pytest.raises(DataError, match=r"damaged.*'S1' without its regressors' scaling"):
        forecast.load_model(broken)


def test_a_single_series_network_takes_regressors(tmp_path):
    """No data.id: a recurrent network on one series with a regressor (a panel of one) fits and predicts."""
    one = holiday_panel(1).drop(columns="store")
    spec = {"name": "x", "task": "forecasting", "model": {"name": "gru", "hidden": 8, "front": "none"},
            "forecast": {"exogenous": ["holiday"]}, "data": {"loader": "timeseries_csv", "path": "s.csv"}}
    assert spec_from_dict(spec).model.name == "gru"  # once a spec error: a network with forecast.exogenous
    run, ev = _stages(tmp_path / "one", one, {"exogenous": ["holiday"]}, data={}, model=spec["model"],
                      epochs=20)
    assert ev.metrics["series"] == 1 and np.isfinite(ev.metrics["rmse"])
    future = pd.DataFrame({"t": range(73, 73 + H), "sales": np.nan, "holiday": 1})
    pd.concat([one, future]).to_csv(tmp_path / "h.csv", index=False)
    pred = forecast.predict(run, tmp_path / "h.csv")
    assert pred.t.tolist() == list(range(73, 73 + H)) and pred.prediction.notna().all()
