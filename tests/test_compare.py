"""The comparison runner against the Ollama-protocol test server over real HTTP, and comparisons
stored with conversations (including files written before comparisons existed)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ftrag_desktop.config import Settings
from ftrag_desktop.core.compare import (
    CompareAnswer,
    CompareConfig,
    CompareError,
    CompareEvent,
    Comparison,
    ComparisonFinished,
    ConfigFinished,
    ConfigSources,
    ConfigStarted,
    ConfigToken,
    RunTimes,
    parse_config,
    queued_behind,
    run_comparison,
)
from ftrag_desktop.core.conversations import ConversationStore
from ftrag_desktop.core.engine import Engine
from ftrag_desktop.core.events import SyncFinished
from ftrag_desktop.paths import Home

ZEBRA = "The alpha protocol governs zebra migrations across the northern plains."
QUESTION = "What governs zebra migrations?"
LONG_REPLY = " ".join(f"word{i}" for i in range(200))


@pytest.fixture
def engine(ftrag_home: Path, ollama_server: Any, tmp_path: Path) -> Iterator[Engine]:
    ollama_server.embed_backend = "hash"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "alpha.md").write_text(f"# Alpha\n\n{ZEBRA}\n")
    (docs / "beta.txt").write_text("Beta notes: the quarterly budget is 42 kilograms of tea.\n")
    eng = Engine(Home(ftrag_home), Settings(ollama_host=ollama_server.url))
    events = list(eng.sync(docs))
    assert any(isinstance(e, SyncFinished) for e in events)
    yield eng
    eng.close()


@pytest.fixture
def bare_engine(ftrag_home: Path, ollama_server: Any) -> Iterator[Engine]:
    """No documents: for runs that never retrieve."""
    eng = Engine(Home(ftrag_home), Settings(ollama_host=ollama_server.url))
    yield eng
    eng.close()


def compare_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("ftrag-compare")]


def finished(events: list[CompareEvent]) -> Comparison:
    last = events[-1]
    assert isinstance(last, ComparisonFinished)
    assert sum(isinstance(e, ComparisonFinished) for e in events) == 1
    return last.comparison


RAG = CompareConfig("llama3.2", rag=True, top_k=3)
PLAIN = CompareConfig("llama3.2", rag=False)


def test_one_at_a_time_with_figures_and_sources(engine: Engine, ollama_server: Any) -> None:
    ollama_server.token_delay_s = 0.005
    events = list(run_comparison(engine, QUESTION, [RAG, PLAIN], num_predict=64))
    comparison = finished(events)
    assert comparison.question == QUESTION and not comparison.parallel
    assert comparison.configs == [RAG, PLAIN]

    # Sequential: everything of the first configuration comes before the second one starts.
    second_start = events.index(ConfigStarted(1, events_started(events, 1)))
    assert all(getattr(e, "index", 0) == 0 for e in events[:second_start])
    assert isinstance(events[second_start - 1], ConfigFinished)

    rag, plain = comparison.answers
    assert rag.model == "llama3.2" and plain.model == "llama3.2"
    assert not rag.error and not plain.error and not rag.cancelled and rag.ran
    # The streamed tokens are the recorded answer.
    for index, answer in enumerate(comparison.answers):
        streamed = "".join(
            e.text for e in events if isinstance(e, ConfigToken) and e.index == index
        )
        assert streamed == answer.text and answer.text

    # RAG on: sources, cited in the answer; RAG off: none, and no sources event at all.
    assert rag.sources and "[1]" in rag.text
    assert any(s["cited"] and "zebra" in s["text"] for s in rag.sources)
    assert len(rag.sources) <= 3  # the configuration's top-k
    assert [e.index for e in events if isinstance(e, ConfigSources)] == [0]
    assert plain.sources == [] and "[1]" not in plain.text

    for index, answer in enumerate(comparison.answers):
        m = answer.metrics
        assert m.first_token_s is not None and 0 <= m.first_token_s <= m.total_s
        assert m.tokens_per_s is not None and m.tokens_per_s > 0
        assert m.speed_source == "ollama"  # the server sent eval_count and eval_duration
        pieces = [e for e in events if isinstance(e, ConfigToken) and e.index == index]
        assert m.completion_tokens == len(pieces)
        assert m.prompt_tokens is not None and m.prompt_tokens > 0
        assert m.queued_behind == ()
    # The RAG prompt carries the passages: it is the longer one, as the server counted it.
    assert rag.metrics.prompt_tokens > plain.metrics.prompt_tokens  # type: ignore[operator]
    assert rag.metrics.retrieval_s > 0

    bodies = ollama_server.bodies("/api/chat")
    assert len(bodies) == 2
    assert "zebra migrations" in bodies[0]["messages"][1]["content"]  # the passage was sent
    assert bodies[1]["messages"][1]["content"] == QUESTION  # the model alone


def events_started(events: list[CompareEvent], index: int) -> float:
    return next(e.started_s for e in events if isinstance(e, ConfigStarted) and e.index == index)


def test_several_models_and_the_default_top_k(engine: Engine, ollama_server: Any) -> None:
    configs = [CompareConfig("smollm2:135m"), CompareConfig("llama3.2", rag=True)]
    comparison = finished(list(run_comparison(engine, QUESTION, configs, num_predict=64)))
    assert [c.top_k for c in comparison.configs] == [engine.settings.top_k] * 2
    assert [a.model for a in comparison.answers] == ["smollm2:135m", "llama3.2"]
    assert [b["model"] for b in ollama_server.bodies("/api/chat")] == ["smollm2:135m", "llama3.2"]


def test_all_at_once_runs_each_on_its_own_thread(engine: Engine, ollama_server: Any) -> None:
    ollama_server.reply = " ".join(f"w{i}" for i in range(30))
    ollama_server.token_delay_s = 0.03
    seen_threads: list[list[str]] = []
    events: list[CompareEvent] = []
    for event in run_comparison(engine, QUESTION, [RAG, PLAIN], parallel=True, num_predict=64):
        if isinstance(event, ConfigToken) and len(seen_threads) < 1:
            seen_threads.append(compare_threads())
        events.append(event)
    comparison = finished(events)
    assert comparison.parallel
    assert sorted(seen_threads[0]) == ["ftrag-compare-1", "ftrag-compare-2"]
    # Both were sent before either finished: neither waited for the other's request.
    starts = [i for i, e in enumerate(events) if isinstance(e, ConfigStarted)]
    first_done = next(i for i, e in enumerate(events) if isinstance(e, ConfigFinished))
    assert len(starts) == 2 and max(starts) < first_done
    for answer in comparison.answers:
        assert answer.text == ollama_server.reply and not answer.cancelled
        assert answer.metrics.first_token_s is not None
        assert answer.metrics.first_token_s <= answer.metrics.total_s
    assert comparison.answers[0].sources and not comparison.answers[1].sources
    assert compare_threads() == []


def test_queue_detection_from_the_run_times() -> None:
    # Served one after the other: #2 was waiting while #1 streamed, and began after it ended.
    serial = [RunTimes(0.0, first=0.5, last=2.0, done=2.1), RunTimes(0.1, first=2.6, done=4.0)]
    assert queued_behind(1, serial) == (0,)
    assert queued_behind(0, serial) == ()
    # Interleaved streams: nobody waited.
    overlap = [RunTimes(0.0, first=0.5, done=2.1), RunTimes(0.1, first=0.7, done=2.0)]
    assert queued_behind(0, overlap) == () and queued_behind(1, overlap) == ()
    # Sent only after #1 had finished (one at a time by design): not a queue wait.
    later = [RunTimes(0.0, first=0.5, done=2.1), RunTimes(2.2, first=2.6, done=4.0)]
    assert queued_behind(1, later) == ()
    # No first token (failed or stopped early): nothing to say.
    assert queued_behind(1, [serial[0], RunTimes(0.1)]) == ()


def test_stop_ends_the_running_answer_and_skips_the_rest(
    engine: Engine, ollama_server: Any
) -> None:
    ollama_server.reply = LONG_REPLY
    ollama_server.token_delay_s = 0.02
    cancel = threading.Event()
    events: list[CompareEvent] = []
    tokens = 0
    for event in run_comparison(engine, QUESTION, [PLAIN, RAG], cancel=cancel, num_predict=500):
        events.append(event)
        if isinstance(event, ConfigToken):
            tokens += 1
            if tokens == 3:
                cancel.set()
    comparison = finished(events)
    first, second = comparison.answers
    assert first.cancelled and first.ran and first.text and len(first.text) < len(LONG_REPLY)
    assert second.cancelled and not second.ran and second.text == "" and not second.sources
    assert not any(isinstance(e, ConfigStarted) and e.index == 1 for e in events)
    assert ollama_server.chat_count == 1  # the second configuration never asked anything


def test_stop_ends_every_answer_when_all_run_at_once(engine: Engine, ollama_server: Any) -> None:
    ollama_server.reply = LONG_REPLY
    ollama_server.token_delay_s = 0.02
    cancel = threading.Event()
    events: list[CompareEvent] = []
    counts = [0, 0]
    for event in run_comparison(
        engine, QUESTION, [RAG, PLAIN], parallel=True, cancel=cancel, num_predict=500
    ):
        events.append(event)
        if isinstance(event, ConfigToken):
            counts[event.index] += 1
            if min(counts) >= 2:
                cancel.set()
    comparison = finished(events)
    for answer in comparison.answers:
        assert answer.cancelled and answer.ran
        assert answer.text and len(answer.text) < len(LONG_REPLY)
    assert compare_threads() == []
    assert ollama_server.wait_idle()


def test_a_failing_configuration_does_not_stop_the_others(
    bare_engine: Engine, ollama_server: Any
) -> None:
    engine = bare_engine
    configs = [CompareConfig("no-such-model:7b", rag=False), PLAIN]
    for parallel in (False, True):
        comparison = finished(
            list(run_comparison(engine, "Say hi.", configs, parallel=parallel, num_predict=32))
        )
        broken, fine = comparison.answers
        assert "no-such-model:7b" in broken.error and "ollama pull" in broken.error
        assert broken.text == "" and broken.metrics.first_token_s is None
        assert broken.metrics.tokens_per_s is None
        assert not fine.error and fine.text


def test_bad_requests_are_refused_before_anything_runs(
    bare_engine: Engine, ollama_server: Any
) -> None:
    engine = bare_engine
    with pytest.raises(CompareError, match="nothing to compare"):
        run_comparison(engine, QUESTION, [])
    with pytest.raises(CompareError, match="At most 4"):
        run_comparison(engine, QUESTION, [PLAIN] * 5)
    with pytest.raises(CompareError, match="no question"):
        run_comparison(engine, "  ", [PLAIN])
    assert ollama_server.chat_count == 0


def test_cli_config_specs() -> None:
    assert parse_config("llama3.2") == CompareConfig("llama3.2", rag=True)
    assert parse_config("llama3.2:3b:norag", top_k=5) == CompareConfig("llama3.2:3b", rag=False)
    assert parse_config("my-tune:rag", top_k=5) == CompareConfig("my-tune", rag=True, top_k=5)
    assert parse_config("llama3.2:3b") == CompareConfig("llama3.2:3b", rag=True)
    with pytest.raises(CompareError):
        parse_config(":norag")
    assert CompareConfig("m", rag=False).title() == "m alone"
    assert CompareConfig("m", top_k=4).title() == "m + documents (top 4)"


def test_comparison_saved_with_the_conversation_and_reloaded(
    engine: Engine, ollama_server: Any
) -> None:
    comparison = finished(list(run_comparison(engine, QUESTION, [RAG, PLAIN], num_predict=64)))
    store = engine.conversations
    conv = store.new("Zebras", "llama3.2")
    comparison.best = 1
    conv.comparisons.append(comparison)
    store.save(conv)

    again = store.load(conv.id)
    assert again.comparisons == [comparison]  # every field, sources and figures included
    loaded = again.comparisons[0]
    assert loaded.best == 1 and loaded.answers[0].sources[0]["path"].endswith(".md")
    assert again.comparison(comparison.id) is loaded
    assert [c.id for c in store.list()] == [conv.id]


# What ConversationStore.save wrote before comparisons existed (no "comparisons" key).
OLD_FILE = {
    "id": "0a1b2c3d4e5f",
    "title": "Before comparisons",
    "model": "llama3.2",
    "rag": True,
    "created_at": 1764390000.0,
    "updated_at": 1764390100.0,
    "messages": [
        {
            "role": "user",
            "content": "What is it?",
            "model": "",
            "created_at": 1764390050.0,
            "sources": [],
            "meta": {},
        },
        {
            "role": "assistant",
            "content": "It is blue [1].",
            "model": "llama3.2",
            "created_at": 1764390060.0,
            "sources": [{"number": 1, "cited": True, "path": "/docs/a.md", "text": "blue"}],
            "meta": {"rag": True, "total_s": 1.5},
        },
    ],
}


def test_old_conversation_files_still_load(tmp_path: Path) -> None:
    folder = tmp_path / "conversations"
    folder.mkdir()
    (folder / "0a1b2c3d4e5f.json").write_text(json.dumps(OLD_FILE), encoding="utf-8")
    store = ConversationStore(folder)
    conv = store.load("0a1b2c3d4e5f")
    assert conv.comparisons == []
    assert [m.content for m in conv.messages] == ["What is it?", "It is blue [1]."]
    assert conv.messages[1].sources[0]["cited"] is True
    assert [c.id for c in store.list()] == ["0a1b2c3d4e5f"]

    # It takes comparisons from now on, and keeps its messages.
    conv.comparisons.append(
        Comparison("c1", "q", [PLAIN], [CompareAnswer("llama3.2", text="A.")], best=0)
    )
    store.save(conv)
    again = store.load("0a1b2c3d4e5f")
    assert again.comparisons[0].answers[0].text == "A." and again.comparisons[0].best == 0
    assert len(again.messages) == 2
    assert [p.name for p in folder.iterdir()] == ["0a1b2c3d4e5f.json"]  # no temp file left


def test_a_damaged_comparison_is_skipped_not_fatal(tmp_path: Path) -> None:
    folder = tmp_path / "conversations"
    folder.mkdir()
    good = {
        "id": "c2",
        "question": "q",
        "configs": [{"model": "m", "rag": False}],
        "answers": [{"model": "m", "text": "fine", "future_field": 1}],
        "best": 7,  # out of range: dropped
        "new_key_from_a_later_version": True,
    }
    damaged = [{"bogus": 1}, "not a dict", {**good, "id": "c3", "answers": []}]
    raw = {**OLD_FILE, "comparisons": [*damaged, good]}
    (folder / "0a1b2c3d4e5f.json").write_text(json.dumps(raw), encoding="utf-8")
    conv = ConversationStore(folder).load("0a1b2c3d4e5f")
    assert [c.id for c in conv.comparisons] == ["c2"]
    assert conv.comparisons[0].answers[0].text == "fine" and conv.comparisons[0].best is None
    assert len(conv.messages) == 2
