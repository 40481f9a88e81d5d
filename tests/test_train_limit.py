"""The `trainflow-train` tag's documented use: `prefect concurrency-limit create trainflow-train 1`
lets one pipeline train at a time, while a server without that limit is not asked for slots."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.conftest import SPECS
from tests.helpers import flow_run_records, run_cli
from trainflow.flows.monitor import TRAIN_TAG, has_limit, looking_up_limit

pytestmark = pytest.mark.usefixtures("prefect_server")


def _fit_run(summary_path: Path):
    import json

    from prefect.client.orchestration import get_client

    summary = json.loads(summary_path.read_text())
    with get_client(sync_client=True) as client:
        task_runs, _ = flow_run_records(client, summary["flow_run_id"])
    [fit] = [t for t in task_runs if t.name.startswith("fit")]
    return fit


def test_has_limit_follows_the_server():
    from prefect.client.orchestration import get_client

    assert has_limit(TRAIN_TAG) is False and looking_up_limit(TRAIN_TAG).result() is False
    with get_client(sync_client=True) as client:
        client.create_concurrency_limit(tag=TRAIN_TAG, concurrency_limit=3)
    try:
        assert has_limit(TRAIN_TAG) is True and looking_up_limit(TRAIN_TAG).result() is True
    finally:
        with get_client(sync_client=True) as client:
            client.delete_concurrency_limit_by_tag(TRAIN_TAG)
    assert has_limit(TRAIN_TAG) is False


def test_fit_waits_while_another_training_holds_the_only_slot(tmp_path):
    """With a limit of 1 whose slot is held elsewhere, the pipeline's fit starts only after its release."""
    from prefect.client.orchestration import get_client
    from prefect.concurrency.sync import concurrency

    out = tmp_path / "runs"
    with get_client(sync_client=True) as client:
        client.create_concurrency_limit(tag=TRAIN_TAG, concurrency_limit=1)
    held, released = threading.Event(), {}

    def other_training():
        with concurrency(f"tag:{TRAIN_TAG}", occupy=1, lease_duration=60):
            held.set()
            results = out / ".cache" / "results"
            deadline = time.time() + 120
            # hold until split's persisted result exists, then long enough for an ungated fit to start
            while not (results.is_dir() and any(results.iterdir())) and time.time() < deadline:
                time.sleep(0.05)
            time.sleep(2.0)
            released["at"] = datetime.now(timezone.utc)

    holder = threading.Thread(target=other_training)
    holder.start()
    try:
        assert held.wait(30)
        code, _ = run_cli("run", SPECS / "penguins.yaml", "--out", out, "--set", "preprocess.resample.method=none")
        holder.join(150)
    finally:
        with get_client(sync_client=True) as client:
            client.delete_concurrency_limit_by_tag(TRAIN_TAG)
    assert code == 0 and "at" in released
    [summary] = list(out.glob("penguins/*/metrics.json"))
    fit = _fit_run(summary)
    assert TRAIN_TAG in fit.tags
    assert fit.start_time >= released["at"], "fit started while another training held the only slot"

