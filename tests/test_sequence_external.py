"""Defaults on public data that is not in this repository: sktime's installed copies of the UCR set
ItalyPowerDemand (67 train / 1029 test series of 24 steps) and of the ShampooSales series (36
months), run through the modality's stages without Prefect with nothing but the data named.
``normalize: auto`` is also checked on generated data where the level is the class.
(benchmarks/sequence_external.py runs the other bundled sets as real ``trainflow run`` processes.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("sktime", reason="sktime (the timeseries extra) is not installed")

from tests.test_forecast_models import run_stages as forecast_stages  # noqa: E402
from tests.test_sequence_classical import run_stages, write_set  # noqa: E402

#: MiniRocket on ItalyPowerDemand, mean of 30 resamples (Dempster et al. 2021; angus924/minirocket
#: results/results_ucr109_mean.csv)
PUBLISHED_MINIROCKET = 0.960


def sktime_file(*parts: str) -> Path:
    import sktime.datasets

    path = Path(sktime.datasets.__file__).parent / "data" / Path(*parts)
    if not path.is_file():
        pytest.skip(f"this sktime has no {path}")
    return path


def test_default_on_italy_power_demand_is_near_published_minirocket(tmp_path):
    data = {"loader": "ts", "train": str(sktime_file("ItalyPowerDemand", "ItalyPowerDemand_TRAIN.ts")),
            "test": str(sktime_file("ItalyPowerDemand", "ItalyPowerDemand_TEST.ts"))}
    result = run_stages(tmp_path, data, None)  # no model named: the default
    assert result["spec"].model.name == "minirocket"
    acc = result["evaluation"].metrics["accuracy"]
    assert acc >= PUBLISHED_MINIROCKET - 0.03, acc
    assert len(result["test_y"]) == 1029  # the archive's fixed split was kept
    steps = result["model"].meta["steps"]
    # UCR series are already z-normalized: per_series and global tie, and a tie keeps per_series
    assert any(s.startswith("z-normalize: per_series (normalize auto -> per_series: the better leave-one-out")
               for s in steps), steps


def test_auto_normalization_keeps_level_when_it_is_the_class(tmp_path):
    # three classes with the same shape and different levels: per-series z-normalization erases them
    result = run_stages(tmp_path, write_set(tmp_path / "data", 2, unequal=True, level=True),
                        {"name": "minirocket", "num_kernels": 840})
    steps = result["model"].meta["steps"]
    assert any("normalize auto -> global" in s for s in steps), steps
    assert result["evaluation"].metrics["accuracy"] >= 0.9
    assert not any("normalize=global" in n for n in result["evaluation"].notes)  # no advice to do what was done
    fixed = run_stages(tmp_path / "fixed", write_set(tmp_path / "fixed" / "data", 2, unequal=True, level=True),
                       {"name": "minirocket", "num_kernels": 840}, preprocess={"sequence": {"normalize": "per_series"}})
    assert fixed["evaluation"].metrics["accuracy"] < result["evaluation"].metrics["accuracy"]
    assert any("normalize=global" in n for n in fixed["evaluation"].notes)  # the advice when the user fixed it


def test_shampoo_sales_with_defaults_runs_and_beats_naive(tmp_path):
    import pandas as pd

    frame = pd.read_csv(sktime_file("ShampooSales", "ShampooSales.csv"))
    assert len(frame) == 36
    _, model, ev, _, _ = forecast_stages(tmp_path, frame.iloc[:, 0].tolist(), frame.iloc[:, 1].to_numpy())
    notes = model.meta["notes"]
    # 24 training months, horizon 12: the networks leave no backtest origin and are left out, the
    # statistical candidates are compared at the one origin that fits
    assert any(n.startswith("networks left out: a backtest origin would need") for n in notes), notes
    assert any(n.startswith(f"auto chose {model.meta['chosen']}: the lowest mean backtest RMSE over 1 origin")
               for n in notes), notes
    assert ev.metrics["rmse"] < ev.metrics["naive_rmse"], ev.metrics
