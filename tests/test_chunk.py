"""Chunking: invariants checked on seeded random texts, plus the location fields."""

from __future__ import annotations

import itertools
import random
import re

import pytest

from ftrag_desktop.core.chunk import chunk_document
from ftrag_desktop.core.types import Block, Chunk, ParsedDocument

VOCAB = [
    "the", "of", "and", "a", "to", "in", "is", "data", "model", "index", "page", "folder",
    "query", "answer", "Ollama", "LanceDB", "privacy", "local", "vector", "retrieval",
    "citation", "chunk", "e.g.", "x", "y", "z", "résumé", "naïve", "日本語",
]  # fmt: skip


def random_text(rng: random.Random, words: int) -> str:
    """Words, sentences, lines and paragraphs, with ragged whitespace and some long words."""
    out: list[str] = []
    for _ in range(words):
        roll = rng.random()
        if roll < 0.01:
            word = "".join(rng.choice("abcdefgh") for _ in range(rng.randint(20, 160)))
        else:
            word = rng.choice(VOCAB)
        if rng.random() < 0.1:
            word += rng.choice([".", "!", "?", '."', ".)"])
        out.append(word)
        gap = rng.random()
        if gap < 0.03:
            out.append(rng.choice(["\n\n", "\n \n", "\r\n\r\n", "\n\n\n"]))
        elif gap < 0.08:
            out.append("\n")
        elif gap < 0.1:
            out.append(rng.choice(["  ", "\t", " \u00a0 "]))
        else:
            out.append(" ")
    lead = rng.choice(["", "  ", "\n\n", "\t"])
    return lead + "".join(out)


def word_spans(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]


def check_invariants(text: str, chunks: list[Chunk], size: int, overlap: int) -> None:
    words = word_spans(text)
    starts = {s for s, _ in words}
    ends = {e for _, e in words}
    oversized = [(s, e) for s, e in words if e - s > size]

    def inside_oversized(a: int, b: int) -> bool:
        return any(s <= a and b <= e for s, e in oversized)

    covered = [False] * len(text)
    for n, chunk in enumerate(chunks):
        assert chunk.ordinal == n
        # The stored passage is exactly the source slice, and it is clean.
        assert text[chunk.char_start : chunk.char_end] == chunk.text
        assert chunk.text == chunk.text.strip() and chunk.text
        if inside_oversized(chunk.char_start, chunk.char_end):
            assert len(chunk.text) <= size
        else:
            assert len(chunk.text) <= size, (len(chunk.text), chunk.text[:60])
            # Never starts or ends mid-word.
            assert chunk.char_start in starts
            assert chunk.char_end in ends
        for i in range(chunk.char_start, chunk.char_end):
            covered[i] = True
    # All non-whitespace text is covered.
    assert all(covered[i] for i in range(len(text)) if not text[i].isspace())
    # Consecutive chunks overlap, unless an oversized word sits at the seam.
    for prev, nxt in itertools.pairwise(chunks):
        if inside_oversized(prev.char_start, prev.char_end) or inside_oversized(
            nxt.char_start, nxt.char_end
        ):
            continue
        shared = prev.char_end - nxt.char_start
        last_start, last_end = next((s, e) for s, e in reversed(words) if e <= prev.char_end)
        next_end = next(e for s, e in words if s >= prev.char_end)
        # Overlap is possible when the last word fits in it and, with the next word, in a chunk.
        if overlap > 0 and last_end - last_start <= overlap and next_end - last_start <= size:
            assert 0 < shared <= overlap, (shared, overlap)
        assert nxt.char_start > prev.char_start  # progress
        assert nxt.char_end > prev.char_end


@pytest.mark.parametrize("seed", range(40))
def test_random_texts_keep_every_invariant(seed: int) -> None:
    rng = random.Random(seed)
    text = random_text(rng, rng.randint(1, 1500))
    size = rng.choice([80, 200, 500, 1000])
    overlap = rng.choice([0, 20, 50, 150])
    doc = ParsedDocument("T", (Block(text=text, line_start=1),))
    chunks = chunk_document(doc, chunk_size=size, overlap=overlap)
    check_invariants(text, chunks, size, min(overlap, size // 2))


def test_chunks_are_reasonably_full() -> None:
    rng = random.Random(7)
    text = " ".join(rng.choice(VOCAB[:15]) for _ in range(5000))  # no sentence ends at all
    chunks = chunk_document(ParsedDocument("T", (Block(text=text),)), chunk_size=500)
    assert all(len(c.text) > 400 for c in chunks[:-1])


def test_prefers_paragraph_then_sentence_boundaries() -> None:
    para1 = "Alpha beta gamma delta. " * 12  # about 290 chars
    para2 = "Epsilon zeta eta theta. " * 12
    text = para1.strip() + "\n\n" + para2.strip()
    chunks = chunk_document(ParsedDocument("T", (Block(text=text),)), chunk_size=400)
    assert chunks[0].text == para1.strip()  # the paragraph break beats filling up
    sentences = chunk_document(ParsedDocument("T", (Block(text=para1 * 3),)), chunk_size=200)
    assert all(c.text.endswith(".") for c in sentences)
    # The overlap starts at a sentence too.
    assert all(c.text.startswith("Alpha") for c in sentences)


def test_locations_are_copied_and_offset() -> None:
    source = "# Guide\n\nintro\n\n## Part\n\nline a\nline b is here.\nline c\n"
    body_start = source.index("line a")
    doc = ParsedDocument(
        "My Guide",
        (Block(text=source[body_start:], start=body_start, heading_path=("Guide", "Part"),
               line_start=7),),
    )  # fmt: skip
    (chunk,) = chunk_document(doc)
    assert source[chunk.char_start : chunk.char_end] == chunk.text
    assert (chunk.line_start, chunk.line_end) == (7, 9)
    assert chunk.heading_path == ("Guide", "Part")
    assert chunk.embed_text == "My Guide\nGuide > Part\n\n" + chunk.text


def test_line_numbers_of_later_chunks() -> None:
    lines = [f"Line number {n} says something." for n in range(1, 201)]
    text = "\n".join(lines)
    chunks = chunk_document(ParsedDocument("", (Block(text=text, line_start=1),)), chunk_size=300)
    assert len(chunks) > 10
    for chunk in chunks:
        first = chunk.text.split("\n")[0]
        last = chunk.text.split("\n")[-1]
        assert first.startswith("Line number ") and last.endswith(".")
        assert chunk.line_start == int(first.split()[2])
        assert chunk.line_end == int(last.split()[2])
        assert chunk.embed_text == chunk.text  # no title, no headings: just the passage


def test_pdf_pages_never_mix_and_ordinals_run_across_blocks() -> None:
    pages = (
        *(Block(text=f"Page {n} text. " * 40, page=n) for n in (1, 2, 4)),
        Block(text="   \n  ", page=5),
    )
    chunks = chunk_document(ParsedDocument("Paper", pages, pages=5), chunk_size=200, overlap=40)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert {c.page for c in chunks} == {1, 2, 4}
    for chunk in chunks:
        assert f"Page {chunk.page} text." in chunk.text
        assert f"Page {chunk.page} text." * 40 != chunk.text
        assert chunk.embed_text.startswith("Paper\n\n")
        block = next(b for b in pages if b.page == chunk.page)
        assert block.text[chunk.char_start : chunk.char_end] == chunk.text


def test_oversized_word_is_hard_split_alone() -> None:
    blob = "A" * 2500
    text = f"before words here {blob} after words"
    chunks = chunk_document(ParsedDocument("", (Block(text=text),)), chunk_size=1000, overlap=100)
    pieces = [c.text for c in chunks if "A" * 10 in c.text]
    assert "".join(pieces) == blob
    assert [len(p) for p in pieces] == [1000, 1000, 500]
    assert chunks[0].text == "before words here"
    assert chunks[-1].text == "after words"


def test_bad_sizes() -> None:
    doc = ParsedDocument("", (Block(text="some words here"),))
    with pytest.raises(ValueError):
        chunk_document(doc, chunk_size=0)
    # An overlap as large as the chunk is capped instead of looping forever.
    text = "word " * 500
    chunks = chunk_document(ParsedDocument("", (Block(text=text),)), chunk_size=50, overlap=50)
    assert all(len(c.text) <= 50 for c in chunks)
    assert chunks[-1].char_end == len(text.rstrip())
