"""The pipeline spec: a YAML file validated by pydantic, the one parameter of the flow.

Sections with a fixed shape are strict models (``extra="forbid"``), so a typo is an error. A
section that picks a component (``data.loader``, ``preprocess.impute.method``, ``model.name``,
...) also takes that component's options beside the name; they are checked against the
component's own config when the spec is built, and every problem is reported at once.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from trainflow.errors import SpecError, expected
from trainflow.files import path_problem
from trainflow.registry import REGISTRY, Component, pydantic_problems
from trainflow.tasks.image import ImagePreprocess  # noqa: E402  (no torch/Pillow at import)
from trainflow.tasks.training import TrainConfig  # pydantic only: torch is imported when training runs
from trainflow.tasks.forecast import ForecastConfig  # noqa: E402  (no torch at import)
from trainflow.tasks.sequence import SequencePreprocess  # noqa: E402  (no torch at import)

TASKS = ("classification", "regression", "forecasting")
#: NAME_MAX of common file systems (ext4, XFS, APFS, NTFS) is 255 bytes; the name is a folder name and
#: others add to it (Great Expectations' '<name>.json', artifact keys '<name>-sweep-progress'), so keep room.
MAX_NAME_LENGTH = 200
STAGES = ("load", "validate", "split", "fit", "evaluate", "publish")


class Strict(BaseModel):
    """A spec section whose keys are fixed."""

    model_config = ConfigDict(extra="forbid")


class Choice(BaseModel):
    """A component picked by name (the ``selector`` field) plus its options."""

    model_config = ConfigDict(extra="allow")
    kind: ClassVar[str]
    selector: ClassVar[str]

    @property
    def choice(self) -> str:
        return getattr(self, self.selector)

    def options(self) -> dict[str, Any]:
        """The options given beside the name."""
        return dict(self.model_extra or {})

    def resolve(self, where: str, task: str | None = None) -> tuple[Component, BaseModel]:
        """Find the component and validate its options; errors name ``where``."""
        comp = REGISTRY.get(self.kind, self.choice, task=task, where=f"{where}.{self.selector}")
        return comp, comp.parse(self.options(), where=f"{where}")


class DataSpec(Choice):
    kind: ClassVar[str] = "loader"
    selector: ClassVar[str] = "loader"
    loader: str = Field("csv", description="Loader component, e.g. csv, parquet")


class ImputeSpec(Choice):
    kind: ClassVar[str] = "imputer"
    selector: ClassVar[str] = "method"
    method: str = Field("median", description="drop_rows | mean | median | most_frequent | constant | knn | iterative")


class EncodeSpec(Choice):
    kind: ClassVar[str] = "encoder"
    selector: ClassVar[str] = "method"
    method: str = Field("onehot", description="onehot | ordinal")


class ScaleSpec(Choice):
    kind: ClassVar[str] = "scaler"
    selector: ClassVar[str] = "method"
    method: str = Field("standard", description="standard | minmax | robust | none")


class ReduceSpec(Choice):
    kind: ClassVar[str] = "reducer"
    selector: ClassVar[str] = "method"
    method: str = Field("none", description="none | pca | select_k_best | variance_threshold")


class ResampleSpec(Choice):
    kind: ClassVar[str] = "sampler"
    selector: ClassVar[str] = "method"
    method: str = Field("none", description="none | class_weight | random_over | smote | ...")


class ModelSpec(Choice):
    kind: ClassVar[str] = "model"
    selector: ClassVar[str] = "name"
    name: str | None = Field(None, description="Model component; default: one suited to the data and task "
                                               "(logistic_regression, ridge, cnn, gru)")


class StageSpec(Choice):
    """An extra stage: a registered ``stage`` component run after a built-in stage."""

    kind: ClassVar[str] = "stage"
    selector: ClassVar[str] = "name"
    name: str
    after: Literal["load", "validate", "split", "fit", "evaluate", "publish"] = "publish"


class PreprocessSpec(Strict):
    impute: ImputeSpec = ImputeSpec()
    encode: EncodeSpec = EncodeSpec()
    scale: ScaleSpec = ScaleSpec()
    reduce: ReduceSpec = ReduceSpec()
    resample: ResampleSpec = ResampleSpec()
    image: ImagePreprocess = ImagePreprocess()  # image pipelines only
    sequence: SequencePreprocess = SequencePreprocess()  # sequence and forecasting pipelines only


class ColumnRule(Strict):
    """What one column must hold; checked by Great Expectations before training."""

    type: Literal["number", "integer", "string", "boolean", "datetime"] | None = None
    min: float | None = None
    max: float | None = None
    allowed: list[Any] | None = None
    nullable: bool = True


class ExpectationSpec(Strict):
    """Any Great Expectations expectation, by name (``expect_column_values_to_be_between`` or
    ``ExpectColumnValuesToBeBetween``) and keyword arguments."""

    type: str
    kwargs: dict[str, Any] = {}


class ValidationSpec(Strict):
    enabled: bool = True
    min_rows: int = Field(10, ge=1, description="Fewer rows than this fails validation")
    labels: list[Any] | None = Field(None, description="Allowed target values (classification)")
    columns: dict[str, ColumnRule] = {}
    expectations: list[ExpectationSpec] = []


class SplitSpec(Strict):
    test_size: float = Field(0.2, gt=0, lt=1, description="Share of rows held out for the test")
    stratify: bool = True  # keeps class shares equal in train and test (classification only)
    seed: int = 42  # fixed so that the held-out split does not move when the training seed does
    cv_folds: int = Field(0, ge=0, description="k-fold cross-validation on the training split; 0 = off")


class EvaluateSpec(Strict):
    metrics: list[str] | None = Field(None, description="Metric components; default: all for the task")
    primary: str | None = Field(None, description="Metric that ranks runs; default per task")


class PromotionSpec(Strict):
    """When a finished run replaces the pipeline's champion (the model ``trainflow predict <name>`` uses)."""

    enabled: bool = True
    tolerance: float = Field(0.0, ge=0, description="A run this much worse on the primary metric still becomes "
                             "champion (0: it must be at least as good)")
    require_validation: bool = True  # a run whose data was not checked never becomes champion


class FeaturesSpec(Strict):
    """Which columns of a table become features, and the alarms against junk and leaking ones."""

    auto_exclude: Literal["drop", "warn", "error"] = Field(
        "drop", description="Identifier, constant and free-text columns not listed in data.features or "
                            "features.keep: drop (with a warning) | warn (use them) | error (stop the run)")
    dates: Literal["drop", "expand"] = Field("drop", description="Date/time columns: drop | expand (year, month, "
                                                                 "day of week); listed ones are always expanded")
    keep: list[str] = Field([], description="Columns used as features whatever their role guess")
    leakage: Literal["warn", "error"] = Field("warn", description="A leakage alarm warns, or stops the run "
                                                                  "(error: for scheduled runs)")
    leakage_score: float = Field(0.98, gt=0, le=1, description="Cross-validated score of a one-feature model "
                                                               "(balanced accuracy or R^2) that raises the alarm")


class PipelineSpec(Strict):
    """A whole pipeline: what to load, check, preprocess, train and report."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=MAX_NAME_LENGTH,
                      description="Pipeline name; names the run folder")
    task: Literal["classification", "regression", "forecasting"] = "classification"
    description: str = ""
    seed: int = Field(0, description="Seed for model training (the split has its own)")
    data: DataSpec = DataSpec()
    validation: ValidationSpec = ValidationSpec()
    split: SplitSpec = SplitSpec()
    preprocess: PreprocessSpec = PreprocessSpec()
    model: ModelSpec = ModelSpec()
    evaluate: EvaluateSpec = EvaluateSpec()
    train: TrainConfig = Field(TrainConfig(), description="How neural networks are trained (image, sequence)")
    forecast: ForecastConfig = Field(ForecastConfig(), description="Horizon, lookback and transforms (forecasting)")
    promotion: PromotionSpec = PromotionSpec()
    features: FeaturesSpec = Field(FeaturesSpec(), description="Feature choice and leakage alarms (tables)")
    stages: list[StageSpec] = []

    @model_validator(mode="after")
    def _check_components(self) -> PipelineSpec:
        if self.model.name is None:
            self.model.name = self.default_model()
        problems = self.component_problems()
        if problems:
            raise SpecError(problems)
        return self

    def default_model(self) -> str:
        """The model a spec gets when it names none: the demos' choice for its data and task."""
        try:
            modality = REGISTRY.get("loader", self.data.loader).modality
        except SpecError:
            modality = None  # the unknown loader is reported by component_problems
        if modality == "image":
            return "cnn"
        if modality in ("sequence", "forecast"):
            return "gru"
        return "ridge" if self.task == "regression" else "logistic_regression"

    def component_problems(self) -> list[str]:
        """Every problem with the chosen components and their options."""
        problems: list[str] = []
        loader = _collect(problems, self.data, "data")
        modality = loader[0].modality if loader else None
        model = _collect(problems, self.model, "model", task=self.task)
        if loader and model and not _fits(model[0], modality):
            problems.append(
                f"'model.name' {self.model.name!r} is a {model[0].modality} model but the loader "
                f"{self.data.loader!r} gives {modality} data. "
                + expected("Choose a model that", REGISTRY_models_for(modality, self.task), self.model.name)
            )
        if modality == "forecast" and self.task != "forecasting":
            problems.append(f"the loader {self.data.loader!r} reads one time series to forecast; set 'task: "
                            f"forecasting' (got {self.task!r}) or use a sequence loader such as 'ts'.")
        if self.task == "forecasting" and modality not in (None, "forecast"):
            problems.append(f"'task: forecasting' needs a time-series loader such as 'timeseries_csv'; "
                            f"the loader {self.data.loader!r} gives {modality} data.")
        if modality == "tabular":
            for slot in ("impute", "encode", "scale", "reduce", "resample"):
                _collect(problems, getattr(self.preprocess, slot), f"preprocess.{slot}", task=self.task)
            if self.preprocess.resample.method == "class_weight" and model and model[0].extra.get("class_weight") is False:
                problems.append(f"'preprocess.resample.method' is 'class_weight', but model {self.model.name!r} "
                                "takes no class weights; choose a sampler such as 'smote' or 'random_over'.")
            problems += self.target_problems()
        for i, stage in enumerate(self.stages):
            _collect(problems, stage, f"stages[{i}]")
        for i, name in enumerate(self.evaluate.metrics or []):
            _lookup(problems, "metric", name, f"evaluate.metrics[{i}]", self.task)
        if self.evaluate.primary:
            _lookup(problems, "metric", self.evaluate.primary, "evaluate.primary", self.task)
        return problems

    def target_problems(self) -> list[str]:
        """The target named as a feature, a kept column or the id (a model must not see what it predicts)."""
        options = self.data.options()
        target = options.get("target")
        if not target:
            return []
        named = {"data.features": options.get("features") or [], "features.keep": self.features.keep,
                 "data.id": [options.get("id")]}
        return [f"the target '{target}' is also listed in '{where}'; a model must not see the column it predicts."
                for where, columns in named.items() if target in columns]

    @property
    def modality(self) -> str:
        """The kind of data the loader gives: tabular, image, sequence, ..."""
        return REGISTRY.get("loader", self.data.loader).modality or "tabular"

    def training_view(self) -> PipelineSpec:
        """The spec without the parts that cannot change a trained model (cache-key input)."""
        return self.model_copy(update={"description": "", "validation": ValidationSpec(),
                                       "evaluate": EvaluateSpec(), "stages": [],
                                       "promotion": PromotionSpec()})


def REGISTRY_models_for(modality: str | None, task: str) -> list[str]:
    return [n for n in REGISTRY.names("model", task) if _fits(REGISTRY.get("model", n), modality)]


def _fits(model: Component, modality: str | None) -> bool:
    """Whether a model takes data of ``modality`` (its own, or one listed in its ``modalities``)."""
    return model.modality in (None, modality) or modality in model.extra.get("modalities", ())


def _collect(problems: list[str], choice: Choice, where: str, task: str | None = None):
    try:
        return choice.resolve(where, task)
    except SpecError as exc:
        problems.extend(exc.problems)
        return None


def _lookup(problems: list[str], kind: str, name: str, where: str, task: str) -> None:
    try:
        REGISTRY.get(kind, name, task=task, where=where)
    except SpecError as exc:
        problems.extend(exc.problems)


# ---------------------------------------------------------------- reading specs from files


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply one ``--set a.b.c=value`` to the raw spec dict; the value is parsed as YAML."""
    key, sep, value = assignment.partition("=")
    if not sep or not key.strip():
        raise SpecError(f"--set expects KEY=VALUE, e.g. model.name=random_forest. Got {assignment!r}.")
    parts = key.strip().split(".")
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise SpecError(f"--set {key}: '{'.'.join(parts[: i + 1])}' is not a section.")
        node = child
    node[parts[-1]] = yaml.safe_load(value) if value.strip() else None


def spec_from_dict(raw: dict[str, Any], source: str | None = None) -> PipelineSpec:
    """Validate a raw dict into a PipelineSpec; raise SpecError listing every problem."""
    if not isinstance(raw, dict):
        raise SpecError(f"the top level must be a mapping of sections (name: ..., data: ...). "
                        f"Got a {_yaml_kind(raw)}.", source)
    try:
        return PipelineSpec.model_validate(raw)
    except ValidationError as exc:
        problems = pydantic_problems(exc, model=PipelineSpec)
        problems += [p for p in _problems_behind(raw, exc) if p not in problems]
        raise SpecError(problems, source) from None
    except SpecError as exc:
        raise SpecError(exc.problems, source) from None


def _problems_behind(raw: dict[str, Any], exc: ValidationError) -> list[str]:
    """The component problems a structural error hides (pydantic stops before the components are
    checked): the spec is checked again without the values it rejected."""
    rest = copy.deepcopy(raw)
    for err in exc.errors():
        _drop(rest, err["loc"])
    rest.setdefault("name", "pipeline")
    try:
        PipelineSpec.model_validate(rest)
    except SpecError as inner:
        return inner.problems
    except ValidationError:
        pass  # still malformed: the problems already listed come first
    return []


def _drop(raw: dict[str, Any], loc: tuple[Any, ...]) -> None:
    """Remove the deepest key of ``loc`` that exists in ``raw`` (a list goes whole when an item is bad)."""
    holder, key, node = None, None, raw
    for part in loc:
        if isinstance(node, dict) and part in node:
            holder, key, node = node, part, node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            break
    if holder is not None:
        holder.pop(key, None)


def _yaml_kind(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(
        type(value), type(value).__name__)


def read_raw_spec(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML spec file into a dict, with errors that name the file and line.

    The file's type is checked before it is opened (a FIFO or a device would block or never end).
    """
    path = Path(path)
    problem = path_problem(path)
    if problem:
        raise SpecError(f"the spec file '{path}' {problem}.")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise SpecError(f"'{path}' is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8.") from None
    except OSError as exc:
        raise SpecError(f"the spec file '{path}' cannot be read: {exc.strerror or exc}.") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"'{path}' is not valid YAML: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SpecError(f"the top level must be a mapping of sections (name: ..., data: ...). "
                        f"Got a {_yaml_kind(raw)}.", str(path))
    return raw


PATH_OPTIONS = ("path", "train", "test")


def load_spec(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> PipelineSpec:
    """Read, override and validate a spec. Relative data paths resolve against the spec's folder
    (or the working directory, where the file is found there and not beside the spec)."""
    raw = copy.deepcopy(read_raw_spec(path))
    problems: list[str] = []
    for assignment in overrides:
        try:
            apply_override(raw, assignment)
        except SpecError as exc:
            problems += exc.problems
    data = raw.get("data")
    if isinstance(data, dict):
        base = Path(path).resolve().parent
        for key in PATH_OPTIONS:
            if isinstance(data.get(key), str):
                data[key] = resolve_data_path(data[key], base)
    try:
        spec = spec_from_dict(raw, source=str(path))
    except SpecError as exc:
        problems += exc.problems
    if problems:
        raise SpecError(problems, source=str(path))
    return spec


def resolve_data_path(value: str, base: Path) -> str:
    """Absolute form of a data path given in a spec at folder ``base``."""
    p = Path(os.path.expanduser(value))
    if p.is_absolute():
        return str(p)
    beside_spec = base / p
    if not beside_spec.exists() and p.exists():
        return str(p.resolve())
    return str(beside_spec.resolve())


def spec_to_yaml(spec: PipelineSpec) -> str:
    """The spec as YAML, as it was run (defaults filled in)."""
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
