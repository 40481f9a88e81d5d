"""A panel's stages with one global network (:mod:`.global_net`): fit, load, evaluate, predict.

The network is trained twice with the shared loop: first on the windows whose targets end before
each series' last ``horizon`` training steps, validated on those steps (the epoch with the lowest
validation loss is kept: early stopping); its errors there are the backtest that calibrates the
intervals (conformal, :mod:`.calibration`, pooled over the series in units of each series' seasonal
naive error). Then fresh networks (``forecast.ensemble`` seeds) are trained on every window for the
chosen number of epochs. The test horizon is never seen by either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trainflow import trust
from trainflow.alerts import warn
from trainflow.cache_keys import model_key
from trainflow.errors import DataError, TrainflowError
from trainflow.refs import Evaluation, ModelRef, SplitRef
from trainflow.tasks.common import neural, plots
from trainflow.tasks.forecast import calibration, scores, statistical
from trainflow.tasks.forecast.config import ENSEMBLE_BELOW, ENSEMBLE_SEEDS, MAX_ENSEMBLE, ForecastConfig, is_network
from trainflow.tasks.forecast.global_net import (MAX_LOOKBACK, bands, check_scaling, exog_fc, exog_scaler,
                                                 input_steps, interval_scale, long_enough, raw_forecasts, resolve,
                                                 scaler, tensors, window_input, windows)
from trainflow.tasks.forecast.panel import fit_series, forecast_series, settings_of
from trainflow.tasks.forecast.panel_data import as_long, groups, history_and_future
from trainflow.tasks.forecast.timeaxis import TimeAxis
from trainflow.tasks.forecast.transform import SeriesTransform

if TYPE_CHECKING:
    from trainflow.spec import PipelineSpec


def is_global(spec: PipelineSpec) -> bool:
    """Whether a panel's model is a network (one over every series), not a statistical one or ``auto``."""
    return is_network(spec.model.name)


# ---------------------------------------------------------------- fit


def _windows(ys: dict[str, np.ndarray], xs: dict[str, np.ndarray | None], fc: ForecastConfig, missing: str
             ) -> dict[str, Any]:
    """Every series' transforms (target, regressors) and windows: all of them (``full``), those whose
    targets end before the last ``horizon`` steps (``cut``, scaled by the history before them), the
    validation window at that cut (``val``), and what the backtest forecasts from (``held``: the
    :data:`global_net.Item` and the truth). ``xs``: each series' regressors [t, k], or None."""
    h, out = fc.horizon, {"full": [], "cut": [], "val": [], "held": {}, "tfs": {}, "short": []}
    for sid, y in ys.items():
        tf, x = scaler(fc, missing, y, sid), xs[sid]
        if tf is None:
            out["short"].append(sid)
            continue
        xt = exog_scaler(fc, missing, x, sid)
        out["tfs"][sid] = (tf, xt)
        out["full"] += windows(tf.forward(y[:, None])[:, 0], fc, e=None if xt is None else xt.forward(x))
        cut = scaler(fc, missing, y[:-h], sid)
        if cut is not None:
            z, xcut = cut.forward(y[:, None])[:, 0], exog_scaler(fc, missing, None if x is None else x[:-h], sid)
            e = None if xcut is None else xcut.forward(x)  # the carved steps' regressors are their known future
            out["cut"] += windows(z, fc, last=len(z) - h, e=e)
            out["val"].append((*window_input(z[:-h], fc, e), z[-h:].astype(np.float32)))
            out["held"][sid] = ((cut, y[:-h], xcut, x), y[-h:])
    return out


def _train(comp: Any, options: Any, build: dict[str, Any], rows: list[Any], val: list[Any] | None, config: Any,
           seed: int, checkpoints: str, progress_key: str | None) -> tuple[Any, Any]:
    import torch

    from trainflow.tasks.common.training import train_model

    torch.manual_seed(seed)  # the initial weights depend on the seed only
    net = comp.build(options, **build)
    result = train_model(net, tensors(rows), tensors(val) if val else None, config, seed=seed, task="forecasting",
                         checkpoint_dir=checkpoints, progress_key=progress_key)
    return net, result


@dataclass
class Trained:
    """A global network trained over a panel (:func:`train`): the seed ensemble, the windows and
    transforms it was trained on, the first training's result and the epochs then kept."""

    model: Any
    w: dict[str, Any]
    result: Any
    epochs: int
    ensemble: int
    build: dict[str, Any]
    recipe_notes: list[str]
    history: list[Any]


def train(spec: PipelineSpec, name: str, fc: ForecastConfig, ys: dict[str, np.ndarray],
          xs: dict[str, np.ndarray | None], exog: list[str], cache_dir: str, key: Any, progress: str | None,
          source: str) -> Trained:
    """Network ``name`` (the spec's model or ``auto``'s candidate) trained over the histories ``ys``
    (``fc`` resolved: season and lookback): first on the windows whose targets end before each
    series' last ``horizon`` steps, validated on those steps (early stopping: the epoch with the
    lowest validation loss), then ``forecast.ensemble`` fresh networks on every window for that many
    epochs. DataError when no series is long enough."""
    from trainflow.tasks.common.layers import SeedEnsemble
    from trainflow.tasks.common.selection import stop_asked
    from trainflow.tasks.common.training import apply_recipe, checkpoint_dir, torch_threads
    from trainflow.tasks.forecast.models import candidate_config

    w = _windows(ys, xs, fc, spec.preprocess.sequence.missing)
    if not w["full"] or not w["val"] or not w["cut"]:
        raise DataError(f"No series of '{source}' is long enough for {name}: a training window needs the "
                        f"{fc.detrend} lag, half the lookback ({fc.lookback}) and the horizon ({fc.horizon}), and "
                        f"the validation part another horizon. Use a shorter forecast.lookback or a statistical model.")
    comp, options = candidate_config(spec, name)
    build = _build(fc, exog)
    config, recipe_notes = apply_recipe(spec.train, comp.extra.get("train_recipe"), len(w["cut"]), has_validation=True)
    # one torch thread unless train.num_threads says otherwise: batches of a few hundred windows through
    # a small network gain nothing from a second thread, and lose much on a busy machine (M1, 150 series,
    # 2-core machine at load ~11: fit 9 s CPU at one thread, 80 s at two; scores identical)
    config = config.model_copy(update={"val_fraction": 0.0, "monitor": "val_loss", "restore_best": True,
                                       "num_threads": spec.train.num_threads or 1})
    ensemble = fc.ensemble or (ENSEMBLE_SEEDS if len(w["full"]) < ENSEMBLE_BELOW else 1)
    with torch_threads(config.num_threads):
        first, result = _train(comp, options, build, w["cut"], w["val"], config, spec.seed,
                               checkpoint_dir(cache_dir, key, "cut"), progress)
        epochs = max(1, result.best_epoch)
        final = config.model_copy(update={"epochs": epochs, "patience": 0, "monitor": "train_loss", "restore_best": False})
        # a tuner that pruned the trial on the validated fit wants no final members (not a candidate)
        nets = [(first, result)] if stop_asked() else [
            _train(comp, options, build, w["full"], None, final, seed, checkpoint_dir(cache_dir, key, seed), progress)
            for seed in range(spec.seed, spec.seed + ensemble)]
    w["first"] = first
    return Trained(SeedEnsemble([net for net, _ in nets]).eval(), w, result, epochs, ensemble, build, recipe_notes,
                   nets[0][1].history)


def _backtest_factors(net: Any, fc: ForecastConfig, held: dict[str, Any]) -> dict[int, list[float]]:
    """Interval factors per level and step from the first network's errors on each series' carved
    steps, in units of the series' seasonal naive error (:func:`calibration.factors`)."""
    items = list(held.values())
    means = raw_forecasts(net, fc, [item for item, _ in items])
    found = []
    for ((_, y, _, _), truth), mean in zip(items, means):
        s = interval_scale(y, fc.season or 1)
        found.append(calibration.ratios([truth], [(mean, {lv: (mean - s, mean + s) for lv in fc.levels})], fc.levels))
    return calibration.factors(found, fc.levels, fc.horizon)


def fit(split_ref: SplitRef, spec: PipelineSpec, cache_dir: str) -> ModelRef:
    """Train the spec's network over every series of the panel (see the module docstring) and save it
    (safetensors + JSON); series too short for it get ``forecast.fallback``."""
    import pandas as pd

    from trainflow.tasks.common.publish import artifact_key

    meta, name, missing = split_ref.train.meta, spec.model.name, spec.preprocess.sequence.missing
    train_df, id_col, target, exog = as_long(pd.read_parquet(split_ref.train.path), meta, spec.forecast.exogenous)
    parts = groups(train_df, id_col)
    axis = TimeAxis.of(max(parts, key=lambda p: len(p[1]))[1][meta["time"]])
    ys = {sid: part[target].to_numpy(dtype=float) for sid, part in parts}
    fc, notes = resolve(spec.forecast, axis, max(ys.values(), key=len))
    comp, options = spec.model.resolve("model", task="forecasting")
    key, progress = model_key(split_ref, spec), f"{artifact_key(spec.name)}-training"
    done = train(spec, name, fc, ys, {sid: _x(part, exog) for sid, part in parts}, exog, cache_dir, key, progress,
                 meta["source"])
    w, result, epochs, ensemble, build, model = done.w, done.result, done.epochs, done.ensemble, done.build, done.model
    factors = _backtest_factors(w["first"], fc, w["held"]) if fc.levels else {}
    series = {sid: {"chosen": name, "mean": tf.mean_, "std": tf.std_,
                    **({"exog_mean": xt.mean_, "exog_std": xt.std_} if xt is not None else {})}
              for sid, (tf, xt) in w["tfs"].items()}
    settings = settings_of(fc, fc.fallback, [fc.fallback], {}, axis)
    for sid in w["short"]:
        series[sid] = {k: v for k, v in fit_series(ys[sid], None, fc.fallback, {}, settings).items() if k != "notes"}
    series = {sid: series[sid] for sid in ys}
    counts = {name: len(w["tfs"]), **({fc.fallback: len(w["short"])} if w["short"] else {})}
    notes += _fit_notes(name, fc, w, result, epochs, ensemble, factors) + done.recipe_notes + result.report_notes()
    saved = {"kind": "forecast", "task": "forecasting", "panel": True, "forecaster": "global", "model": name,
             "chosen": name, "forecast": fc.model_dump(mode="json"), "missing": missing, "id": id_col,
             "time": meta["time"], "target": target, "exogenous": exog, "values": meta["values"],
             "loader_options": spec.data.options(), "options": options.model_dump(mode="json"), "build": build,
             "ensemble": ensemble, "axis": axis.__dict__, "series": series, "choices": counts,
             "calibration": calibration.as_json({name: factors}) if factors else {}, "notes": notes,
             "history": done.history, "best_epoch": epochs}
    folder = Path(cache_dir) / "models" / key[:16]
    neural.save_network(folder, model, saved)
    size = sum(p.numel() for p in model.parameters()) // ensemble
    steps = [f"{name}: one network over {len(w['tfs'])} series ({ensemble} seed(s), {size} parameters each), "
             f"{len(w['full'])} windows (lookback {fc.lookback} -> horizon {fc.horizon})"]
    return ModelRef.of_folder(folder, neural.WEIGHTS_FILE, "forecast", {
        "steps": steps, "history": done.history, "notes": notes, "chosen": name, "best_epoch": epochs,
        "selection": {"method": "validation part carved by time (each series' last horizon training steps)",
                      "metric": "val_loss", "value": float(result.history[epochs - 1].get("val_loss", math.nan)),
                      "greater_is_better": False}})


def _fit_notes(name: str, fc: ForecastConfig, w: dict[str, Any], result: Any, epochs: int, ensemble: int,
               factors: dict[int, list[float]]) -> list[str]:
    notes = [f"{name}: one network over every series, each scaled by its own training history ({fc.detrend}, "
             f"standardized); {len(w['full'])} windows from {len(w['tfs'])} series"
             + (f"; exogenous regressors {', '.join(fc.exogenous)} as input channels over the lookback and the "
                f"horizon (each differenced and standardized like its series)" if fc.exogenous else ""),
             f"epochs chosen on a validation part carved by time: each series' last {fc.horizon} training steps "
             f"({len(w['val'])} windows; the network trained on the {len(w['cut'])} windows before them); best "
             f"epoch {epochs} of {result.epochs_run}; then {ensemble} network(s) trained on every window for "
             f"{epochs} epochs"]
    if factors:
        notes.append(f"intervals: conformal, from the first network's errors on the carved steps of {len(w['held'])} "
                     f"series, in units of each series' seasonal naive error (mean factor at {min(factors)}%: "
                     f"{np.mean(factors[min(factors)]):.2f})")
    missing = [lv for lv in fc.levels if lv not in factors]
    if missing:
        notes.append(f"no interval at {', '.join(map(str, missing))}%: too few backtest errors for its quantile")
    if w["short"]:
        shown = ", ".join(w["short"][:5]) + (" ..." if len(w["short"]) > 5 else "")
        notes.append(f"{len(w['short'])} series fell back to {fc.fallback} (forecast.fallback): too short for the "
                     f"{fc.detrend} lag and half the lookback ({shown})")
    return notes


def _build(fc: ForecastConfig, exog: list[str]) -> dict[str, Any]:
    """The network's sizes: one channel per regressor beside the target, over the steps a window reads."""
    return {"in_channels": 1 + len(exog), "out_features": fc.horizon, "lookback": input_steps(fc, exog),
            "task": "forecasting"}


def _x(part: Any, exog: list[str]) -> np.ndarray | None:
    return part[exog].to_numpy(dtype=float) if exog else None


# ---------------------------------------------------------------- load


def check_config(config: Any) -> str | None:
    """What is wrong with a saved global forecaster's config (None when it is usable)."""
    from trainflow.registry import REGISTRY

    try:
        fc = ForecastConfig.model_validate(config["forecast"])
        TimeAxis(**config["axis"])
        assert is_network(config["model"]), f"{config['model']!r} is not a network"
        REGISTRY.get("model", config["model"]).config.model_validate(config["options"])
        assert isinstance(fc.lookback, int) and 1 <= fc.lookback <= MAX_LOOKBACK and fc.season, "no lookback"
        exog = config["exogenous"]
        assert all(isinstance(c, str) for c in config["values"]), "a bad 'values'"
        assert exog == fc.exogenous and set(exog) < set(config["values"]), "'exogenous' that are not value columns"
        assert config["build"] == _build(fc, exog), "a 'build' that does not match the forecast section"
        assert type(config["ensemble"]) is int and 1 <= config["ensemble"] <= MAX_ENSEMBLE, "a bad 'ensemble'"
        assert all(isinstance(config[k], str) for k in ("id", "time", "target", "missing"))
    except (KeyError, TypeError, ValueError, AssertionError, AttributeError, TrainflowError) as exc:
        return f"not a global forecaster's config ({type(exc).__name__}: {exc})"
    return (calibration.check(config.get("calibration", {}), fc.horizon, (config["model"],))
            or _check_series(config["series"], config["model"], len(exog)))


def _check_series(series: Any, name: str, k: int) -> str | None:
    if not isinstance(series, dict) or not series:
        return "no 'series' mapping"
    for sid, r in series.items():
        if not isinstance(r, dict):
            return f"series {sid!r} without a record"
        if r.get("chosen") == name:
            problem = check_scaling(r, k)
            if problem:
                return f"series {sid!r} {problem}"
        elif r.get("chosen") in statistical.NAMES:
            problem = statistical.check_state(r.get("state"))
            if problem:
                return f"series {sid!r} with {problem}"
        else:
            return f"series {sid!r} without a known forecaster"
    return None


def load(folder: str | Path, config: dict[str, Any]) -> Any:
    """The saved seed ensemble of a global forecaster whose JSON ``config`` was read from ``folder``;
    DataError naming the damaged file (config checked, sizes checked against the weights first)."""
    folder = Path(folder)
    problem = check_config(config)
    if problem:
        raise trust.damaged(folder / neural.CONFIG_FILE, problem)
    return _ensemble(folder, config)


def _ensemble(folder: Path, saved: dict[str, Any]) -> Any:
    """The seed ensemble of ``saved`` (a checked config's ``model``, ``options``, ``build``, ``ensemble``)
    built to fit the weights in ``folder`` (their shapes checked first), the weights loaded."""
    from trainflow.registry import REGISTRY
    from trainflow.tasks.common.layers import SeedEnsemble

    if not (folder / neural.WEIGHTS_FILE).is_file():
        raise DataError(f"No saved forecast model in '{folder}' (expected {neural.WEIGHTS_FILE} beside "
                        f"{neural.CONFIG_FILE}).")
    comp = REGISTRY.get("model", saved["model"])
    options = comp.config.model_validate(saved["options"])
    model = trust.build_to_fit(lambda: SeedEnsemble([comp.build(options, **saved["build"])
                                                     for _ in range(saved["ensemble"])]),
                               folder / neural.WEIGHTS_FILE, folder / neural.CONFIG_FILE)
    trust.load_weights(model, folder / neural.WEIGHTS_FILE)
    return model.eval()


def check_network(saved: Any, exogenous: Any) -> str | None:
    """What is wrong with the ``network`` part of a panel ``auto``'s saved config (the global candidate
    some series chose: its name, options, resolved forecast section, sizes and seeds); None when usable."""
    from trainflow.registry import REGISTRY

    try:
        fc = ForecastConfig.model_validate(saved["forecast"])
        assert is_network(saved["model"]), f"{saved['model']!r} is not a network"
        REGISTRY.get("model", saved["model"]).config.model_validate(saved["options"])
        assert isinstance(fc.lookback, int) and 1 <= fc.lookback <= MAX_LOOKBACK and fc.season, "no lookback"
        assert fc.exogenous == exogenous, "'exogenous' that differ from the panel's"
        assert saved["build"] == _build(fc, exogenous), "a 'build' that does not match its forecast section"
        assert type(saved["ensemble"]) is int and 1 <= saved["ensemble"] <= MAX_ENSEMBLE, "a bad 'ensemble'"
        assert isinstance(saved["missing"], str), "a bad 'missing'"
    except (KeyError, TypeError, ValueError, AssertionError, AttributeError, TrainflowError) as exc:
        return f"not a panel network's config ({type(exc).__name__}: {exc})"
    return None


def load_network(folder: str | Path, config: dict[str, Any]) -> Any:
    """The network of a panel ``auto`` whose (checked) ``config`` holds one in ``network``, else None."""
    return _ensemble(Path(folder), config["network"]) if config.get("network") else None


# ---------------------------------------------------------------- forecast, evaluate, predict


def forecast_panel(model: Any, config: dict[str, Any], histories: dict[str, np.ndarray],
                   regressors: dict[str, np.ndarray] | None = None
                   ) -> dict[str, tuple[np.ndarray, dict[int, tuple[np.ndarray, np.ndarray]], str]]:
    """Each history's next ``horizon`` values, bounds and forecaster: the network (a known series scaled
    by its saved statistics, another by its own history's), or the fallback for one too short.
    ``regressors``: with ``forecast.exogenous``, each series' regressors [t + horizon, k] (its history's,
    then the horizon's)."""
    fc, name, missing = ForecastConfig.model_validate(config["forecast"]), config["model"], config["missing"]
    factors = calibration.of_json(config.get("calibration"), name)
    net, out = [], {}
    for sid, y in histories.items():
        known, tf, xt = config["series"].get(sid), None, None
        x = regressors[sid] if regressors is not None else None
        if known is not None and known["chosen"] == name and long_enough(fc, y):
            tf = _saved(SeriesTransform(fc, missing), known["mean"], known["std"])
            if x is not None:
                xt = _saved(SeriesTransform(exog_fc(fc), missing), known["exog_mean"], known["exog_std"])
        elif known is None or known["chosen"] == name:  # unseen, or now too short: its own history decides
            tf, known = scaler(fc, missing, y, sid), None
            xt = exog_scaler(fc, missing, None if x is None else x[:len(y)], sid)
        if tf is not None:
            net.append((sid, (tf, y, xt, x)))
            continue
        state = known["state"] if known is not None else fit_series(
            y, None, fc.fallback, {}, settings_of(fc, fc.fallback, [fc.fallback], {}, TimeAxis(**config["axis"])))["state"]
        mean, own = forecast_series(state, y, None, None, fc.horizon, fc.levels)
        out[sid] = (mean, own, state["name"])
    means = raw_forecasts(model, fc, [item for _, item in net])
    for (sid, (_, y, _, _)), mean in zip(net, means):
        out[sid] = (mean, bands(mean, interval_scale(y, fc.season or 1), factors), name)
    return out


def _saved(tf: SeriesTransform, mean: list[float], std: list[float]) -> SeriesTransform:
    """``tf`` with the scaling saved for its series."""
    tf.mean_, tf.std_ = mean, std
    return tf


def evaluate(model_ref: ModelRef, split_ref: SplitRef, spec: PipelineSpec, plots_dir: str) -> Evaluation:
    """MASE, sMAPE, RMSE per series and on average next to the seasonal naive; coverage, scaled width
    and MSIS of each interval level; the worst series; a plot of a few."""
    import pandas as pd

    folder = Path(model_ref.path)
    config = trust.read_json(folder / neural.CONFIG_FILE)
    model = load(folder, config)
    fc = ForecastConfig.model_validate(config["forecast"])
    meta = split_ref.train.meta
    exog = config["exogenous"]
    train, id_col, target, _ = as_long(pd.read_parquet(split_ref.train.path), meta, exog)
    tests = dict(groups(as_long(pd.read_parquet(split_ref.test.path), split_ref.test.meta, exog)[0], id_col))
    parts = [(sid, part) for sid, part in groups(train, id_col) if sid in config["series"]]
    ys = {sid: part[target].to_numpy(dtype=float) for sid, part in parts}
    # the test part's regressors are the known future a forecast is given (its target is what is scored)
    xs = {sid: np.concatenate([_x(part, exog), _x(tests[sid], exog)]) for sid, part in parts} if exog else None
    found = forecast_panel(model, config, ys, xs)
    per, season = {}, fc.season or 1
    for sid, y in ys.items():
        truth, (mean, bounds, _) = tests[sid][target].to_numpy(dtype=float), found[sid]
        scale = scores.seasonal_scale(y, season)
        per[sid] = scores.point(truth, mean, scale)
        for lv, (lo, hi) in bounds.items():
            per[sid] |= scores.interval(truth, lo, hi, lv, scale)
        per[sid] |= {f"snaive_{k}": v for k, v in scores.point(truth, scores.seasonal_naive(y, season, len(truth)),
                                                                scale).items()}
    metrics = scores.aggregate(per, fc.levels) | {"series": float(len(per))}
    if metrics.get("snaive_mase"):
        metrics["mase_vs_snaive"] = metrics["mase"] / metrics["snaive_mase"]
    notes = [*split_ref.meta.get("notes", []), *config["notes"],
             f"MASE scaled by each series' in-sample seasonal naive error; mean MASE {metrics.get('mase', math.nan):.3f} "
             f"vs seasonal naive {metrics.get('snaive_mase', math.nan):.3f}"]
    notes += [f"{lv}% intervals (conformal, from the validation part's errors) cover "
              f"{100 * metrics[f'coverage_{lv}']:.1f}% of the test points" for lv in fc.levels if f"coverage_{lv}" in metrics]
    notes += scores.left_out(per)
    plot = _plot({sid: (ys[sid], tests[sid][target].to_numpy(dtype=float), found[sid]) for sid in ys}, per, fc,
                 plots_dir)
    return Evaluation(metrics={k: float(v) for k, v in metrics.items() if math.isfinite(v)}, tables=_tables(config, per, fc),
                      plots={"A few series: forecast, intervals and truth": plot}, notes=notes, intervals={})


def _tables(config: dict[str, Any], per: dict[str, dict[str, float]], fc: ForecastConfig) -> dict[str, list[dict[str, Any]]]:
    agg, levels = scores.aggregate(per, fc.levels), fc.levels
    summary = [{"forecaster": f"{config['model']} (one network over the panel)",
                **{k: round(agg[k], 4) for k in ("mase", "smape", "rmse") if k in agg}},
               {"forecaster": "seasonal naive", **{k: round(agg[f"snaive_{k}"], 4) for k in ("mase", "smape", "rmse")
                                                    if f"snaive_{k}" in agg}}]
    worst = [{"series": sid, "forecaster": config["series"][sid]["chosen"],
              **{k: round(s[k], 4) for k in ("mase", "smape", "rmse", *(f"coverage_{lv}" for lv in levels)) if k in s},
              "seasonal naive mase": round(s.get("snaive_mase", math.nan), 4)} for sid, s in scores.worst(per, 10)]
    intervals = [{"level": f"{lv}%", "coverage": round(agg[f"coverage_{lv}"], 4),
                  "scaled width": round(agg.get(f"width_{lv}", math.nan), 4), "MSIS": round(agg.get(f"msis_{lv}", math.nan), 4)}
                 for lv in levels if f"coverage_{lv}" in agg]
    tables = {"Panel: mean over series": summary, "Worst series (by MASE)": worst, "Prediction intervals": intervals,
              "Forecasters chosen (series)": [{"forecaster": k, "series": v} for k, v in config["choices"].items()]}
    if config.get("calibration"):
        tables["Interval calibration (factors on each series' seasonal naive error, from the validation part)"] = (
            calibration.summary({n: calibration.of_json(config["calibration"], n) for n in config["calibration"]}))
    return tables


def _plot(found: dict[str, Any], per: dict[str, dict[str, float]], fc: ForecastConfig, plots_dir: str) -> str:
    """The two worst series by MASE and two around the median."""
    ranked = scores.worst(per, len(per))
    picks = [sid for sid, _ in ranked[:2]] + [sid for sid, _ in ranked[len(ranked) // 2:len(ranked) // 2 + 2]]
    panels = {}
    for sid in dict.fromkeys(picks):
        y, truth, (mean, bounds, chosen) = found[sid]
        n, shown = len(y), min(len(y), 3 * max(fc.season or 1, 4))
        past, future = list(range(n - shown, n)), list(range(n, n + len(truth)))
        panels[f"{sid}: {chosen}, MASE {per[sid].get('mase', math.nan):.2f}"] = {
            "lines": {"history": (past, y[-shown:].tolist()), "truth": (future, truth.tolist()),
                      "forecast": (future, mean[:len(truth)].tolist())},
            "bands": {f"{lv}%": (future, lo[:len(truth)].tolist(), hi[:len(truth)].tolist())
                      for lv, (lo, hi) in sorted(bounds.items(), reverse=True)}}
    return plots.series_grid_png(panels, Path(plots_dir) / "panel_forecasts.png",
                                 f"Test horizon ({fc.horizon} steps): forecasts with {', '.join(map(str, fc.levels))}% intervals")


def predict(model: Any, config: dict[str, Any], df: Any, source: str) -> Any:
    """Forecast ``horizon`` steps after each series' last value in the long frame ``df``: one row per
    series and step with the bounds; a series the model has not seen is forecast by the network from
    its own history (scaled by its own statistics), with a warning that says so. With exogenous
    regressors the rows after a series' last value carry their future values (empty value column)."""
    import pandas as pd

    fc = ForecastConfig.model_validate(config["forecast"])
    meta = {"values": config["values"], "source": source, "id": config["loader_options"].get("id")}
    df, id_col, target, exog = as_long(df, meta, config["exogenous"])
    histories, regressors, times = {}, {}, {}
    for sid, part in groups(df, id_col):
        history, future = history_and_future(part, sid, target, exog, fc.horizon, source, config["time"])
        histories[sid] = history[target].to_numpy(dtype=float)
        axis = TimeAxis.of(history[config["time"]])
        times[sid] = axis.typed(future[config["time"]]) if exog else (
            axis.after(history[config["time"]], fc.horizon) or [f"+{i + 1}" for i in range(fc.horizon)])
        if exog:
            regressors[sid] = np.concatenate([_x(history, exog), _x(future, exog)])
    unknown = [sid for sid in histories if sid not in config["series"]]
    if unknown:
        warn(f"{len(unknown)} series of '{source}' are not in the model ({', '.join(unknown[:5])}"
             f"{' ...' if len(unknown) > 5 else ''}): the global network forecasts each from its own history, scaled "
             f"by that history's statistics ({fc.fallback} where it is too short).")
    found = forecast_panel(model, config, histories, regressors if exog else None)
    rows = []
    for sid in histories:
        mean, bounds, _ = found[sid]
        for i in range(fc.horizon):
            row = {id_col: sid, config["time"]: times[sid][i], "step": i + 1, "prediction": mean[i]}
            for lv in fc.levels:
                lo, hi = bounds.get(lv, (np.full(fc.horizon, np.nan),) * 2)
                row |= {f"lower_{lv}": lo[i], f"upper_{lv}": hi[i]}
            rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- a candidate of a panel's auto


def backtest(spec: PipelineSpec, name: str, fc: ForecastConfig, ys: dict[str, np.ndarray],
             xs: dict[str, np.ndarray | None], exog: list[str], phase_one: dict[str, dict[str, Any]],
             settings: dict[str, Any], cache_dir: str, key: Any, source: str,
             log: Any = print) -> dict[str, list[tuple[int, np.ndarray]]]:
    """The network ``name`` as a candidate of ``auto`` on a panel, at the statistical candidates' own
    backtest origins (``phase_one[sid]["cuts"]``, oldest first): at the k-th latest origin of every
    series one network is trained over the panel cut there (each series' history up to its k-th latest
    origin, epochs chosen on the horizon before it, :func:`train`: nothing at or after the origin is
    seen) and forecasts each series from its cut. Returns each series' (origin, raw forecast) pairs,
    oldest first; :func:`score` turns them into its backtest entries."""
    h, deepest = settings["horizon"], max((len(r["cuts"]) for r in phase_one.values()), default=0)
    runs: dict[str, list[tuple[int, np.ndarray]]] = {sid: [] for sid in ys}
    for k in range(deepest):
        ends = {sid: len(ys[sid]) - h - k * _step(phase_one[sid]["season"], settings) for sid in ys}
        cut_ys = {sid: ys[sid][:e] for sid, e in ends.items() if e > 0}
        cut_xs = {sid: None if xs[sid] is None else xs[sid][:ends[sid]] for sid in cut_ys}
        try:
            done = train(spec, name, fc, cut_ys, cut_xs, exog, cache_dir, [key, "backtest", k], None, source)
        except DataError:
            break  # no series long enough at this origin: none earlier either
        items = [(sid, e) for sid, e in ends.items() if e in phase_one[sid]["cuts"] and sid in done.w["tfs"]]
        means = raw_forecasts(done.model, fc, [
            (done.w["tfs"][sid][0], ys[sid][:e], done.w["tfs"][sid][1], None if xs[sid] is None else xs[sid][:e + h])
            for sid, e in items])
        for (sid, e), mean in zip(items, means):
            runs[sid].insert(0, (e, mean))
        log(f"backtest of {name}: origin {k + 1} of up to {deepest} (the {k + 1}. latest of each series): "
            f"{len(items)} series, best epoch {done.epochs}")
    return runs


def _step(season: int, settings: dict[str, Any]) -> int:
    h = settings["horizon"]
    return settings["origin_step"] or (min(season, h) if season >= 2 else h)


def score(name: str, fc: ForecastConfig, y: np.ndarray, runs: list[tuple[int, np.ndarray]], result: dict[str, Any],
          settings: dict[str, Any]) -> None:
    """Add the network's backtest of one series (``runs``: its (origin, raw forecast) pairs) to the
    series' phase-one ``result`` the way :func:`panel.backtest_series` scores a statistical candidate:
    the mean MAE over the origins (in the series' modelled scale, logged under ``forecast.transform:
    log``), scaled by its mean absolute step, per origin, and the interval ratios against a half-width
    of the series' seasonal naive error at the origin (the unit :func:`bands` scales at forecast time).
    A series whose earliest origins were too short for the network (its difference, half a lookback,
    and the horizon twice for a window and its validation) compares every candidate on the latest
    origins the network forecast, two at least (its scaled errors trimmed to those; the interval
    ratios keep every origin); with fewer, the network is not its candidate."""
    from trainflow.tasks.forecast.panel import fill

    h, log, cuts, got = settings["horizon"], settings["log"], result["cuts"], [o for o, _ in runs]
    if not cuts or len(got) < min(2, len(cuts)) or got != cuts[len(cuts) - len(got):]:
        return
    level, errs, truths, outs = fill(y, log), [], [], []
    for o, mean in runs:
        with np.errstate(invalid="ignore", divide="ignore"):
            modelled = np.log(mean) if log else mean
        truth = level[o:o + h]
        errs.append(float(np.mean(np.abs(truth - modelled[:len(truth)]))))
        if result["season"] < 2 or o >= 2 * result["season"] + 2:  # as the statistical candidates' calibration
            unit = interval_scale(y[:o], fc.season or 1)
            truths.append(y[o:o + h])
            outs.append((mean, {lv: (mean - unit, mean + unit) for lv in settings["levels"]}))
    if not all(math.isfinite(e) for e in errs):
        return
    scale = float(np.mean(np.abs(np.diff(level)))) or 1.0
    if len(got) < len(cuts):
        for other, per in result["origins"].items():
            result["origins"][other] = per[len(per) - len(got):]
            result["scaled"][other] = float(np.mean(result["origins"][other]))
            result["backtest"][other] = result["scaled"][other] * scale
    result["scaled"][name], result["backtest"][name] = float(np.mean(errs)) / scale, float(np.mean(errs))
    result["origins"][name] = [e / scale for e in errs]
    result["ratios"][name] = calibration.ratios(truths, outs, settings["levels"])
