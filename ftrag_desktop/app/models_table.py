"""The installed-models table: one row per Ollama model, sortable, with a fine-tuned badge.

`ModelTableModel` holds plain `ModelRecord`s (filled by the dialog from a worker); each column
sorts by its true value (bytes, parameter count, tokens, timestamp), not by the text shown.
`describe(record)` lists a model's details and lineage for the tooltip and the details pane.
`BadgeDelegate` draws the "Fine-tuned" column as a coloured pill followed by the base.
"""

from __future__ import annotations

import html
import json
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    QSize,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QColor, QFont, QGuiApplication, QPainter, QPalette
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from ftrag_desktop.app.colors import mix
from ftrag_desktop.app.models_ops import (
    compact_tokens,
    local_time,
    parameter_count,
    size_text,
)
from ftrag_desktop.app.models_steps import template_words
from ftrag_desktop.core.lineage_text import merge_rows, training_rows
from ftrag_desktop.core.llm import normalize_model_name
from ftrag_desktop.core.models import ModelRecord

__all__ = [
    "COLUMNS",
    "RECORD_ROLE",
    "SORT_ROLE",
    "BadgeDelegate",
    "ModelTableModel",
    "badge",
    "delete_question",
    "describe",
    "details_html",
    "make_proxy",
]

COLUMNS = (
    "Name",
    "Family",
    "Parameters",
    "Quantization",
    "Context",
    "Size",
    "Modified",
    "Fine-tuned",
)
NAME, FAMILY, PARAMS, QUANT, CONTEXT, SIZE, MODIFIED, TUNED = range(len(COLUMNS))
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
RECORD_ROLE = Qt.ItemDataRole.UserRole + 2
HEADER_TIPS = {
    CONTEXT: "The context length the model was trained on; 'uses' is the num_ctx it is set "
    "to run with",
    SIZE: "Size on disk",
    TUNED: "Fine-tuned variants and the base they come from (hover for the lineage)",
}
BADGE_COLOURS = {"fine-tuned": "#7a3fd1", "LoRA": "#c0542b", "variant": "#6b7280"}


def badge(record: ModelRecord) -> tuple[str, str]:
    """(badge word, base) for the Fine-tuned column; ("", "") for an original model."""
    if record.adapter:
        return "LoRA", record.base or "unknown base"
    if record.fine_tuned:
        return "fine-tuned", record.base or "unknown base"
    if record.base:
        return "variant", record.base
    return "", ""


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k} {json.dumps(v, ensure_ascii=False)}" for k, v in params.items())


def describe(record: ModelRecord) -> list[tuple[str, str]]:
    """(label, value) rows: what the model is and, for a fine-tune, where it came from."""
    rows = [("Model", record.name)]
    kind = "embedding model" if record.is_embedding else "chat model"
    what = " · ".join(x for x in (record.family, record.parameter_size, record.quantization) if x)
    rows.append(("Kind", f"{what} ({kind})" if what else kind))
    context = f"{record.context_length:,} tokens" if record.context_length else "not reported"
    if record.num_ctx:
        context += f"; runs with num_ctx {record.num_ctx:,}"
    rows.append(("Context", context))
    rows.append(("Size", f"{size_text(record.size)} ({record.size:,} bytes)"))
    rows.append(("Modified", local_time(record.modified_at)))
    word, base = badge(record)
    if word == "LoRA":
        rows.append(("Fine-tuned", f"LoRA adapter applied on {base}"))
    elif word == "fine-tuned":
        rows.append(("Fine-tuned", f"from {base}"))
    elif word == "variant":
        rows.append(("Variant of", f"{base} (same weights, other prompt or parameters)"))
    lineage = record.lineage
    if lineage is not None:
        if lineage.training:  # ftrag trained it: base, data, hyperparameters, final losses
            rows += training_rows(lineage.training)
        if lineage.merged_from:  # ftrag merged an outside adapter into its base GGUF
            rows += merge_rows(lineage.merged_from)
        rows.append(("Imported from", f"{lineage.source} ({size_text(lineage.source_bytes)})"))
        rows.append(("sha256", lineage.source_sha256))
        how = "LoRA adapter" if lineage.kind == "adapter" else "GGUF model"
        rows.append(("Import", f"{how}, {lineage.architecture}"))
        rows.append(("Chat template", template_words(lineage.template)))
        if lineage.reported_base and lineage.reported_base != lineage.base:
            rows.append(("File names its base", lineage.reported_base))
        if lineage.parameters:
            rows.append(("Parameters", _params_text(lineage.parameters)))
        if lineage.system:
            rows.append(("System prompt", lineage.system))
        version = f" with Ollama {lineage.ollama_version}" if lineage.ollama_version else ""
        rows.append(("Created", f"{local_time(lineage.created_at)}{version}"))
    else:
        if record.parameters:
            flat = {k: v[0] if len(v) == 1 else v for k, v in record.parameters.items()}
            rows.append(("Parameters", _params_text(flat)))
        if record.fine_tuned:
            source = "its modelfile" if record.adapter else "the GGUF's own metadata"
            rows.append(("Lineage", f"from {source} (not imported by ftrag)"))
    return rows


def details_html(record: ModelRecord | None) -> str:
    """The details pane: every row of `describe`, or what to do when nothing is selected."""
    if record is None:
        return (
            "<p style='color:gray'>Select a model to see its details. Fine-tuned models show "
            "where they came from.</p>"
        )
    rows = "".join(
        f"<tr><td style='padding-right:10px'><b>{html.escape(k)}</b></td>"
        f"<td>{html.escape(v)}</td></tr>"
        for k, v in describe(record)
    )
    return f"<table>{rows}</table>"


def delete_question(record: ModelRecord, chat_model: str) -> str:
    """The confirmation before a delete: which model, what it frees, what else it affects."""
    text = (
        f"Delete {record.name} from Ollama?\n\nThis frees {size_text(record.size)} on the "
        "machine Ollama runs on. It cannot be undone: to use the model again, pull or import "
        "it again."
    )
    if record.imported:
        text += "\n\nftrag's record of where this fine-tune came from is deleted too."
    if chat_model and normalize_model_name(chat_model) == normalize_model_name(record.name):
        text += (
            f"\n\nThe chat uses {record.name} now: choose another model before asking the "
            "next question."
        )
    return text


def _tooltip(rows: list[tuple[str, str]]) -> str:
    cells = "".join(
        f"<tr><td><b>{html.escape(k)}</b>&nbsp;</td><td>{html.escape(v)}</td></tr>" for k, v in rows
    )
    return f"<table>{cells}</table>"


class ModelTableModel(QAbstractTableModel):
    """The installed models as rows; `set_records` replaces them all."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._records: list[ModelRecord] = []
        self._current = ""

    def set_records(self, records: list[ModelRecord]) -> None:
        self.beginResetModel()
        self._records = list(records)
        self.endResetModel()

    def records(self) -> list[ModelRecord]:
        return list(self._records)

    def set_current(self, name: str) -> None:
        """Show `name` (the chat's model) in bold."""
        self._current = normalize_model_name(name) if name else ""
        if self._records:
            self.dataChanged.emit(self.index(0, NAME), self.index(len(self._records) - 1, NAME))

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._records)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(COLUMNS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if role == Qt.ItemDataRole.ToolTipRole:
            return HEADER_TIPS.get(section)
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = 0) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._records):
            return None
        r, col = self._records[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(r, col)
        if role == SORT_ROLE:
            return self._sort_key(r, col)
        if role == RECORD_ROLE:
            return r
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tip(r, col)
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (PARAMS, CONTEXT, SIZE):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.FontRole and col == NAME and self._is_current(r):
            font = QFont(QGuiApplication.font())
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.ForegroundRole and col == FAMILY and r.is_embedding:
            return QGuiApplication.palette().color(QPalette.ColorRole.PlaceholderText)
        return None

    def _is_current(self, r: ModelRecord) -> bool:
        return bool(self._current) and normalize_model_name(r.name) == self._current

    def _display(self, r: ModelRecord, col: int) -> str:
        if col == NAME:
            return f"{r.name}  ✓ in chat" if self._is_current(r) else r.name
        if col == FAMILY:
            return f"{r.family} · embeddings" if r.is_embedding else r.family
        if col == PARAMS:
            return r.parameter_size
        if col == QUANT:
            return r.quantization
        if col == CONTEXT:
            text = compact_tokens(r.context_length)
            return f"{text} (uses {compact_tokens(r.num_ctx)})" if r.num_ctx else text
        if col == SIZE:
            return size_text(r.size)
        if col == MODIFIED:
            return local_time(r.modified_at)
        word, base = badge(r)
        return f"{word} · {base}" if word else ""

    def _sort_key(self, r: ModelRecord, col: int) -> Any:
        keys: dict[int, Any] = {
            NAME: r.name.lower(),
            FAMILY: r.family.lower(),
            PARAMS: parameter_count(r.parameter_size),
            QUANT: r.quantization.lower(),
            CONTEXT: r.context_length or 0,
            SIZE: r.size,
            MODIFIED: r.modified_at,
        }
        if col in keys:
            return keys[col]
        word, base = badge(r)
        rank = {"fine-tuned": 0, "LoRA": 0, "variant": 1}.get(word, 2)
        return f"{rank} {base.lower()} {r.name.lower()}"

    def _tip(self, r: ModelRecord, col: int) -> str | None:
        if col in (NAME, TUNED):
            return _tooltip(describe(r))
        if col == CONTEXT and r.context_length:
            tip = f"Trained context: {r.context_length:,} tokens"
            return tip + (f"\nSet to run with num_ctx {r.num_ctx:,}" if r.num_ctx else "")
        if col == SIZE:
            return f"{r.size:,} bytes on disk"
        if col == MODIFIED:
            return r.modified_at
        return None


def make_proxy(source: ModelTableModel) -> QSortFilterProxyModel:
    """Sorts by the true values and filters on the name (case-insensitive)."""
    proxy = QSortFilterProxyModel(source)
    proxy.setSourceModel(source)
    proxy.setSortRole(SORT_ROLE)
    proxy.setFilterKeyColumn(NAME)
    proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
    return proxy


class BadgeDelegate(QStyledItemDelegate):
    """The Fine-tuned column: a small coloured pill ("fine-tuned", "LoRA", "variant"), then
    the base model's name."""

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        record = index.data(RECORD_ROLE)
        word, base = badge(record) if isinstance(record, ModelRecord) else ("", "")
        if not word:
            super().paint(painter, option, index)
            return
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        style = opt.widget.style() if opt.widget is not None else None
        if style is not None:
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)
        painter.save()
        small = QFont(opt.font)
        small.setPointSizeF(max(opt.font.pointSizeF() * 0.85, 7.0))
        small.setBold(True)
        painter.setFont(small)
        metrics = painter.fontMetrics()
        rect = opt.rect.adjusted(4, 0, -4, 0)
        pill_h = metrics.height() + 2
        pill = QRect(
            rect.left(),
            rect.top() + (rect.height() - pill_h) // 2,
            metrics.horizontalAdvance(word) + 12,
            pill_h,
        )
        colour = QColor(BADGE_COLOURS[word])
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(mix(colour, opt.palette.color(QPalette.ColorRole.Base), 0.82))
        painter.drawRoundedRect(pill, pill_h / 2, pill_h / 2)
        painter.setPen(colour)
        painter.drawText(pill, Qt.AlignmentFlag.AlignCenter, word)
        painter.setFont(opt.font)
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        painter.setPen(opt.palette.color(role))
        text_rect = rect.adjusted(pill.width() + 6, 0, 0, 0)
        shown = painter.fontMetrics().elidedText(
            base, Qt.TextElideMode.ElideRight, text_rect.width()
        )
        painter.drawText(text_rect, int(Qt.AlignmentFlag.AlignVCenter), shown)
        painter.restore()

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        hint = super().sizeHint(option, index)
        return QSize(hint.width() + 24, hint.height())
