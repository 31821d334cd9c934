"""Reading a file a user names (a case, a kernel file): a regular file of bounded size, never a
device or a pipe. ``/dev/zero`` would fill memory and a FIFO would block forever; both are
refused before a byte is read."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from perfcost.solver.case.errors import CaseError

#: Largest file read: far above any case or kernel file (the largest shipped is ~50 KiB).
MAX_FILE_BYTES = 16 * 2**20


def read_text(path: Path, field: str = "case") -> str:
    """The UTF-8 text of ``path``. Raises :class:`CaseError` for a path that is not a regular
    file or is larger than :data:`MAX_FILE_BYTES`; ``FileNotFoundError``, other ``OSError``
    and ``UnicodeDecodeError`` propagate for the caller's own message."""
    info = path.stat()  # before opening: opening a FIFO blocks until someone writes to it
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(str(path))
    if not stat.S_ISREG(info.st_mode):
        raise CaseError(field, str(path), "expected a regular file, not a device or a pipe")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)  # a swap for a FIFO after the stat
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise CaseError(field, str(path), "expected a regular file, not a device or a pipe")
        data = fh.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise CaseError(field, str(path),
                        f"expected a file of at most {MAX_FILE_BYTES // 2**20} MiB")
    return data.decode("utf-8")
