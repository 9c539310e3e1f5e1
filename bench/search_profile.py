"""Where a hybrid search spends its time, on an index `bench/scale.py` built and kept.

    python bench/search_profile.py HOME [--queries 50] [--rounds 3] [--cprofile N]
        [--url URL]

HOME is the `home` folder inside `bench/scale.py --work DIR` (DIR/home).  The script starts the
Ollama test server (fixed-cost `hash` embedder, as scale.py does) unless `--url` names one,
opens the index as a front end would (`Engine`, no writer lock), and runs `Engine.search`
(hybrid, k=6) over the same queries scale.py samples:

- per-stage timers: every store, retriever and LanceDB call on the search path is wrapped, and
  each stage's time per query is reported (median over the queries; the keyword side runs on
  its own thread, so stages overlap and do not add up to the total);
- `--cprofile N`: the top N functions by internal time over the same queries (the main thread
  only; the keyword thread shows up as the wait for it).

Figures are medians of `--rounds` rounds (the machine is shared: single runs are noisy).
Progress on stderr, one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import io
import json
import pstats
import statistics
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import log, ollama_process, percentile

_stage_ms: dict[str, list[float]] = defaultdict(list)
_stage_lock = threading.Lock()


def _timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            with _stage_lock:
                _stage_ms[name].append((time.perf_counter() - t) * 1000)

    return wrapper


def instrument() -> None:
    """Wrap the functions on the search path with stage timers."""
    from lancedb.query import LanceQueryBuilder
    from lancedb.table import LanceTable

    from ftrag_desktop.core import retrieve, store, store_ann, store_search
    from ftrag_desktop.core.embed import OllamaEmbedder
    from ftrag_desktop.core.engine import Engine
    from ftrag_desktop.core.store_lance import LanceTables

    targets: list[tuple[Any, str, str]] = [
        (Engine, "retriever", "engine.retriever (embedding_model)"),
        (store.Store, "embedding_model", "store.embedding_model"),
        (store.Store, "has_vectors", "store.has_vectors"),
        (store.Store, "keyword_search", "store.keyword_search"),
        (store.Store, "vector_search", "store.vector_search"),
        (OllamaEmbedder, "embed_query", "embed_query (HTTP)"),
        (retrieve, "rrf_fuse", "rrf_fuse"),
        (retrieve, "collapse_near_duplicates", "collapse_near_duplicates"),
        (store, "row_to_hit", "row_to_hit (per row)"),
        (store, "fetch_rows", "store_search.fetch_rows (query run)"),
        (store, "search_query", "store_search.search_query (builder)"),
        (store_search.SearchCache, "active", "cache.active (meta version)"),
        (store_search.SearchCache, "ann", "cache.ann"),
        (store_ann, "find", "store_ann.find"),
        (LanceTables, "try_open", "tables.try_open"),
        (LanceQueryBuilder, "to_list", "lancedb query .to_list"),
        (LanceQueryBuilder, "to_arrow", "lancedb query .to_arrow"),
        (LanceTable, "search", "lancedb table.search (builder)"),
        (LanceTable, "take_row_ids", "lancedb table.take_row_ids"),
    ]
    for owner, attr, name in targets:
        fn = getattr(owner, attr, None)
        if fn is not None:
            setattr(owner, attr, _timed(name, fn))
    version = LanceTable.version
    if isinstance(version, property) and version.fget is not None:
        LanceTable.version = property(_timed("lancedb table.version", version.fget))  # type: ignore[method-assign,assignment]


@contextlib.contextmanager
def server(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    with ollama_process("hash") as proc:
        yield proc.url


def queries_for(store: Any, n: int) -> list[str]:
    from bench.scale_data import sample_queries

    texts = [h.text for h in store.keyword_search("cells", 400)]
    texts += [h.text for h in store.keyword_search("patients", 400)]
    return sample_queries(texts, n, seed=21)  # the seed scale.py uses


def one_round(engine: Any, queries: list[str]) -> dict[str, Any]:
    with _stage_lock:
        _stage_ms.clear()
    totals = []
    for q in queries:
        t = time.perf_counter()
        engine.search(q, k=6, mode="hybrid")
        totals.append((time.perf_counter() - t) * 1000)
    n = len(queries)
    with _stage_lock:
        stages = {
            name: {
                "calls_per_query": round(len(ms) / n, 2),
                "ms_per_query": round(sum(ms) / n, 2),
                "median_call_ms": round(statistics.median(ms), 2),
            }
            for name, ms in _stage_ms.items()
        }
    return {
        "p50_ms": round(percentile(totals, 50), 1),
        "p95_ms": round(percentile(totals, 95), 1),
        "stages": stages,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Per-stage timing of the hybrid search.")
    p.add_argument("home", type=Path, help="the index home (scale.py's WORK/home)")
    p.add_argument("--queries", type=int, default=50)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--cprofile", type=int, default=0, help="print the top N functions")
    p.add_argument("--url", help="an Ollama (test) server already running")
    args = p.parse_args(argv)

    from ftrag_desktop.config import load_settings
    from ftrag_desktop.core.engine import Engine
    from ftrag_desktop.paths import Home

    instrument()
    out: dict[str, Any] = {}
    with server(args.url) as url:
        h = Home(args.home)
        settings = load_settings(h.settings_file)
        settings.ollama_host = url
        with Engine(h, settings) as engine:
            queries = queries_for(engine.store, args.queries)
            for q in queries[:10]:  # warm-up, as scale.py does
                engine.search(q, k=6, mode="hybrid")
            rounds = []
            for r in range(args.rounds):
                rounds.append(one_round(engine, queries))
                log(f"[profile] round {r + 1}: p50 {rounds[-1]['p50_ms']} ms")
            names = sorted({n for r in rounds for n in r["stages"]})
            out["p50_ms_rounds"] = [r["p50_ms"] for r in rounds]
            out["p50_ms"] = statistics.median(out["p50_ms_rounds"])
            out["p95_ms"] = statistics.median(r["p95_ms"] for r in rounds)
            out["stages"] = {
                n: {
                    key: statistics.median(r["stages"][n][key] for r in rounds if n in r["stages"])
                    for key in ("calls_per_query", "ms_per_query", "median_call_ms")
                }
                for n in names
            }
            if args.cprofile:
                prof = cProfile.Profile()
                prof.enable()
                for q in queries:
                    engine.search(q, k=6, mode="hybrid")
                prof.disable()
                buf = io.StringIO()
                pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(args.cprofile)
                log(buf.getvalue())
    for name, s in sorted(out["stages"].items(), key=lambda kv: -kv[1]["ms_per_query"]):
        log(
            f"  {name:40s} {s['ms_per_query']:8.2f} ms/query  "
            f"{s['calls_per_query']:5.2f} calls  {s['median_call_ms']:7.2f} ms/call"
        )
    log(f"[profile] hybrid k=6: p50 {out['p50_ms']} ms, p95 {out['p95_ms']} ms")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
