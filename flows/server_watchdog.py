"""A temporary Prefect server that does not outlive the run that started it.

Prefect starts its temporary server (``SubprocessASGIServer``) as a child process and stops it from
an ``atexit`` hook, which never runs when the run is killed outright (``kill -9``, the OOM killer):
the server then lives on under init, ~200 MB each. A parent-death signal (``PR_SET_PDEATHSIG``) in
the child would fire when the *thread* that started it ends, and Prefect may start the server from a
worker thread, so instead a tiny watchdog process beside the server polls its own parent pid; when
the run is gone it stops the server (SIGTERM, then SIGKILL), and it exits on its own once the server
has stopped normally.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

#: seconds between the watchdog's checks (the delay before an orphaned server is stopped)
POLL_S = 0.5
#: seconds an orphaned server has to stop on SIGTERM before it is killed
GRACE_S = 5.0

WATCHDOG = f"""
import os, signal, sys, time
parent, server = int(sys.argv[1]), int(sys.argv[2])

def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

while os.getppid() == parent:  # reparented: the run is gone
    if not alive(server):  # stopped and reaped by the run itself
        sys.exit(0)
    time.sleep({POLL_S})
if alive(server):
    os.kill(server, signal.SIGTERM)
    deadline = time.monotonic() + {GRACE_S}
    while alive(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(server):
        os.kill(server, signal.SIGKILL)
"""


def start_watchdog(server_pid: int) -> subprocess.Popen[Any]:
    """Start the watchdog of the server process ``server_pid`` (a child of this process); ``-S -I``:
    no site packages and no environment, so it starts in milliseconds and imports nothing of ours."""
    import os

    return subprocess.Popen([sys.executable, "-S", "-I", "-c", WATCHDOG, str(os.getpid()), str(server_pid)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def install() -> None:
    """Make every temporary server Prefect starts in this process get a watchdog (idempotent)."""
    from prefect.server.api.server import SubprocessASGIServer

    if getattr(SubprocessASGIServer, "_trainflow_watchdog", False):
        return
    start, stop = SubprocessASGIServer._run_uvicorn_command, SubprocessASGIServer.stop

    def run_uvicorn_command(self: Any) -> subprocess.Popen[Any]:
        process = start(self)
        old = getattr(self, "_trainflow_watchdogs", [])
        self._trainflow_watchdogs = [*old, start_watchdog(process.pid)]  # a restart on another port adds one
        return process

    def stop_with_watchdog(self: Any) -> None:
        try:
            stop(self)
        finally:  # the server is reaped: each watchdog sees it gone and exits; reap them too
            for dog in getattr(self, "_trainflow_watchdogs", []):
                dog.terminate()
                dog.wait()
            self._trainflow_watchdogs = []

    SubprocessASGIServer._run_uvicorn_command = run_uvicorn_command
    SubprocessASGIServer.stop = stop_with_watchdog
    SubprocessASGIServer._trainflow_watchdog = True
