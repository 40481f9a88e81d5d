"""``auto``'s choice over a panel reads more backtest origins than a single series' backtest."""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits
from trainflow.tasks.forecast.config import ForecastConfig, origins_of
from trainflow.tasks.forecast.panel import backtest_series, champion, settings_of
from trainflow.tasks.forecast.timeaxis import TimeAxis

NAMES = ["naive", "seasonal_naive"]


def _series(seed: int) -> np.ndarray:
    """60 steps: a strong season of 4 up to step 47, then a trend of one a step from its last value (where the naive
    forecast is right and the seasonal naive lags): the latest three backtest windows favour the
    naive forecast, the six-origin backtest the seasonal naive."""
    rng = np.random.default_rng(seed)
    t = np.arange(60)
    y = np.where(t < 48, 100 + 20 * np.array([0, 1, 0, -1])[t % 4], 80 + (t - 47.0))
    return y + rng.normal(0, 0.3, 60)


def _champion(fc: ForecastConfig) -> tuple[str | None, list[int]]:
    settings = settings_of(fc, "auto", NAMES, {}, TimeAxis.of(list(range(60))))
    with threadpool_limits(limits=1):
        one = {f"s{i}": backtest_series(_series(i), None, settings) for i in range(3)}
    return champion(one, NAMES), [len(r["origins"]["naive"]) for r in one.values()]


def test_auto_on_a_panel_chooses_over_six_origins_unless_the_spec_gives_them():
    fc = ForecastConfig(horizon=4, season=4)
    assert origins_of(fc) == 3 and origins_of(fc, panel_auto=True) == 6
    assert settings_of(fc, "ets", ["ets"], {}, TimeAxis.of([1, 2]))["origins"] == 3  # calibration only
    # the default: six windows, where the season wins four of them and the champion follows
    best, counts = _champion(fc)
    assert counts == [6, 6, 6] and best == "seasonal_naive"
    # forecast.origins: 3 reads only the latest three windows (the trend): the naive forecast wins
    best, counts = _champion(ForecastConfig(horizon=4, season=4, origins=3))
    assert counts == [3, 3, 3] and best == "naive"


def test_a_short_series_gets_fewer_origins_not_fewer_candidates():
    fc = ForecastConfig(horizon=4, season=4)
    settings = settings_of(fc, "auto", ["naive", "ets"], {"ets": {"trend": "none", "seasonal": "none"}},
                           TimeAxis.of(list(range(24))))
    with threadpool_limits(limits=1):
        result = backtest_series(_series(0)[:24], None, settings)
    # 24 steps: origins 8, 12, 16, 20 by the season; ETS needs 10 steps, so the backtest starts at 12
    assert set(result["backtest"]) == {"naive", "ets"}
    assert len(result["origins"]["ets"]) == len(result["origins"]["naive"]) == 3


def test_the_champion_has_the_lowest_geometric_mean_error_relative_to_the_seasonal_naive():
    def series(theta: float, combination: float, naive: float) -> dict:
        return {"scaled": {"theta": theta, "combination": combination, "seasonal_naive": naive}}

    # one hard series (large errors for all) and one easy one where the combination halves the error:
    # the arithmetic mean follows the hard series (theta 5.5 < 5.75), the relative errors count both alike
    one = {"hard": series(10.0, 11.0, 10.0), "easy": series(1.0, 0.5, 1.0)}
    assert champion(one, ["theta", "combination", "seasonal_naive"]) == "combination"
    # without the seasonal naive among the candidates: the lowest mean scaled error
    assert champion(one, ["theta", "combination"]) == "theta"
