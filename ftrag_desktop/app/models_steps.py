"""How an import shows its progress: the step list, and the validation results in words.

`StepList` has one row per import step (validating, merging, hashing, uploading, creating,
verifying, done), each with a state mark and a detail line (bytes, Ollama's status, the probe's
reply); the merging row is shown only when an adapter is merged into its base first.
`plan_html(plan, notes)` says what validation found: the file's type and architecture, the
name, the base, where the chat template comes from, the parameters, the disk, and the notes;
`merge_plan_html(check, notes)` says the same of a merge-then-import, adapter and base file
included.
"""

from __future__ import annotations

import html
import json
from typing import Literal

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QWidget

from ftrag_desktop.app.models_ops import plain_text, size_text, tone
from ftrag_desktop.core.merge_import import MergeCheck
from ftrag_desktop.core.model_import import STEPS, ImportPlan

__all__ = ["STEP_TITLES", "StepList", "StepState", "merge_plan_html", "plan_html", "template_words"]

StepState = Literal["pending", "running", "done", "skipped", "failed", "cancelled"]
STEP_TITLES = {
    "validating": "Validate the file, name, base and disk space",
    "merging": "Merge the adapter into the base GGUF",
    "hashing": "Compute the sha256 digest",
    "uploading": "Upload to Ollama",
    "creating": "Create the model",
    "verifying": "Check that it exists and answers",
    "done": "Ready to use",
}
ALL_STEPS: tuple[str, ...] = (STEPS[0], "merging", *STEPS[1:], "done")
MARKS: dict[StepState, tuple[str, str]] = {
    "pending": ("○", "muted"),
    "running": ("●", "warn"),
    "done": ("✓", "ok"),
    "skipped": ("✓", "ok"),
    "failed": ("✗", "error"),
    "cancelled": ("■", "muted"),
}


class StepList(QWidget):
    """The import's steps, top to bottom, each pending, running, done, skipped, failed or
    cancelled.  `reset(merge=True)` shows the merging step too."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._steps: tuple[str, ...] = ()
        self._states: dict[str, StepState] = {}
        self._marks: dict[str, QLabel] = {}
        self._titles: dict[str, QLabel] = {}
        self._details: dict[str, QLabel] = {}
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(3)
        for row, step in enumerate(ALL_STEPS):
            mark, title, detail = QLabel(), QLabel(STEP_TITLES[step]), QLabel()
            mark.setFixedWidth(mark.fontMetrics().horizontalAdvance("✓") + 6)
            mark.setAlignment(Qt.AlignmentFlag.AlignCenter)
            detail.setTextFormat(Qt.TextFormat.RichText)
            detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            detail.setWordWrap(True)
            grid.addWidget(mark, row, 0, Qt.AlignmentFlag.AlignTop)
            grid.addWidget(title, row, 1, Qt.AlignmentFlag.AlignTop)
            grid.addWidget(detail, row, 2, Qt.AlignmentFlag.AlignTop)
            self._marks[step], self._titles[step], self._details[step] = mark, title, detail
        grid.setColumnStretch(2, 1)
        self.reset()

    def reset(self, merge: bool = False) -> None:
        """All steps pending; the merging step is listed only when `merge`."""
        self._steps = tuple(s for s in ALL_STEPS if merge or s != "merging")
        for step in ALL_STEPS:
            for widget in (self._marks[step], self._titles[step], self._details[step]):
                widget.setVisible(step in self._steps)
            self.set_state(step, "pending", "")

    def steps(self) -> tuple[str, ...]:
        """The steps listed, in order."""
        return self._steps

    def state(self, step: str) -> StepState:
        return self._states[step]

    def detail(self, step: str) -> str:
        """A step's detail line as plain text."""
        return plain_text(self._details[step].text())

    def running(self) -> str | None:
        return next((s for s in self._steps if self._states[s] == "running"), None)

    def set_state(self, step: str, state: StepState, detail: str | None = None) -> None:
        self._states[step] = state
        mark, colour = MARKS[state]
        self._marks[step].setText(f"<span style='color:{tone(self, colour)}'>{mark}</span>")
        font = self._titles[step].font()
        font.setBold(state == "running")
        self._titles[step].setFont(font)
        if detail is not None:
            self._details[step].setText(detail)

    def set_detail(self, step: str, detail: str) -> None:
        """`detail` is rich text: escape what comes from elsewhere."""
        self._details[step].setText(detail)

    def begin(self, step: str, detail: str) -> None:
        """`step` started: what ran before it is finished, what it jumped over is skipped."""
        index = self._steps.index(step)
        for earlier in self._steps[:index]:
            if self._states[earlier] == "running":
                self.set_state(earlier, "done")
            elif self._states[earlier] == "pending":
                self.set_state(earlier, "skipped", "not needed")
        self.set_state(step, "running", detail)

    def finish(self) -> None:
        for step in self._steps:
            if self._states[step] in ("running", "pending"):
                self.set_state(step, "done")

    def stop(self, state: StepState, detail: str) -> None:
        """The import ended early: the running step failed or was cancelled."""
        step = self.running() or next(
            (s for s in self._steps if self._states[s] == "pending"), "validating"
        )
        self.set_state(step, state, detail)

    def text(self) -> str:
        """The list as plain text, one step a line (for tests and accessibility)."""
        return "\n".join(
            f"{MARKS[self._states[s]][0]} {STEP_TITLES[s]}: {self.detail(s)}".rstrip(": ")
            for s in self._steps
        )


def template_words(source: str) -> str:
    """Where the chat template comes from, in words: "gguf (chatml)" -> "from the file …"."""
    if source.startswith("gguf"):
        fmt = source[source.find("(") + 1 : source.rfind(")")] if "(" in source else ""
        return f"from the file itself ({fmt} format)" if fmt else "from the file itself"
    if source == "base":
        return "inherited from the base model"
    return "left to Ollama (the file has no template it can use)"


def plan_html(widget: QWidget, plan: ImportPlan, notes: list[str]) -> str:
    """Validation results as a small table of ✓ rows, then the notes marked ⚠."""
    if plan.kind == "gguf":
        what = "GGUF model (a whole model)"
    elif plan.source.is_dir():
        what = "LoRA adapter (safetensors folder)"
    else:
        what = "LoRA adapter (GGUF)"
    rows = [
        ("Type", f"{what}, {size_text(plan.total_bytes)}"),
        ("Architecture", plan.architecture or "unknown"),
        ("Name in Ollama", plan.name),
    ]
    if plan.base:
        relation = "applied on" if plan.kind == "adapter" else "fine-tuned from"
        rows.append(("Base", f"{relation} {plan.base} (same architecture and size)"))
    elif plan.reported_base:
        rows.append(("Base", f"none chosen; the file names {plan.reported_base}"))
    else:
        rows.append(("Base", "none"))
    rows += _settings_rows(plan)
    return _rows_html(widget, rows, notes)


def merge_plan_html(widget: QWidget, check: MergeCheck, notes: list[str]) -> str:
    """A merge-then-import's checks: the adapter, the base file, the merged file, the import."""
    plan = check.plan
    what = "safetensors folder" if check.adapter_format == "peft" else "GGUF"
    alpha = f"{check.alpha:g}"
    rows = [
        (
            "Type",
            f"LoRA adapter ({what}), {size_text(check.adapter_bytes)}: merged, then imported "
            "as a GGUF",
        ),
        ("Adapter", f"rank {check.rank}, alpha {alpha}, changes {check.tensors} tensors"),
        ("Architecture", check.architecture),
        # Names, not paths: a blob's 64-digit name would not wrap (the paths are in the form).
        ("Base GGUF", f"{check.base_name}, {size_text(check.base_bytes)}: the adapter fits it"),
        (
            "Merged file",
            f"{check.out.name} in the app's data folder ({check.out_type} for the merged tensors)",
        ),
        ("Name in Ollama", plan.name),
        (
            "Base",
            f"fine-tuned from {plan.base}"
            if plan.base
            else f"none chosen; the merged file names {check.base_name}",
        ),
    ]
    rows += _settings_rows(plan)
    extra = list(notes)
    if check.adapter_base_hint:
        extra.insert(
            0,
            f"The adapter says it was trained on {check.adapter_base_hint}: make sure the base "
            f"GGUF ({check.base_name}) is that model.",
        )
    return _rows_html(widget, rows, extra)


def _settings_rows(plan: ImportPlan) -> list[tuple[str, str]]:
    rows = [("Chat template", template_words(plan.template_source))]
    if plan.system:
        rows.append(("System prompt", plan.system))
    params = ", ".join(f"{k} {json.dumps(v)}" for k, v in plan.parameters.items())
    rows.append(("Parameters", params or "the model's defaults"))
    rows.append(("Disk", plan.disk.note))
    return rows


def _rows_html(widget: QWidget, rows: list[tuple[str, str]], notes: list[str]) -> str:
    ok, warn = tone(widget, "ok"), tone(widget, "warn")
    cells = "".join(
        f"<tr><td style='color:{ok}'>✓&nbsp;</td><td><b>{html.escape(k)}</b>&nbsp;&nbsp;</td>"
        f"<td>{html.escape(v)}</td></tr>"
        for k, v in rows
    )
    extra = "".join(
        f"<tr><td style='color:{warn}'>⚠&nbsp;</td><td>{html.escape(n)}</td></tr>"
        for n in dict.fromkeys(notes)
    )
    notes_table = f"<table cellspacing='1' style='margin-top:6px'>{extra}</table>" if extra else ""
    return f"<table cellspacing='1'>{cells}</table>{notes_table}"
