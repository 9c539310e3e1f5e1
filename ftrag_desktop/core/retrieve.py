"""Search over the index: hybrid (vector + BM25 fused by reciprocal rank), vector, keyword.

LanceDB's native hybrid query cuts each side to `limit` before fusing, so fusion happens here,
over deep pools from both sides.  Near-duplicate passages (overlapping chunks of one file, or
two copies of the same text) are collapsed so that the top k says k different things.  When
vectors cannot be used (no embedding model, an index still keyword-only, Ollama down) the search
falls back to keyword with a `note` that says why.
"""

from __future__ import annotations

import contextvars
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Generic, TypeVar, cast

from ftrag_desktop.core.store import DimensionMismatch, Store
from ftrag_desktop.core.types import Hit
from ftrag_desktop.errors import OllamaError

__all__ = ["MODES", "Retriever", "SearchResult", "collapse_near_duplicates", "rrf_fuse"]

MODES = ("hybrid", "vector", "keyword")
RRF_K = 60
MIN_POOL = 50
SHINGLE = 3  # words per shingle for near-duplicate detection

QueryEmbedder = Callable[[str], Sequence[float]]
T = TypeVar("T")


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    mode: str  # the mode actually used: "hybrid" | "vector" | "keyword"
    note: str = ""


def rrf_fuse(
    lists: Sequence[Sequence[Hit]],
    *,
    k: int = RRF_K,
    names: Sequence[str] = ("vector", "keyword"),
) -> list[Hit]:
    """Reciprocal rank fusion: score(d) = sum over lists of 1 / (k + rank of d in that list).

    Hits are identified by `chunk_id`.  Each fused hit keeps the fields of its first
    occurrence, its `ranks` maps each list's name to the hit's 1-based rank there, and its
    `score` is the fused score.  Ties keep the order of first appearance.
    """
    return list(_fused(lists, k=k, names=names))


def _fused(lists: Sequence[Sequence[Hit]], *, k: int, names: Sequence[str]) -> Iterator[Hit]:
    """`rrf_fuse`, best first, each fused hit made only when it is asked for: a search shows
    a handful of the hundred or so hits it fuses."""
    labels = [names[i] if i < len(names) else f"list{i + 1}" for i in range(len(lists))]
    first: dict[str, Hit] = {}
    scores: dict[str, float] = {}
    ranks: dict[str, dict[str, int]] = {}
    for label, hits in zip(labels, lists, strict=True):
        for rank, hit in enumerate(hits, start=1):
            cid = hit.chunk_id
            if label in ranks.get(cid, {}):
                continue  # a duplicate within one list counts once, at its best rank
            first.setdefault(cid, hit)
            scores[cid] = scores.get(cid, 0.0) + 1.0 / (k + rank)
            ranks.setdefault(cid, {})[label] = rank
    order = sorted(first, key=lambda cid: -scores[cid])  # sorted() is stable
    return (replace(first[cid], score=scores[cid], ranks=ranks[cid]) for cid in order)


def _shingles(text: str) -> frozenset[int]:
    words = re.findall(r"\w+", text.lower())
    if len(words) < SHINGLE:
        return frozenset([hash(tuple(words))]) if words else frozenset()
    # zip() of shifted copies makes the shingle tuples a third faster than slicing
    return frozenset(map(hash, zip(*(words[i:] for i in range(SHINGLE)), strict=False)))


def _jaccard(a: frozenset[int], b: frozenset[int]) -> float:
    if not a or not b:
        return 1.0 if a == b else 0.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


def collapse_near_duplicates(
    hits: Iterable[Hit], *, threshold: float = 0.9, limit: int | None = None
) -> list[Hit]:
    """Drop every hit whose word-shingle Jaccard similarity to a better-ranked kept hit is at
    least `threshold`.  `hits` must be best first; the order is kept.  Stops once `limit`
    hits are kept, so only the hits that can be shown are compared."""
    kept: list[Hit] = []
    kept_shingles: list[frozenset[int]] = []
    for hit in hits:
        if limit is not None and len(kept) >= limit:
            break
        sh = _shingles(hit.text)
        n = len(sh)
        # Jaccard >= t needs min(|a|,|b|) / max(|a|,|b|) >= t: skip pairs that cannot match.
        if any(
            min(n, len(o)) >= threshold * max(n, len(o)) and _jaccard(sh, o) >= threshold
            for o in kept_shingles
        ):
            continue
        kept.append(hit)
        kept_shingles.append(sh)
    return kept


class _Background(Generic[T]):
    """`fn()` on a thread of its own, in the caller's context (so it sees the search's pinned
    table, see `Store.pinned_search`); `result()` waits for it and returns or raises."""

    def __init__(self, fn: Callable[[], T], name: str) -> None:
        context = contextvars.copy_context()
        self._fn: Callable[[], T] = lambda: context.run(fn)
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as exc:  # handed to the caller by result()
            self._error = exc

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return cast(T, self._value)


class Retriever:
    """Runs searches against a `Store`.  `query_embedder` embeds a query with the active
    table's model (the caller builds it); None means keyword search only.

    A hybrid search runs its keyword side on a second thread while the query is embedded and
    the vectors are searched: LanceDB releases the GIL while it works, so the two overlap and
    the search costs about the slower side, not the sum (when a core is free).  All its parts
    use the active table as it was when the search began (`Store.pinned_search`), and only
    the fused hits the near-duplicate collapse looks at are made."""

    def __init__(self, store: Store, query_embedder: QueryEmbedder | None) -> None:
        self._store = store
        self._embed = query_embedder

    def search(
        self, query: str, *, k: int = 6, mode: str = "hybrid", where: str | None = None
    ) -> SearchResult:
        if mode not in MODES:
            raise ValueError(f"unknown search mode {mode!r}; use one of {', '.join(MODES)}")
        if k <= 0 or not query.strip():
            return SearchResult([], "keyword" if mode == "keyword" else mode)
        with self._store.pinned_search():  # one look at the active table for all the parts
            return self._search(query, k, mode, where)

    def _search(self, query: str, k: int, mode: str, where: str | None) -> SearchResult:
        pool = max(MIN_POOL, 4 * k)
        if mode == "keyword":
            return SearchResult(self._keyword(query, pool, k, where), "keyword")
        keyword: _Background[list[Hit]] | None = None
        if mode == "hybrid":
            keyword = _Background(
                lambda: self._store.keyword_search(query, pool, where=where), "keyword-search"
            )
        try:
            vector_hits, note = self._vectors(query, pool, where)
        finally:
            keyword_hits = keyword.result() if keyword is not None else None
        if vector_hits is None:  # vectors unusable: keyword search, and say why
            if keyword_hits is None:
                keyword_hits = self._store.keyword_search(query, pool, where=where)
            return SearchResult(collapse_near_duplicates(keyword_hits, limit=k), "keyword", note)
        if keyword_hits is None:
            return SearchResult(collapse_near_duplicates(vector_hits, limit=k), "vector")
        fused = _fused([vector_hits, keyword_hits], k=RRF_K, names=("vector", "keyword"))
        return SearchResult(collapse_near_duplicates(fused, limit=k), "hybrid")

    def _keyword(self, query: str, pool: int, k: int, where: str | None) -> list[Hit]:
        hits = self._store.keyword_search(query, pool, where=where)
        return collapse_near_duplicates(hits, limit=k)

    def _vectors(self, query: str, pool: int, where: str | None) -> tuple[list[Hit] | None, str]:
        """The vector side's hits, or None and the note that says why vectors are unusable."""
        vector, why_not = self._query_vector(query)
        if vector is None:
            return None, f"keyword search only: {why_not}"
        try:
            return self._store.vector_search(vector, pool, where=where), ""
        except DimensionMismatch as exc:
            return None, (
                "keyword search only: the query embedding does not match the index "
                f"({exc}); rebuild the index with the current embedding model"
            )

    def _query_vector(self, query: str) -> tuple[Sequence[float] | None, str]:
        """The query's vector, or None and the reason vectors cannot be used."""
        if self._embed is None:
            return None, "no embedding model is available (start Ollama and pull one)"
        if not self._store.has_vectors():
            model = self._store.embedding_model()[0]
            if model:
                return None, f"the index has no vectors yet ({model} is still embedding)"
            return None, (
                "the index has no vectors yet (they are added once an embedding model is reachable)"
            )
        try:
            return self._embed(query), ""
        except OllamaError as exc:
            return None, f"the query could not be embedded ({exc.message})"
