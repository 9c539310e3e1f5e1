"""Chunking: parsed blocks to retrievable passages, with offsets, page and lines kept.

A pure function.  Within each block the text is seen as words (runs of non-whitespace) and the
gaps between them, each gap ranked: paragraph break > sentence end > line break > space.  A
chunk is a run of whole words no longer than `chunk_size`, ending at the strongest gap that
still leaves it at least half full; the next chunk starts about `overlap` characters earlier,
at a sentence start when one is near, else at a word.  Only a single word longer than
`chunk_size` is ever cut, into pieces of its own.  Chunks never cross blocks, so each has one
location.  Sizes are in characters.
"""

from __future__ import annotations

import bisect
import re
from typing import NamedTuple

from ftrag_desktop.core.types import Block, Chunk, ParsedDocument

_WORD = re.compile(r"\S+")
_SENTENCE_END = re.compile(r"[.!?…。！？][\"'”’»)\]]*$")
_SENTENCE_CHARS = frozenset(".!?…。！？\"'”’»)]")
_PARAGRAPH_GAP = re.compile(r"\n[^\S\n]*\n")

# Gap strengths: the break after a word.
_SPACE, _LINE, _SENTENCE, _PARAGRAPH, _END = 1, 2, 3, 4, 5
_MIN_FILL = 0.5  # a chunk ends at a weaker gap rather than below half of chunk_size


class _Span(NamedTuple):
    start: int
    end: int
    after: int  # strength of the gap after this word
    oversized: bool


def _words(text: str, chunk_size: int) -> list[_Span]:
    found = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    spans: list[_Span] = []
    last = len(found) - 1
    for n, (start, end) in enumerate(found):
        if n == last:
            after = _END
        else:
            gap_end = found[n + 1][0]
            newline = text.find("\n", end, gap_end) >= 0
            if newline and _PARAGRAPH_GAP.search(text, end, gap_end):
                after = _PARAGRAPH
            elif text[end - 1] in _SENTENCE_CHARS and _SENTENCE_END.search(text, start, end):
                after = _SENTENCE
            elif newline:
                after = _LINE
            else:
                after = _SPACE
        spans.append(_Span(start, end, after, end - start > chunk_size))
    return spans


def _pick_end(words: list[_Span], first: int, min_last: int, chunk_size: int) -> int:
    """The index of the last word of the chunk starting at word `first`."""
    start = words[first].start
    last = first
    while (
        last + 1 < len(words)
        and not words[last + 1].oversized
        and words[last + 1].end - start <= chunk_size
    ):
        last += 1
    if last <= min_last:
        return max(last, first)
    floor = start + int(chunk_size * _MIN_FILL)
    best = last
    for n in range(last, min_last - 1, -1):
        if words[n].end < floor and n != last:
            break
        if words[n].after > words[best].after:
            best = n
    return best


def _pick_next_start(words: list[_Span], first: int, last: int, overlap: int) -> int:
    """Where the chunk after words[first..last] begins: overlapping about `overlap` chars."""
    if overlap <= 0 or words[last].oversized:
        return last + 1
    end = words[last].end
    sentence_floor = end - overlap
    best_word = last + 1
    best_sentence = -1
    for n in range(last, first, -1):
        if words[n].start < sentence_floor:
            break
        best_word = n
        if words[n - 1].after >= _SENTENCE and end - words[n].start >= overlap // 3:
            best_sentence = n
    return best_sentence if best_sentence > first else best_word


def _block_spans(text: str, chunk_size: int, overlap: int) -> list[tuple[int, int]]:
    words = _words(text, chunk_size)
    ends = [w.end for w in words]
    spans: list[tuple[int, int]] = []
    first = 0
    while first < len(words):
        word = words[first]
        if word.oversized:
            spans.extend(
                (pos, min(pos + chunk_size, word.end))
                for pos in range(word.start, word.end, chunk_size)
            )
            first += 1
            continue
        # The first word the previous chunk left uncovered: this chunk must reach it.
        covered = first
        if spans and first > 0:
            covered = max(first, bisect.bisect_right(ends, spans[-1][1]))
        last = _pick_end(words, first, covered, chunk_size)
        spans.append((word.start, words[last].end))
        if last + 1 >= len(words):
            break
        nxt = _pick_next_start(words, first, last, overlap)
        # The next chunk must be able to hold the first word not yet covered.
        while nxt <= last and words[last + 1].end - words[nxt].start > chunk_size:
            nxt += 1
        first = nxt
    return spans


def _embed_text(title: str, heading_path: tuple[str, ...], text: str) -> str:
    header = [part for part in (title.strip(), " > ".join(h for h in heading_path if h)) if part]
    return "\n".join(header) + "\n\n" + text if header else text


def chunk_document(
    doc: ParsedDocument, *, chunk_size: int = 1000, overlap: int = 150
) -> list[Chunk]:
    """Split every block of `doc` into chunks; `overlap` is capped at half of `chunk_size`."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    overlap = max(0, min(overlap, chunk_size // 2))
    chunks: list[Chunk] = []
    for block in doc.blocks:
        chunks.extend(_chunk_block(doc.title, block, chunk_size, overlap, len(chunks)))
    return chunks


def _chunk_block(
    title: str, block: Block, chunk_size: int, overlap: int, ordinal: int
) -> list[Chunk]:
    text = block.text
    newlines = [m.start() for m in re.finditer("\n", text)] if block.line_start else []
    out: list[Chunk] = []
    for a, b in _block_spans(text, chunk_size, overlap):
        passage = text[a:b]
        if not passage.strip():
            continue
        line_start = line_end = None
        if block.line_start is not None:
            line_start = block.line_start + bisect.bisect_left(newlines, a)
            line_end = block.line_start + bisect.bisect_left(newlines, b - 1)
        out.append(
            Chunk(
                ordinal=ordinal + len(out),
                text=passage,
                embed_text=_embed_text(title, block.heading_path, passage),
                char_start=block.start + a,
                char_end=block.start + b,
                page=block.page,
                heading_path=block.heading_path,
                line_start=line_start,
                line_end=line_end,
            )
        )
    return out
