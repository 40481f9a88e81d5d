"""The tabular modality as one input of a multimodal pipeline (:class:`trainflow.tasks.common.branch.Branch`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trainflow.errors import DataError
from trainflow.refs import DataRef, SplitRef, file_digest
from trainflow.tasks.common.branch import Branch, Items, aligned, stem

TARGET = "_target"  # the label column of a tabular branch's split tables (never a user column name)


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
        return self.module.load_model(folder)

    def trusted_types(self) -> frozenset[str]:
        """The types a saved tabular model may hold: what an early-fusion classifier's file is checked against."""
        return self.module.trusted_types()

    def _X(self, schema, data):
        missing = [f["name"] for f in schema["features"] if f["name"] not in data.columns]
        if missing:
            raise DataError(f"the table lacks training column(s) {', '.join(map(repr, missing))}.")
        return data[[f["name"] for f in schema["features"]]]

    def proba(self, folder, data, classes):
        pipe, schema = self._model(folder)
        _, p = self.module._predict(pipe, self._X(schema, data), True)
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

    def summaries(self, folder, data):
        return self._X(self.module.read_schema(Path(folder) / self.module.SCHEMA_FILE), data)

    def write_new(self, data, keys, folder, options):
        from trainflow.refs import save_parquet

        id_col = options.get("id")
        if not id_col:
            return None  # a table without data.id has no keys to carry
        path = Path(folder) / "table.parquet"
        save_parquet(path, data.assign(**{id_col: list(keys)}))
        return path

    def read_new(self, path, folder, options):
        df = self.module.read_table(path, self.module.reading_options(options))
        df.columns = [str(c).strip() for c in df.columns]
        id_col = options.get("id")
        keys = {}
        if id_col and id_col in df.columns:
            keys = {"id": df[id_col].astype(str).tolist(), "stem": [stem(v) for v in df[id_col].astype(str)]}
        return Items(df.drop(columns=[c for c in (id_col, options.get("target")) if c in df.columns]), None, keys)
