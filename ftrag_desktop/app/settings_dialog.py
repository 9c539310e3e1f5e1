"""The Settings dialog: edits a copy of the settings, validates as you type, never blocks.

Grouped sections (Ollama, Models, Retrieval, Generation, Indexing) edit every user setting.  Each
field shows its own problem right under it (the rules are `config.validate_settings`), and Save
stays disabled while any is left.  Before the user confirms, the dialog says what the change
will cause (a re-index, new vectors, a reconnect: `config.compare_settings`).  "Test connection"
asks the typed address for Ollama's version and its models on a worker thread.

The dialog never touches the live settings: `settings()` returns a new `Settings` that the
caller hands to the controller.
"""

from __future__ import annotations

import copy
import html
from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ftrag_desktop.app.workers import run_in_background
from ftrag_desktop.config import (
    CHUNK_SIZE_RANGE,
    LIBRARY_FIELDS,
    NUM_CTX_RANGE,
    REQUEST_TIMEOUT_RANGE,
    TEMPERATURE_RANGE,
    TOP_K_RANGE,
    Settings,
    compare_settings,
    host_problem,
    normalize_host,
    validate_settings,
)
from ftrag_desktop.core.answer import SYSTEM_PROMPT
from ftrag_desktop.core.llm import ModelInfo, OllamaClient, normalize_model_name
from ftrag_desktop.errors import OllamaError

PROBE_TIMEOUT_S = 10.0
PROBE_CONNECT_TIMEOUT_S = 3.0
ERROR_COLOUR = {"light": "#b3261e", "dark": "#ff8a80"}
OK_COLOUR = {"light": "#1e7b34", "dark": "#7ddc8f"}
SEARCH_MODE_LABELS = {
    "hybrid": "Hybrid (meaning + keywords)",
    "vector": "Meaning only (vectors)",
    "keyword": "Keywords only",
}
PATTERNS_PLACEHOLDER = "drafts/\n*.log\n/archive/2019/\n!archive/2019/keep.pdf"


@dataclass(frozen=True)
class ProbeResult:
    """What "Test connection" found at an address."""

    host: str
    version: str
    models: tuple[ModelInfo, ...]


def probe_ollama(host: str) -> ProbeResult:
    """Ask the server at `host` for its version and models (on a worker: it waits on the net)."""
    with OllamaClient(
        host, timeout_s=PROBE_TIMEOUT_S, connect_timeout_s=PROBE_CONNECT_TIMEOUT_S
    ) as client:
        version = client.version()
        try:
            models = tuple(client.list_models())
        except OllamaError:
            models = ()  # it answered: the connection works even if the list failed
    return ProbeResult(host, version, models)


def _default_host() -> str:
    """Where an empty address points: $OLLAMA_HOST (often written without a scheme) or the
    standard local address."""
    return normalize_host(Settings().resolved_ollama_host())


def _is_dark(widget: QWidget) -> bool:
    return widget.palette().color(QPalette.ColorRole.Window).lightness() < 128


class SettingsDialog(QDialog):
    """Open with `open()`; on `accepted`, read `settings()`."""

    probe_finished = Signal(bool, str)  # reachable, the text shown under the address

    def __init__(
        self,
        settings: Settings,
        models: Sequence[ModelInfo] = (),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setObjectName("settings-dialog")
        self._original = copy.deepcopy(settings)
        # The fields this dialog has no widget for travel along unchanged (until "Restore
        # defaults", which resets them too).
        self._base = copy.deepcopy(settings)
        self._models: tuple[ModelInfo, ...] = tuple(models)
        self._errors: dict[str, QLabel] = {}
        self._loading = False
        self._probing = False
        self._build()
        self._fill_models()
        self._load(self._base)
        self._connect()
        self._revalidate()

    # ---- layout --------------------------------------------------------------------------

    def _build(self) -> None:
        left = QVBoxLayout()
        left.addWidget(self._build_ollama())
        left.addWidget(self._build_models())
        left.addWidget(self._build_retrieval())
        left.addStretch(1)
        right = QVBoxLayout()
        right.addWidget(self._build_generation(), 3)
        right.addWidget(self._build_indexing(), 2)
        columns = QHBoxLayout()
        columns.addLayout(left, 1)
        columns.addLayout(right, 1)

        self.notice = QLabel()
        self.notice.setObjectName("settings-notice")
        self.notice.setWordWrap(True)
        self.notice.setTextFormat(Qt.TextFormat.RichText)
        self.other_errors = self._error_label("other")
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok
            | QDialogButtonBox.StandardButton.Cancel
            | QDialogButtonBox.StandardButton.RestoreDefaults
        )
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.restore_button = self.buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults)

        column = QVBoxLayout(self)
        column.addLayout(columns, 1)
        column.addWidget(self.notice)
        column.addWidget(self.other_errors)
        column.addWidget(self.buttons)
        self.resize(940, 640)

    def _error_label(self, name: str) -> QLabel:
        label = QLabel()
        label.setObjectName(f"error-{name}")
        label.setWordWrap(True)
        colour = ERROR_COLOUR["dark" if _is_dark(self) else "light"]
        label.setStyleSheet(f"color: {colour};")
        label.hide()
        self._errors[name] = label
        return label

    def _row(self, form: QFormLayout, text: str, name: str, widget: QWidget) -> None:
        label = QLabel(text)
        label.setBuddy(widget)
        form.addRow(label, widget)
        form.addRow("", self._error_label(name))

    def _hint(self, text: str) -> QLabel:
        label = QLabel(text)
        label.setWordWrap(True)
        label.setEnabled(False)  # the palette's "disabled" text: a quiet note on any theme
        return label

    def _build_ollama(self) -> QGroupBox:
        box = QGroupBox("Ollama")
        form = QFormLayout(box)
        self.host_edit = QLineEdit()
        self.host_edit.setPlaceholderText(f"{_default_host()} (default)")
        self.host_edit.setClearButtonEnabled(True)
        self.test_button = QPushButton("Test connection")
        self.test_button.setAutoDefault(False)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.host_edit, 1)
        row.addWidget(self.test_button)
        holder = QWidget()
        holder.setLayout(row)
        label = QLabel("&Address:")
        label.setBuddy(self.host_edit)
        form.addRow(label, holder)
        self.probe_status = QLabel()
        self.probe_status.setObjectName("probe-status")
        self.probe_status.setWordWrap(True)
        self.probe_status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.probe_status.hide()
        form.addRow("", self.probe_status)
        form.addRow("", self._error_label("ollama_host"))
        self.timeout = QDoubleSpinBox()
        self.timeout.setRange(*REQUEST_TIMEOUT_RANGE)
        self.timeout.setDecimals(0)
        self.timeout.setSingleStep(10)
        self.timeout.setSuffix(" s")
        self.timeout.setToolTip("How long to wait for Ollama to answer (a model may be loading)")
        self._row(form, "Answer &timeout:", "request_timeout_s", self.timeout)
        return box

    def _model_combo(self) -> QComboBox:
        combo = QComboBox()
        combo.setEditable(True)
        combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        combo.setMinimumContentsLength(24)
        return combo

    def _build_models(self) -> QGroupBox:
        box = QGroupBox("Models")
        form = QFormLayout(box)
        self.chat_model = self._model_combo()
        self.chat_model.setToolTip(
            "The model that writes answers (new conversations start with it)"
        )
        self._row(form, "&Chat model:", "chat_model", self.chat_model)
        self.chat_model_note = self._hint("")
        form.addRow("", self.chat_model_note)
        self.embed_model = self._model_combo()
        line = self.embed_model.lineEdit()
        if line is not None:
            line.setPlaceholderText("none: keyword search only")
        self.embed_model.setToolTip(
            "The model that turns passages into vectors for search by meaning; "
            "leave it empty for keyword search only"
        )
        self._row(form, "&Embedding model:", "embed_model", self.embed_model)
        self.embed_model_note = self._hint("")
        form.addRow("", self.embed_model_note)
        return box

    def _build_retrieval(self) -> QGroupBox:
        box = QGroupBox("Retrieval")
        form = QFormLayout(box)
        self.chunk_size = QSpinBox()
        self.chunk_size.setRange(*CHUNK_SIZE_RANGE)
        self.chunk_size.setSingleStep(100)
        self.chunk_size.setSuffix(" characters")
        self.chunk_size.setToolTip("The length of the passages documents are cut into")
        self._row(form, "Chunk &size:", "chunk_size", self.chunk_size)
        self.chunk_overlap = QSpinBox()
        self.chunk_overlap.setRange(0, CHUNK_SIZE_RANGE[1])
        self.chunk_overlap.setSingleStep(25)
        self.chunk_overlap.setSuffix(" characters")
        self.chunk_overlap.setToolTip("How much consecutive passages share (at most half a chunk)")
        self._row(form, "Chunk &overlap:", "chunk_overlap", self.chunk_overlap)
        self.top_k = QSpinBox()
        self.top_k.setRange(*TOP_K_RANGE)
        self.top_k.setToolTip("How many passages are given to the model with each question")
        self._row(form, "Sources per &answer:", "top_k", self.top_k)
        self.search_mode = QComboBox()
        for mode, text in SEARCH_MODE_LABELS.items():
            self.search_mode.addItem(text, mode)
        self._row(form, "Search &mode:", "search_mode", self.search_mode)
        return box

    def _build_generation(self) -> QGroupBox:
        box = QGroupBox("Generation")
        form = QFormLayout(box)
        self.num_ctx = QSpinBox()
        self.num_ctx.setRange(0, NUM_CTX_RANGE[1])
        self.num_ctx.setSingleStep(1024)
        self.num_ctx.setSpecialValueText("Automatic (fits each prompt)")
        self.num_ctx.setSuffix(" tokens")
        self.num_ctx.setToolTip(
            "The model's context window. Automatic sizes it to each question's prompt; a fixed "
            "size avoids reloading the model, and sources are dropped to fit it."
        )
        self._row(form, "Context &length:", "num_ctx", self.num_ctx)
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(*TEMPERATURE_RANGE)
        self.temperature.setDecimals(2)
        self.temperature.setSingleStep(0.1)
        self.temperature.setToolTip("Lower keeps answers close to the sources; higher varies more")
        self._row(form, "&Temperature:", "temperature", self.temperature)
        self.system_prompt = QPlainTextEdit()
        self.system_prompt.setPlaceholderText(f"Empty: the built-in prompt:\n\n{SYSTEM_PROMPT}")
        self.system_prompt.setTabChangesFocus(True)
        self._row(form, "S&ystem prompt:", "system_prompt", self.system_prompt)
        return box

    def _build_indexing(self) -> QGroupBox:
        box = QGroupBox("Indexing")
        column = QVBoxLayout(box)
        label = QLabel("E&xcluded files and folders, one pattern per line:")
        self.excluded_patterns = QPlainTextEdit()
        self.excluded_patterns.setPlaceholderText(PATTERNS_PLACEHOLDER)
        self.excluded_patterns.setTabChangesFocus(True)
        label.setBuddy(self.excluded_patterns)
        column.addWidget(label)
        column.addWidget(self.excluded_patterns, 1)
        column.addWidget(self._error_label("excluded_patterns"))
        column.addWidget(
            self._hint(
                "As in .gitignore, relative to each watched folder: *.log and drafts/ match "
                "anywhere, /archive only at the top, ! re-includes, # starts a comment. "
                "Hidden and temporary files are always left out."
            )
        )
        return box

    def _connect(self) -> None:
        self.host_edit.textChanged.connect(self._on_host_edited)
        self.test_button.clicked.connect(self._on_test_clicked)
        for spin in (self.chunk_size, self.chunk_overlap, self.top_k, self.num_ctx):
            spin.valueChanged.connect(self._on_field_changed)
        for dspin in (self.timeout, self.temperature):
            dspin.valueChanged.connect(self._on_field_changed)
        for combo in (self.chat_model, self.embed_model):
            combo.editTextChanged.connect(self._on_field_changed)
        self.search_mode.currentIndexChanged.connect(self._on_field_changed)
        self.system_prompt.textChanged.connect(self._on_field_changed)
        self.excluded_patterns.textChanged.connect(self._on_field_changed)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.restore_button.clicked.connect(self.restore_defaults)

    # ---- values --------------------------------------------------------------------------

    def _fill_models(self) -> None:
        """Offer the installed models; whatever is typed in the boxes stays as it is."""
        for combo, embedding in ((self.chat_model, False), (self.embed_model, True)):
            text = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            if embedding:
                combo.addItem("")  # none: keyword search only
            for m in self._models:
                if m.is_embedding == embedding:
                    combo.addItem(m.name)
                    details = " · ".join(
                        x for x in (m.family, m.parameter_size, m.quantization) if x
                    )
                    combo.setItemData(combo.count() - 1, details, Qt.ItemDataRole.ToolTipRole)
            combo.setEditText(text)
            combo.blockSignals(False)

    def _load(self, s: Settings) -> None:
        self._loading = True
        try:
            self.host_edit.setText(s.ollama_host)
            self.timeout.setValue(s.request_timeout_s)
            self.chat_model.setEditText(s.chat_model)
            self.embed_model.setEditText(s.embed_model)
            self.chunk_size.setValue(s.chunk_size)
            self.chunk_overlap.setValue(s.chunk_overlap)
            self.top_k.setValue(s.top_k)
            index = self.search_mode.findData(s.search_mode)
            self.search_mode.setCurrentIndex(max(index, 0))
            self.num_ctx.setValue(s.num_ctx)
            self.temperature.setValue(s.temperature)
            self.system_prompt.setPlainText(s.system_prompt)
            self.excluded_patterns.setPlainText("\n".join(s.excluded_patterns))
        finally:
            self._loading = False

    def settings(self) -> Settings:
        """A new `Settings` with the dialog's values (the one passed in is never changed)."""
        s = copy.deepcopy(self._base)
        for name in LIBRARY_FIELDS:  # the library's, as they were when the dialog opened
            setattr(s, name, copy.deepcopy(getattr(self._original, name)))
        s.ollama_host = self.host_edit.text().strip()
        s.request_timeout_s = float(self.timeout.value())
        s.chat_model = self.chat_model.currentText().strip()
        s.embed_model = self.embed_model.currentText().strip()
        s.chunk_size = self.chunk_size.value()
        s.chunk_overlap = self.chunk_overlap.value()
        s.top_k = self.top_k.value()
        s.search_mode = str(self.search_mode.currentData() or "hybrid")
        s.num_ctx = self.num_ctx.value()
        s.temperature = round(float(self.temperature.value()), 2)
        prompt = self.system_prompt.toPlainText()
        s.system_prompt = prompt if prompt.strip() else ""
        lines = self.excluded_patterns.toPlainText().splitlines()
        s.excluded_patterns = [line.strip() for line in lines if line.strip()]
        return s

    def restore_defaults(self) -> None:
        """Every setting back to its default; the watched folders stay."""
        defaults = Settings()
        for name in LIBRARY_FIELDS:
            setattr(defaults, name, copy.deepcopy(getattr(self._original, name)))
        self._base = defaults
        self._load(defaults)
        self._on_host_edited()
        self._revalidate()

    def accept(self) -> None:
        if validate_settings(self.settings()):
            return  # Save is disabled then; this guards the Enter key and programmatic calls
        super().accept()

    # ---- validation ----------------------------------------------------------------------

    def error_text(self, name: str) -> str:
        """The problem shown under the field `name` ("" when there is none)."""
        label = self._errors.get(name)
        return label.text() if label is not None and label.isVisibleTo(self) else ""

    def _on_field_changed(self) -> None:
        if not self._loading:
            self._revalidate()

    def _revalidate(self) -> None:
        edited = self.settings()
        errors = {e.field: e.message for e in validate_settings(edited)}
        others = []
        for name, message in errors.items():
            if name not in self._errors:
                others.append(f"{name}: {message}")
        for name, label in self._errors.items():
            text = "\n".join(others) if name == "other" else errors.get(name, "")
            label.setText(text)
            label.setVisible(bool(text))
        self.ok_button.setEnabled(not errors)
        change = compare_settings(self._original, edited)
        self.ok_button.setText("Save and re-index" if change.sync_needed else "Save")
        consequences = change.consequences()
        self.notice.setText(
            "<b>When you save:</b> " + " ".join(html.escape(c) for c in consequences)
            if consequences
            else ""
        )
        self.notice.setVisible(bool(consequences))
        self._update_model_notes(edited)

    def _update_model_notes(self, s: Settings) -> None:
        """Say so when a chosen model is not among Ollama's (only once the list is known)."""
        installed = {normalize_model_name(m.name) for m in self._models}
        notes = (
            (s.chat_model, self.chat_model_note, "the app offers to pull it after saving, or run"),
            (s.embed_model, self.embed_model_note, "for search by meaning, run"),
        )
        for name, note, advice in notes:
            missing = bool(installed) and bool(name) and normalize_model_name(name) not in installed
            note.setText(
                f"Not installed in Ollama: {advice} `ollama pull {name}`." if missing else ""
            )
            note.setVisible(missing)

    # ---- test connection -----------------------------------------------------------------

    def _on_host_edited(self) -> None:
        if not self._probing:  # a result about another address would mislead
            self.probe_status.clear()
            self.probe_status.hide()
        self._on_field_changed()

    def _on_test_clicked(self) -> None:
        host = self.host_edit.text().strip() or _default_host()
        problem = host_problem(host)
        if problem:
            self._show_probe(False, problem)
            return
        self._probing = True
        self.test_button.setEnabled(False)
        self.probe_status.setStyleSheet("")
        self.probe_status.setText(f"Connecting to {host}…")
        self.probe_status.show()
        run_in_background(
            lambda: probe_ollama(host),
            on_done=self._on_probe_done,
            on_error=self._on_probe_failed,
            owner=self,
        )

    def _on_probe_done(self, result: object) -> None:
        assert isinstance(result, ProbeResult)
        self._probing = False
        self.test_button.setEnabled(True)
        if result.models:
            self._models = result.models
            self._fill_models()
        n = len(result.models)
        self._show_probe(
            True,
            f"Connected: Ollama {result.version} at {result.host}, "
            f"{n} model{'s' if n != 1 else ''} installed.",
        )
        self._revalidate()

    def _on_probe_failed(self, message: str) -> None:
        self._probing = False
        self.test_button.setEnabled(True)
        self._show_probe(False, message)

    def _show_probe(self, ok: bool, text: str) -> None:
        palette = OK_COLOUR if ok else ERROR_COLOUR
        colour = palette["dark" if _is_dark(self) else "light"]
        self.probe_status.setStyleSheet(f"color: {colour};")
        self.probe_status.setText(("✓ " if ok else "✗ ") + text)
        self.probe_status.show()
        self.probe_finished.emit(ok, text)


__all__ = ["ProbeResult", "SettingsDialog", "probe_ollama"]
