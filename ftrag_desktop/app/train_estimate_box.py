"""The Train tab's "Before starting" box: the estimate of `ftrag train --estimate-only`.

It shows how long the run would take, its steps, the peak memory against what is free, the
device and the parameters trained (`estimate_lines` turns the CLI's ``estimate`` event into
those words), the CLI's notices (e.g. no validation set), a checkpoint the same run left (Start
then continues from it), or, when the run cannot start, why: a problem of the form, or the
CLI's error with its hint (a run that does not fit in memory is refused that way).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGroupBox, QLabel, QVBoxLayout, QWidget

from ftrag_desktop.app.models_ops import plain_text, size_text, tone
from ftrag_desktop.app.train_files import SavedCheckpoint
from ftrag_desktop.core.lineage_text import duration_text

__all__ = ["EstimateBox", "estimate_lines"]


def _count(n: Any) -> str:
    n = int(n or 0)
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n:,}"


def estimate_lines(ev: dict[str, Any]) -> list[str]:
    """The `estimate` event in words, most important first."""
    e: dict[str, Any] = ev.get("estimate") or {}
    base: dict[str, Any] = ev.get("base") or {}
    lines = [
        f"About {duration_text(float(e.get('seconds') or 0))} for {e.get('steps')} steps "
        f"({float(e.get('epochs') or 0):g} epochs of {e.get('steps_per_epoch')} steps), "
        f"at ~{float(e.get('tokens_per_s') or 0):.0f} tokens/s "
        f"({e.get('throughput_source', 'assumed')})",
        f"Peak memory about {size_text(e.get('peak_memory_bytes'))} of "
        f"{size_text(e.get('available_memory_bytes'))} free, on {e.get('device')}",
        f"{_count(e.get('trainable_parameters'))} of {_count(e.get('parameters'))} parameters "
        f"trained; {e.get('examples')} training and {e.get('valid_examples')} validation "
        f"examples, ~{int(e.get('tokens_per_epoch') or 0):,} tokens per epoch",
    ]
    if base:
        what = " · ".join(str(x) for x in (base.get("architecture"), base.get("quantization")) if x)
        name = base.get("ollama_name") or Path(str(base.get("path") or "")).name or base.get("name")
        lines.append(f"Base: {name} ({what}, {size_text(base.get('file_bytes'))})")
    return lines


class EstimateBox(QGroupBox):
    """See the module docstring."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Before starting", parent)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setMinimumHeight(self.fontMetrics().lineSpacing() * 4)
        layout = QVBoxLayout(self)
        layout.addWidget(self.label)
        self._body = ""
        self._extra = ""

    def text(self) -> str:
        return plain_text(self.label.text())

    def _set(self, body: str, extra: str = "") -> None:
        self._body, self._extra = body, extra
        self.label.setText(body + extra)

    def show_waiting(self, text: str) -> None:
        self._set(f"<span style='color:{tone(self, 'muted')}'>{html.escape(text)}</span>")

    def show_problem(self, text: str) -> None:
        self._set(f"<span style='color:{tone(self, 'warn')}'>{html.escape(text)}</span>")

    def show_error(self, message: str, hint: str) -> None:
        body = f"<b>{html.escape(message)}</b>"
        if hint:
            body += f"<br>{html.escape(hint)}"
        self._set(f"<span style='color:{tone(self, 'error')}'>{body}</span>")

    def show_estimate(self, ev: dict[str, Any], notices: list[str]) -> None:
        lines = [html.escape(line) for line in estimate_lines(ev)]
        lines[0] = f"<b>{lines[0]}</b>"
        muted = tone(self, "muted")
        lines += [f"<span style='color:{muted}'>{html.escape(n)}</span>" for n in notices]
        self._set("<br>".join(lines))

    def show_checkpoint(self, saved: SavedCheckpoint | None) -> None:
        """Say (below the estimate) that Start continues the run from its checkpoint."""
        extra = ""
        if saved is not None:
            total = f" of {saved.total_steps}" if saved.total_steps else ""
            extra = (
                f"<br><span style='color:{tone(self, 'ok')}'>This run stopped at step "
                f"{saved.step}{total}; its checkpoint is kept, and Start or Resume continues "
                "from it.</span>"
            )
        self._set(self._body, extra)
