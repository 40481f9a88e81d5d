"""The base of the neural modalities (images, sequences, forecasting, ...): everything they share.

A neural modality brings its loaders, its preprocessing and its networks; this module does the rest:

- :func:`fit`: the fit preamble (threads, seed, the spec's network built from the registry, the cache
  key), the one training loop of :mod:`trainflow.tasks.common.training`, the parameter count, and
  :func:`save_network` (safetensors weights + a JSON config, written atomically); the modality only
  prepares a :class:`Prepared` (tensors, the network's shape arguments, what prediction needs);
- :func:`load_network`: the network rebuilt from its JSON config and weights, with a clear error
  naming the folder when the files are not there (the first predict-time input check);
- :func:`history_report`: the training-history table and the learning-curve plot of the report;
- :func:`prediction_frame`: one row per item, the predicted class with class probabilities, the
  predicted value, or (multi-label) one 0/1 column and one probability column per label;
  :func:`predict_new`: a classifier's whole ``predict`` stage around it (image, audio);
- :class:`NeuralModality`: the ``train`` and ``multilabel`` spec sections, the checks of the spec
  (device, multi-label training options), and export.

Multi-label (``task: multilabel``) is a spec change for every neural modality: its ``prepare`` gives
the 0/1 label matrix as the target and the label names as ``config["labels"]``; :func:`fit` then
trains one sigmoid output per label (shared parameters, binary cross-entropy), reports labels
constant in training, and saves the thresholds (0.5 or tuned per label on the validation carve-out)
in the JSON config; :func:`probabilities`, :func:`label_evaluation` and :func:`prediction_frame`
apply them at evaluation and predict time.

Torch is imported inside functions, so that importing a modality stays cheap.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from trainflow import trust
from trainflow.cache_keys import model_key
from trainflow.errors import DataError, SpecError
from trainflow.modality import Modality
from trainflow.refs import ModelRef, SplitRef
from trainflow.tasks.common.training import TrainConfig
from trainflow.tasks.common import multilabel as ML

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from trainflow.spec import PipelineSpec

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "model.json"


@dataclass
class Prepared:
    """What a neural modality prepares from the training split for :func:`fit`.

    ``inputs``: the tensors ``(*model inputs, target)`` of the training loop; ``build``: the shape
    arguments of the network's builder (``in_shape``/``n_classes``, ``in_channels``/``out_features``,
    ...), also saved so that :func:`load_network` can rebuild it; ``config``: what prediction needs
    (preprocessing statistics, classes, loader options), saved in the JSON config; ``steps``: the
    preprocessing shown in the report; ``task``: the training loop's task (its loss);
    ``augment``: a function of a training batch, or None; ``meta``: extra facts for the ModelRef;
    ``init``: a function called on the built network before training (e.g. pretrained embeddings), or None;
    ``part``: a function of another part of the split (a :class:`DataRef`: the spec's validation part)
    giving its tensors ``(*model inputs, target)``, preprocessed with the training part's statistics
    (``config``), or None where the modality cannot (a validation part is then carved instead).
    For ``task: multilabel`` the target is a 0/1 float matrix [n, labels] and ``config["labels"]``
    names its columns.
    """

    inputs: tuple[Any, ...]
    build: dict[str, Any]
    config: dict[str, Any]
    steps: list[str]
    task: str
    augment: Callable[[Any], Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    init: Callable[[Any], None] | None = None
    part: Callable[[Any], tuple[Any, ...]] | None = None


def fit(prepared: Prepared, split: SplitRef, spec: PipelineSpec, cache_dir: str, modality: str) -> ModelRef:
    """Build the spec's network, train it with the shared loop on ``prepared.inputs`` and save it
    (safetensors + JSON) in the cache under the model's key; returns the reference."""
    from trainflow.tasks.common.training import torch_threads

    with torch_threads(spec.train.num_threads):  # building, pre-training and training; restored after
        return _fit(prepared, split, spec, cache_dir, modality)


def _fit(prepared: Prepared, split: SplitRef, spec: PipelineSpec, cache_dir: str, modality: str) -> ModelRef:
    import torch

    from trainflow.tasks.common import validation_part as validation
    from trainflow.tasks.common.publish import artifact_key
    from trainflow.tasks.common.training import apply_recipe, checkpoint_dir, train_model

    comp, options = spec.model.resolve("model", task=spec.task)
    torch.manual_seed(spec.seed)  # the initial weights depend on the training seed only
    model = comp.build(options, **prepared.build)
    if prepared.init is not None:
        prepared.init(model)
    key = model_key(split, spec)
    multilabel = prepared.task == "multilabel"
    if multilabel:  # before training: every label constant is a data error, not a wasted fit
        Y = prepared.inputs[-1].cpu().numpy().round().astype("int64")
        constant = ML.constant_labels(Y, prepared.config["labels"], f"'{split.train.meta.get('source')}'")
    notes = pretrain(model, prepared, spec, cache_dir, key)
    n = len(prepared.inputs[-1]) if isinstance(prepared.inputs, tuple) else len(prepared.inputs)
    val = validation.given(prepared.part, split)
    train, recipe_notes = apply_recipe(spec.train, comp.extra.get("train_recipe"), n, has_validation=val is not None)
    train, carve_notes = validation.carve_size(train, val, spec, prepared.task)
    result = train_model(model, prepared.inputs, val, train, seed=spec.seed,
                         checkpoint_dir=checkpoint_dir(cache_dir, key), task=prepared.task,
                         augment=prepared.augment, progress_key=f"{artifact_key(spec.name)}-training")
    held, record = validation.of_run(prepared.inputs, val, result.validation, train, spec, prepared.task)
    extra, meta = {}, {"validation_part": record}
    if multilabel:  # constant labels: the evaluation's report notes name them (ML.evaluation)
        extra = {"task": "multilabel", "constant_labels": constant,
                 "thresholds": label_thresholds(model, prepared, held, constant, spec)}
        meta |= {"constant_labels": constant, "thresholds": dict(zip(prepared.config["labels"], extra["thresholds"]))}
    if spec.evaluate.calibrate == "temperature":
        found, note = temperature(model, prepared, held, spec.seed)
        extra |= found
        notes = [*notes, note]
    notes = [*notes, *carve_notes]
    folder = Path(cache_dir) / "models" / key[:16]
    save_network(folder, model, {"model": spec.model.name, "options": options.model_dump(mode="json"),
                                 "build": prepared.build, **prepared.config, **extra, "history": result.history,
                                 "best_epoch": result.best_epoch, "device": result.device})
    steps = [*prepared.steps, f"{spec.model.name} ({sum(p.numel() for p in model.parameters())} parameters)"]
    return ModelRef.of_folder(folder, WEIGHTS_FILE, modality, {
        "steps": steps, "history": result.history, "device": result.device, "best_epoch": result.best_epoch,
        "notes": notes + recipe_notes + result.report_notes(), **prepared.meta, **meta})


def label_thresholds(model: Any, prepared: Prepared, held: tuple[Any, ...] | None, constant: dict[str, int],
                     spec: PipelineSpec) -> list[float]:
    """Per-label thresholds: ``multilabel.threshold`` for every label, or (``tuned``) the best F1 of
    each label on the run's validation part (``held``: its tensors ``(*inputs, target)``)."""
    labels = prepared.config["labels"]
    if spec.multilabel.threshold != "tuned" or held is None:
        return [float(spec.multilabel.threshold) if spec.multilabel.threshold != "tuned" else 0.5] * len(labels)
    from trainflow.tasks.common.training import predict

    proba = probabilities(predict(model, held[:-1]), {"task": "multilabel", "labels": labels, "constant_labels": {}})
    Y = held[-1].cpu().numpy().round().astype("int64")
    tuned = [j for j, lab in enumerate(labels) if lab not in constant]
    return ML.best_thresholds(Y, proba[:, tuned], tuned)


def temperature(model: Any, prepared: Prepared, held: tuple[Any, ...] | None,
                seed: int = 0) -> tuple[dict[str, Any], str]:
    """Temperature scaling (``evaluate.calibrate: temperature``): the scalar that divides the logits,
    fitted on the run's validation part (``held``: its tensors ``(*inputs, target)``) and kept only
    where a cross-validation within that part says it lowers the log loss of rows it was not fitted
    on (:func:`~trainflow.tasks.common.calibration.choose_temperature`). Returns the model config's
    entries (``temperature``: the scalar or None, ``temperature_check``) and the report's note;
    no scaling without a validation part or for multi-label networks."""
    if prepared.task != "classification" or held is None or len(held[-1]) < 2:
        return {"temperature": None}, ("temperature scaling skipped: it is for single-label classifiers with a "
                                       "validation part")
    from trainflow.tasks.common.calibration import choose_temperature
    from trainflow.tasks.common.training import predict

    logits = predict(model, held[:-1]).float().cpu().numpy()
    check = choose_temperature(logits, held[-1].cpu().numpy(), seed)
    said = (f"T = {check['fitted']:.3f} fitted on the {check['rows']} validation rows (log loss "
            f"{check['log_loss_1']:.4f} at T = 1, {check['log_loss_fitted']:.4f} at T)")
    if check.get("no_minimum"):
        return {"temperature": None, "temperature_check": check}, (
            f"temperature scaling: {said}; not kept (T = 1): the log loss of these rows has no minimum (no error "
            "among them: it falls as T -> 0)")
    if not check["folds"]:
        return {"temperature": check["fitted"], "temperature_check": check}, f"temperature scaling: {said}"
    cv = (f"{check['folds']}-fold cross-validation within the validation part: log loss {check['cv_log_loss_fitted']:.4f} "
          f"with each fold's T vs {check['cv_log_loss_1']:.4f} at T = 1, 95% interval of the gain "
          f"[{check['gain_interval'][0]:.4f}, {check['gain_interval'][1]:.4f}]")
    if check["kept"]:
        return {"temperature": check["fitted"], "temperature_check": check}, f"temperature scaling: {said}; {cv}: kept"
    return {"temperature": None, "temperature_check": check}, (
        f"temperature scaling: {said}; {cv}: not kept (T = 1), it does not lower the log loss of rows it was "
        "not fitted on beyond their noise")


def probabilities(logits: Any, config: dict[str, Any]) -> np.ndarray:
    """Network outputs as probabilities: a softmax over classes (divided first by the saved
    ``temperature`` where calibrated), or (``task: multilabel`` in the model config) one sigmoid per
    label, labels constant in training at their value."""
    if config.get("task") != "multilabel":
        scale = config.get("temperature")
        if isinstance(scale, (int, float)) and not isinstance(scale, bool) and scale > 0:  # a JSON scalar, untrusted
            logits = logits / float(scale)
        return logits.softmax(1).numpy()
    proba = logits.sigmoid().numpy()
    for lab, value in config.get("constant_labels", {}).items():
        proba[:, config["labels"].index(lab)] = value
    return proba


def pretrain(model: Any, prepared: Prepared, spec: PipelineSpec, cache_dir: str, key: str) -> list[str]:
    """A network with ``pretraining(inputs)`` (an autoencoder) first trains the module it returns on
    its inputs for its epochs with the same loop (mean squared error, its own checkpoint folder, so a
    killed run resumes either phase); ``after_pretraining()`` then runs. Returns the report's notes."""
    phase = model.pretraining(prepared.inputs) if callable(getattr(model, "pretraining", None)) else None
    if phase is None:
        return []
    from trainflow.tasks.common.publish import artifact_key
    from trainflow.tasks.common.training import checkpoint_dir, train_model

    module, inputs, epochs = phase
    config = spec.train.model_copy(update={"epochs": epochs, "imbalance": "none", "loss": "mse"})
    result = train_model(module, inputs, None, config, seed=spec.seed, task="regression", augment=prepared.augment,
                         checkpoint_dir=checkpoint_dir(cache_dir, key, "pretrain"),
                         progress_key=f"{artifact_key(spec.name)}-pretraining")
    getattr(model, "after_pretraining", lambda: None)()
    last = result.history[-1]["train_loss"] if result.history else float("nan")
    return [f"pre-training: {result.epochs_run} epochs of reconstruction, final train loss {last:.4g}",
            *result.report_notes()]


def save_network(folder: Path, model: Any, config: dict[str, Any]) -> None:
    """Write safetensors weights and the JSON config into ``folder`` atomically (via a temp folder)."""
    from safetensors.torch import save_file

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp / WEIGHTS_FILE))
    (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)


class _SavedConfig(BaseModel):
    """The keys every saved model config shares, as prediction reads them (each modality's own keys are
    its builder's and reader's to check): a config of another shape is a damaged file, not a TypeError
    or a silently different prediction."""

    model_config = ConfigDict(extra="allow", strict=True)
    task: Literal["classification", "regression", "multilabel"] | None = None
    model: str | None = None
    classes: list[str | int | float | bool] | None = None
    labels: list[str] | None = None
    thresholds: list[float] | None = None
    constant_labels: dict[str, float] = {}
    temperature: float | None = None

    @model_validator(mode="after")
    def _labels(self) -> _SavedConfig:
        if (self.task == "multilabel") != (self.labels is not None):
            raise ValueError("a multi-label config has labels and task 'multilabel', and no other has labels")
        if self.labels is not None and (self.thresholds is None or len(self.thresholds) != len(self.labels)):
            raise ValueError(f"{len(self.labels)} labels need as many thresholds")
        if not set(self.constant_labels) <= set(self.labels or []):
            raise ValueError("constant labels that are not among the labels")
        return self


def saved_config(folder: str | Path, model_file: str, modality: str) -> tuple[Path, dict[str, Any]]:
    """The folder and the JSON config of a model saved there beside ``model_file``; DataError naming
    the folder when either file is missing, naming the config when it is not of a config's shape (it
    is read as data: :func:`trainflow.trust.read_shaped`)."""
    folder = Path(folder)
    if not (folder / model_file).is_file() or not (folder / CONFIG_FILE).is_file():
        raise DataError(f"No saved {modality} model in '{folder}' (expected {model_file} and {CONFIG_FILE}).")
    return folder, trust.read_shaped(folder / CONFIG_FILE, _SavedConfig, f"{modality} model config")[0]


def load_network(folder: str | Path, modality: str,
                 build_args: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> tuple[Any, dict[str, Any]]:
    """Rebuild the network from its JSON config and load its safetensors weights (on CPU).

    The builder's shape arguments are the config's ``build``; ``build_args(config)`` gives them for
    models saved before ``build`` was recorded. DataError naming the folder when a file is missing,
    naming the file when it is damaged (the files are read as data: see :mod:`trainflow.trust`).
    """
    from trainflow.registry import REGISTRY

    folder, config = saved_config(folder, WEIGHTS_FILE, modality)
    try:
        comp = REGISTRY.get("model", config["model"])
        build = config.get("build") or (build_args(config) if build_args else {})
        options = comp.config.model_validate(config["options"])
        model = trust.build_to_fit(lambda: comp.build(options, **build), folder / WEIGHTS_FILE, folder / CONFIG_FILE)
    except (KeyError, TypeError, ValueError, AttributeError, SpecError) as exc:  # valid JSON, not a network's config
        raise trust.damaged(folder / CONFIG_FILE, exc) from None
    trust.load_weights(model, folder / WEIGHTS_FILE)
    model.eval()
    return model, config


def history_report(model: ModelRef, config: dict[str, Any], plots_dir: str) -> tuple[dict[str, str], dict[str, Any]]:
    """The report's learning curves (plot) and training history (table) of a trained network."""
    from trainflow.tasks.common import plots

    history = model.meta.get("history") or config.get("history") or []
    charts = {}
    if history:
        charts["Learning curves"] = plots.curves_png([{k: v for k, v in h.items() if k != "lr"} for h in history],
                                                     Path(plots_dir) / "learning_curves.png")
    tables = {"Training history": [{k: round(v, 4) if isinstance(v, float) else v for k, v in h.items()}
                                   for h in history]}
    return charts, tables


def prediction_frame(name: str, items: list[Any], out: np.ndarray, classes: list[str] | None,
                     thresholds: list[float] | None = None) -> pd.DataFrame:
    """One row per item (column ``name``): with ``classes``, the predicted class and a ``proba_<class>``
    column each from the probabilities ``out`` [n, k]; with ``thresholds`` too (multi-label, ``classes``
    naming the labels), one 0/1 column per label and a ``proba_<label>`` column each, as tabular
    multi-label predictions; without, the predicted values ``out`` [n]."""
    import pandas as pd

    frame = pd.DataFrame({name: items})
    if classes and out.ndim == 2 and out.shape[1] != len(classes):  # a config from another model beside the weights
        raise DataError(f"The saved model config ({CONFIG_FILE}) names {len(classes)} classes or labels, but its "
                        f"network gives {out.shape[1]} outputs: the model folder is damaged; restore it or re-run "
                        f"the pipeline that wrote it.")
    if classes and thresholds is not None:
        return pd.concat([frame, ML.label_frame(out, classes, thresholds)], axis=1)
    if classes:
        frame["prediction"] = [classes[i] for i in out.argmax(1)]
        for i, c in enumerate(classes):
            frame[f"proba_{c}"] = out[:, i]
    else:
        frame["prediction"] = out
    return frame


def predict_new(run_dir: str | Path, input_path: str | Path, load_model: Callable[[Path], tuple[Any, dict[str, Any]]],
                read_new: Callable[[Path, dict[str, Any]], tuple[Any, list[str]]],
                probabilities: Callable[[Any, dict[str, Any], Any], np.ndarray], name: str) -> pd.DataFrame:
    """A classifier's ``predict`` stage: the saved network (``load_model``), the new items read as in
    training (``read_new(path, config)``: the items and their names), their probabilities, and one
    :func:`prediction_frame` row per item named in column ``name`` (multi-label: the saved thresholds)."""
    model, config = load_model(Path(run_dir))
    items, names = read_new(Path(input_path), config)
    return prediction_frame(name, names, probabilities(model, config, items), config["classes"],
                            config.get("thresholds"))


def label_evaluation(model: ModelRef, config: dict[str, Any], Y: np.ndarray, proba: np.ndarray, split: SplitRef,
                     spec: PipelineSpec, plots_dir: str) -> Any:
    """The multi-label evaluation of a network (the scores, per-label table and plot tabular
    multi-label reports) with its learning curves and training history."""
    ev = ML.evaluation(Y, proba, config["labels"], config["thresholds"], config.get("constant_labels", {}), spec,
                       plots_dir, split.meta.get("notes", []), split.meta.get("label_counts"))
    charts, tables = history_report(model, config, plots_dir)
    return ev.model_copy(update={"plots": {**ev.plots, **charts}, "tables": {**ev.tables, **tables}})


def leave_out_unreadable(bad: list[str], total: int, source: Any, what: str) -> None:
    """Predict: the ``bad`` items of ``total`` (each "why") have no prediction, named in a warning, so that
    one corrupt file does not cost a batch its predictions; DataError when none could be read."""
    if bad and len(bad) == total:
        raise DataError(f"None of the {total} {what}(s) of '{source}' could be read; the first: {bad[0]}")
    if bad:
        from trainflow.alerts import warn

        warn(f"predict: {len(bad)} of {total} {what}(s) of '{source}' could not be read and have no prediction: "
             + " | ".join(bad[:5]) + (f" | and {len(bad) - 5} more" if len(bad) > 5 else ""))


def warn_unseen_labels(config: dict[str, Any], source: Any, names: list[str] | None = None,
                       table: Any = None) -> list[str]:
    """Multi-label predict: warn about the labels new items name that the model never saw (it cannot
    predict them), in one wording for every input: ``names`` (an .npz's array 'labels'), or the
    training manifest's delimited label column (``config["manifest"]``) in ``table``, a CSV of new
    items. Returns those labels; [] for a single-label model or an input that names none."""
    if config.get("task") != "multilabel":
        return []
    if names is not None:
        return ML.warn_unseen(names, config["labels"], f"the input file '{source}' names labels")
    if table is None:
        return []
    saved = config.get("manifest") or {}
    return ML.warn_unseen_in_column(table, {"separator": saved.get("separator"), "target_column": saved.get("label"),
                                            "labels": config["labels"]}, source)


def check_label_shape(y: np.ndarray, task: str, where: str) -> None:
    """DataError when the labels of ``where`` do not fit the task: a 2-D label array (one 0/1 column
    per label) is for ``task: multilabel``, which needs one."""
    if y.ndim == 2 and task != "multilabel":
        raise DataError(f"The labels of {where} are a 2-D array ({y.shape[1]} columns, one per label); set "
                        f"'task: multilabel' (the task is {task!r}).")
    if y.ndim != 2 and task == "multilabel":
        raise DataError(f"'task' is 'multilabel' but {where} has one label per item; give a 2-D label array "
                        "[items, labels] of 0/1 (and optionally an array 'labels' naming its columns).")


def label_columns(Y: np.ndarray, labels: list[str]) -> dict[str, np.ndarray]:
    """A multi-label matrix as columns of the per-item validation table: ``label <name>``, one per label."""
    return {f"label {lab}": Y[:, j] for j, lab in enumerate(labels)}


def label_value_checks(labels: list[str]) -> list[Any]:
    """The Great Expectations checks that each :func:`label_columns` column holds 0 or 1 only."""
    from trainflow.tasks.common.validate import Check

    return [Check("ExpectColumnValuesToBeInSet", {"column": f"label {lab}", "value_set": [0, 1]},
                  "a multi-label label column holds 0 or 1") for lab in labels]


def label_problems(spec: PipelineSpec) -> list[str]:
    """The training options that have no meaning for the spec's task (multi-label or single-label)."""
    t = spec.train
    problems = []
    if t.label_smoothing and (spec.task != "classification" or t.loss not in ("auto", "cross_entropy")):
        problems.append(f"'train.label_smoothing' smooths the cross-entropy targets of task classification; the task "
                        f"is {spec.task!r} with loss {t.loss!r}: set it to 0.")
    if spec.task != "multilabel":
        return problems + [f"'train.{k}' is for task multilabel (the task is {spec.task!r})." for k, v in
                           (("pos_weight", t.pos_weight != "none"), ("loss", t.loss == "binary_cross_entropy")) if v]
    if t.loss not in ("auto", "binary_cross_entropy"):
        problems.append(f"'train.loss' {t.loss!r} does not fit task multilabel (one sigmoid output per label); "
                        "use 'auto' or 'binary_cross_entropy'.")
    if t.imbalance == "oversample":
        problems.append("'train.imbalance' 'oversample' draws examples by their class, and a multi-label example has "
                        "several; use 'class_weight' (per-label weights) or 'train.pos_weight: balanced'.")
    if spec.multilabel.threshold == "tuned" and t.val_fraction <= 0 and not spec.split.validation:
        problems.append("'multilabel.threshold' 'tuned' tunes each label's threshold on the validation part; "
                        "give one ('split.validation', e.g. 0.2, or the values of split.column that mark it) or "
                        "set 'train.val_fraction' (e.g. 0.2) to carve it from the training rows.")
    return problems


def export(model: ModelRef, run_dir: str) -> list[str]:
    """Copy the weights (safetensors) and the model config (JSON) into the run folder."""
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        shutil.copy2(Path(model.path) / name, Path(run_dir) / name)
    return [WEIGHTS_FILE, CONFIG_FILE]


class NeuralModality(Modality):
    """A modality whose models are PyTorch networks trained by the shared loop."""

    sections = {"train": TrainConfig, "multilabel": ML.MultilabelSpec}
    calibrations = ("temperature",)

    def spec_problems(self, spec: PipelineSpec) -> list[str]:
        """``train.device: cuda`` needs a CUDA device where the spec is run; the multi-label training
        options fit the task (:func:`label_problems`)."""
        problems = label_problems(spec)
        if spec.train.device == "cuda":
            import torch  # only for this check: a CPU spec does not pay for the import

            if not torch.cuda.is_available():
                problems.append("'train.device' is 'cuda' but no CUDA device is available here; use 'auto' or 'cpu'.")
        return problems

    export = staticmethod(export)
