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


def forecast_pair(tmp_path: Path, base: dict, champion: str, challenger: str) -> tuple[dict, dict, dict]:
    """Two forecasters of ``base`` published on one split, and the promotion decision between them."""
    mod = modalities.get("forecast")
    cache = str(tmp_path / "cache")
    specs = [spec_from_dict({**base, "model": {"name": name}}) for name in (champion, challenger)]
    split = mod.split(load.load(specs[0].data, cache, "forecast"), specs[0].training_view(), cache)
    old, new = (published(mod, s, split, cache, tmp_path / "runs" / s.model.name, tmp_path / f"plots-{s.model.name}")
                for s in specs)
    return promote.decide(new, old, specs[1].promotion, promote.paired_with(new, old, split, specs[1].promotion, 0)), old, new


@pytest.mark.parametrize("name", ["image", "sequence", "text", "audio", "multimodal"])
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


def test_a_forecaster_champion_forecasts_the_challengers_horizon_from_its_history(tmp_path):
    """One series (40 steps, no season: every fit also backtests the ETS and ARIMA baselines, which a
    seasonal series makes slow): the champion (naive) forecasts the challenger's (drift) test horizon
    from the challenger's training history; the steps are resampled in blocks."""
    import numpy as np

    values = 100 + np.arange(40) + 5 * np.random.default_rng(0).normal(size=40)
    (tmp_path / "series.csv").write_text("t,value\n" + "\n".join(f"{i},{v:.3f}" for i, v in enumerate(values)) + "\n")
    base = {"name": "paired-series", "task": "forecasting", "validation": {"min_rows": 10},
            "data": {"loader": "timeseries_csv", "path": str(tmp_path / "series.csv")},
            "forecast": {"horizon": 4, "season": 1, "origins": 2}}
    decision, old, new = forecast_pair(tmp_path, base, "naive", "drift")
    assert decision["rule"] == "paired", decision.get("fallback")
    c = decision["paired"]
    assert c["rows"] == 4 and "Diebold-Mariano" in c["method"] and "t with 3 df" in c["method"]
    assert c["new"] == pytest.approx(new["metrics"]["rmse"]) and c["old"] == pytest.approx(old["metrics"]["rmse"])
    assert c["new"] != pytest.approx(c["old"]) and c["interval"][0] <= c["difference"] <= c["interval"][1]


def test_a_single_series_window_is_compared_by_diebold_mariano_with_the_hln_correction():
    """One window of 12 steps: the interval is the Diebold-Mariano one (Newey-West variance as statsmodels
    computes it, the HLN factor, t with 11 df); an equally strong challenger is rarely promoted (the
    block bootstrap it replaced promoted 20 in 200), one with a tenth of the error variance often is,
    and a window of two steps gives no interval (the point rule decides, with a warning)."""
    import numpy as np
    from scipy import stats

    sm = pytest.importorskip("statsmodels.api")
    from trainflow.tasks.forecast.paired import _dm

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=12) ** 2, rng.normal(size=12) ** 2
    c = _dm(a, b, "mae", 1000)
    se = sm.OLS(a - b, np.ones(12)).fit(cov_type="HAC", cov_kwds={"maxlags": 3, "use_correction": False}).bse[0]
    half = stats.t.ppf(0.975, 11) * se / np.sqrt((12 + 1 - 8 + 4 * 3 / 12) / 12)
    assert c["interval"] == pytest.approx([np.mean(a - b) - half, np.mean(a - b) + half])
    promoted = {scale: sum(_dm((scale * rng.normal(size=12)) ** 2, rng.normal(size=12) ** 2, "rmse", 1000)
                           ["interval"][1] < 0 for _ in range(100)) for scale in (1.0, np.sqrt(0.1))}
    assert promoted[1.0] <= 5 and promoted[np.sqrt(0.1)] >= 40, promoted  # measured: 2 and 58
    assert _dm(a[:2], b[:2], "rmse", 1000)["interval"] is None


def test_a_panel_champion_forecasts_the_challengers_horizon_resampled_by_series(tmp_path):
    """A panel of six seasonal series with a regressor: the champion (seasonal naive) forecasts each
    series' test horizon from the challenger's (Theta) training history, the regressor's future values in
    the rows after it; per-series scores are paired and series resampled."""
    import numpy as np

    rng = np.random.default_rng(0)
    t = np.arange(48)
    lines = [f"s{i},{step},{50 + 10 * i + 0.5 * step + 8 * np.sin(2 * np.pi * step / 12) + rng.normal():.3f},"
             f"{rng.normal():.3f}" for i in range(6) for step in t]
    (tmp_path / "panel.csv").write_text("id,t,value,x\n" + "\n".join(lines) + "\n")
    base = {"name": "paired-panel", "task": "forecasting", "validation": {"min_rows": 10},
            "data": {"loader": "timeseries_csv", "path": str(tmp_path / "panel.csv"), "id": "id"},
            "forecast": {"horizon": 6, "season": 12, "origins": 1, "exogenous": ["x"]}}  # primary: mean per-series RMSE
    decision, old, new = forecast_pair(tmp_path, base, "seasonal_naive", "theta")
    assert decision["rule"] == "paired", decision.get("fallback")
    c = decision["paired"]
    assert c["series"] == 6 and c["rows"] == 36 and "series" in c["method"]
    assert c["new"] == pytest.approx(new["metrics"]["rmse"]) and c["old"] == pytest.approx(old["metrics"]["rmse"])
    assert c["interval"][0] <= c["difference"] <= c["interval"][1]


def _keyed_pair(tmp_path: Path, name: str, inputs: dict, join: str, model: dict) -> None:
    """Two seeds of a multimodal spec: the champion scores the challenger's test rows under the paired rule."""
    mod = modalities.get("multimodal")
    cache = str(tmp_path / "cache")
    raw = {"data": {"loader": "multimodal", "join": join, "inputs": inputs}, "model": model,
           "train": {"epochs": 2, "batch_size": 8}, "validation": {"min_rows": 10}}
    specs = [spec_from_dict({"name": name, **raw, "seed": seed}) for seed in (0, 1)]
    data = mod.profile(load.load(specs[0].data, cache, "multimodal"), specs[0])
    split = mod.split(data, specs[0].training_view(), cache)
    old, new = (published(mod, s, split, cache, tmp_path / "runs" / f"run{s.seed}", tmp_path / f"plots{s.seed}")
                for s in specs)
    decision = promote.decide(new, old, specs[1].promotion, promote.paired_with(new, old, split, specs[1].promotion, 0))
    assert decision["rule"] == "paired", decision.get("fallback")
    c = decision["paired"]
    assert c["rows"] == split.test.meta["rows"]
    assert c["new"] == pytest.approx(new["metrics"][new["primary_metric"]])
    assert c["old"] == pytest.approx(old["metrics"][old["primary_metric"]])


def test_a_multimodal_champion_joined_by_stem_scores_the_challengers_test_rows(tmp_path):
    """Images (PNG files) and a table joined by file stem: each input's test items are written with the
    joined keys (an .npz with 'names', the table's id column), which predict joins as in training."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    from trainflow.tasks.common.examples import two_class_images

    x, y = two_class_images(40)
    for i in range(40):
        (tmp_path / "imgs" / str(y[i])).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.squeeze(x[i]).astype(np.uint8)).save(tmp_path / "imgs" / str(y[i]) / f"k{i}.png")
    order = np.random.default_rng(0).permutation(40)  # the table's rows in another order: only the stems join them
    pd.DataFrame({"key": [f"k{i}" for i in order], "a": np.random.default_rng(1).normal(size=40) + y[order]}).to_csv(
        tmp_path / "extra.csv", index=False)
    inputs = {"image": {"loader": "image_folder", "path": str(tmp_path / "imgs"), "model": {"width": 4, "dense": 8}},
              "extra": {"loader": "csv", "path": str(tmp_path / "extra.csv"), "id": "key"}}
    _keyed_pair(tmp_path, "paired-stem", inputs, "stem", {"name": "late_fusion"})


def test_audio_joined_by_stem_and_series_joined_by_id_are_scored_on_the_challengers_rows(tmp_path):
    """Clips (WAV files in class folders) and series (a long CSV) each joined to a table by key: their
    test items are written with the keys (clips named by stem, series under their ids), which predict
    joins as in training."""
    import numpy as np
    import pandas as pd
    import soundfile as sf

    rng = np.random.default_rng(0)
    y = np.arange(40) % 2
    t = np.arange(1600) / 8000
    for i in range(40):
        (tmp_path / "clips" / str(y[i])).mkdir(parents=True, exist_ok=True)
        wave = 0.4 * np.sin(2 * np.pi * (300.0, 1200.0)[y[i]] * t) + 0.05 * rng.normal(size=len(t))
        sf.write(tmp_path / "clips" / str(y[i]) / f"k{i}.wav", wave.astype(np.float32), 8000, subtype="PCM_16")
    order = rng.permutation(40)  # the table's rows in another order: only the keys join them
    pd.DataFrame({"key": [f"k{i}" for i in order], "a": rng.normal(size=40) + y[order]}).to_csv(
        tmp_path / "extra.csv", index=False)
    audio = {"loader": "audio_folder", "path": str(tmp_path / "clips"), "sample_rate": 8000,
             "model": {"name": "audio_cnn", "width": 4, "dense": 8, "padding": "same"},
             "preprocess": {"audio": {"duration": 0.2, "n_mels": 16, "n_fft": 256, "hop_length": 128}}}
    table = {"loader": "csv", "path": str(tmp_path / "extra.csv"), "id": "key"}
    _keyed_pair(tmp_path / "audio", "paired-audio-stem", {"speech": audio, "extra": table}, "stem",
                {"name": "late_fusion"})

    rows = [(f"k{i}", step, np.sin(step / (2 + 3 * y[i])) + 0.1 * rng.normal(), y[i]) for i in order
            for step in range(24)]
    pd.DataFrame(rows, columns=["sid", "step", "v", "label"]).to_csv(tmp_path / "series.csv", index=False)
    series = {"loader": "long_csv", "path": str(tmp_path / "series.csv"), "id": "sid", "time": "step",
              "label": "label", "model": {"name": "cnn1d"}}
    _keyed_pair(tmp_path / "series", "paired-series-id", {"signal": series, "extra": table}, "id",
                {"name": "late_fusion"})
