"""The command line exits without the interpreter's teardown, keeping its exit status and its exit handlers."""

import subprocess
import sys

PROBE = """
import atexit, sys
from pathlib import Path
from trainflow.fast_exit import exit_without_teardown

def run():
    print("to stdout, unflushed", end="")
    atexit.register(lambda: Path(sys.argv[2]).write_text("handler ran"))  # as Prefect's log flush would
    if sys.argv[1] == "raise":
        raise RuntimeError("a crash")
    if sys.argv[1] == "usage":
        sys.exit("usage: wrong")
    return int(sys.argv[1])

exit_without_teardown(run)
"""


def _probe(tmp_path, how):
    marker = tmp_path / f"{how}.txt"
    out = subprocess.run([sys.executable, "-c", PROBE, how, str(marker)], capture_output=True, text=True, timeout=120)
    return out, marker


def test_exit_status_output_and_handlers_survive(tmp_path):
    for how, code in (("0", 0), ("4", 4), ("raise", 1), ("usage", 1)):
        out, marker = _probe(tmp_path, how)
        assert out.returncode == code, (how, out.stderr)
        assert out.stdout == "to stdout, unflushed", how
        assert marker.read_text() == "handler ran", how
    assert "RuntimeError: a crash" in _probe(tmp_path, "raise")[0].stderr
    assert "usage: wrong" in _probe(tmp_path, "usage")[0].stderr


def test_console_script_reports_bad_input_with_its_exit_code(tmp_path):
    out = subprocess.run([sys.executable, "-m", "trainflow.flows.cli", "run", str(tmp_path / "missing.yaml")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "missing.yaml" in out.stderr and "does not exist" in out.stderr and "Traceback" not in out.stderr
