"""The Train tab's run panel: where a training run stands, live, from the child's JSON events.

A strip of the pipeline's stages (checking → … → recording) with the current one in bold, a
headline, a progress bar (steps while training; bytes while merging and importing), the
figures of the last step (loss, validation loss, tokens/s, time left), the live loss chart
(`train_chart.LossChart`), an outcome box (the lineage of the finished model with "Use in
chat" and "Evaluate against the base"; or the error's message and hint; or what a cancel kept)
and a log of what happened.  `handle(event)` takes one event dict of ``ftrag train --json``;
the view decides what the buttons do.
"""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ftrag_desktop.app.formatting import human_eta
from ftrag_desktop.app.models_ops import plain_text, size_text, tone
from ftrag_desktop.app.train_chart import LossChart
from ftrag_desktop.core.lineage_text import duration_text, loss_text, training_rows
from ftrag_desktop.core.train_events import STAGES

__all__ = ["RunPanel"]

LOG_LINES = 2000


class RunPanel(QWidget):
    """See the module docstring."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.stage = ""
        self._last_val: float | None = None
        self.stages = QLabel()
        self.stages.setTextFormat(Qt.TextFormat.RichText)
        self.headline = QLabel("Choose a base model and a training set, then Start.")
        self.headline.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("")
        self.figures = QLabel(" ")
        self.figures.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.chart = LossChart()
        self.outcome = QLabel()
        self.outcome.setWordWrap(True)
        self.outcome.setTextFormat(Qt.TextFormat.RichText)
        self.outcome.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.outcome.setVisible(False)
        self.use_button = QPushButton("Use in chat")
        self.use_button.setToolTip("Answer the chat's questions with the new model")
        self.evaluate_button = QPushButton("Evaluate against the base")
        self.evaluate_button.setToolTip(
            "Open the Evaluate tab with the new model and its base, with and without documents"
        )
        self.action_row = QWidget()
        row = QHBoxLayout(self.action_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.use_button)
        row.addWidget(self.evaluate_button)
        row.addStretch(1)
        self.action_row.setVisible(False)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(LOG_LINES)
        self.log.setPlaceholderText("What the run does is listed here.")

        top = QWidget()
        column = QVBoxLayout(top)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.stages)
        column.addWidget(self.headline)
        column.addWidget(self.progress)
        column.addWidget(self.figures)
        column.addWidget(self.chart, 1)
        column.addWidget(self.outcome)
        column.addWidget(self.action_row)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(self.log)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 1)
        split.setSizes([520, 110])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)
        self._show_stages()

    # ---- a run -----------------------------------------------------------------------------

    def begin(self, total_steps: int, *, resuming: bool) -> None:
        """A run (or its resumption) starts: clear what the last one showed."""
        self.stage = ""
        self.outcome.setVisible(False)
        self.action_row.setVisible(False)
        if not resuming:
            self.chart.reset(total_steps)
            self._last_val = None
        self._set_steps(0, total_steps)
        self.figures.setText(" ")
        self.headline.setText("Starting…")
        self._show_stages()
        self.say("Resuming the run…" if resuming else "Starting a run…")

    def handle(self, ev: dict[str, Any]) -> None:
        kind = ev.get("event")
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(ev)

    def say(self, text: str) -> None:
        self.log.appendPlainText(text)

    def show_finished(self, ev: dict[str, Any]) -> None:
        lineage = ev.get("lineage") if isinstance(ev.get("lineage"), dict) else {}
        training = lineage.get("training") if isinstance(lineage, dict) else None
        rows = training_rows(training) if isinstance(training, dict) else []
        cells = "".join(
            f"<tr><td style='padding-right:10px'><b>{html.escape(k)}</b></td>"
            f"<td>{html.escape(v)}</td></tr>"
            for k, v in rows
        )
        colour = tone(self, "ok")
        self.outcome.setText(
            f"<p style='color:{colour}'><b>{html.escape(str(ev.get('model')))} is ready in "
            f"Ollama</b> ({ev.get('steps')} steps in {duration_text(ev.get('seconds'))}).</p>"
            f"<table>{cells}</table>"
        )
        self.outcome.setVisible(True)
        self.action_row.setVisible(True)
        self.headline.setText(f"Finished: {ev.get('model')}")
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.progress.setFormat("done")
        self.stage = "finished"
        self._show_stages()

    def show_cancelled(self, step: Any, checkpoint: str | None, *, earlier: bool) -> None:
        """What a cancel kept: this session's checkpoint, an earlier one, or nothing."""
        if checkpoint:
            text = (
                f"Cancelled. The checkpoint of step {step} is kept ({checkpoint}): Resume "
                "continues from it."
            )
        elif earlier:
            text = "Cancelled. The run's last checkpoint is kept: Resume continues from it."
        else:
            text = "Cancelled before a step was saved: Start begins the run again."
        self._outcome(text, "warn")
        self.headline.setText("Cancelled.")
        self.say(text)

    def show_error(self, message: str, hint: str) -> None:
        text = f"<b>{html.escape(message)}</b>"
        if hint:
            text += f"<br>{html.escape(hint)}"
        self.outcome.setText(f"<span style='color:{tone(self, 'error')}'>{text}</span>")
        self.outcome.setVisible(True)
        self.headline.setText("The run stopped with an error.")
        self.say(f"error: {message}" + (f"\nhint: {hint}" if hint else ""))

    def outcome_text(self) -> str:
        return plain_text(self.outcome.text()) if self.outcome.isVisible() else ""

    # ---- events ----------------------------------------------------------------------------

    def _on_stage(self, ev: dict[str, Any]) -> None:
        self.stage = str(ev.get("stage", ""))
        self.headline.setText(str(ev.get("text", "")))
        self._show_stages()
        self.say(f"› {ev.get('text', '')}")
        if self.stage in ("loading", "preparing", "saving", "verifying", "recording"):
            self.progress.setRange(0, 0)  # busy: nothing to count
            self.progress.setFormat("")

    def _on_estimate(self, ev: dict[str, Any]) -> None:
        est = ev.get("estimate") or {}
        steps = int(est.get("steps") or 0)
        if steps:
            self.chart.set_total(steps)
            self._set_steps(0, steps)

    def _on_notice(self, ev: dict[str, Any]) -> None:
        self.say(str(ev.get("text", "")))

    def _on_data(self, ev: dict[str, Any]) -> None:
        total = int(ev.get("total_steps") or 0)
        self.say(
            f"{ev.get('train_examples')} training and {ev.get('valid_examples')} validation "
            f"examples, {int(ev.get('tokens') or 0):,} tokens "
            f"({int(ev.get('trained_tokens') or 0):,} of them answers), {total} steps"
        )
        if total:
            self.chart.set_total(total)

    def _on_resumed(self, ev: dict[str, Any]) -> None:
        step = int(ev.get("step") or 0)
        self.chart.truncate(step)  # drawn before a crash or kill, after the checkpoint
        self.say(f"Resumed from step {step} ({ev.get('checkpoint')})")

    def _on_validation(self, ev: dict[str, Any]) -> None:
        step, loss = int(ev["step"]), float(ev["loss"])
        self.chart.add_valid(step, loss)
        self._last_val = loss
        what = "the base, before training" if step == 0 else f"step {step}"
        self.say(f"Validation loss at {what}: {loss:.4f}")

    def _on_step(self, ev: dict[str, Any]) -> None:
        step, total = int(ev["step"]), int(ev.get("total_steps") or 0)
        self.chart.add_train(step, float(ev["loss"]))
        self._set_steps(step, total)
        parts = [f"Loss {float(ev['loss']):.4f}"]
        if self._last_val is not None:
            parts.append(f"validation {self._last_val:.4f}")
        parts.append(f"epoch {float(ev.get('epoch') or 0):.2f}")
        parts.append(f"{float(ev.get('tokens_per_s') or 0):.1f} tokens/s")
        eta = human_eta(float(ev["eta_s"])) if ev.get("eta_s") is not None else ""
        if eta and step < total:
            parts.append(eta)
        self.figures.setText(" · ".join(parts))

    def _on_checkpoint(self, ev: dict[str, Any]) -> None:
        self.say(f"Checkpoint saved at step {ev.get('step')}")

    def _on_adapter(self, ev: dict[str, Any]) -> None:
        self.say(f"Adapter saved in {ev.get('path')}")

    def _on_progress(self, ev: dict[str, Any]) -> None:
        done, total = int(ev.get("done") or 0), int(ev.get("total") or 0)
        self.progress.setRange(0, 1000)
        self.progress.setValue(round(1000 * done / total) if total else 1000)
        self.progress.setFormat(f"{ev.get('text', '')}: {size_text(done)} of {size_text(total)}")

    def _on_merged(self, ev: dict[str, Any]) -> None:
        self.say(
            f"Merged {ev.get('tensors_merged')} tensors into {ev.get('path')} "
            f"({ev.get('out_type')}, {size_text(ev.get('bytes'))}, "
            f"{duration_text(ev.get('seconds'))})"
        )

    def _on_verified(self, ev: dict[str, Any]) -> None:
        reply = " ".join(str(ev.get("reply", "")).split())[:80]
        self.say(f"llama.cpp loaded the merged model and generated: “{reply}”")

    def _on_finished(self, ev: dict[str, Any]) -> None:
        self.say(
            f"Finished {ev.get('model')}: training loss {loss_text(ev.get('train_loss'))}, "
            f"validation loss {loss_text(ev.get('val_loss'))}"
        )

    # ---- helpers ---------------------------------------------------------------------------

    def _set_steps(self, step: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(min(step, max(total, 1)))
        self.progress.setFormat(f"step {step} of {total}" if total else "")

    def _outcome(self, text: str, kind: str) -> None:
        self.outcome.setText(f"<span style='color:{tone(self, kind)}'>{html.escape(text)}</span>")
        self.outcome.setVisible(True)

    def _show_stages(self) -> None:
        if self.stage == "finished":
            current = len(STAGES)
        else:
            current = STAGES.index(self.stage) if self.stage in STAGES else -1
        muted = tone(self, "muted")
        parts = []
        for i, name in enumerate(STAGES):
            if i == current:
                parts.append(f"<b>{name}</b>")
            elif i < current:
                parts.append(f"<span style='color:{muted}'>✓ {name}</span>")
            else:
                parts.append(f"<span style='color:{muted}'>{name}</span>")
        self.stages.setText(" › ".join(parts))
