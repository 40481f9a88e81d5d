"""The saved input schema of a tabular model (``schema.json``), read back with its shape checked.

A run folder is shared, so the schema is untrusted input like the model file beside it: every key
and type that prediction then uses is checked here, and a schema of another shape is reported as a
damaged file naming it (exit 3) rather than failing later as a KeyError deep in prediction. A model
file that does not match its schema (copied from another run) is refused the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from trainflow import trust
from trainflow.tasks.common.load import Encoding
from trainflow.errors import DataError


class _Saved(BaseModel):
    # strict: a saved file holds exactly what fit wrote; extra keys are kept for the loader's other readers
    model_config = ConfigDict(extra="allow", strict=True)


class Feature(_Saved):
    name: str
    kind: Literal["numeric", "categorical"]


class Plan(_Saved):
    features: list[str]
    dates: list[str] = []


class Reading(_Saved):
    """How the training CSV was read, for new rows (``modality.reading_options``)."""

    delimiter: str = Field(",", min_length=1, max_length=1)
    encoding: Encoding = "utf-8"
    na_values: list[str] | None = None


class Schema(_Saved):
    task: Literal["classification", "regression", "multilabel"]
    classes: list[str | int | float | bool] = []
    plan: Plan | None = None
    id: str | None = None
    features: list[Feature] = Field(min_length=1)
    labels: list[str] | None = None
    thresholds: list[float] | None = None
    constant_labels: dict[str, float] = {}
    reading: Reading = Reading()


def read_schema(path: str | Path) -> dict[str, Any]:
    """The saved schema at ``path`` as the dict fit wrote; DataError naming the file when it is
    missing, not JSON (:func:`trainflow.trust.read_json`) or not of the shape prediction relies on."""
    raw, schema = trust.read_shaped(path, Schema, "table schema")
    problem = _schema_problem(schema)
    if problem:
        raise trust.damaged(path, problem)
    return raw


def _schema_problem(schema: Schema) -> str | None:
    """What the types cannot say: the classes or labels a task needs, features the plan produces."""
    names = [f.name for f in schema.features]
    if schema.task == "classification" and not schema.labels and not schema.classes:
        return "a classifier's schema lists no classes"
    if schema.labels is not None:
        if not schema.labels or schema.thresholds is None or len(schema.thresholds) != len(schema.labels):
            return "its labels and thresholds are missing or of different lengths"
        if not set(schema.constant_labels) <= set(schema.labels):
            return "its constant labels are not among its labels"
    if schema.plan is not None and not set(names) <= set(schema.plan.features):
        return f"its features {sorted(set(names) - set(schema.plan.features))} are not in its plan"
    return None


def check_model_matches(pipe: Any, schema: dict[str, Any], model_path: str | Path, schema_path: str | Path) -> None:
    """DataError when the fitted pipeline ``pipe`` was fitted on other columns than the schema's
    features, or predicts more classes than the schema names (a model file from another run)."""
    names = [f["name"] for f in schema["features"]]
    expected = getattr(pipe, "feature_names_in_", None)  # a pipeline fitted on a frame knows its columns
    problem = None
    if expected is not None and [str(c) for c in expected] != names:
        expected = [str(c) for c in expected]
        lacking, unknown = [c for c in expected if c not in names], [c for c in names if c not in expected]
        problem = (f"the model expects the columns {', '.join(map(repr, expected))}; the schema's features are "
                   f"{', '.join(map(repr, names))}"
                   + (f" (the schema lacks {', '.join(map(repr, lacking))})" if lacking else "")
                   + (f" (the model never saw {', '.join(map(repr, unknown))})" if unknown else "")
                   + ("" if lacking or unknown else " (in another order)"))
    elif schema["task"] == "classification" and not schema.get("labels"):
        classes = getattr(pipe, "classes_", None)
        if classes is not None and len(classes) > len(schema["classes"]):
            problem = (f"the model predicts {len(classes)} classes; the schema names {len(schema['classes'])}")
    if problem:
        raise DataError(f"The model file '{model_path}' does not match the schema '{schema_path}' beside it: "
                        f"{problem}. Restore both files from the same run, or re-run the pipeline that wrote them.")
