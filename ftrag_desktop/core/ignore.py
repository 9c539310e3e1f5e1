"""Which files below a watched folder are index candidates, and the fast walk that finds them.

`is_ignored` decides by name alone (no file-system access): temporary and partial files that
editors, office suites, browsers and sync tools leave behind while they work, OS litter, and
anything hidden *below* the watched root (a hidden root, such as a temp dir, is fine).
`iter_candidate_files` walks a root with `os.scandir`, one `stat` per file and nothing more, so
that a no-change resync of thousands of files costs only stats.  It never follows symlinked
directories and never enters a folder twice (a bind mount of an ancestor is seen by its device
and inode), so loops cannot happen; a symlinked file is yielded only when its target is not
already reachable under its own name.  It never raises for a single unreadable or vanished
entry (it reports it through `on_error`), nor for a name that is not valid UTF-8 (reported and
skipped: such a name cannot be stored or shown faithfully).  Filtering by extension is the
caller's `accept`, applied before any `stat`.

`ExcludeRules` adds the user's own exclusions (the "Excluded patterns" setting) on top of the
built-in ones, in gitignore syntax, matched against the path relative to each watched folder:
`*.log` and `drafts/` match at any depth, `/archive` only at the top of the folder, `**` spans
folders, `!keep.md` re-includes (but not inside an excluded folder, as in git), `#` starts a
comment.  Matching ignores case: the same folder may live on a case-insensitive disk.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

REASON_PERMISSION = "permission denied"
REASON_VANISHED = "vanished during scan"
REASON_BROKEN_LINK = "broken symbolic link"
REASON_BAD_NAME = "name is not valid UTF-8; rename it to index it"
REASON_PATH_TOO_LONG = "path too long for the operating system"
_SPECIAL_KINDS = {
    stat.S_IFIFO: "a named pipe",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}

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


# ---- the user's exclusions (gitignore syntax) ---------------------------------------------

# Names that every real library holds: a single pattern that excludes all of them is a mistake.
_SAMPLE_DOCUMENTS = ("notes.md", "paper.pdf", "a/b/report.docx", "letter.txt")
# A backslash before one of these escapes it; before a letter or digit it is almost certainly
# a Windows path separator, which gitignore syntax does not have.
_ESCAPABLE = frozenset(" #!*?[]\\")


class PatternError(ValueError):
    """A pattern that cannot be understood; `str()` says why, for people."""


@dataclass(frozen=True)
class _Rule:
    pattern: str
    regex: re.Pattern[str]
    negate: bool
    dir_only: bool


def _class_end(seg: str, i: int) -> int:
    """The index of the `]` closing the class that opens at `seg[i]`, or -1."""
    j = i + 1
    if j < len(seg) and seg[j] in "!^":
        j += 1
    if j < len(seg) and seg[j] == "]":  # a `]` right after `[` (or `[!`) is literal
        j += 1
    while j < len(seg) and seg[j] != "]":
        j += 1
    return j if j < len(seg) else -1


def _segment_regex(seg: str) -> str:
    """One path component of a pattern as a regex (`*` and `?` never cross a `/`)."""
    out: list[str] = []
    i = 0
    while i < len(seg):
        c = seg[i]
        if c == "*":
            while i + 1 < len(seg) and seg[i + 1] == "*":
                i += 1
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = _class_end(seg, i)
            if end < 0:
                raise PatternError("it has a '[' without its closing ']' (write \\[ for a '[').")
            body = seg[i + 1 : end]
            negate = body[:1] in ("!", "^")
            if negate:
                body = body[1:]
            chars = "".join("-" if ch == "-" else re.escape(ch) for ch in body)
            out.append(f"[^/{chars}]" if negate else f"[{chars}]")
            i = end
        elif c == "\\":
            if i + 1 >= len(seg):
                raise PatternError("it ends with a backslash.")
            nxt = seg[i + 1]
            if nxt not in _ESCAPABLE:
                raise PatternError(
                    "separate folders with '/', not '\\' (a backslash escapes the next character)."
                )
            out.append(re.escape(nxt))
            i += 1
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _strip(pattern: str) -> str:
    """Surrounding blanks removed, except a trailing space escaped with a backslash."""
    text = pattern.lstrip()
    while text.endswith((" ", "\t")) and not text.endswith("\\ "):
        text = text[:-1]
    return text


def compile_pattern(pattern: str) -> _Rule | None:
    """One gitignore-style line as a rule; None for a blank line or a comment.

    Raises `PatternError` when the line cannot be understood.
    """
    text = _strip(pattern)
    if not text or text.startswith("#"):
        return None
    negate = text.startswith("!")
    if negate or text.startswith(("\\#", "\\!")):  # `\#` and `\!` start a literal name
        text = text[1:]
    dir_only = text.endswith("/")
    text = text.rstrip("/")
    anchored = "/" in text
    text = text.lstrip("/")
    if not text:
        raise PatternError("it names no file or folder.")
    if "\0" in text:
        raise PatternError("it contains a NUL character.")
    segments = text.split("/")
    regex = ""
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == "**":
            # `a/**` is everything inside a; `**/b` and `a/**/b` span zero or more folders.
            regex += (".+" if i else ".*") if last else "(?:[^/]+/)*"
            continue
        if not seg:
            raise PatternError("it has an empty folder name ('//').")
        regex += _segment_regex(seg) + ("" if last else "/")
    prefix = "" if anchored else "(?:.*/)?"
    try:
        compiled = re.compile(f"^{prefix}{regex}$", re.IGNORECASE | re.DOTALL)
    except re.error as exc:  # defensive: the translation above escapes everything else
        raise PatternError(f"it cannot be read ({exc}).") from exc
    return _Rule(pattern.strip(), compiled, negate, dir_only)


def pattern_problem(pattern: str) -> str | None:
    """Why one line of the excluded patterns is unusable, or None when it is fine."""
    try:
        rule = compile_pattern(pattern)
    except PatternError as exc:
        return str(exc)
    if rule is not None and not rule.negate and all(rule.regex.match(p) for p in _SAMPLE_DOCUMENTS):
        return "it would exclude every document."
    return None


class ExcludeRules:
    """The user's excluded patterns, compiled; the last matching line decides, as in git."""

    def __init__(self, rules: Sequence[_Rule] = ()) -> None:
        self._rules = tuple(rules)

    @classmethod
    def parse(cls, patterns: Iterable[str], *, strict: bool = True) -> ExcludeRules:
        """Compile `patterns`; a bad one raises `PatternError`, or is skipped (and logged)
        when `strict` is false: a hand-edited settings file must not stop indexing."""
        rules: list[_Rule] = []
        for pattern in patterns:
            try:
                rule = compile_pattern(pattern)
            except PatternError as exc:
                if strict:
                    raise PatternError(f"'{pattern.strip()}': {exc}") from exc
                log.warning("excluded pattern %r skipped: %s", pattern, exc)
                continue
            if rule is not None:
                rules.append(rule)
        return cls(rules)

    def __bool__(self) -> bool:
        return bool(self._rules)

    @property
    def patterns(self) -> tuple[str, ...]:
        return tuple(r.pattern for r in self._rules)

    def matches(self, rel: str, *, is_dir: bool) -> bool:
        """Whether the path `rel` (relative to the root, `/`-separated) itself is excluded.

        Its parent folders are not looked at: the walk never enters an excluded folder, and
        `excludes` checks them for a single path.
        """
        excluded = False
        for rule in self._rules:
            if rule.dir_only and not is_dir:
                continue
            if rule.regex.match(rel):
                excluded = not rule.negate
        return excluded

    def excludes(self, parts: Sequence[str], *, is_dir: bool = False) -> bool:
        """Whether the path with these components below the root, or a folder above it, is
        excluded (a file inside an excluded folder cannot be re-included, as in git)."""
        if not self._rules or not parts:
            return False
        for depth in range(1, len(parts)):
            if self.matches("/".join(parts[:depth]), is_dir=True):
                return True
        return self.matches("/".join(parts), is_dir=is_dir)


NO_EXCLUSIONS = ExcludeRules()


def is_ignored(path: Path, root: Path, rules: ExcludeRules = NO_EXCLUSIONS) -> bool:
    """Whether `path` (a file or folder at or below `root`) is left out of the index.

    Only components *below* `root` are judged, so a root that is itself hidden or inside a
    hidden folder still works.  A path outside `root` is judged by its own name alone.
    `rules` (the user's exclusions) judge `path` as a file, and its parents as folders.
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
    return last in _IGNORED_DIRS or is_ignored_name(last) or rules.excludes(parts)


def is_ignored_dir(path: Path, root: Path, rules: ExcludeRules = NO_EXCLUSIONS) -> bool:
    """Whether the folder `path` is skipped by the walk (it or a parent below `root` is hidden,
    `__pycache__` or `node_modules`, or excluded by `rules`).  Temporary-name rules apply to
    files only."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        return is_ignored_dir_name(path.name)
    return any(is_ignored_dir_name(part) for part in parts) or rules.excludes(parts, is_dir=True)


def iter_candidate_files(
    root: Path,
    *,
    on_error: Callable[[Path, str], None] | None = None,
    max_depth: int = 64,
    rules: ExcludeRules = NO_EXCLUSIONS,
    accept: Callable[[str], bool] | None = None,
) -> Iterator[tuple[Path, os.stat_result]]:
    """Yield `(path, stat)` for every regular file below `root` that `is_ignored` lets through
    (with the same `rules`; an excluded folder is not entered at all) and whose name `accept`
    takes (all names when it is None; others are not even stat'ed, and never reported).

    Files of one folder come in name order, before its subfolders (also in name order).  A
    symlinked file is followed when its target is a regular file, and yielded after all the
    other files, unless that target is itself yielded (or another link to it was): each file
    is indexed once.  A symlinked folder is never entered, and no folder is entered twice.
    Folders more than `max_depth` levels below `root` are not entered.  Problems with single
    entries go to `on_error(path, reason)` and the walk goes on: unreadable or vanished ones,
    names that are not valid UTF-8, and accepted names that are not regular files (a named
    pipe called `notes.txt` is reported, never opened).
    """

    def report(path: Path, reason: str) -> None:
        if on_error is not None:
            on_error(path, reason)

    seen_files: set[tuple[int, int]] = set()  # (device, inode) of every file yielded
    seen_folders: set[tuple[int, int]] = set()
    links: list[tuple[Path, os.stat_result]] = []  # symlinked files, judged at the end
    # Paths are built by joining a name to the folder's Path: parsing each full path string
    # again would cost as much as the stat itself.
    # Each folder travels with its path relative to the root ("" for the root, else "a/b/"),
    # which is what the user's rules are matched against.
    stack: list[tuple[Path, int, str]] = [(Path(root), 0, "")]
    while stack:
        folder, depth, rel = stack.pop()
        try:
            folder_st = os.stat(folder)
            identity = (folder_st.st_dev, folder_st.st_ino)
            if identity in seen_folders:  # a bind mount (or hard link) back into the walk
                continue
            seen_folders.add(identity)
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

        subfolders: list[tuple[Path, str]] = []
        for entry in entries:
            name = entry.name
            try:
                # d_type from the directory listing: no system call on Linux.
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                if is_ignored_dir_name(name) or (rules and rules.matches(rel + name, is_dir=True)):
                    continue
                if not _valid_name(name):
                    report(folder / name, f"folder {REASON_BAD_NAME}")
                    continue
                if depth + 1 > max_depth:
                    report(folder / name, f"more than {max_depth} folders deep; not scanned")
                    continue
                subfolders.append((folder / name, f"{rel}{name}/"))
                continue
            if is_ignored_name(name) or name in _IGNORED_DIRS:
                continue
            if accept is not None and not accept(name):
                continue
            if rules and rules.matches(rel + name, is_dir=False):
                continue
            if not _valid_name(name):
                report(folder / name, f"file {REASON_BAD_NAME}")
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
                if _is_symlink(entry):
                    links.append((folder / name, st))
                    continue
                seen_files.add((st.st_dev, st.st_ino))
                yield folder / name, st
                continue
            kind = _SPECIAL_KINDS.get(stat.S_IFMT(st.st_mode))
            if kind is not None:  # a symlinked folder (S_IFDIR) is skipped silently
                report(folder / name, f"not a regular file ({kind})")

        for sub, sub_rel in reversed(subfolders):
            stack.append((sub, depth + 1, sub_rel))

    for path, st in links:
        identity = (st.st_dev, st.st_ino)
        if identity not in seen_files:
            seen_files.add(identity)
            yield path, st


def _valid_name(name: str) -> bool:
    """False for a name whose bytes are not UTF-8 (decoded with surrogate escapes on POSIX)."""
    if name.isascii():
        return True
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_symlink(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_symlink()
    except OSError:
        return False


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENAMETOOLONG:
        return REASON_PATH_TOO_LONG
    return (exc.strerror or str(exc)).lower()
