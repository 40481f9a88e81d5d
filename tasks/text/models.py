"""scikit-learn text classifiers, each placed after the TF-IDF vectoriser the text modality fits.

A builder takes its config, the seed and ``class_weight`` (``"balanced"`` when the spec's
``preprocess.text.class_weight`` asks for it) and returns an unfitted classifier.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trainflow.registry import component

CLS = ("classification",)
# What a fitted calibrated SVM holds beyond the estimators it builds (listed by saving one with skops).
CALIBRATED = ("sklearn.calibration._CalibratedClassifier", "sklearn.calibration._SigmoidCalibration",
              "sklearn.svm._classes.LinearSVC", "sklearn.preprocessing._label.LabelEncoder")


class LinearOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    C: float = Field(10.0, gt=0, description="Inverse regularisation strength (TF-IDF features are sparse)")


class NbOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alpha: float = Field(0.1, gt=0, description="Additive smoothing")


@component("model", "tfidf_logistic", LinearOptions, tasks=CLS, modality="text")
def tfidf_logistic(config: LinearOptions, seed: int = 0, class_weight: Any = None, task: str = "classification") -> Any:
    """Logistic regression on TF-IDF features (the default text model)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=config.C, class_weight=class_weight, max_iter=2000, random_state=seed)


@component("model", "tfidf_svm", LinearOptions, tasks=CLS, modality="text", trusted_types=CALIBRATED)
def tfidf_svm(config: LinearOptions, seed: int = 0, class_weight: Any = None, task: str = "classification") -> Any:
    """Linear SVM on TF-IDF features, with sigmoid-calibrated probabilities (3-fold)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import LinearSVC

    return CalibratedClassifierCV(LinearSVC(C=config.C, class_weight=class_weight, random_state=seed), cv=3)


@component("model", "tfidf_nb", NbOptions, tasks=CLS, modality="text", class_weight=False)
def tfidf_nb(config: NbOptions, seed: int = 0, class_weight: Any = None, task: str = "classification") -> Any:
    """Complement naive Bayes on TF-IDF features (suited to imbalanced text classes)."""
    from sklearn.naive_bayes import ComplementNB

    return ComplementNB(alpha=config.alpha)
