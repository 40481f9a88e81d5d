"""Objects this process has just written or read, kept by file so the next stage need not read
them back.

Tasks still exchange references (path + digest) and every file is still written, so a retry, a
cached re-run or a task on another worker reads the file as before; only a stage that runs in
the same process right after the one that wrote the file skips the read. An entry is valid only
while the file keeps the size and modification time it had when the entry was made. Holders must
not modify what they get: it is shared with the next reader.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

#: at most this many objects are kept (the oldest goes first): a table, its two splits, a model
MAX_ENTRIES = 4

_entries: OrderedDict[str, tuple[tuple[int, int], Any]] = OrderedDict()
_lock = threading.Lock()


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _key(path: str | os.PathLike) -> str:
    return str(Path(path).resolve())


def remember(path: str | os.PathLike, obj: Any) -> None:
    """Keep ``obj`` as the content of the file ``path`` (call it right after writing or reading it)."""
    stamp = _stamp(Path(path))
    if stamp is None:
        return
    key = _key(path)
    with _lock:
        _entries.pop(key, None)
        _entries[key] = (stamp, obj)
        while len(_entries) > MAX_ENTRIES:
            _entries.popitem(last=False)


def recall(path: str | os.PathLike, keep: bool = True) -> Any | None:
    """What was remembered for ``path`` while the file is unchanged, else None.

    ``keep=False`` forgets it at the same time, for the last stage that needs it (memory).
    """
    key = _key(path)
    with _lock:
        entry = _entries.get(key) if keep else _entries.pop(key, None)
    if entry is None:
        return None
    stamp, obj = entry
    if stamp != _stamp(Path(path)):
        forget(path)
        return None
    return obj


def forget(path: str | os.PathLike) -> None:
    """Drop what is kept for ``path``."""
    with _lock:
        _entries.pop(_key(path), None)


def clear() -> None:
    """Drop everything (tests)."""
    with _lock:
        _entries.clear()
