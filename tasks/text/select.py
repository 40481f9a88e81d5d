"""``model.name: tfidf_auto``: the TF-IDF recipe chosen by cross-validation on the training split.

Candidates: word 1-2-grams, character 2-5-grams within word boundaries (``char_wb``) or both side by
side (a ``FeatureUnion``), each with a linear SVM and with logistic regression over a small grid of
``C``. Stratified k-fold on the training texts only (the test split is never seen); in each fold the
two vectorisers are fitted once and every classifier reuses their matrices, and the folds run in
parallel (joblib processes, one per thread of ``resources.threads``). The score is the spec's primary
metric on the held-out folds, pooled over the folds. Balanced class weights are used when the primary metric averages over
classes (``*_macro``, ``balanced_accuracy``) or the rarest class has under a third of the commonest
one's training texts. The winner is refitted on the whole training split by the regular TF-IDF
models (``tfidf_svm``, ``tfidf_logistic``), so prediction and the trusted types are theirs.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from trainflow.registry import component

#: the n-gram ranges of the candidate features (the usual strong settings for short texts)
WORD_NGRAMS = (1, 2)
CHAR_NGRAMS = (2, 5)
MODELS = {"svm": "tfidf_svm", "logistic": "tfidf_logistic"}
IMBALANCE_RATIO = 3.0  # commonest / rarest class above this: balanced class weights


class AutoOptions(BaseModel):
    """What ``tfidf_auto`` compares; every combination of features x model x its C is a candidate."""

    model_config = ConfigDict(extra="forbid")
    features: list[Literal["word", "char", "both"]] = Field(
        ["word", "char", "both"], min_length=1,
        description="word: word 1-2-grams; char: character 2-5-grams within word boundaries; both: side by side")
    models: list[Literal["svm", "logistic"]] = Field(["svm", "logistic"], min_length=1,
                                                     description="svm: linear SVM; logistic: logistic regression")
    # LinearSVC's best C on TF-IDF features is usually 0.1-1, logistic regression's 10-100.
    svm_C: list[float] = Field([0.1, 0.5], min_length=1, description="C values tried for the linear SVM")
    logistic_C: list[float] = Field([10.0, 100.0], min_length=1, description="C values tried for logistic regression")
    # 3 folds: 5 cost the SMS demo 73 s of CPU (12 candidates), past its one-minute budget on 2 cores
    folds: int = Field(3, ge=2, le=20, description="Stratified folds of the training split")
    metric: str | None = Field(None, description="Metric the candidates are ranked by; default: the spec's "
                                                 "evaluate.primary (filled in when the spec is read)")
    class_weight: Literal["auto", "balanced", "none"] = Field(
        "auto", description="auto: balanced when the primary metric is macro/balanced or the classes are imbalanced")


@component("model", "tfidf_auto", AutoOptions, tasks=("classification",), modality="text")
def tfidf_auto(config: AutoOptions, **_: Any) -> AutoOptions:
    """TF-IDF features and linear model chosen by cross-validation on the training split (the default)."""
    return config


def metric_problems(spec: Any) -> list[str]:
    """Fill in ``model.metric`` from ``evaluate.primary`` (the fit sees the spec without its evaluate
    section, and the choice, so the model, depends on the metric); a metric that cannot rank
    classifiers is a problem."""
    from trainflow.registry import REGISTRY
    from trainflow.tasks.common import metrics as M

    given = spec.model.options().get("metric")
    if given is None:
        setattr(spec.model, "metric", spec.evaluate.primary or M.PRIMARY[spec.task])
        return []
    if given not in REGISTRY.names("metric", spec.task):
        from trainflow.errors import expected

        return [expected("'model.metric' of tfidf_auto", REGISTRY.names("metric", spec.task), given)]
    return []


def candidates(options: AutoOptions) -> list[dict[str, Any]]:
    """Every (features, model, C) the options allow, in a fixed order."""
    grid = {"svm": options.svm_C, "logistic": options.logistic_C}
    return [{"features": f, "model": m, "C": float(c)} for f in options.features for m in options.models
            for c in grid[m]]


def wants_balance(primary: str, y: np.ndarray, setting: str) -> tuple[bool, str]:
    """Whether to weight classes, and why (the ``class_weight`` option, the metric or the class counts)."""
    if setting != "auto":
        return setting == "balanced", f"class_weight: {setting}"
    if primary.endswith("_macro") or primary == "balanced_accuracy":
        return True, f"the primary metric {primary} weighs every class alike"
    counts = np.bincount(y)
    counts = counts[counts > 0]
    if counts.max() > IMBALANCE_RATIO * counts.min():
        return True, f"the classes are imbalanced ({counts.max()} vs {counts.min()} training texts)"
    return False, "balanced enough classes and a metric over all texts"


def vectorizer(features: str, p: Any) -> Any:
    """The unfitted TF-IDF step for ``features`` (word | char | both) with the spec's ``preprocess.text``
    vocabulary settings (``p``); standard analyzers and token pattern only."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    def make(analyzer: str, ngrams: tuple[int, int]) -> Any:
        return TfidfVectorizer(lowercase=False, analyzer=analyzer, ngram_range=ngrams, max_features=p.max_features,
                               min_df=p.min_df, sublinear_tf=p.sublinear_tf, dtype=np.float64)

    if features == "word":
        return make("word", WORD_NGRAMS)
    if features == "char":
        return make("char_wb", CHAR_NGRAMS)
    from sklearn.pipeline import FeatureUnion

    return FeatureUnion([("word", make("word", WORD_NGRAMS)), ("char", make("char_wb", CHAR_NGRAMS))])


def _classifier(model: str, C: float, balanced: bool, seed: int) -> Any:
    """The raw classifier scored in the folds (the SVM uncalibrated: its ranking is what counts)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    weight = "balanced" if balanced else None
    if model == "svm":
        return LinearSVC(C=C, class_weight=weight, random_state=seed)
    return LogisticRegression(C=C, class_weight=weight, max_iter=2000, random_state=seed)


def _fold(texts: list[str], y: np.ndarray, train: np.ndarray, test: np.ndarray, grid: list[dict[str, Any]],
          p: Any, balanced: bool, seed: int, k: int) -> list[np.ndarray]:
    """One fold: each vectoriser fitted once on its training part, every candidate's scores
    (decision values) on its held-out part, in ``grid`` order."""
    from scipy import sparse

    part = [texts[i] for i in train]
    held = [texts[i] for i in test]
    matrices = {}
    for name in {c["features"] for c in grid} | ({"word", "char"} if any(c["features"] == "both" for c in grid)
                                                 else set()):
        if name != "both":
            vec = vectorizer(name, p).fit(part)
            matrices[name] = (vec.transform(part), vec.transform(held))
    if "word" in matrices and "char" in matrices:
        matrices["both"] = tuple(sparse.hstack([matrices["word"][i], matrices["char"][i]]).tocsr() for i in (0, 1))
    out = []
    for c in grid:
        x_train, x_test = matrices[c["features"]]
        model = _classifier(c["model"], c["C"], balanced, seed).fit(x_train, y[train])
        out.append(_columns(model.decision_function(x_test), model.classes_, k))
    return out


def _columns(decision: Any, seen: np.ndarray, k: int) -> np.ndarray:
    """Decision values [n, k] for all ``k`` classes (binary: [n] as scikit-learn gives it); a class
    missing from a fold's training part (a class of a single text) gets the lowest score."""
    decision = np.asarray(decision, dtype=np.float64)
    if len(seen) == k:
        return decision
    if decision.ndim == 1:
        decision = np.column_stack([-decision, decision])
    out = np.full((decision.shape[0], k), decision.min() - 1.0 if decision.size else 0.0)
    out[:, seen] = decision
    return out


def _proba(decision: np.ndarray) -> np.ndarray:
    """Decision values as [n, k] scores in (0, 1) that rank like them (for AUC-type metrics)."""
    if decision.ndim == 1:
        p = 1 / (1 + np.exp(-decision))
        return np.column_stack([1 - p, p])
    z = np.exp(decision - decision.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def jobs(folds: int) -> int:
    """Parallel folds: one per thread the run may use (``resources.threads``), at most one per fold."""
    from trainflow import resources

    return max(1, min(folds, resources.current()))


def choose(texts: list[str], y: np.ndarray, classes: list[str], spec: Any) -> dict[str, Any]:
    """Cross-validate every candidate on the training texts; returns the winner (``features``,
    ``model``, ``C``, ``class_weight``), the metric, its value and the table of every candidate."""
    from joblib import Parallel, delayed
    from sklearn.model_selection import StratifiedKFold

    from trainflow.registry import REGISTRY
    from trainflow.tasks.common import metrics as M

    _, options = spec.model.resolve("model", task=spec.task)
    primary = options.metric or spec.evaluate.primary or M.PRIMARY[spec.task]
    higher = REGISTRY.get("metric", primary).extra.get("greater_is_better", True)
    balanced, why = wants_balance(primary, y, options.class_weight)
    counts = np.bincount(y)
    folds = int(max(2, min(options.folds, counts[counts > 0].min())))  # a rarer class: fewer folds
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=spec.seed)
    parts = list(splitter.split(np.zeros(len(y)), y))
    grid = candidates(options)
    # processes, not the run's default threading backend: tokenising holds the GIL
    results = Parallel(n_jobs=jobs(folds), backend="loky")(
        delayed(_fold)(texts, y, tr, te, grid, spec.preprocess.text, balanced, spec.seed, len(classes)) for tr, te in parts)
    order = np.concatenate([te for _, te in parts])
    y_held = y[order]
    table = []
    for j, c in enumerate(grid):
        decision = np.concatenate([r[j] for r in results])
        proba = _proba(decision)
        value = M.score([primary], y_held, proba.argmax(axis=1), proba, list(range(len(classes))))[primary]
        table.append({**c, primary: round(float(value), 4)})
    values = np.array([row[primary] for row in table], dtype=float)
    best = int(np.nanargmax(values) if higher else np.nanargmin(values))  # ties: the first (the simplest)
    return {"features": grid[best]["features"], "model": grid[best]["model"], "C": grid[best]["C"],
            "class_weight": balanced, "class_weight_reason": why, "metric": primary,
            "value": float(values[best]), "folds": folds, "table": table}


def describe(choice: dict[str, Any]) -> str:
    """One line for the report: what won, on which metric, over how many folds."""
    names = {"word": f"word {WORD_NGRAMS[0]}-{WORD_NGRAMS[1]}-grams",
             "char": f"character {CHAR_NGRAMS[0]}-{CHAR_NGRAMS[1]}-grams (char_wb)",
             "both": "word 1-2-grams + character 2-5-grams"}
    model = "linear SVM" if choice["model"] == "svm" else "logistic regression"
    return (f"tfidf_auto chose {names[choice['features']]} + {model} (C={choice['C']:g}"
            f"{', balanced class weights' if choice['class_weight'] else ''}): {choice['metric']} "
            f"{choice['value']:.4f} in {choice['folds']}-fold stratified cross-validation on the training split "
            f"({len(choice['table'])} candidates; class weights: {choice['class_weight_reason']})")
