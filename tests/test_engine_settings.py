"""`Engine.apply_settings` for real: generation options reach Ollama, exclusions and chunk
sizes reach the next sync, a new address gets a new client, bad settings change nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ftrag_desktop.config import InvalidSettings, Settings, load_settings
from ftrag_desktop.core.answer import PLAIN_SYSTEM_PROMPT, SYSTEM_PROMPT, AnswerCompleted
from ftrag_desktop.core.engine import Engine
from ftrag_desktop.core.events import SyncFinished, SyncSummary
from ftrag_desktop.paths import Home

ZEBRA = "The alpha protocol governs zebra migrations across the northern plains."


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "alpha.md").write_text(f"# Alpha\n\n{ZEBRA}\n")
    (root / "beta.txt").write_text("Beta notes: the quarterly budget is 42 kilograms of tea.\n")
    (root / "sub" / "gamma.md").write_text("# Gamma\n\nGamma rays and unicorn stables.\n")
    long = "\n\n".join(f"Paragraph {i}: " + "lorem ipsum dolor sit amet " * 12 for i in range(20))
    (root / "long.md").write_text(f"# Long\n\n{long}\n")
    return root


@pytest.fixture
def engine(ftrag_home: Path, ollama_server: Any) -> Iterator[Engine]:
    ollama_server.embed_backend = "hash"
    eng = Engine(Home(ftrag_home), Settings(ollama_host=ollama_server.url))
    yield eng
    eng.close()


def sync(engine: Engine, root: Path, **kw: Any) -> SyncSummary:
    events = list(engine.sync(root, **kw))
    finished = [e for e in events if isinstance(e, SyncFinished)]
    assert len(finished) == 1
    return finished[0].summary


def indexed(engine: Engine) -> dict[str, int]:
    return {
        Path(d.path).name: d.chunks for d in engine.store.documents() if d.status.value == "indexed"
    }


def last_chat(server: Any) -> dict[str, Any]:
    bodies = server.bodies("/api/chat")
    assert bodies, "no chat request reached the server"
    body = bodies[-1]
    assert isinstance(body, dict)
    return body


def ask(engine: Engine, question: str, **kw: Any) -> str:
    events = list(engine.ask(question, num_predict=64, **kw))
    done = events[-1]
    assert isinstance(done, AnswerCompleted)
    return done.result.answer


def with_changes(engine: Engine, **changes: Any) -> Settings:
    new = Settings(**{**engine.settings.__dict__, **changes})
    new.watched_folders = list(engine.settings.watched_folders)
    return new


def test_default_generation_options_reach_the_server(
    engine: Engine, docs: Path, ollama_server: Any
) -> None:
    sync(engine, docs)
    assert ask(engine, "What governs zebra migrations?")
    body = last_chat(ollama_server)
    assert body["options"]["temperature"] == Settings().temperature
    assert body["options"]["num_ctx"] >= 2048 and body["options"]["num_ctx"] % 1024 == 0
    assert body["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}


def test_applied_generation_settings_reach_the_server(
    engine: Engine, docs: Path, ollama_server: Any
) -> None:
    sync(engine, docs)
    change = engine.apply_settings(
        with_changes(
            engine, temperature=0.9, system_prompt="Answer like a ship's log.", num_ctx=4096
        )
    )
    assert set(change.changed) == {"temperature", "system_prompt", "num_ctx"}
    assert not change.sync_needed and not change.host_changed

    answer = ask(engine, "What governs zebra migrations?")
    assert "[1]" in answer  # still grounded: the sources and the [n] request are in the prompt
    body = last_chat(ollama_server)
    assert body["options"]["temperature"] == 0.9
    assert body["options"]["num_ctx"] == 4096
    assert body["messages"][0] == {"role": "system", "content": "Answer like a ship's log."}
    assert "zebra migrations" in body["messages"][1]["content"]

    # Without retrieval the custom prompt is the model's instructions too.
    ask(engine, "Say hello.", rag=False)
    body = last_chat(ollama_server)
    assert body["messages"][0]["content"] == "Answer like a ship's log."
    assert body["options"]["num_ctx"] == 4096 and body["options"]["temperature"] == 0.9

    # Saved: a new engine on the same home uses them too.
    again = load_settings(engine.home.settings_file)
    assert (again.temperature, again.num_ctx) == (0.9, 4096)


def test_blank_system_prompt_means_the_built_in_ones(
    engine: Engine, docs: Path, ollama_server: Any
) -> None:
    engine.apply_settings(with_changes(engine, system_prompt="   \n"))
    ask(engine, "Say hello.", rag=False)
    assert last_chat(ollama_server)["messages"][0]["content"] == PLAIN_SYSTEM_PROMPT


def test_fixed_context_is_capped_by_the_model(
    engine: Engine, docs: Path, ollama_server: Any
) -> None:
    sync(engine, docs)
    engine.apply_settings(with_changes(engine, num_ctx=65536))
    ask(engine, "What governs zebra migrations?", model="smollm2:135m")  # trained on 8192
    assert last_chat(ollama_server)["options"]["num_ctx"] == 8192


def test_excluded_patterns_remove_and_restore_files_on_sync(engine: Engine, docs: Path) -> None:
    sync(engine, docs)
    assert set(indexed(engine)) == {"alpha.md", "beta.txt", "gamma.md", "long.md"}

    change = engine.apply_settings(with_changes(engine, excluded_patterns=["sub/", "*.TXT"]))
    assert change.exclusions_changed and change.reindex_needed
    summary = sync(engine, docs)
    assert summary.removed == 2 and summary.indexed == 0
    assert set(indexed(engine)) == {"alpha.md", "long.md"}
    assert not engine.search("quarterly budget tea", mode="keyword").hits

    # A watcher-style sync of one excluded file does not bring it back.
    (docs / "beta.txt").write_text("Beta notes, edited: the budget is 43 kilograms of tea.\n")
    summary = sync(engine, docs, paths=[docs / "beta.txt"])
    assert summary.indexed == 0 and "beta.txt" not in indexed(engine)

    engine.apply_settings(with_changes(engine, excluded_patterns=[]))
    summary = sync(engine, docs)
    assert summary.indexed == 2
    assert set(indexed(engine)) == {"alpha.md", "beta.txt", "gamma.md", "long.md"}
    assert engine.search("43 kilograms", mode="keyword").hits[0].path.endswith("beta.txt")


def test_new_chunk_sizes_reindex_every_document(engine: Engine, docs: Path) -> None:
    sync(engine, docs)
    before = indexed(engine)
    change = engine.apply_settings(with_changes(engine, chunk_size=300, chunk_overlap=50))
    assert change.chunking_changed and change.reindex_needed
    summary = sync(engine, docs)
    assert summary.indexed == 4 and summary.failed == 0
    after = indexed(engine)
    assert after["long.md"] > before["long.md"]  # cut into more, shorter passages
    chunks = engine.search("lorem ipsum", k=50, mode="keyword").hits
    assert chunks and max(len(h.text) for h in chunks) <= 300
    assert sync(engine, docs).indexed == 0  # done once, not on every sync


def test_new_chunk_sizes_survive_a_restart_before_the_sync(
    ftrag_home: Path, ollama_server: Any, docs: Path
) -> None:
    ollama_server.embed_backend = "hash"
    with Engine(Home(ftrag_home), Settings(ollama_host=ollama_server.url)) as first:
        sync(first, docs)
        first.apply_settings(with_changes(first, chunk_size=400, chunk_overlap=40))
    with Engine(Home(ftrag_home)) as second:  # settings read from the saved file
        assert second.settings.chunk_size == 400
        assert sync(second, docs).indexed == 4


def test_embedding_model_switch_happens_on_the_next_sync(
    engine: Engine, docs: Path, ollama_server: Any
) -> None:
    sync(engine, docs)
    assert engine.store.embedding_model()[0] == "nomic-embed-text"
    change = engine.apply_settings(with_changes(engine, embed_model="all-minilm"))
    assert change.embed_model_changed and change.sync_needed and not change.reindex_needed
    summary = sync(engine, docs)
    assert summary.indexed == 0  # nothing re-parsed: only new vectors
    assert engine.store.embedding_model()[0] == "all-minilm"
    embeds = [b for b in ollama_server.bodies("/api/embed") if b["model"] == "all-minilm"]
    assert embeds


def test_a_new_address_gets_a_new_client(engine: Engine, ollama_server: Any) -> None:
    old = engine.client
    url = ollama_server.url.replace("127.0.0.1", "localhost")
    change = engine.apply_settings(with_changes(engine, ollama_host=url, request_timeout_s=30.0))
    assert change.host_changed
    assert engine.client is not old and engine.client.host == url
    assert engine.client.timeout_s == 30.0
    assert engine.client.version()
    assert old.version()  # an answer still streaming on the old client is not cut off


def test_invalid_settings_change_nothing(engine: Engine) -> None:
    path = engine.home.settings_file
    engine.save_settings()
    saved = path.read_text()
    with pytest.raises(InvalidSettings) as info:
        engine.apply_settings(with_changes(engine, temperature=3.0, top_k=0))
    assert [e.field for e in info.value.errors] == ["top_k", "temperature"]
    assert "temperature" in str(info.value)
    assert engine.settings.temperature == Settings().temperature and engine.settings.top_k == 6
    assert path.read_text() == saved


def test_folder_lists_stay_the_library_services(engine: Engine) -> None:
    engine.settings.watched_folders.append("/srv/papers")
    stale = with_changes(engine, top_k=9)
    stale.watched_folders = []  # a copy taken before the folder was added
    live = engine.settings
    engine.apply_settings(stale)
    assert engine.settings is live  # updated in place: holders of the object see the change
    assert live.top_k == 9 and live.watched_folders == ["/srv/papers"]
    saved = json.loads(engine.home.settings_file.read_text())
    assert saved["watched_folders"] == ["/srv/papers"] and saved["top_k"] == 9


def test_no_change_is_falsy(engine: Engine) -> None:
    assert not engine.apply_settings(with_changes(engine))
