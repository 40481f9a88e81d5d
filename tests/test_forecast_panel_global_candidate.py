"""``auto`` on a panel with the global network as a candidate (``model.candidates: [..., global_mlp]``):
backtested at the statistical candidates' origins (one network per origin over the panel cut there),
chosen per series by the same rule, calibrated under its own name, saved beside the per-series
states (safetensors + JSON) and predicted; a crafted saved network is refused (exit 3)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.helpers import assert_damaged_model_exits_3, complete_runs, long_panel, run_cli, write_spec

#: the naive and the seasonal naive miss the shared trend and season the network learns over the panel
CANDIDATES = ["naive", "seasonal_naive", "global_mlp"]


def panel(n_series: int = 10, seed: int = 0) -> pd.DataFrame:
    """Series of 44-56 steps sharing one shape (a trend and a season of 6) at different levels and scales."""
    rng = np.random.default_rng(seed)
    values = []
    for k in range(n_series):
        t = np.arange(int(rng.integers(44, 56)))
        values.append((1 + k) * (20 + 0.4 * t + 4 * np.sin(2 * np.pi * t / 6) + rng.normal(0, 0.3, len(t))))
    return long_panel(values)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, prefect_server):
    """A run of ``auto`` over the three candidates, a small network, through the CLI on the Prefect server."""
    tmp = tmp_path_factory.mktemp("panel_global")
    panel().to_csv(tmp / "panel.csv", index=False)
    spec = write_spec(tmp / "panel.yaml", {
        "name": "mixg", "task": "forecasting", "seed": 0, "validation": {"min_rows": 10},
        "data": {"loader": "timeseries_csv", "path": "panel.csv", "id": "series_id"},
        "forecast": {"horizon": 6, "season": 6, "origins": 2},
        "model": {"name": "auto", "candidates": CANDIDATES, "options": {"global_mlp": {"hidden": [32]}}},
        "train": {"epochs": 15, "num_threads": 1}, "resources": {"threads": 1}})
    assert run_cli("run", spec, "--out", tmp / "runs")[0] == 0
    [run] = complete_runs(tmp / "runs", "mixg")
    return tmp, run


def test_the_network_is_chosen_where_the_shared_pattern_makes_it_best_and_predicted(fitted, tmp_path):
    _, run = fitted
    config = json.loads((run / "model.json").read_text())
    assert config["network"]["model"] == "global_mlp" and (run / "model.safetensors").is_file()
    chose = [sid for sid, r in config["series"].items() if r["chosen"] == "global_mlp"]
    assert len(chose) >= 8, config["choices"]
    for sid in chose:  # chosen on its backtest (the same origins as the others), never on the test
        r = config["series"][sid]
        assert r["backtest"]["global_mlp"] < min(r["backtest"]["naive"], r["backtest"]["seasonal_naive"])
    assert set(config["calibration"]["global_mlp"]) == {"80", "95"}  # its own conformal factors
    assert "backtested at the same origins, one network per origin" in " ".join(config["notes"])
    metrics = json.loads((run / "metrics.json").read_text())["metrics"]
    assert metrics["mase"] < metrics["snaive_mase"]

    t = np.arange(50)
    new = pd.DataFrame({"series_id": "NEW", "t": t + 1, "value": 300 + 3 * t + 30 * np.sin(2 * np.pi * t / 6)})
    pd.concat([panel(), new]).to_csv(tmp_path / "history.csv", index=False)
    assert run_cli("predict", run, tmp_path / "history.csv", "--out", tmp_path / "f.csv")[0] == 0
    f = pd.read_csv(tmp_path / "f.csv")
    assert len(f) == 11 * 6 and ((f.lower_95 <= f.lower_80) & (f.lower_80 <= f.prediction)
                                 & (f.prediction <= f.upper_80) & (f.upper_80 <= f.upper_95)).all()
    # the series the model has not seen: the panel's most chosen forecaster, the network, continues its
    # trend and season (scaled by its own history) closer than its last season repeated
    ahead = 50 + np.arange(6)
    truth = 300 + 3 * ahead + 30 * np.sin(2 * np.pi * ahead / 6)
    fresh = f[f.series_id == "NEW"].prediction.to_numpy()
    assert np.abs(fresh - truth).mean() < np.abs(new.value.to_numpy()[-6:] - truth).mean()


@pytest.mark.parametrize("damage, why", [
    (lambda c: c["network"]["build"].update(lookback=10 ** 6), "a 'build' that does not match"),
    (lambda c: c["network"].update(model="prophet"), "not a panel network's config"),
    (lambda c: c["series"][_net(c)].update(std=[-1.0]), "without its scaling"),
    (lambda c: c["series"][_net(c)].update(chosen="gru"), "chose the network 'gru', which the model does not hold"),
])
def test_a_crafted_saved_network_exits_3(fitted, damage, why, tmp_path, capsys):
    assert_damaged_model_exits_3(fitted[1], panel(), damage, why, tmp_path, capsys)


def _net(config: dict) -> str:
    return next(sid for sid, r in config["series"].items() if r["chosen"] == "global_mlp")
