"""Fixtures of the fault catalogue: tiny trained run folders for the ``predict`` cases, made once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import complete_runs, run_cli, write_spec

TABLE = "a,b,c,label\n" + "".join(f"{i % 7},{(i * 3) % 5},{'xy'[i % 2]},{'pq'[i % 3 == 0]}\n" for i in range(40))
WIDE = "label," + ",".join(f"t{j}" for j in range(6)) + "\n" + "".join(
    f"{'ab'[i % 2]}," + ",".join(str((i % 2) * 3 + j % 3) for j in range(6)) + "\n" for i in range(16))
MONTHS = [f"{2000 + i // 12}-{i % 12 + 1:02d}" for i in range(40)]
SERIES = "month,value\n" + "".join(f"{m},{100 + i + 5 * (i % 2)}\n" for i, m in enumerate(MONTHS))
MESSAGES = "text,label\n" + "".join(f"{'win free cash' if i % 2 else 'see you at lunch'} {i},{'spam' if i % 2 else 'ham'}\n"
                                    for i in range(20))

#: one small spec per modality: data file name, its content (text, or arrays for .npz), the spec
RECIPES: dict[str, tuple[str, object, dict]] = {
    "tabular": ("table.csv", TABLE, {"data": {"loader": "csv", "target": "label"}, "split": {"test_size": 0.3}}),
    "sequence": ("wide.csv", WIDE, {"data": {"loader": "wide_csv"},
                                    "model": {"name": "cnn1d", "filters": [4], "kernels": [3]}, "train": {"epochs": 1}}),
    "forecast": ("series.csv", SERIES, {"task": "forecasting", "data": {"loader": "timeseries_csv"},
                                        "forecast": {"horizon": 3, "lookback": 3, "season": 2},
                                        "model": {"name": "gru", "hidden": 4, "front": "none"}, "train": {"epochs": 1}}),
    "image": ("images.npz", "npz", {"data": {"loader": "npz"}, "model": {"name": "cnn"}, "train": {"epochs": 1},
                                    "split": {"test_size": 0.5}}),
    "text": ("msgs.csv", MESSAGES, {"data": {"loader": "text_table", "target": "label"}}),
}


def tiny_images(path: Path, n: int = 16, size: int = 8, classes: int = 2) -> Path:
    """``n`` gray ``size``x``size`` images in an .npz; class k is brighter than class k-1."""
    rng = np.random.default_rng(0)
    y = np.arange(n) % classes
    x = np.clip(rng.normal(60 + 120 * y[:, None, None], 20, (n, size, size)), 0, 255).astype(np.uint8)
    np.savez(path, x=x, y=y)
    return path


def recipe_spec(folder: Path, modality: str, path: str | Path | None = None, **patch) -> Path:
    """Write the data and spec of ``RECIPES[modality]`` into ``folder``; ``path`` replaces the data
    path, and each section of ``patch`` is merged into the recipe's (other values replace)."""
    file, content, raw = RECIPES[modality]
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / file
    if content == "npz":
        tiny_images(data)
    else:
        data.write_text(content)
    spec = {"name": f"good-{modality}", **raw, "validation": {"min_rows": 4}}
    spec["data"] = {**spec["data"], "path": str(path or data)}
    for key, value in patch.items():
        spec[key] = {**spec[key], **value} if isinstance(value, dict) and isinstance(spec.get(key), dict) else value
    return write_spec(folder / "spec.yaml", spec)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, prefect_server) -> Callable[[str], Path]:
    """``trained(modality)``: the run folder of a finished tiny run of that modality (trained once)."""
    done: dict[str, Path] = {}

    def get(modality: str) -> Path:
        if modality not in done:
            folder = tmp_path_factory.mktemp(f"trained-{modality}")
            rc = run_cli("run", recipe_spec(folder, modality), "--out", folder / "runs")[0]
            assert rc == 0, f"the {modality} recipe must train"
            [done[modality]] = complete_runs(folder / "runs", f"good-{modality}")
        return done[modality]

    return get
