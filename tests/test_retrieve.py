"""Retrieval: reciprocal rank fusion, near-duplicate collapse, hybrid versus single modes."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from ftrag_desktop.core import store_search
from ftrag_desktop.core.retrieve import Retriever, collapse_near_duplicates, rrf_fuse
from ftrag_desktop.core.store import Store
from ftrag_desktop.core.types import Chunk, DocStatus, DocumentRecord, Hit
from ftrag_desktop.errors import OllamaUnavailable
from tests.minilm import DIM, minilm


def hit(cid: str, text: str = "", score: float = 0.0) -> Hit:
    return Hit(chunk_id=cid, doc_id=cid.split(":")[0], path=f"/{cid}", text=text, score=score)


def test_rrf_scores_and_ranks() -> None:
    vector = [hit("a"), hit("b"), hit("c")]
    keyword = [hit("c"), hit("a"), hit("d")]
    fused = rrf_fuse([vector, keyword], k=60, names=("vector", "keyword"))
    expected = {
        "a": 1 / 61 + 1 / 62,
        "b": 1 / 62,
        "c": 1 / 63 + 1 / 61,
        "d": 1 / 63,
    }
    assert [h.chunk_id for h in fused] == sorted(expected, key=lambda c: -expected[c])
    for h in fused:
        assert h.score == pytest.approx(expected[h.chunk_id])
    ranks = {h.chunk_id: h.ranks for h in fused}
    assert ranks == {
        "a": {"vector": 1, "keyword": 2},
        "b": {"vector": 2},
        "c": {"vector": 3, "keyword": 1},
        "d": {"keyword": 3},
    }


def test_rrf_constant_list_names_and_repeats() -> None:
    fused = rrf_fuse([[hit("x"), hit("y"), hit("x")], [hit("y")], [hit("z")]], k=1)
    scores = {h.chunk_id: h.score for h in fused}
    assert scores == pytest.approx({"x": 1 / 2, "y": 1 / 3 + 1 / 2, "z": 1 / 2})
    assert [h.chunk_id for h in fused] == ["y", "x", "z"]  # ties keep first appearance
    assert fused[2].ranks == {"list3": 1}
    assert rrf_fuse([]) == []


def test_collapse_near_duplicates_keeps_the_better_ranked() -> None:
    base = "the reactor coolant pump must be inspected every six months by a certified engineer"
    overlapping = base + " before restart"
    different = "annual leave requests go to the line manager two weeks in advance"
    # c:0 is another file with exactly the same text as a:0.
    hits = [hit("a:0", base), hit("b:0", different), hit("a:1", overlapping), hit("c:0", base)]
    kept = collapse_near_duplicates(hits, threshold=0.8)
    assert [h.chunk_id for h in kept] == ["a:0", "b:0"]
    # At a stricter threshold the slightly longer overlap survives; exact copies never do.
    assert [h.chunk_id for h in collapse_near_duplicates(hits, threshold=0.95)] == [
        "a:0",
        "b:0",
        "a:1",
    ]
    assert collapse_near_duplicates([hit("s:0", "short"), hit("t:0", "SHORT!")]) == [
        hit("s:0", "short")
    ]


# A query whose answer uses other words (only vectors find it), and a passage that shares
# only a part number with it (only keywords find it), among distractors.
QUERY = "How do I stop my laptop from overheating? It is model KX-3390."
SYNONYM_ANSWER = (
    "When the notebook computer runs too hot, clean the dust out of the cooling vents "
    "and keep the fan unobstructed."
)
PART_NUMBER = "Spare parts list for KX-3390: replacement hinge, bezel screws and rubber feet."
DISTRACTORS = [
    "The laptop ships with a backlit keyboard and a fingerprint reader.",
    "Each model in the range comes in silver or dark grey.",
    "Phones get warm while charging; remove the case to let heat escape.",
    "A desktop tower needs airflow: place it away from radiators and walls.",
    "Thermal paste between the processor and heatsink should be replaced every few years.",
    "Gaming consoles can shut down when their vents are blocked by cushions.",
    "Tablet screens dim automatically when the device gets too warm in the sun.",
    "Server rooms use air conditioning to keep racks at a safe temperature.",
    "Graphics cards throttle their clock speed when the temperature climbs.",
    "A cooling pad with extra fans can lower the temperature of a portable PC.",
    "Battery life shortens when the computer is used in a hot car.",
    "Dust buildup inside a PC case reduces airflow and raises temperatures.",
    "The kitchen oven heats up to two hundred degrees in ten minutes.",
    "Heat waves in summer make office buildings uncomfortable without ventilation.",
    "Water cooling loops circulate liquid through a radiator to carry heat away.",
    "Monitor brightness can be adjusted from the on-screen menu.",
    "Printers jam when the paper is damp or the tray is overfilled.",
    "The router should be restarted when the wireless signal drops.",
    "Keyboards with mechanical switches are louder than membrane keyboards.",
    "External hard drives should be ejected before unplugging the cable.",
]


def query_embedder(text: str) -> Sequence[float]:
    return minilm().embed([text])[0]


def index_passages(store: Store, passages: Sequence[str], *, vectors: bool) -> None:
    if vectors:
        store.begin_switch("all-minilm", DIM)
        assert store.finish_switch()
    embedded = minilm().embed(list(passages)) if vectors else [None] * len(passages)
    for i, (text, vec) in enumerate(zip(passages, embedded, strict=True)):
        rec = DocumentRecord(f"doc{i}", f"/docs/{i}.txt", 1, 1, f"h{i}", DocStatus.PENDING)
        chunk = Chunk(0, text, text, 0, len(text), line_start=1, line_end=1)
        store.replace_chunks(rec, [chunk], [vec] if vec is not None else None)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "index")
    yield s
    s.close()


def test_hybrid_finds_what_each_single_mode_misses(store: Store) -> None:
    index_passages(store, [SYNONYM_ANSWER, PART_NUMBER, *DISTRACTORS], vectors=True)
    retriever = Retriever(store, query_embedder)
    k = 5
    relevant = {SYNONYM_ANSWER, PART_NUMBER}

    vector = retriever.search(QUERY, k=k, mode="vector")
    keyword = retriever.search(QUERY, k=k, mode="keyword")
    hybrid = retriever.search(QUERY, k=k, mode="hybrid")

    assert (vector.mode, keyword.mode, hybrid.mode) == ("vector", "keyword", "hybrid")
    assert all(r.note == "" for r in (vector, keyword, hybrid))
    vector_texts = {h.text for h in vector.hits}
    keyword_texts = {h.text for h in keyword.hits}
    hybrid_texts = {h.text for h in hybrid.hits}
    assert SYNONYM_ANSWER in vector_texts and PART_NUMBER not in vector_texts
    assert PART_NUMBER in keyword_texts and SYNONYM_ANSWER not in keyword_texts
    assert relevant <= hybrid_texts
    assert len(hybrid.hits) == k
    # Fused hits carry their RRF score and their rank in each list.
    for h in hybrid.hits:
        assert h.score == pytest.approx(sum(1 / (60 + r) for r in h.ranks.values()))
    answer = next(h for h in hybrid.hits if h.text == SYNONYM_ANSWER)
    assert "keyword" not in answer.ranks and answer.ranks["vector"] <= k
    assert answer.path == "/docs/0.txt" and answer.location() == "lines 1-1"


def test_hybrid_collapses_identical_passages_from_two_files(store: Store) -> None:
    copy = "Quarterly revenue grew by twelve percent thanks to strong demand in Europe."
    index_passages(store, [copy, "Staff parking is closed on Friday.", copy], vectors=True)
    result = Retriever(store, query_embedder).search("revenue growth in Europe", k=3)
    texts = [h.text for h in result.hits]
    assert texts.count(copy) == 1
    assert result.hits[0].text == copy and result.hits[0].path in ("/docs/0.txt", "/docs/2.txt")


def test_keyword_fallback_without_an_embedder(store: Store) -> None:
    index_passages(store, [PART_NUMBER, *DISTRACTORS[:3]], vectors=True)
    for mode in ("hybrid", "vector"):
        result = Retriever(store, None).search("KX-3390", k=3, mode=mode)
        assert result.mode == "keyword"
        assert result.note.startswith("keyword search only: no embedding model")
        assert [h.text for h in result.hits] == [PART_NUMBER]


def test_keyword_fallback_when_embedding_fails(store: Store) -> None:
    index_passages(store, [PART_NUMBER, *DISTRACTORS[:3]], vectors=True)

    def down(_text: str) -> Sequence[float]:
        raise OllamaUnavailable("Ollama is not running at http://127.0.0.1:11434.")

    result = Retriever(store, down).search("KX-3390", k=3)
    assert result.mode == "keyword" and "Ollama is not running" in result.note
    assert [h.text for h in result.hits] == [PART_NUMBER]


def test_keyword_fallback_on_a_keyword_only_index(store: Store) -> None:
    index_passages(store, [PART_NUMBER, *DISTRACTORS[:3]], vectors=False)
    result = Retriever(store, query_embedder).search("KX-3390", k=3, mode="vector")
    assert result.mode == "keyword" and "no vectors" in result.note
    assert [h.text for h in result.hits] == [PART_NUMBER]


def test_keyword_fallback_on_a_dimension_mismatch(store: Store) -> None:
    index_passages(store, [PART_NUMBER, *DISTRACTORS[:3]], vectors=True)
    result = Retriever(store, lambda _q: [0.1] * 8).search("KX-3390", k=3)
    assert result.mode == "keyword" and "does not match the index" in result.note
    assert [h.text for h in result.hits] == [PART_NUMBER]


def test_modes_empty_queries_and_filters(store: Store) -> None:
    index_passages(store, [PART_NUMBER, *DISTRACTORS[:3]], vectors=True)
    retriever = Retriever(store, query_embedder)
    with pytest.raises(ValueError, match="unknown search mode"):
        retriever.search("x", mode="semantic")
    assert retriever.search("", k=3).hits == []
    assert retriever.search("  ", k=3, mode="keyword").hits == []
    only_doc2 = retriever.search("laptop keyboard", k=3, where="path = '/docs/2.txt'")
    assert [h.path for h in only_doc2.hits] == ["/docs/2.txt"]


def test_hybrid_runs_the_keyword_side_beside_the_embedding(store: Store) -> None:
    """The keyword search starts before the query is embedded, on a thread of its own that
    is finished when the search returns (whatever happened on the vector side)."""
    index_passages(store, [SYNONYM_ANSWER, PART_NUMBER, *DISTRACTORS], vectors=True)
    keyword_done = threading.Event()
    seen: list[bool] = []
    real_keyword = store.keyword_search

    def keyword(query: str, k: int, *, where: str | None = None) -> list[Hit]:
        hits = real_keyword(query, k, where=where)
        keyword_done.set()
        return hits

    def embed(text: str) -> Sequence[float]:
        # The keyword side finishes while the embedder is still busy: the two overlap.
        seen.append(keyword_done.wait(10))
        return query_embedder(text)

    store.keyword_search = keyword  # type: ignore[method-assign]
    before = set(threading.enumerate())
    result = Retriever(store, embed).search(QUERY, k=5)
    assert seen == [True]
    assert result.mode == "hybrid"
    assert {SYNONYM_ANSWER, PART_NUMBER} <= {h.text for h in result.hits}
    assert set(threading.enumerate()) <= before  # no search thread left running

    def down(_text: str) -> Sequence[float]:
        raise OllamaUnavailable("Ollama is not running at http://127.0.0.1:11434.")

    keyword_done.clear()
    result = Retriever(store, down).search("KX-3390", k=3)
    assert result.mode == "keyword" and [h.text for h in result.hits] == [PART_NUMBER]
    assert set(threading.enumerate()) <= before


def test_hybrid_keyword_errors_reach_the_caller(store: Store) -> None:
    index_passages(store, [PART_NUMBER, *DISTRACTORS[:3]], vectors=True)

    def broken(query: str, k: int, *, where: str | None = None) -> list[Hit]:
        raise RuntimeError("keyword side failed")

    store.keyword_search = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="keyword side failed"):
        Retriever(store, query_embedder).search("KX-3390", k=3)


def test_a_reader_sees_a_model_switch_made_by_the_writer(store: Store) -> None:
    """Searches remember the active table between calls, but not past a change of it."""
    index_passages(store, [PART_NUMBER, *DISTRACTORS[:3]], vectors=False)
    reader = Store(store.index_dir, read_only=True)
    try:
        assert reader.embedding_model() == ("", 0)
        assert not reader.has_vectors()
        assert [h.text for h in reader.keyword_search("KX-3390", 3)] == [PART_NUMBER]
        store.begin_switch("all-minilm", DIM)
        missing = store.rows_missing_vectors(100)
        vecs = minilm().embed([reader_text(store, cid) for cid, _h in missing])
        store.set_vectors([cid for cid, _h in missing], vecs)
        assert store.finish_switch()
        assert reader.embedding_model() == ("all-minilm", DIM)
        assert reader.has_vectors()
        hits = reader.vector_search(query_embedder("spare parts for KX-3390"), 1)
        assert [h.text for h in hits] == [PART_NUMBER]
    finally:
        reader.close()


def reader_text(store: Store, chunk_id: str) -> str:
    doc_id = chunk_id.split(":")[0]
    return store.chunk_texts(doc_id)[0]


def test_searches_fetch_the_rows_to_list_would(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`store_search` builds a query without `tbl.search`'s schema read and runs it in one trip
    to LanceDB's event loop; the rows are those `tbl.search(...)...to_list()` returns (the
    fallback when this lancedb lacks either shortcut), filters and the query-text retry
    included."""
    index_passages(store, [SYNONYM_ANSWER, PART_NUMBER, *DISTRACTORS], vectors=True)
    vec = query_embedder(QUERY)
    calls: list[str] = []
    real = store_search._collect

    async def counted(async_table: object, query: object) -> object:
        calls.append("one trip")
        return await real(async_table, query)

    def searches() -> list[list[tuple[str, float]]]:
        found = [
            store.keyword_search("KX-3390 laptop", 10),
            store.keyword_search('"unbalanced (quote AND', 10),  # retried as plain words
            store.keyword_search("laptop", 10, where="path = '/docs/2.txt'"),
            store.vector_search(vec, 10),
            store.vector_search(vec, 5, where="doc_id != 'doc0'"),
            store.vector_search(vec, 10, exact=True),
        ]
        return [[(h.chunk_id, round(h.score, 5)) for h in hits] for hits in found]

    monkeypatch.setattr(store_search, "_collect", counted)
    fast = searches()
    assert len(calls) >= 6
    assert all(fast[:1] + fast[2:]) and fast[2] == [("doc2:00000", fast[2][0][1])]
    assert "doc0:00000" not in {cid for cid, _s in fast[4]}
    # The fallbacks: tbl.search(...) and to_list(), as before either shortcut.
    monkeypatch.setattr(store_search, "_event_loop", lambda: None)
    monkeypatch.setattr(store_search, "_create_builder", lambda: None)
    calls.clear()
    assert searches() == fast
    assert calls == []


def test_a_hybrid_search_looks_at_the_active_table_once(store: Store) -> None:
    """The parts of one search (vectors present? keyword side, vector side, on two threads)
    share one look at meta's version; the next search looks again."""
    index_passages(store, [SYNONYM_ANSWER, PART_NUMBER, *DISTRACTORS], vectors=True)
    looks: list[str] = []
    cache = store._search
    real = cache.active

    def active(*args: Any, **kwargs: Any) -> Any:
        looks.append(threading.current_thread().name)
        return real(*args, **kwargs)

    cache.active = active  # type: ignore[method-assign]
    retriever = Retriever(store, query_embedder)
    first = retriever.search(QUERY, k=5)
    assert first.mode == "hybrid" and {SYNONYM_ANSWER, PART_NUMBER} <= {h.text for h in first.hits}
    assert len(looks) == 1
    retriever.search(QUERY, k=5, mode="keyword")
    assert len(looks) == 2
    # Inside a search the model comes from the pinned table too.
    with store.pinned_search():
        assert store.embedding_model() == ("all-minilm", DIM)
        store.vector_search(query_embedder(QUERY), 3)
    assert len(looks) == 3
    # Outside a search each call still looks for itself.
    store.keyword_search("KX-3390", 3)
    store.has_vectors()
    store.embedding_model()
    assert len(looks) == 6


def test_hybrid_results_are_the_fused_and_collapsed_pools(store: Store) -> None:
    """The hybrid search makes fused hits only as the collapse asks for them: the result is
    exactly `collapse_near_duplicates(rrf_fuse(...))` of the two pools."""
    index_passages(store, [SYNONYM_ANSWER, PART_NUMBER, *DISTRACTORS, DISTRACTORS[0]], vectors=True)
    got = Retriever(store, query_embedder).search(QUERY, k=4)
    vector = store.vector_search(query_embedder(QUERY), 50)
    keyword = store.keyword_search(QUERY, 50)
    expected = collapse_near_duplicates(rrf_fuse([vector, keyword]), limit=4)
    assert [(h.chunk_id, h.score, h.ranks) for h in got.hits] == [
        (h.chunk_id, h.score, h.ranks) for h in expected
    ]
    assert len({h.text for h in got.hits}) == 4  # the repeated distractor shows once at most
