"""The engine: one object that wires settings, the index, Ollama, sync, search and answers.

Both front ends (the CLI and the Qt app) are thin layers over this.  It owns no threads of its
own except inside `watch()`; the caller decides where each operation runs (the GUI runs them
on workers, never on its own thread).
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftrag_desktop.config import Settings, load_settings, save_settings
from ftrag_desktop.core.answer import AnswerEvent, answer
from ftrag_desktop.core.conversations import ConversationStore
from ftrag_desktop.core.embed import OllamaEmbedder, probe_embedder
from ftrag_desktop.core.events import SyncEvent
from ftrag_desktop.core.indexer import Indexer
from ftrag_desktop.core.llm import OllamaClient
from ftrag_desktop.core.retrieve import Retriever, SearchResult
from ftrag_desktop.core.store import Store
from ftrag_desktop.core.watch import FolderWatcher, SyncRequest
from ftrag_desktop.errors import OllamaError, UserError
from ftrag_desktop.paths import Home

log = logging.getLogger(__name__)


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
        self.store = Store(home.index_dir)
        self.conversations = ConversationStore(home.conversations_dir)
        self._indexer: Indexer | None = None

    def close(self) -> None:
        if self._indexer is not None:
            self._indexer.close()
            self._indexer = None
        self.store.release_writer()
        self.store.close()
        self.client.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def save_settings(self) -> None:
        save_settings(self.home.settings_file, self.settings)

    # ---- indexing ------------------------------------------------------------------------

    def _make_indexer(self) -> Indexer:
        """The single writer: takes the index lock, probes the embedder once."""
        if self._indexer is None:
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
    ) -> Iterator[SyncEvent]:
        root = Path(root).expanduser().resolve()
        if not root.is_dir():
            raise UserError(
                f"Folder not found: {root}", "Check the path, or pick a folder that exists."
            )
        indexer = self._make_indexer()
        yield from indexer.sync(root, paths=paths, cancel=cancel, retry_failed=retry_failed)

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
