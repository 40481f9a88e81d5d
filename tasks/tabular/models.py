"""scikit-learn models for tabular classification and regression.

A model builder takes its config, the training seed and ``class_weight`` (``"balanced"`` when
the spec's imbalance method is ``class_weight``) and returns an unfitted estimator.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from trainflow.registry import component

CLS = ("classification",)
REG = ("regression",)
ML = ("multilabel",)  # a 0/1 label matrix as target (tasks/common/multilabel.py)

# Types a fitted model holds beyond the estimators it builds (see trainflow.trust), found by saving
# every model (each multiclass option, both tasks) with skops and listing what its file names.
LABELS = ("sklearn.preprocessing._label.LabelBinarizer",)  # one-vs-rest, MLP
TREES = ("sklearn.tree._tree.Tree", "sklearn.tree._classes.DecisionTreeClassifier",
         "sklearn.tree._classes.DecisionTreeRegressor")
BOOSTING = ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
            "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
            "sklearn.preprocessing._label.LabelEncoder",
            "sklearn._loss.loss.HalfBinomialLoss", "sklearn._loss.loss.HalfMultinomialLoss",
            "sklearn._loss.loss.HalfSquaredError", "sklearn._loss._loss.CyHalfBinomialLoss",
            "sklearn._loss._loss.CyHalfMultinomialLoss", "sklearn._loss._loss.CyHalfSquaredError",
            "sklearn._loss.link.IdentityLink", "sklearn._loss.link.LogitLink", "sklearn._loss.link.MultinomialLogit",
            "sklearn._loss.link.Interval")
MLP = ("sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
       "sklearn.neural_network._stochastic_optimizers.SGDOptimizer")


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClassifierOptions(Options):
    multiclass: Literal["auto", "ovr", "ovo"] = Field(
        "auto", description="auto: the model's own multiclass handling; ovr/ovo: one-vs-rest / one-vs-one wrappers"
    )


def _multiclass(estimator: Any, strategy: str) -> Any:
    if strategy == "ovr":
        from sklearn.multiclass import OneVsRestClassifier

        return OneVsRestClassifier(estimator)
    if strategy == "ovo":
        from sklearn.multiclass import OneVsOneClassifier

        return OneVsOneClassifier(estimator)
    return estimator


class LogisticOptions(ClassifierOptions):
    penalty: Literal["l1", "l2", "elasticnet", "none"] = "l2"
    C: float = Field(1.0, gt=0, description="Inverse regularisation strength")
    l1_ratio: float = Field(0.5, ge=0, le=1, description="L1 share of the penalty (elasticnet only)")
    max_iter: int = Field(2000, ge=1)  # saga needs more iterations than lbfgs to converge


@component("model", "logistic_regression", LogisticOptions, tasks=CLS, modality="tabular", class_weight=True,
           trusted_types=LABELS)
def logistic_regression(config: LogisticOptions, seed: int = 0, class_weight: str | None = None, task: str = "classification") -> Any:
    """Logistic regression with an L1, L2 or elastic-net penalty."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    l1_ratio = {"l1": 1.0, "l2": 0.0, "elasticnet": config.l1_ratio, "none": 0.0}[config.penalty]
    C = np.inf if config.penalty == "none" else config.C
    solver = "saga" if l1_ratio > 0 else "lbfgs"
    est = LogisticRegression(C=C, l1_ratio=l1_ratio, solver=solver, max_iter=config.max_iter,
                             class_weight=class_weight, random_state=seed)
    return _multiclass(est, config.multiclass)


class ForestOptions(ClassifierOptions):
    n_estimators: int = Field(200, ge=1)
    max_depth: int | None = Field(None, ge=1)
    min_samples_leaf: int = Field(1, ge=1)


@component("model", "random_forest", ForestOptions, tasks=CLS + REG + ML, modality="tabular", class_weight=True,
           random=True, trusted_types=LABELS + TREES)
def random_forest(config: ForestOptions, seed: int = 0, class_weight: str | None = None, task: str = "classification") -> Any:
    """A random forest of decision trees (classifier or regressor, by the pipeline's task; natively multi-label)."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    # n_jobs unset: the run's resources.threads decides (trainflow.resources.using), for the fit and for
    # every later prediction, and the saved model holds no count of its own; the trees are the same
    # whatever the count (each tree's seed is drawn before they are fitted)
    if task == "regression":
        return RandomForestRegressor(n_estimators=config.n_estimators, max_depth=config.max_depth,
                                     min_samples_leaf=config.min_samples_leaf, random_state=seed, n_jobs=None)
    est = RandomForestClassifier(n_estimators=config.n_estimators, max_depth=config.max_depth,
                                 min_samples_leaf=config.min_samples_leaf, class_weight=class_weight,
                                 random_state=seed, n_jobs=None)
    return _multiclass(est, config.multiclass)


class BoostingOptions(ClassifierOptions):
    learning_rate: float = Field(0.1, gt=0)
    max_iter: int = Field(200, ge=1)
    max_leaf_nodes: int = Field(31, ge=2)
    early_stopping: Literal["auto", "on", "off"] = "auto"


@component("model", "hist_gradient_boosting", BoostingOptions, tasks=CLS + REG, modality="tabular", class_weight=True,
           trusted_types=LABELS + BOOSTING)
def hist_gradient_boosting(config: BoostingOptions, seed: int = 0, class_weight: str | None = None, task: str = "classification") -> Any:
    """Histogram gradient boosting (fast boosted trees; classifier or regressor)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    common = dict(learning_rate=config.learning_rate, max_iter=config.max_iter, max_leaf_nodes=config.max_leaf_nodes,
                  early_stopping={"auto": "auto", "on": True, "off": False}[config.early_stopping], random_state=seed)
    if task == "regression":
        return HistGradientBoostingRegressor(**common)
    est = HistGradientBoostingClassifier(class_weight=class_weight, **common)
    return _multiclass(est, config.multiclass)


class SvmOptions(ClassifierOptions):
    C: float = Field(1.0, gt=0)
    kernel: Literal["rbf", "linear", "poly", "sigmoid"] = "rbf"
    gamma: Literal["scale", "auto"] | float = "scale"


@component("model", "svm", SvmOptions, tasks=CLS, modality="tabular", class_weight=True, trusted_types=LABELS)
def svm(config: SvmOptions, seed: int = 0, class_weight: str | None = None, task: str = "classification") -> Any:
    """Support vector classifier (probabilities by Platt scaling)."""
    from sklearn.svm import SVC

    est = SVC(C=config.C, kernel=config.kernel, gamma=config.gamma, probability=True,
              class_weight=class_weight, random_state=seed)
    return _multiclass(est, config.multiclass)


class MlpOptions(ClassifierOptions):
    hidden_layer_sizes: list[int] = Field([64], min_length=1)
    activation: Literal["relu", "tanh", "logistic", "identity"] = "relu"
    solver: Literal["adam", "sgd", "lbfgs"] = "adam"
    alpha: float = Field(1e-4, ge=0, description="L2 penalty")
    learning_rate_init: float = Field(1e-3, gt=0)
    max_iter: int = Field(500, ge=1)
    early_stopping: bool = False


@component("model", "mlp", MlpOptions, tasks=CLS + ML, modality="tabular", class_weight=False, random=True,
           trusted_types=LABELS + MLP)
def mlp(config: MlpOptions, seed: int = 0, class_weight: str | None = None, task: str = "classification") -> Any:
    """A multi-layer perceptron (scikit-learn; natively multi-label: one sigmoid output per label)."""
    from sklearn.neural_network import MLPClassifier

    est = MLPClassifier(hidden_layer_sizes=tuple(config.hidden_layer_sizes), activation=config.activation,
                        solver=config.solver, alpha=config.alpha, learning_rate_init=config.learning_rate_init,
                        max_iter=config.max_iter, early_stopping=config.early_stopping, random_state=seed)
    return _multiclass(est, config.multiclass)


class KnnOptions(ClassifierOptions):
    n_neighbors: int = Field(10, ge=1)
    weights: Literal["uniform", "distance"] = "uniform"


# a fixed k-d tree (not 'auto'): the types a saved model holds are then known, and no ball tree is trusted
KNN = ("sklearn.neighbors._kd_tree.KDTree", "sklearn.metrics._dist_metrics.EuclideanDistance64")


@component("model", "knn", KnnOptions, tasks=CLS + ML, modality="tabular", class_weight=False, trusted_types=KNN)
def knn(config: KnnOptions, seed: int = 0, class_weight: str | None = None, task: str = "classification") -> Any:
    """k-nearest neighbours (natively multi-label: each label by its neighbours' votes)."""
    from sklearn.neighbors import KNeighborsClassifier

    # n_jobs unset: the neighbour queries run on resources.threads (trainflow.resources.using)
    est = KNeighborsClassifier(n_neighbors=config.n_neighbors, weights=config.weights, algorithm="kd_tree")
    return _multiclass(est, config.multiclass)


# ---------------------------------------------------------------- multi-label wrappers


class BaseModelOptions(Options):
    base: str = Field("logistic_regression", description="A registered tabular classifier, one per label")
    base_options: dict[str, Any] = Field({}, description="Options of the base classifier")

    @field_validator("base")
    @classmethod
    def _classifier(cls, name: str) -> str:
        from trainflow.registry import REGISTRY

        names = [n for n in REGISTRY.names("model", "classification")
                 if REGISTRY.get("model", n).modality == "tabular" and n not in ("binary_relevance", "classifier_chain")]
        if name not in names:
            raise ValueError(f"must be a tabular classifier: one of {', '.join(names)}; got {name!r}")
        return name

    @model_validator(mode="after")
    def _base_options(self) -> BaseModelOptions:
        from trainflow.registry import REGISTRY

        REGISTRY.get("model", self.base).parse(dict(self.base_options), where="model.base_options")
        return self


def _base(config: BaseModelOptions, seed: int, class_weight: str | None) -> Any:
    from trainflow.registry import REGISTRY

    comp = REGISTRY.get("model", config.base, task="classification")
    # class weights are per label here: each label's classifier balances its own 0/1 rows
    weight = class_weight if comp.extra.get("class_weight") else None
    return comp.build(comp.parse(dict(config.base_options), where="model.base_options"),
                      seed=seed, class_weight=weight, task="classification")


MULTI = ("sklearn.multioutput.MultiOutputClassifier", "sklearn.multioutput.ClassifierChain",
         "trainflow.tasks.common.multilabel.ChainEnsemble")


@component("model", "binary_relevance", BaseModelOptions, tasks=ML, modality="tabular", class_weight=True,
           trusted_types=MULTI)
def binary_relevance(config: BaseModelOptions, seed: int = 0, class_weight: str | None = None,
                     task: str = "multilabel") -> Any:
    """Binary relevance: one classifier (any registered one, ``base``) per label."""
    from sklearn.multioutput import MultiOutputClassifier

    return MultiOutputClassifier(_base(config, seed, class_weight))


class ChainOptions(BaseModelOptions):
    order: Literal["given", "random"] | list[int] = Field(
        "given", description="Label order along the chain: as given, random (seeded), or label positions")
    chains: int = Field(1, ge=1, description="Chains in the ensemble (each with its own random order when > 1); "
                                             "their probabilities are averaged")


# not random=True: a chain in the given order of a deterministic base gives the same model whatever the seed
@component("model", "classifier_chain", ChainOptions, tasks=ML, modality="tabular", class_weight=True,
           trusted_types=MULTI)
def classifier_chain(config: ChainOptions, seed: int = 0, class_weight: str | None = None,
                     task: str = "multilabel") -> Any:
    """Classifier chains: each label's classifier also sees the labels before it; an ensemble of chains
    (``chains`` > 1) averages chains of random orders."""
    from sklearn.multioutput import ClassifierChain

    from trainflow.tasks.common.multilabel import ChainEnsemble

    order = None if config.order == "given" else config.order
    if config.chains == 1:
        return ClassifierChain(_base(config, seed, class_weight), order=order, random_state=seed)
    return ChainEnsemble([ClassifierChain(_base(config, seed + i, class_weight), order="random", random_state=seed + i)
                          for i in range(config.chains)])


# ---------------------------------------------------------------- regression


@component("model", "linear", Options, tasks=REG, modality="tabular")
def linear(config: Options, seed: int = 0, class_weight: str | None = None, task: str = "classification") -> Any:
    """Ordinary least squares."""
    from sklearn.linear_model import LinearRegression

    return LinearRegression()


class AlphaOptions(Options):
    alpha: float = Field(1.0, gt=0, description="Regularisation strength")


@component("model", "ridge", AlphaOptions, tasks=REG, modality="tabular")
def ridge(config: AlphaOptions, seed: int = 0, class_weight: str | None = None, task: str = "classification") -> Any:
    """Linear regression with an L2 penalty."""
    from sklearn.linear_model import Ridge

    return Ridge(alpha=config.alpha)


@component("model", "lasso", AlphaOptions, tasks=REG, modality="tabular")
def lasso(config: AlphaOptions, seed: int = 0, class_weight: str | None = None, task: str = "classification") -> Any:
    """Linear regression with an L1 penalty (sparse coefficients)."""
    from sklearn.linear_model import Lasso

    return Lasso(alpha=config.alpha, random_state=seed, max_iter=10000)
