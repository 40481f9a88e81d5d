"""Tabular preprocessing components: imputers, encoders, scalers, reducers and samplers.

Each builder returns a scikit-learn / imbalanced-learn estimator (or ``None`` / ``"passthrough"``
for "do nothing"); :mod:`trainflow.tasks.tabular.modality` assembles them into one imbalanced-learn
``Pipeline``, so every statistic is fitted on the training split only and samplers are skipped
at predict time.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from trainflow.errors import DataError
from trainflow.registry import component


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Types a fitted component holds beyond the estimators it builds (see trainflow.trust): found by
# saving a fitted pipeline of every component with skops and listing what its file names.
INDICATOR = ("sklearn.impute._base.MissingIndicator",)
NEIGHBOURS = ("sklearn.neighbors._unsupervised.NearestNeighbors", "sklearn.neighbors._kd_tree.KDTree",
              "sklearn.metrics._dist_metrics.EuclideanDistance64")


class IndicatorOptions(Options):
    add_indicator: bool = Field(False, description="Add a 0/1 column per feature that had missing values")


class ConstantOptions(IndicatorOptions):
    fill_value: float = 0.0


class KnnOptions(IndicatorOptions):
    n_neighbors: int = Field(5, ge=1)
    weights: Literal["uniform", "distance"] = "uniform"


class IterativeOptions(IndicatorOptions):
    max_iter: int = Field(10, ge=1)


# ---------------------------------------------------------------- imputers (numeric columns)


@component("imputer", "drop_rows", Options)
def drop_rows(config: Options, seed: int = 0) -> None:
    """Drop rows with any missing feature value (row-wise, so it fits nothing and cannot leak)."""
    return None


def _simple(strategy: str):
    def build(config: IndicatorOptions, seed: int = 0) -> Any:
        from sklearn.impute import SimpleImputer

        return SimpleImputer(strategy=strategy, add_indicator=config.add_indicator, keep_empty_features=True)

    build.__doc__ = f"Replace missing values with the training split's {strategy.replace('_', ' ')} per column."
    build.__name__ = f"impute_{strategy}"
    return build


for _strategy in ("mean", "median", "most_frequent"):
    component("imputer", _strategy, IndicatorOptions, trusted_types=INDICATOR)(_simple(_strategy))


@component("imputer", "constant", ConstantOptions, trusted_types=INDICATOR)
def impute_constant(config: ConstantOptions, seed: int = 0) -> Any:
    """Replace missing values with a fixed number (fill_value)."""
    from sklearn.impute import SimpleImputer

    return SimpleImputer(strategy="constant", fill_value=config.fill_value, add_indicator=config.add_indicator,
                         keep_empty_features=True)


@component("imputer", "knn", KnnOptions, trusted_types=INDICATOR)
def impute_knn(config: KnnOptions, seed: int = 0) -> Any:
    """Fill each missing value from the k nearest training rows."""
    from sklearn.impute import KNNImputer

    return KNNImputer(n_neighbors=config.n_neighbors, weights=config.weights, add_indicator=config.add_indicator,
                      keep_empty_features=True)


@component("imputer", "iterative", IterativeOptions,
           trusted_types=INDICATOR + ("sklearn.impute._iterative._ImputerTriplet",
                                      "sklearn.linear_model._bayes.BayesianRidge"))
def impute_iterative(config: IterativeOptions, seed: int = 0) -> Any:
    """Regression imputation: model each feature with missing values from the others (MICE-style)."""
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401  (registers the class)
    from sklearn.impute import IterativeImputer

    # keep_empty_features would write into pandas' read-only arrays; all-empty columns fail validation anyway
    return IterativeImputer(max_iter=config.max_iter, random_state=seed, add_indicator=config.add_indicator)


# ---------------------------------------------------------------- encoders (categorical codes)


@component("encoder", "onehot", Options)
def encode_onehot(config: Options, seed: int = 0) -> Any:
    """One 0/1 column per category; categories unseen in training become all zeros."""
    from sklearn.preprocessing import OneHotEncoder

    return OneHotEncoder(handle_unknown="ignore", sparse_output=False)


@component("encoder", "ordinal", Options)
def encode_ordinal(config: Options, seed: int = 0) -> Any:
    """Keep one integer code per category (unseen categories get -1)."""
    return "passthrough"


# ---------------------------------------------------------------- scalers


@component("scaler", "standard", Options)
def scale_standard(config: Options, seed: int = 0) -> Any:
    """Zero mean, unit variance (training statistics)."""
    from sklearn.preprocessing import StandardScaler

    return StandardScaler()


@component("scaler", "minmax", Options)
def scale_minmax(config: Options, seed: int = 0) -> Any:
    """Rescale each feature to [0, 1] on the training range."""
    from sklearn.preprocessing import MinMaxScaler

    return MinMaxScaler()


@component("scaler", "robust", Options)
def scale_robust(config: Options, seed: int = 0) -> Any:
    """Centre on the median and scale by the interquartile range (resists outliers)."""
    from sklearn.preprocessing import RobustScaler

    return RobustScaler()


@component("scaler", "none", Options)
def scale_none(config: Options, seed: int = 0) -> Any:
    """Leave numeric features as they are."""
    return "passthrough"


# ---------------------------------------------------------------- reducers


class PcaOptions(Options):
    n_components: int | float | None = Field(
        0.95, description="Whole number of components, or the share of variance to keep (0 < x < 1)"
    )

    @field_validator("n_components")
    @classmethod
    def _count_or_ratio(cls, v: int | float | None) -> int | float | None:
        if v is None:
            return v
        if isinstance(v, float) and v.is_integer() and v >= 1:
            v = int(v)
        if isinstance(v, int) and v < 1 or isinstance(v, float) and not 0 < v < 1:
            raise ValueError("must be a whole number of components (1 or more) or a variance ratio between 0 and 1")
        return v


class KBestOptions(Options):
    k: int = Field(10, ge=1, description="Number of features to keep (capped at the number there are)")


class VarianceOptions(Options):
    threshold: float = Field(0.0, ge=0, description="Drop features whose training variance is at most this")


@component("reducer", "none", Options)
def reduce_none(config: Options, seed: int = 0, n_features: int = 0, task: str = "") -> Any:
    """Keep every feature."""
    return None


@component("reducer", "pca", PcaOptions)
def reduce_pca(config: PcaOptions, seed: int = 0, n_features: int = 0, task: str = "") -> Any:
    """Principal component analysis, fitted on the training split."""
    from sklearn.decomposition import PCA

    n = config.n_components
    if isinstance(n, int) and n_features:
        n = min(n, n_features)
    return PCA(n_components=n, random_state=seed, svd_solver="full")


@component("reducer", "select_k_best", KBestOptions,
           trusted_types=("sklearn.feature_selection._univariate_selection.f_classif",
                          "sklearn.feature_selection._univariate_selection.f_regression"))
def reduce_k_best(config: KBestOptions, seed: int = 0, n_features: int = 0, task: str = "") -> Any:
    """Keep the k features with the best univariate F-score against the target."""
    from sklearn.feature_selection import SelectKBest, f_classif, f_regression

    k = min(config.k, n_features) if n_features else config.k
    return SelectKBest(f_classif if task == "classification" else f_regression, k=k)


@component("reducer", "variance_threshold", VarianceOptions)
def reduce_variance(config: VarianceOptions, seed: int = 0, n_features: int = 0, task: str = "") -> Any:
    """Drop near-constant features."""
    from sklearn.feature_selection import VarianceThreshold

    return VarianceThreshold(threshold=config.threshold)


# ---------------------------------------------------------------- samplers (training split only)


class SamplerOptions(Options):
    sampling_strategy: Literal["auto", "minority", "not minority", "not majority", "all", "majority"] | float = "auto"


class NeighbourOptions(SamplerOptions):
    k_neighbors: int = Field(5, ge=1, description="Neighbours used to synthesise a new minority sample")


CLS = ("classification",)


@component("sampler", "none", Options)
def sample_none(config: Options, seed: int = 0, categorical: list[int] | None = None) -> Any:
    """No imbalance handling."""
    return None


@component("sampler", "class_weight", Options, tasks=CLS + ("multilabel",))
def sample_class_weight(config: Options, seed: int = 0, categorical: list[int] | None = None) -> Any:
    """Weight classes inversely to their frequency in the loss (no resampling)."""
    return None


@component("sampler", "random_over", SamplerOptions, tasks=CLS, random=True)
def sample_random_over(config: SamplerOptions, seed: int = 0, categorical: list[int] | None = None) -> Any:
    """Duplicate random minority rows."""
    from imblearn.over_sampling import RandomOverSampler

    return RandomOverSampler(sampling_strategy=config.sampling_strategy, random_state=seed)


@component("sampler", "random_under", SamplerOptions, tasks=CLS, random=True)
def sample_random_under(config: SamplerOptions, seed: int = 0, categorical: list[int] | None = None) -> Any:
    """Drop random majority rows."""
    from imblearn.under_sampling import RandomUnderSampler

    return RandomUnderSampler(sampling_strategy=config.sampling_strategy, random_state=seed)


@component("sampler", "smote", NeighbourOptions, tasks=CLS, random=True, trusted_types=NEIGHBOURS)
def sample_smote(config: NeighbourOptions, seed: int = 0, categorical: list[int] | None = None) -> Any:
    """SMOTE: synthesise minority rows between neighbours (on encoded, scaled features)."""
    from imblearn.over_sampling import SMOTE

    return SMOTE(sampling_strategy=config.sampling_strategy, k_neighbors=config.k_neighbors, random_state=seed)


@component("sampler", "smotenc", NeighbourOptions, tasks=CLS, random=True, on_codes=True, trusted_types=NEIGHBOURS)
def sample_smotenc(config: NeighbourOptions, seed: int = 0, categorical: list[int] | None = None) -> Any:
    """SMOTE-NC for mixed numeric and categorical features (categories are never interpolated)."""
    from imblearn.over_sampling import SMOTE, SMOTENC

    if not categorical:  # SMOTENC refuses data without categorical columns; plain SMOTE is the same thing
        return SMOTE(sampling_strategy=config.sampling_strategy, k_neighbors=config.k_neighbors, random_state=seed)
    return SMOTENC(categorical_features=categorical, sampling_strategy=config.sampling_strategy,
                   k_neighbors=config.k_neighbors, random_state=seed)


class AdasynOptions(SamplerOptions):
    n_neighbors: int = Field(5, ge=1)


@component("sampler", "adasyn", AdasynOptions, tasks=CLS, random=True, trusted_types=NEIGHBOURS)
def sample_adasyn(config: AdasynOptions, seed: int = 0, categorical: list[int] | None = None) -> Any:
    """ADASYN: like SMOTE, with more synthetic rows where the minority is harder to learn."""
    from imblearn.over_sampling import ADASYN

    return ADASYN(sampling_strategy=config.sampling_strategy, n_neighbors=config.n_neighbors, random_state=seed)


@component("sampler", "smote_tomek", NeighbourOptions, tasks=CLS, random=True,
           trusted_types=NEIGHBOURS + ("imblearn.under_sampling._prototype_selection._tomek_links.TomekLinks",))
def sample_smote_tomek(config: NeighbourOptions, seed: int = 0, categorical: list[int] | None = None) -> Any:
    """SMOTE, then remove Tomek links (cleans the class border)."""
    from imblearn.combine import SMOTETomek
    from imblearn.over_sampling import SMOTE

    smote = SMOTE(sampling_strategy=config.sampling_strategy, k_neighbors=config.k_neighbors, random_state=seed)
    return SMOTETomek(smote=smote, random_state=seed)


@component("sampler", "smote_enn", NeighbourOptions, tasks=CLS, random=True, trusted_types=NEIGHBOURS + (
    "imblearn.under_sampling._prototype_selection._edited_nearest_neighbours.EditedNearestNeighbours",))
def sample_smote_enn(config: NeighbourOptions, seed: int = 0, categorical: list[int] | None = None) -> Any:
    """SMOTE, then edited nearest neighbours cleaning."""
    from imblearn.combine import SMOTEENN
    from imblearn.over_sampling import SMOTE

    smote = SMOTE(sampling_strategy=config.sampling_strategy, k_neighbors=config.k_neighbors, random_state=seed)
    return SMOTEENN(smote=smote, random_state=seed)


def check_sampler(sampler: Any, y: Any, classes: list[Any] | None, where: str) -> None:
    """Check the labels ``y`` (codes into ``classes``; None: the codes are the names) of ``where``
    before ``sampler`` resamples them; DataError where a class it synthesises rows for has too few
    rows for its neighbours (scikit-learn's own error, ``n_neighbors = 6, n_samples_fit = 3``, names
    neither the class nor the option) or its sampling strategy does not fit these classes."""
    import numpy as np
    from imblearn.utils import check_sampling_strategy

    inner = getattr(sampler, "smote", None) or sampler  # SMOTEENN and SMOTETomek synthesise with a SMOTE
    option = "k_neighbors" if hasattr(inner, "k_neighbors") else "n_neighbors"
    k = getattr(inner, option, None)
    try:
        targets = check_sampling_strategy(inner.sampling_strategy, y, inner._sampling_type)
    except ValueError as exc:  # e.g. a float strategy with more than two classes
        raise DataError(f"preprocess.resample sampling_strategy {inner.sampling_strategy!r} does not fit the "
                        f"{len(np.unique(y))} classes of {where}: {exc}") from None
    if not isinstance(k, int):
        return
    values, counts = np.unique(y, return_counts=True)
    rows = dict(zip(values.tolist(), counts.tolist()))
    # a synthetic row lies between a row and one of its k nearest rows of the same class: k + 1 rows at least
    short = [(c, rows[c]) for c, n in targets.items() if n > 0 and rows[c] <= k]
    if not short:
        return
    listed = ", ".join(f"'{classes[c] if classes else c}' has {n} row{'s' if n != 1 else ''}" for c, n in short)
    fewest = min(n for _, n in short)
    fix = (f"set preprocess.resample.{option} to at most {fewest - 1}" if fewest > 1 else
           "drop or merge that class, or get more of its rows")
    raise DataError(f"{type(inner).__name__} (preprocess.resample.method) needs at least {k + 1} rows of each "
                    f"class it synthesises rows for ({option} = {k}, plus the row itself), but in {where} "
                    f"class{'es' if len(short) > 1 else ''} {listed}: {fix}, or choose preprocess.resample.method "
                    f"random_over (which needs no neighbours).")
