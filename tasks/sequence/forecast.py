"""The forecast modality: one time series (one or more value columns) forecast ``horizon`` steps ahead.

    load (timeseries_csv) -> validate (GX on a per-column summary) -> split (chronological: the last
    ``horizon`` steps are the test) -> fit -> evaluate (RMSE, MAE, MAPE next to seasonal naive)

Fitting works on the training past only: missing values are interpolated in time, then the series
is log-transformed (optional), differenced (``difference`` or ``seasonal_difference``, which
removes trend and seasonality), and standardized with the mean and std of the training part. The
network (``gru``, ``lstm``, ``rnn``, ``cnn1d``) reads ``lookback`` steps and outputs all ``horizon``
steps at once (a direct multi-step forecast, MSE loss), trained with the shared loop on windows
cut from the training part. Forecasts are turned back into the original scale by undoing each step.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from trainflow.cache_keys import cache_key
from trainflow.errors import DataError, did_you_mean
from trainflow.modality import Example
from trainflow.refs import DataRef, Evaluation, ModelRef, SplitRef, file_digest, save_parquet, store_parquet
from trainflow.registry import component
from trainflow.tasks.common import metrics as M
from trainflow.tasks.common import neural, plots
from trainflow.tasks.common.load import existing_file
from trainflow.tasks.common.neural import NeuralModality
from trainflow.tasks.common.validate import Check, run_expectations
from trainflow.tasks.sequence.loaders import read_csv_frame
from trainflow.tasks.sequence.modality import SequencePreprocess, build_args

if TYPE_CHECKING:
    from trainflow.flows.spec import PipelineSpec

class ForecastConfig(BaseModel):
    """The spec's ``forecast`` section (forecasting pipelines)."""

    model_config = ConfigDict(extra="forbid")
    horizon: int = Field(12, ge=1, description="Steps to forecast; the last `horizon` steps are the test split")
    lookback: int = Field(24, ge=1, description="Past steps the network reads for one forecast")
    season: int = Field(12, ge=1, description="Season length in steps (12 for monthly data): seasonal naive "
                                              "baseline and seasonal differencing")
    # A log turns multiplicative seasonality (swings growing with the level) into additive.
    transform: Literal["none", "log"] = Field("none", description="none | log (values must be > 0)")
    # Year-over-year differences remove both the trend and the seasonal pattern.
    detrend: Literal["none", "difference", "seasonal_difference"] = Field(
        "seasonal_difference", description="none | difference (lag 1) | seasonal_difference (lag = season)")
    scale: Literal["standard", "none"] = Field("standard", description="Standardize with the training part's mean/std")


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
    t = raw if pd.api.types.is_numeric_dtype(raw) else pd.to_datetime(raw.astype(str), errors="coerce")
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


def min_length(fc: ForecastConfig) -> int:
    """Steps the training part needs: one window (lookback + horizon) after the differencing lag."""
    return fc.lookback + fc.horizon + _lag(fc)


def _lag(fc: ForecastConfig) -> int:
    return {"none": 0, "difference": 1, "seasonal_difference": fc.season}[fc.detrend]


def check_length(n: int, fc: ForecastConfig, source: str) -> None:
    """DataError when the series is too short for the horizon (and the lookback)."""
    if fc.horizon >= n:
        raise DataError(f"forecast.horizon is {fc.horizon} but the series in '{source}' has only {n} steps; the "
                        f"horizon must be shorter than the series (the last {fc.horizon} steps are the test).")
    need = min_length(fc) + fc.horizon
    if n < need:
        raise DataError(f"The series in '{source}' has {n} steps; forecast.horizon {fc.horizon} + lookback "
                        f"{fc.lookback} + the {fc.detrend} lag {_lag(fc)} need at least {need} (the test "
                        f"horizon plus one training window). Shorten the horizon or lookback.")


def validate(ref: DataRef, spec: PipelineSpec, docs_dir: str | None) -> dict[str, Any]:
    """Great Expectations on a per-column summary (length, missing share, constant) of the series."""
    import pandas as pd

    df = pd.read_parquet(ref.path)
    check_length(len(df), spec.forecast, ref.meta["source"])
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


def split(ref: DataRef, spec: PipelineSpec, cache_dir: str) -> SplitRef:
    """Chronological split: the last ``forecast.horizon`` steps are the test, everything before the training past."""
    import pandas as pd

    fc = spec.forecast
    df = pd.read_parquet(ref.path)
    check_length(len(df), fc, ref.meta["source"])
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


# ---------------------------------------------------------------- the transform chain


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


def seasonal_naive(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Each future step repeats the value one season (or a whole number of seasons) before it."""
    season = min(season, len(history))
    return np.stack([history[len(history) - season + (h % season)] for h in range(horizon)])


# ---------------------------------------------------------------- fit, evaluate, export, predict


def prepare(split_ref: SplitRef, spec: PipelineSpec) -> neural.Prepared:
    """The transform chain fitted on the training past; (lookback -> horizon) windows cut from it."""
    import pandas as pd
    import torch

    fc, meta = spec.forecast, split_ref.train.meta
    past = pd.read_parquet(split_ref.train.path)[meta["values"]].to_numpy(dtype=np.float64)
    tf = SeriesTransform(fc, spec.preprocess.sequence.missing).fit(past, meta["source"])
    z = tf.forward(past, meta["source"])
    if len(z) < fc.lookback + fc.horizon:
        raise DataError(f"The training part of '{meta['source']}' gives {len(z)} steps after differencing; "
                        f"one window needs lookback {fc.lookback} + horizon {fc.horizon}.")
    x, y = windows(z, fc.lookback, fc.horizon)
    channels = past.shape[1]
    return neural.Prepared(
        inputs=(torch.from_numpy(x), torch.ones(x.shape[:2]), torch.from_numpy(y)),
        build={"in_channels": channels, "out_features": fc.horizon * channels, "task": "forecasting"},
        config={"kind": "forecast", "task": "forecasting", "transform": tf.state(), "time": meta["time"],
                "values": meta["values"], "loader_options": spec.data.options()},
        steps=[f"missing values: {tf.missing}", f"transform: {fc.transform}", f"detrend: {fc.detrend}",
               f"scale: {fc.scale} (training past only)",
               f"windows: {len(x)} x (lookback {fc.lookback} -> horizon {fc.horizon})"],
        task="forecasting")


def fit(split_ref: SplitRef, spec: PipelineSpec, cache_dir: str) -> ModelRef:
    """Train the spec's network on windows of the (transformed) training past; save safetensors + JSON."""
    return neural.fit(prepare(split_ref, spec), split_ref, spec, cache_dir, "forecast")


def load_model(folder: str | Path) -> tuple[Any, dict[str, Any]]:
    """Rebuild the network from its JSON config and load its safetensors weights (on CPU)."""
    return neural.load_network(folder, "forecast", build_args)


def forecast(model: Any, config: dict[str, Any], history: np.ndarray, source: str = "") -> np.ndarray:
    """The next ``horizon`` raw values [H, C] after ``history`` [t, C]."""
    import torch

    from trainflow.tasks.common.training import predict as forward

    tf = SeriesTransform.from_state(config["transform"])
    fc = tf.fc
    need = fc.lookback + _lag(fc)
    if len(history) < need:
        raise DataError(f"'{source}' has {len(history)} steps; the model needs the last {need} "
                        f"(lookback {fc.lookback} + the {fc.detrend} lag {_lag(fc)}) to forecast.")
    z = tf.forward(history, source)[-fc.lookback:]
    x = torch.from_numpy(z[None].astype(np.float32))
    out = forward(model, (x, torch.ones(x.shape[:2])), device="cpu").numpy().reshape(fc.horizon, -1)
    return tf.inverse(out, history)


def evaluate(model_ref: ModelRef, split_ref: SplitRef, spec: PipelineSpec, plots_dir: str) -> Evaluation:
    """RMSE, MAE, MAPE of the forecast of the test horizon, next to the seasonal-naive baseline; a plot."""
    import pandas as pd

    model, config = load_model(model_ref.path)
    cols, tcol = config["values"], config["time"]
    train, test = pd.read_parquet(split_ref.train.path), pd.read_parquet(split_ref.test.path)
    past, truth = train[cols].to_numpy(dtype=float), test[cols].to_numpy(dtype=float)
    tf = SeriesTransform.from_state(config["transform"])
    pred = forecast(model, config, past, split_ref.train.meta["source"])
    naive = seasonal_naive(tf.fill(past), len(truth), tf.fc.season)
    keep = ~np.isnan(truth)
    names = spec.evaluate.metrics or M.DEFAULTS["forecasting"]
    metrics = M.score(names, truth[keep], pred[keep])
    base = M.score(names, truth[keep], naive[keep])
    metrics.update({f"seasonal_naive_{k}": v for k, v in base.items()})
    if "rmse" in metrics and base.get("rmse"):
        metrics["rmse_vs_seasonal_naive"] = metrics["rmse"] / base["rmse"]
    shown = min(len(train), 4 * tf.fc.season + tf.fc.lookback)
    t_past = list(range(len(train) - shown, len(train)))
    t_future = list(range(len(train), len(train) + len(test)))
    charts = {}
    for c, col in enumerate(cols):
        charts[f"Forecast vs truth: {col}"] = plots.series_png(
            {"history": (t_past, past[-shown:, c].tolist()), "truth": (t_future, truth[:, c].tolist()),
             "forecast": (t_future, pred[:, c].tolist()), "seasonal naive": (t_future, naive[:, c].tolist())},
            Path(plots_dir) / f"forecast_{c}.png",
            f"{col}: {spec.model.name} forecast of the last {len(test)} steps (test) vs truth")
    curves, history_tables = neural.history_report(model_ref, config, plots_dir)
    rows = []
    for i in range(len(test)):
        row = {"time": str(test[tcol].iloc[i])}
        for c, col in enumerate(cols):
            row |= {f"{col}": truth[i, c], f"{col} forecast": round(float(pred[i, c]), 3),
                    f"{col} seasonal naive": naive[i, c]}
        rows.append(row)
    notes = list(split_ref.meta.get("notes", []))
    if "rmse" in metrics and base.get("rmse"):
        notes.append(f"RMSE {metrics['rmse']:.3f} vs seasonal naive {base['rmse']:.3f} "
                     f"({100 * (1 - metrics['rmse'] / base['rmse']):+.1f}% better)")
    return Evaluation(metrics={k: float(v) for k, v in metrics.items() if not math.isnan(v)},
                      plots={**charts, **curves}, tables={"Forecast": rows, **history_tables}, notes=notes)


def predict(run_dir: str | Path, input_path: str | Path) -> Any:
    """Forecast the ``horizon`` steps after the end of a new time-series CSV (same columns as in training)."""
    import pandas as pd

    model, config = load_model(run_dir)
    opts = config.get("loader_options", {})
    df = read_timeseries(input_path, config["time"], config["values"], opts.get("delimiter", ","))
    pred = forecast(model, config, df[config["values"]].to_numpy(dtype=float), str(input_path))
    out = pd.DataFrame({"step": np.arange(1, len(pred) + 1)})
    times = next_times(df[config["time"]], len(pred))
    if times is not None:
        out[config["time"]] = times
    for c, col in enumerate(config["values"]):
        out[col] = pred[:, c]
    return out


def next_times(times: Any, horizon: int) -> list[str] | None:
    """The times of the next ``horizon`` steps, when the time column has a regular frequency."""
    import pandas as pd

    try:
        t = pd.to_datetime(times)
        freq = pd.infer_freq(t)
        if freq is None:
            return None
        future = pd.date_range(t.iloc[-1], periods=horizon + 1, freq=freq)[1:]
        fmt = "%Y-%m" if len(str(times.iloc[-1])) == 7 else None
        return [d.strftime(fmt) if fmt else str(d.date()) for d in future]
    except (ValueError, TypeError):
        numeric = pd.to_numeric(times, errors="coerce")
        if numeric.notna().all() and len(numeric) > 1:
            step = numeric.iloc[-1] - numeric.iloc[-2]
            return [str(numeric.iloc[-1] + step * (i + 1)) for i in range(horizon)]
        return None


# ---------------------------------------------------------------- the modality


@component("modality", "forecast")
class Forecast(NeuralModality, stages_from=__name__):
    """One time series forecast ``horizon`` steps ahead, next to a seasonal-naive baseline.

    Chronological split, transforms fitted on the past only, a network trained on windows by the
    shared loop."""

    sections = {**NeuralModality.sections, "preprocess.sequence": SequencePreprocess, "forecast": ForecastConfig}
    default_models = {"forecasting": "gru"}

    def spec_problems(self, spec: PipelineSpec) -> list[str]:
        """The device; forecasting interpolates missing values (it cannot mask them)."""
        problems = super().spec_problems(spec)
        if spec.preprocess.sequence.missing == "mask":
            problems.append("'preprocess.sequence.missing' is 'mask', which forecasting does not support; "
                            "use linear, ffill or bfill.")
        return problems

    def example(self, folder: Path) -> Example:
        """Five years of a monthly series with trend and season."""
        t = np.arange(60)
        values = 100 + t + 10 * np.sin(2 * np.pi * t / 12)
        lines = [f"{2000 + i // 12}-{i % 12 + 1:02d},{v:.3f}" for i, v in enumerate(values)]
        (folder / "series.csv").write_text("month,value\n" + "\n".join(lines) + "\n")
        return Example(spec={"task": "forecasting", "data": {"loader": "timeseries_csv", "path": str(folder / "series.csv")},
                             "forecast": {"horizon": 6, "lookback": 12}, "model": {"hidden": 4, "front_channels": 4},
                             "train": {"epochs": 2, "batch_size": 8}},
                       predict_input=folder / "series.csv")
