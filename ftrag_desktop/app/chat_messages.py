"""The transcript's message widgets: a question, an answer, and an answer that failed.

An `AnswerWidget` shows one answer (streamed, then final with clickable citations), the model,
its timings and source counts, and its Copy / Regenerate / Export actions; it reports clicks
by signal and never acts on them itself.  The text is rendered by chat_render.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import QCoreApplication, Qt, QUrl, Signal
from PySide6.QtGui import QIcon, QMouseEvent, QPalette, QWheelEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QStyle,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ftrag_desktop.app.chat_render import (
    StreamRenderer,
    link_citations,
    parse_cite_url,
    render_markdown,
)
from ftrag_desktop.core.conversations import Message

__all__ = [
    "AnswerWidget",
    "ErrorWidget",
    "QuestionWidget",
    "TextBlock",
    "counts_text",
    "timing_text",
]


def timing_text(model: str, meta: Mapping[str, Any]) -> str:
    """`model · first token 0.4 s · 3.1 s total · 42 tokens/s`, from an answer's meta."""
    bits = [model] if model else []
    first, total = meta.get("first_token_s"), meta.get("total_s")
    if first is not None:
        bits.append(f"first token {float(first):.1f} s")
    if total:
        bits.append(f"{float(total):.1f} s total")
    tokens = meta.get("completion_tokens")
    if tokens and total and first is not None and float(total) - float(first) > 0:
        bits.append(f"{int(tokens) / (float(total) - float(first)):.0f} tokens/s")
    return " · ".join(bits)


def counts_text(message: Message) -> str:
    if message.meta.get("rag") is False:
        return "answered without your documents"
    cited = sum(1 for s in message.sources if s.get("cited"))
    text = f"{cited} cited · {len(message.sources)} retrieved"
    mode = message.meta.get("search_mode")
    if mode and mode != "hybrid":
        text += f" · {mode} search"
    return text


class TextBlock(QTextBrowser):
    """A borderless, transparent text browser as tall as its content (the page scrolls, not it)."""

    clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.viewport().setAutoFillBackground(False)
        self.setStyleSheet("QTextBrowser { background: transparent; }")
        self.document().setDocumentMargin(2)
        self.document().documentLayout().documentSizeChanged.connect(self._fit_height)
        self.setFixedHeight(24)

    def _fit_height(self, *_: object) -> None:
        height = math.ceil(self.document().size().height()) + 2 * self.frameWidth()
        if height != self.height():
            self.setFixedHeight(height)

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._fit_height()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.clicked.emit()
        super().mousePressEvent(event)

    def wheelEvent(self, event: QWheelEvent) -> None:
        # The transcript scrolls, not this block: hand the wheel to its scroll bar, as
        # QAbstractScrollArea does itself.
        parent = self.parentWidget()
        while parent is not None and not isinstance(parent, QScrollArea):
            parent = parent.parentWidget()
        if parent is None:
            event.ignore()
            return
        QCoreApplication.sendEvent(parent.verticalScrollBar(), event)
        event.accept()


class QuestionWidget(QFrame):
    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("question")
        who = QLabel("You")
        font = who.font()
        font.setBold(True)
        who.setFont(font)
        self.text = TextBlock()
        self.text.setPlainText(text)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 8, 14, 8)
        layout.setSpacing(2)
        layout.addWidget(who)
        layout.addWidget(self.text)


class AnswerWidget(QFrame):
    """One answer: a header, the Markdown text, a timing/counts line, and its actions."""

    selected = Signal(int)
    citation_clicked = Signal(int, int)
    copy_clicked = Signal(int)
    regenerate_clicked = Signal(int)
    export_clicked = Signal()

    def __init__(self, index: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("answer")
        self.index = index
        self.message: Message | None = None
        self._raw = ""
        self._title = QLabel("Answer")
        font = self._title.font()
        font.setBold(True)
        self._title.setFont(font)
        self._model = QLabel()
        self._model.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        header = QHBoxLayout()
        header.setSpacing(8)
        header.addWidget(self._title)
        header.addWidget(self._model)
        header.addStretch(1)

        self.browser = TextBlock()
        self._stream = StreamRenderer(self.browser.document())
        self.browser.anchorClicked.connect(self._on_browser_anchor_clicked)
        self.browser.clicked.connect(self._on_browser_clicked)

        self.info = QLabel()
        self.info.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.info.setWordWrap(True)
        small = self.info.font()
        small.setPointSizeF(max(small.pointSizeF() * 0.9, 7.0))
        self.info.setFont(small)
        self.counts = QLabel()
        self.counts.setFont(small)
        self.counts.setForegroundRole(QPalette.ColorRole.PlaceholderText)

        sp = QStyle.StandardPixmap
        self.copy_button = self._action(
            "Copy", "Copy this answer as Markdown, with its sources", QIcon.ThemeIcon.EditCopy, None
        )
        self.copy_button.clicked.connect(lambda: self.copy_clicked.emit(self.index))
        self.regenerate_button = self._action(
            "Regenerate", "Ask the question again", QIcon.ThemeIcon.ViewRefresh, sp.SP_BrowserReload
        )
        self.regenerate_button.clicked.connect(lambda: self.regenerate_clicked.emit(self.index))
        self.export_button = self._action(
            "Export…",
            "Export the whole conversation to Markdown",
            QIcon.ThemeIcon.DocumentSaveAs,
            sp.SP_DialogSaveButton,
        )
        self.export_button.clicked.connect(self.export_clicked.emit)
        buttons = (self.copy_button, self.regenerate_button, self.export_button)
        if any(b.icon().isNull() for b in buttons):  # all with icons, or none
            for b in buttons:
                b.setIcon(QIcon())
                b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        footer = QHBoxLayout()
        footer.setSpacing(2)
        footer.addWidget(self.counts)
        footer.addStretch(1)
        footer.addWidget(self.copy_button)
        footer.addWidget(self.regenerate_button)
        footer.addWidget(self.export_button)
        self._actions = QWidget()
        self._actions.setLayout(footer)
        footer.setContentsMargins(0, 0, 0, 0)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 8, 14, 6)
        layout.setSpacing(4)
        layout.addLayout(header)
        layout.addWidget(self.browser)
        layout.addWidget(self.info)
        layout.addWidget(self._actions)
        self._actions.hide()

    def _action(
        self,
        text: str,
        tip: str,
        theme: QIcon.ThemeIcon,
        fallback: QStyle.StandardPixmap | None,
    ) -> QToolButton:
        button = QToolButton()
        button.setText(text)
        button.setToolTip(tip)
        icon = QIcon.fromTheme(theme)
        if icon.isNull() and fallback is not None:
            icon = self.style().standardIcon(fallback)
        if not icon.isNull():
            button.setIcon(icon)
        button.setAutoRaise(True)
        button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        return button

    # ---- states ----------------------------------------------------------------------------

    def show_streaming(self, text: str, model: str | None = None) -> None:
        """Show streamed `text`; `model` (when given) names the model writing it."""
        self._raw = text
        if model is not None:
            self._model.setText(model)
        self.info.setText(
            "Generating…" if text else "Searching your documents and waiting for the model…"
        )
        self._actions.hide()
        self._stream.update(text)

    def show_message(self, message: Message, *, streamed: bool = False) -> None:
        """Show a recorded answer; `streamed`: it is the text just streamed into this widget,
        so only the tokens that came after the last streamed render are added and its
        citations linked (no costly full re-render)."""
        cancelled = bool(message.meta.get("cancelled"))
        text = message.content
        if streamed and text.strip() and text.startswith(self._raw):
            self._stream.update(text)
            link_citations(self.browser.document(), self.index, message.sources)
        else:
            if not text.strip():
                text = "_Stopped before any text was written._" if cancelled else "_(empty answer)_"
            render_markdown(self.browser, text, self.index, message.sources)
        self.message = message
        self._raw = message.content
        self._model.setText(message.model)
        info = timing_text("", message.meta)
        if cancelled:
            info = "Stopped · " + info if info else "Stopped"
        self.info.setText(info)
        self.info.setVisible(bool(info))
        self.counts.setText(counts_text(message))
        self._actions.show()

    def set_selected(self, selected: bool) -> None:
        self.setProperty("selected", selected)
        self.style().unpolish(self)
        self.style().polish(self)

    def set_busy(self, busy: bool) -> None:
        self.regenerate_button.setEnabled(not busy)

    def rerender(self) -> None:
        if self.message is not None:
            self.show_message(self.message)
        else:
            self._stream.reset()
            self._stream.update(self._raw)

    # ---- slots -----------------------------------------------------------------------------

    def _on_browser_clicked(self) -> None:
        if self.message is not None:
            self.selected.emit(self.index)

    def _on_browser_anchor_clicked(self, url: QUrl) -> None:
        parsed = parse_cite_url(url)
        if parsed is not None:
            self.citation_clicked.emit(*parsed)


class ErrorWidget(QFrame):
    def __init__(self, message: str, partial: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("error")
        icon = QLabel()
        size = self.style().pixelMetric(QStyle.PixelMetric.PM_SmallIconSize)
        icon.setPixmap(
            self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning).pixmap(size, size)
        )
        icon.setAlignment(Qt.AlignmentFlag.AlignTop)
        title = QLabel("The answer could not be completed")
        font = title.font()
        font.setBold(True)
        title.setFont(font)
        self.label = QLabel(message)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        text = QVBoxLayout()
        text.setSpacing(2)
        text.addWidget(title)
        text.addWidget(self.label)
        if partial.strip():
            before = QLabel("Text received before the error:")
            before.setForegroundRole(QPalette.ColorRole.PlaceholderText)
            partial_block = TextBlock()
            render_markdown(partial_block, partial, None, [])
            text.addWidget(before)
            text.addWidget(partial_block)
        row = QHBoxLayout(self)
        row.setContentsMargins(12, 8, 12, 8)
        row.addWidget(icon)
        row.addLayout(text, 1)
