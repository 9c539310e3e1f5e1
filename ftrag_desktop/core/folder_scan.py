"""The walk of a watched folder: every supported file under it, with its stat (no LanceDB).

Shared by the full sync (`indexer`) and the no-change shortcut (`quick_sync`), so both see
exactly the same files.  A file's key in the manifest is its absolute path as a string; a name
that is not valid UTF-8 cannot be stored and is reported instead (shown with U+FFFD).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ftrag_desktop.core.ignore import REASON_BAD_NAME, ExcludeRules, iter_candidate_files
from ftrag_desktop.core.parse import is_supported

# Deep enough for any real tree (a 200-level one is indexed); the walk never loops anyway.
SCAN_MAX_DEPTH = 1000


def path_key(path: Path) -> str:
    """The manifest key of a file: its absolute path as a string."""
    return str(path)


def printable(text: str) -> str:
    """`text` with any undecodable file-name bytes shown as U+FFFD (safe to print and store)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(text).decode("utf-8", "replace")
    return text


def scan_folder(
    root: Path, rules: ExcludeRules, report: Callable[[Path, str], None]
) -> dict[str, tuple[Path, os.stat_result]]:
    """The supported, not excluded files under `root` by key; problems go to `report`."""
    disk: dict[str, tuple[Path, os.stat_result]] = {}
    if printable(str(root)) != str(root):  # no path below it could be stored
        report(root, f"folder {REASON_BAD_NAME}")
        return disk
    for path, st in iter_candidate_files(
        root,
        on_error=report,
        rules=rules,
        accept=lambda name: is_supported(Path(name)),
        max_depth=SCAN_MAX_DEPTH,
    ):
        disk[path_key(path)] = (path, st)
    return disk
