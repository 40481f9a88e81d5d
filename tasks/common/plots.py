"""PNG plots for run reports (matplotlib, headless); embedded in Prefect artifacts as data URIs."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and workers
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | os.PathLike) -> str:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    _pyplot().close(fig)
    return str(path)


def confusion_matrix_png(confusion: dict[str, Any], path: str | os.PathLike) -> str:
    """Heat map of a confusion matrix ``{"labels": [...], "matrix": [[...]]}``."""
    plt = _pyplot()
    labels, matrix = confusion["labels"], confusion["matrix"]
    n = len(labels)
    fig, ax = plt.subplots(figsize=(2 + 0.5 * n, 1.6 + 0.5 * n))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = max((max(r) for r in matrix), default=0)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, matrix[i][j], ha="center", va="center", color="white" if matrix[i][j] > top / 2 else "black")
    ax.set_title("Confusion matrix (test split)")
    return _save(fig, path)


def curves_png(history: list[dict[str, float]], path: str | os.PathLike, title: str = "Learning curves") -> str:
    """Loss (and any other logged series) per epoch, from a list of per-epoch dicts."""
    plt = _pyplot()
    keys = [k for k in history[0] if k != "epoch" and not k.endswith("seconds")] if history else []
    losses = [k for k in keys if "loss" in k]
    others = [k for k in keys if k not in losses]
    fig, axes = plt.subplots(1, 2 if others else 1, figsize=(9 if others else 5, 3.2), squeeze=False)
    epochs = [h.get("epoch", i + 1) for i, h in enumerate(history)]
    for ax, group in zip(axes[0], [losses, others]):
        for k in group:
            ax.plot(epochs, [h.get(k) for h in history], marker=".", label=k)
        ax.set_xlabel("epoch")
        ax.legend()
    axes[0][0].set_title(title)
    return _save(fig, path)


def series_png(series: dict[str, tuple[list[Any], list[float]]], path: str | os.PathLike, title: str) -> str:
    """Line plot of named (x, y) series, e.g. a forecast against the truth."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.2))
    for name, (x, y) in series.items():
        ax.plot(x, y, label=name)
    ax.legend()
    ax.set_title(title)
    return _save(fig, path)


def bars_png(counts: dict[str, dict[str, int]], path: str | os.PathLike, title: str) -> str:
    """Grouped bar chart, e.g. class counts before and after resampling."""
    plt = _pyplot()
    groups = list(counts)
    labels = sorted({k for c in counts.values() for k in c})
    fig, ax = plt.subplots(figsize=(1.5 + 0.8 * len(labels), 3))
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
