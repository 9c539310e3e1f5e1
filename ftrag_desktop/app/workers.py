"""Run core operations off the GUI thread and bring their events back as Qt signals.

A worker wraps a generator from the core (sync events, answer tokens) or a plain function.
Each yielded value is emitted as `event_emitted` on the GUI thread (queued connection); the
result or the error arrives via `finished_ok` / `failed`.  Cancel by setting the event the
operation was given.  The operation must never touch a widget.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from ftrag_desktop.errors import Cancelled, UserError

log = logging.getLogger(__name__)

# Signal objects of running workers.  A queued signal whose sender is gone is dropped, and
# slots that are plain functions (lambdas) have the sender as their context: so each sender
# stays alive until its final signal has been delivered on the GUI thread.
_LIVE: set[QObject] = set()


class _Signals(QObject):
    event_emitted = Signal(object)
    finished_ok = Signal(object)
    failed = Signal(str)


class Worker(QRunnable):
    def __init__(self, op: Callable[[], Any]) -> None:
        super().__init__()
        self.signals = _Signals()
        self._op = op
        self.setAutoDelete(True)

    def run(self) -> None:
        try:
            result = self._op()
            if isinstance(result, Iterator):
                for event in result:
                    if not _emit(self.signals.event_emitted, event):
                        return  # the app is quitting: nobody is listening any more
                result = None
        except Cancelled:
            result = None
        except UserError as exc:
            _emit(self.signals.failed, str(exc))
            return
        except Exception as exc:  # a bug: log the stack, show a short message
            log.error("background operation failed:\n%s", traceback.format_exc())
            _emit(self.signals.failed, f"Unexpected error: {exc}")
            return
        _emit(self.signals.finished_ok, result)


def _emit(signal: Any, value: object) -> bool:
    """Emit, unless the app quit while the operation ran (its signal object is deleted then)."""
    try:
        signal.emit(value)
    except RuntimeError:  # "Signal source has been deleted"
        return False
    return True


def _unless_deleted(owner: QObject, callback: Callable[[Any], None] | None) -> Any:
    if callback is None:
        return None

    def guarded(value: Any) -> None:
        if shiboken6.isValid(owner):
            callback(value)

    return guarded


def run_in_background(
    op: Callable[[], Any],
    *,
    on_event: Callable[[object], None] | None = None,
    on_done: Callable[[object], None] | None = None,
    on_error: Callable[[str], None] | None = None,
    pool: QThreadPool | None = None,
    owner: QObject | None = None,
) -> Worker:
    """Run `op` on a worker thread; callbacks run on the GUI thread.

    With `owner`, the callbacks are skipped once that widget has been deleted (a result that
    arrives after its view was closed must not touch it).
    """
    if owner is not None:
        on_event, on_done, on_error = (
            _unless_deleted(owner, cb) for cb in (on_event, on_done, on_error)
        )
    worker = Worker(op)
    if on_event is not None:
        worker.signals.event_emitted.connect(on_event)
    if on_done is not None:
        worker.signals.finished_ok.connect(on_done)
    if on_error is not None:
        worker.signals.failed.connect(on_error)
    signals = worker.signals
    _LIVE.add(signals)
    # Connected last, so it runs after the caller's slots.
    signals.finished_ok.connect(lambda *_: _LIVE.discard(signals))
    signals.failed.connect(lambda *_: _LIVE.discard(signals))
    (pool or QThreadPool.globalInstance()).start(worker)
    return worker
