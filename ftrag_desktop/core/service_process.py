"""The library service in a process of its own, behind the same non-blocking API.

Indexing is CPU-bound Python (diffing, chunking, batching, LanceDB commits).  Run on a thread of
the GUI process, it competes with the GUI thread for the GIL and the GUI stalls for a hundred
milliseconds at a time.  `LibraryProcess` runs `LibraryService` in a spawned child process
instead: commands go down one queue, events (plain dataclasses) come back up another, and a
reader thread in the parent hands each event to `on_event`.

The child is the index's only writer.  It lowers its own CPU priority, stops when its parent
disappears, and is restarted (a few times, with a pause) if it dies; whatever a crash left
half-written is repaired when the new child opens the index.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

from ftrag_desktop.config import Settings
from ftrag_desktop.core.service import LibraryChanged, ServiceError, ServiceEvent
from ftrag_desktop.paths import Home

log = logging.getLogger(__name__)

# Indexing is background work: against the window's process (niceness 0) it gets about a
# tenth of a contended core, and all of an idle one.  At 5 it got a quarter, and the window
# waited longer for a core while a watched folder churned (`bench/churn.py --gui`).  The
# parse workers are niced further.
CHILD_NICENESS = 10
PARENT_CHECK_S = 0.5
MAX_RESTARTS = 3
RESTART_WINDOW_S = 300.0
RESTART_DELAY_S = 1.0


@dataclass(frozen=True)
class _Call:
    """One method call on the child's `LibraryService`."""

    method: str  # add_folder | remove_folder | pause | rescan | retry | reload_settings | stop
    args: tuple[Any, ...] = field(default=())


@dataclass(frozen=True)
class _ChildStopped:
    """The child's last event: it stopped on request."""


def _child_main(
    home_root: str,
    settings: Settings,
    calls: multiprocessing.Queue[_Call],
    events: multiprocessing.Queue[object],
    stop: MpEvent,
    parent_pid: int,
    debounce_s: float,
) -> None:
    """The child process: one `Engine` and one `LibraryService`, driven by `calls`."""
    from ftrag_desktop.core.engine import Engine
    from ftrag_desktop.core.service import LibraryService
    from ftrag_desktop.logs import configure_logging

    home = Home(Path(home_root))
    configure_logging(home, filename="library.log")
    if hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(max(0, CHILD_NICENESS - os.nice(0)))  # absolute: the parent may have set it
    engine = Engine(home, settings)
    service = LibraryService(engine, events.put, debounce_s=debounce_s)
    service.start()

    def watch_parent() -> None:
        while not stop.is_set():
            if os.getppid() != parent_pid:  # the app is gone: stop indexing, keep the index sound
                log.warning("the app process went away; the library process stops")
                stop.set()
                calls.put(_Call("stop"))
                return
            time.sleep(PARENT_CHECK_S)

    threading.Thread(target=watch_parent, name="ftrag-parent-watch", daemon=True).start()
    try:
        while True:
            try:
                call = calls.get(timeout=PARENT_CHECK_S)
            except queue.Empty:
                if stop.is_set():
                    break
                continue
            if call.method == "stop":
                break
            getattr(service, call.method)(*call.args)
    finally:
        service.stop()
        engine.close()
        events.put(_ChildStopped())
        events.close()
        events.join_thread()


class LibraryProcess:
    """`LibraryService`'s API, with the service running in a child process.

    Every method only queues a command and returns at once.  `on_event` is called on a reader
    thread of this process, in the order the child emitted the events.
    """

    def __init__(
        self,
        home: Home,
        settings: Settings,
        on_event: Callable[[ServiceEvent], None],
        *,
        debounce_s: float = 0.3,
    ) -> None:
        self._home = home
        self._settings = copy.deepcopy(settings)
        self._emit = on_event
        self._debounce_s = debounce_s
        self._ctx = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._process: SpawnProcess | None = None
        self._calls: multiprocessing.Queue[_Call] | None = None
        self._events: multiprocessing.Queue[object] | None = None
        self._stop_child: MpEvent | None = None
        self._reader: threading.Thread | None = None
        self._stopping = False
        self._restarts: list[float] = []
        self._started_once = False  # a child has been started (later starts are restarts)

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self, wait: bool = True) -> None:
        """Start the child.  With `wait=False` the (tens of milliseconds of) process start
        happen on a thread of their own; commands sent meanwhile wait in the queue."""
        with self._lock:
            self._make_queues()
            if wait:
                self._spawn()
                return
        threading.Thread(target=self._spawn_locked, name="ftrag-library-spawn", daemon=True).start()

    def _spawn_locked(self) -> None:
        with self._lock:
            if not self._stopping:
                self._spawn_or_report()

    def _spawn_or_report(self) -> None:
        """`_spawn` on a thread of this class's own: a failure to start the child (no memory
        or processes left, say) is told to `on_event`, where the user sees it, rather than
        lost on this thread with the app waiting for a library that never opens."""
        try:
            self._spawn()
        except Exception as exc:  # OSError from fork/exec, or anything the start raises
            log.exception("the library process could not be started")
            self._emit(
                ServiceError(
                    f"Indexing could not start: its process failed to launch ({exc}). "
                    "Search still works on what is indexed; restart the app, and see the log "
                    "(logs/ftrag.log in the data folder) if it happens again."
                )
            )

    def _make_queues(self) -> None:
        self._calls = self._ctx.Queue()
        self._events = self._ctx.Queue()
        self._stop_child = self._ctx.Event()

    def _spawn(self) -> None:
        if self._process is not None:  # a restart: the old queues may hold a dead child's data
            self._make_queues()
        assert self._calls is not None and self._events is not None
        self._process = self._ctx.Process(
            target=_child_main,
            args=(
                str(self._home.root),
                self._settings,
                self._calls,
                self._events,
                self._stop_child,
                os.getpid(),
                self._debounce_s,
            ),
            name="ftrag-library",
            daemon=False,  # it spawns parse workers, which a daemon process may not
        )
        self._process.start()
        # Niced from its first instruction, not only once it has imported everything: its
        # interpreter start and imports would otherwise compete with the window's first frames.
        if hasattr(os, "setpriority") and self._process.pid is not None:
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, self._process.pid, CHILD_NICENESS)
        self._reader = threading.Thread(
            target=self._read,
            args=(self._process, self._events),
            name="ftrag-library-events",
            daemon=True,
        )
        self._reader.start()
        self._started_once = True

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the child to stop; after `timeout` seconds it is killed (the index stays sound)."""
        with self._lock:
            self._stopping = True
            process, calls, stop_child = self._process, self._calls, self._stop_child
        if process is None or calls is None or stop_child is None:
            if calls is not None:  # stopped before the child was spawned
                calls.cancel_join_thread()
                calls.close()
            return
        deadline = time.monotonic() + timeout
        stop_child.set()
        with contextlib.suppress(OSError, ValueError):
            calls.put(_Call("stop"))
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            log.info("the library process did not stop in %.1f s; terminating it", timeout)
            process.terminate()
            process.join(1.0)
            if process.is_alive():
                process.kill()
                process.join(1.0)
        if self._reader is not None:
            self._reader.join(1.0)
        calls.close()
        calls.join_thread()  # the feeder thread ends once the few queued bytes are written
        if self._events is not None:
            self._events.close()

    def is_alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    # ---- the reader thread ---------------------------------------------------------------

    def _read(self, process: SpawnProcess, events: multiprocessing.Queue[object]) -> None:
        while True:
            try:
                event = events.get(timeout=0.25)
            except queue.Empty:
                if process.is_alive():
                    continue
                break
            except (EOFError, OSError):
                break
            if isinstance(event, _ChildStopped):
                return
            if isinstance(event, LibraryChanged):  # a restarted child starts from these
                self._settings.watched_folders = list(event.folders)
                self._settings.paused_folders = list(event.paused)
            try:
                self._emit(event)  # type: ignore[arg-type]
            except Exception:  # a bug in a receiver must not stop the event stream
                log.exception("library event receiver failed")
        self._on_child_died(process)

    def _on_child_died(self, process: SpawnProcess) -> None:
        process.join(1.0)
        with self._lock:
            if self._stopping:
                return
            code = process.exitcode
            now = time.monotonic()
            self._restarts = [t for t in self._restarts if now - t < RESTART_WINDOW_S]
            if len(self._restarts) >= MAX_RESTARTS:
                self._emit(
                    ServiceError(
                        f"Indexing stopped: its process ended unexpectedly (exit code {code}) "
                        f"{MAX_RESTARTS + 1} times in a few minutes. Search still works; see "
                        "the log (logs/library.log in the data folder) and restart the app."
                    )
                )
                return
            self._restarts.append(now)
            self._emit(
                ServiceError(
                    f"Indexing stopped unexpectedly (exit code {code}); restarting it. "
                    "Whatever it was writing is repaired on restart."
                )
            )
        time.sleep(RESTART_DELAY_S)
        with self._lock:
            if not self._stopping:
                self._spawn_or_report()

    # ---- commands (each returns at once) -------------------------------------------------

    def _call(self, method: str, *args: Any) -> None:
        # Called on the GUI thread: never wait while the first start runs (it holds the lock
        # for tens of milliseconds), since its queues are made before it.  A restart makes new
        # queues under the lock: only then does a command wait for it.
        if self._lock.acquire(blocking=False):
            calls = self._calls
            self._lock.release()
        elif not self._started_once:
            calls = self._calls
        else:
            with self._lock:
                calls = self._calls
        if calls is None:
            raise RuntimeError("LibraryProcess.start() was not called")
        calls.put(_Call(method, args))

    def add_folder(self, folder: str | Path) -> None:
        self._call("add_folder", str(Path(folder).expanduser().resolve()))

    def remove_folder(self, folder: str | Path) -> None:
        self._call("remove_folder", str(folder))

    def pause(self, folder: str | Path, paused: bool = True) -> None:
        self._call("pause", str(folder), paused)

    def rescan(self, folder: str | Path | None = None) -> None:
        self._call("rescan", str(folder) if folder else None)

    def retry(self, paths: Sequence[str]) -> None:
        self._call("retry", tuple(paths))

    def request_status(self, full: bool = False) -> None:
        """A `StatusReport` follows as an event (see `LibraryService.request_status`)."""
        self._call("request_status", full)

    def reload_settings(self, settings: Settings) -> None:
        self._settings = copy.deepcopy(settings)  # a restarted child starts from these
        self._call("reload_settings", settings)


__all__ = ["LibraryProcess"]
