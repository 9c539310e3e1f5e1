"""The chat transcript and the question box: one conversation, with answers streamed in.

Answers are Markdown, rendered by QTextDocument (lists, code, tables; see chat_render) in the
message widgets of chat_messages.  Each `[n]` citation in a finished answer becomes a
`cite:<message index>:<n>` link; clicking it emits `citation_activated` and never opens
anything itself.  While an answer streams, tokens are buffered and the Markdown is re-rendered
at most every `RENDER_INTERVAL_MS`, so long answers never stall the GUI.  Colours come from
the palette, so light and dark themes both read well.

Message indexes are positions in `Conversation.messages` (a question, then its answer): the
view mirrors them as answers finish.  A failed answer is shown in the transcript, but takes no
index, since the conversation does not record it.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QGuiApplication, QKeyEvent, QKeySequence, QPalette, QShortcut
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from ftrag_desktop.app.chat_messages import AnswerWidget, ErrorWidget, QuestionWidget
from ftrag_desktop.app.chat_render import render_markdown
from ftrag_desktop.app.colors import mix
from ftrag_desktop.app.scrollbars import flatten
from ftrag_desktop.core.answer import AnswerResult
from ftrag_desktop.core.conversations import Conversation, Message
from ftrag_desktop.core.export import answer_to_markdown

# render_markdown moved to chat_render; it stays importable from here.
__all__ = ["RENDER_BUDGET_S", "RENDER_INTERVAL_MS", "ChatView", "render_markdown"]

RENDER_INTERVAL_MS = 50
RENDER_BUDGET_S = 0.025  # GUI time spent rendering a shown conversation before yielding
PLACEHOLDER = "Ask a question about your documents…"
EMPTY_TEXT = (
    "<h3>Ask about your documents</h3>"
    "<p>Type a question below. The answer is written from the passages found in your "
    "watched folders, and every claim cites its source: click a <b>[1]</b> to see the "
    "passage and open the document at that page.</p>"
    "<p><b>Enter</b> sends · <b>Shift+Enter</b> adds a line · <b>Esc</b> stops an answer</p>"
)


def _css(color: QColor) -> str:
    return color.name(QColor.NameFormat.HexRgb)


def _messages_from_result(result: AnswerResult) -> list[Message]:
    """The question and answer exactly as `Conversation.add_exchange` records them."""
    scratch = Conversation("", "", result.model)
    scratch.add_exchange(result)
    return scratch.messages


class _QuestionInput(QPlainTextEdit):
    """Enter sends, Shift+Enter adds a line; grows with its text up to a few lines."""

    submitted = Signal()

    MIN_LINES, MAX_LINES = 2, 8

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setPlaceholderText(PLACEHOLDER)
        self.setTabChangesFocus(True)
        self.document().documentLayout().documentSizeChanged.connect(self._fit_height)
        self._fit_height()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
                self.insertPlainText("\n")
            else:
                self.submitted.emit()
            event.accept()
            return
        super().keyPressEvent(event)

    def _fit_height(self, *_: object) -> None:
        line = self.fontMetrics().lineSpacing()
        lines = max(self.MIN_LINES, min(self.MAX_LINES, self.document().lineCount()))
        margins = self.contentsMargins()
        doc_margin = 2 * self.document().documentMargin()
        height = lines * line + int(doc_margin) + margins.top() + margins.bottom() + 2
        self.setFixedHeight(height)


class ChatView(QWidget):
    """Centre panel: the transcript of one conversation and the question box."""

    question_submitted = Signal(str)
    stop_requested = Signal()
    regenerate_requested = Signal(int)  # index of the assistant message
    citation_activated = Signal(int, int)  # (assistant message index, source number)
    answer_selected = Signal(int)  # index of the assistant message the user clicked
    export_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._messages: list[Message] = []
        self._answers: dict[int, AnswerWidget] = {}
        self._selected: int | None = None
        self._streaming: AnswerWidget | None = None
        self._stream_text = ""
        self._follow = True
        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.setInterval(RENDER_INTERVAL_MS)
        self._render_timer.timeout.connect(self._on_render_timer_timeout)
        # Answers of a shown conversation not rendered yet (newest last): a long conversation
        # is rendered a slice at a time, newest first, so switching to it never stalls.
        self._unrendered: list[tuple[AnswerWidget, Message]] = []
        self._unrendered_timer = QTimer(self)
        self._unrendered_timer.setSingleShot(True)
        self._unrendered_timer.setInterval(0)
        self._unrendered_timer.timeout.connect(self._render_unrendered)
        self._build()
        self._apply_style()

    # ---- layout ----------------------------------------------------------------------------

    def _build(self) -> None:
        self._transcript = QWidget()
        self._transcript.setObjectName("transcript")
        self._column = QVBoxLayout(self._transcript)
        self._column.setContentsMargins(16, 16, 16, 16)
        self._column.setSpacing(10)
        self._empty = QLabel(EMPTY_TEXT)
        self._empty.setWordWrap(True)
        self._empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._empty.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self._empty.setContentsMargins(24, 24, 24, 24)
        self._empty.setMaximumWidth(620)
        self._empty_box = QWidget()
        centred = QHBoxLayout(self._empty_box)
        centred.addStretch(1)
        centred.addWidget(self._empty, 4)
        centred.addStretch(1)
        self._column.addWidget(self._empty_box, 1)
        self._column.addStretch(1)

        self._scroll = QScrollArea()
        self._scroll.setWidgetResizable(True)
        self._scroll.setFrameShape(QFrame.Shape.NoFrame)
        self._scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._scroll.setWidget(self._transcript)
        self._scroll.setBackgroundRole(QPalette.ColorRole.Base)
        flatten(self._scroll)
        bar = self._scroll.verticalScrollBar()
        bar.rangeChanged.connect(self._on_scrollbar_range_changed)
        bar.valueChanged.connect(self._on_scrollbar_value_changed)

        self.input = _QuestionInput()
        self.input.submitted.connect(self._on_input_submitted)
        self.input.textChanged.connect(self._update_buttons)
        self.send_button = QPushButton("Send")
        self.send_button.setDefault(False)
        self.send_button.setAutoDefault(False)
        self.send_button.setToolTip("Send the question (Enter)")
        self.send_button.clicked.connect(self._on_input_submitted)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setAutoDefault(False)
        self.stop_button.setToolTip("Stop the answer (Esc)")
        self.stop_button.clicked.connect(self.stop_requested.emit)
        buttons = QVBoxLayout()
        buttons.setSpacing(4)
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.stop_button)
        buttons.addStretch(1)
        row = QHBoxLayout()
        row.setContentsMargins(12, 8, 12, 4)
        row.addWidget(self.input, 1)
        row.addLayout(buttons)
        hint = QLabel("Enter to send · Shift+Enter for a new line · Esc to stop")
        hint.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        small = hint.font()
        small.setPointSizeF(max(small.pointSizeF() * 0.85, 7.0))
        hint.setFont(small)
        hint.setContentsMargins(14, 0, 12, 6)

        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setFrameShadow(QFrame.Shadow.Plain)
        line.setForegroundRole(QPalette.ColorRole.Mid)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self._scroll, 1)
        layout.addWidget(line)
        layout.addLayout(row)
        layout.addWidget(hint)

        self._stop_shortcut = QShortcut(QKeySequence(Qt.Key.Key_Escape), self)
        self._stop_shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
        self._stop_shortcut.activated.connect(self.stop_requested.emit)
        self.input.installEventFilter(self)
        self._set_streaming(False)

    def _apply_style(self) -> None:
        pal = self.palette()
        base, text = pal.color(QPalette.ColorRole.Base), pal.color(QPalette.ColorRole.Text)
        highlight = pal.color(QPalette.ColorRole.Highlight)
        question_bg = mix(base, highlight, 0.12)
        error = QColor(200, 40, 40)
        self._transcript.setStyleSheet(
            f"""
            QWidget#transcript {{ background: {_css(base)}; }}
            QFrame#question {{
                background: {_css(question_bg)};
                border: 1px solid {_css(mix(base, highlight, 0.3))};
                border-radius: 10px;
            }}
            QFrame#answer {{ border: 1px solid transparent; border-radius: 10px; }}
            QFrame#answer[selected="true"] {{
                border: 1px solid {_css(mix(base, highlight, 0.55))};
                background: {_css(mix(base, text, 0.03))};
            }}
            QFrame#error {{
                background: {_css(mix(base, error, 0.12))};
                border: 1px solid {_css(mix(base, error, 0.7))};
                border-radius: 10px;
            }}
            """
        )

    # ---- public API ------------------------------------------------------------------------

    def show_conversation(self, conv: Conversation) -> None:
        """Render all of `conv`'s messages (any answer being streamed is dropped)."""
        self._render_timer.stop()
        self._streaming = None
        self._stream_text = ""
        self._clear()
        self._messages = list(conv.messages)
        last_answer = None
        for index, message in enumerate(self._messages):
            if message.role == "user":
                self._add(QuestionWidget(message.content))
            elif message.role == "assistant":
                widget = self._new_answer(index)
                self._unrendered.append((widget, message))
                self._add(widget)
                last_answer = index
        self._render_unrendered()
        self._set_streaming(False)
        self._mark_selected(last_answer)
        self._follow = True
        self._scroll_to_end()

    def begin_answer(self, question: str, model: str = "") -> None:
        """Show `question` and an empty answer to be streamed (by `model`, named in its header);
        the input waits, Stop is on."""
        if self._streaming is not None:
            self._render_timer.stop()
        self._add(QuestionWidget(question))
        widget = self._new_answer(len(self._messages) + 1)
        widget.show_streaming("", model)
        self._add(widget)
        self._streaming = widget
        self._stream_text = ""
        if self.input.toPlainText().strip() == question.strip():
            self.input.clear()
        self._set_streaming(True)
        self._follow = True
        self._scroll_to_end()

    def append_token(self, text: str) -> None:
        """Add streamed text; the Markdown is re-rendered at most every RENDER_INTERVAL_MS."""
        if self._streaming is None:
            return
        self._stream_text += text
        if not self._render_timer.isActive():
            self._render_timer.start()

    def finish_answer(self, result: AnswerResult) -> None:
        """Final text with clickable citations, the model and the timings."""
        self._render_timer.stop()
        widget = self._streaming
        if widget is None:
            widget = self._new_answer(len(self._messages) + 1)
            self._add(QuestionWidget(result.question))
            self._add(widget)
        question, answer = _messages_from_result(result)
        self._messages += [question, answer]
        widget.index = len(self._messages) - 1
        self._answers[widget.index] = widget
        widget.show_message(answer, streamed=True)
        self._streaming = None
        self._stream_text = ""
        self._set_streaming(False)
        self._mark_selected(widget.index)

    def fail_answer(self, message: str) -> None:
        """Show the error in the transcript where the answer would have been."""
        self._render_timer.stop()
        partial = self._stream_text
        if self._streaming is not None:
            self._answers.pop(self._streaming.index, None)
            position = self._column.indexOf(self._streaming)
            self._drop(self._streaming)
            self._column.insertWidget(position, ErrorWidget(message, partial))
        else:
            self._add(ErrorWidget(message, ""))
        self._streaming = None
        self._stream_text = ""
        self._set_streaming(False)
        self._scroll_to_end()

    def select_answer(self, index: int) -> None:
        """Mark the answer at `index` as the selected one (does not emit `answer_selected`)."""
        self._mark_selected(index)

    def is_streaming(self) -> bool:
        return self._streaming is not None

    def answer_text(self, index: int) -> str:
        """The plain text shown for the answer at `index` (for tests and accessibility)."""
        widget = self._answers.get(index)
        return widget.browser.toPlainText() if widget else ""

    def answer_browser(self, index: int) -> QTextBrowser | None:
        widget = self._answers.get(index)
        return widget.browser if widget else None

    def streaming_text(self) -> str:
        return self._streaming.browser.toPlainText() if self._streaming else ""

    def transcript_text(self) -> str:
        """Everything the transcript shows, as plain text (for tests)."""
        out: list[str] = []
        for widget in self._column_widgets():
            if isinstance(widget, QuestionWidget):
                out.append(widget.text.toPlainText())
            elif isinstance(widget, AnswerWidget):
                out.append(widget.browser.toPlainText())
            elif isinstance(widget, ErrorWidget):
                out.append(widget.label.text())
        return "\n".join(out)

    # ---- slots -----------------------------------------------------------------------------

    def _on_input_submitted(self) -> None:
        text = self.input.toPlainText().strip()
        if text and self._streaming is None:
            self.question_submitted.emit(text)

    def _on_render_timer_timeout(self) -> None:
        if self._streaming is not None:
            self._streaming.show_streaming(self._stream_text)

    def _on_answer_selected(self, index: int) -> None:
        self._mark_selected(index)
        self.answer_selected.emit(index)

    def _on_answer_copy_clicked(self, index: int) -> None:
        widget = self._answers.get(index)
        if widget is not None and widget.message is not None:
            QGuiApplication.clipboard().setText(answer_to_markdown(widget.message))

    def _on_answer_regenerate_clicked(self, index: int) -> None:
        if self._streaming is None:
            self.regenerate_requested.emit(index)

    def _on_scrollbar_range_changed(self, _low: int, high: int) -> None:
        if self._follow:
            self._scroll.verticalScrollBar().setValue(high)

    def _on_scrollbar_value_changed(self, value: int) -> None:
        bar = self._scroll.verticalScrollBar()
        self._follow = value >= bar.maximum() - 24

    # ---- events ----------------------------------------------------------------------------

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (
            watched is self.input
            and event.type() == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.key() == Qt.Key.Key_Escape
        ):
            self.stop_requested.emit()
            return True
        return super().eventFilter(watched, event)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._apply_style()
            for widget in self._answers.values():
                widget.rerender()

    # ---- helpers ---------------------------------------------------------------------------

    def _new_answer(self, index: int) -> AnswerWidget:
        widget = AnswerWidget(index)
        widget.selected.connect(self._on_answer_selected)
        widget.citation_clicked.connect(self.citation_activated)
        widget.copy_clicked.connect(self._on_answer_copy_clicked)
        widget.regenerate_clicked.connect(self._on_answer_regenerate_clicked)
        widget.export_clicked.connect(self.export_requested)
        self._answers[index] = widget
        return widget

    def _add(self, widget: QWidget) -> None:
        self._empty_box.hide()
        self._column.insertWidget(self._column.count() - 1, widget)  # before the stretch

    def _render_unrendered(self) -> None:
        deadline = time.monotonic() + RENDER_BUDGET_S
        while self._unrendered:
            widget, message = self._unrendered.pop()
            widget.show_message(message)
            if time.monotonic() >= deadline:
                break
        if self._unrendered:
            self._unrendered_timer.start()

    def is_rendering(self) -> bool:
        """True while older answers of the shown conversation are still being rendered."""
        return bool(self._unrendered)

    def _clear(self) -> None:
        self._unrendered.clear()
        self._unrendered_timer.stop()
        for widget in self._column_widgets():
            if widget is not self._empty_box:
                self._drop(widget)
        self._answers.clear()
        self._selected = None
        self._empty_box.show()

    def _drop(self, widget: QWidget) -> None:
        self._column.removeWidget(widget)
        widget.hide()
        widget.setParent(None)
        widget.deleteLater()

    def _column_widgets(self) -> list[QWidget]:
        items = (self._column.itemAt(i) for i in range(self._column.count()))
        return [w for item in items if item is not None and (w := item.widget()) is not None]

    def _mark_selected(self, index: int | None) -> None:
        if self._selected is not None and self._selected in self._answers:
            self._answers[self._selected].set_selected(False)
        self._selected = index
        if index is not None and index in self._answers:
            self._answers[index].set_selected(True)

    def _set_streaming(self, streaming: bool) -> None:
        self.input.setEnabled(not streaming)
        self.stop_button.setEnabled(streaming)
        self._stop_shortcut.setEnabled(streaming)
        for widget in self._answers.values():
            widget.set_busy(streaming)
        self._update_buttons()
        if not streaming:
            self.input.setFocus()

    def _update_buttons(self) -> None:
        idle = self._streaming is None
        self.send_button.setEnabled(idle and bool(self.input.toPlainText().strip()))

    def _scroll_to_end(self) -> None:
        bar = self._scroll.verticalScrollBar()
        bar.setValue(bar.maximum())
