"""The season of a training part and the plan of a fit (lookback, ensemble size, backtest origins)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainflow.tasks.forecast import backtest
from trainflow.tasks.forecast.config import (ENSEMBLE_BELOW, ENSEMBLE_SEEDS, MIN_WINDOWS, ForecastConfig, diff_lag,
                                             origins_of)
from trainflow.tasks.forecast.timeaxis import TimeAxis

# ---------------------------------------------------------------- season, the plan of a fit


def detect_season(level: np.ndarray, axis: TimeAxis) -> tuple[int, str]:
    """The season of a training part [t, C] (first column) and why: the dates' frequency (12 for
    months, 7 for days, ...) when the autocorrelation of the first differences confirms it, else
    the highest significant autocorrelation peak (at least two cycles in the data), else 1 (none)."""
    from statsmodels.tsa.stattools import acf

    x = np.diff(level[:, 0])
    if len(x) < 8:
        return 1, f"no season: {len(level)} steps are too few to detect one"
    hint = axis.season()
    hint = hint if hint and len(level) >= 2 * hint else None  # two cycles to confirm one
    band = max(1.96 / np.sqrt(len(x)), 0.2)  # the 95% band of white noise, and a floor against weak ripples
    if hint:
        # adjusted: unbiased at a long lag (a 24-step series has 11 pairs at lag 12)
        r_hint = acf(x, nlags=min(hint, len(x) - 1), fft=True, adjusted=True)
        if hint < len(r_hint) and r_hint[hint] > band:
            return hint, (f"season {hint} from the dates' frequency ({axis.freq}), autocorrelation "
                          f"{r_hint[hint]:.2f} at lag {hint}")
    r = acf(x, nlags=len(x) // 2, fft=True)
    peaks = [k for k in range(2, len(r) - 1) if r[k] > band and r[k] >= r[k - 1] and r[k] >= r[k + 1]]
    if peaks:
        # the first peak near the highest: multiples of the season peak too
        k = next(k for k in peaks if r[k] >= 0.8 * max(r[p] for p in peaks))
        return k, f"season {k} detected: autocorrelation peak {r[k]:.2f} at lag {k} (of the first differences)"
    return 1, "no season detected (no significant autocorrelation peak of the first differences)"


@dataclass
class Plan:
    """The settings a fit resolved from the spec and the training part: ``fc`` with the season and
    lookback filled in (lookback 0 when no network fits), the ensemble size, the backtest origins."""

    fc: ForecastConfig
    notes: list[str]
    ensemble: int
    windows: int
    origins: list[int]


def plan(fc: ForecastConfig, level: np.ndarray, axis: TimeAxis, networks: bool, optional: bool = False) -> Plan:
    """Resolve season, lookback, ensemble size and backtest origins for a training part [n, C].
    ``optional``: the networks are some of ``auto``'s candidates, left out (lookback 0) when they
    would leave no backtest origin that the statistical models have."""
    n, h = len(level), fc.horizon
    season, why = (fc.season, f"season {fc.season} (forecast.season)") if fc.season else detect_season(level, axis)
    lag = diff_lag(fc, season)
    notes = [why]
    lookback = fc.lookback
    if lookback is None:
        room = n - lag - h - (MIN_WINDOWS - 1)
        lookback = min(2 * season if season >= 2 else 2 * h, room) if room >= 1 else 0
        if networks:
            notes.append(f"lookback {lookback} (two seasons, or two horizons, shortened to leave {MIN_WINDOWS} "
                         f"training windows)" if lookback else
                         f"no lookback fits: {n} training steps leave no {MIN_WINDOWS} windows after the "
                         f"{fc.detrend} lag {lag} and horizon {h}")
    windows_n = max(n - lag - lookback - h + 1, 0) if lookback else 0
    ensemble = fc.ensemble or (ENSEMBLE_SEEDS if windows_n < ENSEMBLE_BELOW else 1)
    step = fc.origin_step or (min(season, h) if season >= 2 else h)
    stat_history = max(season, 6)  # one season: enough for the seasonal naive
    need = max(stat_history, lag + lookback + h) if networks and lookback else stat_history
    count = origins_of(fc)
    cuts = backtest.origins(n, h, count, step, need)
    if optional and not cuts and need > stat_history and backtest.origins(n, h, count, step, stat_history):
        # A network that would leave no backtest origin is left out, rather than the whole comparison.
        notes.append(f"networks left out: a backtest origin would need {need} steps before it for a network "
                     f"(lag {lag} + lookback {lookback} + horizon {h}); the training part has {n}")
        lookback, windows_n, need = 0, 0, stat_history
        cuts = backtest.origins(n, h, count, step, need)
    notes.append(f"backtest: {len(cuts)} origin(s) {step} steps apart in the training part, each forecasting "
                 f"{h} steps" + ("" if len(cuts) == count else
                                 f" (forecast.origins is {count}; each origin needs {need} steps before it)"))
    dropped = optional and networks and not lookback
    resolved = fc.model_copy(update={"season": season, "lookback": None if dropped else lookback or fc.lookback})
    return Plan(resolved, notes, ensemble, windows_n, cuts)
