"""Sequence preprocessing every sequence model shares (networks and classical classifiers): the
``preprocess.sequence`` options, :class:`SeriesPreprocessor` (missing values, z-normalization;
statistics from the training split only), and the stored series set as arrays and back."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trainflow.errors import DataError
from trainflow.refs import load_npz
from trainflow.tasks.common.series import SequencePreprocess  # noqa: F401 (the section, shared with forecast)
from trainflow.tasks.sequence import advice
from trainflow.tasks.sequence.loaders import SeriesSet, check_padding, pad

if TYPE_CHECKING:
    from trainflow.spec import PipelineSpec


# ---------------------------------------------------------------- preprocessing


class SeriesPreprocessor:
    """Missing values and z-normalization for lists of [time, channels] arrays (an estimator:
    ``fit`` on training series only, state in attributes ending in ``_``)."""

    def __init__(self, normalize: str = "per_series", missing: str = "linear"):
        self.normalize = normalize
        self.missing = missing

    def fit(self, series: list[np.ndarray]) -> SeriesPreprocessor:
        """Learn the per-channel mean and std of the training series (used by ``global``)."""
        values = np.concatenate([s for s in series if len(s)], axis=0)
        mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
        self.mean_ = np.nan_to_num(mean).tolist()
        self.std_ = np.where(np.nan_to_num(std) > 1e-8, np.nan_to_num(std), 1.0).tolist()
        self.channels_ = int(values.shape[1])
        return self

    def state(self) -> dict[str, Any]:
        return {"normalize": self.normalize, "missing": self.missing, "mean": self.mean_, "std": self.std_,
                "channels": self.channels_}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SeriesPreprocessor:
        pre = cls(state["normalize"], state["missing"])
        pre.mean_, pre.std_, pre.channels_ = state["mean"], state["std"], state["channels"]
        return pre

    @property
    def out_channels(self) -> int:
        return self.channels_ * (2 if self.missing == "mask" else 1)

    def transform_one(self, s: np.ndarray) -> np.ndarray:
        """One series [time, channels] -> [time, out_channels] without NaN."""
        import pandas as pd

        s = np.asarray(s, dtype=np.float64)
        if s.shape[1] != self.channels_:
            raise DataError(f"a series has {s.shape[1]} channel(s); the model was trained on {self.channels_}.")
        if self.normalize == "per_series":
            with np.errstate(all="ignore"):
                mean, std = np.nanmean(s, axis=0), np.nanstd(s, axis=0)
            std = np.where(np.nan_to_num(std) > 1e-8, std, 1.0)
            s = (s - np.nan_to_num(mean)) / std
        elif self.normalize == "global":
            s = (s - np.asarray(self.mean_)) / np.asarray(self.std_)
        observed = ~np.isnan(s)
        if self.missing == "mask":
            return np.concatenate([np.nan_to_num(s), observed.astype(np.float64)], axis=1)
        if not observed.all():
            frame = pd.DataFrame(s)
            if self.missing == "linear":
                frame = frame.interpolate(method="linear", limit_direction="both")
            elif self.missing == "ffill":
                frame = frame.ffill().bfill()  # leading gaps have no past value: take the next one
            else:
                frame = frame.bfill().ffill()
            s = frame.to_numpy()
        return np.nan_to_num(s)

    def transform(self, series: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Series -> padded values [n, T, out_channels] (float32) and mask [n, T]."""
        return pad([self.transform_one(s) for s in series])


def pack(data: SeriesSet) -> dict[str, np.ndarray]:
    """Loaded series as the stored arrays: values [n, T, C] (NaN after a series' end), ``lengths``, ``ids``,
    and where present labels ``y``, the fixed ``fold`` and the multi-label matrix ``Y``."""
    lengths = np.array([len(s) for s in data.series], dtype=np.int64)
    check_padding(lengths.tolist(), data.channels, 8)  # the NaN-padded float64 store, before it is allocated
    T = int(lengths.max()) if len(lengths) else 0
    x = np.full((len(data.series), T, data.channels), np.nan, dtype=np.float64)
    for i, s in enumerate(data.series):
        x[i, : len(s)] = s
    arrays = {"x": x, "lengths": lengths, "ids": np.asarray(data.ids, dtype=str)}
    if data.y is not None:
        arrays["y"] = np.asarray(data.y, dtype=str)
    if data.fold is not None:
        arrays["fold"] = np.asarray(data.fold, dtype=str)
    if data.keys is not None:
        arrays["keys"] = np.asarray(data.keys, dtype=str)
    if data.label_matrix is not None:
        arrays["Y"] = data.label_matrix
    return arrays


def load_series(path: str | Path) -> dict[str, Any]:
    """A stored set back as ``series`` (list of arrays), ``y``, ``ids``, ``fold`` and (multi-label) ``Y``."""
    arrays = load_npz(path)
    series = [arrays["x"][i, :n] for i, n in enumerate(arrays["lengths"])]
    return {"series": series, "y": arrays.get("y"), "ids": arrays["ids"], "fold": arrays.get("fold"),
            "Y": arrays.get("Y")}


def preprocessing(series: list[np.ndarray], spec: PipelineSpec, classes: list[str], y: Any = None,
                  normalize: tuple[str, str] | None = None) -> tuple[SeriesPreprocessor, dict[str, Any]]:
    """The preprocessor fitted on the training ``series`` and the config prediction needs (every sequence
    model). ``normalize: auto`` is resolved here from the labels ``y`` (:func:`advice.choose_normalization`)
    unless the caller gives its own ``(choice, reason)``; the reason is kept as ``normalize_choice``."""
    pre_cfg = spec.preprocess.sequence
    why = None
    if pre_cfg.normalize == "auto":
        choice, why = normalize or advice.choose_normalization(series, y, spec.task)
    else:
        choice = pre_cfg.normalize
    pre = SeriesPreprocessor(choice, pre_cfg.missing).fit(series)
    return pre, {"kind": "sequence", "task": spec.task, "classes": classes, "preprocess": pre.state(),
                 "loader": spec.data.loader, "loader_options": spec.data.options(),
                 **({"normalize_choice": why} if why else {})}


def preprocessing_steps(pre: SeriesPreprocessor, spec: PipelineSpec, meta: dict[str, Any],
                        why: str | None = None) -> list[str]:
    """The preprocessing lines of the report (``why``: how ``normalize: auto`` chose)."""
    steps = [f"missing values: {pre.missing}", f"z-normalize: {pre.normalize}" + (f" ({why})" if why else ""),
             f"unequal lengths: {spec.preprocess.sequence.lengths}" + (" (all series have the same length)"
                                                                      if meta.get("min_length") == meta.get("max_length") else "")]
    return steps + ([f"imbalance: {spec.train.imbalance}"] if spec.train.imbalance != "none" else [])
