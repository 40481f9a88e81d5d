"""Run folders after a crash, a retry or a crowd: a killed run's staging folder is marked failed
(a live one is left alone), publishing twice leaves one folder, paths point where files end up,
and eight runs into one --out all finish with a valid champion."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO, SPECS
from tests.helpers import complete_runs, run_cli, write_spec
from trainflow.spec import load_spec
from trainflow.refs import DataRef, Evaluation, ModelRef, SplitRef
from trainflow.tasks.common import promote
from trainflow.tasks.common import publish as publishing

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="advisory locks (fcntl) only")

OPEN_RUN = """
import os, signal, sys, time
from trainflow.tasks.common.publish import open_run
run = open_run(sys.argv[1], "p")
print(run.staging, flush=True)
if sys.argv[2] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
time.sleep(60)
"""


def start_run(out: Path, how: str) -> tuple[subprocess.Popen, Path]:
    """A process that opens a run in ``out`` and then dies by SIGKILL ("kill") or lives on ("live")."""
    proc = subprocess.Popen([sys.executable, "-c", OPEN_RUN, str(out), how], stdout=subprocess.PIPE, text=True,
                            cwd=REPO)
    return proc, Path(proc.stdout.readline().strip())


def test_killed_run_is_marked_failed_and_a_live_one_is_left_alone(tmp_path):
    out = tmp_path / "runs"
    killed, killed_staging = start_run(out, "kill")
    assert killed.wait(30) == -signal.SIGKILL and killed_staging.is_dir()
    live, live_staging = start_run(out, "live")
    try:
        mine = publishing.open_run(str(out), "p")  # sweeps before it starts
        failed = killed_staging.parent / (killed_staging.name.removeprefix(".incomplete-") + ".failed")
        assert not killed_staging.exists() and "stopped without finishing" in (failed / "error.txt").read_text()
        assert live_staging.is_dir() and mine.staging.is_dir()
    finally:
        live.kill()
        live.wait(30)
    publishing.open_run(str(out), "p")  # the live one has died since: now it is stale too
    assert not live_staging.exists() and mine.staging.is_dir()  # this process's open run is still live
    publishing.release(mine)


def _publish_inputs(tmp_path: Path):
    spec = load_spec(SPECS / "penguins.yaml")
    data = DataRef(path=str(tmp_path / "d.parquet"), digest="d" * 64, modality="tabular", meta={"rows": 10})
    split = SplitRef(train=data, test=data)
    model = ModelRef(path=str(tmp_path), digest="m" * 64, modality="tabular", meta={"steps": ["model"]})
    evaluation = Evaluation(metrics={"balanced_accuracy": 0.9})
    return spec, data, split, model, evaluation


def test_publish_retried_after_the_move_leaves_one_folder(tmp_path):
    run = publishing.open_run(str(tmp_path / "runs"), "penguins")
    spec, data, split, model, evaluation = _publish_inputs(tmp_path)
    validation = {"success": True, "docs_path": f"{run.docs}/index.html"}
    first = publishing.publish(run, spec, data, validation, split, model, evaluation, [], "balanced_accuracy")
    again = publishing.publish(run, spec, data, validation, split, model, evaluation, [], "balanced_accuracy")
    assert first == again and publishing.is_published(run)
    assert [p.name for p in (tmp_path / "runs" / "penguins").iterdir()] == [run.run_id]
    saved = json.loads((run.final / "metrics.json").read_text())
    assert saved["validation"]["docs_path"] == str(run.final / "validation" / "index.html")


@pytest.mark.usefixtures("prefect_server")
def test_validation_error_points_to_the_failed_folder(tmp_path, capsys):
    out = tmp_path / "runs"
    code, err = run_cli("run", SPECS / "penguins.yaml", "--out", out, "--set", "name=penguins-paths",
                        "--set", "validation.min_rows=100000", capsys=capsys)
    assert code == 4
    message = err[err.index("trainflow: error:"):]  # (the task's own log line above names the staging folder)
    report = Path(message.split("Full report: ")[1].split()[0])
    assert report.is_file() and report.parent.parent.name.endswith(".failed")


def test_eight_concurrent_runs_into_one_out_all_finish_with_a_valid_champion(tmp_path, prefect_server):
    from prefect.settings import PREFECT_API_URL

    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 2))
    y = np.where(x[:, 0] + 0.8 * rng.normal(size=80) > 0, "a", "b")
    pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "label": y}).to_csv(tmp_path / "tiny.csv", index=False)
    spec = write_spec(tmp_path / "tiny.yaml", {
        "name": "tiny", "task": "classification",
        "data": {"loader": "csv", "path": "tiny.csv", "target": "label"},
        "validation": {"enabled": False},  # keeps Great Expectations out of the eight processes
        # the point rule: the champion must then be the best of the eight, whatever order the lock gave
        # them (the paired rule keeps a champion a challenger does not beat on its own rows, so which run
        # ends as champion depends on the order, and "the best" is not its invariant)
        "promotion": {"require_validation": False, "rule": "point"},
        "preprocess": {"resample": {"method": "none"}},
        "model": {"name": "logistic_regression"}})
    out = tmp_path / "runs"
    # eight clients on one SQLite-backed test server: on a loaded machine it answers 503 now and then, which
    # Prefect's client retries (5 times by default; more here, as a server under that load needs)
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_LOGGING_LEVEL": "ERROR",
           "PREFECT_CLIENT_MAX_RETRIES": "12"}
    # different regularisation and split seeds, so the runs score differently
    procs = [subprocess.Popen([sys.executable, "-m", "trainflow.flows.cli", "run", str(spec), "--out", str(out),
                               "--set", f"model.C={10.0 ** (i - 5)}", "--set", f"split.seed={i % 3}"],
                              env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(8)]
    started = time.monotonic()
    try:
        outputs = [p.communicate(timeout=max(1.0, started + 300 - time.monotonic()))[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                print(p.communicate()[0][-3000:])
    assert [p.returncode for p in procs] == [0] * 8, "\n".join(outputs)
    print(f"8 concurrent runs took {time.monotonic() - started:.1f} s")

    runs = complete_runs(out, "tiny")
    assert len(runs) == 8 and sorted(p.name for p in (out / "tiny").iterdir()) == sorted(
        [p.name for p in runs] + ["champion.json"])  # no staging or failed folder left
    summaries = {p.name: json.loads((p / "metrics.json").read_text()) for p in runs}
    champion = promote.read_champion(out, "tiny")
    best = max(s["metrics"]["balanced_accuracy"] for s in summaries.values())
    assert champion["run_id"] in summaries and champion["value"] == best
    assert summaries[champion["run_id"]]["metrics"]["balanced_accuracy"] == best


def _finished_run(root: Path, run_id: str, metrics_text: str) -> Path:
    run = root / run_id
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(metrics_text)
    return run


def test_predict_with_a_damaged_metrics_json_exits_3_naming_it(tmp_path, capsys):
    run = _finished_run(tmp_path / "penguins", "20260101-000000-aaaaaa", '{"pipeline": "penguins", "spe')
    (tmp_path / "new.csv").write_text("a,b\n1,2\n")
    code, err = run_cli("predict", run, tmp_path / "new.csv", "--out", tmp_path / "p.csv", capsys=capsys)
    assert code == 3 and "metrics.json" in err and "damaged" in err and "Traceback" not in err, err
    assert not (tmp_path / "p.csv").exists()


def test_a_champion_with_a_damaged_metrics_json_is_replaced_not_crashed_on(tmp_path):
    from trainflow.spec import PromotionSpec

    root = tmp_path / "penguins"
    old = _finished_run(root, "20260101-000000-aaaaaa", "{not json")
    summary = {"primary_metric": "accuracy", "metrics": {"accuracy": 0.5}, "run_id": "20260102-000000-bbbbbb",
               "validation": {"success": True}}
    decision = promote.decide(summary, {"run_id": old.name, "run_dir": str(old)}, PromotionSpec())
    assert decision["promoted"] and "damaged" in decision["reason"]


def test_a_damaged_last_run_never_counts_as_unchanged(tmp_path):
    from trainflow.flows import serve

    _finished_run(tmp_path / "penguins", "20260101-000000-aaaaaa", "")
    assert serve.last_finished_run(tmp_path, "penguins") is None


def test_a_failed_run_holding_a_metrics_json_is_not_the_last_finished_run(tmp_path):
    """A run killed between writing metrics.json and its publishing rename is swept to ``.failed``
    with the file inside; a scheduled run must not take it for the last finished one (and skip)."""
    from trainflow.flows import serve

    _finished_run(tmp_path / "penguins", "20260101-000000-aaaaaa", json.dumps({"run_id": "20260101-000000-aaaaaa"}))
    _finished_run(tmp_path / "penguins", "20260102-000000-bbbbbb.failed", json.dumps({"run_id": "20260102-000000-bbbbbb"}))
    assert serve.last_finished_run(tmp_path, "penguins")["run_id"] == "20260101-000000-aaaaaa"
