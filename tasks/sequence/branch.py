"""The sequence modality as one input of a multimodal pipeline (:class:`trainflow.tasks.common.branch.Branch`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trainflow.refs import save_npz
from trainflow.tasks.common.branch import Items, NetworkBranch, encoder_of, npz_split, stem
from trainflow.tasks.sequence.loaders import SeriesSet, read_any
from trainflow.tasks.sequence.preprocess import SeriesPreprocessor, load_series, pack


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
        path = path.with_suffix(".npz")
        save_npz(path, **pack(SeriesSet(data, None, [str(i) for i in range(len(data))], "")))
        return path

    def load(self, path):
        return load_series(path)["series"]

    def write_split(self, data, labels, test, classes, meta, folder):
        arrays = pack(SeriesSet(data, list(labels), [str(i) for i in range(len(data))], meta.get("source", "")))
        return npz_split(folder, arrays, test, "sequence", {"source": meta.get("source", "")})

    def write_new(self, data, keys, folder, options):
        """A long CSV (one row per series and step) with the keys in the training loader's id column
        (``series_id`` by default), which :func:`read_any` reads back as long with those ids."""
        import pandas as pd

        from trainflow.refs import atomic_write_text

        id_col, time_col = options.get("id") or "series_id", options.get("time") or "time"
        width = data[0].shape[1] if data else 1
        values = options.get("values") or [f"value_{k}" for k in range(width)]
        if len(values) != width or len({id_col, time_col, *values}) != 2 + width:
            return None  # the loader's columns cannot hold these series
        frames = [pd.DataFrame({id_col: key, time_col: np.arange(len(s)), **dict(zip(values, np.asarray(s).T))})
                  for s, key in zip(data, keys)]
        path = Path(folder) / "series.csv"
        atomic_write_text(path, pd.concat(frames, ignore_index=True).to_csv(index=False, sep=options.get("delimiter", ",")))
        return path

    def summaries(self, folder, data):
        from trainflow.tasks.common.drift import signal_summaries

        return signal_summaries(data)

    def tensors(self, folder, data):
        import torch

        x, mask = SeriesPreprocessor.from_state(self._model(folder)[1]["preprocess"]).transform(data)
        return torch.from_numpy(x), torch.from_numpy(mask)

    def features(self, folder, data):
        # time steps after a series' end are zeros, so padding the flat row with zeros (or cutting it)
        # to the training width adds (or drops) late time steps: see fusion.fit_width
        return self.tensors(folder, data)[0].reshape(len(data), -1).numpy()

    def encoder(self, folder, hidden, width):
        return encoder_of(self._model(folder)[0])

    def read_new(self, path, folder, options):
        config = self._model(folder)[1]
        data = read_any(path, config["loader"], config.get("loader_options", {}))
        return Items(data.series, None, {"id": list(data.ids), "stem": [stem(i) for i in data.ids]})
