"""Branches: what one input of a multimodal pipeline is, in terms of its own modality.

A branch is one named input read by a registered loader of some modality (image, tabular,
sequence, audio). Its adapter (:class:`Branch`) knows how that modality's loader output looks and
writes a split in the modality's own stored format, so that the modality's own ``fit`` and
``evaluate`` train and score the unimodal model (its preprocessing fitted on training rows only),
and it turns the saved unimodal model back into what fusion needs:

- ``features``: the preprocessed inputs, flattened (early fusion);
- ``tensors`` + ``encoder``: the network inputs and the network without its last layer (intermediate);
- ``proba``: the unimodal class probabilities (late fusion and the branch's score).

Adapters register by modality name (:func:`branch`); a new modality adds one with ``@register``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from trainflow.errors import DataError
from trainflow.refs import DataRef, SplitRef, file_digest, load_npz, save_npz

TARGET = "_target"  # the label column of a tabular branch's split tables (never a user column name)


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


_ADAPTERS: dict[str, type[Branch]] = {}


def register(cls: type[Branch]) -> type[Branch]:
    """Class decorator: make ``cls`` the branch adapter of its ``modality``."""
    _ADAPTERS[cls.modality] = cls
    return cls


def branch(modality: str, where: str = "") -> Branch:
    """The adapter of ``modality``; DataError naming the input when there is none."""
    if modality not in _ADAPTERS:
        raise DataError(f"{where}: {modality} data cannot be a multimodal input yet (inputs can be "
                        f"{', '.join(sorted(_ADAPTERS))}).")
    return _ADAPTERS[modality]()


def supported() -> list[str]:
    """The modalities that can be inputs of a multimodal pipeline."""
    return sorted(_ADAPTERS)


class Branch:
    """The adapter of one modality (see the module docstring). ``data`` is whatever :meth:`items`
    returns, indexed with :meth:`take`; missing items of a masked input are :meth:`blank` ones."""

    modality: ClassVar[str] = ""
    #: the tensors a network of this modality takes (images: 1; sequences: values and mask)
    n_tensors: ClassVar[int] = 1

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

    def read_new(self, path: Path, folder: str | Path, options: dict[str, Any]) -> Items:
        """New items to predict for, read as the modality's ``predict`` reads them (``options``: the
        input's loader options in training)."""
        raise NotImplementedError


class NetworkBranch(Branch):
    """A branch whose modality saves a network: its model is loaded with the modality module's
    ``load_model`` and scored with its probability function (``proba_function``)."""

    proba_function: ClassVar[str] = "probabilities"

    def _modality_module(self) -> Any:
        import importlib

        return importlib.import_module(f"trainflow.tasks.{self.modality}.modality")

    def _model(self, folder: str | Path) -> tuple[Any, dict[str, Any]]:
        return self._modality_module().load_model(folder)

    def proba(self, folder, data, classes):
        model, config = self._model(folder)
        scores = getattr(self._modality_module(), self.proba_function)(model, config, data, "cpu")
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


def _npz_split(folder: Path, arrays: dict[str, np.ndarray], test: np.ndarray, modality: str,
               meta: dict[str, Any]) -> SplitRef:
    refs = {}
    for part, mask in (("train", ~test), ("test", test)):
        path = folder / f"{part}.npz"
        save_npz(path, **{k: v[mask] for k, v in arrays.items()})
        refs[part] = DataRef(path=str(path), digest=file_digest(path), modality=modality,
                             meta={**meta, "rows": int(mask.sum())})
    return SplitRef(train=refs["train"], test=refs["test"], meta={"notes": []})


# ---------------------------------------------------------------- image


@register
class ImageBranch(NetworkBranch):
    """Images (``[n, h, w, c]`` pixels): the image modality's scaling and CNN."""

    modality = "image"

    def items(self, loaded: Any, options: dict[str, Any]) -> Items:
        keys = {"id": list(loaded.files), "stem": [stem(f) for f in loaded.files]} if loaded.files else {}
        return Items(loaded.x, np.asarray(loaded.classes, dtype=object)[loaded.y].astype(str), keys, loaded.is_test,
                     {"max_value": loaded.max_value, "source": loaded.source, "loader_options": options},
                     loaded.keys)

    def write_split(self, data, labels, test, classes, meta, folder):
        index = {c: i for i, c in enumerate(classes)}
        y = np.asarray([index[v] for v in labels], dtype=np.int64)
        n, h, w, c = data.shape
        return _npz_split(folder, {"x": data, "y": y}, test, "image",
                          {"classes": classes, "max_value": meta["max_value"], "shape": [h, w, c],
                           "source": meta["source"], "loader_options": meta["loader_options"]})

    def tensors(self, folder, data):
        from trainflow.tasks.image.modality import to_tensor

        _, config = self._model(folder)
        return (to_tensor(data, config["divisor"], config["mean"], config["std"]),)

    def encoder(self, folder, hidden, width):
        return encoder_of(self._model(folder)[0])

    def read_new(self, path, folder, options):
        from trainflow.tasks.image.modality import read_new_images

        x, names = read_new_images(path, self._model(folder)[1])
        return Items(x, None, {"id": names, "stem": [stem(n) for n in names]})


# ---------------------------------------------------------------- tabular


@register
class TabularBranch(Branch):
    """A table of extra columns: the tabular modality's preprocessing pipeline and model (skops).
    The loader's ``id`` column is a join key and its ``target`` a label, never features."""

    modality = "tabular"

    def items(self, loaded: Any, options: dict[str, Any]) -> Items:
        id_col, target = options.get("id"), options.get("target")
        keys = {}
        if id_col:
            keys = {"id": loaded[id_col].astype(str).tolist(), "stem": [stem(v) for v in loaded[id_col].astype(str)]}
        from trainflow.tasks.common.holdout import KEY

        labels = loaded[target].astype(str).to_numpy() if target else None
        split_keys = loaded[KEY].to_numpy() if KEY in loaded.columns else None
        features = loaded.drop(columns=[c for c in (id_col, target, KEY) if c and c in loaded.columns])
        return Items(features.reset_index(drop=True), labels, keys, None, {"source": options.get("path")},
                     split_keys)

    def take(self, data, idx):
        return data.iloc[idx].reset_index(drop=True)

    def blank(self, data, n):
        import pandas as pd

        def missing(dtype: Any) -> Any:  # numpy integers and booleans cannot hold a gap: missing numbers are NaN
            if pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
                return pd.Series([float("nan")] * n, dtype="float64")
            return pd.Series([None] * n, dtype=dtype)

        return pd.DataFrame({c: missing(data[c].dtype) for c in data.columns})

    def concat(self, parts):
        import pandas as pd

        return pd.concat(parts, ignore_index=True)

    def save(self, data, path):
        from trainflow.refs import save_parquet

        path = path.with_suffix(".parquet")
        save_parquet(path, data)
        return path

    def load(self, path):
        import pandas as pd

        return pd.read_parquet(path)

    def write_split(self, data, labels, test, classes, meta, folder):
        from trainflow.refs import save_parquet

        table = data.assign(**{TARGET: labels})
        refs = {}
        for part, mask in (("train", ~test), ("test", test)):
            path = folder / f"{part}.parquet"
            save_parquet(path, table[mask].reset_index(drop=True))
            refs[part] = DataRef(path=str(path), digest=file_digest(path), modality="tabular",
                                 meta={"target": TARGET, "source": meta.get("source"), "rows": int(mask.sum())})
        return SplitRef(train=refs["train"], test=refs["test"], meta={"notes": []})

    def _model(self, folder):
        from trainflow.tasks.tabular.modality import load_model

        return load_model(folder)

    def _X(self, schema, data):
        missing = [f["name"] for f in schema["features"] if f["name"] not in data.columns]
        if missing:
            raise DataError(f"the table lacks training column(s) {', '.join(map(repr, missing))}.")
        return data[[f["name"] for f in schema["features"]]]

    def proba(self, folder, data, classes):
        from trainflow.tasks.tabular.modality import _predict

        pipe, schema = self._model(folder)
        _, p = _predict(pipe, self._X(schema, data), True)
        return aligned(p, schema["classes"], classes)

    def features(self, folder, data):
        pipe, schema = self._model(folder)
        X = self._X(schema, data)
        for _, step in pipe.steps[:-1]:  # the preprocessing, without the model; samplers act at fit only
            if step is not None and step != "passthrough" and not hasattr(step, "fit_resample"):
                X = step.transform(X)
        return np.asarray(X, dtype=np.float32)

    def tensors(self, folder, data):
        import torch

        return (torch.from_numpy(self.features(folder, data)),)

    def encoder(self, folder, hidden, width):
        from torch import nn

        return nn.Sequential(nn.Linear(width, hidden), nn.ReLU()), hidden  # a table has no network of its own

    def read_new(self, path, folder, options):
        from trainflow.tasks.tabular.modality import read_table

        df = read_table(path)
        df.columns = [str(c).strip() for c in df.columns]
        id_col = options.get("id")
        keys = {}
        if id_col and id_col in df.columns:
            keys = {"id": df[id_col].astype(str).tolist(), "stem": [stem(v) for v in df[id_col].astype(str)]}
        return Items(df.drop(columns=[c for c in (id_col, options.get("target")) if c in df.columns]), None, keys)


# ---------------------------------------------------------------- sequence


@register
class SequenceBranch(NetworkBranch):
    """Series: the sequence modality's missing-value handling, z-normalization and network."""

    modality = "sequence"
    n_tensors = 2
    proba_function = "outputs"

    def items(self, loaded: Any, options: dict[str, Any]) -> Items:
        is_test = np.asarray([f == "test" for f in loaded.fold]) if loaded.fold else None
        labels = np.asarray(loaded.y, dtype=str) if loaded.y is not None else None
        return Items(list(loaded.series), labels, {"id": list(loaded.ids), "stem": [stem(i) for i in loaded.ids]},
                     is_test, {"source": loaded.source, "loader": options.get("loader"), "loader_options": options},
                     None if loaded.keys is None else np.asarray(loaded.keys, dtype=str))

    def take(self, data, idx):
        return [data[int(i)] for i in idx]

    def blank(self, data, n):
        return [np.zeros((1, data[0].shape[1])) for _ in range(n)]

    def concat(self, parts):
        return [s for p in parts for s in p]

    def save(self, data, path):
        from trainflow.tasks.sequence.loaders import SeriesSet
        from trainflow.tasks.sequence.modality import _pack

        path = path.with_suffix(".npz")
        save_npz(path, **_pack(SeriesSet(data, None, [str(i) for i in range(len(data))], "")))
        return path

    def load(self, path):
        from trainflow.tasks.sequence.modality import load_series

        return load_series(path)["series"]

    def write_split(self, data, labels, test, classes, meta, folder):
        from trainflow.tasks.sequence.loaders import SeriesSet
        from trainflow.tasks.sequence.modality import _pack

        arrays = _pack(SeriesSet(data, list(labels), [str(i) for i in range(len(data))], meta.get("source", "")))
        return _npz_split(folder, arrays, test, "sequence", {"source": meta.get("source", "")})

    def tensors(self, folder, data):
        import torch

        from trainflow.tasks.sequence.modality import SeriesPreprocessor

        x, mask = SeriesPreprocessor.from_state(self._model(folder)[1]["preprocess"]).transform(data)
        return torch.from_numpy(x), torch.from_numpy(mask)

    def features(self, folder, data):
        # time steps after a series' end are zeros, so padding the flat row with zeros (or cutting it)
        # to the training width adds (or drops) late time steps: see fusion.fit_width
        return self.tensors(folder, data)[0].reshape(len(data), -1).numpy()

    def encoder(self, folder, hidden, width):
        return encoder_of(self._model(folder)[0])

    def read_new(self, path, folder, options):
        from trainflow.tasks.sequence.loaders import read_any

        config = self._model(folder)[1]
        data = read_any(path, config["loader"], config.get("loader_options", {}))
        return Items(data.series, None, {"id": list(data.ids), "stem": [stem(i) for i in data.ids]})


# ---------------------------------------------------------------- audio


@register
class AudioBranch(NetworkBranch):
    """Clips (float32 mono waves at the loader's rate): the audio modality's features, normalisation
    fitted on the training clips, and network; intermediate fusion uses the network's ``encode``."""

    modality = "audio"
    n_tensors = 2  # features [n, bins, frames] and the frame mask [n, frames]

    def items(self, loaded: Any, options: dict[str, Any]) -> Items:
        from trainflow.alerts import warn

        ok = [i for i, info in enumerate(loaded.info) if info["readable"]]
        if len(ok) < len(loaded.waves):  # data.unreadable: skip; such a clip has no wave to fuse
            warn(f"{len(loaded.waves) - len(ok)} unreadable clip(s) of '{loaded.source}' left out of the join")
        files = [loaded.files[i] for i in ok]
        labels = None if loaded.labels is None else np.asarray([loaded.labels[i] for i in ok], dtype=str)
        return Items([loaded.waves[i] for i in ok], labels, {"id": files, "stem": [stem(f) for f in files]},
                     None if loaded.is_test is None else np.asarray(loaded.is_test)[ok],
                     {"sample_rate": loaded.sample_rate, "source": loaded.source, "loader_options": options},
                     None if loaded.keys is None else np.asarray(loaded.keys)[ok])

    def take(self, data, idx):
        return [data[int(i)] for i in idx]

    def blank(self, data, n):
        return [np.zeros_like(data[0]) for _ in range(n)]  # silence as long as a real clip

    def concat(self, parts):
        return [w for p in parts for w in p]

    def save(self, data, path):
        from trainflow.tasks.audio.modality import pack_waves

        path = path.with_suffix(".npz")
        save_npz(path, **pack_waves(data))
        return path

    def load(self, path):
        from trainflow.tasks.audio.modality import waves_of

        return waves_of(load_npz(path))

    def write_split(self, data, labels, test, classes, meta, folder):
        """The audio modality's stored clips (waves, offsets, labels) for each part."""
        from trainflow.tasks.audio.modality import pack_waves, subset

        arrays = {**pack_waves(data), "labels": np.asarray(labels, dtype=str)}
        refs = {}
        for part, mask in (("train", ~test), ("test", test)):
            path = folder / f"{part}.npz"
            save_npz(path, **subset(arrays, np.flatnonzero(mask)))
            refs[part] = DataRef(path=str(path), digest=file_digest(path), modality="audio",
                                 meta={**meta, "rows": int(mask.sum()), "notes": []})
        return SplitRef(train=refs["train"], test=refs["test"], meta={"notes": []})

    def tensors(self, folder, data):
        import torch

        from trainflow.tasks.audio.modality import features_of

        x, mask = features_of(data, self._model(folder)[1])
        return torch.from_numpy(x), torch.from_numpy(mask)

    def features(self, folder, data):
        return self.tensors(folder, data)[0].reshape(len(data), -1).numpy()  # the frame mask is implied

    def encoder(self, folder, hidden, width):
        from trainflow.tasks.audio.features import AudioFeatures
        from trainflow.tasks.audio.networks import encoder_and_width

        model, config = self._model(folder)
        return encoder_and_width(model, AudioFeatures.model_validate(config["features"]).bins, config["frames"])

    def read_new(self, path, folder, options):
        from trainflow.tasks.audio.modality import new_clips

        waves, names = new_clips(path, self._model(folder)[1])
        return Items(waves, None, {"id": names, "stem": [stem(n) for n in names]})
