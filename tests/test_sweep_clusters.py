"""``trainflow sweep`` on real clusters started here: a Dask scheduler with two ``dask worker``
processes, and a local Ray head (``ray start --head``; skipped without the ``ray`` extra).

Each candidate records the ``host:pid`` that trained it; the tests check those pids belong to the
cluster's processes (not this one), that the results and the champion land in the shared ``--out``,
and that the session's Prefect server holds the candidates' task runs. Every process started here
runs in its own session and is stopped by pid in the fixture's finalizer; every wait has a deadline.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import psutil
import pytest

from tests.conftest import SPECS
from tests.helpers import complete_runs, flow_run_records
from tests.test_e2e_server import BIN, _free_port, _wait
from trainflow.tasks.common import promote

CLUSTER_START_S = 90  # two worker processes importing dask on 2 shared, busy CPUs
SWEEP_S = 240


def _cluster_env(**extra: str) -> dict[str, str]:
    """This environment plus the session server's API URL: workers report their task runs there."""
    from prefect.settings import get_current_settings

    return {**os.environ, "PREFECT_API_URL": str(get_current_settings().api.url), "RAY_USAGE_STATS_ENABLED": "0",
            **extra}


def _start(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / argv[0]), *argv[1:]], env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def _stop(procs: list[subprocess.Popen], first: signal.Signals = signal.SIGTERM, grace: float = 30) -> None:
    """Signal each process we started (it stops its children), then SIGKILL whatever of its tree is left.

    Only the started processes get the first signal: ``ray start --block`` drains its node through
    the GCS, which must still be up; Ray's workers live in process groups of their own.
    """
    trees = []
    for proc in procs:
        try:
            trees += [proc, *(psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else [])]
        except psutil.NoSuchProcess:
            trees.append(proc)
        if proc.poll() is None:
            proc.send_signal(first)
    for proc in procs:
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    for p in trees:
        try:
            p.kill()
        except (psutil.NoSuchProcess, ProcessLookupError):
            pass
    for proc in procs:
        proc.wait(10)


def _tree_pids(procs: list[subprocess.Popen]) -> set[int]:
    pids = set()
    for proc in procs:
        try:
            pids |= {proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(recursive=True))}
        except psutil.NoSuchProcess:
            pass
    return pids


def _sweep_and_check(runner: str, address: str, name: str, out: Path, cluster_pids, env: dict[str, str]) -> None:
    """``trainflow sweep`` (its own process, as a user runs it) of two candidates on ``address``;
    checks where they ran and what was left in ``out`` and on the Prefect server."""
    from prefect.client.orchestration import get_client

    argv = ["sweep", str(SPECS / "penguins.yaml"), "--grid", "model.C=0.0005,1", "--runner", runner,
            "--address", address, "--out", str(out), "--set", f"name={name}",
            "--set", "preprocess.resample.method=none"]
    sweep = subprocess.Popen([str(BIN / "trainflow"), *argv], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = sweep.communicate(timeout=SWEEP_S)
    finally:
        _stop([sweep])
    assert sweep.returncode == 0, output[-5000:]
    [run] = complete_runs(out, name)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["spec"]["model"]["C"] == 1  # C=0.0005 barely learns
    assert promote.read_champion(out, name)["run_id"] == run.name
    assert "Sweep candidates" in (run / "report.md").read_text()

    with get_client(sync_client=True) as client:
        task_runs, arts = flow_run_records(client, metrics["flow_run_id"])
    candidates = [t for t in task_runs if t.name.startswith("candidate")]
    assert len(candidates) == 2 and all(t.state.is_completed() for t in candidates), \
        [(t.name, t.state) for t in candidates]
    rows = json.loads(arts[f"{name}-sweep"].data)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    ran_on = {r["ran_on"] for r in rows}
    pids = {int(r.rsplit(":", 1)[1]) for r in ran_on}
    assert sweep.pid not in pids, f"candidates ran in the sweep's own process, not on the cluster: {ran_on}"
    assert pids <= cluster_pids(), f"candidates ran outside the cluster's processes: {ran_on}"


@pytest.fixture
def dask_cluster(prefect_server, tmp_path):
    """``dask scheduler`` on a free port of 127.0.0.1 and two single-threaded ``dask worker`` processes."""
    from distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = [tmp_path / "scheduler.log", tmp_path / "worker-0.log", tmp_path / "worker-1.log"]
    env = _cluster_env()
    procs = []
    try:
        procs.append(_start(["dask", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                            logs[0], env))
        for i in (0, 1):
            procs.append(_start(["dask", "worker", address, "--name", f"sweep-worker-{i}", "--nworkers", "1",
                                 "--nthreads", "1", "--no-dashboard", "--local-directory", str(tmp_path / f"w{i}")],
                                logs[1 + i], env))

        def two_workers() -> bool:
            try:
                with Client(address, timeout=5) as client:
                    return len(client.scheduler_info()["workers"]) == 2
            except OSError:
                return False

        _wait("the Dask scheduler and its two workers", two_workers, CLUSTER_START_S, logs)
        yield address, lambda: _tree_pids(procs[1:]), env
    finally:
        _stop(procs, signal.SIGINT)


def test_sweep_on_a_dask_scheduler_with_worker_processes(dask_cluster, tmp_path):
    from distributed import Client

    address, worker_pids, env = dask_cluster
    _sweep_and_check("dask", address, "cluster-dask", tmp_path / "shared-runs", worker_pids, env)
    with Client(address, timeout=10) as client:  # the scheduler's workers are the ones started here
        names = {w["name"] for w in client.scheduler_info()["workers"].values()}
    assert names == {"sweep-worker-0", "sweep-worker-1"}


def _ray_worker_pids(temp_dir: str) -> set[int]:
    """Pids of every Ray worker the cluster under ``temp_dir`` ran: a job's workers exit with its
    driver, but their log files (``worker-<id>-<job>-<pid>.out``) stay in the session's logs."""
    logs = Path(temp_dir).glob("session_*/logs/*")
    name = re.compile(r"(?:python-core-)?worker-.*[-_](\d+)\.(?:out|err|log)")
    return {int(m[1]) for p in logs if (m := name.fullmatch(p.name))}


@pytest.fixture
def ray_cluster(prefect_server, tmp_path):
    """``ray start --head --block`` on a free port of 127.0.0.1 with 2 CPUs and its own temp dir.

    With token authentication and a token of its own, given to the head and to the sweep (the
    driver); without RAY_AUTH_MODE, a ``~/.ray/auth_token`` left by any earlier ``ray.init()``
    would switch the head to token mode while a driver given an address connects without one.
    """
    pytest.importorskip("prefect_ray", reason="the Ray test needs the ray extra: "
                                              "pip install -c constraints.txt -e '.[ray]'")
    port = _free_port()
    env = _cluster_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    # Ray's unix sockets live under --temp-dir, whose path must stay short (pytest's tmp_path may not).
    temp = tempfile.mkdtemp(prefix="tfray-")
    log = tmp_path / "ray.log"
    proc = _start(["ray", "start", "--head", "--block", "--port", str(port), "--node-ip-address", "127.0.0.1",
                   "--num-cpus", "2", "--include-dashboard=false", "--disable-usage-stats", "--temp-dir", temp,
                   "--object-store-memory", str(100 * 2**20),
                   "--ray-client-server-port", str(_free_port()),
                   "--dashboard-agent-listen-port", str(_free_port())], log, env)
    try:
        _wait("the Ray head", lambda: proc.poll() is not None or "Ray runtime started" in log.read_text(),
              CLUSTER_START_S, [log])
        assert proc.poll() is None, log.read_text()[-3000:]
        yield f"127.0.0.1:{port}", lambda: _tree_pids([proc]) | _ray_worker_pids(temp), env
    finally:
        _stop([proc])
        shutil.rmtree(temp, ignore_errors=True)


def test_sweep_on_a_local_ray_cluster(ray_cluster, tmp_path):
    address, ray_pids, env = ray_cluster
    _sweep_and_check("ray", address, "cluster-ray", tmp_path / "shared-runs", ray_pids, env)
