"""User documents are never touched: a whole session leaves the watched folder as the user left it.

Every entry under the watched folder (files, folders, symlinks, hidden ones included) is
recorded before and after a full session: for a file its sha256, size, mtime, ctime, mode,
inode and link count; for a folder its mode and mtime (a folder's mtime moves whenever an entry
is created, renamed or deleted in it, even for a moment, so a lock or temporary file the app
made and removed again is caught too).  The ctime and inode catch what content and mtime alone
would miss: a file rewritten with the same bytes and its old mtime put back, a chmod undone, a
file replaced by a copy of itself.

The session, in the real window (offscreen) and with the `ftrag` commands: index the folder,
edits made by the *user* (the test edits, creates, deletes and renames files, then takes the
folder as it is now as the expected state), questions, an opened source, a rescan, export, quit.
In the window, files are also dropped on it from a folder outside: the drop copies them INTO
the watched folder (the only entries the app may add, checked by name and content), and the
originals outside are untouched.  Folders outside the watched one (the drop's sources, a
symlink's target) are recorded as well.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from ftrag_desktop.config import Settings, save_settings
from ftrag_desktop.core.store import Store
from ftrag_desktop.paths import Home
from tests.conftest import PDF_DIR
from tests.ollama_server import OllamaTestServer

PDF = PDF_DIR / "py-pdf-sample-files" / "004-pdflatex-4-pages" / "pdflatex-4-pages.pdf"
WAIT_MS = 60_000

Entry = tuple[Any, ...]


def snapshot(root: Path) -> dict[str, Entry]:
    """Every entry under `root` and `root` itself ("."), symlinks not followed."""
    out: dict[str, Entry] = {".": _entry(root)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            out[str(path.relative_to(root))] = _entry(path)
    return out


def _entry(path: Path) -> Entry:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return ("link", os.readlink(path), st.st_mode, st.st_mtime_ns, st.st_ino)
    if stat.S_ISDIR(st.st_mode):
        return ("dir", st.st_mode, st.st_mtime_ns, st.st_ino)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return (
        "file",
        digest,
        st.st_size,
        st.st_mtime_ns,
        st.st_ctime_ns,
        st.st_mode,
        st.st_ino,
        st.st_nlink,
    )


def differences(before: dict[str, Entry], after: dict[str, Entry]) -> list[str]:
    """What changed, for people: created, removed and altered entries."""
    out = [f"created: {p}" for p in sorted(set(after) - set(before))]
    out += [f"removed: {p}" for p in sorted(set(before) - set(after))]
    out += [
        f"altered: {p}: {before[p]} -> {after[p]}"
        for p in sorted(set(before) & set(after))
        if before[p] != after[p]
    ]
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_library(tmp_path: Path) -> tuple[Path, Path]:
    """A watched folder with the kinds of files people have, and a folder outside it."""
    docs = tmp_path / "Documents"
    outside = tmp_path / "Desktop"
    (docs / "sub" / "deeper").mkdir(parents=True)
    outside.mkdir()
    (docs / "notes.md").write_text("# Notes\n\nThe forward door latch was adjusted in May.\n")
    (docs / "tea.txt").write_text("Green tea is steeped at 80 degrees for two minutes.\n")
    (docs / "page.html").write_text("<html><body><p>Kettles are descaled monthly.</p></body>")
    (docs / "résumé.md").write_text("# Résumé\n\nFluent in Catalan and in COBOL.\n")
    (docs / "sub" / "deeper" / "inner.md").write_text("# Inner\n\nOtters hold hands.\n")
    (docs / "locked.md").write_text("# Locked\n\nA read-only file about lighthouses.\n")
    (docs / "locked.md").chmod(0o444)
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a PDF")
    (docs / "empty.txt").write_bytes(b"")
    (docs / "photo.xyz").write_bytes(bytes(range(256)))
    (docs / ".hidden.md").write_text("# Hidden\n\nNot indexed, not touched.\n")
    shutil.copy2(PDF, docs / "manual.pdf")
    (outside / "target.md").write_text("# Target\n\nA symlink in the library points here.\n")
    (docs / "link.md").symlink_to(outside / "target.md")
    (outside / "dropped.md").write_text("# Dropped\n\nPangolins are covered in scales.\n")
    (outside / "notes.md").write_text("# Other notes\n\nSame name as a file in the library.\n")
    return docs, outside


def user_edits(docs: Path) -> None:
    """What the user does while the app watches: edit, create, delete, rename."""
    with (docs / "notes.md").open("a") as fh:
        fh.write("\nThe latch was checked again in June.\n")
    (docs / "new.md").write_text("# New\n\nQuokkas certify the ledger.\n")
    (docs / "tea.txt").unlink()
    (docs / "sub" / "deeper" / "inner.md").rename(docs / "sub" / "inner-moved.md")


def indexed_names(store: Store) -> dict[str, str]:
    return {Path(d.path).name: d.status.value for d in store.documents()}


AFTER_EDITS = {"notes.md", "new.md", "inner-moved.md", "manual.pdf", "résumé.md"}


def edits_indexed(store: Store, docs: Path) -> bool:
    names = indexed_names(store)
    notes = store.document_by_path(str(docs / "notes.md"))
    return (
        {n for n, s in names.items() if s == "indexed"} >= AFTER_EDITS
        and "tea.txt" not in names
        and "inner.md" not in names
        and notes is not None
        and notes.sha256 == sha256(docs / "notes.md")
        and "pending" not in names.values()
    )


# ---- the app ------------------------------------------------------------------------------


@pytest.fixture
def home(ftrag_home: Path, ollama_server: OllamaTestServer) -> Home:
    ollama_server.embed_backend = "hash"
    h = Home(ftrag_home)
    save_settings(h.settings_file, Settings(ollama_host=ollama_server.url))
    return h


def drop(window: Any, paths: list[Path]) -> None:
    """Drag local files onto the window and drop them, as Qt delivers it."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    for kind in (QDragEnterEvent, QDropEvent):
        event = kind(
            QPoint(20, 20),
            Qt.DropAction.CopyAction,
            mime,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
        )
        QApplication.sendEvent(window, event)
        assert event.isAccepted()


def test_an_app_session_leaves_the_users_documents_as_they_were(
    qtbot: Any, tmp_path: Path, home: Home
) -> None:
    from ftrag_desktop.app.drops import DropHandler
    from ftrag_desktop.app.main_window import MainWindow

    docs, outside = make_library(tmp_path)
    before = snapshot(docs)
    outside_before = snapshot(outside)

    win = MainWindow(home)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.controller.engine is not None, timeout=WAIT_MS)
    engine = win.controller.engine
    assert engine is not None
    win.controller.add_folder(str(docs))
    first = {"notes.md", "tea.txt", "inner.md", "manual.pdf", "locked.md", "page.html"}
    qtbot.waitUntil(
        lambda: (
            first <= {n for n, s in indexed_names(engine.store).items() if s == "indexed"}
            and indexed_names(engine.store).get("broken.pdf") == "failed"
        ),
        timeout=WAIT_MS,
    )
    assert differences(before, snapshot(docs)) == []  # indexing changed nothing

    user_edits(docs)
    expected = snapshot(docs)  # the user's own changes are the new baseline
    qtbot.waitUntil(lambda: edits_indexed(engine.store, docs), timeout=WAIT_MS)

    # Two files dropped from outside: copied in (one under a new name), originals untouched.
    handler = win.findChild(DropHandler)
    assert handler is not None
    with qtbot.waitSignal(handler.files_copied, timeout=WAIT_MS) as copied:
        drop(win, [outside / "dropped.md", outside / "notes.md"])
    assert sorted(Path(p).name for p in copied.args[1]) == ["dropped.md", "notes (2).md"]
    after_drop = snapshot(docs)
    assert set(after_drop) - set(expected) == {"dropped.md", "notes (2).md"}
    assert sha256(docs / "dropped.md") == sha256(outside / "dropped.md")
    assert sha256(docs / "notes (2).md") == sha256(outside / "notes.md")
    # Only the folder's own entry list changed; every existing entry is as it was.
    assert [d for d in differences(expected, after_drop) if not d.startswith("created")] == [
        f"altered: .: {expected['.']} -> {after_drop['.']}"
    ]
    expected = after_drop
    qtbot.waitUntil(
        lambda: indexed_names(engine.store).get("notes (2).md") == "indexed", timeout=WAIT_MS
    )

    # Questions, a cited source opened in the viewer, a rescan, an export.
    for n, question in enumerate(("When was the latch adjusted?", "What covers pangolins?")):
        win.chat.question_submitted.emit(question)
        assert win._job is not None
        qtbot.waitUntil(lambda: win._job is None, timeout=WAIT_MS)
        assert win.chat.answer_text(2 * n + 1)
    with qtbot.waitSignal(win.viewer.opened, timeout=WAIT_MS):
        assert win.open_first_cited_source()
    rescanned = _library_idle_after(win)
    win.controller.rescan(str(docs))
    qtbot.waitUntil(rescanned, timeout=WAIT_MS)
    export = tmp_path / "export.md"
    win.export_conversation(str(export))
    qtbot.waitUntil(export.exists, timeout=WAIT_MS)
    assert "What covers pangolins?" in export.read_text()

    win.close()  # quit
    assert [t.name for t in threading.enumerate() if t.name.startswith("ftrag")] == []
    assert differences(expected, snapshot(docs)) == []
    assert differences(outside_before, snapshot(outside)) == []


def _library_idle_after(win: Any) -> Callable[[], bool]:
    """A condition: a sync finished, then the library went idle (after this call)."""
    from ftrag_desktop.core.events import SyncFinished
    from ftrag_desktop.core.service import ServiceIdle

    seen: list[str] = []

    def on_event(event: object) -> None:
        if isinstance(event, SyncFinished):
            seen.append("finished")
        elif isinstance(event, ServiceIdle) and seen:
            seen.append("idle")

    win.controller.library_event.connect(on_event)
    return lambda: "idle" in seen


# ---- the command line ---------------------------------------------------------------------


class WatchProcess:
    """`ftrag watch DOCS` in a child process, until it is interrupted (Ctrl-C)."""

    def __init__(self, cmd: list[str]) -> None:
        env = dict(os.environ, PYTHONFAULTHANDLER="1")
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[str] = []
        self.ready = threading.Event()
        self._reader = threading.Thread(target=self._read, name="watch-stderr", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if line.startswith("Watching"):
                self.ready.set()

    def quit(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(60)
        except subprocess.TimeoutExpired as exc:
            # Still running: SIGABRT makes faulthandler (PYTHONFAULTHANDLER) print every thread's
            # stack, so the failure says where it hung.
            self.proc.send_signal(signal.SIGABRT)
            self.proc.wait(10)
            self._reader.join(10)
            stacks = "".join(self.lines)
            raise AssertionError(f"`ftrag watch` did not exit after Ctrl-C:\n{stacks}") from exc
        self._reader.join(10)
        return code


@pytest.fixture
def cli(ftrag_home: Path, ollama_server: OllamaTestServer) -> Iterator[Callable[..., Any]]:
    ollama_server.embed_backend = "hash"
    base = [sys.executable, "-m", "ftrag_desktop.cli", "--home", str(ftrag_home)]
    base += ["--ollama-host", ollama_server.url]
    started: list[WatchProcess] = []

    def run(*args: str, background: bool = False) -> Any:
        if background:
            started.append(WatchProcess([*base, *args]))
            return started[-1]
        done = subprocess.run([*base, *args], capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        return done

    yield run
    for watch in started:
        if watch.proc.poll() is None:
            watch.proc.kill()
            watch.proc.wait()


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def test_a_cli_session_leaves_the_users_documents_as_they_were(
    tmp_path: Path, ftrag_home: Path, cli: Callable[..., Any]
) -> None:
    docs, outside = make_library(tmp_path)
    before = snapshot(docs)
    outside_before = snapshot(outside)

    indexed = json.loads(cli("index", str(docs), "--json").stdout)
    assert indexed["indexed"] >= 7 and indexed["failed"] >= 1  # broken.pdf, empty.txt
    assert differences(before, snapshot(docs)) == []

    watch = cli("watch", str(docs), background=True)
    assert watch.ready.wait(120), "".join(watch.lines)
    user_edits(docs)
    expected = snapshot(docs)
    reader = Store(Home(ftrag_home).index_dir, read_only=True)
    try:
        wait_for(lambda: edits_indexed(reader, docs), 60, "the edits to be indexed")
    finally:
        reader.close()

    answer = json.loads(cli("ask", "When was the door latch adjusted?", "--json").stdout)
    assert answer["answer"] and answer["retrieved"]
    cli("ask", "Who holds hands?", "--json")
    hits = json.loads(cli("search", "quokkas ledger", "--json").stdout)["hits"]
    assert hits and hits[0]["path"].endswith("new.md")
    status = json.loads(cli("status", "--json").stdout)
    assert not [d for d in status["documents"] if d["status"] == "pending"]
    export = tmp_path / "export.md"
    cli("export", answer["conversation_id"], "-o", str(export))
    assert "door latch" in export.read_text()
    assert watch.quit() == 0, "".join(watch.lines)
    assert "Stopped." in "".join(watch.lines)

    assert differences(expected, snapshot(docs)) == []
    assert differences(outside_before, snapshot(outside)) == []
