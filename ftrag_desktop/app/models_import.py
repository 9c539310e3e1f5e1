"""Import a fine-tuned model: (a) a GGUF file, or (b) a LoRA adapter, applied on an installed
base by Ollama or merged into its base GGUF first.

The form (`ImportForm`) asks for the file or folder, the name, the base, a system prompt and the
parameters.  As soon as a file and a name are given (and whenever they change), the request is
checked on a worker (`import_plan.validate`: the file's own header, the base, the disk; for a
merge `merge_import.check_merge`: the adapter fits the base GGUF too) and the results are shown
before anything is written or uploaded.  Import then runs `ModelManager.import_model` (or
`merge_import.merge_then_import`) on a worker; its events drive the step list and the progress
bar.  Cancel sets the operation's event.  A failure is shown word for word, with the hint, in
a text box the user can copy.

Merging: the base GGUF is filled in from the installed base model's blob (`/api/show` and
Ollama's model store, `train_base.find_ollama_blob`) until the user picks a file.  When Ollama
refuses an adapter model (0.34.1 and later), the failure box offers "Merge into the base and
import", which switches to merging with the same inputs and starts.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

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
from ftrag_desktop.app.models_steps import STEP_TITLES, StepList, merge_plan_html, plan_html
from ftrag_desktop.app.workers import run_in_background
from ftrag_desktop.core.import_plan import validate
from ftrag_desktop.core.merge_import import (
    MergeCheck,
    Merged,
    MergeImportRequest,
    MergeProgress,
    MergeStep,
    MergeValidated,
    check_merge,
    merge_then_import,
)
from ftrag_desktop.core.model_import import (
    BlobSkipped,
    ImportFinished,
    ImportNotice,
    ImportPlan,
    ImportProgress,
    ImportRequest,
    ImportServerStatus,
    ImportStep,
    ImportValidated,
)
from ftrag_desktop.core.models import ModelManager, ModelRecord
from ftrag_desktop.core.train_base import find_ollama_blob
from ftrag_desktop.errors import AdaptersUnsupported

__all__ = ["CHECK_DELAY_MS", "AdapterRefused", "ImportPanel"]

CHECK_DELAY_MS = 400  # typing pauses this long before the request is checked again
NOTHING_TO_CHECK = (
    "Choose a file and a name: what the file is, its base, its chat template and the disk "
    "space are checked here before anything is uploaded."
)
NOTHING_TO_MERGE = (
    "Choose the adapter, its base GGUF file and a name: whether the adapter fits the base, the "
    "name and the disk space are checked here before anything is written or uploaded."
)
BASE_FILE_HINT = "Choose the base model's .gguf file (the model the adapter was trained on)."
ADAPTERS_REMOVED_IN = (0, 34, 1)  # ollama/ollama PR #14969


def refuses_adapters(version: str) -> bool:
    """True for an Ollama version that no longer creates adapter models (0.34.1 and later)."""
    parts = []
    for piece in version.split("-")[0].split(".")[:3]:
        if not piece.isdigit():
            return False
        parts.append(int(piece))
    return bool(parts) and tuple(parts) >= ADAPTERS_REMOVED_IN


class AdapterRefused(Failure):
    """Ollama refused to create an adapter model: merging into the base is the way out."""


def _refusal_as_failure(events: Iterator[Any]) -> Iterator[Any]:
    """`events`, with Ollama's refusal of adapters yielded as an `AdapterRefused` failure."""
    try:
        yield from events
    except AdaptersUnsupported as e:
        yield AdapterRefused(e.message, e.hint)


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
        self._merge_check: MergeCheck | None = None
        self._merging = False  # the operation running (or last run) merges first
        self._notes: list[str] = []
        self._lookup_seq = 0
        self._lookup_running = False
        self._looked_up = ""  # the installed base whose GGUF was last looked for
        self._start_when_found = False  # "Merge into the base and import" waits for the lookup
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
        self.merge_button = QPushButton("Merge into the base and import")
        self.merge_button.setToolTip(
            "Merge the adapter into the base model's GGUF and import the merged model: works "
            "with every Ollama version"
        )
        self.merge_button.clicked.connect(self._on_merge_clicked)
        self.error_box = QWidget()
        error_layout = QVBoxLayout(self.error_box)
        error_layout.setContentsMargins(0, 0, 0, 0)
        title_row = QHBoxLayout()
        title_row.addWidget(self.error_title, 1)
        title_row.addWidget(self.merge_button)
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
                "and importing the merged GGUF works with every version: choose “Merge into "
                "a base GGUF file, then import” above."
            )
        return notes

    # ---- checking --------------------------------------------------------------------------

    def _schedule_check(self, *_: object) -> None:
        self._check_seq += 1  # a check still running is now out of date
        if self.is_busy():
            return
        self._update_base_file()
        if self.form.current() is None:
            self._check_timer.stop()
            nothing = NOTHING_TO_MERGE if self.form.is_merge() else NOTHING_TO_CHECK
            self.checks_label.setText(self._muted(nothing))
        else:
            self.checks_label.setText(self._muted("Checking…"))
            self._check_timer.start()

    def check(self) -> None:
        """Validate the request on a worker and show what was found (nothing is uploaded)."""
        self._check_timer.stop()
        request, manager = self.form.current(), self._manager()
        if request is None or manager is None or self.is_busy():
            return
        self._check_seq += 1
        seq = self._check_seq

        def op() -> ImportPlan | MergeCheck:
            if isinstance(request, MergeImportRequest):
                return check_merge(manager, request)
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
            self._plan, self._merge_check = None, None
            colour = tone(self, "error")
            self.checks_label.setText(
                f"<span style='color:{colour}'>✗ This import would fail:</span> "
                f"{html.escape(result.message)}"
            )
            self._show_problem("The check found a problem:", result)
        elif isinstance(result, MergeCheck):
            self._plan, self._merge_check = None, result
            self._notes = list(result.plan.notes)
            self._show_checks()
            self.error_box.hide()
        elif isinstance(result, ImportPlan):
            self._plan, self._merge_check = result, None
            self._notes = self._plan_notes(result)
            self._show_checks()
            self.error_box.hide()

    def _show_checks(self) -> None:
        if self._merge_check is not None:
            self.checks_label.setText(merge_plan_html(self, self._merge_check, self._notes))
        elif self._plan is not None:
            self.checks_label.setText(plan_html(self, self._plan, self._notes))

    # ---- the base GGUF of a merge ----------------------------------------------------------

    def _update_base_file(self) -> None:
        """Look for the installed base's GGUF when merging and the user has not chosen one."""
        form = self.form
        name = form.base_name()
        if not form.is_merge() or not form.base_file_is_auto():
            return
        if not name:
            self._looked_up = ""
            if form.base_file():  # found for a base that is no longer chosen
                form.set_base_file("", auto=True)
            form.set_base_file_hint("")
        elif name != self._looked_up:
            self._find_base_file(name)

    def _find_base_file(self, name: str) -> None:
        manager = self._manager()
        if manager is None:
            return
        self._lookup_seq += 1
        seq = self._lookup_seq
        self._looked_up = name
        self._lookup_running = True
        self.form.set_base_file_hint(f"Looking for the GGUF file of {name} in Ollama's store…")

        def op() -> Path:
            return find_ollama_blob(name, manager.client.show(name))

        run_in_background(
            reporting(op),
            on_done=lambda result: self._on_base_file_found(seq, name, result),
            on_error=lambda message: self._on_base_file_found(seq, name, Failure(message, "")),
            owner=self,
        )

    def _on_base_file_found(self, seq: int, name: str, result: object) -> None:
        if seq != self._lookup_seq:
            return  # another base was chosen since
        self._lookup_running = False
        start, self._start_when_found = self._start_when_found, False
        form = self.form
        if form.base_name() != name or not form.base_file_is_auto() or self.is_busy():
            return
        if isinstance(result, Path):
            form.set_base_file_hint(f"The file behind {name}, read in place from Ollama's store.")
            form.set_base_file(str(result), auto=True)
            if start:
                self.start()
        elif isinstance(result, Failure):
            form.set_base_file_hint(f"{result.message} {BASE_FILE_HINT}")
            if start:
                self._show_problem(
                    "The merge needs the base model's GGUF file:",
                    Failure(result.message, f"{BASE_FILE_HINT} Then press Import."),
                )

    def _on_merge_clicked(self) -> None:
        """After Ollama refused the adapter: merge it into its base with the same inputs."""
        self.merge_button.hide()
        self._start_when_found = True
        self.form.set_merge(True)  # the form's change looks for the base's GGUF if needed
        if self._lookup_running:
            return  # `_on_base_file_found` starts the import
        self._start_when_found = False
        if self.form.current() is not None:
            self.start()
        else:
            self._show_problem(
                "The merge needs the base model's GGUF file:",
                Failure("No base GGUF file is chosen.", f"{BASE_FILE_HINT} Then press Import."),
            )

    def checks_text(self) -> str:
        return plain_text(self.checks_label.text())

    # ---- importing -------------------------------------------------------------------------

    def is_busy(self) -> bool:
        return self._cancel is not None

    def start(self) -> None:
        """Import what the form asks for (the Import button)."""
        request, manager = self.form.current(), self._manager()
        if self.is_busy():
            return
        if request is None:
            what = "Choose a file (or an adapter folder) and a name."
            if self.form.is_merge() and self.form.request() is not None:
                what = "Choose the base model's GGUF file to merge the adapter into."
            self._show_problem("Nothing to import yet:", Failure(what, ""))
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
        self._merging = isinstance(request, MergeImportRequest)
        self._plan, self._merge_check = None, None  # the import's own checks replace them
        self._reset_outcome()
        self._set_busy(True)

        def events() -> Iterator[Any]:
            if isinstance(request, MergeImportRequest):
                return merge_then_import(manager, request, cancel)
            assert isinstance(request, ImportRequest)
            return _refusal_as_failure(manager.import_model(request, cancel))

        run_in_background(
            reporting(
                lambda: throttled(events(), lambda e: isinstance(e, ImportProgress | MergeProgress))
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
        self.steps.reset(merge=self._merging)
        self.progress.setValue(0)
        self.progress.setRange(0, 1000)
        self.progress_text.setText("")
        self.error_box.hide()
        self.result_label.setText("")
        self.use_button.hide()

    def _on_import_event(self, event: object) -> None:
        steps = self.steps
        merged = self._merging and steps.state("merging") == "done"
        if isinstance(event, ImportStep) and merged and event.step == "validating":
            # The merged file is validated again before it is uploaded: still the same step.
            steps.set_detail("validating", "passed; checking the merged file")
            self.progress.setRange(0, 0)
            self.progress_text.setText(event.text + "…")
        elif isinstance(event, ImportStep):
            steps.begin(event.step, html.escape(event.text))
            busy = event.step in ("validating", "creating", "verifying")
            self.progress.setRange(0, 0 if busy else 1000)
            self.progress_text.setText(event.text + "…")
        elif isinstance(event, MergeValidated):
            self._plan, self._merge_check = None, event.check
            self._notes = list(event.check.plan.notes)
            steps.set_state("validating", "done", "passed")
            self._show_checks()
        elif isinstance(event, ImportValidated) and self._merging and self._merge_check:
            self._merge_check = replace(self._merge_check, plan=event.plan)
            steps.set_detail("validating", "passed, the merged file too")
            self._show_checks()
        elif isinstance(event, ImportValidated):
            self._plan = event.plan
            self._notes = self._plan_notes(event.plan)
            steps.set_state("validating", "done", "passed")
            self._show_checks()
        elif isinstance(event, ImportNotice):
            checked = self._plan is not None or self._merge_check is not None
            if event.text not in self._notes and checked:
                self._notes.append(event.text)
                self._show_checks()
        elif isinstance(event, MergeStep):
            steps.begin("merging", html.escape(event.text))
            self.progress.setRange(0, 1000)
            self.progress.setValue(0)
            self.progress_text.setText(event.text + "…")
        elif isinstance(event, MergeProgress):
            done = f"{size_text(event.done)} of {size_text(event.total)}"
            pct = 100 * event.done // event.total if event.total else 100
            steps.set_detail("merging", f"{done} ({pct}%)")
            self.progress.setRange(0, 1000)
            self.progress.setValue(1000 * event.done // event.total if event.total else 1000)
            self.progress_text.setText(f"Writing {event.file}: {done} ({pct}%)")
        elif isinstance(event, Merged):
            r = event.result
            steps.set_state(
                "merging",
                "done",
                f"{r.tensors_merged} tensors merged ({r.out_type}), {size_text(r.bytes)} "
                f"in {r.seconds:.1f} s",
            )
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
            if self._merging and self.steps.state("merging") != "done":
                text = "Merge cancelled: no merged file was kept, and nothing was sent to Ollama."
            else:
                text = (
                    "Import cancelled. Nothing was left in Ollama: whatever was created is removed."
                )
                if self._merging:
                    text += " The merged file was removed too."
            self.result_label.setText(text)

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
            "answers. It is in the model picker now." + self._merge_words(done)
        )
        self.imported_name = name
        self.use_button.show()
        self.imported.emit(done)

    def _merge_words(self, done: ImportFinished) -> str:
        merged_from = done.lineage.merged_from
        if not merged_from:
            return ""
        adapter = Path(str(merged_from.get("adapter") or "")).name
        return html.escape(
            f" It was merged from the adapter {adapter}; the merged GGUF is kept at "
            f"{done.lineage.source}."
        )

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
        self.merge_button.setVisible(isinstance(failure, AdapterRefused))
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
