"""The LlamaIndex peer of `bench/vs_llamaindex.py`: its usual local indexing pipeline, once.

    .venv-peer/bin/python bench/peer_llamaindex.py DIR --db FOLDER --ollama-host URL
        [--model all-minilm] [--batch-size 32]

Runs in its own virtualenv (`make .venv-peer`, pinned in `requirements/peer-llamaindex.txt`),
never in `.venv`, and imports nothing from this repository.  The pipeline is the one
LlamaIndex's starter examples show, with every default kept:

- `SimpleDirectoryReader(DIR, recursive=True).load_data()`: its default file readers (the
  default PDF reader, one document per page; plain text for `.txt`), in one process;
- `VectorStoreIndex.from_documents(...)`: the default transformations (`SentenceSplitter`
  with its defaults), embedding, and insertion into
- `LanceDBVectorStore(uri=FOLDER)`, with its default table name and mode.

The only part that is ours is the embedding class: it posts batches of `--batch-size` texts
to `/api/embed` of the same Ollama (test) server and model that `ftrag` uses, so that both
pipelines share one embedder.  The texts are what LlamaIndex embeds by default (each node's
content with its metadata, `MetadataMode.EMBED`).

LlamaIndex has no incremental sync: running this again re-reads, re-splits and re-embeds
everything, and, since the table exists by then, adds every chunk a second time.

Prints one JSON document on stdout: files, documents, chunks (nodes), seconds, files/s,
chunks/s and a few details.  The readers' own messages ("Failed to load file ...", which the
reader prints on stdout) are sent to stderr and counted.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

PEER_PACKAGES = (
    "llama-index-core",
    "llama-index-readers-file",
    "llama-index-vector-stores-lancedb",
    "lancedb",
    "pypdf",
)


class _Tee(io.TextIOBase):
    """Stdout during the pipeline: passed on to stderr, failure lines counted."""

    def __init__(self) -> None:
        self.failed: list[str] = []
        self._partial = ""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        sys.stderr.write(s)
        self._partial += s
        *lines, self._partial = self._partial.split("\n")
        self.failed += [line for line in lines if line.startswith("Failed to load file ")]
        return len(s)


def make_embedding(url: str, model: str, batch_size: int) -> Any:
    """A LlamaIndex `BaseEmbedding` over Ollama's `/api/embed`, `batch_size` texts a request."""
    import httpx
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from pydantic import PrivateAttr

    class OllamaHTTPEmbedding(BaseEmbedding):  # type: ignore[misc]
        base_url: str
        texts_sent: int = 0
        _http: httpx.Client = PrivateAttr()

        def __init__(self, **data: Any) -> None:
            super().__init__(**data)
            # No timeout, like the official ollama client's default.
            self._http = httpx.Client(base_url=self.base_url, timeout=None)

        def _embed(self, texts: list[str]) -> list[list[float]]:
            reply = self._http.post("/api/embed", json={"model": self.model_name, "input": texts})
            reply.raise_for_status()
            vectors: list[list[float]] = reply.json()["embeddings"]
            self.texts_sent += len(texts)
            return vectors

        def _get_query_embedding(self, query: str) -> list[float]:
            return self._embed([query])[0]

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._embed([text])[0]

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return self._embed(texts)

    return OllamaHTTPEmbedding(base_url=url, model_name=model, embed_batch_size=batch_size)


def versions() -> dict[str, str]:
    out = {}
    for pkg in PEER_PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _rows(store: Any) -> int:
    return 0 if store._table is None else int(store.table.count_rows())


def run(folder: Path, db: Path, url: str, model: str, batch_size: int) -> dict[str, Any]:
    started = time.monotonic()
    from llama_index.core import SimpleDirectoryReader, StorageContext, VectorStoreIndex
    from llama_index.vector_stores.lancedb import LanceDBVectorStore

    imported = time.monotonic()
    embed_model = make_embedding(url, model, batch_size)
    tee = _Tee()
    with contextlib.redirect_stdout(tee):
        reader = SimpleDirectoryReader(str(folder), recursive=True)
        found = len(reader.input_files)
        documents = reader.load_data()
        loaded = time.monotonic()
        store = LanceDBVectorStore(uri=str(db))
        rows_before = _rows(store)
        context = StorageContext.from_defaults(vector_store=store)
        index = VectorStoreIndex.from_documents(
            documents, storage_context=context, embed_model=embed_model
        )
    done = time.monotonic()
    del index
    rows = _rows(store)
    nodes = rows - rows_before  # the vector store keeps the text, so the index keeps no nodes
    empty = sum(1 for d in documents if not d.text.strip())
    files_loaded = len({d.metadata.get("file_path") for d in documents})
    seconds = done - started
    return {
        "pipeline": "llamaindex",
        "files": found,
        "files_loaded": files_loaded,
        "files_failed": len(tee.failed),
        "failures": [line[:200] for line in tee.failed],
        "documents": len(documents),
        "empty_documents": empty,
        "chunks": nodes,
        "rows_in_table": rows,
        "embedded": embed_model.texts_sent,
        "seconds": round(seconds, 3),
        "import_seconds": round(imported - started, 3),
        "load_seconds": round(loaded - imported, 3),
        "index_seconds": round(done - loaded, 3),
        "files_per_s": round(found / seconds, 2) if seconds else None,
        "chunks_per_s": round(nodes / seconds, 2) if seconds else None,
        "model": model,
        "batch_size": batch_size,
        "versions": versions(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="LlamaIndex's usual local indexing pipeline, once.")
    p.add_argument("folder", nargs="?", help="the folder to index (recursively)")
    p.add_argument("--db", help="the LanceDB folder (fresh, or reused: appends)")
    p.add_argument("--ollama-host", help="the Ollama server's URL")
    p.add_argument("--model", default="all-minilm", help="embedding model name at the server")
    p.add_argument("--batch-size", type=int, default=32, help="texts per /api/embed request")
    p.add_argument("--versions", action="store_true", help="print the peer's versions only")
    args = p.parse_args(argv)
    if args.versions:
        print(json.dumps(versions()))
        return 0
    if not (args.folder and args.db and args.ollama_host):
        p.error("FOLDER, --db and --ollama-host are required")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    result = run(Path(args.folder), Path(args.db), args.ollama_host, args.model, args.batch_size)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
