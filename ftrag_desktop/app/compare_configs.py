"""The compare window's configuration rows: model, documents on/off, top-k; add and remove.

`ConfigEditor` holds one to `MAX_CONFIGS` `ConfigRow`s and turns them into `CompareConfig`s.
Model pickers list the chat models Ollama reported (`AppController.models_loaded`); a model that
is not installed stays selectable, marked as such, so a past comparison can be shown as it was.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ftrag_desktop.core.compare_record import MAX_CONFIGS, CompareConfig
from ftrag_desktop.core.llm import ModelInfo, normalize_model_name

__all__ = ["TOP_K_MAX", "ConfigEditor", "ConfigRow", "default_configs"]

TOP_K_MAX = 50


def default_configs(model: str, top_k: int) -> list[CompareConfig]:
    """The usual first question: does the model do better with the documents than without?"""
    return [CompareConfig(model, rag=True, top_k=top_k), CompareConfig(model, rag=False)]


def _label(info: ModelInfo) -> str:
    details = " · ".join(x for x in (info.parameter_size, info.quantization) if x)
    return f"{info.name}  ({details})" if details else info.name


class ConfigRow(QWidget):
    """One configuration: `#n  [model ▾]  [x] Use my documents  Sources [6]  Remove`."""

    remove_clicked = Signal(object)  # this row

    def __init__(self, config: CompareConfig, default_k: int, parent: QWidget | None = None):
        super().__init__(parent)
        self._default_k = default_k
        self.number = QLabel()
        self.number.setMinimumWidth(22)
        self.model = QComboBox()
        self.model.setMinimumContentsLength(34)
        self.model.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.model.setToolTip("The Ollama model that answers")
        self.rag = QCheckBox("Use my documents")
        self.rag.setToolTip("Off: the model answers alone, without retrieval")
        self.top_k = QSpinBox()
        self.top_k.setRange(1, TOP_K_MAX)
        self.top_k.setToolTip("How many passages are retrieved and given to the model (top-k)")
        self._k_label = QLabel("Sources:")
        self.remove = QToolButton()
        self.remove.setText("Remove")
        self.remove.setToolTip("Remove this configuration")
        self.remove.setAutoRaise(True)
        self.remove.clicked.connect(lambda: self.remove_clicked.emit(self))
        self.rag.toggled.connect(self._on_rag_toggled)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(10)
        layout.addWidget(self.number)
        layout.addWidget(self.model)
        layout.addSpacing(6)
        layout.addWidget(self.rag)
        layout.addWidget(self._k_label)
        layout.addWidget(self.top_k)
        layout.addSpacing(6)
        layout.addWidget(self.remove)
        layout.addStretch(1)
        self.set_models([])
        self.set_config(config)

    def set_number(self, n: int) -> None:
        self.number.setText(f"#{n}")

    def set_models(self, models: Sequence[ModelInfo]) -> None:
        """Offer `models`, keeping the current choice (added as "not installed" if absent)."""
        current = self.model_name()
        self.model.clear()
        for info in models:
            self.model.addItem(_label(info), info.name)
        self._select(current, known=bool(models))

    def _select(self, name: str, *, known: bool) -> None:
        if not name:
            return
        wanted = normalize_model_name(name)
        for i in range(self.model.count()):
            if normalize_model_name(str(self.model.itemData(i))) == wanted:
                self.model.setCurrentIndex(i)
                return
        # Only say "not installed" once Ollama's list is known (it may just be down).
        self.model.addItem(f"{name}  (not installed)" if known else name, name)
        self.model.setCurrentIndex(self.model.count() - 1)

    def model_name(self) -> str:
        data = self.model.currentData()
        return str(data) if data else ""

    def set_config(self, config: CompareConfig) -> None:
        self._select(config.model, known=self.model.count() > 0)
        self.rag.setChecked(config.rag)
        self.top_k.setValue(config.top_k or self._default_k)
        self._on_rag_toggled(config.rag)

    def config(self) -> CompareConfig:
        rag = self.rag.isChecked()
        return CompareConfig(self.model_name(), rag=rag, top_k=self.top_k.value() if rag else 0)

    def _on_rag_toggled(self, on: bool) -> None:
        self.top_k.setEnabled(on)
        self._k_label.setEnabled(on)


class ConfigEditor(QWidget):
    """The list of configuration rows, with "Add configuration"."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._rows: list[ConfigRow] = []
        self._models: list[ModelInfo] = []
        self._default_k = 6
        self._rows_layout = QVBoxLayout()
        self._rows_layout.setContentsMargins(0, 0, 0, 0)
        self._rows_layout.setSpacing(4)
        self.add_button = QToolButton()
        self.add_button.setText("+ Add configuration")
        self.add_button.setToolTip(f"Compare up to {MAX_CONFIGS} configurations")
        self.add_button.clicked.connect(self._on_add_button_clicked)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(self._rows_layout)
        layout.addWidget(self.add_button, 0, Qt.AlignmentFlag.AlignLeft)

    def set_default_k(self, k: int) -> None:
        self._default_k = k

    def set_models(self, models: Sequence[ModelInfo]) -> None:
        self._models = [m for m in models if not m.is_embedding]
        for row in self._rows:
            row.set_models(self._models)

    def set_configs(self, configs: Sequence[CompareConfig]) -> None:
        for row in self._rows:
            self._rows_layout.removeWidget(row)
            row.deleteLater()
        self._rows = []
        for config in list(configs)[:MAX_CONFIGS]:
            self._add_row(config)
        self._renumber()

    def configs(self) -> list[CompareConfig]:
        return [row.config() for row in self._rows]

    def rows(self) -> list[ConfigRow]:
        return list(self._rows)

    def _add_row(self, config: CompareConfig) -> ConfigRow:
        row = ConfigRow(config, self._default_k)
        row.set_models(self._models)
        row.set_config(config)
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
        # A new row starts like the last one, the usual next step being to change one thing.
        last = self._rows[-1].config() if self._rows else CompareConfig("", top_k=self._default_k)
        self._add_row(last)
        self._renumber()

    def _on_row_remove_clicked(self, row: object) -> None:
        if not isinstance(row, ConfigRow) or len(self._rows) <= 1:
            return
        self._rows.remove(row)
        self._rows_layout.removeWidget(row)
        row.deleteLater()
        self._renumber()
