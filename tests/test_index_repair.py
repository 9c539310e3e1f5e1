"""A damaged index (a file inside the LanceDB folder truncated or removed) is found when the
engine starts, reported in the CLI and the app, moved aside (one copy kept for diagnosis), and
rebuilt from the documents by the next sync; nothing crashes and no document is touched.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ftrag_desktop.config import Settings, save_settings
from ftrag_desktop.core.engine import DAMAGED_DIR, Engine
from ftrag_desktop.core.events import Notice
from ftrag_desktop.core.store_damage import find_damage
from ftrag_desktop.errors import IndexDamaged
from ftrag_desktop.paths import Home
from tests.conftest import PDF_DIR
from tests.crash_harness import differences, make_corpus, snapshot

PDFS = [
    PDF_DIR / "pypdf-resources" / "crazyones.pdf",
    PDF_DIR / "py-pdf-sample-files" / "004-pdflatex-4-pages" / "pdflatex-4-pages.pdf",
]
WAIT_MS = 90_000


def _hashes(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, ollama_server_session: Any
) -> Iterator[tuple[Path, Path]]:
    """A corpus and a sound index of it whose every file is in use: compacted with no old
    version kept, then one more commit per table, so that each table has two versions."""
    root = tmp_path_factory.mktemp("built")
    corpus = root / "corpus"
    make_corpus(corpus, 40, seed=1)
    (corpus / "pdfs").mkdir()
    for pdf in PDFS:
        shutil.copyfile(pdf, corpus / "pdfs" / pdf.name)
    home = root / "home"
    server = ollama_server_session
    server.embed_backend = "hash"
    try:
        with Engine(Home(home), Settings(ollama_host=server.url)) as engine:
            for _event in engine.sync(corpus):
                pass
            store = engine.store
            store.optimize(keep_versions=timedelta(0))  # every file left is in use
            doc = store.documents()[0]
            store.put_documents([doc])  # a second version of each table
            name = store._active()[0]
            rows = store._open(name).search().where(f"doc_id = '{doc.doc_id}'").to_arrow()
            store._db.merge(store._open(name), "id", rows)
            store._set_meta({"embed_dim": store._meta.read()["embed_dim"]})
            assert store.check_health() == []
    finally:
        server.reset()
    yield corpus, home


def _table(index: Path, prefix: str) -> Path:
    return next(index.glob(f"{prefix}*.lance"))


def _newest_manifest(table: Path) -> Path:
    return min(table.glob("_versions/*.manifest"), key=lambda p: int(p.stem))


def _biggest(folder: Path) -> Path:
    return max((p for p in folder.iterdir() if p.is_file()), key=lambda p: p.stat().st_size)


def _truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def _fts_file(index: Path, name: str) -> Path:
    files = list(_table(index, "chunks_").glob(f"_indices/*/{name}"))
    return max(files, key=lambda p: p.stat().st_mtime_ns)


def _rebuilt_differences(home: Path, corpus: Path, built: tuple[Path, Path]) -> list[str]:
    """How the rebuilt index differs from the sound one it replaced (the copy set aside is
    expected, and checked by the callers)."""
    got = snapshot(home, corpus)
    assert got.set_aside and not got.notice
    return differences(dataclasses.replace(got, set_aside=False), snapshot(built[1], corpus))


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "data file truncated": (
        lambda index: _truncate(_biggest(_table(index, "chunks_") / "data")),
        "a file is cut short",
    ),
    "data file removed": (
        lambda index: _biggest(_table(index, "documents") / "data").unlink(),
        "a file is missing",
    ),
    "newest version manifest removed": (
        lambda index: _newest_manifest(_table(index, "chunks_")).unlink(),
        "is missing",
    ),
    "version manifest truncated": (
        lambda index: _truncate(_newest_manifest(_table(index, "documents"))),
        "a file is cut short",
    ),
    "full-text index file truncated": (
        lambda index: _truncate(_fts_file(index, "part_0_invert.lance")),
        "a file is cut short",
    ),
}


def _damaged_copy(built: tuple[Path, Path], tmp_path: Path, how: str) -> tuple[Path, Path]:
    corpus, home = built
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    (copy / "index" / "verified.json").unlink(missing_ok=True)  # as after a crash, or not
    DAMAGE[how][0](copy / "index")
    return corpus, copy


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_engine_finds_damage_moves_it_aside_and_the_next_sync_rebuilds(
    built: tuple[Path, Path], tmp_path: Path, ollama_server: Any, how: str
) -> None:
    ollama_server.embed_backend = "hash"
    corpus, home = _damaged_copy(built, tmp_path, how)
    docs_before = _hashes(corpus)
    assert find_damage(home / "index"), "the damage must be visible to the check"

    with Engine(Home(home), Settings(ollama_host=ollama_server.url)) as engine:
        # Detected at start, said once, and the damaged copy kept aside.
        assert engine.store.documents() == []
        status = engine.status()
        assert status["notice"] and "The index was damaged" in status["notice"]
        events = list(engine.sync(corpus))  # the app's path: the notice comes with the sync
    notices = [e.text for e in events if isinstance(e, Notice) and "damaged" in e.text]
    assert len(notices) == 1
    assert DAMAGE[how][1] in notices[0]
    assert "it is being rebuilt from your documents" in notices[0]
    aside = home / DAMAGED_DIR
    assert str(aside) in notices[0]
    assert {p.name for p in aside.iterdir()} >= {"documents.lance", "meta.lance", "DAMAGE.txt"}

    # Rebuilt: equal to the sound index it was, and the notice is gone.
    assert _rebuilt_differences(home, corpus, built) == []
    with Engine(Home(home), Settings(ollama_host=ollama_server.url)) as engine:
        assert engine.take_notices() == [] and engine.status()["notice"] is None
    assert _hashes(corpus) == docs_before  # the documents were never touched


def test_cli_status_and_index_report_the_damage_and_rebuild(
    built: tuple[Path, Path],
    tmp_path: Path,
    ollama_server: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ftrag_desktop.cli import main

    ollama_server.embed_backend = "hash"
    url = ollama_server.url
    corpus, home = _damaged_copy(built, tmp_path, "data file truncated")

    root_logger = logging.getLogger()
    handlers = list(root_logger.handlers)

    def ftrag(*args: str) -> tuple[int, str, str]:
        try:
            code = main(["--home", str(home), "--ollama-host", url, *args])
        finally:  # the CLI logs to this test's captured stderr: leave no handler behind
            for handler in set(root_logger.handlers) - set(handlers):
                root_logger.removeHandler(handler)
                handler.close()
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = ftrag("status")
    assert code == 0 and "Documents: 0 indexed" in out
    assert "note: The index was damaged (the passages table" in err
    assert "it is being rebuilt from your documents" in err
    code, out, err = ftrag("index", str(corpus))  # not rebuilt yet: said again, once
    assert code == 0 and err.count("The index was damaged") == 1, err
    code, out, err = ftrag("status")
    indexed = sum(s == "indexed" for s, _c, _e in snapshot(built[1], corpus).docs.values())
    assert code == 0 and "damaged" not in out + err and f"Documents: {indexed} indexed" in out
    assert _rebuilt_differences(home, corpus, built) == []


def test_a_second_damage_replaces_the_kept_copy(
    built: tuple[Path, Path], tmp_path: Path, ollama_server: Any
) -> None:
    ollama_server.embed_backend = "hash"
    corpus, home = _damaged_copy(built, tmp_path, "data file removed")
    settings = Settings(ollama_host=ollama_server.url)
    with Engine(Home(home), settings) as engine:
        for _event in engine.sync(corpus):
            pass
    first = (home / DAMAGED_DIR / "DAMAGE.txt").read_text()
    _biggest(_table(home / "index", "chunks_") / "data").unlink()
    with Engine(Home(home), settings) as engine:
        assert engine.take_notices() and engine.take_notices() == []  # handed out once
        for _event in engine.sync(corpus):
            pass
    kept = [p for p in home.iterdir() if "damaged" in p.name]
    assert kept == [home / DAMAGED_DIR]  # one copy, the latest
    second = (home / DAMAGED_DIR / "DAMAGE.txt").read_text()
    assert "the document list" in first and "the passages table" in second
    assert _rebuilt_differences(home, corpus, built) == []


def test_a_sound_index_is_not_taken_for_damaged(
    built: tuple[Path, Path], tmp_path: Path, ollama_server: Any
) -> None:
    ollama_server.embed_backend = "hash"
    corpus, home = built[0], tmp_path / "home"
    shutil.copytree(built[1], home)
    # Leftovers of crashes are not damage: an unused half-written data file, a torn
    # latest-version hint, a table nobody refers to yet.
    index = home / "index"
    (index / "verified.json").unlink()  # as after a crash: the files must be checked
    (_table(index, "chunks_") / "data" / "leftover.lance").write_bytes(b"half a file")
    hint = _table(index, "documents") / "_versions" / "latest_version_hint.json"
    hint.write_text('{"vers')
    assert find_damage(index) == []
    with Engine(Home(home), Settings(ollama_host=ollama_server.url)) as engine:
        assert engine.take_notices() == []
        assert len(engine.store.documents()) == len(snapshot(built[1], corpus).docs)
    assert not (home / DAMAGED_DIR).exists()
    assert (index / "verified.json").exists()  # checked: the next start may skip the check


def test_the_library_view_shows_the_damage_notice_and_rebuilds(
    qtbot: Any, built: tuple[Path, Path], tmp_path: Path, ollama_server: Any
) -> None:
    from PySide6.QtCore import QThreadPool

    from ftrag_desktop.app.controller import AppController
    from ftrag_desktop.app.library_view import LibraryView

    ollama_server.embed_backend = "hash"
    corpus, home = _damaged_copy(built, tmp_path, "newest version manifest removed")
    save_settings(
        Home(home).settings_file,
        Settings(ollama_host=ollama_server.url, watched_folders=[str(corpus.resolve())]),
    )
    expected = len(snapshot(built[1], corpus).docs)
    baseline = set(threading.enumerate())
    controller = AppController(Home(home))
    with qtbot.waitSignal(controller.engine_ready, timeout=WAIT_MS):
        controller.start()
    try:
        view = LibraryView(controller)
        qtbot.addWidget(view)
        view.resize(1100, 720)
        view.show()
        notice = view._indexing_panel.notice_label
        qtbot.waitUntil(lambda: "The index was damaged" in notice.text(), timeout=WAIT_MS)
        assert notice.isVisible()
        assert "it is being rebuilt from your documents" in notice.text()
        qtbot.waitUntil(
            lambda: sum(d["status"] == "indexed" for d in view._model.documents()) == expected,
            timeout=WAIT_MS,
        )
        qtbot.waitUntil(lambda: view._state_label.text() == "Up to date", timeout=WAIT_MS)
    finally:
        controller.shutdown()
    assert QThreadPool.globalInstance().waitForDone(10_000)
    # No library or watcher thread is left.  (The test server's handlers, LanceDB's event loop
    # and Qt's idle pool threads, which Python sees as "Dummy-n", are not ours.)
    leftover = [
        t.name
        for t in set(threading.enumerate()) - baseline
        if "process_request_thread" not in t.name
        and t.name != "LanceDBBackgroundEventLoop"
        and not t.name.startswith("Dummy-")
    ]
    assert leftover == []
    assert (home / DAMAGED_DIR / "DAMAGE.txt").exists()
    assert _rebuilt_differences(home, corpus, built) == []


def test_damage_met_during_a_sync_is_reported_and_the_next_sync_rebuilds(
    tmp_path: Path, ollama_server: Any
) -> None:
    ollama_server.embed_backend = "hash"
    corpus = tmp_path / "corpus"
    make_corpus(corpus, 20, seed=4)
    home = tmp_path / "home"
    with Engine(Home(home), Settings(ollama_host=ollama_server.url)) as engine:
        for _event in engine.sync(corpus):
            pass
        # A data file disappears while the engine runs; the next sync has to write.
        _biggest(_table(home / "index", "chunks_") / "data").unlink()
        note = next(corpus.rglob("*.txt"))
        note.write_text("An edit after the damage.\n")
        with pytest.raises(IndexDamaged) as caught:
            for _event in engine.sync(corpus):
                pass
        assert "The index was damaged (the passages table" in caught.value.message
        assert "rebuilt from your documents" in caught.value.hint
        events = list(engine.sync(corpus))  # the same engine goes on, with a new index
        assert any(isinstance(e, Notice) and "damaged" in e.text for e in events)
        assert engine.store.check_health() == [] and engine.status()["notice"] is None
    got = snapshot(home, corpus)
    assert got.set_aside and len(got.docs) == 20 and got.pending() == []
    assert got.duplicate_ids == got.orphan_chunks == got.missing_vectors == 0
