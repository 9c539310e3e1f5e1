"""The Train tab's form: base model, training data, the new model's name, and the settings.

- **Base model**: the chat models of the local Ollama (from the controller's model list), and
  "GGUF file…" to pick a file; a picked file stays in the list.
- **Training data**: the recent exports of the Evaluate tab's "Export fine-tune data…" (under
  the data home, newest first), and "Browse…" for an export's ``train.jsonl`` elsewhere.
- **New model name**, checked as the CLI checks it (valid for Ollama, not taken unless
  "Replace" is ticked under Advanced).
- The everyday settings (rank, alpha, learning rate, epochs, max length) and a collapsible
  **Advanced** panel with the rest of `ftrag train`'s options.

`job()` returns the `TrainJob` the form describes; `changed` fires on every edit.  No I/O here:
the view fills the lists from workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QLineEdit,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ftrag_desktop.app.train_args import TrainJob
from ftrag_desktop.app.train_files import ExportChoice, data_path
from ftrag_desktop.core.llm import ModelInfo, normalize_model_name
from ftrag_desktop.core.train_options import DEVICES, OUT_TYPES, TrainOptions

__all__ = ["BROWSE", "TrainForm"]

BROWSE = "\x00browse"  # the item data of "GGUF file…" and "Browse…"
NO_LR = 0.0


def _spin(low: int, high: int, tip: str, special: str = "") -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setToolTip(tip)
    if special:
        box.setSpecialValueText(special)
    return box


def _real(low: float, high: float, step: float, decimals: int, tip: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setSingleStep(step)
    box.setDecimals(decimals)
    box.setToolTip(tip)
    return box


class TrainForm(QWidget):
    """See the module docstring."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._installed: list[str] = []
        self._build()
        self.set_options(TrainOptions())
        self._connect()

    # ---- layout ----------------------------------------------------------------------------

    def _build(self) -> None:
        self.base = QComboBox()
        self.base.setMinimumContentsLength(26)
        self.base.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.base.setToolTip(
            "The model to fine-tune: one in Ollama (its GGUF is read where Ollama keeps it, "
            "not copied) or a GGUF file"
        )
        self.base.addItem("GGUF file…", BROWSE)
        self.data = QComboBox()
        self.data.setMinimumContentsLength(26)
        self.data.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.data.setToolTip(
            "A training set exported from the Evaluate tab (Sets → Export fine-tune data…): "
            "its folder holds train.jsonl and valid.jsonl"
        )
        self.data.addItem("Browse…", BROWSE)
        self.name = QLineEdit()
        self.name.setPlaceholderText("e.g. my-docs-tuned")
        self.name.setToolTip("The name of the new model in Ollama")
        self.rank = _spin(1, 1024, "LoRA rank: the size of the adapter (4 to 64 is usual)")
        self.alpha = _real(0.5, 4096.0, 1.0, 1, "LoRA alpha: the adapter's scale (often 2 x rank)")
        self.lr = QLineEdit()
        self.lr.setToolTip("Learning rate, e.g. 2e-4")
        self.epochs = _spin(1, 1000, "Passes over the training data")
        self.max_length = _spin(16, 131072, "Longest example in tokens; longer ones are cut")
        self.max_length.setSingleStep(128)

        self.dropout = _real(0.0, 0.95, 0.05, 2, "Dropout on the adapter's input")
        self.target_modules = QLineEdit()
        self.target_modules.setPlaceholderText("every linear layer")
        self.target_modules.setToolTip("Modules to adapt, e.g. q_proj,v_proj (empty: all)")
        self.batch_size = _spin(1, 4096, "Examples per micro-batch (memory grows with it)")
        self.grad_accum = _spin(1, 4096, "Micro-batches per optimizer step")
        self.warmup = _real(0.0, 0.5, 0.01, 2, "Share of the steps over which the rate rises")
        self.seed = _spin(0, 2_147_483_647, "Seed of the shuffle and the adapter's start")
        self.max_steps = _spin(0, 10_000_000, "Stop after this many steps", "as the epochs take")
        self.eval_every = _spin(0, 10_000_000, "Validation loss every N steps", "about 10 times")
        self.save_every = _spin(0, 10_000_000, "Checkpoint every N steps", "with each validation")
        self.val_fraction = _real(
            0.0, 0.49, 0.05, 2, "Share split off for validation when the data has no valid.jsonl"
        )
        self.out_type = QComboBox()
        self.out_type.addItems(list(OUT_TYPES))
        self.out_type.setToolTip("The merged model's tensor type (Q8_0: small, nearly lossless)")
        self.device = QComboBox()
        self.device.addItems(list(DEVICES))
        self.device.setToolTip("auto: a CUDA or Apple GPU when torch sees one, else the CPU")
        self.threads = _spin(0, 1024, "CPU threads for training", "default")
        self.replace = QCheckBox("Replace a model of the same name")
        self.start_over = QCheckBox("Start over (ignore this run's checkpoints)")

        basics = QGroupBox("Model and data")
        form = QFormLayout(basics)
        form.addRow("Base model:", self.base)
        form.addRow("Training data:", self.data)
        form.addRow("New model name:", self.name)
        settings = QGroupBox("Training")
        form = QFormLayout(settings)
        form.addRow("Rank:", self.rank)
        form.addRow("Alpha:", self.alpha)
        form.addRow("Learning rate:", self.lr)
        form.addRow("Epochs:", self.epochs)
        form.addRow("Max length (tokens):", self.max_length)

        self.advanced_toggle = QToolButton()
        self.advanced_toggle.setText("Advanced")
        self.advanced_toggle.setCheckable(True)
        self.advanced_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced_toggle.setAutoRaise(True)
        self.advanced = QWidget()
        form = QFormLayout(self.advanced)
        form.setContentsMargins(12, 0, 0, 0)
        form.addRow("Dropout:", self.dropout)
        form.addRow("Target modules:", self.target_modules)
        form.addRow("Batch size:", self.batch_size)
        form.addRow("Gradient accumulation:", self.grad_accum)
        form.addRow("Warmup share:", self.warmup)
        form.addRow("Seed:", self.seed)
        form.addRow("Max steps:", self.max_steps)
        form.addRow("Validate every (steps):", self.eval_every)
        form.addRow("Checkpoint every (steps):", self.save_every)
        form.addRow("Validation share:", self.val_fraction)
        form.addRow("Merged model type:", self.out_type)
        form.addRow("Device:", self.device)
        form.addRow("CPU threads:", self.threads)
        form.addRow(self.replace)
        form.addRow(self.start_over)
        self.advanced.setVisible(False)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(basics)
        layout.addWidget(settings)
        layout.addWidget(self.advanced_toggle, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.advanced)

    def _connect(self) -> None:
        self.advanced_toggle.toggled.connect(self._on_advanced_toggle_toggled)
        self.base.activated.connect(self._on_base_activated)
        self.data.activated.connect(self._on_data_activated)
        for combo in (self.base, self.data, self.out_type, self.device):
            combo.currentIndexChanged.connect(self._emit_changed)
        for line in (self.name, self.lr, self.target_modules):
            line.textChanged.connect(self._emit_changed)
        spins: list[QSpinBox | QDoubleSpinBox] = [
            self.rank, self.alpha, self.epochs, self.max_length, self.dropout, self.batch_size,
            self.grad_accum, self.warmup, self.seed, self.max_steps, self.eval_every,
            self.save_every, self.val_fraction, self.threads,
        ]  # fmt: skip
        for spin in spins:
            spin.valueChanged.connect(self._emit_changed)
        for box in (self.replace, self.start_over):
            box.toggled.connect(self._emit_changed)

    # ---- values ----------------------------------------------------------------------------

    def set_options(self, o: TrainOptions) -> None:
        self.rank.setValue(o.rank)
        self.alpha.setValue(o.alpha)
        self.lr.setText(f"{o.lr:g}")
        self.epochs.setValue(o.epochs)
        self.max_length.setValue(o.max_length)
        self.dropout.setValue(o.dropout)
        self.target_modules.setText(",".join(o.target_modules))
        self.batch_size.setValue(o.batch_size)
        self.grad_accum.setValue(o.grad_accum)
        self.warmup.setValue(o.warmup_ratio)
        self.seed.setValue(o.seed)
        self.max_steps.setValue(o.max_steps)
        self.eval_every.setValue(o.eval_every)
        self.save_every.setValue(o.save_every)
        self.val_fraction.setValue(o.val_fraction)
        self.out_type.setCurrentText(o.out_type)
        self.device.setCurrentText(o.device)
        self.threads.setValue(o.threads)

    def options(self) -> TrainOptions:
        try:
            lr = float(self.lr.text().strip())
        except ValueError:
            lr = NO_LR  # problems() then says what is wrong
        targets = tuple(t.strip() for t in self.target_modules.text().split(",") if t.strip())
        return TrainOptions(
            rank=self.rank.value(),
            alpha=self.alpha.value(),
            lr=lr,
            epochs=self.epochs.value(),
            max_length=self.max_length.value(),
            dropout=self.dropout.value(),
            target_modules=targets,
            batch_size=self.batch_size.value(),
            grad_accum=self.grad_accum.value(),
            warmup_ratio=self.warmup.value(),
            seed=self.seed.value(),
            max_steps=self.max_steps.value(),
            eval_every=self.eval_every.value(),
            save_every=self.save_every.value(),
            val_fraction=self.val_fraction.value(),
            out_type=self.out_type.currentText(),
            device=self.device.currentText(),
            threads=self.threads.value(),
        )

    def job(self) -> TrainJob:
        base, data = self.base.currentData(), self.data.currentData()
        return TrainJob(
            base=str(base) if base and base != BROWSE else "",
            data=str(data) if data and data != BROWSE else "",
            name=self.name.text().strip(),
            options=self.options(),
            replace=self.replace.isChecked(),
            resume=not self.start_over.isChecked(),
        )

    def problems(self) -> list[str]:
        return self.job().problems(self._installed)

    # ---- lists -----------------------------------------------------------------------------

    def set_models(self, models: Sequence[ModelInfo]) -> None:
        """The chat models of Ollama; picked GGUF files and the current choice stay.
        `changed` only when the choice or the installed names (the name check) changed."""
        before = (self.base.currentData(), list(self._installed))
        files = [
            (self.base.itemText(i), self.base.itemData(i))
            for i in range(self.base.count())
            if str(self.base.itemData(i)).lower().endswith(".gguf")
        ]
        self._installed = [m.name for m in models]
        self.base.blockSignals(True)
        self.base.clear()
        for m in models:
            if not m.is_embedding:
                details = " · ".join(x for x in (m.parameter_size, m.quantization) if x)
                self.base.addItem(f"{m.name}  ({details})" if details else m.name, m.name)
        for text, path in files:
            self.base.addItem(text, path)
            self.base.setItemData(self.base.count() - 1, path, Qt.ItemDataRole.ToolTipRole)
        self.base.addItem("GGUF file…", BROWSE)
        self._select(self.base, before[0])
        self.base.blockSignals(False)
        if (self.base.currentData(), self._installed) != before:
            self.changed.emit()

    def installed(self) -> list[str]:
        return list(self._installed)

    def select_base(self, name: str) -> bool:
        return self._select(self.base, name)

    def add_base_file(self, path: str) -> None:
        """A GGUF file as the base (also what "GGUF file…" does after its dialog)."""
        index = self.base.findData(path)
        if index < 0:
            self.base.insertItem(self.base.count() - 1, f"{Path(path).name}  (file)", path)
            index = self.base.count() - 2
            self.base.setItemData(index, path, Qt.ItemDataRole.ToolTipRole)
        self.base.setCurrentIndex(index)

    def set_exports(self, choices: Sequence[ExportChoice]) -> None:
        """The recent exports; browsed ones and the current choice stay.  `changed` only when
        the choice changed."""
        current = self.data.currentData()
        kept = [
            (self.data.itemText(i), self.data.itemData(i))
            for i in range(self.data.count())
            if self.data.itemData(i) not in (BROWSE, *(c.path for c in choices))
        ]
        self.data.blockSignals(True)
        self.data.clear()
        for choice in choices:
            self.data.addItem(choice.label, choice.path)
            self.data.setItemData(self.data.count() - 1, choice.path, Qt.ItemDataRole.ToolTipRole)
        for text, path in kept:
            self.data.addItem(text, path)
            self.data.setItemData(self.data.count() - 1, path, Qt.ItemDataRole.ToolTipRole)
        self.data.addItem("Browse…", BROWSE)
        if not self._select(self.data, current):
            self.data.setCurrentIndex(0)
        self.data.blockSignals(False)
        if self.data.currentData() != current:
            self.changed.emit()

    def add_data(self, path: str) -> None:
        """A training set chosen by path (also what "Browse…" does after its dialog)."""
        path = data_path(path)
        index = self.data.findData(path)
        if index < 0:
            self.data.insertItem(self.data.count() - 1, path, path)
            index = self.data.count() - 2
        self.data.setCurrentIndex(index)

    def _select(self, combo: QComboBox, value: object) -> bool:
        if not value or value == BROWSE:
            return False
        wanted = normalize_model_name(str(value)) if combo is self.base else str(value)
        for i in range(combo.count()):
            data = combo.itemData(i)
            if data == value or (combo is self.base and data and data != BROWSE
                                 and normalize_model_name(str(data)) == wanted):  # fmt: skip
                combo.setCurrentIndex(i)
                return True
        return False

    # ---- slots -----------------------------------------------------------------------------

    def _emit_changed(self, *_: object) -> None:
        self.changed.emit()

    def _on_advanced_toggle_toggled(self, on: bool) -> None:
        self.advanced.setVisible(on)
        arrow = Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow
        self.advanced_toggle.setArrowType(arrow)

    def _on_base_activated(self, index: int) -> None:
        if self.base.itemData(index) != BROWSE:
            return
        path, _ = QFileDialog.getOpenFileName(
            self, "Base model (GGUF)", "", "GGUF models (*.gguf);;All files (*)"
        )
        if path:
            self.add_base_file(path)
        else:
            self.base.setCurrentIndex(0 if self.base.count() > 1 else -1)

    def _on_data_activated(self, index: int) -> None:
        if self.data.itemData(index) != BROWSE:
            return
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Training data: an export's train.jsonl",
            "",
            "Training sets (*.jsonl);;All files (*)",
        )
        if path:
            self.add_data(path)
        else:
            self.data.setCurrentIndex(0 if self.data.count() > 1 else -1)
