"""The forecasters a fit compares: statistical models and networks as backtest candidates, ``auto``
and its choice."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from trainflow.errors import DataError
from trainflow.registry import component
from trainflow.tasks.common.neural import CONFIG_FILE
from trainflow.tasks.forecast import backtest, statistical
from trainflow.tasks.forecast.config import ForecastConfig, diff_lag
from trainflow.tasks.forecast.plan import Plan
from trainflow.tasks.forecast.transform import SeriesTransform, windows

if TYPE_CHECKING:
    from trainflow.spec import PipelineSpec


# ---------------------------------------------------------------- forecasters: statistical and networks


def candidate_config(spec: PipelineSpec, name: str) -> tuple[Any, Any]:
    """The component and options of forecaster ``name``: the spec's model, or one of ``auto``'s candidates."""
    from trainflow.registry import REGISTRY

    comp, options = spec.model.resolve("model", task="forecasting")
    if spec.model.name == name:
        return comp, options
    other = REGISTRY.get("model", name, task="forecasting", where="model.candidates")
    given = options.options.get(name, {}) if spec.model.name == "auto" else {}
    return other, other.parse(given, where=f"model.options.{name}")


def statistical_candidate(forecaster: statistical.Forecaster, fc: ForecastConfig, missing: str) -> Any:
    """A backtest candidate: fit the statistical forecaster on a history; return its forecast function."""
    def fit(past: np.ndarray) -> backtest.Forecast:
        state = statistical.fit_columns(forecaster, SeriesTransform(fc, missing).level(past), fc.season,
                                        fc.transform == "log")
        return lambda history: statistical.forecast(state, SeriesTransform(fc, missing).level(history), fc.horizon)

    return fit


def train_networks(past: np.ndarray, fc: ForecastConfig, spec: PipelineSpec, name: str, seeds: list[int],
                   source: str = "", checkpoints: str | None = None, progress_key: str | None = None) -> tuple[Any, Any, list[Any]]:
    """Train one network per seed on every window of the transformed ``past`` [t, C] with the shared
    loop; returns the ensemble (the mean of their outputs), the fitted transform and the results."""
    import torch

    from trainflow.tasks.common.layers import SeedEnsemble
    from trainflow.tasks.common.selection import stop_asked
    from trainflow.tasks.common.training import torch_threads, train_model

    comp, options = candidate_config(spec, name)
    tf = SeriesTransform(fc, spec.preprocess.sequence.missing).fit(past, source)
    x, y = windows(tf.forward(past, source), fc.lookback, fc.horizon)
    inputs = (torch.from_numpy(x), torch.ones(x.shape[:2]), torch.from_numpy(y))
    nets, results = [], []
    with torch_threads(spec.train.num_threads):  # building and training; the process's count restored after
        for seed in seeds:
            if nets and stop_asked():  # a tuner pruned the trial on an earlier member: no more of it
                break
            torch.manual_seed(seed)  # the initial weights depend on the seed only
            net = comp.build(options, in_channels=past.shape[1], out_features=fc.horizon * past.shape[1],
                             task="forecasting", lookback=fc.lookback)  # (a window net sizes its input by it)
            results.append(train_model(net, inputs, None, spec.train, seed=seed, task="forecasting",
                                       checkpoint_dir=f"{checkpoints}-{seed}" if checkpoints else None,
                                       progress_key=progress_key, log=print if progress_key else _quiet))
            nets.append(net)
    return SeedEnsemble(nets).eval(), tf, results


def _quiet(_: str) -> None:
    """The training log of backtest networks (one line per epoch each) is left out."""


def network_forecast(model: Any, tf: SeriesTransform, history: np.ndarray, source: str = "") -> np.ndarray:
    """The next ``horizon`` raw values [H, C] a network forecasts after ``history`` [t, C]."""
    import torch

    from trainflow.tasks.common.training import predict as forward

    fc = tf.fc
    need = fc.lookback + diff_lag(fc)
    if len(history) < need:
        raise DataError(f"'{source}' has {len(history)} steps; the model needs the last {need} "
                        f"(lookback {fc.lookback} + the {fc.detrend} lag {diff_lag(fc)}) to forecast.")
    z = tf.forward(history, source)[-fc.lookback:]
    x = torch.from_numpy(z[None].astype(np.float32))
    out = forward(model, (x, torch.ones(x.shape[:2])), device="cpu").numpy().reshape(fc.horizon, -1)
    return tf.inverse(out, history)


def network_candidate(spec: PipelineSpec, name: str, p: Plan) -> Any:
    """A backtest candidate: train the seed ensemble of network ``name`` on a history; return its forecast function."""
    def fit(past: np.ndarray) -> backtest.Forecast:
        model, tf, _ = train_networks(past, p.fc, spec, name, list(range(spec.seed, spec.seed + p.ensemble)))
        return lambda history: network_forecast(model, tf, history)

    return fit


def candidates_of(spec: PipelineSpec) -> list[str]:
    """The forecasters a fit compares: the baselines, plus ``auto``'s candidates or the spec's model."""
    if spec.model.name == "auto":
        _, options = spec.model.resolve("model", task="forecasting")
        return list(dict.fromkeys([*statistical.BASELINES, *options.candidates]))
    return list(dict.fromkeys([*statistical.BASELINES, spec.model.name]))


def choose(spec: PipelineSpec, bt: backtest.Backtest, names: list[str], n: int) -> tuple[str, str]:
    """The forecaster to fit (``auto``: the lowest mean backtest RMSE) and the sentence that says why."""
    ranking = bt.ranking(names)
    table = ", ".join(f"{name} {err:.4g}" for name, err in ranking)
    if spec.model.name != "auto":
        best = next((r for r in ranking if r[0] != spec.model.name), None)
        mine = bt.mean(spec.model.name)
        if best is None or math.isnan(mine):
            return spec.model.name, f"{spec.model.name}: the model of the spec"
        verdict = "beats every baseline" if mine <= best[1] else f"loses to {best[0]} ({best[1]:.4g})"
        return spec.model.name, f"{spec.model.name} (the spec's model): mean backtest RMSE {mine:.4g}, {verdict}"
    if not ranking:
        return "ets", (f"auto chose ets: no backtest origin fits in the {n}-step training part, so there is no "
                       f"error to compare (ETS adapts its form to short series by AICc)")
    chosen = ranking[0][0]
    return chosen, (f"auto chose {chosen}: the lowest mean backtest RMSE over {len(bt.origins)} origin(s) "
                    f"(mean RMSE: {table})")


def describe(state: dict[str, Any]) -> str:
    """A statistical forecaster's fitted form in words (first column)."""
    form = state["columns"][0]["form"]
    if "members" in form:
        return f"{form['how']} of " + ", ".join(describe({"columns": [m]}) for m in form["members"])
    if "order" in form:
        return f"ARIMA{tuple(form['order'])}{tuple(form['seasonal_order'])} trend {form['trend']}"
    if "damped" in form:
        return (f"ETS(A,{'N' if not form['trend'] else 'Ad' if form['damped'] else 'A'},"
                f"{ {None: 'N', 'add': 'A', 'mul': 'M'}[form['seasonal']]}) season {form['season']}")
    return f"Theta (theta {form['theta']}, season {form['season']})"


# ---------------------------------------------------------------- auto and the modality


def save_json_model(folder: Path, config: dict[str, Any]) -> None:
    """Write a statistical model's JSON file into ``folder`` atomically (via a temp folder)."""
    import json
    import shutil

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)


class AutoConfig(BaseModel):
    """Options of the ``auto`` forecaster."""

    model_config = ConfigDict(extra="forbid")
    candidates: list[str] = Field(["naive", "seasonal_naive", "drift", "ets", "arima", "theta", "gru"], min_length=1,
                                  description="Forecasters compared by mean backtest RMSE (statistical ones and networks)")
    options: dict[str, dict[str, Any]] = Field({}, description="Options per candidate, e.g. {gru: {hidden: 32}}")


@component("model", "auto", AutoConfig, tasks=("forecasting",), modality="forecast")
def build_auto(config: AutoConfig, **_: Any) -> AutoConfig:
    """Picks the forecaster with the lowest rolling-origin backtest RMSE (statistical models and networks)."""
    return config
