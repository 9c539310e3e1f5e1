"""The app controller: owns the engine, the library service and answer jobs; speaks in signals.

Views never call the engine directly.  They call the controller, which runs the work off the GUI
thread (the library process, or a worker per answer) and reports back through
Qt signals carrying plain data.  Signals emitted from other threads are delivered queued on the
GUI thread.
"""

from __future__ import annotations

import collections
import copy
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, QTimer, Signal

from ftrag_desktop.app.heap import collector_paused
from ftrag_desktop.app.workers import run_in_background
from ftrag_desktop.config import Settings
from ftrag_desktop.core.answer import AnswerCompleted, AnswerToken, SourcesFound
from ftrag_desktop.core.engine import Engine
from ftrag_desktop.core.events import SyncProgress
from ftrag_desktop.core.llm import import_client_library
from ftrag_desktop.core.service import LibraryChanged, ServiceEvent
from ftrag_desktop.core.service_process import LibraryProcess
from ftrag_desktop.core.status_report import StatusReport
from ftrag_desktop.errors import UserError
from ftrag_desktop.paths import Home

log = logging.getLogger(__name__)

# Ollama health: a probe every 10 s while it answers; while it does not, probes back off (1, 2,
# 4, 8, then every 15 s), so a restarted Ollama is noticed within 15 s without a busy loop.
HEALTH_INTERVAL_MS = 10_000
HEALTH_BACKOFF_MS = (1000, 2000, 4000, 8000, 15_000)
PROBE_TIMEOUT_S = 5.0
DRAIN_SLICE_S = 0.008
MIN_WORKER_THREADS = 8


class AnswerJob(QObject):
    """One streamed answer.  `cancel()` stops it at the next token (no error is shown)."""

    sources_found = Signal(object)  # core.answer.SourcesFound
    token_received = Signal(str)
    completed = Signal(object)  # core.answer.AnswerResult
    failed = Signal(str)  # a message for people (message + hint)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.cancel_event = threading.Event()

    def cancel(self) -> None:
        self.cancel_event.set()


class PullJob(QObject):
    """A model download: `progressed(status, completed, total)`, then `finished(ok, message)`."""

    progressed = Signal(str, int, int)
    finished = Signal(bool, str)


class AppController(QObject):
    _events_posted = Signal()  # internal: the library thread queued events for the GUI thread
    engine_ready = Signal(object)  # Engine
    engine_failed = Signal(str)
    library_event = Signal(object)  # core.service.ServiceEvent (sync events included)
    # `object`, not dict/list: a queued dict signal is converted to a QVariantMap and back,
    # which for thousands of documents stalls the GUI thread for tens of milliseconds.
    status_loaded = Signal(object)  # core.status_report.StatusReport
    ollama_state = Signal(bool, str)  # reachable, a line for the status bar
    models_loaded = Signal(object)  # list[core.llm.ModelInfo]
    settings_applied = Signal(object)  # core.engine.SettingsChange
    settings_failed = Signal(str)

    def __init__(self, home: Home, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.home = home
        self.engine: Engine | None = None
        self.service: LibraryProcess | None = None
        self._reachable: bool | None = None
        self._shut_down = False
        self._jobs: set[AnswerJob] = set()
        # Library events arrive in bursts (several per file); they are queued here and handed
        # to the views in slices of a few milliseconds, so a burst never stalls the GUI.
        self._events: collections.deque[ServiceEvent] = collections.deque()
        self._events_lock = threading.Lock()
        self._drain_posted = False
        self._events_posted.connect(self._drain_events)
        # Answers and pulls stream for minutes; quick reads (status, probes) must not queue
        # behind them, so the shared pool gets more threads than the default (one per core).
        pool = QThreadPool.globalInstance()
        pool.setMaxThreadCount(max(pool.maxThreadCount(), MIN_WORKER_THREADS))
        self.health_interval_ms = HEALTH_INTERVAL_MS
        self.health_backoff_ms: tuple[int, ...] = HEALTH_BACKOFF_MS
        self._failed_probes = 0
        self._probing = False
        self._probe_again = False  # asked to probe while a probe ran (e.g. a new address)
        self._models_wanted = False  # refresh the model list after the next good probe
        self._health = QTimer(self)
        self._health.setSingleShot(True)  # re-armed after each probe, with the next delay
        self._health.timeout.connect(self.check_ollama)

    # ---- start and stop ------------------------------------------------------------------

    def start(self) -> None:
        """Open the library in the background; `engine_ready` or `engine_failed` follows."""
        home = self.home

        def open_engine() -> Engine:
            with collector_paused("library imported"):  # see app/heap.py
                # The model list needs the Ollama client as soon as the library is open, and
                # importing it first keeps lancedb's import (parts of which hold the GIL
                # longest) off the window's first frames: without it, bench/gui_latency.py saw
                # a 123-140 ms stall 0.2 s after the window was shown in 4 runs of 5; with it,
                # 23-48 ms at most in that first second.
                import_client_library()
                return Engine(home)

        run_in_background(
            open_engine, on_done=self._on_engine_opened, on_error=self.engine_failed.emit
        )

    def _on_engine_opened(self, engine: object) -> None:
        assert isinstance(engine, Engine)
        if self._shut_down:  # the window closed while the library was opening
            engine.close()
            return
        self.engine = engine
        # Indexing runs in a process of its own: on a thread here it would hold the GIL for
        # long stretches and stall the GUI thread (bench/gui_latency.py measures this).
        self.service = LibraryProcess(self.home, copy.deepcopy(engine.settings), self._queue_event)
        self.service.start(wait=False)  # starting a process takes tens of milliseconds
        self.engine_ready.emit(engine)
        self.refresh_status()
        self.check_ollama()  # and from then on by itself, see `_on_ollama_probed`

    def shutdown(self, timeout_s: float = 2.0) -> None:
        """Stop answers and indexing, then release the index.  Safe to call twice."""
        self._shut_down = True
        self._health.stop()
        for job in list(self._jobs):
            job.cancel()
        if self.service is not None:
            self.service.stop(timeout_s)
            self.service = None
        if self.engine is not None:
            self.engine.close()
            self.engine = None

    # ---- library -------------------------------------------------------------------------

    def _queue_event(self, event: ServiceEvent) -> None:
        """Called on the library process's reader thread."""
        if isinstance(event, LibraryChanged) and self.engine is not None:
            # The library process owns (and saves) the folder lists; keep this copy in step.
            self.engine.settings.watched_folders = list(event.folders)
            self.engine.settings.paused_folders = list(event.paused)
        with self._events_lock:
            if (
                isinstance(event, SyncProgress)
                and self._events
                and isinstance(self._events[-1], SyncProgress)
            ):
                self._events[-1] = event  # only the latest progress matters
                return
            self._events.append(event)
            post = not self._drain_posted
            self._drain_posted = True
        if post:
            self._events_posted.emit()

    def _drain_events(self) -> None:
        deadline = time.perf_counter() + DRAIN_SLICE_S
        while time.perf_counter() < deadline:
            # Never wait for the lock: its holder, the reader thread, may itself be waiting for
            # a CPU or the GIL (a 33 ms stall measured); try again on the next loop turn.
            if not self._events_lock.acquire(blocking=False):
                QTimer.singleShot(1, self._drain_events)
                return
            try:
                if not self._events:
                    self._drain_posted = False
                    return
                event = self._events.popleft()
            finally:
                self._events_lock.release()
            if isinstance(event, StatusReport):
                self.status_loaded.emit(event)
            else:
                self.library_event.emit(event)
        QTimer.singleShot(0, self._drain_events)  # let the event loop breathe, then go on

    def add_folder(self, folder: str) -> None:
        if self.service is not None:
            self.service.add_folder(folder)

    def remove_folder(self, folder: str) -> None:
        if self.service is not None:
            self.service.remove_folder(folder)

    def pause_folder(self, folder: str, paused: bool) -> None:
        if self.service is not None:
            self.service.pause(folder, paused)

    def rescan(self, folder: str | None = None) -> None:
        if self.service is not None:
            self.service.rescan(folder)

    def retry(self, paths: list[str]) -> None:
        if self.service is not None:
            self.service.retry(paths)

    def watched_folders(self) -> list[str]:
        return list(self.engine.settings.watched_folders) if self.engine else []

    def apply_settings(self, settings: Settings) -> None:
        """Save and use new settings: here, in the library process, and for the next answers."""
        engine = self.engine
        if engine is None:
            return
        new = copy.deepcopy(settings)
        new.watched_folders = list(engine.settings.watched_folders)
        new.paused_folders = list(engine.settings.paused_folders)

        def op() -> object:
            return engine.apply_settings(new)

        def done(change: object) -> None:
            self.settings_applied.emit(change)
            if self.service is not None:
                self.service.reload_settings(new)  # it keeps a copy of its own
            self._reachable = None
            self.check_ollama()
            self.refresh_status()

        run_in_background(op, on_done=done, on_error=self.settings_failed.emit)

    def refresh_status(self, full: bool = False) -> None:
        """Ask the library process for a `StatusReport`; `status_loaded` delivers it.

        It is computed there, not on a thread here: converting thousands of manifest rows would
        hold this process's GIL, and the GUI thread needs the GIL back after every Qt call.
        """
        if self.service is not None:
            self.service.request_status(full)

    # ---- Ollama --------------------------------------------------------------------------

    def check_ollama(self, *, refresh_models: bool = False) -> None:
        """Probe Ollama now (one short request, no retries); `ollama_state` reports it.

        Further probes follow by themselves: every `health_interval_ms` while Ollama answers,
        backing off along `health_backoff_ms` while it does not.  `refresh_models` reloads
        the model list if the probe succeeds (it is reloaded anyway when Ollama comes back).
        """
        engine = self.engine
        if engine is None or self._shut_down:
            return
        self._models_wanted = self._models_wanted or refresh_models
        if self._probing:
            self._probe_again = True
            return
        self._probing = True
        self._health.stop()
        client = engine.client
        timeout = min(PROBE_TIMEOUT_S, client.timeout_s)

        def probe() -> tuple[bool, str]:
            try:
                version = client.version(timeout_s=timeout, retry=False)
            except UserError as exc:
                return False, exc.message
            return True, f"Ollama {version} at {client.host}"

        def failed(message: str) -> None:  # a bug in the probe: log it, count it as down
            log.warning("Ollama probe failed: %s", message)
            self._on_ollama_probed((False, message.splitlines()[0]))

        run_in_background(probe, on_done=self._on_ollama_probed, on_error=failed)

    def _on_ollama_probed(self, result: object) -> None:
        assert isinstance(result, tuple)
        self._probing = False
        if self._shut_down:
            return
        if self._probe_again:  # the answer may be about an address no longer in use
            self._probe_again = False
            self.check_ollama()
            return
        reachable, detail = bool(result[0]), str(result[1])
        if reachable and (self._reachable is not True or self._models_wanted):
            self._models_wanted = False
            self.refresh_models()  # it came (back): the model list may have changed
        self._reachable = reachable
        self._failed_probes = 0 if reachable else self._failed_probes + 1
        self.ollama_state.emit(reachable, detail)
        self._health.start(self._next_probe_ms())

    def _next_probe_ms(self) -> int:
        if self._failed_probes == 0:
            return self.health_interval_ms
        steps = self.health_backoff_ms
        return steps[min(self._failed_probes, len(steps)) - 1]

    def refresh_models(self) -> None:
        engine = self.engine
        if engine is not None:
            self.run(engine.client.list_models, self.models_loaded.emit)

    def pull_model(self, model: str) -> PullJob:
        job = PullJob(self)
        engine = self.engine
        if engine is None:
            QTimer.singleShot(0, lambda: job.finished.emit(False, "The library is still opening."))
            return job

        def op() -> None:
            for step in engine.client.pull(model):
                job.progressed.emit(step.status, step.completed, step.total)

        def done(_: object) -> None:
            job.finished.emit(True, "")
            self.refresh_models()

        # Started on the next event-loop turn, after the caller has connected to the job: a
        # worker that began now could emit before anyone listened, and the signal would be lost.
        QTimer.singleShot(
            0,
            lambda: run_in_background(
                op, on_done=done, on_error=lambda m: job.finished.emit(False, m)
            ),
        )
        return job

    # ---- answers -------------------------------------------------------------------------

    def ask(
        self, question: str, *, model: str | None = None, rag: bool = True, k: int | None = None
    ) -> AnswerJob:
        """Start streaming an answer on the next event-loop turn; connect to the job's signals now.

        The worker starts only once the caller has returned to the event loop: started here, a
        quick answer (the model alone, a fast server) could emit `completed` before the caller
        connected to it, and the answer would be lost with the window waiting for it.
        """
        job = AnswerJob(self)
        self._jobs.add(job)
        engine = self.engine
        if engine is None:
            QTimer.singleShot(0, lambda: job.failed.emit("The library is still opening."))
            return job

        def op() -> None:
            for event in engine.ask(question, model=model, rag=rag, k=k, cancel=job.cancel_event):
                if isinstance(event, AnswerToken):
                    job.token_received.emit(event.text)
                elif isinstance(event, SourcesFound):
                    job.sources_found.emit(event)
                elif isinstance(event, AnswerCompleted):
                    job.completed.emit(event.result)

        def done(_: object) -> None:
            self._jobs.discard(job)

        def failed(message: str) -> None:
            self._jobs.discard(job)
            job.failed.emit(message)
            # Ollama may have gone, or lost the model: the banner and model list say so now.
            self.check_ollama(refresh_models=True)

        QTimer.singleShot(0, lambda: run_in_background(op, on_done=done, on_error=failed))
        return job

    # ---- helpers -------------------------------------------------------------------------

    def run(self, op: Callable[[], Any], on_done: Callable[[Any], None]) -> None:
        """Run `op` on a worker; `on_done(result)` on the GUI thread; errors to the log."""
        run_in_background(op, on_done=on_done, on_error=lambda m: log.warning("%s", m))


__all__ = ["AnswerJob", "AppController", "PullJob", "ServiceEvent"]
