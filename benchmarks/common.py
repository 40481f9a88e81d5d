"""What the benchmarks share: the machine's description, A/B runs of metered processes, a
throw-away Prefect server, and writing one section of ``benchmarks/RESULTS.md``."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from meter import T0_ENV, parse_result  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "RESULTS.md"
VERSIONS = ("prefect", "great-expectations", "scikit-learn", "imbalanced-learn", "pandas", "pyarrow", "numpy",
            "skops", "matplotlib")


def machine() -> dict[str, str]:
    """CPU model, cores, memory, OS, Python and library versions, load average now."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    versions = []
    for name in VERSIONS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions.append(f"{name} {metadata.version(name)}")
    return {"cpu": cpu, "cores": str(os.cpu_count()), "memory": mem,
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "versions": ", ".join(versions), "load": load()}


def load() -> str:
    """The 1/5/15-minute load averages, as text."""
    with contextlib.suppress(OSError, AttributeError):
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    return "?"


def elapsed_line(t0: float, c0: float, what: str = "") -> str:
    """A benchmark's closing line: wall and CPU seconds since ``perf_counter`` t0 / ``process_time`` c0
    (``what`` says whose CPU) and the load average after."""
    return (f"wall {time.perf_counter() - t0:.0f} s, CPU {time.process_time() - c0:.0f} s{what}; "
            f"load average after: {load()}")


def machine_lines(m: dict[str, str], load_after: str) -> list[str]:
    return [f"- Machine: {m['cpu']}, {m['cores']} cores, {m['memory']} memory; {m['os']}; Python {m['python']}",
            f"- Versions: {m['versions']}",
            f"- Load average (1/5/15 min) before: {m['load']}; after: {load_after}"]


def run_metered(cmd: list[str], env: dict[str, str] | None = None, cwd: str | None = None,
                timeout: float = 3600, clean_env: bool = False) -> dict:
    """Run a metered script in a fresh process; its figures plus ``wall_s`` seen from outside and
    ``cpu_s``. ``clean_env``: ``env`` is the whole environment, not additions. Runs must not overlap (the CPU time is the change in this process's children's usage)."""
    env = dict(env or {}) if clean_env else {**os.environ, **(env or {})}
    t0 = time.time()
    env[T0_ENV] = repr(t0)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    wall = time.time() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    result = parse_result(proc.stdout)
    result["wall_s"] = wall
    # CPU seconds of the process (and anything it started and waited for): less sensitive to a busy machine
    result["cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def growth_exponent(sizes: list[int], values: list[float]) -> float:
    """Least-squares slope of log(value) on log(size): 1.0 is linear growth."""
    pts = [(math.log(s), math.log(v)) for s, v in zip(sizes, values) if v > 0]
    if len(pts) < 2:
        return float("nan")
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sxx if sxx else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def prefect_server(startup_timeout: float = 240) -> Iterator[dict[str, str]]:
    """A ``prefect server start`` on a free 127.0.0.1 port with its own PREFECT_HOME; yields the
    environment that points runs at it. The server is stopped (and its home removed) afterwards."""
    import urllib.request

    home = tempfile.mkdtemp(prefix="trainflow-bench-prefect-")
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": home, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}
    prefect = Path(sys.executable).with_name("prefect")
    log = open(Path(home) / "server.log", "w")
    proc = subprocess.Popen([str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + startup_timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"prefect server did not start; see {home}/server.log")
            time.sleep(0.5)
        yield {k: env[k] for k in ("PREFECT_HOME", "PREFECT_API_URL", "PREFECT_SERVER_ANALYTICS_ENABLED")}
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        import shutil

        shutil.rmtree(home, ignore_errors=True)


def write_section(title: str, body: list[str], path: Path = RESULTS) -> None:
    """Write ``body`` as the generated block of the ``## title`` section of RESULTS.md, between
    ``<!-- begin generated: title -->`` and ``<!-- end generated: title -->``; everything outside the
    block (other sections, hand-written notes under the same heading) is kept. A section without the
    markers (written by hand, or before they existed) has its text up to its first ``###`` heading
    taken as the generated block; a missing section is appended."""
    text = path.read_text() if path.exists() else "# Benchmark results\n\nFigures measured with the scripts in this folder.\n"
    begin, end = f"<!-- begin generated: {title} -->", f"<!-- end generated: {title} -->"
    block = f"{begin}\n" + "\n".join(body).rstrip() + f"\n{end}\n"
    marked = re.compile(rf"^{re.escape(begin)}\n.*?^{re.escape(end)}\n?", re.M | re.S)
    unmarked = re.compile(rf"^(## {re.escape(title)}\n).*?(?=^### |^## |\Z)", re.M | re.S)
    if marked.search(text):
        text = marked.sub(lambda _: block, text, count=1)
    elif unmarked.search(text):
        text = unmarked.sub(lambda m: m.group(1) + "\n" + block + "\n", text, count=1)
    else:
        text = text.rstrip() + f"\n\n## {title}\n\n" + block
    path.write_text(text.rstrip() + "\n")


def fmt(x: float, digits: int = 2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


STAGES = ["start", "load", "warm-up", "validate", "profile", "split", "fit", "evaluate", "publish", "promote"]


def stage_seconds(run: dict, stage: str) -> float:
    """A stage's wall seconds in one run, whether it ran in sequence or beside the others."""
    return run["seconds"].get(stage, run.get("overlapped", {}).get(stage, 0.0))


def stage_table(plain: list[dict], ours: list[dict], label: str = "trainflow") -> list[str]:
    """Markdown rows: median seconds and peak MB per stage of both sides, and trainflow's task
    overhead (the task call as the flow sees it minus the task function's own time). A stage that
    ran beside the others (``overlapped``) shows its own duration, marked so, and no peak of its own
    (its memory is in the rows of the stages it overlapped); "rest" counts only the sequential ones."""
    lines = [f"| stage | plain s | {label} s | task overhead ms | plain peak MB | {label} peak MB |",
             "|---|---|---|---|---|---|"]

    def med(runs: list[dict], key: str, stage: str) -> str:
        values = [r[key][stage] for r in runs if stage in r[key]]
        if not values and key == "seconds":  # ran beside the sequential stages: its own duration
            values = [r["overlapped"][stage] for r in runs if stage in r.get("overlapped", {})]
            return f"{fmt(median(values))} overlapped" if values else "-"
        return fmt(median(values), 0 if key == "peak_mb" else 2) if values else "-"

    for stage in STAGES:
        if not any(stage in r["seconds"] or stage in r.get("overlapped", {}) for r in plain + ours):
            continue
        own = [stage_seconds(r, stage) - r["own_seconds"][stage] for r in ours if stage in r.get("own_seconds", {})]
        lines.append(f"| {stage} | {med(plain, 'seconds', stage)} | {med(ours, 'seconds', stage)} | "
                     f"{fmt(1000 * median(own), 0) if own else '-'} | {med(plain, 'peak_mb', stage)} | "
                     f"{med(ours, 'peak_mb', stage)} |")
    rest_p = median([r["wall_s"] - sum(r["seconds"].values()) for r in plain])
    rest_t = median([r["wall_s"] - sum(r["seconds"].values()) for r in ours])
    lines.append(f"| rest (between stages, exit) | {fmt(rest_p)} | {fmt(rest_t)} | | | |")
    return lines


def task_overhead_ms(runs: list[dict]) -> float:
    """Median over runs of the mean per-task overhead in ms (tasks: those with a function time)."""
    per_run = []
    for r in runs:
        own = r.get("own_seconds", {})
        if own:
            per_run.append(1000 * sum(stage_seconds(r, s) - own[s] for s in own) / len(own))
    return median(per_run)


def thread_env(threads: int) -> dict[str, str]:
    """Environment that caps OpenMP and BLAS threads in a child process."""
    return {k: str(threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
