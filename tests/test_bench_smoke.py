"""The benchmark scripts run end to end on tiny corpora and print the figures they promise.

These check behaviour (keys, ranges, an obviously relevant document ranking first), not speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.retrieval_eval import docs_in_order, ndcg_at, recall_at
from tests.conftest import PDF_DIR, SCIFACT_DIR

REPO = Path(__file__).resolve().parent.parent

TOPICS = [
    "volcano", "glacier", "orchid", "falcon", "lighthouse", "submarine", "violin", "cactus",
    "meteorite", "penguin", "tornado", "saffron", "pyramid", "octopus", "trombone", "coral",
    "avalanche", "walrus", "compass", "tulip", "comet", "harpoon", "lantern", "bamboo",
    "canyon", "dolphin", "anvil", "mango", "blizzard", "kestrel",
]  # fmt: skip


def run_script(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=REPO, timeout=timeout
    )


def write_beir(root: Path) -> tuple[Path, Path, Path]:
    """30 documents, one topic word each; 4 queries name their document's topic, and one
    query's judged document shares no word with it (so it scores 0)."""
    corpus = root / "corpus.jsonl"
    with corpus.open("w") as fh:
        for i, topic in enumerate(TOPICS):
            doc = {
                "_id": f"d{i}",
                "title": f"Notes on the {topic}",
                "text": f"The {topic} is described here at length. Every {topic} differs.",
            }
            fh.write(json.dumps(doc) + "\n")
    queries = root / "queries.jsonl"
    qrels = root / "qrels.tsv"
    asked = {"q0": (3, "falcon"), "q1": (9, "penguin"), "q2": (14, "trombone"), "q3": (20, "comet")}
    with queries.open("w") as qf, qrels.open("w") as rf:
        rf.write("query-id\tcorpus-id\tscore\n")
        for qid, (n, word) in asked.items():
            qf.write(json.dumps({"_id": qid, "text": f"what about the {word}"}) + "\n")
            rf.write(f"{qid}\td{n}\t1\n")
        qf.write(json.dumps({"_id": "q4", "text": "quantum chromodynamics"}) + "\n")
        rf.write("q4\td0\t1\n")
    return corpus, queries, qrels


def test_metrics_follow_the_beir_definitions() -> None:
    judged = {"a": 2, "b": 1}
    assert ndcg_at(["a", "b", "c"], judged, 10) == pytest.approx(1.0)
    swapped = (1 + 2 / 1.5849625007211562) / (2 + 1 / 1.5849625007211562)
    assert ndcg_at(["b", "a"], judged, 10) == pytest.approx(swapped)
    assert ndcg_at(["c", "d"], judged, 10) == 0.0
    assert ndcg_at(["x"] * 10 + ["a"], judged, 10) == 0.0  # beyond the cut-off
    assert recall_at(["c", "b"], judged, 100) == pytest.approx(0.5)
    # Chunks of one document count once, at the document's best rank.
    assert docs_in_order(["/x/7.txt", "/x/3.txt", "/y/7.txt", "/x/1.txt"]) == ["7", "3", "1"]


def test_retrieval_eval_keyword_json(tmp_path: Path) -> None:
    corpus, queries, qrels = write_beir(tmp_path)
    home = tmp_path / "home"
    args = [
        "bench/retrieval_eval.py",
        *("--corpus", str(corpus), "--queries", str(queries), "--qrels", str(qrels)),
        *("--mode", "keyword", "--home", str(home), "--json"),
    ]
    proc = run_script(*args)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for key in ("ndcg@10", "recall@100", "mode", "queries", "corpus_docs", "index_seconds"):
        assert key in out
    assert out["mode"] == "keyword" and out["modes_used"] == {"keyword": 5}
    assert out["queries"] == 5 and out["corpus_docs"] == 30 and out["index_new_files"] == 30
    assert 0.0 <= out["ndcg@10"] <= 1.0 and 0.0 <= out["recall@100"] <= 1.0
    # Four queries find their document first; the fifth shares no word with its document.
    assert out["ndcg@10"] == pytest.approx(0.8)
    assert out["recall@100"] == pytest.approx(0.8)

    again = json.loads(run_script(*args).stdout)  # the kept home: nothing is indexed again
    assert again["index_new_files"] == 0 and again["ndcg@10"] == out["ndcg@10"]


@pytest.mark.slow
def test_ingest_quick_reports_its_figures(tmp_path: Path) -> None:
    proc = run_script(
        "bench/ingest.py",
        *("--pdf-dir", str(PDF_DIR), "--pdfs", "2"),
        *("--scifact-corpus", str(SCIFACT_DIR / "corpus.jsonl"), "--scifact", "20"),
        *("--watch-trials", "2", "--json", "--work", str(tmp_path / "work")),
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for corpus, files in (("pdfs", 2), ("scifact", 20)):
        r = out[corpus]
        assert r["source_files"] == files and r["indexed"] + r["failed"] == files
        assert r["chunks"] > 0 and r["seconds"] > 0 and r["files_per_s"] > 0
        assert r["peak_rss_tree_mb"] >= r["peak_rss_main_mb"] > 0
        assert r["vectors_missing"] == 0 and r["embedded_at_server"] > 0
        assert r["resync"]["indexed"] == 0 and r["resync"]["ok"] is True
    assert out["pdfs"]["pages"] >= 2 and out["scifact"]["pages_per_s"] is None
    watch = out["save_to_searchable"]
    assert watch["files_watched"] == 20 and watch["found"] == 2 and not watch["missed"]
    assert 0 < watch["p50_s"] <= watch["p95_s"] <= watch["max_s"]


def test_results_md_rewrites_only_its_sections(tmp_path: Path) -> None:
    from bench.run_all import write_results

    results = tmp_path / "RESULTS.md"
    results.write_text(
        "# Benchmark results\n\nIntro kept.\n\n<!-- ingest:start -->\nold ingest\n"
        "<!-- ingest:end -->\n\n<!-- answers:start -->\nanother benchmark\n<!-- answers:end -->\n"
    )
    write_results(results, {"ingest": "new ingest", "retrieval": "new retrieval"})
    text = results.read_text()
    assert "old ingest" not in text and "new ingest" in text
    assert "Intro kept." in text and "another benchmark" in text
    assert text.index("new ingest") < text.index("another benchmark") < text.index("new retrieval")
    write_results(results, {"retrieval": "newer retrieval"})  # ingest skipped: kept as it was
    text = results.read_text()
    assert "new ingest" in text and "newer retrieval" in text and "new retrieval\n" not in text
