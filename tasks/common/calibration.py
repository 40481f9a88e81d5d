"""Calibration: whether a classifier's probabilities mean what they say, and post-hoc temperature scaling.

- Brier score: mean squared distance between the probabilities and the one-hot truth (scikit-learn's
  ``brier_score_loss``; two classes: on the positive class). Lower is better; it mixes calibration
  and sharpness.
- Expected calibration error (ECE, :data:`BINS` equal-width bins): the rows are binned by the
  confidence of their predicted class; ECE is the row-weighted mean gap between a bin's mean
  confidence and its accuracy. 0 is perfectly calibrated. Multi-label: per label, on the
  probability of the label being present, and the mean over labels.
- Temperature scaling (networks): one scalar ``T`` divides the logits before the softmax; fitted by
  minimising the log loss on the validation part, it changes no prediction, only the confidence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

BINS = 15


def brier(y_true: Any, proba: Any) -> float:
    """Brier score of integer-coded ``y_true`` against class probabilities ``proba`` [n, k]."""
    from sklearn.metrics import brier_score_loss

    proba = np.asarray(proba, dtype=float)
    if proba.shape[1] == 2:
        return float(brier_score_loss(np.asarray(y_true), proba[:, 1], pos_label=1))
    return float(brier_score_loss(np.asarray(y_true), proba, labels=list(range(proba.shape[1]))))


def reliability(confidence: Any, correct: Any, bins: int = BINS) -> list[dict[str, float]]:
    """Per equal-width bin of ``confidence`` (in [0, 1]): its range, row count, mean confidence and
    the share of ``correct`` rows; empty bins are left out."""
    confidence, correct = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=float)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        inside = which == b
        if inside.any():
            rows.append({"bin": f"{edges[b]:.2f}-{edges[b + 1]:.2f}", "rows": int(inside.sum()),
                         "confidence": float(confidence[inside].mean()), "accuracy": float(correct[inside].mean())})
    return rows


def ece_of(table: list[dict[str, float]]) -> float:
    """Expected calibration error from a :func:`reliability` table."""
    n = sum(r["rows"] for r in table)
    return float(sum(r["rows"] * abs(r["accuracy"] - r["confidence"]) for r in table) / n) if n else float("nan")


def top_label(y_true: Any, proba: Any) -> tuple[np.ndarray, np.ndarray]:
    """Confidence of the predicted (most probable) class and whether it is right, per row."""
    proba = np.asarray(proba, dtype=float)
    return proba.max(axis=1), (proba.argmax(axis=1) == np.asarray(y_true)).astype(float)


def ece(y_true: Any, proba: Any, bins: int = BINS) -> float:
    """Top-label expected calibration error of class probabilities ``proba`` [n, k] (``bins`` bins)."""
    return ece_of(reliability(*top_label(y_true, proba), bins))


def label_ece(Y: Any, proba: Any, bins: int = BINS) -> list[float]:
    """Per label of a 0/1 matrix ``Y`` [n, labels]: the ECE of the probability that it is present."""
    Y, proba = np.asarray(Y, dtype=float), np.asarray(proba, dtype=float)
    return [ece_of(reliability(proba[:, j], Y[:, j], bins)) for j in range(Y.shape[1])]


def reliability_png(curves: dict[str, list[dict[str, float]]], path: str | Path, title: str) -> str:
    """Reliability diagram: accuracy against mean confidence per bin, one line per curve, and the diagonal."""
    from trainflow.tasks.common import plots

    fig = plots._figure((4.8, 4.2))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfectly calibrated")
    for name, table in curves.items():
        ax.plot([r["confidence"] for r in table], [r["accuracy"] for r in table], marker="o", markersize=3,
                label=name)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean predicted probability (bin)")
    ax.set_ylabel("observed frequency (bin)")
    ax.set_title(title)
    if len(curves) <= 12:
        ax.legend(fontsize=7)
    return plots._save(fig, path)


# ---------------------------------------------------------------- temperature scaling (networks)


def fit_temperature(logits: Any, y: Any) -> float:
    """The temperature ``T`` > 0 minimising the log loss of ``softmax(logits / T)`` on ``y`` (integer
    classes): the validation part's logits. A bounded search on ``log T`` (scipy)."""
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    logits, y = np.asarray(logits, dtype=np.float64), np.asarray(y, dtype=np.int64)

    def nll(log_t: float) -> float:
        return float(-log_softmax(logits / np.exp(log_t), axis=1)[np.arange(len(y)), y].mean())

    found = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(found.x))
