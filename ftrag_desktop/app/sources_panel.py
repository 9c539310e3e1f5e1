"""The sources panel: the passages behind the selected answer, cited ones first.

One card per source: its number, file name, folder, location (page, heading or lines), relevance,
a cited/retrieved badge, and the passage with the part that supports the answer highlighted
(`core.highlight`).  Clicking a card (or Enter on it) asks for it to be opened in the viewer;
each card also offers "Open with system app" and "Show in folder".  The panel only emits
signals; the main window decides what opening means.
"""

from __future__ import annotations

import html
import re
from itertools import pairwise
from pathlib import Path
from typing import Any

from PySide6.QtCore import QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QContextMenuEvent,
    QFocusEvent,
    QGuiApplication,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QPen,
    QResizeEvent,
)
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QScrollArea,
    QSizePolicy,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ftrag_desktop.app.scrollbars import flatten
from ftrag_desktop.app.viewer import ElidedLabel, location_label
from ftrag_desktop.core.highlight import answer_sentences_citing, supporting_spans

EXCERPT_CHARS = 560  # longer passages are shown around their highlight, with "Show more"
_LONG_TOKEN = re.compile(r"\S{28,}")
_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
# Lines like these carry structure (lists, headings, tables, code): keep their line breaks.
_STRUCTURED_LINE = re.compile(r"^(?:\s*(?:[-*+>#|]|\d+[.)])\s|\s{2,}\S|\t)", re.MULTILINE)

FIRST_CARDS = 1  # built at once; the rest follow one per CARD_GAP_MS
CARD_GAP_MS = 15  # between cards, so that layout and painting of one land before the next


def should_reflow(source: dict[str, Any]) -> bool:
    """Whether single line breaks in the passage are just wrapping (PDFs, hard-wrapped prose)."""
    if source.get("page") is not None:
        return True
    text = str(source.get("text") or "")
    suffix = Path(str(source.get("path") or "")).suffix.lower()
    prose = suffix in {".txt", ".text", ".md", ".markdown", ".rst", ".html", ".htm", ".docx"}
    return prose and not _STRUCTURED_LINE.search(text)


def display_folder(path: Path) -> str:
    """The folder of `path`, with the home directory shown as ~."""
    folder = path.parent
    try:
        return "~/" + folder.relative_to(Path.home()).as_posix()
    except ValueError:
        return str(folder)


def highlight_spans(source: dict[str, Any], answer_text: str) -> list[tuple[int, int]]:
    """The spans of the source's passage that support the answer sentences citing it."""
    passage = str(source.get("text") or "")
    number = int(source.get("number") or 0)
    claims = answer_sentences_citing(answer_text, number) if number else []
    return supporting_spans(passage, " ".join(claims) if claims else answer_text)


def _mix(a: QColor, b: QColor, t: float) -> QColor:
    """`a` moved a fraction `t` towards `b`."""
    return QColor(
        round(a.red() + (b.red() - a.red()) * t),
        round(a.green() + (b.green() - a.green()) * t),
        round(a.blue() + (b.blue() - a.blue()) * t),
    )


def _is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Base).lightness() < 128


def _marker_colours(palette: QPalette, strong: bool = True) -> tuple[QColor, QColor]:
    """Background and text colour of a highlighted span; fainter for uncited sources."""
    if _is_dark(palette):
        return QColor("#6b5400" if strong else "#4a3c0c"), QColor("#fff6d6")
    return QColor("#ffe58f" if strong else "#fff0c4"), QColor("#1f1a00")


def _excerpt_window(length: int, spans: list[tuple[int, int]], limit: int) -> tuple[int, int]:
    """A window of at most `limit` characters, starting a little before the first highlight."""
    if length <= limit:
        return 0, length
    start = max(0, spans[0][0] - limit // 5) if spans else 0
    start = min(start, length - limit)
    return start, start + limit


def _snap_to_words(text: str, start: int, end: int) -> tuple[int, int]:
    if start > 0:
        space = text.find(" ", start, start + 40)
        start = space + 1 if space >= 0 else start
    if end < len(text):
        space = text.rfind(" ", end - 40, end)
        end = space if space > start else end
    return start, end


def _breakable(text: str) -> str:
    """Zero-width spaces inside very long tokens (URLs, hashes) so that they can wrap."""
    return _LONG_TOKEN.sub(lambda m: "\u200b".join(re.findall(".{1,20}", m.group())), text)


def passage_html(
    passage: str,
    spans: list[tuple[int, int]],
    palette: QPalette,
    *,
    limit: int | None = EXCERPT_CHARS,
    reflow: bool = False,
    strong: bool = True,
) -> tuple[str, bool]:
    """The passage as rich text with the spans marked; and whether it was shortened.

    `reflow` joins single line breaks (PDF text breaks at every printed line).
    """
    start, end = 0, len(passage)
    if limit is not None and len(passage) > limit:
        start, end = _snap_to_words(passage, *_excerpt_window(len(passage), spans, limit))
    bg, fg = _marker_colours(palette, strong)
    cuts = sorted({start, end, *(p for s in spans for p in s if start < p < end)})
    marked = [(max(a, start), min(b, end)) for a, b in spans if b > start and a < end]
    out: list[str] = ["…" if start > 0 else ""]
    for a, b in pairwise(cuts):
        piece = _PARAGRAPH.sub("\x00", passage[a:b])
        piece = piece.replace("\n", " " if reflow else "\x01")
        piece = html.escape(_breakable(piece))
        piece = piece.replace("\x00", "<br><br>").replace("\x01", "<br>")
        if any(ma <= a and b <= mb for ma, mb in marked):
            piece = f'<span style="background-color:{bg.name()}; color:{fg.name()};">{piece}</span>'
        out.append(piece)
    if end < len(passage):
        out.append("…")
    return "".join(out).strip(), (start, end) != (0, len(passage))


class _ScoreBar(QWidget):
    """A small bar: this source's relevance relative to the best source of the answer."""

    def __init__(self, fraction: float, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._fraction = min(max(fraction, 0.0), 1.0)
        self.setFixedSize(36, 6)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        palette = self.palette()
        track = _mix(
            palette.color(QPalette.ColorRole.Base), palette.color(QPalette.ColorRole.Text), 0.15
        )
        painter.setBrush(track)
        rect = QRectF(self.rect())
        painter.drawRoundedRect(rect, 3, 3)
        painter.setBrush(palette.color(QPalette.ColorRole.Highlight))
        filled = QRectF(rect.x(), rect.y(), max(rect.width() * self._fraction, 6), rect.height())
        painter.drawRoundedRect(filled, 3, 3)


class _Badge(QLabel):
    """A small rounded label: the source number, or "Cited" / "Retrieved"."""

    def __init__(self, text: str, strong: bool, parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self._strong = strong
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        font = self.font()
        font.setPointSizeF(font.pointSizeF() * 0.85)
        font.setBold(True)
        self.setFont(font)
        self.setContentsMargins(7, 1, 7, 1)

    def paintEvent(self, event: QPaintEvent) -> None:
        palette = self.palette()
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        radius = rect.height() / 2
        accent = palette.color(QPalette.ColorRole.Highlight)
        if self._strong:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(accent)
            text = palette.color(QPalette.ColorRole.HighlightedText)
        else:
            muted = _mix(
                palette.color(QPalette.ColorRole.Text), palette.color(QPalette.ColorRole.Base), 0.45
            )
            painter.setPen(QPen(muted, 1))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            text = muted
        painter.drawRoundedRect(rect, radius, radius)
        painter.setPen(text)
        painter.setFont(self.font())
        painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.text())


class SourceCard(QFrame):
    """One source: header, location, passage with highlights, actions."""

    activated = Signal()
    focused = Signal()
    open_externally_clicked = Signal()
    show_in_folder_clicked = Signal()
    step_requested = Signal(int)  # -1 / +1: move the selection with the arrow keys

    def __init__(
        self,
        source: dict[str, Any],
        spans: list[tuple[int, int]],
        relevance: float,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.source = source
        self.spans = spans
        self._selected = False
        self._expanded = False
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        cited = bool(source.get("cited"))
        path = Path(str(source.get("path") or ""))
        score = float(source.get("score") or 0.0)
        self.setToolTip(f"{path}\nClick or press Enter to open it at this passage.")

        self.number_badge = _Badge(f"{source.get('number', '?')}", cited)
        self.number_badge.setMinimumWidth(self.number_badge.sizeHint().height() + 4)
        self.name_label = ElidedLabel(path.name or str(path), Qt.TextElideMode.ElideMiddle)
        name_font = self.name_label.font()
        name_font.setBold(True)
        self.name_label.setFont(name_font)
        self.kind_badge = _Badge("Cited" if cited else "Retrieved", cited)
        score_bar = _ScoreBar(relevance)
        self.score_label = QLabel(f"{score:.3g}" if score < 1 else f"{score:.2f}")
        self.score_label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        small = self.score_label.font()
        small.setPointSizeF(small.pointSizeF() * 0.9)
        self.score_label.setFont(small)
        relevance_tip = (
            f"Relevance score {score:.4g} ({relevance:.0%} of the best source for this answer)"
        )
        score_bar.setToolTip(relevance_tip)
        self.score_label.setToolTip(relevance_tip)
        head = QHBoxLayout()
        head.setSpacing(8)
        head.addWidget(self.number_badge)
        head.addWidget(self.name_label, 1)
        head.addWidget(self.kind_badge)

        self.location_label = QLabel(location_label(source))
        self.location_label.setFont(small)
        self.folder_label = ElidedLabel(display_folder(path), Qt.TextElideMode.ElideMiddle)
        self.folder_label.setToolTip(str(path.parent))
        self.folder_label.setFont(small)
        for label in (self.location_label, self.folder_label):
            label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        where = QHBoxLayout()
        where.setSpacing(6)
        if self.location_label.text():
            where.addWidget(self.location_label)
            dot = QLabel("·")
            dot.setForegroundRole(QPalette.ColorRole.PlaceholderText)
            where.addWidget(dot)
        where.addWidget(self.folder_label, 1)
        where.addWidget(score_bar)
        where.addWidget(self.score_label)

        self.passage_label = QLabel()
        self.passage_label.setTextFormat(Qt.TextFormat.RichText)
        self.passage_label.setWordWrap(True)
        self.passage_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        if not cited:
            self.passage_label.setForegroundRole(QPalette.ColorRole.PlaceholderText)

        self.open_button = self._action("Open", "Open in the viewer at this passage (Enter)")
        self.open_button.clicked.connect(self.activated)
        self.external_button = self._action(
            "Open with system app", "Open the file in the application your system uses for it"
        )
        self.external_button.clicked.connect(self.open_externally_clicked)
        self.folder_button = self._action("Show in folder", "Open the folder that holds the file")
        self.folder_button.clicked.connect(self.show_in_folder_clicked)
        self.more_button = self._action("Show more", "Show the whole passage")
        self.more_button.clicked.connect(self._on_more_clicked)
        # In a narrow panel these two give way (they stay in the card's right-click menu), so
        # that the card never gets wider than the panel and clips its passage.
        self._optional_buttons = (self.external_button, self.folder_button)
        for button in self._optional_buttons:
            button.setMinimumWidth(1)
        actions = QHBoxLayout()
        actions.setSpacing(2)
        actions.addWidget(self.open_button)
        actions.addWidget(self.external_button)
        actions.addWidget(self.folder_button)
        actions.addStretch(1)
        actions.addWidget(self.more_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 10, 12, 6)
        layout.setSpacing(5)
        layout.addLayout(head)
        layout.addLayout(where)
        layout.addSpacing(2)
        layout.addWidget(self.passage_label)
        layout.addLayout(actions)
        self._actions = actions
        self._card_layout = layout
        self._render_passage()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit_actions(event.size().width())

    def _fit_actions(self, width: int) -> None:
        """Show "Open with system app" and "Show in folder" only where they fit whole."""
        margins = self._card_layout.contentsMargins()
        room = width - margins.left() - margins.right()
        buttons = [self.open_button, *self._optional_buttons]
        if not self.more_button.isHidden():
            buttons.append(self.more_button)
        needed = sum(b.sizeHint().width() for b in buttons)
        fits = needed + self._actions.spacing() * (len(buttons) - 1) <= room
        for button in self._optional_buttons:
            if button.isHidden() == fits:
                button.setVisible(fits)

    def _action(self, text: str, tip: str) -> QToolButton:
        button = QToolButton()
        button.setText(text)
        button.setToolTip(tip)
        button.setAutoRaise(True)
        button.setCursor(Qt.CursorShape.PointingHandCursor)
        button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        font = button.font()
        font.setPointSizeF(font.pointSizeF() * 0.9)
        button.setFont(font)
        return button

    def _render_passage(self) -> None:
        text = str(self.source.get("text") or "")
        rich, shortened = passage_html(
            text,
            self.spans,
            self.palette(),
            limit=None if self._expanded else EXCERPT_CHARS,
            reflow=should_reflow(self.source),
            strong=bool(self.source.get("cited")),
        )
        self.passage_label.setText(rich or "<i>(empty passage)</i>")
        self.more_button.setVisible(shortened or self._expanded)
        self.more_button.setText("Show less" if self._expanded else "Show more")

    def _on_more_clicked(self) -> None:
        self._expanded = not self._expanded
        self._render_passage()

    def passage_plain_text(self) -> str:
        """The passage as shown (for tests and accessibility)."""
        doc = self.passage_label.text()
        return html.unescape(re.sub(r"<[^>]+>", "", doc)).replace("\u200b", "")

    def set_selected(self, selected: bool) -> None:
        if selected != self._selected:
            self._selected = selected
            self.update()

    def is_selected(self) -> bool:
        return self._selected

    # ---- painting and input -----------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:
        palette = self.palette()
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        base = palette.color(QPalette.ColorRole.Base)
        text = palette.color(QPalette.ColorRole.Text)
        accent = palette.color(QPalette.ColorRole.Highlight)
        rect = QRectF(self.rect()).adjusted(1, 1, -1, -1)
        if self._selected:
            painter.setPen(QPen(accent, 2))
            painter.setBrush(_mix(base, accent, 0.08))
        else:
            painter.setPen(QPen(_mix(base, text, 0.18), 1))
            painter.setBrush(base)
        painter.drawRoundedRect(rect, 8, 8)
        if self.source.get("cited"):
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(accent)
            painter.drawRoundedRect(
                QRectF(rect.x() + 3, rect.y() + 10, 3, rect.height() - 20), 1.5, 1.5
            )

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.setFocus(Qt.FocusReason.MouseFocusReason)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self.rect().contains(
            event.position().toPoint()
        ):
            self.activated.emit()
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space):
            self.activated.emit()
        elif key == Qt.Key.Key_Down:
            self.step_requested.emit(1)
        elif key == Qt.Key.Key_Up:
            self.step_requested.emit(-1)
        else:
            super().keyPressEvent(event)

    def focusInEvent(self, event: QFocusEvent) -> None:
        super().focusInEvent(event)
        self.focused.emit()

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        menu = QMenu(self)
        menu.addAction("Open", self.activated.emit)
        menu.addAction("Open with system app", self.open_externally_clicked.emit)
        menu.addAction("Show in folder", self.show_in_folder_clicked.emit)
        menu.addSeparator()
        menu.addAction("Copy passage", self._copy_passage)
        menu.addAction("Copy file path", self._copy_path)
        menu.exec(event.globalPos())

    def _copy_passage(self) -> None:
        QGuiApplication.clipboard().setText(str(self.source.get("text") or ""))

    def _copy_path(self) -> None:
        QGuiApplication.clipboard().setText(str(self.source.get("path") or ""))


class SourcesPanel(QWidget):
    """The right-hand panel: every source of the selected answer, cited ones first."""

    source_activated = Signal(dict)  # a source dict was clicked / Enter: open it in the viewer
    open_externally_requested = Signal(dict)
    show_in_folder_requested = Signal(dict)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._sources: list[dict[str, Any]] = []
        self._answer = ""
        self._cards: list[SourceCard] = []
        self._queue: list[tuple[dict[str, Any], float]] = []  # cards still to build
        self._build_gen = 0
        self._shown = False
        self._build()
        self.clear()

    def _build(self) -> None:
        self._title = QLabel("Sources")
        title_font = self._title.font()
        title_font.setPointSizeF(title_font.pointSizeF() * 1.15)
        title_font.setBold(True)
        self._title.setFont(title_font)
        self._summary = QLabel()
        self._summary.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        header = QHBoxLayout()
        header.setContentsMargins(12, 10, 12, 6)
        header.addWidget(self._title)
        header.addStretch(1)
        header.addWidget(self._summary)

        self._empty_title = QLabel()
        empty_font = self._empty_title.font()
        empty_font.setBold(True)
        self._empty_title.setFont(empty_font)
        self._empty_title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._empty_body = QLabel()
        self._empty_body.setWordWrap(True)
        self._empty_body.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._empty_body.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        empty = QWidget()
        ev = QVBoxLayout(empty)
        ev.setContentsMargins(24, 24, 24, 24)
        ev.addStretch(1)
        ev.addWidget(self._empty_title)
        ev.addWidget(self._empty_body)
        ev.addStretch(2)
        self._empty = empty

        self._list = QWidget()
        self._list_layout = QVBoxLayout(self._list)
        self._list_layout.setContentsMargins(10, 2, 10, 10)
        self._list_layout.setSpacing(8)
        self._list_layout.addStretch(1)
        self._scroll = QScrollArea()
        self._scroll.setWidgetResizable(True)
        self._scroll.setFrameShape(QFrame.Shape.NoFrame)
        self._scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # Always there, so that the cards never re-wrap (and re-lay out) when it would appear.
        self._scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        flatten(self._scroll)
        self._scroll.setWidget(self._list)

        self._stack = QStackedWidget()
        self._stack.addWidget(empty)
        self._stack.addWidget(self._scroll)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(header)
        layout.addWidget(self._stack, 1)
        self.setMinimumWidth(260)

    def sizeHint(self) -> QSize:
        return QSize(380, 600)

    # ---- public API -----------------------------------------------------------------------

    def show_sources(self, sources: list[dict[str, Any]], answer_text: str) -> None:
        """Show the sources of one answer (dicts as stored in `Message.sources`)."""
        self._sources = [dict(s) for s in sources]
        self._answer = answer_text
        self._shown = True
        self._rebuild()

    def select_source(self, number: int) -> None:
        """Scroll to source `number` and mark it as selected (a [n] citation was clicked)."""
        self._flush_build()
        for card in self._cards:
            if int(card.source.get("number") or 0) == number:
                self._select(card)
                card.setFocus(Qt.FocusReason.OtherFocusReason)
                return

    def clear(self) -> None:
        """Back to the empty state: no answer selected."""
        self._sources = []
        self._answer = ""
        self._shown = False
        self._rebuild()

    def cards(self) -> list[SourceCard]:
        """The cards in display order (for tests and the lead's keyboard handling)."""
        self._flush_build()
        return list(self._cards)

    def summary_text(self) -> str:
        return self._summary.text()

    def selected_number(self) -> int | None:
        for card in self._cards:
            if card.is_selected():
                return int(card.source.get("number") or 0)
        return None

    # ---- internals ------------------------------------------------------------------------

    def _rebuild(self) -> None:
        self._build_gen += 1
        self._queue = []
        for card in self._cards:
            self._list_layout.removeWidget(card)
            card.deleteLater()
        self._cards = []
        if not self._shown:
            self._summary.setText("")
            self._show_empty(
                "No answer selected",
                "Select an answer in the chat to see the passages it was grounded on, with the "
                "parts that support it highlighted.",
            )
            return
        if not self._sources:
            self._summary.setText("")
            self._show_empty(
                "No sources for this answer",
                "It was written without your documents: document search was off, or nothing "
                "in the library matched the question.",
            )
            return
        ordered = sorted(
            self._sources, key=lambda s: (not s.get("cited"), int(s.get("number") or 0))
        )
        best = max((float(s.get("score") or 0.0) for s in ordered), default=0.0)
        # Cards are built a few at a time, one event-loop turn each, so that showing many
        # sources never blocks the GUI thread for long; readers of `_cards` flush the rest.
        self._build_gen += 1
        self._queue = [(source, best) for source in ordered]
        self._build_some(FIRST_CARDS)
        cited = sum(1 for s in ordered if s.get("cited"))
        others = len(ordered) - cited
        if cited and others:
            summary = f"{cited} cited · {others} more retrieved"
        elif cited:
            summary = f"{cited} cited"
        else:
            summary = f"{others} retrieved · none cited"
        self._summary.setText(summary)
        self._stack.setCurrentWidget(self._scroll)
        self._scroll.verticalScrollBar().setValue(0)

    def _build_one(self) -> None:
        source, best = self._queue.pop(0)
        relevance = float(source.get("score") or 0.0) / best if best > 0 else 0.0
        card = SourceCard(source, highlight_spans(source, self._answer), relevance)
        self._connect(card, source)
        self._list_layout.insertWidget(len(self._cards), card)
        card.show()  # now, not on the layout's queued show: it may be focused at once
        self._cards.append(card)

    def _build_some(self, count: int) -> None:
        for _ in range(count):
            if not self._queue:
                return
            self._build_one()
        if self._queue:
            gen = self._build_gen
            QTimer.singleShot(CARD_GAP_MS, self, lambda: self._continue_build(gen))

    def _continue_build(self, gen: int) -> None:
        if gen == self._build_gen:
            self._build_some(1)

    def _flush_build(self) -> None:
        while self._queue:
            self._build_one()

    def _connect(self, card: SourceCard, source: dict[str, Any]) -> None:
        card.activated.connect(lambda: self._on_card_activated(card))
        card.focused.connect(lambda: self._select(card))
        card.open_externally_clicked.connect(
            lambda: self.open_externally_requested.emit(dict(source))
        )
        card.show_in_folder_clicked.connect(
            lambda: self.show_in_folder_requested.emit(dict(source))
        )
        card.step_requested.connect(lambda step: self._on_card_step_requested(card, step))

    def _on_card_activated(self, card: SourceCard) -> None:
        self._select(card)
        self.source_activated.emit(dict(card.source))

    def _on_card_step_requested(self, card: SourceCard, step: int) -> None:
        index = self._cards.index(card) + step
        if 0 <= index < len(self._cards):
            self._cards[index].setFocus(Qt.FocusReason.OtherFocusReason)

    def _select(self, card: SourceCard) -> None:
        for other in self._cards:
            other.set_selected(other is card)
        self._scroll.ensureWidgetVisible(card, 0, 8)
        # Cards just added have no geometry until the layout runs: scroll again after it.
        QTimer.singleShot(0, self, lambda: self._ensure_visible(card))

    def _ensure_visible(self, card: SourceCard) -> None:
        if card in self._cards:
            self._scroll.ensureWidgetVisible(card, 0, 8)

    def _show_empty(self, title: str, body: str) -> None:
        self._empty_title.setText(title)
        self._empty_body.setText(body)
        self._stack.setCurrentWidget(self._empty)

    def changeEvent(self, event: Any) -> None:
        super().changeEvent(event)
        # Highlight colours are baked into each card's rich text: redo them for a new palette.
        if event.type() == event.Type.PaletteChange and self._cards:
            selected = self.selected_number()
            self._rebuild()
            if selected is not None:
                self.select_source(selected)
