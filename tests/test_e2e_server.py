"""End to end against a real ``prefect server start``: a deployment served with a short interval
schedule runs by itself; its artifacts are read through the REST API, and its report page is
opened in headless Chromium.

Everything started here (server, ``trainflow serve``, Chromium) runs in its own process group
with a temporary PREFECT_HOME and is stopped at the end; every wait has a deadline.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import SPECS

BIN = Path(sys.executable).parent
SERVER_START_S = 150  # a fresh database is created and migrated on first start
FIRST_RUN_S = 240  # scheduled, picked up, and trained on 2 shared CPUs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen, grace: float = 20) -> None:
    """SIGINT the process group we started (serve pauses its schedules), then SIGKILL if needed."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _wait(what: str, check, deadline_s: float, logs: list[Path], every: float = 2.0):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        result = check()
        if result:
            return result
        time.sleep(every)
    tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in logs if p.exists())
    pytest.fail(f"timed out after {deadline_s:.0f} s waiting for {what}\n{tails}")


def _completed_runs(api: str) -> list[dict]:
    body = {"flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}, "flows": {"name": {"any_": ["trainflow-scheduled"]}},
            "sort": "START_TIME_ASC"}
    try:
        return httpx.post(f"{api}/flow_runs/filter", json=body, timeout=10).json()
    except httpx.HTTPError:
        return []


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A Prefect server plus ``trainflow serve`` of one penguins deployment every 15 s."""
    tmp = tmp_path_factory.mktemp("e2e")
    port = _free_port()
    url, api = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_SERVER_UI_API_URL=api, PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="5",
               PREFECT_LOGGING_LEVEL="INFO", GX_ANALYTICS_ENABLED="false", MPLBACKEND="Agg")
    server_log, serve_log = tmp / "server.log", tmp / "serve.log"
    logs = [server_log, serve_log]
    procs = []
    try:
        procs.append(subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1",
                                       "--port", str(port)], env=env, stdout=server_log.open("w"),
                                      stderr=subprocess.STDOUT, start_new_session=True))

        def healthy():
            try:
                return httpx.get(f"{api}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        _wait("the Prefect server to answer", healthy, SERVER_START_S, logs)
        out = tmp / "runs"
        deploy = tmp / "prefect.yaml"
        deploy.write_text(yaml.safe_dump({"deployments": [{
            "name": "penguins-e2e", "entrypoint": "trainflow.flows.serve:run_spec_file",
            "parameters": {"spec_path": str(SPECS / "penguins.yaml"), "out": str(out)},
            "tags": ["trainflow", "e2e"], "schedules": [{"interval": 15}], "concurrency_limit": 1,
        }]}))
        procs.append(subprocess.Popen([str(BIN / "trainflow"), "serve", "--file", str(deploy)], cwd=tmp,
                                      env={**env, "PREFECT_API_URL": api, "PREFECT_RUNNER_POLL_FREQUENCY": "2"},
                                      stdout=serve_log.open("w"), stderr=subprocess.STDOUT, start_new_session=True))
        runs = _wait("a scheduled run to complete", lambda: _completed_runs(api), FIRST_RUN_S, logs)
        yield {"url": url, "api": api, "run": runs[0], "out": out, "tmp": tmp, "logs": logs}
    finally:
        for proc in reversed(procs):
            _stop(proc)


def test_scheduled_run_completes_with_report_artifacts(served):
    api, run = served["api"], served["run"]
    assert run["name"].startswith("penguins-")
    assert run["created_by"]["display_value"] == "IntervalSchedule" or "auto-scheduled" in run["tags"]
    assert {"pipeline:penguins", "task:classification", "modality:tabular"} <= set(run["tags"])
    assert any(t.startswith("data:") for t in run["tags"])
    arts = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run["id"]]}}}).json()
    by_key = {a["key"]: a for a in arts}
    assert {"penguins-report", "penguins-metrics", "penguins-promotion"} <= set(by_key)
    report = by_key["penguins-report"]["data"]
    assert "balanced_accuracy" in report and "data:image/png;base64," in report and "Class balance" in report
    assert "promoted to champion" in by_key["penguins-promotion"]["data"]
    assert (served["out"] / "penguins" / "champion.json").is_file()

    # The next scheduled run finds the same data and spec: it says so and does not train again.
    second = _wait("a second scheduled run", lambda: _completed_runs(api)[1:], 120, served["logs"])[0]
    arts = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [second["id"]]}}}).json()
    assert "unchanged" in second["tags"]
    assert [a["key"] for a in arts] == ["penguins-unchanged"]
    tasks = httpx.post(f"{api}/task_runs/filter", json={"flow_runs": {"id": {"any_": [second["id"]]}}}).json()
    assert not [t for t in tasks if t["name"].startswith("fit")]


def _chromium() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def _headless_chromium(tmp_path: Path, window: str):
    """A headless Chromium driven by chromedriver (a fresh profile under ``tmp_path``), pages timing out at 60 s."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = _chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", f"--window-size={window}",
                f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.set_page_load_timeout(60)
    return driver


@pytest.mark.skipif(_chromium() is None, reason="chromium and chromium-driver are not installed "
                                                "(apt-get install -y chromium chromium-driver)")
def test_report_page_renders_metrics_and_plots_in_chromium(served, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    arts = httpx.post(f"{served['api']}/artifacts/filter",
                      json={"artifacts": {"flow_run_id": {"any_": [served["run"]["id"]]}, "key": {"any_": ["penguins-report"]}}}).json()
    driver = _headless_chromium(tmp_path, "1400,2400")
    try:
        driver.get(f"{served['url']}/artifacts/artifact/{arts[0]['id']}")
        body = lambda d: d.find_element(By.TAG_NAME, "body").text  # noqa: E731
        WebDriverWait(driver, 60).until(lambda d: "Metrics (test split)" in body(d) and "balanced_accuracy" in body(d))
        WebDriverWait(driver, 30).until(lambda d: len(d.execute_script(
            "return [...document.images].filter(i => i.src.startsWith('data:image/png') && i.naturalWidth > 0)")) >= 2)
        text = body(driver)
        assert "Confusion matrix" in text and "Class balance" in text and "Preprocessing" in text
        assert served["run"]["name"] in text  # the page links the report to its flow run
        shot = tmp_path / "report.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 20_000
        print(f"screenshot: {shot}")

        driver.get(f"{served['url']}/runs/flow-run/{served['run']['id']}")
        WebDriverWait(driver, 60).until(lambda d: served["run"]["name"] in body(d) and "Completed" in body(d))
        driver.save_screenshot(str(tmp_path / "flow-run.png"))
    finally:
        driver.quit()


@pytest.mark.skipif(_chromium() is None, reason="chromium and chromium-driver are not installed "
                                                "(apt-get install -y chromium chromium-driver)")
def test_drift_history_table_renders_in_chromium(served, tmp_path):
    """The monitor in the UI: two batches scored with the served pipeline's champion (a clean one, then one
    with bill_length_mm shifted by half a standard deviation) publish the pipeline's drift-history table
    artifact on this server; its page renders one row per batch, the drifted feature named."""
    import pandas as pd
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.conftest import DATA
    from trainflow.flows.watch import monitor_batch

    rows = pd.read_csv(DATA / "penguins.csv").drop(columns=["species"]).sample(300, replace=True, random_state=5)
    rows.to_csv(tmp_path / "clean.csv", index=False)
    rows.assign(bill_length_mm=rows["bill_length_mm"] + 0.5 * rows["bill_length_mm"].std()).to_csv(
        tmp_path / "shifted.csv", index=False)
    with temporary_settings({PREFECT_API_URL: served["api"]}):
        for name in ("clean", "shifted"):
            monitor_batch(pipeline="penguins", batch=str(tmp_path / f"{name}.csv"), runs=str(served["out"]))
    arts = httpx.post(f"{served['api']}/artifacts/filter", json={
        "artifacts": {"key": {"any_": ["penguins-drift-history"]}}, "sort": "CREATED_DESC", "limit": 1}).json()
    history = json.loads(arts[0]["data"])  # a table artifact's data is its rows as JSON
    assert len(history) == 2 and [h["features"] for h in history] == ["", "bill_length_mm"]
    driver = _headless_chromium(tmp_path, "1600,1200")
    try:
        driver.get(f"{served['url']}/artifacts/artifact/{arts[0]['id']}")
        body = lambda d: d.find_element(By.TAG_NAME, "body").text  # noqa: E731
        WebDriverWait(driver, 60).until(lambda d: "bill_length_mm" in body(d) and "shifted.csv" in body(d))
        text = body(driver)
        assert "clean.csv" in text and "worst_feature" in text
        shot = tmp_path / "drift-history.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        print(f"screenshot: {shot}")
    finally:
        driver.quit()
