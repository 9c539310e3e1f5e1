"""Synthetic data for `bench/scale.py`: text files, chunk rows with vectors, and queries.

The words come from the SciFact abstracts (the 20,000 most frequent, drawn with their own
frequencies), so the text has a natural, Zipf-like word distribution: common words everywhere,
rare ones in a few passages, as in a real library.  Everything is seeded: the same size gives
the same folder, byte for byte.

Vectors of rows written directly (the 1M growth, see scale.py) are the test server's `hash`
embedding (`tests.ollama_server.hash_embed`) computed with numpy: the same vector the server
returns for the same text, so a query embedded by the server finds them as it would find rows
the indexer embedded.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common import SCIFACT_DIR, read_jsonl

VOCAB_SIZE = 20_000
TOPICS = 300  # a library has subjects: each document is mostly about one or two of them
TOPIC_WORDS = 400  # the words a topic favours (drawn from outside the 200 commonest)
TOPIC_SHARE = 0.5  # the share of a passage's words drawn from its topic
WORDS_PER_CHUNK = 150  # about 1,000 characters, the default chunk size
CHUNKS_PER_FILE = 10  # files of about 8.5 KB: 10 chunks with the default overlap
DIM = 384  # the hash embedder's dimension


@dataclass(frozen=True)
class Vocabulary:
    words: list[str]
    cdf: np.ndarray  # cumulative drawing probability of each word (background)
    topic_words: np.ndarray  # (TOPICS, TOPIC_WORDS) word ids
    topic_cdf: np.ndarray  # cumulative probability of a topic's words by rank (1/rank)
    slot: np.ndarray  # hash_embed's vector index of each word
    sign: np.ndarray  # hash_embed's +1/-1 of each word


def load_vocabulary(corpus: Path = SCIFACT_DIR / "corpus.jsonl") -> Vocabulary:
    counts: Counter[str] = Counter()
    for doc in read_jsonl(corpus):
        counts.update(re.findall(r"[a-z]{2,}", f"{doc.get('title')} {doc.get('text')}".lower()))
    words = [w for w, _ in counts.most_common(VOCAB_SIZE)]
    freq = np.array([counts[w] for w in words], dtype=np.float64)
    slot = np.empty(len(words), dtype=np.int64)
    sign = np.empty(len(words), dtype=np.float32)
    for i, word in enumerate(words):
        h = hashlib.blake2b(word.encode(), digest_size=8).digest()
        slot[i] = int.from_bytes(h[:4], "little") % DIM
        sign[i] = 1.0 if h[4] & 1 else -1.0
    rng = np.random.default_rng(1)
    topic_words = np.stack(
        [rng.choice(np.arange(200, len(words)), TOPIC_WORDS, replace=False) for _ in range(TOPICS)]
    )
    rank_w = 1.0 / np.arange(1, TOPIC_WORDS + 1)
    return Vocabulary(
        words=words,
        cdf=np.cumsum(freq / freq.sum()),
        topic_words=topic_words,
        topic_cdf=np.cumsum(rank_w / rank_w.sum()),
        slot=slot,
        sign=sign,
    )


def draw(
    vocab: Vocabulary, rng: np.random.Generator, topics: np.ndarray, n_words: int
) -> np.ndarray:
    """Word ids, one row of `n_words` per entry of `topics` (a row's topic; -1: none)."""
    n_rows = len(topics)
    background = np.searchsorted(vocab.cdf, rng.random((n_rows, n_words)))
    background = np.minimum(background, len(vocab.words) - 1)
    ranks = np.minimum(
        np.searchsorted(vocab.topic_cdf, rng.random((n_rows, n_words))), TOPIC_WORDS - 1
    )
    topical = vocab.topic_words[np.maximum(topics, 0)[:, None], ranks]
    use_topic = (rng.random((n_rows, n_words)) < TOPIC_SHARE) & (topics[:, None] >= 0)
    out: np.ndarray = np.where(use_topic, topical, background)
    return out


def chunk_topics(rng: np.random.Generator, n_docs: int, per_doc: int) -> np.ndarray:
    """Each document's main topic for most of its chunks, a second topic for some."""
    main = rng.integers(TOPICS, size=n_docs)
    second = rng.integers(TOPICS, size=n_docs)
    rows = np.repeat(main, per_doc)
    switch = rng.random(n_docs * per_doc) < 0.3
    out: np.ndarray = np.where(switch, np.repeat(second, per_doc), rows)
    return out


def render(vocab: Vocabulary, ids: np.ndarray) -> str:
    """Word ids as prose: sentences of 12 words, capitalised, with full stops."""
    words = [vocab.words[i] for i in ids.tolist()]
    out: list[str] = []
    for s in range(0, len(words), 12):
        sentence = words[s : s + 12]
        out.append(sentence[0].capitalize() + " " + " ".join(sentence[1:]) + ".")
    return " ".join(out)


def hash_vectors(vocab: Vocabulary, ids: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
    """`hash_embed` of each row of word ids (plus the `extra` ids of every row, e.g. the
    title's words), normalised, float32."""
    rows = (
        ids if extra is None else np.hstack([ids, np.broadcast_to(extra, (len(ids), len(extra)))])
    )
    flat = (np.arange(len(rows))[:, None] * DIM + vocab.slot[rows]).ravel()
    weights = vocab.sign[rows].ravel().astype(np.float64)
    vec = np.bincount(flat, weights=weights, minlength=len(rows) * DIM).reshape(len(rows), DIM)
    norm = np.linalg.norm(vec, axis=1, keepdims=True)
    norm[norm == 0] = 1.0
    out: np.ndarray = (vec / norm).astype(np.float32)
    return out


def write_folder(vocab: Vocabulary, folder: Path, n_files: int, *, seed: int = 7) -> int:
    """`n_files` text files of about `CHUNKS_PER_FILE` chunks each, in 100 sub-folders; a
    file already holding the same bytes is left alone.  Returns the bytes written in all."""
    rng = np.random.default_rng(seed)
    total = 0
    for n in range(n_files):
        topics = chunk_topics(rng, 1, CHUNKS_PER_FILE)
        title = render(vocab, draw(vocab, rng, topics[:1], 5)[0]).rstrip(".")
        body = draw(vocab, rng, topics, int(WORDS_PER_CHUNK * 0.62))
        paras = [render(vocab, row) for row in body]
        data = (title + "\n\n" + "\n\n".join(paras) + "\n").encode("utf-8")
        path = folder / f"d{n % 100:02d}" / f"doc{n:07d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            same = path.stat().st_size == len(data) and path.read_bytes() == data
        except FileNotFoundError:
            same = False
        if not same:
            path.write_bytes(data)
        total += len(data)
    return total


@dataclass(frozen=True)
class RowBatch:
    """Synthetic documents as chunk rows: `texts[i]` belongs to document `doc_of[i]`."""

    doc_names: list[str]
    titles: list[str]
    texts: list[str]
    doc_of: list[int]
    vectors: np.ndarray


def row_batches(
    vocab: Vocabulary, n_docs: int, batch_docs: int, *, seed: int = 11, start: int = 0
) -> Iterator[RowBatch]:
    """Documents `start .. start + n_docs` of `CHUNKS_PER_FILE` chunks each, in batches."""
    rng = np.random.default_rng(seed + start)
    for first in range(start, start + n_docs, batch_docs):
        count = min(batch_docs, start + n_docs - first)
        topics = chunk_topics(rng, count, CHUNKS_PER_FILE)
        title_ids = draw(vocab, rng, topics[::CHUNKS_PER_FILE], 5)
        body = draw(vocab, rng, topics, WORDS_PER_CHUNK)
        texts = [render(vocab, row) for row in body]
        doc_of = [i // CHUNKS_PER_FILE for i in range(len(texts))]
        vecs = np.vstack(
            [
                hash_vectors(vocab, body[i * CHUNKS_PER_FILE : (i + 1) * CHUNKS_PER_FILE], t)
                for i, t in enumerate(title_ids)
            ]
        )
        yield RowBatch(
            [f"gen{first + i:07d}" for i in range(count)],
            [" ".join(vocab.words[w] for w in t) for t in title_ids],
            texts,
            doc_of,
            vecs,
        )


def sample_queries(texts: list[str], n: int, *, seed: int = 3) -> list[str]:
    """Queries of 3 to 8 consecutive words taken from random passages (so each has at least
    one passage it should find), lower-cased, without punctuation."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    while len(out) < n:
        words = re.findall(r"[a-z]+", texts[int(rng.integers(len(texts)))].lower())
        size = int(rng.integers(3, 9))
        if len(words) <= size:
            continue
        at = int(rng.integers(len(words) - size))
        out.append(" ".join(words[at : at + size]))
    return out
