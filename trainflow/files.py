"""What a path names, found out before reading a byte of it.

A device such as ``/dev/zero`` never ends and a FIFO blocks its reader until someone writes, so
both are refused by their type (``stat``), never found out by reading. A symbolic-link loop or a
broken link is reported as what it is, not as a missing file.
"""

from __future__ import annotations

import errno
import os
import stat

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
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return None if folder_ok else "is a folder; expected a file"
    kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode)
            else "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a file")
    return f"is {kind}, not a regular file"
