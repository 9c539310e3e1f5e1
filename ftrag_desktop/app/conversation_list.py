"""The conversations panel: the saved conversations, most recent first; new, rename, delete.

It works on a `ConversationStore`, but every read and write of the store runs on a worker
(`run_in_background`); the list only updates when the result comes back.  Renaming is done in
place (F2, double-click, or the context menu); deleting asks first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from PySide6.QtCore import (
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QSize,
    Qt,
    QThreadPool,
    Signal,
)
from PySide6.QtGui import QAction, QFont, QFontMetrics, QIcon, QKeySequence, QPainter, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ftrag_desktop.app.workers import run_in_background
from ftrag_desktop.core.conversations import Conversation, ConversationStore

NEW_TITLE = "New conversation"
_ID_ROLE = Qt.ItemDataRole.UserRole
_DATE_ROLE = Qt.ItemDataRole.UserRole + 1


@dataclass(frozen=True)
class _Summary:
    id: str
    title: str
    updated_at: float


def when_label(ts: float, now: float | None = None) -> str:
    """A short, human date: "Today 14:02", "Yesterday 09:10", "Mon 18:30" or "2024-03-02"."""
    now = time.time() if now is None else now
    day = time.localtime(ts)
    today = time.localtime(now)
    days = (
        time.mktime((*today[:3], 0, 0, 0, 0, 0, -1)) - time.mktime((*day[:3], 0, 0, 0, 0, 0, -1))
    ) // 86400
    clock = time.strftime("%H:%M", day)
    if days <= 0:
        return f"Today {clock}"
    if days == 1:
        return f"Yesterday {clock}"
    if days < 7:
        return time.strftime("%a ", day) + clock
    return time.strftime("%Y-%m-%d", day)


class _ConversationDelegate(QStyledItemDelegate):
    """Two lines per conversation: the title, and its date in a muted, smaller font."""

    PAD = 6

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        fm = QFontMetrics(option.font)
        small = QFontMetrics(self._small_font(option.font))
        return QSize(160, fm.height() + small.height() + 2 * self.PAD + 2)

    @staticmethod
    def _small_font(font: QFont) -> QFont:
        small = QFont(font)
        small.setPointSizeF(max(font.pointSizeF() * 0.85, 7.0))
        return small

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        title = opt.text
        opt.text = ""
        widget = opt.widget
        style = widget.style() if widget is not None else None
        if style is not None:
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, widget)
        rect: QRect = opt.rect.adjusted(self.PAD + 2, self.PAD, -self.PAD, -self.PAD)
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        palette: QPalette = opt.palette
        painter.save()
        font: QFont = QFont(opt.font)
        fm = QFontMetrics(font)
        role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        painter.setFont(font)
        painter.setPen(palette.color(role))
        painter.drawText(
            rect.adjusted(0, 0, 0, -(rect.height() - fm.height())),
            int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
            fm.elidedText(title, Qt.TextElideMode.ElideRight, rect.width()),
        )
        small = self._small_font(font)
        painter.setFont(small)
        muted = palette.color(role if selected else QPalette.ColorRole.PlaceholderText)
        painter.setPen(muted)
        painter.drawText(
            rect.adjusted(0, fm.height() + 2, 0, 0),
            int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop),
            str(index.data(_DATE_ROLE) or ""),
        )
        painter.restore()


class ConversationList(QWidget):
    """Left panel.  `conversation_selected` is emitted whenever the current conversation
    changes (by the user or by `select()`); `conversation_created` after New has been saved;
    `conversation_renamed(id, title)` after a rename has been saved."""

    conversation_selected = Signal(str)  # conversation id
    conversation_created = Signal(str)
    conversation_deleted = Signal(str)
    conversation_renamed = Signal(str, str)  # id, new title
    store_failed = Signal(str)  # a message for people

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._store: ConversationStore | None = None
        self._default_model = ""
        self._pending_select: str | None = None
        self._current: str | None = None
        self._filling = False
        # Every read and write of the conversation store (the main window's loads and saves
        # too) runs on this one thread, so they finish in the order they were asked for: on
        # the shared pool a listing that began before a save could land after it.
        self.store_pool = QThreadPool(self)
        self.store_pool.setMaxThreadCount(1)
        self._build()

    # ---- layout ----------------------------------------------------------------------------

    def _build(self) -> None:
        title = QLabel("Conversations")
        font = title.font()
        font.setBold(True)
        title.setFont(font)
        self._new_button = QToolButton()
        self._new_button.setText("New")
        self._new_button.setToolTip("Start a new conversation (Ctrl+N)")
        self._new_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        icon = QIcon.fromTheme(QIcon.ThemeIcon.DocumentNew)
        if icon.isNull():
            icon = self.style().standardIcon(QStyle.StandardPixmap.SP_FileIcon)
        self._new_button.setIcon(icon)
        self._new_button.setAutoRaise(True)
        self._new_button.clicked.connect(self._on_new_button_clicked)
        header = QHBoxLayout()
        header.setContentsMargins(6, 4, 2, 4)
        header.addWidget(title)
        header.addStretch(1)
        header.addWidget(self._new_button)

        self._list = QListWidget()
        self._list.setItemDelegate(_ConversationDelegate(self._list))
        self._list.setUniformItemSizes(True)
        self._list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self._list.setEditTriggers(
            QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.DoubleClicked
        )
        self._list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self._list.customContextMenuRequested.connect(self._on_list_context_menu_requested)
        self._list.currentItemChanged.connect(self._on_list_current_item_changed)
        self._list.itemChanged.connect(self._on_list_item_changed)

        self._empty = QLabel("No conversations yet.\nClick New to start one.")
        self._empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._empty.setWordWrap(True)
        self._empty.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self._error = QLabel()
        self._error.setWordWrap(True)
        self._error.hide()

        self.new_action = QAction("New conversation", self)
        self.new_action.setShortcut(QKeySequence.StandardKey.New)
        self.new_action.triggered.connect(self.new_conversation)
        self.rename_action = QAction("Rename", self)
        self.rename_action.triggered.connect(self._on_rename_action_triggered)
        self.delete_action = QAction("Delete…", self)
        self.delete_action.setShortcut(QKeySequence.StandardKey.Delete)
        self.delete_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.delete_action.triggered.connect(self._on_delete_action_triggered)
        self.addAction(self.delete_action)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(header)
        layout.addWidget(self._list, 1)
        layout.addWidget(self._empty, 1)
        layout.addWidget(self._error)
        self._list.hide()
        self._update_actions()

    # ---- public API ------------------------------------------------------------------------

    def set_store(self, store: ConversationStore, *, default_model: str) -> None:
        """Use `store`; its conversations are listed once loaded in the background."""
        self._store = store
        self._default_model = default_model
        self.reload()

    def set_default_model(self, model: str) -> None:
        """The model new conversations start with."""
        self._default_model = model

    def reload(self) -> None:
        """Re-read the store (in the background), keeping the current conversation selected."""
        store = self._store
        if store is None:
            return

        def op() -> list[_Summary]:
            return [_Summary(c.id, c.title, c.updated_at) for c in store.list()]

        run_in_background(
            op, on_done=self._on_store_listed, on_error=self._on_store_failed, pool=self.store_pool
        )

    def select(self, conv_id: str) -> None:
        """Make `conv_id` current (now, or as soon as the list holds it)."""
        item = self._item(conv_id)
        if item is None:
            self._pending_select = conv_id
        else:
            self._list.setCurrentItem(item)

    def current_id(self) -> str | None:
        return self._current

    def new_conversation(self) -> None:
        """Save a new, empty conversation, then list and select it."""
        store, model = self._store, self._default_model
        if store is None:
            return

        def op() -> Conversation:
            return store.new(NEW_TITLE, model)

        run_in_background(
            op,
            on_done=self._on_conversation_saved,
            on_error=self._on_store_failed,
            pool=self.store_pool,
        )

    def rename(self, conv_id: str, title: str) -> None:
        """Save a new title for `conv_id` (blank titles are ignored)."""
        store, title = self._store, " ".join(title.split())
        if store is None or not title:
            return

        def op() -> tuple[str, str]:
            conv = store.load(conv_id)
            conv.title = title
            store.save(conv)
            return conv_id, title

        run_in_background(
            op,
            on_done=self._on_conversation_renamed,
            on_error=self._on_store_failed,
            pool=self.store_pool,
        )

    def delete(self, conv_id: str) -> None:
        """Delete `conv_id` without asking (the Delete action asks first)."""
        store = self._store
        if store is None:
            return

        def op() -> str:
            store.delete(conv_id)
            return conv_id

        run_in_background(
            op,
            on_done=self._on_conversation_deleted,
            on_error=self._on_store_failed,
            pool=self.store_pool,
        )

    def edit_title(self, conv_id: str | None = None) -> None:
        """Start editing a title in place (the current conversation's by default)."""
        item = self._item(conv_id) if conv_id else self._list.currentItem()
        if item is not None:
            self._list.editItem(item)

    # ---- store results ---------------------------------------------------------------------

    def _on_store_listed(self, result: object) -> None:
        assert isinstance(result, list)
        keep = self._pending_select or self._current
        self._pending_select = None
        self._filling = True
        self._list.clear()
        for summary in result:
            self._list.addItem(self._new_item(summary))
        self._filling = False
        self._show_error("")
        item = self._item(keep) if keep else None
        self._filling = True
        if item is not None:
            self._list.setCurrentItem(item)
        elif self._list.count():
            self._list.setCurrentRow(0)
        self._filling = False
        self._sync_current()

    def _on_conversation_saved(self, result: object) -> None:
        assert isinstance(result, Conversation)
        self._filling = True
        self._list.insertItem(
            0, self._new_item(_Summary(result.id, result.title, result.updated_at))
        )
        self._filling = False
        self._show_error("")
        self._update_actions()
        self.conversation_created.emit(result.id)
        self.select(result.id)

    def _on_conversation_renamed(self, result: object) -> None:
        assert isinstance(result, tuple)
        conv_id, title = str(result[0]), str(result[1])
        item = self._item(conv_id)
        if item is not None:
            self._filling = True
            item.setText(title)
            self._filling = False
        self.conversation_renamed.emit(conv_id, title)

    def _on_conversation_deleted(self, result: object) -> None:
        conv_id = str(result)
        item = self._item(conv_id)
        if item is not None:
            row = self._list.row(item)
            was_current = conv_id == self._current
            self._filling = True
            self._list.takeItem(row)
            if was_current and self._list.count():
                self._list.setCurrentRow(min(row, self._list.count() - 1))
            self._filling = False
        self.conversation_deleted.emit(conv_id)
        self._sync_current()

    def _on_store_failed(self, message: str) -> None:
        self._show_error(message)
        self.store_failed.emit(message)

    # ---- user actions ----------------------------------------------------------------------

    def _on_new_button_clicked(self) -> None:
        self.new_conversation()

    def _on_rename_action_triggered(self) -> None:
        self.edit_title()

    def _on_delete_action_triggered(self) -> None:
        item = self._list.currentItem()
        if item is None:
            return
        if self._confirm_delete(item.text()):
            self.delete(str(item.data(_ID_ROLE)))

    def _confirm_delete(self, title: str) -> bool:
        answer = QMessageBox.question(
            self,
            "Delete conversation",
            f"Delete “{title}”?\n\nIts questions and answers will be removed. "
            "Your documents are not affected.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Yes

    def _on_list_context_menu_requested(self, pos: QPoint) -> None:
        item = self._list.itemAt(pos)
        menu = QMenu(self)
        menu.addAction(self.new_action)
        if item is not None:
            self._list.setCurrentItem(item)
            menu.addSeparator()
            menu.addAction(self.rename_action)
            menu.addAction(self.delete_action)
        menu.exec(self._list.viewport().mapToGlobal(pos))

    def _on_list_current_item_changed(
        self, current: QListWidgetItem | None, _previous: QListWidgetItem | None
    ) -> None:
        if self._filling:
            return
        self._set_current(str(current.data(_ID_ROLE)) if current is not None else None)

    def _on_list_item_changed(self, item: QListWidgetItem) -> None:
        if self._filling:
            return
        conv_id, title = str(item.data(_ID_ROLE)), " ".join(item.text().split())
        if title:
            self.rename(conv_id, title)
        else:  # a blank title: put the old one back by reloading
            self.reload()

    # ---- helpers ---------------------------------------------------------------------------

    def _sync_current(self) -> None:
        item = self._list.currentItem()
        self._set_current(str(item.data(_ID_ROLE)) if item is not None else None)

    def _set_current(self, conv_id: str | None) -> None:
        self._update_actions()
        if conv_id == self._current:
            return
        self._current = conv_id
        if conv_id is not None:
            self.conversation_selected.emit(conv_id)

    def _new_item(self, summary: _Summary) -> QListWidgetItem:
        item = QListWidgetItem(summary.title or NEW_TITLE)
        item.setData(_ID_ROLE, summary.id)
        item.setData(_DATE_ROLE, when_label(summary.updated_at))
        item.setToolTip(
            time.strftime("Last updated %Y-%m-%d %H:%M", time.localtime(summary.updated_at))
        )
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
        return item

    def _item(self, conv_id: str | None) -> QListWidgetItem | None:
        for row in range(self._list.count()):
            item = self._list.item(row)
            if item.data(_ID_ROLE) == conv_id:
                return item
        return None

    def titles(self) -> list[str]:
        """The titles as listed, top to bottom (for tests and the window title)."""
        return [self._list.item(r).text() for r in range(self._list.count())]

    def _update_actions(self) -> None:
        has = self._list.currentItem() is not None
        self.rename_action.setEnabled(has)
        self.delete_action.setEnabled(has)
        empty = self._list.count() == 0
        self._list.setVisible(not empty)
        self._empty.setVisible(empty)

    def _show_error(self, message: str) -> None:
        self._error.setText(f"⚠ {message}" if message else "")
        self._error.setVisible(bool(message))
