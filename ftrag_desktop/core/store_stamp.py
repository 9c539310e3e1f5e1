"""The index folder's fingerprint, and the names of its bookkeeping files (standard library only).

A digest of every table file's path, size and modification time.  The last clean writer
records it in ``verified.json`` (see `store_damage`); it changes with any commit, compaction,
or a file of the index truncated or removed.  Kept apart from `store_damage` so that a command
can compare it without importing LanceDB (`quick_sync`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

LOCK_NAME = "writer.lock"
NOTICE_FILE = "rebuild-notice.json"  # beside the new index until a sync has rebuilt it
STAMP_FILE = "verified.json"  # the fingerprint of the table files last known sound


def fingerprint(index_dir: Path) -> str:
    """A digest of every table file's path, size and modification time."""
    entries: list[str] = []
    for table in sorted(index_dir.glob("*.lance")):
        for dirpath, _dirs, files in os.walk(table):
            for name in files:
                path = Path(dirpath) / name
                with contextlib.suppress(OSError):
                    st = path.stat()
                    rel = path.relative_to(index_dir).as_posix()
                    entries.append(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(sorted(entries)).encode("utf-8")).hexdigest()


def recorded_fingerprint(index_dir: Path) -> str | None:
    """The fingerprint in ``verified.json``: the files as last checked or cleanly written."""
    try:
        data = json.loads((index_dir / STAMP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = data.get("fingerprint") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def stamp_matches(index_dir: Path) -> bool:
    recorded = recorded_fingerprint(index_dir)
    return recorded is not None and recorded == fingerprint(index_dir)
