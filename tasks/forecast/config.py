"""The spec's ``forecast`` section and the length rules every forecaster obeys."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from trainflow.errors import DataError


class ForecastConfig(BaseModel):
    """The spec's ``forecast`` section (forecasting pipelines)."""

    model_config = ConfigDict(extra="forbid")
    horizon: int = Field(12, ge=1, description="Steps to forecast; the last `horizon` steps are the test split")
    # Two seasons let a network see the pattern twice; shortened so that the training part gives
    # at least MIN_WINDOWS windows.
    lookback: int | None = Field(None, ge=1, description="Past steps a network reads for one forecast; default: "
                                                         "two seasons (two horizons without a season), shortened to fit")
    season: int | None = Field(None, ge=1, description="Season length in steps (12 for monthly data; 1 = none); "
                                                       "default: detected on the training part (the dates' "
                                                       "frequency confirmed by autocorrelation, else its peak)")
    # A log turns multiplicative seasonality (swings growing with the level) into additive.
    transform: Literal["none", "log"] = Field("none", description="none | log (values must be > 0)")
    # Year-over-year differences remove both the trend and the seasonal pattern.
    detrend: Literal["none", "difference", "seasonal_difference"] = Field(
        "seasonal_difference", description="none | difference (lag 1) | seasonal_difference (lag = season) "
                                           "for networks")
    scale: Literal["standard", "none"] = Field("standard", description="Standardize with the training part's mean/std")
    # auto's choice on a panel reads more windows: 3 one season apart span only the latest years
    # (on M1 and tourism the choice was the same at 6 and 8 once compared on the same series)
    origins: int | None = Field(None, ge=1, description="Backtest forecast origins inside the training part (rolling "
                                                        "origin); default: 3, and 6 for auto's choice on a panel")
    origin_step: int | None = Field(None, ge=1, description="Steps between backtest origins; default: the season, "
                                                            "or the horizon when shorter or without a season")
    # One network is a draw: on short series seeds 0 and 1 of the same GRU differed by 40% in RMSE.
    ensemble: int | None = Field(None, ge=1, le=100, description="Networks averaged over this many seeds; default: "
                                                         "5 when the training part gives fewer than 200 windows, else 1")
    # 80 and 95 are what planners read (and what the M4 competition scored).
    levels: list[int] = Field([80, 95], description="Prediction interval levels in percent (each 1..99); [] for none")
    exogenous: list[str] = Field([], description="Columns of known drivers (price, holiday...) used as regressors by "
                                                 "the ARIMA family (SARIMAX exog) and ETS (regression with ETS errors), "
                                                 "and as extra input channels by the networks; predict needs their "
                                                 "future values for the whole horizon")
    # A model's own interval assumes its form is right: on M1 monthly damped ETS's 80 % covered 71 %.
    calibrate: bool = Field(True, description="Panels: scale each forecaster's interval half-widths so that they "
                                              "cover their level of its backtest errors over the panel's series "
                                              "(conformal, per step); false: the models' own intervals")
    # The simplest forecaster fits any series of two steps; a panel never fails for one short series.
    fallback: Literal["naive", "seasonal_naive", "drift"] = Field(
        "naive", description="Panels: the forecaster of a series too short for the model (or that it cannot fit), "
                             "with a note")

    # A real panel holds a few series that began late: they are named and left out, not a failed run.
    max_short_share: float = Field(0.05, ge=0, le=1, description="Panels: largest share of the series left out (each "
                                                                  "named in a note) because they cannot hold the test "
                                                                  "horizon plus three training steps; more fails the run")

    @field_validator("levels")
    @classmethod
    def _levels(cls, levels: list[int]) -> list[int]:
        if any(not 1 <= lv <= 99 for lv in levels):
            raise ValueError(f"each level is a percentage from 1 to 99; got {levels}")
        return sorted(set(levels))


#: backtest origins unless forecast.origins gives them: a single series (and a panel's single model,
#: whose backtest only calibrates its intervals), and auto's choice over a panel's series
ORIGINS, PANEL_AUTO_ORIGINS = 3, 6


def origins_of(fc: ForecastConfig, panel_auto: bool = False) -> int:
    """The backtest origins of a fit: ``forecast.origins``, else the default for its kind."""
    return fc.origins or (PANEL_AUTO_ORIGINS if panel_auto else ORIGINS)


#: a network needs at least this many (lookback -> horizon) training windows when the lookback is chosen for it
MIN_WINDOWS = 8

#: members of a saved seed ensemble at most (ForecastConfig.ensemble's bound; a larger saved one is damage)
MAX_ENSEMBLE = 100

#: below this many training windows a network is an ensemble of ENSEMBLE_SEEDS seeds by default
ENSEMBLE_BELOW, ENSEMBLE_SEEDS = 200, 5


def diff_lag(fc: ForecastConfig, season: int | None = None) -> int:
    season = season or fc.season or 1
    return {"none": 0, "difference": 1, "seasonal_difference": season}[fc.detrend]


def is_network(name: str | None) -> bool:
    """Whether the model ``name`` is a network (not a statistical forecaster or ``auto``)."""
    from trainflow.registry import REGISTRY

    return bool(name) and name != "auto" and not REGISTRY.get("model", name).extra.get("statistical")


def check_length(n: int, fc: ForecastConfig, source: str, network: bool = True, season: int | None = None) -> None:
    """DataError when a series of ``n`` steps is too short for the horizon and (for a network) one
    training window; the message adds up every part and names settings that would fit."""
    if fc.horizon >= n:
        raise DataError(f"forecast.horizon is {fc.horizon} but the series in '{source}' has only {n} steps; the "
                        f"horizon must be shorter than the series (the last {fc.horizon} steps are the test).")
    if n - fc.horizon < 3:
        raise DataError(f"The series in '{source}' has {n} steps: {fc.horizon} test steps (forecast.horizon) leave "
                        f"{n - fc.horizon} to fit on, and a forecaster needs at least 3. Use forecast.horizon: "
                        f"{n - 3} or less.")
    if not network:
        return
    h, lag, lookback = fc.horizon, diff_lag(fc, season), fc.lookback or 1
    need = h + lag + lookback + h
    if n >= need:
        return
    parts = (f"{h} test steps (forecast.horizon) + one training window: {lag} ({fc.detrend} lag) + {lookback} "
             f"(forecast.lookback{'' if fc.lookback else ', the shortest'}) + {h} (the window's own horizon) = {need}")
    fixes = []
    if n - 2 * h - lag >= 1:
        fixes.append(f"forecast.lookback: {n - 2 * h - lag} or less")
    for detrend, other_lag in (("difference", 1), ("none", 0)):
        if other_lag < lag and n - 2 * h - other_lag >= 1 and not (n - 2 * h - lag >= 1):
            fixes.append(f"detrend: {detrend} with forecast.lookback: {n - 2 * h - other_lag} or less")
            break
    if (n - lag - lookback) // 2 >= 1:
        fixes.append(f"forecast.horizon: {(n - lag - lookback) // 2} or less")
    fixes.append("a statistical model (model.name: auto, ets, arima or theta), which needs no training windows")
    raise DataError(f"The series in '{source}' has {n} steps, too few for a network with these settings: {parts}. "
                    f"What would fit: {'; or '.join(fixes)}.")
