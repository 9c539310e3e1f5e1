"""Import a fine-tuned model: (a) a GGUF file, or (b) a LoRA adapter on an installed base.

The form (`ImportForm`) asks for the file or folder, the name, the base, a system prompt and the
parameters.  As soon as a file and a name are given (and whenever they change), the request is
checked on a worker (`import_plan.validate`: the file's own header, the base, the disk) and the
results are shown before anything is uploaded.  Import then runs `ModelManager.import_model` on
a worker; its events drive the step list and the progress bar.  Cancel sets the operation's
event.  A failure is shown word for word, with the hint, in a text box the user can copy.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ftrag_desktop.app.models_import_form import ImportForm
from ftrag_desktop.app.models_ops import (
    Failure,
    plain_text,
    reporting,
    size_text,
    throttled,
    tone,
)
from ftrag_desktop.app.models_steps import STEP_TITLES, StepList, plan_html
from ftrag_desktop.app.workers import run_in_background
from ftrag_desktop.core.import_plan import validate
from ftrag_desktop.core.model_import import (
    BlobSkipped,
    ImportFinished,
    ImportNotice,
    ImportPlan,
    ImportProgress,
    ImportServerStatus,
    ImportStep,
    ImportValidated,
)
from ftrag_desktop.core.models import ModelManager, ModelRecord

__all__ = ["CHECK_DELAY_MS", "ImportPanel"]

CHECK_DELAY_MS = 400  # typing pauses this long before the request is checked again
NOTHING_TO_CHECK = (
    "Choose a file and a name: what the file is, its base, its chat template and the disk "
    "space are checked here before anything is uploaded."
)
ADAPTERS_REMOVED_IN = (0, 34, 1)  # ollama/ollama PR #14969


def refuses_adapters(version: str) -> bool:
    """True for an Ollama version that no longer creates adapter models (0.34.1 and later)."""
    parts = []
    for piece in version.split("-")[0].split(".")[:3]:
        if not piece.isdigit():
            return False
        parts.append(int(piece))
    return bool(parts) and tuple(parts) >= ADAPTERS_REMOVED_IN


class ImportPanel(QWidget):
    """`imported(ImportFinished)` on success; `use_requested(name)` from "Use this model now";
    `busy_changed(bool)` while an import runs."""

    imported = Signal(object)
    use_requested = Signal(str)
    busy_changed = Signal(bool)

    def __init__(
        self, manager: Callable[[], ModelManager | None], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._manager = manager
        self._cancel: threading.Event | None = None
        self._check_seq = 0
        self._plan: ImportPlan | None = None
        self._notes: list[str] = []
        self._ollama_version = ""
        self._failure: Failure | None = None
        self._finished: ImportFinished | None = None
        self.imported_name = ""  # the model the last import created
        self._check_timer = QTimer(self)
        self._check_timer.setSingleShot(True)
        self._check_timer.setInterval(CHECK_DELAY_MS)
        self._check_timer.timeout.connect(self.check)
        self._build()

    # ---- layout ----------------------------------------------------------------------------

    def _build(self) -> None:
        self.form = ImportForm()
        self.form.changed.connect(self._schedule_check)

        self.check_button = QPushButton("Check")
        self.check_button.setToolTip("Validate again without uploading anything")
        self.check_button.clicked.connect(self.check)
        self.import_button = QPushButton("Import")
        self.import_button.setDefault(True)
        self.import_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.check_button)
        buttons.addWidget(self.import_button)
        buttons.addWidget(self.cancel_button)

        self.checks_label = QLabel()
        self.checks_label.setWordWrap(True)
        self.checks_label.setTextFormat(Qt.TextFormat.RichText)
        self.checks_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.checks_label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        checks_box = QGroupBox("Checks (before anything is uploaded)")
        checks_layout = QVBoxLayout(checks_box)
        checks_layout.addWidget(self.checks_label, 1)

        self.steps = StepList()
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setFormat("")
        self.progress_text = QLabel()
        steps_box = QGroupBox("Progress")
        steps_layout = QVBoxLayout(steps_box)
        steps_layout.addWidget(self.steps)
        steps_layout.addWidget(self.progress)
        steps_layout.addWidget(self.progress_text)
        steps_layout.addStretch(1)
        panels = QHBoxLayout()
        panels.addWidget(checks_box, 1)
        panels.addWidget(steps_box, 1)

        self.error_title = QLabel()
        self.error_title.setTextFormat(Qt.TextFormat.RichText)
        self.error_text = QPlainTextEdit()
        self.error_text.setReadOnly(True)
        self.error_text.setFixedHeight(self.fontMetrics().lineSpacing() * 5 + 14)
        self.copy_button = QPushButton("Copy")
        self.copy_button.setToolTip("Copy the error and the advice")
        self.copy_button.clicked.connect(self._on_copy_clicked)
        self.error_box = QWidget()
        error_layout = QVBoxLayout(self.error_box)
        error_layout.setContentsMargins(0, 0, 0, 0)
        title_row = QHBoxLayout()
        title_row.addWidget(self.error_title, 1)
        title_row.addWidget(self.copy_button)
        error_layout.addLayout(title_row)
        error_layout.addWidget(self.error_text)

        self.result_label = QLabel()
        self.result_label.setTextFormat(Qt.TextFormat.RichText)
        self.result_label.setWordWrap(True)
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.use_button = QPushButton("Use this model now")
        self.use_button.clicked.connect(self._on_use_clicked)
        result_row = QHBoxLayout()
        result_row.addWidget(self.result_label, 1)
        result_row.addWidget(self.use_button)

        column = QVBoxLayout(self)
        column.addWidget(self.form)
        column.addLayout(buttons)
        column.addLayout(panels, 1)
        column.addWidget(self.error_box)
        column.addLayout(result_row)
        self._reset_outcome()
        self._set_busy(False)
        self.checks_label.setText(self._muted(NOTHING_TO_CHECK))

    # ---- the form --------------------------------------------------------------------------

    def set_models(self, records: list[ModelRecord], ollama_version: str = "") -> None:
        self.form.set_models(records)
        self._ollama_version = ollama_version

    def _plan_notes(self, plan: ImportPlan) -> list[str]:
        notes = list(plan.notes)
        if plan.kind == "adapter" and refuses_adapters(self._ollama_version):
            notes.append(
                f"Ollama {self._ollama_version} may refuse to create adapter models (0.34.1 "
                "removed it); the file is uploaded first. Merging the adapter into its base "
                "and importing the merged GGUF works with every version."
            )
        return notes

    # ---- checking --------------------------------------------------------------------------

    def _schedule_check(self, *_: object) -> None:
        self._check_seq += 1  # a check still running is now out of date
        if self.is_busy():
            return
        if self.form.request() is None:
            self._check_timer.stop()
            self.checks_label.setText(self._muted(NOTHING_TO_CHECK))
        else:
            self.checks_label.setText(self._muted("Checking…"))
            self._check_timer.start()

    def check(self) -> None:
        """Validate the request on a worker and show what was found (nothing is uploaded)."""
        self._check_timer.stop()
        request, manager = self.form.request(), self._manager()
        if request is None or manager is None or self.is_busy():
            return
        self._check_seq += 1
        seq = self._check_seq

        def op() -> ImportPlan:
            return validate(manager.client, request, keep_free_bytes=manager.keep_free_bytes)

        self.checks_label.setText(self._muted("Checking…"))
        run_in_background(
            reporting(op),
            on_done=lambda result: self._on_checked(seq, result),
            on_error=lambda message: self._on_checked(seq, Failure(message, "")),
            owner=self,
        )

    def _on_checked(self, seq: int, result: object) -> None:
        if seq != self._check_seq or self.is_busy():
            return  # the form changed since, or an import took over
        if isinstance(result, Failure):
            self._plan = None
            colour = tone(self, "error")
            self.checks_label.setText(
                f"<span style='color:{colour}'>✗ This import would fail:</span> "
                f"{html.escape(result.message)}"
            )
            self._show_problem("The check found a problem:", result)
        elif isinstance(result, ImportPlan):
            self._plan = result
            self._notes = self._plan_notes(result)
            self.checks_label.setText(plan_html(self, result, self._notes))
            self.error_box.hide()

    def checks_text(self) -> str:
        return plain_text(self.checks_label.text())

    # ---- importing -------------------------------------------------------------------------

    def is_busy(self) -> bool:
        return self._cancel is not None

    def start(self) -> None:
        """Import what the form asks for (the Import button)."""
        request, manager = self.form.request(), self._manager()
        if self.is_busy():
            return
        if request is None:
            self._show_problem(
                "Nothing to import yet:",
                Failure("Choose a file (or an adapter folder) and a name.", ""),
            )
            return
        if manager is None:
            self._show_problem(
                "Not ready:", Failure("The library is still opening.", "Try again in a moment.")
            )
            return
        self._check_timer.stop()
        self._check_seq += 1
        cancel = threading.Event()
        self._cancel = cancel
        self._reset_outcome()
        self._set_busy(True)
        run_in_background(
            reporting(
                lambda: throttled(
                    manager.import_model(request, cancel),
                    lambda e: isinstance(e, ImportProgress),
                )
            ),
            on_event=self._on_import_event,
            on_done=lambda _: self._on_import_done(cancel),
            on_error=self._on_import_error,
            owner=self,
        )

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
            self.cancel_button.setEnabled(False)
            self.progress_text.setText("Cancelling…")

    def _set_busy(self, busy: bool) -> None:
        for w in (self.form, self.check_button, self.import_button):
            w.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        self.busy_changed.emit(busy)

    def _reset_outcome(self) -> None:
        self._failure, self._finished, self._notes = None, None, []
        self.steps.reset()
        self.progress.setValue(0)
        self.progress.setRange(0, 1000)
        self.progress_text.setText("")
        self.error_box.hide()
        self.result_label.setText("")
        self.use_button.hide()

    def _on_import_event(self, event: object) -> None:
        steps = self.steps
        if isinstance(event, ImportStep):
            steps.begin(event.step, html.escape(event.text))
            busy = event.step in ("validating", "creating", "verifying")
            self.progress.setRange(0, 0 if busy else 1000)
            self.progress_text.setText(event.text + "…")
        elif isinstance(event, ImportValidated):
            self._plan = event.plan
            self._notes = self._plan_notes(event.plan)
            steps.set_state("validating", "done", "passed")
            self.checks_label.setText(plan_html(self, event.plan, self._notes))
        elif isinstance(event, ImportNotice):
            if event.text not in self._notes and self._plan is not None:
                self._notes.append(event.text)
                self.checks_label.setText(plan_html(self, self._plan, self._notes))
        elif isinstance(event, ImportProgress):
            verb = "Hashing" if event.step == "hashing" else "Uploading"
            done = f"{size_text(event.done)} of {size_text(event.total)}"
            pct = 100 * event.done // event.total if event.total else 100
            steps.set_detail(event.step, f"{done} ({pct}%)")
            self.progress.setRange(0, 1000)
            self.progress.setValue(10 * pct)
            self.progress_text.setText(f"{verb} {event.file}: {done} ({pct}%)")
        elif isinstance(event, BlobSkipped):
            steps.set_state(
                "uploading",
                "skipped",
                f"{html.escape(event.file)}: already on the server ({size_text(event.size)}), "
                "not sent again",
            )
        elif isinstance(event, ImportServerStatus):
            steps.set_detail("creating", f"Ollama: {html.escape(event.text)}")
        elif isinstance(event, ImportFinished):
            self._finished = event
        elif isinstance(event, Failure):
            self._failure = event

    def _on_import_done(self, cancel: threading.Event) -> None:
        self._cancel = None
        self._set_busy(False)
        self.progress.setRange(0, 1000)
        if self._failure is not None:
            self._on_import_failed(self._failure)
        elif self._finished is not None:
            self._on_import_succeeded(self._finished)
        elif cancel.is_set():
            self.steps.stop("cancelled", "cancelled")
            self.progress_text.setText("")
            self.result_label.setText(
                "Import cancelled. Nothing was left in Ollama: whatever was created is removed."
            )

    def _on_import_succeeded(self, done: ImportFinished) -> None:
        name = done.model.name
        reply = " ".join(done.probe_reply.split())
        self.steps.set_state("verifying", "done", f"it answered: “{html.escape(reply[:80])}”")
        self.steps.finish()
        self.steps.set_detail("done", f"{html.escape(name)} in {done.seconds:.1f} s")
        self.progress.setValue(1000)
        moved = f"Uploaded {size_text(done.uploaded_bytes)}"
        if done.skipped_bytes:
            moved += f", {size_text(done.skipped_bytes)} already on the server"
        self.progress_text.setText(moved)
        ok = tone(self, "ok")
        self.result_label.setText(
            f"<span style='color:{ok}'>✓</span> <b>{html.escape(name)}</b> is imported and "
            "answers. It is in the model picker now."
        )
        self.imported_name = name
        self.use_button.show()
        self.imported.emit(done)

    def _on_import_error(self, message: str) -> None:
        self._cancel = None
        self._set_busy(False)
        self._on_import_failed(Failure(message, ""))

    def _on_import_failed(self, failure: Failure) -> None:
        step = self.steps.running()
        self.steps.stop("failed", "failed")
        self.progress_text.setText("")
        where = f" at the step “{STEP_TITLES[step]}”" if step else ""
        self._show_problem(f"The import failed{where}:", failure)
        self.result_label.setText("Nothing was imported.")  # a failure's details are above

    def _show_problem(self, title: str, failure: Failure) -> None:
        colour = tone(self, "error")
        self.error_title.setText(f"<b style='color:{colour}'>{html.escape(title)}</b>")
        self.error_text.setPlainText(failure.text())
        self.error_box.show()

    def problem_text(self) -> str:
        return self.error_text.toPlainText() if self.error_box.isVisibleTo(self) else ""

    def _on_copy_clicked(self) -> None:
        clipboard = QGuiApplication.clipboard()
        clipboard.setText(self.error_text.toPlainText())

    def _on_use_clicked(self) -> None:
        if self.imported_name:
            self.use_requested.emit(self.imported_name)

    def _muted(self, text: str) -> str:
        return f"<span style='color:{tone(self, 'muted')}'>{html.escape(text)}</span>"
