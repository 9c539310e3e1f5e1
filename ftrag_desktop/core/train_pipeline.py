"""A fine-tune from start to finish: check, estimate, load, train, merge, verify, import, record.

`run_training(manager, request, cancel)` is a generator of `train_events` (the CLI prints them
or writes them as JSON lines; the GUI's Train tab reads those lines; tests collect them):

1. **checking**: the `[train]` extra (`TrainExtraMissing` with the install hint), the options,
   the base model (`train_base`: a GGUF file, or the blob behind an Ollama model) and whether
   transformers reads its architecture, the training data (`train_data`), the new model's name
   (valid and free in Ollama, so a long run never ends in a refused import), the device; then
   the `TrainEstimated` event and, when it does not fit in memory, `TrainTooLarge`.  With
   `estimate_only` the run ends here.
2. **loading** the base with transformers; **preparing** the examples with its chat template.
3. **training** (`train_loop`), resuming the same run's last checkpoint unless told not to.
   Runs live in ``<home>/training/<run id>/``, under the data home, never beside documents.
4. **saving** the PEFT adapter (``adapter/``), **merging** it into the base GGUF
   (`gguf_merge.merge_adapter`, written as ``<name>.gguf`` in the run's folder), **verifying**
   that the file loads and generates in llama.cpp (`gguf_merge.verify_gguf`).
5. **importing** it into Ollama (`model_import.run_import`, the same checks and verification as
   any import), then **recording** its lineage with what training did (`Lineage.training`).

The last event is `TrainFinished`.  Setting `cancel` stops at the next micro-batch (a
checkpoint of the last step is saved), tensor or upload chunk, and raises `Cancelled`.
"""

from __future__ import annotations

import gc
import queue
import re
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftrag_desktop.core.import_plan import _NAME_RE
from ftrag_desktop.core.llm import normalize_model_name
from ftrag_desktop.core.train_base import BaseModel, resolve_base
from ftrag_desktop.core.train_data import TrainingData, encode_all, load_training_data
from ftrag_desktop.core.train_env import Device, require_extra
from ftrag_desktop.core.train_estimate import check_fits, estimate
from ftrag_desktop.core.train_events import (
    AdapterSaved,
    DataPrepared,
    Merged,
    TrainEstimated,
    TrainEvent,
    TrainFinished,
    TrainNotice,
    TrainProgress,
    TrainStage,
    Verified,
)
from ftrag_desktop.core.train_options import TrainOptions, run_id
from ftrag_desktop.errors import Cancelled, ModelImportFailed, UserError

if TYPE_CHECKING:
    from ftrag_desktop.core.gguf_merge import MergeResult
    from ftrag_desktop.core.models import Lineage, ModelManager
    from ftrag_desktop.core.train_loop import LoopState
    from ftrag_desktop.paths import Home

__all__ = ["TrainRequest", "run_training", "training_dir"]


@dataclass(frozen=True)
class TrainRequest:
    """What the user asked for: base (an Ollama model or a .gguf path), data (an export folder
    or its train.jsonl), and the name of the new Ollama model."""

    base: str
    data: Path
    name: str
    options: TrainOptions = field(default_factory=TrainOptions)
    resume: bool = True
    replace: bool = False  # replace an Ollama model of the same name
    estimate_only: bool = False


def training_dir(home: Home) -> Path:
    """Where fine-tuning runs keep their checkpoints, adapters and merged GGUFs."""
    path = home.root / "training"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _check(cancel: threading.Event) -> None:
    if cancel.is_set():
        raise Cancelled


def _check_name(manager: ModelManager, request: TrainRequest) -> str:
    name = request.name.strip()
    if not _NAME_RE.match(name):
        raise ModelImportFailed(
            f"'{request.name}' is not a valid Ollama model name.",
            "Use letters, digits, '.', '-' and '_' (for example my-model or my-model:v2).",
        )
    name = normalize_model_name(name)
    installed = {normalize_model_name(m.name) for m in manager.client.list_models()}
    if name in installed and not request.replace:
        raise ModelImportFailed(
            f"A model named {name} already exists in Ollama.",
            "Choose another name, or replace it (--replace in the CLI), or delete it first.",
        )
    return name


def run_training(
    manager: ModelManager, request: TrainRequest, cancel: threading.Event | None = None
) -> Iterator[TrainEvent]:
    """The whole fine-tune as events; see the module docstring.  Raises `UserError`s and
    `Cancelled`."""
    cancel = cancel or threading.Event()
    started = time.monotonic()
    options = request.options
    yield TrainStage("checking", "Checking the base model, the data and this machine")
    require_extra()
    bad = options.problems()
    if bad:
        raise UserError("The training options are not valid: " + "; ".join(bad) + ".")
    base = resolve_base(request.base, manager.client)
    from ftrag_desktop.core.train_model import check_architecture

    check_architecture(base)
    data = load_training_data(request.data, val_fraction=options.val_fraction, seed=options.seed)
    name = (
        normalize_model_name(request.name)
        if request.estimate_only
        else _check_name(manager, request)
    )
    from ftrag_desktop.core.train_device import choose_device, measure_matmul_flops

    device = choose_device(options.device, options.threads)
    rid = run_id(name, base.identity, data.sha256, options)
    run_dir = training_dir(manager.home) / rid
    est = estimate(base, data, options, device, measure_matmul_flops(device.kind))
    yield TrainEstimated(
        rid, str(run_dir), est, base.to_dict(), data.to_dict(), device.to_dict(), options.to_dict()
    )
    if not data.valid:
        yield TrainNotice(
            "There is no validation set (fewer than 10 examples and no valid.jsonl): only the "
            "training loss is reported."
        )
    check_fits(est, options)
    if request.estimate_only:
        return
    _check(cancel)
    state, device_label = yield from _train(base, data, options, device, run_dir, request, cancel)
    adapter = run_dir / "adapter"

    yield TrainStage("merging", f"Merging the adapter into {base.path.name}")
    out = run_dir / f"{re.sub(r'[^A-Za-z0-9._-]+', '-', name)}.gguf"
    merged = yield from _merge(base, adapter, out, options.out_type, name, cancel)
    yield Merged(
        str(merged.out), merged.bytes, merged.out_type, merged.tensors_merged, merged.seconds
    )
    _check(cancel)

    yield TrainStage("verifying", "Checking that the merged model loads and generates")
    from ftrag_desktop.core.gguf_merge import verify_gguf

    reply = verify_gguf(merged.out)
    yield Verified(str(merged.out), reply)
    _check(cancel)

    lineage = yield from _import(manager, request, base, merged.out, name, cancel)
    yield TrainStage("recording", f"Recording what {name} was trained on")
    training = {
        "run_id": rid,
        "base": base.label,
        "base_path": str(base.path),
        "base_architecture": base.info.architecture,
        "dataset": str(data.train_file),
        "dataset_sha256": data.sha256,
        "train_examples": len(data.train),
        "valid_examples": len(data.valid),
        "hyperparameters": {**options.identity(), "out_type": options.out_type},
        "train_loss": state.train_loss,
        "val_loss": state.val_loss,
        "steps": state.step,
        "tokens": state.tokens_seen,
        "device": device_label,
        "train_seconds": round(state.seconds, 1),
        "seconds": round(time.monotonic() - started, 1),
        "adapter": str(adapter),
        "gguf": str(merged.out),
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    lineage = replace(lineage, training=training)
    manager.lineages.save(lineage)
    yield TrainFinished(
        model=lineage.name,
        run_id=rid,
        gguf=str(merged.out),
        adapter=str(adapter),
        steps=state.step,
        train_loss=state.train_loss,
        val_loss=state.val_loss,
        seconds=round(time.monotonic() - started, 1),
        device=device_label,
        lineage=lineage.to_dict(),
    )


def _train(
    base: BaseModel,
    data: TrainingData,
    options: TrainOptions,
    device: Device,
    run_dir: Path,
    request: TrainRequest,
    cancel: threading.Event,
) -> Generator[TrainEvent, None, tuple[LoopState, str]]:
    """Load, tokenize, train, save the adapter; returns (loop state, device label).  The
    model is released before the merge needs the memory."""
    from ftrag_desktop.core.train_loop import train_adapter
    from ftrag_desktop.core.train_model import add_lora, load_base

    yield TrainStage("loading", f"Loading {base.label} for training on {device.label}")
    model, tokenizer = load_base(base, device)
    _check(cancel)
    yield TrainStage("preparing", "Applying the chat template and masking the prompts")
    train, stats = encode_all(tokenizer, data.train, options.max_length)
    valid, _vstats = encode_all(tokenizer, data.valid, options.max_length)
    if not train:
        raise UserError(
            "No training example keeps any of its answer within the max length of "
            f"{options.max_length} tokens.",
            f"Raise the max length (the longest example has {stats.longest} tokens).",
        )
    from ftrag_desktop.core.train_estimate import plan_steps

    yield DataPrepared(
        len(train),
        len(valid),
        stats.tokens,
        stats.trained_tokens,
        stats.truncated,
        stats.dropped,
        plan_steps(len(train), options)[1],
    )
    for note in stats.notes:
        yield TrainNotice(note)
    model = add_lora(model, options)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    yield TrainStage("training", f"Training a rank-{options.rank} LoRA adapter")
    identity = {"base": base.identity, "data": data.sha256, "options": options.identity()}
    state = yield from train_adapter(
        model,
        train,
        valid,
        options,
        run_dir,
        device,
        cancel,
        pad_id=int(pad or 0),
        identity=identity,
        resume=request.resume,
    )
    yield TrainStage("saving", "Saving the adapter")
    adapter = run_dir / "adapter"
    model.save_pretrained(str(adapter), save_embedding_layers=False)
    yield AdapterSaved(str(adapter))
    del model
    gc.collect()
    return state, device.label


def _merge(
    base: BaseModel,
    adapter: Path,
    out: Path,
    out_type: str,
    name: str,
    cancel: threading.Event,
) -> Generator[TrainEvent, None, MergeResult]:
    """T2's `merge_adapter` on a worker thread, its progress calls turned into events."""
    from ftrag_desktop.core.gguf_merge import merge_adapter

    updates: queue.Queue[tuple[int, int] | None] = queue.Queue()
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["result"] = merge_adapter(
                base.path,
                adapter,
                out,
                out_type=out_type,
                progress=lambda done, total: updates.put((done, total)),
                cancel=cancel,
                name=name.removesuffix(":latest"),  # general.name of the new model
            )
        except BaseException as e:  # handed to the generator's thread below
            outcome["error"] = e
        finally:
            updates.put(None)

    worker = threading.Thread(target=work, name="ftrag-merge", daemon=True)
    worker.start()
    last = -1
    try:
        while (item := updates.get()) is not None:
            done, total = item
            pct = 100 * done // total if total else 100
            if pct != last:
                last = pct
                yield TrainProgress("merging", done, total, "bytes", f"Writing {out.name}")
    finally:
        worker.join()
    if "error" in outcome:
        raise outcome["error"]
    result: MergeResult = outcome["result"]
    return result


def _import(
    manager: ModelManager,
    request: TrainRequest,
    base: BaseModel,
    gguf: Path,
    name: str,
    cancel: threading.Event,
) -> Generator[TrainEvent, None, Lineage]:
    """`run_import` of the merged GGUF, its events folded into stages and progress."""
    from ftrag_desktop.core import model_import as mi

    yield TrainStage("importing", f"Importing {gguf.name} into Ollama as {name}")
    import_request = mi.ImportRequest(
        gguf, name, base=base.ollama_name, replace=request.replace, kind="gguf"
    )
    lineage: Lineage | None = None
    describe: dict[type, Callable[[Any], str]] = {
        mi.ImportStep: lambda e: e.text,
        mi.ImportServerStatus: lambda e: f"Ollama: {e.text}",
        mi.ImportNotice: lambda e: e.text,
        mi.BlobSkipped: lambda e: f"Ollama already has {e.file}",
    }
    last: tuple[str, int] = ("", -1)
    for ev in mi.run_import(manager, import_request, cancel):
        if isinstance(ev, mi.ImportProgress):
            key = (ev.step, 100 * ev.done // ev.total if ev.total else 100)
            if key != last:  # one event per percent, not per chunk
                last = key
                yield TrainProgress("importing", ev.done, ev.total, "bytes", f"{ev.step} {ev.file}")
        elif isinstance(ev, mi.ImportFinished):
            lineage = ev.lineage
        elif type(ev) in describe:
            yield TrainNotice(describe[type(ev)](ev))
    assert lineage is not None
    return lineage
