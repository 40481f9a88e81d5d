"""``kill -9`` of ``trainflow run`` (as the OOM killer does it) leaves no temporary Prefect server
behind: the watchdog beside the server (flows/server_watchdog.py) stops it once the run is gone."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import DATA
from tests.helpers import write_spec


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (every thread's), from /proc."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_kill_9_of_a_run_leaves_no_server(tmp_path):
    spec = write_spec(tmp_path / "spec.yaml", {"name": "killed", "data": {"loader": "csv", "target": "species",
                                                                          "path": str(DATA / "penguins.csv")}})
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}  # its own temporary server
    env["PREFECT_HOME"] = str(tmp_path / "home")
    log = open(tmp_path / "stderr.txt", "w")  # noqa: SIM115 - the child writes it until it is killed
    run = subprocess.Popen([str(Path(sys.executable).parent / "trainflow"), "run", str(spec), "--out",
                            str(tmp_path / "runs")], env=env, stdout=subprocess.DEVNULL, stderr=log)
    server = port = None
    try:
        # a fresh PREFECT_HOME: the server creates and migrates its database (~10 s idle, minutes under load)
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline and run.poll() is None and port is None:
            for child in children(run.pid):
                found = re.search(r"uvicorn .*--port (\d+)", cmdline(child))
                if found:
                    server = child
                    try:
                        if httpx.get(f"http://127.0.0.1:{found[1]}/api/health", timeout=1).status_code == 200:
                            port = int(found[1])
                    except httpx.HTTPError:
                        pass
            time.sleep(0.2)
        assert port is not None and run.poll() is None, (tmp_path / "stderr.txt").read_text()[-3000:]
        dogs = [c for c in children(run.pid) if "-S -I -c" in cmdline(c)]
        assert len(dogs) == 1, [cmdline(c) for c in children(run.pid)]
        run.send_signal(signal.SIGKILL)
        run.wait(10)
        deadline = time.monotonic() + 8  # the watchdog polls every 0.5 s; SIGTERM, then SIGKILL after 5 s
        while time.monotonic() < deadline and (running(server) or running(dogs[0])):
            time.sleep(0.1)
        assert not running(server), f"the temporary server {server} outlived the killed run"
        assert not running(dogs[0])
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1)
            answered = True
        except httpx.HTTPError:
            answered = False
        assert not answered
    finally:
        if run.poll() is None:
            run.kill()
        if server and running(server):  # keep the machine clean whatever the test found
            os.kill(server, signal.SIGKILL)
        log.close()
