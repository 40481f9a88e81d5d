"""The forecast modality: one time series (one or more value columns) forecast ``horizon`` steps ahead.

    load (timeseries_csv) -> validate (GX on a per-column summary) -> split (chronological: the last
    ``horizon`` steps are the test) -> fit (rolling-origin backtest on the training part, baselines,
    the model or ``auto``'s choice) -> evaluate (RMSE, MAE, MAPE next to every baseline)

Forecasters: the statistical ones of :mod:`trainflow.tasks.forecast.statistical` (naive, seasonal
naive, drift, ETS, ARIMA, Theta; the first five are the baselines of every report), the networks
(``gru``, ``lstm``, ``rnn``, ``cnn1d``) and ``auto``, which picks the lowest mean backtest RMSE.
Everything is fitted on the training past only; the season is set or detected there.

A network works on a transformed series: missing values are interpolated in time, then the series
is log-transformed (optional), differenced (``difference`` or ``seasonal_difference``, which removes
trend and seasonality), and standardized with the mean and std of the training part. It reads
``lookback`` steps and outputs all ``horizon`` steps at once (a direct multi-step forecast, MSE
loss), trained with the shared loop on windows cut from the training part, one network per seed
(an ensemble averages them). Forecasts are turned back into the original scale by undoing each step.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trainflow import trust
from trainflow.cache_keys import cache_key, model_key
from trainflow.errors import DataError, did_you_mean
from trainflow.modality import Example
from trainflow.refs import DataRef, Evaluation, ModelRef, SplitRef, file_digest, save_parquet
from trainflow.registry import component
from trainflow.tasks.common import metrics as M
from trainflow.tasks.common import neural, plots
from trainflow.tasks.common import uncertainty as U
from trainflow.tasks.common.neural import NeuralModality
from trainflow.tasks.common.series import SequencePreprocess
from trainflow.tasks.common.validate import Check, run_expectations
from trainflow.tasks.forecast import backtest, global_panel, intervals, panels, statistical
from trainflow.tasks.forecast.config import MAX_ENSEMBLE, ForecastConfig, check_length, is_network
from trainflow.tasks.forecast.loaders import read_timeseries, store  # noqa: F401 (stages of the modality)
from trainflow.tasks.forecast.models import (candidate_config, candidates_of, choose, describe, network_candidate,
                                             network_forecast, save_json_model, statistical_candidate, train_networks)
from trainflow.tasks.forecast.panel_data import read_panel
from trainflow.tasks.forecast.plan import detect_season, plan
from trainflow.tasks.forecast.timeaxis import TimeAxis
from trainflow.tasks.forecast.transform import SeriesTransform

if TYPE_CHECKING:
    from trainflow.spec import PipelineSpec


def validate(ref: DataRef, spec: PipelineSpec, docs_dir: str | None) -> dict[str, Any]:
    """Great Expectations on a per-column summary (length, missing share, constant) of the series."""
    import pandas as pd

    if panels.is_panel(ref.meta, spec.forecast):
        return panels.validate(ref, spec, docs_dir)
    df = pd.read_parquet(ref.path)
    check_series(df, spec, ref.meta)
    rows = []
    for col in ref.meta["values"]:
        v = df[col].to_numpy(dtype=float)
        nan = float(np.isnan(v).mean())
        rows.append({"series": col, "length": len(v), "nan_share": nan,
                     "constant": bool(nan < 1 and np.nanmax(v) == np.nanmin(v)),
                     "min": float(np.nanmin(v)) if nan < 1 else float("nan")})
    table = pd.DataFrame(rows)
    checks = [
        Check("ExpectColumnValuesToBeBetween", {"column": "nan_share", "max_value": 1.0, "strict_max": True},
              "a series with no values at all (all NaN) cannot be forecast"),
        Check("ExpectColumnValuesToBeBetween", {"column": "length", "min_value": spec.validation.min_rows},
              f"validation.min_rows is {spec.validation.min_rows}"),
        Check("ExpectColumnValuesToBeInSet", {"column": "constant", "value_set": [False]},
              "a constant series has nothing to forecast"),
    ]
    if spec.forecast.transform == "log":
        checks.append(Check("ExpectColumnValuesToBeBetween", {"column": "min", "min_value": 0, "strict_min": True},
                            "forecast.transform is 'log', which needs values > 0"))
    checks += [Check(e.type, dict(e.kwargs), "validation.expectations") for e in spec.validation.expectations]
    return run_expectations(table, checks, docs_dir, suite=spec.name).as_dict()


def check_series(df: Any, spec: PipelineSpec, meta: dict[str, Any]) -> None:
    """The length check for the spec's model, with the season it would use (detected on the training part)."""
    fc, source = spec.forecast, meta["source"]
    network = is_network(spec.model.name)
    check_length(len(df), fc, source, network=False)
    if network:
        past = df.iloc[: len(df) - fc.horizon]
        level = SeriesTransform(fc.model_copy(update={"season": 1}), spec.preprocess.sequence.missing).level(
            past[meta["values"]].to_numpy(dtype=float), source)
        season = fc.season or detect_season(level, TimeAxis.of(past[meta["time"]]))[0]
        check_length(len(df), fc, source, network=True, season=season)


def stored_split(spec: PipelineSpec, cache_dir: str, digest: str) -> SplitRef:
    """The spec's data loaded, stored under ``digest`` and split, without a flow (benchmarks, tests)."""
    comp, cfg = spec.data.resolve("data")
    return split(store(comp.build(cfg), cache_dir, digest, cfg), spec, cache_dir)


def split(ref: DataRef, spec: PipelineSpec, cache_dir: str) -> SplitRef:
    """Chronological split: the last ``forecast.horizon`` steps are the test, everything before the training past."""
    import pandas as pd

    if panels.is_panel(ref.meta, spec.forecast):
        return panels.split(ref, spec, cache_dir)
    fc = spec.forecast
    df = pd.read_parquet(ref.path)
    check_series(df, spec, ref.meta)
    cut = len(df) - fc.horizon
    key = cache_key(spec, data=ref.digest, horizon=fc.horizon)
    folder = Path(cache_dir) / "splits" / key[:16]
    folder.mkdir(parents=True, exist_ok=True)
    refs = {}
    for name, part in (("train", df.iloc[:cut]), ("test", df.iloc[cut:])):
        path = folder / f"{name}.parquet"
        save_parquet(path, part)  # atomically: concurrent runs may share this split
        refs[name] = DataRef(path=str(path), digest=file_digest(path), modality="forecast",
                             meta={**ref.meta, "rows": len(part), "first": str(part.iloc[0, 0]),
                                   "last": str(part.iloc[-1, 0])})
    note = (f"chronological split: train {refs['train'].meta['first']} .. {refs['train'].meta['last']} "
            f"({cut} steps), test {refs['test'].meta['first']} .. {refs['test'].meta['last']} ({fc.horizon} steps)")
    return SplitRef(train=refs["train"], test=refs["test"], meta={"notes": [note]})


def fit(split_ref: SplitRef, spec: PipelineSpec, cache_dir: str) -> ModelRef:
    """Backtest the baselines and the model (or ``auto``'s candidates) on the training part, fit the
    baselines and the chosen forecaster on the whole training part, and save them (JSON; networks
    as safetensors + JSON)."""
    import pandas as pd

    from trainflow.tasks.common.publish import artifact_key
    from trainflow.tasks.common.training import checkpoint_dir

    if panels.is_panel(split_ref.train.meta, spec.forecast):  # a network over a panel: one over every series
        return (global_panel.fit if global_panel.is_global(spec) else panels.fit)(split_ref, spec, cache_dir)
    meta, source = split_ref.train.meta, split_ref.train.meta["source"]
    train = pd.read_parquet(split_ref.train.path)
    past = train[meta["values"]].to_numpy(dtype=np.float64)
    names = candidates_of(spec)
    networks = [n for n in names if is_network(n)]
    missing = spec.preprocess.sequence.missing
    level = SeriesTransform(spec.forecast.model_copy(update={"season": 1}), missing).level(past, source)
    p = plan(spec.forecast, level, TimeAxis.of(train[meta["time"]]), bool(networks), spec.model.name == "auto")
    notes = list(p.notes)
    if networks and not p.fc.lookback:
        notes.append(f"left out of the comparison: {', '.join(networks)} (no training window or backtest origin fits)")
        names = [n for n in names if n not in networks]
    runners = {n: network_candidate(spec, n, p) if is_network(n) else
               statistical_candidate(candidate_config(spec, n)[0].build(candidate_config(spec, n)[1]), p.fc, missing)
               for n in names}
    bt = backtest.run(runners, past, p.origins, p.fc.horizon)
    notes += [f"{n} has no backtest score: {why}" for n, why in bt.failed.items()]
    chosen, why = choose(spec, bt, names, len(past))
    notes.append(why)
    log = p.fc.transform == "log"
    baselines = {}
    for b in statistical.BASELINES:
        comp, options = candidate_config(spec, b)
        try:
            baselines[b] = statistical.fit_columns(comp.build(options), SeriesTransform(p.fc, missing).level(
                past, source), p.fc.season, log)
        except DataError as exc:  # the report goes on with the baselines that fit
            notes.append(f"baseline left out: {exc}")
    config = {"kind": "forecast", "task": "forecasting", "model": spec.model.name, "chosen": chosen,
              "forecast": p.fc.model_dump(mode="json"), "missing": missing, "time": meta["time"],
              "values": meta["values"], "loader_options": spec.data.options(), "baselines": baselines,
              "backtest": bt.as_dict(), "notes": notes}
    key = model_key(split_ref, spec)
    folder = Path(cache_dir) / "models" / key[:16]
    if is_network(chosen):
        seeds = list(range(spec.seed, spec.seed + p.ensemble))
        model, tf, results = train_networks(past, p.fc, spec, chosen, seeds, source, checkpoint_dir(cache_dir, key),
                                            f"{artifact_key(spec.name)}-training")
        _, options = candidate_config(spec, chosen)
        history = results[0].history
        config |= {"forecaster": "network", "options": options.model_dump(mode="json"), "ensemble": len(seeds),
                   "build": {"in_channels": past.shape[1], "out_features": p.fc.horizon * past.shape[1],
                             "task": "forecasting", "lookback": p.fc.lookback}, "transform": tf.state(), "history": history}
        neural.save_network(folder, model, config)
        size = sum(q.numel() for q in model.parameters())
        steps = [f"{chosen}: {len(seeds)} network(s) of {size // len(seeds)} parameters, seeds {seeds[0]}..{seeds[-1]}, "
                 f"{p.windows} windows (lookback {p.fc.lookback} -> horizon {p.fc.horizon})"]
        main = neural.WEIGHTS_FILE
    else:
        state = baselines.get(chosen)
        if state is None:
            comp, options = candidate_config(spec, chosen)
            state = statistical.fit_columns(comp.build(options), SeriesTransform(p.fc, missing).level(past, source),
                                            p.fc.season, log)
        config |= {"forecaster": "statistical", "state": state}
        save_json_model(folder, config)
        history, main = [], neural.CONFIG_FILE
        steps = [f"{chosen}: {describe(state)}"]
    score = bt.mean(chosen)  # the rolling-origin backtest of the training part, never the test
    selection = ({"method": f"rolling-origin backtest on the training part ({len(bt.origins)} origins)",
                  "metric": "rmse", "value": score, "greater_is_better": False} if not math.isnan(score) else None)
    return ModelRef.of_folder(folder, main, "forecast", {"steps": [*notes[:1], *steps], "history": history,
                                                         "notes": notes, "chosen": chosen, "selection": selection})


# ---------------------------------------------------------------- load, forecast, evaluate, export, predict


def load_model(folder: str | Path) -> tuple[Any, dict[str, Any]]:
    """The saved forecaster: the network ensemble (safetensors) or None for a statistical one, and
    the JSON config. DataError naming the folder or the damaged file (nothing in either can run code)."""
    from trainflow.registry import REGISTRY

    folder = Path(folder)
    path = folder / neural.CONFIG_FILE
    if not path.is_file():
        raise DataError(f"No saved forecast model in '{folder}' (expected {neural.CONFIG_FILE}).")
    config = trust.read_json(path)
    try:
        ForecastConfig.model_validate(config["forecast"])
        if config.get("forecaster") == "global":
            return global_panel.load(folder, config), config
        if config.get("panel"):
            problem = panels.check_panel_model(config)
            if problem:
                raise ValueError(problem)
            return global_panel.load_network(folder, config), config
        states = [config["state"]] if config["forecaster"] == "statistical" else []
        for state in [*states, *config["baselines"].values()]:
            problem = statistical.check_state(state)
            if problem:
                raise ValueError(f"a forecaster with {problem}")
        if config["forecaster"] != "network":
            return None, config
        from trainflow.tasks.common.layers import SeedEnsemble

        comp = REGISTRY.get("model", config["model"] if config["model"] != "auto" else config["chosen"])
        options = comp.config.model_validate(config["options"])
        members = int(config["ensemble"])
        if not 1 <= members <= MAX_ENSEMBLE:
            raise ValueError(f"'ensemble' is {members}; a saved forecaster has 1 to {MAX_ENSEMBLE} members")
        if not (folder / neural.WEIGHTS_FILE).is_file():
            raise DataError(f"No saved forecast model in '{folder}' (expected {neural.WEIGHTS_FILE} beside "
                            f"{neural.CONFIG_FILE}).")
        model = trust.build_to_fit(lambda: SeedEnsemble([comp.build(options, **config["build"]) for _ in range(members)]),
                                   folder / neural.WEIGHTS_FILE, path)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # valid JSON, not a forecaster's config
        raise trust.damaged(path, exc) from None
    trust.load_weights(model, folder / neural.WEIGHTS_FILE)
    return model.eval(), config


def forecast(model: Any, config: dict[str, Any], history: np.ndarray, source: str = "") -> np.ndarray:
    """The next ``horizon`` raw values [H, C] after ``history`` [t, C] from a loaded forecaster."""
    fc = ForecastConfig.model_validate(config["forecast"])
    if model is not None:
        return network_forecast(model, SeriesTransform.from_state(config["transform"]), history, source)
    if len(history) < 3:
        raise DataError(f"'{source}' has {len(history)} steps; the {config['chosen']} forecaster needs at least 3.")
    level = SeriesTransform(fc, config["missing"]).level(history, source)
    return statistical.forecast(config["state"], level, fc.horizon)


def bounds(model: Any, config: dict[str, Any], history: np.ndarray, pred: np.ndarray, source: str = ""
           ) -> list[dict[int, tuple[np.ndarray, np.ndarray]]]:
    """Per column, {level: (lower [H], upper [H])} at ``forecast.levels``: a statistical model's own,
    a network's conformal ones from its backtest residuals (first column only)."""
    fc = ForecastConfig.model_validate(config["forecast"])
    if not fc.levels:
        return [{} for _ in range(pred.shape[1])]
    if model is None:
        level = SeriesTransform(fc, config["missing"]).level(history, source)
        return intervals.statistical_bands(config["state"], level, fc.horizon, fc.levels)
    residuals = config["backtest"].get("residuals", {}).get(config["chosen"], [])
    return [intervals.conformal(residuals, pred[:, 0], fc.levels)] + [{} for _ in range(pred.shape[1] - 1)]


def _interval_scores(truth: np.ndarray, bands: list[dict[int, tuple[np.ndarray, np.ndarray]]]) -> dict[str, float]:
    """Coverage and mean width of each level over every column's test steps."""
    out = {}
    for level in sorted({lv for b in bands for lv in b}):
        inside, width = [], []
        for c, b in enumerate(bands):
            if level in b:
                keep = ~np.isnan(truth[:, c])
                lo, hi = b[level][0][keep], b[level][1][keep]
                inside += list((truth[keep, c] >= lo) & (truth[keep, c] <= hi))
                width += list(hi - lo)
        if inside:
            out[f"coverage_{level}"], out[f"width_{level}"] = float(np.mean(inside)), float(np.mean(width))
    return out


def evaluate(model_ref: ModelRef, split_ref: SplitRef, spec: PipelineSpec, plots_dir: str) -> Evaluation:
    """RMSE, MAE, MAPE of the forecast of the test horizon next to every baseline (naive, seasonal
    naive, drift, ETS, ARIMA), the backtest per origin and on average, plots on the time axis."""
    import pandas as pd

    if split_ref.train.meta.get("id") or spec.forecast.exogenous:
        return (global_panel.evaluate if global_panel.is_global(spec) else panels.evaluate)(
            model_ref, split_ref, spec, plots_dir)
    model, config = load_model(model_ref.path)
    cols, tcol = config["values"], config["time"]
    fc = ForecastConfig.model_validate(config["forecast"])
    train, test = pd.read_parquet(split_ref.train.path), pd.read_parquet(split_ref.test.path)
    past, truth = train[cols].to_numpy(dtype=float), test[cols].to_numpy(dtype=float)
    source = split_ref.train.meta["source"]
    pred = forecast(model, config, past, source)
    level = SeriesTransform(fc, config["missing"]).level(past, source)
    base = {b: statistical.forecast(state, level, len(truth)) for b, state in config["baselines"].items()}
    keep = ~np.isnan(truth)
    names = spec.evaluate.metrics or M.DEFAULTS["forecasting"]
    metrics = M.score(names, truth[keep], pred[keep])
    bands = bounds(model, config, past, pred, source)
    metrics.update(_interval_scores(truth, bands))
    scores = {config["chosen"]: dict(metrics)}
    for b, values in base.items():
        scores[b] = M.score(names, truth[keep], values[keep])
        metrics.update({f"{b}_{k}": v for k, v in scores[b].items()})
        if "rmse" in metrics and scores[b].get("rmse"):
            metrics[f"rmse_vs_{b}"] = metrics["rmse"] / scores[b]["rmse"]
    axis = TimeAxis.of(pd.concat([train[tcol], test[tcol]]))
    x_all = axis.values(pd.concat([train[tcol], test[tcol]]))
    shown = min(len(train), 4 * max(fc.season or 1, 1) + (fc.lookback or 0), len(train))
    x_past, x_future = x_all[len(train) - shown:len(train)], x_all[len(train):]
    bt = backtest.Backtest(**config["backtest"])
    charts = {}
    for c, col in enumerate(cols):
        lines = {"history": (x_past, past[-shown:, c].tolist()), "truth": (x_future, truth[:, c].tolist()),
                 f"{config['chosen']} (forecast)": (x_future, pred[:, c].tolist())}
        lines |= {b: (x_future, v[:, c].tolist()) for b, v in base.items() if b != config["chosen"]}
        charts[f"Forecast vs truth and baselines: {col}"] = plots.series_png(
            lines, Path(plots_dir) / f"forecast_{c}.png",
            f"{col}: {config['chosen']} forecast of the last {len(test)} steps (test) vs truth and baselines",
            {f"{lv}%": (x_future, lo.tolist(), hi.tolist()) for lv, (lo, hi) in sorted(bands[c].items(), reverse=True)})
    if bt.errors:
        charts["Backtest: mean RMSE per forecaster"] = plots.bars_png(
            {"mean backtest RMSE": {n: bt.mean(n) for n in bt.errors}}, Path(plots_dir) / "backtest.png",
            f"Rolling-origin backtest on the training part ({len(bt.origins)} origins, horizon {bt.horizon})")
    curves, history_tables = neural.history_report(model_ref, config, plots_dir)
    times = axis.typed(test[tcol])
    rows = []
    for i in range(len(test)):
        row = {tcol: times[i]}
        for c, col in enumerate(cols):
            row |= {col: truth[i, c], f"{col} forecast": round(float(pred[i, c]), 3)}
            row |= {f"{col} {b}": round(float(v[i, c]), 3) for b, v in base.items()}
        rows.append(row)
    test_rows = [{"forecaster": n + (" (chosen)" if n == config["chosen"] else ""),
                  **{k: round(v, 4) for k, v in s.items()}} for n, s in scores.items()]
    notes = [*split_ref.meta.get("notes", []), f"time: {axis.describe()}"]  # the fit's notes come with the model
    kind = "the model's own" if model is None else (
        f"conformal, from {sum(len(r) for r in config['backtest'].get('residuals', {}).get(config['chosen'], []))} "
        f"backtest errors")
    notes += [f"{lv}% interval ({kind}) covers {100 * metrics[f'coverage_{lv}']:.0f}% of the test steps"
              for lv in spec.forecast.levels if f"coverage_{lv}" in metrics]
    if "rmse" in metrics and base:
        best = min(base, key=lambda b: scores[b].get("rmse", math.inf))
        notes.append(f"test RMSE {metrics['rmse']:.4g} ({config['chosen']}) vs the best baseline {best} "
                     f"{scores[best]['rmse']:.4g}")
    tables = {"Forecast": rows, "Test: forecaster and baselines": test_rows,
              "Backtest on the training part (RMSE per origin)": bt.rows(axis.typed(train[tcol])), **history_tables}
    intervals = {}
    origin_errors = np.asarray(bt.errors.get(config["chosen"], []), dtype=float)
    if len(origin_errors) >= 2:  # one test window cannot be resampled: the spread over backtest origins
        draws = np.random.default_rng(spec.seed).choice(origin_errors, (U.RESAMPLES, len(origin_errors))).mean(1)
        metrics["backtest_rmse"] = float(origin_errors.mean())
        intervals["backtest_rmse"] = U.percentile_interval(draws)
        notes.append(f"95% interval of the mean backtest RMSE of {config['chosen']}: bootstrap of its "
                     f"{len(origin_errors)} rolling origins ({U.RESAMPLES} resamples); the test horizon is one "
                     "window, which cannot be resampled")
    return Evaluation(metrics={k: float(v) for k, v in metrics.items() if not math.isnan(v)},
                      plots={**charts, **curves}, tables=tables, notes=notes, intervals=intervals)


def export(model: ModelRef, run_dir: str) -> list[str]:
    """Copy the model's files (JSON, and the safetensors weights of a network) into the run folder."""
    import shutil

    files = [name for name in (neural.WEIGHTS_FILE, neural.CONFIG_FILE) if (Path(model.path) / name).is_file()]
    for name in files:
        shutil.copy2(Path(model.path) / name, Path(run_dir) / name)
    return files


def _read_history(path: str | Path, config: dict[str, Any], opts: dict[str, Any]) -> Any:
    """A panel's (or exogenous series') history file, read like the training data."""
    if config.get("id") and opts.get("id"):
        return read_panel(path, config["id"], config["time"], config["values"], opts.get("delimiter", ","))
    return read_timeseries(path, config["time"], config["values"], opts.get("delimiter", ","))


def predict(run_dir: str | Path, input_path: str | Path) -> Any:
    """Forecast the ``horizon`` steps after the end of a new time-series CSV (same columns as in
    training); the times of those steps are typed like the file's (years stay whole numbers)."""
    import pandas as pd

    model, config = load_model(run_dir)
    opts = config.get("loader_options", {})
    if config.get("forecaster") == "global":
        return global_panel.predict(model, config, _read_history(input_path, config, opts), str(input_path))
    if config.get("panel"):
        return panels.predict(config, _read_history(input_path, config, opts), str(input_path), model)
    df = read_timeseries(input_path, config["time"], config["values"], opts.get("delimiter", ","))
    pred = forecast(model, config, df[config["values"]].to_numpy(dtype=float), str(input_path))
    out = pd.DataFrame({"step": np.arange(1, len(pred) + 1)})
    times = TimeAxis.of(df[config["time"]]).after(df[config["time"]], len(pred))
    if times is not None:
        out[config["time"]] = times
    bands = bounds(model, config, df[config["values"]].to_numpy(dtype=float), pred, str(input_path))
    for c, col in enumerate(config["values"]):
        out[col] = pred[:, c]
        prefix = "" if len(config["values"]) == 1 else f"{col} "
        for lv, (lo, hi) in sorted(bands[c].items()):
            out[f"{prefix}lower_{lv}"], out[f"{prefix}upper_{lv}"] = lo, hi
    return out


def series_summaries(run_dir: str | Path, source: DataRef | str | Path) -> Any:
    """One row per series of a stored part or of a history file read as :func:`predict` reads it: its
    target's level, spread, spectral centroid and missing share, and each exogenous regressor's mean
    (what drift is measured on). Lengths are left out: a later history of the same series is longer by
    design, and that is not drift."""
    import pandas as pd

    from trainflow.tasks.common.drift import signal_summaries
    from trainflow.tasks.forecast.panel_data import as_long, groups

    config = trust.read_json(Path(run_dir) / neural.CONFIG_FILE)
    opts = config.get("loader_options", {})
    exog = list((config.get("forecast") or {}).get("exogenous") or [])
    if isinstance(source, DataRef):
        df, meta = pd.read_parquet(source.path), source.meta
    else:
        df, meta = _read_history(source, config, opts), {"values": config["values"], "source": str(source),
                                                         "id": opts.get("id")}
    if not exog and not meta.get("id"):  # one series, perhaps of several value columns: a frame of one row
        series = [("", df[list(config["values"])])]
        extra: list[str] = []
    else:
        df, id_col, target, extra = as_long(df, meta, exog)
        # a history for predict carries the regressors' future rows after its last value: the
        # horizon to forecast, not missing values of the series (nor regressor values of its past)
        parts = [(sid, _observed(part, target)) for sid, part in groups(df, id_col)]
        series = [(sid, part[[target]]) for sid, part in parts]
    frame = signal_summaries([part.to_numpy(dtype=float) for _, part in series]).drop(columns=["length"])
    for col in extra:
        frame[f"{col} mean"] = [float(np.nanmean(part[col].to_numpy(dtype=float))) for _, part in parts]
    return frame


def _observed(part: Any, target: str) -> Any:
    """The rows of one series up to its last observed target value."""
    seen = np.flatnonzero(part[target].notna().to_numpy())
    return part.iloc[: seen[-1] + 1] if len(seen) else part


@component("modality", "forecast")
class Forecast(NeuralModality, stages_from=__name__):
    """One time series forecast ``horizon`` steps ahead, next to naive, seasonal-naive, drift, ETS and
    ARIMA baselines, with a rolling-origin backtest on the training part.

    Chronological split; transforms, statistical models and networks fitted on the past only."""

    sections = {**NeuralModality.sections, "preprocess.sequence": SequencePreprocess, "forecast": ForecastConfig}
    default_models = {"forecasting": "auto"}

    def drift_frame(self, run_dir: str | Path, source: DataRef | str | Path) -> Any:
        """Each series' level, spread, spectral centroid, missing share and regressor means
        (:func:`series_summaries`): a panel's series are the items; a single series is one."""
        return series_summaries(run_dir, source)

    def scoring_rows(self, split: SplitRef) -> tuple[Path, Any]:
        """The training history as the CSV ``predict`` reads, and the test part (:mod:`.paired`)."""
        from trainflow.tasks.forecast import paired

        return paired.scoring_rows(split)

    def paired_difference(self, run_dir: str | Path, split: SplitRef, metric: str, truth: Any, new: Any, old: Any,
                          seed: int = 0, resamples: int = U.RESAMPLES) -> dict[str, Any]:
        """Both forecasts of the test horizon scored and compared (:mod:`.paired`): a panel by resampling
        its series, a single series by the Diebold-Mariano interval (blocks of steps for other metrics)."""
        from trainflow.tasks.forecast import paired

        return paired.paired_difference(run_dir, split, metric, truth, new, old, seed, resamples)

    def spec_problems(self, spec: PipelineSpec) -> list[str]:
        """The device; forecasting interpolates missing values (it cannot mask them); ``auto``'s candidates.
        (Every forecaster takes ``forecast.exogenous``: the statistical ones as regressors, the networks
        as input channels; Theta ignores them, with a note.)"""
        from trainflow.errors import SpecError
        from trainflow.spec import models_for

        problems = super().spec_problems(spec)
        if spec.preprocess.sequence.missing == "mask":
            problems.append("'preprocess.sequence.missing' is 'mask', which forecasting does not support; "
                            "use linear, ffill or bfill.")
        values = spec.data.options().get("values")  # the loader's value columns, where the spec names them
        outside = [c for c in spec.forecast.exogenous if isinstance(values, list) and c not in values]
        if outside:
            problems.append(f"'forecast.exogenous' names {', '.join(map(repr, outside))}, which 'data.values' "
                            f"({', '.join(map(str, values))}) does not list: the loader reads only those columns; "
                            f"list the regressors there beside the value to forecast, e.g. values: "
                            f"[{', '.join(map(str, [*values, *outside]))}].")
        if spec.model.name == "auto" and not spec.model.problems("model", task="forecasting"):
            _, auto = spec.model.resolve("model", task="forecasting")
            known = [m for m in models_for("forecast", "forecasting") if m != "auto"]
            panel = bool(spec.data.options().get("id")) or bool(spec.forecast.exogenous)
            for i, name in enumerate(auto.candidates):
                if panels.combination_of(name) and not panel:
                    problems.append(f"'model.candidates[{i}]': {name!r} names a combination, which auto scores in a "
                                    f"panel (data.id); for one series, list 'combination' and give its members "
                                    f"and how in model.options.combination.")
                elif name not in known and not panels.combination_of(name):
                    problems.append(f"'model.candidates[{i}]' must be one of {', '.join(known)} (in a panel also a "
                                    f"combination such as 'mean(ets,theta)'). Got {name!r}"
                                    f"{did_you_mean(name, known)}.")
            for name, options in auto.options.items():
                if name not in auto.candidates:
                    problems.append(f"'model.options.{name}': {name!r} is not among model.candidates "
                                    f"({', '.join(auto.candidates)}).")
                elif name in known:
                    try:
                        candidate_config(spec, name)
                    except SpecError as exc:
                        problems += exc.problems
        return problems

    def example(self, folder: Path) -> Example:
        """Five years of a monthly series with trend and season."""
        t = np.arange(60)
        values = 100 + t + 10 * np.sin(2 * np.pi * t / 12)
        lines = [f"{2000 + i // 12}-{i % 12 + 1:02d},{v:.3f}" for i, v in enumerate(values)]
        (folder / "series.csv").write_text("month,value\n" + "\n".join(lines) + "\n")
        return Example(spec={"task": "forecasting", "data": {"loader": "timeseries_csv", "path": str(folder / "series.csv")},
                             "forecast": {"horizon": 6, "lookback": 12, "origins": 1, "ensemble": 1},
                             "model": {"name": "gru", "hidden": 4, "front_channels": 4},
                             "train": {"epochs": 2, "batch_size": 8}},
                       predict_input=folder / "series.csv")
