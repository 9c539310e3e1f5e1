"""Indexing side by side with LlamaIndex: the same data, the same embedder, the same run.

    python bench/vs_llamaindex.py [--quick] [--no-write] [--json] [--work DIR]
        [--embedders hash,minilm] [--corpora pdfs,scifact|mixed] [--repeats 3]
        [--minilm-repeats 1] [--minilm-scifact 1000] [--pdfs N] [--scifact N] [--from-json FILE]

Ours: `ftrag index DIR --json` in a child process, into a fresh home, then the same command
again (the no-change resync).  The peer: `bench/peer_llamaindex.py` run with the peer's own
interpreter (`.venv-peer/bin/python`, `make .venv-peer`): `SimpleDirectoryReader` with its
default readers, the default `SentenceSplitter`, `LanceDBVectorStore` in a fresh folder; then
the same thing again, since LlamaIndex has no incremental sync.

Both pipelines embed through one Ollama test server (`bench/serve_ollama.py`, a process of its
own), with the same model name (`all-minilm`, which takes no task prefix) and the same batch
size (ours: `embed_batch_size`, 32 texts per `/api/embed` request).  Two embedders:

- `hash`: the fixed-cost embedder, so the figures measure the pipelines themselves;
- `minilm`: the real offline all-MiniLM-L6-v2, what a user sees.

Corpora: the shared PDFs (copied, PDFs only, as `bench/ingest.py` does) and SciFact written as
5,183 text files (`write_beir_files`); with MiniLM only the first 1,000 abstracts
(`--minilm-scifact`), as embedding all of them takes over an hour per pipeline on this machine.
For each corpus and embedder both pipelines run one after the other, in rounds (`--repeats`,
3 by default with the `hash` embedder; MiniLM runs once, its rounds take many minutes), and the
order alternates from one round and case to the next (ours first, then the peer first) so that
neither always gets the warmer caches or the quieter machine; times and memory are the medians
over the rounds.  Every figure is the wall time of the whole command (interpreter start and
imports included) and the peak memory of its process tree sampled from /proc
(`bench.common.run_measured`).  The machine is shared with other engineers' tests, so the
ratios are the figures that matter.

Writes the section `vs_llamaindex` of bench/RESULTS.md (unless `--no-write`) and prints one JSON
document on stdout with `--json`.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    PDF_DIR,
    REPO,
    SCIFACT_DIR,
    ServerProcess,
    child_env,
    log,
    ollama_process,
    run_measured,
    update_results_section,
    write_beir_files,
)
from bench.ingest import copy_pdfs, ftrag_command

SECTION = "vs_llamaindex"
PEER_PYTHON = REPO / ".venv-peer" / "bin" / "python"
PEER_SCRIPT = REPO / "bench" / "peer_llamaindex.py"
NOTES = REPO / "bench" / "vs_llamaindex_notes.md"  # what limits ours: appended to the section
EMBED_MODEL = "all-minilm"  # served by the test server for both backends; no task prefixes
BATCH_SIZE = 32  # ours: Settings.embed_batch_size, the texts of one /api/embed request
FULL_TARGET = 2.0  # full indexing at least 2x faster than the peer
RESYNC_TARGET = 20.0  # a no-change resync at least 20x faster than the peer's re-run
EMBEDDERS = ("hash", "minilm")
SCIFACT_DOCS = 5183
CORPORA = ("pdfs", "scifact", "mixed")  # mixed: some PDFs and some abstracts in one folder
DEFAULT_CORPORA = ["pdfs", "scifact"]
# A smoke test: both readers in one folder (4 runs, not 8), the fixed-cost embedder only.
QUICK = {"pdfs": 2, "scifact": 20, "embedders": "hash", "corpora": "mixed"}
LABELS = {
    "pdfs": "shared PDFs",
    "scifact": "SciFact abstracts (.txt)",
    "mixed": "PDFs and abstracts",
}


# ---- one run of each pipeline ---------------------------------------------------------------


def _fail(what: str, result: subprocess.CompletedProcess[str]) -> RuntimeError:
    return RuntimeError(
        f"{what} failed with exit code {result.returncode}:\n{result.stderr[-4000:]}"
    )


def _last_json(result: subprocess.CompletedProcess[str], what: str) -> dict[str, Any]:
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise _fail(what, result)
    doc: dict[str, Any] = json.loads(lines[-1])
    return doc


def fresh_home(home: Path) -> None:
    """A new ftrag home whose settings name the shared embedding model (the rest default)."""
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    settings = {"schema_version": 2, "embed_model": EMBED_MODEL, "embed_batch_size": BATCH_SIZE}
    (home / "settings.json").write_text(json.dumps(settings), encoding="utf-8")


def run_ours(
    home: Path, server: ServerProcess, folder: Path, *, count: bool = True
) -> dict[str, Any]:
    """`ftrag index FOLDER` once (in `home`, as it is): wall time, memory, what it did.

    With `count`, `ftrag status` then counts the chunks and the vectors still missing (after
    the sync, so not timed).
    """
    before = server.embed_count()
    cmd = ftrag_command(
        "cli", ["--home", str(home), "--ollama-host", server.url, "index", str(folder), "--json"]
    )
    result, wall, mem = run_measured(cmd)
    load = round(os.getloadavg()[0], 1)  # how busy the shared machine was: context for noise
    summary = _last_json(result, "ftrag index")
    embedded = server.embed_count() - before
    # On a fresh index every chunk written is in the table; `status` checks it when asked.
    status: dict[str, Any] = {"chunks": summary["chunks_written"], "vectors_missing": None}
    if count:
        status_cmd = ftrag_command(
            "cli", ["--home", str(home), "--ollama-host", server.url, "status", "--json"]
        )
        status_run = subprocess.run(
            status_cmd, capture_output=True, text=True, env=child_env(), check=False
        )
        status = _last_json(status_run, "ftrag status")
    files = summary["indexed"] + summary["failed"] + summary["unchanged"] + summary["touched"]
    return {
        "files": files,
        "indexed": summary["indexed"],
        "failed": summary["failed"],
        "unchanged": summary["unchanged"],
        "failures": [f"{f['path']}: {f['reason']}"[:200] for f in summary["failures"]],
        "chunks": status["chunks"],
        "vectors_missing": status.get("vectors_missing"),
        "embedded_at_server": embedded,
        "seconds": round(wall, 2),
        "sync_seconds": round(summary["seconds"], 2),
        "load_avg_1m": load,
        **mem,
    }


def run_peer(peer_python: Path, db: Path, server: ServerProcess, folder: Path) -> dict[str, Any]:
    """The LlamaIndex pipeline once, into the LanceDB folder `db` (as it is)."""
    before = server.embed_count()
    cmd = [
        str(peer_python),
        str(PEER_SCRIPT),
        str(folder),
        *("--db", str(db), "--ollama-host", server.url),
        *("--model", EMBED_MODEL, "--batch-size", str(BATCH_SIZE)),
    ]
    result, wall, mem = run_measured(cmd)
    load = round(os.getloadavg()[0], 1)
    out = _last_json(result, "the LlamaIndex peer")
    return {
        "files": out["files"],
        "indexed": out["files_loaded"],
        "failed": out["files_failed"],
        "failures": out["failures"],
        "documents": out["documents"],
        "empty_documents": out["empty_documents"],
        "chunks": out["chunks"],
        "rows_in_table": out["rows_in_table"],
        "embedded_at_server": server.embed_count() - before,
        "seconds": round(wall, 2),
        "pipeline_seconds": out["seconds"],
        "import_seconds": out["import_seconds"],
        "load_seconds": out["load_seconds"],
        "index_seconds": out["index_seconds"],
        "versions": out["versions"],
        "load_avg_1m": load,
        **mem,
    }


def rates(r: dict[str, Any], files: int) -> dict[str, Any]:
    r["files_per_s"] = round(files / r["seconds"], 2)
    r["chunks_per_s"] = round(r["chunks"] / r["seconds"], 2)
    return r


def run_round(
    rnd: int,
    tag: str,
    folder: Path,
    files: int,
    work: Path,
    server: ServerProcess,
    peer_python: Path,
    order: list[str],
    quick: bool,
) -> dict[str, Any]:
    """Both pipelines once, in `order`: full into a fresh home or folder, then again."""
    home, db = work / f"home-{tag}", work / f"peer-{tag}"
    fresh_home(home)
    shutil.rmtree(db, ignore_errors=True)
    full: dict[str, dict[str, Any]] = {}

    def one(who: str, first: bool) -> dict[str, Any]:
        log(f"[{tag} round {rnd + 1}] {who} {'full' if first else 'again'} ...")
        if who == "ours":
            r = run_ours(home, server, folder, count=first and not quick)
            if not first:  # a resync changes no chunk: the count is the full run's
                r["chunks"], r["vectors_missing"] = (
                    full["ours"]["chunks"],
                    full["ours"]["vectors_missing"],
                )
        else:
            r = run_peer(peer_python, db, server, folder)
        log(f"[{tag} round {rnd + 1}] {who}: {r['seconds']:.1f} s, {r['chunks']} chunks")
        return rates(r, files)

    for who in order:
        full[who] = one(who, True)
    again = {who: one(who, False) for who in order}
    full["ours"]["resync"], full["peer"]["rerun"] = again["ours"], again["peer"]
    return {"order": order, "ours": full["ours"], "peer": full["peer"]}


TIMED = ("seconds", "peak_rss_tree_mb", "peak_rss_main_mb", "peak_rss_worker_mb")


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _medians(runs: list[dict[str, Any]], files: int) -> dict[str, Any]:
    """The first run's counts with the median time and memory over all runs."""
    out = dict(runs[0])
    for key in TIMED:
        out[key] = round(_median([r[key] for r in runs]), 2)
    return rates(out, files)


def run_case(
    case: int,
    corpus: str,
    embedder: str,
    folder: Path,
    files: int,
    work: Path,
    server: ServerProcess,
    peer_python: Path,
    rounds: int = 1,
    quick: bool = False,
) -> dict[str, Any]:
    """Both pipelines on one corpus with one embedder, `rounds` times, the order alternating.

    Times and memory are medians over the rounds; the ratios are those of the medians.
    """
    tag = f"{corpus}-{embedder}"
    done: list[dict[str, Any]] = []
    for rnd in range(rounds):
        order = ["ours", "peer"] if (case + rnd) % 2 == 0 else ["peer", "ours"]
        done.append(run_round(rnd, tag, folder, files, work, server, peer_python, order, quick))
    ours = _medians([d["ours"] for d in done], files)
    peer = _medians([d["peer"] for d in done], files)
    ours["resync"] = _medians([d["ours"]["resync"] for d in done], files)
    peer["rerun"] = _medians([d["peer"]["rerun"] for d in done], files)
    full_ratio = peer["seconds"] / ours["seconds"]
    resync_ratio = peer["rerun"]["seconds"] / ours["resync"]["seconds"]
    return {
        "corpus": corpus,
        "embedder": embedder,
        "files": files,
        "rounds": len(done),
        "orders": [d["order"] for d in done],
        "ours": ours,
        "peer": peer,
        "full_speedup": round(full_ratio, 2),
        "resync_speedup": round(resync_ratio, 1),
        "round_full_speedups": [
            round(d["peer"]["seconds"] / d["ours"]["seconds"], 2) for d in done
        ],
        "round_resync_speedups": [
            round(d["peer"]["rerun"]["seconds"] / d["ours"]["resync"]["seconds"], 1) for d in done
        ],
        "full_ok": full_ratio >= FULL_TARGET,
        "resync_ok": resync_ratio >= RESYNC_TARGET,
        # A resync must not parse or embed anything; one probe text at a start is allowed.
        "resync_clean": all(
            d["ours"]["resync"]["indexed"] == 0 and d["ours"]["resync"]["embedded_at_server"] <= 1
            for d in done
        ),
        "round_figures": done,
    }


# ---- the whole comparison -------------------------------------------------------------------


def prepare(corpus: str, args: argparse.Namespace, work: Path) -> tuple[Path, int]:
    """The corpus folder (written once, then left alone) and its number of files."""
    folder = work / f"corpus-{corpus}"
    shutil.rmtree(folder, ignore_errors=True)
    n = 0
    if corpus in ("pdfs", "mixed"):
        n += copy_pdfs(Path(args.pdf_dir), folder, args.pdfs)
    if corpus in ("scifact", "mixed"):
        n += write_beir_files(Path(args.scifact_corpus), folder, limit=args.scifact)
    return folder, n


def run(args: argparse.Namespace) -> dict[str, Any]:
    peer_python = Path(args.peer_python)
    if not peer_python.exists():
        raise SystemExit(
            f"The LlamaIndex peer's interpreter {peer_python} does not exist: "
            "run `make .venv-peer` first."
        )
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="ftrag-vs-llamaindex-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results: dict[str, Any] = {
        "quick": args.quick,
        "embed_model": EMBED_MODEL,
        "batch_size": BATCH_SIZE,
        "peer_versions": peer_versions(peer_python),
        "cases": [],
    }
    try:
        folders = {c: prepare(c, args, work) for c in args.corpora}
        case = 0
        for embedder in args.embedders:
            with ollama_process(embedder) as server:
                for corpus in args.corpora:
                    folder, files = folders[corpus]
                    subset = args.minilm_scifact
                    if embedder == "minilm" and corpus == "scifact" and 0 < subset < files:
                        # The whole corpus takes over an hour per pipeline with MiniLM here.
                        folder = work / f"corpus-scifact-{subset}"
                        shutil.rmtree(folder, ignore_errors=True)
                        files = write_beir_files(Path(args.scifact_corpus), folder, limit=subset)
                    results["cases"].append(
                        run_case(
                            case,
                            corpus,
                            embedder,
                            folder,
                            files,
                            work,
                            server,
                            peer_python,
                            args.repeats if embedder == "hash" else args.minilm_repeats,
                            args.quick,
                        )
                    )
                    case += 1
                    if args.progress_json:
                        Path(args.progress_json).write_text(json.dumps(results), "utf-8")
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    results["total_seconds"] = round(time.monotonic() - started, 1)
    return results


def peer_versions(peer_python: Path) -> dict[str, str]:
    result = subprocess.run(
        [str(peer_python), str(PEER_SCRIPT), "--versions"],
        capture_output=True,
        text=True,
        check=False,
    )
    return _last_json(result, "the LlamaIndex peer (--versions)")


# ---- RESULTS.md -----------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "**pass**" if ok else "**FAIL**"


def _mb(r: dict[str, Any]) -> str:
    return f"{r['peak_rss_tree_mb']:.0f} MB"


def section(res: dict[str, Any], machine: dict[str, str], command: str) -> str:
    """The Markdown section `vs_llamaindex` of RESULTS.md."""
    v = res["peer_versions"]
    lines = [
        "## Indexing side by side with LlamaIndex (`bench/vs_llamaindex.py`)",
        "",
        f"- Date: {machine['date']}"
        + (" (**--quick run: not the real figures**)" if res.get("quick") else ""),
        f"- Machine: {machine['cpu']}, {machine['cores']} cores, RAM {machine['ram']}; "
        f"{machine['os']}; Python {machine['python']}; code {machine['commit']}",
        "- Peer: "
        + ", ".join(f"{k} {val}" for k, val in v.items())
        + " (`requirements/peer-llamaindex.txt`, in `.venv-peer`)",
        f"- Ours: {machine['packages']}",
        "",
        "Ours: `ftrag index DIR --json` in a fresh home, then the same command again (the",
        "no-change resync).  The peer: LlamaIndex's usual local pipeline",
        "(`bench/peer_llamaindex.py`): `SimpleDirectoryReader(DIR, recursive=True)` with its",
        "default readers, `VectorStoreIndex.from_documents` with the default `SentenceSplitter`,",
        "`LanceDBVectorStore` in a fresh folder; then the same again, because LlamaIndex has no",
        "incremental sync (its re-run re-reads and re-embeds everything and appends every chunk",
        "a second time to the table).  Both embed through one Ollama test server process, model",
        f"`{res['embed_model']}`, {res['batch_size']} texts per `/api/embed` request: `hash` is",
        "the fixed-cost embedder (pipeline overhead), `minilm` the real offline all-MiniLM-L6-v2",
        "(what a user sees).  Seconds are wall time of the whole command, interpreter start and",
        "imports included; peak RSS is the process tree's (parse workers included).  Each case",
        "runs in rounds whose order alternates (ours first, then the peer first); seconds and",
        "memory are medians over the rounds.  Files/s counts every file of the folder (so the",
        "speed-up is the ratio of wall times on the same files); chunk counts differ because",
        "the splitters differ (ours: 1,000 characters with 150 overlap; the peer's default",
        "`SentenceSplitter`: 1,024 tokens with 200 overlap, and one node per PDF page at least).",
        "",
        "| corpus | embedder | pipeline | files (read / failed) | chunks | seconds | files/s "
        "| chunks/s | peak RSS | re-run seconds | re-run peak RSS | rounds |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in res["cases"]:
        for who, label in (("ours", "ftrag"), ("peer", "LlamaIndex")):
            r = c[who]
            again = r["resync"] if who == "ours" else r["rerun"]
            lines.append(
                f"| {_label(c)} | {c['embedder']} | {label} | {c['files']} "
                f"({r['indexed']} / {r['failed']}) | {r['chunks']} | {r['seconds']:.1f} "
                f"| {r['files_per_s']:.1f} | {r['chunks_per_s']:.1f} | {_mb(r)} "
                f"| {again['seconds']:.1f} | {_mb(again)} | {c.get('rounds', 1)} |"
            )
    lines += [
        "",
        "| corpus | embedder | full indexing: ours vs peer | target | no-change resync: "
        "ours vs peer's re-run | target | per round (full; resync) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in res["cases"]:
        o, p = c["ours"], c["peer"]
        lines.append(
            f"| {_label(c)} | {c['embedder']} | {c['full_speedup']:.2f}× "
            f"({o['seconds']:.1f} s vs {p['seconds']:.1f} s) | ≥ {FULL_TARGET:.0f}× "
            f"{_verdict(c['full_ok'])} | {c['resync_speedup']:.1f}× "
            f"({o['resync']['seconds']:.1f} s vs {p['rerun']['seconds']:.1f} s) "
            f"| ≥ {RESYNC_TARGET:.0f}× {_verdict(c['resync_ok'] and c['resync_clean'])} "
            f"| {_rounds(c)} |"
        )
    lines += ["", "What each pipeline embedded (texts counted at the server):", ""]
    for c in res["cases"]:
        o, p = c["ours"], c["peer"]
        lines.append(
            f"- {_label(c)}, {c['embedder']}: ours {o['embedded_at_server']} "
            f"(resync {o['resync']['embedded_at_server']}, indexed "
            f"{o['resync']['indexed']}); the peer {p['embedded_at_server']} "
            f"(re-run {p['rerun']['embedded_at_server']}, its table then holding "
            f"{p['rerun']['rows_in_table']} rows for {p['chunks']} chunks); the peer's "
            f"imports took {p['import_seconds']:.1f} s of its {p['seconds']:.1f} s; "
            f"{p['empty_documents']} empty documents stored."
            + (
                f"  **Our full run ended with {o['vectors_missing']} chunks without a vector** "
                "(an embedding request timed out; see the notes), filled in by the resync."
                if o.get("vectors_missing")
                else ""
            )
        )
    loads = [(c, _loads(c)) for c in res["cases"]]
    if any(text for _, text in loads):
        lines += ["", "Load average (1 min) at the end of each run, in the order run:", ""]
        lines += [f"- {_label(c)}, {c['embedder']}: {text}" for c, text in loads if text]
    lines += ["", f"Total {res['total_seconds']:.0f} s.  Command:", "", "```", command, "```"]
    if NOTES.exists():  # the analysis of the figures, kept by hand beside the script
        lines += ["", NOTES.read_text(encoding="utf-8").strip()]
    return "\n".join(lines)


def _loads(c: dict[str, Any]) -> str:
    rounds = []
    for d in c.get("round_figures", []):
        runs = [(w, d[w]) for w in d["order"]]
        runs += [(w, d[w]["resync" if w == "ours" else "rerun"]) for w in d["order"]]
        if all("load_avg_1m" in r for _, r in runs):
            rounds.append(", ".join(f"{w} {r['load_avg_1m']:.1f}" for w, r in runs))
    return "; ".join(rounds)


def _label(c: dict[str, Any]) -> str:
    if c["corpus"] == "scifact" and c["files"] < SCIFACT_DOCS:
        return f"SciFact, first {c['files']:,} abstracts (.txt)"
    return LABELS[c["corpus"]]


def _rounds(c: dict[str, Any]) -> str:
    full = ", ".join(f"{x:.2f}" for x in c.get("round_full_speedups", [c["full_speedup"]]))
    resync = ", ".join(f"{x:.1f}" for x in c.get("round_resync_speedups", [c["resync_speedup"]]))
    return f"{full}; {resync}"


# ---- main -----------------------------------------------------------------------------------


def _csv(allowed: tuple[str, ...]) -> Any:
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in allowed]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)}")
        return items

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Indexing side by side with LlamaIndex.")
    p.add_argument("--quick", action="store_true", help=f"a smoke test: {QUICK}")
    p.add_argument("--no-write", action="store_true", help="leave bench/RESULTS.md alone")
    p.add_argument(
        "--section",
        default=SECTION,
        help="the RESULTS.md section to write (a partial re-run beside the full one)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    p.add_argument("--work", help="keep the corpora, homes and peer tables in this folder")
    p.add_argument("--embedders", type=_csv(EMBEDDERS), default=None, help="hash,minilm")
    p.add_argument(
        "--corpora", type=_csv(CORPORA), default=None, help="pdfs,scifact (default) or mixed"
    )
    p.add_argument(
        "--repeats", type=int, default=None, help="rounds with the hash embedder (default 3)"
    )
    p.add_argument(
        "--minilm-repeats", type=int, default=1, help="rounds with MiniLM (default 1: slow)"
    )
    p.add_argument(
        "--minilm-scifact",
        type=int,
        default=1000,
        help="with MiniLM, only the first N abstracts of SciFact (default 1000; 0: all)",
    )
    p.add_argument("--pdfs", type=int, default=None, help="only the first N PDFs")
    p.add_argument("--scifact", type=int, default=None, help="only the first N abstracts")
    p.add_argument("--pdf-dir", default=str(PDF_DIR))
    p.add_argument("--scifact-corpus", default=str(SCIFACT_DIR / "corpus.jsonl"))
    p.add_argument("--peer-python", default=str(PEER_PYTHON), help="the peer's interpreter")
    p.add_argument("--progress-json", help="write the figures so far here after each case")
    p.add_argument(
        "--from-json", metavar="FILE", help="write RESULTS.md from an earlier --json; run nothing"
    )
    return p


def shown_command(argv: list[str]) -> str:
    """The command as RESULTS.md shows it: without output options and scratch folders."""
    keep: list[str] = []
    skip_value = False
    for a in argv:
        if skip_value:
            skip_value = False
        elif a in ("--work", "--progress-json"):
            skip_value = True
        elif a not in ("--json", "--no-write") and not a.startswith(("--work=", "--progress")):
            keep.append(a)
    return shlex.join([".venv/bin/python", "bench/vs_llamaindex.py", *keep])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if args.quick:
        args.pdfs = QUICK["pdfs"] if args.pdfs is None else args.pdfs
        args.scifact = QUICK["scifact"] if args.scifact is None else args.scifact
        if args.embedders is None:
            args.embedders = str(QUICK["embedders"]).split(",")
        if args.corpora is None:
            args.corpora = str(QUICK["corpora"]).split(",")
        if args.repeats is None:
            args.repeats = 1
    if args.repeats is None:
        args.repeats = 3
    args.embedders = args.embedders or list(EMBEDDERS)
    args.corpora = args.corpora or list(DEFAULT_CORPORA)

    from bench.run_all import machine  # the same machine description as the other sections

    if args.from_json:
        res: dict[str, Any] = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
    else:
        res = run(args)
        res["machine"] = machine()
        res["command"] = shown_command(argv)
    if not args.json:
        print(section(res, res["machine"], res["command"]))
    else:
        print(json.dumps(res))
    if not args.no_write:
        body = section(res, res["machine"], res["command"])
        if args.section != SECTION:  # a partial re-run: say so in its title
            embedders = ", ".join(res.get("embedders") or args.embedders)
            body = body.replace(
                "## Indexing side by side with LlamaIndex",
                f"## Indexing side by side with LlamaIndex, re-run with {embedders} only",
                1,
            )
        update_results_section(args.section, body)
        log("written to bench/RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
