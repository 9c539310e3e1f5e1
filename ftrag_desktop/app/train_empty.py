"""What the Train tab shows when fine-tuning is not installed: what it adds and how to get it.

Fine-tuning needs the optional `[train]` extra (torch, transformers, peft), which the default
installer leaves out.  `MissingExtraPage.show_extra(extra)` says what the extra adds, what is
missing here, the exact install command (`core.train_env.install_hint`, with a Copy button),
and that everything else (merging an adapter included) works without it.  "Check again" asks
the view to detect the extra once more (a new training process sees what was installed since).
"""

from __future__ import annotations

import html
import re
import sys
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from ftrag_desktop.core.train_env import TrainExtra

__all__ = ["MissingExtraPage", "install_command"]

_CODE = re.compile(r"`([^`]+)`")


def install_command(hint: str) -> str:
    """The first `command` quoted in the install hint ("" when there is none), with this
    Python's full path, so that it installs into this very environment from any shell."""
    found = _CODE.search(hint)
    command = found.group(1) if found else ""
    name = Path(sys.executable).name
    if command.startswith(f"{name} -m pip ") and not getattr(sys, "frozen", False):
        exe = f'"{sys.executable}"' if " " in sys.executable else sys.executable
        command = exe + command[len(name) :]
    return command


class MissingExtraPage(QWidget):
    """See the module docstring."""

    check_again_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("<h2>Fine-tuning is not installed</h2>")
        self.about = QLabel(
            "<p>The Train tab fine-tunes a local model on a training set exported from your own "
            "documents: it trains a LoRA adapter, merges it into the base model, writes a new "
            "GGUF and adds it to Ollama, on this computer. It uses a CUDA or Apple GPU when "
            "there is one, and otherwise the CPU.</p>"
        )
        self.missing = QLabel()
        self.command = QLineEdit()
        self.command.setReadOnly(True)
        self.command.setObjectName("install-command")
        font = self.command.font()
        font.setFamily("monospace")
        font.setStyleHint(font.StyleHint.Monospace)
        self.command.setFont(font)
        self.copy_button = QPushButton("Copy")
        self.copy_button.setToolTip("Copy the command")
        self.copy_button.clicked.connect(self._on_copy_button_clicked)
        self.hint = QLabel()
        self.small = QLabel(
            "<p>The default installer stays small without it: PyTorch alone takes several "
            "hundred megabytes (its CPU build) to a few gigabytes (with CUDA). Everything else "
            "works without it: chat, the library, the Evaluate tab, exporting training data, "
            "and merging an outside adapter into its base (<code>ftrag merge-adapter</code>).</p>"
        )
        self.check_button = QPushButton("Check again")
        self.check_button.setToolTip("After installing, see whether training is available now")
        self.check_button.clicked.connect(self.check_again_requested)
        for label in (self.title, self.about, self.missing, self.hint, self.small):
            label.setWordWrap(True)
            label.setTextFormat(Qt.TextFormat.RichText)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        command_row = QHBoxLayout()
        command_row.addWidget(self.command, 1)
        command_row.addWidget(self.copy_button)
        column = QWidget()
        column.setMaximumWidth(760)
        layout = QVBoxLayout(column)
        layout.addWidget(self.title)
        layout.addWidget(self.about)
        layout.addWidget(self.missing)
        layout.addWidget(QLabel("<b>Install it with:</b>"))
        layout.addLayout(command_row)
        layout.addWidget(self.hint)
        layout.addWidget(self.small)
        layout.addWidget(self.check_button, 0, Qt.AlignmentFlag.AlignLeft)
        # Stretches, not an alignment: a word-wrapped label placed with an alignment does not
        # get its height for its width.
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(column, 4)
        row.addStretch(1)
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        outer.addLayout(row)
        outer.addStretch(2)

    def show_extra(self, extra: TrainExtra) -> None:
        missing = ", ".join(extra.missing)
        self.missing.setText(
            "<p>It needs the optional <b>[train]</b> extra: PyTorch, Hugging Face transformers "
            f"and peft. Missing in this installation: <b>{html.escape(missing)}</b>.</p>"
        )
        self.command.setText(install_command(extra.hint))
        self.command.setCursorPosition(0)
        escaped = html.escape(extra.hint, quote=False)
        hint = _CODE.sub(lambda m: f"<code>{m.group(1)}</code>", escaped)
        self.hint.setText(f"<p>{hint}</p>")

    def _on_copy_button_clicked(self) -> None:
        QGuiApplication.clipboard().setText(self.command.text())
