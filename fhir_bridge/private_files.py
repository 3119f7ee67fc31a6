"""Files holding PHI or secrets: 0600, in 0700 folders, created atomically.

The data folder holds the SQLite database (PHI), the outbox (message bodies) and the
notification secret; none of them may be readable by other local users, not even for the
moment between creating a file and tightening its mode.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Make ``path`` (and missing parents) a folder only its owner can enter.

    An existing folder that others can read is tightened when we own it; one we do not own
    (a mounted volume, say) is left as it is.
    """
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    _tighten(path, PRIVATE_DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty with mode 0600 unless it exists; tighten an existing one."""
    private_dir(path.parent)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, PRIVATE_FILE_MODE)
    os.close(fd)
    _tighten(path, PRIVATE_FILE_MODE)
    return path


def write_new_private_file(path: Path, text: str) -> bool:
    """Write ``text`` to a new 0600 file at ``path`` in one step; False if it already exists.

    The content goes to a temporary 0600 file in the same folder first, then is linked into
    place, so no reader ever sees the file empty, half-written or with a wider mode.
    """
    private_dir(path.parent)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _tighten(path: Path, mode: int) -> None:
    with contextlib.suppress(OSError):
        if path.stat().st_mode & 0o777 & ~mode:
            path.chmod(mode)
