"""Sync against the manifest: create, modify, delete, rename, move, touch; embedder states."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from ftrag_desktop.config import Settings
from ftrag_desktop.core import indexer
from ftrag_desktop.core.engine import Engine
from ftrag_desktop.core.events import (
    FileFailed,
    FileIndexed,
    SyncEvent,
    SyncFinished,
    SyncSummary,
)
from ftrag_desktop.paths import Home
from tests.conftest import PDF_DIR


def run_sync(engine: Engine, root: Path, **kw: object) -> tuple[SyncSummary, list[SyncEvent]]:
    events = list(engine.sync(root, **kw))  # type: ignore[arg-type]
    finished = [e for e in events if isinstance(e, SyncFinished)]
    assert len(finished) == 1 and events[-1] is finished[0]
    return finished[0].summary, events


def make_engine(home: Path, url: str, **settings: object) -> Engine:
    s = Settings(ollama_host=url, embed_model="nomic-embed-text", **settings)  # type: ignore[arg-type]
    return Engine(Home(home), s)


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "alpha.md").write_text(
        "# Alpha\n\nThe alpha protocol governs zebra migrations.\n\n## Details\n\nMore words.\n"
    )
    (root / "beta.txt").write_text("Beta notes: the quarterly budget is 42 kilograms of tea.\n")
    (root / "gamma.html").write_text(
        "<html><head><title>Gamma</title></head><body><h1>Gamma</h1>"
        "<p>Gamma rays and unicorn stables.</p></body></html>"
    )
    sub = root / "sub"
    sub.mkdir()
    shutil.copy(PDF_DIR / _first_good_pdf(), sub / "paper.pdf")
    return root


def _first_good_pdf() -> str:
    return "py-pdf-sample-files/006-pdflatex-outline/pdflatex-outline.pdf"  # 4 pages of text


@pytest.fixture
def engine(ftrag_home: Path, ollama_server) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    ollama_server.embed_backend = "hash"
    eng = make_engine(ftrag_home, ollama_server.url)
    yield eng
    eng.close()


def paths_of(engine: Engine) -> set[str]:
    return {d["path"] for d in engine.status()["documents"] if d["status"] == "indexed"}


def test_first_sync_indexes_everything_with_locations(engine: Engine, docs: Path) -> None:
    summary, _events = run_sync(engine, docs)
    assert summary.indexed == 4 and summary.failed == 0, summary.failures
    assert summary.embedding == "semantic"
    assert paths_of(engine) == {str(p) for p in docs.rglob("*") if p.is_file()}
    hit = engine.search("zebra migrations", k=3, mode="keyword").hits[0]
    assert hit.path.endswith("alpha.md") and hit.heading_path == ("Alpha",)
    hit = engine.search("quarterly budget tea", k=3, mode="keyword").hits[0]
    assert hit.path.endswith("beta.txt") and hit.line_start == 1
    pdf_hits = [
        h for h in engine.search("printed text meaning", k=20, mode="keyword").hits if h.page
    ]
    assert pdf_hits and all(h.path.endswith("paper.pdf") for h in pdf_hits)


def test_second_sync_parses_and_embeds_nothing(engine: Engine, docs: Path, ollama_server) -> None:  # type: ignore[no-untyped-def]
    run_sync(engine, docs)
    embedded_before = ollama_server.embed_count
    summary, _ = run_sync(engine, docs)
    assert (summary.indexed, summary.unchanged, summary.embedded) == (0, 4, 0)
    assert ollama_server.embed_count == embedded_before


def test_touch_without_change_is_not_reindexed(engine: Engine, docs: Path, ollama_server) -> None:  # type: ignore[no-untyped-def]
    run_sync(engine, docs)
    before = ollama_server.embed_count
    target = docs / "alpha.md"
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    summary, _ = run_sync(engine, docs)
    assert (summary.indexed, summary.touched) == (0, 1)
    assert ollama_server.embed_count == before
    summary, _ = run_sync(engine, docs)  # the new mtime was recorded: now a plain stat
    assert (summary.indexed, summary.touched, summary.unchanged) == (0, 0, 4)


def test_modify_replaces_the_documents_chunks(engine: Engine, docs: Path) -> None:
    run_sync(engine, docs)
    (docs / "beta.txt").write_text("Beta notes rewritten: walruses prefer jazz.\n")
    summary, _ = run_sync(engine, docs)
    assert summary.indexed == 1
    assert engine.search("walruses jazz", mode="keyword").hits[0].path.endswith("beta.txt")
    assert not engine.search("kilograms", mode="keyword").hits


def test_an_edit_embeds_only_the_passages_it_changed(
    engine: Engine,
    docs: Path,
    ollama_server,  # type: ignore[no-untyped-def]
) -> None:
    """The stored vectors of a changed file's unchanged passages are reused."""
    long = docs / "long.txt"
    paragraphs = [f"Paragraph {n} on topic {n}: " + f"word{n} " * 120 for n in range(8)]
    long.write_text("\n\n".join(paragraphs), encoding="utf-8")
    summary, _ = run_sync(engine, docs)
    record = engine.store.document_by_path(str(long))
    assert record is not None
    chunks = record.chunks
    assert chunks >= 6
    long.write_text("\n\n".join([*paragraphs, "A closing paragraph about otters."]), "utf-8")
    before = ollama_server.embed_count
    summary, _ = run_sync(engine, docs)
    assert summary.indexed == 1
    assert 1 <= summary.embedded <= 2 < chunks, (summary.embedded, chunks)
    assert ollama_server.embed_count - before == summary.embedded
    assert engine.search("otters closing", mode="keyword").hits[0].path == str(long)


def test_a_sync_stopped_while_a_batch_is_embedded_loses_nothing(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each batch is embedded while the one before it is written.  Stopped just after a
    batch was written, with the next one's vectors on their way, the sync leaves the rest
    pending, and the next sync completes the index: every file once, every vector there."""
    monkeypatch.setattr(indexer, "BATCH_DOCS", 10)
    root = tmp_path / "many"
    root.mkdir()
    for n in range(60):
        (root / f"note{n:02}.txt").write_text(f"Note {n} is about creature{n}.\n", "utf-8")
    cancel = threading.Event()
    events: list[SyncEvent] = []
    for event in engine.sync(root, cancel=cancel):
        events.append(event)
        if isinstance(event, FileIndexed):
            cancel.set()
    summary = events[-1].summary  # type: ignore[attr-defined]
    assert summary.cancelled and 0 < summary.indexed < 60
    statuses = Counter(d.status.value for d in engine.store.documents())
    assert statuses["pending"] == 60 - summary.indexed, statuses

    summary, _ = run_sync(engine, root)
    assert summary.indexed == 60 - statuses["indexed"]
    docs = engine.store.documents()
    assert len(docs) == 60 and {d.status.value for d in docs} == {"indexed"}
    assert engine.status()["chunks"] == 60
    assert engine.store.count_missing_vectors() == 0
    assert engine.store.check_health() == []
    assert engine.search("creature37", mode="keyword").hits[0].path == str(root / "note37.txt")


def test_delete_removes_from_index(engine: Engine, docs: Path) -> None:
    run_sync(engine, docs)
    (docs / "gamma.html").unlink()
    summary, _ = run_sync(engine, docs)
    assert summary.removed == 1
    assert not engine.search("unicorn stables", mode="keyword").hits
    assert str(docs / "gamma.html") not in paths_of(engine)


def test_rename_and_move_are_repointed_without_embedding(
    engine: Engine,
    docs: Path,
    ollama_server,  # type: ignore[no-untyped-def]
) -> None:
    run_sync(engine, docs)
    before = ollama_server.embed_count
    chunks_before = engine.status()["chunks"]
    (docs / "alpha.md").rename(docs / "sub" / "alpha-renamed.md")
    summary, _ = run_sync(engine, docs)
    assert (summary.renamed, summary.indexed, summary.removed) == (1, 0, 0)
    assert ollama_server.embed_count == before
    assert engine.status()["chunks"] == chunks_before
    hit = engine.search("zebra migrations", mode="keyword").hits[0]
    assert hit.path == str(docs / "sub" / "alpha-renamed.md")


def test_move_in_and_out_of_the_folder(engine: Engine, docs: Path, tmp_path: Path) -> None:
    run_sync(engine, docs)
    outside = tmp_path / "outside.txt"
    outside.write_text("Penguins audit the lighthouse ledger.\n")
    outside.rename(docs / "inside.txt")
    summary, _ = run_sync(engine, docs)
    assert summary.indexed == 1
    assert engine.search("lighthouse ledger", mode="keyword").hits
    (docs / "inside.txt").rename(tmp_path / "gone.txt")
    summary, _ = run_sync(engine, docs)
    assert summary.removed == 1
    assert not engine.search("lighthouse ledger", mode="keyword").hits


def test_paths_limited_sync_only_touches_those_paths(engine: Engine, docs: Path) -> None:
    run_sync(engine, docs)
    (docs / "beta.txt").write_text("Only this file changed: otters.\n")
    (docs / "alpha.md").write_text("# Alpha\n\nChanged too, but not requested: badgers.\n")
    summary, _ = run_sync(engine, docs, paths=[docs / "beta.txt"])
    assert summary.indexed == 1
    assert engine.search("otters", mode="keyword").hits
    assert not engine.search("badgers", mode="keyword").hits


def test_failures_are_reported_and_do_not_stop_the_run(engine: Engine, docs: Path) -> None:
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog")
    (docs / "junk.pdf").write_bytes(os.urandom(4096))
    (docs / "empty.md").write_bytes(b"")
    summary, events = run_sync(engine, docs)
    assert summary.indexed == 4
    failed = {Path(e.path).name: e.reason for e in events if isinstance(e, FileFailed)}
    assert set(failed) == {"broken.pdf", "junk.pdf", "empty.md"}
    assert all(reason for reason in failed.values())
    assert "not a PDF" in failed["junk.pdf"]
    assert "empty" in failed["empty.md"]
    status = {Path(d["path"]).name: d for d in engine.status()["documents"]}
    assert status["junk.pdf"]["status"] == "failed" and status["junk.pdf"]["error"]
    summary, _ = run_sync(engine, docs)  # failures are not re-parsed until they change
    assert summary.indexed == 0 and summary.failed == 0


def test_keyword_only_then_vectors_filled_without_reparsing(
    ftrag_home: Path,
    docs: Path,
    ollama_server,  # type: ignore[no-untyped-def]
) -> None:
    ollama_server.embed_backend = "hash"
    ollama_server.fault = "no_embed"
    eng = make_engine(ftrag_home, ollama_server.url)
    try:
        summary, _ = run_sync(eng, docs)
        assert summary.indexed == 4
        assert summary.embedding.startswith("keyword search only")
        result = eng.search("zebra migrations")
        assert result.mode == "keyword" and result.hits
        assert eng.status()["search"] == "keyword search only"
    finally:
        eng.close()
    ollama_server.fault = None
    eng = make_engine(ftrag_home, ollama_server.url)
    try:
        summary, _ = run_sync(eng, docs)
        assert summary.indexed == 0  # nothing re-parsed
        assert summary.embedding == "semantic"
        assert eng.status()["vectors_missing"] == 0
        assert eng.search("zebra migrations", mode="hybrid").mode == "hybrid"
    finally:
        eng.close()


def test_embedding_model_switch_builds_beside_and_swaps(
    ftrag_home: Path,
    docs: Path,
    ollama_server,  # type: ignore[no-untyped-def]
) -> None:
    ollama_server.embed_backend = "hash"
    eng = make_engine(ftrag_home, ollama_server.url)
    try:
        run_sync(eng, docs)
        assert eng.store.embedding_model()[0] == "nomic-embed-text"
        n_chunks = eng.status()["chunks"]
    finally:
        eng.close()
    eng = make_engine(
        ftrag_home,
        ollama_server.url,
    )
    eng.settings.embed_model = "all-minilm"
    try:
        summary, _ = run_sync(eng, docs)
        assert summary.indexed == 0
        assert eng.store.embedding_model()[0] == "all-minilm"
        assert eng.store.building_model() is None
        assert eng.status()["chunks"] == n_chunks
        assert eng.search("zebra migrations", mode="vector").hits
    finally:
        eng.close()


# --- embedding time-outs --------------------------------------------------------------------------

TIMEOUT_S = 1.0


def add_notes(root: Path, n: int = 3) -> None:
    for i in range(n):
        (root / f"note{i}.md").write_text(f"# Note {i}\n\nDelta epsilon note number {i}.\n")


def test_a_timed_out_embedding_request_is_sent_again(
    ftrag_home: Path,
    docs: Path,
    ollama_server,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(indexer, "EMBED_TIMEOUT_RETRIES_S", (0.05, 0.1))
    ollama_server.embed_backend = "hash"
    eng = make_engine(ftrag_home, ollama_server.url, request_timeout_s=TIMEOUT_S)
    try:
        run_sync(eng, docs)
        add_notes(docs)
        sent = len(ollama_server.bodies("/api/embed"))
        ollama_server.delay_s = 3 * TIMEOUT_S
        ollama_server.fault, ollama_server.fault_budget = "slow", 1  # the next request only
        summary, _ = run_sync(eng, docs)
        assert summary.indexed == 3 and summary.embedding == "semantic"
        assert eng.status()["vectors_missing"] == 0
        first, again = ollama_server.bodies("/api/embed")[sent : sent + 2]
        assert first["input"] == again["input"]  # the timed-out request, sent again
        assert eng.search("delta epsilon note", mode="vector").hits
    finally:
        eng.close()


def test_vectors_lost_to_time_outs_are_filled_in_when_quiet(
    ftrag_home: Path,
    docs: Path,
    ollama_server,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The app's way: a sync that cannot embed stores the passages without vectors and ends;
    the library service's quiet-time maintenance fills them in once Ollama answers again,
    without a new sync and without parsing anything again."""
    monkeypatch.setattr(indexer, "EMBED_TIMEOUT_RETRIES_S", (0.05,))
    monkeypatch.setattr(indexer, "EMBED_RETRY_S", 0.2)
    ollama_server.embed_backend = "hash"
    eng = make_engine(ftrag_home, ollama_server.url, request_timeout_s=TIMEOUT_S)
    try:
        run_sync(eng, docs)
        add_notes(docs)
        ollama_server.delay_s = 3 * TIMEOUT_S
        ollama_server.fault = "slow"
        summary, _ = run_sync(eng, docs)
        assert summary.indexed == 3
        assert summary.embedding.startswith("semantic (new passages wait for vectors: ")
        assert f"did not answer within {TIMEOUT_S:g} s" in summary.embedding
        missing = eng.status()["vectors_missing"]
        assert missing >= 3
        ollama_server.fault = None
        sent = len(ollama_server.bodies("/api/embed"))
        for _ in range(200):
            if eng.status()["vectors_missing"] == 0:
                break
            eng.idle_maintenance()
            time.sleep(0.05)
        assert eng.status()["vectors_missing"] == 0
        fill = ollama_server.bodies("/api/embed")[sent:]
        assert sum(len(b["input"]) for b in fill) == missing  # each passage once
        assert {h.path for h in eng.search("delta epsilon note", k=10, mode="vector").hits} >= {
            str(docs / f"note{i}.md") for i in range(3)
        }
    finally:
        eng.close()


def ftrag(home: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "ftrag_desktop.cli", "--home", str(home)]
    cmd += ["--ollama-host", url, "--timeout", f"{TIMEOUT_S:g}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


@pytest.mark.slow
def test_ftrag_index_does_not_end_quietly_with_vectors_missing(
    tmp_path: Path,
    docs: Path,
    ollama_server,  # type: ignore[no-untyped-def]
) -> None:
    """`ftrag index` retries a timed-out request, tries again before it returns, and if the
    passages still have no vectors says how many and how to fix it, with exit code 1; the next
    run, with Ollama answering, embeds them (and nothing else) and exits 0."""
    ollama_server.embed_backend = "hash"
    home = tmp_path / "home"
    first = ftrag(home, ollama_server.url, "index", str(docs))
    assert first.returncode == 0, first.stderr
    add_notes(docs)
    ollama_server.delay_s = 3 * TIMEOUT_S
    ollama_server.fault = "slow"
    slow = ftrag(home, ollama_server.url, "index", "--json", str(docs))
    ollama_server.fault = None
    assert slow.returncode == 1, slow.stderr
    assert "Traceback" not in slow.stderr
    report = json.loads(slow.stdout)
    assert report["indexed"] == 3 and report["vectors_missing"] >= 3
    n = report["vectors_missing"]
    assert (
        f"error: {n} passages were left without a vector from 'nomic-embed-text', so semantic "
        f"search cannot find them yet: Ollama at {ollama_server.url} did not answer within "
        f"{TIMEOUT_S:g} s." in slow.stderr
    )
    assert f"hint: Run `ftrag index {docs}` again once Ollama answers" in slow.stderr
    # The first request timed out three times in the sync (the passages indexed after it were
    # stored without trying), then every passage three times in the sync's last try.
    sent = Counter(t for b in ollama_server.bodies("/api/embed") for t in b["input"])
    tries = [n for text, n in sent.items() if "Delta epsilon note number" in text]
    assert len(tries) == 3 and min(tries) >= 3 and max(tries) >= 6
    sent = len(ollama_server.bodies("/api/embed"))
    again = ftrag(home, ollama_server.url, "index", "--json", str(docs))
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["indexed"] == 0 and report["vectors_missing"] == 0
    assert sum(len(b["input"]) for b in ollama_server.bodies("/api/embed")[sent:]) == n
