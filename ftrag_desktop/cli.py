"""`ftrag`: the command-line front end over the same core as the app (no Qt here).

Exit codes: 0 on success (even when some files failed: they are reported), 1 for an error the
user can fix (message on stderr, no traceback), 2 for usage errors, 130 after Ctrl-C.
`--json` on index, search, ask and status prints exactly one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ftrag_desktop import __version__
from ftrag_desktop.core.events import (
    EmbeddingProgress,
    FileFailed,
    FileIndexed,
    FileRemoved,
    FileRenamed,
    Notice,
    SyncEvent,
    SyncFinished,
    SyncProgress,
    SyncSummary,
)
from ftrag_desktop.core.types import Hit
from ftrag_desktop.errors import UserError
from ftrag_desktop.logs import configure_logging
from ftrag_desktop.paths import Home

if TYPE_CHECKING:
    from ftrag_desktop.core.answer import AnswerResult, Source
    from ftrag_desktop.core.engine import Engine

# The engine (LanceDB, pyarrow, the ollama client) is imported only when a command runs:
# parse workers re-import this module when they start, and should start light.


def _source_json(src: Source) -> dict[str, Any]:
    return {"number": src.number, "cited": src.cited, **src.hit.to_dict()}


def _label(hit: Hit) -> str:
    where = hit.location()
    return f"{hit.path}" + (f" ({where})" if where else "")


class _Printer:
    """Human-readable progress on stderr, so stdout stays clean for --json."""

    def __init__(self, quiet: bool, out: TextIO = sys.stderr) -> None:
        self.quiet = quiet
        self.out = out
        self._last_progress = 0.0

    def event(self, ev: SyncEvent) -> None:
        if isinstance(ev, FileFailed):
            print(f"failed   {ev.path}: {ev.reason}", file=self.out)
        elif self.quiet:
            return
        elif isinstance(ev, FileIndexed):
            print(f"indexed  {ev.path} ({ev.chunks} chunks)", file=self.out)
        elif isinstance(ev, FileRemoved):
            print(f"removed  {ev.path}", file=self.out)
        elif isinstance(ev, FileRenamed):
            print(f"renamed  {ev.old_path} -> {ev.new_path}", file=self.out)
        elif isinstance(ev, SyncProgress) and ev.total >= 20 and ev.done % 20 == 0:
            eta = f", about {ev.eta_s:.0f} s left" if ev.eta_s is not None else ""
            print(
                f"progress {ev.done}/{ev.total} files, {ev.files_per_s:.1f} files/s{eta}",
                file=self.out,
            )
        elif isinstance(ev, EmbeddingProgress):
            print(f"vectors  {ev.done}/{ev.total} ({ev.model})", file=self.out)
        elif isinstance(ev, Notice):
            print(f"note     {ev.text}", file=self.out)


def _summary_line(s: SyncSummary) -> str:
    parts = [
        f"{s.indexed} indexed",
        f"{s.unchanged} unchanged",
        f"{s.removed} removed",
        f"{s.renamed} renamed",
        f"{s.failed} failed",
    ]
    tail = " (cancelled: run again to finish)" if s.cancelled else ""
    return f"{', '.join(parts)} in {s.seconds:.1f} s{tail}"


def cmd_index(engine: Engine, args: argparse.Namespace) -> int:
    printer = _Printer(quiet=args.json or args.quiet)
    summary: SyncSummary | None = None
    cancel = threading.Event()
    with _first_ctrl_c_cancels(cancel):
        for ev in engine.sync(Path(args.path), retry_failed=args.retry_failed, cancel=cancel):
            printer.event(ev)
            if isinstance(ev, SyncFinished):
                summary = ev.summary
    assert summary is not None
    if args.json:
        doc = asdict(summary)
        doc["failures"] = [{"path": p, "reason": r} for p, r in summary.failures]
        _emit(doc)
    else:
        print(_summary_line(summary))
        if summary.embedding != "semantic":
            print(f"Search: {summary.embedding}")
    return 130 if summary.cancelled else 0


@contextlib.contextmanager
def _first_ctrl_c_cancels(cancel: threading.Event) -> Iterator[None]:
    """Ctrl-C stops the sync cleanly after the current batch; a second Ctrl-C aborts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigint(signum: int, frame: object) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        print("\nStopping after the current files (Ctrl-C again to abort)…", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def cmd_watch(engine: Engine, args: argparse.Namespace) -> int:
    printer = _Printer(quiet=args.quiet)
    cancel = threading.Event()

    def on_event(ev: SyncEvent) -> None:
        printer.event(ev)
        if isinstance(ev, SyncFinished) and (ev.summary.indexed or ev.summary.removed):
            print(_summary_line(ev.summary), file=sys.stderr)

    def ready() -> None:
        print(f"Watching {', '.join(args.paths)} (Ctrl-C to stop)", file=sys.stderr)

    try:
        engine.watch([Path(p) for p in args.paths], on_event, cancel, on_ready=ready)
    except KeyboardInterrupt:
        cancel.set()
        print("Stopped.", file=sys.stderr)
    return 0


def cmd_search(engine: Engine, args: argparse.Namespace) -> int:
    result = engine.search(args.query, k=args.k, mode=args.mode)
    if args.json:
        _emit(
            {
                "query": args.query,
                "mode": result.mode,
                "note": result.note,
                "hits": [h.to_dict() for h in result.hits],
            }
        )
        return 0
    if result.note:
        print(f"({result.note})", file=sys.stderr)
    if not result.hits:
        print("No matches.")
    for i, hit in enumerate(result.hits, 1):
        snippet = " ".join(hit.text.split())[:240]
        print(f"[{i}] {_label(hit)}  score {hit.score:.3f}\n    {snippet}")
    return 0


def cmd_ask(engine: Engine, args: argparse.Namespace) -> int:
    from ftrag_desktop.core.answer import AnswerCompleted, AnswerToken

    result: AnswerResult | None = None
    cancel = threading.Event()
    try:
        for ev in engine.ask(
            args.question, model=args.model, rag=not args.no_rag, k=args.k, cancel=cancel
        ):
            if isinstance(ev, AnswerToken) and not args.json:
                print(ev.text, end="", flush=True)
            elif isinstance(ev, AnswerCompleted):
                result = ev.result
    except KeyboardInterrupt:
        cancel.set()
        print("\nStopped.", file=sys.stderr)
        return 130
    assert result is not None
    conv = engine.conversations.new(args.question[:60], result.model, result.rag)
    conv.add_exchange(result)
    engine.conversations.save(conv)
    if args.json:
        stats = result.stats
        _emit(
            {
                "question": result.question,
                "answer": result.answer,
                "model": result.model,
                "rag": result.rag,
                "cited": [_source_json(s) for s in result.cited],
                "retrieved": [_source_json(s) for s in result.retrieved],
                "search_mode": result.search_mode,
                "note": result.note,
                "num_ctx": result.num_ctx,
                "retrieval_s": result.retrieval_s,
                "first_token_s": result.first_token_s,
                "total_s": result.total_s,
                "prompt_tokens": stats.prompt_tokens if stats else None,
                "completion_tokens": stats.completion_tokens if stats else None,
                "conversation_id": conv.id,
            }
        )
        return 0
    print()
    if result.rag:
        if result.note:
            print(f"\n({result.note})")
        if result.sources:
            print("\nSources:")
        for src in result.sources:
            mark = "cited    " if src.cited else "retrieved"
            print(f"  [{src.number}] {mark} {_label(src.hit)}")
    return 0


def cmd_status(engine: Engine, args: argparse.Namespace) -> int:
    status = engine.status()
    if args.json:
        _emit(status)
        return 0
    counts = status["counts"]
    print(f"Library:   {status['home']}")
    print(
        f"Documents: {counts.get('indexed', 0)} indexed, {counts.get('pending', 0)} pending, "
        f"{counts.get('failed', 0)} failed; {status['chunks']} chunks"
    )
    model = status["embedding_model"] or "none"
    print(f"Search:    {status['search']} (embedding model: {model})")
    if status["building_model"]:
        print(f"Building:  vectors for '{status['building_model']}'")
    print(f"Index:     {status['index_bytes'] / 1e6:.1f} MB")
    failed = [d for d in status["documents"] if d["status"] == "failed"]
    if failed:
        print("Failures:")
        for d in failed:
            print(f"  {d['path']}: {d['error']}")
    return 0


def cmd_doctor(engine: Engine, args: argparse.Namespace) -> int:
    checks = engine.doctor()
    for c in checks:
        print(f"{'ok ' if c.ok else 'BAD'} {c.name}: {c.detail}")
        if not c.ok and c.fix:
            print(f"    fix: {c.fix}")
    return 0 if all(c.ok for c in checks) else 1


def _emit(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc, ensure_ascii=False, default=str) + "\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ftrag", description="Private, on-device document search and cited answers."
    )
    parser.add_argument("--version", action="version", version=f"ftrag {__version__}")
    parser.add_argument("--home", metavar="DIR", help="data directory (default: $FTRAG_HOME)")
    parser.add_argument(
        "--ollama-host", metavar="URL", help="Ollama server (default: $OLLAMA_HOST)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("index", help="sync a folder into the index once")
    p.add_argument("path")
    p.add_argument("--json", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true", help="print only failures and totals")
    p.add_argument("--retry-failed", action="store_true", help="parse failed files again")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("watch", help="keep folders in sync until Ctrl-C")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser("search", help="search the index")
    p.add_argument("query")
    p.add_argument("--k", type=int, default=None, help="number of results")
    p.add_argument("--mode", choices=["hybrid", "vector", "keyword"], default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("ask", help="ask a question; the answer cites its sources")
    p.add_argument("question")
    p.add_argument("--model", default=None)
    p.add_argument("--no-rag", action="store_true", help="the model alone, no retrieval")
    p.add_argument("--k", type=int, default=None, help="number of sources")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("status", help="documents, failures, index size, embedding model")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("doctor", help="check Ollama, models and the index; say how to fix")
    p.set_defaults(func=cmd_doctor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    home = Home.resolve(args.home)
    configure_logging(home, stderr_level=logging.INFO if args.verbose else logging.ERROR)
    from ftrag_desktop.core.engine import Engine

    try:
        with Engine(home, ollama_host=args.ollama_host) as engine:
            code: int = args.func(engine, args)
            return code
    except UserError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "\nInterrupted. The index is consistent; run the command again to finish.",
            file=sys.stderr,
        )
        return 130


def run() -> None:
    """The console-script entry: `ftrag ... | head` ends quietly instead of with a traceback."""
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())


if __name__ == "__main__":
    run()
