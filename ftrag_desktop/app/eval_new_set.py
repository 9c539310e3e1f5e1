"""The "New set…" dialog: a name and the options of `core.evalset_build.BuildOptions`.

How many answerable questions to generate, how many unanswerable ones, the sampling seed, the
model that writes them (default: the chat model), and whether to drop the questions the model
answers without the passage (the closed-book filter).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QWidget,
)

from ftrag_desktop.core.evalset_build import BuildOptions
from ftrag_desktop.core.models import ModelRecord

__all__ = ["NewSetDialog", "model_label"]

_NAME = re.compile(r"[A-Za-z0-9][\w.-]{0,63}")


def model_label(record: ModelRecord) -> str:
    """`name  (fine-tuned from base · 3.2B · Q4_K_M)`: fine-tuned variants are marked."""
    bits = [x for x in (record.parameter_size, record.quantization) if x]
    if record.fine_tuned:  # first, so a narrow picker still shows it
        bits.insert(0, f"fine-tuned from {record.base}" if record.base else "fine-tuned")
    return f"{record.name}  ({' · '.join(bits)})" if bits else record.name


class NewSetDialog(QDialog):
    """Ask for the name and build options of a new evaluation set."""

    def __init__(
        self,
        models: Sequence[ModelRecord],
        chat_model: str,
        taken: Sequence[str] = (),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("New evaluation set")
        self._taken = set(taken)
        self.name = QLineEdit(self._free_name("questions"))
        self.name.setToolTip(
            "Letters, digits, '.', '_' or '-'; an existing name gets a new version"
        )
        self.questions = QSpinBox()
        self.questions.setRange(1, 500)
        self.questions.setValue(20)
        self.questions.setToolTip("Answerable questions, each written from one indexed passage")
        self.unanswerable = QSpinBox()
        self.unanswerable.setRange(0, 100)
        self.unanswerable.setValue(5)
        self.unanswerable.setToolTip(
            "Questions on topics your documents do not cover: a good answer declines"
        )
        self.seed = QSpinBox()
        self.seed.setRange(0, 1_000_000)
        self.seed.setToolTip("The same seed picks the same passages again")
        self.model = QComboBox()
        self.model.setToolTip("The model that writes the questions")
        self.model.addItem(f"The chat model ({chat_model})" if chat_model else "The chat model", "")
        for record in models:
            if not record.is_embedding:
                self.model.addItem(model_label(record), record.name)
        self.closed_book = QCheckBox("Drop questions the model answers without the passage")
        self.closed_book.setChecked(True)
        self.closed_book.setToolTip(
            "Such questions measure what the model already knows, not what your documents add"
        )
        self.error = QLabel()
        self.error.setStyleSheet("color: #b0463c")
        self.error.hide()
        form = QFormLayout(self)
        form.addRow("Name:", self.name)
        form.addRow("Answerable questions:", self.questions)
        form.addRow("Unanswerable questions:", self.unanswerable)
        form.addRow("Seed:", self.seed)
        form.addRow("Written by:", self.model)
        form.addRow("", self.closed_book)
        form.addRow(self.error)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Build")
        buttons.accepted.connect(self._on_buttons_accepted)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _free_name(self, stem: str) -> str:
        name, n = stem, 2
        while name in self._taken:
            name, n = f"{stem}-{n}", n + 1
        return name

    def set_name(self) -> str:
        return self.name.text().strip()

    def options(self) -> BuildOptions:
        return BuildOptions(
            questions=self.questions.value(),
            unanswerable=self.unanswerable.value(),
            model=str(self.model.currentData() or ""),
            seed=self.seed.value(),
            closed_book_filter=self.closed_book.isChecked(),
        )

    def _on_buttons_accepted(self) -> None:
        if not _NAME.fullmatch(self.set_name()):
            self.error.setText(
                "Use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit."
            )
            self.error.show()
            return
        self.accept()
