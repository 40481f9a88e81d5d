"""The text modality: classification of documents with TF-IDF + scikit-learn, or a neural network.

Documents travel between tasks as Parquet (``text``, ``label``, kept columns). Fitting normalises
the texts (unicode NFKC, optional lowercase, whitespace), then, for a TF-IDF model, fits one
pipeline ``TfidfVectorizer -> [RandomOverSampler] -> model`` on the training split only (word or
character n-grams, vocabulary ``max_features`` / ``min_df``; the sampler, when asked for, only
ever sees training rows). The pipeline is saved with skops and loaded back with an exact list of
trusted types; ``schema.json`` holds what prediction needs (normalisation, classes, kept columns).
The neural models (``text_gru``, ``text_lstm``, ``text_cnn``) take the path of
:mod:`trainflow.tasks.text.neural_text` (vocabulary, token ids, the shared training loop); evaluation
and prediction are the same for both kinds.

Multi-label (``task: multilabel``, labels as 0/1 columns or one delimited column of a ``text_table``)
is a spec change: a TF-IDF model becomes binary relevance (one classifier per label, scikit-learn's
``OneVsRestClassifier``), a network gets one sigmoid output per label (the neural base); either way
the thresholds are saved with the model and applied at evaluation and predict time.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from trainflow import memo, trust
from trainflow.cache_keys import cache_key, model_key
from trainflow.errors import DataError
from trainflow.modality import Example
from trainflow.refs import DataRef, Evaluation, ModelRef, SplitRef, read_parquet, store_parquet, store_split_tables
from trainflow.registry import component
from trainflow.tasks.common.assess import assess
from trainflow.tasks.common import holdout
from trainflow.tasks.common import metrics as M
from trainflow.tasks.common import neural, plots
from trainflow.tasks.common.neural import NeuralModality
from trainflow.tasks.common.validate import Check, run_expectations
from trainflow.tasks.common import multilabel as ML
from trainflow.tasks.text.loaders import LABEL, TEXT, reading_options
from trainflow.tasks.text.schema import read_schema
from trainflow.tasks.text.neural_text import TokenPreprocess
from trainflow.tasks.text.normalise import normalise

if TYPE_CHECKING:
    from trainflow.spec import PipelineSpec

MODEL_FILE = "model.skops"
SCHEMA_FILE = "schema.json"
VOCABULARY_FILE = "vocabulary.json"
MISCLASSIFIED_SHOWN = 10  # misclassified test texts listed in the report
LENGTH_SHOWN = 20  # training texts left out for their length named in the warning

#: The fixed pieces of every saved text pipeline; with the registered text models' types and plain
#: values they are all a model file may contain (trainflow.trust).
PIPELINE_TYPES = frozenset({
    "sklearn.pipeline.Pipeline", "sklearn.feature_extraction.text.TfidfVectorizer",
    "sklearn.feature_extraction.text.TfidfTransformer",
    "imblearn.pipeline.Pipeline", "imblearn.over_sampling._random_over_sampler.RandomOverSampler",
    "sklearn.multiclass.OneVsRestClassifier", "sklearn.preprocessing._label.LabelBinarizer",  # multi-label
    "sklearn.pipeline.FeatureUnion",  # tfidf_auto's word + character n-grams
})


class TextPreprocess(BaseModel):
    """How documents are normalised (every text model) and become TF-IDF features (``preprocess.text``);
    fitted on the training split only. The neural models' tokens are ``preprocess.tokens``."""

    model_config = ConfigDict(extra="forbid")
    lowercase: bool = Field(True, description="Lowercase the texts")
    analyzer: Literal["word", "char_wb"] = Field(
        "word", description="word: word n-grams (regex tokens); char_wb: character n-grams inside word boundaries")
    ngram_min: int = Field(1, ge=1, description="Shortest n-gram")
    ngram_max: int = Field(2, ge=1, description="Longest n-gram")
    max_features: int | None = Field(50000, ge=1, description="Vocabulary size: the most frequent n-grams")
    min_df: int = Field(1, ge=1, description="Drop n-grams found in fewer training documents than this")
    sublinear_tf: bool = Field(True, description="1 + log(term count) instead of the raw count")
    class_weight: bool = Field(False, description="Weight classes inversely to their training frequency "
                                                  "(TF-IDF models; neural ones: train.imbalance)")
    oversample: bool = Field(False, description="Repeat random minority-class training texts until the classes "
                                                "are even (TF-IDF models, inside the pipeline: never test texts)")
    deduplicate: bool = Field(False, description="Drop repeated texts (first one kept) before the split, so no "
                                                 "test text is also a training text")


class TextValidation(BaseModel):
    """Checks of the per-document table (``text_validation``)."""

    model_config = ConfigDict(extra="forbid")
    min_tokens: int = Field(1, ge=0, description="Fewest words a document may have (1: no empty texts)")
    max_tokens: int | None = Field(None, ge=1, description="Most words a document may have")
    max_duplicate_share: float = Field(0.2, ge=0, le=1, description="Largest share of repeated texts")
    min_class_share: float = Field(0.01, ge=0, le=1, description="Smallest share of a class in the data")
    # Real corpora hold a few empty or runaway documents (8 empty tweets in 10,000): they should not
    # block a run, and should not be trained on either.
    mostly: float = Field(0.995, gt=0, le=1, description="Share of documents that must pass min_tokens / max_tokens; "
                                                        "the others are named and left out of training")
    strict: bool = Field(False, description="Every document must pass min_tokens / max_tokens (mostly: 1)")

    @model_validator(mode="after")
    def _min_not_above_max(self) -> TextValidation:
        # every document would fail the length check, found only after loading the corpus
        if self.max_tokens is not None and self.min_tokens > self.max_tokens:
            raise ValueError(f"min_tokens ({self.min_tokens}) is above max_tokens ({self.max_tokens}), so no "
                             "document can pass; expected min_tokens <= max_tokens")
        return self

    @property
    def required_share(self) -> float:
        """The share of documents the length checks require (1 when strict)."""
        return 1.0 if self.strict else self.mostly


# ---------------------------------------------------------------- store & validate


def store(df: Any, cache_dir: str, digest: str, config: Any) -> DataRef:
    """Save the loaded documents as Parquet in the cache, named by the source's digest."""
    labels = df.attrs.get("labels") or []  # multi-label: its 0/1 label columns
    path = store_parquet(df, cache_dir, digest)
    kept = [c for c in df.columns if c not in (TEXT, LABEL, holdout.KEY, *labels)]
    return DataRef(path=str(path), digest=digest, modality="text",
                   meta={"rows": len(df), "labelled": LABEL in df.columns or bool(labels),
                         "source": getattr(config, "path", ""), "text_column": getattr(config, "text", TEXT),
                         "keep": kept, "reading": reading_options(config), **({"labels": labels} if labels else {})})


def document_table(df: Any, lowercase: bool = True, labels: list[str] = ()) -> Any:
    """One row per document: its normalised text, token (whitespace-separated) count, label and its
    class's share (multi-label: a ``label <name>`` column per label of ``labels``)."""
    import pandas as pd

    texts = normalise(df[TEXT], lowercase)
    table = pd.DataFrame({"text": texts, "tokens": [len(t.split()) for t in texts]})
    if labels:
        return table.assign(**neural.label_columns(df[labels].to_numpy(), labels))
    if LABEL in df.columns:
        table["label"] = df[LABEL].to_numpy()
        table["class_share"] = table["label"].map(table["label"].value_counts(normalize=True)).astype(float)
    return table


def validate(ref: DataRef, spec: PipelineSpec, docs_dir: str | None) -> dict[str, Any]:
    """GX checks of the per-document table; raises ValidationFailed listing the failures."""
    v, t = spec.validation, spec.text_validation
    labels = ref.meta.get("labels", [])
    table = document_table(read_parquet(ref.path), spec.preprocess.text.lowercase, labels)
    checks = [Check("ExpectTableRowCountToBeBetween", {"min_value": v.min_rows}, f"validation.min_rows is {v.min_rows}"),
              Check("ExpectColumnValuesToBeBetween", {"column": "tokens", "min_value": t.min_tokens,
                                                      "max_value": t.max_tokens, "mostly": t.required_share},
                    f"text_validation.min_tokens / max_tokens (a text empty after normalisation has 0 words), on "
                    f"at least {t.required_share:.1%} of the texts (text_validation.mostly, strict)"),
              Check("ExpectColumnProportionOfUniqueValuesToBeBetween",
                    {"column": "text", "min_value": 1 - t.max_duplicate_share},
                    f"text_validation.max_duplicate_share is {t.max_duplicate_share}")]
    checks += neural.label_value_checks(labels)
    if "label" in table.columns:
        shares = table["label"].value_counts(normalize=True)
        rare = [f"{c!r} ({share:.2%})" for c, share in shares.items() if share < t.min_class_share]
        checks += [Check("ExpectColumnValuesToNotBeNull", {"column": "label"}, "every document needs a label"),
                   Check("ExpectColumnUniqueValueCountToBeBetween", {"column": "label", "min_value": 2},
                         "a classifier needs at least two classes"),
                   Check("ExpectColumnMinToBeBetween", {"column": "class_share", "min_value": t.min_class_share},
                         f"text_validation.min_class_share is {t.min_class_share}"
                         + (f" (classes below it: {', '.join(rare[:5])})" if rare else ""))]
        if v.labels:
            checks.append(Check("ExpectColumnValuesToBeInSet", {"column": "label", "value_set": v.labels},
                                "validation.labels"))
    checks += [Check(e.type, dict(e.kwargs), "validation.expectations") for e in v.expectations]
    return run_expectations(table, checks, docs_dir, suite=spec.name).as_dict()


# ---------------------------------------------------------------- split


def split(ref: DataRef, spec: PipelineSpec, cache_dir: str) -> SplitRef:
    """The hold-out split of the documents (``tasks/common/holdout.py``: random and stratified, by a
    column such as a benchmark's official split, or by group), one Parquet file per part."""
    source = ref.meta.get("source") or ref.path
    df = read_parquet(ref.path, keep=False)
    labels = ref.meta.get("labels", [])
    if LABEL not in df.columns and not labels:
        raise DataError(f"Training needs labels: set data.target to the label column of '{source}'.")
    if not labels:
        df = df.assign(**{LABEL: df[LABEL].astype(str)})
    notes = []
    normal = normalise(df[TEXT], spec.preprocess.text.lowercase)
    if spec.preprocess.text.deduplicate:
        keep = ~_series(normal).duplicated().to_numpy()
        notes.append(f"deduplicate: {int((~keep).sum())} repeated texts dropped of {len(df)}")
        df, normal = df[keep], [n for n, k in zip(normal, keep) if k]  # the index keeps the file's row numbers
    keys = df.pop(holdout.KEY).to_numpy() if holdout.KEY in df.columns else None
    parts = holdout.assign(len(df), spec, str(source), y=None if labels else df[LABEL].to_numpy(),
                           Y=ML.label_matrix(df, labels) if labels else None, keys=keys, sort=bool(labels),
                           what="texts")
    notes += parts.notes
    train, test = df.iloc[parts.train], df.iloc[parts.test]
    train, dropped = drop_off_length(train, spec, source)
    notes += dropped
    validation = df.iloc[parts.validation] if len(parts.validation) else None
    shared = set(normalise(train[TEXT], spec.preprocess.text.lowercase))
    for name, idx in parts.items()[1:]:
        repeated = sum(t in shared for t in normalise(df[TEXT].iloc[idx], spec.preprocess.text.lowercase))
        if repeated:
            notes.append(f"{repeated} of {len(idx)} {name} texts also occur in the training split "
                         f"(preprocess.text.deduplicate: true removes repeats before the split)")
    key = cache_key(spec, data=ref.digest, split=spec.split.model_dump(), dedupe=spec.preprocess.text.deduplicate,
                    lowercase=spec.preprocess.text.lowercase)
    if labels:
        refs = store_split_tables(cache_dir, key, train, test, "text", ref.meta, validation)
        return holdout.split_ref(refs, {"label_counts": holdout.label_counts(ML.label_matrix(df, labels), labels,
                                                                             parts), "notes": notes})
    holdout.require_scorable(df[LABEL].to_numpy(), parts, f"'{source}' (labels)")
    refs = store_split_tables(cache_dir, key, train, test, "text", ref.meta, validation)
    return holdout.split_ref(refs, {"class_counts": holdout.class_counts(df[LABEL].to_numpy(), parts),
                                    "notes": notes})


def drop_off_length(train: Any, spec: PipelineSpec, source: str) -> tuple[Any, list[str]]:
    """The training documents without those outside ``text_validation.min_tokens`` / ``max_tokens``
    (validation tolerated them up to its share), and a note naming them (a warning too). Test
    documents are kept: a model meets such texts in use, and its score should say how it copes."""
    t = spec.text_validation
    tokens = np.array([len(x.split()) for x in normalise(train[TEXT], spec.preprocess.text.lowercase)])
    off = (tokens < t.min_tokens) | ((tokens > t.max_tokens) if t.max_tokens is not None else False)
    if not off.any():
        return train, []
    rows = train[off]
    named = (rows["file"].astype(str).tolist() if "file" in rows.columns
             else [f"row {i + 1}" for i in rows.index])  # 1-based data rows of the table (line n+1 under a header)
    shown = ", ".join(sorted(named, key=_natural)[:LENGTH_SHOWN]) + (
        f" and {len(named) - LENGTH_SHOWN} more" if len(named) > LENGTH_SHOWN else "")
    examples = "; ".join(repr(str(x)[:60]) for x in rows[TEXT].head(3))
    bounds = f"min_tokens {t.min_tokens}" + (f", max_tokens {t.max_tokens}" if t.max_tokens is not None else "")
    note = (f"{int(off.sum())} of {len(train)} training texts of '{source}' left out of training: outside "
            f"text_validation {bounds} after normalisation: {shown} (e.g. {examples})")
    from trainflow.alerts import warn

    warn(f"split: {note}")
    return train[~off], [note]


def _natural(name: str) -> tuple[Any, ...]:
    """Sort key: 'row 9' before 'row 10'."""
    import re

    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def _series(values: list[str]) -> Any:
    import pandas as pd

    return pd.Series(values)


# ---------------------------------------------------------------- fit


def build_pipeline(spec: PipelineSpec, choice: dict[str, Any] | None = None) -> Any:
    """The unfitted ``TfidfVectorizer -> [RandomOverSampler] -> model`` pipeline of a spec (multi-label:
    the model is one classifier per label); ``choice``: what ``tfidf_auto`` chose
    (:func:`trainflow.tasks.text.select.choose`), built with the regular TF-IDF models."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import Pipeline

    p = spec.preprocess.text
    if choice is not None:
        from trainflow.registry import REGISTRY
        from trainflow.tasks.text import select

        vectorizer = select.vectorizer(choice["features"], p)
        comp = REGISTRY.get("model", select.MODELS[choice["model"]])
        cfg, weight = comp.config(C=choice["C"]), "balanced" if choice["class_weight"] else None
    else:
        vectorizer = TfidfVectorizer(lowercase=False, analyzer=p.analyzer, ngram_range=(p.ngram_min, p.ngram_max),
                                     max_features=p.max_features, min_df=p.min_df, sublinear_tf=p.sublinear_tf,
                                     dtype=np.float64)
        comp, cfg = spec.model.resolve("model", task=spec.task)
        weight = "balanced" if p.class_weight else None
    step = "tfidf"
    if spec.model.name == "text_embedding":  # pretrained embeddings instead of TF-IDF (the 'embeddings' extra)
        from trainflow.tasks.text import embedding

        step, vectorizer = "embed", embedding.transformer(spec.model.options())
    model = comp.build(cfg, seed=spec.seed, class_weight=weight, task=spec.task)
    if p.oversample:
        from imblearn.over_sampling import RandomOverSampler
        from imblearn.pipeline import Pipeline as SamplingPipeline  # samplers run in fit only, never in predict

        return SamplingPipeline([(step, vectorizer), ("resample", RandomOverSampler(random_state=spec.seed)),
                                 ("model", model)])
    return Pipeline([(step, vectorizer), ("model", model)])


def vectorizers(pipe: Any) -> dict[str, Any]:
    """The fitted TF-IDF vectorisers of a pipeline by name: ``{"": v}`` for one, ``{"word": v, "char": v}``
    for ``tfidf_auto``'s word + character union; none for pretrained embeddings (``text_embedding``)."""
    if "tfidf" not in pipe.named_steps:
        return {}
    step = pipe.named_steps["tfidf"]
    return dict(step.transformer_list) if hasattr(step, "transformer_list") else {"": step}


def trusted_types() -> frozenset[str]:
    """The exact types a saved text model may hold (:func:`trainflow.trust.trusted_types`)."""
    return trust.trusted_types(PIPELINE_TYPES, modality="text")


def is_neural(model_name: str | None) -> bool:
    """Whether the registered model ``model_name`` is a neural text model (trained by the shared loop)."""
    from trainflow.registry import REGISTRY

    return bool(model_name in REGISTRY.names("model") and REGISTRY.get("model", model_name).extra.get("neural"))


def fit(split_ref: SplitRef, spec: PipelineSpec, cache_dir: str) -> ModelRef:
    """Fit vectoriser and model (or vocabulary and network) on the training split only; save them."""
    if is_neural(spec.model.name):
        from trainflow.tasks.text import neural_text

        return neural_text.fit(split_ref, spec, cache_dir)
    train = read_parquet(split_ref.train.path, keep=False)
    texts = normalise(train[TEXT], spec.preprocess.text.lowercase)
    labels = split_ref.train.meta.get("labels", [])
    if labels:
        y, classes, extra = fit_labels(train, labels, texts, split_ref, spec)
    else:
        classes = sorted(train[LABEL].astype(str).unique().tolist())
        y, extra = train[LABEL].astype(str).map({c: i for i, c in enumerate(classes)}).to_numpy(), {}
    choice, steps = None, []
    if spec.model.name == "text_embedding":  # the schema names the embedding; the model file is the classifier
        from trainflow.tasks.text import embedding

        extra["embedding"] = embedding.describe(embedding.transformer(spec.model.options()))
    if spec.model.name == "tfidf_auto":
        from trainflow.tasks.text import select

        choice = select.choose(texts, y, classes, spec)
        extra["selection"] = choice
        steps.append(select.describe(choice))
    # the spec's own pipeline cross-validated (sweeps, tune); tfidf_auto's choice carries its own CV score
    cv = cross_validate(spec, texts, y) if spec.split.cv_folds >= 2 and not labels and choice is None else None
    pipe = build_pipeline(spec, choice)
    pipe.fit(texts, y)
    folder = Path(cache_dir) / "models" / model_key(split_ref, spec)[:16]
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_pipeline(pipe, tmp)
    trust.check_skops(tmp / MODEL_FILE, trusted_types())  # a type we would refuse later fails now
    schema = {"task": spec.task, "classes": classes, "lowercase": spec.preprocess.text.lowercase,
              "text_column": split_ref.train.meta.get("text_column", TEXT), "keep": split_ref.train.meta.get("keep", []),
              "reading": split_ref.train.meta.get("reading", {}), "vocabulary": sum(len(v.vocabulary_) for v in vectorizers(pipe).values()), **extra}
    (tmp / SCHEMA_FILE).write_text(json.dumps(schema, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)
    memo.remember(folder / MODEL_FILE, pipe)
    meta = {"constant_labels": extra["constant_labels"], "thresholds": dict(zip(labels, extra["thresholds"]))} \
        if labels else {}
    if choice is not None:
        meta |= {"steps": steps, "selection": {"method": "cv", "metric": choice["metric"], "value": choice["value"],
                                                "folds": choice["folds"], "chosen": {k: choice[k] for k in (
                                                    "features", "model", "C", "class_weight")}}}
    return ModelRef.of_folder(folder, MODEL_FILE, "text", {"vocabulary": schema["vocabulary"], "classes": classes,
                                                           **meta, **({"cv": cv} if cv else {})})


def cross_validate(spec: PipelineSpec, texts: Any, y: np.ndarray) -> dict[str, Any]:
    """Stratified k-fold CV (``split.cv_folds``) of the whole TF-IDF pipeline on the training texts,
    the vectoriser refitted in each fold so no fold's words leak; the primary metric per fold."""
    from sklearn.model_selection import StratifiedKFold

    from trainflow.tasks.common.selection import report

    primary = spec.evaluate.primary or M.PRIMARY[spec.task]
    texts = np.asarray(texts, dtype=object)
    scores = []
    for tr, va in StratifiedKFold(spec.split.cv_folds, shuffle=True, random_state=spec.split.seed).split(texts, y):
        pipe = build_pipeline(spec).fit(texts[tr], y[tr])
        proba = pipe.predict_proba(texts[va]) if hasattr(pipe, "predict_proba") else None
        scores.append(M.score([primary], y[va], pipe.predict(texts[va]), proba)[primary])
        report(len(scores), {f"cv_{primary}": float(np.mean(scores))})
    return {"metric": primary, "folds": scores, "mean": float(np.mean(scores)), "std": float(np.std(scores))}


def fit_labels(train: Any, labels: list[str], texts: list[str], split_ref: SplitRef,
               spec: PipelineSpec) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    """Binary relevance targets: the 0/1 columns of the labels not constant in training, the label
    names, and what the schema saves (labels, constant labels, thresholds: the spec's, or tuned per
    label on the split's validation part, or a carve-out of the training texts)."""
    Y = ML.label_matrix(train, labels)
    constant = ML.constant_labels(Y, labels, f"'{split_ref.train.meta.get('source')}'")
    if spec.multilabel.threshold == "tuned":
        given = holdout.validation_part(split_ref)
        held = read_parquet(given.path, keep=False) if given is not None else None
        thresholds = ML.tune_thresholds(lambda: build_pipeline(spec), _series(texts), Y, spec, None if held is None else
                                        (_series(normalise(held[TEXT], spec.preprocess.text.lowercase)),
                                         ML.label_matrix(held, labels)))
    else:
        thresholds = [float(spec.multilabel.threshold)] * len(labels)
    learned = [j for j, lab in enumerate(labels) if lab not in constant]
    return Y[:, learned], labels, {"labels": labels, "constant_labels": constant, "thresholds": thresholds,
                                   **ML.delimited_label_column(spec.data.options())}


def save_pipeline(pipe: Any, folder: Path) -> None:
    """The pipeline with skops, its vectorisers' vocabularies as JSON (terms in column order: a list,
    or for a word + character union an object of such lists): skops writes a dict entry by entry,
    37 MB and 25 s for the 41,000 n-grams of the SMS demo."""
    sio = trust.skops_io()

    vecs = vectorizers(pipe)
    vocabularies = {name: v.vocabulary_ for name, v in vecs.items()}
    terms = {name: sorted(voc, key=voc.get) for name, voc in vocabularies.items()}
    (folder / VOCABULARY_FILE).write_text(json.dumps(terms[""] if "" in terms else terms, ensure_ascii=False))
    for v in vecs.values():
        del v.vocabulary_
    try:  # a pretrained embedding is not saved: only the classifier after it (the schema names the embedding)
        sio.dump(pipe.named_steps["model"] if "embed" in pipe.named_steps else pipe, folder / MODEL_FILE)
    finally:
        for name, v in vecs.items():
            v.vocabulary_ = vocabularies[name]


def load_model(folder: str | Path) -> tuple[Any, dict[str, Any]]:
    """A saved pipeline and its schema; a type outside the exact trusted set is refused."""
    folder = Path(folder)
    schema = read_schema(folder / SCHEMA_FILE)
    if "embedding" in schema:  # text_embedding: the embedding, then the classifier
        from sklearn.pipeline import Pipeline

        from trainflow.tasks.text import embedding

        step = embedding.from_schema(schema["embedding"], folder / SCHEMA_FILE)
        return Pipeline([("embed", step), ("model", trust.load_skops(folder / MODEL_FILE, trusted_types()))]), schema
    pipe = trust.load_skops(folder / MODEL_FILE, trusted_types())
    terms = trust.read_json(folder / VOCABULARY_FILE)
    vecs = vectorizers(pipe)
    saved = {"": terms} if isinstance(terms, list) else terms
    if not isinstance(saved, dict) or set(saved) != set(vecs) or not all(
            isinstance(t, list) and all(isinstance(w, str) for w in t) for t in saved.values()):
        raise trust.damaged(folder / VOCABULARY_FILE, "expected a JSON list of terms per vectoriser of the model "
                                                      f"({', '.join(repr(n) for n in vecs if n) or 'one list'})")
    for name, v in vecs.items():
        v.vocabulary_ = {t: i for i, t in enumerate(saved[name])}
    return pipe, schema


# ---------------------------------------------------------------- evaluate


def scorer(folder: str | Path, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """The saved model in ``folder`` as a function of normalised texts giving class probabilities
    [n, k] (multi-label: label probabilities), and its schema (classes, normalisation, text column, kept columns). Either kind of text
    model: a TF-IDF pipeline (skops) or a network (safetensors + JSON); both read as untrusted files."""
    folder = Path(folder)
    network_files = (folder / neural.CONFIG_FILE).exists() or (folder / neural.WEIGHTS_FILE).exists()
    if network_files and not (folder / MODEL_FILE).exists():
        from trainflow.tasks.text import neural_text

        network, config, vocab = neural_text.load_model(folder)
        return lambda texts: neural_text.probabilities(network, config, vocab, texts, device), config
    pipe = memo.recall(folder / MODEL_FILE)
    if pipe is None:
        pipe, schema = load_model(folder)
    else:
        schema = json.loads((folder / SCHEMA_FILE).read_text())
    if schema.get("labels"):  # P(label) per label, constant labels at their value
        return lambda texts: ML.full_proba(pipe, texts, schema), schema
    return pipe.predict_proba, schema


def evaluate(model: ModelRef, split_ref: SplitRef, spec: PipelineSpec, plots_dir: str) -> Evaluation:
    """Classification metrics, precision-recall AUC, per-class F1 and the misclassified texts (and
    the learning curves of a network)."""
    score, schema = scorer(model.path, spec.train.device)
    test = read_parquet(split_ref.test.path, keep=False)
    if schema.get("labels"):
        return evaluate_labels(score, schema, test, model, split_ref, spec, plots_dir)
    classes = schema["classes"]
    notes = list(split_ref.meta.get("notes", []))
    labels = test[LABEL].astype(str)
    seen = labels.isin(classes)
    if not seen.all():
        notes.append(f"test texts with classes unseen in training were skipped: {sorted(set(labels[~seen]))}")
        test, labels = test[seen.to_numpy()], labels[seen]
    y = labels.map({c: i for i, c in enumerate(classes)}).to_numpy()
    texts = normalise(test[TEXT], schema["lowercase"])
    proba = score(texts)
    pred = np.argmax(proba, axis=1)
    names = spec.evaluate.metrics or [*M.DEFAULTS[spec.task], "pr_auc"]
    metrics = M.score(names, y, pred, proba, classes)
    per_class, confusion = M.classification_details(y, pred, classes)
    metrics |= {f"f1_{c}": v["f1"] for c, v in per_class.items()}
    wrong = np.flatnonzero(pred != y)
    wrong = wrong[np.argsort(-proba[wrong, pred[wrong]], kind="stable")][:MISCLASSIFIED_SHOWN]  # most confident first
    raw = test[TEXT].tolist()
    tables = {"Misclassified texts (most confident first)": [
        {"text": raw[i][:200], "true": classes[y[i]], "predicted": classes[pred[i]],
         "probability": round(float(proba[i, pred[i]]), 3)} for i in wrong]}
    if schema.get("selection"):  # tfidf_auto: every candidate's cross-validated score
        from trainflow.tasks.text import select

        notes.append(select.describe(schema["selection"]))
        tables[f"Model selection: {schema['selection']['folds']}-fold cross-validation on the training split"] = \
            schema["selection"]["table"]
    charts = {"Confusion matrix": plots.confusion_matrix_png(confusion, Path(plots_dir) / "confusion_matrix.png")}
    if model.meta.get("history"):  # a network: learning curves and the training history
        curves, history = neural.history_report(model, schema, plots_dir)
        charts, tables = {**charts, **curves}, {**tables, **history}
    return assess(Evaluation(metrics=metrics, per_class=per_class, confusion=confusion, plots=charts, tables=tables,
                             notes=notes), spec, y, pred, proba, classes, plots_dir)


def evaluate_labels(score: Any, schema: dict[str, Any], test: Any, model: ModelRef, split_ref: SplitRef,
                    spec: PipelineSpec, plots_dir: str) -> Evaluation:
    """The multi-label evaluation (scores with the saved thresholds, per-label table and plot) and,
    for a network, its learning curves."""
    labels = schema["labels"]
    proba = score(normalise(test[TEXT], schema["lowercase"]))
    ev = ML.evaluation(ML.label_matrix(test, labels), proba, labels, schema["thresholds"], schema["constant_labels"],
                       spec, plots_dir, split_ref.meta.get("notes", []), split_ref.meta.get("label_counts"))
    if not model.meta.get("history"):
        return ev
    curves, history = neural.history_report(model, schema, plots_dir)
    return ev.model_copy(update={"plots": {**ev.plots, **curves}, "tables": {**ev.tables, **history}})


# ---------------------------------------------------------------- export & predict


def export(model: ModelRef, run_dir: str) -> list[str]:
    """Copy the model and its schema (a network: its weights and JSON config) into the run folder."""
    if not (Path(model.path) / MODEL_FILE).exists():
        return neural.export(model, run_dir)
    names = [MODEL_FILE, VOCABULARY_FILE, SCHEMA_FILE]
    for name in names:
        shutil.copy2(Path(model.path) / name, Path(run_dir) / name)
    return names


def read_documents(input_path: str | Path, schema: dict[str, Any]) -> Any:
    """New documents: a table with the training text column, or a folder of .txt files."""
    import pandas as pd

    from trainflow.tasks.common.load import existing_file
    from trainflow.tasks.common.load import require_column
    from trainflow.tasks.text.loaders import TextTableConfig, read_text_file, read_text_table

    path = Path(input_path)
    if path.is_dir():
        files = sorted(path.rglob("*.txt"))
        if not files:
            raise DataError(f"The input folder '{path}' holds no .txt files.")
        return pd.DataFrame({"file": [str(f.relative_to(path)) for f in files],
                             TEXT: [read_text_file(f, "utf-8") for f in files]})
    path = existing_file(path, option="input", what="input file")
    # as the training table was read (delimiter, quoting, encoding); one document per row, blank ones too
    df = read_text_table(path, TextTableConfig(path=str(path), **schema.get("reading", {})), what="input file",
                         blank_rows=True)
    column = schema["text_column"]
    require_column(df, column, path, "the training spec's data.text")
    if schema.get("labels"):  # multi-label: labels in its delimited label column that training never saw
        ML.warn_unseen_in_column(df, schema, path)
    kept = [c for c in schema.get("keep", []) if c in df.columns]
    out = df[kept].copy()
    out.insert(0, TEXT, df[column].fillna("").astype(str))
    return out


def predict(run_dir: str | Path, input_path: str | Path) -> Any:
    """The predicted class and class probabilities of each new document, after its kept columns
    (multi-label: a 0/1 column and a probability column per label, the saved thresholds applied)."""
    score, schema = scorer(run_dir)
    docs = read_documents(input_path, schema)
    texts = normalise(docs[TEXT], schema["lowercase"])
    empty = [i for i, t in enumerate(texts) if not t]
    if empty:
        from trainflow.alerts import warn

        shown = ", ".join(str(i + 1) for i in empty[:10]) + (", ..." if len(empty) > 10 else "")
        warn(f"{len(empty)} of {len(texts)} documents of '{input_path}' are empty after normalisation (rows "
             f"{shown}): they hold no words, so their predictions are the model's answer to an empty text.")
    proba = score(texts)
    out = docs.drop(columns=[TEXT]).reset_index(drop=True)
    if schema.get("labels"):
        import pandas as pd

        return pd.concat([out, ML.label_frame(proba, schema["labels"], schema["thresholds"])], axis=1)
    out["prediction"] = [schema["classes"][i] for i in np.argmax(proba, axis=1)]
    for i, c in enumerate(schema["classes"]):
        out[f"proba_{c}"] = proba[:, i]
    return out


# ---------------------------------------------------------------- the modality


@component("modality", "text")
class Text(NeuralModality, stages_from=__name__):
    """Documents (a text column of a table, or .txt files per class): TF-IDF and a scikit-learn model,
    or an embedding and a recurrent or convolutional network (shared loop)."""

    sections = {**NeuralModality.sections, "preprocess.text": TextPreprocess, "preprocess.tokens": TokenPreprocess,
                "text_validation": TextValidation}
    default_models = {"classification": "tfidf_auto", "multilabel": "tfidf_logistic"}

    def scoring_rows(self, split: SplitRef) -> tuple[Path, Any]:
        """The test documents as a Parquet table with the training text column (what ``predict``
        reads), written beside the test part, and their true classes (multi-label: the label columns)."""
        import pandas as pd

        from trainflow.refs import atomic_target

        test = read_parquet(split.test.path, keep=False)
        labels = split.test.meta.get("labels") or []
        path = Path(split.test.path).with_name("scoring.parquet")
        with atomic_target(path) as tmp:
            pd.DataFrame({split.test.meta.get("text_column") or TEXT: test[TEXT]}).to_parquet(tmp, index=False)
        return path, (test[labels] if labels else test[LABEL].astype(str).tolist())

    def drift_frame(self, run_dir: str | Path, source: DataRef | str | Path) -> Any:
        """Per document: its length in words and characters, and its words (normalised as the model
        normalises them), whose vocabulary, out-of-vocabulary rate and top tokens the profile keeps
        (:func:`trainflow.tasks.common.drift.tokens_profile`); of a stored split part or of new
        documents read as :func:`predict` reads them."""
        import re

        import pandas as pd

        folder = Path(run_dir)
        schema = (read_schema(folder / SCHEMA_FILE) if (folder / SCHEMA_FILE).exists()
                  else trust.read_json(folder / neural.CONFIG_FILE))
        texts = (read_parquet(source.path)[TEXT] if isinstance(source, DataRef)
                 else read_documents(source, schema)[TEXT])
        texts = normalise(texts.fillna("").astype(str), schema.get("lowercase", True))
        words = [re.findall(r"\w+", t.lower()) for t in texts]
        return pd.DataFrame({"words": [len(w) for w in words], "chars": [len(t) for t in texts],
                             "tokens": pd.Series(words, dtype=object)})

    def spec_problems(self, spec: PipelineSpec) -> list[str]:
        """n-gram range in order; class weights need a model that takes them; each kind of model has
        its own imbalance option (TF-IDF: preprocess.text, neural: train.imbalance)."""
        from trainflow.registry import REGISTRY

        p = spec.preprocess.text
        problems = ML.label_source_problems(spec.data.options(), spec.task,
                                            hint=" of the 'text_table' loader" if spec.data.loader == "text_table" else
                                            " with the 'text_table' loader (a folder per class gives one label)")
        if spec.task == "multilabel" and p.oversample:
            problems.append("'preprocess.text.oversample' repeats texts of a class, and a multi-label text has several; "
                            "use 'preprocess.text.class_weight: true' (per-label weights).")
        if is_neural(spec.model.name):
            problems += super().spec_problems(spec)
            asked = [f"'preprocess.text.{k}'" for k in ("class_weight", "oversample") if getattr(p, k)]
            if asked:
                problems.append(f"{' and '.join(asked)} apply to the TF-IDF models; for the neural model "
                                f"{spec.model.name!r} set 'train.imbalance' to 'class_weight' or 'oversample'.")
            return problems
        if spec.evaluate.calibrate == "temperature":
            problems.append(f"'evaluate.calibrate: temperature' applies to the neural text models (it divides a "
                            f"network's logits); {spec.model.name!r} is a TF-IDF model: use 'none'.")
        if spec.train.imbalance != "none":
            problems.append(f"'train.imbalance' applies to the neural text models; for {spec.model.name!r} set "
                            "'preprocess.text.class_weight: true' or 'preprocess.text.oversample: true'.")
        if spec.model.name == "tfidf_auto":
            from trainflow.tasks.text import select

            problems += select.metric_problems(spec)
        if spec.model.name == "text_embedding":
            from trainflow.tasks.text import embedding

            problems += embedding.spec_problems(spec)
        if spec.model.name == "tfidf_auto" and (p.class_weight or p.oversample):
            asked = " and ".join(f"'preprocess.text.{k}'" for k in ("class_weight", "oversample") if getattr(p, k))
            problems.append(f"{asked} set with model 'tfidf_auto', which weighs classes itself; use its option "
                            "'model.class_weight' (auto | balanced | none), or a fixed model such as tfidf_svm.")
        if p.class_weight and p.oversample:
            problems.append("'preprocess.text.class_weight' and 'preprocess.text.oversample' are both true; "
                            "choose one way of handling imbalance.")
        if p.ngram_min > p.ngram_max:
            problems.append(f"'preprocess.text.ngram_min' ({p.ngram_min}) is above 'preprocess.text.ngram_max' "
                            f"({p.ngram_max}).")
        model = REGISTRY.get("model", spec.model.name) if spec.model.name in REGISTRY.names("model") else None
        if p.class_weight and model and model.extra.get("class_weight") is False:
            problems.append(f"'preprocess.text.class_weight' is true, but model {spec.model.name!r} takes no class "
                            "weights; choose tfidf_logistic or tfidf_svm.")
        return problems

    def example(self, folder: Path) -> Example:
        """40 short messages of two classes, and three new ones to predict."""
        import pandas as pd

        rng = np.random.default_rng(0)
        words = {"spam": ["win", "free", "prize", "cash", "claim", "now"],
                 "ham": ["see", "you", "at", "lunch", "later", "home"]}
        rows = [{"message": " ".join(rng.choice(words[c], 5)), "label": c, "id": i}
                for i, c in enumerate(["spam", "ham"] * 20)]
        pd.DataFrame(rows).to_csv(folder / "train.csv", index=False)
        pd.DataFrame({"message": ["free cash now", "lunch at home", "claim your prize"], "id": [1, 2, 3]}
                     ).to_csv(folder / "new.csv", index=False)
        return Example(spec={"task": "classification",
                             "data": {"loader": "text_table", "path": str(folder / "train.csv"), "text": "message",
                                      "target": "label", "keep": ["id"]},
                             "text_validation": {"max_duplicate_share": 1.0}},
                       predict_input=folder / "new.csv")
