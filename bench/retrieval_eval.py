"""Retrieval quality on a BEIR dataset, through our own pipeline: nDCG@10 and Recall@100.

    python bench/retrieval_eval.py --corpus C --queries Q --qrels R --mode keyword|vector|hybrid
        [--json] [--home DIR] [--embed-model M] [--k 10] [--limit-queries N] [--ollama-host URL]

Each document becomes a file `<_id>.txt` holding "title\\n\\ntext", and the folder is indexed
with `Engine.sync`, exactly as a user's folder would be.  With `--home DIR` the index (and the
files, in `DIR/beir-docs`) are kept, so the next run resyncs nothing and only searches.  Every
query that has judgements runs through `Engine.search(q, k=100, mode=...)`; hits map back to
documents by file stem, each document keeping its best rank (several chunks can come from one
document).  Metrics follow BEIR (pytrec_eval): nDCG@k with gain = the judged grade and the
ideal DCG from the judgements, Recall@100 over the documents judged relevant (grade > 0).

Vector and hybrid modes need a real embedding model: unless `--ollama-host` is given, the
project's Ollama test server is started in a child process with the `minilm` backend
(all-MiniLM-L6-v2, int8).  Keyword mode starts no server: the index is then keyword-only, as on
a machine without Ollama.  A search that falls back to another mode (e.g. vector mode on an
index without vectors) is counted and reported, never silently scored as the mode asked for.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Keep the top-level imports light: parse workers are spawned, and a spawned process imports
# the parent's main module again.  The product is imported inside `evaluate()`.
from bench.common import (
    log,
    ollama_process,
    percentile,
    read_jsonl,
    unused_url,
    write_beir_files,
)

MODES = ("keyword", "vector", "hybrid")
SEARCH_DEPTH = 100
DEFAULT_EMBED_MODEL = "all-minilm"  # the test server's MiniLM; no task prefixes


# ---- data -----------------------------------------------------------------------------------


def load_qrels(path: Path) -> dict[str, dict[str, int]]:
    """query id -> {doc id: grade} from a BEIR qrels TSV (with a header line)."""
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        rows = csv.reader(fh, delimiter="\t")
        for row in rows:
            if not row or row[0] == "query-id":
                continue
            qid, did, grade = row[0], row[1], int(row[2])
            qrels.setdefault(qid, {})[did] = grade
    return qrels


def load_queries(path: Path) -> dict[str, str]:
    return {str(q["_id"]): str(q["text"]) for q in read_jsonl(path)}


# ---- metrics --------------------------------------------------------------------------------


def ndcg_at(ranked: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    """nDCG@k with linear gain (the grade) and log2 discount, as pytrec_eval's ndcg_cut."""
    dcg = sum(judged.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at(ranked: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    relevant = {d for d, g in judged.items() if g > 0}
    if not relevant:
        return 0.0
    return len(relevant & set(ranked[:k])) / len(relevant)


def docs_in_order(paths: Sequence[str]) -> list[str]:
    """Hit paths -> document ids (file stems), each at its best (first) rank."""
    seen: dict[str, None] = {}
    for path in paths:
        seen.setdefault(Path(path).stem, None)
    return list(seen)


# ---- the run --------------------------------------------------------------------------------


@contextlib.contextmanager
def ollama_url(args: argparse.Namespace) -> Iterator[str]:
    if args.ollama_host:
        yield args.ollama_host
    elif args.mode == "keyword":
        yield unused_url()  # no embedder: a keyword-only index, as without Ollama
    else:
        log("starting the Ollama test server (MiniLM embeddings) ...")
        with ollama_process("minilm") as server:
            yield server.url


def sync_logged(engine: Any, docs_dir: Path) -> tuple[Any, float]:
    """`engine.sync(docs_dir)` to the end, logging the embedding's progress every 30 s; its
    `SyncSummary` and the seconds it took."""
    from ftrag_desktop.core.events import EmbeddingProgress, SyncFinished

    t0 = time.monotonic()
    summary = None
    last_log = 0.0
    for ev in engine.sync(docs_dir):
        if isinstance(ev, SyncFinished):
            summary = ev.summary
        elif isinstance(ev, EmbeddingProgress) and time.monotonic() - last_log > 30:
            last_log = time.monotonic()
            log(f"  vectors {ev.done}/{ev.total} ({ev.model})")
    assert summary is not None
    return summary, time.monotonic() - t0


def evaluate(args: argparse.Namespace, home_dir: Path) -> dict[str, Any]:
    from ftrag_desktop.config import Settings
    from ftrag_desktop.core.engine import Engine
    from ftrag_desktop.paths import Home

    qrels = load_qrels(Path(args.qrels))
    queries = load_queries(Path(args.queries))
    docs_dir = home_dir / "beir-docs"
    n_docs = write_beir_files(Path(args.corpus), docs_dir, limit=args.limit_docs or None)
    if args.limit_docs:  # a smoke run on part of the corpus: judge only what it contains
        kept = {p.stem for p in docs_dir.glob("*.txt")}
        qrels = {q: {d: g for d, g in j.items() if d in kept} for q, j in qrels.items()}
    qids = [q for q in qrels if q in queries and any(g > 0 for g in qrels[q].values())]
    if args.limit_queries:
        qids = qids[: args.limit_queries]
    log(f"{n_docs} documents in {docs_dir}; {len(qids)} queries; mode {args.mode}")

    with ollama_url(args) as url:
        settings = Settings(ollama_host=url, embed_model=args.embed_model)
        with Engine(Home(home_dir), settings) as engine:
            summary, index_seconds = sync_logged(engine, docs_dir)
            log(
                f"indexed {summary.indexed}, unchanged {summary.unchanged}, failed "
                f"{summary.failed} in {index_seconds:.1f} s ({summary.embedding})"
            )
            status = engine.status()

            ndcgs: list[float] = []
            recalls: list[float] = []
            times_ms: list[float] = []
            used: Counter[str] = Counter()
            notes: Counter[str] = Counter()
            for n, qid in enumerate(qids, 1):
                t = time.perf_counter()
                result = engine.search(queries[qid], k=SEARCH_DEPTH, mode=args.mode)
                times_ms.append((time.perf_counter() - t) * 1000)
                used[result.mode] += 1
                if result.note:
                    notes[result.note] += 1
                ranked = docs_in_order([h.path for h in result.hits])
                ndcgs.append(ndcg_at(ranked, qrels[qid], args.k))
                recalls.append(recall_at(ranked, qrels[qid], SEARCH_DEPTH))
                if n % 200 == 0:
                    log(f"  {n}/{len(qids)} queries")

    fallbacks = sum(c for m, c in used.items() if m != args.mode)
    return {
        "mode": args.mode,
        f"ndcg@{args.k}": round(sum(ndcgs) / len(ndcgs), 4) if ndcgs else 0.0,
        f"recall@{SEARCH_DEPTH}": round(sum(recalls) / len(recalls), 4) if recalls else 0.0,
        "queries": len(qids),
        "corpus_docs": n_docs,
        "indexed_docs": status["counts"].get("indexed", 0),
        "failed_docs": summary.failed,
        "chunks": status["chunks"],
        "index_seconds": round(index_seconds, 2),
        "index_new_files": summary.indexed,
        "search_ms_p50": round(percentile(times_ms, 50), 1),
        "search_ms_p95": round(percentile(times_ms, 95), 1),
        "embed_model": status["embedding_model"] or None,
        "embedding": summary.embedding,
        "chunk_size": settings.chunk_size,
        "chunk_overlap": settings.chunk_overlap,
        "modes_used": dict(used),
        "fallback_queries": fallbacks,
        "notes": dict(notes),
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="nDCG@10 and Recall@100 of our search on BEIR data.")
    p.add_argument("--corpus", required=True, help="BEIR corpus.jsonl (_id, title, text)")
    p.add_argument("--queries", required=True, help="BEIR queries jsonl (_id, text)")
    p.add_argument("--qrels", required=True, help="BEIR qrels TSV: query-id corpus-id score")
    p.add_argument("--mode", choices=MODES, required=True)
    p.add_argument("--home", help="keep the index (and the written files) here, reuse it")
    p.add_argument("--embed-model", default=DEFAULT_EMBED_MODEL)
    p.add_argument("--ollama-host", help="use this Ollama server instead of starting one")
    p.add_argument("--k", type=int, default=10, help="cut-off of nDCG (default 10)")
    p.add_argument("--limit-queries", type=int, default=0, help="only the first N queries")
    p.add_argument(
        "--limit-docs",
        type=int,
        default=0,
        help="only the first N documents (smoke runs; judgements outside them are dropped)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keep = bool(args.home)
    home = Path(args.home) if keep else Path(tempfile.mkdtemp(prefix="ftrag-bench-beir-"))
    try:
        result = evaluate(args, home.resolve())
    finally:
        if not keep:
            shutil.rmtree(home, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>18}: {value}")
    if result["fallback_queries"]:
        log(
            f"warning: {result['fallback_queries']} searches ran in another mode: {result['notes']}"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
