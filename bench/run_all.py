"""Run every benchmark and write the figures into bench/RESULTS.md (what `make bench` runs).

    python bench/run_all.py [--quick] [--work DIR] [--skip-ingest] [--skip-retrieval]
        [--skip-peer] [--skip-hostile] [--skip-reliability]

1. `bench/ingest.py`: throughput on the PDFs and the SciFact files, the no-change resync, and
   save-to-searchable latency under `ftrag watch` (fixed-cost `hash` embedder).
2. `bench/retrieval_eval.py` on SciFact (training queries) in keyword, vector and hybrid mode,
   sharing one index home and one Ollama test server with real MiniLM embeddings, so the corpus
   is embedded once.
3. `bench/vs_llamaindex.py`: indexing side by side with LlamaIndex (run with its own interpreter,
   `.venv-peer`, which `make bench` creates), both embedders, both corpora (`--skip-peer` skips).
4. `bench/hostile_input.py`: hostile and broken files plus the 150 PDFs through `ftrag index`,
   each file's status and reason, and the indexer's peak memory.
5. `bench/reliability.py`: the full-scale SIGKILL campaigns (indexing, compaction, model
   switch) and the 1,000 edit-and-resync cycles of bounded growth.

RESULTS.md is rewritten only between its section markers (`<!-- machine:start -->` ...
`<!-- machine:end -->`, `ingest`, `retrieval`, `vs_llamaindex`, `hostile`, `reliability`);
anything else in the file is kept, and a section whose benchmark was skipped keeps its previous
figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    REPO,
    SCIFACT_DIR,
    child_env,
    log,
    ollama_process,
    update_results_section,
)

RESULTS = REPO / "bench" / "RESULTS.md"
KEYWORD_NDCG_TARGET = 0.66
PACKAGES = ("lancedb", "pyarrow", "numpy", "pypdf", "ollama", "httpx", "watchdog", "onnxruntime")
MODES = ("keyword", "vector", "hybrid")


# ---- running --------------------------------------------------------------------------------


def rel(path: Path | str) -> str:
    """A path as the commands in RESULTS.md show it: relative to the repository if possible."""
    return os.path.relpath(path, REPO)


def run_json(cmd: list[str]) -> dict[str, Any]:
    """Run a benchmark script; its progress goes to our stderr, its one JSON document back."""
    log("$ " + shlex.join(cmd))
    result = subprocess.run(
        cmd, stdout=subprocess.PIPE, text=True, env=child_env(), cwd=REPO, check=False
    )
    if not result.stdout.strip():
        raise RuntimeError(f"{shlex.join(cmd)} failed (exit code {result.returncode})")
    doc: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    doc["exit_code"] = result.returncode
    return doc


def run_ingest(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    cmd = [sys.executable, "bench/ingest.py", "--json", "--runner", args.runner]
    if args.quick:
        cmd.append("--quick")
    shown = [".venv/bin/python", *cmd[1:]]
    cmd += ["--work", str(work / "ingest")]
    result = run_json(cmd)
    result["command"] = shlex.join(shown)
    return result


def run_retrieval(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    data = Path(args.scifact)
    common = [
        "--corpus",
        str(data / "corpus.jsonl"),
        "--queries",
        str(data / "queries-train.jsonl"),
        "--qrels",
        str(data / "qrels-train.tsv"),
        "--json",
    ]
    if args.quick:
        common += ["--limit-docs", "300", "--limit-queries", "30"]
    home = work / "scifact-home"
    results: dict[str, Any] = {}
    shown: list[str] = []
    started = time.monotonic()
    with ollama_process("minilm") as server:
        for mode in MODES:
            cmd = [sys.executable, "bench/retrieval_eval.py", "--mode", mode, *common]
            results[mode] = run_json([*cmd, "--home", str(home), "--ollama-host", server.url])
            shown.append(
                shlex.join([".venv/bin/python", *(rel(c) if "/" in c else c for c in cmd[1:])])
                + " --home /tmp/scifact-home"
            )
    results["total_seconds"] = round(time.monotonic() - started, 1)
    results["commands"] = shown
    return results


def run_vs_llamaindex(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """`bench/vs_llamaindex.py`; its section is rendered here, with the others."""
    cmd = [sys.executable, "bench/vs_llamaindex.py", "--json", "--no-write"]
    if args.quick:
        cmd.append("--quick")
    result = run_json([*cmd, "--work", str(work / "vs-llamaindex")])
    if result["exit_code"] != 0:
        raise RuntimeError(f"bench/vs_llamaindex.py failed (exit code {result['exit_code']})")
    return result


def run_hostile(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """`bench/hostile_input.py`; its section is rendered here, with the others."""
    cmd = [sys.executable, "bench/hostile_input.py", "--json", "--no-results"]
    if args.quick:
        cmd.append("--quick")
    return run_json([*cmd, "--work", str(work / "hostile")])


def run_reliability(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """`bench/reliability.py` without its hostile-input part (`run_hostile` runs that)."""
    cmd = [sys.executable, "bench/reliability.py", "--json", "--no-write", "--skip-hostile"]
    if args.quick:
        cmd.append("--quick")
    return run_json([*cmd, "--work", str(work / "reliability")])


# ---- the machine ----------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram_gb = 0.0
    with open("/proc/meminfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                ram_gb = int(line.split()[1]) / (1024 * 1024)
    os_name = platform.platform()
    try:
        os_release = Path("/etc/os-release").read_text(encoding="utf-8")
        m = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', os_release, re.M)
        if m:
            os_name = f"{m.group(1)} (kernel {platform.release()})"
    except OSError:
        pass
    versions = []
    for pkg in PACKAGES:
        try:
            versions.append(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{pkg} (not installed)")
    commit = _git("rev-parse", "--short", "HEAD")
    if commit and _git("status", "--porcelain"):
        commit += " (with uncommitted changes)"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": f"{ram_gb:.1f} GB",
        "os": os_name,
        "python": platform.python_version(),
        "packages": ", ".join(versions),
        "commit": commit or "unknown",
    }


def _git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", *args], capture_output=True, text=True, cwd=REPO, check=False, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip()


# ---- RESULTS.md -----------------------------------------------------------------------------


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**pass**" if ok else "**FAIL**")


def machine_section(m: dict[str, str], quick: bool) -> str:
    lines = [
        "## Machine",
        "",
        f"- Date: {m['date']}" + (" (**--quick run: not the real figures**)" if quick else ""),
        f"- CPU: {m['cpu']}, {m['cores']} cores; RAM {m['ram']}",
        f"- OS: {m['os']}; Python {m['python']}",
        f"- Packages: {m['packages']}",
        f"- Code: commit {m['commit']}",
        "- Reproduce everything: `.venv/bin/python bench/run_all.py` (what `make bench` runs).",
        "  Other engineers' test suites were running on the same 2 cores: timings are noisy.",
    ]
    return "\n".join(lines)


def _mb(v: Any) -> str:
    return f"{v:.0f} MB" if isinstance(v, int | float) else "?"


def ingest_section(res: dict[str, Any]) -> str:
    lines = [
        "## Ingest (`bench/ingest.py`)",
        "",
        "Through the real pipeline: `ftrag index DIR --json` in a child process (parse pool,",
        "chunking, `/api/embed` over HTTP with the official ollama client, LanceDB), each corpus",
        "into a fresh home.  The Ollama server is the project's test server in its own process",
        "with the fixed-cost `hash` embedder, so these figures measure our pipeline, not a model.",
        "Seconds are wall time of the whole command (interpreter start, imports and the embedder",
        "probe included); `sync` is the time the sync itself reported.  Peak memory is sampled",
        "from /proc over the indexing process and its parse workers.",
        "",
        "| corpus | files | indexed | failed | pages | chunks | seconds (sync) | files/s "
        "| pages/s | chunks/s | peak RSS tree (main / worker) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, label in (("pdfs", "150 shared PDFs"), ("scifact", "SciFact abstracts (.txt)")):
        r = res.get(name)
        if not r:
            continue
        lines.append(
            f"| {label} | {r['files']} | {r['indexed']} | {r['failed']} | {r['pages'] or '-'} "
            f"| {r['chunks']} | {r['seconds']:.1f} ({r['sync_seconds']:.1f}) "
            f"| {r['files_per_s']} | {r['pages_per_s'] or '-'} | {r['chunks_per_s']} "
            f"| {_mb(r['peak_rss_tree_mb'])} ({_mb(r['peak_rss_main_mb'])} / "
            f"{_mb(r['peak_rss_worker_mb'])}) |"
        )
    lines += [
        "",
        "| check | figure | target | result |",
        "| --- | --- | --- | --- |",
    ]
    for name, label in (("pdfs", "PDFs"), ("scifact", "SciFact")):
        r = res.get(name)
        if not r:
            continue
        accounted = r["indexed"] + r["failed"] == r["source_files"] and not r["pending"]
        lines.append(
            f"| {label}: every file indexed or failed with a reason | {r['indexed']} indexed + "
            f"{r['failed']} failed of {r['source_files']}, {r['pending']} pending "
            f"| all accounted for | {verdict(accounted)} |"
        )
        rs = r["resync"]
        lines.append(
            f"| {label}: no-change resync | {rs['seconds']:.1f} s ({rs['sync_seconds']:.2f} s "
            f"sync); indexed {rs['indexed']}, embedded {rs['embedded']} "
            f"(the server embedded {rs['embedded_at_server']}) "
            f"| indexed 0, embedded 0 | {verdict(rs['ok'])} |"
        )
    w = res.get("save_to_searchable")
    if w:
        lines.append(
            f"| save to searchable, {w['files_watched']} watched files, {w['trials']} saves "
            f"| p50 {w['p50_s']:.2f} s, p95 {w['p95_s']:.2f} s, max {w['max_s']:.2f} s; "
            f"{len(w['missed'])} not found | p95 within {w['target_s']:.0f} s "
            f"(embedding excluded) | {verdict(w['ok'])} |"
        )
    for name, label in (("pdfs", "PDFs"), ("scifact", "SciFact")):
        r = res.get(name)
        if r and r["failure_reasons"]:
            lines += ["", f"{label} failures by reason:", ""]
            lines += [f"- {n} × {why}" for why, n in r["failure_reasons"].items()]
    lines += [
        "",
        "The server counts the texts it embeds, including the one probe text a start of `ftrag`",
        "may embed to see whether the embedder works: a resync may show that probe, nothing more.",
        "Save to searchable: `ftrag watch` runs on the SciFact folder (already indexed); each",
        "trial writes a new file or appends to an existing one with a unique word, and a second",
        "`Engine` in the benchmark process searches for it (keyword mode) every 20 ms.",
    ]
    if res.get("runner") == "wrapper":
        lines += [
            "",
            "Run with `--runner wrapper`: `ftrag_desktop.cli.main()` called from `bench/ingest.py`",
            "rather than `python -m ftrag_desktop.cli` (see the note in the report).",
        ]
    lines += ["", "Command:", "", "```", res.get("command", "?"), "```"]
    return "\n".join(lines)


def retrieval_section(res: dict[str, Any]) -> str:
    kw, vec, hyb = (res.get(m, {}) for m in MODES)
    lines = [
        "## Retrieval quality on SciFact (`bench/retrieval_eval.py`)",
        "",
        f"BEIR SciFact, {kw.get('corpus_docs', '?')} abstracts written as `<_id>.txt` files "
        '("title, blank line, text"),',
        "indexed by `Engine.sync` (default settings: chunk size "
        f"{kw.get('chunk_size', '?')}, overlap {kw.get('chunk_overlap', '?')}), and the "
        f"{kw.get('queries', '?')} training queries run through `Engine.search(q, k=100, mode)`.",
        "Hits map to documents by file stem, each at its best rank.  nDCG@10 and Recall@100 as in",
        "BEIR.  Embeddings: all-MiniLM-L6-v2 (int8 ONNX) served by the project's Ollama test",
        "server as `all-minilm`.  The three modes share one index home.",
        "",
        "| mode | nDCG@10 | Recall@100 | queries | search p50 / p95 | index or resync |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for mode in MODES:
        r = res.get(mode)
        if not r:
            continue
        lines.append(
            f"| {mode} | {r['ndcg@10']:.4f} | {r['recall@100']:.4f} | {r['queries']} "
            f"| {r['search_ms_p50']:.0f} / {r['search_ms_p95']:.0f} ms "
            f"| {r['index_seconds']:.1f} s ({r['index_new_files']} files new) |"
        )
    kw_ok = kw["ndcg@10"] >= KEYWORD_NDCG_TARGET if kw else None
    hyb_ok = hyb["ndcg@10"] > max(kw["ndcg@10"], vec["ndcg@10"]) if kw and vec and hyb else None
    fallbacks = sum(r.get("fallback_queries", 0) for r in (kw, vec, hyb) if r)
    lines += [
        "",
        "| check | figure | target | result |",
        "| --- | --- | --- | --- |",
        f"| keyword nDCG@10 | {kw.get('ndcg@10', float('nan')):.4f} "
        f"| ≥ {KEYWORD_NDCG_TARGET} (published BM25: 0.665–0.687) | {verdict(kw_ok)} |",
        "| hybrid beats both single modes (nDCG@10) "
        f"| hybrid {hyb.get('ndcg@10', float('nan')):.4f} vs keyword "
        f"{kw.get('ndcg@10', float('nan')):.4f}, vector {vec.get('ndcg@10', float('nan')):.4f} "
        f"| hybrid > max | {verdict(hyb_ok)} |",
        f"| every search ran in the mode asked for | {fallbacks} fell back | 0 "
        f"| {verdict(fallbacks == 0)} |",
        "",
        f"The first mode's run indexed the corpus and embedded it ({kw.get('chunks', '?')} "
        f"chunks in {kw.get('index_seconds', 0):.0f} s, "
        f"{kw.get('chunks', 0) / max(kw.get('index_seconds', 0), 1e-9):.1f} chunks/s with "
        "MiniLM in the test server); the others only resynced.  Total for the three runs: "
        f"{res.get('total_seconds', '?')} s.  Published all-MiniLM-L6-v2 on SciFact (test "
        "split): 0.645.",
        "",
        "Commands (each starts its own MiniLM server when `--ollama-host` is not given; "
        "`run_all.py` shares one):",
        "",
        "```",
        *res.get("commands", []),
        "```",
    ]
    return "\n".join(lines)


def render(figures: dict[str, Any], quick: bool) -> dict[str, str]:
    """The RESULTS.md sections for the benchmarks that ran."""
    sections = {"machine": machine_section(figures["machine"], quick or bool(figures.get("quick")))}
    if "ingest" in figures:
        sections["ingest"] = ingest_section(figures["ingest"])
    if "retrieval" in figures:
        sections["retrieval"] = retrieval_section(figures["retrieval"])
    if "vs_llamaindex" in figures:
        from bench.vs_llamaindex import section

        peer = figures["vs_llamaindex"]
        sections["vs_llamaindex"] = section(peer, peer["machine"], peer["command"])
    if "hostile" in figures:
        from bench.hostile_input import markdown

        sections["hostile"] = markdown(figures["hostile"])
    if "reliability" in figures:
        from bench.reliability import section as reliability_section

        sections["reliability"] = reliability_section(figures["reliability"])
    return sections


def write_results(path: Path, sections: dict[str, str]) -> None:
    for name in ("machine", "ingest", "retrieval", "vs_llamaindex", "hostile", "reliability"):
        if name in sections:
            update_results_section(name, sections[name], path)


# ---- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Run the benchmarks; write bench/RESULTS.md.")
    p.add_argument("--quick", action="store_true", help="tiny corpora: checks the plumbing only")
    p.add_argument("--work", help="keep corpora and index homes in this folder")
    p.add_argument("--skip-ingest", action="store_true")
    p.add_argument("--skip-retrieval", action="store_true")
    p.add_argument(
        "--skip-peer", action="store_true", help="skip indexing side by side with LlamaIndex"
    )
    p.add_argument("--skip-hostile", action="store_true", help="skip bench/hostile_input.py")
    p.add_argument("--skip-reliability", action="store_true", help="skip bench/reliability.py")
    p.add_argument("--skip-scale", action="store_true", help="skip bench/scale.py (100k, 1M)")
    p.add_argument("--runner", choices=["cli", "wrapper"], default="cli", help="see ingest.py")
    p.add_argument("--scifact", default=str(SCIFACT_DIR), help="the BEIR SciFact folder")
    p.add_argument("--results", default=str(RESULTS), help="the Markdown file to update")
    p.add_argument(
        "--from-json",
        metavar="FILE",
        help="rewrite RESULTS.md from the figures an earlier run printed; run nothing",
    )
    args = p.parse_args(argv)

    if args.from_json:
        saved: dict[str, Any] = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
        write_results(Path(args.results), render(saved, args.quick))
        log(f"figures from {args.from_json} written to {args.results}")
        return 0

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="ftrag-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {"machine": machine(), "quick": args.quick}
    try:
        if not args.skip_ingest:
            figures["ingest"] = run_ingest(args, work)
        if not args.skip_retrieval:
            figures["retrieval"] = run_retrieval(args, work)
        if not args.skip_peer:
            figures["vs_llamaindex"] = run_vs_llamaindex(args, work)
        if not args.skip_hostile:
            figures["hostile"] = run_hostile(args, work)
        if not args.skip_reliability:
            figures["reliability"] = run_reliability(args, work)
        if not args.skip_scale:  # writes its own `scale` section of RESULTS.md
            cmd = [sys.executable, "bench/scale.py", "--json", *(["--quick"] if args.quick else [])]
            figures["scale"] = run_json([*cmd, "--work", str(work / "scale")])
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    write_results(Path(args.results), render(figures, args.quick))
    print(json.dumps(figures, indent=2))
    log(f"figures written to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
