"""Batches a monitor scores: which input is the batch, where its outputs go, and the drift history.

A batch is named as a file, a glob (the newest match) or a drop folder (its newest entry: a file, or a
folder of images or clips). Each scored batch gets a folder under ``<runs>/<pipeline>/monitor/`` with
its predictions and drift report, and one line in ``history.jsonl`` there: the pipeline's drift over
time, which the monitor flow publishes as one table artifact.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from trainflow.errors import DataError
from trainflow.files import path_problem

MONITOR_FOLDER = "monitor"
HISTORY_FILE = "history.jsonl"
#: history rows the table artifact shows (the newest)
HISTORY_SHOWN = 200
#: how :func:`batch_folder` names a batch's folder: its UTC time stamp first, so names sort by time
_BATCH_FOLDER = re.compile(r"\d{8}-\d{6}-\d{6}-")


def resolve_batch(batch: str | os.PathLike) -> Path:
    """The input to score: ``batch`` itself when it is a file; the newest match of a glob
    (``incoming/*.csv``); the newest entry of a folder that holds only batches (files or folders).
    A folder of images or clips to score as one batch is named by a glob (``incoming/*/``) or passed to
    ``trainflow predict``. DataError naming ``batch`` when nothing matches or the folder is empty."""
    text = str(batch)
    if glob.has_magic(text):
        matches = [Path(m) for m in glob.glob(text) if not Path(m).name.startswith(".")]
        if not matches:
            raise DataError(f"The batch pattern '{text}' matches no file or folder.")
        return _newest(matches)
    path = Path(text)
    problem = path_problem(path, folder_ok=True)
    if problem:
        raise DataError(f"The batch '{path}' {problem}.")
    if path.is_file():
        return path
    entries = [p for p in path.iterdir() if not p.name.startswith(".")]
    if not entries:
        raise DataError(f"The batch folder '{path}' is empty; expected new data files (the newest is scored).")
    return _newest(entries)


def _newest(paths: list[Path]) -> Path:
    """The most recently modified of ``paths`` (ties: the last by name)."""
    return max(paths, key=lambda p: (p.stat().st_mtime_ns, p.name))


def batch_folder(runs: str | os.PathLike, pipeline: str, batch: Path) -> Path:
    """A new folder for one scored batch: ``<runs>/<pipeline>/monitor/<UTC time>-<batch name>``."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in batch.name)[:60] or "batch"
    folder = Path(runs) / pipeline / MONITOR_FOLDER / f"{stamp}-{safe}"
    folder.mkdir(parents=True)
    return folder


def prune_batch_folders(runs: str | os.PathLike, pipeline: str, keep: int) -> list[Path]:
    """Remove all but the newest ``keep`` batch folders of ``pipeline`` and return the removed ones (oldest
    first). The history keeps its line for every batch. Only folders named as :func:`batch_folder` names
    them are touched: a link, a file or a folder a user put beside them stays. A folder that cannot be
    removed is warned about and left: the batch is scored and its history written by then."""
    import warnings

    root = Path(runs) / pipeline / MONITOR_FOLDER
    if keep < 1 or not root.is_dir():
        return []
    folders = sorted(p for p in root.iterdir()
                     if _BATCH_FOLDER.match(p.name) and not p.is_symlink() and p.is_dir())
    removed = []
    for folder in folders[:-keep]:
        try:
            shutil.rmtree(folder)
        except FileNotFoundError:  # another monitor of the pipeline removed it first
            continue
        except OSError as exc:
            warnings.warn(f"The old batch folder {folder} could not be removed ({exc.strerror}); it is left.",
                          stacklevel=2)
            continue
        removed.append(folder)
    return removed


def history_row(batch: Path, run_dir: Path, rows: list[dict[str, Any]], scored: int, line: str) -> dict[str, Any]:
    """The line a scored batch adds to the history: when, what, which model, what drifted, the worst test."""
    from trainflow.tasks.common.drift import drifted

    tested = [r for r in rows if "p_adjusted" in r]
    worst = min(tested, key=lambda r: r["p_adjusted"], default=None)
    # the columns the UI's table shows first are those that say whether and where the batch drifted
    return {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "batch": batch.name,
            "drifted": len(drifted(rows)), "features": ", ".join(drifted(rows)),
            "worst_feature": worst["feature"] if worst else "",
            "min_p_adjusted": round(worst["p_adjusted"], 6) if worst else None,
            "max_psi": round(max((r.get("psi") or 0.0) for r in tested), 4) if tested else None,
            "rows": scored, "tests": len(tested), "model": run_dir.name, "path": str(batch), "summary": line}


def append_history(runs: str | os.PathLike, pipeline: str, row: dict[str, Any]) -> list[dict[str, Any]]:
    """Append ``row`` to the pipeline's history (one JSON object a line, appended in one write) and return
    the newest :data:`HISTORY_SHOWN` rows; a damaged line is skipped (the history is a log, not a model)."""
    path = Path(runs) / pipeline / MONITOR_FOLDER / HISTORY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    problem = path_problem(path) if os.path.lexists(path) else None
    if problem:  # a FIFO would block the append, a device has no end to read back from
        raise DataError(f"The monitor's history {path} {problem}: move it aside and run the monitor again.")
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row, default=str) + "\n")
    shown = []
    for line in _last_lines(path, HISTORY_SHOWN):
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            shown.append(item)
    return shown


def _last_lines(path: Path, n: int, block: int = 1 << 16) -> list[str]:
    """The last ``n`` lines of ``path``, read from its end: the history grows by a line a batch for
    as long as the monitor runs, and only its tail is shown."""
    with open(path, "rb") as fh:
        end = fh.seek(0, os.SEEK_END)
        start, data = end, b""
        while start > 0 and data.count(b"\n") <= n:
            start = max(0, start - block)
            fh.seek(start)
            data = fh.read(end - start)
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[-n:] if start == 0 else lines[1:][-n:]  # a cut first line is partial
