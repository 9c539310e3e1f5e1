"""The chat view (input keys, streaming, citations, errors) and the conversation list."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QGuiApplication, QTextCursor, QWheelEvent
from PySide6.QtWidgets import QApplication, QLabel, QLineEdit, QTextBrowser

from ftrag_desktop.app.chat_view import RENDER_INTERVAL_MS, ChatView, render_markdown
from ftrag_desktop.app.conversation_list import NEW_TITLE, ConversationList, when_label
from ftrag_desktop.core.answer import AnswerResult, Source
from ftrag_desktop.core.conversations import Conversation, ConversationStore
from ftrag_desktop.core.llm import ChatStats
from ftrag_desktop.core.types import Hit


def _result(
    question: str, answer: str, n_sources: int = 3, cited: tuple[int, ...] = (1, 2)
) -> AnswerResult:
    sources = tuple(
        Source(n, Hit(f"c{n}", "d", f"/docs/file{n}.pdf", f"passage {n}", 0.5, page=n), n in cited)
        for n in range(1, n_sources + 1)
    )
    return AnswerResult(
        question=question,
        answer=answer,
        model="llama3.2:3b",
        rag=True,
        sources=sources,
        first_token_s=0.5,
        total_s=2.5,
        stats=ChatStats(100, 40, 2.4, 0.1, 0.2, 2.0, "stop"),
    )


@pytest.fixture
def view(qtbot) -> ChatView:  # type: ignore[no-untyped-def]
    widget = ChatView()
    qtbot.addWidget(widget)
    widget.resize(700, 600)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def _anchor_point(browser: QTextBrowser, href: str) -> QPoint:
    """The viewport position of the first character of the link to `href`."""
    doc = browser.document()
    block = doc.begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            frag = it.fragment()
            if frag.charFormat().anchorHref() == href:
                cursor = QTextCursor(doc)
                cursor.setPosition(frag.position() + 1)
                return browser.cursorRect(cursor).center()
            it += 1
        block = block.next()
    raise AssertionError(f"no link to {href}")


def test_enter_sends_and_shift_enter_adds_a_line(qtbot, view: ChatView) -> None:  # type: ignore[no-untyped-def]
    with qtbot.assertNotEmitted(view.question_submitted):
        qtbot.keyClick(view.input, Qt.Key.Key_Return)  # nothing typed: nothing sent
    qtbot.keyClicks(view.input, "first line")
    qtbot.keyClick(view.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(view.input, "second line")
    assert view.input.toPlainText() == "first line\nsecond line"
    with qtbot.waitSignal(view.question_submitted) as sent:
        qtbot.keyClick(view.input, Qt.Key.Key_Return)
    assert sent.args == ["first line\nsecond line"]
    assert view.input.placeholderText() == "Ask a question about your documents…"


def test_streaming_is_throttled_then_finish_links_citations(qtbot, view: ChatView) -> None:  # type: ignore[no-untyped-def]
    view.input.setPlainText("What is it?")
    view.begin_answer("What is it?")
    assert view.is_streaming() and not view.input.isEnabled() and view.stop_button.isEnabled()
    assert view.input.toPlainText() == ""  # the sent question left the box
    started = time.monotonic()
    for _ in range(300):
        view.append_token("word ")
    # Rendering waits for the timer: 300 tokens did not cause 300 renders on the GUI thread.
    assert "word" not in view.streaming_text()
    qtbot.waitUntil(lambda: view.streaming_text().count("word") == 300, timeout=2000)
    assert time.monotonic() - started >= RENDER_INTERVAL_MS / 1000 * 0.9

    view.finish_answer(_result("What is it?", "It is **blue** [1] and *round* [2][5].\n\n- a\n- b"))
    assert not view.is_streaming() and view.input.isEnabled() and not view.stop_button.isEnabled()
    browser = view.answer_browser(1)
    assert browser is not None
    text = view.answer_text(1)
    assert "It is blue [1] and round [2][5]." in text
    html = browser.document().toHtml()
    assert 'href="cite:1:1"' in html and 'href="cite:1:2"' in html
    assert "cite:1:5" not in html  # no source 5: left as text
    widget = browser.parentWidget()
    labels = " ".join(label.text() for label in widget.findChildren(QLabel))
    assert "llama3.2:3b" in labels and "first token 0.5 s" in labels and "20 tokens/s" in labels
    assert "2 cited · 3 retrieved" in labels

    with qtbot.waitSignal(view.citation_activated) as emitted:
        browser.anchorClicked.emit(QUrl("cite:1:2"))
    assert emitted.args == [1, 2]

    # A real click on the [1] link: the answer is selected and the citation activated.
    point = _anchor_point(browser, "cite:1:1")
    events: list[tuple[object, ...]] = []
    view.answer_selected.connect(lambda i: events.append(("selected", i)))
    view.citation_activated.connect(lambda m, n: events.append(("cited", m, n)))
    qtbot.mouseClick(browser.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert events == [("selected", 1), ("cited", 1, 1)]


def test_the_model_is_named_while_the_answer_streams(qtbot, view: ChatView) -> None:  # type: ignore[no-untyped-def]
    view.begin_answer("What is it?", "qwen2.5:7b")
    view.append_token("Partly ")
    qtbot.waitUntil(lambda: "Partly" in view.streaming_text(), timeout=2000)
    labels = [label.text() for label in view.findChildren(QLabel)]
    assert "qwen2.5:7b" in labels  # in the header from the first moment, not only at the end


def test_escape_and_stop_button_request_a_stop(qtbot, view: ChatView) -> None:  # type: ignore[no-untyped-def]
    view.input.setFocus()
    with qtbot.waitSignal(view.stop_requested):
        qtbot.keyClick(view.input, Qt.Key.Key_Escape)
    view.begin_answer("q")
    view.activateWindow()
    qtbot.waitUntil(lambda: QGuiApplication.focusWindow() is not None)
    with qtbot.waitSignal(view.stop_requested):
        qtbot.keyClick(view, Qt.Key.Key_Escape)  # the input is disabled while streaming
    with qtbot.waitSignal(view.stop_requested):
        qtbot.mouseClick(view.stop_button, Qt.MouseButton.LeftButton)
    cancelled = _result("q", "Partial", cited=())
    view.finish_answer(dataclasses.replace(cancelled, cancelled=True))
    widget = view.answer_browser(1).parentWidget()  # type: ignore[union-attr]
    assert "Stopped" in " ".join(label.text() for label in widget.findChildren(QLabel))


def test_fail_answer_shows_the_error_in_the_transcript(qtbot, view: ChatView) -> None:  # type: ignore[no-untyped-def]
    view.begin_answer("Why?")
    view.append_token("Because")
    view.fail_answer("Ollama is not reachable at http://127.0.0.1:1. Start Ollama.")
    transcript = view.transcript_text()
    assert "Why?" in transcript
    assert "Ollama is not reachable at http://127.0.0.1:1. Start Ollama." in transcript
    assert view.input.isEnabled() and not view.stop_button.isEnabled() and not view.is_streaming()
    assert view.answer_browser(1) is None  # a failed answer takes no message index
    # The next answer is the conversation's first exchange: index 1.
    view.begin_answer("Again?")
    view.finish_answer(_result("Again?", "Yes [1]."))
    assert 'href="cite:1:1"' in view.answer_browser(1).document().toHtml()  # type: ignore[union-attr]


def test_show_conversation_indexes_answers_and_actions(qtbot, view: ChatView) -> None:  # type: ignore[no-untyped-def]
    assert view._empty_box.isVisible()  # the friendly placeholder
    conv = Conversation("c1", "T", "m")
    conv.add_exchange(_result("One?", "First [1]."))
    conv.add_exchange(
        _result("Two?", "Second [2].\n\n```\ncode [1]\n```\n\n| a | b |\n|---|---|\n| 1 | [1] |")
    )
    view.show_conversation(conv)
    assert not view._empty_box.isVisible()
    assert view.answer_text(1).startswith("First [1]") and view.answer_text(3).startswith("Second")
    html3 = view.answer_browser(3).document().toHtml()  # type: ignore[union-attr]
    assert 'href="cite:3:2"' in html3 and 'href="cite:3:1"' in html3  # the table cell's [1]
    assert html3.count('href="cite:3:1"') == 1  # not the one in the code block
    assert "One?" in view.transcript_text() and "Two?" in view.transcript_text()

    widget = view.answer_browser(1).parentWidget()  # type: ignore[union-attr]
    with qtbot.waitSignal(view.regenerate_requested) as regen:
        qtbot.mouseClick(widget.regenerate_button, Qt.MouseButton.LeftButton)
    assert regen.args == [1]
    with qtbot.waitSignal(view.export_requested):
        qtbot.mouseClick(widget.export_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(widget.copy_button, Qt.MouseButton.LeftButton)
    copied = QGuiApplication.clipboard().text()
    assert copied.startswith("First [^1].") and "[^1]: **file1.pdf**, p. 1" in copied

    # Regenerate is off while an answer streams.
    view.begin_answer("Three?")
    assert not widget.regenerate_button.isEnabled()
    with qtbot.assertNotEmitted(view.regenerate_requested):
        widget.regenerate_button.click()
    view.show_conversation(Conversation("c2", "", "m"))
    assert view._empty_box.isVisible() and not view.is_streaming()


# ---- the conversation list -------------------------------------------------------------------


def _wait_titles(qtbot, panel: ConversationList, titles: list[str]) -> None:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: panel.titles() == titles, timeout=5000)


def test_conversation_list_create_rename_delete_reload(
    qtbot,
    ftrag_home: Path,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    store = ConversationStore(ftrag_home / "conversations")
    old = store.new("Older", "m")
    old.updated_at -= 100
    store.save(old)
    recent = store.new("Recent", "m")

    panel = ConversationList()
    qtbot.addWidget(panel)
    panel.resize(260, 400)
    panel.show()
    with qtbot.waitSignal(panel.conversation_selected) as selected:
        panel.set_store(store, default_model="llama3.2:3b")
    assert selected.args == [recent.id]  # the most recent, first and selected
    assert panel.titles() == ["Recent", "Older"]
    with qtbot.waitSignal(panel.conversation_selected) as selected:
        panel.select(old.id)
    assert selected.args == [old.id] and panel.current_id() == old.id

    # New: saved in the background, listed first, selected.
    selections: list[str] = []
    panel.conversation_selected.connect(selections.append)
    with qtbot.waitSignal(panel.conversation_created) as made:
        qtbot.mouseClick(panel._new_button, Qt.MouseButton.LeftButton)
    new_id = made.args[0]
    assert selections == [new_id]
    assert panel.current_id() == new_id and panel.titles()[0] == NEW_TITLE
    assert store.load(new_id).model == "llama3.2:3b"

    # Rename in place: F2-style editing commits to the store.
    panel.edit_title()
    editor = panel._list.findChild(QLineEdit)
    assert editor is not None
    editor.selectAll()
    qtbot.keyClicks(editor, "Trip planning")
    with qtbot.waitSignal(panel.conversation_renamed) as renamed:
        qtbot.keyClick(editor, Qt.Key.Key_Return)
    assert renamed.args == [new_id, "Trip planning"]
    assert store.load(new_id).title == "Trip planning"

    # Delete asks first; "no" keeps it.
    asked: list[str] = []
    monkeypatch.setattr(panel, "_confirm_delete", lambda title: asked.append(title) or False)
    panel.delete_action.trigger()
    assert asked == ["Trip planning"] and (ftrag_home / "conversations" / f"{new_id}.json").exists()
    monkeypatch.setattr(panel, "_confirm_delete", lambda title: True)
    with qtbot.waitSignal(panel.conversation_deleted) as deleted:
        panel.delete_action.trigger()
    assert deleted.args == [new_id]
    assert not (ftrag_home / "conversations" / f"{new_id}.json").exists()
    assert new_id not in [c.id for c in store.list()]
    assert panel.current_id() in {old.id, recent.id}

    # Reload picks up changes made elsewhere (an answer saved by the chat), newest first.
    changed = store.load(old.id)
    changed.title = "Older, now updated"
    changed.updated_at = time.time() + 10
    store.save(changed)
    kept = panel.current_id()
    panel.reload()
    _wait_titles(qtbot, panel, ["Older, now updated", "Recent"])
    assert panel.current_id() == kept

    # A fresh panel on the same store (a restart) lists the same conversations.
    again = ConversationList()
    qtbot.addWidget(again)
    again.set_store(store, default_model="m")
    _wait_titles(qtbot, again, ["Older, now updated", "Recent"])


def test_a_new_conversation_made_while_the_list_loads_is_not_lost(qtbot, ftrag_home: Path) -> None:  # type: ignore[no-untyped-def]
    # The listing of 600 conversations starts first and takes longer than the save: its
    # result must not replace the list that already shows the new one (CI saw it do so).
    store = ConversationStore(ftrag_home / "conversations")
    for i in range(600):
        store.new(f"Old {i}", "m")
    panel = ConversationList()
    qtbot.addWidget(panel)
    panel.show()
    made: list[str] = []
    panel.conversation_created.connect(made.append)
    panel.set_store(store, default_model="m")
    panel.new_conversation()
    # Out of order, the listing (600 titles) would replace the list showing the new one.
    qtbot.waitUntil(lambda: len(panel.titles()) == 601, timeout=10_000)
    assert made and panel.current_id() == made[0]
    assert panel._list.isVisible()
    assert panel.store_pool.waitForDone(10_000)


def test_conversation_list_empty_state_and_dates(qtbot, ftrag_home: Path) -> None:  # type: ignore[no-untyped-def]
    panel = ConversationList()
    qtbot.addWidget(panel)
    panel.show()
    store = ConversationStore(ftrag_home / "conversations")
    panel.set_store(store, default_model="m")
    qtbot.waitUntil(lambda: panel._empty.isVisible(), timeout=5000)
    assert panel.current_id() is None and not panel.delete_action.isEnabled()
    with qtbot.waitSignal(panel.conversation_created):
        panel.new_action.trigger()
    qtbot.waitUntil(lambda: panel._list.isVisible())
    assert panel.delete_action.isEnabled()

    now = time.mktime((2024, 5, 15, 12, 0, 0, 0, 0, -1))
    assert when_label(now - 3600, now) == "Today 11:00"
    assert when_label(now - 86400, now) == "Yesterday 12:00"
    assert when_label(now - 3 * 86400, now).endswith("12:00")
    assert when_label(now - 30 * 86400, now) == "2024-04-15"


STREAMED = """Steps [1]:

1. Stop it: `kill [1]` [2].
2. Copy back:

```bash
rsync -a /a /b  # [1]
```

| Step | Source |
|------|--------|
| Stop | [1, 2] |

- Verify [3] and [9].
"""


def test_streamed_answer_matches_a_full_render_and_links_in_place(qtbot, view: ChatView) -> None:  # type: ignore[no-untyped-def]
    view.begin_answer("How?")
    for i in range(0, len(STREAMED), 3):  # re-render after every few characters
        view.append_token(STREAMED[i : i + 3])
        view._on_render_timer_timeout()
    streamed_lines = [line for line in view.streaming_text().splitlines() if line.strip()]
    full = QTextBrowser()
    qtbot.addWidget(full)
    render_markdown(full, STREAMED, None, [])  # the whole text at once
    full_lines = [line for line in full.toPlainText().splitlines() if line.strip()]
    assert streamed_lines == full_lines

    view.finish_answer(_result("How?", STREAMED))
    html = view.answer_browser(1).document().toHtml()  # type: ignore[union-attr]
    # Linked in place: prose and table citations, a group split in two; never inside code.
    for n in (1, 2, 3):
        assert f'href="cite:1:{n}"' in html
    assert html.count('href="cite:1:1"') == 2 and html.count('href="cite:1:2"') == 2
    assert "cite:1:9" not in html
    text = view.answer_text(1)
    assert "kill [1]" in text and "# [1]" in text and "| Stop | [1][2]" not in text
    assert "[1][2]" in text  # the [1, 2] group, as two links


def test_long_conversation_renders_newest_first_in_slices(
    qtbot,
    view: ChatView,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.setattr("ftrag_desktop.app.chat_view.RENDER_BUDGET_S", 0.0)  # one per slice
    conv = Conversation("c", "", "m")
    for i in range(6):
        conv.add_exchange(_result(f"Q{i}?", f"Answer number {i} [1]."))
    view.show_conversation(conv)
    assert view.is_rendering()
    assert view.answer_text(11).startswith("Answer number 5")  # the newest, at once
    assert view.answer_text(1) == ""
    qtbot.waitUntil(lambda: not view.is_rendering(), timeout=5000)
    assert all(view.answer_text(2 * i + 1).startswith(f"Answer number {i}") for i in range(6))


def test_wheel_over_an_answer_scrolls_the_transcript(qtbot, view: ChatView) -> None:  # type: ignore[no-untyped-def]
    conv = Conversation("c", "", "m")
    for _ in range(4):
        conv.add_exchange(_result("Q?", STREAMED))
    view.show_conversation(conv)
    bar = view._scroll.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0 and bar.value() == bar.maximum())
    before = bar.value()
    viewport = view.answer_browser(7).viewport()  # type: ignore[union-attr]
    wheel = QWheelEvent(
        QPointF(5, 5),
        QPointF(viewport.mapToGlobal(QPoint(5, 5))),
        QPoint(0, 0),
        QPoint(0, 120),  # one notch up
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(viewport, wheel)
    assert bar.value() < before


def test_tokens_after_the_last_streamed_render_are_added_not_rerendered(
    qtbot,
    view: ChatView,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    """The answer ends between two render ticks: the last tokens are appended to what was
    streamed (no full re-render of a long answer on the GUI thread), and the result is the
    same as rendering the whole text at once."""
    view.begin_answer("How?")
    half = len(STREAMED) // 2
    view.append_token(STREAMED[:half])
    view._on_render_timer_timeout()
    view.append_token(STREAMED[half:])  # no render tick before the answer completes

    def full_render(*_: object) -> None:
        raise AssertionError("the streamed answer was rendered again from scratch")

    monkeypatch.setattr("ftrag_desktop.app.chat_messages.render_markdown", full_render)
    view.finish_answer(_result("How?", STREAMED))
    monkeypatch.undo()
    full = QTextBrowser()
    qtbot.addWidget(full)
    render_markdown(full, STREAMED, None, [])
    shown = [line for line in view.answer_text(1).splitlines() if line.strip()]
    want = [line for line in full.toPlainText().splitlines() if line.strip()]
    assert [line.replace("[1][2]", "[1, 2]") for line in shown] == want
