"""Fitting a panel: one statistical forecaster per series, chosen and fitted in parallel over chunks.

For each series (its training part only): the season (``forecast.season``, else detected) and, for
``auto``, a rolling-origin backtest of its statistical candidates scored by MAE (the numerator of
the series' MASE). The panel's champion is the candidate with the lowest mean scaled backtest error;
a series takes another candidate only when that one's own backtest error is clearly lower
(SWITCH_MARGIN) and such switches beat the champion on the held-out last origin beyond the noise
of the series (:func:`switching_helps`). The chosen forecaster is then fitted on the whole training part, with the
exogenous regressors where it takes them. A series shorter than the model needs, or
that it cannot fit, gets ``forecast.fallback`` with a note. The series are cut into chunks that a
process pool of ``resources.threads`` workers fits (each worker one BLAS thread), with progress.

The fitted panel is JSON: per series, the chosen forecaster's state (as in
:mod:`trainflow.tasks.forecast.statistical`), its backtest scores and notes.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from trainflow.errors import DataError
from trainflow.tasks.common import uncertainty
from trainflow.tasks.forecast import backtest, calibration, statistical
from trainflow.tasks.forecast.config import ForecastConfig, origins_of
from trainflow.tasks.forecast.plan import detect_season
from trainflow.tasks.forecast.timeaxis import TimeAxis

#: the fewest training steps a forecaster is fitted on in a panel (shorter: forecast.fallback)
MIN_STEPS = {"naive": 2, "drift": 3, "seasonal_naive": 2, "theta": 8, "ets": 10, "arima": 12, "combination": 12}
#: seasons of data before the first backtest origin for its AICc form to be kept in the final fit (an
#: ARIMA's seasonal difference is searched from three seasons on, ETS's season from two)
SEARCH_STEPS = 3
#: how much lower (relative) a series' own best backtest error must be to leave the panel's champion
SWITCH_MARGIN = 0.2
#: the equal-weight means of every subset of two or more of ETS, Theta and ARIMA, which a panel's
#: model.candidates may name (not in auto's default list: panels.PANEL_CANDIDATES says why): scored
#: from the members' backtest runs with no extra fit and chosen like any candidate
MEAN_COMBINATIONS = ("mean(ets,theta)", "mean(ets,arima)", "mean(theta,arima)", "mean(ets,theta,arima)")
#: chunks per worker: small enough to balance uneven series, large enough that a chunk outweighs its transfer
CHUNKS_PER_WORKER = 4


def fill(y: np.ndarray, log: bool) -> np.ndarray:
    """Missing values interpolated in time (the ends held), then logged when ``log``."""
    y = np.asarray(y, dtype=float)
    if np.isnan(y).any():
        idx, known = np.arange(len(y)), ~np.isnan(y)
        y = np.interp(idx, idx[known], y[known]) if known.any() else y
    return np.log(y) if log else y


def combination_of(name: Any) -> tuple[list[str], str] | None:
    """(members, how) of a candidate named like ``mean(ets,theta)`` or ``median(ets,theta,arima)``
    (two or more distinct forecasters a combination may hold); None for any other name."""
    found = re.fullmatch(r"(mean|median)\(([a-z_,]+)\)", name) if isinstance(name, str) else None
    members = found.group(2).split(",") if found else []
    ok = len(members) >= 2 and len(set(members)) == len(members) and set(members) <= set(statistical.MEMBERS)
    return (members, found.group(1)) if ok and found else None


def model_of(name: str) -> str:
    """The statistical forecaster behind candidate ``name`` (a named combination is a ``combination``)."""
    return "combination" if combination_of(name) else name


def is_candidate(name: Any) -> bool:
    """Whether ``name`` is a statistical forecaster, a named combination of them, or a forecasting
    network (one over the whole panel: :func:`global_panel.backtest`)."""
    return name in statistical.NAMES or combination_of(name) is not None or is_network_candidate(name)


def is_network_candidate(name: Any) -> bool:
    """Whether ``name`` is a registered forecasting network (a global candidate of a panel's ``auto``)."""
    from trainflow.registry import REGISTRY
    from trainflow.tasks.forecast.config import is_network

    return isinstance(name, str) and name in REGISTRY.names("model", "forecasting") and is_network(name)


def _state(col: dict[str, Any], season: int, log: bool) -> dict[str, Any]:
    return {"name": col["name"], "season": season, "log": log, "columns": [col]}


def _fit(name: str, options: dict[str, Any], y: np.ndarray, season: int, log: bool, x: np.ndarray | None) -> dict[str, Any]:
    model = model_of(name)
    config = statistical.config_class(model).model_validate(options)
    return statistical.Forecaster(model, config).fit(y, season, log, x)


def _backtest(names: list[str], settings: dict[str, Any], y: np.ndarray, x: np.ndarray | None, season: int,
              cuts: list[int]) -> tuple[dict[str, float], dict[str, dict[str, Any]], dict[str, Any]]:
    """Mean MAE over the origins for each candidate that fits, its interval ratios (for
    :mod:`calibration`), and each one's column fitted before the first origin (its form, ETS
    components or ARIMA orders, searched there by AICc and kept at the later origins, whose
    parameters are refitted)."""
    h, scores, fitted, ratios, runs, per_origin = settings["horizon"], {}, {}, {}, {}, {}
    truths = [y[o:o + h] for o in cuts]
    for name in sorted(names, key=lambda n: model_of(n) == "combination"):  # a combination reuses its members' runs
        if cuts[0] < MIN_STEPS[model_of(name)]:
            continue
        try:
            col, outs = _origins(name, settings, y, x, season, cuts, fitted, runs)
        except DataError:
            continue
        errs = [float(np.mean(np.abs(truth - mean[:len(truth)]))) for truth, (mean, _) in zip(truths, outs)]
        if all(math.isfinite(e) for e in errs):
            scores[name], fitted[name], runs[name], per_origin[name] = float(np.mean(errs)), col, outs, errs
            # calibration counts the origins with room for the season's forms, as the final fit has
            full = [i for i, o in enumerate(cuts) if season < 2 or o >= 2 * season + 2]
            ratios[name] = calibration.ratios([truths[i] for i in full], [outs[i] for i in full], settings["levels"])
    return scores, fitted, ratios, per_origin


def _origins(name: str, settings: dict[str, Any], y: np.ndarray, x: np.ndarray | None, season: int, cuts: list[int],
             fitted: dict[str, Any], runs: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    """``name``'s column fitted before the first origin and its forecast and bounds at every origin;
    a combination whose members were run with the same options combines their runs."""
    h, log, levels, options = settings["horizon"], settings["log"], settings["levels"], settings["options"].get(name, {})
    if model_of(name) == "combination":
        config = statistical.CombinationConfig.model_validate(options)
        same = all(m in runs and config.options.get(m, {}) == settings["options"].get(m, {}) for m in config.members)
        if same:
            how = config.how
            col = {"name": name, "form": statistical.combined([fitted[m] for m in config.members], how), "params": []}
            outs = [(statistical.combine(how, [runs[m][i][0] for m in config.members]),
                     {lv: tuple(statistical.combine(how, [runs[m][i][1][lv][k] for m in config.members]) for k in (0, 1))
                      for lv in levels}) for i in range(len(cuts))]
            return col, outs
    col = _fit(name, options, y[:cuts[0]], season, log, _rows(x, 0, cuts[0]))
    # refitted at each origin in the form found at the first (Theta re-estimates its two parameters
    # on any history, and fixed parameters would handicap ETS and ARIMA against it), unless the
    # first was too short for the season's forms: then each origin searches its own
    keep = pinned(name, col, options) if cuts[0] >= SEARCH_STEPS * max(season, 1) + 2 else options
    outs = []
    for o in cuts:
        now = col if o == cuts[0] else _fit(name, keep, y[:o], season, log, _rows(x, 0, o))
        outs.append(statistical.forecast_one(now, y[:o], h, levels, _rows(x, 0, o), _rows(x, o, o + h)))
    return col, outs


def pinned(name: str, col: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """The options that fix ``name``'s form to the one of a fitted column (AICc's pick before the
    first backtest origin): the final fit then estimates one form's parameters, not the whole search."""
    form = col["form"]
    if model_of(name) == "combination":
        inner = options.get("options", {})
        return {**options, "options": {**inner, **{m["name"]: pinned(m["name"], m, inner.get(m["name"], {}))
                                                 for m in form["members"]}}}
    if name == "ets":
        trend = "none" if not form["trend"] else "add_damped" if form["damped"] else "add"
        return {**options, "trend": trend, "seasonal": form["seasonal"] or "none"}
    if name == "arima":
        return {**options, "order": form["order"], "seasonal_order": form["seasonal_order"][:3]}
    return options


def _rows(x: np.ndarray | None, start: int, stop: int) -> np.ndarray | None:
    return None if x is None else x[start:stop]


def _season(level: np.ndarray, settings: dict[str, Any]) -> int:
    season = settings["season"] or detect_season(level[:, None], settings["axis"])[0]
    return 1 if season >= 2 and len(level) < 2 * season else season  # two cycles to see a season


def cuts_of(n: int, season: int, settings: dict[str, Any]) -> list[int]:
    """The backtest origins of a series of ``n`` steps (oldest first): one season apart (or
    ``forecast.origin_step``; a horizon without a season), each with the history every statistical
    candidate needs; a short series gets fewer origins, not fewer candidates (the baselines' shorter
    need only when no origin has that much)."""
    h = settings["horizon"]
    step = settings["origin_step"] or (min(season, h) if season >= 2 else h)
    need = max(season, 6, *(MIN_STEPS[model_of(n)] for n in settings["candidates"] if model_of(n) in MIN_STEPS))
    return (backtest.origins(n, h, settings["origins"], step, need)
            or backtest.origins(n, h, settings["origins"], step, max(season, 6)))


def backtest_series(y: np.ndarray, x: np.ndarray | None, settings: dict[str, Any]) -> dict[str, Any]:
    """Phase one of ``auto`` (and of interval calibration): one series' season, each candidate's mean
    backtest MAE divided by the series' mean absolute step (comparable across series), its interval
    ratios (:func:`calibration.ratios`), and the options that keep each candidate's AICc form for the
    final fit (when the search before the first origin saw the season's forms)."""
    level = fill(y, settings["log"])
    season = _season(level, settings)
    cuts = cuts_of(len(level), season, settings)
    scores, fitted, ratios, per_origin = (_backtest(settings["candidates"], settings, level, x, season, cuts) if cuts
                                          else ({}, {}, {}, {}))
    scale = float(np.mean(np.abs(np.diff(level)))) or 1.0
    keep = bool(cuts) and cuts[0] >= SEARCH_STEPS * max(season, 1) + 2
    forms = {n: pinned(n, col, settings["options"].get(n, {})) for n, col in fitted.items()} if keep else {}
    return {"season": season, "cuts": cuts, "scaled": {n: v / scale for n, v in scores.items()}, "backtest": scores,
            "forms": forms,
            "ratios": ratios, "origins": {n: [e / scale for e in v] for n, v in per_origin.items()}}


def champion(phase_one: dict[str, dict[str, Any]], names: list[str]) -> str | None:
    """The panel's default choice: the candidate with the lowest geometric mean of its backtest error
    relative to the seasonal naive's on the same series (scale-free, each series counts alike, and
    only series that scored both; Davydenko & Fildes' AvgRelMAE), over at least half the series;
    without the seasonal naive among the candidates, the lowest mean scaled error."""
    means = ranking(phase_one, names)
    return min(means, key=means.get) if means else None


def ranking(phase_one: dict[str, dict[str, Any]], names: list[str]) -> dict[str, float]:
    """Each candidate's panel score that :func:`champion` minimises (the mean log relative error, or
    the mean scaled error without the seasonal naive), lowest first."""
    base = "seasonal_naive" if "seasonal_naive" in names else None
    means = {}
    for name in names:
        if base:
            vals = [math.log(r["scaled"][name] / r["scaled"][base]) for r in phase_one.values()
                    if name in r["scaled"] and r["scaled"].get(base, 0) > 0 and r["scaled"][name] > 0]
        else:
            vals = [r["scaled"][name] for r in phase_one.values() if name in r["scaled"]]
        if len(vals) >= max(1, len(phase_one) // 2):
            means[name] = float(np.mean(vals))
    return dict(sorted(means.items(), key=lambda kv: kv[1]))


def pick(result: dict[str, Any], best: str | None, switch: bool = True) -> str | None:
    """A series keeps the panel's champion unless ``switch`` and another candidate's backtest error
    is lower by more than SWITCH_MARGIN: a few origins of one series are noisy, and a switch on noise
    costs more than it wins (on M1 monthly the plain per-series minimum lost to damped ETS)."""
    scores = result["backtest"]
    if not scores:
        return None
    own = min(scores, key=scores.get)
    if best in scores and (not switch or scores[own] >= (1 - SWITCH_MARGIN) * scores[best]):
        return best
    return own


def switching_helps(phase_one: dict[str, dict[str, Any]], names: list[str], seed: int = 0
                    ) -> tuple[bool, float, float, list[float] | None]:
    """Whether per-series switches beat the panel's champion, both chosen on the backtest origins
    but the last and scored on the last (the mean scaled error of each: a backtest of the choice
    rule itself), and the paired bootstrap 95% interval over the series of the mean difference
    (switched - kept). Switches are kept only when the whole interval is below 0, as a challenger is
    promoted: on M1 monthly (617 series) they scored lower on the held-out origin by chance (-0.028,
    interval -0.121 to +0.074) and cost 0.023 MASE on the test; the panel decides, on evidence."""
    early = {sid: {"scaled": {n: float(np.mean(v[:-1])) for n, v in r["origins"].items() if len(v) >= 2}}
             for sid, r in phase_one.items()}
    best = champion(early, names)
    switched, kept = [], []
    for sid, r in early.items():
        if best in r["scaled"]:
            chosen = pick({"backtest": r["scaled"]}, best)
            switched.append(phase_one[sid]["origins"][chosen][-1])
            kept.append(phase_one[sid]["origins"][best][-1])
    if not kept:
        return True, math.nan, math.nan, None
    d = np.asarray(switched) - np.asarray(kept)
    interval = uncertainty.mean_interval(d, seed=seed)
    helps = interval is not None and interval[1] < 0
    return helps, float(np.mean(switched)), float(np.mean(kept)), interval


def fit_series(y: np.ndarray, x: np.ndarray | None, chosen: str | None, forms: dict[str, Any],
               settings: dict[str, Any]) -> dict[str, Any]:
    """Fit one series' forecaster ``chosen`` (None: the fallback) on its training part ``y`` [n]
    with regressors ``x`` [n, k] or None; ``forms``: options that fix a candidate's form."""
    log, fallback = settings["log"], settings["fallback"]
    level = fill(y, log)
    season = _season(level, settings)
    notes: list[str] = []
    if chosen is None:
        notes.append(f"{fallback} (forecast.fallback): {len(level)} training steps leave no backtest origin")
        chosen = fallback
    if len(level) < MIN_STEPS[model_of(chosen)] and chosen != fallback:
        notes.append(f"{fallback} (forecast.fallback): {len(level)} training steps, {chosen} needs "
                     f"{MIN_STEPS[model_of(chosen)]}")
        chosen = fallback
    try:
        col = _fit(chosen, forms.get(chosen, settings["options"].get(chosen, {})), level, season, log, x)
    except DataError as exc:
        if chosen == fallback:
            raise
        notes.append(f"{fallback} (forecast.fallback): {exc}")
        chosen = fallback
        col = _fit(chosen, {}, level, season, log, x)
    return {"chosen": chosen, "state": _state(col, season, log), "notes": notes}


def too_short(state: dict[str, Any], y: np.ndarray) -> str | None:
    """Why a saved statistical state cannot forecast from the history ``y`` (None when it can): fewer
    steps than its forecaster fits on, or, for a seasonal ARIMA-family form (seasonal naive among
    them), no full season to repeat (statsmodels would start from zeros there)."""
    name, n = state["name"], int(np.sum(np.isfinite(y)))
    least, cols = MIN_STEPS.get(model_of(name), 2), list(state.get("columns", []))
    while cols:  # a combination's members are columns too
        form = cols.pop().get("form") or {}
        cols += form.get("members", [])
        seasonal = form.get("seasonal_order")
        if seasonal and seasonal[3] >= 2 and any(seasonal[:3]):
            least = max(least, seasonal[3] * max(1, seasonal[0] + seasonal[1]) + 1)
    return f"{n} steps of history, {name} needs {least}" if n < least else None


def forecast_series(state: dict[str, Any], y: np.ndarray, x: np.ndarray | None, future: np.ndarray | None,
                    horizon: int, levels: list[int], saved: dict[str, Any] | None = None
                    ) -> tuple[np.ndarray, dict[int, tuple[np.ndarray, np.ndarray]]]:
    """The next ``horizon`` values after ``y`` (raw) and their bounds, from a series' saved state;
    the half-widths scaled by the model's ``saved`` calibration (in the model's scale, before a log
    is undone), that of the candidate ``state["key"]`` (see :func:`keyed`)."""
    if "given" in state:  # the network's forecast, made for the whole panel at once (:func:`network_forecasts`)
        mean, bands = state["given"]
        return np.asarray(mean), {int(lv): (np.asarray(lo), np.asarray(hi)) for lv, (lo, hi) in bands.items()}
    level = fill(y, state["log"])
    mean, bands = statistical.forecast_one(state["columns"][0], level, horizon, levels, x, future)
    bands = calibration.scaled(mean, bands, calibration.of_json(saved, state.get("key", state["name"])))
    if state["log"]:
        mean, bands = np.exp(mean), {lv: (np.exp(lo), np.exp(hi)) for lv, (lo, hi) in bands.items()}
    return mean, bands



def _work(chunk: list[tuple[str, tuple[Any, ...]]], settings: dict[str, Any],
          task: Callable[..., Any]) -> list[tuple[str, Any]]:
    """One chunk in a worker process: BLAS on one thread (the workers are the parallelism)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return [(sid, task(*args, settings)) for sid, args in chunk]


def run_chunks(items: list[tuple[str, tuple[Any, ...]]], settings: dict[str, Any],
               task: Callable[..., Any], threads: int, progress: Callable[[int, int], None]) -> dict[str, Any]:
    """``task(*args, settings)`` for every (series id, args) of ``items``, over chunks on ``threads``
    worker processes (in this process for one thread); ``progress(done, total)`` after each chunk;
    the results by series id."""
    if not items:
        return {}
    workers = max(1, min(threads, len(items)))
    n_chunks = min(len(items), workers * CHUNKS_PER_WORKER)
    chunks = [list(c) for c in _split(items, n_chunks)]
    results: dict[str, Any] = {}
    if workers == 1:
        outputs: Iterator[list[tuple[str, Any]]] = (_work(c, settings, task) for c in chunks)
    else:
        from joblib import Parallel, delayed

        # processes: statsmodels' fits hold the GIL
        outputs = Parallel(n_jobs=workers, backend="loky", return_as="generator_unordered")(
            delayed(_work)(c, settings, task) for c in chunks)
    for out in outputs:
        results.update(out)
        progress(len(results), len(items))
    return results


def _split(items: list[Any], n: int) -> Iterator[list[Any]]:
    size, extra = divmod(len(items), n)
    start = 0
    for i in range(n):
        stop = start + size + (i < extra)
        yield items[start:stop]
        start = stop


def settings_of(fc: ForecastConfig, model: str, candidates: list[str], options: dict[str, dict[str, Any]],
                axis: TimeAxis) -> dict[str, Any]:
    """What a worker needs to fit a series: plain, picklable values only (``axis``: the panel's time
    axis, whose frequency hints at the season)."""
    return {"axis": axis, "horizon": fc.horizon, "season": fc.season, "log": fc.transform == "log", "fallback": fc.fallback,
            "model": model, "candidates": candidates, "options": options, "origins": origins_of(fc, model == "auto"),
            "origin_step": fc.origin_step, "levels": list(fc.levels)}


class Progress:
    """Series done / total: a log line at most every few seconds and the Prefect progress artifact."""

    def __init__(self, what: str, key: str | None, log: Callable[[str], None] = print):
        from trainflow.tasks.common.training import Progress as Artifact

        self.what, self.log, self.last, self.start = what, log, -math.inf, time.monotonic()
        self.artifact = Artifact(key, f"{what}: series done / total")

    def __call__(self, done: int, total: int) -> None:
        self.artifact.update(100.0 * done / total)
        if done == total or time.monotonic() - self.last > 10:
            self.last = time.monotonic()
            self.log(f"{self.what}: {done}/{total} series ({time.monotonic() - self.start:.0f} s)")


def choices(fitted: dict[str, dict[str, Any]]) -> dict[str, int]:
    """How many series each forecaster was chosen for, most first."""
    return dict(Counter(r["chosen"] for r in fitted.values()).most_common())


def check_series_states(series: Any, network: str | None = None, exogenous: int = 0) -> str | None:
    """What is wrong with a saved panel's per-series part (None when usable); ``network``: the saved
    network candidate (a series that chose it keeps its scaling, ``exogenous`` regressors' too)."""
    from trainflow.tasks.forecast.global_net import check_scaling

    if not isinstance(series, dict) or not series:
        return "no 'series' mapping of fitted forecasters"
    for sid, r in series.items():
        if not isinstance(r, dict) or not is_candidate(r.get("chosen")):
            return f"series {sid!r} without a known forecaster"
        if is_network_candidate(r["chosen"]):
            problem = (f"that chose the network {r['chosen']!r}, which the model does not hold"
                       if r["chosen"] != network else check_scaling(r, exogenous))
            if not problem and not (type(r.get("season")) is int and 1 <= r["season"] <= 10_000):
                problem = "with a season that is not a whole number from 1 to 10000"
            if problem:
                return f"series {sid!r} {problem}"
            continue
        problem = statistical.check_state(r.get("state"))
        if problem:
            return f"series {sid!r} with {problem}"
        named, form = combination_of(r["chosen"]), r["state"]["columns"][0].get("form")
        if r["state"]["name"] != model_of(r["chosen"]) or (named and named != (
                [m["name"] for m in form["members"]], form["how"])):
            return f"series {sid!r} whose fitted forecaster is not its chosen {r['chosen']!r}"
        season = r["state"].get("season")
        if not (isinstance(season, int) and 1 <= season <= 10_000):
            return f"series {sid!r} with a season that is not a whole number from 1 to 10000"
    return None
