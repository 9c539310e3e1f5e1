"""Building an evaluation set from the user's indexed chunks with the local model.

`build_evalset(engine, name, options)` yields progress events and ends with `BuildFinished`,
which carries the new, *unsaved* `EvalSet` (the user reviews it, then `EvalSetStore.save`).

**Answerable questions.**  The indexed chunks are put in a stratified order: grouped by
document, shuffled within each document and the documents shuffled too (all with
`random.Random(seed)`), then taken round-robin, so every document gets its turn before any
gets a second one.  For each chunk in turn the model writes one question with a short
reference answer, as JSON (Ollama's `format` with a schema).  A candidate is rejected, with
the reason counted, when:

- the reply is not a question and an answer ("unparseable"), or the question is too short;
- it points at "the passage"/"the text" instead of standing on its own ("not self-contained");
- fewer than `GROUNDED_OVERLAP` of the answer's content words are in the chunk ("answer not
  in the source"): the model made it up;
- it duplicates an accepted question (normalised text, or word-bigram Jaccard, see
  `eval_metrics.near_duplicate`);
- **closed-book check**: the same model, asked the question *without* the chunk, already
  gives the reference answer: key-fact containment (`eval_metrics.containment`) of its reply
  against the reference is at least `closed_book_threshold` and the reply does not abstain.
  Such a question measures what the model knows, not what the documents add.

It stops at `questions` accepted or after `max_attempts` chunks.

**Unanswerable questions.**  The model is asked for general-knowledge questions on topics
unrelated to the documents (their titles are in the prompt).  Each is kept only when
retrieval finds no good hit for it: no passage among the top `top_k` contains
`UNANSWERABLE_MAX_OVERLAP` (three quarters) or more of the question's content words.  A lower
bar would drop "What is the capital of Mongolia?" from a folder that mentions some capital.
When the model gives too few usable ones (small models repeat themselves), the rest come from
`FALLBACK_UNANSWERABLE`, a short built-in list of such questions, checked the same way;
`info["unanswerable_from_list"]` says how many.

Cancelling (`cancel.set()`) ends the build after the current model call with what was
accepted so far (`BuildFinished.cancelled`).  Nothing here touches Qt.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ftrag_desktop.core.engine import Engine
from ftrag_desktop.core.eval_metrics import (
    containment,
    content_words,
    is_abstention,
    near_duplicate,
    overlap,
)
from ftrag_desktop.core.evalset import EvalItem, EvalSet, EvalSetError
from ftrag_desktop.core.llm import OllamaClient
from ftrag_desktop.core.retrieve import Retriever
from ftrag_desktop.core.store import Store
from ftrag_desktop.core.store_chunks import HEADING_SEP

__all__ = [
    "FALLBACK_UNANSWERABLE",
    "BuildEvent",
    "BuildFinished",
    "BuildOptions",
    "BuildProgress",
    "BuildStarted",
    "CorpusChunk",
    "QuestionAccepted",
    "QuestionRejected",
    "build_evalset",
    "corpus_chunks",
    "stratified_order",
]

GROUNDED_OVERLAP = 0.5
UNANSWERABLE_MAX_OVERLAP = 0.75
MIN_QUESTION_WORDS = 2
_SELF_REFERENCE = re.compile(
    r"\b(?:the|this|that|given|above|provided) (?:passage|text|excerpt|paragraph|document|"
    r"source|article|snippet|context)\b",
    re.IGNORECASE,
)
QA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
    "required": ["question", "answer"],
}
QUESTIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"questions": {"type": "array", "items": {"type": "string"}}},
    "required": ["questions"],
}
QUESTION_SYSTEM = (
    "You write quiz questions that test whether someone has read a passage. "
    "Reply with JSON only, like "
    '{"question": "What temperature should green tea water be?", "answer": "80 degrees"}. '
    "The question must make sense on its own, without the passage: name the subject, and never "
    'say "the passage" or "the text". The answer is a short phrase taken from the passage.'
)
CLOSED_BOOK_SYSTEM = "Answer the question in one short sentence. If you do not know, say so."
UNANSWERABLE_SYSTEM = (
    "You write short general-knowledge questions. Reply with JSON only, like "
    '{"questions": ["Who painted the Mona Lisa?", "What is the capital of Peru?"]}.'
)
# Questions about topics a personal document folder is unlikely to cover; used only when the
# model offers too few usable ones, and checked against the index like the generated ones.
FALLBACK_UNANSWERABLE: tuple[str, ...] = (
    "Who painted the ceiling of the Sistine Chapel?",
    "What is the capital city of Mongolia?",
    "In which year did the Apollo 11 mission land on the Moon?",
    "What is the chemical symbol for tungsten?",
    "Which composer wrote the opera The Magic Flute?",
    "How many players are on the field for one side in a rugby union match?",
    "What is the tallest mountain in Africa?",
    "Who wrote the novel One Hundred Years of Solitude?",
    "What is the main ingredient of a traditional Spanish gazpacho?",
    "Which planet has the moon Titan?",
    "What currency is used in Switzerland?",
    "Which river flows through Budapest?",
)


@dataclass(frozen=True)
class CorpusChunk:
    """One indexed passage, as generation needs it."""

    chunk_id: str
    doc_id: str
    path: str
    title: str
    text: str
    ordinal: int = 0
    page: int | None = None
    heading: str = ""


@dataclass(frozen=True)
class BuildOptions:
    """How to build a set.  `model` "" means the settings' chat model."""

    questions: int = 20
    unanswerable: int = 5
    model: str = ""
    seed: int = 0
    closed_book_filter: bool = True
    closed_book_threshold: float = 0.6
    min_chunk_chars: int = 200
    max_attempts: int = 0  # chunks to try at most; 0: three per wanted question
    num_predict: int = 200
    temperature: float = 0.3


@dataclass(frozen=True)
class BuildStarted:
    documents: int
    chunks: int  # chunks long enough to ask about
    questions: int  # wanted
    unanswerable: int  # wanted


@dataclass(frozen=True)
class BuildProgress:
    """`stage` "answerable" or "unanswerable": `done` accepted of `wanted`, `tried` so far."""

    stage: str
    done: int
    wanted: int
    tried: int


@dataclass(frozen=True)
class QuestionAccepted:
    item: EvalItem


@dataclass(frozen=True)
class QuestionRejected:
    question: str
    reason: str  # one of the reasons in the module docstring
    detail: str = ""
    chunk_id: str | None = None


@dataclass(frozen=True)
class BuildFinished:
    evalset: EvalSet  # not saved yet
    rejected: dict[str, int] = field(default_factory=dict)
    cancelled: bool = False
    seconds: float = 0.0


BuildEvent = BuildStarted | BuildProgress | QuestionAccepted | QuestionRejected | BuildFinished


def corpus_chunks(store: Store) -> list[CorpusChunk]:
    """Every passage of the active index, ordered by path and position."""
    columns = ["id", "doc_id", "path", "title", "ordinal", "page", "heading", "text"]

    # Store has no public "all chunks" read yet; this is the same read `chunk_texts` does,
    # for every document at once and with the columns generation needs.
    def read(tbl: Any, _model: str, _dim: int) -> list[dict[str, Any]]:
        return store._db.read(tbl, columns)

    empty: list[dict[str, Any]] = []
    rows = store._with_active(read, empty)
    chunks = [
        CorpusChunk(
            chunk_id=str(r["id"]),
            doc_id=str(r["doc_id"]),
            path=str(r["path"] or ""),
            title=str(r["title"] or ""),
            text=str(r["text"] or ""),
            ordinal=int(r["ordinal"] or 0),
            page=int(r["page"]) if r["page"] is not None else None,
            heading=str(r["heading"] or ""),
        )
        for r in rows
    ]
    return sorted(chunks, key=lambda c: (c.path, c.ordinal))


def stratified_order(chunks: Sequence[CorpusChunk], seed: int) -> list[CorpusChunk]:
    """Round-robin over documents (in a seeded random order), each document's chunks in a
    seeded random order: the first n chunks cover min(n, documents) documents."""
    rng = random.Random(seed)
    by_doc: dict[str, list[CorpusChunk]] = {}
    for chunk in sorted(chunks, key=lambda c: (c.path, c.ordinal)):
        by_doc.setdefault(chunk.doc_id, []).append(chunk)
    groups = [by_doc[d] for d in sorted(by_doc, key=lambda d: by_doc[d][0].path)]
    for group in groups:
        rng.shuffle(group)
    rng.shuffle(groups)
    ordered: list[CorpusChunk] = []
    for turn in range(max((len(g) for g in groups), default=0)):
        ordered.extend(g[turn] for g in groups if turn < len(g))
    return ordered


def build_evalset(
    engine: Engine,
    name: str,
    options: BuildOptions | None = None,
    *,
    cancel: threading.Event | None = None,
) -> Iterator[BuildEvent]:
    """Build a set from the index; see the module docstring.  Raises `EvalSetError` before
    anything runs when the index has no passages to ask about."""
    options = options or BuildOptions()
    chunks = corpus_chunks(engine.store)
    if not chunks and options.questions > 0:
        raise EvalSetError(
            "The index has no passages to ask questions about.",
            "Index a folder first (`ftrag index <folder>`).",
        )
    return _Builder(engine, name, options, chunks, cancel or threading.Event()).run()


class _Builder:
    def __init__(
        self,
        engine: Engine,
        name: str,
        options: BuildOptions,
        chunks: list[CorpusChunk],
        cancel: threading.Event,
    ) -> None:
        self.engine = engine
        self.client: OllamaClient = engine.client
        self.name = name
        self.options = options
        self.model = options.model or engine.settings.chat_model
        self.chunks = chunks
        self.cancel = cancel
        self.items: list[EvalItem] = []
        self.rejected: Counter[str] = Counter()
        self.calls = 0

    def run(self) -> Iterator[BuildEvent]:
        started = time.monotonic()
        o = self.options
        long_enough = [c for c in self.chunks if len(c.text.strip()) >= o.min_chunk_chars]
        pool = long_enough or [c for c in self.chunks if c.text.strip()]
        yield BuildStarted(len({c.doc_id for c in pool}), len(pool), o.questions, o.unanswerable)
        yield from self._answerable(pool)
        from_list = 0
        if not self.cancel.is_set():
            from_list = yield from self._unanswerable()
        info = {
            "built_with": self.model,
            "seed": o.seed,
            "questions_wanted": o.questions,
            "unanswerable_wanted": o.unanswerable,
            "closed_book_filter": o.closed_book_filter,
            "closed_book_threshold": o.closed_book_threshold,
            "rejected": dict(self.rejected),
            "unanswerable_from_list": from_list,
            "documents": len({c.doc_id for c in pool}),
            "model_calls": self.calls,
        }
        evalset = EvalSet(self.name, list(self.items), info=info)
        yield BuildFinished(
            evalset, dict(self.rejected), self.cancel.is_set(), time.monotonic() - started
        )

    # ---- answerable --------------------------------------------------------------------

    def _answerable(self, pool: list[CorpusChunk]) -> Iterator[BuildEvent]:
        o = self.options
        wanted = o.questions
        attempts = o.max_attempts or 3 * wanted
        for tried, chunk in enumerate(stratified_order(pool, o.seed)[:attempts], 1):
            if len(self.items) >= wanted or self.cancel.is_set():
                break
            outcome = self._question_for(chunk)
            if isinstance(outcome, EvalItem):
                self.items.append(outcome)
                yield QuestionAccepted(outcome)
            else:
                self.rejected[outcome.reason] += 1
                yield outcome
            done = sum(i.answerable for i in self.items)
            yield BuildProgress("answerable", done, wanted, tried)

    def _question_for(self, chunk: CorpusChunk) -> EvalItem | QuestionRejected:
        label = chunk.title or chunk.path.rsplit("/", 1)[-1]
        if chunk.heading:
            label += f" > {chunk.heading.replace(HEADING_SEP, ' > ')}"
        user = (
            f"Passage (from {label}):\n{chunk.text.strip()}\n\n"
            "Write one question that this passage answers, and its short answer, as JSON."
        )
        reply = self._complete(
            [{"role": "system", "content": QUESTION_SYSTEM}, {"role": "user", "content": user}],
            QA_SCHEMA,
        )
        parsed = parse_question_reply(reply)
        cid = chunk.chunk_id
        if parsed is None:
            return QuestionRejected("", "unparseable", reply[:200], cid)
        question, answer = parsed
        if len(content_words(question)) < MIN_QUESTION_WORDS or not answer:
            return QuestionRejected(question, "too short", answer, cid)
        if _SELF_REFERENCE.search(question):
            return QuestionRejected(question, "not self-contained", "", cid)
        grounded = overlap(answer, chunk.text)
        if grounded < GROUNDED_OVERLAP:
            return QuestionRejected(
                question, "answer not in the source", f"{answer} ({grounded:.0%} in the chunk)", cid
            )
        if any(near_duplicate(question, i.question) for i in self.items):
            return QuestionRejected(question, "duplicate", "", cid)
        if self.options.closed_book_filter and not self.cancel.is_set():
            closed = self._complete(
                [
                    {"role": "system", "content": CLOSED_BOOK_SYSTEM},
                    {"role": "user", "content": question},
                ],
                None,
            )
            score = containment(closed, answer)
            if score >= self.options.closed_book_threshold and not is_abstention(closed):
                return QuestionRejected(
                    question,
                    "answerable without the source",
                    f"without the passage the model said {closed.strip()[:120]!r} "
                    f"({score:.0%} of the reference's key words)",
                    cid,
                )
        return EvalItem(
            id=_stable_id(cid, question),
            question=question,
            answer=answer,
            answerable=True,
            source_chunk_id=cid,
            source_doc=chunk.path,
            source_page=chunk.page,
            source_text=chunk.text,
            origin="generated",
        )

    # ---- unanswerable ------------------------------------------------------------------

    def _unanswerable(self) -> Generator[BuildEvent, None, int]:
        """Yields events; returns how many came from the built-in list."""
        wanted = self.options.unanswerable
        if wanted <= 0:
            return 0
        retriever = self.engine.retriever()
        k = self.engine.settings.top_k
        titles = sorted({c.title or c.path.rsplit("/", 1)[-1] for c in self.chunks})[:12]
        tried = 0
        offered: list[str] = []
        for _round in range(3):
            if self._unanswerable_count() >= wanted or self.cancel.is_set():
                break
            user = (
                f"My documents are about: {'; '.join(titles) or 'nothing yet'}.\n"
                f"Write {wanted + 2} general-knowledge questions on completely different "
                "topics, each with one short factual answer, as JSON."
            )
            reply = self._complete(
                [
                    {"role": "system", "content": UNANSWERABLE_SYSTEM},
                    {"role": "user", "content": user},
                ],
                QUESTIONS_SCHEMA,
            )
            offered = [q for q in parse_questions_reply(reply) if q not in offered]
            for question in offered:
                if self._unanswerable_count() >= wanted or self.cancel.is_set():
                    break
                tried += 1
                yield from self._try_unanswerable(question, retriever, k, "generated")
                yield BuildProgress("unanswerable", self._unanswerable_count(), wanted, tried)
        from_list = 0
        for question in FALLBACK_UNANSWERABLE:
            if self._unanswerable_count() >= wanted or self.cancel.is_set():
                break
            tried += 1
            before = self._unanswerable_count()
            yield from self._try_unanswerable(question, retriever, k, "list")
            from_list += self._unanswerable_count() - before
            yield BuildProgress("unanswerable", self._unanswerable_count(), wanted, tried)
        return from_list

    def _try_unanswerable(
        self, question: str, retriever: Retriever, k: int, where: str
    ) -> Iterator[BuildEvent]:
        if len(content_words(question)) < MIN_QUESTION_WORDS:
            self.rejected["too short"] += 1
            yield QuestionRejected(question, "too short")
            return
        if any(near_duplicate(question, i.question) for i in self.items):
            self.rejected["duplicate"] += 1
            yield QuestionRejected(question, "duplicate")
            return
        hits = retriever.search(question, k=k).hits
        best = max((overlap(question, h.text) for h in hits), default=0.0)
        if best >= UNANSWERABLE_MAX_OVERLAP:
            self.rejected["covered by the documents"] += 1
            yield QuestionRejected(
                question,
                "covered by the documents",
                f"a retrieved passage holds {best:.0%} of its key words",
            )
            return
        item = EvalItem(
            id=_stable_id(f"unanswerable:{where}", question),
            question=question,
            answer="",
            answerable=False,
            origin="unanswerable",
        )
        self.items.append(item)
        yield QuestionAccepted(item)

    def _unanswerable_count(self) -> int:
        return sum(not i.answerable for i in self.items)

    # ---- the model ---------------------------------------------------------------------

    def _complete(self, messages: list[dict[str, str]], schema: dict[str, Any] | None) -> str:
        o = self.options
        self.calls += 1
        options: dict[str, Any] = {
            "num_predict": o.num_predict,
            "temperature": o.temperature,
            "seed": o.seed + self.calls,
        }
        pieces: list[str] = []
        stream = self.client.chat_stream(self.model, messages, options=options, format=schema)
        try:
            for delta in stream:
                pieces.append(delta.content)
                if self.cancel.is_set():
                    break
        finally:
            stream.close()
        return "".join(pieces)


def _stable_id(key: str, question: str) -> str:
    return hashlib.sha1(f"{key}\n{question}".encode()).hexdigest()[:12]


def _json_object(reply: str) -> Any:
    text = reply.strip()
    try:
        return json.loads(text)
    except ValueError:
        pass
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        try:
            return json.loads(text[start : end + 1])
        except ValueError:
            return None
    return None


def _tidy_question(text: str) -> str:
    question = " ".join(text.split()).strip(" \"'")
    if question and not question.endswith("?"):
        question += "?"
    return question


def parse_question_reply(reply: str) -> tuple[str, str] | None:
    """(question, answer) from a generation reply: JSON, or "Question: ... Answer: ..." text."""
    obj = _json_object(reply)
    if isinstance(obj, dict):
        q, a = obj.get("question"), obj.get("answer")
        if isinstance(q, str) and isinstance(a, str | int | float) and q.strip():
            return _tidy_question(q), " ".join(str(a).split()).strip(" \"'")
    match = re.search(r"question\s*:\s*(.+?)\s*answer\s*:\s*(.+)", reply, re.I | re.S)
    if match:
        question = _tidy_question(match.group(1))
        answer = " ".join(match.group(2).split()).strip(" \"'")
        return (question, answer) if question else None
    return None


def parse_questions_reply(reply: str) -> list[str]:
    """The questions of an unanswerable-generation reply: JSON, else lines ending in '?'."""
    obj = _json_object(reply)
    raw: list[Any] = []
    if isinstance(obj, dict) and isinstance(obj.get("questions"), list):
        raw = obj["questions"]
    elif isinstance(obj, list):
        raw = obj
    else:
        raw = [ln for ln in reply.splitlines() if ln.strip().endswith("?")]
    out: list[str] = []
    for q in raw:
        if isinstance(q, str):
            tidy = _tidy_question(re.sub(r"^\s*(?:\d+[.)]|[-*])\s*", "", q))
            if tidy and tidy not in out:
                out.append(tidy)
    return out
