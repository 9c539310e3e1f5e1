"""The review table of an evaluation set, and the dialogs that add or edit one question.

`EvalItemsModel` shows the items of an `EvalSet` (question, reference answer, source file and
page, answerable, origin); it holds the set itself, so the Sets page edits the set through the
core's `EvalSet.edit/delete/add` and then calls `refresh()`.  `ItemDialog` asks for a question,
its reference answer and whether the documents answer it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QPlainTextEdit,
    QWidget,
)

from ftrag_desktop.core.evalset import EvalItem, EvalSet

__all__ = ["COLUMNS", "ID_ROLE", "EvalItemsModel", "ItemDialog", "source_label"]

COLUMNS = ("Question", "Reference answer", "Source", "Answerable", "Origin")
QUESTION, ANSWER, SOURCE, ANSWERABLE, ORIGIN = range(len(COLUMNS))
ID_ROLE = Qt.ItemDataRole.UserRole + 1
_Index = QModelIndex | QPersistentModelIndex


def source_label(item: EvalItem) -> str:
    """`notes.pdf p. 3`, `notes.md`, or "" for a question without a source."""
    if not item.source_doc:
        return ""
    name = Path(item.source_doc).name
    return f"{name} p. {item.source_page}" if item.source_page else name


def _short(text: str, width: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


class EvalItemsModel(QAbstractTableModel):
    """The items of one set, in the set's order; see the module docstring."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._set: EvalSet | None = None

    def set_evalset(self, evalset: EvalSet | None) -> None:
        self.beginResetModel()
        self._set = evalset
        self.endResetModel()

    def evalset(self) -> EvalSet | None:
        return self._set

    def refresh(self) -> None:
        """The set's items changed (edited, deleted, added): show them again."""
        self.set_evalset(self._set)

    def append_item(self, item: EvalItem) -> None:
        """Add `item` at the end of the set (a build in progress shows each kept question)."""
        if self._set is None:
            return
        row = len(self._set.items)
        self.beginInsertRows(QModelIndex(), row, row)
        self._set.items.append(item)
        self.endInsertRows()

    def item_at(self, row: int) -> EvalItem | None:
        if self._set is None or not 0 <= row < len(self._set.items):
            return None
        return self._set.items[row]

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() or self._set is None else len(self._set.items)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        item = self.item_at(index.row())
        if item is None:
            return None
        col = index.column()
        if role == ID_ROLE:
            return item.id
        if role == Qt.ItemDataRole.DisplayRole:
            if col == QUESTION:
                return _short(item.question)
            if col == ANSWER:
                return _short(item.answer) if item.answerable else "— (should decline)"
            if col == SOURCE:
                return source_label(item)
            if col == ANSWERABLE:
                return "yes" if item.answerable else "no"
            if col == ORIGIN:
                return f"{item.origin}, edited" if item.edited else item.origin
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == SOURCE and item.source_text:
                return f"{item.source_doc}\n\n{_short(item.source_text, 600)}"
            if col in (QUESTION, ANSWER):
                return item.question if col == QUESTION else item.answer or None
        return None


class ItemDialog(QDialog):
    """Add a question, or edit one: question, reference answer, answerable."""

    def __init__(self, item: EvalItem | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Edit question" if item is not None else "Add a question")
        self.item_id = item.id if item is not None else ""
        self.question = QPlainTextEdit(item.question if item is not None else "")
        self.question.setTabChangesFocus(True)
        self.answer = QPlainTextEdit(item.answer if item is not None else "")
        self.answer.setTabChangesFocus(True)
        self.answerable = QCheckBox("The documents answer it")
        self.answerable.setToolTip(
            "Off: a question on a topic your documents do not cover; a good answer declines"
        )
        self.answerable.setChecked(item.answerable if item is not None else True)
        self.answerable.toggled.connect(self._on_answerable_toggled)
        line = self.question.fontMetrics().lineSpacing()
        for box in (self.question, self.answer):
            box.setFixedHeight(line * 4 + 14)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #b0463c")
        self.error.hide()
        form = QFormLayout(self)
        form.addRow("Question:", self.question)
        form.addRow("Reference answer:", self.answer)
        form.addRow("", self.answerable)
        if item is not None and item.source_doc:
            source = QLabel(f"Source: {source_label(item)}")
            source.setToolTip(item.source_text or "")
            form.addRow("", source)
        form.addRow(self.error)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self._on_buttons_accepted)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.resize(560, self.sizeHint().height())
        self._on_answerable_toggled(self.answerable.isChecked())

    def values(self) -> tuple[str, str, bool]:
        answerable = self.answerable.isChecked()
        answer = self.answer.toPlainText().strip() if answerable else ""
        return self.question.toPlainText().strip(), answer, answerable

    def show_error(self, message: str) -> None:
        self.error.setText(message)
        self.error.show()

    def _on_answerable_toggled(self, on: bool) -> None:
        self.answer.setEnabled(on)

    def _on_buttons_accepted(self) -> None:
        question, answer, answerable = self.values()
        if not question:
            self.show_error("Write the question.")
        elif answerable and not answer:
            self.show_error("An answerable question needs its reference answer.")
        else:
            self.accept()
