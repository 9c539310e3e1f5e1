"""The import form: what to import, its name, its base, its system prompt and parameters.

(a) a GGUF model file or (b) a LoRA adapter (a safetensors folder or a GGUF LoRA) on an installed
base.  The name is suggested from the file name until the user types one.  `request()` turns
the fields into an `ImportRequest`; `changed` fires whenever a field that validation looks at
changes, so the panel can check again.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ftrag_desktop.app.models_ops import suggest_model_name
from ftrag_desktop.core.model_import import ImportRequest
from ftrag_desktop.core.models import ModelRecord

__all__ = ["MAX_NUM_CTX", "ImportForm"]

MAX_NUM_CTX = 1 << 20
NO_TEMPERATURE = -0.1  # the spin box's minimum, shown as "Default"


class ImportForm(QWidget):
    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._auto_name = ""
        self.gguf_radio = QRadioButton("GGUF model file — a full or merged fine-tune")
        self.adapter_radio = QRadioButton(
            "LoRA adapter — a safetensors folder or a GGUF LoRA, applied on a base model"
        )
        self.gguf_radio.setChecked(True)
        kinds = QButtonGroup(self)
        kinds.addButton(self.gguf_radio)
        kinds.addButton(self.adapter_radio)
        kinds.buttonToggled.connect(self._on_kind_toggled)
        kind_box = QVBoxLayout()
        kind_box.setSpacing(2)
        kind_box.addWidget(self.gguf_radio)
        kind_box.addWidget(self.adapter_radio)

        self.source_edit = QLineEdit()
        self.source_edit.setPlaceholderText("The .gguf file, or the adapter's folder")
        self.source_edit.textChanged.connect(self._on_source_changed)
        self.file_button = QPushButton("Choose file…")
        self.file_button.clicked.connect(self._on_file_clicked)
        self.folder_button = QPushButton("Choose folder…")
        self.folder_button.setToolTip("A PEFT adapter folder (adapter_model.safetensors)")
        self.folder_button.clicked.connect(self._on_folder_clicked)
        source_row = QHBoxLayout()
        source_row.addWidget(self.source_edit, 1)
        source_row.addWidget(self.file_button)
        source_row.addWidget(self.folder_button)

        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("e.g. my-tune or my-tune:v2")
        self.name_edit.textEdited.connect(self.changed)
        self.replace_check = QCheckBox("Replace a model of this name")
        self.replace_check.toggled.connect(self.changed)
        name_row = QHBoxLayout()
        name_row.addWidget(self.name_edit, 1)
        name_row.addWidget(self.replace_check)

        self.base_combo = QComboBox()
        self.base_combo.setMinimumContentsLength(24)
        self.base_combo.currentIndexChanged.connect(self.changed)
        self.base_hint = QLabel()
        self.base_hint.setWordWrap(True)
        self.base_hint.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        base_row = QHBoxLayout()
        base_row.addWidget(self.base_combo)
        base_row.addWidget(self.base_hint, 1)

        self.system_edit = QPlainTextEdit()
        self.system_edit.setPlaceholderText("Optional: the model's instructions")
        self.system_edit.setTabChangesFocus(True)
        self.system_edit.setFixedHeight(self.fontMetrics().lineSpacing() * 2 + 14)
        self.system_edit.textChanged.connect(self.changed)

        self.num_ctx = QSpinBox()
        self.num_ctx.setRange(0, MAX_NUM_CTX)
        self.num_ctx.setSingleStep(1024)
        self.num_ctx.setSpecialValueText("Default")
        self.num_ctx.setToolTip("The context length the model runs with (Default: Ollama's)")
        self.num_ctx.valueChanged.connect(self.changed)
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(NO_TEMPERATURE, 2.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setDecimals(2)
        self.temperature.setSpecialValueText("Default")
        self.temperature.setValue(NO_TEMPERATURE)
        self.temperature.valueChanged.connect(self.changed)
        self.stop_edit = QLineEdit()
        self.stop_edit.setPlaceholderText("Default: the chat template's own")
        self.stop_edit.setToolTip("Stop tokens, separated by commas, e.g. <|im_end|>, ###")
        self.stop_edit.textEdited.connect(self.changed)
        params = QHBoxLayout()
        for label, field, stretch in (
            ("num_ctx", self.num_ctx, 0),
            ("temperature", self.temperature, 0),
            ("stop tokens", self.stop_edit, 1),
        ):
            params.addWidget(QLabel(label))
            params.addWidget(field, stretch)
            params.addSpacing(8)

        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Import", kind_box)
        form.addRow("File", source_row)
        form.addRow("Name", name_row)
        form.addRow("Base model", base_row)
        form.addRow("System prompt", self.system_edit)
        form.addRow("Parameters", params)
        self.set_models([])
        self._on_kind_toggled()

    def set_models(self, records: list[ModelRecord]) -> None:
        """The installed models a base can be chosen from (chat models only)."""
        # Never read currentData() of an empty combo: PySide6 6.12 then drops a ref to None.
        current = str(self.base_combo.currentData()) if self.base_combo.count() else ""
        self.base_combo.blockSignals(True)
        self.base_combo.clear()
        self.base_combo.addItem("Choose the base…" if self.is_adapter() else "None", "")
        for r in records:
            if not r.is_embedding:
                self.base_combo.addItem(r.name, r.name)
        self.base_combo.setCurrentIndex(max(self.base_combo.findData(current), 0))
        self.base_combo.blockSignals(False)

    def is_adapter(self) -> bool:
        return self.adapter_radio.isChecked()

    def request(self) -> ImportRequest | None:
        """What the form asks for; None until a file and a name are given."""
        source, name = self.source_edit.text().strip(), self.name_edit.text().strip()
        if not source or not name:
            return None
        temperature = self.temperature.value()
        stops = tuple(s.strip() for s in self.stop_edit.text().split(",") if s.strip())
        return ImportRequest(
            source=Path(source).expanduser(),
            name=name,
            base=str(self.base_combo.currentData() or ""),
            system=self.system_edit.toPlainText().strip(),
            num_ctx=self.num_ctx.value() or None,
            temperature=None if temperature <= NO_TEMPERATURE else round(temperature, 2),
            stop=stops,
            replace=self.replace_check.isChecked(),
            kind="adapter" if self.is_adapter() else "gguf",
        )

    def _on_kind_toggled(self, *_: object) -> None:
        adapter = self.is_adapter()
        self.folder_button.setVisible(adapter)
        self.base_combo.setItemText(0, "Choose the base…" if adapter else "None")
        self.base_hint.setText(
            "Required: the installed model the adapter was trained on."
            if adapter
            else "Optional: the model it was fine-tuned from (shown as its base; its chat "
            "template is used when the file has none)."
        )
        self.changed.emit()

    def _on_source_changed(self, text: str) -> None:
        stem = Path(text.strip()).name
        if stem.lower().endswith(".gguf"):
            stem = stem[:-5]
        if stem and self.name_edit.text() in ("", self._auto_name):
            self._auto_name = suggest_model_name(stem)
            self.name_edit.setText(self._auto_name)
        self.changed.emit()

    def _on_file_clicked(self) -> None:
        title = "Choose the adapter's GGUF" if self.is_adapter() else "Choose a GGUF model file"
        path, _ = QFileDialog.getOpenFileName(
            self, title, self._start_dir(), "GGUF files (*.gguf);;All files (*)"
        )
        if path:
            self.source_edit.setText(path)

    def _on_folder_clicked(self) -> None:
        path = QFileDialog.getExistingDirectory(
            self, "Choose the adapter folder (adapter_model.safetensors)", self._start_dir()
        )
        if path:
            self.source_edit.setText(path)

    def _start_dir(self) -> str:
        text = self.source_edit.text().strip()
        return str(Path(text).parent) if text else str(Path.home())
