"""Branches: one input of a multimodal pipeline, in terms of its own modality.

A branch is one named input read by a registered loader of some modality (image, tabular,
sequence, audio). The modality offers an adapter (:class:`Branch`) through its ``branch()`` hook
(:meth:`trainflow.modality.Modality.branch`): it knows how the modality's loader output looks and
writes a split in the modality's own stored format, so that the modality's own ``fit`` and
``evaluate`` train and score the unimodal model (its preprocessing fitted on training rows only),
and it turns the saved unimodal model back into what fusion needs:

- ``features``: the preprocessed inputs, flattened (early fusion);
- ``tensors`` + ``encoder``: the network inputs and the network without its last layer (intermediate);
- ``proba``: the unimodal class probabilities (late fusion and the branch's score).

Each modality's adapter lives in its own folder (``tasks/<modality>/branch.py``); this module holds
the base class and what they share.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from trainflow.errors import DataError
from trainflow.refs import DataRef, SplitRef, file_digest, load_npz, save_npz


@dataclass
class Items:
    """One input as loaded: its data (the adapter's type), labels as text (or None), the keys
    each item can be joined by (``id``, ``stem``), a predefined test split (or None), and facts."""

    data: Any
    labels: np.ndarray | None
    keys: dict[str, list[str]] = field(default_factory=dict)
    is_test: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    split_keys: np.ndarray | None = None  # the values of the spec's split column or group (holdout.KEY)

    def __len__(self) -> int:
        return len(self.labels) if self.labels is not None else self.size

    @property
    def size(self) -> int:
        return len(self.data)


def stem(name: str) -> str:
    """A file name's stem: ``'a/b/7_jackson_3.wav'`` -> ``'7_jackson_3'``."""
    return Path(str(name)).stem


class Branch:
    """The adapter of one modality (see the module docstring). ``data`` is whatever :meth:`items`
    returns, indexed with :meth:`take`; missing items of a masked input are :meth:`blank` ones.
    ``module`` is the modality's own module (its ``load_model`` and prediction functions): the
    modality hands it over in ``branch()``, so the adapter never imports it."""

    modality: ClassVar[str] = ""
    #: the tensors a network of this modality takes (images: 1; sequences: values and mask)
    n_tensors: ClassVar[int] = 1

    def __init__(self, module: Any):
        self.module = module

    def items(self, loaded: Any, options: dict[str, Any]) -> Items:
        raise NotImplementedError

    def take(self, data: Any, idx: np.ndarray) -> Any:
        return data[idx]

    def blank(self, data: Any, n: int) -> Any:
        """``n`` placeholder items shaped like ``data``'s (zeros), for rows where this input is missing."""
        return np.zeros((n, *data.shape[1:]), dtype=data.dtype)

    def concat(self, parts: list[Any]) -> Any:
        return np.concatenate(parts)

    def save(self, data: Any, path: Path) -> Path:
        path = path.with_suffix(".npz")
        save_npz(path, x=data)
        return path

    def load(self, path: str | Path) -> Any:
        return load_npz(path)["x"]

    def write_split(self, data: Any, labels: np.ndarray, test: np.ndarray, classes: list[str], meta: dict[str, Any],
                    folder: Path) -> SplitRef:
        """The branch's train and test parts in its modality's stored format (present rows only)."""
        raise NotImplementedError

    def proba(self, folder: str | Path, data: Any, classes: list[str]) -> np.ndarray:
        """Class probabilities [n, len(classes)] of the unimodal model saved in ``folder``."""
        raise NotImplementedError

    def features(self, folder: str | Path, data: Any) -> np.ndarray:
        """The preprocessed inputs, one flat row per item (early fusion)."""
        return np.concatenate([t.reshape(len(t), -1).numpy() for t in self.tensors(folder, data)], axis=1)

    def tensors(self, folder: str | Path, data: Any) -> tuple[Any, ...]:
        """The network inputs for ``data``, preprocessed as in training (intermediate fusion)."""
        raise NotImplementedError

    def encoder(self, folder: str | Path, hidden: int, width: int) -> tuple[Any, int]:
        """The unimodal network without its output layer, and the width of what it gives (``hidden``
        and ``width``, the columns of :meth:`features`, serve a modality without a network)."""
        raise NotImplementedError

    def write_new(self, data: Any, keys: list[str], folder: Path, options: dict[str, Any]) -> Path | None:
        """Write ``data`` as a file (or folder) in ``folder`` that :meth:`read_new` reads back with
        ``keys`` as the items' ids (and their stems), so that a join by id or stem lines it up with the
        other inputs (paired promotion scores a champion on a run's test rows this way); ``options``:
        the input's loader options. None (the default): the modality cannot carry keys."""
        return None

    def read_new(self, path: Path, folder: str | Path, options: dict[str, Any]) -> Items:
        """New items to predict for, read as the modality's ``predict`` reads them (``options``: the
        input's loader options in training)."""
        raise NotImplementedError

    def summaries(self, folder: str | Path, data: Any) -> Any:
        """What drift is measured on for ``data``, one row per item: the columns the modality's own
        ``drift_frame`` gives (the unimodal model saved in ``folder`` says how); None where the
        modality does not summarise its items."""
        return None


class NetworkBranch(Branch):
    """A branch whose modality saves a network: its model is loaded with the modality module's
    ``load_model`` and scored with its probability function (``proba_function``)."""

    proba_function: ClassVar[str] = "probabilities"

    def _model(self, folder: str | Path) -> tuple[Any, dict[str, Any]]:
        return self.module.load_model(folder)

    def proba(self, folder, data, classes):
        model, config = self._model(folder)
        scores = getattr(self.module, self.proba_function)(model, config, data, "cpu")
        return aligned(scores, config["classes"], classes)


def encoder_of(net: Any) -> tuple[Any, int]:
    """A copy of ``net`` without its output layer (the last layer of an ``nn.Sequential``, or a
    ``head`` attribute, which becomes the identity), and the width of its output."""
    from torch import nn

    net = copy.deepcopy(net)
    if isinstance(net, nn.Sequential) and isinstance(net[-1], nn.Linear):
        return net[:-1], net[-1].in_features
    head = getattr(net, "head", None)
    if isinstance(head, nn.Linear):
        net.head = nn.Identity()
        return net, head.in_features
    raise DataError(f"The network {type(net).__name__} has no output layer trainflow can remove "
                    "(a final nn.Linear of an nn.Sequential, or a 'head' attribute).")


def aligned(proba: np.ndarray, branch_classes: list[str], classes: list[str]) -> np.ndarray:
    """Probabilities with columns in the order of ``classes`` (a class the branch never saw: 0)."""
    out = np.zeros((len(proba), len(classes)))
    index = {c: i for i, c in enumerate(classes)}
    for j, c in enumerate(branch_classes):
        if str(c) in index:
            out[:, index[str(c)]] = proba[:, j]
    return out


def npz_split(folder: Path, arrays: dict[str, np.ndarray], test: np.ndarray, modality: str,
               meta: dict[str, Any]) -> SplitRef:
    refs = {}
    for part, mask in (("train", ~test), ("test", test)):
        path = folder / f"{part}.npz"
        save_npz(path, **{k: v[mask] for k, v in arrays.items()})
        refs[part] = DataRef(path=str(path), digest=file_digest(path), modality=modality,
                             meta={**meta, "rows": int(mask.sum())})
    return SplitRef(train=refs["train"], test=refs["test"], meta={"notes": []})
