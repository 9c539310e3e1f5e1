"""Evaluation sets read for the fine-tuning export: a small reader that validates every line.

The line schema and the item type are those of ``core/evalset.py``; this reader only checks and
loads files (it never writes sets), and names every problem of every bad line by its number.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ftrag_desktop.core.evalset import FIELDS, ORIGINS, EvalItem
from ftrag_desktop.errors import UserError

MAX_REPORTED_PROBLEMS = 20


class EvalSetInvalid(UserError):
    """An evaluation-set file has lines that do not fit the schema; `problems` name them."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        shown = problems[:MAX_REPORTED_PROBLEMS]
        more = len(problems) - len(shown)
        lines = "\n".join(f"  {p}" for p in shown) + (f"\n  ... and {more} more" if more else "")
        super().__init__(
            f"{path} is not a usable evaluation set:\n{lines}",
            "Fix or delete those lines (or export the set again from the app), then retry.",
        )
        self.path = path
        self.problems = problems


def _item_problems(obj: Any) -> list[str]:
    if not isinstance(obj, dict):
        return ["not a JSON object"]
    problems: list[str] = []
    for name, types in FIELDS.items():
        if name not in obj:
            problems.append(f"missing '{name}'")
            continue
        value = obj[name]
        # bool is an int in Python: a page of `true` is still wrong.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            problems.append(f"'{name}' must be {names}, not {json.dumps(value)}")
    if problems:
        return problems
    if not obj["id"].strip():
        problems.append("'id' is empty")
    if not obj["question"].strip():
        problems.append("'question' is empty")
    if obj["origin"] not in ORIGINS:
        problems.append(f"'origin' must be one of {', '.join(ORIGINS)}")
    if obj["answerable"] and not obj["answer"].strip():
        problems.append("an answerable question needs an answer")
    if not obj["answerable"] and obj["answer"].strip():
        problems.append("an unanswerable question must have an empty answer")
    return problems


def read_eval_set(path: Path) -> list[EvalItem]:
    """The items of one evaluation-set JSONL file; `EvalSetInvalid` lists every bad line.

    Each line: ``{"id": str, "question": str, "answer": str ("" when unanswerable),
    "answerable": bool, "source_chunk_id": str|null, "source_doc": str|null,
    "source_page": int|null, "source_text": str|null,
    "origin": "generated"|"unanswerable"|"user", "edited": bool}``.  Blank lines are skipped;
    unknown keys are ignored.  An id used twice is an error.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(
            f"Cannot read the evaluation set {path}: {exc}",
            "Check the path, and that the file is UTF-8 JSONL.",
        ) from exc
    items: list[EvalItem] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"line {number}: not JSON ({exc.msg})")
            continue
        found = _item_problems(obj)
        if found:
            problems.append(f"line {number}: {'; '.join(found)}")
            continue
        if obj["id"] in seen:
            problems.append(
                f"line {number}: id {obj['id']!r} already used on line {seen[obj['id']]}"
            )
            continue
        seen[obj["id"]] = number
        items.append(EvalItem(**{name: obj[name] for name in FIELDS}))
    if problems:
        raise EvalSetInvalid(Path(path), problems)
    return items


def read_eval_sets(paths: Sequence[Path]) -> list[EvalItem]:
    """Items of several sets in order; ids are prefixed with the file's stem if they clash."""
    out: list[EvalItem] = []
    ids: set[str] = set()
    for path in paths:
        for item in read_eval_set(path):
            new_id = item.id if item.id not in ids else f"{Path(path).stem}:{item.id}"
            ids.add(new_id)
            out.append(replace(item, id=new_id))
    return out
