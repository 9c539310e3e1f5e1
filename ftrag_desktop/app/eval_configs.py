"""The configuration rows of an evaluation run: model, documents on/off, top-k, own prompt.

`EvalConfigEditor` holds one to `MAX_CONFIGS` `EvalConfigRow`s and turns them into
`core.evaluate.EvalConfig`s.  The model pickers list the chat models with their details from the
models manager (`ModelManager.list_models`), fine-tuned variants marked with their base, so
"base + RAG, fine-tuned alone, fine-tuned + RAG" can be set up at a glance
(`suggested_configs`).
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ftrag_desktop.app.eval_new_set import model_label
from ftrag_desktop.core.evaluate import EvalConfig
from ftrag_desktop.core.llm import normalize_model_name
from ftrag_desktop.core.models import ModelRecord

__all__ = ["MAX_CONFIGS", "EvalConfigEditor", "EvalConfigRow", "suggested_configs"]

MAX_CONFIGS = 6
TOP_K_MAX = 50


def suggested_configs(
    records: Sequence[ModelRecord], chat_model: str, top_k: int
) -> list[EvalConfig]:
    """The comparison the workbench exists for: the base model with documents, and a
    fine-tuned variant alone and with documents; without a fine-tuned model, the base model
    with and without documents."""
    tuned = [r for r in records if r.fine_tuned and not r.is_embedding]
    base = normalize_model_name(chat_model) if chat_model else ""
    own = [r for r in tuned if r.base and normalize_model_name(r.base) == base]
    pick = (own or tuned)[0] if (own or tuned) else None
    if pick is None:
        return [EvalConfig(chat_model, rag=True, top_k=top_k), EvalConfig(chat_model, rag=False)]
    base_model = chat_model or pick.base
    return [
        EvalConfig(base_model, rag=True, top_k=top_k),
        EvalConfig(pick.name, rag=False),
        EvalConfig(pick.name, rag=True, top_k=top_k),
    ]


class EvalConfigRow(QWidget):
    """`#n  [model ▾]  [x] Use my documents  Sources [6]  Prompt [...]  Remove`."""

    remove_clicked = Signal(object)  # this row

    def __init__(self, config: EvalConfig, default_k: int, parent: QWidget | None = None):
        super().__init__(parent)
        self._default_k = default_k
        self.number = QLabel()
        self.number.setMinimumWidth(22)
        self.model = QComboBox()
        self.model.setMinimumContentsLength(42)
        self.model.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.model.setToolTip("The Ollama model that answers; fine-tuned variants say so")
        self.rag = QCheckBox("Use my documents")
        self.rag.setToolTip("Off: the model answers alone, without retrieval")
        self.top_k = QSpinBox()
        self.top_k.setRange(1, TOP_K_MAX)
        self.top_k.setToolTip("How many passages are retrieved and given to the model (top-k)")
        self._k_label = QLabel("Sources:")
        self.prompt = QLineEdit()
        self.prompt.setPlaceholderText("System prompt: the settings' one")
        self.prompt.setToolTip("A system prompt for this configuration only (optional)")
        self.remove = QToolButton()
        self.remove.setText("Remove")
        self.remove.setAutoRaise(True)
        self.remove.clicked.connect(lambda: self.remove_clicked.emit(self))
        self.rag.toggled.connect(self._on_rag_toggled)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)
        layout.addWidget(self.number)
        layout.addWidget(self.model)
        layout.addWidget(self.rag)
        layout.addWidget(self._k_label)
        layout.addWidget(self.top_k)
        layout.addWidget(self.prompt, 1)
        layout.addWidget(self.remove)
        self.set_config(config, [])

    def set_number(self, n: int) -> None:
        self.number.setText(f"#{n}")

    def set_models(self, records: Sequence[ModelRecord]) -> None:
        current = self.model_name()
        self.model.clear()
        for record in records:
            self.model.addItem(model_label(record), record.name)
        self._select(current, known=bool(records))

    def _select(self, name: str, *, known: bool) -> None:
        if not name:
            return
        wanted = normalize_model_name(name)
        for i in range(self.model.count()):
            if normalize_model_name(str(self.model.itemData(i))) == wanted:
                self.model.setCurrentIndex(i)
                return
        self.model.addItem(f"{name}  (not installed)" if known else name, name)
        self.model.setCurrentIndex(self.model.count() - 1)

    def model_name(self) -> str:
        data = self.model.currentData()
        return str(data) if data else ""

    def set_config(self, config: EvalConfig, records: Sequence[ModelRecord]) -> None:
        self.set_models(records)
        self._select(config.model, known=bool(records))
        self.rag.setChecked(config.rag)
        self.top_k.setValue(config.top_k or self._default_k)
        self.prompt.setText(config.system_prompt)
        self._on_rag_toggled(config.rag)

    def config(self) -> EvalConfig:
        rag = self.rag.isChecked()
        return EvalConfig(
            self.model_name(),
            rag=rag,
            top_k=self.top_k.value() if rag else 0,
            system_prompt=self.prompt.text().strip(),
        )

    def _on_rag_toggled(self, on: bool) -> None:
        self.top_k.setEnabled(on)
        self._k_label.setEnabled(on)


class EvalConfigEditor(QWidget):
    """The list of configuration rows, with "+ Add configuration"."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._rows: list[EvalConfigRow] = []
        self._records: list[ModelRecord] = []
        self._default_k = 6
        self._rows_layout = QVBoxLayout()
        self._rows_layout.setContentsMargins(0, 0, 0, 0)
        self._rows_layout.setSpacing(4)
        self.add_button = QToolButton()
        self.add_button.setText("+ Add configuration")
        self.add_button.setToolTip(f"Evaluate up to {MAX_CONFIGS} configurations in one run")
        self.add_button.clicked.connect(self._on_add_button_clicked)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(self._rows_layout)
        layout.addWidget(self.add_button, 0, Qt.AlignmentFlag.AlignLeft)

    def set_default_k(self, k: int) -> None:
        self._default_k = k

    def set_models(self, records: Sequence[ModelRecord]) -> None:
        self._records = [r for r in records if not r.is_embedding]
        for row in self._rows:
            row.set_models(self._records)

    def records(self) -> list[ModelRecord]:
        return list(self._records)

    def set_configs(self, configs: Sequence[EvalConfig]) -> None:
        for row in self._rows:
            self._rows_layout.removeWidget(row)
            row.deleteLater()
        self._rows = []
        for config in list(configs)[:MAX_CONFIGS]:
            self._add_row(config)
        self._renumber()

    def configs(self) -> list[EvalConfig]:
        return [row.config() for row in self._rows]

    def rows(self) -> list[EvalConfigRow]:
        return list(self._rows)

    def _add_row(self, config: EvalConfig) -> EvalConfigRow:
        row = EvalConfigRow(config, self._default_k)
        row.set_config(config, self._records)
        row.remove_clicked.connect(self._on_row_remove_clicked)
        self._rows_layout.addWidget(row)
        self._rows.append(row)
        return row

    def _renumber(self) -> None:
        for n, row in enumerate(self._rows, 1):
            row.set_number(n)
            row.remove.setEnabled(len(self._rows) > 1)
        self.add_button.setEnabled(len(self._rows) < MAX_CONFIGS)
        self.changed.emit()

    def _on_add_button_clicked(self) -> None:
        if len(self._rows) >= MAX_CONFIGS:
            return
        last = self._rows[-1].config() if self._rows else EvalConfig("", top_k=self._default_k)
        self._add_row(last)
        self._renumber()

    def _on_row_remove_clicked(self, row: object) -> None:
        if not isinstance(row, EvalConfigRow) or len(self._rows) <= 1:
            return
        self._rows.remove(row)
        self._rows_layout.removeWidget(row)
        row.deleteLater()
        self._renumber()
