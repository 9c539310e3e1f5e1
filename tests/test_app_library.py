"""The Library tab and dropped files, against a real controller, engine and test server."""

from __future__ import annotations

import hashlib
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QMimeData, QPoint, Qt, QThreadPool, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QFileDialog, QMainWindow, QMessageBox

from ftrag_desktop.app.controller import AppController
from ftrag_desktop.app.drops import copy_into_folder, install_drop_handler
from ftrag_desktop.app.library_view import COL_REASON, LibraryView
from ftrag_desktop.config import Settings, save_settings
from ftrag_desktop.paths import Home
from tests.conftest import PDF_DIR

GOOD_PDF = PDF_DIR / "py-pdf-sample-files" / "004-pdflatex-4-pages" / "pdflatex-4-pages.pdf"
WAIT_MS = 60_000


@pytest.fixture
def controller(qtbot: Any, ftrag_home: Path, ollama_server: Any) -> Iterator[AppController]:
    ollama_server.embed_backend = "hash"
    home = Home(ftrag_home)
    save_settings(home.settings_file, Settings(ollama_host=ollama_server.url))
    baseline = set(threading.enumerate())
    ctl = AppController(home)
    with qtbot.waitSignal(ctl.engine_ready, timeout=WAIT_MS):
        ctl.start()
    yield ctl
    ctl.shutdown()
    assert ctl.service is None
    # The library and watcher threads are gone.  (The test server's request handlers and
    # LanceDB's process-wide event loop are not ours.)
    leftover = [
        t.name
        for t in set(threading.enumerate()) - baseline
        if "process_request_thread" not in t.name and t.name != "LanceDBBackgroundEventLoop"
    ]
    assert leftover == []
    # Status reloads and copies run on the global pool: none may outlive the test.
    assert QThreadPool.globalInstance().waitForDone(10_000)


def make_view(qtbot: Any, controller: AppController) -> LibraryView:
    view = LibraryView(controller)
    qtbot.addWidget(view)
    view.resize(1100, 720)
    view.show()
    return view


def docs_by_name(view: LibraryView) -> dict[str, dict[str, Any]]:
    return {Path(d["path"]).name: d for d in view._model.documents()}


def status_of(view: LibraryView, name: str) -> str | None:
    doc = docs_by_name(view).get(name)
    return None if doc is None else str(doc["status"])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_library_shows_indexing_failures_retry_pause_and_removal(
    qtbot: Any, tmp_path: Path, controller: AppController, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "capybaras.md").write_text("# Capybaras\n\nCapybaras enjoy warm springs.\n")
    (docs / "notes.txt").write_text("Otters hold hands while they sleep.\n")
    (docs / "bad.pdf").write_bytes(b"this is junk, not a PDF at all")
    view = make_view(qtbot, controller)
    assert view._stack.currentWidget() is view._empty  # empty state before anything

    # Add the folder through the view's button, the dialog answered by the test.
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(docs))
    qtbot.mouseClick(view._add_button, Qt.MouseButton.LeftButton)

    def indexed_with_failure() -> bool:
        return (
            status_of(view, "capybaras.md") == "indexed"
            and status_of(view, "notes.txt") == "indexed"
            and status_of(view, "bad.pdf") == "failed"
        )

    qtbot.waitUntil(indexed_with_failure, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: view._state_label.text() == "Up to date", timeout=WAIT_MS)
    assert view._stack.currentWidget() is view._table
    assert view._folder_list.count() == 1
    assert view.selected_folder() == str(docs.resolve())
    assert "3 documents" in view._folder_list.item(0).text()
    assert "1 failed" in view._folder_list.item(0).text()
    reason = docs_by_name(view)["bad.pdf"]["error"]
    assert "not a PDF" in reason
    assert view._run_failures == 1 and view._failures_label.isVisible()
    assert "MB" in view._index_label.text() or "KB" in view._index_label.text()
    assert "nomic-embed-text" in view._model_label.text()
    assert not view._banner.isVisible()

    # The Failed filter shows exactly the broken file, with its reason in the table.
    view.set_filter("failed")
    assert view._proxy.rowCount() == 1
    assert view._proxy.index(0, COL_REASON).data() == reason
    assert "Failed (1)" in view._filter_buttons["failed"].text()
    view.set_filter(None)
    assert view._proxy.rowCount() == 3
    view._search.setText("otters")  # not in any name: no match
    assert view._proxy.rowCount() == 0
    view._search.setText("NOTES")
    assert view._proxy.rowCount() == 1
    view._search.clear()

    # Pause the folder, so the watcher leaves the fixed file alone: only Retry re-reads it.
    qtbot.mouseClick(view._pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "paused" in view._folder_list.item(0).text(), timeout=WAIT_MS)
    assert view._pause_button.text() == "Resume"
    shutil.copyfile(GOOD_PDF, docs / "bad.pdf")
    view.set_filter("failed")
    view._table.selectRow(0)
    assert view._retry_button.text() == "Retry selected (1)"
    qtbot.mouseClick(view._retry_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: status_of(view, "bad.pdf") == "indexed", timeout=WAIT_MS)
    fixed = docs_by_name(view)["bad.pdf"]
    assert fixed["error"] == "" and fixed["pages"] == 4 and fixed["chunks"] > 0
    qtbot.waitUntil(lambda: view._proxy.rowCount() == 0, timeout=WAIT_MS)  # none failed now
    assert not view._retry_button.isEnabled()
    view.set_filter(None)

    qtbot.mouseClick(view._pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "paused" not in view._folder_list.item(0).text(), timeout=WAIT_MS)

    # Remove after confirming: the documents leave the table, the files stay on disk.
    asked: list[str] = []

    def confirm(_parent: Any, _title: str, text: str, *a: Any) -> QMessageBox.StandardButton:
        asked.append(text)
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", confirm)
    qtbot.mouseClick(view._remove_button, Qt.MouseButton.LeftButton)
    assert asked and "files stay on disk" in asked[0]
    qtbot.waitUntil(lambda: view._model.rowCount() == 0, timeout=WAIT_MS)
    assert view._folder_list.count() == 0
    assert view._stack.currentWidget() is view._empty
    assert sorted(p.name for p in docs.iterdir()) == ["bad.pdf", "capybaras.md", "notes.txt"]


def test_keyword_only_banner_then_semantic_after_rescan(
    qtbot: Any,
    tmp_path: Path,
    controller: AppController,
    ollama_server: Any,
) -> None:
    ollama_server.fault = "no_embed"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nWombats make cube-shaped droppings.\n")
    view = make_view(qtbot, controller)
    controller.add_folder(str(docs))
    qtbot.waitUntil(lambda: status_of(view, "a.md") == "indexed", timeout=WAIT_MS)
    qtbot.waitUntil(view._banner.isVisible, timeout=WAIT_MS)
    text = view._banner_label.text()
    assert "Keyword search only" in text
    assert "ollama pull nomic-embed-text" in text
    assert "without re-reading your files" in text
    assert "not available" in text  # the reason the indexer gave
    assert "none" in view._model_label.text()

    # The model comes back: "Rescan now" on the banner adds vectors; the banner goes away.
    ollama_server.fault = None
    qtbot.mouseClick(view._banner_rescan, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not view._banner.isVisible(), timeout=WAIT_MS)
    assert "nomic-embed-text" in view._model_label.text()
    assert "hybrid" in view._model_label.text()


def test_copy_into_folder_never_overwrites_nor_alters_originals(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "report.pdf").write_bytes(b"%PDF-1.4 original")
    (src / "sub" / "inner.md").write_text("# Inner\n")
    dest = tmp_path / "watched"
    dest.mkdir()
    (dest / "report.pdf").write_bytes(b"already here")
    (dest / "report (2).pdf").write_bytes(b"also here")
    (dest / "sub").mkdir()
    before = {p: sha256(p) for p in src.rglob("*") if p.is_file()}

    created = copy_into_folder([str(src / "report.pdf"), str(src / "sub")], str(dest))
    assert created == [str(dest / "report (3).pdf"), str(dest / "sub (2)")]
    assert (dest / "report (3).pdf").read_bytes() == b"%PDF-1.4 original"
    assert (dest / "sub (2)" / "inner.md").read_text() == "# Inner\n"
    assert (dest / "report.pdf").read_bytes() == b"already here"
    assert (dest / "report (2).pdf").read_bytes() == b"also here"
    assert list((dest / "sub").iterdir()) == []
    # A second drop of the same file takes the next free name.
    assert copy_into_folder([str(src / "report.pdf")], str(dest)) == [str(dest / "report (4).pdf")]
    assert {p: sha256(p) for p in src.rglob("*") if p.is_file()} == before
    assert not [p for p in dest.iterdir() if p.name.startswith(".")]  # no partial copies left
    # Modification times travel with the copy (copy2).
    assert (dest / "report (3).pdf").stat().st_mtime == (src / "report.pdf").stat().st_mtime


def test_dropped_file_is_copied_into_the_chosen_folder_and_indexed(
    qtbot: Any, tmp_path: Path, controller: AppController, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (second / "dropped.md").write_text("an older file with the same name\n")
    outside = tmp_path / "desktop"
    outside.mkdir()
    original = outside / "dropped.md"
    original.write_text("# Dropped\n\nPangolins are covered in keratin scales.\n")
    junk = outside / "photo.xyz"
    junk.write_bytes(b"\x00\x01")
    digest = sha256(original)

    window = QMainWindow()
    qtbot.addWidget(window)
    view = make_view(qtbot, controller)
    window.setCentralWidget(view)
    offered: list[list[str]] = []

    def choose(folders: list[str]) -> str | None:
        offered.append(folders)
        return folders[1]

    handler = install_drop_handler(window, controller, choose_folder=choose)
    assert window.acceptDrops()
    controller.add_folder(str(first))
    controller.add_folder(str(second))
    qtbot.waitUntil(lambda: view._folder_list.count() == 2, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: status_of(view, "dropped.md") == "indexed", timeout=WAIT_MS)

    refused: list[str] = []
    monkeypatch.setattr(QMessageBox, "information", lambda _p, _t, text: refused.append(text))
    # A web link is not a local file: the drag is not accepted.
    web = QMimeData()
    web.setUrls([QUrl("https://example.com/a.pdf")])
    web_enter = QDragEnterEvent(
        QPoint(10, 10),
        Qt.DropAction.CopyAction,
        web,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(window, web_enter)
    assert not web_enter.isAccepted()

    # Qt delivers a drop to the widget that accepted the drag's entry: enter, then drop.
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(original)), QUrl.fromLocalFile(str(junk))])
    enter = QDragEnterEvent(
        QPoint(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(
        QPoint(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    with qtbot.waitSignal(handler.files_copied, timeout=WAIT_MS) as copied:
        QApplication.sendEvent(window, drop)
    assert drop.isAccepted()
    assert offered == [[str(first.resolve()), str(second.resolve())]]
    new = second / "dropped (2).md"
    assert copied.args == [str(second.resolve()), [str(new.resolve())]]
    assert refused and "photo.xyz" in refused[0]  # an unreadable type is refused, by name
    assert not (second / "photo.xyz").exists()
    assert original.exists() and sha256(original) == digest
    qtbot.waitUntil(lambda: status_of(view, "dropped (2).md") == "indexed", timeout=WAIT_MS)
    assert status_of(view, "dropped.md") == "indexed"  # the older file is still there


def test_drop_with_no_watched_folder_adds_the_chosen_one_first(
    qtbot: Any, tmp_path: Path, controller: AppController
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    original = tmp_path / "memo.txt"
    original.write_text("Axolotls regrow their limbs.\n")
    view = make_view(qtbot, controller)
    offered: list[list[str]] = []

    def choose(folders: list[str]) -> str | None:
        offered.append(folders)
        return str(inbox)

    handler = install_drop_handler(view, controller, choose_folder=choose)
    with qtbot.waitSignal(handler.files_copied, timeout=WAIT_MS) as copied:
        handler.handle_drop([str(original)])
    assert offered == [[]]  # nothing watched: the chooser was asked to add a folder
    assert copied.args == [str(inbox.resolve()), [str((inbox / "memo.txt").resolve())]]
    qtbot.waitUntil(lambda: status_of(view, "memo.txt") == "indexed", timeout=WAIT_MS)
    assert controller.watched_folders() == [str(inbox.resolve())]
    assert original.read_text() == "Axolotls regrow their limbs.\n"


def test_a_big_status_report_reaches_the_table_in_slices(
    qtbot: Any, controller: AppController, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A report of hundreds of changes (a folder being reorganised) is given to the table a
    slice per event-loop turn, and the table ends exactly as the reports say."""
    from ftrag_desktop.app import library_view
    from ftrag_desktop.core.status_report import StatusReport

    view = make_view(qtbot, controller)
    root = "/data/notes"

    def doc(i: int, status: str = "indexed") -> dict[str, Any]:
        path = f"{root}/d{i % 5}/n{i:05d}.md"
        return {"path": path, "status": status, "size": i, "chunks": 1, "pages": 0}

    summary = {"counts": {}, "search": "hybrid"}
    view._on_controller_status_loaded(
        StatusReport(summary, tuple(doc(i) for i in range(0, 1200, 2)), full=True)
    )
    qtbot.waitUntil(lambda: view._model.rowCount() == 600, timeout=10_000)
    calls: list[int] = []
    apply = view._model.apply_changes
    monkeypatch.setattr(
        view._model,
        "apply_changes",
        lambda c, r, n: calls.append(len(c) + len(r)) or apply(c, r, n),
    )
    monkeypatch.setattr(library_view, "TABLE_SLICE", 60)
    changed = [doc(i) for i in range(1, 300, 2)] + [doc(i, "failed") for i in range(0, 60, 2)]
    removed = [doc(i)["path"] for i in range(1000, 1040, 2)]  # 200 changes in all
    view._on_controller_status_loaded(StatusReport(summary, tuple(changed), tuple(removed)))
    want = {d["path"]: d["status"] for d in [doc(i) for i in range(0, 1200, 2)]}
    for path in removed:
        del want[path]
    want.update({d["path"]: d["status"] for d in changed})
    qtbot.waitUntil(
        lambda: {d["path"]: d["status"] for d in view._model.documents()} == want, timeout=10_000
    )
    assert len(calls) >= 4 and max(calls) <= 60  # in slices, none over the slice
    assert [d["path"] for d in view._model.documents()] == sorted(
        want, key=lambda p: (Path(p).name.lower(), p)
    )
