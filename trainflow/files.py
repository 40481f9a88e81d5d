"""What a path names, found out before reading a byte of it, and opening files safely.

A device such as ``/dev/zero`` never ends and a FIFO blocks its reader until someone writes, so
both are refused by their type (``stat``), never found out by reading; files under ``/proc`` and
``/sys`` look regular but may block (``/proc/kmsg``) or never end, so they are refused by place. A
symbolic-link loop or a broken link is reported as what it is, not as a missing file.
:func:`open_regular` checks the file it has *opened* (non-blocking, then ``fstat``), so a path
swapped for a FIFO between the check and the open cannot hang the reader either;
:func:`read_capped` reads a whole file only below a size cap.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import IO

#: pseudo-file systems whose "regular" files block or never end
SYSTEM_ROOTS = ("/proc", "/sys")

#: files read whole (documents, configs, vocabularies) are refused above this size
MAX_WHOLE_FILE_BYTES = 1 << 30


def _system_file(path: str | os.PathLike) -> str | None:
    real = os.path.realpath(path)
    for root in SYSTEM_ROOTS:
        if real == root or real.startswith(root + "/"):
            return f"is under {root} (a system file that may block or never end), not a data file"
    return None

#: errors of a write that found no room: a full disk, a used-up quota, a file over the size limit
NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def path_problem(path: str | os.PathLike, folder_ok: bool = False) -> str | None:
    """Why ``path`` cannot be read as a regular file (or as a folder, with ``folder_ok``).

    Returns the end of a sentence such as ``"does not exist"`` or ``"is a FIFO (named pipe), not a
    regular file"``, or None when the path can be read. Never opens the path.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            return f"is a broken symbolic link (to '{os.readlink(path)}')"
        return "does not exist"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symbolic link loop (a link that points back to itself)"
        return f"cannot be read: {exc.strerror}"
    return _mode_problem(mode, folder_ok) or _system_file(path)


def replace_problem(path: str | os.PathLike) -> str | None:
    """Why a file written aside and moved into place (an atomic replace) must not land on ``path``.

    An existing entry that is not a regular file is refused: the replace would turn a folder, a FIFO
    or a device into a regular file instead of writing through it. So is a place under /proc or /sys.
    Returns the end of a sentence, as :func:`path_problem` does, or None for a regular file or a new name.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return _system_file(path)  # a new name (or a broken link, which the replace swaps for the file)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symbolic link loop (a link that points back to itself)"
        return f"cannot be checked: {exc.strerror}"
    return _mode_problem(mode) or _system_file(path)


def _mode_problem(mode: int, folder_ok: bool = False) -> str | None:
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return None if folder_ok else "is a folder; expected a file"
    kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode)
            else "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a file")
    return f"is {kind}, not a regular file"


def open_regular(path: str | os.PathLike, what: str = "file") -> IO[bytes]:
    """``path`` opened for binary reading once it is a regular file outside /proc and /sys.

    Opened non-blocking (a FIFO swapped in after a check cannot block the open) and checked with
    ``fstat`` on what was opened. Raises DataError ``"The <what> '<path>' <problem>."`` otherwise.
    """
    from trainflow.errors import DataError

    problem = path_problem(path)
    if problem is None:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            problem = f"cannot be read: {exc.strerror}"
        else:
            problem = _mode_problem(os.fstat(fd).st_mode)
            if problem is None:
                os.set_blocking(fd, True)  # a regular file: the flag only mattered for the open
                return os.fdopen(fd, "rb")
            os.close(fd)
    raise DataError(f"The {what} '{path}' {problem}.")


def read_capped(path: str | os.PathLike, what: str = "file", limit: int = MAX_WHOLE_FILE_BYTES) -> bytes:
    """The bytes of the regular file ``path`` (:func:`open_regular`), refused with a DataError
    naming it when it is larger than ``limit`` (checked from ``fstat`` before reading)."""
    from trainflow.errors import DataError

    with open_regular(path, what) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > limit:
            raise DataError(f"The {what} '{path}' is {size:,} bytes, more than the {limit:,} trainflow reads "
                            f"whole; it cannot be what it should be.")
        data = fh.read(limit + 1)
    if len(data) > limit:  # grew while read
        raise DataError(f"The {what} '{path}' is larger than the {limit:,} bytes trainflow reads whole.")
    return data


def read_text_capped(path: str | os.PathLike, what: str = "file", encoding: str = "utf-8",
                     limit: int = MAX_WHOLE_FILE_BYTES) -> str:
    """:func:`read_capped` decoded with ``encoding``, newlines translated as ``Path.read_text`` does
    (UnicodeDecodeError when the bytes are not ``encoding`` text)."""
    return read_capped(path, what, limit).decode(encoding).replace("\r\n", "\n").replace("\r", "\n")


def folder_member(folder: str | os.PathLike, name: str, what: str = "model folder", folder_ok: bool = False) -> str:
    """``folder/name`` once ``name`` stays inside ``folder``: a relative path without ``..``, no
    component of it a symbolic link, a regular file (or a folder, with ``folder_ok``) outside
    /proc and /sys. Raises DataError naming ``folder`` and ``name`` otherwise (a model folder is
    shared: what it names must be its own, never ``../../x``, ``/etc/passwd`` or a link out of it)."""
    from trainflow.errors import DataError

    def refuse(why: str) -> DataError:
        return DataError(f"The {what} '{folder}' names '{str(name)[:120]}', which {why}; a model folder may only "
                         f"name files inside it.")

    if not isinstance(name, str) or not name or "\x00" in name:
        raise refuse("is not a file name")
    parts = name.replace("\\", "/").split("/")
    if os.path.isabs(name) or name.startswith(("/", "\\")) or any(p in ("", ".", "..") for p in parts):
        raise refuse("leaves the folder (absolute, or with '..')")
    path = os.path.join(folder, *parts)
    for i in range(1, len(parts) + 1):
        if os.path.islink(os.path.join(folder, *parts[:i])):
            raise refuse("is a symbolic link")
    problem = path_problem(path, folder_ok=folder_ok)
    if problem:
        raise refuse(problem)
    return path
