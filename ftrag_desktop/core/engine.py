"""The engine: one object that wires settings, the index, Ollama, sync, search and answers.

Both front ends (the CLI and the Qt app) are thin layers over this.  It owns no threads of its
own except inside `watch()`; the caller decides where each operation runs (the GUI runs them
on workers, never on its own thread).

Opening an engine checks the index for damaged files first (`store_damage`): a damaged index
is moved to ``<home>/damaged-index`` and rebuilt from the watched folders by the next sync.
Until a sync has done that, `take_notices()` and the sync events (a `Notice` right after
`SyncStarted`) say so, in the CLI and the app alike.  A sync that fails on a file damaged while
the engine ran does the same, and raises `IndexDamaged` (a message for people, not a crash).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import queue
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ftrag_desktop.config import (
    LIBRARY_FIELDS,
    InvalidSettings,
    Settings,
    SettingsChange,
    compare_settings,
    load_settings,
    save_settings,
    validate_settings,
)
from ftrag_desktop.core import store_damage
from ftrag_desktop.core.answer import AnswerEvent, answer
from ftrag_desktop.core.conversations import ConversationStore
from ftrag_desktop.core.embed import OllamaEmbedder, probe_embedder
from ftrag_desktop.core.events import Notice, SyncEvent, SyncFinished, SyncStarted
from ftrag_desktop.core.index_location import locate
from ftrag_desktop.core.indexer import Indexer
from ftrag_desktop.core.llm import OllamaClient
from ftrag_desktop.core.retrieve import Retriever, SearchResult
from ftrag_desktop.core.store import Store
from ftrag_desktop.core.types import DocStatus
from ftrag_desktop.core.watch import FolderWatcher, SyncRequest
from ftrag_desktop.errors import ConfigError, FtragError, IndexDamaged, OllamaError, UserError
from ftrag_desktop.paths import Home

log = logging.getLogger(__name__)

# Beside the index: the chunk settings its documents were cut with (see `_reconcile_chunking`).
CHUNKING_FILE = "chunking.json"
# In the data home: the last damaged index, kept for diagnosis (one copy).
DAMAGED_DIR = "damaged-index"

# Settings the indexer captures when it is built: changing one rebuilds it before the next sync.
_INDEXER_FIELDS = frozenset(
    {
        "embed_model",
        "embed_batch_size",
        "parse_workers",
        "parse_timeout_s",
        "parse_max_bytes",
        "parse_memory_mb",
        "parse_max_pages",
        "parse_max_chars",
    }
)


@dataclass(frozen=True)
class Check:
    """One line of `doctor`: what was checked, whether it is fine, and how to fix it if not."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


class Engine:
    def __init__(
        self,
        home: Home,
        settings: Settings | None = None,
        *,
        ollama_host: str | None = None,
    ) -> None:
        self.home = home
        self.settings = settings or load_settings(home.settings_file)
        if ollama_host:
            self.settings.ollama_host = ollama_host
        self.client = OllamaClient(
            self.settings.resolved_ollama_host(), timeout_s=self.settings.request_timeout_s
        )
        self.location = locate(home, self.settings)  # the home's folder, or a shared index
        self._rebuild_notice = self._check_index()
        self._notice_taken = False
        self._unsound = False  # a sync failed unexpectedly: do not vouch for the files at close
        self.store = Store(self.location)
        self.conversations = ConversationStore(home.conversations_dir)
        self._indexer: Indexer | None = None
        self._indexer_stale = False  # set by apply_settings; the writer rebuilds the indexer
        self._retired_clients: list[OllamaClient] = []  # replaced by apply_settings

    def interrupt(self) -> None:
        """Quitting: stop the parse workers now, so a running sync ends at its next step.

        Safe from any thread; the sync reports the files it was parsing as cancelled, and they
        stay pending for the next start.
        """
        if self._indexer is not None:
            self._indexer.close()

    def _check_index(self) -> str | None:
        """Move a damaged index aside (see `store_damage`); the rebuild notice, if one is due.
        A local index only: the check reads its files on disk (see `index_location`)."""
        if self.location.remote:
            return None
        index_dir = self.location.local_dir
        try:
            store_damage.check_at_start(index_dir, self.home.root / DAMAGED_DIR)
        except OSError as exc:
            raise ConfigError(
                f"The index in {index_dir} is damaged and could not be moved aside: "
                f"{exc.strerror or exc}.",
                f"Check that {self.home.root} is writable, then start again.",
            ) from exc
        return store_damage.read_notice(index_dir)

    def take_notices(self) -> list[str]:
        """What the user should hear about before anything else (a damaged index being
        rebuilt); each notice is handed out once, and the syncs of this engine then leave it
        out of their events."""
        if self._rebuild_notice is None or self._notice_taken:
            return []
        self._notice_taken = True
        return [self._rebuild_notice]

    def close(self) -> None:
        if self._indexer is not None:
            self._indexer.close()
            self._indexer = None
        if self.store.is_writer and not self._unsound and not self.location.remote:
            # This process wrote the files last and stopped cleanly: the next start may trust
            # them without reading them all again.
            store_damage.write_stamp(self.location.local_dir)
        self.store.release_writer()
        self.store.close()
        self.client.close()
        for client in self._retired_clients:
            client.close()
        self._retired_clients.clear()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def save_settings(self) -> None:
        save_settings(self.home.settings_file, self.settings)

    def reload_settings(self, settings: Settings) -> None:
        """Adopt settings the app has validated and saved (the library process runs this)."""
        change = compare_settings(self.settings, settings)
        for name in change.changed:
            setattr(self.settings, name, getattr(settings, name))
        self._follow(change)

    def apply_settings(self, new: Settings) -> SettingsChange:
        """Validate `new`, save it, and use it from now on; the result says what follows.

        The library's folder lists are kept as they are (the library service owns them).  The
        live `settings` object is updated in place, so whatever holds it sees the new values.
        A new Ollama address or timeout gets a new client; answers already streaming finish on
        the old one, which is closed with the engine.  Settings the indexer captured (embedding
        model, parse pool) take effect at the next sync, which rebuilds it; so do new chunk
        sizes and excluded patterns.  Embedding-model switches and re-chunking happen in that
        sync, in the background: the caller starts it when `change.sync_needed`.

        Raises `InvalidSettings` (nothing saved) or `ConfigError` (the file could not be
        written; nothing changed).
        """
        errors = validate_settings(new)
        if errors:
            raise InvalidSettings(errors)
        live = self.settings
        change = compare_settings(live, new)
        if not change:
            return change
        merged = copy.deepcopy(new)
        for name in LIBRARY_FIELDS:
            setattr(merged, name, list(getattr(live, name)))
        try:
            save_settings(self.home.settings_file, merged)
        except OSError as exc:
            raise ConfigError(
                f"The settings could not be saved: {exc.strerror or exc}.",
                f"Check that {self.home.root} is writable and the disk is not full.",
            ) from exc
        for name in change.changed:
            setattr(live, name, getattr(merged, name))
        self._follow(change)
        return change

    def _follow(self, change: SettingsChange) -> None:
        """A new client for a new address; the indexer is rebuilt before the next sync."""
        if change.host_changed:
            self._retired_clients.append(self.client)
            self.client = OllamaClient(
                self.settings.resolved_ollama_host(), timeout_s=self.settings.request_timeout_s
            )
        if change.host_changed or _INDEXER_FIELDS & set(change.changed):
            self._indexer_stale = True

    # ---- indexing ------------------------------------------------------------------------

    def _make_indexer(self) -> Indexer:
        """The single writer: takes the index lock, probes the embedder once."""
        if self._indexer_stale and self._indexer is not None:
            # Rebuilt here, on the writer's thread and between two syncs, never under a sync.
            self._indexer.close()
            self._indexer = None
        self._indexer_stale = False
        if self._indexer is None:
            if self.store.read_only:
                raise UserError(
                    f"This desktop only reads the shared index {self.location.uri}: "
                    "another machine indexes it.",
                    "Index the folders on the machine that writes the shared index, or turn "
                    "off index_read_only in the settings to make this one the indexer.",
                )
            self.store.acquire_writer()
            for fixed in self.store.repair():  # whatever a crash left behind
                log.warning("index repaired: %s", fixed)
            # No probe here: a no-change sync must not call the embedder at all.  The indexer
            # finds out whether embedding works when it first has something to embed.
            model = self.settings.embed_model
            embedder = (
                OllamaEmbedder(self.client, model, batch_size=self.settings.embed_batch_size)
                if model
                else None
            )
            self._indexer = Indexer(
                self.store,
                self.settings,
                embedder,
                embed_note="" if model else "embedding is turned off in the settings",
            )
        return self._indexer

    def sync(
        self,
        root: Path,
        *,
        paths: Sequence[Path] | None = None,
        cancel: threading.Event | None = None,
        retry_failed: bool = False,
        embed_now: bool = False,
    ) -> Iterator[SyncEvent]:
        root = Path(root).expanduser().resolve()
        if not root.is_dir():
            raise UserError(
                f"Folder not found: {root}", "Check the path, or pick a folder that exists."
            )
        indexer = self._make_indexer()
        self._reconcile_chunking()
        notice = None if self._notice_taken else self._rebuild_notice
        try:
            for event in indexer.sync(
                root, paths=paths, cancel=cancel, retry_failed=retry_failed, embed_now=embed_now
            ):
                yield event
                if isinstance(event, SyncStarted) and notice:
                    yield Notice(notice)
                elif isinstance(event, SyncFinished) and self._rebuilt(event, paths):
                    store_damage.clear_notice(self.location.local_dir)
                    self._rebuild_notice = None
        except FtragError:
            raise
        except Exception as exc:
            self._unsound = True
            if (
                not self.store.is_writer
                or self.location.remote
                or not store_damage.find_damage(self.location.local_dir)
            ):
                raise  # a bug, not damage: logged with its stack by the caller
            raise self._recover_from_damage() from exc

    def fold_new_passages(self) -> int:
        """After a sync that nothing else follows (`ftrag index`): fold the passages it added
        into the full-text index now, so that the next search does not scan them.  The library
        service does this when quiet (`idle_maintenance`); a command that exits would leave it
        to a compaction that may never come.  Readers keep their grace period.  Returns how
        many passages were folded in (0: nothing to do).  Writer only."""
        if self._indexer is None:  # not the writer, or no sync yet
            return 0
        waiting = self.store.unindexed_text_rows()
        if waiting:
            self.store.optimize()
        return waiting

    def last_full_scan(self) -> dict[str, tuple[int, int]] | None:
        """What the last complete sync of a whole folder saw: each file's size and
        modification time (ns) by key; None if the last sync was partial or had problems."""
        return self._indexer.last_scan if self._indexer is not None else None

    def _recover_from_damage(self) -> IndexDamaged:
        """Damage found during a sync (a file went missing while the engine ran): move the
        index aside as at start, open a new one, and say so; the next sync rebuilds it."""
        if self._indexer is not None:
            self._indexer.close()
            self._indexer = None
        self.store.close()  # releases the writer lock; check_at_start takes it again
        self._rebuild_notice = self._check_index()
        self._notice_taken = False
        self.store = Store(self.location)
        self._unsound = False
        return IndexDamaged(
            self._rebuild_notice or "The index was damaged.",
            "Index the folder again (the app does at the next change or start): the index is "
            "rebuilt from your documents.",
        )

    def _rebuilt(self, event: SyncFinished, paths: Sequence[Path] | None) -> bool:
        """A whole folder synced to the end after the index was rebuilt: the notice is done."""
        return self._rebuild_notice is not None and paths is None and not event.summary.cancelled

    def idle_maintenance(self) -> bool:
        """Work for quiet moments (the watcher calls it when no change is waiting): the
        vector index of a large library when it is due (`Store.maintain_vector_index`), else
        the compaction that removes the versions kept for readers once they are old enough.
        True if either ran.
        Writer only; nothing happens before this engine's first sync."""
        if self._indexer is None:
            return False
        try:
            # Past store_ann.MIN_ROWS vectors, the ANN index (built or retrained when due).
            # Before the compaction: that would fold rows into an index about to be replaced.
            done = self.store.maintain_vector_index()
        except Exception:  # searches stay exact (flat) meanwhile; retried at the next change
            log.exception("building the vector index failed")
            done = ""
        if done:
            log.info("%s", done)
            return True  # one slow job per quiet moment
        try:
            return self._indexer.maintain()
        except Exception:  # a failed compaction is retried later; it must not stop the watcher
            log.exception("compaction failed")
            return False

    def _reconcile_chunking(self) -> None:
        """After the chunk size or overlap changed, mark every indexed document pending.

        Pending documents are re-read by the sync of their folder, so each one is cut again
        with the new sizes; the mark is in the manifest, so a quit or crash half-way resumes at
        the next start, and search keeps the old passages until each file is redone.  The sizes
        the index was cut with are recorded beside it; an index without the record predates
        it and was cut with the current sizes.  Writer only (called from `sync`).
        """
        want = {
            "chunk_size": self.settings.chunk_size,
            "chunk_overlap": self.settings.chunk_overlap,
        }
        record = self.location.local_dir / CHUNKING_FILE
        try:
            have: object = json.loads(record.read_text(encoding="utf-8"))
        except FileNotFoundError:
            have = None
        except (OSError, ValueError):
            have = {}  # unreadable: assume the worst, re-chunk
        if have == want:
            return
        if have is not None:
            stale = [
                replace(rec, status=DocStatus.PENDING)
                for rec in self.store.documents()
                if rec.status == DocStatus.INDEXED
            ]
            if stale:
                log.info("chunk settings changed to %s: re-indexing %d documents", want, len(stale))
                self.store.put_documents(stale)
        tmp = record.with_name(f"{CHUNKING_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(want), encoding="utf-8")
        os.replace(tmp, record)

    def watch(
        self,
        roots: Sequence[Path],
        on_event: Callable[[SyncEvent], None],
        cancel: threading.Event,
        *,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        """Sync every root, then keep them in sync until `cancel` is set (blocking)."""
        requests: queue.Queue[SyncRequest] = queue.Queue()
        roots = [Path(r).expanduser().resolve() for r in roots]
        for root in roots:
            for event in self.sync(root, cancel=cancel):
                on_event(event)
        with FolderWatcher(roots, requests.put):
            if on_ready is not None:
                on_ready()
            while not cancel.is_set():
                try:
                    req = requests.get(timeout=0.2)
                except queue.Empty:
                    self.idle_maintenance()
                    continue
                paths = None if req.full else sorted(req.paths)
                try:
                    for event in self.sync(req.root, paths=paths, cancel=cancel):
                        on_event(event)
                except UserError as exc:
                    log.warning("watch: sync of %s failed: %s", req.root, exc)

    # ---- search and answers --------------------------------------------------------------

    def retriever(self) -> Retriever:
        model, _dim = self.store.embedding_model()
        if not model:
            return Retriever(self.store, None)
        embedder = OllamaEmbedder(self.client, model)
        return Retriever(self.store, embedder.embed_query)

    def search(self, query: str, *, k: int | None = None, mode: str | None = None) -> SearchResult:
        with self.store.pinned_search():  # the retriever's model and the search: one look
            return self.retriever().search(
                query, k=k or self.settings.top_k, mode=mode or self.settings.search_mode
            )

    def ask(
        self,
        question: str,
        *,
        model: str | None = None,
        rag: bool = True,
        k: int | None = None,
        mode: str | None = None,
        num_predict: int = 1024,
        cancel: threading.Event | None = None,
    ) -> Iterator[AnswerEvent]:
        return answer(
            question,
            client=self.client,
            model=model or self.settings.chat_model,
            retriever=self.retriever() if rag else None,
            k=k or self.settings.top_k,
            mode=mode or self.settings.search_mode,
            rag=rag,
            num_predict=num_predict,
            num_ctx=self.settings.num_ctx,
            temperature=self.settings.temperature,
            system_prompt=self.settings.system_prompt,
            cancel=cancel,
        )

    # ---- status and health ---------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        stats = self.store.stats()
        docs = self.store.documents()
        model, dim = self.store.embedding_model()
        has_vectors = self.store.has_vectors()
        return {
            "home": str(self.home.root),
            "documents": [
                {
                    "path": d.path,
                    "status": d.status.value,
                    "error": d.error,
                    "chunks": d.chunks,
                    "size": d.size,
                    "pages": d.pages,
                    "title": d.title,
                    "indexed_at": d.indexed_at,
                }
                for d in sorted(docs, key=lambda d: d.path)
            ],
            "counts": stats["documents"],
            "chunks": stats["chunks"],
            "embedding_model": model,
            "embedding_dim": dim,
            "search": "hybrid (semantic + keyword)" if has_vectors else "keyword search only",
            "vectors_missing": stats.get("vectors_missing", 0),
            "building_model": stats.get("building_model"),
            "index_bytes": stats["index_bytes"],
            "notice": store_damage.read_notice(self.location.local_dir),
            "index_location": self.location.describe(),
            "configured_embedding_model": self.settings.embed_model,
            "chat_model": self.settings.chat_model,
            "ollama_host": self.client.host,
        }

    def doctor(self) -> list[Check]:
        checks: list[Check] = []
        host = self.client.host
        try:
            version = self.client.version()
            checks.append(Check("Ollama", True, f"running at {host} (version {version})"))
            reachable = True
        except OllamaError as exc:
            checks.append(Check("Ollama", False, exc.message, exc.hint))
            reachable = False
        chat = self.settings.chat_model
        emb = self.settings.embed_model
        if reachable:
            try:
                models = self.client.list_models()
                checks.append(
                    Check(
                        "Models", bool(models), f"{len(models)} installed", "ollama pull llama3.2"
                    )
                )
                if self.client.has_model(chat):
                    checks.append(Check("Chat model", True, f"'{chat}' is installed"))
                else:
                    checks.append(
                        Check(
                            "Chat model",
                            False,
                            f"'{chat}' is not installed",
                            f"Run `ollama pull {chat}`, or choose another model.",
                        )
                    )
            except OllamaError as exc:
                checks.append(Check("Models", False, exc.message, exc.hint))
            status = probe_embedder(self.client, emb)
            checks.append(
                Check(
                    "Embedding model",
                    status.available,
                    f"'{emb}' works ({status.dimension} dimensions)"
                    if status.available
                    else status.reason,
                    "" if status.available else f"Run `ollama pull {emb}` for semantic search.",
                )
            )
        else:
            checks.append(
                Check(
                    "Search",
                    True,
                    "keyword search works without Ollama; answers need it",
                )
            )
        problems = self.store.check_health()
        checks.append(
            Check(
                "Index",
                not problems,
                "healthy" if not problems else "; ".join(problems[:5]),
                "" if not problems else "Run `ftrag index <folder>`: it repairs the index.",
            )
        )
        model, _dim = self.store.embedding_model()
        if model and model != emb:
            checks.append(
                Check(
                    "Embedding match",
                    False,
                    f"the index was built with '{model}' but settings say '{emb}'",
                    "Run `ftrag index <folder>`: it rebuilds vectors beside the old ones.",
                )
            )
        free = shutil.disk_usage(self.home.root).free
        checks.append(
            Check(
                "Disk space",
                free > 1 << 30,
                f"{free / (1 << 30):.1f} GB free in {self.home.root}",
                "Free some disk space: the index needs room to grow and compact.",
            )
        )
        return checks
