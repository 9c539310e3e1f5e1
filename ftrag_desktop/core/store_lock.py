"""The writer lock of an index directory: the OS file lock that makes one process the writer.

The lock file holds the writer's pid, so a second process can say who is indexing.  The OS
releases the lock when the process dies, so a crash never leaves the index locked.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO

from ftrag_desktop.errors import IndexBusyError

__all__ = ["WriterLock"]


class WriterLock:
    """An OS file lock held for the life of the writer; released by the OS if the process dies."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._file: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def acquire(self) -> None:
        if self._file is not None:
            return
        f = open(self._path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release()
        try:
            self._lock(f)
        except OSError:
            f.seek(0)
            pid = f.read().strip() or "unknown"
            f.close()
            raise IndexBusyError(
                f"Another ftrag process is indexing this library (pid {pid}).",
                "Wait for it to finish or close it, then try again.",
            ) from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._file = f

    def release(self) -> None:
        if self._file is None:
            return
        try:
            self._unlock(self._file)
        finally:
            self._file.close()
            self._file = None

    # The lock covers one byte far past the pid text, so that on Windows (mandatory locks)
    # another process can still read the pid.
    if sys.platform == "win32":

        @staticmethod
        def _lock(f: IO[str]) -> None:
            import msvcrt

            f.seek(1 << 20)
            msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)

        @staticmethod
        def _unlock(f: IO[str]) -> None:
            import msvcrt

            f.seek(1 << 20)
            msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)

    else:

        @staticmethod
        def _lock(f: IO[str]) -> None:
            import fcntl

            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

        @staticmethod
        def _unlock(f: IO[str]) -> None:
            import fcntl

            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
