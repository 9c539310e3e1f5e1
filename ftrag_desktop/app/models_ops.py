"""Model operations for the models dialog: failures as data, and how numbers are shown.

The core raises `UserError`s with a message and a hint.  The worker helper would flatten them
into one string; the dialog shows what happened and what to do apart, so `reporting(op)` turns
a `UserError` into a `Failure` value: the result of a call, or the last event of a generator.
`Cancelled` passes through (the worker then finishes quietly, as for any cancel).

The formatting helpers match what `ollama list` prints (decimal units), so a size reads the
same in the app, the CLI and Ollama.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from PySide6.QtGui import QPalette, QTextDocumentFragment
from PySide6.QtWidgets import QWidget

from ftrag_desktop.core.lineage_text import local_time
from ftrag_desktop.errors import UserError

__all__ = [
    "Failure",
    "compact_tokens",
    "local_time",
    "parameter_count",
    "plain_text",
    "reporting",
    "size_text",
    "suggest_model_name",
    "throttled",
    "tone",
]

PROGRESS_INTERVAL_S = 0.1  # at most ten progress updates a second reach the GUI thread

# (light theme, dark theme) colours of messages.
TONES = {
    "error": ("#b3261e", "#ff8a80"),
    "ok": ("#1e7b34", "#7ddc8f"),
    "warn": ("#8a5a00", "#ffcc66"),
    "muted": ("#5f6368", "#9aa0a6"),
}


@dataclass(frozen=True)
class Failure:
    """A known error, as the user sees it: what happened, then what to do."""

    message: str
    hint: str

    @classmethod
    def of(cls, error: UserError) -> Failure:
        return cls(error.message, error.hint)

    def text(self) -> str:
        """The whole error as plain text (what the error box shows and the user copies)."""
        return f"{self.message}\n\nWhat to do: {self.hint}" if self.hint else self.message


def reporting(op: Callable[[], Any]) -> Callable[[], Any]:
    """`op`, with a `UserError` returned (or yielded last) as a `Failure` instead of raised."""

    def run() -> Any:
        try:
            result = op()
        except UserError as e:
            return Failure.of(e)
        return _events(result) if isinstance(result, Iterator) else result

    return run


def _events(events: Iterator[Any]) -> Iterator[Any]:
    try:
        yield from events
    except UserError as e:
        yield Failure.of(e)


def throttled(
    events: Iterator[Any],
    is_progress: Callable[[Any], bool],
    interval_s: float = PROGRESS_INTERVAL_S,
) -> Iterator[Any]:
    """`events`, with progress events thinned to one per `interval_s`.

    Ollama sends a pull's progress many times a second and an upload yields one per chunk: a
    GUI needs ten a second.  Every other event passes, and the latest progress held back is
    sent before it (and at the end), so the last figures shown are the true ones.
    """
    held: Any = None
    last = 0.0
    for event in events:
        if is_progress(event):
            now = time.monotonic()
            if now - last >= interval_s:
                held, last = None, now
                yield event
            else:
                held = event
            continue
        if held is not None:
            yield held
            held = None
        yield event
    if held is not None:
        yield held


def size_text(n: int | None) -> str:
    """`2.0 GB`, `271 MB`, `4.5 KB`: decimal units, as `ollama list` shows sizes."""
    if n is None or n < 0:
        return "—"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            if unit == "B":
                return f"{int(value)} B"
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
        value /= 1000
    return f"{value:.0f} TB"  # unreachable; keeps mypy's return analysis simple


def compact_tokens(n: int | None) -> str:
    """A context length as people say it: 131072 -> `128K`, 2048 -> `2K`, 500 -> `500`."""
    if not n:
        return "—"
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024}K"
    if n >= 1000:
        return f"{n / 1000:.1f}K".replace(".0K", "K")
    return str(n)


_SIZE = re.compile(r"^\s*([\d.]+)\s*([KMBT]?)\s*$", re.IGNORECASE)


def parameter_count(size: str) -> float:
    """`3.2B` -> 3.2e9, `134.52M` -> 1.3452e8 (0 when unknown): for sorting."""
    m = _SIZE.match(size)
    if not m:
        return 0.0
    try:
        value = float(m.group(1))
    except ValueError:
        return 0.0
    return value * {"": 1, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}[m.group(2).upper()]


def suggest_model_name(stem: str) -> str:
    """A valid Ollama name from a file name: `SmolLM2-135M.Q4_1` -> `smollm2-135m.q4_1`."""
    name = re.sub(r"[^a-z0-9_.-]+", "-", stem.lower()).strip("-.")
    return name[:80] or "my-model"


def tone(widget: QWidget, kind: str) -> str:
    """The colour of an "error", "ok", "warn" or "muted" text that reads on this theme."""
    dark = widget.palette().color(QPalette.ColorRole.Window).lightness() < 128
    return TONES[kind][1 if dark else 0]


def plain_text(rich: str) -> str:
    """What a rich-text label shows, as plain text (for tests and copying)."""
    return QTextDocumentFragment.fromHtml(rich).toPlainText()
