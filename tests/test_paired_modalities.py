"""Paired promotion for every modality that can hand its test rows to ``predict`` (issue 22): the
champion's saved model scores the challenger's test rows through ``predict``, and the decision is the
paired rule's, not the point fallback. Each case is the modality's tiny contract example."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainflow import modalities
from trainflow.spec import spec_from_dict
from trainflow.tasks.common import load, promote
from trainflow.tasks.common.metrics import PRIMARY


def published(mod, spec, split, cache: str, folder: Path, plots: Path) -> dict:
    """Fit, evaluate and export a model of ``spec`` on ``split`` into ``folder``; its metrics.json summary."""
    model = mod.fit(split, spec.training_view(), cache)
    metric = spec.evaluate.primary or PRIMARY[spec.task]
    value = mod.evaluate(model, split, spec, str(plots)).metrics[metric]
    folder.mkdir(parents=True)
    mod.export(model, str(folder))
    summary = {"pipeline": spec.name, "run_id": folder.name, "run_dir": str(folder), "modality": spec.modality,
               "task": spec.task, "primary_metric": metric, "metrics": {metric: value},
               "validation": {"success": True}, "spec": spec.model_dump(mode="json")}
    (folder / "metrics.json").write_text(json.dumps(summary))
    return summary


@pytest.mark.parametrize("name", ["image", "sequence", "text", "audio", "forecast", "multimodal"])
def test_the_champion_scores_the_challengers_test_rows(name, tmp_path):
    mod = modalities.get(name)
    example = mod.example(tmp_path)
    cache = str(tmp_path / "cache")
    fast = {"model": {"name": "tfidf_logistic"}} if name == "text" else {}  # tfidf_auto cross-validates four models
    specs = [spec_from_dict({"name": f"paired-{name}", **example.spec, **fast, "seed": seed}) for seed in (0, 1)]
    data = mod.profile(load.load(specs[0].data, cache, specs[0].modality), specs[0])
    split = mod.split(data, specs[0].training_view(), cache)
    old, new = (published(mod, s, split, cache, tmp_path / "runs" / f"run{s.seed}", tmp_path / f"plots{s.seed}")
                for s in specs)
    policy = specs[1].promotion
    decision = promote.decide(new, old, policy, promote.paired_with(new, old, split, policy, seed=0))
    assert decision["rule"] == "paired", decision.get("fallback")
    c = decision["paired"]
    assert c["rows"] == split.test.meta["rows"]
    # the challenger scored through predict on those rows gives its own evaluation's value
    assert c["new"] == pytest.approx(new["metrics"][new["primary_metric"]])
    assert c["old"] == pytest.approx(old["metrics"][old["primary_metric"]])  # the same rows: its own test too
    assert c["interval"][0] <= c["difference"] <= c["interval"][1]


def test_a_panel_champion_forecasts_the_challengers_horizon_resampled_by_series(tmp_path):
    """A panel of six seasonal series: the champion (seasonal naive) forecasts each series' test horizon
    from the challenger's (ETS) training history; per-series scores are paired and series resampled."""
    import numpy as np

    rng = np.random.default_rng(0)
    t = np.arange(48)
    lines = [f"s{i},{step},{50 + 10 * i + 0.5 * step + 8 * np.sin(2 * np.pi * step / 12) + rng.normal():.3f}"
             for i in range(6) for step in t]
    (tmp_path / "panel.csv").write_text("id,t,value\n" + "\n".join(lines) + "\n")
    mod = modalities.get("forecast")
    cache = str(tmp_path / "cache")
    base = {"name": "paired-panel", "task": "forecasting", "validation": {"min_rows": 10},
            "data": {"loader": "timeseries_csv", "path": str(tmp_path / "panel.csv"), "id": "id"},
            "forecast": {"horizon": 6, "season": 12, "origins": 1}}  # primary: rmse, the mean of per-series RMSE
    specs = [spec_from_dict({**base, "model": {"name": name}}) for name in ("seasonal_naive", "ets")]
    split = mod.split(load.load(specs[0].data, cache, "forecast"), specs[0].training_view(), cache)
    old, new = (published(mod, s, split, cache, tmp_path / "runs" / s.model.name, tmp_path / f"plots-{s.model.name}")
                for s in specs)
    decision = promote.decide(new, old, specs[1].promotion, promote.paired_with(new, old, split, specs[1].promotion, 0))
    assert decision["rule"] == "paired", decision.get("fallback")
    c = decision["paired"]
    assert c["series"] == 6 and c["rows"] == 36 and "series" in c["method"]
    assert c["new"] == pytest.approx(new["metrics"]["rmse"]) and c["old"] == pytest.approx(old["metrics"]["rmse"])
    assert c["interval"][0] <= c["difference"] <= c["interval"][1]
