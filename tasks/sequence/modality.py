"""The sequence modality: classification and regression of whole series.

Series travel between tasks as ``.npz`` files in the cache: values [n, T, C] (NaN where missing or
after a series' end), ``lengths`` [n], labels/targets as text (multi-label: also ``Y``, the [n, labels]
0/1 matrix), and the fixed fold when the loader read separate train/test files. Fitting applies :class:`SeriesPreprocessor` (missing values,
z-normalization; statistics from the training split only), pads each batch with a mask of real
steps, and trains the spec's network (``lstm``, ``gru``, ``rnn``, ``cnn1d``, ``inception_time``,
``resnet1d``) with the shared loop of :mod:`trainflow.tasks.common.training`, or fits a classical
classifier of :mod:`trainflow.tasks.sequence.classical` (``minirocket``, the default, ``rocket``,
``knn_dtw``). A network is saved as safetensors weights, a classical model as arrays (npz), each
with a JSON config holding everything prediction needs (preprocessing statistics, classes, loader options).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trainflow.cache_keys import cache_key
from trainflow.errors import DataError
from trainflow.modality import Example
from trainflow.refs import DataRef, Evaluation, ModelRef, SplitRef, file_digest, load_npz, save_npz
from trainflow.registry import component
from trainflow.tasks.common.assess import assess
from trainflow.tasks.common import holdout
from trainflow.tasks.common import metrics as M
from trainflow.tasks.common import neural, plots
from trainflow.tasks.common.neural import NeuralModality
from trainflow.tasks.common.validate import Check, run_expectations
from trainflow.tasks.sequence import advice, classical
from trainflow.tasks.sequence.loaders import SeriesSet, cut, read_any
from trainflow.tasks.sequence.preprocess import (SequencePreprocess, SeriesPreprocessor, load_series, pack,  # noqa: F401
                                                preprocessing, preprocessing_steps)
from trainflow.tasks.common import multilabel as ML
from trainflow.tasks.common.labels import targets

if TYPE_CHECKING:
    from trainflow.spec import PipelineSpec


# ---------------------------------------------------------------- store & validate


def store(data: SeriesSet, cache_dir: str, digest: str, config: Any) -> DataRef:
    """Save loaded series as ``.npz`` in the cache, named by the source's digest."""
    path = Path(cache_dir) / "data" / f"{digest}.npz"
    data = cut(data, getattr(config, "max_length", None))
    save_npz(path, **pack(data))  # rewritten on each load: see refs.store_parquet
    lengths = [len(s) for s in data.series]
    return DataRef(path=str(path), digest=digest, modality="sequence", meta={
        "rows": len(data.series), "channels": data.channels, "min_length": min(lengths), "max_length": max(lengths),
        "class_labels": data.class_labels, "source": data.source, "fixed_split": data.fold is not None,
        "labelled": data.y is not None, "loader_options": config.model_dump(mode="json"),
        **({"labels": data.label_names} if data.label_matrix is not None else {})})


def series_table(series: list[np.ndarray], y: Any, ids: Any) -> Any:
    """One row per series: id, label, length, channels, share of missing values, constant or not."""
    import pandas as pd

    rows = []
    for i, s in enumerate(series):
        nan = float(np.isnan(s).mean()) if s.size else 1.0
        with np.errstate(all="ignore"):
            spread = np.nanmax(s, axis=0) - np.nanmin(s, axis=0) if nan < 1 else np.zeros(1)
        rows.append({"series": str(ids[i]), "length": int(len(s)), "channels": int(s.shape[1]),
                     "nan_share": nan, "constant": bool(nan < 1 and np.all(np.nan_to_num(spread) == 0))})
    table = pd.DataFrame(rows)
    if y is not None:
        table["label"] = [str(v) for v in y]
    return table


def checks_for(table: Any, spec: PipelineSpec, meta: dict[str, Any]) -> list[Check]:
    """The expectation suite for a per-series summary table."""
    v = spec.validation
    checks = [
        Check("ExpectTableRowCountToBeBetween", {"min_value": min(v.min_rows, 2)},
              "at least two series are needed to train and test"),
        Check("ExpectColumnValuesToBeBetween", {"column": "nan_share", "max_value": 1.0, "strict_max": True},
              "a series with no values at all (all NaN) cannot be used"),
        Check("ExpectColumnValuesToBeBetween", {"column": "length", "min_value": 2},
              "a series needs at least two steps"),
        Check("ExpectColumnValuesToBeBetween", {"column": "channels", "min_value": meta["channels"],
                                                "max_value": meta["channels"]}, "every series has the same channels"),
        Check("ExpectColumnValuesToBeInSet", {"column": "constant", "value_set": [False], "mostly": 0.9},
              "more than 10% of the series are constant (no shape to learn)"),
    ]
    if "label" in table.columns and spec.task == "classification":
        checks.append(Check("ExpectColumnUniqueValueCountToBeBetween", {"column": "label", "min_value": 2},
                            "a classifier needs at least two classes"))
        allowed = v.labels or meta.get("class_labels")
        if allowed:
            checks.append(Check("ExpectColumnValuesToBeInSet", {"column": "label", "value_set": [str(a) for a in allowed]},
                                "validation.labels" if v.labels else "the labels declared in @classLabel"))
    if "label" in table.columns and spec.task == "regression":
        checks.append(Check("ExpectColumnValuesToMatchRegex",
                            {"column": "label", "regex": r"^\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*$"},
                            "a regression target must be a number"))
    if meta.get("labels"):
        checks += neural.label_value_checks(meta["labels"])
    checks += [Check(e.type, dict(e.kwargs), "validation.expectations") for e in v.expectations]
    return checks


def validate(ref: DataRef, spec: PipelineSpec, docs_dir: str | None) -> dict[str, Any]:
    """Great Expectations on the per-series summary table; raises ValidationFailed listing failures."""
    data = load_series(ref.path)
    if data["y"] is None and spec.task in ("classification", "multilabel", "regression"):
        raise DataError(f"'{ref.meta.get('source')}' has no labels; a {spec.task} pipeline needs one per series.")
    if data["y"] is not None:
        neural.check_label_shape(data["Y"] if data["Y"] is not None else data["y"], spec.task,
                                 f"'{ref.meta.get('source')}'")
    table = series_table(data["series"], data["y"], data["ids"])
    if data["Y"] is not None:
        table = table.assign(**neural.label_columns(data["Y"], ref.meta["labels"]))
    return run_expectations(table, checks_for(table, spec, ref.meta), docs_dir, suite=spec.name).as_dict()


# ---------------------------------------------------------------- split


def split(ref: DataRef, spec: PipelineSpec, cache_dir: str) -> SplitRef:
    """The hold-out split (``tasks/common/holdout.py``): the files' fixed train/test split, the spec's
    column or groups, or a stratified holdout (split.test_size, seed; multi-label: iterative
    stratification over the labels); one ``.npz`` per part."""
    from trainflow.tasks.common import leakage

    arrays = load_npz(ref.path)
    source = f"'{ref.meta.get('source')}'"
    if "y" not in arrays:
        raise DataError(f"{source} has no labels; a {spec.task} pipeline needs one per series.")
    Y = arrays.get("Y")
    neural.check_label_shape(Y if Y is not None else arrays["y"], spec.task, source)
    parts = holdout.assign(len(arrays["lengths"]), spec, str(ref.meta.get("source")), y=arrays["y"], Y=Y,
                           keys=arrays.get("keys"), fixed_test=arrays["fold"] == "test" if "fold" in arrays else None,
                           what="series")
    notes = list(parts.notes)

    def digests(idx: np.ndarray) -> list[str]:
        return leakage.item_digests(arrays["x"][i, : arrays["lengths"][i]] for i in idx)

    notes += holdout.leakage_notes(digests, parts, "series", spec)
    if spec.task == "classification":
        holdout.require_scorable(arrays["y"], parts, source)
    key = cache_key(spec, data=ref.digest, split=spec.split.model_dump(), fixed="fold" in arrays)
    folder = Path(cache_dir) / "splits" / key[:16]
    refs = {}
    for name, idx in parts.items():
        path = folder / f"{name}.npz"
        part = {k: v[idx] for k, v in arrays.items() if k not in ("fold", "keys")}
        T = int(part["lengths"].max()) if len(idx) else 0
        part["x"] = part["x"][:, :T]
        save_npz(path, **part)
        refs[name] = DataRef(path=str(path), digest=file_digest(path), modality="sequence",
                             meta={**ref.meta, "rows": int(len(idx))})
    if Y is not None:
        return holdout.split_ref(refs, {"label_counts": holdout.label_counts(Y, ref.meta["labels"], parts),
                                        "notes": notes})
    counts = holdout.class_counts(arrays["y"], parts) if spec.task == "classification" else {}
    return holdout.split_ref(refs, {"class_counts": counts, "notes": notes})


# ---------------------------------------------------------------- fit


def prepare(split_ref: SplitRef, spec: PipelineSpec) -> neural.Prepared:
    """Targets, and missing values and z-normalization fitted on the training series; the network's shape."""
    import torch

    data = load_series(split_ref.train.path)
    meta = split_ref.train.meta
    if spec.task == "multilabel":  # one sigmoid output per label; the target is the 0/1 matrix
        y, classes = data["Y"].astype(np.float32), meta["labels"]
    else:
        y, classes = targets(data["y"], spec.task, meta.get("source", ""))
    pre, config = preprocessing(data["series"], spec, classes, data["y"])
    x, mask = pre.transform(data["series"])
    y_mean, y_std = (float(y.mean()), float(y.std()) or 1.0) if spec.task == "regression" else (0.0, 1.0)
    packed = spec.preprocess.sequence.lengths == "packed"

    def target_of(data: dict[str, Any]) -> Any:
        if spec.task == "multilabel":
            return torch.from_numpy(data["Y"].astype(np.float32))
        values, _ = targets(data["y"], spec.task, meta.get("source", ""), classes or None)
        return torch.from_numpy(values) if spec.task == "classification" else \
            torch.from_numpy((values - y_mean) / y_std).float()

    def part(ref: DataRef) -> tuple[Any, ...]:  # the validation part, preprocessed as the training series
        other = load_series(ref.path)
        xv, mv = pre.transform(other["series"])
        return torch.from_numpy(xv), torch.from_numpy(mv), target_of(other)

    target = target_of(data) if spec.task != "multilabel" else torch.from_numpy(y)
    return neural.Prepared(
        inputs=(torch.from_numpy(x), torch.from_numpy(mask), target),
        build={"in_channels": pre.out_channels, "out_features": len(classes) if classes else 1,
               "task": spec.task, "packed": packed or None},
        config={**config, "target_mean": y_mean, "target_std": y_std,
                **({"labels": classes} if spec.task == "multilabel" else {})},
        steps=preprocessing_steps(pre, spec, meta, config.get("normalize_choice")), task=spec.task,
        meta={"classes": classes}, part=part)


def fit(split_ref: SplitRef, spec: PipelineSpec, cache_dir: str) -> ModelRef:
    """Preprocess (fitted on training series only) and train the spec's network (saved as safetensors +
    JSON) or fit its classical model (:mod:`.classical`: arrays + JSON)."""
    if classical.is_classical(spec.model.name):
        return classical.fit(split_ref, spec, cache_dir)
    return neural.fit(prepare(split_ref, spec), split_ref, spec, cache_dir, "sequence")


# ---------------------------------------------------------------- evaluate, export, predict


def build_args(config: dict[str, Any]) -> dict[str, Any]:
    """The network's shape arguments from the config of a model saved before they were recorded."""
    return {"in_channels": config["in_channels"], "out_features": config["out_features"], "task": config["task"],
            "packed": config.get("packed")}


def load_model(folder: str | Path) -> tuple[Any, dict[str, Any]]:
    """Rebuild the network from its JSON config and load its safetensors weights (on CPU), or the
    classical model from its arrays (a folder with ``model.npz``)."""
    if (Path(folder) / classical.ARRAYS_FILE).is_file():
        return classical.load(folder)
    return neural.load_network(folder, "sequence", build_args)


def outputs(model: Any, config: dict[str, Any], series: list[np.ndarray], device: str = "auto") -> np.ndarray:
    """Class probabilities [n, k] (classification; multilabel: one per label) or predicted targets [n]
    (regression), computed on ``device`` (auto: the GPU when there is one)."""
    import torch

    from trainflow.tasks.common.training import predict as forward
    from trainflow.devices import resolve_device

    pre = SeriesPreprocessor.from_state(config["preprocess"])
    if isinstance(model, classical.ClassicalClassifier):
        return model.proba([pre.transform_one(s) for s in series])
    x, mask = pre.transform(series)
    out = forward(model, (torch.from_numpy(x), torch.from_numpy(mask)), batch_size=256, device=resolve_device(device))
    if config["task"] in ("classification", "multilabel"):
        return neural.probabilities(out, config)
    return out.reshape(-1).numpy() * config["target_std"] + config["target_mean"]


def evaluate(model_ref: ModelRef, split_ref: SplitRef, spec: PipelineSpec, plots_dir: str) -> Evaluation:
    """Test metrics, per-class report and confusion matrix (classification); learning curves."""
    model, config = load_model(model_ref.path)
    data = load_series(split_ref.test.path)
    names = spec.evaluate.metrics or M.DEFAULTS[spec.task]
    notes = list(split_ref.meta.get("notes", []))
    per_class, confusion, charts = {}, {}, {}
    out = outputs(model, config, data["series"], spec.train.device)
    if config["task"] == "multilabel":
        return neural.label_evaluation(model_ref, config, data["Y"].astype(np.int64), out, split_ref, spec, plots_dir)
    if spec.task == "classification":
        classes = config["classes"]
        y, _ = targets(data["y"], "classification", "", classes)
        keep = y >= 0
        if not keep.all():
            notes.append(f"{int((~keep).sum())} test series with classes unseen in training were skipped")
        y, proba = y[keep], out[keep]
        pred = proba.argmax(1)
        metrics = M.score(names, y, pred, proba, classes)
        per_class, confusion = M.classification_details(y, pred, classes)
        charts["Confusion matrix"] = plots.confusion_matrix_png(confusion, Path(plots_dir) / "confusion_matrix.png")
    else:
        y, _ = targets(data["y"], "regression", split_ref.test.meta.get("source", ""))
        metrics = M.score(names, y, out)
        order = np.argsort(y)
        charts["Predicted vs true"] = plots.series_png(
            {"true": (list(range(len(y))), y[order].tolist()), "predicted": (list(range(len(y))), out[order].tolist())},
            Path(plots_dir) / "predicted_vs_true.png", "Test series sorted by true target")
    if spec.task == "classification" and "normalize_choice" not in config:  # auto: the choice is in the steps
        notes += advice.normalization_notes(load_series(split_ref.train.path), config["preprocess"]["normalize"])
    curves, tables = ({}, {}) if isinstance(model, classical.ClassicalClassifier) else \
        neural.history_report(model_ref, config, plots_dir)
    ev = Evaluation(metrics=metrics, per_class=per_class, confusion=confusion, plots={**charts, **curves},
                    tables=tables, notes=notes)
    if spec.task == "classification":
        return assess(ev, spec, y, pred, proba, classes, plots_dir)
    return assess(ev, spec, y, out)


def predict(run_dir: str | Path, input_path: str | Path) -> Any:
    """Predictions for new series in any supported format (.ts, .npz, wide or long CSV)."""
    model, config = load_model(run_dir)
    options = config.get("loader_options", {})
    data = cut(read_any(input_path, config["loader"], options), options.get("max_length"))
    if data.channels != config["preprocess"]["channels"]:
        raise DataError(f"'{input_path}' holds series with {data.channels} channel(s); the model was trained on "
                        f"{config['preprocess']['channels']}.")
    classes = config["classes"] if config["task"] in ("classification", "multilabel") else None
    if data.label_names and config["task"] == "multilabel":
        ML.warn_unseen(data.label_names, config["labels"], f"the input file '{input_path}' names labels")
    frame = neural.prediction_frame("series", data.ids, outputs(model, config, data.series), classes,
                                    config.get("thresholds"))
    if data.y is not None:
        frame["label"] = data.y
    return frame


def export(model: ModelRef, run_dir: str) -> list[str]:
    """Copy the model's files into the run folder: weights or arrays, and the JSON config."""
    import shutil

    if not (Path(model.path) / classical.ARRAYS_FILE).is_file():
        return neural.export(model, run_dir)
    for name in (classical.ARRAYS_FILE, neural.CONFIG_FILE):
        shutil.copy2(Path(model.path) / name, Path(run_dir) / name)
    return [classical.ARRAYS_FILE, neural.CONFIG_FILE]


# ---------------------------------------------------------------- the modality


@component("modality", "sequence")
class Sequence(NeuralModality, stages_from=__name__):
    """Whole series, classified or regressed by a recurrent or convolutional network (shared loop),
    or classified by MiniRocket, ROCKET or k-NN DTW (sktime).

    Missing values, z-normalization and padding or packing are fitted on the training split; a
    network is saved as safetensors + JSON, a classical model as arrays (npz) + JSON."""

    sections = {**NeuralModality.sections, "preprocess.sequence": SequencePreprocess}
    # MiniRocket: near the state of the art on the UCR/UEA archives, seconds to fit, nothing to tune
    # (a network's accuracy depends on epochs and batch size that suit one data size but not another).
    default_models = {"classification": "minirocket", "multilabel": "gru", "regression": "gru"}

    def drift_frame(self, run_dir: str | Path, source: DataRef | str | Path) -> Any:
        """Length, level, spread, spectral centroid and missing share of each series
        (:func:`trainflow.tasks.common.drift.signal_summaries`), of a stored split part or of new
        series read as :func:`predict` reads them."""
        from trainflow import trust
        from trainflow.tasks.common.drift import signal_summaries

        if isinstance(source, DataRef):
            return signal_summaries(load_series(source.path)["series"])
        config = trust.read_json(Path(run_dir) / neural.CONFIG_FILE)
        return signal_summaries(read_any(source, config["loader"], config.get("loader_options", {})).series)

    def branch(self) -> Any:
        """The adapter that makes sequence data one input of a multimodal pipeline (this module's functions)."""
        import sys

        from trainflow.tasks.sequence.branch import SequenceBranch

        return SequenceBranch(sys.modules[__name__])

    def scoring_rows(self, split: SplitRef) -> tuple[Path, Any]:
        """The test series as an ``.npz`` that ``predict`` reads (``x`` and ``lengths``, also under the
        loader's own array names), written beside the test part, and their true values."""
        arrays = load_npz(split.test.path, keep=False)
        options = split.test.meta.get("loader_options") or {}
        names = {"x": "x", "lengths": "lengths", options.get("x") or "x": "x",
                 options.get("lengths") or "lengths": "lengths"}
        path = Path(split.test.path).with_name("scoring.npz")
        save_npz(path, **{name: arrays[key] for name, key in names.items()})
        if "Y" in arrays:
            import pandas as pd

            return path, pd.DataFrame(arrays["Y"].astype(np.int64), columns=split.test.meta["labels"])
        return path, [str(v) for v in arrays["y"]]  # the stored label text (a regression target parses as a number)

    def spec_problems(self, spec: PipelineSpec) -> list[str]:
        """Temperature scaling divides a network's logits: not for a classical model."""
        from trainflow.registry import REGISTRY

        problems = super().spec_problems(spec)
        name = spec.model.name
        if (spec.evaluate.calibrate == "temperature" and name in REGISTRY.names("model")
                and REGISTRY.get("model", name).extra.get("classical")):
            problems.append(f"'evaluate.calibrate: temperature' divides a network's logits; {name!r} is a classical "
                            "model: use 'none' or a network such as 'gru'.")
        return problems

    def example(self, folder: Path) -> Example:
        """20 univariate series of 12 steps, two classes (rising or falling)."""
        rng = np.random.default_rng(0)
        y = np.array(["up", "down"] * 10)
        x = np.linspace(0, 1, 12)[None, :, None] * np.where(y == "up", 1, -1)[:, None, None]
        x = x + rng.normal(scale=0.1, size=(20, 12, 1))
        np.savez(folder / "series.npz", x=x, y=y)
        np.savez(folder / "new.npz", x=x[:4])
        return Example(spec={"data": {"loader": "npz_series", "path": str(folder / "series.npz")},
                             "model": {"name": "gru", "hidden": 4, "front_channels": 4}, "train": {"epochs": 2, "batch_size": 8}},
                       predict_input=folder / "new.npz")
