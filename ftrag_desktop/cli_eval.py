"""`ftrag eval ...`: evaluation sets and runs from the command line (the same core, no Qt).

    ftrag eval build NAME        questions from the index, saved as a new version of NAME
    ftrag eval list              saved sets and their versions
    ftrag eval export NAME -o F  a set as JSONL;  ftrag eval import F --name NAME
    ftrag eval run NAME --config MODEL[:rag|:norag] ...   (or --resume RUN_ID|last)
    ftrag eval report [RUN_ID|last] [--csv F] [--html F]

Progress goes to stderr; `--json` prints one JSON document on stdout.  The first Ctrl-C stops
a build or a run cleanly (a run can then be resumed), a second one aborts.
"""

from __future__ import annotations

import argparse
import sys
import threading
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftrag_desktop.errors import UserError

if TYPE_CHECKING:
    from ftrag_desktop.core.engine import Engine
    from ftrag_desktop.core.eval_report import EvalReport

__all__ = ["add_eval_parser"]


def _emit(doc: dict[str, Any]) -> None:
    from ftrag_desktop.cli import _emit as emit  # cli.py imports this module at its top

    emit(doc)


def _cancels(cancel: threading.Event, message: str) -> AbstractContextManager[None]:
    from ftrag_desktop.cli import _first_ctrl_c_cancels

    return _first_ctrl_c_cancels(cancel, message)


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text, file=sys.stderr, flush=True)


def _short(text: str, width: int = 70) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


# ---- sets --------------------------------------------------------------------------------


def cmd_eval_build(engine: Engine, args: argparse.Namespace) -> int:
    from ftrag_desktop.core import evalset_build as eb
    from ftrag_desktop.core.evalset import EvalSetStore

    options = eb.BuildOptions(
        questions=args.questions,
        unanswerable=args.unanswerable,
        model=args.model or "",
        seed=args.seed,
        closed_book_filter=not args.no_closed_book,
        closed_book_threshold=args.closed_book_threshold,
    )
    cancel = threading.Event()
    finished: eb.BuildFinished | None = None
    with _cancels(cancel, "Stopping after the current question (Ctrl-C again to abort)…"):
        for ev in eb.build_evalset(engine, args.name, options, cancel=cancel):
            if isinstance(ev, eb.BuildStarted):
                _say(
                    args,
                    f"building  {ev.questions} questions from {ev.chunks} passages of "
                    f"{ev.documents} documents, and {ev.unanswerable} unanswerable ones",
                )
            elif isinstance(ev, eb.QuestionAccepted):
                kind = "kept" if ev.item.answerable else "kept (unanswerable)"
                _say(args, f"{kind:<10}{_short(ev.item.question)}")
            elif isinstance(ev, eb.QuestionRejected):
                _say(args, f"{'dropped':<10}{ev.reason}: {_short(ev.question or ev.detail, 60)}")
            elif isinstance(ev, eb.BuildFinished):
                finished = ev
    assert finished is not None
    evalset = finished.evalset
    if not evalset.items:
        raise UserError(
            "No question survived the checks, so nothing was saved.",
            "Try more questions (--questions), another model (--model), or "
            "--no-closed-book if the model already knows your documents' topics.",
        )
    saved = EvalSetStore.for_home(engine.home).save(
        evalset, note="cancelled part-way" if finished.cancelled else "built"
    )
    doc = {
        "name": saved.name,
        "version": saved.version,
        "answerable": len(saved.answerable),
        "unanswerable": len(saved.unanswerable),
        "rejected": finished.rejected,
        "cancelled": finished.cancelled,
        "seconds": finished.seconds,
    }
    if args.json:
        _emit(doc)
    else:
        dropped = ", ".join(f"{n} {why}" for why, n in sorted(finished.rejected.items()))
        print(
            f"Saved '{saved.name}' version {saved.version}: {doc['answerable']} answerable and "
            f"{doc['unanswerable']} unanswerable questions"
            + (f" (dropped: {dropped})" if dropped else "")
        )
    return 130 if finished.cancelled else 0


def cmd_eval_list(engine: Engine, args: argparse.Namespace) -> int:
    from ftrag_desktop.core.evalset import EvalSetStore

    store = EvalSetStore.for_home(engine.home)
    sets = {name: store.versions(name) for name in store.names()}
    if args.json:
        _emit(
            {
                "sets": [
                    {
                        "name": name,
                        "versions": [
                            {"version": v.version, "saved_at": v.saved_at, "items": v.items}
                            for v in versions
                        ],
                    }
                    for name, versions in sets.items()
                ]
            }
        )
        return 0
    if not sets:
        print("No evaluation sets yet. Build one with `ftrag eval build NAME`.")
    for name, versions in sets.items():
        last = versions[-1]
        print(
            f"{name}: {len(versions)} version(s), "
            f"latest v{last.version} with {last.items} questions"
        )
    return 0


def cmd_eval_export(engine: Engine, args: argparse.Namespace) -> int:
    from ftrag_desktop.core.evalset import EvalSetStore, items_to_jsonl, write_jsonl

    evalset = EvalSetStore.for_home(engine.home).load(args.name, args.version)
    if args.output in (None, "-"):
        sys.stdout.write(items_to_jsonl(evalset.items))
        return 0
    write_jsonl(evalset, Path(args.output))
    _say(
        args,
        f"Exported {len(evalset.items)} questions of '{evalset.name}' v{evalset.version} "
        f"to {args.output}",
    )
    return 0


def cmd_eval_import(engine: Engine, args: argparse.Namespace) -> int:
    from ftrag_desktop.core.evalset import EvalSetStore, read_jsonl

    evalset = read_jsonl(Path(args.path), args.name)
    saved = EvalSetStore.for_home(engine.home).save(evalset, note=f"imported from {args.path}")
    if args.json:
        _emit({"name": saved.name, "version": saved.version, "items": len(saved.items)})
    else:
        print(f"Imported {len(saved.items)} questions as '{saved.name}' version {saved.version}.")
    return 0


# ---- runs --------------------------------------------------------------------------------


def cmd_eval_run(engine: Engine, args: argparse.Namespace) -> int:
    from ftrag_desktop.core import evaluate as ev
    from ftrag_desktop.core.evalset import EvalSetStore

    cancel = threading.Event()
    if args.resume:
        events = ev.resume_evaluation(engine, args.resume, cancel=cancel)
    else:
        if not args.name or not args.config:
            raise UserError(
                "`ftrag eval run` needs a set name and at least one --config.",
                "For example: ftrag eval run NAME --config llama3.2:rag --config llama3.2:norag",
            )
        system = args.system or ""
        if args.system_file:
            system = Path(args.system_file).read_text(encoding="utf-8")
        configs = [
            ev.parse_eval_config(spec, top_k=args.k or 0, system_prompt=system)
            for spec in args.config
        ]
        evalset = EvalSetStore.for_home(engine.home).load(args.name, args.version)
        events = ev.run_evaluation(
            engine,
            evalset,
            configs,
            judge_model=args.judge or "",
            num_predict=args.num_predict,
            cancel=cancel,
        )
    finished: ev.RunFinished | None = None
    titles: list[str] = []
    with _cancels(cancel, "Stopping after the current answer (Ctrl-C again to abort)…"):
        for event in events:
            if isinstance(event, ev.RunStarted):
                titles = [c.title() for c in event.configs]
                again = f", {event.done} done before" if event.done else ""
                _say(args, f"run       {event.run_id}: {event.total} answers to get{again}")
            elif isinstance(event, ev.ItemScored):
                r = event.result
                if r.error:
                    verdict = f"failed: {_short(r.error, 60)}"
                elif not r.answerable:
                    verdict = "declined" if r.abstained else "answered (should decline)"
                else:
                    verdict = "correct" if r.correct else "not correct"
                _say(
                    args,
                    f"[{event.done}/{event.total}] {titles[event.config_index]}: {verdict}",
                )
            elif isinstance(event, ev.RunFinished):
                finished = event
    assert finished is not None
    report = finished.report
    if args.json:
        _emit(
            {"run_id": finished.run_id, "cancelled": finished.cancelled, "report": report.to_dict()}
        )
    else:
        _print_report(report)
    if finished.cancelled:
        print(f"Stopped. Resume with: ftrag eval run --resume {finished.run_id}", file=sys.stderr)
        return 130
    return 0 if any(r.answered for r in report.rows) else 1


def cmd_eval_report(engine: Engine, args: argparse.Namespace) -> int:
    from ftrag_desktop.core.eval_report import report_csv, report_html
    from ftrag_desktop.core.evaluate import RunStore

    report = RunStore.for_home(engine.home).report(args.run)
    for target, text in ((args.csv, report_csv), (args.html, report_html)):
        if target:
            try:
                Path(target).write_text(text(report), encoding="utf-8")
            except OSError as exc:
                raise UserError(
                    f"Cannot write {target}: {exc.strerror or exc}.", "Choose another file."
                ) from exc
            _say(args, f"wrote     {target}")
    if args.json:
        _emit(report.to_dict())
    else:
        _print_report(report)
    return 0


def _fmt(value: float | None, kind: str = "pct") -> str:
    if value is None:
        return "-"
    if kind == "pct":
        return f"{100 * value:.0f}%"
    if kind == "s":
        return f"{value:.2f}s"
    return f"{value:.2f}"


def _print_report(report: EvalReport) -> None:
    judge = f"judge:{report.judge_model}" if report.judge_model else "judge"
    head = [
        "configuration",
        "hit@k",
        "MRR",
        "F1",
        "facts",
        "correct",
        judge,
        "cites ok",
        "abstain",
        "1st tok",
        "tok/s",
        "answer",
    ]
    rows: list[list[str]] = [head]
    for r in report.rows:
        rows.append(
            [
                r.title + (f" ({r.errors} failed)" if r.errors else ""),
                _fmt(r.hit_at_k),
                _fmt(r.mrr, "num"),
                _fmt(r.f1, "num"),
                _fmt(r.containment),
                _fmt(r.correct),
                _fmt(r.judge_correct),
                _fmt(r.citation_support),
                _fmt(r.abstention),
                _fmt(r.first_token_s, "s"),
                "-" if r.tokens_per_s is None else f"{r.tokens_per_s:.1f}",
                _fmt(r.answer_s, "s"),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    print(
        f"Run {report.run_id}: set '{report.set_name}' v{report.set_version}, "
        f"{report.answerable} answerable + {report.unanswerable} unanswerable questions"
        + ("" if report.complete else " (incomplete)")
    )
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    rec = report.recommendation
    print(f"\nWhich approach? {rec.headline}")
    for line in rec.evidence:
        print(f"  - {line}")
    for line in rec.caveats:
        print(f"  * {line}")


# ---- parser ------------------------------------------------------------------------------


def add_eval_parser(sub: Any) -> None:
    """Register `ftrag eval ...` on the main parser's subcommands."""
    parser = sub.add_parser("eval", help="evaluation sets and runs: fine-tuning or RAG?")
    esub = parser.add_subparsers(dest="eval_command", required=True, metavar="ACTION")

    def action(name: str, text: str, func: Any) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = esub.add_parser(name, help=text)
        p.add_argument("--json", action="store_true", help="one JSON document on stdout")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
        p.set_defaults(func=func)
        return p

    p = action("build", "generate a set of questions from the index", cmd_eval_build)
    p.add_argument("name", help="the set's name (a new version if it exists)")
    p.add_argument("--questions", type=int, default=20, help="answerable questions wanted")
    p.add_argument("--unanswerable", type=int, default=5, help="off-topic questions wanted")
    p.add_argument("--model", help="model that writes them (default: the chat model)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument(
        "--no-closed-book",
        action="store_true",
        help="keep questions the model answers without the passage",
    )
    p.add_argument(
        "--closed-book-threshold",
        type=float,
        default=0.6,
        metavar="X",
        help="drop a question when the model alone gives this share of the reference's key "
        "words (default 0.6)",
    )

    p = action("list", "saved evaluation sets and their versions", cmd_eval_list)

    p = action("export", "write a set as JSONL", cmd_eval_export)
    p.add_argument("name")
    p.add_argument("--version", type=int, default=None, help="default: the latest")
    p.add_argument("-o", "--output", metavar="FILE", help="default: stdout")

    p = action("import", "read a JSONL set (saved as a new version)", cmd_eval_import)
    p.add_argument("path", metavar="FILE")
    p.add_argument("--name", required=True)

    p = action("run", "answer a set with several configurations and score them", cmd_eval_run)
    p.add_argument("name", nargs="?", help="the set to evaluate")
    p.add_argument("--version", type=int, default=None, help="default: the latest")
    p.add_argument(
        "--config",
        action="append",
        metavar="MODEL[:rag|:norag]",
        help="a configuration (repeat); RAG is on unless :norag",
    )
    p.add_argument("--k", type=int, default=None, help="sources for the RAG configurations")
    p.add_argument("--system", help="system prompt for every configuration")
    p.add_argument("--system-file", metavar="FILE", help="system prompt read from FILE")
    p.add_argument("--judge", metavar="MODEL", help="also ask this (different) model to judge")
    p.add_argument("--num-predict", type=int, default=256, help="longest answer in tokens")
    p.add_argument("--resume", metavar="RUN_ID", help="continue a stopped run (or `last`)")

    p = action("report", "the figures and summary of a run", cmd_eval_report)
    p.add_argument("run", nargs="?", default="last", metavar="RUN_ID", help="default: last")
    p.add_argument("--csv", metavar="FILE", help="also write the table as CSV")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report")
