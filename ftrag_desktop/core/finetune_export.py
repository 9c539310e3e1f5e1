"""Training data for the user's own fine-tune, built from evaluation sets and the index.

Input: evaluation-set JSONL files (one question a line; `finetune_input` reads them) and, when
given, the indexed passages.  The index supplies the passage labels the app itself shows and
the distractors; questions always come from evaluation sets (generating them is
``ftrag eval build``'s work), so the corpus alone exports nothing.

Output, one example per question and kind:

- ``qa``: the question alone, as the app asks a model without RAG (`answer.build_plain_prompt`),
  answered with the reference answer;
- ``raft``: the question with numbered sources exactly as the app's RAG prompt quotes them
  (`answer.build_prompt`): the oracle passage among distractor passages, shuffled, answered
  with the reference answer citing the oracle's number ``[n]``.  A fraction of the answerable
  questions (`no_oracle_fraction`) gets distractors only.  RAFT (Zhang et al. 2024) answers
  those with the reference answer anyway, so that the model memorises the domain; this app's
  prompt tells the model to reply ``NO_ANSWER`` when the sources do not say, so by default they
  are answered with that abstention (``no_oracle_answer="answer"`` follows the paper);
- unanswerable questions: ``NO_ANSWER``, in both kinds.

Questions are deduplicated on their normalised text.  The split into training and validation
is seeded and made by source document, so that no document's questions or passages appear on
both sides; distractors for one side are drawn only from documents the other side does not use.
Where that is impossible (one document only) the split falls back to questions and says so.

Nothing here writes beside the user's documents: `check_out_dir` refuses folders inside them.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from ftrag_desktop.core.answer import NO_ANSWER, build_plain_prompt, build_prompt
from ftrag_desktop.core.evalset import EvalItem
from ftrag_desktop.core.finetune_formats import (
    FORMAT_TOOL,
    MANIFEST_FILE,
    METADATA_FILE,
    README_FILE,
    TRAIN_FILE,
    VALID_FILE,
    Format,
    dataset_problems,
    line_problems,
)
from ftrag_desktop.core.finetune_input import (
    EvalSetInvalid,
    read_eval_set,
    read_eval_sets,
)
from ftrag_desktop.core.types import Hit
from ftrag_desktop.errors import UserError

__all__ = [
    "CHARS_PER_TOKEN",
    "Dataset",
    "EvalItem",
    "EvalSetInvalid",
    "Example",
    "ExportLocationError",
    "ExportOptions",
    "Format",
    "Kind",
    "Preview",
    "build_dataset",
    "check_out_dir",
    "cite",
    "default_out_dir",
    "normalise_question",
    "preview",
    "read_eval_set",
    "read_eval_sets",
    "render_lines",
    "write_export",
]

CHARS_PER_TOKEN = 4  # the usual rule of thumb for English text; tokenizers differ
_CITATION = re.compile(r"\s*(?<![\w\])])\[\d+(?:\s*(?:[,;]|-|–)\s*\d+)*\]")
_TRAILING_PUNCT = re.compile(r"[.!?。]+[\"'”’)\]]*$")


class ExportLocationError(UserError):
    """The export folder is unsafe: inside the user's documents, or holding other files."""


class Kind(StrEnum):
    QA = "qa"
    RAFT = "raft"
    BOTH = "both"


# ------------------------------------------------------------------------------ options


@dataclass(frozen=True)
class ExportOptions:
    kind: Kind = Kind.BOTH
    format: Format = Format.CHAT
    val_fraction: float = 0.1
    seed: int = 0
    distractors: int = 4  # RAFT: passages besides the oracle (the app's default k is 6)
    no_oracle_fraction: float = 0.2  # RAFT: answerable questions shown distractors only
    no_oracle_answer: str = "abstain"  # "abstain" (this app's prompt) or "answer" (the paper)
    system_prompt: str = ""  # the settings' system prompt; blank: the app's built-in one

    def problems(self) -> list[str]:
        out: list[str] = []
        if not 0.0 <= self.val_fraction < 1.0:
            out.append("the validation fraction must be at least 0 and below 1")
        if not 0.0 <= self.no_oracle_fraction <= 1.0:
            out.append("the no-oracle fraction must be between 0 and 1")
        if self.distractors < 0:
            out.append("the number of distractors cannot be negative")
        if self.no_oracle_answer not in ("abstain", "answer"):
            out.append("no_oracle_answer must be 'abstain' or 'answer'")
        return out


# ------------------------------------------------------------------------------ examples


@dataclass(frozen=True)
class Example:
    """One training conversation and where it came from (kept out of the training files)."""

    messages: tuple[tuple[str, str], ...]  # (role, content)
    kind: str  # qa | qa-abstain | raft | raft-no-oracle | raft-abstain
    item_id: str
    source_doc: str | None
    oracle_number: int | None = None
    sources: int = 0

    def as_messages(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]


@dataclass
class Dataset:
    train: list[Example] = field(default_factory=list)
    valid: list[Example] = field(default_factory=list)
    duplicates: int = 0  # questions dropped as duplicates
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> questions
    warnings: list[str] = field(default_factory=list)
    leak_free: bool = True  # no document on both sides of the split
    train_docs: list[str] = field(default_factory=list)
    valid_docs: list[str] = field(default_factory=list)


def normalise_question(text: str) -> str:
    """The dedup key: case-folded words, punctuation and spacing ignored."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def strip_citations(text: str) -> str:
    return _CITATION.sub("", text).strip()


def cite(answer: str, number: int) -> str:
    """`answer` citing source `number` the app's way: ``claim [n].``"""
    text = strip_citations(answer)
    end = _TRAILING_PUNCT.search(text)
    if end:
        return f"{text[: end.start()]} [{number}]{text[end.start() :]}"
    return f"{text} [{number}]"


def _item_hit(item: EvalItem) -> Hit:
    return Hit(
        chunk_id=item.source_chunk_id or f"evalset:{item.id}",
        doc_id="",
        path=item.source_doc or "",
        text=item.source_text or "",
        score=0.0,
        page=item.source_page,
    )


def _same_text(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


class _Sources:
    """Oracle passages and the distractor pool, from the index when given, else from the sets."""

    def __init__(self, items: Sequence[EvalItem], corpus: Sequence[Hit] | None) -> None:
        self.from_corpus = corpus is not None
        self.by_id: dict[str, Hit] = {h.chunk_id: h for h in corpus or ()}
        self.stale = 0
        if corpus is not None:
            self.pool = list(corpus)
        else:
            seen: set[tuple[str, str]] = set()
            self.pool = []
            for item in items:
                if item.source_text and item.source_text.strip():
                    hit = _item_hit(item)
                    if (hit.path, hit.chunk_id) not in seen:
                        seen.add((hit.path, hit.chunk_id))
                        self.pool.append(hit)

    def oracle(self, item: EvalItem) -> Hit | None:
        """The item's source passage, labelled as the index labels it when it is unchanged."""
        if not item.source_text or not item.source_text.strip():
            hit = self.by_id.get(item.source_chunk_id or "")
            return hit if hit is not None and hit.text.strip() else None
        hit = self.by_id.get(item.source_chunk_id or "")
        if hit is not None and _same_text(hit.text, item.source_text):
            return hit
        if self.from_corpus:
            self.stale += 1  # the document changed since the set was built: quote the set
        return _item_hit(item)


def _doc_of(item: EvalItem, oracle: Hit | None) -> str | None:
    if oracle is not None and oracle.path:
        return oracle.path
    return item.source_doc or None


def _dedup(items: Sequence[EvalItem]) -> tuple[list[EvalItem], int]:
    seen: set[str] = set()
    kept: list[EvalItem] = []
    for item in items:
        key = normalise_question(item.question)
        if key in seen:
            continue
        seen.add(key)
        kept.append(item)
    return kept, len(items) - len(kept)


def _split(
    items: Sequence[EvalItem], docs: dict[str, str | None], options: ExportOptions
) -> tuple[list[EvalItem], list[EvalItem], bool]:
    """(train, valid, leak_free): whole documents go to one side; questions without a document
    count as a group of their own."""
    groups: dict[str, list[EvalItem]] = {}
    for item in items:
        doc = docs[item.id]
        groups.setdefault(f"doc:{doc}" if doc else f"item:{item.id}", []).append(item)
    target = round(options.val_fraction * len(items))
    if options.val_fraction > 0 and len(items) >= 2:
        target = max(1, target)
    if target == 0:
        return list(items), [], True
    keys = sorted(groups)
    random.Random(f"{options.seed}:split").shuffle(keys)
    valid_keys: set[str] = set()
    size = 0
    for key in keys:
        if size + len(groups[key]) <= target:
            valid_keys.add(key)
            size += len(groups[key])
    leak_free = True
    if not valid_keys:
        smallest = min(keys, key=lambda k: (len(groups[k]), keys.index(k)))
        if len(groups[smallest]) < len(items):
            valid_keys.add(smallest)
        else:  # a single document: split its questions, and say so
            leak_free = False
            shuffled = sorted(items, key=lambda i: i.id)
            random.Random(f"{options.seed}:split").shuffle(shuffled)
            chosen = {i.id for i in shuffled[:target]}
            return (
                [i for i in items if i.id not in chosen],
                [i for i in items if i.id in chosen],
                leak_free,
            )
    train = [i for k in keys if k not in valid_keys for i in groups[k]]
    valid = [i for k in keys if k in valid_keys for i in groups[k]]
    order = {item.id: n for n, item in enumerate(items)}
    return (
        sorted(train, key=lambda i: order[i.id]),
        sorted(valid, key=lambda i: order[i.id]),
        leak_free,
    )


class _Builder:
    def __init__(self, sources: _Sources, options: ExportOptions) -> None:
        self.sources = sources
        self.options = options
        self.short = 0  # RAFT examples that got fewer distractors than asked for

    def qa(self, item: EvalItem) -> Example:
        prompt = build_plain_prompt(item.question, system_prompt=self.options.system_prompt)
        answer = strip_citations(item.answer) if item.answerable else NO_ANSWER
        return self._example(
            prompt.messages, answer, "qa" if item.answerable else "qa-abstain", item, None, 0
        )

    def raft(
        self,
        item: EvalItem,
        oracle: Hit | None,
        with_oracle: bool,
        pool: Sequence[Hit],
    ) -> Example:
        rng = random.Random(f"{self.options.seed}:raft:{item.id}")
        doc = oracle.path if oracle is not None else None
        candidates = [
            h
            for h in pool
            # Never the oracle's own document: its other passages may well say the answer too.
            if not (doc and h.path == doc)
            and not (oracle is not None and _same_text(h.text, oracle.text))
            and h.text.strip()
        ]
        distractors = rng.sample(candidates, min(self.options.distractors, len(candidates)))
        self.short += len(distractors) < self.options.distractors
        hits = [*distractors, oracle] if with_oracle and oracle is not None else distractors
        rng.shuffle(hits)
        prompt = build_prompt(item.question, hits, system_prompt=self.options.system_prompt)
        if not item.answerable:
            return self._example(prompt.messages, NO_ANSWER, "raft-abstain", item, None, len(hits))
        if with_oracle and oracle is not None:
            number = hits.index(oracle) + 1
            return self._example(
                prompt.messages, cite(item.answer, number), "raft", item, number, len(hits)
            )
        answer = (
            strip_citations(item.answer) if self.options.no_oracle_answer == "answer" else NO_ANSWER
        )
        return self._example(prompt.messages, answer, "raft-no-oracle", item, None, len(hits))

    @staticmethod
    def _example(
        messages: list[dict[str, str]],
        answer: str,
        kind: str,
        item: EvalItem,
        number: int | None,
        n_sources: int,
    ) -> Example:
        turns = (*((m["role"], m["content"]) for m in messages), ("assistant", answer))
        return Example(turns, kind, item.id, item.source_doc, number, n_sources)


def build_dataset(
    items: Sequence[EvalItem], corpus: Sequence[Hit] | None, options: ExportOptions
) -> Dataset:
    """Deduplicate, split by document, and build the examples of `options.kind`.

    `corpus` (the index's passages) labels oracles as the app does and supplies distractors;
    without it the other questions' source passages are the distractors.
    """
    bad = options.problems()
    if bad:
        raise UserError("The export options are not valid: " + "; ".join(bad))
    data = Dataset()
    kept, data.duplicates = _dedup(items)
    sources = _Sources(kept, corpus)
    oracles = {item.id: sources.oracle(item) for item in kept if item.answerable}
    docs = {item.id: _doc_of(item, oracles.get(item.id)) for item in kept}
    train, valid, data.leak_free = _split(kept, docs, options)
    data.train_docs = sorted({d for i in train if (d := docs[i.id])})
    data.valid_docs = sorted({d for i in valid if (d := docs[i.id])})
    if not data.leak_free:
        data.warnings.append(
            "All questions come from one document, so the validation questions share it with "
            "the training ones: validation loss will look better than it should."
        )
    builder = _Builder(sources, options)
    for side, own, other_docs in (
        (train, data.train, set(data.valid_docs)),
        (valid, data.valid, set(data.train_docs)),
    ):
        if options.kind in (Kind.QA, Kind.BOTH):
            own.extend(builder.qa(item) for item in side)
        if options.kind in (Kind.RAFT, Kind.BOTH):
            pool = (
                [h for h in sources.pool if h.path not in other_docs]
                if data.leak_free
                else sources.pool
            )
            own.extend(_raft_side(builder, side, oracles, pool, data, options))
    if sources.stale:
        data.warnings.append(
            f"{sources.stale} source passages changed in the index since the set was built; "
            "their text was taken from the set."
        )
    if builder.short:
        data.warnings.append(
            f"{builder.short} RAFT examples have fewer than {options.distractors} distractors: "
            "too few passages outside their document and split"
            + (". Use --corpus to draw them from the index." if corpus is None else ".")
        )
    return data


def _raft_side(
    builder: _Builder,
    side: Sequence[EvalItem],
    oracles: dict[str, Hit | None],
    pool: Sequence[Hit],
    data: Dataset,
    options: ExportOptions,
) -> Iterable[Example]:
    answerable = [i for i in side if i.answerable and oracles.get(i.id) is not None]
    missing = sum(1 for i in side if i.answerable and oracles.get(i.id) is None)
    if missing:
        reason = "no source passage (RAFT needs one)"
        data.skipped[reason] = data.skipped.get(reason, 0) + missing
    order = sorted(i.id for i in answerable)
    random.Random(f"{options.seed}:no-oracle").shuffle(order)
    without = set(order[: round(options.no_oracle_fraction * len(order))])
    for item in side:
        if not item.answerable:
            yield builder.raft(item, None, False, pool)
        elif item.id in oracles and oracles[item.id] is not None:
            yield builder.raft(item, oracles[item.id], item.id not in without, pool)


# ------------------------------------------------------------------------------ output


def render_lines(examples: Sequence[Example]) -> list[str]:
    """One JSON line per example: ``{"messages": [...]}`` and nothing else."""
    return [
        json.dumps({"messages": e.as_messages()}, ensure_ascii=False, separators=(", ", ": "))
        for e in examples
    ]


def _metadata_lines(data: Dataset) -> list[str]:
    out: list[str] = []
    for split, examples in (("train", data.train), ("valid", data.valid)):
        for line, e in enumerate(examples, start=1):
            record = {
                "split": split,
                "line": line,
                "id": e.item_id,
                "kind": e.kind,
                "source_doc": e.source_doc,
                "sources": e.sources,
                "oracle_number": e.oracle_number,
            }
            out.append(json.dumps(record, ensure_ascii=False))
    return out


@dataclass(frozen=True)
class SplitPreview:
    file: str
    examples: int
    bytes: int
    chars: int
    words: int
    approx_tokens: int  # message text characters / CHARS_PER_TOKEN, per example rounded up
    max_example_tokens: int
    kinds: dict[str, int]


@dataclass(frozen=True)
class Preview:
    format: str
    tool: str
    train: SplitPreview
    valid: SplitPreview
    duplicates: int
    skipped: dict[str, int]
    warnings: list[str]
    problems: list[str]  # what the tool would refuse; nothing is written while there are any
    leak_free: bool
    token_rule: str = f"approximate: characters of message text / {CHARS_PER_TOKEN}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _split_preview(name: str, examples: Sequence[Example], lines: Sequence[str]) -> SplitPreview:
    tokens = [math.ceil(sum(len(c) for _r, c in e.messages) / CHARS_PER_TOKEN) for e in examples]
    kinds: dict[str, int] = {}
    for e in examples:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    return SplitPreview(
        file=name,
        examples=len(examples),
        bytes=sum(len(line.encode("utf-8")) + 1 for line in lines),
        chars=sum(len(c) for e in examples for _r, c in e.messages),
        words=sum(len(c.split()) for e in examples for _r, c in e.messages),
        approx_tokens=sum(tokens),
        max_example_tokens=max(tokens, default=0),
        kinds=dict(sorted(kinds.items())),
    )


def preview(data: Dataset, fmt: Format) -> Preview:
    """Counts, sizes and token estimates of exactly the files `write_export` would write."""
    train_lines, valid_lines = render_lines(data.train), render_lines(data.valid)
    problems = dataset_problems(len(train_lines), len(valid_lines), fmt)
    for name, lines in ((TRAIN_FILE, train_lines), (VALID_FILE, valid_lines)):
        for number, line in enumerate(lines, start=1):
            problems.extend(f"{name} line {number}: {p}" for p in line_problems(line, fmt))
    return Preview(
        format=fmt.value,
        tool=FORMAT_TOOL[fmt],
        train=_split_preview(TRAIN_FILE, data.train, train_lines),
        valid=_split_preview(VALID_FILE, data.valid, valid_lines),
        duplicates=data.duplicates,
        skipped=dict(data.skipped),
        warnings=list(data.warnings),
        problems=problems,
        leak_free=data.leak_free,
    )


def default_out_dir(home_root: Path, options: ExportOptions) -> Path:
    """A new folder under the data home: ``<home>/finetune/<time>-<kind>-<format>``."""
    base = Path(home_root) / "finetune"
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{options.kind.value}-{options.format.value}"
    out, n = base / stem, 2
    while out.exists():
        out, n = base / f"{stem}-{n}", n + 1
    return out


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def check_out_dir(out_dir: Path, document_roots: Iterable[Path]) -> Path:
    """The resolved export folder, or `ExportLocationError` if it is unsafe to write there."""
    out = Path(out_dir).expanduser().resolve()
    for root in document_roots:
        root = Path(root).expanduser().resolve()
        if _inside(out, root):
            raise ExportLocationError(
                f"{out} is inside {root}, a folder of your indexed documents.",
                "Training data is never written beside your documents: choose a folder "
                "outside them with --out, or leave --out out to write under the data home.",
            )
    if out.exists() and not out.is_dir():
        raise ExportLocationError(f"{out} is a file, not a folder.", "Choose a folder with --out.")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST_FILE).is_file():
        raise ExportLocationError(
            f"{out} already holds files that are not an earlier export.",
            "Choose an empty or new folder with --out (an earlier export folder is replaced).",
        )
    return out


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8", newline="\n")
    tmp.replace(path)


def write_export(
    data: Dataset,
    out_dir: Path,
    options: ExportOptions,
    *,
    document_roots: Iterable[Path] = (),
    inputs: Sequence[str] = (),
) -> Preview:
    """Write train.jsonl, valid.jsonl, metadata.jsonl, README.md and export.json to `out_dir`.

    Refuses (`ExportLocationError`) a folder inside the documents or holding other files, and
    (`UserError`) a dataset its tool would refuse: nothing is written then.
    """
    from ftrag_desktop.core.finetune_readme import readme_text  # only needed when writing

    result = preview(data, options.format)
    if result.problems:
        raise UserError(
            "The export would not be accepted by "
            f"{result.tool}:\n" + "\n".join(f"  {p}" for p in result.problems[:10]),
            "Add questions to the evaluation set, or change --val-fraction or --format.",
        )
    out = check_out_dir(out_dir, document_roots)
    out.mkdir(parents=True, exist_ok=True)
    for name, lines in (
        (TRAIN_FILE, render_lines(data.train)),
        (VALID_FILE, render_lines(data.valid)),
        (METADATA_FILE, _metadata_lines(data)),
    ):
        _write_text(out / name, "".join(line + "\n" for line in lines))
    _write_text(out / README_FILE, readme_text(result, options, inputs))
    manifest = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "inputs": list(inputs),
        "options": {k: str(v) if isinstance(v, StrEnum) else v for k, v in asdict(options).items()},
        "preview": result.to_dict(),
    }
    _write_text(out / MANIFEST_FILE, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return result
