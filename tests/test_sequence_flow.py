"""Sequence classification and forecasting end to end on tiny data, on a real Prefect server:
run folder, safetensors model, report plots, and ``trainflow predict`` on new series in every format."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from tests.helpers import complete_runs, run_cli, write_spec

pytestmark = pytest.mark.usefixtures("prefect_server")


def toy_series(n: int, length: int, rng: np.random.Generator) -> tuple[list[np.ndarray], list[str]]:
    """Class 'up': a rising ramp; class 'down': a falling one (plus noise; some steps missing)."""
    series, labels = [], []
    for i in range(n):
        label = "up" if i % 2 else "down"
        ramp = np.linspace(-1, 1, length) * (1 if label == "up" else -1)
        s = ramp + 0.1 * rng.standard_normal(length)
        if i % 5 == 0:
            s[length // 2] = np.nan
        series.append(s)
        labels.append(label)
    return series, labels


def ts_text(series: list[np.ndarray], labels: list[str]) -> str:
    head = "@problemName ramps\n@univariate true\n@equalLength true\n@classLabel true down up\n@data\n"
    return head + "".join(",".join("?" if np.isnan(v) else f"{v:.4f}" for v in s) + f":{y}\n"
                          for s, y in zip(series, labels))


@pytest.fixture(scope="module")
def classification_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ramps")
    rng = np.random.default_rng(0)
    tr, te = toy_series(24, 20, rng), toy_series(12, 20, rng)
    (folder / "R_TRAIN.ts").write_text(ts_text(*tr))
    (folder / "R_TEST.ts").write_text(ts_text(*te))
    spec = write_spec(folder / "ramps.yaml", {
        "name": "ramps", "task": "classification",
        "data": {"loader": "ts", "train": "R_TRAIN.ts", "test": "R_TEST.ts"},
        "validation": {"min_rows": 10},
        "preprocess": {"sequence": {"normalize": "global", "missing": "linear"}},
        "model": {"name": "gru", "hidden": 8, "front_channels": 8},
        "train": {"epochs": 15, "batch_size": 8, "lr": 0.01}, "evaluate": {"primary": "accuracy"}})
    out = folder / "runs"
    assert run_cli("run", spec, "--out", out)[0] == 0
    [run] = complete_runs(out, "ramps")
    return folder, run, te


def test_classification_run_folder(classification_run):
    _, run, _ = classification_run
    names = {p.name for p in run.iterdir()}
    assert {"metrics.json", "model.safetensors", "model.json", "report.md", "validation", "plots"} <= names
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["metrics"]["accuracy"] >= 0.9
    assert sum(map(sum, summary["confusion"]["matrix"])) == 12  # the fixed test file
    assert any("fixed split" in n for n in summary["notes"]) or "fixed split" in (run / "report.md").read_text()
    assert (run / "plots" / "learning_curves.png").is_file() and (run / "plots" / "confusion_matrix.png").is_file()
    config = json.loads((run / "model.json").read_text())
    assert config["classes"] == ["down", "up"] and len(config["history"]) == 15
    for path in run.rglob("*"):
        assert path.suffix not in (".pkl", ".pickle", ".joblib", ".pt")


def test_predict_new_series_in_every_format(classification_run, tmp_path):
    folder, run, (series, labels) = classification_run
    inputs = {}
    inputs["new.ts"] = ts_text(series[:4], labels[:4])
    wide = pd.DataFrame([np.nan_to_num(s) for s in series[:4]], columns=[f"t{i}" for i in range(20)])
    inputs["wide.csv"] = wide
    inputs["long.csv"] = pd.DataFrame([{"series_id": f"s{i}", "time": t, "value": float(np.nan_to_num(s[t]))}
                                       for i, s in enumerate(series[:4]) for t in range(20)])
    np.savez(tmp_path / "new.npz", x=np.nan_to_num(np.stack(series[:4]))[..., None])
    for name, content in inputs.items():
        if isinstance(content, str):
            (tmp_path / name).write_text(content)
        else:
            content.to_csv(tmp_path / name, index=False)
    for name in ["new.ts", "wide.csv", "long.csv", "new.npz"]:
        out = tmp_path / f"pred-{name}.csv"
        assert run_cli("predict", run, tmp_path / name, "--out", out)[0] == 0, name
        pred = pd.read_csv(out)
        assert len(pred) == 4 and {"series", "prediction", "proba_down", "proba_up"} <= set(pred.columns)
        assert pred["prediction"].tolist() == labels[:4], name


def test_predict_refuses_series_with_other_channels(classification_run, tmp_path, capsys):
    _, run, _ = classification_run
    np.savez(tmp_path / "two.npz", x=np.zeros((2, 20, 2)))
    rc, err = run_cli("predict", run, tmp_path / "two.npz", "--out", tmp_path / "p.csv", capsys=capsys)
    assert rc == 3 and "2 channel(s); the model was trained on 1" in err


@pytest.mark.parametrize(("name", "damage"), [
    ("model.safetensors", b""), ("model.safetensors", "truncated"), ("model.safetensors", b"\x00garbage" * 50),
    ("model.json", b""), ("model.json", b'{"model": "gru", "opt'), ("model.json", b"[1, 2, 3]"),
])
def test_damaged_model_file_is_named_and_said_to_be_damaged(classification_run, tmp_path, capsys, name, damage):
    _, run, (series, labels) = classification_run
    copy = tmp_path / run.name
    shutil.copytree(run, copy)
    good = (copy / name).read_bytes()
    (copy / name).write_bytes(good[: len(good) // 2] if damage == "truncated" else damage)
    (tmp_path / "new.ts").write_text(ts_text(series[:2], labels[:2]))
    rc, err = run_cli("predict", copy, tmp_path / "new.ts", "--out", tmp_path / "p.csv", capsys=capsys)
    assert rc == 3, err
    assert f"'{copy / name}' is damaged" in err and "Traceback" not in err
    assert not (tmp_path / "p.csv").exists()


def monthly_sales(folder, name: str, start: str, values: np.ndarray, sections: dict):
    """Write ``<name>.csv`` (columns month, sales: ``values`` monthly from ``start``) and a forecasting
    spec ``<name>.yaml`` reading it, with ``sections``; returns the spec's path."""
    months = pd.date_range(start, periods=len(values), freq="MS").strftime("%Y-%m")
    pd.DataFrame({"month": months, "sales": values}).to_csv(folder / f"{name}.csv", index=False)
    return write_spec(folder / f"{name}.yaml", {
        "name": name, "task": "forecasting", "data": {"loader": "timeseries_csv", "path": f"{name}.csv"},
        **sections})


def test_forecasting_flow_and_predict(tmp_path):
    t = np.arange(72)
    values = 50 + 0.5 * t + 8 * np.sin(2 * np.pi * t / 6) + np.random.default_rng(1).normal(0, 0.3, 72)
    spec = monthly_sales(tmp_path, "sales", "2015-01-01", values, {
        "validation": {"min_rows": 20},
        "forecast": {"horizon": 6, "lookback": 12, "season": 6, "detrend": "difference", "origins": 2, "ensemble": 2},
        "model": {"name": "gru", "hidden": 8, "front": "none"}, "train": {"epochs": 30, "batch_size": 8, "lr": 0.01}})
    out = tmp_path / "runs"
    assert run_cli("run", spec, "--out", out)[0] == 0
    [run] = complete_runs(out, "sales")
    summary = json.loads((run / "metrics.json").read_text())
    m = summary["metrics"]
    assert {"rmse", "mae", "mape", "seasonal_naive_rmse", "rmse_vs_seasonal_naive"} <= set(m)
    assert m["rmse"] < m["seasonal_naive_rmse"]  # the trend defeats the seasonal-naive baseline
    assert (run / "plots" / "forecast_0.png").is_file()
    assert "Forecast vs truth" in (run / "report.md").read_text()
    pred_path = tmp_path / "forecast.csv"
    assert run_cli("predict", run, tmp_path / "sales.csv", "--out", pred_path)[0] == 0
    pred = pd.read_csv(pred_path)
    assert pred["month"].tolist() == ["2021-01", "2021-02", "2021-03", "2021-04", "2021-05", "2021-06"]
    assert len(pred) == 6 and pred["sales"].between(60, 120).all()
    # a network's conformal 80% bounds from its 2 x 6 backtest errors (too few for 95%: 19 are needed)
    assert (pred["lower_80"] < pred["sales"]).all() and (pred["sales"] < pred["upper_80"]).all()
    assert "lower_95" not in pred and "coverage_80" in m


def test_short_series_runs_with_default_settings_and_a_tampered_model_is_refused(tmp_path, capsys):
    # 36 months, horizon 12, nothing else set: the season is detected, auto backtests and picks
    t = np.arange(36)
    values = 200 + 2 * t + 25 * np.sin(2 * np.pi * t / 12) + np.random.default_rng(3).normal(0, 2, 36)
    spec = monthly_sales(tmp_path, "short", "2020-01-01", values,
                         {"validation": {"min_rows": 24}, "forecast": {"horizon": 12}})
    out = tmp_path / "runs"
    rc, err = run_cli("run", spec, "--out", out, capsys=capsys)
    assert rc == 0, err
    [run] = complete_runs(out, "short")
    m = json.loads((run / "metrics.json").read_text())["metrics"]
    assert {"rmse", "naive_rmse", "seasonal_naive_rmse", "drift_rmse", "ets_rmse", "arima_rmse"} <= set(m)
    report = (run / "report.md").read_text()
    assert "auto chose" in report and "season 12 from the dates' frequency" in report
    assert "gru" in report and "no training window or backtest origin fits" in report  # left out, and it says so
    config = json.loads((run / "model.json").read_text())
    assert config["forecaster"] == "statistical" and not (run / "model.safetensors").exists()

    pred_path = tmp_path / "next.csv"
    assert run_cli("predict", run, tmp_path / "short.csv", "--out", pred_path)[0] == 0
    nxt = pd.read_csv(pred_path)
    assert nxt["month"].tolist()[:2] == ["2023-01", "2023-02"]
    assert ((nxt["lower_95"] <= nxt["lower_80"]) & (nxt["lower_80"] < nxt["sales"]) & (nxt["sales"] < nxt["upper_80"])
            & (nxt["upper_80"] <= nxt["upper_95"])).all()  # the statistical model's own bounds
    assert {"coverage_80", "coverage_95", "width_95"} <= set(m)

    tampered = tmp_path / "tampered"
    shutil.copytree(run, tampered)
    config["state"]["columns"][0]["params"] = ["__import__('os').system('echo owned')"]
    (tampered / "model.json").write_text(json.dumps(config))
    rc, err = run_cli("predict", tampered, tmp_path / "short.csv", "--out", tmp_path / "p.csv", capsys=capsys)
    assert rc == 3 and f"'{tampered / 'model.json'}' is damaged" in err and "not finite numbers" in err, err
    (tampered / "model.json").write_bytes(b"\x80\x04\x95pickle")  # a pickle in place of the JSON
    rc, err = run_cli("predict", tampered, tmp_path / "short.csv", "--out", tmp_path / "p.csv", capsys=capsys)
    assert rc == 3 and "is damaged" in err and "Traceback" not in err
    assert not (tmp_path / "p.csv").exists()
