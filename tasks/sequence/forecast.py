"""The forecast modality: one time series (one or more value columns) forecast ``horizon`` steps ahead.

    load (timeseries_csv) -> validate (GX on a per-column summary) -> split (chronological: the last
    ``horizon`` steps are the test) -> fit (rolling-origin backtest on the training part, baselines,
    the model or ``auto``'s choice) -> evaluate (RMSE, MAE, MAPE next to every baseline)

Forecasters: the statistical ones of :mod:`trainflow.tasks.sequence.statistical` (naive, seasonal
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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from trainflow import trust
from trainflow.cache_keys import cache_key, model_key
from trainflow.errors import DataError, did_you_mean
from trainflow.modality import Example
from trainflow.refs import DataRef, Evaluation, ModelRef, SplitRef, file_digest, save_parquet, store_parquet
from trainflow.registry import component
from trainflow.tasks.common import uncertainty as U
from trainflow.tasks.common import metrics as M
from trainflow.tasks.common import neural, plots
from trainflow.tasks.common.load import existing_file
from trainflow.tasks.common.neural import NeuralModality
from trainflow.tasks.common.validate import Check, run_expectations
from trainflow.tasks.sequence import backtest, statistical
from trainflow.tasks.sequence.loaders import read_csv_frame
from trainflow.tasks.sequence.modality import SequencePreprocess
from trainflow.tasks.sequence.timeaxis import TimeAxis, file_dates

if TYPE_CHECKING:
    from trainflow.spec import PipelineSpec


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
    origins: int = Field(3, ge=1, description="Backtest forecast origins inside the training part (rolling origin)")
    origin_step: int | None = Field(None, ge=1, description="Steps between backtest origins; default: the season, "
                                                            "or the horizon when shorter or without a season")
    # One network is a draw: on short series seeds 0 and 1 of the same GRU differed by 40% in RMSE.
    ensemble: int | None = Field(None, ge=1, le=100, description="Networks averaged over this many seeds; default: "
                                                         "5 when the training part gives fewer than 200 windows, else 1")


class TimeSeriesCsvConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(..., description="CSV file with a time column and value column(s)")
    time: str | None = Field(None, description="Time column (dates or numbers); default: the first column")
    values: list[str] | None = Field(None, description="Value columns; default: every other column")
    delimiter: str = ","


def _line(i: int) -> int:
    return int(i) + 2  # header is line 1


@component("loader", "timeseries_csv", TimeSeriesCsvConfig, modality="forecast")
def load_timeseries_csv(config: TimeSeriesCsvConfig) -> Any:
    """CSV for forecasting: a time column (dates or numbers, sorted, unique) and value column(s)."""
    return read_timeseries(config.path, config.time, config.values, config.delimiter)


def read_timeseries(path: str | Path, time: str | None, values: list[str] | None, delimiter: str = ",") -> Any:
    """Read and check a time-series CSV; returns a DataFrame (time column first, then the values).

    Raises DataError naming the file and line for unsorted or duplicate times, text in a value
    column, or a missing column.
    """
    import pandas as pd

    path = existing_file(path)
    df = read_csv_frame(path, delimiter)
    time = time or df.columns[0]
    cols = values or [c for c in df.columns if c != time]
    for col, option in [(time, "data.time")] + [(c, "data.values") for c in cols]:
        if col not in df.columns:
            raise DataError(f"The column '{col}' ({option}) is not in '{path}'{did_you_mean(col, list(df.columns))}. "
                            f"Its columns are: {', '.join(df.columns)}.")
    if not cols:
        raise DataError(f"'{path}' has no value column besides the time column '{time}'.")
    for col in cols:
        converted = pd.to_numeric(df[col], errors="coerce")
        bad = df[col][converted.isna() & df[col].notna()]
        if len(bad):
            raise DataError(f"'{path}', line {_line(bad.index[0])}: column '{col}' holds {bad.iloc[0]!r}, "
                            f"which is not a number.")
        df[col] = converted.astype(float)
    raw = df[time]
    if df[time].isna().any():
        raise DataError(f"'{path}', line {_line(np.flatnonzero(raw.isna())[0])}: the time column '{time}' is empty.")
    t = raw if pd.api.types.is_numeric_dtype(raw) else file_dates(raw.astype(str), path, time)
    if t.isna().any():
        i = int(np.flatnonzero(t.isna())[0])
        raise DataError(f"'{path}', line {_line(i)}: the time column '{time}' holds {raw.iloc[i]!r}, "
                        f"which is neither a date nor a number.")
    tv = t.to_numpy()
    for i in range(1, len(tv)):
        if tv[i] == tv[i - 1]:
            raise DataError(f"'{path}', line {_line(i)}: the time {raw.iloc[i]!r} repeats line {_line(i - 1)}; "
                            f"each time may appear once.")
        if tv[i] < tv[i - 1]:
            raise DataError(f"'{path}', line {_line(i)}: the time {raw.iloc[i]!r} comes before {raw.iloc[i - 1]!r} "
                            f"on line {_line(i - 1)}; sort the file by '{time}' (oldest first).")
    out = pd.DataFrame({time: raw.astype(str)})
    for col in cols:
        out[col] = df[col].to_numpy()
    out.attrs["time"] = time
    return out


# ---------------------------------------------------------------- store, validate, split


def store(df: Any, cache_dir: str, digest: str, config: Any) -> DataRef:
    """Save the series as Parquet in the cache, named by the source's digest."""
    path = store_parquet(df, cache_dir, digest)
    return DataRef(path=str(path), digest=digest, modality="forecast", meta={
        "rows": len(df), "time": df.columns[0], "values": list(df.columns[1:]), "source": config.path,
        "loader_options": config.model_dump(mode="json")})


#: a network needs at least this many (lookback -> horizon) training windows when the lookback is chosen for it
MIN_WINDOWS = 8

#: members of a saved seed ensemble at most (ForecastConfig.ensemble's bound; a larger saved one is damage)
MAX_ENSEMBLE = 100

#: below this many training windows a network is an ensemble of ENSEMBLE_SEEDS seeds by default
ENSEMBLE_BELOW, ENSEMBLE_SEEDS = 200, 5


def _lag(fc: ForecastConfig, season: int | None = None) -> int:
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
    h, lag, lookback = fc.horizon, _lag(fc, season), fc.lookback or 1
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


def validate(ref: DataRef, spec: PipelineSpec, docs_dir: str | None) -> dict[str, Any]:
    """Great Expectations on a per-column summary (length, missing share, constant) of the series."""
    import pandas as pd

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


def split(ref: DataRef, spec: PipelineSpec, cache_dir: str) -> SplitRef:
    """Chronological split: the last ``forecast.horizon`` steps are the test, everything before the training past."""
    import pandas as pd

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
    lag = _lag(fc, season)
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
    cuts = backtest.origins(n, h, fc.origins, step, need)
    if optional and not cuts and need > stat_history and backtest.origins(n, h, fc.origins, step, stat_history):
        # A network that would leave no backtest origin is left out, rather than the whole comparison.
        notes.append(f"networks left out: a backtest origin would need {need} steps before it for a network "
                     f"(lag {lag} + lookback {lookback} + horizon {h}); the training part has {n}")
        lookback, windows_n, need = 0, 0, stat_history
        cuts = backtest.origins(n, h, fc.origins, step, need)
    notes.append(f"backtest: {len(cuts)} origin(s) {step} steps apart in the training part, each forecasting "
                 f"{h} steps" + ("" if len(cuts) == fc.origins else
                                 f" (forecast.origins is {fc.origins}; each origin needs {need} steps before it)"))
    dropped = optional and networks and not lookback
    resolved = fc.model_copy(update={"season": season, "lookback": None if dropped else lookback or fc.lookback})
    return Plan(resolved, notes, ensemble, windows_n, cuts)


# ---------------------------------------------------------------- the transform chain (networks)


class SeriesTransform:
    """Missing values -> log -> differencing -> standardization, fitted on the past only, and back."""

    def __init__(self, fc: ForecastConfig, missing: str = "linear"):
        self.fc, self.missing = fc, missing

    def fill(self, v: np.ndarray) -> np.ndarray:
        import pandas as pd

        if not np.isnan(v).any():
            return v
        frame = pd.DataFrame(v)
        if self.missing == "ffill":
            frame = frame.ffill().bfill()
        elif self.missing == "bfill":
            frame = frame.bfill().ffill()
        else:
            frame = frame.interpolate(method="linear", limit_direction="both")
        return frame.to_numpy()

    def level(self, v: np.ndarray, source: str = "") -> np.ndarray:
        """Filled (and logged) values: the series before differencing."""
        v = self.fill(np.asarray(v, dtype=np.float64))
        if self.fc.transform == "log":
            if (v <= 0).any():
                raise DataError(f"forecast.transform is 'log' but the series{f' in {source!r}' if source else ''} "
                                f"has values <= 0 (smallest {v.min():g}); use transform: none.")
            v = np.log(v)
        return v

    def diff(self, level: np.ndarray) -> np.ndarray:
        lag = _lag(self.fc)
        return level[lag:] - level[:-lag] if lag else level

    def fit(self, past: np.ndarray, source: str = "") -> SeriesTransform:
        """Learn the standardization of the differenced training past."""
        z = self.diff(self.level(past, source))
        self.mean_ = z.mean(0).tolist() if self.fc.scale == "standard" else [0.0] * z.shape[1]
        std = z.std(0) if self.fc.scale == "standard" else np.ones(z.shape[1])
        self.std_ = np.where(std > 1e-8, std, 1.0).tolist()
        return self

    def forward(self, v: np.ndarray, source: str = "") -> np.ndarray:
        """Raw values [t, C] -> standardized differences [t - lag, C]."""
        return (self.diff(self.level(v, source)) - np.asarray(self.mean_)) / np.asarray(self.std_)

    def inverse(self, z_future: np.ndarray, history: np.ndarray) -> np.ndarray:
        """Standardized future differences [H, C] after raw ``history`` [t, C] -> raw future values [H, C]."""
        d = z_future * np.asarray(self.std_) + np.asarray(self.mean_)
        level = list(self.level(history))
        lag = _lag(self.fc)
        for step in d:
            level.append(step + level[-lag] if lag else step)
        future = np.asarray(level[len(history):])
        return np.exp(future) if self.fc.transform == "log" else future

    def state(self) -> dict[str, Any]:
        return {"forecast": self.fc.model_dump(), "missing": self.missing, "mean": self.mean_, "std": self.std_}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SeriesTransform:
        t = cls(ForecastConfig.model_validate(state["forecast"]), state["missing"])
        t.mean_, t.std_ = state["mean"], state["std"]
        return t


def windows(z: np.ndarray, lookback: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (lookback -> horizon) window of ``z`` [t, C]: inputs [n, lookback, C], targets [n, horizon * C]."""
    n = len(z) - lookback - horizon + 1
    x = np.stack([z[i:i + lookback] for i in range(n)]).astype(np.float32)
    y = np.stack([z[i + lookback:i + lookback + horizon].reshape(-1) for i in range(n)]).astype(np.float32)
    return x, y


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

    from trainflow.tasks.common.training import torch_threads, train_model
    from trainflow.tasks.sequence.networks import SeedEnsemble

    comp, options = candidate_config(spec, name)
    tf = SeriesTransform(fc, spec.preprocess.sequence.missing).fit(past, source)
    x, y = windows(tf.forward(past, source), fc.lookback, fc.horizon)
    inputs = (torch.from_numpy(x), torch.ones(x.shape[:2]), torch.from_numpy(y))
    nets, results = [], []
    with torch_threads(spec.train.num_threads):  # building and training; the process's count restored after
        for seed in seeds:
            torch.manual_seed(seed)  # the initial weights depend on the seed only
            net = comp.build(options, in_channels=past.shape[1], out_features=fc.horizon * past.shape[1],
                             task="forecasting")
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
    need = fc.lookback + _lag(fc)
    if len(history) < need:
        raise DataError(f"'{source}' has {len(history)} steps; the model needs the last {need} "
                        f"(lookback {fc.lookback} + the {fc.detrend} lag {_lag(fc)}) to forecast.")
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


# ---------------------------------------------------------------- fit


def candidates_of(spec: PipelineSpec) -> list[str]:
    """The forecasters a fit compares: the baselines, plus ``auto``'s candidates or the spec's model."""
    if spec.model.name == "auto":
        _, options = spec.model.resolve("model", task="forecasting")
        return list(dict.fromkeys([*statistical.BASELINES, *options.candidates]))
    return list(dict.fromkeys([*statistical.BASELINES, spec.model.name]))


def fit(split_ref: SplitRef, spec: PipelineSpec, cache_dir: str) -> ModelRef:
    """Backtest the baselines and the model (or ``auto``'s candidates) on the training part, fit the
    baselines and the chosen forecaster on the whole training part, and save them (JSON; networks
    as safetensors + JSON)."""
    import pandas as pd

    from trainflow.tasks.common.publish import artifact_key
    from trainflow.tasks.common.training import checkpoint_dir

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
                             "task": "forecasting"}, "transform": tf.state(), "history": history}
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
    if "order" in form:
        return f"ARIMA{tuple(form['order'])}{tuple(form['seasonal_order'])} trend {form['trend']}"
    if "damped" in form:
        return (f"ETS(A,{'N' if not form['trend'] else 'Ad' if form['damped'] else 'A'},"
                f"{ {None: 'N', 'add': 'A', 'mul': 'M'}[form['seasonal']]}) season {form['season']}")
    return f"Theta (theta {form['theta']}, season {form['season']})"


def save_json_model(folder: Path, config: dict[str, Any]) -> None:
    """Write a statistical model's JSON file into ``folder`` atomically (via a temp folder)."""
    import json
    import shutil

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / neural.CONFIG_FILE).write_text(json.dumps(config, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)


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
        states = [config["state"]] if config["forecaster"] == "statistical" else []
        for state in [*states, *config["baselines"].values()]:
            problem = statistical.check_state(state)
            if problem:
                raise ValueError(f"a forecaster with {problem}")
        if config["forecaster"] != "network":
            return None, config
        from trainflow.tasks.sequence.networks import SeedEnsemble

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


def evaluate(model_ref: ModelRef, split_ref: SplitRef, spec: PipelineSpec, plots_dir: str) -> Evaluation:
    """RMSE, MAE, MAPE of the forecast of the test horizon next to every baseline (naive, seasonal
    naive, drift, ETS, ARIMA), the backtest per origin and on average, plots on the time axis."""
    import pandas as pd

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
            f"{col}: {config['chosen']} forecast of the last {len(test)} steps (test) vs truth and baselines")
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


def predict(run_dir: str | Path, input_path: str | Path) -> Any:
    """Forecast the ``horizon`` steps after the end of a new time-series CSV (same columns as in
    training); the times of those steps are typed like the file's (years stay whole numbers)."""
    import pandas as pd

    model, config = load_model(run_dir)
    opts = config.get("loader_options", {})
    df = read_timeseries(input_path, config["time"], config["values"], opts.get("delimiter", ","))
    pred = forecast(model, config, df[config["values"]].to_numpy(dtype=float), str(input_path))
    out = pd.DataFrame({"step": np.arange(1, len(pred) + 1)})
    times = TimeAxis.of(df[config["time"]]).after(df[config["time"]], len(pred))
    if times is not None:
        out[config["time"]] = times
    for c, col in enumerate(config["values"]):
        out[col] = pred[:, c]
    return out


# ---------------------------------------------------------------- auto and the modality


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


@component("modality", "forecast")
class Forecast(NeuralModality, stages_from=__name__):
    """One time series forecast ``horizon`` steps ahead, next to naive, seasonal-naive, drift, ETS and
    ARIMA baselines, with a rolling-origin backtest on the training part.

    Chronological split; transforms, statistical models and networks fitted on the past only."""

    sections = {**NeuralModality.sections, "preprocess.sequence": SequencePreprocess, "forecast": ForecastConfig}
    default_models = {"forecasting": "auto"}

    def spec_problems(self, spec: PipelineSpec) -> list[str]:
        """The device; forecasting interpolates missing values (it cannot mask them); ``auto``'s candidates."""
        from trainflow.errors import SpecError
        from trainflow.spec import models_for

        problems = super().spec_problems(spec)
        if spec.preprocess.sequence.missing == "mask":
            problems.append("'preprocess.sequence.missing' is 'mask', which forecasting does not support; "
                            "use linear, ffill or bfill.")
        if spec.model.name == "auto" and not spec.model.problems("model", task="forecasting"):
            _, auto = spec.model.resolve("model", task="forecasting")
            known = [m for m in models_for("forecast", "forecasting") if m != "auto"]
            for i, name in enumerate(auto.candidates):
                if name not in known:
                    problems.append(f"'model.candidates[{i}]' must be one of {', '.join(known)}. Got {name!r}"
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
