"""Embedders: the `Embedder` protocol, the Ollama embedder (batched, with per-model prefixes),
and a probe that says whether embedding is possible right now and why not.

Some embedding models were trained with task prefixes (nomic-embed-text wants
"search_document: " on passages and "search_query: " on questions); retrieval quality drops
without them, so the prefixes are applied here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ftrag_desktop.core.llm import OllamaClient
from ftrag_desktop.errors import ModelNotFound, OllamaError, OllamaUnavailable

MXBAI_QUERY = "Represent this sentence for searching relevant passages: "
# base model name (before ":") -> (document prefix, query prefix)
PREFIXES: dict[str, tuple[str, str]] = {
    "nomic-embed-text": ("search_document: ", "search_query: "),
    "mxbai-embed-large": ("", MXBAI_QUERY),
    "snowflake-arctic-embed": ("", MXBAI_QUERY),
    "snowflake-arctic-embed2": ("", MXBAI_QUERY),
    "all-minilm": ("", ""),
}
PROBE_TEXT = "ftrag embedding probe"


class Embedder(Protocol):
    model: str

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]: ...

    def embed_query(self, text: str) -> list[float]: ...

    def dimension(self) -> int: ...


def base_name(model: str) -> str:
    """The model's base name: `nomic-embed-text:v1.5` -> `nomic-embed-text`, `user/x` -> `x`."""
    return model.strip().lower().split(":", 1)[0].rsplit("/", 1)[-1]


def prefixes_for(model: str) -> tuple[str, str]:
    """(document prefix, query prefix) for an embedding model; ("", "") when unknown."""
    base = base_name(model)
    if base in PREFIXES:
        return PREFIXES[base]
    return ("", "")  # bge-*, all-minilm and unknown models take plain text


class OllamaEmbedder:
    """`Embedder` over `OllamaClient.embed`, `batch_size` texts per request."""

    def __init__(self, client: OllamaClient, model: str, *, batch_size: int = 32) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.client = client
        self.model = model
        self.batch_size = batch_size
        self.document_prefix, self.query_prefix = prefixes_for(model)
        self._dimension: int | None = None

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = [self.document_prefix + t for t in texts[start : start + self.batch_size]]
            out.extend(self._embed(batch))
        return out

    def embed_query(self, text: str) -> list[float]:
        return self._embed([self.query_prefix + text])[0]

    def dimension(self) -> int:
        """The vector size; learned from the first call, or from a one-text probe."""
        if self._dimension is None:
            self._embed([self.query_prefix + PROBE_TEXT])
        assert self._dimension is not None
        return self._dimension

    def _embed(self, texts: list[str]) -> list[list[float]]:
        vectors = self.client.embed(self.model, texts)
        for vec in vectors:
            if self._dimension is None:
                self._dimension = len(vec)
            elif len(vec) != self._dimension:
                raise OllamaError(
                    f"Ollama returned vectors of {len(vec)} dimensions from '{self.model}', "
                    f"expected {self._dimension}.",
                    "The model may have been replaced in Ollama; rebuild the index.",
                )
        return vectors


@dataclass(frozen=True)
class EmbedderStatus:
    available: bool
    model: str
    dimension: int
    reason: str


def probe_embedder(client: OllamaClient, model: str) -> EmbedderStatus:
    """Try one embedding; never raises.  `reason` says why it is unavailable, or is ""."""
    try:
        vectors = client.embed(model, [prefixes_for(model)[1] + PROBE_TEXT])
    except OllamaUnavailable:
        return EmbedderStatus(False, model, 0, f"Ollama is not running at {client.host}")
    except ModelNotFound:
        reason = f"embedding model '{model}' is not installed: run `ollama pull {model}`"
        return EmbedderStatus(False, model, 0, reason)
    except OllamaError as e:
        return EmbedderStatus(False, model, 0, e.message)
    if not vectors or not vectors[0]:
        reason = f"model '{model}' returned no embedding (is it an embedding model?)"
        return EmbedderStatus(False, model, 0, reason)
    return EmbedderStatus(True, model, len(vectors[0]), "")
