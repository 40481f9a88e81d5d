"""``model.name: text_embedding``: pretrained word embeddings (wordllama) + logistic regression.

The embedding is the ``embeddings`` extra's ``wordllama`` package, whose model ships inside its wheel
(``l2_supercat``: a 32,000-token codebook distilled from LLaMA-2-vocabulary models, MIT licence): a
text is the normalised mean of its tokens' vectors. It is read from the installed package only, never
downloaded; a saved model holds the classifier (skops) and, in its schema, the embedding's name and
size, so predicting embeds the texts again with the same installed model.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sklearn.base import BaseEstimator, TransformerMixin

from trainflow.errors import DataError
from trainflow.registry import component

MODELS = ("l2_supercat",)  # the wordllama models whose weights and tokenizer its wheel holds
BUNDLED_DIM = 256  # the wheel holds the 256-d weights only
DIMS = (64, 128, 256)  # its leading components (Matryoshka-trained): smaller, faster
INSTALL = "pip install 'trainflow[embeddings]'"


class EmbeddingOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    embedding: Literal["l2_supercat"] = Field("l2_supercat", description="The wordllama model (bundled in its wheel)")
    dim: Literal[64, 128, 256] = Field(256, description="Embedding size (the bundled 256-d model's leading components)")
    C: float = Field(1.0, gt=0, description="Inverse regularisation strength of the logistic regression")


@component("model", "text_embedding", EmbeddingOptions, tasks=("classification",), modality="text")
def text_embedding(config: EmbeddingOptions, seed: int = 0, class_weight: Any = None, **_: Any) -> Any:
    """Pretrained word embeddings (wordllama, the 'embeddings' extra) averaged per text + logistic regression."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=config.C, class_weight=class_weight, max_iter=2000, random_state=seed)


def installed() -> bool:
    """Whether the ``embeddings`` extra (wordllama) is installed."""
    try:
        return importlib.util.find_spec("wordllama") is not None
    except ModuleNotFoundError:  # a finder that refuses the name (trainflow.imports.leaving_out)
        return False


def spec_problems(spec: Any) -> list[str]:
    """The extra must be installed for ``text_embedding``."""
    if spec.model.name == "text_embedding" and not installed():
        return [f"model 'text_embedding' needs the wordllama package (the 'embeddings' extra), which is not "
                f"installed: {INSTALL}"]
    return []


@lru_cache(maxsize=2)
def load(name: str, dim: int) -> Any:
    """The bundled wordllama model, built from the two files its wheel ships (the tokenizer config and
    the 256-d safetensors weights) with ``tokenizers`` and ``safetensors`` directly: nothing here can
    reach the network. (wordllama's own ``WordLlama.load`` can download: in 0.4.0.post1 it seeks the
    tokenizer in ``tokenizer/`` while the wheel ships ``tokenizers/``, and falls back to Hugging Face.)
    A missing file means a broken install: DataError naming it."""
    import wordllama
    from safetensors import safe_open
    from tokenizers import Tokenizer

    folder = Path(wordllama.__file__).parent
    tokenizer = folder / "tokenizers" / f"{name}_tokenizer_config.json"
    weights = folder / "weights" / f"{name}_{BUNDLED_DIM}.safetensors"
    for path in (tokenizer, weights):
        if not path.is_file():
            raise DataError(f"The wordllama package lacks '{path}'; reinstall it: {INSTALL}")
    with safe_open(str(weights), framework="np", device="cpu") as f:
        embedding = f.get_tensor("embedding.weight")[:, :dim]
    return wordllama.WordLlamaInference(embedding, Tokenizer.from_file(str(tokenizer)), binary=False)


class WordEmbedding(BaseEstimator, TransformerMixin):
    """Texts -> the normalised mean of their token vectors (nothing to fit; never saved: rebuilt from
    the schema's name and size)."""

    def __init__(self, embedding: str = "l2_supercat", dim: int = 256):
        self.embedding = embedding
        self.dim = dim

    def fit(self, texts: Any, y: Any = None) -> WordEmbedding:
        return self

    def transform(self, texts: Any) -> np.ndarray:
        return np.asarray(load(self.embedding, self.dim).embed(list(texts), norm=True), dtype=np.float64)


def transformer(options: dict[str, Any]) -> WordEmbedding:
    """The embedding step of a spec's ``text_embedding`` model (its options)."""
    return WordEmbedding(options.get("embedding", "l2_supercat"), int(options.get("dim", 256)))


def describe(step: WordEmbedding) -> dict[str, Any]:
    """What the schema saves of the embedding step."""
    return {"package": "wordllama", "embedding": step.embedding, "dim": step.dim}


def from_schema(saved: Any, path: Path) -> WordEmbedding:
    """The embedding step a saved schema names; a name or size we do not ship is a damaged file."""
    if not (isinstance(saved, dict) and saved.get("package") == "wordllama" and saved.get("embedding") in MODELS
            and saved.get("dim") in DIMS):
        raise DataError(f"The saved file '{path}' names an embedding we do not know ({saved!r}); expected "
                        f"wordllama {'/'.join(MODELS)} with dim one of {list(DIMS)}.")
    if not installed():
        raise DataError(f"The model in '{path.parent}' embeds texts with wordllama, which is not installed: {INSTALL}")
    return WordEmbedding(saved["embedding"], saved["dim"])
