"""`ftrag`: the command-line front end over the same core as the app (no Qt here).

Exit codes: 0 on success (even when some files failed: they are reported), 1 for an error the
user can fix (message on stderr, no traceback; for `index`, passages left without vectors),
2 for usage errors, 130 after Ctrl-C.
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
from ftrag_desktop.cli_eval import add_eval_parser
from ftrag_desktop.cli_finetune import add_export_finetune_parser
from ftrag_desktop.cli_merge import add_merge_parser
from ftrag_desktop.cli_train import add_train_parser
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
    from ftrag_desktop.config import Settings
    from ftrag_desktop.core.answer import AnswerResult, Source
    from ftrag_desktop.core.engine import Engine
    from ftrag_desktop.core.model_import import ImportEvent
    from ftrag_desktop.core.models import ModelManager, ModelRecord

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
        # embed_now: the user waits for this sync, so it tries Ollama again before it ends
        # rather than leave passages without vectors for a later sync.
        for ev in engine.sync(
            Path(args.path), retry_failed=args.retry_failed, cancel=cancel, embed_now=True
        ):
            printer.event(ev)
            if isinstance(ev, SyncFinished):
                summary = ev.summary
    assert summary is not None
    if not summary.cancelled and not cancel.is_set():
        # Nothing runs after this command: fold the new passages into the keyword index now
        # (an unfolded passage is scanned by every search: 0.34 s a search at 11k passages).
        folded = engine.fold_new_passages()
        if folded and not printer.quiet:
            print(f"Folded {folded} new passages into the keyword index.", file=sys.stderr)
    # Embedding configured but some passages still lack a vector (Ollama timed out or went
    # away): the index is incomplete, which a script must not mistake for success.
    missing = engine.store.count_missing_vectors() if engine.settings.embed_model else 0
    scanned = engine.last_full_scan()
    if scanned is not None and not missing and not summary.cancelled:
        # `main` records it for the no-change shortcut once the engine has closed cleanly.
        args.quick_record = (Path(summary.root), scanned, summary.embedding)
    return _report_index(args, summary, missing, engine)


def _report_index(
    args: argparse.Namespace, summary: SyncSummary, missing: int, engine: Engine | None
) -> int:
    if args.json:
        doc = asdict(summary)
        doc["failures"] = [{"path": p, "reason": r} for p, r in summary.failures]
        doc["vectors_missing"] = missing
        _emit(doc)
    else:
        print(_summary_line(summary))
        if summary.embedding != "semantic":
            print(f"Search: {summary.embedding}")
    if summary.cancelled:
        return 130
    if missing and engine is not None:
        model = (engine.store.building_model() or engine.store.embedding_model())[0]
        # "semantic (new passages wait for vectors: <why>)" or "keyword search only: <why>"
        why = summary.embedding.partition(": ")[2].removesuffix(")") or "Ollama did not answer"
        print(
            f"error: {missing} passages were left without a vector from '{model}', so semantic "
            f"search cannot find them yet: {why}",
            file=sys.stderr,
        )
        print(
            f"hint: Run `ftrag index {args.path}` again once Ollama answers: it embeds only the "
            "missing passages. If Ollama is slow, allow it more time with --timeout SECONDS "
            "(or request_timeout_s in settings.json).",
            file=sys.stderr,
        )
        return 1
    return 0


def _index_unchanged(home: Home, settings: Settings, args: argparse.Namespace) -> int | None:
    """`ftrag index` over a folder where provably nothing changed since its last complete
    sync: answered without opening the index (see `core.quick_sync`); None: sync in full."""
    if args.func is not cmd_index or args.retry_failed or settings.index_uri.strip():
        return None  # a shared index is not on this disk: always the full sync
    from ftrag_desktop.core import quick_sync

    root = Path(args.path).expanduser().resolve()
    summary = quick_sync.unchanged(home.index_dir, root, settings)
    return None if summary is None else _report_index(args, summary, 0, None)


@contextlib.contextmanager
def _first_ctrl_c_cancels(
    cancel: threading.Event,
    message: str = "Stopping after the current files (Ctrl-C again to abort)…",
) -> Iterator[None]:
    """Ctrl-C (or SIGTERM) stops the work cleanly after the current batch; a second aborts.

    The first signal only sets `cancel`: raising KeyboardInterrupt wherever the main thread
    happens to be (inside a commit, the parse pool's bookkeeping or the folder watcher's
    shutdown) could leave a thread or a worker waiting for something that never comes, and the
    process would not exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, frame: object) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        print(f"\n{message}", file=sys.stderr)

    signals = [signal.SIGINT] + ([signal.SIGTERM] if hasattr(signal, "SIGTERM") else [])
    previous = {sig: signal.signal(sig, on_signal) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def cmd_watch(engine: Engine, args: argparse.Namespace) -> int:
    printer = _Printer(quiet=args.quiet)
    cancel = threading.Event()

    def on_event(ev: SyncEvent) -> None:
        printer.event(ev)
        if isinstance(ev, SyncFinished) and (ev.summary.indexed or ev.summary.removed):
            print(_summary_line(ev.summary), file=sys.stderr)

    def ready() -> None:
        print(f"Watching {', '.join(args.paths)} (Ctrl-C to stop)", file=sys.stderr)

    with _first_ctrl_c_cancels(cancel, "Stopping (Ctrl-C again to abort)…"):
        engine.watch([Path(p) for p in args.paths], on_event, cancel, on_ready=ready)
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


def cmd_compare(engine: Engine, args: argparse.Namespace) -> int:
    """One question, up to four configurations, one after another; figures for each."""
    import dataclasses

    from ftrag_desktop.core.compare import (
        ComparisonFinished,
        ConfigFinished,
        ConfigStarted,
        ConfigToken,
        parse_config,
        run_comparison,
    )

    configs = [parse_config(spec, top_k=args.k or 0) for spec in args.config]
    cancel = threading.Event()
    comparison = None
    try:
        for ev in run_comparison(engine, args.question, configs, cancel=cancel):
            if isinstance(ev, ComparisonFinished):
                comparison = ev.comparison
            elif args.json:
                continue
            elif isinstance(ev, ConfigStarted):
                print(f"\n== #{ev.index + 1} {configs[ev.index].title()} ==", flush=True)
            elif isinstance(ev, ConfigToken):
                print(ev.text, end="", flush=True)
            elif isinstance(ev, ConfigFinished):
                a, m = ev.answer, ev.answer.metrics
                if a.error:
                    print(f"\nerror: {a.error}", file=sys.stderr)
                    continue
                ttft = f"{m.first_token_s:.2f} s" if m.first_token_s is not None else "-"
                speed = f"{m.tokens_per_s:.1f} tok/s" if m.tokens_per_s else "-"
                print(
                    f"\n-- first token {ttft} · {speed} · total {m.total_s:.2f} s · "
                    f"prompt tokens {m.prompt_tokens if m.prompt_tokens is not None else '-'} · "
                    f"{len(a.sources)} sources"
                )
    except KeyboardInterrupt:
        cancel.set()
        print("\nStopped.", file=sys.stderr)
        return 130
    assert comparison is not None
    conv = engine.conversations.new(args.question[:60], configs[0].model, configs[0].rag)
    conv.comparisons.append(comparison)
    engine.conversations.save(conv)
    if args.json:
        _emit(dict(dataclasses.asdict(comparison), conversation_id=conv.id))
    failed = [a for a in comparison.answers if a.error]
    return 1 if failed and len(failed) == len(comparison.answers) else 0


def cmd_ask(engine: Engine, args: argparse.Namespace) -> int:
    from ftrag_desktop.core.answer import AnswerCompleted, AnswerToken

    result: AnswerResult | None = None
    cancel = threading.Event()
    printed = False
    try:
        for ev in engine.ask(
            args.question, model=args.model, rag=not args.no_rag, k=args.k, cancel=cancel
        ):
            if isinstance(ev, AnswerToken) and not args.json:
                print(ev.text, end="", flush=True)
                printed = True
            elif isinstance(ev, AnswerCompleted):
                result = ev.result
    except KeyboardInterrupt:
        cancel.set()
        print("\nStopped.", file=sys.stderr)
        return 130
    except UserError:
        if printed:  # end the partial answer's line; the error follows on stderr
            print(flush=True)
        raise
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


def cmd_export(engine: Engine, args: argparse.Namespace) -> int:
    """A saved conversation as Markdown (citations as footnotes), to stdout or a file."""
    from ftrag_desktop.core.export import conversation_to_markdown

    store = engine.conversations
    if args.conversation == "last":
        saved = store.list()
        if not saved:
            raise UserError("There is no conversation to export.", "Ask a question first.")
        conv = saved[0]
    else:
        try:
            conv = store.load(args.conversation)
        except (OSError, ValueError) as exc:
            raise UserError(
                f"No conversation '{args.conversation}'.",
                "Use the conversation_id that `ftrag ask --json` prints, or `last`.",
            ) from exc
    text = conversation_to_markdown(conv)
    if args.output in (None, "-"):
        sys.stdout.write(text)
        return 0
    target = Path(args.output)
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(
            f"Cannot write {target}: {exc.strerror or exc}.", "Choose another file."
        ) from exc
    print(f"Exported '{conv.title}' to {target}", file=sys.stderr)
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
    location = str(status.get("index_location", ""))
    if "://" in location:  # a shared index (its size is the object store's to tell)
        print(f"Index:     {location}")
    else:
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


# ---- models ------------------------------------------------------------------------------


def _model_manager(engine: Engine) -> ModelManager:
    from ftrag_desktop.core.models import ModelManager

    return ModelManager(engine.client, engine.home)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def _variant(r: ModelRecord) -> str:
    if r.adapter:
        return f"LoRA adapter on {r.base}" if r.base else "LoRA adapter"
    if r.fine_tuned:
        return f"fine-tuned from {r.base}" if r.base else "fine-tuned"
    if r.base:
        return f"variant of {r.base}"
    return "embedding" if r.is_embedding else ""


def cmd_models_list(engine: Engine, args: argparse.Namespace) -> int:
    records = _model_manager(engine).list_models()
    if args.json:
        _emit({"models": [r.to_dict() for r in records]})
        return 0
    if not records:
        print("No models installed. Pull one with `ftrag models pull llama3.2`.")
        return 0
    rows = [("NAME", "FAMILY", "PARAMS", "QUANT", "CONTEXT", "SIZE", "MODIFIED", "VARIANT")]
    for r in records:
        context = str(r.context_length or "?")
        if r.num_ctx:
            context += f" (num_ctx {r.num_ctx})"
        rows.append(
            (
                r.name,
                r.family,
                r.parameter_size,
                r.quantization,
                context,
                _size(r.size),
                r.modified_at[:10],
                _variant(r),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_models_show(engine: Engine, args: argparse.Namespace) -> int:
    r = _model_manager(engine).get(args.name)
    if args.json:
        _emit(r.to_dict())
        return 0
    print(f"Model:        {r.name}")
    print(f"Family:       {r.family}  {r.parameter_size}  {r.quantization}")
    print(f"Context:      {r.context_length or 'unknown'} tokens trained", end="")
    print(f", runs with num_ctx {r.num_ctx}" if r.num_ctx else "")
    print(f"Size:         {_size(r.size)}, modified {r.modified_at[:19]}")
    if _variant(r):
        print(f"Variant:      {_variant(r)}")
    if r.lineage is not None:
        lin = r.lineage
        print(f"Imported:     {lin.created_at} from {lin.source} (sha256 {lin.source_sha256[:12]})")
        print(f"Template:     {lin.template}")
        if lin.parameters:
            print(f"Parameters:   {json.dumps(lin.parameters)}")
        from ftrag_desktop.core.lineage_text import merge_rows, training_rows

        # ftrag trained it (the base, the data, hyperparameters, losses), or merged an adapter
        rows = training_rows(lin.training) if lin.training else []
        rows += merge_rows(lin.merged_from) if lin.merged_from else []
        for label, value in rows:
            print(f"{label + ':':<13} {value}")
    return 0


def cmd_models_pull(engine: Engine, args: argparse.Namespace) -> int:
    from ftrag_desktop.errors import Cancelled

    cancel = threading.Event()
    last = ("", -1)
    try:
        with _first_ctrl_c_cancels(cancel, "Stopping the download (Ctrl-C again to abort)…"):
            for p in _model_manager(engine).pull(args.name, cancel):
                pct = 100 * p.completed // p.total if p.total else -1
                step = (p.status, pct // 10 if pct >= 0 else -1)
                if step != last and not args.json:
                    done = f" {pct}% of {_size(p.total)}" if pct >= 0 else ""
                    print(f"{p.status}{done}", file=sys.stderr)
                last = step
    except (Cancelled, KeyboardInterrupt):
        print("Pull cancelled: nothing was installed.", file=sys.stderr)
        return 130
    if args.json:
        _emit({"model": args.name, "status": "success"})
    else:
        print(f"Pulled {args.name}.")
    return 0


def cmd_models_rm(engine: Engine, args: argparse.Namespace) -> int:
    manager = _model_manager(engine)
    if not args.yes:
        if not sys.stdin.isatty():
            print(f"error: not deleting {args.name} without confirmation.", file=sys.stderr)
            print("hint: pass --yes to delete without asking.", file=sys.stderr)
            return 2
        record = manager.get(args.name)
        answer = input(f"Delete {record.name} ({_size(record.size)}) from Ollama? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Not deleted.", file=sys.stderr)
            return 1
    manager.delete(args.name)
    if args.json:
        _emit({"model": args.name, "deleted": True})
    else:
        print(f"Deleted {args.name}.")
    return 0


class _ImportPrinter:
    """Import events as progress lines on stderr (every 10% of a file, not every chunk)."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stderr
        self._last: tuple[str, str, int] = ("", "", -1)

    def event(self, ev: ImportEvent) -> None:
        from ftrag_desktop.core import model_import as mi

        if isinstance(ev, mi.ImportStep):
            print(f"{ev.step:<10} {ev.text}", file=self.out)
        elif isinstance(ev, mi.ImportValidated):
            plan = ev.plan
            base = f" on {plan.base}" if plan.base else ""
            what = "LoRA adapter" if plan.kind == "adapter" else "GGUF model"
            print(
                f"{'checked':<10} {what} ({plan.architecture}){base}, {_size(plan.total_bytes)}, "
                f"chat template from {plan.template_source}",
                file=self.out,
            )
            if plan.disk.checked:
                print(f"{'disk':<10} {plan.disk.note}", file=self.out)
        elif isinstance(ev, mi.ImportProgress):
            pct = 100 * ev.done // ev.total if ev.total else 100
            key = (ev.step, ev.file, pct // 10)
            if key != self._last:
                self._last = key
                print(f"{ev.step:<10} {ev.file} {pct}% of {_size(ev.total)}", file=self.out)
        elif isinstance(ev, mi.BlobSkipped):
            print(f"{'skipped':<10} {ev.file}: Ollama already has it", file=self.out)
        elif isinstance(ev, mi.ImportServerStatus):
            print(f"{'ollama':<10} {ev.text}", file=self.out)
        elif isinstance(ev, mi.ImportNotice):
            print(f"{'note':<10} {ev.text}", file=self.out)


def cmd_models_import(engine: Engine, args: argparse.Namespace) -> int:
    from ftrag_desktop.core.model_import import ImportFinished, ImportRequest
    from ftrag_desktop.errors import Cancelled

    request = ImportRequest(
        Path(args.path),
        args.name,
        base=args.base or "",
        system=args.system or "",
        num_ctx=args.num_ctx,
        temperature=args.temperature,
        stop=tuple(args.stop or ()),
        replace=args.replace,
        kind=args.import_kind,
    )
    printer = _ImportPrinter()
    cancel = threading.Event()
    finished: ImportFinished | None = None
    try:
        with _first_ctrl_c_cancels(cancel, "Stopping the import (Ctrl-C again to abort)…"):
            for ev in _model_manager(engine).import_model(request, cancel):
                printer.event(ev)
                if isinstance(ev, ImportFinished):
                    finished = ev
    except (Cancelled, KeyboardInterrupt):
        print("Import cancelled: no model was created.", file=sys.stderr)
        return 130
    assert finished is not None
    model = finished.model
    if args.json:
        _emit(
            {
                "model": model.to_dict(),
                "probe_reply": finished.probe_reply,
                "uploaded_bytes": finished.uploaded_bytes,
                "skipped_bytes": finished.skipped_bytes,
                "seconds": finished.seconds,
                "notes": list(finished.notes),
            }
        )
        return 0
    reply = " ".join(finished.probe_reply.split())
    print(f"Imported {model.name} ({_variant(model) or model.family}) in {finished.seconds:.1f} s.")
    print(f"Its answer to a test question: {reply[:120]}")
    return 0


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("must be a number of seconds") from exc
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be a positive number")
    return value


def _add_models_parser(sub: Any) -> None:
    models = sub.add_parser("models", help="list, pull, delete and import Ollama models")
    msub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")

    p = msub.add_parser("list", help="installed models, with fine-tuned variants and bases")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models_list)

    p = msub.add_parser("show", help="details and lineage of one model")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models_show)

    p = msub.add_parser("pull", help="download a model from the Ollama library")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models_pull)

    p = msub.add_parser("rm", help="delete a model (asks first unless --yes)")
    p.add_argument("name")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models_rm)

    imports = (
        (
            "import",
            "auto",
            "import a GGUF model or a LoRA adapter (kind read from the file)",
        ),
        ("import-gguf", "gguf", "import a GGUF file of a whole (e.g. merged fine-tuned) model"),
        ("import-adapter", "adapter", "import a LoRA adapter (GGUF or safetensors folder)"),
    )
    for command, kind, text in imports:
        p = msub.add_parser(command, help=text)
        p.add_argument("path", metavar="FILE_OR_DIR")
        p.add_argument("--name", required=True, help="name of the new Ollama model")
        p.add_argument(
            "--base",
            required=kind == "adapter",
            help="installed model it was fine-tuned from (required for adapters)",
        )
        p.add_argument("--system", help="system prompt built into the model")
        p.add_argument("--num-ctx", type=_positive_int, help="context length it runs with")
        p.add_argument("--temperature", type=float)
        p.add_argument("--stop", action="append", help="stop sequence (repeatable)")
        p.add_argument("--replace", action="store_true", help="replace a model of that name")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_models_import, import_kind=kind)


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
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        metavar="SECONDS",
        help="longest wait for Ollama to answer (default: request_timeout_s in settings.json)",
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

    p = sub.add_parser(
        "compare", help="answer one question with up to four model/RAG configurations"
    )
    p.add_argument("question")
    p.add_argument(
        "--config",
        action="append",
        required=True,
        metavar="MODEL[:rag|:norag]",
        help="a configuration (repeat, up to four); RAG is on unless :norag",
    )
    p.add_argument("--k", type=int, default=None, help="sources for the RAG configurations")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("export", help="a saved conversation as Markdown, citations as footnotes")
    p.add_argument(
        "conversation", metavar="ID", help="a conversation_id from `ask --json`, or last"
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE (default: stdout)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("status", help="documents, failures, index size, embedding model")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("doctor", help="check Ollama, models and the index; say how to fix")
    p.set_defaults(func=cmd_doctor)

    _add_models_parser(sub)
    add_export_finetune_parser(sub)
    add_eval_parser(sub)
    add_merge_parser(sub)
    add_train_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    home = Home.resolve(args.home)
    configure_logging(home, stderr_level=logging.INFO if args.verbose else logging.ERROR)
    from ftrag_desktop.config import load_settings

    try:
        settings = load_settings(home.settings_file)
        quick = _index_unchanged(home, settings, args)
        if quick is not None:
            return quick
        from ftrag_desktop.core.engine import Engine  # LanceDB and pyarrow: about a second

        key = _settings_key(settings) if args.func is cmd_index else ""
        if args.timeout is not None:
            settings.request_timeout_s = args.timeout
        with Engine(home, settings, ollama_host=args.ollama_host) as engine:
            for note in engine.take_notices():  # e.g. a damaged index being rebuilt
                print(f"note: {note}", file=sys.stderr)
            code: int = args.func(engine, args)
        recorded = getattr(args, "quick_record", None)
        if recorded is not None and not settings.index_uri.strip():
            from ftrag_desktop.core import quick_sync

            root, files, embedding = recorded
            quick_sync.record(home.index_dir, root, files, key, embedding)
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


def _settings_key(settings: Settings) -> str:
    from ftrag_desktop.core.quick_sync import settings_key

    return settings_key(settings)


def run() -> None:
    """The console-script entry: `ftrag ... | head` ends quietly instead of with a traceback."""
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())


if __name__ == "__main__":
    run()
