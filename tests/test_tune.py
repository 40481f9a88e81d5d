"""``trainflow tune``: the space is checked like a spec, a network's hopeless trial is pruned by
epoch, and a tune killed mid-way resumes from its SQLite study without repeating finished trials."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SPECS
from tests.helpers import complete_runs, run_cli, write_spec
from trainflow.errors import SpecError, TrainflowError
from trainflow.tasks.common import promote, tuning

optuna = pytest.importorskip("optuna")
BIN = Path(sys.executable).parent


def test_space_items_parse_and_bad_ones_name_the_entry():
    space = tuning.parse_space(["model.C=loguniform:1e-3:1e2", "model.name=choice:svm,logistic_regression",
                                "train.epochs=int:1:5"], {"model.C": "float:0:1"})
    assert [(p.key, p.kind) for p in space] == [("model.C", "log"), ("model.name", "choice"), ("train.epochs", "int")]
    assert space[0].low == 1e-3 and space[1].choices == ("svm", "logistic_regression")
    for item, phrase in [("model.C=loguniform:1e2:1e-3", "low 100 is above high 0.001"),
                         ("model.C=loguniform:0:1", "log scale needs low > 0"),
                         ("model.C=normal:0:1", "did you mean"),
                         ("model.C", "KEY=KIND:ARGS"),
                         ("data.path=choice:a.csv,b.csv", "'data' cannot vary"),
                         ("train.epochs=int:1.5:3", "whole numbers")]:
        with pytest.raises(SpecError, match=phrase):
            tuning.parse_space([item])
    with pytest.raises(SpecError, match="tune needs a space"):
        tuning.parse_space([])


def test_a_bad_space_is_a_spec_error_naming_it(capsys):
    path = str(SPECS / "penguins.yaml")
    with pytest.raises(SpecError) as err:
        tuning.check_space(path, [], tuning.parse_space(["model.Cee=float:0.1:1",
                                                         "model.name=choice:svm,svn"]))
    text = str(err.value)
    assert "tune space model.Cee=0.1" in text and "tune space model.name=svn" in text and "did you mean 'svm'" in text
    code, stderr = run_cli("tune", path, "--trials", "2", "--space", "model.C=loguniform:10:1", capsys=capsys)
    assert code == 2 and "tune space 'model.C': low 10 is above high 1" in stderr and "Traceback" not in stderr
    # a section only networks read: a table's trials would all train the same model
    with pytest.raises(SpecError, match="tune space train.lr: tabular pipelines do not read the 'train' section"):
        tuning.check_space(path, [], tuning.parse_space(["train.lr=loguniform:1e-4:1e-2"]))
    with pytest.raises(SpecError, match="do not read the 'preprocess.audio' section"):
        tuning.check_space(path, [], tuning.parse_space(["preprocess.audio.n_mels=int:16:64"]))
    tuning.check_space(str(SPECS / "av_digits.yaml"), [], tuning.parse_space(["preprocess.audio.n_mels=int:16:32"]))
    # a conditional space: n_components is an option of PCA, which another entry chooses
    tuning.check_space(path, [], tuning.parse_space(["preprocess.reduce.method=choice:pca",
                                                     "preprocess.reduce.n_components=float:0.5:0.9"]))
    # ... but an option that none of the chosen models has is refused, not left to fail every trial
    with pytest.raises(SpecError, match="no values of the other entries make a valid spec with it .*'model.C' is not a "
                                        "known option"):
        tuning.check_space(path, [], tuning.parse_space(["model.name=choice:random_forest,knn",
                                                         "model.C=loguniform:0.01:1"]))


@pytest.mark.usefixtures("prefect_server")
def test_a_hopeless_network_trial_is_pruned_by_epoch(tmp_path):
    """Two trials are queued: lr 0.01 learns the two-class images, lr 1e-7 does not move; with one
    start-up trial the median pruner stops the second after its first epoch, and the report counts it."""
    from trainflow.flows.tune import tune_pipeline
    from trainflow.spec import load_spec
    from trainflow.tasks.common.selection import selection_overrides
    from trainflow.tasks.image.modality import two_class_images

    x, y = two_class_images(60)
    np.savez(tmp_path / "images.npz", x=x, y=y)
    path = write_spec(tmp_path / "tiny.yaml", {
        "name": "tiny", "task": "classification", "data": {"loader": "npz", "path": str(tmp_path / "images.npz")},
        "validation": {"min_rows": 10}, "model": {"width": 4, "dense": 8},
        "train": {"epochs": 3, "batch_size": 8, "val_fraction": 0.25, "checkpoint": False},
        "evaluate": {"primary": "accuracy"}, "tune": {"startup_trials": 1}})
    space_items = ["train.lr=loguniform:1e-7:1e-1"]
    spec = load_spec(path)
    space = tuning.parse_space(space_items)
    out = tmp_path / "runs"
    study = tuning.open_study(load_spec(path, selection_overrides(spec)), space, str(out / ".cache"))
    study.enqueue_trial({"train.lr": 0.01})
    study.enqueue_trial({"train.lr": 1e-7})

    summary = tune_pipeline(spec, str(path), [], space_items, 2, out=str(out), workers=1)
    rows = {r["trial"]: r for r in summary["tune"]["trials"]}
    assert rows[0]["state"] == "complete" and rows[0]["steps_run"] == 3
    assert rows[1]["state"] == "pruned" and rows[1]["steps_run"] == 1 and rows[1]["steps_max"] == 3
    assert summary["tune"]["pruned_steps"] == 2 and summary["tune"]["steps"] == 6
    assert summary["tune"]["best_trial"] == 0
    [run] = complete_runs(out, "tiny")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["spec"]["train"]["lr"] == 0.01
    assert metrics["selection"]["metric"] == "val_loss" and "validation part" in metrics["selection"]["method"]
    report = (run / "report.md").read_text()
    assert "Tune trials" in report and "pruned" in report
    assert promote.read_champion(out, "tiny")["run_id"] == run.name


def _finished(storage: str) -> list:
    S = optuna.trial.TrialState
    [summary] = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    return study.get_trials(deepcopy=False, states=(S.COMPLETE, S.PRUNED))


def _finished_count(db: Path) -> int:
    """Finished trials in the study file, read-only (opening it with Optuna would race the tune's own
    creation of the tables)."""
    import sqlite3

    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return con.execute("SELECT count(*) FROM trials WHERE state IN ('COMPLETE', 'PRUNED')").fetchone()[0]
    except sqlite3.OperationalError:  # the tables are not there yet, or the file is locked
        return 0


@pytest.mark.usefixtures("prefect_server")
def test_a_killed_tune_resumes_without_repeating_finished_trials(tmp_path):
    """`trainflow tune` (its own process) is killed (SIGKILL) once 3 trials are finished; run again
    with the same --trials 6, it runs only the missing ones: the first trials are kept as they were."""
    from prefect.settings import get_current_settings

    out = tmp_path / "runs"
    argv = [str(BIN / "trainflow"), "tune", str(SPECS / "penguins.yaml"), "--trials", "6", "--workers", "1",
            "--space", "model.C=loguniform:1e-4:1e2", "--out", str(out), "--set", "preprocess.resample.method=none"]
    env = {**os.environ, "PREFECT_API_URL": str(get_current_settings().api.url)}
    storage = f"sqlite:///{(out / '.cache' / 'tune' / 'penguins.sqlite3').resolve()}"
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while _finished_count(out / ".cache" / "tune" / "penguins.sqlite3") < 3:
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "3 trials did not finish in time"
            time.sleep(0.2)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    before = {t.number: (t.params, t.datetime_complete) for t in _finished(storage)}
    assert 3 <= len(before) < 6 and not complete_runs(out, "penguins")

    second = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    after = _finished(storage)
    assert len(after) == 6  # six in all: the killed run's finished trials count, none ran twice
    assert {t.number: (t.params, t.datetime_complete) for t in after if t.number in before} == before
    values = [t.params["model.C"] for t in after]
    assert len(set(values)) == 6  # the resumed sampler does not draw the first run's points again
    [run] = complete_runs(out, "penguins")
    complete = [t for t in after if t.state.name == "COMPLETE"]  # pruned trials are not candidates
    assert json.loads((run / "metrics.json").read_text())["selection"]["candidates"] == len(complete)


@pytest.mark.usefixtures("prefect_server")
def test_tune_trials_run_as_prefect_tasks_on_the_dask_runner(tmp_path):
    """The sweep's Dask runner (a local cluster of two worker threads, quick to start) runs a tune's
    trials: each is a Prefect task run of the flow run, executed on a Dask worker, and the study holds
    every trial."""
    from prefect.client.orchestration import get_client

    from tests.helpers import flow_run_records
    from trainflow.flows import sweep
    from trainflow.flows.tune import tune_pipeline
    from trainflow.spec import load_spec

    path, fast = str(SPECS / "penguins.yaml"), ["preprocess.resample.method=none"]
    space_items, out = ["model.C=loguniform:1e-2:1e2"], tmp_path / "runs"
    runner = sweep.make_task_runner("dask", workers=2, dask_processes=False)
    summary = tune_pipeline.with_options(task_runner=runner)(load_spec(path, fast), path, fast, space_items, 3,
                                                             out=str(out), workers=2)
    storage = f"sqlite:///{(out / '.cache' / 'tune' / 'penguins.sqlite3').resolve()}"
    trials = _finished(storage)
    assert sorted(t.number for t in trials) == [0, 1, 2] and all(t.state.name == "COMPLETE" for t in trials)
    assert all("Dask-Default-Threads" in t.user_attrs["thread"] for t in trials), [t.user_attrs["thread"] for t in trials]
    assert len(summary["tune"]["trials"]) == 3
    with get_client(sync_client=True) as client:
        task_runs, _ = flow_run_records(client, summary["flow_run_id"])
    ran = [t for t in task_runs if t.name.startswith("trial") and t.state_type.value == "COMPLETED"]
    assert len(ran) == 3
    [run] = complete_runs(out, "penguins")
    assert json.loads((run / "metrics.json").read_text())["selection"]["candidates"] == 3


@pytest.mark.usefixtures("prefect_server")
def test_a_second_tune_of_a_live_study_is_refused(tmp_path, capsys):
    """While one process tunes a pipeline (it holds the study's lock), `trainflow tune` of the same
    pipeline and cache exits non-zero naming it, writes no run, and leaves the study alone: opening
    it would have marked the live tune's running trials failed."""
    out = tmp_path / "runs"
    cache = str(out / ".cache")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from trainflow.tasks.common import tuning; "
         "tuning.lock_study(sys.argv[1], 'penguins'); print('held', flush=True); time.sleep(120)", cache],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, _ = run_cli("tune", SPECS / "penguins.yaml", "--trials", 2, "--space", "model.C=loguniform:1e-2:1e2",
                          "--out", out)
        text = "".join(capsys.readouterr())
    finally:
        holder.kill()
        holder.wait()
    assert code != 0 and "another trainflow tune of pipeline 'penguins'" in text and "Traceback" not in text
    assert not (out / "penguins").exists()  # no run folder, staged or failed
    assert not tuning.study_path(cache, "penguins").exists()  # the study was never opened
    tuning.lock_study(cache, "penguins")  # free again once the holder is gone
    tuning.release_study(cache, "penguins")


def test_a_study_lock_file_that_is_a_link_is_refused(tmp_path):
    cache = str(tmp_path / ".cache")
    lock = Path(f"{tuning.study_path(cache, 'p').resolve()}.lock")
    lock.parent.mkdir(parents=True)
    lock.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(TrainflowError, match="lock file .* cannot be opened"):
        tuning.lock_study(cache, "p")
    assert not (tmp_path / "elsewhere").exists()  # nothing created through the link



@pytest.mark.usefixtures("prefect_server")
def test_a_space_whose_trials_all_fail_stops_with_the_reason(tmp_path, capsys, monkeypatch):
    """Bounds the spec takes with draws between them it does not (between a share 0.99 and 7 components,
    3.2 is neither): the tune stops after its first trials fail, saying why, not after more than asked."""
    out = tmp_path / "runs"
    code, _ = run_cli("tune", SPECS / "penguins.yaml", "--trials", 2, "--set", "preprocess.reduce.method=pca",
                      "--space", "preprocess.reduce.n_components=float:0.99:7", "--out", out)
    text = "".join(capsys.readouterr())
    assert code != 0 and "2 trial(s) failed and 0 finished; the last: trial 1" in text and "n_components" in text, text
    assert "Traceback" not in text and not complete_runs(out, "penguins")
    from trainflow import resources

    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(14)), raising=False)
    assert resources.current() == 14  # the trials' thread count is not left behind by the failed tune
