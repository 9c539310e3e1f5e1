"""`ftrag export-finetune`: training data for the user's own fine-tune (no Qt here).

Reads evaluation sets (and, with ``--corpus``, the index), prints a preview (examples, bytes,
approximate tokens per file) and writes the export folder, under the data home unless ``--out``
names another folder outside the documents.  ``--dry-run`` only previews; ``--json`` prints
exactly one JSON document on stdout.  The core is imported when the command runs, as in cli.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ftrag_desktop.core.engine import Engine
    from ftrag_desktop.core.finetune_export import Preview

KINDS = ("qa", "raft", "both")
FORMATS = ("chat", "openai", "mlx", "axolotl")


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("must be a number such as 0.1") from exc
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError("must be at least 0 and below 1")
    return value


def count_arg(text: str) -> int:
    """An argparse type: a whole number, zero or more."""
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("must be a whole number") from exc
    if value < 0:
        raise argparse.ArgumentTypeError("cannot be negative")
    return value


def add_export_finetune_parser(sub: Any) -> None:
    p = sub.add_parser(
        "export-finetune",
        help="export fine-tuning data (Q/A and RAFT) from evaluation sets and the index",
    )
    p.add_argument(
        "--from",
        dest="sets",
        action="append",
        required=True,
        metavar="SET.jsonl",
        help="an evaluation set (repeatable)",
    )
    p.add_argument(
        "--corpus",
        action="store_true",
        help="label sources and draw RAFT distractors from the index",
    )
    p.add_argument("--kind", choices=KINDS, default="both")
    p.add_argument("--format", dest="fmt", choices=FORMATS, default="chat")
    p.add_argument("--out", metavar="DIR", help="export folder (default: under the data home)")
    p.add_argument("--val-fraction", type=_fraction, default=0.1, metavar="F")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--distractors", type=count_arg, default=4, metavar="N")
    p.add_argument(
        "--no-oracle-fraction",
        type=_fraction,
        default=0.2,
        metavar="F",
        help="share of RAFT questions shown distractors only (default 0.2)",
    )
    p.add_argument(
        "--no-oracle-answer",
        choices=("abstain", "answer"),
        default="abstain",
        help="answer for those: the app's abstention (default) or the reference, as in RAFT",
    )
    p.add_argument("--dry-run", action="store_true", help="preview only; write nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_export_finetune)


def _print_preview(result: Preview, out: Path | None) -> None:
    print(f"Format: {result.format} ({result.tool})")
    for split in (result.train, result.valid):
        kinds = ", ".join(f"{k} {n}" for k, n in split.kinds.items()) or "none"
        print(
            f"  {split.file:<12} {split.examples:>6} examples  {split.bytes:>10,} bytes  "
            f"~{split.approx_tokens:,} tokens (longest ~{split.max_example_tokens:,})  [{kinds}]"
        )
    print(f"  tokens are {result.token_rule}")
    if result.duplicates:
        print(f"  {result.duplicates} duplicate questions dropped")
    for why, n in result.skipped.items():
        print(f"  {n} questions skipped: {why}")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for problem in result.problems:
        print(f"problem: {problem}", file=sys.stderr)
    print(f"Written to {out}" if out is not None else "Dry run: nothing written.")


def cmd_export_finetune(engine: Engine, args: argparse.Namespace) -> int:
    from ftrag_desktop.core.finetune_export import (
        ExportOptions,
        Format,
        Kind,
        build_dataset,
        check_out_dir,
        default_out_dir,
        preview,
        read_eval_sets,
        write_export,
    )
    from ftrag_desktop.errors import UserError

    options = ExportOptions(
        kind=Kind(args.kind),
        format=Format(args.fmt),
        val_fraction=args.val_fraction,
        seed=args.seed,
        distractors=args.distractors,
        no_oracle_fraction=args.no_oracle_fraction,
        no_oracle_answer=args.no_oracle_answer,
        system_prompt=engine.settings.system_prompt,
    )
    paths = [Path(s).expanduser() for s in args.sets]
    items = read_eval_sets(paths)
    corpus = None
    if args.corpus:
        corpus = engine.store.all_chunks()
        if not corpus:
            raise UserError(
                "The index holds no passages, so --corpus has nothing to offer.",
                "Index a folder first (`ftrag index FOLDER`), or leave --corpus out.",
            )
    # Never beside the documents: the watched folders and every indexed file's folder.
    roots = {Path(f) for f in engine.settings.watched_folders}
    roots |= {Path(d.path).parent for d in engine.store.documents()}
    data = build_dataset(items, corpus, options)
    out: Path | None = None
    if args.dry_run:
        result = preview(data, options.format)
        if args.out:
            check_out_dir(Path(args.out), roots)  # say now what a real run would refuse
    else:
        target = Path(args.out) if args.out else default_out_dir(engine.home.root, options)
        result = write_export(
            data, target, options, document_roots=roots, inputs=[str(p) for p in paths]
        )
        out = target.expanduser().resolve()
    if args.json:
        doc = {"out": str(out) if out else None, "dry_run": bool(args.dry_run)}
        doc.update(result.to_dict())
        sys.stdout.write(json.dumps(doc, ensure_ascii=False) + "\n")
    else:
        _print_preview(result, out)
    return 1 if result.problems else 0
