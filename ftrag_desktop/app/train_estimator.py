"""The estimate behind the Train tab's Start button: `ftrag train … --estimate-only --json`.

`Estimator.schedule(args)` asks for an estimate of those arguments once the form has been
still for `ESTIMATE_DELAY_MS` (typing a name must not start a process per key); a newer
request kills the estimate in flight, whose answer would be about settings no longer shown.
`ended(EstimateResult)` carries what the child said: the ``estimate`` event (when the run fits),
or its ``error`` (e.g. too large for the free memory, the name taken, the base unreadable), or
how it died.  The children are made by the view (`spawn`), which keeps track of every one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from ftrag_desktop.app.train_process import TrainProcess

__all__ = ["ESTIMATE_DELAY_MS", "EstimateResult", "Estimator"]

ESTIMATE_DELAY_MS = 700


@dataclass
class EstimateResult:
    args: list[str]
    estimate: dict[str, Any] | None = None  # the `estimate` event, kept only when it fits
    error: dict[str, Any] | None = None  # the `error` event
    notices: list[str] = field(default_factory=list)
    code: int = 0
    stderr: str = ""

    @property
    def fits(self) -> bool:
        return self.estimate is not None


class Estimator(QObject):
    """See the module docstring."""

    started = Signal()
    ended = Signal(object)  # EstimateResult

    def __init__(
        self, spawn: Callable[[list[str]], TrainProcess | None], parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._spawn = spawn
        self._wanted: list[str] | None = None
        self._process: TrainProcess | None = None
        self._result: EstimateResult | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(ESTIMATE_DELAY_MS)
        self._timer.timeout.connect(self._on_timer_timeout)

    def schedule(self, args: list[str] | None) -> None:
        """Estimate `args` soon (None: nothing to estimate); forgets the estimate in flight."""
        self.cancel()
        self._wanted = args
        if args is not None:
            self._timer.start()

    def cancel(self) -> None:
        self._timer.stop()
        self._wanted = None
        if self._process is not None:
            self._process.kill()  # its `ended` still comes; it is no longer ours then
            self._process = None

    def is_busy(self) -> bool:
        return self._timer.isActive() or self._process is not None

    def _on_timer_timeout(self) -> None:
        args = self._wanted
        if args is None:
            return
        process = self._spawn(args)
        if process is None:
            return
        self._result = EstimateResult(list(args))
        process.event_received.connect(self._on_process_event_received)
        process.ended.connect(self._on_process_ended)
        self._process = process
        process.start()
        self.started.emit()

    def _on_process_event_received(self, ev: object) -> None:
        result = self._result
        if self.sender() is not self._process or result is None or not isinstance(ev, dict):
            return
        kind = ev.get("event")
        if kind == "estimate" and (ev.get("estimate") or {}).get("fits"):
            result.estimate = ev
        elif kind == "notice":
            result.notices.append(str(ev.get("text", "")))
        elif kind == "error":
            result.error = ev

    def _on_process_ended(self, code: int, _last: object) -> None:
        process, result = self.sender(), self._result
        if process is not self._process or result is None:
            return  # an estimate of settings no longer shown
        assert isinstance(process, TrainProcess)
        self._process, self._result = None, None
        result.code = code
        result.stderr = process.stderr_tail()
        if result.error is not None or code != 0:
            result.estimate = None
        self.ended.emit(result)
