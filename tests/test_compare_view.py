"""The compare window, offscreen, against the Ollama-protocol test server: answers streaming in
side by side, their figures and sources, the "Best" mark saved and reopened, Stop, and the main
window's Compare… action."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt, QThreadPool
from PySide6.QtWidgets import QApplication

from ftrag_desktop.app.compare_view import CompareWindow, suggested_question
from ftrag_desktop.app.controller import AppController
from ftrag_desktop.config import Settings, save_settings
from ftrag_desktop.core.compare import CompareConfig, Comparison
from ftrag_desktop.core.conversations import Conversation, Message
from ftrag_desktop.core.engine import Engine
from ftrag_desktop.core.events import SyncFinished
from ftrag_desktop.paths import Home

ZEBRA = "The alpha protocol governs zebra migrations across the northern plains."
QUESTION = "What governs zebra migrations?"
WAIT = 30_000


def long_reply(messages: list[dict[str, Any]]) -> str:
    """Many words, citing [1] when the prompt carried sources (so RAG answers differ)."""
    grounded = "Sources:" in str(messages[-1].get("content"))
    head = "The alpha protocol governs them [1]." if grounded else "I am not sure."
    return head + "".join(f" word{i}" for i in range(40))


def compare_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("ftrag")]


class Current:
    """Stands in for the main window's current conversation."""

    conv: Conversation | None = None


@pytest.fixture
def controller(
    qtbot, ftrag_home: Path, ollama_server: Any, tmp_path: Path
) -> Iterator[AppController]:  # type: ignore[no-untyped-def]
    ollama_server.embed_backend = "hash"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "alpha.md").write_text(f"# Alpha\n\n{ZEBRA}\n")
    (docs / "beta.txt").write_text("Beta notes: the quarterly budget is 42 kilograms of tea.\n")
    home = Home(ftrag_home)
    engine = Engine(home, Settings(ollama_host=ollama_server.url))
    assert any(isinstance(e, SyncFinished) for e in engine.sync(docs))
    ctrl = AppController(home)
    ctrl.engine = engine  # comparing needs the engine only, not the library process
    yield ctrl
    ctrl.shutdown()


@pytest.fixture
def current() -> Current:
    return Current()


@pytest.fixture
def window(qtbot, controller: AppController, current: Current) -> Iterator[CompareWindow]:  # type: ignore[no-untyped-def]
    win = CompareWindow(controller, lambda: current.conv)
    qtbot.addWidget(win)
    win.open_for("llama3.2", QUESTION)
    qtbot.waitExposed(win)
    yield win
    win.close()
    qtbot.waitUntil(lambda: not win.is_running() and not win.is_saving(), timeout=WAIT)
    assert QThreadPool.globalInstance().waitForDone(WAIT)
    assert compare_threads() == []


def run(qtbot, win: CompareWindow) -> Comparison:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(win.comparison_finished, timeout=WAIT) as done:
        qtbot.mouseClick(win.compare_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not win.is_running() and not win.is_saving(), timeout=WAIT)
    comparison = done.args[0]
    assert isinstance(comparison, Comparison)
    return comparison


def test_defaults_are_the_model_with_and_without_documents(
    qtbot, window: CompareWindow, controller: AppController
) -> None:  # type: ignore[no-untyped-def]
    assert window.question.toPlainText() == QUESTION
    assert window.editor.configs() == [
        CompareConfig("llama3.2", rag=True, top_k=controller.engine.settings.top_k),  # type: ignore[union-attr]
        CompareConfig("llama3.2", rag=False),
    ]
    # The model list arrives from Ollama: the pickers offer the chat models, not embedders.
    row = window.editor.rows()[0]
    qtbot.waitUntil(lambda: row.model.count() >= 2, timeout=WAIT)
    offered = [row.model.itemData(i) for i in range(row.model.count())]
    assert "smollm2:135m" in offered and "nomic-embed-text:latest" not in offered
    assert row.model_name() in ("llama3.2", "llama3.2:latest")
    # Up to four; never fewer than one.
    window.editor.add_button.click()
    window.editor.add_button.click()
    assert len(window.editor.configs()) == 4 and not window.editor.add_button.isEnabled()
    for r in window.editor.rows()[1:]:
        r.remove.click()
    assert len(window.editor.configs()) == 1 and not window.editor.rows()[0].remove.isEnabled()
    # RAG off: the top-k does not apply.
    window.editor.rows()[0].rag.setChecked(False)
    assert not window.editor.rows()[0].top_k.isEnabled()
    assert window.editor.configs() == [CompareConfig("llama3.2:latest", rag=False)]


def test_two_configurations_stream_side_by_side_with_figures_and_sources(
    qtbot, window: CompareWindow, ollama_server: Any, current: Current
) -> None:  # type: ignore[no-untyped-def]
    ollama_server.reply = long_reply
    ollama_server.token_delay_s = 0.03
    window.parallel.setChecked(True)
    with qtbot.waitSignal(window.comparison_finished, timeout=WAIT) as done:
        qtbot.mouseClick(window.compare_button, Qt.MouseButton.LeftButton)
        assert window.is_running() and window.stop_button.isEnabled()
        assert not window.compare_button.isEnabled()
        rag, plain = window.columns()
        # Both answers are on screen, each partly written, at the same time.
        qtbot.waitUntil(
            lambda: "word" in rag.text() and "word" in plain.text() and window.is_running(),
            timeout=WAIT,
        )
    qtbot.waitUntil(lambda: not window.is_running() and not window.is_saving(), timeout=WAIT)
    comparison: Comparison = done.args[0]

    assert rag.text().startswith("The alpha protocol governs them [1].")
    assert rag.text().rstrip().endswith("word39")
    assert plain.text().startswith("I am not sure.") and "[1]" not in plain.text()
    for column, answer in zip((rag, plain), comparison.answers, strict=True):
        figures = column.figure_texts()
        assert set(figures) == {"First token", "Speed", "Total", "Prompt tokens"}
        assert all(value != "–" for value in figures.values()), figures
        assert figures["Prompt tokens"] == f"{answer.metrics.prompt_tokens:,}"
        assert figures["Speed"].endswith("tok/s")
        assert column.best_button.isEnabled() and not column.is_best()
    # Each column has its own sources: the RAG one shows the cited passage, the other none.
    cards = rag.sources.cards()
    assert cards and any("zebra" in card.passage_plain_text() for card in cards)
    assert "cited" in rag.sources.summary_text()
    assert plain.sources.cards() == []
    # Saved: there was no conversation, so one was made for it; the past list shows it.
    assert current.conv is None
    conv = window._saver.conversation()
    assert conv is not None and conv.comparisons == [comparison]
    stored = window._controller.engine.conversations.load(conv.id)  # type: ignore[union-attr]
    assert stored.comparisons == [comparison]
    assert window.past.count() == 1 and QUESTION in window.past.item(0).text()


def test_mark_best_is_saved_and_reopens_with_the_comparison(
    qtbot, window: CompareWindow, controller: AppController, current: Current
) -> None:  # type: ignore[no-untyped-def]
    engine = controller.engine
    assert engine is not None
    store = engine.conversations
    conv = store.new("Zebras", "llama3.2")
    conv.messages.append(Message("user", "Earlier question"))
    current.conv = conv
    assert suggested_question("", conv) == "Earlier question"
    assert suggested_question("  typed now ", conv) == "typed now"

    comparison = run(qtbot, window)
    assert conv.comparisons == [comparison]  # the main window's own object got it
    assert store.load(conv.id).comparisons[0].best is None
    first, second = window.columns()

    qtbot.mouseClick(second.best_button, Qt.MouseButton.LeftButton)
    assert second.is_best() and second.best_button.text() == "★ Best"
    qtbot.waitUntil(lambda: store.load(conv.id).comparisons[0].best == 1, timeout=WAIT)
    qtbot.mouseClick(first.best_button, Qt.MouseButton.LeftButton)  # exclusive
    assert first.is_best() and not second.is_best()
    qtbot.waitUntil(lambda: store.load(conv.id).comparisons[0].best == 0, timeout=WAIT)
    qtbot.mouseClick(first.best_button, Qt.MouseButton.LeftButton)  # and undone
    qtbot.waitUntil(lambda: store.load(conv.id).comparisons[0].best is None, timeout=WAIT)
    qtbot.mouseClick(second.best_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.is_saving(), timeout=WAIT)
    saved = store.load(conv.id)
    assert saved.comparisons[0].best == 1
    assert [m.content for m in saved.messages] == ["Earlier question"]  # the chat is kept
    assert "best #2" in window.past.item(0).text()

    # Reopened later, from the conversation as stored: the past comparison and its mark.
    reopened = CompareWindow(controller, lambda: saved)
    qtbot.addWidget(reopened)
    reopened.open_for("smollm2:135m", "")
    assert reopened.columns() == [] and reopened.past.count() == 1
    qtbot.mouseClick(
        reopened.past.viewport(),
        Qt.MouseButton.LeftButton,
        pos=reopened.past.visualItemRect(reopened.past.item(0)).center(),
    )
    columns = reopened.columns()
    assert len(columns) == 2 and not columns[0].is_best() and columns[1].is_best()
    assert reopened.question.toPlainText() == QUESTION
    assert columns[0].text() == first.text() and columns[0].sources.cards()
    assert reopened.editor.configs() == comparison.configs
    reopened.close()


def test_stop_cancels_every_configuration(
    qtbot, window: CompareWindow, ollama_server: Any, controller: AppController
) -> None:  # type: ignore[no-untyped-def]
    ollama_server.reply = long_reply
    ollama_server.token_delay_s = 0.05
    with qtbot.waitSignal(window.comparison_finished, timeout=WAIT) as done:
        qtbot.mouseClick(window.compare_button, Qt.MouseButton.LeftButton)
        first, second = window.columns()
        assert "Waiting for its turn" in second.state.text()  # one at a time
        qtbot.waitUntil(lambda: "word" in first.text(), timeout=WAIT)
        window.activateWindow()
        qtbot.waitUntil(lambda: QApplication.focusWindow() is not None, timeout=WAIT)
        qtbot.keyClick(window, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not window.is_running() and not window.is_saving(), timeout=WAIT)
    comparison: Comparison = done.args[0]
    stopped, skipped = comparison.answers
    assert stopped.cancelled and stopped.ran and "word39" not in stopped.text
    assert skipped.cancelled and not skipped.ran and skipped.text == ""
    assert "Stopped part-way" in first.state.text()
    assert "Not run" in second.state.text() and "Not run" in second.text()
    assert ollama_server.chat_count == 1
    assert window.status.text().startswith("Stopped after")
    assert window.compare_button.isEnabled() and not window.stop_button.isEnabled()
    # What was answered is kept.
    conv = window._saver.conversation()
    assert conv is not None
    stored = controller.engine.conversations.load(conv.id)  # type: ignore[union-attr]
    assert stored.comparisons[0].answers[0].cancelled


def test_a_failing_configuration_says_why_and_the_other_answers(
    qtbot, window: CompareWindow
) -> None:  # type: ignore[no-untyped-def]
    window.editor.set_configs(
        [CompareConfig("no-such-model:7b", rag=False), CompareConfig("llama3.2", rag=False)]
    )
    comparison = run(qtbot, window)
    broken, fine = window.columns()
    assert "Failed" in broken.state.text() and "ollama pull no-such-model:7b" in broken.state.text()
    assert broken.figure_texts()["First token"] == "–"
    assert comparison.answers[1].text and fine.text() == comparison.answers[1].text
    assert "1 of 2 failed" in window.status.text()


def test_main_window_compare_action(qtbot, ftrag_home: Path, ollama_server: Any) -> None:  # type: ignore[no-untyped-def]
    from ftrag_desktop.app.main_window import MainWindow

    ollama_server.embed_backend = "hash"
    home = Home(ftrag_home)
    save_settings(home.settings_file, Settings(ollama_host=ollama_server.url))
    win = MainWindow(home)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.controller.engine is not None, timeout=WAIT)
    win.chat.input.setPlainText("Which plains do zebras cross?")
    win.activateWindow()
    qtbot.waitUntil(lambda: QApplication.focusWindow() is not None, timeout=WAIT)
    qtbot.keyClick(
        win, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    )
    compare = win.compare_window
    assert compare is not None and compare.isVisible()
    assert compare.question.toPlainText() == "Which plains do zebras cross?"
    assert [c.rag for c in compare.editor.configs()] == [True, False]

    # A comparison with no conversation open starts one, which the main window then shows.
    ollama_server.token_delay_s = 0.0
    run(qtbot, compare)
    qtbot.waitUntil(lambda: win._conv is not None, timeout=WAIT)
    assert win._conv is compare._saver.conversation()
    assert win._conv is not None and len(win._conv.comparisons) == 1
    qtbot.waitUntil(lambda: win.conversations.current_id() == win._conv.id, timeout=WAIT)  # type: ignore[union-attr]

    # Quitting while a comparison runs stops it.
    ollama_server.reply = long_reply
    ollama_server.token_delay_s = 0.05
    qtbot.mouseClick(compare.compare_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "word" in compare.columns()[0].text(), timeout=WAIT)
    win.close()
    qtbot.waitUntil(lambda: not compare.is_running(), timeout=WAIT)
    assert QThreadPool.globalInstance().waitForDone(WAIT)
    assert compare_threads() == []
