"""Evaluation sets: generation from the index (against the Ollama-protocol test server), the
checks that drop bad questions, stratified sampling, review, versions and the JSONL schema."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ftrag_desktop.config import Settings
from ftrag_desktop.core import evalset_build as eb
from ftrag_desktop.core.answer import NO_ANSWER, SYSTEM_PROMPT
from ftrag_desktop.core.engine import Engine
from ftrag_desktop.core.evalset import (
    FIELDS,
    EvalItem,
    EvalSet,
    EvalSetError,
    EvalSetStore,
    items_from_jsonl,
    items_to_jsonl,
    read_jsonl,
    write_jsonl,
)
from ftrag_desktop.core.evaluate import JUDGE_SYSTEM
from ftrag_desktop.paths import Home

# (file, text, the question the scripted model writes for it, its answer)
DOCS = [
    (
        "zorbania.md",
        "# Zorbania\n\nThe capital of Zorbania is Quillton, a city founded by glassblowers.\n",
        "What is the capital of Zorbania?",
        "Quillton",
    ),
    (
        "kettle.md",
        "# Kettles\n\nThe Vellum kettle switches itself off after exactly 47 seconds of boiling.\n",
        "After how many seconds does the Vellum kettle switch itself off?",
        "47 seconds",
    ),
    (
        "festival.md",
        "# Festival\n\nQuillton hosts the glass festival; Quillton is the capital of Zorbania.\n",
        "What is the capital of Zorbania?",  # a duplicate of the first
        "Quillton",
    ),
    (
        "water.md",
        "# Water\n\nWater boils at 100 degrees Celsius at sea level, said the handbook.\n",
        "At what temperature does water boil at sea level?",  # the model knows it anyway
        "100 degrees Celsius",
    ),
    (
        "moss.txt",
        "Orange moss grows only on the north side of basalt boulders in the Tarvik valley.\n",
        "What does the passage say about orange moss?",  # not self-contained
        "north side",
    ),
    (
        "river.md",
        "# River\n\nThe Lumen river floods every spring when the Orrin glacier melts.\n",
        "What causes the Lumen river floods?",
        "heavy monsoon rains",  # not in the source
    ),
    ("notes.txt", "Loose notes: lorem ipsum dolor sit amet, nothing of note.\n", "", ""),
]
OFF_TOPIC = [
    "Which city is the capital of Zorbania, founded by glassblowers?",  # the documents say
    "Who invented the bicycle?",
    "WHO invented the bicycle?",  # a duplicate once normalised
    "How many moons does Neptune have?",
    "What is the boiling point of mercury?",
]


def user_text(messages: list[dict[str, Any]]) -> str:
    return next(str(m["content"]) for m in reversed(messages) if m["role"] == "user")


def system_text(messages: list[dict[str, Any]]) -> str:
    return next((str(m["content"]) for m in messages if m["role"] == "system"), "")


def _number_of(fact_text: str, prompt: str) -> int | None:
    """The [n] of the quoted source that holds `fact_text`."""
    for match in re.finditer(r"^\[(\d+)\][^\n]*\n<<<\n(.*?)\n>>>", prompt, re.S | re.M):
        if fact_text.lower() in match.group(2).lower():
            return int(match.group(1))
    return None


class ScriptedModel:
    """A deterministic stand-in for a local model, recognising each prompt by its system text.

    RAG answers quote the reference and cite the source holding it; without documents it
    does not know (except the boiling point of water); the judge compares with the reference.
    """

    def __init__(self) -> None:
        self.closed_book_calls = 0

    def __call__(self, messages: list[dict[str, Any]]) -> str:
        system, user = system_text(messages), user_text(messages)
        if system == eb.QUESTION_SYSTEM:
            for _name, text, question, answer in DOCS:
                if text.split("\n")[-2][:30] in user:
                    if not question:
                        return "Sorry, I cannot help with that."
                    return json.dumps({"question": question, "answer": answer})
            return "?"
        if system == eb.CLOSED_BOOK_SYSTEM:
            self.closed_book_calls += 1
            if "water boil" in user.lower():
                return "Water boils at 100 degrees Celsius."
            return "I don't know."
        if system == eb.UNANSWERABLE_SYSTEM:
            return json.dumps({"questions": OFF_TOPIC})
        if system == JUDGE_SYSTEM:
            reference = re.search(r"Reference answer: (.*)", user)
            candidate = re.search(r"Candidate answer: (.*)", user)
            ok = reference and candidate and reference.group(1) in candidate.group(1)
            return json.dumps({"verdict": "correct" if ok else "incorrect"})
        if system == SYSTEM_PROMPT or "Sources:" in user:
            question = user.rsplit("Question:", 1)[-1]
            for _name, _text, q, answer in DOCS:
                if q and q in question:
                    n = _number_of(answer, user)
                    if n is not None:
                        return f"It is {answer} [{n}]."
            return NO_ANSWER
        return "I am not sure."


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    root.mkdir()
    for name, text, _q, _a in DOCS:
        (root / name).write_text(text)
    return root


@pytest.fixture
def engine(ftrag_home: Path, ollama_server: Any, docs: Path) -> Iterator[Engine]:
    ollama_server.embed_backend = "hash"
    ollama_server.reply = ScriptedModel()
    eng = Engine(Home(ftrag_home), Settings(ollama_host=ollama_server.url, top_k=3))
    list(eng.sync(docs))
    yield eng
    eng.close()


OPTIONS = eb.BuildOptions(questions=10, unanswerable=3, min_chunk_chars=20, seed=7)


def finished(events: list[eb.BuildEvent]) -> eb.BuildFinished:
    last = events[-1]
    assert isinstance(last, eb.BuildFinished)
    return last


def test_build_keeps_good_questions_and_says_why_it_dropped_the_others(
    engine: Engine, ollama_server: Any
) -> None:
    events = list(eb.build_evalset(engine, "demo", OPTIONS))
    assert isinstance(events[0], eb.BuildStarted) and events[0].documents == len(DOCS)
    done = finished(events)
    evalset = done.evalset
    assert evalset.version == 0  # not saved: the user reviews it first

    answerable = {i.question: i for i in evalset.answerable}
    assert set(answerable) == {DOCS[0][2], DOCS[1][2]}
    assert done.rejected == {
        "duplicate": 2,  # the festival's question, and one normalised off-topic one
        "answerable without the source": 1,
        "not self-contained": 1,
        "answer not in the source": 1,
        "unparseable": 1,
        "covered by the documents": 1,
    }
    rejected = [e for e in events if isinstance(e, eb.QuestionRejected)]
    assert sum(done.rejected.values()) == len(rejected)
    closed = next(e for e in rejected if e.reason == "answerable without the source")
    assert "100 degrees" in closed.detail and "%" in closed.detail

    # Ground truth: the chunk it was written from, with its file and text.
    chunks = {c.chunk_id: c for c in eb.corpus_chunks(engine.store)}
    kettle = answerable[DOCS[1][2]]
    assert kettle.answer == "47 seconds" and kettle.origin == "generated" and not kettle.edited
    assert kettle.source_chunk_id in chunks
    assert kettle.source_doc is not None and kettle.source_doc.endswith("kettle.md")
    assert kettle.source_text == chunks[kettle.source_chunk_id].text
    assert kettle.source_page is None  # Markdown has no pages

    unanswerable = [i.question for i in evalset.unanswerable]
    assert unanswerable == [OFF_TOPIC[1], OFF_TOPIC[3], OFF_TOPIC[4]]
    assert all(i.answer == "" and i.origin == "unanswerable" for i in evalset.unanswerable)
    assert evalset.info["unanswerable_from_list"] == 0
    assert evalset.info["built_with"] == "llama3.2" and evalset.info["seed"] == 7

    # JSON output was asked for with a schema, and every request carried the seed's offset.
    bodies = ollama_server.bodies("/api/chat")
    generation = [b for b in bodies if system_text(b["messages"]) == eb.QUESTION_SYSTEM]
    assert generation and all(b["format"] == eb.QA_SCHEMA for b in generation)
    closed_book = [b for b in bodies if system_text(b["messages"]) == eb.CLOSED_BOOK_SYSTEM]
    assert closed_book and all("Passage" not in user_text(b["messages"]) for b in closed_book)
    assert all(not b.get("format") for b in closed_book)


def test_the_same_seed_builds_the_same_set(engine: Engine) -> None:
    first = finished(list(eb.build_evalset(engine, "a", OPTIONS))).evalset
    again = finished(list(eb.build_evalset(engine, "b", OPTIONS))).evalset
    assert [i.to_dict() for i in first.items] == [i.to_dict() for i in again.items]


def test_closed_book_filter_can_be_turned_off(engine: Engine) -> None:
    options = eb.BuildOptions(questions=10, unanswerable=0, min_chunk_chars=20, seed=7,
                              closed_book_filter=False)  # fmt: skip
    done = finished(list(eb.build_evalset(engine, "open", options)))
    assert DOCS[3][2] in {i.question for i in done.evalset.items}
    assert "answerable without the source" not in done.rejected
    assert done.evalset.unanswerable == []


def test_too_few_generated_off_topic_questions_are_filled_from_the_list(
    engine: Engine, ollama_server: Any
) -> None:
    model = ScriptedModel()

    def reply(messages: list[dict[str, Any]]) -> str:
        if system_text(messages) == eb.UNANSWERABLE_SYSTEM:
            return '{"questions": []}'
        return model(messages)

    ollama_server.reply = reply
    options = eb.BuildOptions(questions=1, unanswerable=2, min_chunk_chars=20)
    done = finished(list(eb.build_evalset(engine, "fill", options)))
    got = [i.question for i in done.evalset.unanswerable]
    assert got == list(eb.FALLBACK_UNANSWERABLE[:2])
    assert done.evalset.info["unanswerable_from_list"] == 2


def test_cancel_ends_the_build_with_what_was_kept(engine: Engine) -> None:
    cancel = threading.Event()
    events: list[eb.BuildEvent] = []
    for ev in eb.build_evalset(engine, "stop", OPTIONS, cancel=cancel):
        events.append(ev)
        if isinstance(ev, eb.QuestionAccepted):
            cancel.set()
    done = finished(events)
    assert done.cancelled
    assert len(done.evalset.items) == 1 and done.evalset.items[0].answerable


def test_an_empty_index_cannot_build(ftrag_home: Path, ollama_server: Any) -> None:
    with (
        Engine(Home(ftrag_home), Settings(ollama_host=ollama_server.url)) as eng,
        pytest.raises(EvalSetError, match="no passages"),
    ):
        eb.build_evalset(eng, "empty")


def chunk(doc: str, n: int) -> eb.CorpusChunk:
    return eb.CorpusChunk(f"{doc}:{n:05d}", doc, f"/d/{doc}.md", doc, f"text {doc} {n}", n)


def test_stratified_order_visits_every_document_before_any_twice() -> None:
    chunks = [chunk("a", i) for i in range(5)] + [chunk("b", i) for i in range(2)]
    chunks.append(chunk("c", 0))
    order = eb.stratified_order(chunks, seed=1)
    assert sorted(order, key=lambda c: c.chunk_id) == sorted(chunks, key=lambda c: c.chunk_id)
    assert {c.doc_id for c in order[:3]} == {"a", "b", "c"}
    assert {c.doc_id for c in order[3:5]} == {"a", "b"}
    assert [c.doc_id for c in order[5:]] == ["a", "a", "a"]
    assert eb.stratified_order(chunks, seed=1) == order  # seeded
    assert any(eb.stratified_order(chunks, seed=s) != order for s in range(2, 6))


def test_reply_parsing_accepts_json_or_labelled_text() -> None:
    assert eb.parse_question_reply('{"question": "Why", "answer": 42}') == ("Why?", "42")
    assert eb.parse_question_reply('Sure! {"question": "Who is it?", "answer": "Ann"} ok') == (
        "Who is it?",
        "Ann",
    )
    assert eb.parse_question_reply("Question: Where is it\nAnswer: in Rome.") == (
        "Where is it?",
        "in Rome.",
    )
    assert eb.parse_question_reply("no idea") is None
    assert eb.parse_questions_reply('["1. Who?", "- What is it", "Who?"]') == [
        "Who?",
        "What is it?",
    ]
    assert eb.parse_questions_reply("Here:\n1) Why is the sky blue?\nthanks") == [
        "Why is the sky blue?"
    ]


# ---- review, versions, JSONL --------------------------------------------------------------


def sample_set() -> EvalSet:
    return EvalSet(
        "tea",
        [
            EvalItem("q1", "How hot is green tea brewed?", "80 degrees", True, "d:00000",
                     "/docs/tea.md", None, "Green tea is brewed at 80 degrees.", "generated"),
            EvalItem("q2", "Who won the 1954 World Cup?", "", False, origin="unanswerable"),
        ],
    )  # fmt: skip


def test_review_edit_delete_add() -> None:
    s = sample_set()
    edited = s.edit("q1", answer="80 °C")
    assert edited.edited and edited.answer == "80 °C" and s.item("q1") is edited
    unanswerable = s.edit("q1", answerable=False)
    assert unanswerable.answer == "" and not unanswerable.answerable
    with pytest.raises(EvalSetError, match="needs an answer"):
        s.edit("q2", answerable=True)
    with pytest.raises(EvalSetError, match="question is empty"):
        s.edit("q2", question="  ")
    assert not s.item("q2").edited  # a refused edit changes nothing
    added = s.add("What is oolong?", "a partly oxidised tea")
    assert added.origin == "user" and added.answerable and len(added.id) == 12
    assert s.delete("q2").id == "q2"
    assert [i.id for i in s.items] == ["q1", added.id]
    with pytest.raises(EvalSetError, match="no question 'q2'"):
        s.delete("q2")


def test_every_save_is_a_new_version_and_old_ones_load(ftrag_home: Path) -> None:
    store = EvalSetStore.for_home(Home(ftrag_home))
    first = store.save(sample_set(), note="built")
    assert first.version == 1 and first.note == "built"
    first.delete("q2")
    second = store.save(first)
    assert second.version == 2
    assert [v.version for v in store.versions("tea")] == [1, 2]
    assert [v.items for v in store.versions("tea")] == [2, 1]
    assert len(store.load("tea").items) == 1  # the latest
    old = store.load("tea", 1)
    assert [i.id for i in old.items] == ["q1", "q2"] and old.note == "built"
    assert store.names() == ["tea"]
    assert (Path(ftrag_home) / "evalsets" / "tea" / "v0002.jsonl").is_file()
    with pytest.raises(EvalSetError, match="no version 7"):
        store.load("tea", 7)
    with pytest.raises(EvalSetError, match="no evaluation set 'coffee'"):
        store.load("coffee")
    with pytest.raises(EvalSetError, match="cannot be the name"):
        store.save(EvalSet("../escape", sample_set().items))


def test_jsonl_lines_follow_the_fixed_schema(tmp_path: Path) -> None:
    path = tmp_path / "set.jsonl"
    write_jsonl(sample_set(), path)
    lines = [json.loads(ln) for ln in path.read_text().splitlines()]
    assert [list(ln) for ln in lines] == [list(FIELDS)] * 2
    assert lines[0]["source_chunk_id"] == "d:00000" and lines[0]["origin"] == "generated"
    assert lines[1] == {
        "id": "q2", "question": "Who won the 1954 World Cup?", "answer": "", "answerable": False,
        "source_chunk_id": None, "source_doc": None, "source_page": None, "source_text": None,
        "origin": "unanswerable", "edited": False,
    }  # fmt: skip
    back = read_jsonl(path, "copy")
    assert back.name == "copy" and [i.to_dict() for i in back.items] == [
        i.to_dict() for i in sample_set().items
    ]


def test_import_reports_every_bad_line_by_number(tmp_path: Path) -> None:
    good = sample_set().items[0].to_dict()
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps({k: v for k, v in good.items() if k != "answerable"}),
        json.dumps({**good, "id": "x", "source_page": "3"}),
        json.dumps({**good, "id": "y", "answerable": False}),
        "",
        json.dumps(good),
        json.dumps({**good, "id": "z", "origin": "robot"}),
        json.dumps({**good, "id": "w", "source_page": True}),
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(EvalSetError) as caught:
        read_jsonl(path, "bad")
    text = str(caught.value)
    assert "7 line(s) of bad.jsonl" in text
    assert "line 2:" in text
    assert "line 3: missing answerable" in text
    assert "line 4: source_page must be int or null" in text
    assert 'line 5: an unanswerable question has the answer ""' in text
    assert "line 7: id 'q1' is used twice" in text
    assert "line 8: origin must be one of" in text
    assert "line 9: source_page must be int or null, not true" in text
    assert "line 1:" not in text and "line 6" not in text
    assert caught.value.hint


def test_import_of_nothing_or_unreadable(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(EvalSetError, match="holds no questions"):
        read_jsonl(empty, "e")
    with pytest.raises(EvalSetError, match="Cannot read"):
        read_jsonl(tmp_path / "missing.jsonl", "m")
    assert items_from_jsonl(items_to_jsonl(sample_set().items))[1].answerable is False
