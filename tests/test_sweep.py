"""``trainflow sweep``: grid parsing, task runners, and a real sweep on a two-worker Dask LocalCluster."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from tests.conftest import SPECS
from tests.helpers import complete_runs, flow_run_records
from trainflow.errors import SpecError, TrainflowError
from trainflow.flows import sweep
from trainflow.tasks.common import promote


def test_grid_is_the_product_of_the_values():
    grid = sweep.parse_grid(["model.C=0.1,1,10", "preprocess.resample.method=none,smote"])
    combos = sweep.combinations(grid)
    assert len(combos) == 6 and combos[0] == {"model.C": "0.1", "preprocess.resample.method": "none"}
    with pytest.raises(SpecError, match="KEY=V1,V2"):
        sweep.parse_grid(["model.C"])
    with pytest.raises(SpecError, match="'data' cannot vary"):
        sweep.parse_grid(["data.path=a.csv,b.csv"])


def test_grid_refuses_a_repeated_key_and_a_varying_split():
    # candidates scored on different test splits cannot be ranked; a second --grid of one key replaced the first
    with pytest.raises(SpecError) as err:
        sweep.parse_grid(["model.C=0.1,1", "split.test_size=0.2,0.3", "model.C=5,10"])
    assert err.value.exit_code == 2 and err.value.problems == [
        "--grid split.test_size: a sweep compares models on the same data and split; 'split' cannot vary "
        "(use --set to change it for every candidate).",
        "--grid model.C is given twice (0.1,1 and 5,10): list all its values in one --grid model.C=V1,V2,...."]


def test_every_candidate_is_validated_before_anything_runs():
    with pytest.raises(SpecError) as err:
        sweep.candidate_specs(str(SPECS / "penguins.yaml"), [], sweep.parse_grid(["model.name=svm,svn"]))
    assert "candidate {'model.name': 'svn'}" in str(err.value) and "did you mean 'svm'" in str(err.value)
    # a model chosen by name starts from its own defaults: penguins' logistic-regression options are not knn's
    specs, _ = sweep.candidate_specs(str(SPECS / "penguins.yaml"), [], sweep.parse_grid(["model.name=svm,knn"]))
    assert [s.model.name for s in specs] == ["svm", "knn"]
    with pytest.raises(SpecError, match="--grid train.lr: tabular pipelines do not read the 'train' section"):
        sweep.candidate_specs(str(SPECS / "penguins.yaml"), [], sweep.parse_grid(["train.lr=0.1,0.01"]))
    with pytest.raises(SpecError, match="--grid model.C lists 1 more than once"):
        sweep.parse_grid(["model.C=1,10,1"])


def test_task_runners_are_bounded():
    from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

    threads = sweep.make_task_runner("threads", workers=3)
    assert isinstance(threads, ThreadPoolTaskRunner) and threads._max_workers == 3
    with pytest.raises(SpecError, match="--workers must be at least 1. Got 0."):  # 0 was read as the default
        sweep.make_task_runner("threads", workers=0)
    assert isinstance(sweep.make_task_runner("processes", workers=2), ProcessPoolTaskRunner)
    dask = sweep.make_task_runner("dask", workers=2)
    assert dask.cluster_kwargs["n_workers"] == 2 and dask.cluster_kwargs["threads_per_worker"] == 1
    assert sweep.make_task_runner("dask", address="tcp://10.0.0.5:8786").address == "tcp://10.0.0.5:8786"
    with pytest.raises(SpecError, match="did you mean 'dask'"):
        sweep.make_task_runner("dusk")
    if importlib.util.find_spec("prefect_ray") is None:
        with pytest.raises(TrainflowError, match=r"pip install 'trainflow\[ray\]'"):
            sweep.make_task_runner("ray", address="ray://head:10001")
    else:
        from prefect_ray import RayTaskRunner

        ray = sweep.make_task_runner("ray", address="ray://head:10001")
        assert isinstance(ray, RayTaskRunner) and ray.address == "ray://head:10001"


@pytest.mark.usefixtures("prefect_server")
def test_sweep_on_a_two_worker_dask_cluster_promotes_the_best(tmp_path):
    from prefect.client.orchestration import get_client
    from prefect_dask import DaskTaskRunner

    out = str(tmp_path / "runs")
    grid = ["model.C=0.0005,1", "preprocess.resample.method=none,smote"]
    specs, labels = sweep.candidate_specs(str(SPECS / "penguins.yaml"), [], sweep.parse_grid(grid))
    runner = sweep.make_task_runner("dask", workers=2, dask_processes=False)  # worker threads: fast to start
    assert isinstance(runner, DaskTaskRunner)
    summary = sweep.sweep_pipeline.with_options(task_runner=runner)(specs[0], specs, labels, out=out)

    rows = summary["sweep"]
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
    # chosen on the 5-fold CV score of the training split; only the chosen one has a test score
    assert {r["selection_metric"] for r in rows} == {"balanced_accuracy"}
    best = max(rows, key=lambda r: r["selection_score"])
    assert best["best"] == "yes" and [r["best"] for r in rows].count("yes") == 1
    assert best["model.C"] == "1"  # C=0.0005 barely learns
    assert [r for r in rows if r.get("test_balanced_accuracy") is not None] == [best]
    assert summary["metrics"]["balanced_accuracy"] == best["test_balanced_accuracy"]
    [run] = complete_runs(out, "penguins")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["spec"]["model"]["C"] == 1
    assert metrics["selection"]["method"] == "5-fold cross-validation on the training split"
    assert metrics["selection"]["value"] == best["selection_score"] and metrics["selection"]["candidates"] == 4
    assert "Sweep candidates" in (run / "report.md").read_text()
    assert promote.read_champion(out, "penguins")["run_id"] == run.name

    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(summary["flow_run_id"])
        task_runs, arts = flow_run_records(client, summary["flow_run_id"])
    assert flow_run.name.startswith("sweep-penguins-")
    candidates = [t for t in task_runs if str(t.flow_run_id) == summary["flow_run_id"] and t.name.startswith("candidate")]
    # no limit on the tag here: candidates skip the slot request (a limit keeps it: the next test)
    assert len(candidates) == 4 and not any("trainflow-train" in t.tags for t in candidates)
    assert len(arts["penguins-sweep"].data) > 0 and "selection_score" in arts["penguins-sweep"].data
    assert arts["penguins-sweep-progress"].data == 100.0


@pytest.mark.usefixtures("prefect_server")
def test_tag_concurrency_limit_lets_one_candidate_train_at_a_time(tmp_path):
    """`prefect concurrency-limit create trainflow-train 1` (the same client call) serialises training."""
    from prefect.client.orchestration import get_client

    from trainflow.flows.monitor import TRAIN_TAG

    specs, labels = sweep.candidate_specs(str(SPECS / "penguins.yaml"), ["preprocess.resample.method=none"],
                                          sweep.parse_grid(["model.C=0.5,1,2"]))
    with get_client(sync_client=True) as client:
        client.create_concurrency_limit(tag=TRAIN_TAG, concurrency_limit=1)
    # Prefect remembers "these tags have no limit" for 5 s (prefect.concurrency.services), and the
    # previous tests ran tasks with this tag: forget that now, as a process started after the limit
    # would (instead of sleeping the 5 s out)
    from prefect.concurrency import services

    with services._cache_lock:
        services._no_limits_cache.clear()
    try:
        runner = sweep.make_task_runner("threads", workers=3)
        summary = sweep.sweep_pipeline.with_options(task_runner=runner)(specs[0], specs, labels,
                                                                         out=str(tmp_path / "runs"))
    finally:
        with get_client(sync_client=True) as client:
            client.delete_concurrency_limit_by_tag(TRAIN_TAG)
    with get_client(sync_client=True) as client:
        runs = [t for t in client.read_task_runs() if str(t.flow_run_id) == summary["flow_run_id"]
                and t.name.startswith("candidate")]
    spans = sorted((t.start_time, t.end_time) for t in runs)
    assert len(spans) == 3 and all(TRAIN_TAG in t.tags for t in runs)
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end, "two candidates trained at once despite the trainflow-train limit of 1"


@pytest.mark.usefixtures("prefect_server")
def test_sweep_command_prints_the_candidates_and_the_promotion(tmp_path, capsys, monkeypatch):
    from tests.helpers import run_cli

    out = tmp_path / "runs"
    code, _ = run_cli("sweep", SPECS / "penguins.yaml", "--grid", "model.C=0.0005,1", "--runner", "threads",
                      "--workers", "2", "--out", out, "--set", "preprocess.resample.method=none")
    text = capsys.readouterr().out
    assert code == 0
    assert "model.C=0.0005" in text and "model.C=1" in text and "promotion: first champion" in text
    assert "balanced_accuracy = " in text and text.count("(test balanced_accuracy = ") == 1
    assert promote.read_champion(out, "penguins") is not None
    # without the ray extra (hidden here where it is installed: a real Ray sweep, a local cluster's
    # start-up, is tests/test_sweep_clusters.py's), the command says what to install
    monkeypatch.setitem(sys.modules, "prefect_ray", None)  # its import now raises ImportError
    code, err = run_cli("sweep", SPECS / "penguins.yaml", "--grid", "model.C=1", "--runner", "ray",
                        "--out", tmp_path / "ray-runs", capsys=capsys)
    assert code != 0 and "pip install 'trainflow[ray]'" in err
