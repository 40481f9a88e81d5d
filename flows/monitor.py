"""What a run shows in the Prefect UI besides its report: tags to filter runs by.

Tags known before a run starts (pipeline, task kind, modality) are given at call time through
``prefect.tags``; the data digest is only known after loading, so it is added to the flow run
through the API.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from concurrent.futures import Future

    from trainflow.spec import PipelineSpec

#: the tag on training tasks; ``prefect concurrency-limit create trainflow-train 1`` lets one train at a time
#: (the pipeline's ``fit`` carries it while such a limit exists, see :func:`looking_up_limit`)
TRAIN_TAG = "trainflow-train"


def run_tags(spec: PipelineSpec) -> list[str]:
    """Tags of a pipeline's flow runs: ``trainflow``, ``pipeline:<name>``, ``task:<kind>``, ``modality:<m>``."""
    return ["trainflow", f"pipeline:{spec.name}", f"task:{spec.task}", f"modality:{spec.modality}"]


@contextlib.contextmanager
def untagged_tasks(flow_tags: list[str]) -> Iterator[None]:
    """Inside a flow body: the task runs started here leave out the flow run's own tags ``flow_tags``.

    Prefect asks the server for concurrency slots for every task run that has tags (one API call per
    task run; "no limit" is remembered for 5 s only), which costs 20 ms to seconds a task on a busy
    server. The flow run keeps these tags for the UI; a task's own tags (``TRAIN_TAG`` on training) and
    any other tags the caller set around the flow still apply to its task runs.
    """
    from prefect.context import TagsContext

    with TagsContext(current_tags=TagsContext.get().current_tags - set(flow_tags)):
        yield


def has_limit(tag: str) -> bool:
    """Whether the server holds a concurrency limit on the task tag ``tag`` (the global limit
    ``tag:<tag>`` that ``prefect concurrency-limit create <tag> N`` makes and the task engine asks
    for). A read; when it fails for any other reason than "no such limit", True: then the engine
    asks for slots as it always does."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            client.read_global_concurrency_limit_by_name(f"tag:{tag}")
    except ObjectNotFound:
        return False
    except Exception:
        return True
    return True


def looking_up_limit(tag: str = TRAIN_TAG) -> Future[bool]:
    """:func:`has_limit` in a thread (with the caller's Prefect settings), so that a flow learns
    before its training task whether the tag is limited without waiting for the answer.

    Why: the task engine asks the server for slots for every tag of a task run, and that request
    takes the database's write lock even when no limit exists; on a server busy writing the run's
    events, SQLite answers "locked", and the client retries after ~2 s (seen as a 1-2 s gap before
    ``fit`` at 100k rows). A flow that knows there is no limit runs the task without the tag."""
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trainflow-limit")
    try:
        return executor.submit(contextvars.copy_context().run, has_limit, tag)
    finally:
        executor.shutdown(wait=False)


def data_tag(digest: str) -> str:
    """The tag naming the data a run trained on (first 12 hex digits of its digest)."""
    return f"data:{digest[:12]}"


def add_flow_run_tags(tags: list[str], flow_run_id: str | None = None) -> list[str]:
    """Add ``tags`` to a flow run (default: the current one); returns its tags. No-op outside a run."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    flow_run_id = flow_run_id or flow_run.get_id()
    if not flow_run_id:
        return []
    with get_client(sync_client=True) as client:
        current = client.read_flow_run(flow_run_id).tags or []
        merged = list(dict.fromkeys([*current, *tags]))
        if merged != current:
            client.update_flow_run(flow_run_id, tags=merged)
    return merged
