"""The "Export fine-tune data…" dialog: training data for the user's own fine-tune from a set.

The options of `core.finetune_export.ExportOptions` (kind qa/raft/both, format, validation
fraction, seed), whether to draw RAFT distractors from the index, and the output folder (a new
folder under the data home by default).  "Preview" builds the dataset on a worker and shows what
would be written (examples, bytes, approximate tokens per file, duplicates, warnings, problems)
without writing anything, as `ftrag export-finetune --dry-run` does; "Export" then writes
exactly that preview.  Any change of an option asks for a new preview first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ftrag_desktop.app.controller import AppController
from ftrag_desktop.app.workers import run_in_background
from ftrag_desktop.core.evalset import EvalSet, EvalSetStore
from ftrag_desktop.core.finetune_export import (
    Dataset,
    EvalItem,
    ExportOptions,
    Format,
    Kind,
    Preview,
    build_dataset,
    check_out_dir,
    default_out_dir,
    preview,
    write_export,
)
from ftrag_desktop.core.finetune_formats import FORMAT_TOOL
from ftrag_desktop.errors import UserError

__all__ = ["FinetuneDialog", "preview_text"]

KINDS = {
    Kind.BOTH: "Both: question/answer pairs and RAFT examples",
    Kind.QA: "Question/answer pairs (the model alone)",
    Kind.RAFT: "RAFT: question + sources → cited answer (for use with RAG)",
}


def preview_text(result: Preview, out: Path | None = None) -> str:
    """What the export holds (or would hold), in the CLI's words."""
    lines = [f"Format: {result.format} ({result.tool})"]
    for split in (result.train, result.valid):
        kinds = ", ".join(f"{k} {n}" for k, n in split.kinds.items()) or "none"
        lines.append(
            f"{split.file}: {split.examples} examples, {split.bytes:,} bytes, "
            f"~{split.approx_tokens:,} tokens (longest ~{split.max_example_tokens:,}) [{kinds}]"
        )
    lines.append(f"Tokens are {result.token_rule}.")
    if result.duplicates:
        lines.append(f"{result.duplicates} duplicate questions dropped.")
    lines += [f"{n} questions skipped: {why}." for why, n in result.skipped.items()]
    lines += [f"Warning: {w}" for w in result.warnings]
    lines += [f"Problem: {p}" for p in result.problems]
    lines.append(f"Written to {out}" if out is not None else "Preview only: nothing written yet.")
    return "\n".join(lines)


class FinetuneDialog(QDialog):
    """See the module docstring."""

    previewed = Signal(object)  # core.finetune_export.Preview
    written = Signal(str)  # the export folder

    def __init__(
        self,
        controller: AppController,
        evalset: EvalSet,
        *,
        saved: bool,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Export fine-tune data from '{evalset.name}'")
        self._controller = controller
        self._items = [EvalItem(**item.to_dict()) for item in evalset.items]
        self._set = (evalset.name, evalset.version if saved else 0)
        self._data: Dataset | None = None
        self._roots: set[Path] = set()
        self.kind = QComboBox()
        for kind, text in KINDS.items():
            self.kind.addItem(text, kind.value)
        self.format = QComboBox()
        for fmt in Format:
            self.format.addItem(f"{fmt.value}: {FORMAT_TOOL[fmt]}", fmt.value)
        self.val_fraction = QDoubleSpinBox()
        self.val_fraction.setRange(0.0, 0.9)
        self.val_fraction.setSingleStep(0.05)
        self.val_fraction.setValue(0.1)
        self.val_fraction.setToolTip("Share of the questions kept for validation, by document")
        self.seed = QSpinBox()
        self.seed.setRange(0, 1_000_000)
        self.corpus = QCheckBox("Label sources and draw RAFT distractors from the index")
        self.corpus.setChecked(True)
        self.out = QLineEdit()
        self.out.setPlaceholderText("A new folder under the data home")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._on_browse_clicked)
        out_row = QHBoxLayout()
        out_row.addWidget(self.out, 1)
        out_row.addWidget(browse)
        self.report = QPlainTextEdit()
        self.report.setReadOnly(True)
        self.report.setPlaceholderText("Preview to see the examples, sizes and tokens first.")
        self.preview_button = QPushButton("Preview")
        self.preview_button.setDefault(True)
        self.preview_button.clicked.connect(self.run_preview)
        self.export_button = QPushButton("Export")
        self.export_button.clicked.connect(self.run_export)
        close = QPushButton("Close")
        close.clicked.connect(self.reject)
        form = QFormLayout()
        form.addRow("Examples:", self.kind)
        form.addRow("Format:", self.format)
        form.addRow("Validation share:", self.val_fraction)
        form.addRow("Seed:", self.seed)
        form.addRow("", self.corpus)
        form.addRow("Output folder:", out_row)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for button in (self.preview_button, self.export_button, close):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"{len(self._items)} questions of the set '{evalset.name}'."))
        layout.addLayout(form)
        layout.addWidget(self.report, 1)
        layout.addLayout(buttons)
        self.resize(680, 520)
        for signal in (self.kind.currentIndexChanged, self.format.currentIndexChanged):
            signal.connect(self._invalidate)
        self.val_fraction.valueChanged.connect(self._invalidate)
        self.seed.valueChanged.connect(self._invalidate)
        self.corpus.toggled.connect(self._invalidate)
        self.out.textChanged.connect(self._invalidate)
        self._invalidate()

    def options(self) -> ExportOptions:
        engine = self._controller.engine
        return ExportOptions(
            kind=Kind(str(self.kind.currentData())),
            format=Format(str(self.format.currentData())),
            val_fraction=self.val_fraction.value(),
            seed=self.seed.value(),
            system_prompt=engine.settings.system_prompt if engine is not None else "",
        )

    def _invalidate(self, *_: Any) -> None:
        self._data = None
        self.export_button.setEnabled(False)

    def _busy(self, busy: bool) -> None:
        self.preview_button.setEnabled(not busy)
        self.export_button.setEnabled(not busy and self._data is not None)

    def run_preview(self) -> None:
        """Build the dataset on a worker and show what would be written; `previewed` follows."""
        engine = self._controller.engine
        if engine is None:
            return
        items, options, use_corpus = list(self._items), self.options(), self.corpus.isChecked()
        out = self.out.text().strip()
        watched = [Path(f) for f in engine.settings.watched_folders]

        def op() -> tuple[Dataset, Preview, set[Path]]:
            corpus = engine.store.all_chunks() if use_corpus else None
            if use_corpus and not corpus:
                raise UserError(
                    "The index holds no passages to draw sources from.",
                    "Index a folder first, or turn off drawing from the index.",
                )
            # Never beside the documents: the watched folders and every indexed file's folder.
            roots = set(watched) | {Path(d.path).parent for d in engine.store.documents()}
            if out:
                check_out_dir(Path(out), roots)  # say now what the export would refuse
            data = build_dataset(items, corpus, options)
            return data, preview(data, options.format), roots

        self.report.setPlainText("Building the preview…")
        self._busy(True)
        run_in_background(op, on_done=self._on_previewed, on_error=self._on_failed, owner=self)

    def run_export(self) -> None:
        """Write the previewed dataset; `written` follows with the folder."""
        engine, data = self._controller.engine, self._data
        if engine is None or data is None:
            return
        options, roots = self.options(), set(self._roots)
        out, (name, version) = self.out.text().strip(), self._set
        home = engine.home

        def op() -> tuple[Path, Preview]:
            target = Path(out) if out else default_out_dir(home.root, options)
            if version:
                inputs = [str(EvalSetStore.for_home(home).version_path(name, version))]
            else:
                inputs = [f"{name} (unsaved changes in the app)"]
            result = write_export(data, target, options, document_roots=roots, inputs=inputs)
            return target.expanduser().resolve(), result

        self._busy(True)
        run_in_background(op, on_done=self._on_written, on_error=self._on_failed, owner=self)

    def _on_previewed(self, result: object) -> None:
        assert isinstance(result, tuple)
        data, shown, roots = result
        self._data, self._roots = (None if shown.problems else data), roots
        self.report.setPlainText(preview_text(shown))
        self._busy(False)
        self.previewed.emit(shown)

    def _on_written(self, result: object) -> None:
        assert isinstance(result, tuple)
        folder, shown = result
        self.report.setPlainText(preview_text(shown, folder))
        self._data = None
        self._busy(False)
        self.written.emit(str(folder))

    def _on_failed(self, message: str) -> None:
        self._data = None
        self.report.setPlainText(message)
        self._busy(False)

    def _on_browse_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export folder", self.out.text())
        if folder:
            self.out.setText(folder)
