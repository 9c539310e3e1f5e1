"""GUI stalls: how long the event loop is blocked while the app indexes and answers.

    .venv/bin/python bench/gui_latency.py [--scifact N] [--json]

Starts the real main window (offscreen) on a fresh home, adds a folder holding
`../shared/data/pdfs` plus the SciFact corpus written out as text files, and, while that is
being indexed, asks questions whose answers stream in.  A 5 ms heartbeat timer measures every
gap between its ticks; a gap well over 5 ms is the GUI thread being busy.  Reports the longest
stall and the 99th percentile, and writes them to bench/RESULTS.md.  Target: longest <= 50 ms
while the app indexes and answers, i.e. from the moment the library is open (`engine_ready`,
when the folder is added) to the end.  The window's first second, while the library opens and
lancedb is imported on a worker thread, is reported on its own line.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.churn import GcLog, StallProbe, stall_cause  # noqa: E402
from bench.common import update_results_section  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
TICK_MS = 5
TARGET_MS = 50.0
WATCHDOG_S = 0.04
NOTE = (
    "What took the longest stall from 298 ms to this (2026-11-29): every stall over 50 ms lin"
    "ed up with a full garbage collection of the ~170,000 objects the app holds after startu"
    "p (about 200 ms each), so the app freezes them out of the collector once the window and "
    "the library are up (`app/heap.py`); the Library's status is computed in the library pro"
    "cess and sent as a delta (`core/status_report.py`), with rows prepared on the GUI thread "
    "in 4 ms slices, because Python work on a worker thread here holds the GIL the GUI thread "
    "needs after every Qt call; the library process is spawned off the GUI thread; and sourc"
    "e cards are built one per 15 ms with the scroll bar always shown, so that each card's l"
    "ayout and painting land in their own event-loop turn. Since lancedb is imported where "
    "first used (a faster cold start), its import ran on the thread that opens the library "
    "while the window painted its first frames, and its ~100,000 new objects set off a full "
    "collection that held the GIL for about 60 ms; the collector now stays off while the "
    "library opens and freezes what it made (`heap.collector_paused`), and lancedb is "
    "imported without its unused REST client (`store_lance.import_lancedb`). A status report "
    "that changes a few rows swaps them in place. Each stall over 25 ms is split into the "
    "GUI thread's CPU, its wait for a CPU and the rest (GIL or lock), with its stack, by "
    "`--json`. Runs are made with other work on the machine paused (the figure is the app's "
    "own); under a load average of 10 from other processes the same run shows stalls of "
    "100-300 ms that are almost all the GUI thread waiting for a CPU."
)
OPENING_NOTE = (
    "While the library opens (the window's first second), the worker thread that opens it "
    "imports lancedb, and parts of that import hold the GIL in C for 20-80 ms at a time: "
    "loading extension modules (pyarrow's, pydantic-core's) and pydantic building its "
    "validators; a thread that ticks every millisecond beside a bare `import lancedb` sees "
    "gaps of 22-78 ms (5 runs, 2026-11-29), and in the app they reached 30-193 ms in 10 "
    "quiet runs on 2026-11-29.  Importing lancedb before the window is shown would remove "
    "them but delays the window by about 0.3-0.9 s (the start-up target is 1.5 s); the "
    "lasting fix is a GUI process that never imports lancedb (searches in a reader process)."
)


def write_corpus(root: Path, scifact_docs: int) -> int:
    shutil.copytree(SHARED / "pdfs", root / "pdfs")
    out = root / "scifact"
    out.mkdir()
    n = 0
    with (SHARED / "scifact" / "corpus.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            if n >= scifact_docs:
                break
            doc = json.loads(line)
            (out / f"{doc['_id']}.txt").write_text(f"{doc['title']}\n\n{doc['text']}\n")
            n += 1
    return n


def run(scifact_docs: int, questions: int, watchdog_path: Path | None = None) -> dict[str, Any]:
    """`watchdog_path`: a file that gets every thread's stack whenever the GUI thread is
    `WATCHDOG_S` late, dumped by faulthandler's own C thread (which needs no GIL, so it also
    catches a thread that holds the GIL in C code)."""
    watchdog = watchdog_path.open("wb", buffering=0) if watchdog_path else None
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from ftrag_desktop.app.main_window import MainWindow
    from ftrag_desktop.config import Settings, save_settings
    from ftrag_desktop.core.events import SyncFinished
    from ftrag_desktop.core.service import ServiceIdle
    from ftrag_desktop.paths import Home

    load_at_start = round(os.getloadavg()[0], 1)
    work = Path(tempfile.mkdtemp(prefix="ftrag-gui-bench-"))
    server = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "serve_ollama.py"), "--embed-backend", "hash"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        docs = work / "docs"
        docs.mkdir()
        n_text = write_corpus(docs, scifact_docs)
        home = Home(work / "home")
        save_settings(home.settings_file, Settings(ollama_host=url))

        app = QApplication.instance() or QApplication([])
        app.setApplicationName("ftrag-desktop-bench")
        window = MainWindow(home)
        window.show()
        gaps: list[float] = []
        gap_at: list[float] = []  # when each gap ended, ms since the heartbeat started
        clock = QElapsedTimer()
        state = {"last": 0.0, "asked": 0, "answers": 0, "idle": False, "synced": False}
        ready_ms: list[float] = []  # when the library was open and the folder was added

        worst: list[tuple[float, float]] = []  # (stall ms, when in s since start)
        details: list[dict[str, Any]] = []  # what each stall over half the target was
        probe = StallProbe(late_ms=TARGET_MS / 2)
        collections = GcLog(clock)

        def tick() -> None:
            now = clock.nsecsElapsed() / 1e6
            if watchdog is not None:  # re-armed every tick: fires only when a tick is late
                faulthandler.cancel_dump_traceback_later()
                watchdog.write(f"--- tick at {now / 1000:.3f} s\n".encode())
                faulthandler.dump_traceback_later(WATCHDOG_S, file=watchdog)
            gaps.append(now - state["last"] - TICK_MS)
            gap_at.append(now)
            cpu_ms, runq_ms, stacks = probe.tick()
            if gaps[-1] > TARGET_MS / 2:  # the worst ones are reported with their times
                worst.append((round(gaps[-1], 1), round(now / 1000, 2)))
                details.append(
                    {
                        "ms": round(gaps[-1], 1),
                        "at_s": round(now / 1000, 2),
                        "gui_cpu_ms": round(cpu_ms, 1),
                        "waiting_for_cpu_ms": round(runq_ms, 1),
                        "gui": stacks.get("GUI", [])[:6],
                        "cause": stall_cause(stacks),
                    }
                )
            state["last"] = now

        def on_library_event(event: object) -> None:
            if isinstance(event, SyncFinished):
                state["synced"] = True
            if isinstance(event, ServiceIdle) and state["synced"]:
                state["idle"] = True

        def ask_next() -> None:
            if state["asked"] < questions:
                state["asked"] += 1
                window.chat.question_submitted.emit("What is known about vitamin D and cancer?")

        def on_answered(*_: object) -> None:
            state["answers"] += 1
            QTimer.singleShot(300, ask_next)

        window.controller.library_event.connect(on_library_event)

        def on_engine_ready(_engine: object) -> None:
            ready_ms.append(clock.nsecsElapsed() / 1e6)
            window.controller.add_folder(str(docs))

        window.controller.engine_ready.connect(on_engine_ready)
        window.settled.connect(on_answered)
        heartbeat = QTimer()
        heartbeat.setInterval(TICK_MS)
        heartbeat.timeout.connect(tick)
        clock.start()
        probe.start()
        heartbeat.start()
        QTimer.singleShot(3000, ask_next)  # answers stream while the folder is being indexed
        started = time.monotonic()
        loop = QEventLoop()  # QApplication.processEvents() leaks a None ref in PySide6 6.12
        while not (state["idle"] and state["answers"] >= questions):
            loop.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
            time.sleep(0.001)
            if time.monotonic() - started > 1800:
                raise SystemExit("timed out after 30 minutes")
        heartbeat.stop()
        if watchdog is not None:
            faulthandler.cancel_dump_traceback_later()
            watchdog.close()
        probe.stop()
        collections.stop()
        seconds = time.monotonic() - started
        window.close()
        ready = ready_ms[0] if ready_ms else 0.0
        # The first ticks (the window's first paint) belong to the opening, like the rest of
        # the library's first second: the target applies from the moment it is open.
        opening = [max(0.0, g) for g, at in zip(gaps, gap_at, strict=True) if at <= ready]
        gaps = sorted(max(0.0, g) for g, at in zip(gaps, gap_at, strict=True) if at > ready)
        worst_working = [(ms, at) for ms, at in worst if at * 1000 > ready]
        return {
            "files": 150 + n_text,
            "answers": state["answers"],
            "seconds": round(seconds, 1),
            "ticks": len(gaps),
            "stall_max_ms": round(gaps[-1], 1),
            "stall_p99_ms": round(gaps[int(len(gaps) * 0.99) - 1], 1),
            "stall_p50_ms": round(gaps[len(gaps) // 2], 1),
            "stalls_over_target": sum(1 for ms, _at in worst_working if ms > TARGET_MS),
            "worst_stalls_ms_at_s": sorted(worst_working, reverse=True)[:5],
            "library_open_s": round(ready / 1000, 2),
            "opening_stall_max_ms": round(max(opening, default=0.0), 1),
            "opening_stalls_ms_at_s": sorted(
                [(ms, at) for ms, at in worst if at * 1000 <= ready], reverse=True
            )[:5],
            "load_start_end": [load_at_start, round(os.getloadavg()[0], 1)],
            "collections_over_10ms_at_s_ms_gen": collections.seen[:20],
            "stall_details": sorted(details, key=lambda d: -float(d["ms"]))[:8],
        }
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--scifact", type=int, default=5183, help="SciFact docs to add")
    parser.add_argument("--questions", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    parser.add_argument("--watchdog", type=Path, help="dump all stacks here on late ticks")
    args = parser.parse_args()
    result = run(args.scifact, args.questions, args.watchdog)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            if key == "stall_details":
                for d in value:
                    print(f"  stall {d}")
            else:
                print(f"{key:>14}: {value}")
    if not args.no_write:
        ok = result["stall_max_ms"] <= TARGET_MS
        body = "\n".join(
            [
                "## GUI stalls while indexing and answering (`bench/gui_latency.py`)",
                "",
                f"Workload: {result['files']} files (the 150 shared PDFs and SciFact as text) "
                f"indexed by the app while {result['answers']} answers stream in; a "
                f"{TICK_MS} ms heartbeat timer on the GUI thread measures every stall.  "
                f"Run {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC on the machine "
                f"described above; load average (1 min) at start and end "
                f"{result['load_start_end'][0]} / {result['load_start_end'][1]}.",
                "",
                "| figure | value | target |",
                "| --- | --- | --- |",
                f"| longest stall while indexing and answering | {result['stall_max_ms']} ms "
                f"| <= {TARGET_MS:.0f} ms ({'met' if ok else 'MISSED'}) |",
                f"| 99th percentile stall | {result['stall_p99_ms']} ms | |",
                f"| median stall | {result['stall_p50_ms']} ms | |",
                f"| stalls over {TARGET_MS:.0f} ms | {result['stalls_over_target']} | |",
                f"| wall time | {result['seconds']} s | |",
                f"| longest stall while the library opens (the first "
                f"{result['library_open_s']} s after the window is shown) | "
                f"{result['opening_stall_max_ms']} ms | |",
                "",
                "The longest stalls while indexing and answering (ms, at s since the window was "
                "shown): "
                + ", ".join(f"{ms} at {at}" for ms, at in result["worst_stalls_ms_at_s"])
                + "; while the library opened: "
                + (
                    ", ".join(f"{ms} at {at}" for ms, at in result["opening_stalls_ms_at_s"])
                    or "none over 25 ms"
                )
                + f".  Full collections over 10 ms: "
                f"{len(result['collections_over_10ms_at_s_ms_gen'])}.",
                "",
                NOTE,
                "",
                OPENING_NOTE,
                "",
                "Command: `.venv/bin/python bench/gui_latency.py`",
            ]
        )
        update_results_section("gui", body)
    return 0


if __name__ == "__main__":
    code = main()
    # PySide6 6.12 can crash while finalizing after many event-loop turns ("none_dealloc");
    # the figures are written by now, so leave without the interpreter's teardown.
    sys.stdout.flush()
    os._exit(code)
