"""Which files below a watched folder are index candidates, and the fast walk that finds them.

`is_ignored` decides by name alone (no file-system access): temporary and partial files that
editors, office suites, browsers and sync tools leave behind while they work, OS litter, and
anything hidden *below* the watched root (a hidden root, such as a temp dir, is fine).
`iter_candidate_files` walks a root with `os.scandir`, one `stat` per file and nothing more, so
that a no-change resync of thousands of files costs only stats.  It never follows symlinked
directories (so symlink loops cannot happen), never raises for a single unreadable or vanished
entry (it reports it through `on_error`), and leaves filtering by extension to the indexer.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

REASON_PERMISSION = "permission denied"
REASON_VANISHED = "vanished during scan"
REASON_BROKEN_LINK = "broken symbolic link"

# Folders skipped wherever they appear below a root (hidden ones, `.git` included, are skipped
# by the leading dot).
_IGNORED_DIRS = frozenset({"__pycache__", "node_modules"})
# Compared against the lower-cased file name: Windows and macOS treat these case-insensitively.
_IGNORED_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})
_IGNORED_SUFFIXES = (
    ".tmp",
    ".temp",
    ".part",
    ".partial",
    ".crdownload",
    ".download",
    ".swp",
    ".swo",
    ".swx",
    "~",
)
# `.~lock*` and `.#*` start with a dot, so the hidden rule covers them too.
_IGNORED_PREFIXES = ("~$", ".~lock", ".#")


def is_ignored_dir_name(name: str) -> bool:
    """True for a folder name whose whole subtree is skipped (hidden, `__pycache__`, ...)."""
    return name.startswith(".") or name in _IGNORED_DIRS


def is_ignored_name(name: str) -> bool:
    """True for a file name that is temporary, partial, hidden or OS litter."""
    if name.startswith(".") or name.startswith(_IGNORED_PREFIXES):
        return True
    lower = name.lower()
    if lower in _IGNORED_NAMES or lower.endswith(_IGNORED_SUFFIXES):
        return True
    # Emacs auto-save files: `#name#`.
    return len(name) >= 2 and name[0] == "#" and name[-1] == "#"


def is_ignored(path: Path, root: Path) -> bool:
    """Whether `path` (a file or folder at or below `root`) is left out of the index.

    Only components *below* `root` are judged, so a root that is itself hidden or inside a
    hidden folder still works.  A path outside `root` is judged by its own name alone.
    """
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        return is_ignored_name(path.name)
    if not parts:
        return False
    if any(is_ignored_dir_name(part) for part in parts[:-1]):
        return True
    last = parts[-1]
    return last in _IGNORED_DIRS or is_ignored_name(last)


def is_ignored_dir(path: Path, root: Path) -> bool:
    """Whether the folder `path` is skipped by the walk (it or a parent below `root` is hidden,
    `__pycache__` or `node_modules`).  Temporary-name rules apply to files only."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        return is_ignored_dir_name(path.name)
    return any(is_ignored_dir_name(part) for part in parts)


def iter_candidate_files(
    root: Path,
    *,
    on_error: Callable[[Path, str], None] | None = None,
    max_depth: int = 64,
) -> Iterator[tuple[Path, os.stat_result]]:
    """Yield `(path, stat)` for every regular file below `root` that `is_ignored` lets through.

    Files of one folder come in name order, before its subfolders (also in name order).  A
    symlinked file is followed when its target is a regular file; a symlinked folder is never
    entered.  Folders more than `max_depth` levels below `root` are not entered.  Problems with
    single entries go to `on_error(path, reason)` and the walk goes on.
    """

    def report(path: Path, reason: str) -> None:
        if on_error is not None:
            on_error(path, reason)

    # Paths are built by joining a name to the folder's Path: parsing each full path string
    # again would cost as much as the stat itself.
    stack: list[tuple[Path, int]] = [(Path(root), 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except PermissionError:
            report(folder, REASON_PERMISSION)
            continue
        except (FileNotFoundError, NotADirectoryError):
            report(folder, REASON_VANISHED)
            continue
        except OSError as exc:
            report(folder, _reason(exc))
            continue

        subfolders: list[Path] = []
        for entry in entries:
            name = entry.name
            try:
                # d_type from the directory listing: no system call on Linux.
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                if is_ignored_dir_name(name):
                    continue
                if depth + 1 > max_depth:
                    report(folder / name, f"more than {max_depth} folders deep; not scanned")
                    continue
                subfolders.append(folder / name)
                continue
            if is_ignored_name(name) or name in _IGNORED_DIRS:
                continue
            try:
                st = entry.stat()  # follows a symlinked file to its target
            except FileNotFoundError:
                is_link = _is_symlink(entry)
                report(folder / name, REASON_BROKEN_LINK if is_link else REASON_VANISHED)
                continue
            except PermissionError:
                report(folder / name, REASON_PERMISSION)
                continue
            except OSError as exc:
                report(folder / name, _reason(exc))
                continue
            if stat.S_ISREG(st.st_mode):
                yield folder / name, st

        for sub in reversed(subfolders):
            stack.append((sub, depth + 1))


def _is_symlink(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_symlink()
    except OSError:
        return False


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()
