"""Evaluation sets: the records, their JSONL form, review operations and versioned storage.

An evaluation set is a named list of `EvalItem`s: questions with a reference answer and the
chunk that grounds it (answerable), or questions on topics the documents do not cover
(unanswerable, reference answer ""), plus the user's own.  Building one from the index is
`evalset_build.build_evalset`; this module keeps them.

**The JSONL line** (one item per line, UTF-8) is fixed, because the fine-tuning exporter reads
it too::

    {"id": str, "question": str, "answer": str ("" when unanswerable), "answerable": bool,
     "source_chunk_id": str|null, "source_doc": str|null (file path), "source_page": int|null,
     "source_text": str|null (the chunk text when generated),
     "origin": "generated"|"unanswerable"|"user", "edited": bool}

Import checks every line against it and reports each bad line by number (`EvalSetError`).

**Storage** is under ``<home>/evalsets/<name>/``: every save writes a new version
(``v0001.jsonl``, ``v0002.jsonl``, ...) beside a small ``vNNNN.json`` with when and how it was
made; old versions are kept and can be loaded.  A version is claimed with a hard link of a
finished temporary file, so a crash never leaves half a version and two savers never share a
number.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ftrag_desktop.errors import UserError
from ftrag_desktop.paths import Home

__all__ = [
    "FIELDS",
    "ORIGINS",
    "EvalItem",
    "EvalSet",
    "EvalSetError",
    "EvalSetStore",
    "VersionInfo",
    "evalsets_dir",
    "items_from_jsonl",
    "items_to_jsonl",
    "read_jsonl",
    "write_jsonl",
]

ORIGINS = ("generated", "unanswerable", "user")
FIELDS: dict[str, tuple[type, ...]] = {
    "id": (str,),
    "question": (str,),
    "answer": (str,),
    "answerable": (bool,),
    "source_chunk_id": (str, type(None)),
    "source_doc": (str, type(None)),
    "source_page": (int, type(None)),
    "source_text": (str, type(None)),
    "origin": (str,),
    "edited": (bool,),
}
MAX_REPORTED_LINES = 10
_NAME = re.compile(r"[A-Za-z0-9][\w.-]{0,63}")
_VERSION_FILE = re.compile(r"v(\d{4,})\.jsonl")
_NAME_HINT = "Use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit."


class EvalSetError(UserError):
    """An evaluation set that cannot be read, found, saved or changed as asked."""


def evalsets_dir(home: Home) -> Path:
    """Where the evaluation sets of a data home live (created on first use)."""
    path = home.root / "evalsets"
    path.mkdir(parents=True, exist_ok=True)
    return path


def new_item_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass
class EvalItem:
    """One question of a set; see the module docstring for the meaning of each field."""

    id: str
    question: str
    answer: str
    answerable: bool = True
    source_chunk_id: str | None = None
    source_doc: str | None = None
    source_page: int | None = None
    source_text: str | None = None
    origin: str = "user"
    edited: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The fixed JSONL line, keys in schema order."""
        return {name: getattr(self, name) for name in FIELDS}

    @classmethod
    def from_dict(cls, raw: object) -> EvalItem:
        """Raises ValueError saying what is wrong with `raw` (a parsed JSONL line)."""
        if not isinstance(raw, Mapping):
            raise ValueError("not a JSON object")
        missing = [name for name in FIELDS if name not in raw]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        for name, types in FIELDS.items():
            value = raw[name]
            # bool is an int in Python: a page of `true` is not a page number.
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                wanted = " or ".join("null" if t is type(None) else t.__name__ for t in types)
                raise ValueError(f"{name} must be {wanted}, not {json.dumps(value)[:40]}")
        item = cls(**{name: raw[name] for name in FIELDS})
        item.check()
        return item

    def check(self) -> None:
        """Raises ValueError when the fields contradict each other."""
        if not self.id.strip():
            raise ValueError("id is empty")
        if not self.question.strip():
            raise ValueError("question is empty")
        if self.origin not in ORIGINS:
            raise ValueError(f"origin must be one of {', '.join(ORIGINS)}, not {self.origin!r}")
        if self.answerable and not self.answer.strip():
            raise ValueError("an answerable question needs an answer")
        if not self.answerable and self.answer:
            raise ValueError('an unanswerable question has the answer ""')
        if self.source_page is not None and self.source_page < 1:
            raise ValueError("source_page must be 1 or more")


@dataclass(frozen=True)
class VersionInfo:
    """One saved version of a set, as listed without reading its items."""

    name: str
    version: int
    saved_at: float
    note: str
    items: int
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalSet:
    """A named list of items; `version` 0 means not saved yet.  `info` says how it was built
    (model, seed, rejection counts) and is saved with each version."""

    name: str
    items: list[EvalItem] = field(default_factory=list)
    version: int = 0
    info: dict[str, Any] = field(default_factory=dict)
    saved_at: float = 0.0
    note: str = ""

    @property
    def answerable(self) -> list[EvalItem]:
        return [i for i in self.items if i.answerable]

    @property
    def unanswerable(self) -> list[EvalItem]:
        return [i for i in self.items if not i.answerable]

    def item(self, item_id: str) -> EvalItem:
        for it in self.items:
            if it.id == item_id:
                return it
        raise EvalSetError(
            f"There is no question '{item_id}' in the set '{self.name}'.",
            "It may have been deleted; reload the set.",
        )

    # ---- review ----------------------------------------------------------------------------

    def edit(
        self,
        item_id: str,
        *,
        question: str | None = None,
        answer: str | None = None,
        answerable: bool | None = None,
    ) -> EvalItem:
        """Change a question; it is marked `edited`.  Making it unanswerable clears its answer.
        Raises `EvalSetError` for an unknown id or a change that leaves it invalid."""
        old = self.item(item_id)
        new = replace(
            old,
            question=old.question if question is None else question.strip(),
            answer=old.answer if answer is None else answer.strip(),
            answerable=old.answerable if answerable is None else answerable,
            edited=True,
        )
        if not new.answerable:
            new.answer = ""
        _checked(new)
        self.items[self.items.index(old)] = new
        return new

    def delete(self, item_id: str) -> EvalItem:
        old = self.item(item_id)
        self.items.remove(old)
        return old

    def add(
        self,
        question: str,
        answer: str = "",
        *,
        answerable: bool = True,
        source_doc: str | None = None,
        source_page: int | None = None,
    ) -> EvalItem:
        """A question of the user's own (`origin` "user")."""
        item = EvalItem(
            id=new_item_id(),
            question=question.strip(),
            answer=answer.strip() if answerable else "",
            answerable=answerable,
            source_doc=source_doc,
            source_page=source_page,
            origin="user",
        )
        _checked(item)
        self.items.append(item)
        return item


def _checked(item: EvalItem) -> None:
    try:
        item.check()
    except ValueError as exc:
        raise EvalSetError(f"That question cannot be saved: {exc}.", "Fix it, then save.") from exc


# ---- JSONL ---------------------------------------------------------------------------------


def items_to_jsonl(items: Iterable[EvalItem]) -> str:
    return "".join(json.dumps(i.to_dict(), ensure_ascii=False) + "\n" for i in items)


def items_from_jsonl(text: str, *, origin: str = "the file") -> list[EvalItem]:
    """Parse and check every line; blank lines are skipped.  Raises `EvalSetError` listing
    the bad lines by number (the first `MAX_REPORTED_LINES` of them)."""
    items: list[EvalItem] = []
    problems: list[str] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = EvalItem.from_dict(json.loads(line))
            if item.id in seen:
                raise ValueError(f"id {item.id!r} is used twice")
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            problems.append(f"line {number}: {exc}")
            continue
        seen.add(item.id)
        items.append(item)
    if problems:
        shown = problems[:MAX_REPORTED_LINES]
        more = len(problems) - len(shown)
        listing = "; ".join(shown) + (f"; and {more} more" if more else "")
        raise EvalSetError(
            f"{len(problems)} line(s) of {origin} are not evaluation questions: {listing}.",
            'Each line must be one JSON object with the keys "id", "question", "answer", '
            '"answerable", "source_chunk_id", "source_doc", "source_page", "source_text", '
            '"origin" and "edited" (see the README).',
        )
    return items


def write_jsonl(evalset: EvalSet, path: Path) -> None:
    """Export a set's items to `path` (the fixed line schema)."""
    try:
        _atomic_write(Path(path), items_to_jsonl(evalset.items))
    except OSError as exc:
        raise EvalSetError(
            f"Cannot write {path}: {exc.strerror or exc}.", "Choose another file."
        ) from exc


def read_jsonl(path: Path, name: str) -> EvalSet:
    """Import a JSONL file as a new, unsaved set called `name`."""
    _check_name(name)
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise EvalSetError(
            f"Cannot read {path}: {reason}.", "Choose a UTF-8 JSONL file of questions."
        ) from exc
    items = items_from_jsonl(text, origin=path.name)
    if not items:
        raise EvalSetError(f"{path} holds no questions.", "Choose a file with at least one line.")
    return EvalSet(name, items, info={"imported_from": str(path)})


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise EvalSetError(f"'{name}' cannot be the name of an evaluation set.", _NAME_HINT)


# ---- storage -------------------------------------------------------------------------------


class EvalSetStore:
    """The saved sets of one data home, every version kept."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def for_home(cls, home: Home) -> EvalSetStore:
        return cls(evalsets_dir(home))

    def names(self) -> list[str]:
        """The sets that have at least one version, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self._numbers(p))

    def versions(self, name: str) -> list[VersionInfo]:
        """Every saved version of `name`, oldest first (empty when there is none)."""
        folder = self.root / name
        return [self._info(name, folder, n) for n in self._numbers(folder)]

    def latest(self, name: str) -> int:
        numbers = self._numbers(self.root / name)
        if not numbers:
            known = ", ".join(self.names()) or "none yet"
            raise EvalSetError(
                f"There is no evaluation set '{name}'.",
                f"Build one with `ftrag eval build {name}` or import one (saved sets: {known}).",
            )
        return numbers[-1]

    def version_path(self, name: str, version: int) -> Path:
        """The JSONL file of one saved version (what `ftrag export-finetune --from` reads)."""
        _check_name(name)
        return self.root / name / f"v{version:04d}.jsonl"

    def load(self, name: str, version: int | None = None) -> EvalSet:
        """A saved version (the latest when `version` is None)."""
        _check_name(name)
        number = self.latest(name) if version is None else version
        folder = self.root / name
        path = folder / f"v{number:04d}.jsonl"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            have = ", ".join(str(n) for n in self._numbers(folder)) or "none"
            raise EvalSetError(
                f"The set '{name}' has no version {number}.", f"Saved versions: {have}."
            ) from exc
        except OSError as exc:
            raise EvalSetError(
                f"Cannot read {path}: {exc.strerror or exc}.", "Check the data folder."
            ) from exc
        info = self._info(name, folder, number)
        items = items_from_jsonl(text, origin=f"{name} version {number}")
        return EvalSet(name, items, number, dict(info.info), info.saved_at, info.note)

    def save(self, evalset: EvalSet, *, note: str = "") -> EvalSet:
        """Save the items as a new version; returns the set with its new version number."""
        _check_name(evalset.name)
        for item in evalset.items:
            _checked(item)
        folder = self.root / evalset.name
        saved_at = time.time()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".save.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
            tmp.write_text(items_to_jsonl(evalset.items), encoding="utf-8")
            try:
                number = self._claim(folder, tmp)
            finally:
                tmp.unlink(missing_ok=True)
            meta = {
                "version": number,
                "saved_at": saved_at,
                "note": note,
                "items": len(evalset.items),
                "info": evalset.info,
            }
            _atomic_write(folder / f"v{number:04d}.json", json.dumps(meta, indent=1) + "\n")
        except OSError as exc:
            raise EvalSetError(
                f"The set '{evalset.name}' could not be saved: {exc.strerror or exc}.",
                f"Check that {self.root} is writable and the disk is not full.",
            ) from exc
        return replace(
            evalset, items=list(evalset.items), version=number, saved_at=saved_at, note=note
        )

    @staticmethod
    def _claim(folder: Path, tmp: Path) -> int:
        """Link the finished file in as the next free version number."""
        numbers = EvalSetStore._numbers(folder)
        number = (numbers[-1] if numbers else 0) + 1
        while True:
            try:
                os.link(tmp, folder / f"v{number:04d}.jsonl")
                return number
            except FileExistsError:
                number += 1

    @staticmethod
    def _numbers(folder: Path) -> list[int]:
        if not folder.is_dir():
            return []
        found = (_VERSION_FILE.fullmatch(p.name) for p in folder.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    @staticmethod
    def _info(name: str, folder: Path, number: int) -> VersionInfo:
        meta: dict[str, Any] = {}
        try:
            raw = json.loads((folder / f"v{number:04d}.json").read_text(encoding="utf-8"))
            meta = raw if isinstance(raw, dict) else {}
        except (OSError, ValueError):
            pass  # a version whose sidecar was lost still loads, with defaults
        info = meta.get("info")
        return VersionInfo(
            name=name,
            version=number,
            saved_at=float(meta.get("saved_at") or 0.0),
            note=str(meta.get("note") or ""),
            items=int(meta.get("items") or 0),
            info=dict(info) if isinstance(info, dict) else {},
        )
