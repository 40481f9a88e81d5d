"""The base of the neural modalities (images, sequences, forecasting, ...): everything they share.

A neural modality brings its loaders, its preprocessing and its networks; this module does the rest:

- :func:`fit`: the fit preamble (threads, seed, the spec's network built from the registry, the cache
  key), the one training loop of :mod:`trainflow.tasks.common.training`, the parameter count, and
  :func:`save_network` (safetensors weights + a JSON config, written atomically); the modality only
  prepares a :class:`Prepared` (tensors, the network's shape arguments, what prediction needs);
- :func:`load_network`: the network rebuilt from its JSON config and weights, with a clear error
  naming the folder when the files are not there (the first predict-time input check);
- :func:`history_report`: the training-history table and the learning-curve plot of the report;
- :func:`prediction_frame`: one row per item, the predicted class with class probabilities or the
  predicted value;
- :class:`NeuralModality`: the ``train`` spec section, the device check of the spec, and export.

Torch is imported inside functions, so that importing a modality stays cheap.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainflow import trust
from trainflow.cache_keys import model_key
from trainflow.errors import DataError
from trainflow.modality import Modality
from trainflow.refs import ModelRef, SplitRef
from trainflow.tasks.common.training import TrainConfig

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from trainflow.flows.spec import PipelineSpec

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
    ``augment``: a function of a training batch, or None; ``meta``: extra facts for the ModelRef.
    """

    inputs: tuple[Any, ...]
    build: dict[str, Any]
    config: dict[str, Any]
    steps: list[str]
    task: str
    augment: Callable[[Any], Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def fit(prepared: Prepared, split: SplitRef, spec: PipelineSpec, cache_dir: str, modality: str) -> ModelRef:
    """Build the spec's network, train it with the shared loop on ``prepared.inputs`` and save it
    (safetensors + JSON) in the cache under the model's key; returns the reference."""
    import torch

    from trainflow.tasks.common.publish import artifact_key
    from trainflow.tasks.common.training import apply_recipe, checkpoint_dir, train_model

    comp, options = spec.model.resolve("model", task=spec.task)
    if spec.train.num_threads:
        torch.set_num_threads(spec.train.num_threads)
    torch.manual_seed(spec.seed)  # the initial weights depend on the training seed only
    model = comp.build(options, **prepared.build)
    key = model_key(split, spec)
    n = len(prepared.inputs[-1]) if isinstance(prepared.inputs, tuple) else len(prepared.inputs)
    train, recipe_notes = apply_recipe(spec.train, comp.extra.get("train_recipe"), n)
    result = train_model(model, prepared.inputs, None, train, seed=spec.seed,
                         checkpoint_dir=checkpoint_dir(cache_dir, key), task=prepared.task,
                         augment=prepared.augment, progress_key=f"{artifact_key(spec.name)}-training")
    folder = Path(cache_dir) / "models" / key[:16]
    save_network(folder, model, {"model": spec.model.name, "options": options.model_dump(mode="json"),
                                 "build": prepared.build, **prepared.config, "history": result.history,
                                 "best_epoch": result.best_epoch, "device": result.device})
    steps = [*prepared.steps, f"{spec.model.name} ({sum(p.numel() for p in model.parameters())} parameters)"]
    return ModelRef.of_folder(folder, WEIGHTS_FILE, modality, {
        "steps": steps, "history": result.history, "device": result.device, "best_epoch": result.best_epoch,
        "notes": recipe_notes + result.report_notes(), **prepared.meta})


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


def load_network(folder: str | Path, modality: str,
                 build_args: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> tuple[Any, dict[str, Any]]:
    """Rebuild the network from its JSON config and load its safetensors weights (on CPU).

    The builder's shape arguments are the config's ``build``; ``build_args(config)`` gives them for
    models saved before ``build`` was recorded. DataError naming the folder when a file is missing,
    naming the file when it is damaged (the files are read as data: see :mod:`trainflow.trust`).
    """
    from trainflow.registry import REGISTRY

    folder = Path(folder)
    if not (folder / WEIGHTS_FILE).is_file() or not (folder / CONFIG_FILE).is_file():
        raise DataError(f"No saved {modality} model in '{folder}' (expected {WEIGHTS_FILE} and {CONFIG_FILE}).")
    config = trust.read_json(folder / CONFIG_FILE)
    try:
        comp = REGISTRY.get("model", config["model"])
        build = config.get("build") or (build_args(config) if build_args else {})
        model = comp.build(comp.config.model_validate(config["options"]), **build)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # valid JSON, not a network's config
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


def prediction_frame(name: str, items: list[Any], out: np.ndarray, classes: list[str] | None) -> pd.DataFrame:
    """One row per item (column ``name``): with ``classes``, the predicted class and a ``proba_<class>``
    column each from the probabilities ``out`` [n, k]; without, the predicted values ``out`` [n]."""
    import pandas as pd

    frame = pd.DataFrame({name: items})
    if classes:
        frame["prediction"] = [classes[i] for i in out.argmax(1)]
        for i, c in enumerate(classes):
            frame[f"proba_{c}"] = out[:, i]
    else:
        frame["prediction"] = out
    return frame


def export(model: ModelRef, run_dir: str) -> list[str]:
    """Copy the weights (safetensors) and the model config (JSON) into the run folder."""
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        shutil.copy2(Path(model.path) / name, Path(run_dir) / name)
    return [WEIGHTS_FILE, CONFIG_FILE]


class NeuralModality(Modality):
    """A modality whose models are PyTorch networks trained by the shared loop."""

    sections = {"train": TrainConfig}

    def spec_problems(self, spec: PipelineSpec) -> list[str]:
        """``train.device: cuda`` needs a CUDA device where the spec is run."""
        if spec.train.device == "cuda":
            import torch  # only for this check: a CPU spec does not pay for the import

            if not torch.cuda.is_available():
                return ["'train.device' is 'cuda' but no CUDA device is available here; use 'auto' or 'cpu'."]
        return []

    export = staticmethod(export)
