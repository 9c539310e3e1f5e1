"""The import form: what to import, its name, its base, its system prompt and parameters.

(a) a GGUF model file or (b) a LoRA adapter (a safetensors folder or a GGUF LoRA), either applied
on an installed base by Ollama or merged into a base GGUF file first and imported as a whole
model (what works with Ollama 0.34.1 and later, which refuse adapter models).  The name is
suggested from the file name until the user types one; the base GGUF file is filled in by the
panel (`set_base_file(auto=True)`) from the installed base's blob until the user picks one.
`current()` turns the fields into an `ImportRequest` or a `MergeImportRequest`; `changed` fires
whenever a field that validation looks at changes, so the panel can check again.
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
from ftrag_desktop.core.gguf_merge import OUT_TYPES
from ftrag_desktop.core.merge_import import DEFAULT_OUT_TYPE, MergeImportRequest
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
        self._auto_base_file = ""  # what the panel filled in; replaced when the base changes
        self.gguf_radio = QRadioButton("GGUF model file — a full or merged fine-tune")
        self.adapter_radio = QRadioButton(
            "LoRA adapter — a safetensors folder or a GGUF LoRA, trained on a base model"
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

        self.apply_radio = QRadioButton(
            "Apply it on an installed base model (Ollama 0.34.1 and later refuse this)"
        )
        self.merge_radio = QRadioButton("Merge into a base GGUF file, then import")
        self.merge_radio.setToolTip(
            "Writes a new GGUF (the base with the adapter merged into its weights) under the "
            "app's data folder and imports that: works with every Ollama version"
        )
        self.apply_radio.setChecked(True)
        modes = QButtonGroup(self)
        modes.addButton(self.apply_radio)
        modes.addButton(self.merge_radio)
        modes.buttonToggled.connect(self._on_kind_toggled)
        mode_box = QWidget()  # a widget, so that QFormLayout.setRowVisible hides it
        mode_layout = QVBoxLayout(mode_box)
        mode_layout.setContentsMargins(0, 0, 0, 0)
        mode_layout.setSpacing(2)
        mode_layout.addWidget(self.apply_radio)
        mode_layout.addWidget(self.merge_radio)

        self.base_file_edit = QLineEdit()
        self.base_file_edit.setPlaceholderText("The base model's .gguf file")
        self.base_file_edit.textChanged.connect(self.changed)
        self.base_file_button = QPushButton("Choose file…")
        self.base_file_button.clicked.connect(self._on_base_file_clicked)
        self.out_type_combo = QComboBox()
        for out_type in OUT_TYPES:
            self.out_type_combo.addItem(out_type, out_type)
        self.out_type_combo.setCurrentIndex(self.out_type_combo.findData(DEFAULT_OUT_TYPE))
        self.out_type_combo.setToolTip(
            "The type the merged weights are written as (Q8_0 is nearly lossless and half of "
            "F16); the base's other weights keep their own"
        )
        self.out_type_combo.currentIndexChanged.connect(self.changed)
        self.base_file_hint = QLabel()
        self.base_file_hint.setWordWrap(True)
        self.base_file_hint.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        base_file_row = QHBoxLayout()
        base_file_row.addWidget(self.base_file_edit, 1)
        base_file_row.addWidget(self.base_file_button)
        base_file_row.addWidget(QLabel("merged as"))
        base_file_row.addWidget(self.out_type_combo)
        base_file_box = QWidget()
        base_file_layout = QVBoxLayout(base_file_box)
        base_file_layout.setContentsMargins(0, 0, 0, 0)
        base_file_layout.setSpacing(2)
        base_file_layout.addLayout(base_file_row)
        base_file_layout.addWidget(self.base_file_hint)

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
        self._layout = form
        form.setContentsMargins(0, 0, 0, 0)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Import", kind_box)
        form.addRow("File", source_row)
        form.addRow("Adapter", mode_box)
        form.addRow("Name", name_row)
        form.addRow("Base model", base_row)
        form.addRow("Base GGUF", base_file_box)
        form.addRow("System prompt", self.system_edit)
        form.addRow("Parameters", params)
        self.set_models([])
        self.set_base_file_hint("")
        self._on_kind_toggled()

    def set_models(self, records: list[ModelRecord]) -> None:
        """The installed models a base can be chosen from (chat models only)."""
        # Never read currentData() of an empty combo: PySide6 6.12 then drops a ref to None.
        current = str(self.base_combo.currentData()) if self.base_combo.count() else ""
        self.base_combo.blockSignals(True)
        self.base_combo.clear()
        self.base_combo.addItem(self._no_base_text(), "")
        for r in records:
            if not r.is_embedding:
                self.base_combo.addItem(r.name, r.name)
        self.base_combo.setCurrentIndex(max(self.base_combo.findData(current), 0))
        self.base_combo.blockSignals(False)

    def is_adapter(self) -> bool:
        return self.adapter_radio.isChecked()

    def is_merge(self) -> bool:
        """An adapter to merge into a base GGUF file, then import as a whole model."""
        return self.is_adapter() and self.merge_radio.isChecked()

    def set_merge(self, merge: bool) -> None:
        """Switch to (or from) merging; the other fields keep what they hold."""
        if merge:
            self.adapter_radio.setChecked(True)
        (self.merge_radio if merge else self.apply_radio).setChecked(True)

    def base_name(self) -> str:
        """The installed base model chosen ("" none)."""
        return str(self.base_combo.currentData() or "") if self.base_combo.count() else ""

    def base_file(self) -> str:
        return self.base_file_edit.text().strip()

    def base_file_is_auto(self) -> bool:
        """True while the base GGUF field is empty or holds what the panel filled in."""
        return self.base_file() in ("", self._auto_base_file)

    def set_base_file(self, path: str, *, auto: bool = False) -> None:
        """Fill in the base GGUF; `auto` when it was found from the installed base model."""
        if auto:
            self._auto_base_file = path
        self.base_file_edit.setText(path)

    def set_base_file_hint(self, text: str) -> None:
        self.base_file_hint.setText(text)
        self.base_file_hint.setVisible(bool(text))

    def current(self) -> ImportRequest | MergeImportRequest | None:
        """What the form asks for; None until everything needed is given."""
        request = self.request()
        if request is None or not self.is_merge():
            return request
        if not self.base_file():
            return None
        return MergeImportRequest(
            base_gguf=Path(self.base_file()).expanduser(),
            request=request,
            out_type=str(self.out_type_combo.currentData() or DEFAULT_OUT_TYPE),
        )

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

    def _no_base_text(self) -> str:
        return "Choose the base…" if self.is_adapter() and not self.is_merge() else "None"

    def _on_kind_toggled(self, *_: object) -> None:
        adapter, merge = self.is_adapter(), self.is_merge()
        self.folder_button.setVisible(adapter)
        self._layout.setRowVisible(2, adapter)  # how to import the adapter
        self._layout.setRowVisible(5, merge)  # the base GGUF file
        if self.base_combo.count():
            self.base_combo.setItemText(0, self._no_base_text())
        if merge:
            self.base_hint.setText(
                "Optional: the installed model the adapter was trained on (shown as its base); "
                "its GGUF file is filled in below when Ollama's store can be read here."
            )
        elif adapter:
            self.base_hint.setText("Required: the installed model the adapter was trained on.")
        else:
            self.base_hint.setText(
                "Optional: the model it was fine-tuned from (shown as its base; its chat "
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

    def _on_base_file_clicked(self) -> None:
        start = str(Path(self.base_file()).parent) if self.base_file() else self._start_dir()
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Choose the base model's GGUF (the model the adapter was trained on)",
            start,
            "GGUF files (*.gguf);;All files (*)",
        )
        if path:
            self.set_base_file(path)

    def _on_folder_clicked(self) -> None:
        path = QFileDialog.getExistingDirectory(
            self, "Choose the adapter folder (adapter_model.safetensors)", self._start_dir()
        )
        if path:
            self.source_edit.setText(path)

    def _start_dir(self) -> str:
        text = self.source_edit.text().strip()
        return str(Path(text).parent) if text else str(Path.home())
