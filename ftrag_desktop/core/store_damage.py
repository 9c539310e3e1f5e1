"""Damaged index files: found when the engine starts, the damaged index moved aside, a rebuild.

A crash never damages the index: LanceDB commits are atomic, and `store_health` repairs what a
crash leaves between tables.  Damage is a file inside the LanceDB folder truncated or removed
(a disk error, a sync tool, a careless clean-up).  LanceDB then fails on reads, or silently
opens an older version of a table whose newest manifest is gone.  `find_damage` reads every
table the index uses in full, queries its full-text index, and compares each table's version
with the version LanceDB's own hint file names.

`check_at_start` runs that check while holding the writer lock (so no writer races it), unless
the table files are exactly as the last check or the last clean writer left them (a fingerprint
of names, sizes and times, ``verified.json``).  A damaged index is moved to the ``aside`` folder
(one copy: it replaces an older one), a notice is written beside the new, empty index, and the
next sync rebuilds the index from the watched folders.  Only the index folder is touched, never
a user's documents.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from ftrag_desktop.core.store_chunks import is_chunk_table
from ftrag_desktop.core.store_lance import LanceTables
from ftrag_desktop.core.store_lock import WriterLock
from ftrag_desktop.core.store_manifest import DOCUMENTS, META
from ftrag_desktop.core.store_stamp import (
    LOCK_NAME,
    NOTICE_FILE,
    STAMP_FILE,
    fingerprint,
    stamp_matches,
)
from ftrag_desktop.errors import IndexBusyError

__all__ = [
    "LOCK_NAME",
    "check_at_start",
    "clear_notice",
    "find_damage",
    "read_notice",
    "set_aside",
    "write_stamp",
]

log = logging.getLogger(__name__)

REPORT_FILE = "DAMAGE.txt"  # in the aside folder: what was found, and when
HINT = Path("_versions") / "latest_version_hint.json"  # LanceDB's record of the newest version
_STAY = frozenset({LOCK_NAME, NOTICE_FILE})  # never moved aside (the lock is held meanwhile)
_FTS_WORDS = 8
_BATCH_ROWS = 4096


def _label(name: str) -> str:
    if name == DOCUMENTS:
        return "the document list"
    if name == META:
        return "the index settings table"
    return f"the passages table {name}"


def _why(exc: BaseException) -> str:
    """A short reason for people, from a LanceDB error."""
    text = str(exc)
    low = text.lower()
    if "not found" in low or "no such file" in low:
        return "a file is missing"
    if "fill whole buffer" in low or "too small" in low or "invalid range" in low:
        return "a file is cut short"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first[:160]


# ---- the check ----------------------------------------------------------------------------


def _hint_version(index_dir: Path, name: str) -> int | None:
    try:
        data = json.loads((index_dir / f"{name}.lance" / HINT).read_text(encoding="utf-8"))
        return int(data["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no hint (or a torn one): LanceDB itself ignores it then


def _probe_fts(tbl: Any, texts: list[str]) -> None:
    """Query the full-text index with words taken across the table, so that each part of it is
    opened: a removed or truncated index file fails here."""
    words = []
    for text in texts:
        match = re.search(r"[A-Za-z]{3,}", text)
        if match:
            words.append(match.group(0).lower())
    query = " ".join(sorted(set(words))) or "index"
    tbl.search(query, query_type="fts", fts_columns="text").limit(10).to_list()


def _spread(items: list[str], n: int) -> list[str]:
    step = max(1, len(items) // n)
    return items[::step][:n]


def _probe(tables: LanceTables, index_dir: Path, name: str, problems: list[str]) -> int | None:
    """Read one table in full, a batch at a time; its row count, or None (problem recorded)."""
    label = _label(name)
    try:
        tbl = tables.open(name)
        version = int(tbl.version)
        hint = _hint_version(index_dir, name)
        if hint is not None and hint > version:
            problems.append(f"{label}: version {hint} is missing")
            return None
        rows = 0
        texts: list[str] = []
        # Every column of every data file, deletions applied; in batches, so that a large
        # index never sits in memory whole.
        for batch in tbl.search().limit(None).to_batches(_BATCH_ROWS):
            rows += batch.num_rows
            if "text" in batch.schema.names and batch.num_rows:
                column = batch.column(batch.schema.get_field_index("text")).to_pylist()
                texts.extend(_spread([str(t or "") for t in column], _FTS_WORDS))
        counted = int(tbl.count_rows())
        if rows != counted:
            problems.append(f"{label}: {counted} rows recorded, {rows} readable")
            return None
        for idx in tbl.list_indices():
            if idx.index_type == "FTS":
                _probe_fts(tbl, _spread(texts, _FTS_WORDS))
        return rows
    except Exception as exc:  # LanceDB maps its IO errors to RuntimeError, OSError, ValueError
        problems.append(f"{label}: {_why(exc)}")
        return None


def find_damage(index_dir: Path) -> list[str]:
    """What is unreadable in the index at `index_dir`; [] when it is sound (or new).

    Call it with no writer running (`check_at_start` holds the lock).  States a crash can
    leave (a first start cut short, a half-created table nobody refers to yet) are not damage.
    """
    index_dir = Path(index_dir)
    if not any(index_dir.glob("*.lance")):
        return []
    problems: list[str] = []
    try:
        tables = LanceTables(index_dir)
        names = set(tables.names())
    except Exception as exc:
        return [f"the index folder cannot be read: {_why(exc)}"]
    try:
        docs = _probe(tables, index_dir, DOCUMENTS, problems) if DOCUMENTS in names else None
        if DOCUMENTS not in names and META in names:
            problems.append(f"{_label(DOCUMENTS)} is missing")
        if META not in names:
            # A first start cut short leaves no meta and no documents yet: nothing to lose.
            if docs:
                problems.append(f"{_label(META)} is missing")
            return problems
        if _probe(tables, index_dir, META, problems) is None:
            return problems
        rows = tables.read(tables.open(META), ["key", "value"])
        meta = {str(r["key"]): str(r["value"] or "") for r in rows}
        for key in ("active_chunks_table", "building_chunks_table"):
            name = meta.get(key) or ""
            if not name:
                continue
            if not is_chunk_table(name) or name not in names:
                problems.append(f"{_label(name)} is missing")
            else:
                _probe(tables, index_dir, name, problems)
        return problems
    finally:
        tables.forget_all()


# ---- the fingerprint ------------------------------------------------------------------------


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def write_stamp(index_dir: Path) -> None:
    """Record the table files as sound (after a check, or by a writer closing cleanly)."""
    try:
        _write_json(Path(index_dir) / STAMP_FILE, {"fingerprint": fingerprint(Path(index_dir))})
    except OSError as exc:  # a read-only folder: the next start checks again, nothing worse
        log.warning("could not record the index as checked: %s", exc)


# ---- moving a damaged index aside -------------------------------------------------------------


def notice_text(problems: list[str], aside: Path) -> str:
    found = problems[0] + (f"; and {len(problems) - 1} more" if len(problems) > 1 else "")
    return (
        f"The index was damaged ({found}); it is being rebuilt from your documents. "
        f"The damaged copy is kept in {aside} for diagnosis."
    )


def set_aside(index_dir: Path, aside: Path, problems: list[str]) -> str:
    """Move everything in `index_dir` but the writer lock into `aside` (replacing an older
    copy there), and leave the notice for the front ends.  Returns the notice."""
    index_dir, aside = Path(index_dir), Path(aside)
    text = notice_text(problems, aside)
    # The notice goes first: a crash while moving still ends in a rebuild the user is told of.
    _write_json(index_dir / NOTICE_FILE, {"message": text, "problems": problems, "at": time.time()})
    if aside.exists():
        shutil.rmtree(aside)  # only ever our own earlier copy: one copy is kept
    aside.mkdir(parents=True)
    report = [f"Found {time.strftime('%Y-%m-%d %H:%M:%S')} in {index_dir}:", *problems, ""]
    (aside / REPORT_FILE).write_text("\n".join(report), encoding="utf-8")
    for entry in sorted(index_dir.iterdir()):
        if entry.name not in _STAY:
            shutil.move(str(entry), str(aside / entry.name))
    return text


def read_notice(index_dir: Path) -> str | None:
    """The rebuild notice left by `set_aside`, until `clear_notice`."""
    try:
        data = json.loads((Path(index_dir) / NOTICE_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return "The index was damaged; it is being rebuilt from your documents."
    message = data.get("message") if isinstance(data, dict) else None
    return str(message) if message else None


def clear_notice(index_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (Path(index_dir) / NOTICE_FILE).unlink()


def check_at_start(index_dir: Path, aside: Path) -> list[str]:
    """Look for damage and move a damaged index aside; what was found ([] when sound).

    Skipped (returns []) while another process holds the writer lock: that writer checked when
    it started, and a check beside a writer could mistake its work in progress for damage.
    """
    index_dir = Path(index_dir)
    if not any(index_dir.glob("*.lance")):
        return []
    lock = WriterLock(index_dir / LOCK_NAME)
    try:
        lock.acquire()
    except IndexBusyError:
        return []
    try:
        if stamp_matches(index_dir):
            return []
        started = time.monotonic()
        problems = find_damage(index_dir)
        log.info("index check: %s in %.2f s", problems or "sound", time.monotonic() - started)
        if not problems:
            write_stamp(index_dir)
            return []
        log.error("the index is damaged: %s", "; ".join(problems))
        set_aside(index_dir, aside, problems)
        log.error("the damaged index was moved to %s; it will be rebuilt", aside)
        return problems
    finally:
        lock.release()
