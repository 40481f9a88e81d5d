"""Run a modality's validation in a separate Python process, beside the flow's own stages.

The pipeline flow validates while it profiles and splits (:func:`trainflow.flows.pipeline.validating`).
Why a process, measured on the 2-core development machine (tabular benchmark, 100k rows): in a
thread of the flow's process, Great Expectations' import and checkpoint are Python code holding the
GIL, and two of three runs failed: first-time imports racing in two threads raised an import
``_DeadlockError`` (narwhals, which GX and scikit-learn both import) in ``split``. A child process
cannot race the flow's imports and runs on the other core; it costs ~1 s more CPU per run (its own
imports of trainflow and pandas, a second read of the stored table) and lowers the flow process's
peak (it never imports GX): 804 vs 882 MB counting the child's peak beside the stages it overlapped.

``python -m trainflow.tasks.common.validation_process``: the child is started first thing by ``trainflow run``
(:func:`prestart`, before the spec loads and Prefect imports), imports what validation needs meanwhile,
then reads ``[request, result, docs]`` (file paths) from its input, one line per validation (a
process that runs many flows keeps it: the next validation pays no imports); it rebuilds the spec and
the data reference from the request, runs the modality's ``validate`` stage, and writes the summary, or
the error (kind, message and the fields to rebuild it), as JSON; a passing validation can be answered
before its Data Docs are written (``docs_later``: they take ~0.2-0.3 s of the child's CPU that fit need
not wait for). The child then writes them only when the flow says so (:func:`release_docs`, after the
fit: a core taken beside a fit's thread pool costs the fit more than its own CPU time, see issue 25),
and the flow waits for them before publishing (:func:`wait_for_docs`). It imports neither
Prefect nor the parent's ``__main__``, and gets the parent's ``sys.path``. A modality class a fresh
interpreter cannot import (defined in ``__main__`` or made at run time) is validated in the flow's
process, before profile and split, as before; so is one the child finds as another class, or whose spec
it cannot rebuild (a component registered at run time): the child says so before validating, and the
flow waits for the in-process validation before profile and split start (:func:`gate`), so two threads
never race their first imports.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from trainflow import errors


def _class_path(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


_gates: dict[str, threading.Event] = {}  # per validation: set once the stages beside it (profile, split) are done
_gates_lock = threading.Lock()


def gate(ticket: str) -> threading.Event:
    """The event for validation ``ticket``, made on first use; the pipeline sets it when the stages
    beside the validation are done (:func:`trainflow.flows.pipeline.validating`)."""
    with _gates_lock:
        return _gates.setdefault(ticket, threading.Event())


def close_gate(ticket: str) -> None:
    with _gates_lock:
        _gates.pop(ticket, None)


#: peak memory (MB) of the last child that answered, read by the benchmarks: a parent's
#: ``RUSAGE_CHILDREN`` is no measure of it (a child spawned with vfork inherits the parent's peak)
last_peak_mb: float | None = None

_warm: list[subprocess.Popen] = []  # children started ahead (:func:`prestart`), not yet used
_warm_lock = threading.Lock()


def can_run_apart(modality: Any) -> bool:
    """Whether a fresh interpreter can import the module that defines ``modality`` (it is given
    this process's ``sys.path``): not a class of ``__main__`` or one made at run time."""
    module = sys.modules.get(type(modality).__module__)
    return type(modality).__module__ != "__main__" and getattr(module, "__file__", None) is not None


def runs_apart(spec: Any) -> bool:
    """Whether ``spec``'s validation goes to a child process (enabled, and a modality a fresh
    interpreter can import)."""
    from trainflow import modalities

    return bool(spec.validation.enabled) and can_run_apart(modalities.get(spec.modality))


def _start() -> subprocess.Popen:
    # this process's import path, so that plug-ins found here (entry points included) are found there
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    return subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE, text=True, env=env)


def prestart() -> None:
    """Start a child now, so that its imports (trainflow's components, pandas, Great Expectations)
    run while this process reads the spec, imports Prefect and loads the data; the next
    :func:`validate_apart` uses it. A child no one uses ends when this process does (its input
    closes), or at once on :func:`discard`."""
    with _warm_lock:
        if not _warm:
            try:
                _warm.append(_start())
            except OSError:  # no process to spare now: validation starts one when it needs it
                pass


def discard() -> None:
    """End the waiting children now (a run that failed, or a spec validated in this process: the
    next validation starts afresh) and reap them. They hold no request, so none is cut short; one
    still importing is stopped rather than left to run its imports for nothing."""
    with _warm_lock:
        procs = _warm[:]
        _warm.clear()
    for proc in procs:
        proc.stdin.close()
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_for(proc: subprocess.Popen, *paths: Path) -> None:
    """Until the child has written one of ``paths`` (whole files: it renames them) or has ended."""
    while not any(p.exists() for p in paths) and proc.poll() is None:
        time.sleep(0.005)


def _take() -> subprocess.Popen:
    with _warm_lock:
        while _warm:
            proc = _warm.pop()
            if proc.poll() is None:
                return proc
    return _start()


def validate_apart(modality: Any, data: Any, spec: Any, docs_dir: str | None,
                   docs_later: bool = False) -> tuple[bool, Any]:
    """``(True, summary)`` from a child process, or ``(False, reason)`` when it cannot run there
    (the caller validates in this process). Raises the child's validation, spec or data error.
    ``docs_later``: a passing validation is answered before its Data Docs are written (the docs
    of a failing one are written first); :func:`wait_for_docs` waits for them."""
    if not can_run_apart(modality):
        return False, f"a fresh process cannot import {type(modality).__module__}"
    tmp = Path(tempfile.mkdtemp(prefix="trainflow-validate-"))
    request, result, docs = (tmp / name for name in ("request.json", "result.json", "docs.json"))
    docs_pending = False
    try:
        # What the spec set, not every section's defaults: sections of components registered only in
        # this process (at their defaults) would stop the child's rebuild; the full dump checks it.
        request.write_text(json.dumps({"spec": spec.model_dump(mode="json", exclude_unset=True),
                                       "spec_full": spec.model_dump(mode="json"), "data": data.model_dump(mode="json"),
                                       "docs_dir": docs_dir, "modality": _class_path(modality),
                                       "docs_later": docs_later}), encoding="utf-8")
        proc = _take()
        try:
            proc.stdin.write(json.dumps([str(request), str(result), str(docs)]) + "\n")
            proc.stdin.flush()
        except OSError:  # it died while it waited: the error is in its output; a retry starts a fresh one
            pass
        _wait_for(proc, result)
        if not result.is_file():
            raise errors.TrainflowError(f"the validation process stopped (exit code {proc.wait()}) before "
                                        "reporting; its output is above")
        answer = json.loads(result.read_text(encoding="utf-8"))
        docs_pending = bool(answer.get("docs_pending"))
        with _warm_lock:
            if docs_pending:  # the child writes them now; it is free again once they are written
                _docs_pending[str(docs_dir)] = (proc, docs, tmp)
            else:  # kept for the next validation in this process: its imports are done
                _warm.append(proc)
    finally:
        if not docs_pending:
            shutil.rmtree(tmp, ignore_errors=True)
    global last_peak_mb
    last_peak_mb = answer.get("peak_mb")
    if "fallback" in answer:
        return False, answer["fallback"]
    if "error" in answer:
        raise _rebuilt(answer)
    return True, answer["summary"]


#: docs folder -> (the child holding its Data Docs after answering, the note it writes when done,
#: the request's temporary folder)
_docs_pending: dict[str, tuple[subprocess.Popen, Path, Path]] = {}
_docs_released: set[str] = set()  # docs folders whose child was told to write them


def release_docs(docs_dir: str | None) -> None:
    """Let the child write the Data Docs of ``docs_dir`` now (it holds them until told, so that they
    never run beside a fit); at once where none are pending or they were released already."""
    with _warm_lock:
        pending = _docs_pending.get(str(docs_dir))
        if pending is None or str(docs_dir) in _docs_released:
            return
        _docs_released.add(str(docs_dir))
    try:
        pending[0].stdin.write(DOCS_NOW + "\n")
        pending[0].stdin.flush()
    except OSError:  # it ended: wait_for_docs reports it
        pass


def wait_for_docs(docs_dir: str | None, strict: bool = True) -> None:
    """Until the Data Docs of the validation of ``docs_dir`` are written, where a child answered
    before writing them (``validate_apart(docs_later=True)``); at once otherwise. ``strict``: raise
    when they could not be written (a run that already failed passes False: it keeps what there is)."""
    release_docs(docs_dir)
    with _warm_lock:
        pending = _docs_pending.pop(str(docs_dir), None)
        _docs_released.discard(str(docs_dir))
    if pending is None:
        return
    proc, note_path, tmp = pending
    try:
        _wait_for(proc, note_path)
        note = (json.loads(note_path.read_text(encoding="utf-8")) if note_path.is_file() else
                {"error": f"the validation process stopped (exit code {proc.wait()}); its output is above"})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if proc.poll() is None:
        with _warm_lock:
            _warm.append(proc)
    global last_peak_mb
    last_peak_mb = max(last_peak_mb or 0.0, note.get("peak_mb") or 0.0) or None
    if strict and "error" in note:
        raise errors.TrainflowError(f"The data passed validation, but its Data Docs could not be written to "
                                    f"'{docs_dir}': {note['error']}")


def _rebuilt(answer: dict[str, Any]) -> BaseException:
    """The child's error as the same exception class (or its nearest built-in ancestor)."""
    kind, message = answer["error"], answer["message"]
    if kind == "OSError":
        return OSError(message)  # transient: the task's retry condition retries it
    cls = getattr(errors, kind, None)
    if cls is errors.ValidationFailed:
        return errors.ValidationFailed(answer["report"], answer["docs_path"])
    if isinstance(cls, type) and issubclass(cls, errors.SpecError):
        return cls(answer["problems"], answer["source"])
    known = isinstance(cls, type) and issubclass(cls, errors.TrainflowError)
    exc = cls(message) if known else errors.TrainflowError(message)
    exc.exit_code = answer["exit_code"]  # a plug-in's own error class keeps its exit code
    return exc


def _answer(request: dict[str, Any]) -> dict[str, Any]:
    from trainflow import modalities
    from trainflow.spec import spec_from_dict
    from trainflow.refs import DataRef

    try:  # the parent accepted this spec: a problem here is a component only the parent knows
        spec = spec_from_dict(request["spec"])
        mod = modalities.get(spec.modality)
    except errors.TrainflowError as exc:
        return {"fallback": f"a fresh process cannot rebuild the spec: {exc}"}
    if not _within(spec.model_dump(mode="json"), request["spec_full"]):
        return {"fallback": "a fresh process rebuilds the spec with other values"}
    if _class_path(mod) != request["modality"]:
        return {"fallback": f"a fresh process finds {_class_path(mod)}, not {request['modality']}"}
    try:
        return {"summary": mod.validate(DataRef.model_validate(request["data"]), spec, request["docs_dir"])}
    except errors.TrainflowError as exc:
        return {"error": type(exc).__name__, "message": str(exc), "exit_code": exc.exit_code,
                "report": getattr(exc, "report", None), "docs_path": getattr(exc, "docs_path", None),
                "problems": getattr(exc, "problems", None), "source": getattr(exc, "source", None)}
    except OSError as exc:
        return {"error": "OSError", "message": str(exc)}


def _within(mine: Any, theirs: Any) -> bool:
    """Whether every value of ``mine`` is the same in ``theirs`` (which may hold more keys)."""
    if isinstance(mine, dict):
        return isinstance(theirs, dict) and all(k in theirs and _within(v, theirs[k]) for k, v in mine.items())
    return mine == theirs


def peak_mb() -> float | None:
    """This process's peak resident memory in MB (Linux: ``VmHWM``), None where unknown."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _warm_up() -> None:
    """Import what every validation needs before the request comes (errors here surface then)."""
    try:
        import pandas  # noqa: F401

        from trainflow.spec import spec_model
        from trainflow.tasks.common.validate import _gx

        spec_model()  # discovers the registered components
        _gx(defer=True)  # Great Expectations, its distribution tests' modules left until used
    except Exception:  # the request's own run reports the problem
        pass


def main() -> None:
    """Warm up, then answer each request the parent writes as ``[request, result, docs]``
    on stdin, until its input closes (the parent discarded it or ended)."""
    _warm_up()
    from trainflow.tasks.common.validate import docs_deferred

    for line in sys.stdin:
        if not line.strip():
            continue
        request_path, result, docs = json.loads(line)
        request = json.loads(Path(request_path).read_text(encoding="utf-8"))
        with docs_deferred() if request.get("docs_later") else contextlib.nullcontext([]) as later:
            answer = _answer(request)
        answer["docs_pending"] = bool(later)
        answer["peak_mb"] = peak_mb()
        _write_whole(result, answer)
        if later:  # the parent goes on with the verdict; the docs follow when it says (release_docs)
            if sys.stdin.readline().strip() != DOCS_NOW:
                break  # its input closed: the parent ended or discarded this child
            note: dict[str, Any] = {}
            try:
                for write_docs in later:
                    write_docs()
            except Exception as exc:  # told to the parent, which decides what a run without docs is
                note["error"] = f"{type(exc).__name__}: {exc}"
            note["peak_mb"] = peak_mb()
            _write_whole(docs, note)


#: the line that tells the child to write the Data Docs it holds (:func:`release_docs`)
DOCS_NOW = "docs"


def _write_whole(path: str, content: dict[str, Any]) -> None:
    partial = Path(f"{path}.partial")
    partial.write_text(json.dumps(content, default=str), encoding="utf-8")
    os.replace(partial, path)  # the parent reads a whole file or none


if __name__ == "__main__":
    main()
    # Its input closed: nothing is left to write. Tearing down GX, pandas and the rest would take
    # ~0.5 s more, during which the parent's stdout/stderr stay open (a caller reading them, like a
    # subprocess pipe or a worker, would wait for it).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
