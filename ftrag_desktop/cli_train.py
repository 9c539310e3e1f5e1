"""`ftrag train`: fine-tune a local model on an exported training set (the same core, no Qt).

    ftrag train --base MODEL|FILE.gguf --data EXPORT_DIR|train.jsonl --name NEW_MODEL
                [--rank 8] [--alpha 16] [--lr 2e-4] [--epochs 3] [--max-length 1024]
                [--max-steps N] [--out-type Q8_0|F16|F32|...] [--resume | --no-resume]
                [--replace] [--estimate-only] [--json]
                advanced: [--dropout 0.05] [--target-modules q_proj,v_proj,...]
                [--batch-size 4] [--grad-accum 1] [--warmup 0.05] [--seed 0]
                [--eval-every N] [--save-every N] [--val-fraction 0.1]
                [--device auto|cuda|mps|cpu] [--threads N]

Trains a LoRA adapter (`core.train_pipeline`), merges it into the base GGUF, checks the file in
llama.cpp, imports it into Ollama as NEW_MODEL and records its lineage.  Running the same
command again after a cancel resumes from the last checkpoint (``--no-resume`` starts over).
Progress lines go to stderr and the result to stdout.  The first Ctrl-C (or a SIGTERM) stops
cleanly after the current micro-batch, saving a checkpoint; a second Ctrl-C aborts.

Exit codes: 0 done (or the estimate shown), 1 an error the user can fix (message and hint on
stderr), 2 the `[train]` extra is not installed (the hint says how to install it) or a usage
error, 130 cancelled (a checkpoint was kept: run the same command to resume).

**`--json`** prints one JSON object per line on stdout, flushed as it happens; nothing else goes
to stdout.  Every object has ``"event"``; fields are only ever added.  In order of appearance:

- ``{"event": "stage", "stage": S, "text": str}``, S one of checking, loading, preparing,
  training, saving, merging, verifying, importing, recording;
- ``{"event": "estimate", "run_id": str, "run_dir": str, "estimate": {parameters,
  trainable_parameters, examples, valid_examples, tokens_per_epoch, steps_per_epoch, steps,
  epochs, tokens_total, tokens_per_s, seconds, peak_memory_bytes, available_memory_bytes
  (int|null), device, throughput_source ("measured"|"assumed"), fits (bool)}, "base": {path,
  ollama_name, architecture, name, quantization, parameters, context_length, file_bytes},
  "data": {train_file, valid_file, train_examples, valid_examples, valid_split_off, sha256},
  "device": {kind, name, memory_bytes, threads}, "options": {every TrainOptions field}}``;
- ``{"event": "notice", "text": str}`` (any time);
- ``{"event": "data", "train_examples", "valid_examples", "tokens", "trained_tokens",
  "truncated", "dropped", "total_steps"}``;
- ``{"event": "resumed", "step": int, "checkpoint": str}`` when continuing a run;
- ``{"event": "validation", "step": int, "loss": float}`` (step 0: the base, before training);
- ``{"event": "step", "step", "total_steps", "epoch" (float), "loss", "lr", "tokens_per_s",
  "tokens_seen", "elapsed_s", "eta_s"}`` after every optimizer step;
- ``{"event": "checkpoint", "step": int, "path": str}``;
- ``{"event": "adapter", "path": str}``;
- ``{"event": "progress", "stage": "merging"|"importing", "done": int, "total": int,
  "unit": "bytes", "text": str}`` (at most one per percent);
- ``{"event": "merged", "path", "bytes", "out_type", "tensors_merged", "seconds"}``;
- ``{"event": "verified", "path": str, "reply": str}``;
- ``{"event": "finished", "model", "run_id", "gguf", "adapter", "steps", "train_loss",
  "val_loss" (float|null), "seconds", "device", "lineage": {the models manager's record,
  with "training": {run_id, base, base_path, base_architecture, dataset, dataset_sha256,
  train_examples, valid_examples, hyperparameters, train_loss, val_loss, steps, tokens,
  device, train_seconds, seconds, adapter, gguf, trained_at}}}`` last on success;
- ``{"event": "cancelled", "step": int|null, "checkpoint": str|null}`` last after a cancel;
- ``{"event": "error", "error": class name, "message": str, "hint": str, "exit_code": int}``
  last after an error (exit code 1, or 2 for TrainExtraMissing).
With ``--estimate-only`` the stream ends after the estimate with
``{"event": "estimated", "fits": bool}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftrag_desktop.cli_finetune import count_arg

if TYPE_CHECKING:
    from ftrag_desktop.core.engine import Engine
    from ftrag_desktop.core.train_events import TrainEvent

__all__ = ["add_train_parser"]

OUT_TYPE_CHOICES = ("Q8_0", "F16", "BF16", "F32", "Q5_1", "Q5_0", "Q4_1", "Q4_0")
EXIT_MISSING_EXTRA = 2


def _emit(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"must be a {kind.__name__} number") from exc
        if value <= 0:
            raise argparse.ArgumentTypeError("must be more than 0")
        return value

    return parse


def add_train_parser(sub: Any) -> None:
    p = sub.add_parser(
        "train", help="fine-tune a local model (LoRA) on an exported training set, into Ollama"
    )
    p.add_argument("--base", required=True, metavar="MODEL|FILE", help="Ollama model or .gguf")
    p.add_argument("--data", required=True, metavar="PATH", help="export folder or its train.jsonl")
    p.add_argument("--name", required=True, help="name of the new Ollama model")
    p.add_argument("--rank", type=_positive(int), default=8)
    p.add_argument("--alpha", type=_positive(float), default=16.0)
    p.add_argument("--lr", type=_positive(float), default=2e-4, help="learning rate")
    p.add_argument("--epochs", type=_positive(int), default=3)
    p.add_argument("--max-length", type=_positive(int), default=1024, metavar="TOKENS")
    p.add_argument("--max-steps", type=count_arg, default=0, metavar="N", help="0: by epochs")
    p.add_argument("--out-type", choices=OUT_TYPE_CHOICES, default="Q8_0")
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--replace", action="store_true", help="replace a model of the same name")
    p.add_argument("--estimate-only", action="store_true", help="show the estimate and stop")
    p.add_argument("--json", action="store_true", help="one JSON object per event on stdout")
    adv = p.add_argument_group("advanced")
    adv.add_argument("--dropout", type=float, default=0.05)
    adv.add_argument("--target-modules", default="", metavar="A,B", help="default: all linear")
    adv.add_argument("--batch-size", type=_positive(int), default=4)
    adv.add_argument("--grad-accum", type=_positive(int), default=1)
    adv.add_argument("--warmup", type=float, default=0.05, metavar="SHARE")
    adv.add_argument("--seed", type=int, default=0)
    adv.add_argument("--eval-every", type=count_arg, default=0, metavar="STEPS")
    adv.add_argument("--save-every", type=count_arg, default=0, metavar="STEPS")
    adv.add_argument("--val-fraction", type=float, default=0.1, metavar="SHARE")
    adv.add_argument("--device", choices=("auto", "cuda", "mps", "cpu"), default="auto")
    adv.add_argument("--threads", type=count_arg, default=0, help="CPU threads (0: default)")
    p.set_defaults(func=cmd_train)


@contextlib.contextmanager
def _cancel_on_signals(cancel: threading.Event, quiet: bool) -> Iterator[None]:
    """Ctrl-C and SIGTERM (what the GUI sends to stop a run) set `cancel`; a second Ctrl-C
    aborts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, frame: object) -> None:
        if cancel.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        cancel.set()
        if not quiet:
            print(
                "\nStopping after the current step and saving a checkpoint "
                "(Ctrl-C again to abort)…",
                file=sys.stderr,
                flush=True,
            )

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _size(n: float | None) -> str:
    if n is None:
        return "unknown"
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def _count_words(n: int) -> str:
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n:,}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class _Printer:
    """Events as progress lines on stderr."""

    def __init__(self) -> None:
        self._last: tuple[str, int] = ("", -1)

    def say(self, head: str, text: str) -> None:
        print(f"{head:<11}{text}", file=sys.stderr, flush=True)

    def event(self, ev: TrainEvent) -> None:
        from ftrag_desktop.core import train_events as te

        if isinstance(ev, te.TrainStage):
            self.say(ev.stage, ev.text)
        elif isinstance(ev, te.TrainNotice):
            self.say("note", ev.text)
        elif isinstance(ev, te.TrainEstimated):
            e = ev.estimate
            self.say(
                "estimate",
                f"{_count_words(e.parameters)} parameters, {_count_words(e.trainable_parameters)}"
                f" trainable; {e.examples} examples ({e.valid_examples} for validation), "
                f"~{e.tokens_per_epoch:,} tokens per epoch; {e.steps} steps "
                f"({e.epochs:g} epochs)",
            )
            self.say(
                "",
                f"about {_duration(e.seconds)} at ~{e.tokens_per_s:.0f} tokens/s "
                f"({e.throughput_source}); peak memory ~{_size(e.peak_memory_bytes)} of "
                f"{_size(e.available_memory_bytes)} free on {e.device}",
            )
            self.say("", f"run folder {ev.run_dir}")
        elif isinstance(ev, te.DataPrepared):
            self.say(
                "prepared",
                f"{ev.train_examples} training and {ev.valid_examples} validation examples, "
                f"{ev.tokens:,} tokens ({ev.trained_tokens:,} of them answers), "
                f"{ev.total_steps} steps",
            )
        elif isinstance(ev, te.TrainResumed):
            self.say("resumed", f"from step {ev.step} ({ev.checkpoint})")
        elif isinstance(ev, te.TrainStep):
            self.say(
                f"step {ev.step}/{ev.total_steps}",
                f"epoch {ev.epoch:.2f}  loss {ev.loss:.4f}  lr {ev.lr:.2e}  "
                f"{ev.tokens_per_s:.0f} tokens/s  about {_duration(ev.eta_s)} left",
            )
        elif isinstance(ev, te.ValidationLoss):
            self.say("validation", f"step {ev.step}: loss {ev.loss:.4f}")
        elif isinstance(ev, te.CheckpointSaved):
            self.say("checkpoint", f"step {ev.step}: {ev.path}")
        elif isinstance(ev, te.TrainProgress):
            pct = 100 * ev.done // ev.total if ev.total else 100
            key = (ev.stage + ev.text, pct // 10)
            if key != self._last:
                self._last = key
                self.say(ev.stage, f"{ev.text} {pct}%")
        elif isinstance(ev, te.AdapterSaved):
            self.say("adapter", ev.path)
        elif isinstance(ev, te.Merged):
            self.say(
                "merged",
                f"{ev.tensors_merged} tensors into {ev.path} ({ev.out_type}, {_size(ev.bytes)})",
            )
        elif isinstance(ev, te.Verified):
            self.say("verified", f"llama.cpp generated: {' '.join(ev.reply.split())[:80]}")


def _options(args: argparse.Namespace) -> Any:
    from ftrag_desktop.core.train_options import TrainOptions

    targets = tuple(t.strip() for t in args.target_modules.split(",") if t.strip())
    return TrainOptions(
        rank=args.rank,
        alpha=args.alpha,
        lr=args.lr,
        epochs=args.epochs,
        max_length=args.max_length,
        dropout=args.dropout,
        target_modules=targets,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        warmup_ratio=args.warmup,
        seed=args.seed,
        max_steps=args.max_steps,
        eval_every=args.eval_every,
        save_every=args.save_every,
        val_fraction=args.val_fraction,
        out_type=args.out_type,
        device=args.device,
        threads=args.threads,
    )


def cmd_train(engine: Engine, args: argparse.Namespace) -> int:
    from ftrag_desktop.core import train_events as te
    from ftrag_desktop.core.models import ModelManager
    from ftrag_desktop.core.train_env import TrainExtraMissing
    from ftrag_desktop.core.train_pipeline import TrainRequest, run_training
    from ftrag_desktop.errors import Cancelled, UserError

    request = TrainRequest(
        base=args.base,
        data=Path(args.data),
        name=args.name,
        options=_options(args),
        resume=args.resume,
        replace=args.replace,
        estimate_only=args.estimate_only,
    )
    printer = _Printer()
    cancel = threading.Event()
    last_checkpoint: te.CheckpointSaved | None = None
    estimate: te.TrainEstimated | None = None
    finished: te.TrainFinished | None = None
    manager = ModelManager(engine.client, engine.home)
    try:
        with _cancel_on_signals(cancel, quiet=args.json):
            for ev in run_training(manager, request, cancel):
                if args.json:
                    _emit(te.event_to_dict(ev))
                else:
                    printer.event(ev)
                if isinstance(ev, te.CheckpointSaved):
                    last_checkpoint = ev
                elif isinstance(ev, te.TrainEstimated):
                    estimate = ev
                elif isinstance(ev, te.TrainFinished):
                    finished = ev
    except (Cancelled, KeyboardInterrupt):
        step = last_checkpoint.step if last_checkpoint else None
        where = last_checkpoint.path if last_checkpoint else None
        if args.json:
            _emit({"event": "cancelled", "step": step, "checkpoint": where})
        else:
            kept = (
                f" A checkpoint of step {step} is kept: run the same command to resume."
                if last_checkpoint
                else ""
            )
            print(f"Training cancelled.{kept}", file=sys.stderr)
        return 130
    except UserError as exc:
        code = EXIT_MISSING_EXTRA if isinstance(exc, TrainExtraMissing) else 1
        if args.json:
            _emit(
                {
                    "event": "error",
                    "error": type(exc).__name__,
                    "message": exc.message,
                    "hint": exc.hint,
                    "exit_code": code,
                }
            )
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return code
    if args.estimate_only:
        fits = estimate.estimate.fits if estimate else False
        if args.json:
            _emit({"event": "estimated", "fits": fits})
        else:
            print("Estimate only: nothing was trained.")
        return 0
    assert finished is not None
    if not args.json:
        val = f", validation loss {finished.val_loss:.4f}" if finished.val_loss is not None else ""
        loss = f"{finished.train_loss:.4f}" if finished.train_loss is not None else "n/a"
        print(
            f"Trained {finished.model} in {_duration(finished.seconds)} on {finished.device}: "
            f"{finished.steps} steps, training loss {loss}{val}."
        )
        print(f"GGUF: {finished.gguf}")
    return 0
