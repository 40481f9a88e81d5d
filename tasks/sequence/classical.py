"""Classical sequence classifiers from sktime: ``minirocket``, ``rocket``, ``multirocket`` and ``knn_dtw``.

- ``minirocket`` / ``rocket``: sktime's random convolutional kernel transforms (MiniRocket:
  Dempster et al. 2021; ROCKET: Dempster et al. 2020), then features standardized and a ridge
  classifier whose penalty is chosen by scikit-learn's efficient leave-one-out CV over
  ``alphas``. MiniRocket takes unequal lengths natively (``MiniRocketMultivariateVariable``);
  ROCKET needs one length, so every series is resampled (linear interpolation in time) to the
  longest training length when lengths differ.
- ``multirocket``: sktime's MultiRocket (Tan et al. 2022; MiniRocket's kernels on the series and
  its first differences, four pooling operators), the same ridge; lengths resampled like ROCKET's.
- ``knn_dtw``: sktime's k-nearest-neighbour classifier with dynamic time warping, the warping
  window a share of the series length (Sakoe-Chiba band); unequal lengths are resampled like ROCKET's.

They take the same preprocessed series as the networks (:class:`SeriesPreprocessor`: missing
values, normalization) and are saved as data only, never pickle: ``model.npz`` (arrays,
read with ``allow_pickle=False``) and ``model.json`` (options, classes, preprocessing). The
fitted transform is kept as its parameter arrays and the ridge as its coefficients; 1-NN keeps
the training series. At load time the sktime transformer is rebuilt from those arrays.

The transforms run in numba without bounds checks, so a model folder (something people share) is
not trusted to hold sane arrays: at load time a fresh transformer is fitted on one dummy series of
the saved seed, length and channels (~0.1 s), and the saved arrays must match it. Every integer
array (dilations, channel indices, kernel lengths, paddings, counts) is drawn from the seed, the
length and the channel count only, so it must be identical; the float arrays (biases; ROCKET's
weights) depend on the training data, or are drawn by numba's generator, so they are checked for
the same shape and dtype and finite values. The ridge arrays must fit the transform's width.

Class "probabilities" of the ridge models are the softmax of the ridge decision values (scores
for ROC AUC and ranking, not calibrated probabilities); 1-NN gives the neighbours' vote.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from trainflow import resources
from trainflow.registry import component

ARRAYS_FILE = "model.npz"
#: builders of these components return a :class:`ClassicalClassifier`, not a network
CLASSICAL = {"classical": True}


class MiniRocketConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # 10,000 is the paper's default; MiniRocket rounds down to a multiple of 84.
    num_kernels: int = Field(10_000, ge=84, description="Features of the transform (a multiple of 84)")
    max_dilations_per_kernel: int = Field(32, ge=1, description="Largest number of dilations per kernel")
    alphas: list[float] = Field([1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3], min_length=1,
                                description="Ridge penalties tried by leave-one-out CV on the training split")


class RocketConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    num_kernels: int = Field(10_000, ge=1, description="Random kernels (two features each)")
    alphas: list[float] = Field([1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3], min_length=1,
                                description="Ridge penalties tried by leave-one-out CV on the training split")


class MultiRocketConfig(MiniRocketConfig):
    # 6,250 kernels x 4 pooling features x (series + first differences) = ~50,000 features (the paper's default)
    num_kernels: int = Field(6_250, ge=84, description="Kernels (rounded down to a multiple of 84); features = 8 x kernels")


class KnnDtwConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # A band of 10% of the length is the usual UCR baseline; 1.0 is full (unconstrained) DTW.
    window: float = Field(0.1, ge=0, le=1, description="Warping window as a share of the series length (1 = full DTW)")
    n_neighbors: int = Field(1, ge=1, description="Neighbours that vote")


# ---------------------------------------------------------------- data shapes


MAX_DUMMY_VALUES = 50_000_000


def equal_length(series: list[np.ndarray]) -> bool:
    return len({len(s) for s in series}) == 1


def to_numpy3d(series: list[np.ndarray]) -> np.ndarray:
    """Equal-length [time, channels] series -> sktime's numpy3D [n, channels, time] (float32: MiniRocket's type)."""
    return np.stack([s.T for s in series]).astype(np.float32)


def to_df_list(series: list[np.ndarray]) -> list[Any]:
    """Series of any lengths -> sktime's df-list (one [time, channels] frame each)."""
    import pandas as pd

    return [pd.DataFrame(s.astype(np.float32)) for s in series]


def resample(series: list[np.ndarray], length: int) -> list[np.ndarray]:
    """Each series linearly interpolated in time to ``length`` steps (the rule for models that need one length)."""
    out = []
    for s in series:
        if len(s) == length:
            out.append(s)
            continue
        old, new = np.linspace(0, 1, len(s)), np.linspace(0, 1, length)
        out.append(np.column_stack([np.interp(new, old, s[:, c]) for c in range(s.shape[1])]))
    return out


def softmax(scores: np.ndarray) -> np.ndarray:
    z = scores - scores.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


# ---------------------------------------------------------------- the fitted models


class ClassicalClassifier:
    """A fitted classical classifier that is saved as arrays plus JSON (see the module docstring).

    ``fit(series, y)`` on [time, channels] arrays and class indices; ``proba(series)`` [n, k];
    ``arrays()`` and ``state()`` what is saved; ``restore(arrays, state)`` rebuilds it.
    """

    name = ""

    def __init__(self, config: BaseModel, seed: int = 0):
        self.config, self.seed = config, seed

    def fit(self, series: list[np.ndarray], y: np.ndarray, n_classes: int) -> ClassicalClassifier:
        raise NotImplementedError

    def proba(self, series: list[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def arrays(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        raise NotImplementedError

    def restore(self, arrays: dict[str, np.ndarray], state: dict[str, Any], channels: int) -> ClassicalClassifier:
        """Rebuild from saved ``arrays`` and ``state`` for input series of ``channels`` channels;
        ValueError naming the array that is not what this model would have saved."""
        raise NotImplementedError

    def summary(self) -> str:
        """One line for the report's preprocessing steps."""
        return self.name


class _RidgeOnTransform(ClassicalClassifier):
    """A kernel transform, standardized features and a ridge classifier (alpha by leave-one-out CV).
    With ``score_loo`` set before ``fit``, ``loo_accuracy_`` is the leave-one-out accuracy on the
    training series (what ``normalize: auto`` compares)."""

    score_loo = False
    #: what each of the transform's parameter arrays is (for error messages)
    param_names: tuple[str, ...] = ()

    def _transformer(self, equal: bool) -> Any:
        raise NotImplementedError

    def _params(self, transformer: Any) -> tuple[np.ndarray, ...]:
        raise NotImplementedError

    def _n_features(self, transformer: Any) -> int:
        """Features the fitted ``transformer`` outputs per series."""
        raise NotImplementedError

    def _input_length(self, state: dict[str, Any]) -> int:
        """The series length the saved transform was fitted at (what its dilations are drawn from)."""
        raise NotImplementedError

    def _set_params(self, transformer: Any, params: tuple[np.ndarray, ...], state: dict[str, Any]) -> None:
        raise NotImplementedError

    def _input(self, series: list[np.ndarray]) -> Any:
        return to_numpy3d(series) if self.equal_ else to_df_list(series)

    def features(self, series: list[np.ndarray]) -> np.ndarray:
        length = getattr(self, "fit_length_", None) if getattr(self, "equal_", False) else None
        if length is not None:  # fitted on one length: its input is one [n, c, length] array
            other = [i for i, s in enumerate(series) if len(s) != length]
            if other:
                from trainflow.errors import DataError

                raise DataError(f"{len(other)} of {len(series)} series are not {length} steps long, the "
                                f"length every training series had (series {other[0] + 1}: {len(series[other[0]])} "
                                f"steps); give series of that length, or train on series of unequal lengths.")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sktime's hints about equal-length or univariate input
            return np.asarray(self.transformer_.transform(self._input(series)), dtype=np.float64)

    def fit(self, series, y, n_classes):
        from sklearn.linear_model import RidgeClassifierCV

        self.equal_, self.fit_length_ = equal_length(series), len(series[0])
        self.transformer_ = self._transformer(self.equal_)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.transformer_.fit(self._input(series))
        feats = self.features(series)
        self.mean_, std = feats.mean(0), feats.std(0)
        self.std_ = np.where(std > 1e-12, std, 1.0)
        z = (feats - self.mean_) / self.std_
        ridge = RidgeClassifierCV(alphas=np.asarray(self.config.alphas)).fit(z, y)
        if self.score_loo:  # the same efficient leave-one-out, scored by accuracy at the chosen alpha
            self.loo_accuracy_ = float(RidgeClassifierCV(alphas=[ridge.alpha_], scoring="accuracy").fit(z, y).best_score_)
        self.classes_ = ridge.classes_.astype(np.int64)
        # binary: one decision function (scikit-learn may give its coefficients as one row or a 1-d array)
        self.coef_ = np.atleast_2d(ridge.coef_).astype(np.float64)
        self.intercept_ = np.atleast_1d(ridge.intercept_).astype(np.float64)
        self.alpha_, self.n_classes_ = float(ridge.alpha_), int(n_classes)
        return self

    def proba(self, series):
        z = (self.features(series) - self.mean_) / self.std_
        scores = z @ self.coef_.T + self.intercept_
        if scores.shape[1] == 1:  # binary ridge: one decision value, positive means classes_[1]
            scores = np.column_stack([-scores[:, 0], scores[:, 0]])
        out = np.full((len(z), self.n_classes_), -np.inf)
        out[:, self.classes_] = scores
        return softmax(out)

    def arrays(self):
        params = {f"param_{i}": np.asarray(p) for i, p in enumerate(self._params(self.transformer_))}
        return {**params, "mean": self.mean_, "std": self.std_, "coef": self.coef_, "intercept": self.intercept_,
                "classes": self.classes_}

    def state(self):
        return {"equal_length": self.equal_, "alpha": self.alpha_, "n_classes": self.n_classes_, "seed": self.seed,
                "n_params": len(self._params(self.transformer_)), **self._extra_state(self.transformer_)}

    def _extra_state(self, transformer: Any) -> dict[str, Any]:
        """What besides its arrays the fitted ``transformer`` needs to be rebuilt."""
        return {}

    def restore(self, arrays, state, channels):
        self.equal_, self.alpha_, self.n_classes_ = bool(state["equal_length"]), float(state["alpha"]), int(state["n_classes"])
        missing = [k for k in ("seed", *self._length_keys()) if k not in state]
        if missing:  # saved before the arrays were checked: nothing to check them against
            raise ValueError(f"model.json's 'fitted' section lacks {', '.join(map(repr, missing))}, which the "
                             "arrays are checked against (saved by an earlier trainflow); re-run the pipeline")
        self.seed = int(state["seed"])
        length = self._input_length(state)
        # The check fits a transform on one dummy series of this size: a crafted length must not
        # make loading allocate gigabytes (50M values is 400 MB, far beyond any series we fit).
        if not 0 < length * channels <= MAX_DUMMY_VALUES:
            raise ValueError(f"the saved series length {length} x {channels} channels is outside 1..{MAX_DUMMY_VALUES:,} values")
        fresh = self._fresh(channels, length)
        expected = self._params(fresh)
        if int(state["n_params"]) != len(expected):
            raise ValueError(f"the transform has {len(expected)} parameter arrays, not {state['n_params']}")
        params = tuple(arrays[f"param_{i}"] for i in range(len(expected)))
        check_params(params, expected, self.param_names, self.name)
        extra = self._extra_state(fresh)
        if {k: state.get(k) for k in extra} != extra:
            raise ValueError(f"model.json's fitted {sorted(extra)} are not the transform's {extra}")
        self.transformer_ = self._transformer(self.equal_)
        self._set_params(self.transformer_, params, state)
        self.mean_, self.std_, self.coef_ = arrays["mean"], arrays["std"], arrays["coef"]
        self.intercept_, self.classes_ = arrays["intercept"], arrays["classes"]
        width = self._n_features(fresh)
        for name in ("mean", "std", "coef", "intercept"):
            if arrays[name].dtype != np.float64 or not np.isfinite(arrays[name]).all():
                raise ValueError(f"array {name!r} must hold finite float64 values")
        if (self.mean_.shape != (width,) or self.std_.shape != (width,) or not self.std_.all() or self.coef_.ndim != 2
                or self.coef_.shape[1] != width or self.intercept_.shape != (len(self.coef_),)
                or self.classes_.dtype != np.int64 or self.classes_.shape != (len(np.unique(self.classes_)),)
                or len(self.classes_) < 2 or len(self.coef_) not in (1, len(self.classes_))
                or self.classes_.min() < 0 or self.classes_.max() >= self.n_classes_):
            raise ValueError(f"the ridge arrays (mean, std, coef, intercept, classes) do not fit together or do not "
                             f"fit the transform's {width} features and {self.n_classes_} classes")
        return self

    def _length_keys(self) -> tuple[str, ...]:
        """The keys of the saved state that :meth:`_input_length` reads."""
        return ("length",)

    def _fresh(self, channels: int, length: int) -> Any:
        """A transformer fitted as this model's was (seed, options, length, channels) on one dummy series."""
        dummy = [np.random.default_rng(0).normal(size=(length, channels))]
        transformer = self._transformer(self.equal_)
        numpy_random = np.random.get_state()  # sktime seeds numpy's global generator: leave it as it was
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                transformer.fit(self._input(dummy))
        finally:
            np.random.set_state(numpy_random)
        return transformer

    def summary(self):
        return f"{self.name}: {len(self.mean_)} features, ridge alpha {self.alpha_:g} (leave-one-out CV)"


def check_params(saved: tuple[np.ndarray, ...], expected: tuple[np.ndarray, ...], names: tuple[str, ...],
                 model: str) -> None:
    """ValueError naming the first saved transform array that is not what the transform builds:
    integer arrays must be identical, float arrays of the same shape and dtype and finite."""
    for i, (got, want, what) in enumerate(zip(saved, expected, names)):
        where = f"array 'param_{i}' ({model}'s {what})"
        if got.dtype != want.dtype or got.shape != want.shape:
            raise ValueError(f"{where} is {got.dtype} {list(got.shape)}; the transform's is {want.dtype} "
                             f"{list(want.shape)}")
        if np.issubdtype(want.dtype, np.integer) and not np.array_equal(got, want):
            raise ValueError(f"{where} differs from what the transform draws from the saved seed, length and "
                             "channels")
        if np.issubdtype(want.dtype, np.floating) and not np.isfinite(got).all():
            raise ValueError(f"{where} holds values that are not finite")


def _mark_fitted(transformer: Any) -> None:
    """Set the flag sktime's ``transform`` checks, for a transformer whose fitted parameters were restored."""
    transformer._is_fitted = True


class MiniRocket(_RidgeOnTransform):
    """sktime's MiniRocketMultivariate (equal lengths) or MiniRocketMultivariateVariable (unequal)."""

    name = "minirocket"
    param_names = ("channels per combination", "channel indices", "dilations", "features per dilation", "biases")

    def _transformer(self, equal):
        from sktime.transformations.rocket import MiniRocketMultivariate, MiniRocketMultivariateVariable

        cls = MiniRocketMultivariate if equal else MiniRocketMultivariateVariable
        # n_jobs: numba threads over the series, each series' features its own (the same whatever the count)
        # Shorter series than MiniRocket's kernel (9 steps) are padded with zeros (the normalized mean).
        extra = {} if equal else {"pad_value_short_series": 0.0}
        return cls(num_kernels=self.config.num_kernels, max_dilations_per_kernel=self.config.max_dilations_per_kernel,
                   random_state=self.seed, n_jobs=resources.current(), **extra)

    def _params(self, transformer):
        return tuple(transformer.parameters)

    def _n_features(self, transformer):
        return len(transformer.parameters[-1])  # one feature per bias

    def _extra_state(self, transformer):
        if self.equal_:
            return {"series_length": int(self.fit_length_)}
        return {"reference_length": int(transformer._fitted_reference_length),
                "num_kernels_": int(transformer.num_kernels_)}

    def _length_keys(self):
        return ("series_length",) if self.equal_ else ("reference_length",)

    def _input_length(self, state):
        self.fit_length_ = int(state[self._length_keys()[0]])
        return self.fit_length_

    def _set_params(self, transformer, params, state):
        transformer.parameters = params
        if not self.equal_:
            transformer._fitted_reference_length = int(state["reference_length"])
            transformer.num_kernels_ = _kernels(state, self._n_features(transformer))
        _mark_fitted(transformer)


def _kernels(state: dict[str, Any], features: int) -> int:
    """The saved ``num_kernels_``, which the saved arrays bound: never more kernels than features
    (a config claiming 2e9 kernels would make the transform allocate for them)."""
    kernels = int(state["num_kernels_"])
    if not 1 <= kernels <= features:
        raise ValueError(f"'num_kernels_' is {kernels}, but the saved arrays hold {features} features")
    return kernels


class Rocket(_RidgeOnTransform):
    """sktime's Rocket; unequal lengths are resampled to the longest training length."""

    name = "rocket"
    param_names = ("weights", "kernel lengths", "biases", "dilations", "paddings", "channels per kernel",
                   "channel indices")

    def _transformer(self, equal):
        from sktime.transformations.rocket import Rocket as SkRocket

        return SkRocket(num_kernels=self.config.num_kernels, random_state=self.seed, n_jobs=resources.current())

    def _input(self, series):
        return to_numpy3d(resample(series, self.length_))

    def fit(self, series, y, n_classes):
        self.length_ = max(len(s) for s in series)
        return super().fit(series, y, n_classes)

    def _params(self, transformer):
        return tuple(transformer.kernels)

    def _n_features(self, transformer):
        return 2 * len(transformer.kernels[2])  # two per kernel: the maximum and the share of positive values

    def _extra_state(self, transformer):
        return {"length": self.length_}

    def _input_length(self, state):
        self.length_ = int(state["length"])
        return self.length_

    def _set_params(self, transformer, params, state):
        self.length_ = int(state["length"])
        transformer.kernels = params
        _mark_fitted(transformer)

    def summary(self):
        return super().summary() + (f"; series resampled to {self.length_} steps" if not self.equal_ else "")


class MultiRocket(Rocket):
    """sktime's MultiRocketMultivariate (Tan et al. 2022): MiniRocket's kernels on the series and its
    first differences, four pooling features each; unequal lengths resampled to the longest training
    length (at least 10 steps, MultiRocket's shortest input)."""

    name = "multirocket"
    param_names = tuple(f"{what} ({of})" for of in ("series", "differences") for what in MiniRocket.param_names)

    def _transformer(self, equal):
        from sktime.transformations.rocket import MultiRocketMultivariate

        return MultiRocketMultivariate(num_kernels=self.config.num_kernels, n_jobs=resources.current(), random_state=self.seed,
                                       max_dilations_per_kernel=self.config.max_dilations_per_kernel)

    def _input(self, series):
        return super()._input(series).astype(np.float64)  # its transform's numba kernels take float64 only

    def fit(self, series, y, n_classes):
        self.length_ = max(10, *(len(s) for s in series))
        return _RidgeOnTransform.fit(self, series, y, n_classes)

    def _params(self, transformer):
        return (*transformer.parameter, *transformer.parameter1)

    def _n_features(self, transformer):
        return 4 * (len(transformer.parameter[-1]) + len(transformer.parameter1[-1]))  # four poolings per bias

    def _extra_state(self, transformer):
        return {"length": self.length_, "n_first": len(transformer.parameter),
                "num_kernels_": int(transformer.num_kernels_)}

    def _set_params(self, transformer, params, state):
        self.length_, first = int(state["length"]), int(state["n_first"])
        transformer.parameter, transformer.parameter1 = tuple(params[:first]), tuple(params[first:])
        transformer.num_kernels_ = _kernels(state, self._n_features(transformer))
        _mark_fitted(transformer)


class KnnDtw(ClassicalClassifier):
    """sktime's KNeighborsTimeSeriesClassifier with DTW; the training series are what is saved.
    sktime's DTW k-NN needs one length: unequal series are resampled to the longest training length."""

    name = "knn_dtw"

    def _estimator(self) -> Any:
        from sktime.classification.distance_based import KNeighborsTimeSeriesClassifier

        return KNeighborsTimeSeriesClassifier(n_neighbors=self.config.n_neighbors, distance="dtw",
                                              distance_params={"window": self.config.window})

    def _panel(self, series: list[np.ndarray]) -> np.ndarray:
        return to_numpy3d(resample(series, self.length_)).astype(np.float64)

    def fit(self, series, y, n_classes):
        self.series_ = [np.asarray(s, dtype=np.float64) for s in series]
        self.y_, self.n_classes_ = np.asarray(y, dtype=np.int64), int(n_classes)
        self.equal_, self.length_ = equal_length(series), max(len(s) for s in series)
        self.estimator_ = self._estimator().fit(self._panel(self.series_), self.y_)
        return self

    def proba(self, series):
        scores = np.asarray(self.estimator_.predict_proba(self._panel(series)), dtype=np.float64)
        out = np.zeros((len(series), self.n_classes_))
        out[:, np.asarray(self.estimator_.classes_, dtype=np.int64)] = scores
        return out

    def arrays(self):
        lengths = np.array([len(s) for s in self.series_], dtype=np.int64)
        x = np.zeros((len(self.series_), int(lengths.max()), self.series_[0].shape[1]))
        for i, s in enumerate(self.series_):
            x[i, : len(s)] = s
        return {"x": x, "lengths": lengths, "y": self.y_}

    def state(self):
        return {"n_classes": self.n_classes_}

    def restore(self, arrays, state, channels):
        x, lengths, y, n_classes = arrays["x"], arrays["lengths"], arrays["y"], int(state["n_classes"])
        if (x.dtype != np.float64 or x.ndim != 3 or x.shape[2] != channels or not np.isfinite(x).all()
                or lengths.dtype != np.int64 or lengths.shape != (len(x),) or y.dtype != np.int64
                or y.shape != (len(x),) or not len(x) or lengths.min() < 1 or lengths.max() > x.shape[1]
                or y.min() < 0 or y.max() >= n_classes):
            raise ValueError(f"the arrays x, lengths and y are not {channels}-channel training series (float64, "
                             f"finite), their lengths and their classes below {n_classes}")
        return self.fit([x[i, :n] for i, n in enumerate(lengths)], y, n_classes)

    def summary(self):
        return (f"knn_dtw: {self.config.n_neighbors}-NN, DTW window {self.config.window:g} of the length"
                + ("" if self.equal_ else f"; series resampled to {self.length_} steps"))


# ---------------------------------------------------------------- components


@component("model", "minirocket", MiniRocketConfig, tasks=("classification",), modality="sequence", **CLASSICAL)
def build_minirocket(config: MiniRocketConfig, *, seed: int = 0, **_: Any) -> MiniRocket:
    """MiniRocket (sktime) features + ridge classifier with CV over alphas: fast and strong."""
    return MiniRocket(config, seed)


@component("model", "rocket", RocketConfig, tasks=("classification",), modality="sequence", random=True,
           **CLASSICAL)
def build_rocket(config: RocketConfig, *, seed: int = 0, **_: Any) -> Rocket:
    """ROCKET (sktime) random kernels + ridge classifier with CV over alphas."""
    return Rocket(config, seed)


@component("model", "multirocket", MultiRocketConfig, tasks=("classification",), modality="sequence", random=True,
           **CLASSICAL)
def build_multirocket(config: MultiRocketConfig, *, seed: int = 0, **_: Any) -> MultiRocket:
    """MultiRocket (sktime): MiniRocket's kernels on the series and its differences, four pooling
    features each, + ridge classifier with CV over alphas: stronger than MiniRocket, ~5x slower."""
    return MultiRocket(config, seed)


@component("model", "knn_dtw", KnnDtwConfig, tasks=("classification",), modality="sequence", **CLASSICAL)
def build_knn_dtw(config: KnnDtwConfig, **_: Any) -> KnnDtw:
    """k-nearest neighbours (default 1) with dynamic time warping in a warping window (sktime)."""
    return KnnDtw(config)


def is_classical(name: str) -> bool:
    """Whether the registered model ``name`` is one of these (not a network)."""
    from trainflow.registry import REGISTRY

    try:
        return bool(REGISTRY.get("model", name).extra.get("classical"))
    except Exception:  # an unknown name is reported by the spec's own check
        return False


# ---------------------------------------------------------------- fit, save, load


def fit(split_ref: Any, spec: Any, cache_dir: str) -> Any:
    """Preprocess the training series (fitted on them only), fit the spec's classical model and save
    it (``model.npz`` + ``model.json``) in the cache under the model's key; returns the reference."""
    import time
    from pathlib import Path

    from trainflow.cache_keys import model_key
    from trainflow.tasks.common.labels import targets
    from trainflow.refs import ModelRef
    from trainflow.tasks.sequence import preprocess as seq

    data = seq.load_series(split_ref.train.path)
    y, classes = targets(data["y"], spec.task, split_ref.train.meta.get("source", ""))
    comp, options = spec.model.resolve("model", task=spec.task)
    # the selection score first: a tuner may stop a hopeless candidate after a fold (before the fit)
    cv = cross_validate(data["series"], data["y"], y, classes, spec) if spec.split.cv_folds >= 2 else None
    started, cpu = time.perf_counter(), time.process_time()
    pre, model, config = fit_series(data["series"], data["y"], y, classes, spec)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    folder = Path(cache_dir) / "models" / model_key(split_ref, spec)[:16]
    save(folder, model, {"model": spec.model.name, "options": options.model_dump(mode="json"), **config,
                         "fitted": model.state(), "fit_seconds": round(seconds, 3), "fit_cpu_seconds": round(cpu, 3)})
    steps = [*seq.preprocessing_steps(pre, spec, split_ref.train.meta, config.get("normalize_choice")), model.summary()]
    return ModelRef.of_folder(folder, ARRAYS_FILE, "sequence", {
        "steps": steps, "classes": classes, **({"cv": cv} if cv else {}),
        "notes": [f"{spec.model.name} fitted in {seconds:.1f} s ({cpu:.1f} s CPU)"]})


def fit_series(series: list[np.ndarray], labels: Any, y: np.ndarray, classes: list[str],
               spec: Any) -> tuple[Any, ClassicalClassifier, dict[str, Any]]:
    """The preprocessor fitted on ``series``, the spec's classical model fitted on them (class indices
    ``y``; ``labels``: their text, for ``normalize: auto``) and the config prediction needs. With
    ``normalize: auto`` and a ridge on a transform, both normalisations are fitted and the better
    leave-one-out accuracy of the ridge on these series is kept (ties: per_series)."""
    from trainflow.tasks.sequence import preprocess as seq

    comp, options = spec.model.resolve("model", task=spec.task)

    def fit_with(normalize: tuple[str, str] | None) -> tuple[Any, ClassicalClassifier, dict[str, Any]]:
        pre, config = seq.preprocessing(series, spec, classes, labels, normalize)
        model = comp.build(options, seed=spec.seed)
        model.score_loo = normalize is not None
        return pre, model.fit([pre.transform_one(s) for s in series], y, len(classes)), config

    if spec.preprocess.sequence.normalize == "auto" and isinstance(comp.build(options), _RidgeOnTransform):
        # the ridge's leave-one-out accuracy is nearly free: fit both and keep the better (ties: per_series)
        tried = [fit_with((norm, "")) for norm in ("per_series", "global")]
        pre, model, config = max(tried, key=lambda t: t[1].loo_accuracy_)  # max keeps the first of equals
        scores = ", ".join(f"{t[0].normalize} {t[1].loo_accuracy_:.3f}" for t in tried)
        config["normalize_choice"] = (f"normalize auto -> {pre.normalize}: the better leave-one-out accuracy of "
                                      f"the ridge on the training split ({scores}; ties keep per_series)")
        return pre, model, config
    return fit_with(None)


def cross_validate(series: list[np.ndarray], labels: Any, y: np.ndarray, classes: list[str],
                   spec: Any) -> dict[str, Any]:
    """Stratified k-fold CV (``split.cv_folds``, ``split.seed``) on the training series: in every fold
    the preprocessing and the model (and the ``normalize: auto`` choice) are fitted on the other folds
    only; the primary metric per fold. Each fold's running mean is reported (a tuner may prune)."""
    from sklearn.model_selection import StratifiedKFold

    from trainflow.tasks.common import metrics as M
    from trainflow.tasks.common.selection import report

    primary = spec.evaluate.primary or M.PRIMARY[spec.task]
    k = min(spec.split.cv_folds, int(np.bincount(y).max()))  # a class smaller than k is left out of some folds
    scores = []
    for tr, va in StratifiedKFold(k, shuffle=True, random_state=spec.split.seed).split(np.zeros(len(y)), y):
        pre, model, _ = fit_series([series[i] for i in tr], np.asarray(labels)[tr], y[tr], classes, spec)
        proba = model.proba([pre.transform_one(series[i]) for i in va])
        scores.append(float(M.score([primary], y[va], proba.argmax(1), proba, classes)[primary]))
        report(len(scores), {f"cv_{primary}": float(np.mean(scores))})
    return {"metric": primary, "folds": scores, "mean": float(np.mean(scores)), "std": float(np.std(scores))}


def save(folder: Any, model: ClassicalClassifier, config: dict[str, Any]) -> None:
    """Write the model's arrays (``model.npz``, no object arrays) and ``model.json`` atomically."""
    import json
    import shutil

    from trainflow.tasks.common.neural import CONFIG_FILE

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    np.savez(tmp / ARRAYS_FILE, **model.arrays())
    (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)


def load(folder: Any) -> tuple[ClassicalClassifier, dict[str, Any]]:
    """Rebuild a saved classical model from its arrays and JSON (data only: the arrays are read with
    ``allow_pickle=False`` and the model's type comes from the registry, never from the file).
    DataError naming the file when it is missing or damaged."""
    from trainflow import trust
    from trainflow.archives import MODEL_ZIP_BYTES
    from trainflow.errors import DataError
    from trainflow.refs import load_npz
    from trainflow.registry import REGISTRY
    from trainflow.tasks.common.neural import CONFIG_FILE, saved_config
    from trainflow.tasks.sequence import preprocess as seq

    folder, config = saved_config(folder, ARRAYS_FILE, "sequence")
    try:
        comp = REGISTRY.get("model", config["model"])
        if not comp.extra.get("classical"):
            raise ValueError(f"model {config['model']!r} is not a classical sequence model")
        model = comp.build(comp.config.model_validate(config["options"]))
    except Exception as exc:  # valid JSON, not a classical model's config
        raise trust.damaged(folder / CONFIG_FILE, exc) from None
    try:
        # the channels prediction feeds the transform: the preprocessor's output (checked against the input)
        channels = seq.SeriesPreprocessor.from_state(config["preprocess"]).out_channels
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"'preprocess' gives {channels!r} input channels")
    except Exception as exc:
        raise trust.damaged(folder / CONFIG_FILE, exc) from None
    try:
        arrays = load_npz(folder / ARRAYS_FILE, limit=MODEL_ZIP_BYTES)  # object arrays (pickle) are refused here
        model.restore(arrays, config["fitted"], channels)
    except DataError:
        raise
    except Exception as exc:
        raise trust.damaged(folder / ARRAYS_FILE, exc) from None
    return model, config
