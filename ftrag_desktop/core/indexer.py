"""Sync: reconcile a folder with the manifest, and bring the index in line with it.

Reconcile is the source of truth.  `Indexer.sync(root)` compares what is on disk with the
documents manifest and yields typed events while it:

* indexes new and changed files (changed = size or mtime differs *and* the content hash
  differs; a touched-but-identical file only gets its manifest row refreshed);
* removes files that are gone;
* re-points renamed or moved files (same content hash) without parsing or embedding them;
* costs nothing but a stat for unchanged files.

Parsing and chunking run in guarded worker processes (`ParsePool`), which read ahead while
this process embeds and writes, in batches.  Each batch is embedded on a thread of its own
while the batch before it is written, so that Ollama and LanceDB work at the same time; the
store is only ever touched from the sync's own thread.  Batches are written in the order
*manifest pending -> chunks -> manifest indexed*, each one a single commit, so a crash at any
point leaves rows marked `pending` (or a manifest that disagrees with the disk), which the next
sync re-indexes.  A changed file's passages reuse the vectors stored for the same text (keyed
by the embed text's hash), so an edit embeds only the passages it changed.

An embedding request that times out (a busy Ollama) is sent again after growing pauses
(`EMBED_TIMEOUT_RETRIES_S`).  Vectors that still cannot be computed (no embedder reachable,
or a new embedding model) are filled in afterwards by `fill_vectors()`, without re-parsing: at
the end of the next sync, a batch at a time by `maintain()` when the library is quiet, and,
for a sync the user waits on (`embed_now`: `ftrag index`, a rescan), once more before it ends.
A new model is built beside the old one and swapped in when complete (see `store.py`).

Removed and renamed files are written a batch of documents per commit.  Compaction runs every
`compact_every_commits` commits, during a long sync too (each commit costs more than the one
before until the versions are compacted), and from `maintain()` when the library is quiet
(see `Store.maybe_optimize`).

Test hook, off in normal use: ``FTRAG_TEST_PAUSE_AT=<point>[:<n>]`` makes the indexer print
``ftrag-test-pause <point> <count>`` on stderr and sleep ``FTRAG_TEST_PAUSE_S`` seconds (default
an hour) the n-th time (default the first) it reaches <point>: ``commit`` (a batch's chunks are
written, its manifest rows not yet), ``compaction`` (before each table is compacted) or
``switch`` (before a model switch creates its table, then after each batch of its vectors).
With ``FTRAG_TEST_PAUSE_S=0`` it only prints the line, each time, so that a test can kill the
process at a random moment just after.  The crash tests SIGKILL the indexer in those windows;
the variables are read only here.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import stat
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from ftrag_desktop.config import Settings
from ftrag_desktop.core.embed import Embedder
from ftrag_desktop.core.events import (
    EmbeddingProgress,
    FileFailed,
    FileIndexed,
    FileRemoved,
    FileRenamed,
    FileStarted,
    Notice,
    SyncEvent,
    SyncFinished,
    SyncProgress,
    SyncStarted,
    SyncSummary,
)
from ftrag_desktop.core.folder_scan import path_key, scan_folder
from ftrag_desktop.core.folder_scan import printable as _printable
from ftrag_desktop.core.ignore import (
    REASON_BAD_NAME,
    ExcludeRules,
    is_ignored,
)
from ftrag_desktop.core.parse import PARSER_VERSION, is_supported
from ftrag_desktop.core.parse.pool import ParseOutcome, ParsePool, PoolClosed
from ftrag_desktop.core.store import DOCS_PER_COMMIT, Move, Store
from ftrag_desktop.core.types import Chunk, DocStatus, DocumentRecord
from ftrag_desktop.errors import OllamaError, OllamaTimeout, UserError

log = logging.getLogger(__name__)
T = TypeVar("T")

# A sync writes its first batch after BATCH_DOCS files or BATCH_SECONDS, so that the first
# documents are searchable at once; each later batch may be twice as big, up to the _MAX
# limits: fewer, bigger commits cost less (SciFact's 5,183 files: 15.0 and 17.2 s against
# 18.4 s, and a third less peak memory).  A few changed files are written at the end of
# their sync.
BATCH_DOCS = 64
BATCH_DOCS_MAX = 256
BATCH_CHUNKS = 2048
BATCH_SECONDS = 1.0
BATCH_SECONDS_MAX = 3.0
FILL_BATCH = 256
EMBED_RETRY_S = 30.0  # after an embedding failure, wait this long before trying again
# Pauses before sending a timed-out embedding request again (a busy Ollama: a model loading,
# an answer being written); after the last one the failure stands.
EMBED_TIMEOUT_RETRIES_S = (2.0, 8.0)
HASH_BLOCK = 1 << 20
PAUSE_ENV = "FTRAG_TEST_PAUSE_AT"
PAUSE_SECONDS_ENV = "FTRAG_TEST_PAUSE_S"
_pauses: Counter[str] = Counter()


def _test_pause(point: str) -> None:
    """The crash tests' hook (see the module docstring); returns at once in normal use."""
    wanted = os.environ.get(PAUSE_ENV)
    if not wanted or wanted.partition(":")[0] != point:
        return
    _pauses[point] += 1
    seconds = float(os.environ.get(PAUSE_SECONDS_ENV) or 3600)
    if seconds > 0 and _pauses[point] != int(wanted.partition(":")[2] or 1):
        return
    print(f"ftrag-test-pause {point} {_pauses[point]}", file=sys.stderr, flush=True)
    if seconds > 0:
        time.sleep(seconds)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _scan_problem(path: Path, st: os.stat_result) -> str:
    """Why a single named path (a watcher's report) cannot be indexed, as the full walk says."""
    if _printable(str(path)) != str(path):
        return f"file {REASON_BAD_NAME}"
    kind = {stat.S_IFIFO: "a named pipe", stat.S_IFSOCK: "a socket"}.get(stat.S_IFMT(st.st_mode))
    return f"not a regular file ({kind})" if kind else ""


def _link_into(path: Path, root: Path, rules: ExcludeRules) -> bool:
    """A symlink to a file that the walk finds under its own name: indexed once, as that."""
    if not path.is_symlink():
        return False
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    return (
        target != path
        and target.is_relative_to(root)
        and is_supported(target)
        and not is_ignored(target, root, rules)
    )


def _batched(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _patient(call: Callable[[], T], cancel: threading.Event) -> T:
    """Run one embedding request; when it times out, send it again after each pause of
    `EMBED_TIMEOUT_RETRIES_S` (Ollama is busy: a model loading, an answer being written), then
    let the `OllamaTimeout` stand.  Other failures are raised at once (the client has retried
    what is worth retrying), and so is the time-out when `cancel` is set meanwhile."""
    pauses = iter(EMBED_TIMEOUT_RETRIES_S)
    while True:
        try:
            return call()
        except OllamaTimeout as exc:
            pause = next(pauses, None)
            if pause is None:
                raise
            log.warning("embedding timed out, trying again in %g s: %s", pause, exc)
            if cancel.wait(pause):
                raise  # quitting: the passages wait for their vectors


def _guarded(outcomes: Iterator[ParseOutcome]) -> Iterator[ParseOutcome]:
    """Turn a parse pool that cannot run at all into an error the user can act on."""
    try:
        yield from outcomes
    except PoolClosed:
        return
    except RuntimeError as exc:
        raise UserError(
            f"The document parser could not start: {exc}.",
            "Check that the machine has free memory, then run the sync again.",
        ) from exc


@dataclass
class _Plan:
    """What one sync will do, computed by `_diff` from stats (and hashes where needed)."""

    to_index: list[tuple[Path, os.stat_result, DocumentRecord | None]] = field(default_factory=list)
    touched: list[DocumentRecord] = field(default_factory=list)
    renames: list[tuple[DocumentRecord, Path, os.stat_result]] = field(default_factory=list)
    removals: list[DocumentRecord] = field(default_factory=list)
    unchanged: int = 0
    hashes: dict[str, str] = field(default_factory=dict)  # path -> sha256, computed while diffing


@dataclass
class _Pending:
    """One parsed document waiting in the write batch."""

    record: DocumentRecord
    chunks: list[Chunk]
    started: float
    known: bool  # the manifest had the file before: its stored vectors may be reused


@dataclass
class _Batch:
    """A batch on its way to the store: its files, and its vectors being embedded."""

    batch: list[_Pending]
    failed: list[DocumentRecord]
    hashes: list[str]  # of every chunk's embed text; empty: no vectors for this batch
    cached: dict[str, list[float]]  # stored vectors reused, by hash
    todo: list[str] = field(default_factory=list)  # hashes being embedded, in order
    vectors: Future[list[list[float]]] | None = None


def _ready(job: _Batch, cancel: threading.Event) -> bool:
    """Wait for the batch's vectors; False if the sync is stopped first (quit, pause, Ctrl-C:
    the batch stays pending, and nothing waits for a slow Ollama)."""
    while job.vectors is not None and not job.vectors.done():
        if cancel.wait(0.05):
            return job.vectors.done()
    return True


class Indexer:
    """The single writer of one index.  Not thread-safe: one sync at a time."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        embedder: Embedder | None,
        *,
        pool: ParsePool | None = None,
        embed_note: str = "",
    ) -> None:
        self._store = store
        self._settings = settings
        self._embedder = embedder
        # Why there is no embedder, or why the last embedding call failed (for the status).
        self._embed_error = embed_note if embedder is None else ""
        self._embed_failed_at = 0.0
        workers = settings.parse_workers or max(1, min(4, os.cpu_count() or 1))
        self._pool = pool or ParsePool(
            workers,
            timeout_s=settings.parse_timeout_s,
            memory_mb=settings.parse_memory_mb,
            max_bytes=settings.parse_max_bytes,
            max_pages=settings.parse_max_pages,
            max_chars=settings.parse_max_chars,
        )
        self._owns_pool = pool is None
        self._exclusions: tuple[tuple[str, ...], ExcludeRules] = ((), ExcludeRules())
        # What this writer already knows, so that a one-file sync (the watcher's) does not ask
        # LanceDB again: the active model whose table has vectors, and the one whose table had
        # every vector after the last fill (None once a chunk is stored without one).
        self._vectors_seen: str | None = None
        self._complete_for: str | None = None
        self._embedding: Future[list[list[float]]] | None = None  # the last batch's vectors
        # The last sync of a whole folder that completed with no problem in the walk: each
        # file's size and modification time (ns), as that sync saw them (`quick_sync`).
        self.last_scan: dict[str, tuple[int, int]] | None = None

    def close(self) -> None:
        if self._owns_pool:
            self._pool.close()

    def __enter__(self) -> Indexer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the sync ------------------------------------------------------------------------

    def sync(
        self,
        root: Path,
        *,
        paths: Iterable[Path] | None = None,
        cancel: threading.Event | None = None,
        retry_failed: bool = False,
        embed_now: bool = False,
    ) -> Iterator[SyncEvent]:
        """Reconcile `root` (or only `paths` under it) with the manifest; yield progress.

        `embed_now` (an explicit rescan by the user, or `ftrag index`) tries the embedder again
        at once, even within the pause that follows an embedding failure, and once more before
        the sync ends if this sync stored passages without vectors: a one-shot sync returns
        with every vector Ollama can give.
        """
        cancel = cancel or threading.Event()
        if embed_now:
            self._embed_failed_at = 0.0
        root = root.resolve()
        t0 = time.monotonic()
        failures: list[tuple[str, str]] = []
        counts = {"indexed": 0, "chunks": 0, "embedded": 0, "removed": 0, "renamed": 0}
        scan_errors: list[tuple[Path, str]] = []

        self._adopt_model_if_empty(cancel)
        self.last_scan = None
        disk = self._scan(root, paths, scan_errors)
        plan = self._diff(root, disk, paths, retry_failed)
        yield SyncStarted(
            str(root), len(plan.to_index), plan.unchanged, len(plan.removals), len(plan.renames)
        )
        for bad_path, reason in scan_errors:
            failures.append((str(bad_path), reason))
            yield FileFailed(str(bad_path), reason)

        if plan.removals:
            self._vectors_seen = None  # the last vectors may go with them
        for batch in _batched(plan.removals, DOCS_PER_COMMIT):
            if cancel.is_set():
                break
            self._store.remove_documents([rec.doc_id for rec in batch])
            for rec in batch:
                counts["removed"] += 1
                yield FileRemoved(rec.path)
            self._compact_if_due()
        for moves in _batched(plan.renames, DOCS_PER_COMMIT):
            if cancel.is_set():
                break
            self._store.rename_documents(
                [
                    Move(rec.doc_id, path_key(new_path), st.st_size, st.st_mtime_ns)
                    for rec, new_path, st in moves
                ]
            )
            for rec, new_path, _st in moves:
                counts["renamed"] += 1
                yield FileRenamed(rec.path, path_key(new_path))
            self._compact_if_due()
        if plan.touched and not cancel.is_set():
            self._store.put_documents(plan.touched)

        cancelled = cancel.is_set()
        if plan.to_index and not cancelled:
            for event in self._index_files(plan, cancel, counts, failures, t0):
                yield event
            cancelled = cancel.is_set()

        if not cancelled:
            if embed_now and self._embed_error and self._store.count_missing_vectors():
                self._embed_failed_at = 0.0  # the user is waiting for this sync: try again now
            embedded_while_indexing = counts["embedded"]
            for event in self.fill_vectors(cancel):
                if isinstance(event, EmbeddingProgress):
                    counts["embedded"] = embedded_while_indexing + event.done
                yield event
            cancelled = cancel.is_set()
        embedding = self.embedding_state()
        if embedding != "semantic":
            yield Notice(embedding)
        if not cancelled:  # both can take seconds; the next sync does them after a quit
            self._store.ensure_fts_index()
            self.maintain()

        if paths is None and not scan_errors and not cancelled:
            self.last_scan = {key: (st.st_size, st.st_mtime_ns) for key, (_p, st) in disk.items()}
        yield SyncFinished(
            SyncSummary(
                root=str(root),
                indexed=counts["indexed"],
                unchanged=plan.unchanged,
                touched=len(plan.touched),
                removed=counts["removed"],
                renamed=counts["renamed"],
                failed=len(failures),
                chunks_written=counts["chunks"],
                embedded=counts["embedded"],
                seconds=time.monotonic() - t0,
                cancelled=cancelled,
                embedding=embedding,
                failures=tuple(failures),
            )
        )

    def maintain(self) -> bool:
        """Work for quiet moments (the library service calls it when nothing is queued, and a
        sync at its end): one batch of the passages stored without vectors, once the pause
        after an embedding failure is over (so vectors lost to a busy or absent Ollama are
        filled in the background, and no command waits long behind it); then compaction when
        due: after `compact_every_commits` commits, or once the library has been quiet for the
        readers' grace period (see `Store.maybe_optimize`).  True if compaction ran."""
        for _event in self.fill_vectors(max_batches=1):
            pass
        return self._compact_if_due()

    def _compact_if_due(self) -> bool:
        """Compaction within a long sync too: every commit costs more than the one before until
        their versions are compacted, so a sync of thousands of changes must not wait for its
        end.  True if it ran."""
        return self._store.maybe_optimize(
            self._settings.compact_every_commits,
            before_table=lambda _name: _test_pause("compaction"),
        )

    def _embedding_failed(self, exc: OllamaError) -> None:
        self._embed_error = exc.message
        self._embed_failed_at = time.monotonic()

    def _may_embed(self) -> bool:
        """False for a while after a failure, so a down Ollama costs one attempt, not many."""
        if self._embedder is None:
            return False
        if self._embed_error and time.monotonic() - self._embed_failed_at < EMBED_RETRY_S:
            return False
        self._embed_error = ""
        return True

    def _adopt_model_if_empty(self, cancel: threading.Event) -> None:
        """An empty index takes the embedder's model at once: no switch needed later."""
        embedder = self._embedder
        if embedder is None or self._store.embedding_model()[0] == embedder.model:
            return
        if self._store.documents() or self._store.building_model() is not None:
            return
        if not self._may_embed():
            return
        try:
            self._store.begin_switch(embedder.model, _patient(embedder.dimension, cancel))
        except OllamaError as exc:
            self._embedding_failed(exc)
            return
        self._store.finish_switch()

    def _has_vectors(self) -> bool:
        model = self._store.embedding_model()[0]
        if model and model == self._vectors_seen:
            return True
        found = self._store.has_vectors()
        self._vectors_seen = model if found else None
        return found

    def embedding_state(self) -> str:
        """ "semantic" when vector search works, else "keyword search only: <why>"."""
        if self._has_vectors() and not self._embed_error:
            return "semantic"
        if self._has_vectors():
            return f"semantic (new passages wait for vectors: {self._embed_error})"
        why = self._embed_error or (
            "no embedding model is configured" if self._embedder is None else "no vectors yet"
        )
        return f"keyword search only: {why}"

    # ---- scan and diff -------------------------------------------------------------------

    def _rules(self) -> ExcludeRules:
        """The user's excluded patterns, compiled once per distinct list.  A file that becomes
        excluded is absent from the scan, so the diff removes it from the index; one that is
        no longer excluded is new to the diff, so it is indexed."""
        patterns = tuple(self._settings.excluded_patterns)
        if patterns != self._exclusions[0]:
            self._exclusions = (patterns, ExcludeRules.parse(patterns, strict=False))
        return self._exclusions[1]

    def _scan(
        self, root: Path, paths: Iterable[Path] | None, errors: list[tuple[Path, str]]
    ) -> dict[str, tuple[Path, os.stat_result]]:
        """The supported files on disk: all of `root`, or just `paths` (missing ones absent).

        Problems go to `errors` under a printable path (a name that is not UTF-8 shows U+FFFD).
        """
        disk: dict[str, tuple[Path, os.stat_result]] = {}
        rules = self._rules()

        def report(path: Path, why: str) -> None:
            errors.append((Path(_printable(str(path))), why))

        if paths is None:
            return scan_folder(root, rules, report)
        if _printable(str(root)) != str(root):  # no path below it could be stored
            report(root, f"folder {REASON_BAD_NAME}")
            return disk
        for raw in paths:
            path = Path(os.path.abspath(raw))
            if is_ignored(path, root, rules) or not is_supported(path):
                continue
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            except OSError as exc:
                report(path, f"cannot read file information: {exc.strerror}")
                continue
            problem = _scan_problem(path, st)
            if problem:
                report(path, problem)
            elif stat.S_ISREG(st.st_mode) and not _link_into(path, root, rules):
                disk[path_key(path)] = (path, st)
        return disk

    def _diff(
        self,
        root: Path,
        disk: dict[str, tuple[Path, os.stat_result]],
        paths: Iterable[Path] | None,
        retry_failed: bool,
    ) -> _Plan:
        plan = _Plan()
        prefix = path_key(root).rstrip(os.sep) + os.sep
        if paths is None:
            known = {r.path: r for r in self._store.documents() if r.path.startswith(prefix)}
        else:  # the watcher's few paths: their rows only, not the whole manifest
            wanted = {path_key(Path(os.path.abspath(p))) for p in paths} | disk.keys()
            # A name that is not UTF-8 is never stored (the scan reports it): no lookup either.
            wanted = {key for key in wanted if _printable(key) == key}
            known = {r.path: r for r in self._store.documents_at(sorted(wanted))}

        new_files: list[tuple[Path, os.stat_result]] = []
        for key, (path, st) in disk.items():
            rec = known.get(key)
            if rec is None:
                new_files.append((path, st))
                continue
            stale = (
                rec.status == DocStatus.PENDING
                or rec.parser_version < PARSER_VERSION
                or (retry_failed and rec.status == DocStatus.FAILED)
            )
            if not stale and rec.size == st.st_size and rec.mtime_ns == st.st_mtime_ns:
                plan.unchanged += 1
                continue
            digest = self._hash(path, plan)
            if not stale and digest == rec.sha256:
                plan.touched.append(replace(rec, size=st.st_size, mtime_ns=st.st_mtime_ns))
                plan.unchanged += 1
            else:
                plan.to_index.append((path, st, rec))

        missing = [rec for key, rec in known.items() if key not in disk]
        by_hash: dict[str, list[DocumentRecord]] = {}
        for rec in missing:
            if rec.sha256 and rec.status == DocStatus.INDEXED:
                by_hash.setdefault(rec.sha256, []).append(rec)
        for path, st in new_files:
            digest = self._hash(path, plan)
            candidates = by_hash.get(digest)
            if candidates and digest:
                rec = candidates.pop()
                plan.renames.append((rec, path, st))
                missing.remove(rec)
            else:
                plan.to_index.append((path, st, None))
        plan.removals = missing
        return plan

    def _hash(self, path: Path, plan: _Plan) -> str:
        key = path_key(path)
        if key not in plan.hashes:
            try:
                plan.hashes[key] = file_sha256(path)
            except OSError:
                plan.hashes[key] = ""  # unreadable: the parse step reports why
        return plan.hashes[key]

    # ---- parse, chunk, embed, write ------------------------------------------------------

    def _index_files(
        self,
        plan: _Plan,
        cancel: threading.Event,
        counts: dict[str, int],
        failures: list[tuple[str, str]],
        t0: float,
    ) -> Iterator[SyncEvent]:
        total = len(plan.to_index)
        records: dict[str, DocumentRecord] = {}
        known: set[str] = set()
        for path, st, old in plan.to_index:
            key = path_key(path)
            if old is not None:
                known.add(key)
            records[key] = DocumentRecord(
                doc_id=old.doc_id if old else uuid.uuid4().hex,
                path=key,
                size=st.st_size,
                mtime_ns=st.st_mtime_ns,
                sha256=plan.hashes.get(key, ""),
                status=DocStatus.PENDING,
                parser_version=PARSER_VERSION,
            )
        # Mark everything pending first: a crash from here on is repaired by the next sync.
        self._store.put_documents(list(records.values()))

        batch: list[_Pending] = []
        failed: list[DocumentRecord] = []
        embedding: _Batch | None = None  # the batch being embedded, written after the next
        written = 0  # batches handed on: each may be twice as big as the one before
        last_flush = time.monotonic()
        done = 0
        start = time.monotonic()
        paths = [path for path, _, _ in plan.to_index]
        size, overlap = self._settings.chunk_size, self._settings.chunk_overlap
        # The workers chunk too: pure Python that would otherwise hold this process's GIL
        # while the batch before is embedded and written.
        outcomes = _guarded(self._pool.map(paths, chunking=(size, overlap)))
        try:
            for outcome in outcomes:
                done += 1
                rec = records[outcome.path]
                yield FileStarted(outcome.path)
                if outcome.document is None:
                    failed.append(self._failed_record(rec, outcome))
                    failures.append((outcome.path, outcome.error))
                    yield FileFailed(outcome.path, outcome.error)
                else:
                    assert outcome.chunks is not None  # map(chunking=...) chunks every file
                    chunks = list(outcome.chunks)
                    if not chunks:
                        reason = "no text found"
                        failed.append(self._failed_record(rec, replace(outcome, error=reason)))
                        failures.append((outcome.path, reason))
                        yield FileFailed(outcome.path, reason)
                    else:
                        doc = outcome.document
                        rec = replace(rec, title=doc.title, pages=doc.pages)
                        started = time.monotonic() - outcome.seconds
                        batch.append(_Pending(rec, chunks, started, outcome.path in known))
                n_chunks = sum(len(p.chunks) for p in batch)
                due = (
                    len(batch) >= min(BATCH_DOCS << written, BATCH_DOCS_MAX)
                    or n_chunks >= BATCH_CHUNKS
                    or time.monotonic() - last_flush
                    >= min(BATCH_SECONDS * (1 << written), BATCH_SECONDS_MAX)
                )
                if cancel.is_set():
                    # Quit or pause: stop now.  This batch and the one being embedded stay
                    # "pending" and the next sync does them again, so nothing is lost and
                    # quitting never waits on a flush.
                    batch, failed, embedding = [], [], None
                    break
                if due:
                    # This batch is embedded in the background while the one before it is
                    # written, and then while the next is parsed and chunked.
                    job = self._start_batch(batch, failed, cancel)
                    if embedding is not None:
                        if not _ready(embedding, cancel):  # stopped while Ollama works
                            batch, failed, embedding = [], [], None
                            break
                        yield from self._write_batch(embedding, counts)
                        self._compact_if_due()
                    embedding = job
                    batch, failed, last_flush = [], [], time.monotonic()
                    written = min(written + 1, 8)
                elapsed = max(time.monotonic() - start, 1e-6)
                rate = done / elapsed
                eta = (total - done) / rate if rate > 0 else None
                yield SyncProgress(done, total, outcome.path, rate, eta)
        finally:
            close = getattr(outcomes, "close", None)
            if close is not None:
                close()
        if embedding is not None and _ready(embedding, cancel):
            yield from self._write_batch(embedding, counts)
        if (batch or failed) and not cancel.is_set():
            last = self._start_batch(batch, failed, cancel)
            if _ready(last, cancel):
                yield from self._write_batch(last, counts)

    def _failed_record(self, rec: DocumentRecord, outcome: ParseOutcome) -> DocumentRecord:
        return replace(
            rec, status=DocStatus.FAILED, error=outcome.error, chunks=0, indexed_at=time.time()
        )

    def _start_batch(
        self, batch: list[_Pending], failed: list[DocumentRecord], cancel: threading.Event
    ) -> _Batch:
        """Look up the stored vectors the batch can reuse, and start embedding the rest in the
        background (the store is only touched from the sync's own thread).

        Only chunks of files the index knew before are looked up: a file changed, or one whose
        last write a crash cut short.  Each look-up scans the table, so doing it for every batch
        of a first index made that index slower the bigger it grew; a new file's text is rarely
        stored already (a copy of another file is embedded again).
        """
        chunks = [c for p in batch for c in p.chunks]
        job = _Batch(batch, failed, [], {})
        model, _dim = self._store.embedding_model()
        embedder = self._embedder
        if not chunks or not model or embedder is None or embedder.model != model:
            return job
        if not self._may_embed():
            return job
        job.hashes = [text_hash(c.embed_text) for c in chunks]
        reusable = [text_hash(c.embed_text) for p in batch if p.known for c in p.chunks]
        job.cached = self._store.cached_vectors(reusable) if reusable else {}
        todo: dict[str, str] = {}
        for h, c in zip(job.hashes, chunks, strict=True):
            if h not in job.cached:
                todo.setdefault(h, c.embed_text)
        if todo:
            texts = list(todo.values())
            job.todo = list(todo)
            job.vectors = self._in_background(embedder, texts, cancel)
        return job

    def _in_background(
        self, embedder: Embedder, texts: list[str], cancel: threading.Event
    ) -> Future[list[list[float]]]:
        """Embed `texts` on a thread of its own, once the batch before has been embedded (one
        request at a time, as before).  A daemon thread: quitting never waits for Ollama."""
        before, future = self._embedding, Future[list[list[float]]]()

        def run() -> None:
            if before is not None:
                wait([before])
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(self._embed(embedder, texts, cancel))
            except BaseException as exc:  # handed to the sync's thread with the result
                future.set_exception(exc)

        threading.Thread(target=run, name="ftrag-embed", daemon=True).start()
        self._embedding = future
        return future

    def _batch_vectors(self, job: _Batch) -> tuple[list[list[float] | None] | None, int]:
        """The batch's vectors (None without an embedding model) and how many were embedded."""
        if not job.hashes:
            return None, 0
        cached = job.cached
        if job.vectors is not None:
            try:
                fresh = job.vectors.result()
            except OllamaError as exc:
                self._embedding_failed(exc)
                log.warning("embedding failed, storing chunks without vectors: %s", exc)
                return [cached.get(h) for h in job.hashes], 0
            cached.update(zip(job.todo, fresh, strict=True))
        return [cached.get(h) for h in job.hashes], len(job.todo)

    def _write_batch(self, job: _Batch, counts: dict[str, int]) -> Iterator[SyncEvent]:
        if job.failed:
            self._store.replace_many([(rec, [], None) for rec in job.failed])
        batch = job.batch
        if not batch:
            return
        vectors, embedded = self._batch_vectors(job)
        if vectors is None or any(v is None for v in vectors):
            self._complete_for = None  # fill_vectors has work again
        items: list[tuple[DocumentRecord, list[Chunk], list[list[float] | None] | None]] = []
        cursor = 0
        now = time.time()
        active_model = self._store.embedding_model()[0]
        for pending in batch:
            n = len(pending.chunks)
            vecs = vectors[cursor : cursor + n] if vectors is not None else None
            cursor += n
            rec = replace(
                pending.record,
                status=DocStatus.INDEXED,
                error="",
                chunks=n,
                embed_model=active_model,
                indexed_at=now,
            )
            items.append((rec, pending.chunks, vecs))
        self._store.replace_many(items, before_manifest=lambda: _test_pause("commit"))
        share = embedded / max(1, cursor)
        for pending, (rec, chunks, _) in zip(batch, items, strict=True):
            counts["indexed"] += 1
            counts["chunks"] += len(chunks)
            yield FileIndexed(
                rec.path,
                len(chunks),
                time.monotonic() - pending.started,
                round(share * len(chunks)),
            )
        counts["embedded"] += embedded

    def _embed(
        self, embedder: Embedder, texts: Sequence[str], cancel: threading.Event
    ) -> list[list[float]]:
        """Embed `texts`, one request's worth at a time, each request `_patient` (so the work
        done before a time-out is kept)."""
        size = max(1, int(getattr(embedder, "batch_size", 32)))
        out: list[list[float]] = []
        for start in range(0, len(texts), size):
            part = texts[start : start + size]
            out.extend(_patient(functools.partial(embedder.embed_documents, part), cancel))
        return out

    def _embed_unique(
        self, items: Sequence[tuple[str, str]], embedder: Embedder, cancel: threading.Event
    ) -> list[list[float]]:
        """Embed (hash, text) pairs, each distinct text once."""
        unique = dict(items)
        vectors = self._embed(embedder, list(unique.values()), cancel)
        fresh = dict(zip(unique, vectors, strict=True))
        return [fresh[h] for h, _ in items]

    # ---- vectors filled in later ---------------------------------------------------------

    def fill_vectors(
        self, cancel: threading.Event | None = None, *, max_batches: int | None = None
    ) -> Iterator[SyncEvent]:
        """Embed every chunk stored without a vector; build a new model's table beside the old.

        Runs when an embedder is reachable: after a keyword-only start, after Ollama was down
        during a sync, or when the configured embedding model differs from the index's.
        `max_batches` stops it after that many batches of `FILL_BATCH` (the rest waits for the
        next call).
        """
        cancel = cancel or threading.Event()
        embedder = self._embedder
        if embedder is None or not self._may_embed():
            return
        active, _ = self._store.embedding_model()
        building = self._store.building_model()
        try:
            # A switch to another model may be half-built (the settings changed back meanwhile):
            # begin_switch drops it, else its rows would get this model's vectors.
            if embedder.model != active or (building and building[0] != embedder.model):
                dim = _patient(embedder.dimension, cancel)
                if embedder.model != active and building != (embedder.model, dim):
                    _test_pause("switch")
                self._store.begin_switch(embedder.model, dim)
            switching = self._store.building_model() is not None
            if not switching and self._complete_for == embedder.model:
                return  # every row had its vector after the last fill, none came without since
            total = self._store.count_missing_vectors()
            done = 0
            batches = 0
            while not cancel.is_set():
                if max_batches is not None and batches >= max_batches:
                    return  # more later
                rows = self._store.missing_vector_inputs(FILL_BATCH)
                if not rows:
                    break
                batches += 1
                ids = [chunk_id for chunk_id, _, _ in rows]
                vectors = self._embed_unique([(h, text) for _, h, text in rows], embedder, cancel)
                self._store.set_vectors(ids, vectors)
                if switching:
                    _test_pause("switch")
                done += len(rows)
                yield EmbeddingProgress(embedder.model, done, max(total, done))
        except OllamaError as exc:
            self._embedding_failed(exc)
            yield Notice(f"Vectors could not be computed now ({exc.message}); will retry later.")
            return
        if not cancel.is_set() and self._store.building_model() is not None:
            self._store.finish_switch()
        if not cancel.is_set() and self._store.building_model() is None:
            self._complete_for = self._store.embedding_model()[0]
