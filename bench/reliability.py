"""Crash consistency and bounded growth: SIGKILL campaigns against `ftrag index`, and a thousand
edit-and-resync cycles.

    .venv/bin/python bench/reliability.py [--kills 32] [--text-files 2000] [--cycles 1000]
        [--skip-growth] [--skip-kills] [--skip-hostile] [--quick] [--work DIR] [--json]
        [--no-write]

1. Indexing: `--kills` SIGKILLs of `ftrag index` while it indexes the 150 shared PDFs plus
   `--text-files` generated notes (files deleted, edited, added and renamed between kills;
   every fifth run killed inside a batch commit, every sixth at a random moment of its start,
   the others at a random moment once they have indexed something), then one run to the end.
2. Compaction: 8 SIGKILLs inside compaction (between two tables' compactions, or at a random
   moment inside LanceDB's compaction of the passages table).
3. Embedding-model switch: 6 SIGKILLs while the new model's table is created and filled, with a
   return to the old model in between.
4. Growth: `--cycles` edits of a random one of 20 notes, each followed by a sync of that path
   (as the watcher does), with the default readers' grace period (10 s); then the quiet time
   the watcher's idle compaction needs.  Disk size against a fresh index of the same folder.
5. Hostile input (`bench/hostile_input.py`, skipped with `--skip-hostile`): the hostile corpus
   and the 150 PDFs through `ftrag index`, with the peak memory of the indexing process tree.
   It writes its own `hostile` section; this one repeats the peak memory and the verdict.

Each campaign's index is compared with one clean build of the same folder: what differs is what
a crash lost (it must be nothing).  The scenarios live in tests/crash_harness.py, shared with
tests/test_crash.py and tests/test_growth.py; the Ollama server is the project's test server in
its own process, with the fast `hash` embedder.  Writes the `reliability` section of
bench/RESULTS.md (and the `hostile` one when that part runs).  The tests run the same
scenarios at the same scale (tests/test_crash.py, tests/test_growth.py); this script prints
their figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.common import PDF_DIR, log, ollama_process, update_results_section  # noqa: E402
from tests.crash_harness import (  # noqa: E402
    Growth,
    Outcome,
    Zygote,
    compaction_campaign,
    differences,
    growth_cycles,
    indexing_campaign,
    switch_campaign,
)


def _scenario(name: str, out: Outcome, seconds: float) -> dict[str, Any]:
    lost = differences(out.got, out.clean)
    if set(out.clean.docs) != out.on_disk:
        lost.append("the clean build does not match the folder")
    return {
        "scenario": name,
        "kills": out.kills,
        "mid_run": out.mid_run,
        "at_points": {k: out.at_pause(k) for k in ("commit", "compaction", "switch")},
        "churn": out.churn,
        "documents": len(out.got.docs),
        "chunks": out.got.chunk_rows,
        "lost": lost,
        "seconds": round(seconds, 1),
    }


def _growth(g: Growth) -> dict[str, Any]:
    return {
        "cycles": g.cycles,
        "files": g.files,
        "seconds": round(g.seconds, 1),
        "ms_per_cycle": round(1000 * g.seconds / g.cycles, 1),
        "sizes_kb": [(c, b // 1024) for c, b in g.sizes],
        "before_quiet_kb": g.before_quiet // 1024,
        "final_kb": g.final // 1024,
        "fresh_built_kb": g.fresh_built // 1024,
        "fresh_kb": g.fresh // 1024,
        "ratio": round(g.ratio, 2),
        "compactions": g.compactions,
        "settle_s": round(g.settle_seconds, 1),
        "grace_s": g.grace_s,
        "lost": differences(g.got, g.clean),
    }


def _hostile(quick: bool) -> dict[str, Any]:
    """bench/hostile_input.py's run (its own corpus, server and temporary folder)."""
    from bench.hostile_input import run as hostile_run

    return hostile_run(argparse.Namespace(quick=quick, no_pdfs=False, work=None))


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from bench.run_all import machine

    result: dict[str, Any] = {
        "machine": machine(),
        "quick": args.quick,
        "load_before": os.getloadavg()[0],
        "scenarios": [],
    }
    small: dict[str, dict[str, Any]] = {"compaction": {}, "switch": {}}
    if args.quick:  # a smoke run of the script, not figures
        args.kills, args.text_files, args.cycles = 3, 40, 30
        small = {"compaction": {"notes": 60, "kills": 2}, "switch": {"notes": 100, "kills": (1, 1)}}
    pdfs = None if args.quick else PDF_DIR
    grace = 1.0 if args.quick else None  # None: the product's readers' grace period
    t0 = time.monotonic()
    with ollama_process("hash") as server, Zygote() as zygote:
        scenarios: list[tuple[str, Callable[[Path], Outcome]]] = [
            (
                "indexing",
                lambda w: indexing_campaign(
                    w,
                    server.url,
                    text_files=args.text_files,
                    kills=args.kills,
                    pdf_dir=pdfs,
                    zygote=zygote,
                ),
            ),
            (
                "compaction",
                lambda w: compaction_campaign(w, server.url, zygote=zygote, **small["compaction"]),
            ),
            (
                "model switch",
                lambda w: switch_campaign(w, server.url, zygote=zygote, **small["switch"]),
            ),
        ]
        if not args.skip_kills:
            for name, fn in scenarios:
                log(f"{name}: running")
                started = time.monotonic()
                scenario_dir = work / name.replace(" ", "-")
                scenario_dir.mkdir()
                out = fn(scenario_dir)
                row = _scenario(name, out, time.monotonic() - started)
                log(f"{name}: {row}")
                result["scenarios"].append(row)
        if not args.skip_growth:
            log("growth: running")
            growth_dir = work / "growth"
            growth_dir.mkdir()
            grown = growth_cycles(growth_dir, server.url, cycles=args.cycles, grace_s=grace)
            result["growth"] = _growth(grown)
            log(f"growth: {result['growth']}")
    if not args.skip_hostile:
        log("hostile input: running")
        hostile = _hostile(args.quick)
        result["hostile"] = hostile
        log(f"hostile input: peak {hostile['peak_rss_tree_mb']:.0f} MB")
    result["seconds"] = round(time.monotonic() - t0, 1)
    result["load_after"] = os.getloadavg()[0]
    return result


def _lost(items: list[str]) -> str:
    return "nothing" if not items else "; ".join(items)


def section(result: dict[str, Any]) -> str:
    lines = [
        "## Crash consistency and growth (`bench/reliability.py`)",
        "",
        "SIGKILLs of the real `ftrag index` (each run a process of its own, forked from a warm "
        "interpreter so that restarts cost no imports); after the kills, one run to the end, "
        "then the index is compared with one clean build of the same folder: documents, chunk "
        "count and chunk texts per document, duplicate chunk ids or ordinals, chunks of deleted "
        "or moved files, missing vectors, pending documents, `check_health()`, and whether a "
        "crash was taken for damage.",
        "",
    ]
    if result["scenarios"]:
        lines += [
            "| scenario | kills | still running when killed | inside a named window | "
            "files changed between kills | final index | lost | time |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for s in result["scenarios"]:
            points = ", ".join(f"{n} in {k}" for k, n in s["at_points"].items() if n) or "-"
            churn = ", ".join(f"{n} {k}" for k, n in s["churn"].items()) or "-"
            lines.append(
                f"| {s['scenario']} | {s['kills']} | {s['mid_run']} | {points} | {churn} | "
                f"{s['documents']} documents, {s['chunks']} chunks | {_lost(s['lost'])} | "
                f"{s['seconds']:.0f} s |"
            )
        lines.append("")
    growth = result.get("growth")
    if growth:
        samples = ", ".join(f"{kb} KB at {c}" for c, kb in growth["sizes_kb"]) or "no samples"
        lines += [
            f"Growth: {growth['cycles']} edit-and-resync cycles on {growth['files']} notes, "
            f"each syncing only the edited path as the watcher does ({growth['ms_per_cycle']} ms "
            f"per cycle).  Compaction every 50 commits keeps the folder bounded while the edits "
            f"come (versions younger than the readers' {growth['grace_s']:.0f} s grace period are "
            f"kept): {samples}.  "
            f"Once the library is quiet, the watcher's idle compaction removes them "
            f"({growth['compactions']} compactions, {growth['settle_s']} s after the last edit).",
            "",
            "| figure | value | target |",
            "| --- | --- | --- |",
            f"| index after the last edit | {growth['before_quiet_kb']} KB | |",
            f"| index once quiet | {growth['final_kb']} KB | |",
            f"| fresh index of the same folder (as built / once quiet) | "
            f"{growth['fresh_built_kb']} KB / {growth['fresh_kb']} KB | |",
            f"| ratio (once quiet, to the fresh index once quiet) | {growth['ratio']} | <= 2 "
            f"({'met' if growth['ratio'] <= 2 else 'MISSED'}) |",
            f"| content lost or different | {_lost(growth['lost'])} | nothing |",
            "",
        ]
    hostile = result.get("hostile")
    if hostile:
        peak = hostile["peak_rss_tree_mb"]
        bad = [c["case"] for c in hostile["cases"] if not c["ok"]]
        lines += [
            f"Hostile input (the `hostile` section has each case): "
            f"{sum(c['ok'] for c in hostile['cases'])} of {len(hostile['cases'])} cases ended "
            f"as they must{' (wrong: ' + ', '.join(bad) + ')' if bad else ''}; **peak memory "
            f"of the indexing process tree {peak:.0f} MB** (target under "
            f"{hostile['memory_target_mb']:.0f} MB: "
            f"{'met' if peak < hostile['memory_target_mb'] else 'MISSED'}).",
            "",
        ]
    m = result.get("machine")
    if m:
        lines += [
            f"Measured {m['date']}{' (--quick: not the real figures)' if result['quick'] else ''}"
            f" on {m['cpu']}, {m['cores']} cores, {m['ram']} RAM; {m['os']}; Python "
            f"{m['python']}; commit {m['commit']}.",
        ]
    lines += [
        f"Took {result['seconds']:.0f} s (load average {result['load_before']:.1f} before, "
        f"{result['load_after']:.1f} after, on 2 cores; other engineers' work shared them).",
        "",
        "Command: `.venv/bin/python bench/reliability.py` (the same scenarios and sizes as "
        "tests/test_crash.py and tests/test_growth.py).",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--kills", type=int, default=32)
    parser.add_argument("--text-files", type=int, default=2000)
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--skip-kills", action="store_true")
    parser.add_argument("--skip-growth", action="store_true")
    parser.add_argument("--skip-hostile", action="store_true")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script")
    parser.add_argument("--work", type=Path, help="keep the work files here (default: a temp dir)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="ftrag-reliability-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        result = run(args, work)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        print(section(result))
    if not args.no_write:
        update_results_section("reliability", section(result))
        if "hostile" in result and not args.quick:
            from bench.hostile_input import markdown

            update_results_section("hostile", markdown(result["hostile"]))
    lost = any(s["lost"] for s in result["scenarios"]) or bool(result.get("growth", {}).get("lost"))
    hostile_ok = all(c["ok"] for c in result.get("hostile", {}).get("cases", []))
    return 1 if lost or not hostile_ok else 0


if __name__ == "__main__":
    sys.exit(main())
