"""The pipeline spec: a YAML file validated by pydantic, the one parameter of the flow.

Sections with a fixed shape are strict models (``extra="forbid"``), so a typo is an error with a
close match. A section that picks a component (``data.loader``, ``model.name``, ...) also takes
that component's options beside the name; they are checked against the component's own config when
the spec is built, and every problem is reported at once.

The core sections are declared here; the sections of the modalities (``preprocess.<name>``
subsections, top-level ones such as ``train``) are declared by each modality
(``Modality.sections``) and added to the spec model as typed, strict fields when it is assembled
(:func:`spec_model`), after component discovery. So the spec stays one strict pydantic model (unknown keys refused with a close match,
every field typed, with defaults) and the Prefect UI shows a form for every section, while this
module names no modality. ``PipelineSpec`` is a class declared here with the core sections, so a
type checker sees it; :func:`spec_model` completes that same class in place with the modalities'
sections (and ``task`` limited to the tasks they serve), again when a plug-in registers new
sections after start-up. Everything that builds a spec goes through :func:`spec_from_dict`, which
completes it first; code that reads the class's fields or schema (the flow's parameter form) calls
:func:`spec_model` before.

The modality of a spec is decided once, by its loader, when the spec is validated
(``PipelineSpec.modality``); cross-field checks of that modality (``Modality.spec_problems``) run
then too, so a spec problem is reported before any data is read.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo

from trainflow import modalities
from trainflow.errors import ComponentError, DataError, SpecError, expected
from trainflow.files import path_problem, read_text_capped
from trainflow.yamlfile import DuplicateKeyError, load_yaml
from trainflow.registry import REGISTRY, Choice, Component, choice, pydantic_problems
from trainflow.resources import ResourcesSpec

#: NAME_MAX of common file systems (ext4, XFS, APFS, NTFS) is 255 bytes; the name is a folder name and
#: others add to it (Great Expectations' '<name>.json', artifact keys '<name>-sweep-progress'), so keep room.
MAX_NAME_LENGTH = 200
STAGES = ("load", "validate", "split", "fit", "evaluate", "publish")


class Strict(BaseModel):
    """A spec section whose keys are fixed."""

    model_config = ConfigDict(extra="forbid")


DataSpec = choice("DataSpec", "loader", "loader", "csv",
                  "Loader component, e.g. csv, parquet (`trainflow components --kind loader`)",
                  "What to read (``data``): a loader component and its options.")
ModelSpec = choice("ModelSpec", "model", "name", None,
                   "Model component; default: the one the data's modality suggests for the task",
                   "What to train (``model``): a model component and its options.")


class StageSpec(Choice):
    """An extra stage: a registered ``stage`` component run after a built-in stage."""

    kind: ClassVar[str] = "stage"
    selector: ClassVar[str] = "name"
    name: str
    after: Literal["load", "validate", "split", "fit", "evaluate", "publish"] = "publish"


class PreprocessSpec(Strict):
    """The spec's ``preprocess`` section: each modality adds its own subsection(s)."""

    if TYPE_CHECKING:  # the modalities' subsections, added by spec_model(): typed at run time only
        def __getattr__(self, name: str) -> Any: ...


class ColumnRule(Strict):
    """What one column must hold; checked by Great Expectations before training."""

    type: Literal["number", "integer", "string", "boolean", "datetime"] | None = None
    min: float | None = None
    max: float | None = None
    allowed: list[Any] | None = None
    nullable: bool = True

    @model_validator(mode="after")
    def _min_not_above_max(self) -> ColumnRule:
        # no value could pass: validation would fail on any data, after loading it
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is above max ({self.max:g}), so no value can pass; "
                             "expected min <= max")
        return self


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
    """How the rows are held out (``tasks/common/holdout.py``): at random (stratified; iterative for
    multi-label), by the loader's files (``data.train``/``data.test``), fixed by a ``column``'s values,
    or by ``group`` (each group on one side); optionally a ``validation`` part beside train and test."""

    test_size: float = Field(0.2, gt=0, lt=1, description="Share of rows (of groups, with 'group') held out "
                                                         "for the test when no test values are named")
    stratify: bool = True  # keeps class shares equal in train and test (classification only)
    seed: int = 42  # fixed so that the held-out split does not move when the training seed does
    cv_folds: int = Field(0, ge=0, description="k-fold cross-validation on the training split; 0 = off")
    column: str | None = Field(None, description="Column whose values fix each row's part (with 'test', "
                                                 "optionally 'validation' values)")
    group: str | None = Field(None, description="Column (or named group of an audio pattern) whose groups stay "
                                                "on one side: speakers, patients, sites")
    test: list[str] = Field([], description="Values of 'column' (or groups) that make a row a test row")
    validation: float | list[str] | None = Field(
        None, description="Validation part: values of 'column' (or groups), or a share of the training rows; "
                          "early stopping, threshold tuning and model selection use it")

    @field_validator("test", mode="before")
    @classmethod
    def _as_texts(cls, v: Any) -> Any:
        return [str(x) for x in (v if isinstance(v, list | tuple) else [v])] if v is not None else []

    @field_validator("validation", mode="before")
    @classmethod
    def _validation_texts(cls, v: Any) -> Any:
        if isinstance(v, list | tuple | str):
            return [str(x) for x in (v if isinstance(v, list | tuple) else [v])]
        return v

    @model_validator(mode="after")
    def _one_way(self) -> SplitSpec:
        problems = []
        if self.column and self.group:
            problems.append(f"'split.column' ({self.column!r}) and 'split.group' ({self.group!r}) are both given; "
                            "give one: column fixes each row's part by its value, group keeps each group on one side.")
        if self.column and not self.test:
            problems.append(f"'split.column' is {self.column!r} but 'split.test' names no value: expected the "
                            f"values of {self.column!r} that mark test rows, e.g. 'split: {{column: {self.column}, "
                            "test: [test]}'.")
        if self.test and not (self.column or self.group):
            problems.append(f"'split.test' ({self.test}) names test values but neither 'split.column' nor "
                            "'split.group' says which column holds them.")
        if isinstance(self.validation, list) and not (self.column or self.group):
            problems.append(f"'split.validation' ({self.validation}) names values but neither 'split.column' nor "
                            "'split.group' says which column holds them; or give a share, e.g. 0.1.")
        if isinstance(self.validation, float | int) and not 0 < self.validation < 1:
            problems.append(f"'split.validation' as a share must be between 0 and 1 (exclusive); got {self.validation}.")
        overlap = sorted(set(self.test) & set(self.validation if isinstance(self.validation, list) else []))
        if overlap:
            problems.append(f"'split.test' and 'split.validation' both name {overlap}; a row is in one part only.")
        if problems:
            raise ValueError(" ".join(problems))
        return self

    @property
    def key(self) -> str | None:
        """The column (or group) the loader must carry for this split; None for a random split."""
        return self.column or self.group


class EvaluateSpec(Strict):
    metrics: list[str] | None = Field(None, description="Metric components; default: all for the task")
    primary: str | None = Field(None, description="Metric that ranks runs; default per task")
    calibrate: Literal["none", "temperature", "sigmoid", "isotonic"] = Field(
        "none", description="Post-hoc calibration of a classifier's probabilities, fitted on the validation "
                            "part: temperature (networks) | sigmoid | isotonic (scikit-learn models)")
    importance: bool = Field(True, description="Permutation importance of a table's input columns on the test "
                                               "split (costs columns x 5 predictions of up to 2,000 rows)")


class PromotionSpec(Strict):
    """When a finished run replaces the pipeline's champion (the model ``trainflow predict <name>`` uses)."""

    enabled: bool = True
    tolerance: float = Field(0.0, ge=0, description="A run this much worse on the primary metric still becomes "
                             "champion (0: it must be at least as good)")
    require_validation: bool = True  # a run whose data was not checked never becomes champion
    rule: Literal["paired", "point"] = Field(
        "paired", description="paired: score the champion on this run's test rows and promote when the "
                              "bootstrap 95% interval of the difference is above -tolerance | point: compare "
                              "the two stored test values (each on its own test rows)")
    resamples: int = Field(1000, ge=1000, le=100_000, description="Bootstrap resamples of the paired rule")


class FeaturesSpec(Strict):
    """Which columns of a table become features, and the alarms against junk and leaking ones
    (``leakage`` and ``leakage_score`` apply to every modality: duplicates across the split)."""

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


class TuneSpec(Strict):
    """What ``trainflow tune`` searches (its ``--space`` and ``--trials`` add to or replace these)."""

    space: dict[str, str] = Field({}, description="Spec field -> distribution: 'loguniform:1e-3:1e2', "
                                                  "'float:0:1', 'int:1:8', 'choice:svm,logistic_regression'")
    trials: int = Field(20, ge=1, description="Trials in all (a resumed study counts the finished ones)")
    # Optuna's defaults: the median of earlier trials at the same step, after 5 unpruned trials
    pruner: Literal["median", "none"] = Field("median", description="Stop a trial whose intermediate score "
                                              "(validation metric per epoch, CV mean per fold) is below the median")
    startup_trials: int = Field(5, ge=0, description="Trials never pruned (the median needs them)")
    warmup_steps: int = Field(0, ge=0, description="Epochs (or folds) of a trial never pruned")


class PipelineSpec(Strict):
    """A whole pipeline: what to load, check, preprocess, train and report (the core sections)."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=MAX_NAME_LENGTH,
                      description="Pipeline name; names the run folder")
    task: str = Field("classification", description="What to predict; the tasks the data's modality serves")
    description: str = ""
    seed: int = Field(0, description="Seed for model training (the split has its own)")
    data: DataSpec = DataSpec()
    validation: ValidationSpec = ValidationSpec()
    split: SplitSpec = SplitSpec()
    preprocess: PreprocessSpec = PreprocessSpec()
    model: ModelSpec = ModelSpec()
    evaluate: EvaluateSpec = EvaluateSpec()
    promotion: PromotionSpec = PromotionSpec()
    features: FeaturesSpec = Field(FeaturesSpec(), description="Feature choice and leakage alarms")
    stages: list[StageSpec] = []
    tune: TuneSpec = Field(TuneSpec(), description="The search of 'trainflow tune'")
    resources: ResourcesSpec = Field(ResourcesSpec(), description="CPU threads of the fit, evaluation and "
                                                                  "prediction (trainflow/resources.py)")

    _modality: str | None = PrivateAttr(None)

    if TYPE_CHECKING:  # the modalities' sections (train, horizon, ...), added by spec_model()
        def __getattr__(self, name: str) -> Any: ...

    @model_validator(mode="after")
    def _check_components(self) -> PipelineSpec:
        problems: list[str] = []
        mod = None
        try:
            self._modality = modalities.modality_of_loader(self.data.loader)
            mod = modalities.get(self._modality)
        except SpecError as exc:
            problems += exc.problems
        if mod is not None and self.task not in mod.tasks:
            problems.append(task_problem(self.task, mod, self.data.loader))
        elif mod is not None and self.model.name is None:
            self.model.name = mod.default_models[self.task]
        problems += self.component_problems(mod)
        if mod is not None:
            problems += mod.spec_problems(self) + self.calibration_problems(mod)
            problems += self.split_problems()
        if problems:
            raise SpecError(problems)
        return self

    def calibration_problems(self, mod: modalities.Modality) -> list[str]:
        """``evaluate.calibrate`` is for classifiers, with a method the modality's models take."""
        method = self.evaluate.calibrate
        if method == "none":
            return []
        if self.task != "classification":
            return [f"'evaluate.calibrate' is {method!r}, but calibration is for classifiers; the task is "
                    f"{self.task!r}: remove it or set 'none'."]
        if method not in mod.calibrations:
            offered = " | ".join(("none", *mod.calibrations))
            return [f"'evaluate.calibrate' of {mod.name} models must be one of {offered}. Got {method!r}."]
        return []

    def component_problems(self, mod: modalities.Modality | None) -> list[str]:
        """Every problem with the chosen components and their options (``mod``: the spec's modality,
        None when its loader is unknown)."""
        problems = self.data.problems("data") if mod is not None else []
        if self.model.name is not None:
            model_problems = self.model.problems("model", task=self.task)
            if model_problems and mod is not None and self.model.name not in REGISTRY.names("model", self.task):
                # an unknown name: offer the models that take this data, not every registered one
                model_problems = [expected("'model.name'", models_for(mod.name, self.task), self.model.name)]
            problems += model_problems
            model = REGISTRY.get("model", self.model.name) if not model_problems else None
            if mod is not None and model is not None and not fits(model, mod.name):
                problems.append(
                    f"'model.name' {self.model.name!r} is a {model.modality} model but the loader "
                    f"{self.data.loader!r} gives {mod.name} data. "
                    + expected("Choose a model that", models_for(mod.name, self.task), self.model.name)
                )
        for i, stage in enumerate(self.stages):
            problems += stage.problems(f"stages[{i}]")
        for i, name in enumerate(self.evaluate.metrics or []):
            problems += _lookup("metric", name, f"evaluate.metrics[{i}]", self.task)
        if self.evaluate.primary:
            problems += _lookup("metric", self.evaluate.primary, "evaluate.primary", self.task)
        return problems

    def split_problems(self) -> list[str]:
        """A split by column or group needs a loader that carries the column's values."""
        key = self.split.key
        if not key or REGISTRY.get("loader", self.data.loader).extra.get("split_key"):
            return []
        able = sorted(c.name for c in REGISTRY.all() if c.kind == "loader" and c.extra.get("split_key"))
        which = "column" if self.split.column else "group"
        return [f"'split.{which}' is {key!r}, but the loader {self.data.loader!r} carries no column for the "
                f"split; use a loader that does ({', '.join(able)}), or its own files (data.train/data.test)."]

    @property
    def modality(self) -> str:
        """The kind of data the loader gives (decided once, when the spec was validated)."""
        return self._modality

    def key_dump(self, exclude: set[str] | None = None) -> dict[str, Any]:
        """The spec as JSON for cache keys, study names and "unchanged" checks: what
        :func:`without_default_sections` leaves of its dump."""
        return without_default_sections(self.model_dump(mode="json", exclude=exclude))

    def training_view(self) -> PipelineSpec:
        """The spec without the parts that cannot change a trained model (cache-key input). The primary
        metric stays: the fit measures its selection score (cross-validation) in it. ``resources`` goes
        too: where the thread count changes a model (torch's sums), the key holds the count itself
        (:func:`trainflow.cache_keys.default_threads`)."""
        return self.model_copy(update={"description": "", "validation": ValidationSpec(),
                                       # calibration is fitted with the model; the fit measures its
                                       # selection score (cross-validation) in the primary metric
                                       "evaluate": EvaluateSpec(primary=self.evaluate.primary,
                                                                calibrate=self.evaluate.calibrate), "stages": [],
                                       "tune": TuneSpec(), "promotion": PromotionSpec(),
                                       "resources": ResourcesSpec()})


def task_problem(task: str, mod: modalities.Modality, loader: str) -> str:
    """The message for a task the loader's modality does not serve, naming loaders that would."""
    others = [c.name for c in REGISTRY.all() if c.kind == "loader" and c.modality != mod.name
              and task in modalities.get(c.modality).tasks]
    hint = f", or use a loader whose data serves {task}: {', '.join(others)}" if others else ""
    return (f"'task' is {task!r}, which the loader {loader!r} ({mod.name} data) does not serve: set "
            + " or ".join(f"'task: {t}'" for t in mod.tasks) + hint + ".")


def models_for(modality: str, task: str) -> list[str]:
    """The registered models that take data of ``modality`` for ``task``."""
    return [n for n in REGISTRY.names("model", task) if fits(REGISTRY.get("model", n), modality)]


def fits(model: Component, modality: str | None) -> bool:
    """Whether a model takes data of ``modality`` (its own, or one listed in its ``modalities``)."""
    return model.modality in (None, modality) or modality in model.extra.get("modalities", ())


def _lookup(kind: str, name: str, where: str, task: str) -> list[str]:
    try:
        REGISTRY.get(kind, name, task=task, where=where)
    except SpecError as exc:
        return list(exc.problems)
    return []


# ---------------------------------------------------------------- the assembled spec model

_built: dict[str, Any] = {}


def _section_field(model: type[BaseModel]) -> FieldInfo:
    doc = (model.__doc__ or "").strip().splitlines()
    return FieldInfo.from_annotated_attribute(model, Field(model(), description=doc[0] if doc else None))


def _complete(model: type[BaseModel], fields: dict[str, FieldInfo]) -> None:
    """Give ``model`` these fields (new or replaced) and rebuild its validator, serializer and schema."""
    for name, info in fields.items():
        model.__pydantic_fields__[name] = info
        model.__annotations__[name] = info.annotation
    model.model_rebuild(force=True)


def spec_model() -> type[PipelineSpec]:
    """:class:`PipelineSpec`, completed with every registered modality's sections and ``task``
    limited to the tasks the modalities serve. Done once; again when new sections appear."""
    sections = modalities.sections()
    tasks = tuple(sorted({t for m in modalities.all_modalities() for t in m.tasks}))
    key = repr((sorted((p, id(m)) for p, m in sections.items()), tasks))
    if _built.get("key") == key:
        return PipelineSpec
    nested = {p.split(".", 1)[1]: m for p, m in sections.items() if p.startswith("preprocess.")}
    other = [p for p in sections if "." in p and not p.startswith("preprocess.")]
    core = [p for p in sections if p in _CORE_FIELDS or p.removeprefix("preprocess.") in _CORE_PREPROCESS]
    if other or core:
        raise ComponentError(f"a modality's spec sections are new top-level sections or 'preprocess.<name>'; "
                             f"got {other + core} (a core section cannot be replaced).")
    _complete(PreprocessSpec, {name: _section_field(m) for name, m in nested.items()})
    fields = {p: _section_field(m) for p, m in sections.items() if "." not in p}
    # the default is a completed section, so every spec carries the modalities' preprocess defaults
    fields["preprocess"] = FieldInfo.from_annotated_attribute(
        PreprocessSpec, Field(PreprocessSpec(), description=PreprocessSpec.__doc__.strip()))
    if tasks:
        default = "classification" if "classification" in tasks else tasks[0]
        fields["task"] = FieldInfo.from_annotated_attribute(Literal[tasks], Field(default, description="What to predict"))
    _complete(PipelineSpec, fields)
    _built["key"] = key
    return PipelineSpec


_CORE_FIELDS = frozenset(PipelineSpec.model_fields)
_CORE_PREPROCESS = frozenset(PreprocessSpec.model_fields)


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
    try:
        node[parts[-1]] = load_yaml(value) if value.strip() else None
    except yaml.YAMLError as exc:  # a repeated key included (DuplicateKeyError)
        raise SpecError(f"--set {key.strip()}: the value {value!r} is not valid YAML: {exc}") from None


def spec_from_dict(raw: dict[str, Any], source: str | None = None) -> PipelineSpec:
    """Validate a raw dict into a PipelineSpec; raise SpecError listing every problem."""
    if not isinstance(raw, dict):
        raise SpecError(f"the top level must be a mapping of sections (name: ..., data: ...). "
                        f"Got a {_yaml_kind(raw)}.", source)
    model = spec_model()
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = pydantic_problems(exc, model=model)
        problems += [p for p in _problems_behind(raw, exc, model) if p not in problems]
        raise SpecError(problems, source) from None
    except SpecError as exc:
        raise SpecError(exc.problems, source) from None


def _problems_behind(raw: dict[str, Any], exc: ValidationError, model: type[PipelineSpec]) -> list[str]:
    """The component problems a structural error hides (pydantic stops before the components are
    checked): the spec is checked again without the values it rejected."""
    rest = copy.deepcopy(raw)
    for err in exc.errors():
        _drop(rest, err["loc"])
    rest.setdefault("name", "pipeline")
    try:
        model.model_validate(rest)
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


#: a spec is written by hand; a larger file is not one
SPEC_MAX_BYTES = 4 * 1024 * 1024


def read_raw_spec(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML spec file into a dict, with errors that name the file and line.

    The file's type is checked before it is opened (a FIFO or a device would block or never end).
    """
    path = Path(path)
    problem = path_problem(path)
    if problem:
        raise SpecError(f"the spec file '{path}' {problem}.")
    try:
        raw = load_yaml(read_text_capped(path, "spec file", limit=SPEC_MAX_BYTES))
    except UnicodeDecodeError as exc:
        raise SpecError(f"'{path}' is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8.") from None
    except OSError as exc:
        raise SpecError(f"the spec file '{path}' cannot be read: {exc.strerror or exc}.") from None
    except DataError as exc:  # too large, or swapped for a special file after the check above
        raise SpecError(str(exc)) from None
    except DuplicateKeyError as exc:
        raise SpecError(exc.problems, str(path)) from None
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
        # a loader that reads several inputs (multimodal) names each one's loader options in data.inputs
        inputs = data.get("inputs")
        nested = [v for v in inputs.values() if isinstance(v, dict)] if isinstance(inputs, dict) else []
        for section in (data, *nested):
            for key in PATH_OPTIONS:
                if isinstance(section.get(key), str):
                    section[key] = resolve_data_path(section[key], base)
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


def without_default_sections(dump: dict[str, Any]) -> dict[str, Any]:
    """A spec's JSON dump less the modalities' sections left at their defaults. Every registered
    modality adds its sections to every spec, so a plug-in installed or imported would otherwise
    change the key of every cached model and tune study; a default section says nothing the code's
    own digest does not (a section's defaults are its module's code)."""
    out = {k: v for k, v in dump.items() if k in _CORE_FIELDS or not _is_default(PipelineSpec, k, v)}
    if isinstance(out.get("preprocess"), dict):
        out["preprocess"] = {k: v for k, v in out["preprocess"].items()
                             if k in _CORE_PREPROCESS or not _is_default(PreprocessSpec, k, v)}
    return out


def _is_default(model: type[BaseModel], name: str, value: Any) -> bool:
    """Whether ``value`` is the JSON dump of field ``name``'s default in ``model`` (False for an unknown field)."""
    info = model.model_fields.get(name)
    if info is None or not isinstance(info.default, BaseModel):
        return False
    return value == info.default.model_dump(mode="json")


def spec_to_yaml(spec: PipelineSpec) -> str:
    """The spec as YAML, as it was run (defaults filled in); run folders hold this text as spec.yaml."""
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
