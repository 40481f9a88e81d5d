"""Validation runs beside profile and split (in a child process), and training waits for it: the task
runs' own start and end times, as the Prefect server recorded them, show both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import SPECS
from tests.helpers import assert_nothing_complete, complete_runs, run_cli

pytestmark = pytest.mark.usefixtures("prefect_server")


def task_runs(name: str) -> dict[str, object]:
    """The task runs of the one flow run of pipeline ``name``, by task name."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    with get_client(sync_client=True) as client:
        flow_runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_=name)))
        assert len(flow_runs) == 1, [f.name for f in flow_runs]
        from tests.helpers import flow_run_records

        runs, _ = flow_run_records(client, str(flow_runs[0].id))
    return {r.name.rsplit("-", 1)[0]: r for r in runs}


def test_validation_overlaps_profile_and_split_and_fit_waits_for_it(tmp_path, monkeypatch):
    from trainflow.tasks.common import warmup

    # no warm-up imports after split (on a loaded machine they can outlast the validation; tested below)
    monkeypatch.setattr(warmup, "steps", lambda modality: [])
    out = tmp_path / "runs"
    code, _ = run_cli("run", SPECS / "penguins.yaml", "--out", out, "--set", "name=overlap-ok")
    assert code == 0
    runs = task_runs("overlap-ok")
    validate, profile, split, fit = (runs[n] for n in ("validate", "profile", "split", "fit"))
    # validation started before the split ended and ended after profiling started: they overlapped
    assert validate.start_time < split.end_time and profile.start_time < validate.end_time
    assert fit.start_time >= validate.end_time
    assert validate.state.is_completed()
    [run] = complete_runs(out, "overlap-ok")
    assert json.loads((run / "metrics.json").read_text())["validation"]["success"] is True
    # the child answered before writing the Data Docs; the run waited for them before publishing
    assert (run / "validation" / "index.html").is_file() and (run / "validation" / "summary.json").is_file()


def test_validation_failing_after_the_split_stops_the_run_before_fit(tmp_path, capsys, monkeypatch):
    import threading

    from trainflow.tasks.common import validation_process
    from trainflow.tasks.tabular.modality import Tabular

    split_done = threading.Event()  # validation reports only once the split has finished
    split, validate_apart = Tabular.split, validation_process.validate_apart

    def split_then_signal(*args):
        try:
            return split(*args)
        finally:
            split_done.set()

    def validate_after_split(*args, **kwargs):
        try:
            return validate_apart(*args, **kwargs)
        finally:
            assert split_done.wait(120)

    monkeypatch.setattr(Tabular, "split", staticmethod(split_then_signal))
    monkeypatch.setattr(validation_process, "validate_apart", validate_after_split)
    out = tmp_path / "runs"
    code, err = run_cli("run", SPECS / "penguins.yaml", "--out", out, "--set", "name=overlap-late",
                        "--set", "validation.min_rows=100000", capsys=capsys)
    assert code == 4 and "Data validation failed" in err and "Traceback" not in err
    runs = task_runs("overlap-late")
    assert runs["split"].state.is_completed() and runs["validate"].state.is_failed()
    assert runs["validate"].end_time > runs["split"].end_time  # the failure came after the split was done
    assert split_done.is_set()
    assert "fit" not in runs and "evaluate" not in runs and "publish" not in runs
    assert_nothing_complete(out)
    [failed] = [p for p in (out / "overlap-late").iterdir() if p.name.endswith(".failed")]
    assert (failed / "validation" / "index.html").is_file()


def test_a_modality_the_child_cannot_find_is_validated_in_this_process(tmp_path, monkeypatch):
    """The fallback: a modality class that a fresh interpreter would not find is validated in a
    thread of the flow's process, with the same result."""
    from trainflow import modalities
    from trainflow.tasks.common import validation_process
    from trainflow.spec import load_spec
    from trainflow.tasks.common import load as loading

    spec = load_spec(SPECS / "penguins.yaml", ["name=overlap-fallback"])
    data = loading.load(spec.data, str(tmp_path / "cache"), spec.modality)
    mod = modalities.get(spec.modality)
    ran, summary = validation_process.validate_apart(mod, data, spec, str(tmp_path / "docs"))
    assert ran and summary["success"] and (tmp_path / "docs" / "index.html").is_file()

    monkeypatch.setattr(type(mod), "__module__", "__main__")
    ran, reason = validation_process.validate_apart(mod, data, spec, str(tmp_path / "docs2"))
    assert not ran and "__main__" in reason
    monkeypatch.setattr(type(mod), "__module__", "acme_only_in_this_process")
    ran, reason = validation_process.validate_apart(mod, data, spec, str(tmp_path / "docs3"))
    assert not ran and "acme_only_in_this_process" in reason


def _recorded_validate(monkeypatch, order: list[str]) -> None:
    """Tabular's in-process validation, recording its start and end in ``order``."""
    from trainflow.tasks.tabular.modality import Tabular

    validate = Tabular.validate

    def recorded_validate(*args):
        order.append("validate starts")
        try:
            return validate(*args)
        finally:
            order.append("validate ends")

    monkeypatch.setattr(Tabular, "validate", staticmethod(recorded_validate))


def test_a_request_the_child_hands_back_is_validated_after_profile_and_split(tmp_path, monkeypatch):
    """The child's fallback (it finds another modality class, as for a component registered at run
    time): the flow validates in its own process once profile and split are done, before fit, so no
    two threads race their first imports."""
    from trainflow.tasks.common import validation_process
    from trainflow.tasks.tabular.modality import Tabular

    order: list[str] = []
    _recorded_validate(monkeypatch, order)
    profile, split, fit = Tabular.profile, Tabular.split, Tabular.fit

    def recorded(name, stage):
        def run(*args):
            order.append(f"{name} starts")
            try:
                return stage(*args)
            finally:
                order.append(f"{name} ends")
        return staticmethod(run)

    for name, stage in (("profile", profile), ("split", split), ("fit", fit)):
        monkeypatch.setattr(Tabular, name, recorded(name, stage))
    monkeypatch.setattr(validation_process, "_class_path", lambda obj: "acme_only_here.Modality")
    out = tmp_path / "runs"
    code, _ = run_cli("run", SPECS / "penguins.yaml", "--out", out, "--set", "name=overlap-handback")
    assert code == 0
    # the child handed it back, so validation ran here (recorded), after split and wholly before fit
    assert order == ["profile starts", "profile ends", "split starts", "split ends",
                     "validate starts", "validate ends", "fit starts", "fit ends"]
    assert task_runs("overlap-handback")["validate"].state.is_completed()
    [run] = complete_runs(out, "overlap-handback")
    assert json.loads((run / "metrics.json").read_text())["validation"]["success"] is True


def test_validation_not_apart_runs_before_profile(tmp_path, monkeypatch):
    """With validation in this process (``APART`` off, or a modality no fresh process can import) it
    runs wholly before profile, and the run completes."""
    from trainflow.flows import pipeline

    monkeypatch.setattr(pipeline, "APART", False)
    out = tmp_path / "runs"
    code, _ = run_cli("run", SPECS / "penguins.yaml", "--out", out, "--set", "name=overlap-inprocess",
                      "--set", "preprocess.resample.method=none")
    assert code == 0
    runs = task_runs("overlap-inprocess")
    assert runs["validate"].state.is_completed() and runs["validate"].end_time <= runs["profile"].start_time


def test_a_section_only_this_process_knows_does_not_stop_validating_apart(tmp_path, monkeypatch):
    """A modality registered in this process only (its package not on the child's path) adds a spec
    section at its defaults to every spec; the child rebuilds what the spec set and still validates."""
    import sys

    from tests.helpers import plugin_installed
    from tests.test_plugin_modality import PLUGIN
    from trainflow import modalities
    from trainflow.tasks.common import validation_process
    from trainflow.spec import load_spec
    from trainflow.tasks.common import load as loading

    # the plug-in tests' module name: registering it again later is no clash
    with plugin_installed(tmp_path / "site", monkeypatch, "points_trainflow", PLUGIN) as site:
        sys.path.remove(str(site))  # registered here; a fresh process cannot find it
        validation_process.discard()  # a child started earlier might know it
        spec = load_spec(SPECS / "penguins.yaml", ["name=overlap-local-plugin"])
        assert "points" in spec.model_dump()["preprocess"]
        data = loading.load(spec.data, str(tmp_path / "cache"), spec.modality)
        ran, summary = validation_process.validate_apart(modalities.get(spec.modality), data, spec,
                                                         str(tmp_path / "docs"))
    assert ran, summary
    assert summary["success"] and (tmp_path / "docs" / "index.html").is_file()


def test_one_child_serves_every_validation_of_a_process_and_ends_when_discarded(tmp_path):
    """A process that runs many flows (a demo, serve, a notebook) pays the child's imports once."""
    from trainflow import modalities
    from trainflow.tasks.common import validation_process
    from trainflow.spec import load_spec
    from trainflow.tasks.common import load as loading

    spec = load_spec(SPECS / "penguins.yaml", ["name=overlap-reuse"])
    data = loading.load(spec.data, str(tmp_path / "cache"), spec.modality)
    mod = modalities.get(spec.modality)
    validation_process.discard()
    children = []
    for i in range(2):
        ran, summary = validation_process.validate_apart(mod, data, spec, str(tmp_path / f"docs{i}"))
        assert ran and summary["success"] and (tmp_path / f"docs{i}" / "index.html").is_file()
        [child] = validation_process._warm  # the child waits for the next request
        children.append(child)
    assert children[0] is children[1] and children[0].poll() is None
    validation_process.discard()
    assert children[0].poll() is not None  # ended and reaped


@pytest.fixture
def started_children(monkeypatch):
    """Every validation child this process starts during the test."""
    from trainflow.tasks.common import validation_process

    validation_process.discard()
    started, start = [], validation_process._start

    def recorded():
        started.append(start())
        return started[-1]

    monkeypatch.setattr(validation_process, "_start", recorded)
    return started


def test_the_run_command_starts_the_child_first_and_a_bad_spec_leaves_none_behind(tmp_path, capsys, started_children):
    from trainflow.tasks.common import validation_process

    code, err = run_cli("run", SPECS / "penguins.yaml", "--out", tmp_path / "runs", "--set", "model.name=no_such_model",
                        capsys=capsys)
    assert code == 2 and "no_such_model" in err and "Traceback" not in err
    [child] = started_children  # started before the spec was read
    assert child.poll() is not None and not validation_process._warm  # ended and reaped, not left to its imports


def test_a_spec_that_validates_in_this_process_ends_the_child_before_the_flow(tmp_path, monkeypatch, started_children):
    from trainflow.flows import cli

    alive_at_flow = []

    def run_spec(spec, out, refresh=False):
        alive_at_flow.extend(p.poll() is None for p in started_children)
        return {"pipeline": spec.name, "primary_metric": "accuracy", "metrics": {}, "run_dir": out}

    monkeypatch.setattr(cli, "run_spec", run_spec)
    code, _ = run_cli("run", SPECS / "penguins.yaml", "--out", tmp_path / "runs", "--set", "validation.enabled=false")
    assert code == 0 and alive_at_flow == [False]


@pytest.mark.skipif(not Path("/proc/self/environ").is_file(), reason="reads the environments in /proc")
def test_the_console_script_leaves_no_process_behind_on_a_bad_spec(tmp_path):
    """Through the real console script (which exits without the interpreter's teardown): no child
    of it, by an environment mark only it and its children carry, outlives it."""
    import os
    import subprocess
    import sys
    from uuid import uuid4

    mark = uuid4().hex
    with open(tmp_path / "stderr.txt", "w") as err:  # not a pipe: waiting for its end would wait for the child's
        code = subprocess.call([sys.executable, "-m", "trainflow.flows.cli", "run", str(SPECS / "penguins.yaml"),
                                "--out", str(tmp_path / "runs"), "--set", "model.name=no_such_model"],
                               env={**os.environ, "TRAINFLOW_TEST_MARK": mark}, stdout=subprocess.DEVNULL, stderr=err,
                               timeout=300)
    stderr = (tmp_path / "stderr.txt").read_text()
    assert code == 2 and "no_such_model" in stderr and "Traceback" not in stderr
    assert _processes_marked(mark) == []


def _processes_marked(mark: str) -> list[str]:
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if f"TRAINFLOW_TEST_MARK={mark}".encode() in environ.read_bytes():
                found.append(environ.parent.name)
        except OSError:  # ended meanwhile, or not ours to read
            pass
    return found


def test_a_passing_validation_is_answered_before_its_docs_and_a_failing_one_after(tmp_path):
    from trainflow import modalities
    from trainflow.errors import ValidationFailed
    from trainflow.tasks.common import validation_process
    from trainflow.spec import load_spec
    from trainflow.tasks.common import load as loading

    spec = load_spec(SPECS / "penguins.yaml", ["name=overlap-docs-later"])
    data = loading.load(spec.data, str(tmp_path / "cache"), spec.modality)
    mod, docs = modalities.get(spec.modality), str(tmp_path / "docs")
    ran, summary = validation_process.validate_apart(mod, data, spec, docs, docs_later=True)
    assert ran and summary["success"] and summary["docs_path"] == str(tmp_path / "docs" / "index.html")
    [(child, *_)] = validation_process._docs_pending.values()  # the answer said: docs to follow
    assert child not in validation_process._warm  # busy with them
    validation_process.wait_for_docs(docs)
    assert (tmp_path / "docs" / "index.html").is_file() and (tmp_path / "docs" / "summary.json").is_file()
    assert not validation_process._docs_pending and validation_process._warm == [child]

    bad = load_spec(SPECS / "penguins.yaml", ["name=overlap-docs-later", "validation.min_rows=100000"])
    with pytest.raises(ValidationFailed) as failed:
        validation_process.validate_apart(mod, data, bad, str(tmp_path / "bad"), docs_later=True)
    assert failed.value.docs_path and Path(failed.value.docs_path).is_file()  # written before the verdict
    assert not validation_process._docs_pending and validation_process._warm == [child]


def test_a_run_failing_after_a_passing_validation_keeps_its_docs(tmp_path, monkeypatch):
    from trainflow.errors import DataError
    from trainflow.tasks.tabular.modality import Tabular

    def split_fails(*args):  # beside the validation: the run fails as soon as the child has answered
        raise DataError("the split broke (test)")

    monkeypatch.setattr(Tabular, "split", staticmethod(split_fails))
    out = tmp_path / "runs"
    code, _ = run_cli("run", SPECS / "penguins.yaml", "--out", out, "--set", "name=overlap-docs-failed")
    assert code == 3
    assert_nothing_complete(out)
    [failed] = [p for p in (out / "overlap-docs-failed").iterdir() if p.name.endswith(".failed")]
    assert (failed / "validation" / "index.html").is_file() and (failed / "validation" / "summary.json").is_file()


def _recorded_warm_ups(monkeypatch, order: list[str], steps: int, seconds: float) -> None:
    """The warm-up steps replaced by ``steps`` sleeps that record their start and end."""
    import time

    from trainflow.tasks.common import warmup

    def step(i: int):
        def run() -> None:
            order.append(f"warm {i} starts")
            time.sleep(seconds)
            order.append(f"warm {i} ends")
        return run

    monkeypatch.setattr(warmup, "steps", lambda modality: [step(i) for i in range(steps)])


def test_warm_up_imports_use_the_wait_for_the_validation_child(tmp_path, monkeypatch):
    """The validation in the child outlasts profile and split: the flow's thread runs the modality's
    warm-up steps (fit's and evaluate's imports) after the split, while it waits for the validation,
    all before fit starts."""
    import threading
    import time

    from trainflow.tasks.common import validation_process
    from trainflow.tasks.tabular.modality import Tabular

    order: list[str] = []
    _recorded_warm_ups(monkeypatch, order, steps=3, seconds=0.2)
    split_done = threading.Event()
    split, fit, validate_apart = Tabular.split, Tabular.fit, validation_process.validate_apart

    def split_then_signal(*args):
        try:
            return split(*args)
        finally:
            order.append("split ends")
            split_done.set()

    def validate_after_split(mod, data, spec, docs_dir, docs_later=False):
        try:
            return validate_apart(mod, data, spec, docs_dir, docs_later=docs_later)
        finally:
            assert split_done.wait(120)
            time.sleep(1.0)  # the validation outlasts the split by a second

    def recorded_fit(*args):
        order.append("fit starts")
        return fit(*args)

    monkeypatch.setattr(Tabular, "split", staticmethod(split_then_signal))
    monkeypatch.setattr(Tabular, "fit", staticmethod(recorded_fit))
    monkeypatch.setattr(validation_process, "validate_apart", validate_after_split)
    out = tmp_path / "runs"
    code, _ = run_cli("run", SPECS / "penguins.yaml", "--out", out, "--set", "name=overlap-warm")
    assert code == 0
    warm = [e for e in order if e.startswith("warm")]
    assert warm == [f"warm {i} {what}" for i in range(3) for what in ("starts", "ends")], order
    assert order.index("split ends") < order.index("warm 0 starts"), order
    assert order.index("warm 2 ends") < order.index("fit starts"), order


def test_an_in_process_validation_never_runs_beside_a_warm_up_import(tmp_path, monkeypatch):
    """The child hands the request back: the validation in this process runs after the split, beside
    the flow's warm-up steps but never during one (one lock), whichever takes the lock first."""
    from trainflow.tasks.common import validation_process

    order: list[str] = []
    _recorded_warm_ups(monkeypatch, order, steps=2, seconds=0.5)
    _recorded_validate(monkeypatch, order)
    monkeypatch.setattr(validation_process, "validate_apart", lambda *args, **kwargs: (False, "handed back (test)"))
    out = tmp_path / "runs"
    code, _ = run_cli("run", SPECS / "penguins.yaml", "--out", out, "--set", "name=overlap-warm-back")
    assert code == 0
    start, end = order.index("validate starts"), order.index("validate ends")
    assert end == start + 1, order  # no warm-up step started or ended while it validated
    assert "warm 0 starts" in order, order
