"""Tokens, vocabulary and word vectors for the neural text models.

:class:`Vocabulary` is an estimator: ``fit`` on the training texts only (already normalised, see
:func:`trainflow.tasks.text.modality.normalise`), state in attributes ending in ``_``. Tokens come from
scikit-learn's ``CountVectorizer`` analyzer (words of one or more letters or digits, or character n-grams inside word
boundaries); the vocabulary keeps the ``max_size`` most frequent tokens seen at least ``min_freq``
times, after the padding (id 0) and out-of-vocabulary (id 1) tokens. ``transform`` gives token ids
[n, T] (padded, cut at ``max_length``) and each text's length, for packed sequences. The state is
plain JSON (saved in the model's ``model.json``).

:func:`read_vectors` reads user-supplied word vectors from a local GloVe-format text file (one word
and its numbers per line); nothing is downloaded.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from trainflow.errors import DataError

PAD, OOV = "<pad>", "<oov>"
WORD = r"(?u)\b\w+\b"


class Vocabulary:
    """Tokenizer and vocabulary fitted on training texts (see the module docstring)."""

    def __init__(self, tokenizer: str = "word", char_ngram: int = 3, max_size: int | None = 20000,
                 min_freq: int = 1, max_length: int = 100):
        self.tokenizer = tokenizer
        self.char_ngram = char_ngram
        self.max_size = max_size
        self.min_freq = min_freq
        self.max_length = max_length

    def analyzer(self) -> Any:
        """scikit-learn's analyzer for the chosen tokens (the texts are normalised beforehand)."""
        from sklearn.feature_extraction.text import CountVectorizer

        if self.tokenizer == "char":
            return CountVectorizer(lowercase=False, analyzer="char_wb",
                                   ngram_range=(self.char_ngram, self.char_ngram)).build_analyzer()
        # scikit-learn's word regex, with one-letter words kept: "u", "i", "2" carry meaning in short texts
        return CountVectorizer(lowercase=False, analyzer="word", token_pattern=WORD).build_analyzer()

    def fit(self, texts: list[str]) -> Vocabulary:
        """Count the tokens of the training texts; keep the most frequent (ties by token, for a stable order)."""
        analyze = self.analyzer()
        counts = Counter(tok for text in texts for tok in analyze(text))
        kept = sorted((t for t, c in counts.items() if c >= self.min_freq), key=lambda t: (-counts[t], t))
        self.tokens_ = [PAD, OOV, *kept[: self.max_size]]
        self.dropped_ = len(counts) - (len(self.tokens_) - 2)
        self.index_ = {t: i for i, t in enumerate(self.tokens_)}
        return self

    def transform(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids [n, T] (int64, 0-padded, at most ``max_length`` tokens) and lengths [n] (at least 1:
        a text with no token is one out-of-vocabulary token)."""
        analyze, index = self.analyzer(), self.index_
        rows = [[index.get(t, 1) for t in analyze(text)[: self.max_length]] or [1] for text in texts]
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        ids = np.zeros((len(rows), int(lengths.max()) if len(rows) else 1), dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = r
        return ids, lengths

    def state(self) -> dict[str, Any]:
        """JSON-ready options and tokens (in id order)."""
        return {"tokenizer": self.tokenizer, "char_ngram": self.char_ngram, "max_size": self.max_size,
                "min_freq": self.min_freq, "max_length": self.max_length, "tokens": self.tokens_}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Vocabulary:
        """The vocabulary saved by :meth:`state`."""
        vocab = cls(state["tokenizer"], state["char_ngram"], state["max_size"], state["min_freq"], state["max_length"])
        if not isinstance(state["tokens"], list) or not all(isinstance(t, str) for t in state["tokens"]):
            raise ValueError("'tokens' must be a list of strings")
        vocab.tokens_, vocab.dropped_ = list(state["tokens"]), 0
        vocab.index_ = {t: i for i, t in enumerate(vocab.tokens_)}
        return vocab


def read_vectors(path: str | Path, wanted: dict[str, int]) -> tuple[np.ndarray, int, int]:
    """Word vectors for the tokens of ``wanted`` (token -> row) from a GloVe-format text file.

    Returns the rows [len(wanted), dim] (zeros where a token has no vector), the dimension and how
    many tokens were found. DataError naming the file for a missing or unreadable file, and the line
    for one that is not a word followed by as many numbers as the first line.
    """
    from trainflow.tasks.common.load import existing_file

    path = existing_file(path, option="preprocess.tokens.vectors", what="word-vectors file")
    found, dim, rows = 0, 0, None
    try:
        with open(path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                parts = line.rstrip("\n").rstrip(" ").split(" ")
                if not line.strip():
                    continue
                if dim == 0:
                    dim = len(parts) - 1
                    if dim < 1:
                        raise _bad_line(path, number, "a word followed by its vector's numbers, separated by spaces")
                    rows = np.zeros((len(wanted), dim), dtype=np.float32)
                if len(parts) != dim + 1:
                    raise _bad_line(path, number, f"a word and {dim} numbers (as on the first line); got "
                                                  f"{len(parts) - 1} values")
                row = wanted.get(parts[0])
                try:
                    vector = np.array(parts[1:], dtype=np.float32)
                except ValueError:
                    raise _bad_line(path, number, "numbers after the word") from None
                if not np.isfinite(vector).all():
                    raise _bad_line(path, number, "finite numbers after the word")
                if row is not None:
                    rows[row] = vector
                    found += 1
    except UnicodeDecodeError as exc:
        raise DataError(f"The word-vectors file '{path}' is not valid UTF-8 text ({exc.reason} at byte {exc.start}) "
                        "(preprocess.tokens.vectors).") from None
    except OSError as exc:
        raise DataError(f"The word-vectors file '{path}' cannot be read: {exc.strerror or exc} "
                        "(preprocess.tokens.vectors).") from None
    if rows is None:
        raise DataError(f"The word-vectors file '{path}' holds no vectors (preprocess.tokens.vectors): expected "
                        "GloVe format, one word and its numbers per line.")
    return rows, dim, found


def _bad_line(path: Path, number: int, expected: str) -> DataError:
    return DataError(f"Line {number} of the word-vectors file '{path}' is not in GloVe format "
                     f"(preprocess.tokens.vectors): expected {expected}.")
