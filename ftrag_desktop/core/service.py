"""The library service: one writer thread that keeps every watched folder in sync.

It owns the only index writer (the engine's indexer) and a `FolderWatcher`.  Front ends talk to
it with commands (add, remove, pause, rescan, retry) that are queued and executed in order on
its thread; it reports every sync event through one callback, from its own thread.  The GUI
turns that callback into a Qt signal; the CLI's `watch` could print it.

`request_status()` is served by a second thread, so that a long sync never delays it: it reads
`Engine.status()` (LanceDB readers may run beside the writer) and emits a `StatusReport` that
holds only the documents changed since the previous one.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ftrag_desktop.config import Settings
from ftrag_desktop.core.engine import Engine
from ftrag_desktop.core.events import Notice, SyncEvent
from ftrag_desktop.core.status_report import StatusReport, StatusTracker
from ftrag_desktop.core.watch import FolderWatcher, SyncRequest
from ftrag_desktop.errors import FtragError, UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LibraryChanged:
    """Folders or their paused state changed (emitted after each command)."""

    folders: tuple[str, ...]
    paused: tuple[str, ...]


@dataclass(frozen=True)
class ServiceIdle:
    """No sync is running and none is queued: the library is up to date."""


@dataclass(frozen=True)
class ServiceError:
    message: str


ServiceEvent = SyncEvent | LibraryChanged | ServiceIdle | ServiceError | StatusReport


@dataclass
class _Command:
    kind: str  # add | remove | pause | resume | rescan | retry | sync | reload | stop
    folder: str = ""
    paths: tuple[str, ...] = field(default=())
    settings: Settings | None = None


class LibraryService:
    """Start with `start()`; every public method only queues a command and returns at once."""

    def __init__(
        self,
        engine: Engine,
        on_event: Callable[[ServiceEvent], None],
        *,
        debounce_s: float = 0.3,
    ) -> None:
        self._engine = engine
        self._emit = on_event
        self._commands: queue.Queue[_Command] = queue.Queue()
        # Taken from the queue while merging sync requests, to be run next (writer thread only).
        self._held: collections.deque[_Command] = collections.deque()
        # Commands queued and not finished yet (a merged sync finishes all it merged at once).
        self._outstanding = 0
        self._outstanding_lock = threading.Lock()
        self._cancel = threading.Event()  # stop(): ends the service
        self._sync_cancel = threading.Event()  # ends the sync that is running now
        self._current = ""  # the folder being synced, if any
        self._paused: set[str] = set(engine.settings.paused_folders)
        self._debounce_s = debounce_s
        self._thread: threading.Thread | None = None
        self._watcher: FolderWatcher | None = None
        self._tracker = StatusTracker()
        self._status_wanted = threading.Event()
        self._status_full = False
        self._status_thread: threading.Thread | None = None

    # ---- the public, non-blocking API ----------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ftrag-library", daemon=True)
        self._thread.start()
        self._status_thread = threading.Thread(
            target=self._serve_status, name="ftrag-library-status", daemon=True
        )
        self._status_thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel the running sync and join the thread; the index stays consistent."""
        self._cancel.set()
        self._sync_cancel.set()
        self._commands.put(_Command("stop"))  # not counted: no work
        self._engine.interrupt()  # a sync waiting on a slow parse ends at once
        self._status_wanted.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._status_thread is not None:
            self._status_thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def pending(self) -> int:
        """Changes seen but not synced yet: paths the watcher holds back (debounce, files
        still being written) plus queued commands.  0 with no sync running: up to date."""
        watcher = self._watcher
        held = watcher.pending() if watcher is not None else 0
        # One counter from `_put` until the command is done: no moment between taking a
        # command off the queue and starting its sync reads as "nothing to do".
        with self._outstanding_lock:
            return held + self._outstanding

    def _put(self, cmd: _Command) -> None:
        with self._outstanding_lock:
            self._outstanding += 1
        self._commands.put(cmd)

    def _done(self, commands: int) -> None:
        with self._outstanding_lock:
            self._outstanding -= commands

    def add_folder(self, folder: str | Path) -> None:
        self._put(_Command("add", str(Path(folder).expanduser().resolve())))

    def remove_folder(self, folder: str | Path) -> None:
        self._interrupt(str(folder))
        self._put(_Command("remove", str(folder)))

    def pause(self, folder: str | Path, paused: bool = True) -> None:
        if paused:
            self._interrupt(str(folder))
        self._put(_Command("pause" if paused else "resume", str(folder)))

    def _interrupt(self, folder: str) -> None:
        """Stop the running sync now if it is this folder's (it resumes where it stopped)."""
        if self._current == folder:
            self._sync_cancel.set()

    def rescan(self, folder: str | Path | None = None) -> None:
        self._put(_Command("rescan", str(folder) if folder else ""))

    def retry(self, paths: Sequence[str]) -> None:
        """Parse these (failed) files again."""
        self._put(_Command("retry", paths=tuple(paths)))

    def reload_settings(self, settings: Settings) -> None:
        """Use these settings from the next sync on (the folder lists stay the service's)."""
        self._put(_Command("reload", settings=settings))

    def request_status(self, full: bool = False) -> None:
        """Emit a `StatusReport` soon (requests made meanwhile are merged into one).

        `full`: send every document, not only those changed since the last report.
        """
        if full:
            self._status_full = True
        self._status_wanted.set()

    def _serve_status(self) -> None:
        while not self._cancel.is_set():
            if not self._status_wanted.wait(0.5):
                continue
            self._status_wanted.clear()
            if self._cancel.is_set():
                return
            if self._status_full:
                self._status_full = False
                self._tracker.reset()
            try:
                status = self._engine.status()
            except Exception as exc:  # a damaged index must not end the service
                log.exception("could not read the library's status")
                self._tracker.reset()
                self._emit(ServiceError(f"Could not read the library's status: {exc}"))
                continue
            self._emit(self._tracker.report(status, self.folders()))

    # ---- the writer thread ---------------------------------------------------------------

    def folders(self) -> list[str]:
        return list(self._engine.settings.watched_folders)

    def _run(self) -> None:
        try:
            self._watcher = FolderWatcher([], self._on_watch_request, debounce_s=self._debounce_s)
            self._watcher.start()
            for folder in self.folders():
                self._watch(folder)
                self._put(_Command("sync", folder))
            self._changed()
            self.request_status(full=True)  # a front end (or a restarted one) starts from this
            if self._commands.empty():
                self._emit(ServiceIdle())  # nothing to watch yet: the library is "up to date"
            while True:
                try:
                    cmd = self._held.popleft() if self._held else self._commands.get(timeout=0.5)
                except queue.Empty:
                    self._engine.idle_maintenance()  # quiet: the compaction that settles the index
                    continue
                if cmd.kind == "stop":
                    return
                merged, taken = self._merge_syncs(cmd)
                try:
                    self._handle(merged)
                finally:
                    self._done(taken)
                if not self._held and self._commands.empty():
                    self._emit(ServiceIdle())
        except Exception as exc:  # a bug: keep the message, log the stack
            log.exception("library service stopped")
            self._emit(ServiceError(f"Indexing stopped after an unexpected error: {exc}"))
        finally:
            if self._watcher is not None:
                self._watcher.stop()

    def _merge_syncs(self, cmd: _Command) -> tuple[_Command, int]:
        """Fold the sync requests queued right behind `cmd` for its folder into one.

        Under a storm of changes the watcher sends a request every few hundred milliseconds,
        faster than they can be synced one by one; one sync of the union does the same work
        (it reconciles those paths with the disk as it is now) for one fixed cost, and pairs
        the two ends of a rename that arrived in separate requests.  Any other command stops
        the merge and runs next, so commands keep their order.  Returns the command to run and
        how many queued commands it stands for.
        """
        if cmd.kind != "sync":
            return cmd, 1
        paths = set(cmd.paths)
        full = not cmd.paths
        merged = 0
        while True:
            try:
                nxt = self._held.popleft() if self._held else self._commands.get_nowait()
            except queue.Empty:
                break
            if nxt.kind != "sync" or nxt.folder != cmd.folder:
                self._held.appendleft(nxt)
                break
            merged += 1
            full = full or not nxt.paths
            paths.update(nxt.paths)
        if not merged:
            return cmd, 1
        return _Command("sync", cmd.folder, () if full else tuple(sorted(paths))), 1 + merged

    def _on_watch_request(self, req: SyncRequest) -> None:  # on the watcher's thread
        paths = tuple(str(p) for p in sorted(req.paths))
        self._put(_Command("sync", str(req.root), () if req.full else paths))

    def _watch(self, folder: str) -> None:
        assert self._watcher is not None
        try:
            self._watcher.add_root(Path(folder))
        except UserError as exc:
            self._emit(ServiceError(str(exc)))

    def _changed(self) -> None:
        self._emit(LibraryChanged(tuple(self.folders()), tuple(sorted(self._paused))))

    def _save(self) -> None:
        try:
            self._engine.save_settings()
        except OSError as exc:
            self._emit(ServiceError(f"Could not save the settings: {exc}"))

    def _handle(self, cmd: _Command) -> None:
        folders = self._engine.settings.watched_folders
        if cmd.kind == "add":
            if not Path(cmd.folder).is_dir():
                self._emit(ServiceError(f"Folder not found: {cmd.folder}"))
                return
            if cmd.folder not in folders:
                folders.append(cmd.folder)
                self._save()
                self._watch(cmd.folder)
            self._changed()
            self._sync(cmd.folder)
        elif cmd.kind == "remove":
            self._paused.discard(cmd.folder)
            self._engine.settings.paused_folders = sorted(self._paused)
            if cmd.folder in folders:
                folders.remove(cmd.folder)
            self._save()
            if self._watcher is not None:
                self._watcher.remove_root(Path(cmd.folder))
            self._changed()
            self._forget(cmd.folder)
        elif cmd.kind in ("pause", "resume"):
            if cmd.kind == "pause":
                self._paused.add(cmd.folder)
            else:
                self._paused.discard(cmd.folder)
            self._engine.settings.paused_folders = sorted(self._paused)
            self._save()
            self._changed()
            if cmd.kind == "resume":
                self._sync(cmd.folder)
        elif cmd.kind == "rescan":
            for folder in [cmd.folder] if cmd.folder else list(folders):
                self._sync(folder, force=True, embed_now=True)
        elif cmd.kind == "retry":
            for folder in folders:
                mine = [p for p in cmd.paths if Path(p).is_relative_to(folder)]
                if mine:
                    self._sync(folder, paths=mine, retry_failed=True, force=True, embed_now=True)
        elif cmd.kind == "reload" and cmd.settings is not None:
            new = cmd.settings
            new.watched_folders = list(folders)
            new.paused_folders = sorted(self._paused)
            self._engine.reload_settings(new)
            self._save()  # this process saves the file too: never leave an older copy last
            for folder in list(folders):  # chunking or exclusions may have changed
                self._sync(folder)
        elif cmd.kind == "sync" and cmd.folder in folders:
            self._sync(cmd.folder, paths=list(cmd.paths) or None)

    def _sync(
        self,
        folder: str,
        *,
        paths: Sequence[str] | None = None,
        retry_failed: bool = False,
        force: bool = False,
        embed_now: bool = False,
    ) -> None:
        if folder in self._paused and not force:
            return
        if self._cancel.is_set():
            return
        self._sync_cancel.clear()
        self._current = folder
        try:
            for event in self._engine.sync(
                Path(folder),
                paths=[Path(p) for p in paths] if paths else None,
                cancel=self._sync_cancel,
                retry_failed=retry_failed,
                embed_now=embed_now,
            ):
                self._emit(event)
        except FtragError as exc:
            self._emit(ServiceError(str(exc)))
        finally:
            self._current = ""

    def _forget(self, folder: str) -> None:
        """Remove a folder's documents from the index (the files themselves are untouched)."""
        prefix = folder.rstrip("/\\")
        gone = [
            rec.doc_id
            for rec in self._engine.store.documents()
            if Path(rec.path).is_relative_to(prefix)
        ]
        self._engine.store.remove_documents(gone)  # a commit per table per batch, not per file
        self._emit(Notice(f"Removed {len(gone)} documents of {folder} from the index."))
