"""The LanceDB store: manifest, per-document chunk replacement, model switches, locks, repair."""

from __future__ import annotations

import hashlib
import math
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from ftrag_desktop.core.store import (
    DOCS_PER_COMMIT,
    DimensionMismatch,
    Move,
    Store,
    embed_text_hash,
)
from ftrag_desktop.core.types import Chunk, DocStatus, DocumentRecord
from ftrag_desktop.errors import IndexBusyError

REPO = Path(__file__).resolve().parent.parent


def tiny_embed(text: str, dim: int = 16) -> list[float]:
    """A deterministic bag-of-words embedding: each word hashed into one of `dim` buckets."""
    vec = [0.0] * dim
    for word in text.lower().split():
        vec[int(hashlib.md5(word.encode()).hexdigest(), 16) % dim] += 1.0
    norm = math.sqrt(sum(x * x for x in vec)) or 1.0
    return [x / norm for x in vec]


def make_doc(doc_id: str, path: str, **kw: object) -> DocumentRecord:
    fields: dict[str, object] = {
        "size": 100,
        "mtime_ns": 1_700_000_000_000_000_000,
        "sha256": hashlib.sha256(doc_id.encode()).hexdigest(),
        "status": DocStatus.PENDING,
        "title": f"Title of {doc_id}",
    }
    fields.update(kw)
    return DocumentRecord(doc_id=doc_id, path=path, **fields)  # type: ignore[arg-type]


def make_chunks(texts: Sequence[str], title: str = "T") -> list[Chunk]:
    out, pos = [], 0
    for i, text in enumerate(texts):
        out.append(
            Chunk(
                ordinal=i,
                text=text,
                embed_text=f"{title}\n{text}",
                char_start=pos,
                char_end=pos + len(text),
                page=i + 1,
                heading_path=("Intro", "Part A"),
                line_start=i * 10 + 1,
                line_end=i * 10 + 9,
            )
        )
        pos += len(text)
    return out


def vectors_for(chunks: Sequence[Chunk], dim: int = 16) -> list[list[float]]:
    return [tiny_embed(c.embed_text, dim) for c in chunks]


def fill_vectors(store: Store, dim: int, batch: int = 7) -> int:
    """What the background builder does: embed missing rows in batches.  Returns how many."""
    done = 0
    while rows := store.missing_vector_inputs(batch):
        store.set_vectors([r[0] for r in rows], [tiny_embed(r[2], dim) for r in rows])
        done += len(rows)
    return done


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "index")
    s.acquire_writer()
    yield s
    s.close()


def vector_store(store: Store, dim: int = 16) -> Store:
    store.begin_switch("tiny", dim)
    fill_vectors(store, dim)
    assert store.finish_switch()
    return store


def test_manifest_round_trip(store: Store) -> None:
    a = make_doc("a", "/docs/a.pdf", pages=12, error="", chunks=0, parser_version=3)
    b = make_doc(
        "b", "/docs/b.md", status=DocStatus.FAILED, error="encrypted", pages=None, indexed_at=5.5
    )
    store.put_document(a)
    store.put_document(b)
    assert sorted(store.documents(), key=lambda d: d.doc_id) == [a, b]
    assert store.document_by_path("/docs/b.md") == b
    assert store.document_by_path("/docs/missing.md") is None
    changed = make_doc("a", "/docs/a.pdf", pages=13, status=DocStatus.INDEXED, chunks=4)
    store.put_document(changed)
    assert store.document_by_path("/docs/a.pdf") == changed
    assert len(store.documents()) == 2


def test_chunk_fields_round_trip_into_hits(store: Store) -> None:
    vector_store(store)
    rec = make_doc("d", "/docs/d.md")
    chunks = make_chunks(["alpha beta gamma", "delta epsilon zeta"])
    store.replace_chunks(rec, chunks, vectors_for(chunks))
    (hit,) = store.keyword_search("epsilon", 5)
    c = chunks[1]
    assert (hit.chunk_id, hit.doc_id, hit.path, hit.title) == ("d:00001", "d", rec.path, rec.title)
    assert (hit.text, hit.page, hit.heading_path) == (c.text, c.page, c.heading_path)
    assert (hit.line_start, hit.line_end, hit.char_start, hit.char_end) == (
        c.line_start,
        c.line_end,
        c.char_start,
        c.char_end,
    )
    assert hit.score > 0 and hit.ranks == {"keyword": 1}
    top = store.vector_search(tiny_embed(c.embed_text), 1)[0]
    assert top.chunk_id == "d:00001" and top.score == pytest.approx(1.0, abs=1e-5)
    stored = store.documents()[0]
    assert stored.status == DocStatus.INDEXED and stored.chunks == 2
    assert stored.embed_model == "tiny" and stored.indexed_at > 0


def test_replace_chunks_replaces_the_whole_document(store: Store) -> None:
    vector_store(store)
    rec = make_doc("doc", "/docs/doc.txt")
    other = make_doc("other", "/docs/other.txt")
    old = make_chunks([f"old passage number {i} about llamas" for i in range(10)])
    store.replace_chunks(rec, old, vectors_for(old))
    store.replace_chunks(other, make_chunks(["unrelated other text"]), None)
    new = make_chunks([f"new passage number {i} about alpacas" for i in range(4)])
    store.replace_chunks(rec, new, vectors_for(new))

    assert store.doc_chunk_count("doc") == 4
    assert store.chunk_texts("doc") == [c.text for c in new]
    assert store.keyword_search("llamas", 20) == []
    assert len(store.keyword_search("alpacas", 20)) == 4
    assert store.chunk_texts("other") == ["unrelated other text"]
    assert store.document_by_path("/docs/doc.txt").chunks == 4  # type: ignore[union-attr]
    assert store.check_health() == []
    # An empty chunk list empties the document.
    store.replace_chunks(rec, [], None)
    assert store.doc_chunk_count("doc") == 0
    assert store.check_health() == []


def test_replace_many_writes_a_batch_and_records_as_given(store: Store) -> None:
    vector_store(store)
    store.replace_chunks(make_doc("bad", "/bad.pdf"), make_chunks(["was fine once"]), None)
    a, b = make_chunks(["apple one", "apple two"]), make_chunks(["banana"])
    failed = make_doc("bad", "/bad.pdf", status=DocStatus.FAILED, error="encrypted", chunks=9)
    ok_a = make_doc("a", "/a.txt", status=DocStatus.INDEXED)
    ok_b = make_doc("b", "/b.txt", status=DocStatus.INDEXED)
    store.replace_many([(failed, [], None), (ok_a, a, vectors_for(a)), (ok_b, b, None)])
    docs = {d.doc_id: d for d in store.documents()}
    assert docs["bad"].status == DocStatus.FAILED and docs["bad"].chunks == 0
    assert (docs["a"].chunks, docs["b"].chunks) == (2, 1)
    assert store.doc_chunk_count("bad") == 0
    assert store.count_missing_vectors() == 1 == store.stats()["vectors_missing"]
    assert store.check_health() == []
    with pytest.raises(ValueError, match="twice"):
        store.replace_many([(ok_a, a, None), (ok_a, a, None)])
    store.put_documents([replace(ok_a, status=DocStatus.PENDING), replace(ok_b, size=7)])
    docs = {d.doc_id: d for d in store.documents()}
    assert docs["a"].status == DocStatus.PENDING and docs["b"].size == 7


def test_vector_cache_returns_stored_vectors_by_hash(store: Store) -> None:
    vector_store(store)
    chunks = make_chunks(["one two", "three four", "five six"])
    vecs = vectors_for(chunks)
    vecs[2] = None  # type: ignore[call-overload]
    store.replace_chunks(make_doc("c", "/c.txt"), chunks, vecs)
    hashes = [embed_text_hash(c.embed_text) for c in chunks]
    cached = store.cached_vectors([*hashes, "nope"])
    assert set(cached) == set(hashes[:2])
    assert cached[hashes[0]] == pytest.approx(vecs[0])
    assert store.rows_missing_vectors(10) == [("c:00002", hashes[2])]


def test_rename_keeps_vectors_and_updates_paths(store: Store) -> None:
    vector_store(store)
    rec = make_doc("r", "/docs/old name.txt")
    chunks = make_chunks(["the quick brown fox", "jumps over the lazy dog"])
    store.replace_chunks(rec, chunks, vectors_for(chunks))
    store.rename_document("r", "/docs/sub/new name.txt", size=123, mtime_ns=42)

    moved = store.document_by_path("/docs/sub/new name.txt")
    assert moved is not None and (moved.size, moved.mtime_ns, moved.chunks) == (123, 42, 2)
    assert store.document_by_path("/docs/old name.txt") is None
    assert store.doc_chunk_count("r") == 2
    assert store.rows_missing_vectors(10) == []  # nothing to re-embed
    assert store.keyword_search("fox", 5)[0].path == "/docs/sub/new name.txt"
    (hit,) = store.vector_search(tiny_embed(chunks[1].embed_text), 1)
    assert hit.path == "/docs/sub/new name.txt" and hit.score == pytest.approx(1.0, abs=1e-5)


def test_remove_document(store: Store) -> None:
    keep = make_doc("keep", "/keep.txt")
    gone = make_doc("gone", "/gone.txt")
    store.replace_chunks(keep, make_chunks(["shared words kept"]), None)
    store.replace_chunks(gone, make_chunks(["shared words removed", "more removed"]), None)
    store.remove_document("gone")
    assert [d.doc_id for d in store.documents()] == ["keep"]
    assert store.doc_chunk_count("gone") == 0
    assert [h.doc_id for h in store.keyword_search("shared", 10)] == ["keep"]
    assert store.check_health() == []


# --- batched removals and renames ---------------------------------------------------------------

MANY = DOCS_PER_COMMIT + 44  # two batches


def many_docs(store: Store, n: int = MANY) -> list[DocumentRecord]:
    """`n` indexed documents of one or two chunks each (with vectors), written in one batch."""
    items = []
    for i in range(n):
        rec = make_doc(f"d{i:04d}", f"/old/f{i:04d}.txt", status=DocStatus.INDEXED)
        chunks = make_chunks([f"doc{i:04d} alpha", f"doc{i:04d} beta"][: 1 + i % 2])
        items.append((rec, chunks, vectors_for(chunks)))
    store.replace_many(items)
    return [replace(rec, chunks=len(chunks)) for rec, chunks, _v in items]


def chunk_paths(store: Store, table: str) -> dict[str, set[str]]:
    """The paths the chunk rows of `table` name, by document."""
    rows = store._open(table).search().select(["doc_id", "path"]).limit(None).to_list()
    paths: dict[str, set[str]] = {}
    for r in rows:
        paths.setdefault(r["doc_id"], set()).add(r["path"])
    return paths


def test_remove_documents_costs_one_commit_per_table_per_batch(store: Store) -> None:
    vector_store(store)
    docs = many_docs(store)
    store.begin_switch("other", 8)  # a switch in progress: two chunk tables to keep in step
    tables = [store._active()[0], store._meta.building()[0]]  # type: ignore[index]
    gone = [d.doc_id for d in docs[: MANY - 10]] + ["never-indexed"]
    commits = store._db.commits
    store.remove_documents(gone)
    # Two batches, each: a delete on both chunk tables, then one on the manifest.
    assert store._db.commits - commits == 2 * (len(tables) + 1)
    assert sorted(d.doc_id for d in store.documents()) == [d.doc_id for d in docs[-10:]]
    for table in tables:
        assert set(chunk_paths(store, table)) == {d.doc_id for d in docs[-10:]}
    assert store.check_health() == []
    assert store.keyword_search("doc0000", 5) == []
    commits = store._db.commits
    store.remove_documents([])
    assert store._db.commits == commits


def test_remove_documents_interrupted_leaves_a_repairable_index(store: Store) -> None:
    """A crash between a batch's chunk and manifest commits: the manifest rows left behind
    disagree with the index, `repair` marks them pending, and removing again finishes."""
    vector_store(store)
    docs = many_docs(store)
    calls = []

    def crash() -> None:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the second batch: its chunks are gone, its rows are not

    with pytest.raises(KeyboardInterrupt):
        store.remove_documents([d.doc_id for d in docs], before_manifest=crash)
    left = {d.doc_id: d for d in store.documents()}
    assert sorted(left) == [d.doc_id for d in docs[DOCS_PER_COMMIT:]]  # first batch: done
    assert all(store.doc_chunk_count(doc_id) == 0 for doc_id in left)
    problems = store.check_health()
    assert len(problems) == len([d for d in docs[DOCS_PER_COMMIT:] if d.chunks])
    store.repair()
    assert store.check_health() == []
    assert {d.status for d in store.documents()} == {DocStatus.PENDING}  # re-synced next time
    store.remove_documents(list(left))  # what the next sync does with files that are gone
    assert store.documents() == [] and store.check_health() == []


def test_rename_documents_re_points_chunks_and_manifest_in_batches(store: Store) -> None:
    vector_store(store)
    docs = many_docs(store)
    failed = make_doc("bad", "/old/bad.pdf", status=DocStatus.FAILED, error="encrypted")
    store.put_document(failed)
    store.begin_switch("other", 8)
    tables = [store._active()[0], store._meta.building()[0]]  # type: ignore[index]
    moves = [Move(d.doc_id, f"/new/it's {d.doc_id}.txt", 7, 99) for d in docs]
    moves.append(Move("bad", "/new/bad.pdf", 1, 2))  # a document without chunks
    commits = store._db.commits
    store.rename_documents(moves)
    assert store._db.commits - commits == 2 * (len(tables) + 1)
    by_id = {d.doc_id: d for d in store.documents()}
    for d in docs:
        # Path, size and mtime change; everything else (hash, status, chunk count) stays.
        assert by_id[d.doc_id] == replace(d, path=f"/new/it's {d.doc_id}.txt", size=7, mtime_ns=99)
    assert by_id["bad"] == replace(failed, path="/new/bad.pdf", size=1, mtime_ns=2)
    for table in tables:
        assert chunk_paths(store, table) == {d.doc_id: {by_id[d.doc_id].path} for d in docs}
    assert store.check_health() == []
    store.abandon_switch()
    assert store.rows_missing_vectors(10) == []  # nothing to re-embed in the active table
    (hit,) = store.keyword_search("doc0007", 1)
    assert hit.path == "/new/it's d0007.txt"
    (hit,) = store.vector_search(tiny_embed("T\ndoc0003 alpha"), 1)
    assert hit.path == "/new/it's d0003.txt" and hit.score == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="twice"):
        store.rename_documents([moves[0], moves[0]])


def test_rename_documents_interrupted_is_finished_by_renaming_again(store: Store) -> None:
    """A crash between a batch's chunk and manifest commits: the chunks name the new path,
    the manifest the old one; the counts agree (nothing to repair), and the next sync's rename
    of the same files (found again by hash) finishes the job."""
    vector_store(store)
    docs = many_docs(store)
    moves = [Move(d.doc_id, f"/new/{d.doc_id}.txt", 5, 6) for d in docs]

    def crash() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.rename_documents(moves, before_manifest=crash)
    paths = chunk_paths(store, store._active()[0])
    assert all(paths[d.doc_id] == {f"/new/{d.doc_id}.txt"} for d in docs[:DOCS_PER_COMMIT])
    assert all(paths[d.doc_id] == {d.path} for d in docs[DOCS_PER_COMMIT:])  # not reached
    assert {d.path for d in store.documents()} == {d.path for d in docs}  # manifest: old paths
    assert store.check_health() == []
    store.rename_documents(moves)
    assert {d.path for d in store.documents()} == {m.path for m in moves}
    assert chunk_paths(store, store._active()[0]) == {m.doc_id: {m.path} for m in moves}
    assert store.check_health() == []


def test_fts_finds_rows_added_after_the_index(store: Store) -> None:
    store.replace_chunks(make_doc("a", "/a.txt"), make_chunks(["first batch aardvark"]), None)
    store.ensure_fts_index()
    store.optimize()  # the index now covers "a"
    store.replace_chunks(make_doc("b", "/b.txt"), make_chunks(["later batch zebra"]), None)
    assert [h.doc_id for h in store.keyword_search("zebra", 5)] == ["b"]
    assert {h.doc_id for h in store.keyword_search("batch", 5)} == {"a", "b"}
    store.optimize()
    assert [h.doc_id for h in store.keyword_search("zebra", 5)] == ["b"]


@pytest.mark.parametrize(
    "query",
    ['"unterminated', "a:b", "(x", "AND", "OR OR", "NOT", "x^2~", "\\", "it's", "*", "日本語"],
)
def test_keyword_search_survives_any_query_text(store: Store, query: str) -> None:
    store.replace_chunks(make_doc("a", "/a.txt"), make_chunks(["it's a plain passage"]), None)
    hits = store.keyword_search(query, 5)
    assert all(h.doc_id == "a" for h in hits)


def test_keyword_search_empty_query_and_filters(store: Store) -> None:
    store.replace_chunks(make_doc("a", "/x/a.txt"), make_chunks(["common word"]), None)
    store.replace_chunks(make_doc("b", "/y/b.txt"), make_chunks(["common word"]), None)
    assert store.keyword_search("", 5) == []
    assert store.keyword_search("   ", 5) == []
    assert [h.doc_id for h in store.keyword_search("common", 5, where="path LIKE '/y/%'")] == ["b"]


def test_quotes_and_backslashes_in_paths_and_ids(store: Store) -> None:
    path = "/docs/O'Brien's \"notes\" \\ draft's.txt"
    rec = make_doc("it's:id", path)
    store.replace_chunks(rec, make_chunks(["first version passage", "two"]), None)
    store.replace_chunks(rec, make_chunks(["second version passage"]), None)
    assert store.document_by_path(path) is not None
    assert store.chunk_texts("it's:id") == ["second version passage"]
    assert store.keyword_search("passage", 5)[0].path == path
    new_path = path.replace("draft", "final")
    store.rename_document("it's:id", new_path, size=1, mtime_ns=2)
    assert store.keyword_search("passage", 5)[0].path == new_path
    store.remove_document("it's:id")
    assert store.documents() == [] and store.keyword_search("passage", 5) == []


def test_keyword_only_index_gains_vectors_through_a_switch(store: Store) -> None:
    assert store.embedding_model() == ("", 0)
    docs = {
        f"d{i}": make_chunks([f"document {i} passage {j} word{i}x{j}" for j in range(5)])
        for i in range(4)
    }
    for doc_id, chunks in docs.items():
        store.replace_chunks(make_doc(doc_id, f"/{doc_id}.txt"), chunks, None)
    assert not store.has_vectors()
    assert store.vector_search(tiny_embed("document"), 5) == []
    assert store.rows_missing_vectors(5) == []  # keyword-only: nothing is "missing"

    store.begin_switch("tiny", 16)
    assert store.building_model() == ("tiny", 16)
    assert store.embedding_model() == ("", 0)
    first = store.missing_vector_inputs(6)
    store.set_vectors([r[0] for r in first], [tiny_embed(r[2]) for r in first])
    # Mid-build: the old table still answers, vectors are not used yet.
    assert [h.doc_id for h in store.keyword_search("word2x3", 5)] == ["d2"]
    assert not store.has_vectors()
    assert store.stats()["build_progress"] == pytest.approx(6 / 20)
    assert not store.finish_switch()
    # A document indexed during the build reaches both tables.
    late = make_chunks(["a late arrival passage"])
    store.replace_chunks(make_doc("late", "/late.txt"), late, None)
    assert [h.doc_id for h in store.keyword_search("arrival", 5)] == ["late"]
    assert len(store.rows_missing_vectors(100)) == 20 - 6 + 1
    # begin_switch with the same model resumes instead of restarting.
    store.begin_switch("tiny", 16)
    assert len(store.rows_missing_vectors(100)) == 15

    assert fill_vectors(store, 16) == 15
    assert store.finish_switch()
    assert store.embedding_model() == ("tiny", 16)
    assert store.building_model() is None
    assert store.has_vectors()
    top = store.vector_search(tiny_embed(late[0].embed_text), 1)[0]
    assert top.doc_id == "late"
    assert [h.doc_id for h in store.keyword_search("word2x3", 5)] == ["d2"]
    assert store.stats()["chunks"] == 21 and store.stats()["vectors_missing"] == 0
    assert store.check_health() == []


def test_switch_to_a_model_of_another_dimension(store: Store) -> None:
    vector_store(store, 16)
    chunks = make_chunks(["red apples", "green pears", "blue plums"])
    store.replace_chunks(make_doc("f", "/f.txt"), chunks, vectors_for(chunks, 16))
    # Abandoned and restarted builds: a different model discards the earlier build.
    store.begin_switch("other", 32)
    store.begin_switch("small", 8)
    assert store.building_model() == ("small", 8)
    assert store.vector_search(tiny_embed("green pears", 16), 1)[0].text == "green pears"
    fill_vectors(store, 8)
    assert store.finish_switch()
    assert store.embedding_model() == ("small", 8)
    assert store.vector_search(tiny_embed("T\nblue plums", 8), 1)[0].text == "blue plums"
    with pytest.raises(DimensionMismatch):
        store.vector_search(tiny_embed("blue plums", 16), 1)
    with pytest.raises(DimensionMismatch):
        store.replace_chunks(make_doc("g", "/g.txt"), chunks, vectors_for(chunks, 16))
    assert store.doc_chunk_count("g") == 0  # nothing was written
    store.abandon_switch()  # no build: a no-op
    assert store.check_health() == []
    tables = sorted(p.name for p in store.index_dir.iterdir() if p.name.startswith("chunks_"))
    assert len(tables) == 1  # old and abandoned tables are gone


def _run_python(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_writer_lock_excludes_a_second_writer(tmp_path: Path) -> None:
    index = tmp_path / "index"
    Store(index).close()
    child = _run_python(
        f"""
        import sys
        from pathlib import Path
        from ftrag_desktop.core.store import Store
        s = Store(Path({str(index)!r}))
        s.acquire_writer()
        print("locked", flush=True)
        sys.stdin.readline()
        """
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        store = Store(index)
        with pytest.raises(IndexBusyError) as err:
            store.acquire_writer()
        assert f"pid {child.pid}" in err.value.message
        assert err.value.hint
        child.communicate("done\n", timeout=60)
        store.acquire_writer()  # released when the other process ends
        reader = Store(index, read_only=True)
        with pytest.raises(PermissionError):
            reader.acquire_writer()
        store.close()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_reader_in_another_process_sees_new_writes(store: Store) -> None:
    store.replace_chunks(make_doc("a", "/a.txt"), make_chunks(["before anything"]), None)
    child = _run_python(
        f"""
        import sys, time
        from pathlib import Path
        from ftrag_desktop.core.store import Store
        s = Store(Path({str(store.index_dir)!r}), read_only=True)
        print(len(s.keyword_search("before", 5)), len(s.keyword_search("quokka", 5)), flush=True)
        sys.stdin.readline()  # the parent has written
        deadline = time.monotonic() + 30
        while not s.keyword_search("quokka", 5) and time.monotonic() < deadline:
            time.sleep(0.05)
        print(s.keyword_search("quokka", 5)[0].path if s.keyword_search("quokka", 5) else "-",
              s.embedding_model()[0] or "-", flush=True)
        """
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().split() == ["1", "0"]
        vector_store(store)
        store.replace_chunks(make_doc("q", "/q.txt"), make_chunks(["a quokka smiles"]), None)
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().split() == ["/q.txt", "tiny"]
        assert child.wait(timeout=60) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_check_health_and_repair_fix_a_broken_state(store: Store) -> None:
    vector_store(store)
    good = make_chunks(["healthy document text"])
    store.replace_chunks(make_doc("ok", "/ok.txt"), good, vectors_for(good))
    assert store.check_health() == []
    # Crash after the chunk commit, before the manifest row: orphan chunks.
    store.replace_chunks(make_doc("orphan", "/orphan.txt"), make_chunks(["lost", "rows"]), None)
    store._delete(store._open("documents"), "doc_id = 'orphan'")
    # Crash between removing chunks and removing the manifest row: a count mismatch.
    store.replace_chunks(make_doc("half", "/half.txt"), make_chunks(["x y", "z w"]), None)
    store._delete(store._open(store._active()[0]), "doc_id = 'half'")
    # A crash during begin_switch: a table nobody refers to.
    store.begin_switch("next", 4)
    store._set_meta({"building_chunks_table": "", "building_model": "", "building_dim": "0"})

    problems = store.check_health()
    assert any("2 chunks" in p and "belong to no document" in p for p in problems)
    assert any("/half.txt" in p for p in problems)
    assert any("not used by the index" in p for p in problems)
    done = store.repair()
    assert len(done) == 3
    assert store.check_health() == []
    assert store.doc_chunk_count("orphan") == 0
    half = store.document_by_path("/half.txt")
    assert half is not None and half.status == DocStatus.PENDING
    assert store.document_by_path("/ok.txt").status == DocStatus.INDEXED  # type: ignore[union-attr]
    assert store.repair() == []
    # Re-syncing the pending document restores it.
    store.replace_chunks(half, make_chunks(["x y", "z w"]), None)
    assert store.check_health() == []


def _index_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def test_optimize_keeps_storage_bounded(tmp_path: Path) -> None:
    texts = [f"paragraph {i} " + "lorem ipsum dolor sit amet " * 30 for i in range(8)]
    fresh = Store(tmp_path / "fresh")
    vector_store(fresh)
    chunks = make_chunks(texts)
    fresh.replace_chunks(make_doc("doc", "/doc.txt"), chunks, vectors_for(chunks))
    fresh.optimize(keep_versions=timedelta(0))
    baseline = _index_bytes(fresh.index_dir)

    churn = Store(tmp_path / "churn")
    vector_store(churn)
    for n in range(200):
        version = make_chunks([f"edit {n} {t}" for t in texts])
        churn.replace_chunks(make_doc("doc", "/doc.txt"), version, vectors_for(version))
    before = _index_bytes(churn.index_dir)
    churn.optimize(keep_versions=timedelta(0))
    after = _index_bytes(churn.index_dir)
    assert after < before / 10
    print(f"fresh {baseline} B, churned {before} B, optimized {after} B")
    assert after < 3 * baseline, (baseline, before, after)
    assert churn.doc_chunk_count("doc") == 8 and churn.check_health() == []
    assert churn.keyword_search("edit 199", 1)[0].text.startswith("edit 199")


def test_maybe_optimize_runs_every_n_commits(store: Store) -> None:
    ran = []
    for i in range(6):
        store.replace_chunks(make_doc(f"d{i}", f"/d{i}.txt"), make_chunks(["text"]), None)
        ran.append(store.maybe_optimize(every_commits=5))
    assert ran.count(True) >= 1 and ran[0] is False
    assert not store.maybe_optimize(every_commits=5)


def test_stats_and_read_only_store_on_a_missing_index(tmp_path: Path) -> None:
    reader = Store(tmp_path / "nothing-here", read_only=True)
    assert reader.documents() == [] and reader.keyword_search("x", 3) == []
    assert reader.embedding_model() == ("", 0) and not reader.has_vectors()
    with pytest.raises(PermissionError):
        reader.put_document(make_doc("a", "/a"))
    s = Store(tmp_path / "index")
    s.put_document(make_doc("f", "/f.pdf", status=DocStatus.FAILED, error="encrypted"))
    s.replace_chunks(make_doc("i", "/i.txt"), make_chunks(["one", "two"]), None)
    stats = s.stats()
    assert stats["documents"] == {"indexed": 1, "failed": 1, "pending": 0}
    assert stats["chunks"] == 2 and stats["embed_model"] == "" and stats["embed_dim"] == 0
    assert stats["building_model"] is None and stats["build_progress"] is None
    assert stats["index_bytes"] > 0 and stats["vectors_missing"] == 0


def test_a_killed_writer_leaves_a_repairable_index(tmp_path: Path) -> None:
    index = tmp_path / "index"
    Store(index).close()
    child = _run_python(
        f"""
        from pathlib import Path
        from ftrag_desktop.core.store import Store
        from ftrag_desktop.core.types import Chunk, DocStatus, DocumentRecord
        s = Store(Path({str(index)!r}))
        s.acquire_writer()
        n = 0
        while True:
            for d in range(5):
                rec = DocumentRecord(f"d{{d}}", f"/d{{d}}.txt", 1, 1, "h", DocStatus.PENDING)
                count = 1 + (n + d) % 7
                chunks = [Chunk(i, f"v{{n}} c{{i}}", f"v{{n}} c{{i}}", 0, 1) for i in range(count)]
                if (n + d) % 4 == 3:
                    s.remove_document(rec.doc_id)
                else:
                    s.replace_chunks(rec, chunks, None)
            n += 1
            if n == 3:
                print("running", flush=True)
        """
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "running"
    child.kill()
    child.wait()
    store = Store(index)
    store.acquire_writer()  # the dead writer's lock is gone
    store.repair()
    assert store.check_health() == []
    for rec in store.documents():
        if rec.status == DocStatus.PENDING:
            store.replace_chunks(rec, make_chunks(["re-indexed"]), None)
    assert store.check_health() == []
    assert all(d.status == DocStatus.INDEXED for d in store.documents())
    store.close()
