"""One column of the compare window: a configuration's answer, its figures and its sources.

A `CompareColumn` shows the configuration it answers for, the answer streaming in as Markdown
(rendered with the chat's `chat_render`), the figures (time to first token, tokens/s, total
time, prompt tokens), a "Best" toggle, and its own `SourcesPanel`.  It only reports clicks by
signal; the compare window decides what they mean.
"""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QColor, QPalette, QResizeEvent
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from ftrag_desktop.app.chat_render import StreamRenderer, parse_cite_url, render_markdown
from ftrag_desktop.app.colors import mix
from ftrag_desktop.app.sources_panel import SourceCard, SourcesPanel
from ftrag_desktop.app.viewer import ElidedLabel
from ftrag_desktop.core.compare_record import AnswerMetrics, CompareAnswer, CompareConfig

__all__ = ["RENDER_INTERVAL_MS", "CompareColumn", "figures", "format_seconds"]

RENDER_INTERVAL_MS = 50  # streamed text is re-rendered at most this often
FIRST_TOKEN_TIP = (
    "Time to first token, from when this configuration's turn began: its document search, "
    "then its request to Ollama."
)
TOTAL_TIP = "From when this configuration's turn began until its last token."
PROMPT_TIP = "Tokens Ollama read before answering (prompt_eval_count): the sources make it longer."


def format_seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds:.2f} s"
    if seconds < 10:
        return f"{seconds:.1f} s"
    return f"{seconds:.0f} s"


def figures(m: AnswerMetrics) -> list[tuple[str, str, str]]:
    """(name, value, tooltip) of each figure of an answer; "–" where there is none."""
    none = "–"
    first = format_seconds(m.first_token_s) if m.first_token_s is not None else none
    if m.tokens_per_s is None:
        speed, speed_tip = none, "No tokens to time."
    else:
        rate = m.tokens_per_s
        speed = f"{rate:.1f} tok/s" if rate < 10 else f"{rate:.0f} tok/s"
        speed_tip = (
            "Generation speed reported by Ollama (eval_count / eval_duration)."
            if m.speed_source == "ollama"
            else "Generation speed measured from the stream (Ollama sent no eval figures)."
        )
    total = format_seconds(m.total_s) if m.total_s > 0 else none
    prompt = f"{m.prompt_tokens:,}" if m.prompt_tokens else none
    return [
        ("First token", first, FIRST_TOKEN_TIP),
        ("Speed", speed, speed_tip),
        ("Total", total, TOTAL_TIP),
        ("Prompt tokens", prompt, PROMPT_TIP),
    ]


def describe(config: CompareConfig) -> str:
    if not config.rag:
        return "Alone, without your documents"
    return f"With your documents (top {config.top_k})"


_min_width: list[int] = []


def column_min_width(widget: QWidget) -> int:
    """The narrowest a column can be without clipping its source cards (measured once)."""
    if not _min_width:
        # The widest kind of card: a long passage ("Show more") with a page and a score.
        longest = {"number": 1, "cited": True, "path": "x.pdf", "page": 1, "text": "x " * 600}
        card = SourceCard(longest, [], 1.0)
        scrollbar = widget.style().pixelMetric(widget.style().PixelMetric.PM_ScrollBarExtent)
        _min_width.append(card.minimumSizeHint().width() + 20 + scrollbar + 8)
        card.deleteLater()
    return _min_width[0]


class CompareColumn(QFrame):
    """The answer of configuration `index` (0-based; shown as #index+1)."""

    best_toggled = Signal(int, bool)
    source_activated = Signal(dict)
    open_externally_requested = Signal(dict)
    show_in_folder_requested = Signal(dict)

    def __init__(self, index: int, config: CompareConfig, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("compare-column")
        self.index = index
        self.config = config
        self.answer: CompareAnswer | None = None
        self._text = ""
        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.setInterval(RENDER_INTERVAL_MS)
        self._render_timer.timeout.connect(self._on_render_timer_timeout)
        self._build()
        self._apply_style()

    # ---- layout ----------------------------------------------------------------------------

    def _build(self) -> None:
        number = QLabel(f"#{self.index + 1}")
        number.setObjectName("compare-number")
        number.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._title = ElidedLabel(self.config.model, Qt.TextElideMode.ElideMiddle)
        font = self._title.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.08)
        self._title.setFont(font)
        self._subtitle = ElidedLabel(describe(self.config), Qt.TextElideMode.ElideRight)
        self._subtitle.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.best_button = QPushButton("☆ Best")
        self.best_button.setCheckable(True)
        self.best_button.setEnabled(False)
        self.best_button.setAutoDefault(False)
        self.best_button.setToolTip("Mark this answer as the best of the comparison")
        self.best_button.toggled.connect(self._on_best_button_toggled)
        names = QVBoxLayout()
        names.setSpacing(0)
        names.addWidget(self._title)
        names.addWidget(self._subtitle)
        header = QHBoxLayout()
        header.setSpacing(8)
        header.addWidget(number, 0, Qt.AlignmentFlag.AlignTop)
        header.addLayout(names, 1)
        header.addWidget(self.best_button, 0, Qt.AlignmentFlag.AlignTop)

        self.state = QLabel()
        self.state.setWordWrap(True)
        self.state.setForegroundRole(QPalette.ColorRole.PlaceholderText)

        self.browser = QTextBrowser()
        self.browser.setOpenLinks(False)
        self.browser.setOpenExternalLinks(False)
        self.browser.setFrameShape(QFrame.Shape.StyledPanel)
        self.browser.document().setDocumentMargin(8)
        self.browser.anchorClicked.connect(self._on_browser_anchor_clicked)
        self._stream = StreamRenderer(self.browser.document())

        self._grid = QGridLayout()
        self._grid.setContentsMargins(2, 4, 2, 2)
        self._grid.setHorizontalSpacing(12)
        self._grid.setVerticalSpacing(8)
        self._figure_values: list[QLabel] = []
        self._tiles: list[QWidget] = []
        self._across = 0  # figures per row, chosen from the column's width
        small = self.font()
        small.setPointSizeF(max(small.pointSizeF() * 0.85, 7.0))
        bold = self.font()
        bold.setBold(True)
        for name, value, tip in figures(AnswerMetrics()):
            label = QLabel(name)
            label.setFont(small)
            label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
            shown = QLabel(value)
            shown.setFont(bold)
            tile = QWidget()
            tile.setToolTip(tip)
            stack = QVBoxLayout(tile)
            stack.setContentsMargins(0, 0, 0, 0)
            stack.setSpacing(0)
            stack.addWidget(label)
            stack.addWidget(shown)
            self._tiles.append(tile)
            self._figure_values.append(shown)
        self._arrange_figures(len(self._tiles))

        top = QWidget()
        column = QVBoxLayout(top)
        column.setContentsMargins(10, 10, 10, 4)
        column.setSpacing(6)
        column.addLayout(header)
        column.addWidget(self.state)
        column.addWidget(self.browser, 1)
        column.addLayout(self._grid)

        self.sources = SourcesPanel()
        self.sources.source_activated.connect(self.source_activated.emit)
        self.sources.open_externally_requested.connect(self.open_externally_requested.emit)
        self.sources.show_in_folder_requested.connect(self.show_in_folder_requested.emit)

        split = QSplitter(Qt.Orientation.Vertical)
        split.setChildrenCollapsible(False)
        split.addWidget(top)
        split.addWidget(self.sources)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([560, 440])  # scaled to the height it gets; the answer comes first
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)
        self.setMinimumWidth(column_min_width(self))

    def _apply_style(self) -> None:
        pal = self.palette()
        base, text = pal.color(QPalette.ColorRole.Base), pal.color(QPalette.ColorRole.Text)
        highlight = pal.color(QPalette.ColorRole.Highlight)
        gold = QColor(214, 160, 20)
        self.setStyleSheet(
            f"""
            QFrame#compare-column {{
                border: 1px solid {mix(base, text, 0.18).name()};
                border-radius: 8px;
            }}
            QFrame#compare-column[best="true"] {{
                border: 2px solid {gold.name()};
            }}
            QLabel#compare-number {{
                background: {mix(base, highlight, 0.2).name()};
                border-radius: 9px;
                padding: 1px 7px;
                font-weight: bold;
            }}
            """
        )

    def _arrange_figures(self, across: int) -> None:
        """Four figures in a row when the column is wide enough, else two rows of two."""
        if across == self._across:
            return
        self._across = across
        for tile in self._tiles:
            self._grid.removeWidget(tile)
        for i, tile in enumerate(self._tiles):
            self._grid.addWidget(tile, *divmod(i, across))
        for col in range(len(self._tiles)):
            self._grid.setColumnStretch(col, 1 if col < across else 0)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        needed = sum(t.sizeHint().width() for t in self._tiles) + 12 * len(self._tiles) + 40
        self._arrange_figures(len(self._tiles) if self.width() >= needed else 2)

    # ---- states ----------------------------------------------------------------------------

    def set_waiting(self, text: str) -> None:
        self.state.setText(text)
        self.state.show()

    def set_started(self) -> None:
        self.state.setText(
            "Searching your documents, then waiting for the model…"
            if self.config.rag
            else "Waiting for the model…"
        )

    def show_sources(self, sources: list[dict[str, Any]]) -> None:
        self.sources.show_sources(sources, self._text)

    def append_token(self, text: str) -> None:
        """Add streamed text; rendered at most every RENDER_INTERVAL_MS."""
        if not self._text:
            self.state.setText("Writing…")
        self._text += text
        if not self._render_timer.isActive():
            self._render_timer.start()

    def show_answer(self, answer: CompareAnswer, waited_for: list[str] | None = None) -> None:
        """Show a finished answer (just streamed, or from a past comparison)."""
        self._render_timer.stop()
        self.answer = answer
        self._text = answer.text
        if answer.text.strip():
            render_markdown(self.browser, answer.text, self.index, answer.sources)
        else:
            placeholder = (
                "*Not run.*"
                if not answer.ran
                else "*No answer.*"
                if answer.error
                else "*Stopped before any text was written.*"
                if answer.cancelled
                else "*(empty answer)*"
            )
            render_markdown(self.browser, placeholder, None, [])
        for shown, (_name, value, _tip) in zip(
            self._figure_values, figures(answer.metrics), strict=True
        ):
            shown.setText(value)
        if answer.model and answer.model != self.config.model:
            self._title.setText(answer.model)
        self.sources.show_sources(answer.sources, answer.text)
        self._show_state(answer, waited_for or [])

    def _show_state(self, answer: CompareAnswer, waited_for: list[str]) -> None:
        notes: list[str] = []
        if answer.error:
            notes.append(f"<b>Failed.</b> {_html(answer.error)}")
        elif not answer.ran:
            notes.append("Not run: the comparison was stopped before its turn.")
        elif answer.cancelled:
            notes.append("Stopped part-way.")
        if waited_for:
            notes.append(
                f"Waited for {' and '.join(waited_for)}: Ollama answered them one after the "
                "other, so its first-token and total times include that wait."
            )
        if answer.note:
            notes.append(_html(answer.note))
        self.state.setTextFormat(Qt.TextFormat.RichText)
        self.state.setText("<br>".join(notes))
        self.state.setVisible(bool(notes))

    def set_best_enabled(self, enabled: bool) -> None:
        self.best_button.setEnabled(enabled)

    def set_best(self, best: bool) -> None:
        self.best_button.blockSignals(True)
        self.best_button.setChecked(best)
        self.best_button.blockSignals(False)
        self._show_best(best)

    def is_best(self) -> bool:
        return self.best_button.isChecked()

    def text(self) -> str:
        """The answer as shown (plain text)."""
        return self.browser.toPlainText()

    def figure_texts(self) -> dict[str, str]:
        return {
            name: shown.text()
            for (name, _v, _t), shown in zip(
                figures(AnswerMetrics()), self._figure_values, strict=True
            )
        }

    # ---- slots -----------------------------------------------------------------------------

    def _on_render_timer_timeout(self) -> None:
        self._stream.update(self._text)

    def _on_best_button_toggled(self, checked: bool) -> None:
        self._show_best(checked)
        self.best_toggled.emit(self.index, checked)

    def _show_best(self, best: bool) -> None:
        self.best_button.setText("★ Best" if best else "☆ Best")
        self.setProperty("best", best)
        self.style().unpolish(self)
        self.style().polish(self)

    def _on_browser_anchor_clicked(self, url: QUrl) -> None:
        parsed = parse_cite_url(url)
        if parsed is None or self.answer is None:
            return
        number = parsed[1]
        self.sources.select_source(number)
        for source in self.answer.sources:
            if source.get("number") == number:
                self.source_activated.emit(dict(source))
                return


def _html(text: str) -> str:
    return html.escape(text).replace("\n", "<br>")
