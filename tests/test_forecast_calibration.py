"""A panel's intervals calibrated on the backtest, and the combination forecaster (median of members)."""

from __future__ import annotations

import numpy as np
from scipy.stats import norm
from threadpoolctl import threadpool_limits

from trainflow.tasks.forecast import calibration, statistical
from trainflow.tasks.forecast.config import ForecastConfig
from trainflow.tasks.forecast.panel import _origins, backtest_series, settings_of, switching_helps
from trainflow.tasks.forecast.timeaxis import TimeAxis


def _outs(rng: np.random.Generator, rows: int, h: int, sd: float) -> tuple[list[np.ndarray], list]:
    """Forecasts of 0 whose own intervals assume a spread of 1; the truth's spread is ``sd``."""
    truths = [rng.normal(0, sd, h) for _ in range(rows)]
    bands = {lv: (np.full(h, -norm.ppf(0.5 + lv / 200)), np.full(h, norm.ppf(0.5 + lv / 200))) for lv in (80, 95)}
    return truths, [(np.zeros(h), bands)] * rows


def test_factors_widen_too_narrow_intervals_to_their_level():
    rng = np.random.default_rng(0)
    # 300 series of 2 origins each, errors twice as wide as the models say
    samples = [calibration.ratios(*_outs(rng, 2, 6, 2.0), [80, 95]) for _ in range(300)]
    found = calibration.factors(samples, [80, 95], 6)
    assert all(1.7 < f < 2.3 for lv in (80, 95) for f in found[lv]), found
    truths, outs = _outs(rng, 4000, 6, 2.0)
    for lv in (80, 95):
        lo, hi = calibration.scaled(outs[0][0], outs[0][1], found)[lv]
        covered = np.mean([(t >= lo) & (t <= hi) for t in truths])
        assert abs(covered - lv / 100) < 0.03, (lv, covered)
    # 15 series: 30 errors a step, enough for its own 80 % quantile, too few for its 95 %: the pooled one
    few = calibration.factors(samples[:15], [80, 95], 6)
    assert len(set(few[95])) == 1 and len(set(few[80])) > 1
    saved = calibration.as_json({"ets": found})
    assert calibration.check(saved, 6, statistical.NAMES) is None
    assert calibration.of_json(saved, "ets")[95] == [round(f, 6) for f in found[95]]
    assert calibration.of_json(saved, "theta") == {}
    assert "not 6 finite numbers" in calibration.check({"ets": {"80": [1.0] * 5}}, 6, statistical.NAMES)
    assert "not a known forecaster" in calibration.check({"prophet": {}}, 6, statistical.NAMES)


def test_combination_is_the_median_of_its_members_and_reuses_their_backtest_runs():
    with threadpool_limits(limits=1):  # as in the panel's workers: BLAS threads only spin on these small fits
        _check_combination()


def _check_combination():
    rng = np.random.default_rng(1)
    t = np.arange(54)
    y = 100 + 0.5 * t + 8 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 1.5, 54)
    # fixed forms: one fit per origin (the searches are not what is tested)
    members = {"ets": {"trend": "add_damped", "seasonal": "add"}, "arima": {"order": [0, 1, 1], "seasonal_order": [0, 1, 1]}}
    settings = settings_of(ForecastConfig(horizon=6, season=12, origins=3), "auto", ["ets", "theta", "arima", "combination"],
                           {**members, "theta": {}, "combination": {"options": members}}, TimeAxis.of(list(t)))
    result = backtest_series(y, None, settings)
    assert set(result["backtest"]) == {"ets", "theta", "arima", "combination"}
    assert set(result["ratios"]["combination"]) == {80, 95}
    # the runs combined equal a combination fitted and run on its own at the same origins
    cuts = [30, 36, 42]
    fitted, runs = {}, {}
    for name in ("ets", "theta", "arima"):
        fitted[name], runs[name] = _origins(name, settings, y, None, 12, cuts, {}, {})
    cheap = _origins("combination", settings, y, None, 12, cuts, fitted, runs)[1]
    alone = _origins("combination", settings, y, None, 12, cuts, {}, {})[1]
    for (m1, b1), (m2, b2) in zip(cheap, alone):
        np.testing.assert_allclose(m1, m2, rtol=1e-6)
        np.testing.assert_allclose(b1[95][1], b2[95][1], rtol=1e-6)

    config = statistical.CombinationConfig(options=members)
    col = statistical.Forecaster("combination", config).fit(y, 12, False)
    state = {"name": "combination", "log": False, "columns": [col]}
    assert statistical.check_state(state) is None
    mean, bands = statistical.forecast_one(col, y, 6, [80])
    members = [statistical.forecast_one(m, y, 6)[0] for m in col["form"]["members"]]
    np.testing.assert_allclose(mean, np.median(members, axis=0))
    assert (bands[80][0] < mean).all() and (mean < bands[80][1]).all()
    col["form"]["members"][1]["params"] = [float("nan")]
    assert "combination member with parameters that are not finite" in statistical.check_state(state)


def test_per_series_switches_are_kept_only_where_they_won_the_held_out_origin():
    def series(theta: list[float], ets: list[float]) -> dict:
        return {"origins": {"theta": theta, "ets": ets}}

    # the first origins favour ets on half the series; on the last one ets was right there: switch
    right = {f"s{i}": series([1.0, 1.0, 1.0], [0.5, 0.5, 0.5] if i % 2 else [2.0, 2.0, 2.0]) for i in range(10)}
    assert switching_helps(right, ["theta", "ets"])[0]
    # the same first origins, but on the last one ets was worse where it looked better: keep the champion
    wrong = {f"s{i}": series([1.0, 1.0, 1.0], [0.5, 0.5, 3.0] if i % 2 else [2.0, 2.0, 2.0]) for i in range(10)}
    helps, switched, kept, interval = switching_helps(wrong, ["theta", "ets"])
    assert not helps and switched == 2.0 and kept == 1.0 and interval[0] > 0
    # lower on the last origin on average, but by a few series' luck: the interval spans 0, keep the champion
    last = [0.0, 1.8, 0.1, 1.7, 0.8]
    lucky = {f"s{i}": series([1.0, 1.0, 1.0], [0.5, 0.5, last[i // 2]] if i % 2 else [2.0, 2.0, 2.0])
             for i in range(10)}
    helps, switched, kept, interval = switching_helps(lucky, ["theta", "ets"])
    assert switched < kept and interval[0] < 0 < interval[1] and not helps


def test_the_held_out_check_covers_the_latest_origin_as_the_earlier_ones_say():
    rng = np.random.default_rng(1)
    # the same spread at every origin: the factors of the earlier origins cover about their level of the latest
    same = [calibration.ratios(*_outs(rng, 3, 6, 2.0), [80, 95]) for _ in range(400)]
    found = calibration.held_out(same, [80, 95], 6)
    assert abs(found[80] - 0.8) < 0.05 and abs(found[95] - 0.95) < 0.03, found
    # the latest origin calmer than the earlier ones (spread 1 after 2): the check over-covers
    calm = [calibration.ratios(*_outs(rng, 2, 6, 2.0), [80, 95]) for _ in range(400)]
    for s, late in zip(calm, [calibration.ratios(*_outs(rng, 1, 6, 1.0), [80, 95]) for _ in range(400)]):
        for lv in (80, 95):
            s[lv] += late[lv]
    assert calibration.held_out(calm, [80, 95], 6)[80] > 0.95
    assert calibration.held_out([calibration.ratios(*_outs(rng, 1, 6, 1.0), [80])], [80], 6) == {}  # one origin
