"""The modality interface: what a kind of data brings to the pipeline.

The flow is the same for every kind of data; what "split", "fit" or "evaluate" means differs. A
modality is a subclass of :class:`Modality`, registered like any component (kind ``modality``)
with :func:`trainflow.registry.component`, built in under ``trainflow.tasks`` or shipped in a
plug-in package through the ``trainflow.components`` entry-point group. The core names none: the
spec asks its loader which modality it gives (:func:`trainflow.modalities.modality_of_loader`), decides it once
(``PipelineSpec.modality``), and every stage calls :func:`trainflow.modalities.get` with that name.

A modality declares:

- ``sections``: the spec sections it adds, as pydantic models keyed by their path in the spec
  (``{"preprocess.text": TextPreprocess}`` for a subsection, ``{"horizon": HorizonConfig}`` for a
  top-level one); the spec model
  gains them as typed, strict fields (see :mod:`trainflow.spec`);
- ``default_models``: the model a spec gets for each task it serves when it names none (its keys
  are the tasks the modality serves);
- :meth:`Modality.spec_problems`: cross-field checks of a spec, run with the spec's validation,
  before any data is read;
- the stage methods ``store``, ``validate``, ``profile`` (optional), ``split``, ``fit``, ``evaluate``, ``export`` and
  ``predict``, which exchange the small references of :mod:`trainflow.refs`;
- :meth:`Modality.example`: a tiny dataset for the contract test every modality passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel


from trainflow.refs import DataRef, Evaluation, ModelRef, SplitRef

if TYPE_CHECKING:
    import pandas as pd

    from trainflow.spec import PipelineSpec

STAGES = ("store", "validate", "split", "fit", "evaluate", "export", "predict")


class Modality:
    """Base class of a modality; a subclass implements every stage method (see the module docstring)."""

    #: the registered name (set by the ``component("modality", name)`` decorator)
    name: ClassVar[str] = ""
    #: spec sections this modality adds: dotted path in the spec -> pydantic model (strict, with defaults)
    sections: ClassVar[dict[str, type[BaseModel]]] = {}
    #: whether its stages read other modalities' sections too (several inputs, each of its own modality)
    reads_other_sections: ClassVar[bool] = False
    #: task -> the model a spec gets when it names none; its keys are the tasks this modality serves
    default_models: ClassVar[dict[str, str]] = {}
    #: the ``evaluate.calibrate`` methods this modality's classifiers take (fitted on the validation part)
    calibrations: ClassVar[tuple[str, ...]] = ()
    #: whether :meth:`predict` copies input columns (``--id``, ``--keep``) beside the predictions
    predict_passes_columns: ClassVar[bool] = False

    def __init_subclass__(cls, stages_from: str | None = None, **kwargs: Any) -> None:
        """``class Text(Modality, stages_from=__name__)`` takes each stage method (and ``profile``)
        that the class body does not define from the module-level function of that name in the named
        module, which keeps the stages plain functions, testable on their own."""
        super().__init_subclass__(**kwargs)
        if stages_from:
            import sys

            module = sys.modules[stages_from]
            for stage in (*STAGES, "profile"):
                if stage not in cls.__dict__ and callable(getattr(module, stage, None)):
                    setattr(cls, stage, staticmethod(getattr(module, stage)))

    @property
    def tasks(self) -> tuple[str, ...]:
        """The pipeline tasks (``classification``, ``regression``, ...) this modality serves."""
        return tuple(self.default_models)

    def spec_problems(self, spec: PipelineSpec) -> list[str]:
        """Problems of ``spec`` that only this modality knows of (cross-field checks), found before
        any data is read, each one message naming the field; reported with the spec's other
        problems. The spec's model or options may be invalid here (they are reported on their own):
        look them up defensively. None by default."""
        return []

    def store(self, loaded: Any, cache_dir: str, digest: str, config: BaseModel) -> DataRef:
        """Write what the loader returned into the cache, named by ``digest``; return its reference."""
        raise NotImplementedError

    def validate(self, ref: DataRef, spec: PipelineSpec, docs_dir: str | None) -> dict[str, Any]:
        """Great Expectations checks of the stored data; raises ValidationFailed listing failures."""
        raise NotImplementedError

    def profile(self, ref: DataRef, spec: PipelineSpec) -> DataRef:
        """Look at the whole dataset before the split (tables: column roles and the feature plan);
        return the reference, with what later stages need in its meta. By default: nothing to do."""
        return ref

    def split(self, ref: DataRef, spec: PipelineSpec, cache_dir: str) -> SplitRef:
        """Hold out the test part, and the validation part when the spec gives one (``spec.split``; built-in
        modalities use ``tasks/common/holdout.py``); the parts are stored in the cache."""
        raise NotImplementedError

    def fit(self, split: SplitRef, spec: PipelineSpec, cache_dir: str) -> ModelRef:
        """Fit preprocessing and model on the training part only; the model is stored in the cache."""
        raise NotImplementedError

    def evaluate(self, model: ModelRef, split: SplitRef, spec: PipelineSpec, plots_dir: str) -> Evaluation:
        """Score the model on the test part; plots are written to ``plots_dir``."""
        raise NotImplementedError

    def export(self, model: ModelRef, run_dir: str) -> list[str]:
        """Copy the model's files into the run folder; return their names."""
        raise NotImplementedError

    def predict(self, run_dir: str | Path, input_path: str | Path, id_column: str | None = None,
                keep: list[str] | tuple[str, ...] = ()) -> pd.DataFrame:
        """Predictions of a saved run's model for new data, one row per item. ``id_column`` and
        ``keep`` (input columns copied into the output) are passed only where
        :attr:`predict_passes_columns` is true."""
        raise NotImplementedError


    def drift_frame(self, run_dir: str | Path, source: DataRef | str | Path) -> pd.DataFrame | None:
        """What drift is measured on: one row per item of ``source`` (a stored split part, or new data
        as :meth:`predict` reads it) and one numeric or categorical column per summary (a table's
        features; an image's channel means). ``run_dir`` holds the exported model files. The
        reference profile (:mod:`trainflow.tasks.common.drift`) is this frame of the training part;
        None (the default): the modality does not describe its items, only predictions are compared."""
        return None

    def branch(self) -> Any:
        """This modality as one input of a multimodal pipeline: its adapter (a
        :class:`trainflow.tasks.common.branch.Branch`), or None where its data cannot be one (the default)."""
        return None

    def scoring_rows(self, split: SplitRef) -> tuple[Path, Any] | None:
        """The test rows of ``split`` as an input :meth:`predict` reads, and their true values (a
        sequence of classes or numbers; multi-label: a frame of 0/1 label columns), so that a saved
        model (the pipeline's champion) can be scored on a new run's test rows through the same
        path as ``trainflow predict``; None where the modality cannot hand them over (promotion
        then compares the stored numbers). None by default."""
        return None

    def paired_difference(self, run_dir: str | Path, split: SplitRef, metric: str, truth: Any, new: Any, old: Any,
                          seed: int = 0, resamples: int = 1000) -> dict[str, Any] | None:
        """The paired comparison of two saved models' ``predict`` frames (``new``: the challenger in
        ``run_dir``, ``old``: the champion) on :meth:`scoring_rows`' rows with truth ``truth``, for a
        modality whose rows are not independent (forecasts: the steps of one window, the series of a
        panel): ``{"new", "old", "difference", "interval", "resamples", "rows", "method"}``, raising
        :class:`~trainflow.errors.TrainflowError` where they cannot be compared. None (the default): the
        rows are resampled one by one (:func:`trainflow.tasks.common.paired.compare`)."""
        return None

    def example(self, folder: Path) -> Example:
        """Write a tiny dataset of this modality into ``folder``; return the spec (a raw dict, without
        ``name``) that trains on it in seconds and an input to predict for. The modality contract test
        (``tests/test_modality_contract.py``) runs every registered modality through
        store -> validate -> split -> fit -> evaluate -> export -> predict with it."""
        raise NotImplementedError


@dataclass(frozen=True)
class Example:
    """A tiny dataset written by :meth:`Modality.example`: the raw spec that uses it, and new data to predict."""

    spec: dict[str, Any]
    predict_input: Path
