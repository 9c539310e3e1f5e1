"""The whole app flow, offscreen, against the Ollama-protocol test server and a temporary home.

Start, add a folder, wait until indexed, ask, see the answer stream and the sources, click a
citation and land on the cited page, export, restart and find the conversation again.  Plus:
Ollama down, a missing model, Stop, live file changes, a failed file and its retry.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QUrl

from ftrag_desktop.app.main_window import MainWindow
from ftrag_desktop.config import Settings, save_settings
from ftrag_desktop.paths import Home
from tests.conftest import PDF_DIR

PDF = PDF_DIR / "pdfplumber-tests" / "federal-register-2020-17221.pdf"
WAIT = 60_000


def app_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("ftrag")]


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "Documents"
    root.mkdir()
    shutil.copy(PDF, root / PDF.name)
    (root / "notes.md").write_text("# Notes\n\n## Cabin\n\nThe forward door latch was adjusted.\n")
    return root


@pytest.fixture
def home(ftrag_home: Path, ollama_server) -> Home:  # type: ignore[no-untyped-def]
    ollama_server.embed_backend = "hash"
    h = Home(ftrag_home)
    save_settings(h.settings_file, Settings(ollama_host=ollama_server.url))
    return h


@pytest.fixture
def window(qtbot, home: Home) -> Iterator[MainWindow]:  # type: ignore[no-untyped-def]
    win = MainWindow(home)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.controller.engine is not None, timeout=WAIT)
    yield win
    win.close()
    assert app_threads() == []


def indexed_paths(win: MainWindow) -> dict[str, str]:
    engine = win.controller.engine
    assert engine is not None
    return {Path(d.path).name: d.status.value for d in engine.store.documents()}


def add_and_index(qtbot, win: MainWindow, folder: Path, expected: set[str]) -> None:  # type: ignore[no-untyped-def]
    win.controller.add_folder(str(folder))
    qtbot.waitUntil(lambda: set(indexed_paths(win)) >= expected, timeout=WAIT)
    qtbot.waitUntil(lambda: "pending" not in indexed_paths(win).values(), timeout=WAIT)


def ask(qtbot, win: MainWindow, question: str) -> None:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(win.settled, timeout=WAIT):
        win.chat.question_submitted.emit(question)


def test_whole_flow_then_restart(qtbot, docs: Path, home: Home, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    win = MainWindow(home)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.controller.engine is not None, timeout=WAIT)
    assert win._centre.currentWidget() is win._welcome  # first run explains the steps
    add_and_index(qtbot, win, docs, {PDF.name, "notes.md"})
    assert win._centre.currentWidget() is win.chat

    tokens: list[str] = []
    win.chat.question_submitted.emit("What happens when the two AOA sensors disagree?")
    job = win._job
    assert job is not None
    job.token_received.connect(tokens.append)
    qtbot.waitUntil(lambda: win._job is None, timeout=WAIT)
    assert len(tokens) > 3  # streamed, token by token
    answer = win.chat.answer_text(1)
    assert "[1]" in answer
    cards = win.sources.cards()
    assert cards and "cited" in win.sources.summary_text()

    conv = win._conv
    assert conv is not None and conv.messages[1].sources
    first = next(s for s in conv.messages[1].sources if s["number"] == 1)
    with qtbot.waitSignal(win.viewer.opened, timeout=WAIT) as opened:
        browser = win.chat.answer_browser(1)
        assert browser is not None
        browser.anchorClicked.emit(QUrl("cite:1:1"))
    assert opened.args[0] == first["path"]
    if first["page"]:
        assert win.viewer.current_page() == first["page"]
    assert win.sources.selected_number() == 1

    target = tmp_path / "export.md"
    win.export_conversation(str(target))
    qtbot.waitUntil(target.exists, timeout=WAIT)
    exported = target.read_text()
    assert "What happens when the two AOA sensors disagree?" in exported
    assert "[^" in exported and Path(first["path"]).name in exported
    conv_id = conv.id
    win.close()
    assert app_threads() == []

    again = MainWindow(home)
    qtbot.addWidget(again)
    again.show()
    qtbot.waitUntil(lambda: again._conv is not None and again._conv.id == conv_id, timeout=WAIT)
    assert "AOA sensors" in again.chat.transcript_text()
    again.close()


def test_live_changes_and_failed_file_retry(qtbot, window: MainWindow, docs: Path) -> None:  # type: ignore[no-untyped-def]
    (docs / "bad.pdf").write_bytes(b"junk, not a pdf")
    add_and_index(qtbot, window, docs, {PDF.name, "notes.md", "bad.pdf"})
    assert indexed_paths(window)["bad.pdf"] == "failed"
    engine = window.controller.engine
    assert engine is not None
    reason = next(d.error for d in engine.store.documents() if d.path.endswith("bad.pdf"))
    assert "not a PDF" in reason

    (docs / "added.txt").write_text("Quokkas certify the ledger.\n")
    qtbot.waitUntil(lambda: indexed_paths(window).get("added.txt") == "indexed", timeout=WAIT)
    (docs / "notes.md").unlink()
    qtbot.waitUntil(lambda: "notes.md" not in indexed_paths(window), timeout=WAIT)

    shutil.copy(
        PDF_DIR / "py-pdf-sample-files/006-pdflatex-outline/pdflatex-outline.pdf", docs / "bad.pdf"
    )
    qtbot.waitUntil(lambda: indexed_paths(window).get("bad.pdf") == "indexed", timeout=WAIT)
    ask(qtbot, window, "Who certifies the ledger?")
    conv = window._conv
    assert conv is not None
    assert any(s["path"].endswith("added.txt") for s in conv.messages[-1].sources)


def test_ollama_down_missing_model_and_stop(
    qtbot,
    window: MainWindow,
    docs: Path,
    ollama_server,  # type: ignore[no-untyped-def]
) -> None:
    add_and_index(qtbot, window, docs, {PDF.name})
    ollama_server.fault = "down"
    ask(qtbot, window, "Anything?")
    assert "Cannot reach Ollama" in window.chat.transcript_text()
    window.controller.check_ollama()
    qtbot.waitUntil(lambda: "not reachable" in window._ollama.text(), timeout=WAIT)

    ollama_server.fault = None
    ollama_server.up()
    window.controller.check_ollama()
    qtbot.waitUntil(lambda: "connected" in window._ollama.text(), timeout=WAIT)
    window._set_current_model("no-such-model")
    ask(qtbot, window, "Anything?")
    assert "no-such-model" in window.chat.transcript_text()

    window._set_current_model("llama3.2")
    ollama_server.token_delay_s = 0.05
    window.chat.question_submitted.emit("A long answer please")
    qtbot.waitUntil(lambda: window.chat.is_streaming(), timeout=WAIT)
    with qtbot.waitSignal(window.settled, timeout=WAIT):
        window.chat.stop_requested.emit()
    assert window._job is None
    conv = window._conv
    assert conv is not None and conv.messages[-1].meta["cancelled"] is True
    assert len(conv.messages[-1].content.split()) < 40  # cut short, not the whole answer


def test_banner_for_ollama_down_and_a_missing_model_with_pull(
    qtbot,
    window: MainWindow,
    ollama_server,  # type: ignore[no-untyped-def]
) -> None:
    ollama_server.fault = "down"
    window.controller.check_ollama()
    qtbot.waitUntil(lambda: window.banner.mode == "unreachable", timeout=WAIT)
    assert window.banner.isVisible() and "ollama serve" in window.banner.text()
    ollama_server.fault = None
    ollama_server.up()
    window.banner.retry_requested.emit()
    qtbot.waitUntil(lambda: window.banner.mode == "", timeout=WAIT)
    assert not window.banner.isVisible()

    qtbot.waitUntil(lambda: window._installed is not None, timeout=WAIT)  # models listed
    window._set_current_model("qwen2.5:0.5b")  # pullable, not installed
    window._on_models_activated(0)
    assert window.banner.mode == "missing" and "qwen2.5:0.5b" in window.banner.text()
    with qtbot.waitSignal(window.controller.models_loaded, timeout=WAIT):
        window.banner.pull_requested.emit("qwen2.5:0.5b")
    qtbot.waitUntil(lambda: window.banner.mode == "", timeout=WAIT)
    assert any(window._models.itemData(i) == "qwen2.5:0.5b" for i in range(window._models.count()))


def test_regenerate_uses_the_answers_own_model_and_document_setting(
    qtbot,  # type: ignore[no-untyped-def]
    window: MainWindow,
    docs: Path,
) -> None:
    add_and_index(qtbot, window, docs, {PDF.name, "notes.md"})
    ask(qtbot, window, "What was adjusted on the cabin door?")
    conv = window._conv
    assert conv is not None
    first = conv.messages[1]
    assert first.meta["rag"] is True and first.sources
    window._set_current_model("some-other-model:1b")  # the toolbar changed since
    window._rag.setChecked(False)
    with qtbot.waitSignal(window.settled, timeout=WAIT):
        window.chat.regenerate_requested.emit(1)
    again = conv.messages[1]
    assert again is not first and len(conv.messages) == 2
    assert again.model == first.model and again.meta["rag"] is True and again.sources
