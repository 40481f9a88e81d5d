"""Text classifiers: scikit-learn models after the TF-IDF vectoriser, and neural networks.

A TF-IDF model's builder takes its config, the seed, ``class_weight`` (``"balanced"`` when the
spec's ``preprocess.text.class_weight`` asks for it) and the task, and returns an unfitted classifier;
for ``task: multilabel`` that is binary relevance (:func:`per_label`: one classifier per label). The neural
models (``text_gru``, ``text_lstm``, ``text_cnn``; marked ``neural=True``) are trained by the shared
loop on token ids (see the end of this module).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from trainflow.registry import component

TASKS = ("classification", "multilabel")  # multi-label: one sigmoid output / one classifier per label
# What a fitted calibrated SVM holds beyond the estimators it builds (listed by saving one with skops).
CALIBRATED = ("sklearn.calibration._CalibratedClassifier", "sklearn.calibration._SigmoidCalibration",
              "sklearn.svm._classes.LinearSVC", "sklearn.preprocessing._label.LabelEncoder")


class LinearOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    C: float = Field(10.0, gt=0, description="Inverse regularisation strength (TF-IDF features are sparse)")


class NbOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alpha: float = Field(0.1, gt=0, description="Additive smoothing")


def per_label(model: Any, task: str) -> Any:
    """``model`` itself, or for ``task: multilabel`` binary relevance: a copy of it per label
    (scikit-learn's one-vs-rest wrapper, which fits a 0/1 label matrix column by column)."""
    if task != "multilabel":
        return model
    from sklearn.multiclass import OneVsRestClassifier

    return OneVsRestClassifier(model)


@component("model", "tfidf_logistic", LinearOptions, tasks=TASKS, modality="text")
def tfidf_logistic(config: LinearOptions, seed: int = 0, class_weight: Any = None, task: str = "classification") -> Any:
    """Logistic regression on TF-IDF features (the default text model)."""
    from sklearn.linear_model import LogisticRegression

    return per_label(LogisticRegression(C=config.C, class_weight=class_weight, max_iter=2000, random_state=seed), task)


@component("model", "tfidf_svm", LinearOptions, tasks=TASKS, modality="text", trusted_types=CALIBRATED)
def tfidf_svm(config: LinearOptions, seed: int = 0, class_weight: Any = None, task: str = "classification") -> Any:
    """Linear SVM on TF-IDF features, with sigmoid-calibrated probabilities (3-fold)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import LinearSVC

    return per_label(CalibratedClassifierCV(LinearSVC(C=config.C, class_weight=class_weight, random_state=seed), cv=3),
                     task)


@component("model", "tfidf_nb", NbOptions, tasks=TASKS, modality="text", class_weight=False)
def tfidf_nb(config: NbOptions, seed: int = 0, class_weight: Any = None, task: str = "classification") -> Any:
    """Complement naive Bayes on TF-IDF features (suited to imbalanced text classes)."""
    from sklearn.naive_bayes import ComplementNB

    return per_label(ComplementNB(alpha=config.alpha), task)


# ---------------------------------------------------------------- neural text models (the shared training loop)
# A builder is called as ``build(config, vocab_size=..., n_classes=..., embedding_dim=...)`` (the shape
# arguments the text modality prepares; ``embedding_dim`` is the word vectors' when a file gives them)
# and returns a ``torch.nn.Module`` taking ``(ids, lengths)``; see tasks/text/networks.py.


class TextNetOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # 64-d embeddings and 64 units train in seconds per epoch on a CPU and separate the SMS demo.
    embedding_dim: int = Field(64, ge=1, description="Embedding size (word vectors from a file bring their own)")
    hidden: int = Field(64, ge=1, description="Hidden units per direction (recurrent) or filters per width (cnn)")
    pool: Literal["mean", "max", "attention"] = Field(
        "max", description="How token states become one vector: mean | max (over real tokens) | attention (learned)")
    dropout: float = Field(0.2, ge=0, lt=1, description="Dropout on embeddings and before the head")


class RecurrentTextOptions(TextNetOptions):
    layers: int = Field(1, ge=1, description="Stacked recurrent layers")
    bidirectional: bool = Field(True, description="Read the texts in both directions")


class CnnTextOptions(TextNetOptions):
    # Kim (2014): parallel filters of 3, 4 and 5 tokens, max-pooled over the text.
    kernels: list[int] = Field([3, 4, 5], min_length=1, description="Widths (tokens) of the parallel convolutions")

    @field_validator("kernels")
    @classmethod
    def _positive(cls, kernels: list[int]) -> list[int]:
        if any(k < 1 for k in kernels):
            raise ValueError(f"every kernel width must be 1 or more; got {kernels}")
        return kernels


def _network(encoder: str, config: TextNetOptions, vocab_size: int, n_classes: int, embedding_dim: int | None) -> Any:
    from trainflow.tasks.text.networks import TextNet

    return TextNet(encoder, vocab_size, n_classes, embedding_dim or config.embedding_dim, config.hidden,
                   layers=getattr(config, "layers", 1), bidirectional=getattr(config, "bidirectional", False),
                   kernels=tuple(getattr(config, "kernels", ())), pool=config.pool, dropout=config.dropout)


NEURAL = dict(tasks=TASKS, modality="text", neural=True, random=True)


@component("model", "text_gru", RecurrentTextOptions, **NEURAL)
def text_gru(config: RecurrentTextOptions, *, vocab_size: int, n_classes: int, embedding_dim: int | None = None,
             **_: Any) -> Any:
    """Embedding + (bi)GRU on packed sequences, mean/max/attention pooling."""
    return _network("gru", config, vocab_size, n_classes, embedding_dim)


@component("model", "text_lstm", RecurrentTextOptions, **NEURAL)
def text_lstm(config: RecurrentTextOptions, *, vocab_size: int, n_classes: int, embedding_dim: int | None = None,
              **_: Any) -> Any:
    """Embedding + (bi)LSTM on packed sequences, mean/max/attention pooling."""
    return _network("lstm", config, vocab_size, n_classes, embedding_dim)


@component("model", "text_cnn", CnnTextOptions, **NEURAL)
def text_cnn(config: CnnTextOptions, *, vocab_size: int, n_classes: int, embedding_dim: int | None = None,
             **_: Any) -> Any:
    """Embedding + 1-D convolutions of several widths (Kim 2014), mean/max/attention pooling."""
    return _network("cnn", config, vocab_size, n_classes, embedding_dim)
