"""The neural path of the text modality: token ids and a network trained by the shared loop.

:func:`prepare` fits the :class:`~trainflow.tasks.text.vocab.Vocabulary` on the training texts only
(normalised as for TF-IDF), turns them into padded token ids and lengths, and, when the spec names
a word-vectors file, initialises the embedding from it (frozen or fine-tuned). :func:`fit` hands
that to :func:`trainflow.tasks.common.neural.fit` (the one training loop, safetensors weights and a
JSON config holding the vocabulary, the classes and what prediction needs). :func:`probabilities`
gives the class probabilities of new texts from a saved model folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from trainflow.errors import DataError
from trainflow.refs import ModelRef, SplitRef, read_parquet
from trainflow.tasks.common import neural
from trainflow.tasks.common import multilabel as ML
from trainflow.tasks.text.loaders import LABEL, TEXT
from trainflow.tasks.text.vocab import Vocabulary, read_vectors

if TYPE_CHECKING:
    from trainflow.spec import PipelineSpec


class TokenPreprocess(BaseModel):
    """How documents become token ids for the neural text models (``preprocess.tokens``); the
    vocabulary is fitted on the training split only. Normalisation is ``preprocess.text``'s."""

    model_config = ConfigDict(extra="forbid")
    tokenizer: Literal["word", "char"] = Field(
        "word", description="word: runs of letters and digits (regex); char: character n-grams inside word boundaries")
    char_ngram: int = Field(3, ge=1, description="Length of the character n-grams (tokenizer: char)")
    max_size: int | None = Field(20000, ge=1, description="Most frequent tokens kept (besides <pad>, <oov>)")
    min_freq: int = Field(1, ge=1, description="Tokens seen fewer times in the training texts are <oov>")
    # SMS messages have at most ~190 words; 100 tokens keep all but a few whole.
    max_length: int = Field(100, ge=1, description="Tokens kept per text (longer texts are cut)")
    vectors: str | None = Field(None, description="Local GloVe-format text file of word vectors (one word and its "
                                                  "numbers per line) to initialise the embedding; never downloaded",
                                json_schema_extra={"input_file": True})
    freeze_vectors: bool = Field(False, description="Keep the embedding from the vectors file fixed (else fine-tune it)")


def classes_and_targets(labels: Any, classes: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Class indices (-1 for a class not in ``classes``) and the sorted class names."""
    labels = [str(v) for v in labels]
    classes = classes or sorted(set(labels))
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index.get(v, -1) for v in labels], dtype=np.int64), classes


def prepare(split_ref: SplitRef, spec: PipelineSpec) -> neural.Prepared:
    """The vocabulary fitted on the training texts, their token ids, and the network's shape."""
    import torch

    from trainflow.tasks.text.normalise import normalise

    train = read_parquet(split_ref.train.path, keep=False)
    t, lowercase = spec.preprocess.tokens, spec.preprocess.text.lowercase
    texts = normalise(train[TEXT], lowercase)
    labels = split_ref.train.meta.get("labels", [])
    if labels:  # multi-label: the 0/1 matrix, one sigmoid output per label (the neural base)
        y, classes = np.array(train[labels], dtype=np.float32), labels  # a writable copy for torch
    else:
        y, classes = classes_and_targets(train[LABEL])
    vocab = Vocabulary(t.tokenizer, t.char_ngram, t.max_size, t.min_freq, t.max_length).fit(texts)
    ids, lengths = vocab.transform(texts)
    cut = sum(len(vocab.analyzer()(x)) > t.max_length for x in texts)
    tokens = "word tokens (regex)" if t.tokenizer == "word" else f"character {t.char_ngram}-grams"
    steps = [f"normalise: NFKC{', lowercase' if lowercase else ''}", f"tokens: {tokens}",
             f"vocabulary: {len(vocab.tokens_)} tokens incl. <pad> and <oov> from the training texts "
             f"(max_size {t.max_size}, min_freq {t.min_freq}; {vocab.dropped_} rarer tokens are <oov>)",
             f"max_length: {t.max_length} tokens ({cut} of {len(texts)} training texts cut)"]
    init, embedding_dim = None, None
    if t.vectors:
        init, embedding_dim, note = _vector_init(t.vectors, vocab, t.freeze_vectors, spec)
        steps.append(note)
    steps += [f"imbalance: {spec.train.imbalance}"] if spec.train.imbalance != "none" else []
    meta = split_ref.train.meta
    return neural.Prepared(
        inputs=(torch.from_numpy(ids), torch.from_numpy(lengths), torch.from_numpy(y)),
        build={"vocab_size": len(vocab.tokens_), "n_classes": len(classes), "embedding_dim": embedding_dim},
        config={"kind": "text", "task": spec.task, "classes": classes, "lowercase": lowercase,
                "text_column": meta.get("text_column", TEXT), "keep": meta.get("keep", []),
                "reading": meta.get("reading", {}), "vocabulary": vocab.state(),
                **({"labels": labels, **ML.delimited_label_column(spec.data.options())} if labels else {})},
        steps=steps, task="multilabel" if labels else spec.task, init=init,
        meta={"classes": classes, "vocabulary": len(vocab.tokens_)}, part=_part(vocab, lowercase, labels, classes))


def _part(vocab: Vocabulary, lowercase: bool, labels: list[str], classes: list[str]) -> Any:
    """The preparation of another part of the split (the validation part) with the training vocabulary."""
    import torch

    from trainflow.tasks.text.normalise import normalise

    def part(ref: Any) -> tuple[Any, ...]:
        df = read_parquet(ref.path, keep=False)
        ids, lengths = vocab.transform(normalise(df[TEXT], lowercase))
        y = np.array(df[labels], dtype=np.float32) if labels else classes_and_targets(df[LABEL], classes)[0]
        return torch.from_numpy(ids), torch.from_numpy(lengths), torch.from_numpy(y)

    return part


def _vector_init(path: str, vocab: Vocabulary, freeze: bool, spec: PipelineSpec) -> tuple[Any, int, str]:
    """The hook that copies the file's vectors into the embedding (rows of tokens without a vector
    keep their random start; <pad> stays zero), the vectors' dimension, and the report line."""
    import torch

    rows, dim, found = read_vectors(path, vocab.index_)
    options = spec.model.resolve("model", task=spec.task)[1]
    if "embedding_dim" in options.model_fields_set and options.embedding_dim != dim:
        raise DataError(f"The word-vectors file '{path}' holds {dim}-d vectors but 'model.embedding_dim' is "
                        f"{options.embedding_dim}; leave it out or set it to {dim}.")
    have = torch.from_numpy(np.abs(rows).sum(1) > 0)

    def init(model: Any) -> None:
        with torch.no_grad():
            weight = model.embedding.weight
            weight[have] = torch.from_numpy(rows)[have]
            weight[0] = 0.0
        weight.requires_grad_(not freeze)

    note = (f"embedding: {dim}-d word vectors from '{Path(path).name}' for {found} of {len(vocab.tokens_) - 2} "
            f"tokens, {'frozen' if freeze else 'fine-tuned'}")
    return init, dim, note


def fit(split_ref: SplitRef, spec: PipelineSpec, cache_dir: str) -> ModelRef:
    """Vocabulary (training texts only) and the spec's network trained by the shared loop; safetensors + JSON."""
    return neural.fit(prepare(split_ref, spec), split_ref, spec, cache_dir, "text")


def load_model(folder: str | Path) -> tuple[Any, dict[str, Any], Vocabulary]:
    """The network, its JSON config and its vocabulary, from a saved model folder (files read as data)."""
    from trainflow import trust

    model, config = neural.load_network(folder, "text")
    try:
        vocab = Vocabulary.from_state(config["vocabulary"])
        if len(vocab.tokens_) != config["build"]["vocab_size"]:  # the embedding's rows (checked against the weights)
            raise ValueError(f"the vocabulary holds {len(vocab.tokens_):,} tokens and the network "
                             f"{config['build']['vocab_size']!r:.20}")
    except (KeyError, TypeError, ValueError) as exc:
        raise trust.damaged(Path(folder) / neural.CONFIG_FILE, exc) from None
    return model, config, vocab


def probabilities(model: Any, config: dict[str, Any], vocab: Vocabulary, texts: list[str],
                  device: str = "cpu") -> np.ndarray:
    """Class probabilities [n, k] of normalised ``texts`` (multi-label: per label, :func:`neural.probabilities`)."""
    import torch

    from trainflow.tasks.common.training import predict as forward
    from trainflow.devices import resolve_device

    ids, lengths = vocab.transform(texts)
    out = forward(model, (torch.from_numpy(ids), torch.from_numpy(lengths)), batch_size=512,
                  device=resolve_device(device))
    return neural.probabilities(out, config)
