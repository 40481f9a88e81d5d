"""The run report: one markdown document for ``report.md`` and the Prefect UI.

In the file, plots are linked as PNG files beside it; in the Prefect artifact they are embedded
as ``data:image/png;base64`` URIs, which the UI renders (inline SVG is stripped there).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from trainflow.refs import Evaluation
from trainflow.tasks.common.plots import data_uri


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def _interval(interval: list[float] | None) -> str:
    return f"[{interval[0]:.4f}, {interval[1]:.4f}]" if interval else ""


def table(rows: list[dict[str, Any]]) -> str:
    """A markdown table from a list of dicts (columns from the first row)."""
    if not rows:
        return ""
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def render(summary: dict[str, Any], evaluation: Evaluation, run_dir: str | Path, embed_images: bool) -> str:
    """The report for a finished run; ``summary`` is the content of metrics.json."""
    spec = summary["spec"]
    lines = [
        f"# {summary['pipeline']}: {summary['task']} run {summary['run_id']}",
        "",
        f"Model `{spec['model'].get('name')}` on data `{summary['data_digest'][:12]}` "
        f"({summary.get('rows', '?')} rows); primary metric **{summary['primary_metric']} = "
        f"{_fmt(summary['metrics'].get(summary['primary_metric'], float('nan')))}**.",
        "",
        "## Metrics (test split)",
        "",
        table([{"metric": k, "value": v, **({"95% interval": _interval(evaluation.intervals.get(k))}
                                            if evaluation.intervals else {})}
               for k, v in evaluation.metrics.items()]),
    ]
    if evaluation.per_class:
        lines += ["", "## Per class", "",
                  table([{"class": c, **{k: v for k, v in m.items()}} for c, m in evaluation.per_class.items()])]
    for title, rows in evaluation.tables.items():
        lines += ["", f"## {title}", "", table(rows)]
    validation = summary.get("validation") or {}
    if validation:
        lines += ["", "## Validation", "",
                  f"{validation.get('evaluated', 0)} expectations checked on {validation.get('rows', '?')} rows: "
                  f"{'all passed' if validation.get('success') else 'FAILED'}. Data Docs: `validation/index.html`."]
    profile = summary.get("profile") or []
    if profile:
        lines += ["", "## Data profile (whole table, before the split)", "", table(profile)]
    pre = summary.get("preprocessing") or []
    if pre:
        lines += ["", "## Preprocessing (fitted on the training split)", "", " -> ".join(f"`{s}`" for s in pre)]
    if summary.get("threads"):
        lines += ["", "## Resources", "", f"Fitted on {summary['threads']} CPU threads (`resources.threads`: joblib "
                  "n_jobs, BLAS/OpenMP pools, torch)."]
    notes = list(evaluation.notes) + list(summary.get("notes", []))
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    for title, path in evaluation.plots.items():
        src = data_uri(path) if embed_images else f"plots/{Path(path).name}"
        lines += ["", f"## {title}", "", f"![{title}]({src})"]
    return "\n".join(lines) + "\n"

