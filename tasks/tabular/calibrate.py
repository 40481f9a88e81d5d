"""Post-hoc calibration of a table classifier (``evaluate.calibrate: sigmoid | isotonic``).

The pipeline is fitted on the training split less a seeded, stratified validation part; the fitted
model is frozen (scikit-learn's ``FrozenEstimator``) and ``CalibratedClassifierCV`` learns the
mapping of its probabilities on the validation part only, which the model never saw. The calibrated
model replaces the pipeline's last step, so it is saved with skops and applied by ``predict`` like
any step; its predictions stay the most probable class.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: share of the training split held out to fit the calibration on
FRACTION = 0.2
#: the types a calibrated model adds to a saved pipeline (trusted when loading it)
TYPES = frozenset({
    "sklearn.calibration.CalibratedClassifierCV", "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration", "sklearn.isotonic.IsotonicRegression",
    "sklearn.frozen._frozen.FrozenEstimator",
})


def validation_part(y: Any, seed: int, fraction: float = FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """Seeded training and validation row positions, stratified when every class has 2+ rows."""
    from sklearn.model_selection import train_test_split

    _, counts = np.unique(y, return_counts=True)
    stratify = y if counts.min() >= 2 else None
    tr, va = train_test_split(np.arange(len(y)), test_size=fraction, random_state=seed, stratify=stratify)
    return np.sort(tr), np.sort(va)


def transform(pipe: Any, X: Any) -> Any:
    """``X`` through the pipeline's steps before the model (samplers act at fit time only)."""
    for _, step in pipe.steps[:-1]:
        if step is None or step == "passthrough" or hasattr(step, "fit_resample"):
            continue
        X = step.transform(X)
    return X


def calibrate(pipe: Any, X_val: Any, y_val: np.ndarray, method: str) -> str:
    """Replace the model of ``pipe`` (fitted without the validation rows ``X_val``/``y_val``) with
    the frozen model calibrated by ``method`` on them; returns the report's note."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    missing = sorted(set(np.unique(pipe.steps[-1][1].classes_).tolist()) - set(np.unique(y_val).tolist()))
    if missing:  # a class too rare to reach the validation part: its probabilities cannot be mapped
        return (f"calibration skipped: the validation part of {len(y_val)} training rows has no row of "
                f"class code(s) {missing}; the model was fitted on the other training rows")
    calibrated = CalibratedClassifierCV(FrozenEstimator(pipe.steps[-1][1]), method=method)
    calibrated.fit(transform(pipe, X_val), y_val)
    pipe.steps[-1] = (pipe.steps[-1][0], calibrated)
    return f"calibration: {method}, fitted on a validation part of {len(y_val)} training rows held out from the model's fit"
