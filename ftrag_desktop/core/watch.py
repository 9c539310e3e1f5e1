"""Watched folders: turns watchdog file-system events into debounced `SyncRequest`s.

Events only *schedule* work: they say that something under a root changed, never what the
folder now holds.  The indexer reconciles each request against the folder itself.  The watcher
collects the paths that events name, waits until a root has been quiet for `debounce_s`, waits
until each file's size and mtime have stopped changing for `stable_s` (a download or a copy in
progress is not indexed half-written), then hands one request per root to `on_request` on its
own worker thread.  A folder moved or deleted, a lost-events overflow, and a periodic safety
net every `full_rescan_s` ask for a full reconcile of the root instead.

Threads: watchdog's observer threads only record paths under a lock; one worker thread does
the stats, the waiting and the callbacks.  `stop()` joins every thread this class started.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from ftrag_desktop.core.ignore import is_ignored, is_ignored_dir
from ftrag_desktop.errors import ConfigError

log = logging.getLogger(__name__)

# Opened / closed-without-write are left out on purpose: the indexer reading a file must not
# schedule that file again.  Directory *created* events are received but unused: watchdog
# reports the files of a new or moved-in folder as created files of their own.
_EVENT_FILTER: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
]
_FILE_CHANGE_TYPES = frozenset({"created", "modified", "attrib", "closed", "deleted"})

# watchdog rebuilds its watches after an inotify queue overflow but tells handlers nothing;
# its log line is the only signal, and lost events mean only a full reconcile is safe.
_OVERFLOW_LOGGER = "watchdog.observers.inotify_c"
_OVERFLOW_MESSAGE = "Inotify queue overflowed"


@dataclass(frozen=True)
class SyncRequest:
    """Reconcile these paths of `root` (or, with `full`, the whole root) against the disk."""

    root: Path
    paths: frozenset[Path]  # files created, modified, deleted, or either end of a move
    full: bool = False  # periodic safety net, lost events, or a folder moved or deleted


@dataclass
class _PathState:
    seq: int  # bumped by every event for the path; a check is void if it moved meanwhile
    sig: tuple[int, int] | None = None  # (size, mtime_ns) at the last check
    sig_since: float = 0.0  # monotonic time `sig` was first seen
    check_at: float = 0.0  # monotonic time of the next stability check


@dataclass
class _RootState:
    watch: ObservedWatch | None = None
    paths: dict[Path, _PathState] = field(default_factory=dict)
    full: bool = False
    last_event: float = 0.0
    pending_since: float = 0.0  # bounds the debounce under a never-ending stream of events
    next_rescan: float = 0.0


@dataclass
class _Check:
    path: Path
    seq: int
    sig: tuple[int, int] | None
    sig_since: float


@dataclass
class _Batch:
    root: Path
    full: bool
    checks: list[_Check]


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: FolderWatcher, root: Path) -> None:
        self._watcher = watcher
        self._root = root

    def dispatch(self, event: FileSystemEvent) -> None:
        try:
            self._watcher._on_event(self._root, event)
        except Exception:  # a bug here must not kill watchdog's dispatcher thread
            log.exception("Could not handle file-system event %r", event)


class _OverflowLogHandler(logging.Handler):
    def __init__(self, watcher: FolderWatcher) -> None:
        super().__init__(level=logging.WARNING)
        self._watcher = watcher

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith(_OVERFLOW_MESSAGE):
            self._watcher.request_full()


class FolderWatcher:
    """Watches folders recursively and calls `on_request` with debounced `SyncRequest`s.

    `on_request` runs on the watcher's worker thread, one call per root and batch; an exception
    it raises is logged and the watcher goes on.  Roots are kept as given (made absolute, not
    resolved), and request paths are spelled under them.  Use as a context manager, or call
    `start()` and `stop()`.
    """

    def __init__(
        self,
        roots: Sequence[Path],
        on_request: Callable[[SyncRequest], None],
        *,
        debounce_s: float = 0.3,
        stable_s: float = 0.5,
        full_rescan_s: float = 900.0,
        observer_factory: Callable[[], BaseObserver] | None = None,
    ) -> None:
        self._on_request = on_request
        self._debounce_s = debounce_s
        self._stable_s = stable_s
        self._full_rescan_s = full_rescan_s
        # Under a steady stream of events a root is still looked at this often.
        self._max_defer_s = max(2.0, 10 * debounce_s)
        self._observer_factory: Callable[[], BaseObserver] = observer_factory or Observer
        self._cond = threading.Condition()
        self._roots: dict[Path, _RootState] = {}
        self._seq = 0
        # Batches taken from the roots and the requests made of them, until on_request returns.
        self._in_flight = 0
        self._stopping = False
        self._observer: BaseObserver | None = None
        self._worker: threading.Thread | None = None
        self._overflow_handler: _OverflowLogHandler | None = None
        self._lifecycle = threading.Lock()  # serialises start/stop/add_root/remove_root
        for root in roots:
            self._roots.setdefault(_absolute(root), _RootState())

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start watching every root.  Raises `ConfigError` (and starts nothing) when a root
        cannot be watched."""
        with self._lifecycle:
            if self._worker is not None:
                raise RuntimeError("FolderWatcher is already running")
            observer = self._observer_factory()
            with self._cond:
                self._stopping = False
                roots = list(self._roots)
                now = time.monotonic()
                for state in self._roots.values():
                    state.next_rescan = now + self._full_rescan_s
            try:
                watches = {root: self._schedule(observer, root) for root in roots}
                observer.start()
            except BaseException:
                _stop_observer(observer)
                raise
            with self._cond:
                for root, watch in watches.items():
                    if root in self._roots:
                        self._roots[root].watch = watch
            self._observer = observer
            self._overflow_handler = _OverflowLogHandler(self)
            logging.getLogger(_OVERFLOW_LOGGER).addHandler(self._overflow_handler)
            self._worker = threading.Thread(
                target=self._run, name="ftrag-folder-watcher", daemon=True
            )
            self._worker.start()

    def stop(self) -> None:
        """Stop watching and join every thread this watcher started.  Safe to call twice."""
        with self._lifecycle:
            if self._overflow_handler is not None:
                logging.getLogger(_OVERFLOW_LOGGER).removeHandler(self._overflow_handler)
                self._overflow_handler = None
            if self._observer is not None:
                _stop_observer(self._observer)
                self._observer = None
            with self._cond:
                self._stopping = True
                for state in self._roots.values():
                    state.watch = None
                self._cond.notify_all()
            worker, self._worker = self._worker, None
        # Called from the callback itself, the worker ends when the callback returns.
        if worker is not None and worker is not threading.current_thread():
            worker.join()

    def __enter__(self) -> FolderWatcher:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- roots ---------------------------------------------------------------------------------

    def add_root(self, root: Path) -> None:
        """Watch one more folder.  Raises `ConfigError` when it cannot be watched."""
        root = _absolute(root)
        with self._lifecycle:
            with self._cond:
                if root in self._roots:
                    return
            observer = self._observer
            watch = self._schedule(observer, root) if observer is not None else None
            with self._cond:
                self._roots[root] = _RootState(
                    watch=watch, next_rescan=time.monotonic() + self._full_rescan_s
                )
                self._cond.notify_all()

    def remove_root(self, root: Path) -> None:
        """Stop watching a folder and forget what was pending for it."""
        root = _absolute(root)
        with self._lifecycle:
            with self._cond:
                state = self._roots.pop(root, None)
                self._cond.notify_all()
            if state is not None and state.watch is not None and self._observer is not None:
                # KeyError: watchdog dropped the watch already (the folder was deleted).
                with contextlib.suppress(KeyError):
                    self._observer.unschedule(state.watch)

    def roots(self) -> list[Path]:
        with self._cond:
            return list(self._roots)

    def pending(self) -> int:
        """How many paths wait for the debounce or for their file to stop changing, plus the
        full reconciles asked for and the requests being handed to `on_request` right now (0
        means this watcher has nothing left to report)."""
        with self._cond:
            waiting = sum(len(state.paths) + state.full for state in self._roots.values())
            return waiting + self._in_flight

    def request_full(self, root: Path | None = None) -> None:
        """Ask for a full reconcile of one root (or of all), after the usual debounce."""
        with self._cond:
            now = time.monotonic()
            for key, state in self._roots.items():
                if root is None or key == _absolute(root):
                    self._touch(state, now)
                    state.full = True
            self._cond.notify_all()

    # -- observer thread -----------------------------------------------------------------------

    def _schedule(self, observer: BaseObserver, root: Path) -> ObservedWatch:
        if not root.is_dir():
            raise ConfigError(
                f"The folder {root} cannot be watched: it does not exist or is not a folder.",
                "Check that the folder (or the drive it is on) is available, or remove it "
                "from the watched folders.",
            )
        try:
            return observer.schedule(
                _Handler(self, root), os.fspath(root), recursive=True, event_filter=_EVENT_FILTER
            )
        except OSError as exc:
            hint = "Check the folder's permissions, or remove it from the watched folders."
            if exc.errno == 28:  # ENOSPC from inotify_add_watch: the per-user watch limit
                hint = (
                    "The system limit on watched folders was reached. Raise "
                    "fs.inotify.max_user_watches (sysctl), or watch a smaller folder."
                )
            raise ConfigError(f"The folder {root} cannot be watched: {exc}.", hint) from exc

    def _on_event(self, root: Path, event: FileSystemEvent) -> None:
        kind = event.event_type
        src = Path(os.fsdecode(event.src_path))
        dest = Path(os.fsdecode(event.dest_path)) if event.dest_path else None
        paths: list[Path] = []
        full = False
        if event.is_directory:
            if kind == "deleted":
                full = not is_ignored_dir(src, root)  # the root itself included
            elif kind == "moved":
                full = not is_ignored_dir(src, root) or (
                    dest is not None and not is_ignored_dir(dest, root)
                )
        elif kind in _FILE_CHANGE_TYPES:
            if not is_ignored(src, root):
                paths.append(src)
        elif kind == "moved":
            # Atomic saves move an ignored temp file onto the real name: keep either end that
            # is not ignored, so the indexer sees the new content and can pair a rename by hash.
            if not is_ignored(src, root):
                paths.append(src)
            if dest is not None and not is_ignored(dest, root):
                paths.append(dest)
        if not paths and not full:
            return
        with self._cond:
            state = self._roots.get(root)
            if state is None or self._stopping:
                return
            now = time.monotonic()
            self._touch(state, now)
            state.full = state.full or full
            for path in paths:
                self._seq += 1
                existing = state.paths.get(path)
                if existing is None:
                    state.paths[path] = _PathState(seq=self._seq)
                else:
                    existing.seq = self._seq
                    existing.check_at = 0.0
            self._cond.notify_all()

    def _touch(self, state: _RootState, now: float) -> None:
        if not state.paths and not state.full:
            state.pending_since = now
        state.last_event = now

    # -- worker thread -------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                batches = self._wait_for_work()
                if batches is None:
                    return
            requests = self._finish(batches, self._check_all(batches))
            for request in requests:
                try:
                    self._on_request(request)
                except Exception:
                    log.exception("The sync request handler failed for %s", request.root)
                finally:
                    with self._cond:
                        self._in_flight -= 1

    def _wait_for_work(self) -> list[_Batch] | None:
        """Under the lock: block until some root has work due, then take it.  None: stop."""
        while not self._stopping:
            now = time.monotonic()
            batches: list[_Batch] = []
            deadline: float | None = None
            for root, state in self._roots.items():
                if now >= state.next_rescan:
                    self._touch(state, now)
                    state.full = True
                    state.next_rescan = now + self._full_rescan_s
                deadline = _earliest(deadline, state.next_rescan)
                if not state.paths and not state.full:
                    continue
                quiet_at = min(
                    state.last_event + self._debounce_s, state.pending_since + self._max_defer_s
                )
                if now < quiet_at:
                    deadline = _earliest(deadline, quiet_at)
                    continue
                checks = [
                    _Check(path, ps.seq, ps.sig, ps.sig_since)
                    for path, ps in state.paths.items()
                    if ps.check_at <= now
                ]
                if checks or state.full:
                    batches.append(_Batch(root, state.full, checks))
                    state.full = False
                    state.pending_since = now
                else:
                    deadline = _earliest(deadline, min(ps.check_at for ps in state.paths.values()))
            if batches:
                self._in_flight += len(batches)  # `state.full` was just cleared: still pending
                return batches
            self._cond.wait(None if deadline is None else max(0.0, deadline - now))
        return None

    def _check_all(self, batches: list[_Batch]) -> dict[Path, tuple[bool, tuple[int, int] | None]]:
        """Outside the lock: stat each file; (ready, signature) per path."""
        results: dict[Path, tuple[bool, tuple[int, int] | None]] = {}
        now = time.monotonic()
        wall = time.time_ns()
        stable_ns = int(self._stable_s * 1e9)
        for batch in batches:
            for check in batch.checks:
                try:
                    st = os.stat(check.path)
                except OSError:  # gone (a deletion candidate) or unreadable: the indexer decides
                    results[check.path] = (True, None)
                    continue
                sig = (st.st_size, st.st_mtime_ns)
                # Writes move mtime, so a file untouched for stable_s is done; an mtime in the
                # future (clock skew) falls back to watching the signature stay put.
                quiet_since_write = wall - st.st_mtime_ns >= stable_ns
                held = sig == check.sig and now - check.sig_since >= self._stable_s
                results[check.path] = (quiet_since_write or held, sig)
        return results

    def _finish(
        self, batches: list[_Batch], results: dict[Path, tuple[bool, tuple[int, int] | None]]
    ) -> list[SyncRequest]:
        requests: list[SyncRequest] = []
        with self._cond:
            now = time.monotonic()
            wall = time.time_ns()
            for batch in batches:
                state = self._roots.get(batch.root)
                if state is None:  # removed meanwhile
                    continue
                ready: set[Path] = set()
                for check in batch.checks:
                    ps = state.paths.get(check.path)
                    if ps is None or ps.seq != check.seq:
                        continue  # a newer event: it is checked again after the debounce
                    ok, sig = results[check.path]
                    if ok:
                        ready.add(check.path)
                        del state.paths[check.path]
                        continue
                    if sig != ps.sig:
                        ps.sig, ps.sig_since = sig, now
                    ps.check_at = self._next_check(ps, now, wall)
                if ready or batch.full:
                    requests.append(SyncRequest(batch.root, frozenset(ready), batch.full))
            # Each batch was counted in flight when it was taken (`_wait_for_work`); from here
            # on, only the requests made of them are.  Under the lock that removed their paths,
            # so `pending()` never reads 0 while something is on its way.
            self._in_flight += len(requests) - len(batches)
        return requests

    def _next_check(self, ps: _PathState, now: float, wall_ns: int) -> float:
        wait = ps.sig_since + self._stable_s - now
        if ps.sig is not None:
            age = (wall_ns - ps.sig[1]) / 1e9
            if age >= 0:
                wait = min(wait, self._stable_s - age)
        return now + max(wait, 0.01)


def _absolute(root: Path) -> Path:
    return Path(os.path.abspath(root))


def _earliest(a: float | None, b: float) -> float:
    return b if a is None else min(a, b)


def _stop_observer(observer: BaseObserver) -> None:
    # stop() also ends helper threads made in the constructor (inotify's reader), even when
    # the observer itself never started; join() refuses a thread that never started.
    observer.stop()
    with contextlib.suppress(RuntimeError):
        observer.join()
