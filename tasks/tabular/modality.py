"""The tabular modality: validation, split, fit, evaluation, export and prediction for tables.

Preprocessing and model form one imbalanced-learn ``Pipeline`` fitted on the training split:

    impute (numeric imputer; categorical: most frequent + integer codes)
    -> [sampler, when it works on category codes: smotenc]
    -> encode (scaler on numeric, encoder on categorical codes)
    -> [sampler, otherwise]  -> reduce -> model

so imputers, scalers, reducers and samplers never see test rows, and samplers are skipped at
predict time. The fitted pipeline is saved with skops and loaded back with an allow-list of types.
"""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trainflow import trust
from trainflow.errors import DataError, SpecError, shown
from trainflow import memo
from trainflow.cache_keys import cache_key, model_key
from trainflow.modality import Example, Modality
from trainflow.refs import DataRef, Evaluation, ModelRef, SplitRef, read_parquet, store_parquet, store_split_tables
from trainflow.registry import choice, component
from trainflow.tasks.common import holdout
from trainflow.tasks.common import metrics as M
from trainflow.tasks.common import plots, warmup
from trainflow.tasks.common.assess import assess
from trainflow.tasks.common import multilabel as ML
from trainflow.tasks.common.selection import report
from trainflow.tasks.common.validate import Check, run_expectations
from trainflow.tasks.tabular import calibrate as calibration
from trainflow.tasks.tabular import importance
from trainflow.tasks.tabular.preprocess import check_sampler
from trainflow.tasks.tabular.schema import check_model_matches, read_schema

if TYPE_CHECKING:
    from trainflow.spec import PipelineSpec

MODEL_FILE = "model.skops"
PLOT_POINTS = 2000  # most points a line plot of test rows draws
SCHEMA_FILE = "schema.json"
NUMBER_REGEX = r"^\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*$"
NUMERIC_TYPES = ["int8", "int16", "int32", "int64", "float16", "float32", "float64", "Int64", "Float64",
                 "uint8", "uint16", "uint32", "uint64"]
#: The fixed pieces of every saved pipeline (see build_pipeline); with the types of the registered
#: components and plain values they are all a model file may contain (trainflow.trust).
PIPELINE_TYPES = frozenset({
    "imblearn.pipeline.Pipeline", "sklearn.pipeline.Pipeline", "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.impute._base.SimpleImputer", "sklearn.preprocessing._encoders.OrdinalEncoder",
    # a fitted ColumnTransformer holds "passthrough" as FunctionTransformer(func=None); a function
    # given as func would itself have to be on the list
    "sklearn.preprocessing._function_transformer.FunctionTransformer",
})


def _pd():
    import pandas as pd

    return pd


# ---------------------------------------------------------------- store & validate


def store(df: Any, cache_dir: str, digest: str, config: Any) -> DataRef:
    """Save a loaded DataFrame as Parquet in the cache, named by the source's digest (a copy of the
    source when that reads back as the same frame)."""
    from trainflow.tasks.tabular.loaders import unchanged_parquet

    path = store_parquet(df, cache_dir, digest, copy_of=unchanged_parquet(df, config))
    labels = df.attrs.get("labels") or []
    target = None if labels else getattr(config, "target", None)
    out = set(labels) | {target, ML.FOLD, holdout.KEY}
    meta = {"rows": len(df), "target": target, "source": getattr(config, "path", None) or getattr(config, "train", ""),
            "features": [c for c in df.columns if c not in out]}
    return DataRef(path=str(path), digest=digest, modality="tabular", meta=meta | ({"labels": labels} if labels else {}))


def looks_numeric(series: Any) -> bool:
    """True for a text column whose values are mostly numbers (a typo, not a category)."""
    pd = _pd()
    if pd.api.types.is_numeric_dtype(series):
        return False
    values = series.dropna().astype(str)
    if len(values) == 0:
        return False
    share = values.str.match(NUMBER_REGEX).mean()
    return share >= 0.8


def derived_checks(df: Any, spec: PipelineSpec, target: str | None, labels: list[str] = ()) -> list[Check]:
    """The expectation suite for a table, from the spec and the data."""
    v = spec.validation
    checks = [Check("ExpectTableRowCountToBeBetween", {"min_value": v.min_rows},
                    f"validation.min_rows is {v.min_rows}")]
    for col in labels:
        checks.append(Check("ExpectColumnValuesToBeInSet", {"column": col, "value_set": [0, 1]},
                            "a multi-label label column holds 0 or 1"))
    if target:
        checks.append(Check("ExpectColumnToExist", {"column": target}, "data.target"))
    # no existence check for the other columns: they are listed from the table itself, so it could not fail
    for col in df.columns:
        if col == target:
            continue
        checks.append(Check("ExpectColumnProportionOfNonNullValuesToBeBetween",
                            {"column": col, "min_value": 0, "strict_min": True},
                            "the column has no values at all; list it in data.drop"))
        if col in labels or col in (ML.FOLD, holdout.KEY):
            continue
        if looks_numeric(df[col]):
            checks.append(Check("ExpectColumnValuesToMatchRegex", {"column": col, "regex": NUMBER_REGEX},
                                "the column is mostly numbers, so text in it is a data error"))
    if target:
        checks.append(Check("ExpectColumnValuesToNotBeNull", {"column": target}, "every row needs a target"))
        if spec.task == "classification":
            checks.append(Check("ExpectColumnUniqueValueCountToBeBetween", {"column": target, "min_value": 2},
                                "a classifier needs at least two classes"))
            if v.labels:
                checks.append(Check("ExpectColumnValuesToBeInSet", {"column": target, "value_set": v.labels},
                                    "validation.labels"))
        else:
            checks.append(Check("ExpectColumnValuesToBeInTypeList", {"column": target, "type_list": NUMERIC_TYPES},
                                "a regression target must be numeric"))
    for col, rule in v.columns.items():
        why = f"validation.columns.{col}"
        if col not in df.columns:
            checks.append(Check("ExpectColumnToExist", {"column": col}, why))
            continue
        if rule.type in ("number", "integer"):
            types = NUMERIC_TYPES if rule.type == "number" else [t for t in NUMERIC_TYPES if "int" in t.lower()]
            checks.append(Check("ExpectColumnValuesToBeInTypeList", {"column": col, "type_list": types}, why))
            if str(df[col].dtype) not in NUMERIC_TYPES:
                checks.append(Check("ExpectColumnValuesToMatchRegex", {"column": col, "regex": NUMBER_REGEX}, why))
        if rule.min is not None or rule.max is not None:
            if _pd().api.types.is_numeric_dtype(df[col]):
                checks.append(Check("ExpectColumnValuesToBeBetween",
                                    {"column": col, "min_value": rule.min, "max_value": rule.max}, why))
        if rule.allowed is not None:
            checks.append(Check("ExpectColumnValuesToBeInSet", {"column": col, "value_set": rule.allowed}, why))
        if not rule.nullable:
            checks.append(Check("ExpectColumnValuesToNotBeNull", {"column": col}, why))
    checks += [Check(e.type, dict(e.kwargs), "validation.expectations") for e in v.expectations]
    return checks


def validate(ref: DataRef, spec: PipelineSpec, docs_dir: str | None) -> dict[str, Any]:
    """Run the derived suite on the stored table; raises ValidationFailed listing the failures."""
    df = read_parquet(ref.path)
    summary = run_expectations(df, derived_checks(df, spec, ref.meta.get("target"), ref.meta.get("labels", [])), docs_dir, suite=spec.name)
    return summary.as_dict()


# ---------------------------------------------------------------- profile & split


def profile(ref: DataRef, spec: PipelineSpec) -> DataRef:
    """Column profile and feature plan (``tasks/tabular/profile.py``), carried in the reference's meta."""
    from trainflow.tasks.tabular.profile import profile_and_plan

    ref = profile_and_plan(ref, spec)
    plan = ref.meta["plan"]
    print(f"profile: {len(plan['features'])} features, {len(plan['excluded'])} columns excluded")
    return ref


def _xy(df: Any, target: str) -> tuple[Any, Any]:
    return df.drop(columns=[target]), df[target]


def split(ref: DataRef, spec: PipelineSpec, cache_dir: str) -> SplitRef:
    """The hold-out split (``tasks/common/holdout.py``: random and stratified, by column, by group or
    by the files), written as one Parquet file per part in the cache."""
    if ref.meta.get("labels"):
        return split_multilabel(ref, spec, cache_dir)
    target = ref.meta.get("target")
    if not target:
        raise SpecError("a tabular pipeline needs 'data.target', the column to predict.")
    from trainflow.tasks.common import leakage
    from trainflow.tasks.tabular.profile import apply_plan, profile_notes

    plan = ref.meta.get("plan")
    source = ref.meta.get("source") or ref.path
    raw = read_parquet(ref.path, keep=False)
    keys, fixed = _split_columns(raw)
    df = apply_plan(raw.drop(columns=[c for c in (holdout.KEY, ML.FOLD) if c in raw.columns]), plan, target,
                    source=source)
    notes = profile_notes(plan or {})
    if spec.preprocess.impute.method == "drop_rows":
        before = len(df)
        whole = df.notna().all(axis=1).to_numpy()
        df = df[whole].reset_index(drop=True)
        keys, fixed = (None if keys is None else keys[whole]), (None if fixed is None else fixed[whole])
        notes.append(f"drop_rows removed {before - len(df)} of {before} rows with missing values")
        if len(df) < 2:
            raise DataError(f"After dropping rows with missing values, {len(df)} rows are left in "
                            f"'{ref.meta.get('source')}'; choose another preprocess.impute.method.")
    parts = holdout.assign(len(df), spec, str(source), y=df[target].to_numpy(), keys=keys, fixed_test=fixed,
                           sort=False)
    notes += parts.notes
    train, test = df.iloc[parts.train], df.iloc[parts.test]
    validation = df.iloc[parts.validation] if len(parts.validation) else None
    key = cache_key(spec, data=ref.digest, split=spec.split.model_dump(), drop=spec.preprocess.impute.method,
                    plan=plan)
    # The files are written and digested (pyarrow and hashlib release the GIL) while the checks
    # run: ~1.5 s of a 1M-row split. The pool waits for the writes even when a check stops the run;
    # the files are written atomically, and a split whose task failed is never a cached result.
    with ThreadPoolExecutor(1, thread_name_prefix="split-writer") as pool:
        stored = pool.submit(store_split_tables, cache_dir, key, train, test, "tabular", ref.meta, validation)
        notes += leakage.raise_or_warn(leakage.table_alarms(train, test, target, spec), spec)
        if spec.task == "classification":
            holdout.require_scorable(df[target].to_numpy(), parts, f"'{ref.meta.get('source')}' (column '{target}')")
    refs = stored.result()
    counts = {}
    if spec.task == "classification":
        counts = {n: {str(k): int(v) for k, v in df[target].iloc[idx].value_counts().sort_index().items()}
                  for n, idx in parts.items()}
    return holdout.split_ref(refs, {"class_counts": counts, "notes": notes})


def _split_columns(raw: Any) -> tuple[Any, Any]:
    """The split key the loader carried (``holdout.KEY``) and the files' test rows (``ML.FOLD``), or None."""
    keys = raw[holdout.KEY].to_numpy() if holdout.KEY in raw.columns else None
    fixed = (raw[ML.FOLD] == "test").to_numpy() if ML.FOLD in raw.columns else None
    return keys, fixed


def split_multilabel(ref: DataRef, spec: PipelineSpec, cache_dir: str) -> SplitRef:
    """The multi-label split (``tasks/common/holdout.py``: the files' fixed one, a column or groups, or
    iterative stratification); the label columns travel beside the plan's features."""
    from trainflow.tasks.common import leakage
    from trainflow.tasks.tabular.profile import apply_plan, profile_notes

    labels = ref.meta["labels"]
    plan = ref.meta.get("plan")
    raw = read_parquet(ref.path, keep=False)
    keys, fixed = _split_columns(raw)
    df = apply_plan(raw.drop(columns=[c for c in (holdout.KEY, ML.FOLD) if c in raw.columns]), plan,
                    source=ref.meta.get("source") or ref.path)
    df = _pd().concat([df.drop(columns=[c for c in labels if c in df.columns]), raw[labels]], axis=1)
    parts = holdout.assign(len(df), spec, str(ref.meta.get("source") or ref.path), Y=ML.label_matrix(df, labels),
                           keys=keys, fixed_test=fixed)
    train, test = df.iloc[parts.train], df.iloc[parts.test]
    validation = df.iloc[parts.validation] if len(parts.validation) else None
    notes = profile_notes(plan or {}) + parts.notes
    # a column that alone predicts a label; rows repeated across the split
    notes += leakage.raise_or_warn(leakage.label_alarms(train, labels, spec) + leakage.duplicate_alarm(
        leakage.row_digests(train), leakage.row_digests(test), "rows"), spec)
    key = cache_key(spec, data=ref.digest, split=spec.split.model_dump(), plan=plan, labels=labels)
    refs = store_split_tables(cache_dir, key, train, test, "tabular", ref.meta, validation)
    return holdout.split_ref(refs, {"label_counts": holdout.label_counts(ML.label_matrix(df, labels), labels, parts),
                                    "notes": notes})


# ---------------------------------------------------------------- fit


def column_kinds(X: Any) -> tuple[list[str], list[str]]:
    """Numeric and categorical feature columns."""
    pd = _pd()
    numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c]) and not pd.api.types.is_bool_dtype(X[c])]
    return numeric, [c for c in X.columns if c not in numeric]


def build_pipeline(spec: PipelineSpec, numeric: list[str], categorical: list[str], n_features_hint: int) -> Any:
    """The unfitted imbalanced-learn pipeline for a spec and a table's columns."""
    from imblearn.pipeline import Pipeline
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder

    p, seed = spec.preprocess, spec.seed
    imp_comp, imp_cfg = p.impute.resolve("preprocess.impute")
    num_imputer = imp_comp.build(imp_cfg, seed=seed) or "passthrough"
    codes = make_pipeline(
        SimpleImputer(strategy="most_frequent"),
        OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, dtype=np.float64),
    )
    # Category codes come first, so their positions are known before fitting (indicator columns,
    # whose number depends on the data, trail the numeric block).
    impute = ColumnTransformer([("cat", codes, categorical), ("num", num_imputer, numeric)],
                               sparse_threshold=0, verbose_feature_names_out=False)
    steps: list[tuple[str, Any]] = [("impute", impute)]

    sam_comp, sam_cfg = p.resample.resolve("preprocess.resample", task=spec.task)
    cat_idx = list(range(len(categorical)))
    sampler = sam_comp.build(sam_cfg, seed=seed, categorical=cat_idx or None)
    on_codes = sam_comp.extra.get("on_codes", False)
    if sampler is not None and on_codes:
        steps.append(("resample", sampler))

    sc_comp, sc_cfg = p.scale.resolve("preprocess.scale")
    en_comp, en_cfg = p.encode.resolve("preprocess.encode")
    scaler = sc_comp.build(sc_cfg, seed=seed)
    if not categorical and scaler == "passthrough":
        # nothing to encode or scale: a ColumnTransformer here would only copy the whole matrix (twice)
        steps.append(("encode", "passthrough"))
    else:
        steps.append(("encode", ColumnTransformer([("cat", en_comp.build(en_cfg, seed=seed), cat_idx)],
                                                  remainder=scaler, sparse_threshold=0)))
    if sampler is not None and not on_codes:
        steps.append(("resample", sampler))
    red_comp, red_cfg = p.reduce.resolve("preprocess.reduce")
    reducer = red_comp.build(red_cfg, seed=seed, n_features=n_features_hint, task=spec.task)
    if reducer is not None:
        steps.append(("reduce", reducer))
    mod_comp, mod_cfg = spec.model.resolve("model", task=spec.task)
    class_weight = "balanced" if p.resample.method == "class_weight" else None
    steps.append(("model", mod_comp.build(mod_cfg, seed=seed, class_weight=class_weight, task=spec.task)))
    return Pipeline(steps)


def fit(split_ref: SplitRef, spec: PipelineSpec, cache_dir: str) -> ModelRef:
    """Fit the pipeline on the training split; save it with skops beside its input schema."""
    sio = trust.skops_io()

    target = split_ref.train.meta["target"]
    train = read_parquet(split_ref.train.path, keep=False)
    labels = split_ref.train.meta.get("labels") or []
    if labels:
        X, y_raw = train.drop(columns=labels), None
    else:
        X, y_raw = _xy(train, target)
    numeric, categorical = column_kinds(X)
    classes: list[Any] = []
    extra: dict[str, Any] = {}
    if labels:
        Y = ML.label_matrix(train, labels)
        extra["labels"] = labels
        extra |= ML.delimited_label_column(spec.data.options())
        extra["constant_labels"] = ML.constant_labels(Y, labels, f"'{split_ref.train.meta.get('source')}'")
        y = Y[:, [j for j, lab in enumerate(labels) if lab not in extra["constant_labels"]]]
        if spec.multilabel.threshold == "tuned":
            given = holdout.validation_part(split_ref)
            held = read_parquet(given.path, keep=False) if given is not None else None
            extra["thresholds"] = ML.tune_thresholds(
                lambda: build_pipeline(spec, numeric, categorical, _encoded_width(X, numeric, categorical)),
                X, Y, spec, None if held is None else (held.drop(columns=labels), ML.label_matrix(held, labels)))
        else:
            extra["thresholds"] = [float(spec.multilabel.threshold)] * len(labels)
    elif spec.task == "classification":
        classes = sorted(y_raw.unique().tolist(), key=str)
        y = y_raw.map({c: i for i, c in enumerate(classes)}).to_numpy()
    else:
        y = y_raw.to_numpy(dtype=float)
    # the selection score first: a tuner may stop a hopeless candidate after a fold (before the fit)
    cv = None
    if spec.split.cv_folds >= 2:
        cv = (cross_validate(spec, numeric, categorical, X, Y, extra["thresholds"]) if labels
              else cross_validate(spec, numeric, categorical, X, y, classes=classes or None))
    pipe = build_pipeline(spec, numeric, categorical, n_features_hint=_encoded_width(X, numeric, categorical))
    method = spec.evaluate.calibrate if spec.task == "classification" and not labels else "none"
    given = holdout.validation_part(split_ref) if method != "none" else None
    notes = []
    if method == "none" or given is not None:
        with _recording_resampled_counts(pipe, classes) as resampled:
            pipe.fit(X, y)
    if given is not None:  # the spec's validation part: the model never saw it
        X_val, y_val = _xy(read_parquet(given.path, keep=False), target)
        seen = y_val.isin(classes).to_numpy()
        notes.append(calibration.calibrate(pipe, X_val[seen], y_val[seen].map(
            {c: i for i, c in enumerate(classes)}).to_numpy(), method) + " (the spec's split.validation)")
    elif method != "none":  # no validation part: a seeded carve-out of the training rows
        fit_rows, val_rows = calibration.validation_part(y, spec.split.seed)
        with _recording_resampled_counts(pipe, classes, "the training rows left once the calibration "
                                         "part is set aside") as resampled:
            pipe.fit(X.iloc[fit_rows], y[fit_rows])
        notes.append(calibration.calibrate(pipe, X.iloc[val_rows], y[val_rows], method))

    meta: dict[str, Any] = {"steps": [name for name, _ in pipe.steps], "classes": [str(c) for c in classes],
                            **({"notes": notes} if notes else {})}
    if labels:
        meta["constant_labels"] = extra["constant_labels"]
        meta["thresholds"] = dict(zip(labels, extra["thresholds"]))
    if resampled and spec.task == "classification":
        meta["class_counts_after_resampling"] = {str(classes[int(v)]): n for v, n in sorted(resampled.items())}
    if cv is not None:
        meta["cv"] = cv

    key = model_key(split_ref, spec)
    folder = Path(cache_dir) / "models" / key[:16]
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    sio.dump(pipe, tmp / MODEL_FILE)
    # A model that predict would refuse must not be published: check it as predict will load it.
    trust.check_skops(tmp / MODEL_FILE, trusted_types())
    schema = {
        "task": spec.task, "target": target, "classes": classes, "plan": split_ref.train.meta.get("plan"),
        "id": spec.data.options().get("id"), "reading": reading_options(spec.data.options()),
        "features": [{"name": c, "kind": "numeric" if c in numeric else "categorical", "dtype": str(X[c].dtype)}
                     for c in X.columns],
        **extra,
    }
    (tmp / SCHEMA_FILE).write_text(json.dumps(schema, indent=2, default=str))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)
    memo.remember(folder / MODEL_FILE, pipe)  # evaluate, next in this process, need not load it back
    return ModelRef.of_folder(folder, MODEL_FILE, "tabular", meta)


def _encoded_width(X: Any, numeric: list[str], categorical: list[str]) -> int:
    return len(numeric) + sum(int(X[c].nunique()) for c in categorical)


@contextmanager
def _recording_resampled_counts(pipe: Any, classes: list[Any] | None = None, where: str = "the training rows"):
    """Yield a dict that the pipeline's sampler fills, during ``pipe.fit``, with the class counts of
    the rows it returns: the counts come from the one real fit, not from resampling a second time.
    The rows the sampler gets (``classes``: the names of their label codes; ``where``: what they
    are, for a message) are checked first (:func:`~trainflow.tasks.tabular.preprocess.check_sampler`).

    The recorder is an attribute of the sampler instance only while fitting (imbalanced-learn's
    Pipeline fits its steps in place when it has no ``memory``), so the saved model is unchanged.
    """
    counts: dict[Any, int] = {}
    sampler = dict(pipe.steps).get("resample")
    if sampler is None:
        yield counts
        return
    real = sampler.fit_resample

    def fit_resample(X: Any, y: Any, **params: Any) -> Any:
        check_sampler(sampler, y, classes, where)
        try:
            Xr, yr = real(X, y, **params)
        except (RuntimeError, ValueError) as exc:
            # ADASYN gives up on some data (a class none of whose neighbours is of another class;
            # too few rows to generate once rounded): its reason, said as a data error
            if type(sampler).__name__ != "ADASYN":
                raise
            raise DataError(f"imbalanced-learn's ADASYN (preprocess.resample.method adasyn) gives up on {where}: "
                            f"'{exc}'; choose preprocess.resample.method smote or random_over.") from None
        values, n = np.unique(yr, return_counts=True)
        counts.update(zip(values.tolist(), n.tolist()))
        return Xr, yr

    sampler.fit_resample = fit_resample
    try:
        yield counts
    finally:
        del sampler.fit_resample


def cross_validate(spec: PipelineSpec, numeric: list[str], categorical: list[str], X: Any, y: Any,
                   thresholds: list[float] | None = None, classes: list[Any] | None = None) -> dict[str, Any]:
    """k-fold CV of the whole pipeline on the training split; the primary metric per fold. With
    ``thresholds`` (multi-label, ``y`` the 0/1 label matrix) the folds are iterative-stratified and
    the thresholds applied; a label constant in a fold's training rows is predicted as its value.
    ``classes`` names the class codes in ``y`` for messages."""
    from sklearn.model_selection import KFold, StratifiedKFold

    primary = spec.evaluate.primary or M.PRIMARY[spec.task]
    cls = spec.task == "classification"
    if thresholds is not None:
        folds = ML.stratified_folds(y, spec.split.cv_folds, spec.split.seed)
    else:
        folds = (StratifiedKFold if cls else KFold)(spec.split.cv_folds, shuffle=True,
                                                    random_state=spec.split.seed).split(X, y)
    scores = []
    for fold, (tr, va) in enumerate(folds, 1):
        pipe = build_pipeline(spec, numeric, categorical, _encoded_width(X, numeric, categorical))
        if thresholds is not None:
            learned = [j for j in range(y.shape[1]) if len(np.unique(y[tr, j])) == 2]
            pipe.fit(X.iloc[tr], y[tr][:, learned])
            proba = np.tile(y[tr[0]].astype(float), (len(va), 1))  # constant labels at their value
            proba[:, learned] = ML.positive_proba(pipe.steps[-1][1], ML.transform(pipe, X.iloc[va]))
            pred = ML.apply_thresholds(proba, thresholds)
        else:
            where = f"the training rows of cross-validation fold {fold} of {spec.split.cv_folds} (split.cv_folds)"
            with _recording_resampled_counts(pipe, classes, where):
                pipe.fit(X.iloc[tr], y[tr])
            pred, proba = _predict(pipe, X.iloc[va], cls)
        scores.append(M.score([primary], y[va], pred, proba)[primary])
        report(len(scores), {f"cv_{primary}": float(np.mean(scores))})  # a tuner may prune after this fold
    return {"metric": primary, "folds": scores, "mean": float(np.mean(scores)), "std": float(np.std(scores))}


#: classifiers whose ``predict`` is by definition the most probable class of ``predict_proba``
PREDICT_IS_ARGMAX_PROBA = ("HistGradientBoostingClassifier", "RandomForestClassifier", "CalibratedClassifierCV")


def _predict(pipe: Any, X: Any, classification: bool) -> tuple[Any, Any]:
    """Predictions and (for a classifier that has them) class probabilities; the preprocessing
    runs once for both, and the model once where its prediction is the most probable class."""
    if not (classification and hasattr(pipe, "predict_proba")):
        return pipe.predict(X), None
    Xt = X
    for _, step in pipe.steps[:-1]:
        if step is None or step == "passthrough" or hasattr(step, "fit_resample"):
            continue  # samplers act at fit time only
        Xt = step.transform(Xt)
    model = pipe.steps[-1][1]
    proba = model.predict_proba(Xt)
    if type(model).__name__ in PREDICT_IS_ARGMAX_PROBA:
        return model.classes_.take(np.argmax(proba, axis=1), axis=0), proba
    return model.predict(Xt), proba


# ---------------------------------------------------------------- evaluate


def trusted_types() -> frozenset[str]:
    """The exact types a saved tabular model may hold (:func:`trainflow.trust.trusted_types`)."""
    return trust.trusted_types(PIPELINE_TYPES | calibration.TYPES, modality="tabular")


def load_model(folder: str | Path) -> tuple[Any, dict[str, Any]]:
    """Load a saved pipeline and its schema; a type outside the exact trusted set is refused
    (trainflow.trust), and a schema of another shape, or a model that does not match it, is a
    DataError naming the file (:mod:`trainflow.tasks.tabular.schema`)."""
    pipe = trust.load_skops(Path(folder) / MODEL_FILE, trusted_types())
    schema = read_schema(Path(folder) / SCHEMA_FILE)
    check_model_matches(pipe, schema, Path(folder) / MODEL_FILE, Path(folder) / SCHEMA_FILE)
    return pipe, schema


def evaluate(model: ModelRef, split_ref: SplitRef, spec: PipelineSpec, plots_dir: str) -> Evaluation:
    """Score the fitted pipeline on the test split; plots go to ``plots_dir``."""
    pipe = memo.recall(Path(model.path) / MODEL_FILE)  # the pipeline this process has just fitted
    if pipe is None:
        pipe, schema = load_model(model.path)
    else:
        schema = json.loads((Path(model.path) / SCHEMA_FILE).read_text())
    test = read_parquet(split_ref.test.path, keep=False)
    if schema.get("labels"):
        return evaluate_multilabel(pipe, schema, test, model, split_ref, spec, plots_dir)
    X, y_raw = _xy(test, schema["target"])
    cls = spec.task == "classification"
    names = spec.evaluate.metrics or M.DEFAULTS[spec.task]
    notes = list(split_ref.meta.get("notes", []))
    per_class, confusion, charts, tables = {}, {}, {}, {}
    if cls:
        classes = schema["classes"]
        index = {str(c): i for i, c in enumerate(classes)}
        labels = y_raw.astype(str)
        keep = labels.isin(index)
        if not keep.all():
            notes.append(f"test rows with classes unseen in training were skipped: {sorted(set(labels[~keep]))}")
            X, labels = X[keep], labels[keep]
        y = labels.map(index).to_numpy()
        pred, proba = _predict(pipe, X, True)
        metrics = M.score(names, y, pred, proba, classes)
        per_class, confusion = M.classification_details(y, pred, classes)
        charts["Confusion matrix"] = plots.confusion_matrix_png(confusion, Path(plots_dir) / "confusion_matrix.png")
        before = split_ref.meta.get("class_counts", {}).get("train", {})
        after = model.meta.get("class_counts_after_resampling")
        if before:
            counts = {"train": before} | ({"train after resampling": after} if after else {})
            charts["Class balance"] = plots.bars_png(counts, Path(plots_dir) / "class_balance.png",
                                                     "Training classes before/after resampling")
            tables["Class balance"] = [{"class": c, "train": before.get(c, 0),
                                        **({"after resampling": after.get(c, 0)} if after else {})}
                                       for c in sorted(before)]
    else:
        y = y_raw.to_numpy(dtype=float)
        pred, _ = _predict(pipe, X, False)
        metrics = M.score(names, y, pred)
        # a line of a few thousand points looks the same as one of a million and draws in milliseconds
        order = np.argsort(y, kind="stable")
        step = max(1, len(y) // PLOT_POINTS)
        shown, x = order[::step], list(range(0, len(y), step))
        title = "Test rows sorted by true value" + (f" (every {step}th row)" if step > 1 else "")
        charts["Predicted vs true"] = plots.series_png(
            {"true": (x, y[shown].tolist()), "predicted (same order)": (x, pred[shown].tolist())},
            Path(plots_dir) / "predicted_vs_true.png", title)
    if spec.evaluate.importance:
        primary = spec.evaluate.primary or M.PRIMARY[spec.task]
        ranked, note = importance.permutation_table(pipe, X, y, primary, lambda est, X_: _predict(est, X_, cls),
                                                    spec.seed)
        tables["Permutation importance (test split)"] = [{k: round(v, 4) if isinstance(v, float) else v
                                                          for k, v in r.items()} for r in ranked]
        charts["Permutation importance"] = importance.importance_png(ranked, Path(plots_dir) / "importance.png",
                                                                     primary)
        notes.append(note)
    ev = Evaluation(metrics=with_cv(metrics, model), per_class=per_class, confusion=confusion, plots=charts,
                    tables=tables, notes=notes)
    return assess(ev, spec, y, pred, proba if cls else None, classes if cls else None, plots_dir)


def with_cv(metrics: dict[str, float], model: ModelRef) -> dict[str, float]:
    """``metrics`` plus the mean and spread of the cross-validated primary metric, when the fit ran CV."""
    cv = model.meta.get("cv")
    if not cv:
        return metrics
    return {**metrics, f"cv_{cv['metric']}_mean": cv["mean"], f"cv_{cv['metric']}_std": cv["std"]}


def evaluate_multilabel(pipe: Any, schema: dict[str, Any], test: Any, model: ModelRef, split_ref: SplitRef,
                        spec: PipelineSpec, plots_dir: str) -> Evaluation:
    """Multi-label scores (thresholds applied), the per-label table and plot, label cardinality."""
    labels = schema["labels"]
    proba = ML.full_proba(pipe, test.drop(columns=labels), schema)
    ev = ML.evaluation(ML.label_matrix(test, labels), proba, labels, schema["thresholds"], schema["constant_labels"],
                       spec, plots_dir, split_ref.meta.get("notes", []), split_ref.meta.get("label_counts"))
    return ev.model_copy(update={"metrics": with_cv(ev.metrics, model)})


# ---------------------------------------------------------------- export & predict


def export(model: ModelRef, run_dir: str) -> list[str]:
    """Copy the model and its schema into the run folder."""
    names = []
    for name in (MODEL_FILE, SCHEMA_FILE):
        shutil.copy2(Path(model.path) / name, Path(run_dir) / name)
        names.append(name)
    return names


def reading_options(options: dict[str, Any]) -> dict[str, Any]:
    """How the training CSV was read (delimiter, encoding, missing-value markers), kept in the schema
    so that new rows in the same format read the same way; {} for other loaders."""
    return {k: options[k] for k in ("delimiter", "encoding", "na_values") if k in options}


def read_table(path: str | Path, reading: dict[str, Any] | None = None) -> Any:
    """Read new rows for prediction from CSV or Parquet (by extension), with the loaders' checks; a
    CSV as the training one was read (``reading``: :func:`reading_options`, from the schema)."""
    from trainflow.tasks.common.load import existing_file, read_csv_file, read_parquet_file

    path = existing_file(path, option="input", what="input file")
    if path.suffix.lower() in (".parquet", ".pq"):
        return read_parquet_file(path, what="input file")
    reading = reading if isinstance(reading, dict) else {}
    return read_csv_file(path, str(reading.get("delimiter", ",")), str(reading.get("encoding", "utf-8")),
                         reading.get("na_values"), what="input file")


def predict(run_dir: str | Path, input_path: str | Path, id_column: str | None = None,
            keep: list[str] | tuple[str, ...] = ()) -> Any:
    """Predict for new rows with a saved run's model; the rows must match the training schema.

    The output starts with the id column (``id_column``, else the training spec's ``data.id``) and the
    ``keep`` columns, copied from the input so that each prediction can be traced to its row.
    """
    from trainflow.tasks.common.predict import passthrough, passthrough_columns

    pd = _pd()
    pipe, schema = load_model(run_dir)
    named = passthrough_columns(id_column or schema.get("id"), keep, output_columns(pipe, schema),
                                from_spec=not id_column)
    df = read_table(input_path, schema.get("reading"))
    df.columns = [str(c).strip() for c in df.columns]
    traced = passthrough(df, named, input_path)
    given = df  # as read: a multi-label input may carry its delimited labels (checked against training's)
    X = feature_rows(df, schema, input_path)
    if schema.get("labels"):
        out = predict_labels(pipe, schema, X, given, input_path)
    elif schema["task"] == "classification":
        pred, proba = _predict(pipe, X, True)
        out = pd.DataFrame({"prediction": [schema["classes"][int(i)] for i in pred]})
        if proba is not None:
            for i, c in enumerate(schema["classes"]):
                out[f"proba_{c}"] = proba[:, i]
    else:
        out = pd.DataFrame({"prediction": pipe.predict(X)})
    return pd.concat([traced.reset_index(drop=True), out], axis=1)


def output_columns(pipe: Any, schema: dict[str, Any]) -> list[str]:
    """The columns :func:`predict` writes after the id and kept ones (the order it writes them)."""
    if schema.get("labels"):
        return [*schema["labels"], *(f"proba_{lab}" for lab in schema["labels"])]
    if schema["task"] == "classification" and hasattr(pipe, "predict_proba"):
        return ["prediction", *(f"proba_{c}" for c in schema["classes"])]
    return ["prediction"]


def feature_rows(df: Any, schema: dict[str, Any], input_path: Any) -> Any:
    """The training features of new rows ``df``: the saved plan applied, every feature present, numeric
    ones as numbers; DataError naming ``input_path`` and the column otherwise."""
    from trainflow.tasks.tabular.profile import apply_plan

    pd = _pd()
    df = apply_plan(df, schema.get("plan"), source=str(input_path))
    features = schema["features"]
    missing = [f["name"] for f in features if f["name"] not in df.columns]
    if missing:
        raise DataError(f"The input file '{input_path}' lacks training column(s) {', '.join(map(repr, missing))}; "
                        f"the model expects: {', '.join(f['name'] for f in features)}.")
    problems = []
    for f in features:
        col = df[f["name"]]
        if f["kind"] == "numeric" and not pd.api.types.is_numeric_dtype(col):
            bad = col.dropna().astype(str)
            bad = bad[~bad.str.match(NUMBER_REGEX)]
            if len(bad):
                problems.append(f"column '{f['name']}' must be numeric; found text such as {shown(bad.iloc[0])} "
                                f"(row {bad.index[0] + 1})")
            else:
                df[f["name"]] = pd.to_numeric(col)
    if problems:
        raise DataError(f"The input file '{input_path}' does not match the training schema: " + "; ".join(problems))
    return df[[f["name"] for f in features]]


def predict_labels(pipe: Any, schema: dict[str, Any], X: Any, df: Any, input_path: Any) -> Any:
    """One 0/1 column per label (thresholds applied) and ``proba_<label>``; labels in a delimited
    target column of the input that training never saw are reported (they cannot be predicted)."""
    labels = schema["labels"]
    proba = ML.full_proba(pipe, X, schema)
    ML.warn_unseen_in_column(df, schema, input_path)
    return ML.label_frame(proba, labels, schema["thresholds"])


# ---------------------------------------------------------------- the modality


ImputeSpec = choice("ImputeSpec", "imputer", "method", "median",
                    "drop_rows | mean | median | most_frequent | constant | knn | iterative",
                    "Missing values (``preprocess.impute``): an imputer component and its options.")
EncodeSpec = choice("EncodeSpec", "encoder", "method", "onehot", "onehot | ordinal",
                    "Categorical columns (``preprocess.encode``): an encoder component and its options.")
ScaleSpec = choice("ScaleSpec", "scaler", "method", "standard", "standard | minmax | robust | none",
                   "Numeric columns (``preprocess.scale``): a scaler component and its options.")
ReduceSpec = choice("ReduceSpec", "reducer", "method", "none", "none | pca | select_k_best | variance_threshold",
                    "Fewer features (``preprocess.reduce``): a reducer component and its options.")
ResampleSpec = choice("ResampleSpec", "sampler", "method", "none", "none | class_weight | random_over | smote | ...",
                      "Class imbalance (``preprocess.resample``): a sampler component and its options.")


def multilabel_problems(spec: PipelineSpec) -> list[str]:
    """Labels given the multi-label way exactly when the task is multilabel; no sampler for label matrices."""
    options = spec.data.options()
    problems = ML.label_source_problems(options, spec.task, spec.data.loader == "arff", hint=", or the 'arff' loader")
    if spec.task != "multilabel":
        return problems
    if options.get("targets") and options.get("target") and not options.get("separator"):
        problems.append("give the labels as 'data.targets' or as 'data.target' with 'data.separator', not both.")
    if spec.preprocess.resample.method not in ("none", "class_weight"):
        problems.append(f"'preprocess.resample.method' {spec.preprocess.resample.method!r} resamples one target; "
                        "for multi-label data use 'none' or 'class_weight' (per-label weights).")
    return problems


def target_problems(spec: PipelineSpec) -> list[str]:
    """The target named as a feature, a kept column or the id (a model must not see what it predicts)."""
    options = spec.data.options()
    target = options.get("target")
    if not target:
        return []
    named = {"data.features": options.get("features") or [], "features.keep": spec.features.keep,
             "data.id": [options.get("id")]}
    return [f"the target '{target}' is also listed in '{where}'; a model must not see the column it predicts."
            for where, columns in named.items() if target in columns]


# skops (fit saves with it; its import brings every scikit-learn estimator), then the plots'
warmup.add("tabular", trust.skops_io)


@component("modality", "tabular")
class Tabular(Modality, stages_from=__name__):
    """Tables (CSV, Parquet): preprocessing and a scikit-learn model in one pipeline, saved with skops.

    Imputation, encoding, scaling, reduction and resampling are fitted with the model in one
    imbalanced-learn pipeline on the training split only."""

    sections = {"preprocess.impute": ImputeSpec, "preprocess.encode": EncodeSpec, "preprocess.scale": ScaleSpec,
                "preprocess.reduce": ReduceSpec, "preprocess.resample": ResampleSpec, "multilabel": ML.MultilabelSpec}
    default_models = {"classification": "logistic_regression", "regression": "ridge", "multilabel": "random_forest"}
    predict_passes_columns = True  # --id and --keep: input columns copied beside the predictions
    calibrations = ("sigmoid", "isotonic")

    def branch(self) -> Any:
        """The adapter that makes tabular data one input of a multimodal pipeline (this module's functions)."""
        import sys

        from trainflow.tasks.tabular.branch import TabularBranch

        return TabularBranch(sys.modules[__name__])

    def spec_problems(self, spec: PipelineSpec) -> list[str]:
        """The preprocessing components and their options; class weights need a model that takes them;
        the target is not also a feature, a kept column or the id."""
        from trainflow.registry import REGISTRY

        problems = []
        for slot in ("impute", "encode", "scale", "reduce", "resample"):
            problems += getattr(spec.preprocess, slot).problems(f"preprocess.{slot}", task=spec.task)
        model = REGISTRY.get("model", spec.model.name) if spec.model.name in REGISTRY.names("model") else None
        if spec.preprocess.resample.method == "class_weight" and model and model.extra.get("class_weight") is False:
            problems.append(f"'preprocess.resample.method' is 'class_weight', but model {spec.model.name!r} "
                            "takes no class weights; choose a sampler such as 'smote' or 'random_over'.")
        return problems + target_problems(spec) + multilabel_problems(spec)

    def drift_frame(self, run_dir: str | Path, source: DataRef | str | Path) -> Any:
        """The saved schema's feature columns of ``source``: a stored split part (its Parquet file holds
        the plan's features beside the target) or new rows, read and checked as :func:`predict` reads
        them (DataError naming a missing or non-numeric column). A stored part of more than
        :data:`~trainflow.tasks.common.drift.REFERENCE_ITEMS` rows gives a seeded sample of that many, as
        for images: the bins and the test's sample need no more, and 750,000 rows cost ~3 s of CPU."""
        from trainflow.tasks.common.drift import reference_items

        schema = read_schema(Path(run_dir) / SCHEMA_FILE)
        if isinstance(source, DataRef):
            rows = read_parquet(source.path)[[f["name"] for f in schema["features"]]]
            kept = rows.iloc[reference_items(len(rows))].reset_index(drop=True)
            kept.attrs["of"] = len(rows)  # the profile says which share it summarises
            return kept
        df = read_table(source, schema.get("reading"))
        df.columns = [str(c).strip() for c in df.columns]
        return feature_rows(df, schema, source)

    def scoring_rows(self, split: SplitRef) -> tuple[Path, Any]:
        """The test split's Parquet file (the plan's features beside the target, which ``predict``
        reads as new rows) and its true targets (multi-label: the label columns)."""
        labels = split.test.meta.get("labels") or []
        test = read_parquet(split.test.path, keep=False)
        return Path(split.test.path), (test[labels] if labels else test[split.test.meta["target"]])

    def example(self, folder: Path) -> Example:
        """40 rows: two numeric features (one with gaps), a category, two classes."""
        rng = np.random.default_rng(0)
        y = np.array(["a", "b"] * 20)
        df = _pd().DataFrame({"x1": rng.normal(size=40) + (y == "b") * 2, "x2": rng.normal(size=40),
                              "colour": rng.choice(["red", "blue"], 40), "label": y})
        df.loc[::7, "x2"] = np.nan
        df.to_csv(folder / "train.csv", index=False)
        df.drop(columns=["label"]).head(5).to_csv(folder / "new.csv", index=False)
        return Example(spec={"task": "classification", "data": {"loader": "csv", "path": str(folder / "train.csv"),
                                                               "target": "label"}},
                       predict_input=folder / "new.csv")
