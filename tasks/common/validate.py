"""Data validation with Great Expectations 1.x.

:func:`run_expectations` is the one place that talks to GX: it checks a DataFrame (the data itself,
or a per-image / per-series summary table) against a list of expectations, writes the HTML Data
Docs (after the verdict within :func:`docs_deferred`), and raises
:class:`~trainflow.errors.ValidationFailed` with a readable report when any expectation fails.
GX is imported here only when validation runs (it costs seconds).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainflow.errors import SpecError, ValidationFailed, did_you_mean
from trainflow.imports import great_expectations
from trainflow.refs import atomic_write_text

MAX_EXAMPLES = 5


@dataclass
class Check:
    """One expectation: its GX class name (or snake_case name) and its arguments."""

    type: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    why: str = ""  # shown in the report next to a failure


@dataclass
class ValidationSummary:
    success: bool
    evaluated: int
    failed: list[dict[str, Any]]
    docs_path: str | None
    rows: int

    def as_dict(self) -> dict[str, Any]:
        return {"success": self.success, "evaluated": self.evaluated, "failed": self.failed,
                "docs_path": self.docs_path, "rows": self.rows}


def camel_name(name: str) -> str:
    """``expect_column_values_to_be_between`` -> ``ExpectColumnValuesToBeBetween``."""
    if "_" not in name and name[:1].isupper():
        return name
    return "".join(part.capitalize() for part in name.split("_"))


def _gx(defer: bool = False):
    """Great Expectations, imported for validation; ``defer``: its distribution-test modules load at
    first use (:func:`trainflow.imports.great_expectations`: for a process of one thread)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # no network calls from a pipeline run
    gx = great_expectations(defer)  # without its SQL and cloud integrations: 150+ modules we never use
    _skip_frame_fingerprint()
    return gx


def _skip_frame_fingerprint() -> None:
    """Stop GX from MD5-hashing every DataFrame under 1 GB for a "fingerprint" batch marker in the
    Data Docs: 2 s a million rows, for data our ``DataRef.digest`` already identifies."""
    try:
        from great_expectations.execution_engine import pandas_execution_engine
    except ImportError:  # another GX layout: the hash only costs time
        return
    if hasattr(pandas_execution_engine, "HASH_THRESHOLD"):
        pandas_execution_engine.HASH_THRESHOLD = 0


def expectation_class(name: str, where: str) -> Any:
    """The GX expectation class called ``name``; SpecError with a close match when unknown."""
    gx = _gx()
    cls_name = camel_name(name)
    cls = getattr(gx.expectations, cls_name, None)
    if cls is None or not cls_name.startswith("Expect"):
        known = [n for n in dir(gx.expectations) if n.startswith("Expect")]
        snake = [re.sub(r"(?<!^)(?=[A-Z])", "_", n).lower() for n in known]
        raise SpecError(f"'{where}' names no Great Expectations expectation: {name!r}"
                        f"{did_you_mean(name, snake if '_' in name else known)}.")
    return cls


def run_expectations(df: Any, checks: list[Check], docs_dir: str | os.PathLike | None, suite: str) -> ValidationSummary:
    """Validate ``df`` against ``checks``; write Data Docs to ``docs_dir``; raise on failure."""
    gx = _gx()
    expectations = _expectations(checks)
    tmp = tempfile.mkdtemp(prefix="trainflow-gx-")  # the Data Docs site, until copied to docs_dir
    try:
        ctx, result = _checkpoint(gx, df, expectations, suite, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    docs = Path(docs_dir) / "index.html" if docs_dir is not None else None
    evaluated, failed = _failures(result, checks)
    summary = ValidationSummary(result.success, evaluated, failed, str(docs) if docs else None, len(df))

    def write_docs() -> None:
        """The HTML Data Docs and summary.json into ``docs_dir``."""
        try:
            if docs_dir is None:
                return
            ctx.build_data_docs(site_names=["run"])
            if Path(docs_dir).exists():
                shutil.rmtree(docs_dir)
            shutil.copytree(tmp, docs_dir)
            import json

            atomic_write_text(Path(docs_dir) / "summary.json", json.dumps(summary.as_dict(), indent=2, default=str))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    later = _DOCS_LATER.get()
    if later is not None and result.success and docs_dir is not None:
        later.append(write_docs)
    else:  # a failure's report points at its docs: they are written before it is raised
        write_docs()
    if not result.success:
        raise ValidationFailed(format_failures(summary), summary.docs_path)
    return summary


def _expectations(checks: list[Check]) -> list[Any]:
    """The GX expectations of ``checks``; SpecError listing every check with a bad type or arguments."""
    expectations = []
    problems = []
    for i, check in enumerate(checks):
        try:
            expectations.append(expectation_class(check.type, f"validation.expectations[{i}]")(**check.kwargs))
        except SpecError as exc:
            problems.extend(exc.problems)
        except Exception as exc:  # pydantic errors from GX name the bad argument
            problems.append(f"expectation {check.type} has invalid arguments {check.kwargs}: {exc}")
    if problems:
        raise SpecError(problems)
    return expectations


def _checkpoint(gx: Any, df: Any, expectations: list[Any], suite: str, site: str) -> tuple[Any, Any]:
    """An ephemeral GX context whose Data Docs site is the folder ``site``, and the result of one
    checkpoint run of ``expectations`` on ``df`` (no actions: the docs are built later, from the stores)."""
    ctx = gx.get_context(mode="ephemeral")
    _quiet(ctx)
    ctx.add_data_docs_site(site_name="run", site_config={
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": site},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    })
    batch = ctx.data_sources.add_pandas("pandas").add_dataframe_asset("data").add_batch_definition_whole_dataframe("all")
    gx_suite = ctx.suites.add(gx.ExpectationSuite(name=suite, expectations=expectations))
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=suite, data=batch, suite=gx_suite))
    checkpoint = ctx.checkpoints.add(gx.Checkpoint(name=suite, validation_definitions=[vd], result_format="SUMMARY"))
    return ctx, checkpoint.run(batch_parameters={"dataframe": df})


def _failures(result: Any, checks: list[Check]) -> tuple[int, list[dict[str, Any]]]:
    """How many expectations ran, and one record per failed one (with the check's ``why``)."""
    failed = []
    evaluated = 0
    for run in result.run_results.values():
        for res in run.results:
            evaluated += 1
            if res.success:
                continue
            cfg = res.expectation_config
            r = res.result or {}
            same = [c for c in checks if camel_name(c.type) == camel_name(cfg.type)
                    and c.kwargs.get("column") == cfg.kwargs.get("column") and c.why]
            # two checks of one kind on one column (two row-count bounds): the one with these arguments
            why = next((c.why for c in same if all(cfg.kwargs.get(k) == v for k, v in c.kwargs.items())),
                       same[0].why if same else "")
            failed.append({
                "expectation": cfg.type,
                "column": cfg.kwargs.get("column"),
                "kwargs": {k: v for k, v in cfg.kwargs.items() if k not in ("column", "batch_id")},
                "unexpected_count": r.get("unexpected_count"),
                "element_count": r.get("element_count"),
                "examples": [_plain(v) for v in (r.get("partial_unexpected_list") or [])[:MAX_EXAMPLES]],
                "observed": _plain(r.get("observed_value")),
                "why": why,
                "error": (res.exception_info or {}).get("exception_message") if not r else None,
            })
    return evaluated, failed


_DOCS_LATER: ContextVar[list[Callable[[], None]] | None] = ContextVar("trainflow_docs_later", default=None)


@contextmanager
def docs_deferred() -> Iterator[list[Callable[[], None]]]:
    """Within the block, a passing :func:`run_expectations` returns before writing its Data Docs: it
    appends the writer to the yielded list instead, for the caller to run once it has passed the
    result on (the validation child answers first: training needs only the verdict). A failing one
    writes its docs before raising, as its report points at them."""
    later: list[Callable[[], None]] = []
    token = _DOCS_LATER.set(later)
    try:
        yield later
    finally:
        _DOCS_LATER.reset(token)


def format_failures(summary: ValidationSummary) -> str:
    """One line per failed expectation, with counts and example values."""
    lines = [f"{len(summary.failed)} of {summary.evaluated} expectations failed on {summary.rows} rows:"]
    for f in summary.failed:
        col = f" on column '{f['column']}'" if f["column"] else ""
        args = ", ".join(f"{k}={v!r}" for k, v in f["kwargs"].items())
        line = f"  - {f['expectation']}{col}" + (f" ({args})" if args else "")
        if f["unexpected_count"] is not None:
            line += f": {f['unexpected_count']} of {f['element_count']} values unexpected"
            if f["examples"]:
                line += ", e.g. " + ", ".join(repr(v) for v in f["examples"])
        elif f["observed"] is not None:
            line += f": observed {f['observed']!r}"
        elif f["error"]:
            line += f": {f['error']}"
        if f["why"]:
            line += f" [{f['why']}]"
        lines.append(line)
    return "\n".join(lines)


def _plain(value: Any) -> Any:
    """numpy scalars -> Python, so reports and JSON stay readable."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        try:
            return value.item()
        except (ValueError, AttributeError):
            return str(value)
    return value


def _quiet(ctx: Any) -> None:
    """Turn off GX's progress bars, which flood the Prefect logs."""
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # older/newer GX without this knob: bars are only cosmetic
        pass
