"""The no-change shortcut of a one-shot sync (`ftrag index`): answered without opening the index.

A sync that finds nothing to do spends most of its time before it starts: importing LanceDB and
pyarrow and opening the tables take about four times as long as comparing 5,000 files with
the manifest.  So after a complete sync, once the writer has closed cleanly, the command
records what that sync saw (`record`): every file's size and modification time, the index's
fingerprint (`store_stamp`) as the clean writer left it, and the settings.  The next run over
the same folder first asks `unchanged`, which takes the shortcut only when all of this still
holds:

- no other process holds the writer lock, and no rebuild of a damaged index is pending;
- the index files are exactly as that clean writer left them: no commit, compaction, or file
  truncated or removed since (the start-up damage check would be skipped for the same reason);
- the settings, the parser version and the app version are the same;
- the folder holds exactly the recorded files, each with the recorded size and modification
  time (the same test the full sync makes before it reads a file), and its walk reports no
  problem (an unreadable folder, a name that is not UTF-8).

Anything else, and the full sync runs as before (and records again).  This module imports only
the standard library, the settings and the folder walk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ftrag_desktop import __version__
from ftrag_desktop.config import Settings
from ftrag_desktop.core.events import SyncSummary
from ftrag_desktop.core.folder_scan import scan_folder
from ftrag_desktop.core.ignore import ExcludeRules
from ftrag_desktop.core.parse import PARSER_VERSION
from ftrag_desktop.core.store_lock import WriterLock
from ftrag_desktop.core.store_stamp import (
    LOCK_NAME,
    NOTICE_FILE,
    fingerprint,
    recorded_fingerprint,
)
from ftrag_desktop.errors import IndexBusyError

__all__ = ["RECORD_DIR", "record", "settings_key", "unchanged"]

log = logging.getLogger(__name__)

RECORD_DIR = "quick-sync"  # in the index folder, beside the tables (outside the fingerprint)
_FORMAT = 1


def settings_key(settings: Settings) -> str:
    """A digest of everything that could make a sync do something different."""
    doc = {
        "settings": asdict(settings),
        "parser": PARSER_VERSION,
        "app": __version__,
        "format": _FORMAT,
    }
    text = json.dumps(doc, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _record_path(index_dir: Path, root: Path) -> Path:
    name = hashlib.sha256(os.fsencode(str(root))).hexdigest()[:32]
    return index_dir / RECORD_DIR / f"{name}.json"


def record(
    index_dir: Path,
    root: Path,
    files: Mapping[str, tuple[int, int]],
    settings: str,
    embedding: str,
) -> bool:
    """Remember a complete sync of `root` (call it after the writer closed cleanly): `files`
    maps each file's key to its size and modification time (ns) as that sync saw them.  True
    if recorded; nothing is recorded unless the clean writer's fingerprint is current."""
    index_dir = Path(index_dir)
    stamp = recorded_fingerprint(index_dir)
    if stamp is None or (index_dir / NOTICE_FILE).exists() or stamp != fingerprint(index_dir):
        return False
    path = _record_path(index_dir, root)
    doc = {
        "format": _FORMAT,
        "root": str(root),
        "fingerprint": stamp,
        "settings": settings,
        "embedding": embedding,
        "files": sorted([key, size, mtime] for key, (size, mtime) in files.items()),
    }
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(exist_ok=True)
        tmp.write_text(json.dumps(doc), encoding="utf-8")
        os.replace(tmp, path)
    except (OSError, ValueError) as exc:  # a read-only folder: the next run syncs in full
        log.warning("could not record the sync for the no-change shortcut: %s", exc)
        return False
    return True


def _load(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("format") == _FORMAT else None


def unchanged(index_dir: Path, root: Path, settings: Settings) -> SyncSummary | None:
    """The summary of a sync of `root` that changes nothing, if one provably would; else None
    (then run the full sync)."""
    started = time.monotonic()
    index_dir = Path(index_dir)
    if not root.is_dir():
        return None  # the full sync says what is wrong
    doc = _load(_record_path(index_dir, root))
    if doc is None or doc.get("root") != str(root) or (index_dir / NOTICE_FILE).exists():
        return None
    if doc.get("settings") != settings_key(settings):
        return None
    lock = WriterLock(index_dir / LOCK_NAME)
    try:
        lock.acquire()  # no writer may change the index while we compare
    except (IndexBusyError, OSError):
        return None
    try:
        stamp = doc.get("fingerprint")
        if stamp != recorded_fingerprint(index_dir) or stamp != fingerprint(index_dir):
            return None
        problems: list[tuple[Path, str]] = []
        rules = ExcludeRules.parse(tuple(settings.excluded_patterns), strict=False)
        disk = scan_folder(root, rules, lambda path, why: problems.append((path, why)))
        files = doc.get("files")
        if problems or not isinstance(files, list) or len(files) != len(disk):
            return None
        for entry in files:
            key, size, mtime = entry
            found = disk.get(key)
            if found is None or (found[1].st_size, found[1].st_mtime_ns) != (size, mtime):
                return None
    finally:
        lock.release()
    return SyncSummary(
        root=str(root),
        unchanged=len(disk),
        seconds=time.monotonic() - started,
        embedding=str(doc.get("embedding") or ""),
    )
