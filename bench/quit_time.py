"""Quit time: from the user quitting (SIGTERM, as a logout sends) to every app process gone.

    .venv/bin/python bench/quit_time.py [--runs 5] [--scifact N] [--json] [--no-write]

Starts the real app (`python -m ftrag_desktop`, offscreen) on a home whose settings already
watch a big folder (the 150 shared PDFs plus SciFact as text files), waits until indexing is
under way, and quits it: SIGTERM closes the window as the user would.  Measures the time until
the app process has exited and until its library process and parse workers are gone too.  Each
run quits at a different point of the sync (which resumes on the next start).
Target: <= 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.common import ollama_process, process_tree, update_results_section  # noqa: E402
from bench.gui_latency import write_corpus  # noqa: E402

TARGET_S = 2.0


def descendants(pid: int) -> set[int]:
    """Every process below `pid`."""
    return set(process_tree(pid)) - {pid}


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def indexed_count(home: Path) -> int:
    from ftrag_desktop.core.store import Store

    store = Store(home / "index", read_only=True)
    try:  # pending rows are written when a sync starts: count the finished ones
        return sum(1 for rec in store.documents() if rec.status != "pending")
    finally:
        store.close()


def _count_or_zero(home: Path) -> int:
    try:
        return indexed_count(home)
    except Exception:  # the index is being created: nothing in it yet
        return 0


def finish_and_check(home: Path, url: str, docs: Path, total: int) -> dict[str, int]:
    """After the quits: one `ftrag index` run completes the sync; nothing may be missing."""
    proc = subprocess.run(
        [sys.executable, "-m", "ftrag_desktop.cli", "--home", str(home), "--ollama-host", url,
         "index", str(docs), "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"ftrag index after the quits failed:\n{proc.stderr[-3000:]}")
    from ftrag_desktop.core.store import Store

    store = Store(home / "index", read_only=True)
    try:
        records = store.documents()
    finally:
        store.close()
    statuses: dict[str, int] = {}
    for rec in records:
        state = str(getattr(rec.status, "value", rec.status))
        statuses[state] = statuses.get(state, 0) + 1
    return {"documents": len(records), "files": total, **statuses}


def one_run(home: Path, url: str, quit_at: int, total: int) -> dict[str, float]:
    """Start the app, wait until `quit_at` documents are in the index (the sync is under way
    and not finished), and quit it."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", OLLAMA_HOST=url)
    app = subprocess.Popen(
        [sys.executable, "-m", "ftrag_desktop", "--home", str(home)],
        cwd=REPO,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        # This start's own sync must be under way: the index has grown since the launch.
        at_launch = _count_or_zero(home) if (home / "index").exists() else 0
        before = 0
        while time.monotonic() < deadline:
            time.sleep(0.5)
            before = _count_or_zero(home) if (home / "index").exists() else 0
            if before >= max(quit_at, at_launch + 1):
                break
        if before >= total - 10:  # a few files of the folder are not documents
            raise SystemExit(f"indexing finished before the quit ({before} of {total})")
        procs = descendants(app.pid)
        t0 = time.monotonic()
        app.send_signal(signal.SIGTERM)
        code = app.wait(30)
        app_s = time.monotonic() - t0
        while any(alive(p) for p in procs) and time.monotonic() - t0 < 30:
            time.sleep(0.005)
        all_s = time.monotonic() - t0
        stderr = app.stderr.read() if app.stderr else ""
        if code != 0 or "Traceback" in stderr:
            raise SystemExit(f"the app exited with {code}:\n{stderr}")
        return {
            "app_exit_s": app_s,
            "all_gone_s": all_s,
            "processes": len(procs),
            "indexed_before": before,
        }
    finally:
        if app.poll() is None:
            app.kill()


def run(runs: int, scifact_docs: int) -> dict[str, object]:
    from ftrag_desktop.config import Settings, save_settings

    work = Path(tempfile.mkdtemp(prefix="ftrag-quit-bench-"))
    try:
        with ollama_process("hash") as server:
            docs = work / "docs"
            docs.mkdir()
            n_text = write_corpus(docs, scifact_docs)
            home = work / "home"
            home.mkdir()
            save_settings(
                home / "settings.json",
                Settings(ollama_host=server.url, watched_folders=[str(docs)]),
            )
            total = sum(1 for p in docs.rglob("*") if p.is_file())
            # Quit at evenly spaced points of the sync; each start resumes where the last
            # quit left it.
            results = [
                one_run(home, server.url, total * (i + 1) // (runs + 2), total) for i in range(runs)
            ]
            final = finish_and_check(home, server.url, docs, total)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    worst = max(r["all_gone_s"] for r in results)
    return {
        "files": 150 + n_text,  # the PDFs and SciFact texts (plus the suites' notes)
        "runs": runs,
        "app_exit_max_s": round(max(r["app_exit_s"] for r in results), 2),
        "all_gone_max_s": round(worst, 2),
        "all_gone_median_s": round(sorted(r["all_gone_s"] for r in results)[runs // 2], 2),
        "processes_per_run": max(int(r["processes"]) for r in results),
        "indexed_at_quit": [int(r["indexed_before"]) for r in results],
        "after_quits": final,
    }


def _final_text(final: dict[str, int]) -> str:
    states = ", ".join(f"{n} {k}" for k, n in final.items() if k not in ("documents", "files"))
    return f"{final['documents']} documents for {final['files']} files ({states})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scifact", type=int, default=5183, help="SciFact docs to add")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    result = run(args.runs, args.scifact)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>18}: {value}")
    if not args.no_write:
        worst = float(result["all_gone_max_s"])  # type: ignore[arg-type]
        body = "\n".join(
            [
                "## Quit time while indexing (`bench/quit_time.py`)",
                "",
                f"The app is quit (SIGTERM, which closes the window as the user would) "
                f"{result['runs']} times while it indexes {result['files']} files, each time "
                f"further into the sync (documents indexed at each quit: "
                f"{result['indexed_at_quit']}); each start resumes where the last quit "
                f"left it.  Then one `ftrag index` run completes the sync: "
                f"{_final_text(result['after_quits'])}.",  # type: ignore[arg-type]
                "",
                "| figure | value | target |",
                "| --- | --- | --- |",
                f"| app process exited, worst | {result['app_exit_max_s']} s | |",
                f"| every app process gone (library, parse workers), worst | {worst} s | "
                f"<= {TARGET_S:.0f} s ({'met' if worst <= TARGET_S else 'MISSED'}) |",
                f"| every app process gone, median | {result['all_gone_median_s']} s | |",
                "",
                "Command: `.venv/bin/python bench/quit_time.py`",
            ]
        )
        update_results_section("quit", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
