"""Multi-label tables (``task: multilabel``): labels, split, fit, thresholds, evaluation and prediction.

A row carries any number of labels, held as 0/1 label columns: given so (``data.targets``), expanded
from one delimited column (``data.target`` + ``data.separator``) or read from an ARFF file (MULAN/MEKA).
The tabular pipeline (preprocessing + model, :func:`trainflow.tasks.tabular.modality.build_pipeline`)
is fitted on the label matrix; the model is binary relevance, a classifier chain or a native
multi-output estimator (``tasks/tabular/models.py``). Thresholds (0.5, or tuned per label on a
carve-out of the training split) are saved in the model's schema and applied at predict time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from trainflow.alerts import warn
from trainflow.errors import DataError, shown

if TYPE_CHECKING:
    from trainflow.spec import PipelineSpec

#: column marking each row's part of a fixed split ("train"/"test"), when the loader read two files
FOLD = "__split__"
THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)


class MultilabelSpec(BaseModel):
    """Multi-label options (``multilabel``; task: multilabel)."""

    model_config = ConfigDict(extra="forbid")
    threshold: float | Literal["tuned"] = Field(
        0.5, description="Probability from which a label is predicted: a number, or 'tuned' (per label, best F1 "
                         "on the split's validation part, or without one on a carve-out of the training split: "
                         "tune_share for tables, train.val_fraction for networks)")
    tune_share: float = Field(0.25, gt=0, lt=1, description="Share of the training split held out to tune thresholds "
                                                            "when the split has no validation part (tables; networks "
                                                            "tune on train.val_fraction)")


# ---------------------------------------------------------------- labels from the loaders


def with_labels(df: Any, labels: list[str]) -> Any:
    """``df`` marked as multi-label: its label columns are ``labels`` (kept in ``df.attrs``)."""
    df.attrs["labels"] = list(labels)
    return df


def expand_delimited(df: Any, target: str, separator: str, path: Path) -> Any:
    """One 0/1 column per label found in the delimited ``target`` column (empty or missing: no label)."""
    pd = __import__("pandas")
    tags = df[target].fillna("").astype(str).map(lambda v: [t.strip() for t in v.split(separator) if t.strip()])
    labels = sorted({t for row in tags for t in row})
    clash = [t for t in labels if t in df.columns and t != target]
    if clash:
        raise DataError(f"Labels of column '{target}' in '{path}' have the names of other columns: "
                        f"{', '.join(map(repr, clash))}; rename them or drop those columns (data.drop).")
    if not labels:
        raise DataError(f"The label column '{target}' of '{path}' holds no label (separator {separator!r}).")
    matrix = pd.DataFrame({t: tags.map(lambda row, t=t: int(t in row)) for t in labels}, index=df.index)
    return with_labels(pd.concat([df.drop(columns=[target]), matrix], axis=1), labels)


def labels_from_columns(df: Any, targets: list[str] | None, target: str | None, separator: str | None,
                        path: Path, option: str = "data.target") -> Any:
    """``df`` with its labels as 0/1 columns, marked multi-label (:func:`with_labels`): the columns
    ``targets`` as numbers (a gap or a non-number is a DataError naming the column and row; numbers
    other than 0/1 are left for validation), or the delimited column ``target`` split by ``separator``
    (``option`` names that column's spec field in messages). ``df`` unchanged when neither is given."""
    pd = __import__("pandas")
    if separator and target:
        return expand_delimited(df, target, separator, path)
    if not targets:
        return df
    for col in targets:
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"The label column '{col}' (data.targets) of '{path}' holds {shown(df[col].iloc[row])} in "
                            f"row {row + 1}; a multi-label column holds 0 or 1 in every row.")
        df[col] = values.astype("int64") if (values == values.round()).all() else values
    return with_labels(df, targets)


def label_source_problems(options: dict[str, Any], task: str, builtin: bool = False, target: str = "target",
                          hint: str = "") -> list[str]:
    """Labels given the multi-label way (``data.targets``, or ``data.<target>`` with ``data.separator``;
    ``builtin``: the loader gives them itself) exactly when the task is multilabel. ``target``: the
    loader's single-label column option; ``hint``: other ways the modality takes multi-labels."""
    if task != "multilabel":
        return [f"'data.{k}' is for multi-label labels; set 'task: multilabel' (the task is {task!r})."
                for k in ("targets", "separator") if options.get(k)]
    problems = []
    if not (options.get("targets") or options.get("separator") or builtin):
        problems.append(f"'task' is 'multilabel', so give the labels: 'data.targets' (0/1 columns) or 'data.{target}' "
                        f"with 'data.separator' (one delimited column){hint}.")
    if options.get("separator") and not options.get(target):
        problems.append(f"'data.separator' splits the labels of 'data.{target}'; name that column in 'data.{target}'.")
    if options.get("targets") and options.get("separator"):
        problems.append(f"give the labels as 'data.targets' or as 'data.{target}' with 'data.separator', not both.")
    return problems


def read_arff(path: Path, labels: list[str] | None) -> tuple[Any, list[str]]:
    """An ARFF file as a frame and its label attributes: ``labels`` when given, else the MEKA
    ``-C n`` relation option (n > 0: the first n attributes; n < 0: the last -n); none otherwise."""
    import arff
    import pandas as pd

    try:
        with open(path, encoding="utf-8") as fh:
            data = arff.load(fh)
    except (arff.ArffException, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"The ARFF file '{path}' cannot be read: {exc}.") from None
    names = [a[0] for a in data["attributes"]]
    df = pd.DataFrame(data["data"], columns=names)
    if labels is None:
        found = re.search(r"-C\s+(-?\d+)", data.get("relation") or "")
        if found:
            n = int(found.group(1))
            if n == 0 or abs(n) >= len(names):  # no label, or no feature left (names[0:] would be every one)
                raise DataError(f"The relation option '-C {n}' of the ARFF file '{path}' names "
                                f"{'no label attribute' if n == 0 else 'every attribute as a label'}: MEKA's -C n "
                                f"makes the first n attributes the labels (n < 0: the last -n) of its {len(names)}. "
                                f"Correct it, or name the labels in data.labels.")
            labels = names[:n] if n > 0 else names[n:]
    gaps = np.zeros(len(df), dtype=bool)
    for col in labels or []:
        if col not in names:
            raise DataError(f"The label attribute '{col}' (data.labels) is not in '{path}'.")
        # nominal {0,1} labels arrive as text; numbers stay as they are, other text is left for validation;
        # a '?' (missing) is a gap in one row, not a reason to read the whole column as text
        missing = df[col].isna().to_numpy()
        as_number = pd.to_numeric(df[col], errors="coerce")
        if (as_number.notna().to_numpy() | missing).all() and not missing.all():
            known = as_number[~missing]
            whole = bool((known == known.round()).all())
            df[col] = as_number.astype("Int64" if missing.any() else "int64") if whole else as_number
            if missing.any():
                rows = np.flatnonzero(missing)
                warn(f"'{path}': the label attribute '{col}' is missing ('?') in {len(rows)} row(s) (data row(s) "
                     f"{', '.join(str(r + 1) for r in rows[:5])}{', ...' if len(rows) > 5 else ''}); those rows are "
                     f"left out, as a label that is not known can be neither learnt nor scored.")
            gaps |= missing
    if gaps.any():
        if gaps.all():
            raise DataError(f"Every row of the ARFF file '{path}' lacks a label ('?'); nothing is left to learn from.")
        df = df[~gaps].reset_index(drop=True)
        for col in labels or []:
            if str(df[col].dtype) == "Int64":
                df[col] = df[col].astype("int64")
    return df, list(labels or [])


def label_matrix(df: Any, labels: list[str]) -> np.ndarray:
    """The 0/1 label matrix (rows x labels) of a frame."""
    return df[labels].to_numpy(dtype=np.int64)


# ---------------------------------------------------------------- split


def holdout_indices(Y: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Kept and held-out row indices (sorted), the held-out ``share`` drawn by iterative
    stratification over the columns of the 0/1 label matrix ``Y`` (every label keeps its share)."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=share, random_state=seed)
    keep, held = next(splitter.split(np.zeros(len(Y)), np.asarray(Y)))
    return np.sort(keep), np.sort(held)


def stratified_folds(Y: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` (train, validation) index pairs of iterative-stratified k-fold cross-validation over ``Y``."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    folds = MultilabelStratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(folds.split(np.zeros(len(Y)), np.asarray(Y)))


# ---------------------------------------------------------------- fit


def constant_labels(Y: np.ndarray, labels: list[str], where: str) -> dict[str, int]:
    """Labels with one value in every training row (label -> that value); no model can learn them,
    so they are predicted as that value. DataError when every label is constant."""
    const = {lab: int(Y[0, j]) for j, lab in enumerate(labels) if (Y[:, j] == Y[0, j]).all()}
    if len(const) == len(labels):
        raise DataError(f"Every label of {where} has one value in all training rows "
                        f"({', '.join(f'{k}={v}' for k, v in const.items())}): there is nothing to learn.")
    return const


def positive_proba(model: Any, Xt: Any) -> np.ndarray:
    """P(label = 1) for each row and label (rows x labels), from any multi-label estimator: those
    returning one (n, 2) array per label (multi-output) or one (n, labels) matrix (chains)."""
    proba = model.predict_proba(Xt)
    if not isinstance(proba, list):
        return np.asarray(proba, dtype=float)
    estimators = getattr(model, "estimators_", None)
    classes = getattr(model, "classes_", None)
    cols = []
    for j, p in enumerate(proba):
        cls = classes[j] if isinstance(classes, list) else getattr(estimators[j], "classes_", [0, 1])
        cls = list(np.asarray(cls).tolist())
        cols.append(p[:, cls.index(1)] if 1 in cls else np.zeros(len(p)))
    return np.column_stack(cols)


def transform(pipe: Any, X: Any) -> Any:
    """The pipeline's preprocessing of ``X`` (samplers act at fit time only)."""
    Xt = X
    for _, step in pipe.steps[:-1]:
        if step is None or step == "passthrough" or hasattr(step, "fit_resample"):
            continue
        Xt = step.transform(Xt)
    return Xt


def full_proba(pipe: Any, X: Any, schema: dict[str, Any]) -> np.ndarray:
    """P(label = 1) for every label of the schema, constant labels included."""
    learned = positive_proba(pipe.steps[-1][1], transform(pipe, X))
    out = np.zeros((len(X), len(schema["labels"])))
    j = 0
    for i, lab in enumerate(schema["labels"]):
        if lab in schema["constant_labels"]:
            out[:, i] = schema["constant_labels"][lab]
        else:
            out[:, i] = learned[:, j]
            j += 1
    return out


def apply_thresholds(proba: np.ndarray, thresholds: list[float]) -> np.ndarray:
    """0/1 predictions: a label is on where its probability reaches its threshold."""
    return (proba >= np.asarray(thresholds)[None, :]).astype(np.int64)


def tune_thresholds(make_pipeline: Any, X: Any, Y: np.ndarray, spec: PipelineSpec,
                    validation: tuple[Any, np.ndarray] | None = None) -> list[float]:
    """Per-label thresholds with the best F1 on the split's validation part (``validation``: its
    ``(X, Y)``; the pipeline fitted on all training rows), or, without one, on a stratified carve-out
    of ``tune_share`` of the training rows, the pipeline fitted on the rest (the final pipeline is then
    fitted on all training rows). A spec's own ``tune_share`` is ignored, with a warning, when the
    split has a validation part."""
    if validation is not None:
        if "tune_share" in spec.multilabel.model_fields_set:
            warn(f"'multilabel.tune_share' ({spec.multilabel.tune_share}) is ignored: the thresholds are tuned on "
                 "the split's validation part (split.validation)")
        tr, (X_va, Y_va) = np.arange(len(Y)), validation
    else:
        tr, va = holdout_indices(Y, spec.multilabel.tune_share, spec.split.seed)
        X_va, Y_va = X.iloc[va], Y[va]
    fit_cols = [j for j in range(Y.shape[1]) if len(np.unique(Y[tr, j])) == 2]
    pipe = make_pipeline()
    pipe.fit(X.iloc[tr], Y[tr][:, fit_cols])
    proba = positive_proba(pipe.steps[-1][1], transform(pipe, X_va))
    return best_thresholds(np.asarray(Y_va), proba, fit_cols)


def best_thresholds(Y: np.ndarray, proba: np.ndarray, columns: list[int] | None = None) -> list[float]:
    """Per label, the threshold of :data:`THRESHOLD_GRID` with the best F1 of ``proba`` against the
    held-out labels ``Y`` (rows x labels); ``proba``'s columns are the labels ``columns`` (default:
    all). Labels not tuned keep 0.5."""
    from sklearn.metrics import f1_score

    columns = list(range(Y.shape[1])) if columns is None else columns
    thresholds = [0.5] * Y.shape[1]
    for k, j in enumerate(columns):
        scores = [f1_score(Y[:, j], (proba[:, k] >= t).astype(int), zero_division=0) for t in THRESHOLD_GRID]
        thresholds[j] = float(THRESHOLD_GRID[int(np.argmax(scores))])
    return thresholds


class ChainEnsemble:
    """An ensemble of classifier chains (each its own label order): the mean of their label probabilities."""

    def __init__(self, chains: list[Any] | None = None) -> None:
        self.chains = chains

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"chains": self.chains}

    def set_params(self, **params: Any) -> ChainEnsemble:
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def fit(self, X: Any, Y: Any) -> ChainEnsemble:
        from sklearn.base import clone

        self.chains_ = [clone(c).fit(X, Y) for c in self.chains]
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.mean([c.predict_proba(X) for c in self.chains_], axis=0)

    def predict(self, X: Any) -> np.ndarray:
        return (self.predict_proba(X) >= 0.5).astype(np.int64)


# ---------------------------------------------------------------- evaluation


def details(Y: np.ndarray, pred: np.ndarray, proba: np.ndarray, labels: list[str]) -> dict[str, dict[str, Any]]:
    """Per-label precision, recall, F1, ROC-AUC (nan where the test part has one value) and support."""
    from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

    p, r, f, s = precision_recall_fscore_support(Y, pred, average=None, zero_division=0)
    out = {}
    for j, lab in enumerate(labels):
        auc = float(roc_auc_score(Y[:, j], proba[:, j])) if len(np.unique(Y[:, j])) == 2 else float("nan")
        out[lab] = {"precision": float(p[j]), "recall": float(r[j]), "f1": float(f[j]), "roc_auc": auc,
                    "support": int(s[j])}
    return out


def cardinality_rows(Y: np.ndarray, pred: np.ndarray) -> list[dict[str, Any]]:
    """Label cardinality (mean labels per row) and density, true vs predicted."""
    n = Y.shape[1]
    return [{"": "true", "cardinality": float(Y.sum(1).mean()), "density": float(Y.sum(1).mean() / n)},
            {"": "predicted", "cardinality": float(pred.sum(1).mean()), "density": float(pred.sum(1).mean() / n)}]


def evaluation(Y: np.ndarray, proba: np.ndarray, labels: list[str], thresholds: list[float],
               constant: dict[str, int], spec: PipelineSpec, plots_dir: str, notes: list[str],
               counts: dict[str, dict[str, int]] | None = None) -> Any:
    """The multi-label :class:`~trainflow.refs.Evaluation` of test probabilities ``proba`` against
    ``Y`` (both rows x labels), whatever the model: scores with ``thresholds`` applied, the per-label
    table (with each threshold) and plot, label cardinality, positives per label (``counts``: part ->
    label -> rows) and a note for each label ``constant`` in training. Tables and neural models share it."""
    from trainflow.refs import Evaluation
    from trainflow.tasks.common import metrics as M
    from trainflow.tasks.common import plots

    pred = apply_thresholds(proba, thresholds)
    metrics = M.score(spec.evaluate.metrics or M.DEFAULTS["multilabel"], Y, pred, proba, labels)
    per_label = details(Y, pred, proba, labels)
    for lab, t in zip(labels, thresholds):
        per_label[lab]["threshold"] = t
    notes = list(notes) + [f"label '{lab}' is {v} in every training row: predicted as {v}, not learned"
                           for lab, v in constant.items()]
    tables = {"Label cardinality": cardinality_rows(Y, pred)}
    if counts:
        tables["Positive rows per label"] = [{"label": lab, **{k: v[lab] for k, v in counts.items()}} for lab in labels]
    chart = {k: {lab: per_label[lab][k] for lab in labels} for k in ("precision", "recall", "f1", "roc_auc")}
    charts = {"Per-label scores": plots.bars_png(chart, Path(plots_dir) / "per_label.png",
                                                 "Test precision, recall, F1 and ROC-AUC per label")}
    from trainflow.tasks.common.assess import assess

    ev = Evaluation(metrics=metrics, per_class=per_label, plots=charts, tables=tables, notes=notes)
    return assess(ev, spec, Y, pred, proba, labels, plots_dir)


def label_frame(proba: np.ndarray, labels: list[str], thresholds: list[float]) -> Any:
    """Predictions as one 0/1 column per label (thresholds applied) followed by ``proba_<label>`` columns."""
    import pandas as pd

    out = pd.DataFrame(apply_thresholds(proba, thresholds), columns=labels)
    for j, lab in enumerate(labels):
        out[f"proba_{lab}"] = proba[:, j]
    return out


def delimited_label_column(options: dict[str, Any]) -> dict[str, Any]:
    """The saved-schema entries that let predict read a new file's delimited label column: the
    ``separator`` and the column (``target_column``), from the spec's data options."""
    return {"separator": options.get("separator"), "target_column": options.get("target")}


def warn_unseen_in_column(df: Any, schema: dict[str, Any], input_path: Any) -> list[str]:
    """:func:`warn_unseen` for the labels of the input's delimited label column (the schema's
    ``target_column`` split by its ``separator``), when the schema has one and the input holds it."""
    sep, target = schema.get("separator"), schema.get("target_column")
    if not (sep and target and target in df.columns):
        return []
    seen = {t.strip() for v in df[target].dropna().astype(str) for t in v.split(sep) if t.strip()}
    return warn_unseen(seen, schema["labels"], f"the input file '{input_path}' has labels in column '{target}'")


def warn_unseen(given: Any, labels: list[str], where: str) -> list[str]:
    """Warn about the labels among ``given`` that training never saw (no model can predict them);
    ``where`` starts the message ("the input file 'x.csv' has labels in column 'tags'"). Returns them."""
    from trainflow.alerts import warn

    unseen = sorted(set(given) - set(labels))
    if unseen:
        warn(f"predict: {where} never seen in training: {', '.join(map(repr, unseen))}; the model cannot "
             f"predict them (it knows {', '.join(labels)}).")
    return unseen
