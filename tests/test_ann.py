"""The ANN vector index: built automatically past a row threshold, searched with, retrained
after the table has grown, and seen by readers in other processes.

The threshold is lowered (`store_ann.MIN_ROWS`) so that a few hundred rows stand for a large
library; the vectors are clustered like real embeddings (documents about a few subjects).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ftrag_desktop.config import Settings
from ftrag_desktop.core import store_ann
from ftrag_desktop.core.engine import Engine
from ftrag_desktop.core.store import Store
from ftrag_desktop.core.types import Chunk, DocStatus, DocumentRecord
from ftrag_desktop.paths import Home
from tests.ollama_server import OllamaTestServer

DIM = 16
MIN_ROWS = 300


@pytest.fixture(autouse=True)
def small_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_ann, "MIN_ROWS", MIN_ROWS)
    monkeypatch.setattr(store_ann, "ROWS_PER_PARTITION", 40)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "index")
    s.acquire_writer()
    s.begin_switch("clustered", DIM)
    assert s.finish_switch()
    yield s
    s.close()


CENTRES = np.random.default_rng(0).normal(size=(12, DIM))


def vectors(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = CENTRES[rng.integers(len(CENTRES), size=n)] + 0.35 * rng.normal(size=(n, DIM))
    out: np.ndarray = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def add_docs(store: Store, first: int, vecs: np.ndarray, per_doc: int = 10) -> None:
    items = []
    for d in range(len(vecs) // per_doc):
        doc = f"doc{first + d}"
        rec = DocumentRecord(doc, f"/docs/{doc}.txt", 1, 1, doc, DocStatus.INDEXED)
        chunks = [
            Chunk(i, f"{doc} passage {i}", f"{doc} passage {i}", 0, 9) for i in range(per_doc)
        ]
        items.append((rec, chunks, [list(v) for v in vecs[d * per_doc : (d + 1) * per_doc]]))
    store.replace_many(items)


def recall(store: Store, queries: np.ndarray, k: int = 10) -> float:
    found = total = 0
    for q in queries:
        exact = {h.chunk_id for h in store.vector_search(list(q), k, exact=True)}
        approx = {h.chunk_id for h in store.vector_search(list(q), k)}
        found += len(exact & approx)
        total += len(exact)
    return found / total


def test_no_index_below_the_threshold_then_built_past_it(store: Store) -> None:
    add_docs(store, 0, vectors(250, 1))
    assert store.maintain_vector_index() == ""
    assert store.vector_index() is None

    add_docs(store, 25, vectors(150, 2))
    done = store.maintain_vector_index()
    assert "built vector index" in done
    index = store.vector_index()
    assert index is not None
    assert index.trained_rows == 400
    assert index.partitions == store_ann.partitions_for(400) == 10
    # Nothing changed since: the next quiet moment does nothing (and keeps the index).
    assert store.maintain_vector_index() == ""
    assert store.vector_index() == index


def test_search_with_the_index_finds_the_right_rows(store: Store) -> None:
    data = vectors(600, 3)
    add_docs(store, 0, data)
    assert store.maintain_vector_index()
    # A stored vector as the query: its own row comes first.
    for row in (0, 137, 599):
        hits = store.vector_search(list(data[row]), 5)
        assert hits[0].chunk_id == f"doc{row // 10}:{row % 10:05d}"
        assert hits[0].score == pytest.approx(1.0, abs=1e-3)
    assert recall(store, vectors(40, 4)) >= 0.95
    # A filter still returns only matching rows, and all of them when there are few.
    hits = store.vector_search(list(data[5]), 20, where="doc_id = 'doc33'")
    assert {h.doc_id for h in hits} == {"doc33"} and len(hits) == 10


def test_rows_added_after_the_build_are_found(store: Store) -> None:
    add_docs(store, 0, vectors(400, 5))
    assert store.maintain_vector_index()
    late = vectors(20, 6)
    add_docs(store, 1000, late)
    assert store.vector_index() is not None
    hits = store.vector_search(list(late[7]), 3)
    assert hits[0].chunk_id == "doc1000:00007"


def test_retrained_after_the_table_grew(store: Store) -> None:
    add_docs(store, 0, vectors(400, 7))
    assert store.maintain_vector_index()
    first = store.vector_index()
    assert first is not None
    add_docs(store, 100, vectors(300, 8))  # 700 rows: not yet twice the 400 trained on
    assert store.maintain_vector_index() == ""
    add_docs(store, 200, vectors(200, 9))  # 900 rows
    assert "trained on 400" in store.maintain_vector_index()
    second = store.vector_index()
    assert second is not None and second.name != first.name
    assert second.trained_rows == 900
    assert second.partitions == store_ann.partitions_for(900) == 22
    names = [i for i in store_ann_indices(store) if i.startswith(store_ann.NAME_PREFIX)]
    assert names == [second.name]  # the old index is gone
    assert recall(store, vectors(40, 10)) >= 0.95


def store_ann_indices(store: Store) -> list[str]:
    tbl = store._open(store._active()[0])
    return [str(i.name) for i in tbl.list_indices()]


def test_no_index_while_vectors_are_missing(store: Store) -> None:
    add_docs(store, 0, vectors(400, 11))
    rec = DocumentRecord("late", "/docs/late.txt", 1, 1, "late", DocStatus.INDEXED)
    store.replace_many([(rec, [Chunk(0, "late text", "late text", 0, 9)], [None])])
    assert store.maintain_vector_index() == ""  # waits for the last vector
    store.set_vectors(["late:00000"], [list(vectors(1, 12)[0])])
    assert store.maintain_vector_index()


def test_a_reader_in_another_store_uses_the_new_index(store: Store) -> None:
    data = vectors(400, 13)
    add_docs(store, 0, data)
    reader = Store(store.index_dir, read_only=True)
    try:
        assert reader.vector_index() is None
        assert reader.vector_search(list(data[3]), 1)[0].chunk_id == "doc0:00003"
        assert store.maintain_vector_index()
        index = reader.vector_index()
        assert index is not None and index == store.vector_index()
        assert reader.vector_search(list(data[3]), 1)[0].chunk_id == "doc0:00003"
    finally:
        reader.close()


def test_engine_builds_the_index_when_idle(
    tmp_path: Path, ollama_server: OllamaTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ollama_server.embed_backend = "hash"
    folder = tmp_path / "docs"
    folder.mkdir()
    rng = np.random.default_rng(14)
    words = [f"w{i}" for i in range(400)]
    for n in range(40):  # 40 files of 8 short paragraphs: 320 chunks
        paras = [" ".join(rng.choice(words, 60)) for _ in range(8)]
        (folder / f"f{n}.txt").write_text("\n\n".join(paras), encoding="utf-8")
    settings = Settings(ollama_host=ollama_server.url, embed_model="all-minilm")
    settings.chunk_size, settings.chunk_overlap = 300, 0
    with Engine(Home(tmp_path / "home"), settings) as engine:
        assert not engine.idle_maintenance()  # before the first sync: nothing
        list(engine.sync(folder, embed_now=True))
        assert engine.store.stats()["chunks"] >= MIN_ROWS
        assert engine.store.vector_index() is None
        monkeypatch.setattr(engine.store, "settle_due", lambda: False)  # no compaction first
        assert engine.idle_maintenance()
        assert engine.store.vector_index() is not None
        assert not engine.idle_maintenance()  # nothing left to do
        hit = engine.search(" ".join(rng.choice(words, 5)), k=3, mode="hybrid")
        assert hit.mode == "hybrid" and len(hit.hits) == 3
