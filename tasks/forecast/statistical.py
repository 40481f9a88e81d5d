"""Statistical forecasters from statsmodels: the baselines and the selectable models.

Baselines (in every forecast report): ``naive`` (the last value), ``seasonal_naive`` (the value one
season earlier), ``drift`` (the last value plus the average step), all three as the ARIMA models
they are (ARIMA(0,1,0), seasonal ARIMA(0,0,0)(0,1,0)s, ARIMA(0,1,0) with a linear trend). Models:
``ets`` (exponential smoothing, the form chosen by AICc), ``arima`` (a small seasonal ARIMA order
search by AICc, or a given order), ``theta`` (the Theta method) and ``combination`` (the median or
mean of its members' forecasts, by default damped ETS, Theta and ARIMA: in the M competitions such
a combination beat each of its members).

A fitted forecaster is a JSON-able *state*: the model's form (orders, components, season, log) and
its fitted parameters as plain numbers. Forecasting re-runs statsmodels' filter with those
parameters over the history it is given (``theta``, whose two parameters are closed-form,
re-estimates them), so a saved model holds data only: never a pickled results object.
Each column of a multivariate series gets its own forecaster.

Exogenous regressors (``forecast.exogenous``) enter the ARIMA family (the baselines and ``arima``)
as SARIMAX ``exog``: a regression with ARIMA errors; ``ets`` as a regression with ETS errors (least
squares, then ETS on what the regressors leave); Theta has none and ignores them. Prediction intervals are each model's own: the state-space forecast variance (ARIMA
family, ETS) or the Theta method's.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from trainflow.errors import DataError
from trainflow.registry import component

#: what statsmodels raises on a series it cannot fit (too short, constant, exactly periodic)
FIT_ERRORS = (ValueError, ZeroDivisionError, FloatingPointError, np.linalg.LinAlgError)
BASELINES = ("naive", "seasonal_naive", "drift", "ets", "arima")
#: the forecasters that are ARIMA models (and so take exogenous regressors)
ARIMA_FAMILY = ("naive", "seasonal_naive", "drift", "arima")
#: every statistical forecaster, by name (also the registered model names)
NAMES = ("naive", "seasonal_naive", "drift", "ets", "arima", "theta", "combination")
#: the forecasters a combination may hold
MEMBERS = NAMES[:-1]


class NoForecastOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EtsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    trend: Literal["auto", "none", "add", "add_damped"] = Field(
        "auto", description="auto: the lowest AICc of none / add / add_damped")
    seasonal: Literal["auto", "none", "add", "mul"] = Field(
        "auto", description="auto: the lowest AICc of none / add / mul (mul needs values > 0 and no log)")


class ArimaConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order: tuple[int, int, int] | None = Field(None, description="(p, d, q); default: searched by AICc")
    seasonal_order: tuple[int, int, int] | None = Field(
        None, description="(P, D, Q) at the season; default: searched by AICc")


class ThetaConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    theta: float = Field(2.0, ge=1, description="Weight of the SES part (2 is the classic Theta method)")


class CombinationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    members: list[Literal["naive", "seasonal_naive", "drift", "ets", "arima", "theta"]] = Field(
        ["ets", "theta", "arima"], min_length=2, description="Forecasters whose forecasts are combined")
    # The median of three ignores the one that goes astray (on the first 150 series of M1 monthly and
    # tourism quarterly it beat the mean of the same three, and each member alone).
    how: Literal["median", "mean"] = Field("median", description="median | mean of the members' forecasts and bounds")
    options: dict[str, dict[str, Any]] = Field({"ets": {"trend": "add_damped"}}, description="Options per member")


class Forecaster:
    """A statistical forecaster by name and options: ``fit`` -> state (JSON), ``forecast(state, history)``."""

    def __init__(self, name: str, config: BaseModel):
        self.name, self.config = name, config

    def fit(self, y: np.ndarray, season: int, log: bool, exog: np.ndarray | None = None) -> dict[str, Any]:
        """Fit on one column ``y`` (1-D, no NaN, already logged when ``log``); returns the state.
        ``exog`` [t, k]: regressors the ARIMA family uses (the others ignore them)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter of small fits; the AICc decides
            try:
                if self.name == "combination":
                    form, params, aicc = _fit_combination(np.asarray(y, dtype=float), season, log, self.config, exog)
                elif exog is not None and self.name == "ets":
                    form, params, aicc = _fit_ets_exog(np.asarray(y, dtype=float), season, log, self.config,
                                                       np.asarray(exog, dtype=float))
                elif exog is not None and self.name in ARIMA_FAMILY:
                    form, params, aicc = _fit_arima_exog(self.name, np.asarray(y, dtype=float), season, self.config,
                                                         np.asarray(exog, dtype=float))
                else:
                    form, params, aicc = _FIT[self.name](np.asarray(y, dtype=float), season, log, self.config)
            except FIT_ERRORS as exc:
                raise DataError(f"{self.name} could not be fitted to a series of {len(y)} steps "
                                f"({type(exc).__name__}: {exc}).") from None
        return {"name": self.name, "form": form, "params": [float(p) for p in params],
                "aicc": None if aicc is None or not math.isfinite(aicc) else float(aicc)}


def fit_columns(forecaster: Forecaster, level: np.ndarray, season: int, log: bool) -> dict[str, Any]:
    """Fit ``forecaster`` to each column of ``level`` [t, C] (filled, logged): the saved state."""
    return {"name": forecaster.name, "season": season, "log": log,
            "columns": [forecaster.fit(level[:, c], season, log) for c in range(level.shape[1])]}


def forecast(state: dict[str, Any], level: np.ndarray, horizon: int) -> np.ndarray:
    """The next ``horizon`` values [H, C] after ``level`` [t, C] (filled, logged; the result is
    exponentiated back when the state says log)."""
    cols = state["columns"]
    if len(cols) != level.shape[1]:
        raise DataError(f"the saved {state['name']} forecaster has {len(cols)} column(s); the history has "
                        f"{level.shape[1]}.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = np.column_stack([_FORECAST[c["name"]](c, level[:, i], horizon) for i, c in enumerate(cols)])
    return np.exp(out) if state["log"] else out


def forecast_one(col: dict[str, Any], y: np.ndarray, horizon: int, levels: list[int] | tuple[int, ...] = (),
                 exog: np.ndarray | None = None, future: np.ndarray | None = None, log: bool = False
                 ) -> tuple[np.ndarray, dict[int, tuple[np.ndarray, np.ndarray]]]:
    """One column's forecast [H] after ``y`` (filled, logged) and its own prediction intervals at
    ``levels`` (percent): {level: (lower [H], upper [H])}; back on the original scale when ``log``.
    ``exog`` [t, k] and ``future`` [H, k]: the regressors of the history and of the horizon, for a
    state fitted with them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mean, bands = _INTERVALS[col["name"]](col, np.asarray(y, dtype=float), horizon, list(levels), exog, future)
    if log:
        mean, bands = np.exp(mean), {lv: (np.exp(lo), np.exp(hi)) for lv, (lo, hi) in bands.items()}
    return mean, bands


def check_state(state: Any) -> str | None:
    """What is wrong with a saved forecaster state read from a file (None when it is usable)."""
    if not isinstance(state, dict) or not isinstance(state.get("columns"), list) or not state["columns"]:
        return "no 'columns' list of fitted forecasters"
    if state.get("name") not in NAMES or not isinstance(state.get("log"), bool):
        return f"unknown forecaster {state.get('name')!r}"
    for c in state["columns"]:
        if not isinstance(c, dict) or c.get("name") != state["name"]:
            return "a column's forecaster does not match the model"
        params = c.get("params")
        if not isinstance(params, list) or not all(isinstance(p, (int, float)) and math.isfinite(p) for p in params):
            return "parameters that are not finite numbers"
        problem = _FORMS[c["name"]](c.get("form"), len(params)) if c["name"] != "combination" else _check_combination(c)
        if problem:
            return problem
    return None


# ---------------------------------------------------------------- ARIMA family (baselines and arima)


def _arima(y: np.ndarray, order: tuple[int, int, int], seasonal: tuple[int, int, int, int], trend: str,
           exog: np.ndarray | None = None) -> Any:
    from statsmodels.tsa.arima.model import ARIMA

    return ARIMA(y, exog=exog, order=order, seasonal_order=seasonal, trend=trend)


def _arima_form(order: tuple[int, ...], seasonal: tuple[int, ...], trend: str) -> dict[str, Any]:
    return {"order": list(order), "seasonal_order": list(seasonal), "trend": trend}


def _fit_arima_form(y: np.ndarray, form: dict[str, Any], method: str = "statespace", exog: np.ndarray | None = None
                    ) -> tuple[dict[str, Any], np.ndarray, float]:
    res = _arima(y, tuple(form["order"]), tuple(form["seasonal_order"]), form["trend"], exog).fit(method=method)
    if exog is not None:
        form = {**form, "exog": int(exog.shape[1])}
    return form, np.asarray(res.params), float(res.aicc)


def _fit_fixed(form_of: Any) -> Any:
    def fit(y: np.ndarray, season: int, log: bool, config: Any) -> tuple[dict[str, Any], np.ndarray, float]:
        return _fit_arima_form(y, form_of(season))

    return fit


def _naive_form(season: int) -> dict[str, Any]:
    return _arima_form((0, 1, 0), (0, 0, 0, 0), "n")


def _seasonal_naive_form(season: int) -> dict[str, Any]:
    if season < 2:
        return _naive_form(season)  # no season: the last value
    return _arima_form((0, 0, 0), (0, 1, 0, season), "n")


def _drift_form(season: int) -> dict[str, Any]:
    return _arima_form((0, 1, 0), (0, 0, 0, 0), "t")  # a trend in the levels is a constant step


def _fit_arima(y: np.ndarray, season: int, log: bool, config: ArimaConfig, exog: np.ndarray | None = None
               ) -> tuple[dict[str, Any], np.ndarray, float]:
    """A given order, or the lowest AICc of a small search: d = 1, seasonal D = 1 when the series
    holds three seasons, (p, q) and (P, Q) among a few low orders (the airline model is one of them).
    The innovations MLE gives the state-space estimates (same AICc on airline) about 10x faster."""
    seasonal = season >= 2 and len(y) >= 3 * season
    if config.order is not None:
        orders = [tuple(config.order)]
    else:
        orders = [(0, 1, 1), (1, 1, 0), (1, 1, 1)]
    if not seasonal:
        seasonals = [(0, 0, 0)]
    elif config.seasonal_order is not None:
        seasonals = [tuple(config.seasonal_order)]
    else:
        seasonals = [(0, 1, 1), (1, 1, 0)]
    best = None
    for order in orders:
        for P, D, Q in seasonals:
            s = (P, D, Q, season if (P, D, Q) != (0, 0, 0) else 0)
            trend = "t" if order[1] + D == 1 else ("c" if order[1] + D == 0 else "n")
            try:
                fitted = _fit_arima_form(y, _arima_form(order, s, trend), "innovations_mle", exog)
            except FIT_ERRORS:
                continue  # an order the data cannot support; the others still count
            if best is None or _aicc(fitted[2]) < _aicc(best[2]):
                best = fitted
    if best is None:
        return _fit_arima_form(y, _drift_form(season), exog=exog)
    return best


def _aicc(value: float) -> float:
    return value if math.isfinite(value) else math.inf


def _forecast_arima(col: dict[str, Any], y: np.ndarray, horizon: int) -> np.ndarray:
    return _intervals_arima(col, y, horizon, [], None, None)[0]


def _fit_arima_exog(name: str, y: np.ndarray, season: int, config: Any, exog: np.ndarray
                    ) -> tuple[dict[str, Any], np.ndarray, float]:
    """A regression on ``exog`` with ARIMA errors: ``arima``'s order search with the regressors in
    every candidate, or the fixed form of a baseline."""
    if name == "arima":
        return _fit_arima(y, season, False, config, exog)
    form = {"naive": _naive_form, "seasonal_naive": _seasonal_naive_form, "drift": _drift_form}[name](season)
    return _fit_arima_form(y, form, exog=exog)


def _intervals_arima(col: dict[str, Any], y: np.ndarray, horizon: int, levels: list[int], exog: np.ndarray | None,
                     future: np.ndarray | None) -> tuple[np.ndarray, dict[int, tuple[np.ndarray, np.ndarray]]]:
    f = col["form"]
    k = int(f.get("exog", 0))
    if k and (exog is None or future is None or exog.shape[1] != k or len(future) < horizon):
        raise DataError(f"the {col['name']} forecaster was fitted with {k} exogenous regressor(s); their values "
                        f"for the history and all {horizon} future steps are needed.")
    model = _arima(y, tuple(f["order"]), tuple(f["seasonal_order"]), f["trend"], exog if k else None)
    pred = model.filter(np.asarray(col["params"])).get_forecast(horizon, exog=future[:horizon] if k else None)
    bands = {}
    for level in levels:
        ci = np.asarray(pred.conf_int(alpha=1 - level / 100))
        bands[level] = (ci[:, 0], ci[:, 1])
    return np.asarray(pred.predicted_mean), bands


def _check_arima_form(form: Any, n_params: int) -> str | None:
    if not isinstance(form, dict) or form.get("trend") not in ("n", "c", "t"):
        return "an ARIMA form without a valid trend"
    for key, size in (("order", 3), ("seasonal_order", 4)):
        v = form.get(key)
        if not (isinstance(v, list) and len(v) == size and all(isinstance(i, int) and 0 <= i <= 400 for i in v)):
            return f"an ARIMA '{key}' that is not {size} whole numbers"
    p, _, q = form["order"]
    P, _, Q, _ = form["seasonal_order"]
    exog = form.get("exog", 0)
    if not (isinstance(exog, int) and 0 <= exog <= 1000):
        return "an ARIMA 'exog' that is not a count of regressors"
    expected = p + q + P + Q + 1 + (form["trend"] != "n") + exog
    if n_params != expected:
        return f"{n_params} ARIMA parameters where the order needs {expected}"
    return None


# ---------------------------------------------------------------- ETS


def _ets(y: np.ndarray, form: dict[str, Any]) -> Any:
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    return ETSModel(y, error="add", trend=form["trend"], damped_trend=form["damped"], seasonal=form["seasonal"],
                    seasonal_periods=form["season"] if form["seasonal"] else None)


def _fit_ets(y: np.ndarray, season: int, log: bool, config: EtsConfig) -> tuple[dict[str, Any], np.ndarray, float]:
    """The lowest AICc of the additive-error forms allowed by the options (seasonal forms need two seasons)."""
    trends = {"none": [(None, False)], "add": [("add", False)], "add_damped": [("add", True)],
              "auto": [(None, False), ("add", False), ("add", True)]}[config.trend]
    can_season = season >= 2 and len(y) >= 2 * season + 2
    seasonals = {"none": [None], "add": ["add"], "mul": ["mul"], "auto": ["add", None]}[config.seasonal]
    if config.seasonal == "auto" and not log and (y > 0).all():
        seasonals.append("mul")
    seasonals = [s for s in seasonals if s is None or can_season] or [None]
    best = None
    for trend, damped in trends:
        for seasonal in seasonals:
            form = {"trend": trend, "damped": damped, "seasonal": seasonal, "season": season}
            try:
                res = _ets(y, form).fit(disp=False)
            except FIT_ERRORS:
                continue
            if best is None or _aicc(res.aicc) < _aicc(best[2]):
                best = (form, np.asarray(res.params), float(res.aicc))
    if best is None:
        raise DataError(f"ETS could not be fitted to a series of {len(y)} steps.")
    return best


def _forecast_ets(col: dict[str, Any], y: np.ndarray, horizon: int) -> np.ndarray:
    return np.asarray(_ets(y, col["form"]).smooth(np.asarray(col["params"])).forecast(horizon))


def _fit_ets_exog(y: np.ndarray, season: int, log: bool, config: EtsConfig, exog: np.ndarray
                  ) -> tuple[dict[str, Any], np.ndarray, float]:
    """Regression with ETS errors (statsmodels' ETS takes no regressors): least squares of ``y`` on
    the regressors and a constant, then ETS on ``y`` less the regressors' part (the constant stays in
    ETS's level). The coefficients are saved in the form as ``beta``."""
    design = np.column_stack([exog, np.ones(len(y))])
    beta = np.linalg.lstsq(design, y, rcond=None)[0][:-1]
    form, params, aicc = _fit_ets(y - exog @ beta, season, log, config)
    return {**form, "beta": [float(b) for b in beta]}, params, aicc


def _intervals_ets(col: dict[str, Any], y: np.ndarray, horizon: int, levels: list[int], exog: Any, future: Any
                   ) -> tuple[np.ndarray, dict[int, tuple[np.ndarray, np.ndarray]]]:
    beta = col["form"].get("beta")
    if beta is not None:
        if exog is None or future is None or exog.shape[1] != len(beta) or len(future) < horizon:
            raise DataError(f"the ets forecaster was fitted with {len(beta)} exogenous regressor(s); their values "
                            f"for the history and all {horizon} future steps are needed.")
        shift = np.asarray(future[:horizon], dtype=float) @ np.asarray(beta)
        mean, bands = _intervals_ets({**col, "form": {k: v for k, v in col["form"].items() if k != "beta"}},
                                     y - np.asarray(exog, dtype=float) @ np.asarray(beta), horizon, levels, None, None)
        return mean + shift, {lv: (lo + shift, hi + shift) for lv, (lo, hi) in bands.items()}
    import pandas as pd

    if not levels:
        return _forecast_ets(col, y, horizon), {}
    # a Series: statsmodels' prediction results index it; exact variances for the additive forms,
    # a multiplicative season's simulated (seeded for repeatable bounds)
    res = _ets(pd.Series(y), col["form"]).smooth(np.asarray(col["params"]))
    pred = res.get_prediction(start=len(y), end=len(y) + horizon - 1, rng=np.random.default_rng(0))
    bands = {}
    for level in levels:
        frame = pred.summary_frame(alpha=1 - level / 100)
        bands[level] = (frame["pi_lower"].to_numpy(), frame["pi_upper"].to_numpy())
    return np.asarray(pred.predicted_mean), bands


def _check_ets_form(form: Any, n_params: int) -> str | None:
    beta = form.get("beta", []) if isinstance(form, dict) else None
    ok = (isinstance(form, dict) and form.get("trend") in (None, "add") and isinstance(form.get("damped"), bool)
          and form.get("seasonal") in (None, "add", "mul") and isinstance(form.get("season"), int)
          and 1 <= form["season"] <= 10_000 and isinstance(beta, list) and len(beta) <= 1000
          and all(isinstance(b, (int, float)) and math.isfinite(b) for b in beta))
    return None if ok else "an ETS form that is not one trainflow fits"


# ---------------------------------------------------------------- Theta


def _theta_fit(y: np.ndarray, season: int, log: bool) -> Any:
    from statsmodels.tsa.forecasting.theta import ThetaModel

    deseason = season >= 2 and len(y) >= 2 * season
    model = ThetaModel(y, period=season if deseason else 1, deseasonalize=deseason,
                       method="additive" if log or (y <= 0).any() else "auto")
    return model.fit(use_mle=False)


def _fit_theta(y: np.ndarray, season: int, log: bool, config: ThetaConfig) -> tuple[dict[str, Any], np.ndarray, None]:
    res = _theta_fit(y, season, log)
    return {"theta": config.theta, "season": season, "log": log}, np.asarray(res.params), None


def _forecast_theta(col: dict[str, Any], y: np.ndarray, horizon: int) -> np.ndarray:
    f = col["form"]  # two closed-form parameters: re-estimated on the history given
    return np.asarray(_theta_fit(y, f["season"], f["log"]).forecast(horizon, theta=f["theta"]))


def _intervals_theta(col: dict[str, Any], y: np.ndarray, horizon: int, levels: list[int], exog: Any, future: Any
                     ) -> tuple[np.ndarray, dict[int, tuple[np.ndarray, np.ndarray]]]:
    f = col["form"]
    res = _theta_fit(y, f["season"], f["log"])
    mean = np.asarray(res.forecast(horizon, theta=f["theta"]))
    bands = {}
    for level in levels:
        # statsmodels' interval is around the SES part; centred on the Theta forecast by its half-widths
        frame = res.prediction_intervals(horizon, theta=f["theta"], alpha=1 - level / 100)
        half = (frame["upper"].to_numpy() - frame["lower"].to_numpy()) / 2
        bands[level] = (mean - half, mean + half)
    return mean, bands


def _check_theta_form(form: Any, n_params: int) -> str | None:
    ok = (isinstance(form, dict) and isinstance(form.get("theta"), (int, float)) and form["theta"] >= 1
          and isinstance(form.get("season"), int) and form["season"] >= 1 and isinstance(form.get("log"), bool))
    return None if ok else "a Theta form that is not one trainflow fits"


# ---------------------------------------------------------------- combination


def _fit_combination(y: np.ndarray, season: int, log: bool, config: CombinationConfig, exog: np.ndarray | None
                     ) -> tuple[dict[str, Any], list[float], None]:
    """Each member fitted with its options (and the regressors where it takes them)."""
    members = [Forecaster(m, config_class(m).model_validate(config.options.get(m, {}))).fit(y, season, log, exog)
               for m in config.members]
    return combined(members, config.how), [], None


def combined(members: list[dict[str, Any]], how: str) -> dict[str, Any]:
    """A combination's form from its members' fitted columns."""
    return {"how": how, "members": members}


def combine(how: str, parts: list[np.ndarray]) -> np.ndarray:
    """The median or mean of ``parts`` (each [H]), step by step."""
    return np.median(parts, axis=0) if how == "median" else np.mean(parts, axis=0)


def _intervals_combination(col: dict[str, Any], y: np.ndarray, horizon: int, levels: list[int], exog: Any,
                           future: Any) -> tuple[np.ndarray, dict[int, tuple[np.ndarray, np.ndarray]]]:
    """The members' forecasts combined, and each bound combined likewise (the members' own intervals:
    a heuristic, which the panel's backtest calibration rescales)."""
    how, outs = col["form"]["how"], [forecast_one(m, y, horizon, levels, exog, future) for m in col["form"]["members"]]
    bands = {lv: (combine(how, [b[lv][0] for _, b in outs]), combine(how, [b[lv][1] for _, b in outs])) for lv in levels}
    return combine(how, [mean for mean, _ in outs]), bands


def _check_combination(col: dict[str, Any]) -> str | None:
    form = col.get("form")
    if not (isinstance(form, dict) and form.get("how") in ("median", "mean") and isinstance(form.get("members"), list)
            and 2 <= len(form["members"]) <= 10 and col.get("params") == []):
        return "a combination form that is not one trainflow fits"
    for m in form["members"]:
        if not isinstance(m, dict) or m.get("name") not in MEMBERS:
            return "a combination member that is not a known forecaster"
        problem = check_state({"name": m["name"], "log": False, "columns": [m]})
        if problem:
            return f"a combination member with {problem}"
    return None


_FIT = {"naive": _fit_fixed(_naive_form), "seasonal_naive": _fit_fixed(_seasonal_naive_form),
        "drift": _fit_fixed(_drift_form), "arima": _fit_arima, "ets": _fit_ets, "theta": _fit_theta}
_FORECAST = {**{n: _forecast_arima for n in ("naive", "seasonal_naive", "drift", "arima")},
             "ets": _forecast_ets, "theta": _forecast_theta}
_FORECAST["combination"] = lambda col, y, horizon: _intervals_combination(col, y, horizon, [], None, None)[0]
_INTERVALS = {**{n: _intervals_arima for n in ARIMA_FAMILY}, "ets": _intervals_ets, "theta": _intervals_theta,
              "combination": _intervals_combination}
_FORMS = {**{n: _check_arima_form for n in ("naive", "seasonal_naive", "drift", "arima")},
          "ets": _check_ets_form, "theta": _check_theta_form}


# ---------------------------------------------------------------- components

_SUMMARIES = {
    "naive": ("Naive forecast: every future step repeats the last value (ARIMA(0,1,0)).", NoForecastOptions),
    "seasonal_naive": ("Seasonal naive: each step repeats the value one season earlier (seasonal ARIMA "
                       "(0,0,0)(0,1,0)).", NoForecastOptions),
    "drift": ("Drift: the last value plus the average step of the training part (ARIMA(0,1,0) with trend).",
              NoForecastOptions),
    "ets": ("ETS exponential smoothing (statsmodels), error/trend/season form chosen by AICc.", EtsConfig),
    "arima": ("Seasonal ARIMA (statsmodels), the order searched by AICc or given.", ArimaConfig),
    "theta": ("The Theta method (statsmodels): SES with drift on the deseasonalized series.", ThetaConfig),
    "combination": ("The median (or mean) of its members' forecasts: by default damped ETS, Theta and ARIMA.",
                    CombinationConfig),
}


def config_class(name: str) -> type[BaseModel]:
    """The options model of the statistical forecaster ``name``."""
    return _SUMMARIES[name][1]


def _register(name: str) -> None:
    summary, config = _SUMMARIES[name]

    def build(config: BaseModel, **_: Any) -> Forecaster:
        return Forecaster(name, config)

    build.__doc__ = summary
    component("model", name, config, tasks=("forecasting",), modality="forecast", statistical=True)(build)


for _name in NAMES:
    _register(_name)
