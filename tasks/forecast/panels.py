"""The forecast modality's stages for a panel (``data.id``) or a series with exogenous regressors.

    validate (GX on a per-series summary) -> split (by time: each series' last ``horizon`` steps)
    -> fit (per series, in parallel: backtest choice, fallback for short series) -> evaluate (MASE,
    sMAPE, RMSE per series and on average, interval coverage, width and MSIS, the worst series, a
    plot of a few) -> predict (``horizon`` steps after each series' last point, with bounds)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trainflow import resources, trust
from trainflow.alerts import warn
from trainflow.errors import DataError
from trainflow.cache_keys import cache_key, model_key
from trainflow.refs import DataRef, Evaluation, ModelRef, SplitRef, file_digest, save_parquet
from trainflow.tasks.common import neural, plots
from trainflow.tasks.common.neural import CONFIG_FILE
from trainflow.tasks.common.validate import Check, run_expectations
from trainflow.tasks.forecast import calibration, scores, statistical
from trainflow.tasks.forecast.config import ForecastConfig
from trainflow.tasks.forecast.models import save_json_model
from trainflow.tasks.forecast.panel import (SWITCH_MARGIN, Progress, backtest_series, champion,
                                            check_series_states, choices, combination_of, fill, fit_series,
                                            forecast_series,
                                            is_candidate, is_network_candidate, pick, ranking, run_chunks,
                                            settings_of, switching_helps, too_short)
from trainflow.tasks.forecast.panel_data import as_long, drop_short, groups, history_and_future, split_frames
from trainflow.tasks.forecast.timeaxis import TimeAxis

if TYPE_CHECKING:
    from trainflow.spec import PipelineSpec


#: ``auto``'s candidates in a panel unless model.candidates names them. ARIMA's order search costs
#: about five times ETS's per series (0.75 s vs 0.19 s CPU on an M1 monthly series), but the
#: combination (the median of damped ETS, Theta and ARIMA, from their backtest runs at no extra
#: cost) beat every single model on the first 150 series of M1 monthly and tourism quarterly. The
#: means of subsets of them (panel.MEAN_COMBINATIONS) are left for model.candidates to name: on the
#: two development panels they only added selection noise (M1 1.085 against 1.086; tourism 1.547
#: against 1.491, a mean within 0.5 % of the median triple on the backtest and worse on test). The
#: global network (``global_mlp``: one over the panel, backtested with one network per origin) is
#: left for model.candidates to name too: it ranked first on the backtest of the first 150 series of
#: both (latest origin: M1 1.633 against Theta's 1.663, tourism 1.410 against the combination's
#: 1.552) and was made a default on that, but on tourism's test it was chosen for every series and
#: scored 1.672 against damped ETS's 1.552 (M1: 1.110 against 1.149); taken out again after seeing
#: those test figures (benchmarks/RESULTS.md)
PANEL_CANDIDATES = ("naive", "seasonal_naive", "drift", "ets", "theta", "arima", "combination")
#: candidates' options in a panel unless model.options gives them: ETS with a damped trend (an
#: undamped trend extrapolated 18 months overshoots; on the first 40 series of M1 monthly and of
#: tourism quarterly AICc's own pick of trend lost to the damped one)
PANEL_OPTIONS = {"ets": {"trend": "add_damped"}}


def check_panel_model(config: Any) -> str | None:
    """What is wrong with a saved panel model read from a file (None when it is usable)."""
    try:
        ForecastConfig.model_validate(config["forecast"])
        TimeAxis(**config["axis"])
        assert isinstance(config["id"], str) and isinstance(config["target"], str)
        assert all(isinstance(c, str) for c in [*config["exogenous"], *config["values"]])
        assert is_candidate(config["chosen"]) and isinstance(config["options"], dict)
    except (KeyError, TypeError, ValueError, AssertionError) as exc:
        return f"not a panel forecaster's config ({type(exc).__name__}: {exc})"
    from trainflow.tasks.forecast.global_panel import check_network

    net = config.get("network")
    if net is not None:
        problem = check_network(net, config["exogenous"])
        if problem:
            return problem
        if net["forecast"]["horizon"] != config["forecast"]["horizon"]:
            return "a network whose horizon is not the panel's"
    saved = config.get("calibration", {})
    named = tuple(n for n in (saved if isinstance(saved, dict) else {}) if combination_of(n))
    own = (net["model"],) if net is not None else ()
    return (calibration.check(saved, config["forecast"]["horizon"], (*statistical.NAMES, *named, *own))
            or check_series_states(config["series"], own[0] if own else None, len(config["exogenous"])))


def is_panel(meta: dict[str, Any], fc: ForecastConfig) -> bool:
    """Whether the data goes the panel way: a series column, or exogenous regressors."""
    return bool(meta.get("id")) or bool(fc.exogenous)


def _frame(path: str, meta: dict[str, Any], fc: ForecastConfig) -> tuple[Any, str, str, list[str]]:
    import pandas as pd

    return as_long(pd.read_parquet(path), meta, fc.exogenous)


def validate(ref: DataRef, spec: PipelineSpec, docs_dir: str | None) -> dict[str, Any]:
    """Great Expectations on a per-series summary: length, missing share, missing regressors."""
    import pandas as pd

    fc = spec.forecast
    df, id_col, target, exog = _frame(ref.path, ref.meta, fc)
    df, _ = drop_short(df, id_col, fc.horizon, ref.meta["source"], fc.max_short_share)  # (the split notes them)
    rows = []
    for sid, part in groups(df, id_col):
        v = part[target].to_numpy(dtype=float)
        nan = float(np.isnan(v).mean())
        rows.append({"series": sid, "length": len(v), "nan_share": nan,
                     "exogenous_missing": int(part[exog].isna().to_numpy().sum()) if exog else 0,
                     "min": float(np.nanmin(v)) if nan < 1 else float("nan")})
    def which(bad: Any) -> str:  # the series a check fails on, for its message (GX reports values, not rows)
        named = [r["series"] for r in rows if bad(r)]
        return f" (series {', '.join(named[:10])}{' ...' if len(named) > 10 else ''})" if named else ""

    checks = [
        Check("ExpectColumnValuesToBeBetween", {"column": "nan_share", "max_value": 1.0, "strict_max": True},
              "a series with no values at all (all NaN) cannot be forecast" + which(lambda r: r["nan_share"] >= 1)),
        Check("ExpectColumnValuesToBeBetween", {"column": "length", "min_value": spec.validation.min_rows},
              f"validation.min_rows is {spec.validation.min_rows} (steps per series)"
              + which(lambda r: r["length"] < spec.validation.min_rows)),
        Check("ExpectColumnValuesToBeInSet", {"column": "exogenous_missing", "value_set": [0]},
              f"the exogenous regressors ({', '.join(exog) or 'none'}) need a value at every step"
              + which(lambda r: r["exogenous_missing"] > 0)),
    ]
    if fc.transform == "log":
        checks.append(Check("ExpectColumnValuesToBeBetween", {"column": "min", "min_value": 0, "strict_min": True},
                            "forecast.transform is 'log', which needs values > 0" + which(lambda r: r["min"] <= 0)))
    checks += [Check(e.type, dict(e.kwargs), "validation.expectations") for e in spec.validation.expectations]
    return run_expectations(pd.DataFrame(rows), checks, docs_dir, suite=spec.name).as_dict()


def split(ref: DataRef, spec: PipelineSpec, cache_dir: str) -> SplitRef:
    """By time within each series: its last ``forecast.horizon`` steps are its test."""
    fc = spec.forecast
    df, id_col, target, exog = _frame(ref.path, ref.meta, fc)
    df, dropped = drop_short(df, id_col, fc.horizon, ref.meta["source"], fc.max_short_share)
    train, test = split_frames(df, id_col, fc.horizon)
    folder = Path(cache_dir) / "splits" / cache_key(spec, data=ref.digest, horizon=fc.horizon, panel=True)[:16]
    folder.mkdir(parents=True, exist_ok=True)
    refs = {}
    for name, part in (("train", train), ("test", test)):
        path = folder / f"{name}.parquet"
        save_parquet(path, part.reset_index(drop=True))  # atomically: concurrent runs may share this split
        refs[name] = DataRef(path=str(path), digest=file_digest(path), modality="forecast",
                             meta={**ref.meta, "id": id_col, "rows": len(part), "target": target, "exogenous": exog})
    n = df[id_col].nunique()
    note = (f"split by time: the last {fc.horizon} steps of each of the {n} series are its test "
            f"({len(train)} training rows, {len(test)} test rows)")
    return SplitRef(train=refs["train"], test=refs["test"], meta={"notes": [note, *([dropped] if dropped else [])]})


def _candidates(spec: PipelineSpec) -> tuple[list[str], dict[str, dict[str, Any]], list[str]]:
    """(statistical candidates, their options, networks left out) of the spec's model or ``auto``."""
    comp, options = spec.model.resolve("model", task="forecasting")
    if spec.model.name != "auto":
        return [spec.model.name], {spec.model.name: options.model_dump(mode="json")}, []
    given = options.candidates if "candidates" in options.model_fields_set else PANEL_CANDIDATES
    networks = list(dict.fromkeys(n for n in given if is_network_candidate(n)))
    names = list(dict.fromkeys(n for n in given if is_candidate(n) and n not in networks[1:]))
    chosen = {n: dict(options.options.get(n, PANEL_OPTIONS.get(n, {}))) for n in names
              if not combination_of(n) and n not in networks}
    if "combination" in chosen:
        chosen["combination"] = _combination_options(chosen)
    for name in names:
        if combination_of(name):
            (members, how) = combination_of(name)
            chosen[name] = {"members": members, "how": how,
                            "options": {m: chosen.get(m, PANEL_OPTIONS.get(m, {})) for m in members}}
    return names, chosen, [n for n in given if n not in names]


def _combination_options(chosen: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The combination's options, its members' options those of the same candidates unless given:
    the backtest then combines the members' runs instead of repeating them."""
    config = statistical.CombinationConfig.model_validate(chosen["combination"])
    inner = dict(config.options)
    if "options" not in config.model_fields_set:
        inner |= {m: chosen[m] for m in config.members if m in chosen}
    return config.model_dump(mode="json") | {"options": inner}


def _phase_one(spec: PipelineSpec, series: dict[str, Any], settings: dict[str, Any], key: str) -> dict[str, Any]:
    """Every series' backtest: of ``auto``'s candidates, or (for interval calibration) of the spec's
    model and the fallback; {} when neither is asked for."""
    if spec.model.name == "auto":
        names = settings["candidates"]
    elif spec.forecast.calibrate:
        names = list(dict.fromkeys([spec.model.name, spec.forecast.fallback]))
    else:
        return {}
    return run_chunks(list(series.items()), {**settings, "candidates": names}, backtest_series, resources.current(),
                      Progress("backtest", key))


def _interval(interval: list[float] | None) -> str:
    """The note's words for the paired interval of the switches' mean difference."""
    return ("no interval" if interval is None
            else f"difference 95% interval {interval[0]:+.3f} to {interval[1]:+.3f}")


def _calibrate(one: dict[str, Any], fc: ForecastConfig) -> dict[str, dict[int, list[float]]]:
    """Each backtested forecaster's interval factors over the panel's series (none without calibration)."""
    if not fc.calibrate:
        return {}
    names = dict.fromkeys(n for r in one.values() for n in r["ratios"])
    found = {n: calibration.factors([r["ratios"][n] for r in one.values() if n in r["ratios"]], fc.levels, fc.horizon)
             for n in names}
    return {n: f for n, f in found.items() if f}


def fit(split_ref: SplitRef, spec: PipelineSpec, cache_dir: str) -> ModelRef:
    """One forecaster per series, chosen by backtest (``auto``) and fitted on its training part, in
    parallel over chunks of series (``resources.threads`` processes); saved as one JSON file."""
    from trainflow.tasks.common.publish import artifact_key

    fc, meta = spec.forecast, split_ref.train.meta
    train, id_col, target, exog = _frame(split_ref.train.path, meta, fc)
    names, options, left_out = _candidates(spec)
    net = next((n for n in names if is_network_candidate(n)), None)
    parts = groups(train, id_col)
    axis = TimeAxis.of(max(parts, key=lambda p: len(p[1]))[1][meta["time"]])
    settings = settings_of(fc, spec.model.name, [n for n in names if n != net], options, axis)
    series = {sid: (part[target].to_numpy(dtype=float), _x(part, exog)) for sid, part in parts}
    key, threads = f"{artifact_key(spec.name)}-series", resources.current()
    picks: dict[str, Any] = {sid: (spec.model.name, {}) for sid in series}
    best, one = None, _phase_one(spec, series, settings, key)
    glob = _Global(spec, net, series, exog, axis, model_key(split_ref, spec), cache_dir, meta["source"]) if net else None
    if glob:
        glob.backtest(one, settings)
    if spec.model.name == "auto":
        best, (switch, *rule) = champion(one, names), switching_helps(one, names)
        picks = {sid: (pick(one[sid], best, switch), one[sid]["forms"]) for sid in series}
    factors = _calibrate(one, fc)
    on_net = [sid for sid in series if net and picks[sid][0] == net]
    fitted = run_chunks([(sid, (*series[sid], *picks[sid])) for sid in series if sid not in on_net], settings,
                        fit_series, threads, Progress("fit", key))
    if on_net:
        fitted |= glob.fit(on_net, one, settings)
    fitted = {sid: fitted[sid] | ({"backtest": one[sid]["backtest"]} if best else {}) for sid, _ in parts}
    counts = choices(fitted)
    notes = [f"{len(fitted)} series, one forecaster each ({spec.model.name}); chosen: "
             + ", ".join(f"{name} {k}" for name, k in counts.items())]
    if best:
        ranked = ranking(one, names)
        shown = ", ".join(f"{n} {math.exp(v) if 'seasonal_naive' in names else v:.3f}" for n, v in list(ranked.items())[:5])
        measure = ("the geometric mean over the series of its MAE relative to the seasonal naive's"
                   if "seasonal_naive" in names else "the mean over the series of its MAE scaled by the series' mean step")
        notes.append(f"auto: {best} has the lowest backtest error over the panel ({measure}, at up to "
                     f"{settings['origins']} origins; {shown}); "
                     + (f"a series takes another candidate when its own backtest error is lower by "
                        f"more than {SWITCH_MARGIN:.0%}" if switch else "every series keeps it")
                     + f" (chosen on the backtest: with the last origin held out, per-series switches scored "
                       f"{rule[0]:.3f} vs {rule[1]:.3f} for the champion, {_interval(rule[2])}; they are "
                       f"kept only when the whole interval is below 0)")
    if glob:
        notes += glob.notes
    if left_out:
        notes.append(f"not a candidate: {', '.join(left_out)} (a panel's auto takes one network, trained over "
                     f"every series: the first named, {net})")
    fell = {sid: r["notes"] for sid, r in fitted.items() if r["notes"]}
    if fell:
        shown = "; ".join(f"{sid}: {n[0]}" for sid, n in list(fell.items())[:5])
        notes.append(f"{len(fell)} series fell back to {fc.fallback}: {shown}{' ...' if len(fell) > 5 else ''}")
    notes.append(_calibration_note(fc, factors, counts) + _held_out_note(one, fc, next(iter(counts))))
    if exog:
        notes.append(f"exogenous regressors {', '.join(exog)}: used by the ARIMA family (regression with ARIMA "
                     f"errors) and ETS (least squares, then ETS on the rest); Theta ignores them")
    config = {"kind": "forecast", "task": "forecasting", "panel": True, "model": spec.model.name,
              "chosen": next(iter(counts)), "forecast": fc.model_dump(mode="json"), "id": id_col,
              "time": meta["time"], "target": target, "exogenous": exog, "values": meta["values"],
              "loader_options": spec.data.options(), "candidates": names, "options": options,
              "axis": axis.__dict__, "choices": counts, "series": fitted, "notes": notes,
              "calibration": calibration.as_json(factors)}
    folder = Path(cache_dir) / "models" / model_key(split_ref, spec)[:16]
    if glob and glob.model is not None:
        config["network"] = glob.saved()
        neural.save_network(folder, glob.model, config)
    else:
        save_json_model(folder, config)
    return ModelRef.of_folder(folder, neural.WEIGHTS_FILE if "network" in config else CONFIG_FILE, "forecast", {
        "steps": notes[:1], "history": [], "notes": notes, "chosen": config["chosen"], "selection": None})


class _Global:
    """``auto``'s network candidate ``name`` on a panel: backtested at the statistical candidates'
    origins (one network per origin over the panel cut there, :func:`global_panel.backtest`), then,
    when some series chose it, one network trained over every series' training part as a global
    model is (:func:`global_panel.train`), forecasting those series."""

    def __init__(self, spec: PipelineSpec, name: str, series: dict[str, Any], exog: list[str], axis: TimeAxis,
                 key: str, cache_dir: str, source: str):
        from trainflow.tasks.forecast.global_net import resolve

        self.spec, self.name, self.exog, self.key, self.cache_dir, self.source = spec, name, exog, key, cache_dir, source
        self.ys = {sid: y for sid, (y, _) in series.items()}
        self.xs = {sid: x for sid, (_, x) in series.items()}
        self.fc, self.notes = resolve(spec.forecast, axis, max(self.ys.values(), key=len))
        self.fc = self.fc.model_copy(update={"levels": list(spec.forecast.levels)})
        self.model, self.done = None, None

    def backtest(self, one: dict[str, Any], settings: dict[str, Any]) -> None:
        """Add the network's backtest to every series' phase-one result in ``one``."""
        from trainflow.tasks.forecast import global_panel

        runs = global_panel.backtest(self.spec, self.name, self.fc, self.ys, self.xs, self.exog, one, settings,
                                     self.cache_dir, self.key, self.source)
        for sid, r in one.items():
            global_panel.score(self.name, self.fc, self.ys[sid], runs[sid], r, settings)
        scored = sum(self.name in r["scaled"] for r in one.values())
        self.notes = [f"{self.name} (a candidate over the panel): backtested at the same origins, one network per "
                      f"origin trained over every series' history before it (epochs chosen on the horizon before "
                      f"the origin); scored on {scored} of {len(one)} series; {self.notes[0]}"]

    def fit(self, chosen: list[str], one: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
        """The network over every series' training part, and the records of the series ``chosen`` for it
        (their scaling and season; one too short for it falls back to ``forecast.fallback``)."""
        from trainflow.tasks.forecast import global_panel

        self.done = global_panel.train(self.spec, self.name, self.fc, self.ys, self.xs, self.exog, self.cache_dir,
                                       [self.key, "final"], None, self.source)
        self.model, out = self.done.model, {}
        for sid in chosen:
            if sid not in self.done.w["tfs"]:
                out[sid] = fit_series(*(self.ys[sid], self.xs[sid]), None, {}, settings)
                continue
            tf, xt = self.done.w["tfs"][sid]
            out[sid] = {"chosen": self.name, "season": one[sid]["season"], "mean": tf.mean_, "std": tf.std_,
                        **({"exog_mean": xt.mean_, "exog_std": xt.std_} if xt is not None else {}), "notes": []}
        self.notes.append(f"{self.name}: one network over all {len(self.done.w['tfs'])} series' training parts "
                          f"({self.done.ensemble} seed(s), {self.done.epochs} epochs, chosen on each series' last "
                          f"{self.fc.horizon} training steps) forecasts the {len(chosen)} series that chose it")
        return out

    def saved(self) -> dict[str, Any]:
        """The ``network`` part of the saved config (checked on load by :func:`global_panel.check_network`)."""
        from trainflow.tasks.forecast.models import candidate_config

        _, options = candidate_config(self.spec, self.name)
        return {"model": self.name, "options": options.model_dump(mode="json"), "build": self.done.build,
                "ensemble": self.done.ensemble, "forecast": self.fc.model_dump(mode="json"),
                "missing": self.spec.preprocess.sequence.missing}


def _held_out_note(one: dict[str, Any], fc: ForecastConfig, name: str) -> str:
    """The most chosen forecaster's calibration checked on the backtest: its factors from the earlier
    origins against the latest origin's errors."""
    found = calibration.held_out([r["ratios"][name] for r in one.values() if name in r["ratios"]], fc.levels,
                                 fc.horizon) if fc.calibrate else {}
    if not found:
        return ""
    return (f"; checked on the backtest, {name}'s factors from all origins but the latest cover "
            + " / ".join(f"{100 * v:.1f}%" for _, v in sorted(found.items())) + " of the latest origin's errors at "
            + " / ".join(f"{lv}%" for lv in sorted(found)))


def _calibration_note(fc: ForecastConfig, factors: dict[str, dict[int, list[float]]], counts: dict[str, int]) -> str:
    if not fc.calibrate:
        return "intervals: each statistical model's own (forecast.calibrate is false)"
    scaled = ", ".join(f"{n} x{np.mean(f[lv]):.2f}" for n, f in factors.items() if n in counts for lv in sorted(f)[:1])
    own = [n for n in counts if n not in factors]
    return (f"intervals: each model's own, half-widths scaled per step to cover their level of the backtest errors "
            f"pooled over the panel's series (conformal; mean factor at {min(fc.levels, default=0)}%: {scaled or 'none'})"
            + (f"; not calibrated (too few backtest errors): {', '.join(own)}" if own else ""))


# ---------------------------------------------------------------- forecasting a series, scoring it


def network_forecasts(model: Any, config: dict[str, Any], histories: dict[str, np.ndarray],
                      regressors: dict[str, np.ndarray] | None, unknown: bool = False) -> dict[str, dict[str, Any]]:
    """The saved network's forecast of each history of a series that chose it (and, with ``unknown``,
    of a series the model has not seen: scaled by its own history), as a state :func:`forecast_series`
    returns as it is; {} when the model holds no network."""
    from trainflow.tasks.forecast.global_panel import forecast_panel

    net = config.get("network")
    if model is None or not net:
        return {}
    name = net["model"]
    mine = {sid: y for sid, y in histories.items()
            if config["series"].get(sid, {}).get("chosen") == name or (unknown and sid not in config["series"])}
    if not mine:
        return {}
    sub = {"forecast": net["forecast"], "model": name, "missing": net["missing"], "axis": config["axis"],
           "series": {sid: config["series"][sid] for sid in mine if sid in config["series"]},
           "calibration": {name: config.get("calibration", {}).get(name, {})}}
    found = forecast_panel(model, sub, mine, None if regressors is None else {sid: regressors[sid] for sid in mine})
    return {sid: {"name": chosen, "key": chosen, "season": config["series"].get(sid, {}).get("season", 1),
                  "log": False, "given": (mean, bands)} for sid, (mean, bands, chosen) in found.items()}


def keyed(record: dict[str, Any]) -> dict[str, Any]:
    """A fitted series' state with the candidate it was chosen as (``key``: a named combination's
    calibration is its own, not that of every ``combination``); a series that chose the network has no
    state of its own (:func:`network_forecasts` forecasts it)."""
    if "state" not in record:
        return {"name": record["chosen"], "key": record["chosen"], "season": record["season"], "log": False}
    return {**record["state"], "key": record["chosen"]}


def score_series(state: dict[str, Any], y: np.ndarray, truth: np.ndarray, x: np.ndarray | None,
                 future: np.ndarray | None, settings: dict[str, Any]) -> dict[str, Any]:
    """One series' test forecast, bounds and scores next to the seasonal naive's."""
    h, levels = len(truth), settings["levels"]
    mean, bands = forecast_series(state, y, x, future, h, levels, settings.get("calibration"))
    scale = scores.seasonal_scale(y, state["season"])
    found = scores.point(truth, mean, scale)
    for lv, (lo, hi) in bands.items():
        found |= scores.interval(truth, lo, hi, lv, scale)
    naive = scores.seasonal_naive(fill(y, False), state["season"], h)
    found |= {f"snaive_{k}": v for k, v in scores.point(truth, naive, scale).items()}
    return {"scores": found, "mean": mean.tolist(), "bands": {lv: (lo.tolist(), hi.tolist()) for lv, (lo, hi) in bands.items()}}


def evaluate(model_ref: ModelRef, split_ref: SplitRef, spec: PipelineSpec, plots_dir: str) -> Evaluation:
    """MASE, sMAPE, RMSE per series and on average next to the seasonal naive; coverage, scaled width
    and MSIS of each interval level; the worst series; a plot of a few."""
    config = trust.read_json(Path(model_ref.path) / CONFIG_FILE)
    problem = check_panel_model(config)
    if problem:
        raise trust.damaged(Path(model_ref.path) / CONFIG_FILE, ValueError(problem))
    from trainflow.tasks.forecast.global_panel import load_network

    model = load_network(model_ref.path, config)
    fc = ForecastConfig.model_validate(config["forecast"])
    train, id_col, target, exog = _frame(split_ref.train.path, split_ref.train.meta, fc)
    test = _frame(split_ref.test.path, split_ref.test.meta, fc)[0]
    tests = dict(groups(test, id_col))
    known = [(sid, part) for sid, part in groups(train, id_col) if sid in config["series"]]
    # the test part's regressors are the known future a forecast is given (its target is what is scored)
    given = network_forecasts(model, config, {sid: part[target].to_numpy(dtype=float) for sid, part in known},
                              {sid: np.concatenate([_x(part, exog), _x(tests[sid], exog)]) for sid, part in known}
                              if exog else None)
    items = [(sid, (given.get(sid) or keyed(config["series"][sid]), part[target].to_numpy(dtype=float),
                    tests[sid][target].to_numpy(dtype=float), _x(part, exog), _x(tests[sid], exog)))
             for sid, part in known]
    results = run_chunks(items, {"levels": fc.levels, "calibration": config.get("calibration")}, score_series, resources.current(), Progress("evaluate", None))
    per = {sid: r["scores"] for sid, r in results.items()}
    metrics = scores.aggregate(per, fc.levels)
    metrics["series"] = float(len(per))
    if metrics.get("snaive_mase"):
        metrics["mase_vs_snaive"] = metrics["mase"] / metrics["snaive_mase"]
    tables = _tables(config, per, fc.levels)
    charts = {"A few series: forecast, intervals and truth": _plot(items, results, config, fc, plots_dir)}
    notes = [*split_ref.meta.get("notes", []),
             f"MASE scaled by each series' in-sample seasonal naive error; mean MASE {metrics.get('mase', math.nan):.3f} "
             f"vs seasonal naive {metrics.get('snaive_mase', math.nan):.3f}"]
    notes += [f"{lv}% intervals ({_kind(config)}) cover {100 * metrics[f'coverage_{lv}']:.1f}% of the test points"
              for lv in fc.levels if f"coverage_{lv}" in metrics]
    notes += scores.left_out(per)
    return Evaluation(metrics={k: float(v) for k, v in metrics.items() if math.isfinite(v)}, plots=charts,
                      tables=tables, notes=notes, intervals={})


def _x(part: Any, exog: list[str]) -> np.ndarray | None:
    return part[exog].to_numpy(dtype=float) if exog else None


def _kind(config: dict[str, Any]) -> str:
    if config.get("calibration"):
        return "each model's own, calibrated on the backtest"
    return "each statistical model's own"


def _tables(config: dict[str, Any], per: dict[str, dict[str, float]], levels: list[int]) -> dict[str, list[dict[str, Any]]]:
    agg = scores.aggregate(per, levels)
    summary = [{"forecaster": f"{config['model']} (per series)", **{k: round(agg[k], 4) for k in ("mase", "smape", "rmse") if k in agg}},
               {"forecaster": "seasonal naive", **{k: round(agg[f"snaive_{k}"], 4) for k in ("mase", "smape", "rmse")
                                                    if f"snaive_{k}" in agg}}]
    worst = [{"series": sid, "forecaster": config["series"][sid]["chosen"],
              **{k: round(s[k], 4) for k in ("mase", "smape", "rmse", *(f"coverage_{lv}" for lv in levels)) if k in s},
              "seasonal naive mase": round(s.get("snaive_mase", math.nan), 4)}
             for sid, s in scores.worst(per, 10)]
    intervals = [{"level": f"{lv}%", "coverage": round(agg[f"coverage_{lv}"], 4), "scaled width": round(agg.get(f"width_{lv}", math.nan), 4),
                  "MSIS": round(agg.get(f"msis_{lv}", math.nan), 4)} for lv in levels if f"coverage_{lv}" in agg]
    table = {"Panel: mean over series": summary, "Worst series (by MASE)": worst, "Prediction intervals": intervals}
    table["Forecasters chosen (series)"] = [{"forecaster": k, "series": v} for k, v in config["choices"].items()]
    if config.get("calibration"):
        table["Interval calibration (factors on the models' half-widths, from the backtest)"] = calibration.summary(
            {n: calibration.of_json(config["calibration"], n) for n in config["calibration"]})
    return table


def _plot(items: list[Any], results: dict[str, Any], config: dict[str, Any], fc: ForecastConfig, plots_dir: str) -> str:
    """The two worst series by MASE and two around the median."""
    ranked = scores.worst({sid: r["scores"] for sid, r in results.items()}, len(results))
    picks = [sid for sid, _ in ranked[:2]] + [sid for sid, _ in ranked[len(ranked) // 2:len(ranked) // 2 + 2]]
    by_id = {sid: args for sid, args in items}
    panels = {}
    for sid in dict.fromkeys(picks):
        _, y, truth, _, _ = by_id[sid]
        n, h = len(y), len(truth)
        shown = min(n, 3 * max(by_id[sid][0]["season"], 4))
        past, future = list(range(n - shown, n)), list(range(n, n + h))
        r = results[sid]
        panels[f"{sid}: {config['series'][sid]['chosen']}, MASE {r['scores'].get('mase', math.nan):.2f}"] = {
            "lines": {"history": (past, y[-shown:].tolist()), "truth": (future, truth.tolist()),
                      "forecast": (future, r["mean"])},
            "bands": {f"{lv}%": (future, *r["bands"][lv]) for lv in sorted(r["bands"], reverse=True)}}
    return plots.series_grid_png(panels, Path(plots_dir) / "panel_forecasts.png",
                                 f"Test horizon ({fc.horizon} steps): forecasts with {', '.join(map(str, fc.levels))}% intervals")


# ---------------------------------------------------------------- predict


def predict(config: dict[str, Any], df: Any, source: str, model: Any = None) -> Any:
    """Forecast ``horizon`` steps after each series' last value in the long frame ``df`` (a history
    file read like the training data): one row per series and step with the bounds. With exogenous
    regressors the rows after a series' last value carry their future values (empty value column)."""
    import pandas as pd

    fc = ForecastConfig.model_validate(config["forecast"])
    meta = {"values": config["values"], "source": source, "id": config["loader_options"].get("id")}
    df, id_col, target, exog = as_long(df, meta, fc.exogenous)
    items, unknown, times = [], [], {}
    settings = settings_of(fc, config["chosen"], [config["chosen"]], config["options"], TimeAxis(**config["axis"]))
    for sid, part in groups(df, id_col):
        history, future = history_and_future(part, sid, target, exog, fc.horizon, source, config["time"])
        known = config["series"].get(sid)
        if known is None:
            unknown.append(sid)
        axis = TimeAxis.of(history[config["time"]])
        times[sid] = axis.typed(future[config["time"]]) if exog else (
            axis.after(history[config["time"]], fc.horizon) or [f"+{i + 1}" for i in range(fc.horizon)])
        items.append((sid, (None if known is None else keyed(known), history[target].to_numpy(dtype=float),
                            _x(history, exog), _x(future, exog), sid)))
    net = (config.get("network") or {}).get("model")
    if unknown:
        warn(f"{len(unknown)} series of '{source}' are not in the model ({', '.join(unknown[:5])}"
             f"{' ...' if len(unknown) > 5 else ''}): each is forecast by {config['chosen']}, the panel's most chosen "
             + ("forecaster, the network scaling each by its own history." if config["chosen"] == net else
                "forecaster, fitted on its own history."))
    given = network_forecasts(model, config, {sid: args[1] for sid, args in items},
                              {sid: np.concatenate([args[2], args[3]]) for sid, args in items} if exog else None,
                              unknown=config["chosen"] == net)
    items = [(sid, (given[sid], *args[1:]) if sid in given else args) for sid, args in items]
    results = run_chunks(items, {**settings, "calibration": config.get("calibration")}, _predict_series, resources.current(), lambda *_: None)
    fell = [f"'{sid}' ({results[sid][2]})" for sid, _ in items if results[sid][2]]
    if fell:
        warn(f"{len(fell)} series of '{source}' are forecast by {fc.fallback} "
             f"(forecast.fallback) fitted on their own history, not by their saved model: {'; '.join(fell[:5])}"
             f"{' ...' if len(fell) > 5 else ''}")
    rows = []
    for sid, _ in items:
        mean, bands, _ = results[sid]
        for i in range(fc.horizon):
            row = {id_col: sid, config["time"]: times[sid][i], "step": i + 1, "prediction": mean[i]}
            for lv in fc.levels:
                row |= {f"lower_{lv}": bands[lv][0][i], f"upper_{lv}": bands[lv][1][i]}
            rows.append(row)
    return pd.DataFrame(rows)


def _predict_series(state: dict[str, Any] | None, y: np.ndarray, x: np.ndarray | None, future: np.ndarray | None,
                    sid: str, settings: dict[str, Any]
                    ) -> tuple[list[float], dict[int, tuple[list[float], list[float]]], str | None]:
    """One series' forecast and bounds, and why its saved model was not used (None when it was): a
    history too short for the saved state, or one it cannot forecast from, gets the fallback fitted
    on it (a seasonal model fed less than a season used to forecast zeros, or fail)."""
    if state is None:  # a series the model has not seen: the panel's most chosen forecaster, fitted on it
        state = keyed(fit_series(y, x, settings["model"], {}, settings))
    why = None if "given" in state else too_short(state, y)
    if why is None:
        try:
            mean, bands = forecast_series(state, y, x, future, settings["horizon"], settings["levels"],
                                          settings["calibration"])
            if np.isfinite(mean).all():
                return mean.tolist(), {lv: (lo.tolist(), hi.tolist()) for lv, (lo, hi) in bands.items()}, None
            why = f"{state['name']} forecast values that are not finite from this history"
        except (ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
            why = f"{state['name']} cannot forecast from this history: {exc}"
    try:
        state = keyed(fit_series(y, x, settings["fallback"], {}, settings))
        mean, bands = forecast_series(state, y, x, future, settings["horizon"], settings["levels"])
    except (DataError, ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
        raise DataError(f"Series '{sid}': {why}, and the fallback {settings['fallback']} cannot either ({exc}); "
                        f"give it a longer history.") from None
    return mean.tolist(), {lv: (lo.tolist(), hi.tolist()) for lv, (lo, hi) in bands.items()}, why
