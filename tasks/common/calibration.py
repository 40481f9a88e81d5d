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


def summing_to_one(proba: Any) -> np.ndarray:
    """``proba`` as float64, rows renormalised where they sum to 1 within 1e-5: a float32 softmax
    widened to float64 is rounding, not a wrong model (scikit-learn warns at float64's tolerance);
    rows farther off are left for scikit-learn to report."""
    proba = np.asarray(proba, dtype=np.float64)
    sums = proba.sum(axis=1, keepdims=True)
    return proba / sums if np.allclose(sums, 1.0, atol=1e-5) else proba


def brier(y_true: Any, proba: Any) -> float:
    """Brier score of integer-coded ``y_true`` against class probabilities ``proba`` [n, k]."""
    from sklearn.metrics import brier_score_loss

    proba = summing_to_one(proba)
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


def row_log_loss(logits: Any, y: Any, t: float = 1.0) -> np.ndarray:
    """Each row's log loss under ``softmax(logits / t)`` on integer classes ``y``."""
    from scipy.special import log_softmax

    logits, y = np.asarray(logits, dtype=np.float64), np.asarray(y, dtype=np.int64)
    return -log_softmax(logits / t, axis=1)[np.arange(len(y)), y]


def log_loss_at(logits: Any, y: Any, t: float = 1.0) -> float:
    """Mean log loss of ``softmax(logits / t)`` on integer classes ``y``."""
    return float(row_log_loss(logits, y, t).mean())


def fit_temperature(logits: Any, y: Any) -> float:
    """The temperature ``T`` > 0 minimising the log loss of ``softmax(logits / T)`` on ``y`` (integer
    classes): the validation part's logits. A bounded search on ``log T`` (scipy)."""
    from scipy.optimize import minimize_scalar

    found = minimize_scalar(lambda log_t: log_loss_at(logits, y, float(np.exp(log_t))),
                            bounds=(np.log(T_RANGE[0]), np.log(T_RANGE[1])), method="bounded")
    return float(np.exp(found.x))


#: where :func:`fit_temperature` searches; a fit at either end found no minimum
T_RANGE = (0.05, 20.0)


#: folds of the validation part that check a fitted temperature (:func:`choose_temperature`)
TEMPERATURE_FOLDS = 5


def choose_temperature(logits: Any, y: Any, seed: int = 0, folds: int = TEMPERATURE_FOLDS) -> dict[str, Any]:
    """Fit ``T`` on the validation part's ``logits`` and decide whether to keep it.

    The fitted ``T`` always lowers the log loss of the rows it was fitted on, so that comparison says
    nothing; the check is cross-validated within the validation part: ``T`` fitted on ``folds - 1``
    folds scores the fold left out, and ``T`` is kept (``kept``) only where that held-out log loss is
    below the log loss at ``T = 1`` beyond the noise of the rows (the 95% paired bootstrap interval of
    the per-row gain, 1000 seeded resamples, above 0). A well-calibrated network whose few validation
    errors pull ``T`` one way keeps ``T = 1``; so does a part with no error, or a fit at the end of
    the search range (``no_minimum``: the log loss of rows all right falls as ``T -> 0``). Returns ``{"fitted", "kept", "log_loss_1",
    "log_loss_fitted", "cv_log_loss_fitted", "cv_log_loss_1", "gain_interval", "folds", "rows"}``."""
    from sklearn.model_selection import KFold, StratifiedKFold

    logits, y = np.asarray(logits, dtype=np.float64), np.asarray(y, dtype=np.int64)
    fitted = fit_temperature(logits, y)
    out = {"fitted": fitted, "rows": int(len(y)), "log_loss_1": log_loss_at(logits, y),
           "log_loss_fitted": log_loss_at(logits, y, fitted)}
    k = min(folds, len(y))
    if k < 2:
        return {**out, "kept": False, "folds": 0}
    if (logits.argmax(axis=1) == y).all() or min(abs(np.log(fitted / bound)) for bound in T_RANGE) < 1e-2:
        # no minimum: with no error among these rows the log loss keeps falling as T -> 0 (the search
        # stops at its bound or where the loss underflows to 0), and such a T makes every later mistake
        # near-certain
        return {**out, "kept": False, "folds": 0, "no_minimum": True}
    counts = np.bincount(y)
    splitter = (StratifiedKFold(k, shuffle=True, random_state=seed) if counts[counts > 0].min() >= k
                else KFold(k, shuffle=True, random_state=seed))
    held = np.zeros((2, len(y)))  # the held-out rows' log loss at the other folds' T, and at T = 1
    for fit_rows, test_rows in splitter.split(logits, y):
        t = fit_temperature(logits[fit_rows], y[fit_rows])
        for i, scale in enumerate((t, 1.0)):
            held[i, test_rows] = row_log_loss(logits[test_rows], y[test_rows], scale)
    cv_t, cv_1 = held.mean(axis=1)
    # kept only when better beyond the noise of these rows, as a challenger is promoted: the 95% paired
    # bootstrap interval of the held-out gain (log loss at T = 1 minus at the folds' T) lies above 0
    gain = held[1] - held[0]
    draws = gain[np.random.default_rng(seed).integers(0, len(gain), (1000, len(gain)))].mean(axis=1)
    low, high = (float(v) for v in np.percentile(draws, [2.5, 97.5]))
    return {**out, "kept": bool(low > 0), "cv_log_loss_fitted": float(cv_t), "cv_log_loss_1": float(cv_1),
            "gain_interval": [low, high], "folds": k}
