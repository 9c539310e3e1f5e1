"""Guarded parse workers: parsing runs in long-lived child processes with a time and memory cap.

A hostile or broken file can hang a parser, exhaust memory or crash the interpreter; none of
that may take the indexer down.  Each worker is a `spawn`ed process (never fork: the parent
runs LanceDB threads) that limits its own address space, then answers parse requests over a
Pipe.  The parent waits `timeout_s` per file, kills and replaces a worker that hangs or dies,
and turns every failure into a `ParseOutcome` with a short reason.  Workers start lazily and
exit by themselves when the parent goes away, so a killed indexer leaves no orphans.

A caller may also ask a worker to chunk what it parsed (`chunking`), which keeps that
pure-Python work off the caller's process.

The limits a worker applies to each file (size, pages, text; see `parse.parse_file`) travel
with it, and every limit that is hit is named in the reason, e.g. "parsing took longer than
60 s (limit parse_timeout_s)".  The memory limit is one budget for all workers together
(`memory_mb`, the setting parse_memory_mb): each worker may grow by an equal share, and the
pool runs fewer workers rather than give one less than `MIN_WORKER_MB`, so that the workers
together never hold more than the budget above their start-up size.

Test hook: when the environment variable `FTRAG_TEST_PARSE_HOOK=1` is set *before a worker
starts*, a file whose name starts with `ftrag-hook-hang`, `ftrag-hook-crash` or
`ftrag-hook-memory` makes that worker hang, abort, or allocate past its memory limit, and one
whose name starts with `ftrag-hook-wait` makes it create `<path>.hook-reading` and wait (up to
30 s) until that marker is removed before it reads the file: a test can change the file at
exactly that moment.  The hook is read only in the worker loop; it is off in normal use.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import TracebackType

from ftrag_desktop.core.parse import DEFAULT_MAX_BYTES, DEFAULT_MAX_CHARS, DEFAULT_MAX_PAGES
from ftrag_desktop.core.types import Chunk, ParsedDocument
from ftrag_desktop.errors import ParseError

log = logging.getLogger(__name__)

HOOK_ENV = "FTRAG_TEST_PARSE_HOOK"
_READY = "ready"
_STARTUP_TIMEOUT_S = 60.0
_PARENT_CHECK_S = 1.0
_CANCELLED = "parsing cancelled (the parse pool was closed)"
HOOK_MARKER_SUFFIX = ".hook-reading"
_HOOK_WAIT_S = 30.0


@dataclass(frozen=True)
class ParseOutcome:
    """The result of parsing one file in a worker: a document, or the reason it failed."""

    path: str
    document: ParsedDocument | None  # None on failure
    error: str = ""  # the reason, when failed
    seconds: float = 0.0
    hint: str = ""  # what the user can do about the failure, when known
    chunks: tuple[Chunk, ...] | None = None  # when asked for: the document's passages


# -- the worker process ------------------------------------------------------------------------


def _mapped_bytes() -> int:
    """The address space this process already maps (Linux), else 0."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return 0


def _limit_memory(memory_mb: int) -> None:
    """Cap the address space at what is mapped now plus `memory_mb` for the parse itself.

    The baseline matters: spawn re-imports the app's main module in the child, and libraries
    such as lancedb reserve far more address space than they use, none of it for parsing.
    """
    try:
        import resource
    except ImportError:  # Windows
        return
    limit_kind = getattr(resource, "RLIMIT_AS", None)
    if limit_kind is None:
        return
    try:
        _soft, hard = resource.getrlimit(limit_kind)
        wanted = _mapped_bytes() + memory_mb * 1024 * 1024
        if hard != resource.RLIM_INFINITY:
            wanted = min(wanted, hard)
        resource.setrlimit(limit_kind, (wanted, hard))
    except (ValueError, OSError):  # macOS refuses RLIMIT_AS; run unlimited there
        log.debug("could not limit worker memory", exc_info=True)


def _watch_parent(parent_pid: int) -> None:
    """Exit the worker when the parent is gone, even in the middle of a parse."""
    stop = threading.Event()
    while not stop.wait(_PARENT_CHECK_S):
        if os.getppid() != parent_pid:
            os._exit(0)


def _test_hook(path: str, memory_mb: int) -> None:
    name = Path(path).name
    if name.startswith("ftrag-hook-wait"):
        marker = Path(path + HOOK_MARKER_SUFFIX)
        marker.touch()
        deadline = time.monotonic() + _HOOK_WAIT_S
        while marker.exists() and time.monotonic() < deadline:
            time.sleep(0.01)  # the test removes the marker from another process
    elif name.startswith("ftrag-hook-hang"):
        threading.Event().wait()
    elif name.startswith("ftrag-hook-crash"):
        os.abort()
    elif name.startswith("ftrag-hook-memory"):
        hog = bytearray(memory_mb * 2 * 1024 * 1024)
        raise MemoryError(f"hook allocated {len(hog)} bytes")  # only reached without a limit


@dataclass(frozen=True)
class _Limits:
    """What a worker allows one file (see `parse.parse_file`)."""

    max_bytes: int
    max_pages: int
    max_chars: int


def _worker_main(conn: Connection, parent_pid: int, memory_mb: int, limits: _Limits) -> None:
    """The worker loop: receive a path, parse it, send back (kind, payload)."""
    # Ctrl+C in a terminal reaches the whole process group; the parent decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Parsing is background work: the app's own process (its window) comes first for the CPU.
    if hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(max(0, WORKER_NICENESS - os.nice(0)))  # absolute: a niced parent counts
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    from ftrag_desktop.core.chunk import chunk_document
    from ftrag_desktop.core.parse import parse_file  # the heavy imports happen here, once

    _limit_memory(memory_mb)

    hooked = os.environ.get(HOOK_ENV) == "1"
    try:
        conn.send(_READY)
    except OSError:  # the parent died while this worker was starting
        return
    while True:
        try:
            if not conn.poll(_PARENT_CHECK_S):
                continue
            path = conn.recv()
        except (EOFError, OSError):  # the parent closed the pipe or died
            return
        if path is None:
            return
        path, chunking = path if isinstance(path, tuple) else (path, None)
        reply: tuple[str, object]
        try:
            if hooked:
                _test_hook(path, memory_mb)
            document = parse_file(
                Path(path),
                max_bytes=limits.max_bytes,
                max_pages=limits.max_pages,
                max_chars=limits.max_chars,
            )
            if chunking is None:
                reply = ("ok", document)
            else:
                size, overlap = chunking
                chunks = chunk_document(document, chunk_size=size, overlap=overlap)
                reply = ("chunked", (document, tuple(chunks)))
        except ParseError as exc:
            reply = ("error", (exc.reason, exc.hint))
        except MemoryError:
            reply = ("memory", None)
        except Exception as exc:  # a bug: report it rather than die
            reply = ("error", (f"parser error: {type(exc).__name__}: {exc}", ""))
        try:
            conn.send(reply)
        except MemoryError:
            reply = ("memory", None)
            conn.send(reply)
        except (OSError, ValueError):  # the parent is gone
            return
        except Exception as exc:  # the result would not pickle: still answer
            conn.send(("error", (f"parser error: result not sendable: {exc}", "")))
        if reply[0] == "memory":
            return  # a fresh process is cheaper than trusting a heap that just ran out


# -- the parent side ---------------------------------------------------------------------------


class _Worker:
    def __init__(self, process: BaseProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
        with contextlib.suppress(Exception):
            self.process.join(5)
        with contextlib.suppress(Exception):
            self.conn.close()

    def crash_reason(self) -> str:
        self.process.join(5)
        code = self.process.exitcode
        if code is not None and code < 0:
            return f"the parser crashed (signal {-code})"
        if code is not None:
            return f"the parser crashed (exit code {code})"
        return "the parser crashed"


# Parsed files that may wait for the indexer (it embeds and writes meanwhile): enough for a few
# of its batches of small files.  The text bound keeps big documents' memory in check: with
# their chunks (the text again, plus overlap and headings) about 30 MB of Python strings.
AHEAD_FILES = 256
AHEAD_CHARS = 8_000_000
WORKER_NICENESS = 15  # below the library process (`service_process.CHILD_NICENESS`)
MIN_WORKER_MB = 256


class PoolClosed(RuntimeError):
    """parse() was called on a closed ParsePool."""


class ParsePool:
    """Parse files in guarded worker processes; safe to call from several threads at once."""

    def __init__(
        self,
        workers: int = 2,
        *,
        timeout_s: float = 60.0,
        memory_mb: int = 1024,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_pages: int = DEFAULT_MAX_PAGES,
        max_chars: int = DEFAULT_MAX_CHARS,
    ) -> None:
        self.memory_mb = memory_mb  # for all workers together
        self.workers = max(1, min(workers, memory_mb // MIN_WORKER_MB))
        self.worker_memory_mb = memory_mb // self.workers
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.limits = _Limits(max_bytes, max_pages, max_chars)
        self._ctx = multiprocessing.get_context("spawn")
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._starting = 0  # slots reserved by callers that are starting a worker
        self._closed = False

    # -- worker bookkeeping --------------------------------------------------------------------
    def _start_worker(self) -> _Worker:
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=_worker_main,
            args=(child_conn, os.getpid(), self.worker_memory_mb, self.limits),
            name="ftrag-parse-worker",
            daemon=True,
        )
        process.start()
        child_conn.close()
        worker = _Worker(process, parent_conn)
        try:
            ready = parent_conn.poll(_STARTUP_TIMEOUT_S) and parent_conn.recv() == _READY
        except (EOFError, OSError):
            ready = False
        if not ready:
            reason = worker.crash_reason() if not process.is_alive() else "did not start"
            worker.kill()
            raise RuntimeError(f"parse worker failed to start: {reason}")
        return worker

    def _acquire(self) -> _Worker | None:
        """An idle worker, or None when the caller may start a new one (a slot is reserved)."""
        with self._cond:
            while True:
                if self._closed:
                    raise PoolClosed("the parse pool is closed")
                while self._idle:
                    worker = self._idle.pop()
                    if worker.process.is_alive():
                        self._busy.add(worker)
                        return worker
                    worker.kill()  # died while idle; replace it
                if len(self._busy) + self._starting < self.workers:
                    self._starting += 1
                    return None
                self._cond.wait()

    def _release(self, worker: _Worker | None, *, alive: bool) -> None:
        with self._cond:
            if worker is not None:
                self._busy.discard(worker)
                if alive and not self._closed:
                    self._idle.append(worker)
                else:
                    worker.kill()
            self._cond.notify()

    # -- public API ----------------------------------------------------------------------------
    def parse(self, path: Path, chunking: tuple[int, int] | None = None) -> ParseOutcome:
        """Parse one file in a worker; blocks until done, failed, or timed out.

        With `chunking` (chunk size, overlap) the worker also splits the document into its
        passages (`chunk_document`), off the caller's process: `ParseOutcome.chunks`."""
        worker = self._acquire()
        if worker is None:
            try:
                worker = self._start_worker()
            except BaseException:
                with self._cond:
                    self._starting -= 1
                    self._cond.notify()
                raise
            with self._cond:
                self._starting -= 1
                self._busy.add(worker)
                closed = self._closed
            if closed:
                self._release(worker, alive=False)
                return ParseOutcome(str(path), None, _CANCELLED)
        alive = False
        try:
            outcome, alive = self._run(worker, str(path), chunking)
        finally:
            self._release(worker, alive=alive)
        return outcome

    def _run(
        self, worker: _Worker, path: str, chunking: tuple[int, int] | None
    ) -> tuple[ParseOutcome, bool]:
        started = time.monotonic()

        def failed(error: str, hint: str = "") -> ParseOutcome:
            return ParseOutcome(path, None, error, time.monotonic() - started, hint)

        try:
            worker.conn.send(path if chunking is None else (path, chunking))
            if not worker.conn.poll(self.timeout_s):
                worker.kill()
                return failed(
                    f"parsing took longer than {self.timeout_s:g} s (limit parse_timeout_s)",
                    "The file may be damaged or unusually complex.",
                ), False
            kind, payload = worker.conn.recv()
        except (EOFError, OSError):
            if self._closed:
                return failed(_CANCELLED), False
            reason = worker.crash_reason()
            worker.kill()
            return failed(reason, "The file may be damaged."), False
        seconds = time.monotonic() - started
        if kind == "ok":
            assert isinstance(payload, ParsedDocument)
            return ParseOutcome(path, payload, "", seconds), True
        if kind == "chunked":
            document, chunks = payload
            return ParseOutcome(path, document, "", seconds, chunks=chunks), True
        if kind == "memory":
            shared = f", shared by {self.workers} workers" if self.workers > 1 else ""
            return failed(
                f"needs more than {self.worker_memory_mb} MB of memory to parse "
                f"(limit parse_memory_mb{shared})",
                "Raise parse_memory_mb in the settings to index it.",
            ), False
        reason, hint = payload
        return ParseOutcome(path, None, str(reason), seconds, str(hint)), True

    def map(
        self,
        paths: Iterable[Path],
        *,
        ahead_files: int = AHEAD_FILES,
        ahead_chars: int = AHEAD_CHARS,
        chunking: tuple[int, int] | None = None,
    ) -> Iterator[ParseOutcome]:
        """Parse many files over the workers; yields outcomes in completion order.

        The workers keep parsing while the caller is busy with what it was given (chunking,
        embedding, writing), until `ahead_files` outcomes or `ahead_chars` characters of text
        wait to be taken: a batch's embedding and writing then overlap the next batch's
        parsing, instead of every worker idling until the caller asks for the next file.
        `chunking` is passed to `parse` for every file.
        """
        source = iter(paths)
        executor = ThreadPoolExecutor(self.workers, thread_name_prefix="ftrag-parse")
        cond = threading.Condition()  # reentrant: a done callback may run in `feed`'s thread
        ready: deque[ParseOutcome | BaseException] = deque()
        waiting: set[Future[ParseOutcome]] = set()
        buffered = [0]  # characters of text in `ready`
        exhausted = [False]

        def room() -> bool:
            return len(ready) < ahead_files and buffered[0] < ahead_chars

        def feed() -> None:
            """Keep two files per worker in flight while there is room (holding `cond`)."""
            while not exhausted[0] and len(waiting) < self.workers * 2 and room():
                path = next(source, None)
                if path is None:
                    exhausted[0] = True
                    return
                future = executor.submit(self.parse, path, chunking)
                waiting.add(future)
                future.add_done_callback(arrived)

        def arrived(future: Future[ParseOutcome]) -> None:
            if future.cancelled():
                return
            exc = future.exception()
            with cond:
                waiting.discard(future)
                if exc is not None:
                    ready.append(exc)
                else:
                    outcome = future.result()
                    ready.append(outcome)
                    buffered[0] += _text_size(outcome)
                feed()
                cond.notify_all()

        try:
            with cond:
                feed()
            while True:
                with cond:
                    while not ready and waiting:
                        cond.wait()
                    if not ready:
                        return
                    item = ready.popleft()
                    if isinstance(item, BaseException):
                        raise item
                    buffered[0] -= _text_size(item)
                    feed()
                yield item
        finally:
            with cond:
                exhausted[0] = True  # no new file from here on
                for future in waiting:
                    future.cancel()
            executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop every worker, idle or busy; idempotent."""
        with self._cond:
            self._closed = True
            idle, busy = list(self._idle), list(self._busy)
            self._idle.clear()
            self._cond.notify_all()
        for worker in idle:
            worker.kill()
        for worker in busy:
            # Only the process: the thread waiting on this worker sees the pipe close, reports
            # the file as cancelled and closes the pipe itself.
            with contextlib.suppress(Exception):
                worker.process.kill()

    def __enter__(self) -> ParsePool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _text_size(outcome: ParseOutcome) -> int:
    document = outcome.document
    return sum(len(block.text) for block in document.blocks) if document is not None else 0


__all__ = ["HOOK_ENV", "HOOK_MARKER_SUFFIX", "ParseOutcome", "ParsePool", "PoolClosed"]
