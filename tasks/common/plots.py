"""PNG plots for run reports (matplotlib, headless); embedded in Prefect artifacts as data URIs.

Figures are made with matplotlib's object API (``Figure``, drawn by the Agg canvas), not pyplot:
no global figure registry to open and close, nothing shared between threads (Prefect may run two
evaluations at once), and no GUI backend is ever chosen or imported.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any


def warm_up() -> None:
    """Import matplotlib's figure and Agg canvas (~0.25 s CPU, most of a run's plotting cost) ahead of the
    first plot (see :mod:`trainflow.tasks.common.warmup`)."""
    import matplotlib.backends.backend_agg  # noqa: F401  (what Figure.savefig draws a .png with)
    import matplotlib.figure  # noqa: F401


def _figure(figsize: tuple[float, float]) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def _save(fig: Any, path: str | os.PathLike) -> str:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=80)  # Figure.savefig draws with Agg for .png; the figure is garbage once out of scope
    return str(path)


def confusion_matrix_png(confusion: dict[str, Any], path: str | os.PathLike) -> str:
    """Heat map of a confusion matrix ``{"labels": [...], "matrix": [[...]]}``."""
    labels, matrix = confusion["labels"], confusion["matrix"]
    n = len(labels)
    fig = _figure((2 + 0.5 * n, 1.6 + 0.5 * n))
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = max((max(r) for r in matrix), default=0)
    for i in range(n):
        for j in range(n):
            # inside the axes: left out of tight_layout's measuring (n*n texts, most of its cost)
            ax.text(j, i, matrix[i][j], ha="center", va="center",
                    color="white" if matrix[i][j] > top / 2 else "black").set_in_layout(False)
    ax.set_title("Confusion matrix (test split)")
    return _save(fig, path)


def curves_png(history: list[dict[str, float]], path: str | os.PathLike, title: str = "Learning curves") -> str:
    """Loss (and any other logged series) per epoch, from a list of per-epoch dicts."""
    keys = [k for k in history[0] if k != "epoch" and not k.endswith("seconds")] if history else []
    losses = [k for k in keys if "loss" in k]
    others = [k for k in keys if k not in losses]
    fig = _figure((9 if others else 5, 3.2))
    axes = fig.subplots(1, 2 if others else 1, squeeze=False)
    epochs = [h.get("epoch", i + 1) for i, h in enumerate(history)]
    for ax, group in zip(axes[0], [losses, others]):
        for k in group:
            ax.plot(epochs, [h.get(k) for h in history], marker=".", label=k)
        ax.set_xlabel("epoch")
        ax.legend()
    axes[0][0].set_title(title)
    return _save(fig, path)


def series_png(series: dict[str, tuple[list[Any], list[float]]], path: str | os.PathLike, title: str,
               bands: dict[str, tuple[list[Any], list[float], list[float]]] | None = None) -> str:
    """Line plot of named (x, y) series, e.g. a forecast against the truth, over shaded (x, lower,
    upper) bands (prediction intervals, widest first)."""
    fig = _figure((8, 3.2))
    ax = fig.subplots()
    for name, (x, lo, hi) in (bands or {}).items():
        ax.fill_between(x, lo, hi, alpha=0.2, color="tab:orange", label=name)
    for name, (x, y) in series.items():
        ax.plot(x, y, label=name)
    ax.legend()
    ax.set_title(title)
    return _save(fig, path)


def series_grid_png(panels: dict[str, dict[str, Any]], path: str | os.PathLike, title: str) -> str:
    """A column of small line plots, one per panel: ``{"lines": {name: (x, y)}, "bands": {name: (x, lo, hi)}}``
    (bands shaded, widest first), e.g. a few series of a panel with their forecasts and intervals."""
    fig = _figure((8, 2.4 * max(len(panels), 1)))
    axes = fig.subplots(max(len(panels), 1), 1, squeeze=False)[:, 0]
    for ax, (name, panel) in zip(axes, panels.items()):
        for label, (x, lo, hi) in panel.get("bands", {}).items():
            ax.fill_between(x, lo, hi, alpha=0.2, label=label, color="tab:orange")
        for label, (x, y) in panel["lines"].items():
            ax.plot(x, y, label=label)
        ax.set_title(name, fontsize=9)
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    return _save(fig, path)


def bars_png(counts: dict[str, dict[str, int]], path: str | os.PathLike, title: str) -> str:
    """Grouped bar chart, e.g. class counts before and after resampling."""
    groups = list(counts)
    labels = sorted({k for c in counts.values() for k in c})
    fig = _figure((1.5 + 0.8 * len(labels), 3))
    ax = fig.subplots()
    width = 0.8 / max(len(groups), 1)
    for g, group in enumerate(groups):
        ax.bar([i + g * width for i in range(len(labels))], [counts[group].get(lab, 0) for lab in labels],
               width=width, label=group)
    ax.set_xticks([i + width * (len(groups) - 1) / 2 for i in range(len(labels))], labels)
    ax.legend()
    ax.set_title(title)
    return _save(fig, path)


def data_uri(path: str | os.PathLike) -> str:
    """``data:image/png;base64,...`` for a PNG file (the Prefect UI renders these in markdown)."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()
