"""The Library's watched folders: each folder with its counts and state, and its buttons.

The panel shows what it is given and enables its buttons to match the selection; what the
buttons do is up to the Library view, which connects to them.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPalette, QPixmap, QPolygonF
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGroupBox,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from ftrag_desktop.app.document_table import STATUS_COLORS
from ftrag_desktop.app.formatting import short_folder

__all__ = ["FolderPanel"]


def _glyph_icon(kind: str, color: QColor, size: int = 16) -> QIcon:
    """A crisp pause (two bars) or play (triangle) glyph in the palette's text colour.

    The style's own media icons are black on every palette: unreadable on a dark one.
    """
    scale = 2
    pix = QPixmap(size * scale, size * scale)
    pix.setDevicePixelRatio(scale)
    pix.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pix)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(color)
    unit = size / 16
    if kind == "pause":
        painter.drawRoundedRect(QRectF(4 * unit, 3 * unit, 3 * unit, 10 * unit), unit, unit)
        painter.drawRoundedRect(QRectF(9 * unit, 3 * unit, 3 * unit, 10 * unit), unit, unit)
    else:
        painter.drawPolygon(
            QPolygonF(
                [
                    QPointF(5 * unit, 3 * unit),
                    QPointF(13 * unit, 8 * unit),
                    QPointF(5 * unit, 13 * unit),
                ]
            )
        )
    painter.end()
    return QIcon(pix)


class FolderPanel(QGroupBox):
    """The list of watched folders, with Add, Remove, Pause/Resume and Rescan buttons."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Watched folders", parent)
        self._folders: list[str] = []
        self._paused: set[str] = set()
        self._shown: tuple[object, ...] | None = None  # what `set_folders` last showed
        self._glyph: tuple[str, int] | None = None  # the pause button's glyph and colour
        style = self.style()
        row = QHBoxLayout(self)
        self.list = QListWidget()
        self.list.setObjectName("folder-list")
        self.list.setMinimumHeight(96)
        self.list.setMaximumHeight(150)
        self.list.setUniformItemSizes(True)
        self.list.setIconSize(QSize(28, 28))
        self.list.setSpacing(2)
        self.list.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        row.addWidget(self.list, 1)

        buttons = QVBoxLayout()
        buttons.setSpacing(6)
        self.add_button = QPushButton("Add folder…")
        self.add_button.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_FileDialogNewFolder))
        self.remove_button = QPushButton("Remove")
        self.remove_button.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_DialogDiscardButton))
        self.remove_button.setToolTip("Stop watching; the files stay on disk")
        self.pause_button = QPushButton("Pause")
        self.pause_button.setToolTip("Stop indexing changes in this folder until resumed")
        self.rescan_button = QPushButton("Rescan now")
        self.rescan_button.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_BrowserReload))
        self.rescan_button.setToolTip("Look for changes now (the selected folder, or all)")
        for button in (
            self.add_button,
            self.remove_button,
            self.pause_button,
            self.rescan_button,
        ):
            buttons.addWidget(button)
        buttons.addStretch(1)
        row.addLayout(buttons)

    def selected_folder(self) -> str | None:
        item = self.list.currentItem()
        return str(item.data(Qt.ItemDataRole.UserRole)) if item is not None else None

    def set_folders(
        self, folders: list[str], paused: set[str], counts: dict[str, tuple[int, int]]
    ) -> None:
        """Show `folders`, with their (documents, failed) `counts`; the selection is kept.

        Called with every status report: when nothing shown changed, nothing is rebuilt."""
        shown = (tuple(folders), frozenset(paused), tuple(counts.get(f) for f in folders))
        if shown == self._shown:
            return
        self._shown = shown
        current = self.selected_folder()
        self._folders = list(folders)
        self._paused = set(paused)
        style = self.style()
        self.list.clear()
        for folder in folders:
            is_paused = folder in self._paused
            total, failed = counts.get(folder, (0, 0))
            extra = []
            if total:
                extra.append(f"{total:,} documents")
            if failed:
                extra.append(f"{failed:,} failed")
            if is_paused:
                extra.append("paused")
            name = Path(folder).name or folder
            label = name + (f"  ·  {', '.join(extra)}" if extra else "")
            label += f"\n{short_folder(folder)}"
            item = QListWidgetItem(label)
            item.setData(Qt.ItemDataRole.UserRole, folder)
            item.setToolTip(folder + ("\nPaused: changes are not indexed" if is_paused else ""))
            item.setIcon(
                _glyph_icon("pause", QColor(STATUS_COLORS["pending"]), 28)
                if is_paused
                else style.standardIcon(QStyle.StandardPixmap.SP_DirIcon)
            )
            if is_paused:
                item.setForeground(
                    self.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
                )
            self.list.addItem(item)
            if folder == current:
                self.list.setCurrentItem(item)
        if self.list.currentRow() < 0 and folders:
            self.list.setCurrentRow(0)

    def update_buttons(self) -> None:
        """Enable the buttons for the selected folder; Pause reads Resume on a paused one."""
        folder = self.selected_folder()
        has_folder = folder is not None
        self.remove_button.setEnabled(has_folder)
        self.pause_button.setEnabled(has_folder)
        paused = folder in self._paused if folder else False
        color = self.palette().color(QPalette.ColorRole.ButtonText)
        glyph = ("play" if paused else "pause", color.rgba())
        if glyph != self._glyph:  # drawing the glyph costs a pixmap: only when it changes
            self._glyph = glyph
            self.pause_button.setText("Resume" if paused else "Pause")
            self.pause_button.setIcon(_glyph_icon(glyph[0], color))
        self.rescan_button.setEnabled(bool(self._folders))

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange:
            self.update_buttons()  # the pause glyph is drawn in the palette's text colour
            self._shown = None  # paused folders' grey comes from the palette: redraw them next
        super().changeEvent(event)
