"""``resources.threads``: one setting drives joblib's n_jobs, the BLAS/OpenMP pools and torch; a sweep
shares it out; thread counts enter cache keys only where they change results."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import complete_runs, run_cli, write_spec
from trainflow import resources
from trainflow.cache_keys import code_fingerprint, model_key
from trainflow.refs import DataRef, SplitRef
from trainflow.registry import REGISTRY
from trainflow.spec import spec_from_dict

SPLIT = SplitRef(train=DataRef(path="train", digest="t" * 64, modality="image"),
                 test=DataRef(path="test", digest="s" * 64, modality="image"))


def forest(**options):
    comp = REGISTRY.get("model", "random_forest")
    return comp.build(comp.parse(options, where="model"), seed=0, task="classification")


def test_a_forest_takes_its_n_jobs_from_the_run_threads_on_threads():
    from joblib import effective_n_jobs
    from joblib.parallel import get_active_backend

    est = forest()
    assert est.n_jobs is None, "a count of its own would be saved with the model and override resources.threads"
    with resources.using(3):
        backend, n_jobs = get_active_backend()
        assert effective_n_jobs(est.n_jobs) == 3 and resources.current() == 3
        assert type(backend).__name__ == "ThreadingBackend", "worker processes would copy the training data"
    assert resources.current() == resources.available()


def test_the_pools_follow_the_run_threads_and_are_restored():
    from threadpoolctl import threadpool_info

    before = {p["internal_api"]: p["num_threads"] for p in threadpool_info()}
    with resources.using(1):
        assert all(p["num_threads"] == 1 for p in threadpool_info())
    assert {p["internal_api"]: p["num_threads"] for p in threadpool_info()} == before


def test_a_forest_is_the_same_on_any_thread_count():
    """Why ``resources`` is no part of a tabular model's key: the trees do not depend on n_jobs."""
    from sklearn.datasets import make_classification

    X, y = make_classification(400, 8, random_state=0)
    probas = []
    for threads in (1, 2, 3):
        with resources.using(threads):
            probas.append(forest(n_estimators=12).fit(X, y).predict_proba(X))
    assert np.array_equal(probas[0], probas[1]) and np.array_equal(probas[0], probas[2])


def test_torch_follows_the_run_threads_unless_the_spec_names_a_count():
    torch = pytest.importorskip("torch")
    from trainflow.tasks.common.training import torch_threads

    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    with resources.using(other):
        assert torch.get_num_threads() == other, "torch already imported: set at once"
        with torch_threads(0):  # train.num_threads: 0
            assert torch.get_num_threads() == other
        with torch_threads(other + 2):  # an explicit train.num_threads wins
            assert torch.get_num_threads() == other + 2
    assert torch.get_num_threads() == before


def test_a_sweep_shares_the_threads_among_its_candidates(monkeypatch):
    from trainflow.flows.sweep import threads_per_candidate

    assert threads_per_candidate("threads", 2, 8) == 4
    assert threads_per_candidate("processes", 3, 8) == 2
    assert threads_per_candidate("threads", 4, 2) == 1, "never below one"
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(6)), raising=False)
    assert threads_per_candidate("threads", 2, 0) == 3, "0: every usable core, shared"
    assert threads_per_candidate("dask", 2, 8) is None, "a cluster's workers size their own"


def test_thread_counts_key_torch_models_only():
    def spec(loader, **extra):
        return spec_from_dict({"name": "p", "task": "classification", "data": loader, **extra})

    table = {"loader": "csv", "path": "p.csv", "target": "y"}
    images = {"loader": "image_folder", "path": "images"}
    one, four = (spec(table, model={"name": "random_forest"}, resources={"threads": n}) for n in (1, 4))
    assert one.training_view() == four.training_view()
    assert code_fingerprint(one) == code_fingerprint(four), "a forest is the same on any count"
    cnn = spec(images, model={"name": "cnn"}).training_view()  # train.num_threads: 0 follows the run
    assert code_fingerprint(cnn, 1) != code_fingerprint(cnn, 2)
    with resources.using(2):  # inside the fit, the training view's key uses the run's count
        inside = model_key(SPLIT, cnn)
    assert inside == model_key(SPLIT, cnn.model_copy(update={"resources": resources.ResourcesSpec(threads=2)}))
    pinned = spec(images, model={"name": "cnn"}, train={"num_threads": 1}).training_view()
    assert code_fingerprint(pinned, 1) == code_fingerprint(pinned, 2), "an explicit count is keyed as written"


@pytest.mark.usefixtures("prefect_server")
def test_a_run_records_its_threads_and_another_count_reuses_the_forest(tmp_path, monkeypatch):
    from sklearn.datasets import make_classification

    from trainflow.tasks.tabular import modality as tabular

    X, y = make_classification(200, 5, random_state=0)
    csv = tmp_path / "rows.csv"
    header = ",".join([f"f{i}" for i in range(5)] + ["y"])
    csv.write_text(header + "\n" + "\n".join(",".join(map(str, [*row, label])) for row, label in zip(X, y)))
    spec = write_spec(tmp_path / "spec.yaml", {"name": "threads", "data": {"loader": "csv", "path": str(csv),
                                                                           "target": "y"},
                                               "model": {"name": "random_forest", "n_estimators": 10},
                                               "resources": {"threads": 1}})
    fits: list[int] = []
    seen: list[int] = []
    real_fit = tabular.fit
    monkeypatch.setattr(tabular.Tabular, "fit", staticmethod(
        lambda *a, **k: fits.append(1) or seen.append(resources.current()) or real_fit(*a, **k)))
    out = tmp_path / "runs"
    assert run_cli("run", spec, "--out", out)[0] == 0
    assert run_cli("run", spec, "--out", out, "--set", "resources.threads=2")[0] == 0
    assert fits == [1] and seen == [1], "the forest fitted on one thread is reused on two"
    runs = sorted(complete_runs(out, "threads"), key=lambda p: p.name)
    first = json.loads((runs[0] / "metrics.json").read_text())
    assert first["threads"] == 1 and first["spec"]["resources"] == {"threads": 1}
    assert "Fitted on 1 CPU threads" in (runs[0] / "report.md").read_text()


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="reads Linux's /proc")
def test_other_processes_busy_cores_are_measured_and_this_process_tree_is_not_counted():
    ticks = os.sysconf("SC_CLK_TCK")
    before, cpu = resources._own_ticks(), time.process_time()
    sum(i * i for i in range(3_000_000))  # this process's own work
    subprocess.run([sys.executable, "-c", "sum(i * i for i in range(3_000_000))"], check=True)  # a child's
    own = (resources._own_ticks() - before) / ticks
    assert own >= time.process_time() - cpu + 0.1, "the child's CPU time is this run's, not another's"
    # not our child: the shell that starts the spinner exits, so it belongs to no process of this run
    # it stops by itself after 5 s, and $! is its own pid (not a wrapper's): a kill never leaves it spinning
    spin = "import time; end = time.monotonic() + 5\nwhile time.monotonic() < end: pass"
    started = subprocess.run(["bash", "-c", f"{sys.executable} -c '{spin}' >/dev/null 2>&1 & echo $!"],
                             capture_output=True, text=True, check=True)
    try:
        time.sleep(0.2)
        others = resources.OthersLoad().start()
        time.sleep(0.5)
        assert others.cores() >= 0.2, "a spinning process of someone else's counts"  # its share on a busy machine
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(started.stdout.split()[0]), signal.SIGKILL)


def test_the_fit_leaves_busy_cores_to_others_where_its_key_allows():
    from trainflow.flows.pipeline import fit_threads

    class OneBusy(resources.OthersLoad):
        def cores(self) -> float:
            return 1.0

    def spec(**extra):
        return spec_from_dict({"name": "p", "task": "classification",
                               "data": {"loader": "csv", "path": "p.csv", "target": "y"}, **extra})

    n = resources.available()
    assert fit_threads(spec(), OneBusy()) == max(1, n - 1)
    assert fit_threads(spec(), resources.OthersLoad()) == n, "nothing measured: every core"
    assert fit_threads(spec(resources={"threads": 2}), OneBusy()) == 2, "a count the spec names is kept"
    cnn = spec_from_dict({"name": "p", "data": {"loader": "image_folder", "path": "images"}, "model": {"name": "cnn"}})
    assert fit_threads(cnn, OneBusy()) == n, "a count in torch's cache key is not moved"
