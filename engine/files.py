"""Files written whole or not at all: a command that fails half-way never leaves a truncated or emptied file.

Every command that writes a file (generate, prepare, export, leaderboard, scenario imports) goes through
`atomic_write`: the data goes to a hidden temporary file in the same folder (so the final move never crosses a file
system), is flushed to disk, and only then replaces the target with `os.replace`, which is atomic on POSIX and
Windows. Until then an existing file keeps its old content; on any error the temporary file is removed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from engine.errors import LabError


def check_writable_folder(path: str | Path, what: str = "") -> Path:
    """`path` as a Path whose folder exists and is writable; otherwise a LabError naming the folder.

    Commands call this before any slow work, so a typo in `--out` costs nothing. The folder is never created:
    a missing folder is more often a mistyped path than a wish.
    """
    path = Path(path)
    label = f"{what} {path}" if what else str(path)
    folder = path.parent
    if not folder.is_dir():
        raise LabError(f"{label}: the folder {folder} does not exist")
    if path.is_dir():
        raise LabError(f"{label}: is a folder, not a file")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise LabError(f"{label}: the folder {folder} is not writable")
    return path


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a stand-in for `path`; on a clean exit it is synced and moved into place, on an error it is removed.

    `mode` is "w" (text, `encoding`) or "wb" (bytes). The temporary file is created with the usual permissions
    (0666 less the umask), so the result looks like a file written with `open(path, "w")`.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write writes whole files: mode 'w' or 'wb', not {mode!r}")
    path = check_writable_folder(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, mode, encoding=None if mode == "wb" else encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    """`Path.write_text`, atomically (UTF-8)."""
    with atomic_write(path) as fh:
        fh.write(text)
