"""One contract, every registered modality (built-in or plug-in), run without Prefect.

Each modality writes a tiny dataset (``Modality.example``); the spec that uses it validates, and the
stages run in order on it: load + store -> validate -> profile -> split -> fit -> evaluate -> export -> predict.
The checks are what the flow relies on: references point at files whose digest they carry, the
model's files land in the run folder, the primary metric is a number, and prediction gives one row
per new item.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from trainflow import modalities, modality
from trainflow.spec import spec_from_dict
from trainflow.refs import file_digest
from trainflow.registry import REGISTRY
from trainflow.tasks.common import load, metrics

NAMES = REGISTRY.names("modality")


def test_the_builtin_modalities_are_registered():
    assert {"tabular", "image", "sequence", "forecast"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_interface_is_complete(name):
    mod = modalities.get(name)
    assert isinstance(mod, modality.Modality) and mod.name == name
    assert mod.tasks, f"modality '{name}' declares no default model per task"
    for stage in (*modality.STAGES, "example"):
        assert getattr(type(mod), stage) is not getattr(modality.Modality, stage), f"'{name}' lacks {stage}()"
    for task, model in mod.default_models.items():
        comp = REGISTRY.get("model", model, task=task)
        assert comp.modality in (None, name) or name in comp.extra.get("modalities", ())
    for loader in [c for c in REGISTRY.all() if c.kind == "loader" and c.modality == name]:
        assert modalities.modality_of_loader(loader.name) == name


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_on_tiny_data(name, tmp_path):
    mod = modalities.get(name)
    example = mod.example(tmp_path)
    spec = spec_from_dict({"name": f"contract-{name}", **example.spec})
    assert spec.modality == name
    cache = str(tmp_path / "cache")

    data = load.load(spec.data, cache, spec.modality)
    assert data.digest and Path(data.path).exists()
    summary = mod.validate(data, spec, str(tmp_path / "docs"))
    assert summary["rows"] > 0 and summary["evaluated"] > 0
    data = mod.profile(data, spec)
    split = mod.split(data, spec.training_view(), cache)
    for part in (split.train, split.test):
        assert part.meta.get("rows", 1) > 0 and file_digest(part.path) == part.digest
    model = mod.fit(split, spec.training_view(), cache)
    assert Path(model.path).exists() and model.digest

    evaluation = mod.evaluate(model, split, spec, str(tmp_path / "plots"))
    primary = spec.evaluate.primary or metrics.PRIMARY[spec.task]
    assert isinstance(evaluation.metrics[primary], float) and not math.isnan(evaluation.metrics[primary])
    for png in evaluation.plots.values():
        assert Path(png).stat().st_size > 0

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    files = mod.export(model, str(run_dir))
    assert files and all((run_dir / f).is_file() for f in files)
    frame = mod.predict(run_dir, example.predict_input)
    assert len(frame) > 0 and not frame.isna().any().any()
